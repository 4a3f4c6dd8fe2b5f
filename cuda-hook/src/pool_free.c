/*
 * pool_free.c - frees of stream-ordered allocations and the pool lifecycle.
 * See pool.c for how pools are charged.
 */
#include "hook.h"

static CUresult free_async(CUdeviceptr dptr, CUstream stream, int ptsz)
{
    __typeof__(&cuMemFreeAsync) real = ptsz ? REAL(cuMemFreeAsync_ptsz) : REAL(cuMemFreeAsync);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    struct alloc_rec rec;
    int had = hook_untrack(KIND_POOL_PTR, dptr, &rec) || hook_untrack(KIND_PTR, dptr, &rec);
    CUresult rc = real(dptr, stream);
    if (had && rc == CUDA_SUCCESS)
        hook_release_rec(&rec);
    else if (had)
        hook_retrack(&rec);
    return rc;
}

TESSERA_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream)
{
    return free_async(dptr, stream, 0);
}

TESSERA_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream)
{
    return free_async(dptr, stream, 1);
}

/* Remembers which device a new pool draws on. */
TESSERA_EXPORT CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *props)
{
    __typeof__(&cuMemPoolCreate) real = REAL(cuMemPoolCreate);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(pool, props);
    if (rc != CUDA_SUCCESS || pool == NULL || props == NULL ||
        props->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return rc;
    int dev = hook_dev_of_cuda(props->location.id);
    if (dev >= 0)
        pool_register(*pool, dev);
    return rc;
}

TESSERA_EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    __typeof__(&cuMemPoolDestroy) real = REAL(cuMemPoolDestroy);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(pool);
    if (rc == CUDA_SUCCESS)
        pool_unregister(pool);
    return rc;
}

TESSERA_EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
    __typeof__(&cuMemPoolTrimTo) real = REAL(cuMemPoolTrimTo);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(pool, minBytesToKeep);
    if (rc == CUDA_SUCCESS)
        pool_resync(pool);
    return rc;
}
