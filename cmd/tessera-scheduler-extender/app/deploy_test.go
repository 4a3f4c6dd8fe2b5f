package app

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tessera-gpu/tessera/cmd/tessera-scheduler-extender/app/options"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/scheduler-plugin/extender"
)

const deployDir = "../../../deploy/scheduler"

// decodeSchedulerConfig strictly decodes a KubeSchedulerConfiguration:
// unknown or misspelt fields, and duplicate keys, are errors.
func decodeSchedulerConfig(data []byte) (*schedconfigv1.KubeSchedulerConfiguration, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	var cfg schedconfigv1.KubeSchedulerConfiguration
	strictErrs, err := kjson.UnmarshalStrict(js, &cfg)
	if err != nil {
		return nil, err
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	return &cfg, nil
}

func TestDecodeSchedulerConfigIsStrict(t *testing.T) {
	for _, bad := range []string{
		"apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nextenders:\n- urlPrefix: x\n  nodeCacheCapabel: true\n",
		"apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles: []\nprofiles: []\n",
	} {
		if _, err := decodeSchedulerConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestSchedulerConfigs(t *testing.T) {
	defaults := config.Default().Resources
	wantResources := []string{defaults.VGPU, defaults.Memory, defaults.Cores}
	tests := []struct {
		file, schedulerName string
	}{
		{"second-scheduler-config.yaml", "tessera-scheduler"},
		{"default-scheduler-config.yaml", "default-scheduler"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(deployDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := decodeSchedulerConfig(data)
			if err != nil {
				t.Fatalf("strict decode: %v", err)
			}
			if cfg.APIVersion != schedconfigv1.SchemeGroupVersion.String() || cfg.Kind != "KubeSchedulerConfiguration" {
				t.Errorf("apiVersion %q kind %q", cfg.APIVersion, cfg.Kind)
			}
			if len(cfg.Profiles) != 1 || cfg.Profiles[0].SchedulerName == nil || *cfg.Profiles[0].SchedulerName != tc.schedulerName {
				t.Errorf("profiles %+v, want one named %s", cfg.Profiles, tc.schedulerName)
			}
			checkExtender(t, cfg, wantResources)
		})
	}
}

func checkExtender(t *testing.T, cfg *schedconfigv1.KubeSchedulerConfiguration, wantResources []string) {
	t.Helper()
	if len(cfg.Extenders) != 1 {
		t.Fatalf("%d extenders, want 1", len(cfg.Extenders))
	}
	ext := cfg.Extenders[0]
	u, err := url.Parse(ext.URLPrefix)
	if err != nil || u.Scheme != "http" || u.Host != options.New().BindAddress || strings.Trim(u.Path, "/") != "" {
		t.Errorf("urlPrefix %q must be http://%s (the extender's default address)", ext.URLPrefix, options.New().BindAddress)
	}
	for verb, path := range map[string]string{ext.FilterVerb: extender.FilterPath, ext.PrioritizeVerb: extender.PrioritizePath, ext.BindVerb: extender.BindPath} {
		if "/"+verb != path {
			t.Errorf("verb %q does not reach the handler at %s", verb, path)
		}
	}
	if !ext.NodeCacheCapable || ext.Ignorable || ext.Weight <= 0 || ext.PreemptVerb != "" {
		t.Errorf("extender %+v: want nodeCacheCapable, not ignorable, a positive weight, no preempt verb", ext)
	}
	var names []string
	for _, r := range ext.ManagedResources {
		names = append(names, r.Name)
		if r.IgnoredByScheduler {
			t.Errorf("resource %s is ignoredByScheduler; the kubelet checks it at admission", r.Name)
		}
	}
	if !slices.Equal(names, wantResources) {
		t.Errorf("managed resources %v, want %v", names, wantResources)
	}
}

// TestManifests strict-decodes every object of the manifests, checks that
// the ConfigMap embeds second-scheduler-config.yaml unchanged, and that the
// extender containers' flags parse and validate.
func TestManifests(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(deployDir, "second-scheduler-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wantCfg, err := decodeSchedulerConfig(want)
	if err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	extenders := 0
	for _, file := range []string{"tessera-scheduler.yaml", "extender-daemonset.yaml"} {
		data, err := os.ReadFile(filepath.Join(deployDir, file))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(data), "\n---\n") {
			obj, _, err := decoder.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s document %d: %v", file, i, err)
			}
			var spec *corev1.PodSpec
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				got, err := decodeSchedulerConfig([]byte(o.Data["config.yaml"]))
				if err != nil {
					t.Fatalf("%s: ConfigMap %s: %v", file, o.Name, err)
				}
				if !reflect.DeepEqual(got, wantCfg) {
					t.Errorf("%s: ConfigMap %s differs from second-scheduler-config.yaml", file, o.Name)
				}
			case *appsv1.Deployment:
				spec = &o.Spec.Template.Spec
			case *appsv1.DaemonSet:
				spec = &o.Spec.Template.Spec
			}
			if spec == nil {
				continue
			}
			for _, c := range spec.Containers {
				if len(c.Command) == 0 || c.Command[0] != Component {
					continue
				}
				extenders++
				opts := options.New()
				fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
				opts.AddFlags(fs)
				if err := fs.Parse(c.Command[1:]); err != nil {
					t.Errorf("%s: container %s: %v", file, c.Name, err)
				}
				if err := opts.Validate(); err != nil {
					t.Errorf("%s: container %s: %v", file, c.Name, err)
				}
				if opts.BindAddress != options.New().BindAddress {
					t.Errorf("%s: container %s listens on %s, but the scheduler configs call %s", file, c.Name, opts.BindAddress, options.New().BindAddress)
				}
			}
		}
	}
	if extenders != 2 {
		t.Errorf("found %d extender containers, want 2 (Deployment sidecar and DaemonSet)", extenders)
	}
}
