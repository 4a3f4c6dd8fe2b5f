package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/test/cluster"
	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// The component-set scenario's numbers (MiB). Every GPU has 81,920 MiB.
// member-a (8 GPUs) keeps setsFreeMiB free on each GPU: 320 GiB free in all,
// but no GPU can hold two of the job's replicas, so the job fits there only
// as 5 replicas on 5 distinct GPUs. member-b (2 empty GPUs) has exactly the
// job's total memory (160 GiB) and 20 slots, so Karmada's general estimate
// counts one set there; but a GPU holds the master (40 GiB) and one worker
// (30 GiB), or two workers, so at most 3 of the 4 workers fit beside the
// master: Tessera answers 0.
const (
	setsFreeMiB     = 40 * 1024
	masterMemoryMiB = 40 * 1024
	workerMemoryMiB = 30 * 1024
	setsWorkers     = 4
)

// setsJob is the two-template workload: 1 master x 1 vGPU x 40 GiB, 4
// workers x 1 vGPU x 30 GiB.
func setsJob() env.PyTorchJob {
	return env.PyTorchJob{Namespace: env.HeadlineNamespace, Name: "train", Masters: 1, Workers: setsWorkers,
		Master: env.GPURequest{GPUs: 1, MemoryMiB: masterMemoryMiB}, Worker: env.GPURequest{GPUs: 1, MemoryMiB: workerMemoryMiB}}
}

