package vgpu

// Check answers Place's question without building the placement: nil when
// Place would succeed, Place's own error when it would not. It is for
// callers that ask node after node whether a pod fits (the extender's
// filter) and need the reason only where it does not: on a node where the
// pod fits it takes the allocation-free path of MaxReplicas (fitsOnce, which
// the property and fuzz tests hold equal to Place) instead of Place's
// greedy choice and placement.
func Check(devices []DeviceState, req PodRequest) error {
	if req.Validate() == nil && checkNames(&req) == nil && checkInventory(devices) == nil && fitsOnce(devices, &req) {
		return nil
	}
	_, err := Place(devices, req)
	return err
}
