/*
 * launch.c - kernel and graph launches. Each wrapper is one load and a tail
 * call through a pointer: the pointer starts at the paced path (which also
 * performs the lazy start-up) and is switched to the driver's function by
 * the first paced launch that finds no device of the container capped.
 */
#include "hook.h"
#include "timing.h"

static void publish_slow(void);
static atomic_int decided; /* publish_slow has run */

/* The process's first paced launches: resolves the driver, and once it has
 * the function, decides whether launches stay paced. */
static __attribute__((noinline)) void *first_launch(enum sym_id id)
{
    void *real = hook_real(id);
    if (real != NULL)
        publish_slow();
    return real;
}

/* The driver's function behind a paced wrapper. Every paced launch asks,
 * and only the first ones do more than a load: once decided is set the
 * driver was resolved before it (acquire pairs with publish_slow's
 * exchange), so the function is read without REAL()'s check. */
static inline void *paced_real(enum sym_id id)
{
    if (__builtin_expect(!atomic_load_explicit(&decided, memory_order_acquire), 0))
        return first_launch(id);
    return g_hook.real[id];
}

typedef __typeof__(&cuLaunchKernel) launch_kernel_fn;
typedef __typeof__(&cuLaunchKernelEx) launch_ex_fn;
typedef __typeof__(&cuLaunchCooperativeKernel) launch_coop_fn;
typedef __typeof__(&cuGraphLaunch) graph_launch_fn;

/* A _ptsz launch on stream 0 runs on the calling thread's default stream. */
static CUstream effective(CUstream s, int ptsz)
{
    return (ptsz && s == NULL) ? CU_STREAM_PER_THREAD : s;
}

/* Each launch kind in two parts: the common case, where pacing is done
 * before the launch and the wrapper ends in a tail call to the driver, and
 * the launch chosen to be timed (out of line, so that the common case keeps
 * nothing on its stack and the tail call stays possible). */

static __attribute__((noinline)) CUresult
kernel_timed(launch_kernel_fn real, CUstream ps, CUfunction f, unsigned gx, unsigned gy,
             unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shm, CUstream s,
             void **params, void **extra)
{
    struct pace_ticket t;
    pace_begin(ps, &t);
    CUresult rc = real(f, gx, gy, gz, bx, by, bz, shm, s, params, extra);
    pace_end(&t, rc);
    return rc;
}

static inline __attribute__((always_inline)) CUresult kernel(int ptsz, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                       unsigned by, unsigned bz, unsigned shm, CUstream s, void **params,
                       void **extra)
{
    launch_kernel_fn real =
        (launch_kernel_fn)paced_real(ptsz ? SYM_cuLaunchKernel_ptsz : SYM_cuLaunchKernel);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (__builtin_expect(pace_launch(effective(s, ptsz)), 1))
        return real(f, gx, gy, gz, bx, by, bz, shm, s, params, extra);
    return kernel_timed(real, effective(s, ptsz), f, gx, gy, gz, bx, by, bz, shm, s, params,
                        extra);
}

static CUresult paced_kernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                             unsigned by, unsigned bz, unsigned shm, CUstream s, void **params,
                             void **extra)
{
    return kernel(0, f, gx, gy, gz, bx, by, bz, shm, s, params, extra);
}

static CUresult paced_kernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                  unsigned by, unsigned bz, unsigned shm, CUstream s, void **params,
                                  void **extra)
{
    return kernel(1, f, gx, gy, gz, bx, by, bz, shm, s, params, extra);
}

static __attribute__((noinline)) CUresult ex_timed(launch_ex_fn real, CUstream ps,
                                                   const CUlaunchConfig *cfg, CUfunction f,
                                                   void **params, void **extra)
{
    struct pace_ticket t;
    pace_begin(ps, &t);
    CUresult rc = real(cfg, f, params, extra);
    pace_end(&t, rc);
    return rc;
}

static inline __attribute__((always_inline)) CUresult ex(int ptsz, const CUlaunchConfig *cfg, CUfunction f, void **params, void **extra)
{
    launch_ex_fn real =
        (launch_ex_fn)paced_real(ptsz ? SYM_cuLaunchKernelEx_ptsz : SYM_cuLaunchKernelEx);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (cfg == NULL || __builtin_expect(pace_launch(effective(cfg->hStream, ptsz)), 1))
        return real(cfg, f, params, extra);
    return ex_timed(real, effective(cfg->hStream, ptsz), cfg, f, params, extra);
}

static CUresult paced_ex(const CUlaunchConfig *cfg, CUfunction f, void **params, void **extra)
{
    return ex(0, cfg, f, params, extra);
}

static CUresult paced_ex_ptsz(const CUlaunchConfig *cfg, CUfunction f, void **params, void **extra)
{
    return ex(1, cfg, f, params, extra);
}

static __attribute__((noinline)) CUresult
coop_timed(launch_coop_fn real, CUstream ps, CUfunction f, unsigned gx, unsigned gy, unsigned gz,
           unsigned bx, unsigned by, unsigned bz, unsigned shm, CUstream s, void **params)
{
    struct pace_ticket t;
    pace_begin(ps, &t);
    CUresult rc = real(f, gx, gy, gz, bx, by, bz, shm, s, params);
    pace_end(&t, rc);
    return rc;
}

static inline __attribute__((always_inline)) CUresult coop(int ptsz, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                     unsigned by, unsigned bz, unsigned shm, CUstream s, void **params)
{
    launch_coop_fn real = (launch_coop_fn)paced_real(ptsz ? SYM_cuLaunchCooperativeKernel_ptsz
                                                          : SYM_cuLaunchCooperativeKernel);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (__builtin_expect(pace_launch(effective(s, ptsz)), 1))
        return real(f, gx, gy, gz, bx, by, bz, shm, s, params);
    return coop_timed(real, effective(s, ptsz), f, gx, gy, gz, bx, by, bz, shm, s, params);
}

