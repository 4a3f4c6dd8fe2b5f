package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	kubeschedulerv1 "k8s.io/kube-scheduler/config/v1"

	"github.com/tessera-gpu/tessera/deploy/chart"
	"github.com/tessera-gpu/tessera/pkg/config"
)

// TestCommittedManifestsAreFresh: deploy/manifests never drifts from the chart.
func TestCommittedManifestsAreFresh(t *testing.T) {
	for _, set := range ManifestSets() {
		t.Run(set.File, func(t *testing.T) {
			want, err := RenderSet(deployDir, set)
			if err != nil {
				t.Fatal(err)
			}
			have, err := os.ReadFile(filepath.Join(deployDir, "manifests", set.File))
			if err != nil {
				t.Fatal(err)
			}
			if string(have) != want {
				t.Errorf("deploy/manifests/%s differs from a fresh render of the chart; run deploy/render.sh", set.File)
			}
			decodeManifest(t, want) // and every committed object decodes strictly
		})
	}
}

// changedValues turns on everything that defaults leave off.
func changedValues() map[string]any {
	return map[string]any{
		"config": map[string]any{
			"annotationPrefix": "gpu.example.com",
			"resources":        map[string]any{"vgpu": "example.com/gpu-share"},
			"node": map[string]any{"stateDir": "/data/tessera", "splitCount": 4, "memoryScaling": 1.5,
				"podResourcesSocket": "/run/kubelet/pod-resources/kubelet.sock", "limitsWait": "90s"},
		},
		"imagePullSecrets": []any{map[string]any{"name": "regcred"}},
		"nodeAgent": map[string]any{
			"privileged": true, "hostNetwork": true, "runtimeClassName": "nvidia",
			"extraArgs": []any{"--kube-api-qps=50"},
			"metrics":   map[string]any{"port": 9500},
		},
		"scheduler": map[string]any{
			"replicas": 3, "schedulerName": "gpu-scheduler",
			"kubeScheduler": map[string]any{"extenderWeight": 2},
		},
		"estimator": map[string]any{
			"enabled": true, "hostNetwork": true,
			"clusters": []any{map[string]any{"name": "local"}, map[string]any{"name": "far", "kubeconfigSecret": "far-kubeconfig"}},
		},
		"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prom"}, "cluster": "member-1"},
	}
}

