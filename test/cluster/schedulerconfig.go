package cluster

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

const (
	schedulerConfigAPIVersion = "kubescheduler.config.k8s.io/v1"
	schedulerConfigKind       = "KubeSchedulerConfiguration"
)

// schedulerConfig returns the KubeSchedulerConfiguration kube-scheduler
// runs with: the caller's (empty means the defaults), pointed at the test
// cluster's kubeconfig and without leader election (one scheduler, and a
// lease would only delay its start). It edits a generic map rather than
// the typed struct so that every field the caller wrote reaches
// kube-scheduler untouched, including ones newer than our types.
func schedulerConfig(user, kubeconfig string) ([]byte, error) {
	doc := map[string]any{}
	if err := yaml.Unmarshal([]byte(user), &doc); err != nil {
		return nil, fmt.Errorf("parse KubeSchedulerConfiguration: %w", err)
	}
	if doc == nil { // the YAML document was "null" or empty
		doc = map[string]any{}
	}
	for field, want := range map[string]string{"apiVersion": schedulerConfigAPIVersion, "kind": schedulerConfigKind} {
		switch got := doc[field].(type) {
		case nil:
			doc[field] = want
		case string:
			if got != want {
				return nil, fmt.Errorf("KubeSchedulerConfiguration has %s %q, want %q", field, got, want)
			}
		default:
			return nil, fmt.Errorf("KubeSchedulerConfiguration %s is a %T, want the string %q", field, got, want)
		}
	}
	for field, values := range map[string]map[string]any{
		"clientConnection": {"kubeconfig": kubeconfig},
		"leaderElection":   {"leaderElect": false},
	} {
		section, err := subsection(doc, field)
		if err != nil {
			return nil, err
		}
		for k, v := range values {
			section[k] = v
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode KubeSchedulerConfiguration: %w", err)
	}
	return out, nil
}

// subsection returns doc[field] as a map, creating it when absent.
func subsection(doc map[string]any, field string) (map[string]any, error) {
	switch v := doc[field].(type) {
	case nil:
		section := map[string]any{}
		doc[field] = section
		return section, nil
	case map[string]any:
		return v, nil
	default:
		return nil, fmt.Errorf("KubeSchedulerConfiguration %s is a %T, want a mapping", field, v)
	}
}
