//go:build linux

package region

import (
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Reader is a read-only mapping of one container's region file.
type Reader struct {
	path string
	data []byte // mapped read-only; nil after Close
}

// Open maps the region file at path read-only. The file may still be empty
// (no CUDA process of the container has started yet): Snapshot then returns
// an error wrapping ErrNotReady.
func Open(path string) (*Reader, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &Reader{path: path}
	if st.Size() < int64(Size) {
		return r, nil // mapped on a later Snapshot, once a process sized it
	}
	if err := r.mapFile(f); err != nil {
		return nil, err
	}
	return r, nil
}

// openRegular opens the file without trusting it: the region's directory is
// writable from inside the container, so the name could be a symlink to a
// host file (not followed) or a FIFO (opened without blocking, then
// refused).
func openRegular(path string) (*os.File, os.FileInfo, error) {
	flags := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open region: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat region %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("region %s is not a regular file (%v)", path, st.Mode().Type())
	}
	return f, st, nil
}

func (r *Reader) mapFile(f *os.File) error {
	data, err := syscall.Mmap(int(f.Fd()), 0, Size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map region %s: %w", r.path, err)
	}
	r.data = data
	return nil
}

// Snapshot reads the region as it is now. Each 64-bit word is read
// atomically; the whole is read twice until two reads agree (at most a few
// times), so that a snapshot is rarely torn across processes' updates.
func (r *Reader) Snapshot() (*Snapshot, error) {
	if r.data == nil {
		if err := r.remap(); err != nil {
			return nil, err
		}
	}
	b, err := r.stableCopy()
	if err != nil {
		return nil, err
	}
	s, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("region %s: %w", r.path, err)
	}
	return s, nil
}

func (r *Reader) remap() error {
	f, st, err := openRegular(r.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if st.Size() < int64(Size) {
		return fmt.Errorf("region %s is %d bytes: %w", r.path, st.Size(), ErrNotReady)
	}
	return r.mapFile(f)
}

func (r *Reader) stableCopy() ([]byte, error) {
	a, err := r.copyWords()
	for try := 0; err == nil && try < 4; try++ {
		b, errB := r.copyWords()
		if errB != nil {
			return nil, errB
		}
		if string(a) == string(b) {
			break
		}
		a = b
	}
	return a, err
}

// copyWords copies the mapping word by word. The file belongs to the
// container, which could shrink it under us: a read past its end faults,
// and the fault is turned into an error rather than a crash.
func (r *Reader) copyWords() (out []byte, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("region %s changed under the reader: %v", r.path, p)
		}
	}()
	words := make([]uint64, Size/8)
	for i := range words {
		words[i] = atomic.LoadUint64((*uint64)(unsafe.Pointer(&r.data[i*8])))
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), Size), nil
}

// Close unmaps the region. A later Snapshot maps it again.
func (r *Reader) Close() error {
	if r.data == nil {
		return nil
	}
	err := syscall.Munmap(r.data)
	r.data = nil
	if err != nil {
		return fmt.Errorf("unmap region %s: %w", r.path, err)
	}
	return nil
}
