/*
 * pool.c - stream-ordered allocations. A memory pool keeps freed memory for
 * reuse, so what a pool costs its device is the memory it has reserved from
 * the driver, not the sum of live allocations. Each pool is charged its
 * reserved size (CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT): an allocation first
 * reserves its own size (the most the pool can grow by), and once the driver
 * answered, that reservation is replaced by the pool's actual growth. Frees
 * and trims re-read the pool and release what it gave back.
 */
#include "hook.h"

#define POOL_MAX 64

struct pool_ent {
    CUmemoryPool pool;
    int dev;
    uint64_t charged; /* reserved bytes already charged to the region */
};

/* Guarded by g_hook.mu. */
static struct pool_ent pools[POOL_MAX];
static _Atomic int pool_count; /* read without the lock by pool_resync_all */

static struct pool_ent *find(CUmemoryPool pool)
{
    for (int i = 0; i < pool_count; i++)
        if (pools[i].pool == pool)
            return &pools[i];
    return NULL;
}

static struct pool_ent *find_or_add(CUmemoryPool pool, int dev)
{
    struct pool_ent *e = find(pool);
    if (e == NULL && pool_count < POOL_MAX) {
        e = &pools[pool_count++];
        *e = (struct pool_ent){.pool = pool, .dev = dev, .charged = 0};
    }
    return e;
}

/* Brings a pool's charge to its reserved size; stores the change (for the
 * caller to apply to the region) and returns 0, or -1 if the pool cannot be
 * read. */
static int sync_locked(struct pool_ent *e, int64_t *delta)
{
    uint64_t reserved = 0;
    __typeof__(&cuMemPoolGetAttribute) get = REAL(cuMemPoolGetAttribute);
    if (get == NULL ||
        get(e->pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &reserved) != CUDA_SUCCESS)
        return -1;
    *delta = (int64_t)(reserved - e->charged);
    e->charged = reserved;
    return 0;
}

static void apply(int dev, int64_t delta)
{
    if (delta > 0)
        region_charge(&g_hook.region, dev, (uint64_t)delta);
    else if (delta < 0)
        hook_release(dev, (uint64_t)-delta);
}

void pool_resync(CUmemoryPool pool)
{
    pthread_mutex_lock(&g_hook.mu);
    struct pool_ent *e = find(pool);
    int64_t delta = 0;
    if (e != NULL && sync_locked(e, &delta) == 0)
        apply(e->dev, delta);
    pthread_mutex_unlock(&g_hook.mu);
}

