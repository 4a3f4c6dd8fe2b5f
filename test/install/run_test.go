package install_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tessera-gpu/tessera/deploy/chart"
	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/test/e2e/env"
	"github.com/tessera-gpu/tessera/test/install"
)

// runComponents installs the chart on the member and on Karmada, starts
// every component from the installed manifests as its ServiceAccount, and
// checks the whole path: Karmada places a GPU Deployment on the member by
// the estimator's answer, reached through the chart's Service; the
// member's chart scheduler places its pod; the node agent serves it with
// its limits; the fleet page shows it; a replaced node agent keeps the
// running container and serves a new pod; and a rule removed from the
// node agent's ClusterRole fails its run with the verb and resource named.
func runComponents(ctx context.Context, t *testing.T, s *servers, dir string, member, karmada *install.Installer) {
	d := newNodeDirs(dir)
	memberObjs := installRelease(ctx, t, member, memberRelease(d))
	readerAccess(ctx, t, s, dir)
	karmadaObjs := installRelease(ctx, t, karmada, karmadaRelease())
	dashKubeconfig := filepath.Join(dir, "tessera-dashboard.kubeconfig")
	if err := install.ServiceAccountKubeconfig(ctx, s.karmada.RESTConfig(), "karmada-system", "tessera-dashboard", dashKubeconfig); err != nil {
		t.Fatal(err)
	}
	storeKubeconfig(ctx, t, s, dashboardSecret, dashKubeconfig)

	cfg := config.Default()
	node := startNode(ctx, t, s, d, cfg.Resources.VGPU)
	memberContainers, err := install.Containers(memberObjs)
	if err != nil {
		t.Fatal(err)
	}
	karmadaContainers, err := install.Containers(karmadaObjs)
	if err != nil {
		t.Fatal(err)
	}
	ml := install.Launcher{Admin: s.member.Client(), Dir: filepath.Join(dir, "components"), Bins: s.binaries()}
	kl := install.Launcher{Admin: s.karmada.Client(), Dir: filepath.Join(dir, "components"), Bins: s.binaries()}
	var running []*install.Running
	launch := func(l install.Launcher, cs []install.Container, workload, container, kubeconfig, identity string, extenderPort int) *install.Running {
		t.Helper()
		c, err := install.FindContainer(cs, workload, container)
		if err != nil {
			t.Fatal(err)
		}
		r, err := l.Launch(ctx, c, loopbackOverrides(t, container, kubeconfig, extenderPort))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Stop(stopGrace) })
		running = append(running, r)
		t.Logf("%s runs as %s: %s\n    loopback overrides: %s", c.Name(), identity, strings.Join(r.Argv, " "), strings.Join(r.Overridden, "; "))
		return r
	}
	// launchReady launches a container and waits for its probe at
	// probeAddr. The ports loopbackOverrides found free are closed until
	// the process binds them, and another server can take one meanwhile
	// (other test packages start servers meanwhile): a start that
	// exits with "address already in use" is launched again with fresh
	// ports. extenderPort, when set, picks the extender's port per try.
	launchReady := func(l install.Launcher, cs []install.Container, workload, container, kubeconfig, identity string,
		extenderPort func() int, probeAddr func(*install.Running) string) *install.Running {
		t.Helper()
		for attempt := 1; ; attempt++ {
			port := 0
			if extenderPort != nil {
				port = extenderPort()
			}
			r := launch(l, cs, workload, container, kubeconfig, identity, port)
			err := probeReady(ctx, r, probeAddr(r))
			if err == nil {
				return r
			}
			if !strings.Contains(r.Process.LogTail(), "address already in use") || attempt == portAttempts {
				t.Fatalf("%v\n%s", err, denialsOf(r))
			}
			r.Stop(stopGrace)
			running = running[:len(running)-1]
			t.Logf("%s lost a port race, launching it again with other ports: %v", container, err)
		}
	}
	flagAddr := func(flag string) func(*install.Running) string {
		return func(r *install.Running) string { return flagValue(r.Argv, flag) }
	}
	saKubeconfig := func(sa string) string {
		path := filepath.Join(dir, sa+".kubeconfig")
		if err := install.ServiceAccountKubeconfig(ctx, s.member.RESTConfig(), "kube-system", sa, path); err != nil {
			t.Fatal(err)
		}
		return path
	}

	// The node agent, as the DaemonSet's ServiceAccount.
	agentSA := install.Identity("kube-system", "tessera-node-agent")
	agentKubeconfig := saKubeconfig("tessera-node-agent")
	agent := launchReady(ml, memberContainers, "DaemonSet/kube-system/tessera-node-agent", "node-agent", agentKubeconfig, agentSA, nil, flagAddr("health-addr"))
	waitAllocatable(ctx, t, s, cfg, 2)

	// The GPU scheduler: kube-scheduler and the extender, one ServiceAccount.
	schedSA := install.Identity("kube-system", "tessera-scheduler")
	schedKubeconfig := saKubeconfig("tessera-scheduler")
	extender := launchReady(ml, memberContainers, "Deployment/kube-system/tessera-scheduler", "extender", schedKubeconfig, schedSA,
		func() int { return freePort(t) }, flagAddr("health-probe-bind-address"))
	// The port the extender serves, bound by now, is the scheduler's to call.
	_, bound, _ := strings.Cut(flagValue(extender.Argv, "bind-address"), "127.0.0.1:")
	extenderPort, err := strconv.Atoi(bound)
	if err != nil {
		t.Fatalf("extender's --bind-address %q: %v", flagValue(extender.Argv, "bind-address"), err)
	}
	launchReady(ml, memberContainers, "Deployment/kube-system/tessera-scheduler", "kube-scheduler", schedKubeconfig, schedSA,
		func() int { return extenderPort }, func(r *install.Running) string { return "127.0.0.1:" + flagValue(r.Argv, "secure-port") })

	// The estimator, on the Karmada side, reading the member as the reader
	// identity of its mounted kubeconfig.
	estimator := launchReady(kl, karmadaContainers, "Deployment/karmada-system/tessera-estimator-"+memberName, "estimator", "",
		install.Identity("kube-system", readerAccount)+" (in "+memberName+", through the Secret "+memberSecret+")", nil, flagAddr("health-probe-bind-address"))
	var estimatorPort int
	fmt.Sscan(flagValue(estimator.Argv, "server-port"), &estimatorPort)
	estimatorService(ctx, t, s, "karmada-scheduler-estimator-"+memberName, estimatorPort)
	if err := s.karmada.JoinMember(ctx, memberName, s.member); err != nil {
		t.Fatal(err)
	}

	// A GPU Deployment through Karmada to the member's chart scheduler.
	first := propagate(ctx, t, s, cfg, "first", 1)
	checkServed(ctx, t, s, node, cfg, first, 8192)
	if n := estimatorAnswers(ctx, t, estimator); n == 0 {
		t.Errorf("karmada-scheduler never asked the estimator through the chart's Service (log %s)", estimator.Log())
	} else {
		t.Logf("the estimator answered karmada-scheduler %d times through Service karmada-system/karmada-scheduler-estimator-%s", n, memberName)
	}

	// The fleet page, as the dashboard's identity in the Karmada API server.
	dash := launchReady(kl, karmadaContainers, "Deployment/karmada-system/tessera-dashboard", "dashboard", "",
		install.Identity("karmada-system", "tessera-dashboard")+" (in karmada-apiserver, through the Secret "+dashboardSecret+")", nil, flagAddr("listen"))
	checkFleetPage(ctx, t, dash, "http://"+flagValue(dash.Argv, "listen"), first)
	checkFleetCLI(ctx, t, s, dashKubeconfig, first)

	// Upgrade: the member's release with changed values (helm upgrade),
	// and the node agent replaced by a process of the new DaemonSet on the
	// same state directory, as its rolling update does.
	upgraded := memberRelease(d)
	upgraded.Values = chart.MergeValues(upgraded.Values, map[string]any{"nodeAgent": map[string]any{"logVerbosity": 3}})
	upgradedObjs := installRelease(ctx, t, member, upgraded)
	upgradedContainers, err := install.Containers(upgradedObjs)
	if err != nil {
		t.Fatal(err)
	}
	agent.Stop(stopGrace)
	agent = launchReady(ml, upgradedContainers, "DaemonSet/kube-system/tessera-node-agent", "node-agent", agentKubeconfig, agentSA, nil, flagAddr("health-addr"))
	if v := flagValue(agent.Argv, "v"); v != "3" {
		t.Fatalf("the upgraded node agent runs with --v=%s, want the upgrade's 3", v)
	}
	checkServed(ctx, t, s, node, cfg, first, 8192) // its limits and region are still there
	second := propagate(ctx, t, s, cfg, "second", 1)
	checkServed(ctx, t, s, node, cfg, second, 8192)

	for _, r := range running {
		if err := r.CheckPermissions(); err != nil {
			t.Error(err)
		}
	}

	// Forbidden: a rule cut from a component's ClusterRole fails its run.
	// The agent publishes vgpu-memory again only when it changes: make it.
	dropMemory := func() {
		patch := fmt.Sprintf(`{"status":{"capacity":{%q:null},"allocatable":{%q:null}}}`, cfg.Resources.Memory, cfg.Resources.Memory)
		if _, err := s.member.Client().CoreV1().Nodes().Patch(ctx, nodeName, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []deniedCase{
		{role: "tessera-node-agent", resource: "nodes/status", verb: "patch", identity: agentSA, stop: agent, before: dropMemory,
			launch: func() *install.Running {
				return launch(ml, memberContainers, "DaemonSet/kube-system/tessera-node-agent", "node-agent", agentKubeconfig, agentSA, 0)
			}},
		// Not list: client-go's informers stream their first list through a
		// watch (WatchListClient) from a 1.35 API server.
		{role: "tessera-estimator", resource: "replicasets", verb: "watch", identity: install.Identity("kube-system", readerAccount), stop: estimator,
			launch: func() *install.Running {
				return launch(kl, karmadaContainers, "Deployment/karmada-system/tessera-estimator-"+memberName, "estimator", "", install.Identity("kube-system", readerAccount), 0)
			}},
	} {
		checkDenied(ctx, t, member, install.Find(memberObjs, "ClusterRole", c.role), c)
		running = running[:len(running)-1] // its denial was the point
	}
	checkRejectedFlag(ctx, t, ml, memberContainers, agentKubeconfig)

	// Stop every component before uninstalling, as the pods go with their
	// workloads: a component left running would log forbidden answers once
	// its RBAC is gone.
	for _, r := range running {
		r.Stop(stopGrace)
	}
	for _, in := range []struct {
		in   *install.Installer
		objs []*unstructured.Unstructured
	}{{member, memberObjs}, {karmada, karmadaObjs}} {
		if err := in.in.Uninstall(ctx, in.objs, uninstallTimeout); err != nil {
			t.Error(err)
		}
	}
}

// installRelease renders and applies a release and logs what it applied.
func installRelease(ctx context.Context, t *testing.T, in *install.Installer, r install.Release) []*unstructured.Unstructured {
	t.Helper()
	objs, err := install.Render(r)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := in.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("installed on %s (values %v):\n    %s", in.Where, r.ValuesFiles, describe(applied))
	return objs
}

// waitAllocatable waits until the Node offers gpus GPUs' vgpu slots.
func waitAllocatable(ctx context.Context, t *testing.T, s *servers, cfg config.Config, gpus int64) {
	t.Helper()
	err := env.Eventually(ctx, startTimeout, "the node's vGPU slots", func(ctx context.Context) (bool, string, error) {
		n, err := s.member.Client().CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		q := n.Status.Allocatable[corev1.ResourceName(cfg.Resources.VGPU)]
		m := n.Status.Allocatable[corev1.ResourceName(cfg.Resources.Memory)]
		return q.Value() == gpus*int64(cfg.Node.SplitCount) && !m.IsZero(), fmt.Sprintf("vgpu %s, memory %s", q.String(), m.String()), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// propagate creates a one-GPU Deployment (8 GiB) for the chart's
// scheduler on Karmada with a policy for the member, and returns the name
// of its pod once Karmada has placed it there and it runs.
func propagate(ctx context.Context, t *testing.T, s *servers, cfg config.Config, name string, replicas int32) string {
	t.Helper()
	w := env.Workload{Namespace: "default", Name: name, Replicas: replicas, Request: env.GPURequest{GPUs: 1, MemoryMiB: 8192}}
	d := w.Deployment(cfg.Resources)
	d.Spec.Template.Spec.SchedulerName = "tessera-scheduler"
	if _, err := s.karmada.Client().AppsV1().Deployments(w.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.karmada.KarmadaClient().PolicyV1alpha1().PropagationPolicies(w.Namespace).Create(ctx, w.PropagationPolicy([]string{memberName}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod string
	err := env.Eventually(ctx, startTimeout, "a Running pod of "+name+" in "+memberName, func(ctx context.Context) (bool, string, error) {
		pods, err := s.member.Client().CoreV1().Pods(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: env.AppLabel + "=" + name})
		if err != nil || len(pods.Items) == 0 {
			return false, fmt.Sprintf("no pod yet (%v)", err), nil
		}
		p := pods.Items[0]
		pod = p.Name
		return p.Status.Phase == corev1.PodRunning, fmt.Sprintf("%s %s on %q %v", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.Conditions), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// checkServed checks that the pod's container holds its limits file with
// memoryMiB, as the interception library reads it.
func checkServed(ctx context.Context, t *testing.T, s *servers, node *fakeNode, cfg config.Config, pod string, memoryMiB int64) {
	t.Helper()
	p, err := s.member.Client().CoreV1().Pods("default").Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	allocs, rejected, seen := node.admission(string(p.UID))
	if !seen || rejected != "" || len(allocs) != 1 {
		t.Fatalf("%s: admission seen=%t rejected=%q allocations=%d", pod, seen, rejected, len(allocs))
	}
	err = env.Eventually(ctx, startTimeout, pod+"'s limits", func(ctx context.Context) (bool, string, error) {
		l, ok, err := deviceplugin.ContainerLimits(allocs[0].Response)
		if err != nil || !ok {
			return false, fmt.Sprintf("written %t (%v)", ok, err), nil
		}
		if l.Refused != "" || len(l.Devices) != 1 || l.Devices[0].MemoryMiB != memoryMiB {
			return false, "", fmt.Errorf("limits %+v, want one GPU with %d MiB", l, memoryMiB)
		}
		return true, "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The container's usage region, as the interception library maps it.
	region := filepath.Join(node.state, "regions", string(p.UID), "main")
	if _, err := os.Stat(region); err != nil {
		t.Fatalf("%s: region: %v", pod, err)
	}
	t.Logf("%s runs on %s with its limits (%d MiB on one GPU) and its region %s", pod, p.Spec.NodeName, memoryMiB, region)
}

// estimatorAnswers scrapes how many estimates the estimator served.
func estimatorAnswers(ctx context.Context, t *testing.T, r *install.Running) int {
	t.Helper()
	body := get(ctx, t, "http://"+flagValue(r.Argv, "metrics-bind-address")+"/metrics")
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, "_request_duration_seconds_count") && strings.Contains(line, `code="OK"`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil {
				n += int(v)
			}
		}
	}
	return n
}

// checkFleetPage checks that the fleet page's JSON shows the member and the pod.
func checkFleetPage(ctx context.Context, t *testing.T, r *install.Running, base, pod string) {
	t.Helper()
	err := env.Eventually(ctx, startTimeout, "the fleet page to show "+pod, func(ctx context.Context) (bool, string, error) {
		body := get(ctx, t, base+"/api/fleet")
		return strings.Contains(body, memberName) && strings.Contains(body, pod), body, nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, denialsOf(r))
	}
}

// checkFleetCLI runs `tessera fleet` as the dashboard's identity: the
// read-only ClusterRole that the chart gives the page is enough for the CLI.
func checkFleetCLI(ctx context.Context, t *testing.T, s *servers, kubeconfig, pod string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, s.binaries()["tessera"], "--kubeconfig", kubeconfig, "pods").CombinedOutput()
	if err != nil || !strings.Contains(string(out), pod) {
		t.Fatalf("tessera pods as %s: %v\n%s", install.Identity("karmada-system", "tessera-dashboard"), err, out)
	}
	if ds := install.ParseDenials(string(out)); len(ds) > 0 {
		t.Fatalf("tessera pods was forbidden %v", ds)
	}
	t.Logf("tessera pods runs as %s and lists %s", install.Identity("karmada-system", "tessera-dashboard"), pod)
}

func get(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func typesUID(s string) types.UID { return types.UID(s) }

func fromUnstructured(u *unstructured.Unstructured, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into)
}

// toUnstructuredRules encodes RBAC rules as a ClusterRole's "rules".
func toUnstructuredRules(rules []rbacv1.PolicyRule) ([]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&rbacv1.ClusterRole{Rules: rules})
	if err != nil {
		return nil, err
	}
	r, _ := m["rules"].([]any)
	return r, nil
}
