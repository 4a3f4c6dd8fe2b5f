package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

const thing corev1.ResourceName = "example.com/thing"

// skipUnlessServers skips under -short: these tests build (once, minutes)
// and run real etcd and Kubernetes servers.
func skipUnlessServers(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped under -short: starts real etcd, kube-apiserver, kube-controller-manager and kube-scheduler " +
			"built by test/tools/build-servers.sh (about 6 minutes on a cold cache)")
	}
}

// TestMemberSchedulesByExtendedResource starts a member with
// kube-controller-manager and kube-scheduler (configured with a custom
// profile name and an extender on 127.0.0.1), adds two fake nodes with
// example.com/thing: 4, and checks that the real scheduler accounts for the
// resource: two pods asking for 3 land on different nodes, and a third one
// fits nowhere. Then it stops the cluster and checks nothing of it is left.
func TestMemberSchedulesByExtendedResource(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	paths, err := Binaries(ctx, ComponentEtcd, ComponentKubernetes)
	if err != nil {
		t.Fatal(err)
	}

	extender := &recordingExtender{}
	extenderServer := httptest.NewServer(extender) // binds 127.0.0.1
	defer extenderServer.Close()
	const schedulerName = "tessera-test-scheduler"
	m, err := StartMember(ctx, Options{
		Name: "sched", Paths: paths, ControllerManager: true, Scheduler: true, T: t,
		SchedulerConfig: fmt.Sprintf(`
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: %s
extenders:
- urlPrefix: %s
  filterVerb: filter
  managedResources:
  - name: %s
`, schedulerName, extenderServer.URL, thing),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	client := m.Client()

	for _, name := range []string{"node-a", "node-b"} {
		node, err := AddNode(ctx, client, name, corev1.ResourceList{thing: resource.MustParse("4")}, map[string]string{"tier": "test"})
		if err != nil {
			t.Fatal(err)
		}
		if got := node.Status.Allocatable[thing]; got.Value() != 4 || node.Labels["tier"] != "test" || len(node.Spec.Taints) != 0 {
			t.Fatalf("node %s: allocatable %s=%s, labels %v, taints %v; want 4, tier=test, no taints", name, thing, got.String(), node.Labels, node.Spec.Taints)
		}
	}

	// One at a time, so that the second is placed knowing the first.
	nodes := map[string]string{}
	for _, name := range []string{"first", "second"} {
		if _, err := client.CoreV1().Pods("default").Create(ctx, thingPod(name, schedulerName, 3), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		nodes[name] = waitBound(ctx, t, client, name)
	}
	if nodes["first"] == nodes["second"] {
		t.Fatalf("both pods asking for 3 of %s were bound to %s, which has 4", thing, nodes["first"])
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, thingPod("third", schedulerName, 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if msg := waitUnschedulable(ctx, t, client, "third"); !strings.Contains(msg, "Insufficient "+string(thing)) {
		t.Fatalf("third pod is unschedulable for another reason: %q", msg)
	}
	if seen := extender.seen(); !slices.Contains(seen, "first") || !slices.Contains(seen, "second") {
		t.Fatalf("extender on %s saw pods %v, want first and second: the scheduler configuration was not applied", extenderServer.URL, seen)
	}
	// kube-controller-manager's service account controller creates "default".
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("kube-controller-manager never created service account default/default: %v", err)
	}

	assertLoopbackListeners(t, m.cp.processes)
	processes := slices.Clone(m.cp.processes)
	dir := m.Dir()
	m.Stop()
	for _, p := range processes {
		if p.alive() {
			t.Errorf("%s (pid %d) is still alive after Stop", p.name, p.pid)
		}
	}
	if left := processesMentioning(t, dir); len(left) > 0 {
		t.Errorf("processes still running with %s on their command line: %v", dir, left)
	}
	if _, err := os.Stat(dir); !t.Failed() && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop of a passing test left %s behind (stat: %v)", dir, err)
	}
}

// TestStartMemberFailureNamesComponentAndLog checks that a component that
// cannot start yields an error naming it and quoting its log, that the logs
// are kept, and that what had started (etcd) is stopped.
func TestStartMemberFailureNamesComponentAndLog(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	paths, err := Binaries(ctx, ComponentEtcd, ComponentKubernetes)
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	_, err = StartMember(ctx, Options{Name: "broken", Paths: paths, Dir: parent, T: t, APIServerArgs: []string{"--no-such-flag"}})
	if err == nil {
		t.Fatal("StartMember with an unknown kube-apiserver flag succeeded")
	}
	for _, want := range []string{"kube-apiserver", "exited before it was ready", "unknown flag: --no-such-flag", "kube-apiserver.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(parent, "tessera-broken-*"))
	if len(dirs) != 1 {
		t.Fatalf("want the failed cluster's directory kept under %s, found %v", parent, dirs)
	}
	for _, log := range []string{"etcd.log", "kube-apiserver.log"} {
		if _, err := os.Stat(filepath.Join(dirs[0], log)); err != nil {
			t.Errorf("log of the failed start: %v", err)
		}
	}
	if left := processesMentioning(t, dirs[0]); len(left) > 0 {
		t.Errorf("processes still running after a failed start: %v", left)
	}
}

func thingPod(name, schedulerName string, count int64) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			SchedulerName: schedulerName,
			Containers: []corev1.Container{{
				Name:  "main",
				Image: "example.invalid/never-pulled", // no kubelet will run it
				Resources: corev1.ResourceRequirements{
					Limits: corev1.ResourceList{thing: *resource.NewQuantity(count, resource.DecimalSI)},
				},
			}},
		},
	}
}

// waitBound returns the node a pod is bound to, failing after a minute.
func waitBound(ctx context.Context, t *testing.T, client kubernetes.Interface, name string) string {
	t.Helper()
	var node string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = pod.Spec.NodeName
		return node != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s was not bound to a node: %v", name, err)
	}
	return node
}

