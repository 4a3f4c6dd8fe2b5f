package install

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tessera-gpu/tessera/test/cluster"
)

// Overrides are the only changes Launch makes to a container's command
// line and files, because a process on loopback is not a pod: it has no
// pod network (addresses), no in-cluster credentials (the kubeconfig) and
// no downward API (field references).
type Overrides struct {
	// Flags replace the value of a "--name=value" argument the manifest
	// passes, or are appended (in name order) when it passes none.
	Flags map[string]string
	// FieldRefs are the downward API's values, by fieldPath
	// ("spec.nodeName"), for environment variables that the manifest sets
	// from them.
	FieldRefs map[string]string
	// Files edit a mounted file, by its path in the container
	// ("/etc/tessera-scheduler/scheduler-config.yaml"), after it is
	// written from its ConfigMap or Secret.
	Files map[string]func([]byte) ([]byte, error)
}

// Launcher runs containers as local processes.
type Launcher struct {
	// Admin reads the ConfigMaps and Secrets that containers mount, as
	// the kubelet reads them.
	Admin kubernetes.Interface
	// Dir holds each container's files and log.
	Dir string
	// Bins maps a command (an image's entrypoint or a manifest's
	// command[0]) to the binary that runs it.
	Bins map[string]string
}

// Running is a launched container.
type Running struct {
	Container Container
	// Argv is the command line it runs with, overrides applied.
	Argv []string
	// Overridden lists the arguments that differ from the manifest's.
	Overridden []string
	Process    *cluster.Process
}

// Log is the process's log file.
func (r *Running) Log() string { return r.Process.LogPath() }

// Launch starts c: its mounted ConfigMaps and Secrets written to files
// (read from the API server now, as the kubelet reads them), its host
// paths used as they are, $(VAR) references expanded from its
// environment, and o applied.
func (l Launcher) Launch(ctx context.Context, c Container, o Overrides) (*Running, error) {
	dir := filepath.Join(l.Dir, strings.NewReplacer("/", "_", ":", "_").Replace(c.Name()))
	mounts, err := l.mount(ctx, c, dir, o)
	if err != nil {
		return nil, err
	}
	env, err := containerEnv(c, o)
	if err != nil {
		return nil, err
	}
	argv := c.Argv()
	for i := range argv {
		argv[i] = mapPaths(expandVars(argv[i], env), mounts)
	}
	argv, overridden := overrideFlags(argv, o.Flags)
	bin, ok := l.Bins[argv[0]]
	if !ok {
		return nil, fmt.Errorf("%s: no binary for command %q", c.Name(), argv[0])
	}
	vars := make([]string, 0, len(env))
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	sort.Strings(vars)
	p, err := cluster.StartProcess(c.Name(), logPath(dir), bin, argv[1:], vars)
	if err != nil {
		return nil, err
	}
	return &Running{Container: c, Argv: argv, Overridden: overridden, Process: p}, nil
}

// mount writes the container's ConfigMap and Secret volumes under dir and
// returns each mount path's local path, longest first.
func (l Launcher) mount(ctx context.Context, c Container, dir string, o Overrides) ([][2]string, error) {
	var mounts [][2]string
	for _, vm := range c.Spec.VolumeMounts {
		i := slices.IndexFunc(c.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			return nil, fmt.Errorf("%s mounts volume %q, which the pod does not have", c.Name(), vm.Name)
		}
		v := c.Volumes[i]
		local := filepath.Join(dir, vm.Name)
		var files map[string][]byte
		switch {
		case v.HostPath != nil:
			local = v.HostPath.Path
			if err := hostPath(v.HostPath); err != nil {
				return nil, fmt.Errorf("%s: volume %s: %w", c.Name(), v.Name, err)
			}
		case v.ConfigMap != nil:
			cm, err := l.Admin.CoreV1().ConfigMaps(c.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("%s: volume %s: %w", c.Name(), v.Name, err)
			}
			files = map[string][]byte{}
			for k, s := range cm.Data {
				files[k] = []byte(s)
			}
			files = selectItems(files, v.ConfigMap.Items)
		case v.Secret != nil:
			s, err := l.Admin.CoreV1().Secrets(c.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("%s: volume %s: %w", c.Name(), v.Name, err)
			}
			files = selectItems(s.Data, v.Secret.Items)
		default:
			return nil, fmt.Errorf("%s: volume %s is of a kind Launch does not emulate", c.Name(), v.Name)
		}
		for name, data := range files {
			if edit := o.Files[path.Join(vm.MountPath, name)]; edit != nil {
				var err error
				if data, err = edit(data); err != nil {
					return nil, fmt.Errorf("%s: override of %s: %w", c.Name(), path.Join(vm.MountPath, name), err)
				}
			}
			if err := writeFile(filepath.Join(local, name), data); err != nil {
				return nil, fmt.Errorf("%s: volume %s: %w", c.Name(), v.Name, err)
			}
		}
		mounts = append(mounts, [2]string{vm.MountPath, local})
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i][0]) > len(mounts[j][0]) })
	return mounts, nil
}

