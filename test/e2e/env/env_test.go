package env

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
)

func TestCheckMembers(t *testing.T) {
	gpus := []config.MockGPU{{Model: "H100-SXM5-80GB", Count: 2}}
	tests := []struct {
		name    string
		members []MemberSpec
		wantErr string
	}{
		{"headline topology", HeadlineMembers(), ""},
		{"no members", nil, "no member clusters"},
		{"unnamed member", []MemberSpec{{Nodes: []NodeSpec{{GPUs: gpus}}}}, "has no name"},
		{"duplicate member", []MemberSpec{{Name: "a", Nodes: []NodeSpec{{GPUs: gpus}}}, {Name: "a", Nodes: []NodeSpec{{GPUs: gpus}}}}, `"a" appears twice`},
		{"member without nodes", []MemberSpec{{Name: "a"}}, `"a" has no nodes`},
		{"node without GPUs", []MemberSpec{{Name: "a", Nodes: []NodeSpec{{}}}}, `node "a-node-1" of member "a" has no GPUs`},
		{"same node name twice", []MemberSpec{
			{Name: "a", Nodes: []NodeSpec{{Name: "gpu", GPUs: gpus}}},
			{Name: "b", Nodes: []NodeSpec{{Name: "gpu", GPUs: gpus}}},
		}, `node "gpu" appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkMembers(tt.members)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkMembers: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkMembers error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewEnvRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"unknown estimator mode", Options{Members: HeadlineMembers(), Estimator: "accurate"}, `"accurate" is neither`},
		{"estimator TLS in stock mode", Options{Members: HeadlineMembers(), Estimator: EstimatorStock, EstimatorTLS: true}, "estimator TLS needs estimator mode"},
		{"invalid Tessera config", Options{Members: HeadlineMembers(), Config: &config.Config{}}, "Tessera configuration"},
		{"directory too long for sockets", Options{Members: HeadlineMembers(), Dir: t.TempDir() + "/" + strings.Repeat("d", 40)}, "unix socket paths"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.name, "too long") {
				if err := os.MkdirAll(tt.opts.Dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			_, err := newEnv(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("newEnv error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWithExtenderAddress(t *testing.T) {
	tests := []struct {
		name, config, want, wantErr string
	}{
		{"shipped address replaced", "extenders:\n  - urlPrefix: http://127.0.0.1:8888\n", "extenders:\n  - urlPrefix: http://127.0.0.1:4321\n", ""},
		{"no extender", "profiles: []\n", "", "0 times"},
		{"two extenders", "a: urlPrefix: http://127.0.0.1:8888\nb: urlPrefix: http://127.0.0.1:8888\n", "", "2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withExtenderAddress(tt.config, "127.0.0.1:4321")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestShippedSchedulerConfig: the file the members run exists and names
// exactly one extender at the shipped address.
func TestShippedSchedulerConfig(t *testing.T) {
	got, err := memberSchedulerConfig("127.0.0.1:1234", config.Default().PodResources())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "urlPrefix: http://127.0.0.1:1234") || !strings.Contains(got, "bindVerb: bind") {
		t.Fatalf("member scheduler configuration lacks the extender on port 1234 with bind:\n%s", got)
	}
	hami, err := config.Parse([]byte("compat: hami\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err = memberSchedulerConfig("127.0.0.1:1234", hami.PodResources())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nvidia.com/gpu", "nvidia.com/gpumem", "nvidia.com/gpumem-percentage", "nvidia.com/gpucores", "tessera.io/vgpu-memory"} {
		if !strings.Contains(got, "- name: "+name+"\n") {
			t.Errorf("compat: hami scheduler configuration does not manage %s:\n%s", name, got)
		}
	}
}

func TestGPURequestResources(t *testing.T) {
	names := config.Default().Resources
	tests := []struct {
		name string
		req  GPURequest
		want map[string]int64
	}{
		{"memory and cores", GPURequest{GPUs: 1, MemoryMiB: 40960, Cores: 30}, map[string]int64{names.VGPU: 1, names.Memory: 40960, names.Cores: 30}},
		{"whole GPUs", GPURequest{GPUs: 2}, map[string]int64{names.VGPU: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.req.Resources(names)
			if len(got) != len(tt.want) {
				t.Fatalf("resources %v, want %v", got, tt.want)
			}
			for name, v := range tt.want {
				if q := got[corev1.ResourceName(name)]; q.Value() != v {
					t.Errorf("%s = %s, want %d", name, q.String(), v)
				}
			}
		})
	}
}

// TestWorkloadObjects: the Deployment's template asks for the request in
// both requests and limits (Karmada reads requests), and the policy divides
// by available replicas and carries the webhook's permanent-id label.
func TestWorkloadObjects(t *testing.T) {
	names := config.Default().Resources
	w := HeadlineWorkload()
	d := w.Deployment(names)
	c := d.Spec.Template.Spec.Containers[0]
	mem := corev1.ResourceName(names.Memory)
	if r, l := c.Resources.Requests[mem], c.Resources.Limits[mem]; r.Value() != HeadlineMemoryMiB || l.Value() != HeadlineMemoryMiB {
		t.Errorf("container memory request %s, limit %s; want %d both", r.String(), l.String(), HeadlineMemoryMiB)
	}
	if *d.Spec.Replicas != 4 || d.Spec.Template.Labels[AppLabel] != w.Name {
		t.Errorf("deployment replicas %d, template labels %v", *d.Spec.Replicas, d.Spec.Template.Labels)
	}
	pp := w.PropagationPolicy([]string{BusyMember, IdleMember})
	rs := pp.Spec.Placement.ReplicaScheduling
	if rs.ReplicaSchedulingType != policyv1alpha1.ReplicaSchedulingTypeDivided ||
		rs.ReplicaDivisionPreference != policyv1alpha1.ReplicaDivisionPreferenceWeighted ||
		rs.WeightPreference.DynamicWeight != policyv1alpha1.DynamicWeightByAvailableReplicas {
		t.Errorf("replica scheduling %+v, want Divided/Weighted/AvailableReplicas", rs)
	}
	if pp.Labels[policyv1alpha1.PropagationPolicyPermanentIDLabel] == "" {
		t.Error("policy has no permanent-id label")
	}
	pod := GPUPod("ns", "p", "fill", GPURequest{GPUs: 1, MemoryMiB: 1024}, names)
	if pod.Labels[AppLabel] != "fill" || pod.Name != "p" {
		t.Errorf("GPUPod labels %v name %q", pod.Labels, pod.Name)
	}
}

func TestPlacement(t *testing.T) {
	rb := &workv1alpha2.ResourceBinding{Spec: workv1alpha2.ResourceBindingSpec{Clusters: []workv1alpha2.TargetCluster{
		{Name: "a", Replicas: 2}, {Name: "b", Replicas: 4},
	}}}
	got := Placement(rb)
	if len(got) != 2 || got["a"] != 2 || got["b"] != 4 {
		t.Errorf("Placement = %v", got)
	}
	if got := Placement(nil); len(got) != 0 {
		t.Errorf("Placement(nil) = %v, want empty", got)
	}
}

func TestPodRequest(t *testing.T) {
	mem := corev1.ResourceName("tessera.io/vgpu-memory")
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{mem: resource.MustParse("1024")}}},
		{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{mem: resource.MustParse("2048")}}},
		{},
	}}}
	if got := podRequest(pod, mem); got != 3072 {
		t.Errorf("podRequest = %d, want 3072", got)
	}
}

func TestReplicaOf(t *testing.T) {
	keys := annotations.DefaultKeys()
	assignment, err := annotations.EncodeAssignment(annotations.Assignment{Node: "n1", Containers: []annotations.ContainerAssignment{{
		Name: "main", Devices: []annotations.AssignedDevice{{UUID: "GPU-1", SlotID: "GPU-1::0", MemoryMiB: 40960}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	allocated, err := annotations.EncodeAllocated(annotations.Allocated{Containers: []string{"main"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		pod           corev1.Pod
		wantReady     bool
		wantWhy       string
		wantAssigned  bool
		wantAssignErr bool
		wantAllocated int
	}{
		{name: "running, placed and served", pod: corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "r", Annotations: map[string]string{keys.Assignment: assignment, keys.Allocated: allocated}},
			Spec:       corev1.PodSpec{NodeName: "n1"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue},
			}},
		}, wantReady: true, wantAssigned: true, wantAllocated: 1},
		{name: "pending with the scheduler's reason", pod: corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/2 nodes are available: no GPU with 40960 MiB free"},
			}},
		}, wantWhy: "40960 MiB free"},
		{name: "failed at admission", pod: corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "f"},
			Status:     corev1.PodStatus{Phase: corev1.PodFailed, Reason: ReasonAdmissionFailed, Message: "Allocate failed"},
		}, wantWhy: "Allocate failed"},
		{name: "undecodable assignment", pod: corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "u", Annotations: map[string]string{keys.Assignment: "{not json", keys.Allocated: "nor this"}},
		}, wantAssignErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := replicaOf("c", &tt.pod, keys)
			if r.Ready != tt.wantReady || !strings.Contains(r.Why, tt.wantWhy) || (r.Assignment != nil) != tt.wantAssigned ||
				(r.AssignmentErr != nil) != tt.wantAssignErr || len(r.Allocated) != tt.wantAllocated {
				t.Errorf("replicaOf = %+v", r)
			}
		})
	}
}

func TestEventually(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := Eventually(ctx, time.Minute, "three calls", func(context.Context) (bool, string, error) {
		calls++
		return calls == 3, "calls so far", nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Eventually = %v after %d calls, want nil after 3", err, calls)
	}
	err = Eventually(ctx, 300*time.Millisecond, "never", func(context.Context) (bool, string, error) { return false, "stuck at 7", nil })
	if err == nil || !strings.Contains(err.Error(), "wait for never") || !strings.Contains(err.Error(), "stuck at 7") {
		t.Errorf("timeout error = %v, want what was awaited and the last state", err)
	}
	boom := errors.New("boom")
	err = Eventually(ctx, time.Minute, "failing", func(context.Context) (bool, string, error) { return false, "", boom })
	if !errors.Is(err, boom) {
		t.Errorf("error = %v, want boom", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	err = Eventually(cancelled, time.Minute, "cancelled", func(context.Context) (bool, string, error) { return false, "", nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

// TestDescribeConditions renders what a failure message shows of a binding.
func TestDescribeConditions(t *testing.T) {
	got := DescribeConditions([]metav1.Condition{{Type: "Scheduled", Status: metav1.ConditionFalse, Reason: "NoClusterFit", Message: "0 available"}})
	if got != "Scheduled=False (NoClusterFit: 0 available)" {
		t.Errorf("DescribeConditions = %q", got)
	}
	if got := DescribeConditions(nil); got != "none" {
		t.Errorf("DescribeConditions(nil) = %q", got)
	}
}
