package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	karmadaclientset "github.com/karmada-io/karmada/pkg/generated/clientset/versioned"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// Defaults for Options.
const (
	DefaultMemberTimeout = 15 * time.Second
	DefaultParallelism   = 8
	// listPageSize bounds one list response; a 5,000-node member is read
	// in a few pages instead of one huge response.
	listPageSize = 1000
)

// Options say what a Reader reads.
type Options struct {
	// Config names the resources and annotation prefix the members use.
	Config config.Config
	// Clusters restricts the read to these members; empty reads all.
	Clusters []string
	// MemberTimeout bounds the read of one member.
	MemberTimeout time.Duration
	// Parallelism is how many members are read at once.
	Parallelism int
}

// Reader reads the fleet through Karmada: the Cluster list from the
// Karmada API server, and each member's nodes and pods through Karmada's
// cluster proxy (/apis/cluster.karmada.io/v1alpha1/clusters/NAME/proxy),
// with the caller's own credentials, so it works for push and pull
// members alike and sees only what the caller may see. It keeps each
// member's last good read, so that a member that stops answering is shown
// with its last known state and that state's age.
type Reader struct {
	karmada    karmadaclientset.Interface
	restConfig *rest.Config
	opts       Options
	now        func() time.Time

	mu   sync.Mutex
	last map[string]*memberState
}

// NewReader returns a Reader for the Karmada API server that cfg reaches.
func NewReader(cfg *rest.Config, opts Options) (*Reader, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("create fleet reader: %w", err)
	}
	opts.MemberTimeout = cmp.Or(opts.MemberTimeout, DefaultMemberTimeout)
	opts.Parallelism = cmp.Or(opts.Parallelism, DefaultParallelism)
	if opts.MemberTimeout < 0 || opts.Parallelism < 0 {
		return nil, fmt.Errorf("create fleet reader: member timeout %v and parallelism %d must be positive", opts.MemberTimeout, opts.Parallelism)
	}
	// Karmada's own API (Clusters, served by karmada-aggregated-apiserver)
	// in JSON: that server offers protobuf but cannot encode its types in it
	// ("ClusterList does not implement the protobuf marshalling interface").
	client, err := karmadaclientset.NewForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("create Karmada client for %s: %w", cfg.Host, err)
	}
	cfg = rest.CopyConfig(cfg)
	// Protobuf for the large lists of the members' nodes and pods, which the
	// cluster proxy passes through from each member's kube-apiserver:
	// decoding thousands of pods is most of what a read costs, and protobuf
	// decodes several times faster than JSON.
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return &Reader{karmada: client, restConfig: cfg, opts: opts, now: time.Now, last: map[string]*memberState{}}, nil
}

// Read lists Karmada's member clusters and reads every one in parallel.
// Only a failure to list the clusters is an error: a member that cannot be
// read is a Cluster with Reachable false and the reason.
func (r *Reader) Read(ctx context.Context) (*State, error) {
	readAt := r.now()
	list, err := r.karmada.ClusterV1alpha1().Clusters().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list member clusters on Karmada at %s: %w", r.restConfig.Host, err)
	}
	clusters, err := r.selected(list.Items)
	if err != nil {
		return nil, err
	}
	views := make([]Cluster, len(clusters))
	members := make([]*memberState, len(clusters))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Parallelism)
	for i := range clusters {
		g.Go(func() error {
			members[i], views[i] = r.readMember(gctx, clusters[i])
			return nil
		})
	}
	_ = g.Wait() // readMember reports per member; it returns no error
	return assemble(r.opts.Config, readAt, clusters, members, views), nil
}