// hostPath checks or creates a host path as the kubelet does for its type.
func hostPath(h *corev1.HostPathVolumeSource) error {
	typ := corev1.HostPathUnset
	if h.Type != nil {
		typ = *h.Type
	}
	switch typ {
	case corev1.HostPathDirectoryOrCreate:
		return os.MkdirAll(h.Path, 0o755)
	case corev1.HostPathDirectory:
		if st, err := os.Stat(h.Path); err != nil || !st.IsDir() {
			return fmt.Errorf("host path %s is not a directory (type Directory): %v", h.Path, err)
		}
	}
	return nil
}

// selectItems keeps the keys a volume's items name, under their paths.
func selectItems(data map[string][]byte, items []corev1.KeyToPath) map[string][]byte {
	if len(items) == 0 {
		return data
	}
	out := map[string][]byte{}
	for _, it := range items {
		if d, ok := data[it.Key]; ok {
			out[it.Path] = d
		}
	}
	return out
}

// containerEnv is the container's environment as the kubelet sets it.
func containerEnv(c Container, o Overrides) (map[string]string, error) {
	env := map[string]string{}
	for _, e := range c.Spec.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expandVars(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			v, ok := o.FieldRefs[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				return nil, fmt.Errorf("%s: env %s comes from field %s, which the overrides do not give", c.Name(), e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		default:
			return nil, fmt.Errorf("%s: env %s has a source Launch does not emulate", c.Name(), e.Name)
		}
	}
	return env, nil
}

// expandVars expands $(NAME) from env, as the kubelet does in command,
// args and env values; a reference to an unknown name stays as it is.
func expandVars(s string, env map[string]string) string {
	for name, v := range env {
		s = strings.ReplaceAll(s, "$("+name+")", v)
	}
	return s
}

// mapPaths rewrites a container path in arg to its local path.
func mapPaths(arg string, mounts [][2]string) string {
	for _, m := range mounts {
		if i := strings.Index(arg, m[0]); i >= 0 {
			rest := arg[i+len(m[0]):]
			if rest == "" || strings.HasPrefix(rest, "/") {
				return arg[:i] + m[1] + rest
			}
		}
	}
	return arg
}

// overrideFlags replaces or appends the flags of o in argv.
func overrideFlags(argv []string, o map[string]string) ([]string, []string) {
	out := append([]string(nil), argv...)
	var overridden []string
	done := map[string]bool{}
	for i, arg := range out {
		name, _, ok := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		if v, has := o[name]; ok && has && strings.HasPrefix(arg, "--") {
			out[i] = "--" + name + "=" + v
			overridden = append(overridden, fmt.Sprintf("%s (chart: %s)", out[i], arg))
			done[name] = true
		}
	}
	names := make([]string, 0, len(o))
	for name := range o {
		if !done[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		out = append(out, "--"+name+"="+o[name])
		overridden = append(overridden, fmt.Sprintf("--%s=%s (added)", name, o[name]))
	}
	return out, overridden
}

// logPath is a log file of its own for each run of a container (a
// replaced node agent is a second run): dir.log, dir.2.log, ...
func logPath(dir string) string {
	path := dir + ".log"
	for i := 2; ; i++ {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return path
		}
		path = fmt.Sprintf("%s.%d.log", dir, i)
	}
}

// writeFile writes data at path, creating its directory.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// Stop stops the process (SIGTERM, then SIGKILL after grace).
func (r *Running) Stop(grace time.Duration) { r.Process.Stop(grace) }

// ProbeURL is the URL of the container's readiness probe (its liveness
// probe when it has none) at addr, the loopback host:port that the
// overrides gave the probed port: the path and scheme are the manifest's.
func (c Container) ProbeURL(addr string) (string, error) {
	p := c.Spec.ReadinessProbe
	if p == nil {
		p = c.Spec.LivenessProbe
	}
	if p == nil || p.HTTPGet == nil {
		return "", fmt.Errorf("%s has no HTTP probe", c.Name())
	}
	scheme := strings.ToLower(string(p.HTTPGet.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + addr + p.HTTPGet.Path, nil
}