// waitUnschedulable returns the scheduler's message once it gave up on a pod.
func waitUnschedulable(ctx context.Context, t *testing.T, client kubernetes.Interface, name string) string {
	t.Helper()
	var msg string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if pod.Spec.NodeName != "" {
			return false, fmt.Errorf("pod %s was bound to %s", name, pod.Spec.NodeName)
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				msg = c.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s was not reported unschedulable: %v", name, err)
	}
	return msg
}

// recordingExtender is a scheduler extender that keeps every node and
// records which pods it was asked to filter.
type recordingExtender struct {
	mu   sync.Mutex
	pods []string
}

func (e *recordingExtender) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var args extenderv1.ExtenderArgs
	if err := json.NewDecoder(r.Body).Decode(&args); err != nil || args.Pod == nil {
		http.Error(w, fmt.Sprintf("decode ExtenderArgs: %v", err), http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	e.pods = append(e.pods, args.Pod.Name)
	e.mu.Unlock()
	_ = json.NewEncoder(w).Encode(extenderv1.ExtenderFilterResult{Nodes: args.Nodes, NodeNames: args.NodeNames})
}

func (e *recordingExtender) seen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.pods)
}

// processesMentioning lists running processes whose command line contains
// s: every server of a cluster names the cluster's directory in its flags.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, path := range cmdlines {
		data, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(data), s) {
			continue // gone meanwhile, or not ours
		}
		found = append(found, filepath.Base(filepath.Dir(path))+": "+strings.ReplaceAll(string(data), "\x00", " "))
	}
	return found
}

// assertLoopbackListeners checks, from /proc, that every TCP socket of the
// running processes is on loopback (listening on 127.0.0.1, connected only
// to loopback addresses), and that each process listens somewhere (so the
// check cannot pass by finding no sockets at all).
func assertLoopbackListeners(t *testing.T, processes []*process) {
	t.Helper()
	sockets := map[string]tcpSocket{} // by inode
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 {
				continue
			}
			sockets[fields[9]] = tcpSocket{local: fields[1], remote: fields[2], listening: fields[3] == "0A"}
		}
	}
	for _, p := range processes {
		if done, _ := p.exited(); done {
			continue
		}
		fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", p.pid))
		if err != nil {
			t.Fatal(err)
		}
		listening := 0
		for _, fd := range fds {
			target, err := os.Readlink(fd)
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			s, ok := sockets[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")]
			if !ok {
				continue // not TCP
			}
			if !loopbackHex(s.local) || (!s.listening && !loopbackHex(s.remote)) {
				t.Errorf("%s (pid %d) has a TCP socket off loopback: local %s remote %s", p.name, p.pid, s.local, s.remote)
			}
			if s.listening {
				listening++
			}
		}
		if listening == 0 {
			t.Errorf("%s (pid %d) listens on no TCP socket: the loopback check saw nothing", p.name, p.pid)
		}
	}
}

type tcpSocket struct {
	local, remote string // /proc/net/tcp* hex ADDRESS:PORT
	listening     bool
}

// loopbackHex says whether a /proc/net/tcp{,6} address is 127.0.0.0/8, ::1
// or an IPv4-mapped 127.x address.
func loopbackHex(addrPort string) bool {
	addr, _, _ := strings.Cut(addrPort, ":")
	switch len(addr) {
	case 8: // IPv4, little-endian: 127.x.y.z ends in 7F
		return strings.HasSuffix(addr, "7F")
	case 32:
		return addr == "00000000000000000000000001000000" ||
			(strings.HasPrefix(addr, "0000000000000000FFFF0000") && strings.HasSuffix(addr, "7F"))
	}
	return false
}