func TestDefaultRender(t *testing.T) {
	r := renderRelease(t, "kube-system", nil)
	if r.has("ServiceMonitor", "tessera") || r.has("Deployment", "tessera-estimator-member1") {
		t.Errorf("defaults rendered optional objects: %v", r.keys())
	}
	ds := get[*appsv1.DaemonSet](t, r, "DaemonSet", "tessera-node-agent")
	spec := ds.Spec.Template.Spec
	agent := container(t, spec, "node-agent")
	if sc := agent.SecurityContext; sc == nil || sc.Privileged == nil || *sc.Privileged ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("node agent runs with more privilege than it needs: %+v", agent.SecurityContext)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("node agent shares a host namespace by default")
	}
	checkNodeName(t, agent)
	checkBindAddress(t, spec, "node-agent", false)
	checkHostPaths(t, spec, config.Default())
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool { return tol.Key == "nvidia.com/gpu" }) ||
		spec.NodeSelector["nvidia.com/gpu.present"] != "true" {
		t.Errorf("node agent does not target GPU nodes: %v %v", spec.Tolerations, spec.NodeSelector)
	}
	cfg := tesseraConfig(t, r)
	if def := config.Default(); cfg.Keys() != def.Keys() || cfg.Resources != def.Resources || cfg.Node.StateDir != def.Node.StateDir ||
		cfg.Node.PodResourcesSocket != def.Node.PodResourcesSocket || cfg.Node.LimitsWait != def.Node.LimitsWait {
		t.Errorf("default chart config differs from pkg/config's defaults: %+v", cfg)
	}
	sched := schedulerConfig(t, r)
	if len(sched.Profiles) != 1 || sched.Profiles[0].SchedulerName == nil || *sched.Profiles[0].SchedulerName != "tessera-scheduler" {
		t.Errorf("scheduler profiles = %+v", sched.Profiles)
	}
	if le := sched.LeaderElection; le.LeaderElect == nil || !*le.LeaderElect || le.ResourceNamespace != "kube-system" || le.ResourceName != "tessera-scheduler" {
		t.Errorf("kube-scheduler leader election = %+v", le)
	}
	ext := sched.Extenders
	if len(ext) != 1 || ext[0].URLPrefix != "http://127.0.0.1:8888" || ext[0].BindVerb != "bind" || ext[0].FilterVerb != "filter" ||
		ext[0].PrioritizeVerb != "prioritize" || ext[0].Weight != 5 || !ext[0].NodeCacheCapable || ext[0].Ignorable {
		t.Errorf("extender = %+v", ext)
	}
	// Same names as pkg/config, and node totals still checked by
	// kube-scheduler (the kubelet admits against them).
	var managed []string
	for _, m := range ext[0].ManagedResources {
		managed = append(managed, m.Name)
		if m.IgnoredByScheduler {
			t.Errorf("%s is ignored by kube-scheduler", m.Name)
		}
	}
	if res := config.Default().Resources; !slices.Equal(managed, []string{res.VGPU, res.Memory, res.Cores}) {
		t.Errorf("managed resources = %v", managed)
	}
	dep := get[*appsv1.Deployment](t, r, "Deployment", "tessera-scheduler")
	ps := dep.Spec.Template.Spec
	extender := container(t, ps, "extender")
	container(t, ps, "kube-scheduler")
	// Only the leading kube-scheduler calls its own extender: a second
	// election in the extender could pick another pod and block binds.
	if !slices.Contains(extender.Args, "--bind-address=127.0.0.1:8888") || !slices.Contains(extender.Args, "--leader-elect=false") {
		t.Errorf("extender args = %v", extender.Args)
	}
}

func TestChangedValuesRender(t *testing.T) {
	r := renderRelease(t, "gpu", changedValues())
	ds := get[*appsv1.DaemonSet](t, r, "DaemonSet", "tessera-node-agent")
	spec := ds.Spec.Template.Spec
	agent := container(t, spec, "node-agent")
	if sc := agent.SecurityContext; sc.Privileged == nil || !*sc.Privileged {
		t.Error("nodeAgent.privileged=true did not make the agent privileged")
	}
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet || spec.RuntimeClassName == nil || *spec.RuntimeClassName != "nvidia" {
		t.Errorf("host network %v, DNS %s, runtime class %v", spec.HostNetwork, spec.DNSPolicy, spec.RuntimeClassName)
	}
	if !slices.Contains(agent.Args, "--kube-api-qps=50") || !slices.Contains(agent.Args, "--metrics-addr=:9500") {
		t.Errorf("agent args = %v", agent.Args)
	}
	if len(spec.ImagePullSecrets) != 1 || spec.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("image pull secrets = %v", spec.ImagePullSecrets)
	}
	checkNodeName(t, agent)
	checkBindAddress(t, spec, "node-agent", true)
	for _, name := range []string{"local", "far"} {
		est := get[*appsv1.Deployment](t, r, "Deployment", "tessera-estimator-"+name).Spec.Template.Spec
		if !est.HostNetwork || est.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
			t.Errorf("estimator %s: host network %v, DNS %s", name, est.HostNetwork, est.DNSPolicy)
		}
		checkBindAddress(t, est, "estimator", true)
	}
	cfg := tesseraConfig(t, r)
	if cfg.AnnotationPrefix != "gpu.example.com" || cfg.Resources.VGPU != "example.com/gpu-share" || cfg.Node.SplitCount != 4 || cfg.Node.MemoryScaling != 1.5 ||
		cfg.Node.PodResourcesSocket != "/run/kubelet/pod-resources/kubelet.sock" || cfg.Node.LimitsWait.Duration != 90*time.Second {
		t.Errorf("config = %+v", cfg)
	}
	checkHostPaths(t, spec, cfg) // the changed stateDir and socket are what is mounted
	sched := schedulerConfig(t, r)
	if *sched.Profiles[0].SchedulerName != "gpu-scheduler" || sched.Extenders[0].Weight != 2 ||
		sched.Extenders[0].ManagedResources[0].Name != cfg.Resources.VGPU {
		t.Errorf("scheduler config = %+v", sched)
	}
	dep := get[*appsv1.Deployment](t, r, "Deployment", "tessera-scheduler")
	if *dep.Spec.Replicas != 3 {
		t.Errorf("scheduler replicas %d, want 3", *dep.Spec.Replicas)
	}
	checkEstimators(t, r, "gpu", map[string]string{"local": "", "far": "far-kubeconfig"})
	checkServiceMonitor(t, r)
}

