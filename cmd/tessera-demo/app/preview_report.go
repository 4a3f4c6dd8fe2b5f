package app

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// report writes the demo's findings in plain text.
type report struct {
	out io.Writer
	cfg config.Config
}

func (r report) section(title string) { fmt.Fprintf(r.out, "\n== %s\n", title) }

func (r report) header(opts PreviewOptions, gpus []vgpu.GPU) {
	fmt.Fprintln(r.out, "Tessera in-process preview: the real node agent (GPU tracker, device plugin,")
	fmt.Fprintln(r.out, "node publisher) against a FAKE API server, a FAKE kubelet and go-nvml MOCK GPUs,")
	fmt.Fprintln(r.out, "all in this one process. The pods are annotated here as the scheduler extender would.")
	r.section(fmt.Sprintf("GPUs of node %s (mock %s)", opts.NodeName, opts.Machine))
	for _, g := range gpus {
		fmt.Fprintf(r.out, "  %d  %s  %-28s %6d MiB  %d slots  NUMA %d  %s\n",
			g.Index, g.UUID, g.Model, g.MemoryMiB, g.Slots, g.NUMANode, healthWord(g.Healthy))
	}
}

func (r report) node(node *corev1.Node, when string) {
	r.section(fmt.Sprintf("Node %s %s", node.Name, when))
	key := r.cfg.Keys().Inventory
	inv, err := annotations.DecodeInventory(node.Annotations[key])
	if err != nil {
		fmt.Fprintf(r.out, "  annotation %s: cannot be decoded: %v\n", key, err)
	} else {
		healthy := 0
		var sick []string
		for _, g := range inv.GPUs {
			if g.Healthy {
				healthy++
			} else {
				sick = append(sick, fmt.Sprintf("GPU %d healthy=false", g.Index))
			}
		}
		fmt.Fprintf(r.out, "  annotation %s: version %s, %d GPUs, %d healthy", key, inv.Version, len(inv.GPUs), healthy)
		if len(sick) > 0 {
			fmt.Fprintf(r.out, " (%s)", strings.Join(sick, ", "))
		}
		fmt.Fprintln(r.out)
	}
	for _, name := range []string{r.cfg.Resources.Memory, r.cfg.Resources.Cores} {
		rn := corev1.ResourceName(name)
		c, a := node.Status.Capacity[rn], node.Status.Allocatable[rn]
		fmt.Fprintf(r.out, "  %s: capacity %s, allocatable %s\n", name, c.String(), a.String())
	}
}

func (r report) kubeletDevices(devs []*pluginapi.Device) {
	healthy := countHealthy(devs)
	fmt.Fprintf(r.out, "\n  fake kubelet, from ListAndWatch: %d %s devices, %d healthy\n", len(devs), r.cfg.Resources.VGPU, healthy)
	unhealthyByGPU := map[string]int{}
	for _, d := range devs {
		if d.GetHealth() != pluginapi.Healthy {
			uuid, _, err := vgpu.ParseSlotID(d.GetID())
			if err != nil {
				uuid = d.GetID()
			}
			unhealthyByGPU[uuid]++
		}
	}
	for _, uuid := range slices.Sorted(maps.Keys(unhealthyByGPU)) {
		fmt.Fprintf(r.out, "    %d slots of %s are %s\n", unhealthyByGPU[uuid], uuid, pluginapi.Unhealthy)
	}
}

func (r report) pod(pod *corev1.Pod, allocs []fakekubelet.ContainerAllocation) {
	r.section(fmt.Sprintf("Pod %s/%s admitted by the fake kubelet", pod.Namespace, pod.Name))
	for _, a := range allocs {
		via := "Allocate"
		if a.Preferred {
			via = "GetPreferredAllocation + Allocate"
		}
		fmt.Fprintf(r.out, "  container %s: slots %s (%s)\n", a.Container, strings.Join(a.Devices, ", "), via)
		env := a.Response.GetEnvs()
		for _, k := range slices.Sorted(maps.Keys(env)) {
			fmt.Fprintf(r.out, "    env   %s=%s\n", k, env[k])
		}
		for _, m := range a.Response.GetMounts() {
			mode := "rw"
			if m.GetReadOnly() {
				mode = "ro"
			}
			fmt.Fprintf(r.out, "    mount %s <- %s (%s)\n", m.GetContainerPath(), m.GetHostPath(), mode)
		}
		// The limits are not in the environment: the node agent writes
		// them once the kubelet's PodResources API names the container.
		switch l, ok, err := deviceplugin.ContainerLimits(a.Response); {
		case err != nil:
			fmt.Fprintf(r.out, "    limits unreadable: %v\n", err)
		case !ok:
			fmt.Fprintf(r.out, "    limits not written yet\n")
		case l.Refused != "":
			fmt.Fprintf(r.out, "    limits refused: %s\n", l.Refused)
		default:
			for i, d := range l.Devices {
				cores := "no core cap"
				if d.CorePercent > 0 {
					cores = fmt.Sprintf("%d%% of its cores", d.CorePercent)
				}
				fmt.Fprintf(r.out, "    limits file: device %d %s: %d MiB, %s\n", i, d.UUID, d.MemoryMiB, cores)
			}
		}
	}
}

func healthWord(healthy bool) string {
	if healthy {
		return "healthy"
	}
	return "UNHEALTHY"
}
