/*
 * tessera_env.h - the environment contract between Tessera's device plugin
 * (which sets a container's environment) and the interception library (which
 * reads it). The Go side is pkg/hookenv/hookenv.go; a cgo test there fails if
 * a name here ever differs from the Go constant.
 */
#ifndef TESSERA_ENV_H
#define TESSERA_ENV_H

/* Number of CUDA devices the container was given (1..TESSERA_REGION_MAX_DEVICES). */
#define TESSERA_ENV_DEVICE_COUNT "TESSERA_DEVICE_COUNT"

/* Prefix + decimal ordinal: that device's memory limit in MiB (positive). */
#define TESSERA_ENV_MEMORY_LIMIT_PREFIX "TESSERA_MEMORY_LIMIT_MIB_"

/* Prefix + ordinal: share of that device's SMs in percent (1-100); absent
 * means no core cap. */
#define TESSERA_ENV_CORE_LIMIT_PREFIX "TESSERA_CORE_LIMIT_"

/* Prefix + ordinal: the device's UUID ("GPU-..."), so that CUDA and NVML
 * devices, which may be numbered differently, map to the right limit. */
#define TESSERA_ENV_DEVICE_UUID_PREFIX "TESSERA_DEVICE_UUID_"

/* Path of the container's shared usage region (see tessera_region.h). */
#define TESSERA_ENV_REGION_FILE "TESSERA_REGION_FILE"

/* Optional, an operator's setting (the device plugin does not render it):
 * MiB charged for a context whose real footprint cannot be measured (no
 * NVML, or this process cannot be told apart in NVML's process list).
 * Default: the build setting CONTEXT_FALLBACK_MIB (256). */
#define TESSERA_ENV_CONTEXT_FALLBACK_MIB "TESSERA_CONTEXT_FALLBACK_MIB"
#define TESSERA_ENV_CONTEXT_FALLBACK_MAX_MIB 65536

/* Optional, for tests and benchmarks (the device plugin does not render
 * it): a fixed seed (decimal, 0-2^64-1) for the choice of the launches that
 * are timed on a capped device. Each launching thread of a process then
 * draws the same sequence in every run (the Nth thread to launch from
 * seed + N-1), where by default the seeds come from the clock, the thread
 * and the process. The sampling design holds whatever the seed. */
#define TESSERA_ENV_SAMPLE_SEED "TESSERA_SAMPLE_SEED"

/* Bounds of the values, shared by the parser and its tests. */
#define TESSERA_ENV_CORE_LIMIT_MIN 1
#define TESSERA_ENV_CORE_LIMIT_MAX 100

/* Path of the container's limits file (pkg/hookenv/limits.go is the format's
 * definition, src/limitsfile.c its C reader). When it is set, memory and core
 * limits come from that file only, never from the variables above: the
 * device plugin cannot know them at Allocate, where it renders the
 * environment, and the node agent writes the file once the kubelet has said
 * whose allocation it is. */
#define TESSERA_ENV_LIMITS_FILE "TESSERA_LIMITS_FILE"

/* The allocation ID the limits file must carry to be this container's; a
 * file with another ID (an earlier allocation of the same slots) is waited
 * past, never read as this one's. */
#define TESSERA_ENV_ALLOCATION_ID "TESSERA_ALLOCATION_ID"

/* Milliseconds to wait at CUDA initialisation for this allocation's limits
 * file (0-TESSERA_ENV_LIMITS_WAIT_MAX_MS). When it runs out, or the file is
 * malformed or a refusal, every CUDA call fails: never unlimited. */
#define TESSERA_ENV_LIMITS_WAIT_MS "TESSERA_LIMITS_WAIT_MS"
#define TESSERA_ENV_LIMITS_WAIT_MAX_MS 600000

/* The limits file's format: first line, and bounds. */
#define TESSERA_LIMITS_MAGIC "tessera-limits v1"
#define TESSERA_LIMITS_MAX_BYTES 4096
#define TESSERA_LIMITS_MAX_ID_LEN 64
#define TESSERA_LIMITS_MAX_UUID_LEN 96
#define TESSERA_LIMITS_MAX_REASON_LEN 512
#define TESSERA_LIMITS_MAX_MEMORY_MIB 1073741824

#endif
