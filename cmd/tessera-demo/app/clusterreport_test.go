package app

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/test/e2e/env"
)

func assigned(uuid string) *annotations.Assignment {
	return &annotations.Assignment{Node: "b-1", Containers: []annotations.ContainerAssignment{{
		Name: "main", Devices: []annotations.AssignedDevice{{UUID: uuid, SlotID: uuid + "::0", MemoryMiB: 40960}},
	}}}
}

func TestReplicaDetail(t *testing.T) {
	running := env.Replica{Name: "r", Node: "b-1", Phase: corev1.PodRunning, Ready: true, Assignment: assigned("GPU-1")}
	tests := []struct {
		name    string
		rep     replicaReport
		want    []string
		notWant string
	}{
		{"served as assigned", replicaReport{Replica: running, Served: true, VisibleDevices: []string{"GPU-1"}, MemoryLimits: []string{"40960"}},
			[]string{"on b-1", "extender chose GPU-1 (40960 MiB)", "device plugin gave GPU-1, memory limit 40960 MiB"}, "NOT the GPUs"},
		{"served other GPUs than assigned", replicaReport{Replica: running, Served: true, VisibleDevices: []string{"GPU-2"}, MemoryLimits: []string{"40960"}},
			[]string{"device plugin gave GPU-2", "NOT the GPUs the extender chose"}, ""},
		{"never admitted", replicaReport{Replica: running}, []string{"not admitted through the device plugin"}, ""},
		{"pending with the extender's reason", replicaReport{Replica: env.Replica{Phase: corev1.PodPending, Why: "container main needs 1 GPU with 40960 MiB free"}},
			[]string{"needs 1 GPU with 40960 MiB free"}, "extender chose"},
		{"pending without a reason yet", replicaReport{Replica: env.Replica{Phase: corev1.PodPending}}, []string{"waiting to be scheduled"}, ""},
		{"rejected by the kubelet", replicaReport{Replica: env.Replica{Phase: corev1.PodFailed}, Rejected: "Allocate failed"}, []string{"rejected by the kubelet: Allocate failed"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rep.detail()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("detail %q lacks %q", got, w)
				}
			}
			if tt.notWant != "" && strings.Contains(got, tt.notWant) {
				t.Errorf("detail %q contains %q", got, tt.notWant)
			}
		})
	}
}

func gpuView(node string, index int, freeMiB int64) env.GPUView {
	g := vgpu.GPU{UUID: node + "-gpu", Index: index, Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, Slots: 10, Cores: 100, Healthy: true}
	return env.GPUView{Node: node, DeviceState: vgpu.DeviceState{GPU: g, Used: vgpu.Usage{MemoryMiB: 81920 - freeMiB}}}
}

// TestScenarioReport: the report shows, per cluster, the GPUs with their
// free memory before and after, both estimates and which Karmada used,
// then Karmada's decision and every replica's state; the verdict counts them.
func TestScenarioReport(t *testing.T) {
	s := scenarioReport{
		Mode: env.EstimatorStock, Workload: env.HeadlineWorkload(), Binding: "Scheduled=True (Success: ok)",
		Clusters: []clusterReport{
			{Name: "member-a", Before: []env.GPUView{gpuView("a-1", 0, 32768)}, After: []env.GPUView{gpuView("a-1", 0, 32768)},
				Estimate: env.Estimate{Used: 6, Stock: 6, Tessera: 0}, Placed: 2,
				Replicas: []replicaReport{{Replica: env.Replica{Name: "p1", Phase: corev1.PodPending, Why: "needs 1 GPU with 40960 MiB free"}}}},
			{Name: "member-b", Before: []env.GPUView{gpuView("b-1", 0, 81920)}, After: []env.GPUView{gpuView("b-1", 0, 0)},
				Estimate: env.Estimate{Used: 4, Stock: 4, TesseraErr: errors.New("down")}, Placed: 2,
				Replicas: []replicaReport{{Replica: env.Replica{Name: "r1", Node: "b-1", Phase: corev1.PodRunning, Ready: true, Assignment: assigned("b-1-gpu")},
					Served: true, VisibleDevices: []string{"b-1-gpu"}, MemoryLimits: []string{"40960"}}}},
		},
	}
	var out strings.Builder
	s.write(&out)
	writeVerdict(&out, []scenarioReport{s})
	report := out.String()
	for _, want := range []string{
		"its general estimate only",
		"4 replicas, each 1 vGPU with 40960 MiB (40 GiB)",
		"member-a: 1 GPUs on 1 node(s)",
		"Karmada's general estimate 6, Tessera's estimate 0 (Karmada does not ask Tessera here) -> Karmada goes by 6",
		"Tessera's estimate no answer",
		"Karmada's decision: member-a 2, member-b 2",
		"Pending  needs 1 GPU with 40960 MiB free",
		"Running  on b-1",
		"With Karmada's stock estimate: 2 in member-a, 2 in member-b; 1 running, 1 pending.",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	// Free memory per GPU, before and after, ends each GPU row.
	for node, want := range map[string][2]string{"a-1": {"32768", "32768"}, "b-1": {"81920", "0"}} {
		found := false
		for _, line := range strings.Split(report, "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && f[0] == node && f[1] == "0" {
				found = true
				if got := [2]string{f[len(f)-2], f[len(f)-1]}; got != want {
					t.Errorf("GPU row of %s ends with free %v, want %v: %q", node, got, want, line)
				}
			}
		}
		if !found {
			t.Errorf("no GPU row for node %s:\n%s", node, report)
		}
	}
}

func TestStamp(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "[ 0:00]"},
		{61*time.Second + 400*time.Millisecond, "[ 1:01]"},
		{19*time.Minute + 59*time.Second, "[19:59]"},
		{time.Hour + 2*time.Minute + 3*time.Second, "[1:02:03]"},
	}
	for _, tt := range tests {
		if got := stamp(tt.d); got != tt.want {
			t.Errorf("stamp(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestProgressStep: a step prints its title, then how long it took or
// that it failed and why; its end is printed once.
func TestProgressStep(t *testing.T) {
	var out strings.Builder
	p := newProgress(&out)
	clock := p.start
	p.now = func() time.Time { return clock }
	done := p.step("Build the servers")
	clock = clock.Add(90 * time.Second)
	done(nil)
	done(nil)
	fail := p.step("Start Karmada")
	fail(errors.New("etcd did not start"))
	want := "[ 0:00] ==> Build the servers\n[ 1:30]     done in 1m30s\n[ 1:30] ==> Start Karmada\n[ 1:30]     FAILED after 0s: etcd did not start\n"
	if out.String() != want {
		t.Errorf("progress printed\n%s\nwant\n%s", out.String(), want)
	}
}

// TestProgressHeartbeat: a long step is never silent; it says it is still
// going, with its title.
func TestProgressHeartbeat(t *testing.T) {
	var out syncBuilder
	p := newProgress(&out)
	p.heartbeat = 10 * time.Millisecond
	done := p.step("Build the servers")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Build the servers: still going after") {
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat within 10s:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	done(nil)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "    done in ") {
		t.Errorf("the step's last line is %q, want its duration", last)
	}
}

// syncBuilder is a strings.Builder safe for the heartbeat goroutine.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
