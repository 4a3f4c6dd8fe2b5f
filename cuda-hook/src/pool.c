/*
 * pool.c - stream-ordered allocations. A memory pool keeps freed memory for
 * reuse, so what a pool costs its device is the memory it has reserved from
 * the driver, not the sum of live allocations (poolacct.h keeps that
 * charge): an allocation first reserves its own size (the most the pool can
 * grow by), and once the driver answered, that reservation is replaced by
 * the pool's actual growth.
 */
#include "hook.h"

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
        dev = pool_dev(pool, dev);
    CUresult rc = hook_reserve(dev, q->size);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = call_real(q);
    if (rc != CUDA_SUCCESS)
        hook_release(dev, q->size);
    else if (pool != NULL && pool_settle_growth(pool, dev, q->size) == 0)
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
