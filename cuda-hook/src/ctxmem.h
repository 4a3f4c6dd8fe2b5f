/*
 * ctxmem.h - how much device memory a context really takes, as the driver
 * reports it: the process's own used memory in NVML's list of the device's
 * compute processes (nvmlDeviceGetComputeRunningProcesses), read just before
 * and just after the driver creates the context. The number is this
 * process's alone, so other processes allocating at the same time, in this
 * container or another, do not disturb it (cuMemGetInfo's free memory is the
 * whole device's, and would). See README.md, "Contexts".
 */
#ifndef TESSERA_CTXMEM_H
#define TESSERA_CTXMEM_H

#include "tessera_cuda_abi.h"

#include <stdint.h>

/* NVML's pids of the device just before the context, for finding ours. */
#define CTXMEM_MAX_PIDS 64

struct ctxmem_probe {
    int ordinal;          /* container device */
    int ok;               /* the "before" reading worked */
    uint64_t used_before; /* NVML's used memory of this process */
    uint64_t mine_before; /* what the region charged this process on the device */
    unsigned npids;
    unsigned pids[CTXMEM_MAX_PIDS];
};

/* Reads the "before" side; call with the device's context lock held. */
void ctxmem_before(struct ctxmem_probe *p, CUdevice dev, int ordinal);
/* After the driver created the context, for which reserved bytes were
 * charged meanwhile: sets *bytes to what it takes and returns 0, or returns
 * -1 when it cannot be measured (the caller keeps its fallback). */
int ctxmem_after(const struct ctxmem_probe *p, CUdevice dev, uint64_t reserved, uint64_t *bytes);
/* In a forked child: its host pid is not its parent's. */
void ctxmem_forget(void);

#endif
