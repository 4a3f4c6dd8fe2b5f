package app

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app/options"
)

// renderedManifest is the chart rendered with its default values
// (deploy/render.sh keeps it current; deploy/render's tests check that).
var renderedManifest = filepath.Join("..", "..", "..", "deploy", "manifests", "tessera.yaml")

// TestChartPassesOnlyFlagsTheAgentHas parses the node agent's arguments in
// the rendered DaemonSet the way the agent does, so that a flag renamed on
// either side fails here rather than in a crash-looping DaemonSet.
func TestChartPassesOnlyFlagsTheAgentHas(t *testing.T) {
	args := nodeAgentArgs(t)
	if len(args) == 0 {
		t.Fatalf("no arguments for the node-agent container in %s", renderedManifest)
	}
	// The command's flags include klog's (--v).
	cmdFlags := NewCommand().Flags()
	// Options without klog's flags, so that parsing them sets no global
	// logging state in the test binary.
	opts := options.New()
	fs := pflag.NewFlagSet("chart", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts.AddFlags(fs)
	var own []string
	for _, arg := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		if !strings.HasPrefix(arg, "--") || cmdFlags.Lookup(name) == nil {
			t.Errorf("the chart passes %q, which is not a flag of %s", arg, Component)
			continue
		}
		if fs.Lookup(name) != nil {
			// The kubelet expands $(NODE_NAME) from the downward API.
			own = append(own, strings.ReplaceAll(arg, "$(NODE_NAME)", "gpu-node-1"))
		}
	}
	if err := fs.Parse(own); err != nil {
		t.Fatalf("parse the chart's arguments %v: %v", own, err)
	}
	if err := opts.Validate(); err != nil {
		t.Errorf("the chart's arguments %v do not validate: %v", own, err)
	}
	// The agent serves what the chart probes and scrapes.
	for _, want := range []struct{ flag, value string }{
		{"health-addr", opts.HealthAddr},
		{"metrics-addr", opts.MetricsAddr},
		{"config", opts.ConfigFile},
		{"node-name", opts.NodeName},
	} {
		if want.value == "" || want.value == "0" {
			t.Errorf("the chart leaves --%s unset or disabled (%q)", want.flag, want.value)
		}
	}
}

// nodeAgentArgs returns the args of the node-agent container of the
// tessera-node-agent DaemonSet in the rendered manifest.
func nodeAgentArgs(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(renderedManifest)
	if err != nil {
		t.Fatalf("open the rendered chart: %v", err)
	}
	defer func() { _ = f.Close() }()
	type object struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name string   `json:"name"`
						Args []string `json:"args"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	dec := yamlutil.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var obj object
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode %s: %v", renderedManifest, err)
		}
		if obj.Kind != "DaemonSet" || obj.Metadata.Name != "tessera-node-agent" {
			continue
		}
		for _, c := range obj.Spec.Template.Spec.Containers {
			if c.Name == "node-agent" {
				return c.Args
			}
		}
	}
	t.Fatalf("no node-agent container of DaemonSet tessera-node-agent in %s", renderedManifest)
	return nil
}
