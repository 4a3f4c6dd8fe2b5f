/*
 * init.c - lazy start-up. The library is preloaded into every process of a
 * container (shells included), so it does nothing at load time: the driver
 * symbols, the environment and the region are looked at only when a process
 * first calls into CUDA or NVML.
 */
#include "hook.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hook g_hook = {
    .init_mu = PTHREAD_MUTEX_INITIALIZER,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .allocs_lock = ATOMIC_FLAG_INIT,
    .sole_dev = HOOK_SOLE_UNKNOWN,
};

_Thread_local int hook_loading;

static pthread_once_t config_once = PTHREAD_ONCE_INIT;

void hook_log(const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "tessera-hook: %s\n", line);
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

/* A forked child shares the region mapping but none of the parent's CUDA
 * state: it starts with no record, no allocations and no contexts. The lock
 * may have been held by a parent thread that does not exist here. */
static void after_fork_child(void)
{
    pthread_mutex_init(&g_hook.mu, NULL);
    atomic_flag_clear(&g_hook.allocs_lock);
    region_forget_slot(&g_hook.region);
    table_clear(&g_hook.allocs);
    context_forget_all();
    pool_forget_all();
    timing_forget_all();
}

static void config_init(void)
{
    char msg[1024];
    if (config_load(&g_hook.cfg, env_get, msg, sizeof(msg)) > 0)
        hook_log("%s", msg);
    if (g_hook.cfg.enforce) {
        char why[512] = "";
        if (region_attach(&g_hook.region, &g_hook.cfg, why, sizeof(why)) != 0) {
            hook_log("cannot map a usage region: passing through without limits");
            g_hook.cfg.enforce = 0;
        } else if (g_hook.region.private_map && g_hook.cfg.region_path != NULL) {
            hook_log("%s: limits hold per process, not per container", why);
        }
    }
    if (pthread_atfork(NULL, NULL, after_fork_child) != 0)
        hook_log("cannot register a fork handler");
    atomic_store_explicit(&g_hook.config_ready, 1, memory_order_release);
}

void hook_config(void)
{
    if (!atomic_load_explicit(&g_hook.config_ready, memory_order_acquire))
        pthread_once(&config_once, config_init);
}

static void resolve(enum sym_lib lib, void *handle)
{
    dlsym_fn real_dlsym = hook_dlsym_real();
    for (int i = 0; i < SYM_COUNT; i++)
        if (hook_syms[i].lib == lib)
            g_hook.real[i] = real_dlsym ? real_dlsym(handle, hook_syms[i].name) : NULL;
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
 * loaded yet, may_load 0) is retried on the next call. */
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
            if (lib == LIB_CUDA)
                launch_publish_fast();
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
