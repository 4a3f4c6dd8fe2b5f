// Package e2e runs Tessera end to end across clusters: a real Karmada
// control plane, real member clusters whose kube-scheduler calls Tessera's
// extender, Tessera's estimator behind each member's estimator Service,
// and node agents on mock GPUs with a simulated kubelet (package env).
package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/test/cluster"
	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// Bounds of the waits. They are generous: on a loaded two-core machine a
// step that takes seconds alone can take a minute. Karmada refreshes
// cluster summaries every 10s and retries an unschedulable binding with a
// growing back-off.
const (
	testTimeout      = 40 * time.Minute // the whole test, servers' build included
	placementTimeout = 4 * time.Minute  // Karmada decides and the members act
	podTimeout       = 4 * time.Minute  // pods scheduled, admitted, reported
	summaryTimeout   = 2 * time.Minute  // Karmada's cluster summary catches up
)

// keepEnv, when set, keeps the environment's directory (every server's and
// every in-process component's log) even when the test passes.
const keepEnv = "TESSERA_E2E_KEEP"

// skipUnlessServers skips under -short: these tests build (once) and run
// real etcd, Kubernetes and Karmada servers.
func skipUnlessServers(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped under -short: starts a Karmada control plane and two member clusters of real servers " +
			"built by test/tools/build-servers.sh (about 7 minutes once on a cold cache, then cached)")
	}
}

// startHeadline builds the headline environment, fills the busy member's
// GPUs so that each keeps 32 GiB free, and waits until both estimators see
// it: Karmada's summary and, in Tessera mode, Tessera's estimator.
func startHeadline(ctx context.Context, t *testing.T, mode env.EstimatorMode) *env.Env {
	t.Helper()
	return startHeadlineWith(ctx, t, env.Options{Estimator: mode})
}

