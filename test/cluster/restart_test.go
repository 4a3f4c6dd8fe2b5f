package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestKillAndRestartKeepDataAndAddress kills etcd and kube-apiserver of a
// real member, one after the other, and restarts each: the same client
// (the address it was given at start) reads what was written before either
// kill, and writes again afterwards. Killing or restarting the wrong thing
// is a clear error.
func TestKillAndRestartKeepDataAndAddress(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	paths, err := Binaries(ctx, ComponentEtcd, ComponentKubernetes)
	if err != nil {
		t.Fatal(err)
	}
	m, err := StartMember(ctx, Options{Name: "restart", Paths: paths, T: t})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	client := m.Client()
	cms := client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, server := range []string{ServerEtcd, ServerKubeAPIServer} {
		if err := m.KillServer(server); err != nil {
			t.Fatalf("kill %s: %v", server, err)
		}
		if server == ServerKubeAPIServer {
			short, done := context.WithTimeout(ctx, 5*time.Second)
			_, err := cms.Get(short, "before", metav1.GetOptions{})
			done()
			if err == nil {
				t.Fatalf("read with %s killed succeeded", server)
			}
		}
		if err := m.RestartServer(ctx, server); err != nil {
			t.Fatalf("restart %s: %v", server, err)
		}
		// kube-apiserver notices etcd's return on its own schedule.
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			cm, err := cms.Get(ctx, "before", metav1.GetOptions{})
			return err == nil && cm.Data["k"] == "v", nil
		})
		if err != nil {
			t.Fatalf("after restarting %s, the ConfigMap written before is not readable: %v", server, err)
		}
		name := "after-" + server
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("write after restarting %s: %v", server, err)
		}
	}

	for _, tc := range []struct {
		what string
		do   func() error
		want string
	}{
		{"kill an unknown server", func() error { return m.KillServer("kube-proxy") }, `no server called "kube-proxy"`},
		{"restart a running server", func() error { return m.RestartServer(ctx, ServerEtcd) }, "still running"},
		{"restart an unknown server", func() error { return m.RestartServer(ctx, "kubelet") }, `no server called "kubelet"`},
	} {
		err := tc.do()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.what, err, tc.want)
		}
	}
	if err := m.KillServer(ServerKubeAPIServer); err != nil {
		t.Fatal(err)
	}
	if err := m.KillServer(ServerKubeAPIServer); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("killing a killed server: error %v, want one saying it is not running", err)
	}
}
