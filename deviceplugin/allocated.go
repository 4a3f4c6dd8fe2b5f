package deviceplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

// errPodReplaced stops the retry when the pod was deleted and recreated
// under the same name: the record belongs to the old pod.
var errPodReplaced = errors.New("the pod was replaced by another with the same name")

// recordPod patches one pod. Patches of one pod are serialised (a lock per
// pod, never per node), and each reads the served containers only once it
// holds the lock: served containers only ever grow, so the last patch
// written carries every container, even where the API server cannot
// refuse a stale write.
func (p *Plugin) recordPod(ctx context.Context, uid types.UID) error {
	unlock := p.patchLocks.lock(uid)
	defer unlock()
	pod, served, ok := p.index.podServed(uid)
	if !ok {
		return nil // Deleted meanwhile: nothing left to record.
	}
	return p.patchAllocated(ctx, pod, served)
}

// podLocks are per-pod mutexes, dropped when unused.
type podLocks struct {
	mu    sync.Mutex
	locks map[types.UID]*podLock
}

type podLock struct {
	sync.Mutex
	users int
}

func (l *podLocks) lock(uid types.UID) (unlock func()) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[types.UID]*podLock{}
	}
	pl := l.locks[uid]
	if pl == nil {
		pl = &podLock{}
		l.locks[uid] = pl
	}
	pl.users++
	l.mu.Unlock()
	pl.Lock()
	return func() {
		pl.Unlock()
		l.mu.Lock()
		defer l.mu.Unlock()
		if pl.users--; pl.users == 0 {
			delete(l.locks, uid)
		}
	}
}

// patchAllocated merges served into the pod's Allocated annotation, with
// the pod's resourceVersion as a precondition so that two writers never
// lose each other's containers. The first attempt uses the informer's copy
// of the pod; a conflict fetches a fresh one.
func (p *Plugin) patchAllocated(ctx context.Context, cached *corev1.Pod, served []string) error {
	pods := p.client.CoreV1().Pods(cached.Namespace)
	attempt := 0
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod := cached
		if attempt > 0 {
			fresh, err := pods.Get(ctx, cached.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("get pod: %w", err)
			}
			pod = fresh
		}
		attempt++
		if pod.UID != cached.UID {
			return errPodReplaced
		}
		var have []string
		if raw, ok := pod.Annotations[p.opts.Keys.Allocated]; ok {
			a, err := annotations.DecodeAllocated(raw)
			if err != nil {
				// Our own containers are all we can vouch for; the log says
				// what was overwritten.
				p.logger.Error(err, "Overwriting an undecodable annotation", "pod", klog.KObj(pod), "annotation", p.opts.Keys.Allocated)
			}
			have = a.Containers
		}
		if containsAll(have, served) {
			return nil
		}
		value, err := annotations.EncodeAllocated(annotations.Allocated{Containers: append(slices.Clone(have), served...)})
		if err != nil {
			return err
		}
		meta := map[string]any{"annotations": map[string]string{p.opts.Keys.Allocated: value}}
		if pod.ResourceVersion != "" {
			meta["resourceVersion"] = pod.ResourceVersion
		}
		patch, err := json.Marshal(map[string]any{"metadata": meta})
		if err != nil {
			return fmt.Errorf("encode patch: %w", err)
		}
		if _, err := pods.Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("patch annotation %s: %w", p.opts.Keys.Allocated, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record served containers of pod %s/%s: %w", cached.Namespace, cached.Name, err)
	}
	return nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
