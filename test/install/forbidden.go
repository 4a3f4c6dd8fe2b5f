package install

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Denial is one request the API server's authorizer refused.
type Denial struct {
	User     string
	Verb     string
	Resource string // with its subresource: "nodes/status"
	Group    string
}

func (d Denial) String() string {
	return fmt.Sprintf("%s may not %s %s (API group %q)", d.User, d.Verb, d.Resource, d.Group)
}

// forbiddenRE matches the API server's forbidden message, as client-go
// returns it and klog logs it (quotes possibly escaped):
// `User "system:serviceaccount:ns:sa" cannot patch resource "nodes/status" in API group "" at the cluster scope`.
var forbiddenRE = regexp.MustCompile(`User "([^"]+)" cannot (\S+) resource "([^"]+)"(?: in API group "([^"]*)")?`)

// ParseDenials finds every forbidden answer in a log, each distinct one once.
func ParseDenials(log string) []Denial {
	var out []Denial
	for _, line := range strings.Split(log, "\n") {
		line = strings.ReplaceAll(line, `\"`, `"`)
		for _, m := range forbiddenRE.FindAllStringSubmatch(line, -1) {
			d := Denial{User: m[1], Verb: m[2], Resource: m[3], Group: m[4]}
			if !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	return out
}

// Denials reads the process's log for forbidden answers.
func (r *Running) Denials() ([]Denial, error) {
	data, err := os.ReadFile(r.Log())
	if err != nil {
		return nil, fmt.Errorf("read the log of %s: %w", r.Container.Name(), err)
	}
	return ParseDenials(string(data)), nil
}

// CheckPermissions fails when the API server refused the process any
// request: the chart lacks a permission its code needs. The error names
// each verb and resource.
func (r *Running) CheckPermissions() error {
	ds, err := r.Denials()
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	lines := make([]string, 0, len(ds))
	for _, d := range ds {
		lines = append(lines, d.String())
	}
	return fmt.Errorf("%s was forbidden what its code needs and the chart does not grant (log %s):\n  %s",
		r.Container.Name(), r.Log(), strings.Join(lines, "\n  "))
}
