// Package fleettest serves a fake Karmada API server for the fleet view's
// unit tests and benchmarks: the Cluster list and each member's nodes and
// pods under Karmada's cluster proxy path. End-to-end tests read a real
// Karmada instead.
package fleettest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// FakeKarmada serves the two things the Reader asks Karmada for: the
// Cluster list, and each member's nodes and pods under the cluster proxy
// path, encoded as the real API servers encode them (protobuf when asked).
// It is for unit tests and benchmarks only; the end-to-end tests read a
// real Karmada.
type FakeKarmada struct {
	t testing.TB
	// Server is the fake API server on 127.0.0.1.
	Server   *httptest.Server
	mu       sync.Mutex
	clusters []clusterv1alpha1.Cluster
	members  map[string]*fakeMember
}

type fakeMember struct {
	nodes, pods map[string][]byte // encoded list by media type
	// down answers every proxied request with this status, as Karmada's
	// proxy does when the member's API server cannot be reached.
	down int
}

func NewFakeKarmada(t testing.TB) *FakeKarmada {
	f := &FakeKarmada{t: t, members: map[string]*fakeMember{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Server.Close)
	return f
}

func (f *FakeKarmada) RESTConfig() *rest.Config { return &rest.Config{Host: f.Server.URL} }

// SetMember adds or replaces a member and its objects.
func (f *FakeKarmada) SetMember(c *clusterv1alpha1.Cluster, nodes []*corev1.Node, pods []*corev1.Pod) {
	nl := &corev1.NodeList{}
	for _, n := range nodes {
		nl.Items = append(nl.Items, *n)
	}
	pl := &corev1.PodList{}
	for _, p := range pods {
		pl.Items = append(pl.Items, *p)
	}
	m := &fakeMember{nodes: f.encode(nl), pods: f.encode(pl)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[c.Name] = m
	for i := range f.clusters {
		if f.clusters[i].Name == c.Name {
			f.clusters[i] = *c
			return
		}
	}
	f.clusters = append(f.clusters, *c)
}

// SetDown makes a member's proxied requests fail with status (0: answer).
func (f *FakeKarmada) SetDown(name string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[name].down = status
}

func (f *FakeKarmada) encode(obj runtime.Object) map[string][]byte {
	out := map[string][]byte{}
	for _, mt := range []string{runtime.ContentTypeJSON, runtime.ContentTypeProtobuf} {
		info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), mt)
		if !ok {
			f.t.Fatalf("no serializer for %s", mt)
		}
		data, err := runtime.Encode(scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion), obj)
		if err != nil {
			f.t.Fatalf("encode %T as %s: %v", obj, mt, err)
		}
		out[mt] = data
	}
	return out
}

const clustersPath = "/apis/cluster.karmada.io/v1alpha1/clusters"

func (f *FakeKarmada) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == clustersPath {
		list := clusterv1alpha1.ClusterList{TypeMeta: metav1.TypeMeta{APIVersion: "cluster.karmada.io/v1alpha1", Kind: "ClusterList"}, Items: f.clusters}
		w.Header().Set("Content-Type", runtime.ContentTypeJSON)
		_ = json.NewEncoder(w).Encode(list)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, clustersPath+"/")
	name, path, ok2 := strings.Cut(rest, "/proxy")
	m := f.members[name]
	if !ok || !ok2 || m == nil {
		http.NotFound(w, r)
		return
	}
	if m.down != 0 {
		// Karmada's proxy answers with a Status, as every API server error.
		w.Header().Set("Content-Type", runtime.ContentTypeJSON)
		w.WriteHeader(m.down)
		_ = json.NewEncoder(w).Encode(metav1.Status{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure, Code: int32(m.down),
			Message: "error trying to reach service: dial tcp 127.0.0.1:1: connect: connection refused",
		})
		return
	}
	var lists map[string][]byte
	switch path {
	case "/api/v1/nodes":
		lists = m.nodes
	case "/api/v1/pods":
		if r.URL.Query().Get("fieldSelector") == "" {
			f.t.Errorf("pods of %s listed without the non-terminal field selector", name)
		}
		lists = m.pods
	default:
		http.NotFound(w, r)
		return
	}
	mt := runtime.ContentTypeJSON
	if strings.Contains(r.Header.Get("Accept"), runtime.ContentTypeProtobuf) {
		mt = runtime.ContentTypeProtobuf
	}
	w.Header().Set("Content-Type", mt)
	_, _ = w.Write(lists[mt])
}

// Kubeconfig writes a kubeconfig for the fake server into dir and returns
// its path, for running the tessera command against it.
func (f *FakeKarmada) Kubeconfig(dir string) string {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["karmada"] = &clientcmdapi.Cluster{Server: f.Server.URL}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["karmada"] = &clientcmdapi.Context{Cluster: "karmada", AuthInfo: "admin"}
	cfg.CurrentContext = "karmada"
	path := filepath.Join(dir, "karmada.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		f.t.Fatalf("write kubeconfig: %v", err)
	}
	return path
}

// ReadyCluster is a Karmada Cluster object of a ready push member.
func ReadyCluster(name string) *clusterv1alpha1.Cluster {
	return &clusterv1alpha1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       clusterv1alpha1.ClusterSpec{SyncMode: clusterv1alpha1.Push},
		Status: clusterv1alpha1.ClusterStatus{Conditions: []metav1.Condition{{
			Type: clusterv1alpha1.ClusterConditionReady, Status: metav1.ConditionTrue,
		}}},
	}
}
