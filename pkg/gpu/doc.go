// Package gpu discovers a node's NVIDIA GPUs through NVML and tracks their
// health, for the node agent (which publishes the inventory) and the device
// plugin (which advertises slots to the kubelet).
//
// Every NVML access goes through go-nvml's nvml.Interface, so the same code
// runs against the real driver (nvml.New, which dlopens libnvidia-ml.so.1
// only at Init) and against go-nvml's mock servers (MockLibrary), chosen by
// the node configuration in NewLibrary.
//
// # Health model
//
// A GPU is healthy when discovered. Run registers every GPU for NVML's
// XidCriticalError events and then reacts to them:
//
//   - An Xid that is not ignored marks its GPU unhealthy. Ignored by default
//     are the application errors that NVIDIA's k8s-device-plugin ignores
//     (13, 31, 43, 45, 68, 109: a faulty program, not a faulty GPU), plus
//     TrackerOptions.ExtraIgnoredXids.
//   - An event whose device handle is missing or whose UUID cannot be read
//     (NVML's "all devices" event) marks every GPU unhealthy, as NVIDIA's
//     plugin does: Tessera cannot tell which GPU failed, and handing out a
//     broken GPU is worse than briefly withholding good ones.
//   - A failing EventSet Wait (other than its timeout) also marks every GPU
//     unhealthy, again as NVIDIA's plugin does; Run then backs off one wait
//     timeout before waiting again so that a broken event set cannot spin.
//   - An unhealthy GPU becomes healthy again after TrackerOptions.Recovery of
//     quiet: every further critical Xid on it restarts the quiet period.
//     Recovery 0 means it stays unhealthy until the agent restarts (NVIDIA's
//     plugin never recovers a GPU).
//   - A GPU whose driver cannot deliver Xid events (GetSupportedEventTypes or
//     RegisterEvents answer NOT_SUPPORTED, or Xid is not among its supported
//     types) stays healthy, with a log line: it is simply not watched. Any
//     other registration failure marks it unhealthy until the agent restarts,
//     since it can no longer be watched and its state is unknown.
//
// Subscribers (Subscribe) get a coalesced notification whenever any GPU's
// health changes, and read the new state with GPUs.
package gpu