func TestKarmadaHostRender(t *testing.T) {
	r := renderRelease(t, "karmada-system", nil, "examples/karmada-host.yaml")
	if r.has("DaemonSet", "tessera-node-agent") || r.has("Deployment", "tessera-scheduler") {
		t.Errorf("the Karmada host render has member components: %v", r.keys())
	}
	checkEstimators(t, r, "karmada-system", map[string]string{"member1": "member1-kubeconfig", "member2": "member2-kubeconfig"})
	for _, name := range []string{"tessera-estimator-member1", "tessera-estimator-member2"} {
		spec := get[*appsv1.Deployment](t, r, "Deployment", name).Spec.Template.Spec
		if spec.HostNetwork {
			t.Errorf("%s uses the host's network by default", name)
		}
		checkBindAddress(t, spec, "estimator", false)
		args := container(t, spec, "estimator").Args
		if !slices.Contains(args, "--grpc-auth-cert-file=/etc/tessera/pki/tls.crt") || !slices.Contains(args, "--grpc-client-ca-file=/etc/tessera/pki/ca.crt") {
			t.Errorf("%s does not serve TLS: %v", name, args)
		}
	}
}

// checkEstimators: one Deployment and one Karmada-named Service per cluster,
// each Service selecting exactly its own cluster's pods on port 10352.
func checkEstimators(t *testing.T, r rendered, ns string, clusters map[string]string) {
	t.Helper()
	deps := map[string]*appsv1.Deployment{}
	for name, secret := range clusters {
		dep := get[*appsv1.Deployment](t, r, "Deployment", "tessera-estimator-"+name)
		deps[name] = dep
		args := container(t, dep.Spec.Template.Spec, "estimator").Args
		if !slices.Contains(args, "--cluster-name="+name) || !slices.Contains(args, "--server-port=10352") {
			t.Errorf("estimator %s args = %v", name, args)
		}
		usesKubeconfig := slices.Contains(args, "--kubeconfig=/etc/tessera/member/kubeconfig")
		if usesKubeconfig != (secret != "") || *dep.Spec.Template.Spec.AutomountServiceAccountToken != (secret == "") {
			t.Errorf("estimator %s: kubeconfig flag %v, automount %v, want secret %q", name, usesKubeconfig, *dep.Spec.Template.Spec.AutomountServiceAccountToken, secret)
		}
	}
	for name := range clusters {
		svc := get[*corev1.Service](t, r, "Service", "karmada-scheduler-estimator-"+name)
		if svc.Namespace != ns {
			t.Errorf("Service %s in namespace %s, want %s", svc.Name, svc.Namespace, ns)
		}
		grpc := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == 10352 && p.TargetPort.StrVal == "grpc" })
		if grpc < 0 {
			t.Errorf("Service %s has no port 10352 to grpc: %+v", svc.Name, svc.Spec.Ports)
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for other, dep := range deps {
			if got := sel.Matches(labels.Set(dep.Spec.Template.Labels)); got != (other == name) {
				t.Errorf("Service %s selects estimator %s: %v", svc.Name, other, got)
			}
		}
	}
}

