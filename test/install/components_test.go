package install_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
	"sigs.k8s.io/yaml"

	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/test/cluster"
	"github.com/tessera-gpu/tessera/test/e2e/env"
	"github.com/tessera-gpu/tessera/test/install"
)

// Names a person chooses when installing (docs/operations.md).
const (
	nodeName        = memberName + "-node-1"
	readerAccount   = "tessera-estimator-reader" // examples/member-estimator-access.yaml
	memberSecret    = memberName + "-kubeconfig" // examples/karmada-host.yaml
	dashboardSecret = "tessera-dashboard-kubeconfig"
	stopGrace       = 10 * time.Second
)

// nodeDirs are the node's host paths, set through the chart's config.node
// values as a person with another kubelet root directory would.
type nodeDirs struct{ devicePlugins, state, podResources, hook string }

func newNodeDirs(dir string) nodeDirs {
	n := filepath.Join(dir, "node")
	return nodeDirs{devicePlugins: filepath.Join(n, "dp"), state: filepath.Join(n, "state"),
		podResources: filepath.Join(n, "pr"), hook: filepath.Join(n, "lib")}
}

// memberRelease is the member's install: the chart's defaults, the
// estimator's read access (the example file), Karmada's proxy's for the
// dashboard's identity (dashboard.memberAccess), mock GPUs
// (config.node.gpuBackend "mock", for trials without GPUs) and the node's
// host paths.
func memberRelease(d nodeDirs) install.Release {
	return install.Release{Namespace: "kube-system", ValuesFiles: []string{"examples/member-estimator-access.yaml"},
		Values: map[string]any{"dashboard": map[string]any{"memberAccess": map[string]any{"enabled": true}}, "config": map[string]any{"node": map[string]any{
			"gpuBackend":         "mock",
			"mock":               map[string]any{"gpus": []any{map[string]any{"model": "A100-SXM4-40GB", "count": 2}}},
			"devicePluginDir":    d.devicePlugins,
			"stateDir":           d.state,
			"podResourcesSocket": filepath.Join(d.podResources, "kubelet.sock"),
			"hookLibrary":        filepath.Join(d.hook, "libtessera-hook.so"),
		}}}}
}

// karmadaRelease is the Karmada side: the host values with this member
// only, no estimator TLS (karmada-scheduler here runs without estimator
// certificates), and the dashboard with its identity.
func karmadaRelease() install.Release {
	return install.Release{Namespace: "karmada-system", ValuesFiles: []string{"examples/karmada-host.yaml"},
		Values: map[string]any{
			"estimator": map[string]any{"tlsSecret": "", "replicas": 1,
				"clusters": []any{map[string]any{"name": memberName, "kubeconfigSecret": memberSecret}}},
			"dashboard": map[string]any{"enabled": true, "kubeconfigSecret": dashboardSecret,
				"karmadaAccess": map[string]any{"enabled": true}},
		}}
}

// loopbackOverrides are the only changes to the rendered command lines and
// files: loopback addresses instead of the pod's, a kubeconfig holding the
// ServiceAccount's token instead of the in-cluster one, the downward API's
// node name, and kube-scheduler's configuration pointed at both. Every
// other argument is the chart's.
func loopbackOverrides(t *testing.T, container, kubeconfig string, extenderPort int) install.Overrides {
	switch container {
	case "node-agent":
		return install.Overrides{
			FieldRefs: map[string]string{"spec.nodeName": nodeName},
			Flags: map[string]string{"kubeconfig": kubeconfig, "health-addr": loopback(t), "metrics-addr": loopback(t),
				// The gpu-usage report sooner than 30s, so the fleet page shows use.
				"usage-report-interval": "2s"},
		}
	case "extender":
		return install.Overrides{Flags: map[string]string{"kubeconfig": kubeconfig,
			"bind-address":         fmt.Sprintf("127.0.0.1:%d", extenderPort),
			"metrics-bind-address": loopback(t), "health-probe-bind-address": loopback(t)}}
	case "kube-scheduler":
		return install.Overrides{
			Flags: map[string]string{"bind-address": "127.0.0.1", "secure-port": fmt.Sprint(freePort(t)),
				"authentication-kubeconfig": kubeconfig, "authorization-kubeconfig": kubeconfig},
			Files: map[string]func([]byte) ([]byte, error){
				"/etc/tessera-scheduler/scheduler-config.yaml": func(data []byte) ([]byte, error) {
					return schedulerConfig(data, kubeconfig, extenderPort)
				}},
		}
	case "estimator":
		// Its kubeconfig is the chart's: the mounted Secret.
		return install.Overrides{Flags: map[string]string{"server-port": fmt.Sprint(freePort(t)), "grpc-bind-address": "127.0.0.1",
			"metrics-bind-address": loopback(t), "health-probe-bind-address": loopback(t)}}
	case "dashboard":
		return install.Overrides{Flags: map[string]string{"listen": loopback(t)}}
	}
	t.Fatalf("no loopback overrides for container %q", container)
	return install.Overrides{}
}

