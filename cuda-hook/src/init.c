/*
 * init.c - lazy start-up of the state (state.h). The library is preloaded
 * into every process of a container (shells included), so it does nothing
 * at load time: the driver symbols, the environment and the region are
 * looked at only when a process first calls into CUDA or NVML.
 *
 * Layer 3 (state): it initialises the state and nothing else. Modules above
 * that must react to start-up or fork do it themselves (hook_atfork_child,
 * and launch.c publishes its fast path on its first launch).
 */
#include "limitsfile.h"
#include "state.h"

#include <dlfcn.h>
#include <stdlib.h>

static pthread_once_t config_once = PTHREAD_ONCE_INIT;
static _Atomic(dlsym_fn) real_dlsym;

static const char *env_get(const char *name)
{
    return getenv(name);
}

void hook_atfork_child(void (*fn)(void))
{
    if (pthread_atfork(NULL, NULL, fn) != 0)
        hook_log("cannot register a fork handler");
}

/* A forked child shares the region mapping but none of the parent's CUDA
 * state: it starts with no record and no allocations. The lock may have
 * been held by a parent thread that does not exist here. */
static void after_fork_child(void)
{
    atomic_flag_clear(&g_hook.allocs_lock);
    region_forget_slot(&g_hook.region);
    table_clear(&g_hook.allocs);
}

static void config_init(void)
{
    char msg[1024];
    if (config_load(&g_hook.cfg, env_get, msg, sizeof(msg)) > 0)
        hook_log("%s", msg);
    /* Before the region is attached: it publishes the limits. The wait is
     * here, at the first CUDA or NVML call, because shells and other
     * processes that never touch CUDA must not wait for anything. */
    if (g_hook.cfg.limits_path != NULL && limits_load(&g_hook.cfg) != 0)
        hook_log("no GPU limits for this container, every CUDA call fails "
                 "(CUDA_ERROR_NOT_INITIALIZED): %s",
                 g_hook.cfg.refusal);
    if (g_hook.cfg.enforce) {
        char why[512] = "";
        if (region_attach(&g_hook.region, &g_hook.cfg, why, sizeof(why)) != 0) {
            hook_log("cannot map a usage region: passing through without limits");
            g_hook.cfg.enforce = 0;
        } else if (g_hook.region.private_map && g_hook.cfg.region_path != NULL) {
            hook_log("%s: limits hold per process, not per container", why);
        }
    }
    hook_atfork_child(after_fork_child);
    atomic_store_explicit(&g_hook.config_ready, 1, memory_order_release);
}

void hook_config(void)
{
    if (!atomic_load_explicit(&g_hook.config_ready, memory_order_acquire))
        pthread_once(&config_once, config_init);
}

/* dlsym itself is interposed (resolve.c), so the C library's is found by
 * version. */
dlsym_fn hook_dlsym_real(void)
{
    static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17"};
    dlsym_fn f = atomic_load_explicit(&real_dlsym, memory_order_acquire);
    if (__builtin_expect(f != NULL, 1))
        return f; /* every dlsym call of the process asks */
    for (size_t i = 0; f == NULL && i < sizeof(versions) / sizeof(versions[0]); i++)
        f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", versions[i]);
    if (f != NULL)
        atomic_store_explicit(&real_dlsym, f, memory_order_release);
    return f;
}

static void resolve(enum sym_lib lib, void *handle)
{
    dlsym_fn dlsym_real = hook_dlsym_real();
    for (int i = 0; i < SYM_COUNT; i++)
        if (hook_syms[i].lib == lib)
            g_hook.real[i] = dlsym_real ? dlsym_real(handle, hook_syms[i].name) : NULL;
}

static void *open_lib(const char *soname, int may_load)
{
    void *h = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
    if (h == NULL && may_load)
        h = dlopen(soname, RTLD_LAZY);
    dlerror(); /* a failed probe must not look like the caller's error */
    return h;
}

/* Loads one driver library's symbols once; a failed attempt (library not
 * loaded yet, may_load 0) is retried on the next call. The configuration is
 * read before ready is published, so whoever sees the symbols sees it too. */
static int load_lib(atomic_int *ready, enum sym_lib lib, const char *soname, int may_load)
{
    if (atomic_load_explicit(ready, memory_order_acquire))
        return 1;
    if (hook_loading)
        return 0;
    pthread_mutex_lock(&g_hook.init_mu);
    hook_loading = 1;
    if (!atomic_load(ready)) {
        void *h = open_lib(soname, may_load);
        if (h != NULL) {
            resolve(lib, h);
            hook_config();
            atomic_store_explicit(ready, 1, memory_order_release);
        }
    }
    hook_loading = 0;
    pthread_mutex_unlock(&g_hook.init_mu);
    return atomic_load(ready);
}

int hook_cuda_load(int may_load)
{
    return load_lib(&g_hook.cuda_ready, LIB_CUDA, "libcuda.so.1", may_load);
}

int hook_nvml_load(int may_load)
{
    return load_lib(&g_hook.nvml_ready, LIB_NVML, "libnvidia-ml.so.1", may_load);
}

/* On a normal exit the driver frees the process's memory: give the record
 * back so the container's usage drops at once, not at the next reclaim. */
__attribute__((destructor)) static void hook_fini(void)
{
    if (atomic_load(&g_hook.config_ready) && g_hook.cfg.enforce)
        region_leave(&g_hook.region);
}