// startHeadlineWith is startHeadline with more options (estimator mode
// and TLS); members, paths, logging and the test are set here.
func startHeadlineWith(ctx context.Context, t *testing.T, opts env.Options) *env.Env {
	t.Helper()
	paths, err := cluster.Binaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opts.Members, opts.Paths, opts.T, opts.LogVerbosity = env.HeadlineMembers(), paths, t, 2
	opts.KeepDir = os.Getenv(keepEnv) != ""
	e, err := env.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	n, err := e.FillGPUs(ctx, env.BusyMember, env.BusyFreeMiB, env.FillerApp, podTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 {
		t.Fatalf("filled %d GPUs of %s, want its 8", n, env.BusyMember)
	}
	checkBusyGPUs(ctx, t, e)
	for _, m := range []string{env.BusyMember, env.IdleMember} {
		if err := e.WaitClusterSummary(ctx, m, summaryTimeout); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("headline environment ready after %s", e.Since())
	return e
}

// checkBusyGPUs: every GPU of the busy member keeps exactly 32 GiB free,
// so memory is plentiful in total (256 GiB) but no GPU has 40 GiB.
func checkBusyGPUs(ctx context.Context, t *testing.T, e *env.Env) {
	t.Helper()
	views, err := e.Member(env.BusyMember).GPUViews(ctx, e.Config().Keys())
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 8 {
		t.Fatalf("%s has %d GPUs, want 8", env.BusyMember, len(views))
	}
	for _, v := range views {
		if free := v.Free().MemoryMiB; free != env.BusyFreeMiB {
			t.Errorf("%s GPU %s on %s has %d MiB free after filling, want %d", env.BusyMember, v.UUID, v.Node, free, env.BusyFreeMiB)
		}
	}
}

// estimates asks both estimators about one headline replica in a member.
func estimates(ctx context.Context, t *testing.T, e *env.Env, member string) env.Estimate {
	t.Helper()
	est, err := e.Estimates(ctx, member, env.HeadlineWorkload().Request.Resources(e.Config().Resources))
	if err != nil {
		t.Fatal(err)
	}
	return est
}

// waitReplicas waits until the workload has exactly running pods Running
// and Ready and pending pods unschedulable (Pending, no node) in member,
// and returns them.
func waitReplicas(ctx context.Context, t *testing.T, e *env.Env, member, app string, running, pending int) []env.Replica {
	t.Helper()
	var last []env.Replica
	err := env.Eventually(ctx, podTimeout, fmt.Sprintf("%s in %s: %d running, %d pending", app, member, running, pending),
		func(ctx context.Context) (bool, string, error) {
			rs, err := e.Member(member).Replicas(ctx, env.HeadlineNamespace, app, e.Config().Keys())
			if err != nil {
				return false, err.Error(), nil
			}
			last = rs
			r, p := 0, 0
			for _, x := range rs {
				switch {
				case x.Phase == corev1.PodRunning && x.Ready:
					r++
				case x.Phase == corev1.PodPending && x.Node == "":
					p++
				}
			}
			return r == running && p == pending && len(rs) == running+pending, describeReplicas(rs), nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return last
}

func describeReplicas(rs []env.Replica) string {
	if len(rs) == 0 {
		return "no pods"
	}
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		s := fmt.Sprintf("%s %s node=%q ready=%t", r.Name, r.Phase, r.Node, r.Ready)
		if r.Why != "" {
			s += " (" + r.Why + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// waitServedRecords refreshes each running replica's record of served
// containers (the gpu-allocated annotation). The device plugin writes it
// after the container's limits, best effort (deviceplugin/resolve.go), so
// the kubelet may report the pod Running a moment before it.
func waitServedRecords(ctx context.Context, t *testing.T, e *env.Env, member string, rs []env.Replica) {
	t.Helper()
	keys := e.Config().Keys()
	for i := range rs {
		r := &rs[i]
		if r.Phase != corev1.PodRunning {
			continue
		}
		err := env.Eventually(ctx, podTimeout, r.Name+"'s served record", func(ctx context.Context) (bool, string, error) {
			pod, err := e.Member(member).Client().CoreV1().Pods(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			a, err := annotations.DecodeAllocated(pod.Annotations[keys.Allocated])
			if err != nil {
				return false, err.Error(), nil
			}
			r.Allocated = a.Containers
			return len(a.Containers) > 0, fmt.Sprintf("served %v", a.Containers), nil
		})
		if err != nil {
			t.Errorf("%s/%s: %v", member, r.Name, err)
		}
	}
}

// checkPlacedAndAllocated: each running replica was placed by the extender
// (an assignment annotation for its node), served by the device plugin
// (the allocated annotation), and its container got the GPU and the
// memory limit of its assignment in the device plugin's Allocate answer.
func checkPlacedAndAllocated(ctx context.Context, t *testing.T, e *env.Env, member string, rs []env.Replica) {
	t.Helper()
	m := e.Member(member)
	waitServedRecords(ctx, t, e, member, rs)
	for _, r := range rs {
		if r.Phase != corev1.PodRunning {
			continue
		}
		if r.Assignment == nil || r.Assignment.Node != r.Node {
			t.Errorf("%s/%s on %s: assignment %+v (err %v), want one for its node", member, r.Name, r.Node, r.Assignment, r.AssignmentErr)
			continue
		}
		c, ok := r.Assignment.Container("main")
		if !ok || len(c.Devices) != 1 || c.Devices[0].MemoryMiB != env.HeadlineMemoryMiB {
			t.Errorf("%s/%s: container main assigned %+v, want one GPU with %d MiB", member, r.Name, c, env.HeadlineMemoryMiB)
			continue
		}
		if len(r.Allocated) != 1 || r.Allocated[0] != "main" {
			t.Errorf("%s/%s: device plugin recorded containers %v as served, want [main]", member, r.Name, r.Allocated)
		}
		node := m.Node(r.Node)
		if node == nil {
			t.Errorf("%s/%s is on unknown node %q", member, r.Name, r.Node)
			continue
		}
		allocs, rejected, seen := node.Admission(r.UID)
		if !seen || rejected != "" || len(allocs) != 1 {
			t.Errorf("%s/%s: kubelet admission seen=%t rejected=%q allocations=%d, want one allocation", member, r.Name, seen, rejected, len(allocs))
			continue
		}
		envs := allocs[0].Response.GetEnvs()
		// The limits file, as the interception library reads it: the
		// kubelet started the container (PreStartContainer) only once the
		// node agent had written it.
		limits, ok, err := deviceplugin.ContainerLimits(allocs[0].Response)
		if err != nil || !ok || limits.Refused != "" || len(limits.Devices) != 1 || limits.Devices[0].MemoryMiB != int64(env.HeadlineMemoryMiB) {
			t.Errorf("%s/%s: limits %+v (written %t, %v), want %d MiB", member, r.Name, limits, ok, err, env.HeadlineMemoryMiB)
		}
		if got := envs[deviceplugin.VisibleDevicesEnv]; got != c.Devices[0].UUID {
			t.Errorf("%s/%s: %s=%q, assignment names GPU %s", member, r.Name, deviceplugin.VisibleDevicesEnv, got, c.Devices[0].UUID)
		}
	}
}

// checkPendingForGPUs: each pending replica waits because no GPU has 40
// GiB free, as the extender told kube-scheduler.
func checkPendingForGPUs(t *testing.T, member string, rs []env.Replica) {
	t.Helper()
	want := strconv.Itoa(env.HeadlineMemoryMiB) + " MiB free"
	for _, r := range rs {
		if r.Phase == corev1.PodPending && !strings.Contains(r.Why, want) {
			t.Errorf("%s/%s is Pending with %q; want the extender's reason naming %q", member, r.Name, r.Why, want)
		}
	}
}