void pool_resync_all(void)
{
    /* Most processes never create a pool: their cuMemGetInfo takes no lock. */
    if (atomic_load_explicit(&pool_count, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&g_hook.mu);
    for (int i = 0; i < pool_count; i++) {
        int64_t delta = 0;
        if (sync_locked(&pools[i], &delta) == 0)
            apply(pools[i].dev, delta);
    }
    pthread_mutex_unlock(&g_hook.mu);
}

void pool_forget_all(void)
{
    pool_count = 0;
}

/* Replaces the reservation of size by the pool's growth. Returns 0, or -1
 * when the pool cannot be tracked (then the allocation is charged by size). */
static int settle_growth(CUmemoryPool pool, int dev, uint64_t size)
{
    int rc = -1;
    int64_t delta = 0;
    pthread_mutex_lock(&g_hook.mu);
    struct pool_ent *e = find_or_add(pool, dev);
    if (e != NULL && sync_locked(e, &delta) == 0) {
        apply(e->dev, delta - (int64_t)size);
        rc = 0;
    }
    pthread_mutex_unlock(&g_hook.mu);
    return rc;
}

/* Device a pool belongs to: known from its creation, else the current one. */
static int dev_of_pool(CUmemoryPool pool, int current)
{
    pthread_mutex_lock(&g_hook.mu);
    struct pool_ent *e = find(pool);
    int dev = e != NULL ? e->dev : current;
    pthread_mutex_unlock(&g_hook.mu);
    return dev;
}

struct async_req {
    CUdeviceptr *dptr;
    size_t size;
    CUmemoryPool pool; /* NULL: the device's current pool */
    CUstream stream;
    int ptsz;
};

static CUresult call_real(const struct async_req *q)
{
    if (q->pool != NULL) {
        __typeof__(&cuMemAllocFromPoolAsync) f =
            q->ptsz ? REAL(cuMemAllocFromPoolAsync_ptsz) : REAL(cuMemAllocFromPoolAsync);
        return f ? f(q->dptr, q->size, q->pool, q->stream) : CUDA_ERROR_NOT_FOUND;
    }
    __typeof__(&cuMemAllocAsync) f = q->ptsz ? REAL(cuMemAllocAsync_ptsz) : REAL(cuMemAllocAsync);
    return f ? f(q->dptr, q->size, q->stream) : CUDA_ERROR_NOT_FOUND;
}

/* Pool an allocation will come from, or NULL when it should be charged by
 * size: during stream capture nothing is allocated from the pool (the
 * allocation becomes a graph node), so pool growth would miss it. */
static CUmemoryPool source_pool(const struct async_req *q)
{
    CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_NONE;
    __typeof__(&cuStreamIsCapturing) capturing = REAL(cuStreamIsCapturing);
    CUstream s = (q->ptsz && q->stream == NULL) ? CU_STREAM_PER_THREAD : q->stream;
    if (capturing == NULL || capturing(s, &st) != CUDA_SUCCESS ||
        st != CU_STREAM_CAPTURE_STATUS_NONE)
        return NULL;
    if (q->pool != NULL)
        return q->pool;
    CUdevice cud;
    CUmemoryPool pool = NULL;
    __typeof__(&cuCtxGetDevice) get_dev = REAL(cuCtxGetDevice);
    __typeof__(&cuDeviceGetMemPool) get_pool = REAL(cuDeviceGetMemPool);
    if (get_dev == NULL || get_pool == NULL || get_dev(&cud) != CUDA_SUCCESS ||
        get_pool(&pool, cud) != CUDA_SUCCESS)
        return NULL;
    return pool;
}

static CUresult alloc_async(const struct async_req *q)
{
    int dev = hook_current_dev();
    if (dev < 0 || q->dptr == NULL)
        return call_real(q);
    CUmemoryPool pool = source_pool(q);
    if (pool != NULL)
        dev = dev_of_pool(pool, dev);
    CUresult rc = hook_reserve(dev, q->size);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = call_real(q);
    if (rc != CUDA_SUCCESS)
        hook_release(dev, q->size);
    else if (pool != NULL && settle_growth(pool, dev, q->size) == 0)
        hook_track(KIND_POOL_PTR, *q->dptr, dev, 0, (uint64_t)(uintptr_t)pool);
    else
        hook_track(KIND_PTR, *q->dptr, dev, q->size, 0);
    return rc;
}

TESSERA_EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream stream)
{
    struct async_req q = {.dptr = dptr, .size = bytesize, .stream = stream};
    return alloc_async(&q);
}

TESSERA_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream stream)
{
    struct async_req q = {.dptr = dptr, .size = bytesize, .stream = stream, .ptsz = 1};
    return alloc_async(&q);
}

TESSERA_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize,
                                                CUmemoryPool pool, CUstream stream)
{
    struct async_req q = {.dptr = dptr, .size = bytesize, .pool = pool, .stream = stream};
    return pool == NULL ? call_real(&q) : alloc_async(&q);
}

TESSERA_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                                     CUmemoryPool pool, CUstream stream)
{
    struct async_req q = {
        .dptr = dptr, .size = bytesize, .pool = pool, .stream = stream, .ptsz = 1};
    return pool == NULL ? call_real(&q) : alloc_async(&q);
}

void pool_register(CUmemoryPool pool, int dev)
{
    pthread_mutex_lock(&g_hook.mu);
    find_or_add(pool, dev);
    pthread_mutex_unlock(&g_hook.mu);
}

/* A destroyed pool has returned all it reserved. */
void pool_unregister(CUmemoryPool pool)
{
    pthread_mutex_lock(&g_hook.mu);
    struct pool_ent *e = find(pool);
    if (e != NULL) {
        hook_release(e->dev, e->charged);
        *e = pools[--pool_count];
    }
    pthread_mutex_unlock(&g_hook.mu);
}
