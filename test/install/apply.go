package install

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
)

// FieldManager is the server-side apply field manager of every install.
const FieldManager = "tessera-install"

// Action is what one apply did to an object.
type Action string

const (
	Created    Action = "created"
	Configured Action = "configured" // it existed and changed
	Unchanged  Action = "unchanged"  // it existed and the apply changed nothing
)

// Applied is one object's outcome.
type Applied struct {
	Key        string
	Kind, Name string
	Action     Action
}

// Installer applies and deletes objects on one API server.
type Installer struct {
	// Where names the API server in errors ("member1", "karmada-apiserver").
	Where  string
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper
}

// NewInstaller is an Installer for the API server of cfg; cfg's identity
// is the installer's (a person's admin kubeconfig).
func NewInstaller(where string, cfg *rest.Config) (*Installer, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("installer for %s: %w", where, err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("installer for %s: %w", where, err)
	}
	return &Installer{Where: where, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}, nil
}

// resource is the dynamic client of u's kind, namespaced where the kind is.
func (in *Installer) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := in.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		// A kind this server does not serve: the error says which.
		return nil, fmt.Errorf("%s on %s: %w", Key(u), in.Where, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return in.dyn.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	return in.dyn.Resource(m.Resource), nil
}

// Apply server-side applies every object in order and says what each apply
// did. It stops at the first object the API server refuses; the error
// quotes the server's reason.
func (in *Installer) Apply(ctx context.Context, objs []*unstructured.Unstructured) ([]Applied, error) {
	out := make([]Applied, 0, len(objs))
	for _, u := range objs {
		client, err := in.resource(u)
		if err != nil {
			return out, err
		}
		var before map[string]any
		current, err := client.Get(ctx, u.GetName(), metav1.GetOptions{})
		switch {
		case err == nil:
			before = content(current)
		case !apierrors.IsNotFound(err):
			return out, fmt.Errorf("read %s on %s: %w", Key(u), in.Where, err)
		}
		after, err := client.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
		if err != nil {
			return out, fmt.Errorf("apply %s on %s: %w", Key(u), in.Where, err)
		}
		action := Configured
		switch {
		case before == nil:
			action = Created
		case equality.Semantic.DeepEqual(before, content(after)):
			action = Unchanged
		}
		out = append(out, Applied{Key: Key(u), Kind: u.GetKind(), Name: u.GetName(), Action: action})
	}
	return out, nil
}

// content is what an apply can change: the object without its status and
// the metadata the server keeps (resource version, managed fields,
// generation), so that a controller's status write does not count.
func content(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "status")
	for _, f := range []string{"resourceVersion", "managedFields", "generation"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	return c.Object
}

// Uninstall deletes every object, last first (as helm uninstall does, in
// reverse install order), and returns once none of them exists any more.
// Objects that are already gone are not an error.
func (in *Installer) Uninstall(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration) error {
	var errs []error
	for i := len(objs) - 1; i >= 0; i-- {
		u := objs[i]
		client, err := in.resource(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = client.Delete(ctx, u.GetName(), metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s on %s: %w", Key(u), in.Where, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	var left []string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		left, err = in.Existing(ctx, objs)
		return len(left) == 0, err
	})
	if err != nil {
		return fmt.Errorf("uninstall on %s: still there after %s: %v: %w", in.Where, timeout, left, err)
	}
	return nil
}

// Existing lists the keys of the objects that exist on the server.
func (in *Installer) Existing(ctx context.Context, objs []*unstructured.Unstructured) ([]string, error) {
	var keys []string
	for _, u := range objs {
		client, err := in.resource(u)
		if err != nil {
			return nil, err
		}
		_, err = client.Get(ctx, u.GetName(), metav1.GetOptions{})
		switch {
		case err == nil:
			keys = append(keys, Key(u))
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("read %s on %s: %w", Key(u), in.Where, err)
		}
	}
	return keys, nil
}

// Labelled lists the objects of the kinds in objs that carry the release's
// instance label, for a check that uninstall left none behind (including
// any object the chart made that the list of objs forgot).
func (in *Installer) Labelled(ctx context.Context, objs []*unstructured.Unstructured, release string) ([]string, error) {
	selector := "app.kubernetes.io/instance=" + release
	seen := map[string]bool{}
	var keys []string
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		if seen[gvk.String()+u.GetNamespace()] {
			continue
		}
		seen[gvk.String()+u.GetNamespace()] = true
		client, err := in.resource(u)
		if err != nil {
			return nil, err
		}
		list, err := client.List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("list %s on %s: %w", gvk.Kind, in.Where, err)
		}
		for i := range list.Items {
			list.Items[i].SetKind(gvk.Kind)
			keys = append(keys, Key(&list.Items[i]))
		}
	}
	return keys, nil
}
