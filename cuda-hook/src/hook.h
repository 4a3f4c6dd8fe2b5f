/*
 * hook.h - state and helpers shared by the interception library's sources.
 * Everything here is hidden (-fvisibility=hidden); only the wrappers marked
 * TESSERA_EXPORT are visible to the dynamic linker.
 */
#ifndef TESSERA_HOOK_H
#define TESSERA_HOOK_H

#include "env.h"
#include "spin.h"
#include "region.h"
#include "symbols.h"
#include "table.h"
#include "tessera_cuda_abi.h"
#include "tessera_nvml_abi.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define TESSERA_EXPORT __attribute__((visibility("default")))

/* CUdevice ordinals the device map caches (a node has at most a few dozen). */
#define HOOK_MAX_CUDA_DEVICES 64
#define HOOK_SOLE_UNKNOWN (-2)
/* devmap value: not computed yet. */
#define DEVMAP_UNKNOWN (-2)

struct hook {
    atomic_int cuda_ready;   /* real CUDA symbols resolved */
    atomic_int nvml_ready;   /* real NVML symbols resolved */
    atomic_int config_ready; /* cfg and region set up */
    pthread_mutex_t init_mu;
    struct tessera_config cfg;
    struct region region;
    pthread_mutex_t mu;      /* the pool registry */
    atomic_flag allocs_lock; /* allocs (spin.h) */
    struct table allocs;
    /* Container ordinal of every context when CUDA sees a single device of
     * the container (then no driver call is needed to find the current
     * device); -1 when it sees several, HOOK_SOLE_UNKNOWN until known. */
    _Atomic int sole_dev;
    _Atomic int devmap[HOOK_MAX_CUDA_DEVICES];
    void *real[SYM_COUNT];
};

extern struct hook g_hook;

/* Resolves the real driver symbols; may_load allows loading libcuda.so.1 when
 * it is not loaded yet. Returns 1 when they are available. */
int hook_cuda_load(int may_load);
int hook_nvml_load(int may_load);
/* Reads the environment and attaches the region, once. */
void hook_config(void);

/* The real function behind a wrapped or used symbol, or NULL. */
static inline void *hook_real(enum sym_id id)
{
    if (__builtin_expect(!atomic_load_explicit(&g_hook.cuda_ready, memory_order_acquire), 0))
        hook_cuda_load(1);
    return g_hook.real[id];
}

static inline void *hook_real_nvml(enum sym_id id)
{
    if (__builtin_expect(!atomic_load_explicit(&g_hook.nvml_ready, memory_order_acquire), 0))
        hook_nvml_load(1);
    return g_hook.real[id];
}

/* Typed access to the real function, e.g. REAL(cuMemAlloc_v2)(p, n). */
#define REAL(name) ((__typeof__(&name))hook_real(SYM_##name))
#define REAL_NVML(name) ((__typeof__(&name))hook_real_nvml(SYM_##name))

/* The C library's dlsym, found without going through our own. */
typedef void *(*dlsym_fn)(void *handle, const char *name);
dlsym_fn hook_dlsym_real(void);
/* Set while this thread loads a driver library: its constructors may call
 * dlsym, which must then not try to load it again. */
extern _Thread_local int hook_loading;

/* Hooks for the other sources: publish the launch fast path after loading,
 * forget per-process state in a forked child, resync pools after frees. */
void launch_publish_fast(void);
void timing_forget_all(void);
void pool_forget_all(void);
void context_forget_all(void);
void pool_resync_all(void);
void pool_resync(CUmemoryPool pool);
void pool_register(CUmemoryPool pool, int dev);
void pool_unregister(CUmemoryPool pool);

/* Writes one line to stderr, prefixed with the library's name. */
void hook_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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

/* After region_reserve refused (rc): resyncs pools and tries again, or
 * says why not. 0 or CUDA_ERROR_OUT_OF_MEMORY. */
CUresult hook_reserve_again(int dev, uint64_t bytes, int rc);

/* Reserves bytes on container device dev; 0 or CUDA_ERROR_OUT_OF_MEMORY.
 * Inline: every allocation takes it, and it almost always succeeds at once. */
static inline CUresult hook_reserve(int dev, uint64_t bytes)
{
    int rc = region_reserve(&g_hook.region, dev, bytes, g_hook.cfg.mem_limit[dev]);
    return rc == 0 ? CUDA_SUCCESS : hook_reserve_again(dev, bytes, rc);
}
static inline void hook_release(int dev, uint64_t bytes)
{
    region_release(&g_hook.region, dev, bytes);
}
/* Remembers what an allocation charged; call after the driver succeeded. */
void hook_track(uint8_t kind, uint64_t key, int dev, uint64_t size, uint64_t aux);
/* Forgets an allocation; returns 1 and the record if it was tracked. */
int hook_untrack(uint8_t kind, uint64_t key, struct alloc_rec *out);
/* Forgets the first record of kind with that aux (a graph's nodes). */
int hook_untrack_by_aux(uint8_t kind, uint64_t aux, struct alloc_rec *out);
/* Undoes what a tracked record charged, by its kind. */
void hook_release_rec(const struct alloc_rec *rec);
/* Puts a record back after the driver refused to free it. */
void hook_retrack(const struct alloc_rec *rec);

#endif