// schedulerConfig points the chart's kube-scheduler configuration at the
// ServiceAccount's kubeconfig and the extender's loopback port.
func schedulerConfig(data []byte, kubeconfig string, extenderPort int) ([]byte, error) {
	doc := map[string]any{}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	doc["clientConnection"] = map[string]any{"kubeconfig": kubeconfig}
	exts, _ := doc["extenders"].([]any)
	if len(exts) != 1 {
		return nil, fmt.Errorf("the chart's scheduler configuration has %d extenders, want 1", len(exts))
	}
	exts[0].(map[string]any)["urlPrefix"] = fmt.Sprintf("http://127.0.0.1:%d", extenderPort)
	return yaml.Marshal(doc)
}

// flagValue is the value of --name in argv.
func flagValue(argv []string, name string) string {
	for _, a := range argv {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// probeClient probes as the kubelet does: HTTPS without verifying the
// serving certificate.
var probeClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
	Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // as the kubelet's probes

// portAttempts is how many times a component that lost a port race is
// launched (launchReady in runComponents).
const portAttempts = 3

// probeReady waits until the container's own probe (path and scheme from
// the manifest) answers 200 at addr, or fails when the process exits: a
// flag the binary rejects ends it at once.
func probeReady(ctx context.Context, r *install.Running, addr string) error {
	url, err := r.Container.ProbeURL(addr)
	if err != nil {
		return err
	}
	return env.Eventually(ctx, startTimeout, r.Container.Name()+" at "+url, func(ctx context.Context) (bool, string, error) {
		if done, err := r.Process.Exited(); done {
			return false, "", fmt.Errorf("exited (%v); log %s:\n%s", err, r.Log(), r.Process.LogTail())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := probeClient.Do(req)
		if err != nil {
			return false, err.Error(), nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status, nil
	})
}

// denialsOf says what the API server refused the process, if anything.
func denialsOf(r *install.Running) string {
	if err := r.CheckPermissions(); err != nil {
		return err.Error()
	}
	return ""
}

// readerAccess creates the estimator's identity in the member (the subject
// of examples/member-estimator-access.yaml) and stores a kubeconfig with its
// token in the Karmada control plane, where the estimator's Deployment
// mounts it (docs/operations.md, "Joining the estimator to Karmada").
func readerAccess(ctx context.Context, t *testing.T, s *servers, dir string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: readerAccount, Namespace: "kube-system"}}
	if _, err := s.member.Client().CoreV1().ServiceAccounts("kube-system").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, readerAccount+".kubeconfig")
	if err := install.ServiceAccountKubeconfig(ctx, s.member.RESTConfig(), "kube-system", readerAccount, path); err != nil {
		t.Fatal(err)
	}
	storeKubeconfig(ctx, t, s, memberSecret, path)
}

// storeKubeconfig creates the Secret name (key "kubeconfig") in karmada-system.
func storeKubeconfig(ctx context.Context, t *testing.T, s *servers, name, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "karmada-system"}, Data: map[string][]byte{"kubeconfig": data}}
	if _, err := s.karmada.Client().CoreV1().Secrets("karmada-system").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// estimatorService turns the chart's karmada-scheduler-estimator-<member>
