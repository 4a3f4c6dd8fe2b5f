package fleetweb

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
)

// assetFS is the page: one HTML file, one script, one style sheet. No
// build step makes them, and nothing is fetched from elsewhere.
//
//go:embed assets
var assetFS embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

type assets map[string]asset

// newAssets reads the embedded files once.
func newAssets() (assets, error) {
	out := assets{}
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		return nil, fmt.Errorf("read the page's embedded files: %w", err)
	}
	for _, e := range entries {
		body, err := assetFS.ReadFile(path.Join("assets", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read the page's embedded file %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(e.Name()))
		switch path.Ext(e.Name()) {
		// The system's MIME table may lack these or map them oddly; the
		// browser must get exactly these types for nosniff to accept them.
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		}
		out[e.Name()] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return out, nil
}

// AssetBytes is the total size of the page's embedded files.
func AssetBytes() (int, error) {
	a, err := newAssets()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range a {
		n += len(f.body)
	}
	return n, nil
}

// handler serves one file. The browser revalidates it on every load (a new
// binary may carry a new page) and gets 304 while it is unchanged.
func (a assets) handler(name string) http.Handler {
	f, ok := a[name]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		if r.Header.Get("If-None-Match") == f.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", f.contentType)
		h.Set("Content-Length", strconv.Itoa(len(f.body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(f.body)
	})
}
