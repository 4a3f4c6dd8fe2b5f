// Package annotations is the one codec for every annotation Tessera reads or
// writes: the node's GPU inventory, a pod's GPU assignment, the record of
// which of its containers the device plugin has served, and the pod options
// a user sets. Each value that carries structure is versioned JSON.
package annotations

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultPrefix is the annotation prefix when the config names none.
const DefaultPrefix = "tessera.io"

// Keys are the annotation keys under one configurable prefix.
type Keys struct {
	// Inventory (Node): the GPUs of the node, written by the node agent.
	Inventory string
	// Assignment (Pod): the GPUs and slots chosen for each container,
	// written by the scheduler extender before it binds the pod.
	Assignment string
	// Allocated (Pod): the containers the device plugin has served.
	Allocated string
	// Usage (Node): the device memory each container on the node really
	// holds, as its usage region says, written by the node agent.
	Usage string
	// Pod options, set by users.
	GPUModelInclude string
	GPUModelExclude string
	GPUUUIDInclude  string
	GPUUUIDExclude  string
	NodePolicy      string
	GPUPolicy       string
	// Compat says which other scheduler's pod annotations are read beside
	// these (hami.go); the zero value reads Tessera's only.
	Compat Compat
}

// NewKeys derives every key from a prefix such as "tessera.io".
func NewKeys(prefix string) (Keys, error) {
	if errs := validation.IsDNS1123Subdomain(prefix); len(errs) > 0 {
		return Keys{}, fmt.Errorf("annotation prefix %q: %s", prefix, strings.Join(errs, "; "))
	}
	k := func(name string) string { return prefix + "/" + name }
	return Keys{
		Inventory:       k("gpu-inventory"),
		Assignment:      k("gpu-assignment"),
		Allocated:       k("gpu-allocated"),
		Usage:           k("gpu-usage"),
		GPUModelInclude: k("gpu-model-include"),
		GPUModelExclude: k("gpu-model-exclude"),
		GPUUUIDInclude:  k("gpu-uuid-include"),
		GPUUUIDExclude:  k("gpu-uuid-exclude"),
		NodePolicy:      k("node-policy"),
		GPUPolicy:       k("gpu-policy"),
	}, nil
}

// DefaultKeys are the keys under DefaultPrefix.
func DefaultKeys() Keys {
	k, err := NewKeys(DefaultPrefix)
	if err != nil {
		panic(err) // DefaultPrefix is a constant that is valid.
	}
	return k
}
