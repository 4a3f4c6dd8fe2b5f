/* ctxmem.c - see ctxmem.h. */
#include "ctxmem.h"

#include "devmap.h"
#include "state.h"
#include "tessera_env.h"

#include <string.h>

typedef __typeof__(&nvmlDeviceGetComputeRunningProcesses_v3) list_fn;

/* This process's pid as NVML reports it (the host's PID namespace, which a
 * container cannot read its own pid in): found once, from the one pid that
 * appears in a device's list while this process creates its first context
 * there. 0: not known yet. */
static _Atomic unsigned host_pid;
static atomic_int nvml_state; /* 0: not tried, 1: initialised, -1: unusable */
static atomic_int warned_ambiguous, warned_unmeasured;

/* nvmlInit is reference-counted, so the application's own init and
 * shutdown are unaffected; ours is never undone (it lives as long as the
 * process's contexts may). */
static int nvml_ready(void)
{
    int s = atomic_load(&nvml_state);
    if (s != 0)
        return s > 0;
    __typeof__(&nvmlInit_v2) init = REAL_NVML(nvmlInit_v2);
    s = (init != NULL && init() == NVML_SUCCESS) ? 1 : -1;
    atomic_store(&nvml_state, s);
    return s > 0;
}

static int handle_of(CUdevice dev, nvmlDevice_t *h)
{
    CUuuid u;
    char s[64];
    __typeof__(&cuDeviceGetUuid) get = REAL(cuDeviceGetUuid);
    __typeof__(&nvmlDeviceGetHandleByUUID) by_uuid = REAL_NVML(nvmlDeviceGetHandleByUUID);
    if (get == NULL || by_uuid == NULL || get(&u, dev) != CUDA_SUCCESS)
        return -1;
    hook_format_uuid(&u, s, sizeof(s));
    return by_uuid(s, h) == NVML_SUCCESS ? 0 : -1;
}

/* The device's compute processes into infos (room for n); their count, or
 * -1 (no NVML, an error, or more processes than room: not measurable). */
static int list(CUdevice dev, nvmlProcessInfo_t *infos, unsigned n)
{
    nvmlDevice_t h;
    list_fn f = REAL_NVML(nvmlDeviceGetComputeRunningProcesses_v3);
    if (f == NULL)
        f = REAL_NVML(nvmlDeviceGetComputeRunningProcesses_v2);
    if (f == NULL || !nvml_ready() || handle_of(dev, &h) != 0)
        return -1;
    unsigned count = n;
    return f(h, &count, infos) == NVML_SUCCESS && count <= n ? (int)count : -1;
}

void ctxmem_before(struct ctxmem_probe *p, CUdevice dev, int ordinal)
{
    nvmlProcessInfo_t infos[CTXMEM_MAX_PIDS];
    memset(p, 0, sizeof(*p));
    p->ordinal = ordinal;
    p->mine_before = region_mine(&g_hook.region, ordinal);
    int n = list(dev, infos, CTXMEM_MAX_PIDS);
    if (n < 0)
        return;
    unsigned me = atomic_load(&host_pid);
    for (int i = 0; i < n; i++) {
        p->pids[i] = infos[i].pid;
        if (me != 0 && infos[i].pid == me)
            p->used_before = infos[i].usedGpuMemory;
    }
    p->npids = (unsigned)n;
    p->ok = p->used_before != NVML_VALUE_NOT_AVAILABLE;
}

static int was_listed(const struct ctxmem_probe *p, unsigned pid)
{
    for (unsigned i = 0; i < p->npids; i++)
        if (p->pids[i] == pid)
            return 1;
    return 0;
}

/* Our entry in the "after" list. Not knowing our host pid yet, it is the one
 * pid new since "before": ours must be new (we had no context on the device),
 * and when another process started one meanwhile there are two, and we do
 * not guess. */
static int find_me(const struct ctxmem_probe *p, const nvmlProcessInfo_t *infos, int n)
{
    unsigned me = atomic_load(&host_pid);
    int found = -1, fresh = 0;
    for (int i = 0; i < n; i++) {
        if (me != 0 && infos[i].pid == me)
            return i;
        if (me == 0 && !was_listed(p, infos[i].pid)) {
            found = i;
            fresh++;
        }
    }
    if (me != 0 || fresh != 1) {
        if (me == 0 && fresh > 1 && atomic_exchange(&warned_ambiguous, 1) == 0)
            hook_log("%d processes started a context on the device at once: cannot tell which "
                     "is this one, so this context is charged the fallback",
                     fresh);
        return -1;
    }
    atomic_store(&host_pid, infos[found].pid);
    return found;
}

int ctxmem_after(const struct ctxmem_probe *p, CUdevice dev, uint64_t reserved, uint64_t *bytes)
{
    nvmlProcessInfo_t infos[CTXMEM_MAX_PIDS];
    int n = p->ok ? list(dev, infos, CTXMEM_MAX_PIDS) : -1;
    int i = n < 0 ? -1 : find_me(p, infos, n);
    if (i < 0 || infos[i].usedGpuMemory == NVML_VALUE_NOT_AVAILABLE) {
        if (atomic_exchange(&warned_unmeasured, 1) == 0)
            hook_log("cannot measure a context's memory through NVML: charging %llu MiB per "
                     "context (%s)",
                     (unsigned long long)(g_hook.cfg.context_fallback >> 20),
                     TESSERA_ENV_CONTEXT_FALLBACK_MIB);
        return -1;
    }
    uint64_t grown = infos[i].usedGpuMemory > p->used_before
                         ? infos[i].usedGpuMemory - p->used_before
                         : 0;
    /* What other threads of this process allocated on the device meanwhile
     * grew NVML's number too; the region knows it (less our reservation). */
    uint64_t now = region_mine(&g_hook.region, p->ordinal);
    uint64_t mine = now > p->mine_before ? now - p->mine_before : 0;
    uint64_t others = mine > reserved ? mine - reserved : 0;
    *bytes = grown > others ? grown - others : 0;
    return 0;
}

void ctxmem_forget(void)
{
    atomic_store(&host_pid, 0);
}