// Service into the ExternalName that karmada-scheduler resolves on loopback
// (test/cluster's SetEstimator does the same): same name, namespace, port
// and port name as the chart's, the estimator's real port as target. In a
// host cluster the chart's Service answers through the cluster's DNS instead.
func estimatorService(ctx context.Context, t *testing.T, s *servers, name string, port int) {
	t.Helper()
	services := s.karmada.Client().CoreV1().Services("karmada-system")
	svc, err := services.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the chart's estimator Service: %v", err)
	}
	svc.Spec.Type = corev1.ServiceTypeExternalName
	svc.Spec.ExternalName = "127.0.0.1"
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs, svc.Spec.Selector = "", nil, nil
	svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy, svc.Spec.InternalTrafficPolicy = nil, nil, nil
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == "grpc" {
			svc.Spec.Ports[i].TargetPort = intstr.FromInt32(int32(port))
		}
	}
	if _, err := services.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("point %s at 127.0.0.1:%d: %v", name, port, err)
	}
}

// fakeNode is the member's GPU node: the Node object and a fake kubelet
// (device-plugin registration and PodResources API) whose pods a simulated
// kubelet admits through the node agent's device plugin.
type fakeNode struct {
	state     string // config.node.stateDir
	devices   *fakekubelet.Kubelet
	admission func(uid string) ([]fakekubelet.ContainerAllocation, string, bool)
}

func startNode(ctx context.Context, t *testing.T, s *servers, d nodeDirs, vgpu string) *fakeNode {
	t.Helper()
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("512Gi"), corev1.ResourcePods: resource.MustParse("110")}
	if _, err := cluster.AddNode(ctx, s.member.Client(), nodeName, capacity, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{d.devicePlugins, d.podResources, d.state} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	devices, err := fakekubelet.Start(d.devicePlugins, vgpu)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(devices.Stop)
	if err := devices.ServePodResources(filepath.Join(d.podResources, "kubelet.sock")); err != nil {
		t.Fatal(err)
	}
	// The simulated kubelet logs to its own file, as every component does.
	logFile, err := os.Create(filepath.Join(filepath.Dir(d.state), "kubelet.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(logFile), textlogger.Verbosity(2)))
	kctx, cancel := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), logger))
	run, admission := env.SimulateKubelet(kctx, nodeName, s.member.Client(), devices, corev1.ResourceName(vgpu))
	done := make(chan error, 1)
	go func() { done <- run() }()
	t.Cleanup(func() { cancel(); <-done })
	return &fakeNode{state: d.state, devices: devices, admission: func(uid string) ([]fakekubelet.ContainerAllocation, string, bool) {
		return admission(typesUID(uid))
	}}
}

// withoutRule is the ClusterRole obj without verb on resource: the rule
// that grants it is split so that its other resources keep every verb and
// resource keeps its other verbs.
func withoutRule(obj *unstructured.Unstructured, resource, verb string) (*unstructured.Unstructured, error) {
	var role rbacv1.ClusterRole
	if err := fromUnstructured(obj, &role); err != nil {
		return nil, err
	}
	var rules []rbacv1.PolicyRule
	for _, r := range role.Rules {
		if !slices.Contains(r.Resources, resource) {
			rules = append(rules, r)
			continue
		}
		others := r.DeepCopy()
		others.Resources = slices.DeleteFunc(others.Resources, func(s string) bool { return s == resource })
		cut := r.DeepCopy()
		cut.Resources = []string{resource}
		cut.Verbs = slices.DeleteFunc(cut.Verbs, func(v string) bool { return v == verb })
		for _, k := range []*rbacv1.PolicyRule{others, cut} {
			if len(k.Resources) > 0 && len(k.Verbs) > 0 {
				rules = append(rules, *k)
			}
		}
	}
	out := obj.DeepCopy()
	encoded, err := toUnstructuredRules(rules)
	if err != nil {
		return nil, err
	}
	out.Object["rules"] = encoded
	return out, nil
}