// TestComponentSetsThroughKarmada runs a two-template workload (a
// PyTorchJob, interpreted by Karmada's built-in customization) through the
// real Karmada with MultiplePodTemplatesScheduling on: karmada-scheduler
// asks each member's Tessera estimator MaxAvailableComponentSets, places
// the job in the fragmented member where the set fits, not in the member
// whose totals suggest it does; the pods (created in the member as the
// operator would) run on GPUs that were free.
func TestComponentSetsThroughKarmada(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	paths, err := cluster.Binaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e, err := env.Start(ctx, env.Options{
		Members: env.HeadlineMembers(), Paths: paths, T: t, LogVerbosity: 2,
		KarmadaFeatureGates: []string{"MultiplePodTemplatesScheduling=true"},
		KeepDir:             os.Getenv(keepEnv) != "",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	if n, err := e.FillGPUs(ctx, env.BusyMember, setsFreeMiB, env.FillerApp, podTimeout); err != nil || n != 8 {
		t.Fatalf("filled %d GPUs of %s (%v), want its 8", n, env.BusyMember, err)
	}
	for _, m := range []string{env.BusyMember, env.IdleMember} {
		if err := e.WaitClusterSummary(ctx, m, summaryTimeout); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.InstallPyTorchJobCRD(ctx, podTimeout); err != nil {
		t.Fatal(err)
	}
	free := freeByGPU(ctx, t, e, env.BusyMember)

	j := setsJob()
	start := time.Now()
	if err := e.PropagatePyTorchJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	rb := waitJobPlaced(ctx, t, e, j)
	t.Logf("Karmada placed PyTorchJob %s in %v after %s", j.Name, env.Placement(rb), time.Since(start).Round(time.Millisecond))
	checkComponents(t, rb, corev1.ResourceName(e.Config().Resources.VGPU))
	// Before the test asks anything itself: karmada-scheduler asked both
	// members' Tessera estimators for component sets.
	for _, member := range []string{env.BusyMember, env.IdleMember} {
		n, err := e.Member(member).EstimatorAnswers(ctx, "MaxAvailableComponentSets")
		if err != nil || n == 0 {
			t.Errorf("%s: Tessera's estimator answered MaxAvailableComponentSets %d times (%v); karmada-scheduler should have asked", member, n, err)
		}
	}

	// What karmada-scheduler was told, asked again the same way: Tessera's
	// answer is exact in both members; the general estimate would have let
	// member-b take the job.
	for member, want := range map[string]func(env.SetEstimate) bool{
		env.BusyMember: func(s env.SetEstimate) bool { return s.Tessera == 1 && s.Stock >= 1 },
		env.IdleMember: func(s env.SetEstimate) bool { return s.Tessera == 0 && s.Stock >= 1 },
	} {
		got, err := e.ComponentSets(ctx, member, j.Namespace, rb.Spec.Components)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: component sets: Karmada's general estimate %d, Tessera %d", member, got.Stock, got.Tessera)
		if !want(got) {
			t.Errorf("%s: component sets %+v; want Tessera 1 in %s, 0 in %s, and the general estimate >= 1 in both", member, got, env.BusyMember, env.IdleMember)
		}
	}

	// The operator's part: the job as applied in member-a becomes pods.
	var job map[string]any
	err = env.Eventually(ctx, placementTimeout, "the PyTorchJob to be applied in "+env.BusyMember, func(ctx context.Context) (bool, string, error) {
		u, err := e.Member(env.BusyMember).MemberPyTorchJob(ctx, j.Namespace, j.Name)
		if err != nil || u == nil {
			return false, fmt.Sprintf("not yet (%v)", err), nil
		}
		job = u.Object
		created, err := e.Member(env.BusyMember).RunPyTorchJobPods(ctx, u)
		if err != nil {
			return false, "", err
		}
		t.Logf("created %v in %s", created, env.BusyMember)
		return true, "", nil
	})
	if err != nil || job == nil {
		t.Fatal(err)
	}
	if u, err := e.Member(env.IdleMember).MemberPyTorchJob(ctx, j.Namespace, j.Name); err != nil || u != nil {
		t.Errorf("PyTorchJob in %s: %v (err %v); want none", env.IdleMember, u != nil, err)
	}
	rs := waitReplicas(ctx, t, e, env.BusyMember, j.Name, 1+setsWorkers, 0)
	checkOnFreeGPUs(t, e, rs, free)
	t.Logf("%d pods of %s running in %s after %s", len(rs), j.Name, env.BusyMember, time.Since(start).Round(time.Millisecond))

	// With the job running, 3 GPUs of member-a keep 40 GiB free: no room
	// for a second set.
	err = env.Eventually(ctx, podTimeout, "Tessera to count no second set in "+env.BusyMember, func(ctx context.Context) (bool, string, error) {
		got, err := e.ComponentSets(ctx, env.BusyMember, j.Namespace, rb.Spec.Components)
		if err != nil {
			return false, err.Error(), nil
		}
		return got.Tessera == 0, fmt.Sprintf("%+v", got), nil
	})
	if err != nil {
		t.Error(err)
	}

	e.Stop()
	if err := e.StopErr(); err != nil {
		t.Errorf("teardown: %v", err)
	}
}

// waitJobPlaced waits until Karmada has scheduled the job's binding and
// returns it.
func waitJobPlaced(ctx context.Context, t *testing.T, e *env.Env, j env.PyTorchJob) *workv1alpha2.ResourceBinding {
	t.Helper()
	var rb *workv1alpha2.ResourceBinding
	err := env.Eventually(ctx, placementTimeout, "Karmada to place PyTorchJob "+j.Name, func(ctx context.Context) (bool, string, error) {
		got, err := e.BindingOf(ctx, j.Namespace, "PyTorchJob", j.Name)
		if err != nil || got == nil {
			return false, fmt.Sprintf("binding %v", err), nil
		}
		rb = got
		state := fmt.Sprintf("components %d, clusters %v, conditions %s", len(got.Spec.Components), got.Spec.Clusters, env.DescribeConditions(got.Status.Conditions))
		return len(got.Spec.Clusters) > 0, state, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rb.Spec.Clusters) != 1 || rb.Spec.Clusters[0].Name != env.BusyMember {
		t.Fatalf("Karmada placed PyTorchJob %s in %v; want %s only", j.Name, rb.Spec.Clusters, env.BusyMember)
	}
	return rb
}

// checkComponents: Karmada's interpreter turned the job into two components
// (spec.components), not a replica count, so the scheduler took the
// component-set path.
func checkComponents(t *testing.T, rb *workv1alpha2.ResourceBinding, vgpu corev1.ResourceName) {
	t.Helper()
	want := map[string]int32{"master": 1, "worker": setsWorkers}
	got := map[string]int32{}
	for _, c := range rb.Spec.Components {
		got[c.Name] = c.Replicas
		if c.ReplicaRequirements == nil || c.ReplicaRequirements.ResourceRequest.Name(vgpu, "").Value() != 1 {
			t.Errorf("component %s: requirements %+v; want 1 vGPU", c.Name, c.ReplicaRequirements)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || rb.Spec.Replicas != 0 {
		t.Errorf("binding components %v, replicas %d; want %v and no replica count", got, rb.Spec.Replicas, want)
	}
}

// freeByGPU is each GPU's free memory in the member, by UUID.
func freeByGPU(ctx context.Context, t *testing.T, e *env.Env, member string) map[string]int64 {
	t.Helper()
	views, err := e.Member(member).GPUViews(ctx, e.Config().Keys())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, v := range views {
		out[v.UUID] = v.Free().MemoryMiB
	}
	return out
}

// checkOnFreeGPUs: every pod runs on one GPU of its own that had its
// memory free before the job came (the free memory Tessera's answer
// counted), assigned by the extender and served by the device plugin with
// that limit.
func checkOnFreeGPUs(t *testing.T, e *env.Env, rs []env.Replica, freeBefore map[string]int64) {
	t.Helper()
	used := map[string]string{}
	for _, r := range rs {
		want := int64(workerMemoryMiB)
		if r.Name == setsJob().Name+"-master-0" {
			want = masterMemoryMiB
		}
		if r.Assignment == nil || r.Assignment.Node != r.Node {
			t.Errorf("%s on %s: assignment %+v (%v), want one for its node", r.Name, r.Node, r.Assignment, r.AssignmentErr)
			continue
		}
		c, ok := r.Assignment.Container("main")
		if !ok || len(c.Devices) != 1 || c.Devices[0].MemoryMiB != want {
			t.Errorf("%s: assigned %+v, want one GPU with %d MiB", r.Name, c, want)
			continue
		}
		uuid := c.Devices[0].UUID
		if freeBefore[uuid] < want {
			t.Errorf("%s got GPU %s, which had %d MiB free; it needs %d", r.Name, uuid, freeBefore[uuid], want)
		}
		if other, taken := used[uuid]; taken {
			t.Errorf("%s and %s share GPU %s, which has room for one of them", r.Name, other, uuid)
		}
		used[uuid] = r.Name
		allocs, rejected, seen := e.Member(env.BusyMember).Node(r.Node).Admission(r.UID)
		if !seen || rejected != "" || len(allocs) != 1 {
			t.Errorf("%s: kubelet admission seen=%t rejected=%q allocations=%d", r.Name, seen, rejected, len(allocs))
			continue
		}
		envs := allocs[0].Response.GetEnvs()
		// The limits file the node agent wrote once the kubelet named the
		// container, as the interception library reads it.
		limits, ok, err := deviceplugin.ContainerLimits(allocs[0].Response)
		if err != nil || !ok || limits.Refused != "" || len(limits.Devices) != 1 || limits.Devices[0].MemoryMiB != want {
			t.Errorf("%s: limits %+v (written %t, %v), want %d MiB", r.Name, limits, ok, err, want)
		}
		if got := envs[deviceplugin.VisibleDevicesEnv]; got != uuid {
			t.Errorf("%s: %s=%q, assignment names %s", r.Name, deviceplugin.VisibleDevicesEnv, got, uuid)
		}
	}
}
