package install

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Denial is one request the API server's authorizer refused.
type Denial struct {
	User     string
	Verb     string
	Resource string // with its subresource: "nodes/status"
	Group    string
	// Namespace is where the request was refused; empty at cluster scope.
	Namespace string
}

func (d Denial) String() string {
	return fmt.Sprintf("%s may not %s %s (API group %q)", d.User, d.Verb, d.Resource, d.Group)
}

// forbiddenRE matches the API server's forbidden message, as client-go
// returns it and klog logs it (quotes possibly escaped):
// `User "system:serviceaccount:ns:sa" cannot patch resource "nodes/status" in API group "" at the cluster scope`.
var forbiddenRE = regexp.MustCompile(`User "([^"]+)" cannot (\S+) resource "([^"]+)"(?: in API group "([^"]*)")?(?: in the namespace "([^"]*)")?`)

// ParseDenials finds every forbidden answer in a log, each distinct one once.
func ParseDenials(log string) []Denial {
	var out []Denial
	for _, line := range strings.Split(log, "\n") {
		line = strings.ReplaceAll(line, `\"`, `"`)
		for _, m := range forbiddenRE.FindAllStringSubmatch(line, -1) {
			d := Denial{User: m[1], Verb: m[2], Resource: m[3], Group: m[4], Namespace: m[5]}
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

// AllowedNow asks the API server of cfg (an admin's) whether it would allow
// the denied request now. A kube-apiserver that has just started refuses
// requests until its RBAC authorizer has read the roles, so a refusal that
// is allowed now was the server starting, not a permission the chart lacks.
func (d Denial) AllowedNow(ctx context.Context, cfg *rest.Config) (bool, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false, fmt.Errorf("client to check %s: %w", d, err)
	}
	resource, subresource, _ := strings.Cut(d.Resource, "/")
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: d.User,
		// The API server adds these groups to every ServiceAccount token.
		Groups: []string{"system:serviceaccounts", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: d.Namespace, Verb: d.Verb, Group: d.Group,
			Resource: resource, Subresource: subresource,
		},
	}}
	if ns, _, ok := strings.Cut(strings.TrimPrefix(d.User, "system:serviceaccount:"), ":"); ok && strings.HasPrefix(d.User, "system:serviceaccount:") {
		review.Spec.Groups = append(review.Spec.Groups, "system:serviceaccounts:"+ns)
	}
	got, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("ask whether %s is allowed now: %w", d, err)
	}
	return got.Status.Allowed, nil
}