// checkServiceMonitor: it selects every metrics Service of the release by
// labels those Services carry, on a port each of them names "metrics".
func checkServiceMonitor(t *testing.T, r rendered) {
	t.Helper()
	var sm map[string]any
	for _, o := range r.objects {
		if o.gvk.Kind == "ServiceMonitor" {
			if o.gvk.GroupVersion().String() != "monitoring.coreos.com/v1" {
				t.Errorf("ServiceMonitor apiVersion %s", o.gvk.GroupVersion())
			}
			sm = o.unstructured.Object
		}
	}
	if sm == nil {
		t.Fatal("serviceMonitor.enabled rendered no ServiceMonitor")
	}
	spec, _ := sm["spec"].(map[string]any)
	match, _ := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
	set := labels.Set{}
	for k, v := range match {
		set[k], _ = v.(string)
	}
	endpoints, _ := spec["endpoints"].([]any)
	if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != "metrics" {
		t.Errorf("endpoints = %v", endpoints)
	}
	// serviceMonitor.cluster becomes the cluster label of every target.
	if len(endpoints) == 1 {
		relabelings, _ := endpoints[0].(map[string]any)["relabelings"].([]any)
		want := []any{map[string]any{"targetLabel": "cluster", "replacement": "member-1"}}
		if !reflect.DeepEqual(relabelings, want) {
			t.Errorf("relabelings = %v, want %v", relabelings, want)
		}
	}
	selected := 0
	for _, svc := range all[*corev1.Service](r) {
		if !labels.SelectorFromSet(set).Matches(labels.Set(svc.Labels)) {
			continue
		}
		selected++
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "metrics" }) {
			t.Errorf("Service %s is selected but has no metrics port", svc.Name)
		}
	}
	// node agent + scheduler + two estimators
	if selected != 4 {
		t.Errorf("ServiceMonitor selects %d Services, want 4", selected)
	}
}

// checkBindAddress: with the host's network (bound), the container's
// listeners are bound to the pod's IP, which the kubelet expands from the
// downward API into --bind-address; in the pod's own network namespace
// they listen on every interface of it, which are the pod's.
func checkBindAddress(t *testing.T, spec corev1.PodSpec, name string, bound bool) {
	t.Helper()
	c := container(t, spec, name)
	if bound != spec.HostNetwork {
		t.Fatalf("%s: host network %v, want %v", name, spec.HostNetwork, bound)
	}
	hasFlag := slices.Contains(c.Args, "--bind-address=$(POD_IP)")
	podIP := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP"
	}) >= 0
	if hasFlag != bound || podIP != bound {
		t.Errorf("%s: --bind-address=$(POD_IP) %v, POD_IP from status.podIP %v; want both %v (args %v)", name, hasFlag, podIP, bound, c.Args)
	}
	for _, arg := range c.Args {
		if strings.HasPrefix(arg, "--bind-address=") && arg != "--bind-address=$(POD_IP)" {
			t.Errorf("%s: unexpected %s", name, arg)
		}
	}
}

func checkNodeName(t *testing.T, c corev1.Container) {
	t.Helper()
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NODE_NAME" })
	if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME does not come from spec.nodeName: %+v", c.Env)
	}
}

