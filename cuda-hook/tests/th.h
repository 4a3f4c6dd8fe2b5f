/*
 * th.h - helpers shared by the hook tests that run against the fake driver:
 * configuring a container's environment, making a context current, reading
 * the region the hook maintains, and filling a device up to its limit.
 */
#ifndef TESSERA_TH_H
#define TESSERA_TH_H

#include "check.h"
#include "fakecuda.h"
#include "tessera_cuda_abi.h"
#include "tessera_nvml_abi.h"

#include <stdint.h>
#include <sys/types.h>

#define TH_MIB ((size_t)1024 * 1024)
/* What a context takes in the fake driver (FAKECUDA_CONTEXT_MIB, which
 * run.sh sets), and so what the hook must charge for it. */
#define TH_OVERHEAD th_context_bytes()

uint64_t th_context_bytes(void);

/* A fresh directory for this test's region files. */
const char *th_tmpdir(void);
/* A path in th_tmpdir() named after name. */
const char *th_path(const char *name);
/* Sets the container environment for n devices (mem_mib[i], core[i] = 0 for
 * no cap) with UUIDs of the fake devices in CUDA order, and region path. */
void th_container_env(const char *region, int n, const unsigned *mem_mib, const unsigned *core);
/* cuInit, retain device dev's primary context and make it current. */
int th_make_current(int dev);
/* Container usage of device dev in the region file, and its live records. */
uint64_t th_region_used(const char *region, int dev);
int th_region_records(const char *region);

/* One way to allocate and free; state is the allocator's own. */
struct th_allocator {
    const char *name;
    CUresult (*alloc)(void *state, uint64_t size, uint64_t *key);
    CUresult (*release)(void *state, uint64_t key);
    CUresult (*finish)(void *state); /* after all frees (a pool trim), or NULL */
    void *state;
};

/*
 * Allocates chunk-sized pieces until the first failure and checks that it is
 * CUDA_ERROR_OUT_OF_MEMORY reached at the limit (within one chunk); then
 * frees everything and checks that the fake driver's counter and the region
 * are back where they started.
 */
void th_check_fill(const struct th_allocator *a, uint64_t chunk, uint64_t limit,
                   const char *region);

/* Runs fn in a child process; returns its exit status (or 128+signal). */
int th_in_child(int (*fn)(void *), void *arg);

#endif
