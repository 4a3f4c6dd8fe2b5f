/*
 * devmap.h - which of the container's devices (the ordinals of the
 * environment contract) a CUDA or NVML device, or the current context, is.
 *
 * Layer 4 (accounting): includes only the state (3) and what is below it.
 */
#ifndef TESSERA_DEVMAP_H
#define TESSERA_DEVMAP_H

#include "state.h"

#include <stddef.h>

/* Container device ordinal of the current context's device, or -1 when the
 * process is not enforcing, has no context, or the device is not ours. With
 * a single device it is that device's ordinal even without a context: the
 * driver then refuses the call, and the caller gives its reservation back. */
int hook_current_dev_slow(void);
static inline int hook_current_dev(void)
{
    int sole = atomic_load_explicit(&g_hook.sole_dev, memory_order_relaxed);
    return sole >= 0 ? sole : hook_current_dev_slow();
}
/* Container device ordinal of a CUDA device, or -1. */
int hook_dev_of_cuda(CUdevice dev);
/* A CUDA UUID as NVML and the environment write it: "GPU-xxxxxxxx-...". */
void hook_format_uuid(const CUuuid *u, char *out, size_t len);
/* Container device ordinal of an NVML device, or -1. */
int hook_dev_of_nvml(nvmlDevice_t dev);

#endif
