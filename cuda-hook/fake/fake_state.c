/*
 * fake_state.c - the fake driver's devices, contexts and bookkeeping, and the
 * test-only counters of fakecuda.h.
 */
#include "fake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fake g_fake = {.mu = PTHREAD_MUTEX_INITIALIZER};
_Thread_local struct fake_ctx *fake_current __attribute__((tls_model("initial-exec")));

uint64_t fake_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return dflt;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    return (errno != 0 || *end != '\0') ? dflt : n;
}

static void configure(void)
{
    uint64_t n = env_u64("FAKECUDA_DEVICE_COUNT", 1);
    uint64_t mib = env_u64("FAKECUDA_DEVICE_MEMORY_MIB", 16384);
    g_fake.ndev = n < 1 ? 1 : n > FAKE_MAX_DEVICES ? FAKE_MAX_DEVICES : (int)n;
    g_fake.kernel_ns = env_u64("FAKECUDA_KERNEL_US", 0) * 1000;
    g_fake.context_bytes = env_u64("FAKECUDA_CONTEXT_MIB", 0) * FAKE_MIB;
    g_fake.reverse_uuids = env_u64("FAKECUDA_REVERSE_UUIDS", 0) == 1;
    g_fake.events_work_only = env_u64("FAKECUDA_EVENTS_WORK_ONLY", 0) == 1;
    for (int i = 0; i < g_fake.ndev; i++) {
        struct fake_device *d = &g_fake.dev[i];
        d->total = mib * FAKE_MIB;
        d->next_va = 0x7f0000000000ULL + ((uint64_t)i << 40);
        d->primary = (struct fake_ctx){.magic = FAKE_CTX_MAGIC, .dev = i};
        d->default_pool = (struct fake_pool){.magic = FAKE_POOL_MAGIC, .dev = i};
    }
    g_fake.initialised = 1;
}

FAKE_EXPORT CUresult cuInit(unsigned int flags)
{
    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_fake.mu);
    if (!g_fake.initialised)
        configure();
    pthread_mutex_unlock(&g_fake.mu);
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDriverGetVersion(int *version)
{
    if (version == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *version = 12080;
    return CUDA_SUCCESS;
}

static CUresult check_dev(CUdevice dev)
{
    if (!g_fake.initialised)
        return CUDA_ERROR_NOT_INITIALIZED;
    return (dev >= 0 && dev < g_fake.ndev) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

FAKE_EXPORT CUresult cuDeviceGet(CUdevice *dev, int ordinal)
{
    CUresult rc = check_dev(ordinal);
    if (rc == CUDA_SUCCESS && dev == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS)
        *dev = ordinal;
    return rc;
}

FAKE_EXPORT CUresult cuDeviceGetCount(int *count)
{
    if (!g_fake.initialised)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (count == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *count = g_fake.ndev;
    return CUDA_SUCCESS;
}

static void uuid_bytes(int dev, unsigned char out[16])
{
    int id = g_fake.reverse_uuids ? g_fake.ndev - 1 - dev : dev;
    memset(out, 0, 16);
    out[0] = 0xfa;
    out[1] = 0x4e;
    out[15] = (unsigned char)id;
}

FAKE_EXPORT CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
    CUresult rc = check_dev(dev);
    if (rc != CUDA_SUCCESS || uuid == NULL)
        return rc != CUDA_SUCCESS ? rc : CUDA_ERROR_INVALID_VALUE;
    uuid_bytes(dev, (unsigned char *)uuid->bytes);
    return CUDA_SUCCESS;
}

FAKE_EXPORT void fakecuda_uuid(int dev, char *buf, size_t len)
{
    unsigned char b[16];
    uuid_bytes(dev, b);
    snprintf(buf, len, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

FAKE_EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    CUresult rc = check_dev(dev);
    if (rc != CUDA_SUCCESS || bytes == NULL)
        return rc != CUDA_SUCCESS ? rc : CUDA_ERROR_INVALID_VALUE;
    *bytes = g_fake.dev[dev].total;
    return CUDA_SUCCESS;
}

int fake_current_dev(CUresult *err)
{
    struct fake_ctx *c = fake_current;
    if (!g_fake.initialised) {
        *err = CUDA_ERROR_NOT_INITIALIZED;
        return -1;
    }
    if (c == NULL || c->magic != FAKE_CTX_MAGIC) {
        *err = CUDA_ERROR_INVALID_CONTEXT;
        return -1;
    }
    return c->dev;
}

CUresult fake_take(int dev, uint64_t bytes)
{
    struct fake_device *d = &g_fake.dev[dev];
    if (bytes > d->total - d->used)
        return CUDA_ERROR_OUT_OF_MEMORY;
    d->used += bytes;
    return CUDA_SUCCESS;
}

void fake_give(int dev, uint64_t bytes)
{
    g_fake.dev[dev].used -= bytes;
}

CUresult fake_context_open(int dev)
{
    CUresult rc = fake_take(dev, g_fake.context_bytes);
    g_fake.dev[dev].contexts += rc == CUDA_SUCCESS;
    return rc;
}

void fake_context_close(int dev)
{
    fake_give(dev, g_fake.context_bytes);
    g_fake.dev[dev].contexts--;
}

FAKE_EXPORT int fakecuda_context_count(int dev)
{
    if (dev < 0 || dev >= FAKE_MAX_DEVICES)
        return 0;
    pthread_mutex_lock(&g_fake.mu);
    int n = g_fake.dev[dev].contexts;
    pthread_mutex_unlock(&g_fake.mu);
    return n;
}

uint64_t fake_new_va(int dev, uint64_t size)
{
    uint64_t va = g_fake.dev[dev].next_va;
    g_fake.dev[dev].next_va += (size + 511) / 512 * 512 + 512;
    return va;
}

int fake_record(const struct fake_alloc *a)
{
    if (g_fake.nallocs == g_fake.cap_allocs) {
        size_t cap = g_fake.cap_allocs ? g_fake.cap_allocs * 2 : 1024;
        struct fake_alloc *n = realloc(g_fake.allocs, cap * sizeof(*n));
        if (n == NULL)
            return -1;
        g_fake.allocs = n;
        g_fake.cap_allocs = cap;
    }
    g_fake.allocs[g_fake.nallocs++] = *a;
    return 0;
}

/* Newest first: a free usually follows its allocation closely. */
int fake_forget(uint64_t key, int kind, struct fake_alloc *out)
{
    for (size_t i = g_fake.nallocs; i-- > 0;) {
        if (g_fake.allocs[i].key == key && g_fake.allocs[i].kind == kind) {
            *out = g_fake.allocs[i];
            g_fake.allocs[i] = g_fake.allocs[--g_fake.nallocs];
            return 1;
        }
    }
    return 0;
}

FAKE_EXPORT uint64_t fakecuda_used_bytes(int dev)
{
    if (dev < 0 || dev >= FAKE_MAX_DEVICES)
        return 0;
    pthread_mutex_lock(&g_fake.mu);
    uint64_t used = g_fake.dev[dev].used;
    pthread_mutex_unlock(&g_fake.mu);
    return used;
}

FAKE_EXPORT uint64_t fakecuda_live_allocations(void)
{
    pthread_mutex_lock(&g_fake.mu);
    uint64_t n = g_fake.nallocs;
    pthread_mutex_unlock(&g_fake.mu);
    return n;
}

FAKE_EXPORT uint64_t fakecuda_launch_count(void)
{
    return atomic_load(&g_fake.launches);
}