// checkHostPaths: the device-plugin and state directories are host paths
// mounted at the same path in the agent, as the config file names them,
// and the hook's directory is where the config says the library is.
func checkHostPaths(t *testing.T, spec corev1.PodSpec, cfg config.Config) {
	t.Helper()
	agent := container(t, spec, "node-agent")
	// The PodResources socket's directory, not the socket: a restarted
	// kubelet recreates the socket, which a mount of the file would miss.
	for _, want := range []string{cfg.Node.DevicePluginDir, cfg.Node.StateDir, filepath.Dir(cfg.Node.HookLibrary),
		filepath.Dir(cfg.Node.PodResourcesSocket)} {
		vol := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.HostPath != nil && v.HostPath.Path == want })
		if vol < 0 {
			t.Errorf("no hostPath volume for %s", want)
			continue
		}
		name := spec.Volumes[vol].Name
		if !slices.ContainsFunc(agent.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == name && m.MountPath == want }) {
			t.Errorf("hostPath %s is not mounted at the same path: %+v", want, agent.VolumeMounts)
		}
	}
	hook := container(t, spec, "install-hook")
	if i := slices.IndexFunc(hook.Env, func(e corev1.EnvVar) bool { return e.Name == "HOOK_TARGET" }); i < 0 || hook.Env[i].Value != cfg.Node.HookLibrary {
		t.Errorf("hook install target = %+v, want %s", hook.Env, cfg.Node.HookLibrary)
	}
}

// tesseraConfig parses the rendered config file with pkg/config, strictly.
func tesseraConfig(t *testing.T, r rendered) config.Config {
	t.Helper()
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap", "tessera-config")
	cfg, err := config.Parse([]byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("rendered config.yaml is not a valid Tessera config: %v\n%s", err, cm.Data["config.yaml"])
	}
	return cfg
}

// schedulerConfig decodes the KubeSchedulerConfiguration strictly into
// kube-scheduler's own v1 types.
func schedulerConfig(t *testing.T, r rendered) kubeschedulerv1.KubeSchedulerConfiguration {
	t.Helper()
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap", "tessera-scheduler")
	js, err := yaml.YAMLToJSONStrict([]byte(cm.Data["scheduler-config.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	var cfg kubeschedulerv1.KubeSchedulerConfiguration
	strictErrs, err := kjson.UnmarshalStrict(js, &cfg)
	if err != nil || len(strictErrs) > 0 {
		t.Fatalf("KubeSchedulerConfiguration: %v %v", err, strictErrs)
	}
	if cfg.APIVersion != "kubescheduler.config.k8s.io/v1" || cfg.Kind != "KubeSchedulerConfiguration" {
		t.Errorf("scheduler config is a %s %s", cfg.APIVersion, cfg.Kind)
	}
	return cfg
}

func TestInvalidValuesFail(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"estimator without clusters", map[string]any{"estimator": map[string]any{"enabled": true}}, "at least one entry"},
		{"cluster name that is not a DNS label", map[string]any{"estimator": map[string]any{"enabled": true,
			"clusters": []any{map[string]any{"name": "Member_1"}}}}, "not a DNS label"},
		{"cluster listed twice", map[string]any{"estimator": map[string]any{"enabled": true,
			"clusters": []any{map[string]any{"name": "m"}, map[string]any{"name": "m"}}}}, "listed twice"},
		{"member access without subjects", map[string]any{"estimator": map[string]any{"memberAccess": map[string]any{"enabled": true}}}, "subjects"},
		{"value the chart does not have", map[string]any{"nodeAgent": map[string]any{"metrics": nil}}, "metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chart.Render(chart.Options{ChartDir: filepath.Join(deployDir, "helm", "tessera"), ReleaseName: ReleaseName, Namespace: "x", Values: tt.values})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Render error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestValuesAreDocumented: every key of values.yaml has a comment line
// right above it (entries of example lists excepted).
func TestValuesAreDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "helm", "tessera", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	listIndent := -1 // indentation of the list item we are inside, if any
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if listIndent >= 0 && indent > listIndent {
			continue
		}
		listIndent = -1
		if strings.HasPrefix(trimmed, "- ") {
			listIndent = indent
			continue
		}
		if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			t.Errorf("values.yaml:%d: %q has no comment above it", i+1, trimmed)
		}
	}
}