static CUresult paced_coop(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                           unsigned by, unsigned bz, unsigned shm, CUstream s, void **params)
{
    return coop(0, f, gx, gy, gz, bx, by, bz, shm, s, params);
}

static CUresult paced_coop_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                unsigned by, unsigned bz, unsigned shm, CUstream s, void **params)
{
    return coop(1, f, gx, gy, gz, bx, by, bz, shm, s, params);
}

static __attribute__((noinline)) CUresult graph_timed(graph_launch_fn real, CUstream ps,
                                                      CUgraphExec exec, CUstream s)
{
    struct pace_ticket t;
    pace_begin(ps, &t);
    CUresult rc = real(exec, s);
    pace_end(&t, rc);
    return rc;
}

static inline __attribute__((always_inline)) CUresult graph(int ptsz, CUgraphExec exec, CUstream s)
{
    graph_launch_fn real =
        (graph_launch_fn)paced_real(ptsz ? SYM_cuGraphLaunch_ptsz : SYM_cuGraphLaunch);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (__builtin_expect(pace_launch(effective(s, ptsz)), 1))
        return real(exec, s);
    return graph_timed(real, effective(s, ptsz), exec, s);
}

static CUresult paced_graph(CUgraphExec exec, CUstream s)
{
    return graph(0, exec, s);
}

static CUresult paced_graph_ptsz(CUgraphExec exec, CUstream s)
{
    return graph(1, exec, s);
}

static _Atomic(launch_kernel_fn) go_kernel = paced_kernel, go_kernel_ptsz = paced_kernel_ptsz;
static _Atomic(launch_ex_fn) go_ex = paced_ex, go_ex_ptsz = paced_ex_ptsz;
static _Atomic(launch_coop_fn) go_coop = paced_coop, go_coop_ptsz = paced_coop_ptsz;
static _Atomic(graph_launch_fn) go_graph = paced_graph, go_graph_ptsz = paced_graph_ptsz;

/* Switches one pointer to the driver, if the driver has the function. */
#define GO_DIRECT(ptr, sym)                                                                        \
    do {                                                                                           \
        if (g_hook.real[sym] != NULL)                                                              \
            atomic_store(&ptr, (__typeof__(atomic_load(&ptr)))g_hook.real[sym]);                   \
    } while (0)

/* Called by paced launches, after REAL() resolved the driver, which reads
 * the configuration first. Done here rather than by start-up, which sits
 * in a lower layer and knows nothing of launches; it costs the first launch
 * of an uncapped process one pass through the paced path. */
static void publish_slow(void)
{
    if (atomic_exchange(&decided, 1))
        return;
    if (g_hook.cfg.enforce && g_hook.cfg.any_core_cap)
        return;
    GO_DIRECT(go_kernel, SYM_cuLaunchKernel);
    GO_DIRECT(go_kernel_ptsz, SYM_cuLaunchKernel_ptsz);
    GO_DIRECT(go_ex, SYM_cuLaunchKernelEx);
    GO_DIRECT(go_ex_ptsz, SYM_cuLaunchKernelEx_ptsz);
    GO_DIRECT(go_coop, SYM_cuLaunchCooperativeKernel);
    GO_DIRECT(go_coop_ptsz, SYM_cuLaunchCooperativeKernel_ptsz);
    GO_DIRECT(go_graph, SYM_cuGraphLaunch);
    GO_DIRECT(go_graph_ptsz, SYM_cuGraphLaunch_ptsz);
}

/* Relaxed loads suffice: the driver function the pointer may name is fully
 * loaded before the pointer is published, and on both supported machines a
 * dependent call through a loaded pointer cannot run ahead of the load. */
#define GO(ptr) atomic_load_explicit(&ptr, memory_order_relaxed)

TESSERA_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                       unsigned bx, unsigned by, unsigned bz, unsigned shm,
                                       CUstream s, void **params, void **extra)
{
    return GO(go_kernel)(f, gx, gy, gz, bx, by, bz, shm, s, params, extra);
}

TESSERA_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                            unsigned bx, unsigned by, unsigned bz, unsigned shm,
                                            CUstream s, void **params, void **extra)
{
    return GO(go_kernel_ptsz)(f, gx, gy, gz, bx, by, bz, shm, s, params, extra);
}

TESSERA_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *cfg, CUfunction f, void **params,
                                         void **extra)
{
    return GO(go_ex)(cfg, f, params, extra);
}

TESSERA_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *cfg, CUfunction f,
                                              void **params, void **extra)
{
    return GO(go_ex_ptsz)(cfg, f, params, extra);
}

TESSERA_EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned gx, unsigned gy,
                                                  unsigned gz, unsigned bx, unsigned by,
                                                  unsigned bz, unsigned shm, CUstream s,
                                                  void **params)
{
    return GO(go_coop)(f, gx, gy, gz, bx, by, bz, shm, s, params);
}

TESSERA_EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned gx, unsigned gy,
                                                       unsigned gz, unsigned bx, unsigned by,
                                                       unsigned bz, unsigned shm, CUstream s,
                                                       void **params)
{
    return GO(go_coop_ptsz)(f, gx, gy, gz, bx, by, bz, shm, s, params);
}

TESSERA_EXPORT CUresult cuGraphLaunch(CUgraphExec exec, CUstream s)
{
    return GO(go_graph)(exec, s);
}

TESSERA_EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec exec, CUstream s)
{
    return GO(go_graph_ptsz)(exec, s);
}
