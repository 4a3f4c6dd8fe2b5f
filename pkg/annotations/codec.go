package annotations

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Version is the version every structured annotation is written with.
const Version = "v1"

// Bounds on what an inventory may claim for one GPU: far above any real GPU,
// low enough that sums over a cluster cannot overflow.
const (
	maxGPUMemoryMiB = 1 << 30 // 1 PiB
	maxSlots        = 1024
)

// Inventory is the Node annotation listing the node's GPUs.
type Inventory struct {
	Version string     `json:"version"`
	GPUs    []vgpu.GPU `json:"gpus"`
}

// Assignment is the Pod annotation that says which GPUs and slots the
// scheduler extender chose for each container of the pod.
type Assignment struct {
	Version    string                `json:"version"`
	Node       string                `json:"node"`
	Containers []ContainerAssignment `json:"containers"`
}

// ContainerAssignment is one container's GPUs, in CUDA ordinal order.
type ContainerAssignment struct {
	Name    string           `json:"name"`
	Devices []AssignedDevice `json:"devices"`
}

// AssignedDevice is one GPU slot given to a container with its limits.
type AssignedDevice struct {
	UUID string `json:"uuid"`
	// SlotID is the kubelet device ID of the slot (vgpu.SlotID).
	SlotID    string `json:"slotID"`
	MemoryMiB int64  `json:"memoryMiB"`
	// Cores is the core cap in percent; 0 means no cap.
	Cores int `json:"cores"`
}

// Allocated is the Pod annotation that records which containers the device
// plugin has already served, so a restarted node agent does not serve a
// container twice.
type Allocated struct {
	Version    string   `json:"version"`
	Containers []string `json:"containers"`
}

// EncodeInventory renders an inventory annotation value.
func EncodeInventory(inv Inventory) (string, error) {
	inv.Version = Version
	return encode("inventory", inv)
}

// DecodeInventory parses and checks an inventory annotation value.
func DecodeInventory(s string) (Inventory, error) {
	var inv Inventory
	if err := decode("inventory", s, &inv, func() string { return inv.Version }); err != nil {
		return Inventory{}, err
	}
	seen := make(map[string]bool, len(inv.GPUs))
	for i, g := range inv.GPUs {
		switch {
		case g.UUID == "":
			return Inventory{}, fmt.Errorf("decode inventory: GPU %d has no UUID", i)
		case seen[g.UUID]:
			return Inventory{}, fmt.Errorf("decode inventory: GPU %s is listed twice", g.UUID)
		case g.MemoryMiB < 0 || g.Slots < 0 || g.Cores < 0:
			return Inventory{}, fmt.Errorf("decode inventory: GPU %s has negative capacity", g.UUID)
		case g.MemoryMiB > maxGPUMemoryMiB || g.Slots > maxSlots || g.Cores > vgpu.FullCores:
			return Inventory{}, fmt.Errorf("decode inventory: GPU %s claims %d MiB, %d slots, %d%% cores: beyond any real GPU",
				g.UUID, g.MemoryMiB, g.Slots, g.Cores)
		}
		seen[g.UUID] = true
	}
	return inv, nil
}

// EncodeAssignment renders an assignment annotation value.
func EncodeAssignment(a Assignment) (string, error) {
	a.Version = Version
	return encode("assignment", a)
}

// DecodeAssignment parses and checks an assignment annotation value.
func DecodeAssignment(s string) (Assignment, error) {
	var a Assignment
	if err := decode("assignment", s, &a, func() string { return a.Version }); err != nil {
		return Assignment{}, err
	}
	if a.Node == "" {
		return Assignment{}, fmt.Errorf("decode assignment: no node")
	}
	names := make(map[string]bool, len(a.Containers))
	for _, c := range a.Containers {
		if names[c.Name] {
			return Assignment{}, fmt.Errorf("decode assignment: container %q is listed twice", c.Name)
		}
		names[c.Name] = true
		if err := checkContainerAssignment(c); err != nil {
			return Assignment{}, fmt.Errorf("decode assignment: %w", err)
		}
	}
	return a, nil
}

func checkContainerAssignment(c ContainerAssignment) error {
	if len(c.Devices) == 0 {
		return fmt.Errorf("container %q has no devices", c.Name)
	}
	// Container names become directory names on the host (the usage
	// region), so only Kubernetes' own container names are accepted.
	if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 {
		return fmt.Errorf("container name %q: %s", c.Name, strings.Join(errs, "; "))
	}
	gpus := make(map[string]bool, len(c.Devices))
	for _, d := range c.Devices {
		uuid, _, err := vgpu.ParseSlotID(d.SlotID)
		switch {
		case err != nil:
			return fmt.Errorf("container %q: %w", c.Name, err)
		case uuid != d.UUID:
			return fmt.Errorf("container %q: slot %q is not on GPU %q", c.Name, d.SlotID, d.UUID)
		case gpus[d.UUID]:
			return fmt.Errorf("container %q: GPU %s is given twice", c.Name, d.UUID)
		case d.MemoryMiB <= 0 || d.Cores < 0 || d.Cores > vgpu.FullCores:
			return fmt.Errorf("container %q: GPU %s has memory %d MiB and cores %d%%", c.Name, d.UUID, d.MemoryMiB, d.Cores)
		}
		gpus[d.UUID] = true
	}
	return nil
}

// Container returns the assignment of the named container.
func (a Assignment) Container(name string) (ContainerAssignment, bool) {
	for _, c := range a.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return ContainerAssignment{}, false
}

// EncodeAllocated renders an allocated annotation value; containers are
// sorted so that equal records encode equally.
func EncodeAllocated(a Allocated) (string, error) {
	a.Version = Version
	a.Containers = slices.Sorted(slices.Values(a.Containers))
	a.Containers = slices.Compact(a.Containers)
	return encode("allocated", a)
}

// DecodeAllocated parses an allocated annotation value.
func DecodeAllocated(s string) (Allocated, error) {
	var a Allocated
	if err := decode("allocated", s, &a, func() string { return a.Version }); err != nil {
		return Allocated{}, err
	}
	return a, nil
}

// Has reports whether the named container has been served.
func (a Allocated) Has(container string) bool { return slices.Contains(a.Containers, container) }

func encode(what string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", what, err)
	}
	return string(b), nil
}

// decode parses strictly (unknown fields are an error, so that a newer
// writer's data is never half-read) and checks the version.
func decode(what, s string, v any, version func() string) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	if dec.More() {
		return fmt.Errorf("decode %s: trailing data after the JSON value", what)
	}
	if got := version(); got != Version {
		return fmt.Errorf("decode %s: version %q is not supported (want %q)", what, got, Version)
	}
	return nil
}