// selected is the clusters the options ask for, sorted by name; a named
// cluster that Karmada does not have is an error.
func (r *Reader) selected(items []clusterv1alpha1.Cluster) ([]*clusterv1alpha1.Cluster, error) {
	byName := make(map[string]*clusterv1alpha1.Cluster, len(items))
	for i := range items {
		byName[items[i].Name] = &items[i]
	}
	var out []*clusterv1alpha1.Cluster
	if len(r.opts.Clusters) == 0 {
		for _, c := range byName {
			out = append(out, c)
		}
	}
	var missing []string
	for _, name := range r.opts.Clusters {
		if c, ok := byName[name]; ok {
			out = append(out, c)
		} else {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("Karmada at %s has no member cluster named %v", r.restConfig.Host, missing)
	}
	slices.SortFunc(out, func(a, b *clusterv1alpha1.Cluster) int { return cmp.Compare(a.Name, b.Name) })
	return slices.CompactFunc(out, func(a, b *clusterv1alpha1.Cluster) bool { return a.Name == b.Name }), nil
}

// readMember reads one member and builds its view. On failure it returns
// the member's last good state (if any), marked unreachable.
func (r *Reader) readMember(ctx context.Context, c *clusterv1alpha1.Cluster) (*memberState, Cluster) {
	readAt := r.now()
	ctx, cancel := context.WithTimeout(ctx, r.opts.MemberTimeout)
	defer cancel()
	objs, err := r.listMember(ctx, c.Name)
	if err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		klog.V(2).InfoS("Member cluster not readable through Karmada", "cluster", c.Name, "err", err)
		m := r.last[c.Name]
		view := Cluster{Name: c.Name, Models: []ModelSummary{}, Nodes: []Node{}, Pods: []Pod{}}
		if m != nil {
			view = m.view
		}
		view.Reachable, view.Error = false, err.Error()
		withKarmadaStatus(&view, c)
		return m, view
	}
	m := buildMember(c.Name, objs, r.opts.Config)
	m.view.Reachable, m.view.ReadAt = true, readAt
	withKarmadaStatus(&m.view, c)
	r.mu.Lock()
	r.last[c.Name] = m
	r.mu.Unlock()
	return m, m.view
}

func withKarmadaStatus(view *Cluster, c *clusterv1alpha1.Cluster) {
	view.SyncMode = string(c.Spec.SyncMode)
	view.Ready = meta.IsStatusConditionTrue(c.Status.Conditions, clusterv1alpha1.ClusterConditionReady)
}

// listMember lists a member's nodes and non-terminal pods through
// Karmada's cluster proxy.
func (r *Reader) listMember(ctx context.Context, name string) (memberObjects, error) {
	client, err := r.memberClient(name)
	if err != nil {
		return memberObjects{}, err
	}
	var objs memberObjects
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		nodes, err := listAll(gctx, client.CoreV1().Nodes().List, func(l *corev1.NodeList) ([]corev1.Node, string) {
			return l.Items, l.Continue
		})
		objs.nodes = nodes
		return wrapMemberErr(err, "list nodes of member", name)
	})
	g.Go(func() error {
		pods, err := listAll(gctx, func(ctx context.Context, o metav1.ListOptions) (*corev1.PodList, error) {
			// Finished pods hold nothing; the estimator's informer skips them too.
			o.FieldSelector = "status.phase!=Succeeded,status.phase!=Failed"
			return client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, o)
		}, func(l *corev1.PodList) ([]corev1.Pod, string) { return l.Items, l.Continue })
		objs.pods = pods
		return wrapMemberErr(err, "list pods of member", name)
	})
	if err := g.Wait(); err != nil {
		return memberObjects{}, err
	}
	return objs, nil
}

func wrapMemberErr(err error, what, name string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: no answer in time: %w", what, name, err)
	}
	return fmt.Errorf("%s %s: %w", what, name, err)
}

// memberClient is a client for one member through Karmada's cluster proxy.
func (r *Reader) memberClient(name string) (kubernetes.Interface, error) {
	cfg := rest.CopyConfig(r.restConfig)
	proxy, err := url.JoinPath(cfg.Host, "/apis/cluster.karmada.io/v1alpha1/clusters", url.PathEscape(name), "proxy")
	if err != nil {
		return nil, fmt.Errorf("build proxy address of member %s: %w", name, err)
	}
	cfg.Host = proxy
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create client for member %s: %w", name, err)
	}
	return client, nil
}

// listAll lists every item of a list, a page at a time, keeping pointers
// into each page's items (no copy of the objects).
func listAll[T any, L any](ctx context.Context, list func(ctx context.Context, o metav1.ListOptions) (L, error),
	items func(L) ([]T, string)) ([]*T, error) {
	var out []*T
	opts := metav1.ListOptions{Limit: listPageSize}
	for {
		page, err := list(ctx, opts)
		if err != nil {
			return nil, err
		}
		pageItems, next := items(page)
		out = slices.Grow(out, len(pageItems))
		for i := range pageItems {
			out = append(out, &pageItems[i])
		}
		if next == "" {
			return out, nil
		}
		opts.Continue = next
	}
}
