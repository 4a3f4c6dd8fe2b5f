/*
 * fakecuda.h - what the fake driver (libcuda.so.1 built from cuda-hook/fake)
 * offers tests beyond the driver API: its own counters, to prove that what
 * the hook charged matches what the "driver" handed out.
 *
 * Configuration (environment, read at cuInit):
 *   FAKECUDA_DEVICE_COUNT       devices (1-8, default 1)
 *   FAKECUDA_DEVICE_MEMORY_MIB  memory per device (default 16384)
 *   FAKECUDA_KERNEL_US          simulated duration of each launch (default 0)
 *   FAKECUDA_CONTEXT_MIB        device memory each context takes (default 0)
 *   FAKECUDA_EVENTS_WORK_ONLY   1: the time between two events is the simulated
 *                               work submitted between them, without the idle
 *                               time of the timeline (which follows the wall
 *                               clock, and so the machine's speed); the
 *                               benchmark's instruction counts use it
 *   FAKECUDA_REVERSE_UUIDS      1: device i gets the UUID of device n-1-i
 *   FAKENVML_REVERSE            1: NVML lists devices in reverse order
 *   FAKENVML_PID_OFFSET         NVML reports this process as getpid() + offset,
 *                               as a host sees a container's process (default 0)
 *   FAKENVML_OTHER_PROCS        other processes NVML lists on every device
 *   FAKENVML_CHURN              1: a new other process appears at every listing
 *   FAKENVML_NO_PROCESSES       1: process listings are not supported
 */
#ifndef TESSERA_FAKECUDA_H
#define TESSERA_FAKECUDA_H

#include <stddef.h>
#include <stdint.h>

/* Bytes the fake device dev has handed out (allocations and pool reserves). */
uint64_t fakecuda_used_bytes(int dev);
/* Contexts live on fake device dev (what NVML lists this process for). */
int fakecuda_context_count(int dev);
/* Allocations of every kind still live. */
uint64_t fakecuda_live_allocations(void);
/* GPU time the fake device has spent on launches up to now, in ns. */
uint64_t fakecuda_busy_ns(int dev);
/* Launches that reached the fake driver. */
uint64_t fakecuda_launch_count(void);
/* UUID string ("GPU-...") of CUDA device dev, as NVML would print it. */
void fakecuda_uuid(int dev, char *buf, size_t len);
/* The fake's own function for an exported name, bypassing every lookup the
 * hook intercepts (the baseline of the benchmark). */
void *fakecuda_raw_proc(const char *name);

#endif
