/*
 * state.h - the library's one process-wide state, its start-up and its
 * logger. Everything above this layer reads the configuration, the region
 * and the real driver functions from here; nothing here knows about the
 * layers above, which is what keeps the dependencies of src/ one-way.
 *
 * Layer 3 (state): includes only config (1) and region (2). state.c defines
 * the state and the logger, init.c fills the state in lazily. See README.md,
 * "Layers".
 */
#ifndef TESSERA_STATE_H
#define TESSERA_STATE_H

#include "env.h"
#include "region.h"
#include "symbols.h"
#include "table.h"
#include "tessera_cuda_abi.h"
#include "tessera_nvml_abi.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* CUdevice ordinals the device map caches (a node has at most a few dozen). */
#define HOOK_MAX_CUDA_DEVICES 64
#define HOOK_SOLE_UNKNOWN (-2)

struct hook {
    atomic_int cuda_ready;   /* real CUDA symbols resolved */
    atomic_int nvml_ready;   /* real NVML symbols resolved */
    atomic_int config_ready; /* cfg and region set up */
    pthread_mutex_t init_mu;
    struct tessera_config cfg;
    struct region region;
    atomic_flag allocs_lock; /* allocs (spin.h) */
    struct table allocs;     /* what each allocation charged (account.c) */
    /* Container ordinal of every context when CUDA sees a single device of
     * the container (then no driver call is needed to find the current
     * device); -1 when it sees several, HOOK_SOLE_UNKNOWN until known. */
    _Atomic int sole_dev;
    /* CUDA device -> container ordinal + 2 (devmap.c); 0 = not known yet. */
    _Atomic int devmap[HOOK_MAX_CUDA_DEVICES];
    void *real[SYM_COUNT];
};

extern struct hook g_hook;

/* Writes one line to stderr, prefixed with the library's name. */
void hook_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* init.c: resolves the real driver symbols; may_load allows loading
 * libcuda.so.1 when it is not loaded yet. Returns 1 when they are available. */
int hook_cuda_load(int may_load);
int hook_nvml_load(int may_load);
/* init.c: reads the environment and attaches the region, once. */
void hook_config(void);
/* init.c: runs fn in a forked child. Modules above keep per-process state
 * (contexts, pools, timing events) that a child does not inherit; each
 * registers its own reset, so start-up need not know them. */
void hook_atfork_child(void (*fn)(void));

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

#endif
