/*
 * fake_pool.c - stream-ordered allocation of the fake driver. A pool reserves
 * device memory in 2 MiB steps as its allocations grow and keeps it after
 * frees until trimmed or destroyed, like the real driver with a release
 * threshold above zero.
 */
#include "fake.h"

#include <stdlib.h>

#define POOL_GRANULE (2 * FAKE_MIB)

static uint64_t round_up(uint64_t v)
{
    return (v + POOL_GRANULE - 1) / POOL_GRANULE * POOL_GRANULE;
}

CUresult fake_pool_alloc(struct fake_pool *p, uint64_t size, CUdeviceptr *dptr)
{
    if (size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    p->used += size;
    if (p->used > p->reserved) {
        uint64_t grow = round_up(p->used - p->reserved);
        if (fake_take(p->dev, grow) != CUDA_SUCCESS) {
            p->used -= size;
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        p->reserved += grow;
    }
    *dptr = fake_new_va(p->dev, size);
    struct fake_alloc a = {
        .key = *dptr, .dev = p->dev, .kind = FK_PTR, .pool = p, .pool_bytes = size};
    if (fake_record(&a) != 0) {
        p->used -= size;
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    return CUDA_SUCCESS;
}

static CUresult alloc_from(struct fake_pool *p, CUdeviceptr *dptr, size_t size)
{
    if (dptr == NULL || p == NULL || p->magic != FAKE_POOL_MAGIC)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_fake.mu);
    CUresult rc = fake_pool_alloc(p, size, dptr);
    pthread_mutex_unlock(&g_fake.mu);
    return rc;
}

static CUresult alloc_default(CUdeviceptr *dptr, size_t size)
{
    CUresult err = CUDA_SUCCESS;
    int dev = fake_current_dev(&err);
    return dev < 0 ? err : alloc_from(&g_fake.dev[dev].default_pool, dptr, size);
}

FAKE_EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream stream)
{
    (void)stream;
    return alloc_default(dptr, bytesize);
}

FAKE_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream stream)
{
    (void)stream;
    return alloc_default(dptr, bytesize);
}

FAKE_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                             CUstream stream)
{
    (void)stream;
    return alloc_from((struct fake_pool *)pool, dptr, bytesize);
}

FAKE_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                                  CUmemoryPool pool, CUstream stream)
{
    (void)stream;
    return alloc_from((struct fake_pool *)pool, dptr, bytesize);
}

FAKE_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream)
{
    (void)stream;
    return fake_free_kind(dptr, FK_PTR);
}

FAKE_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream)
{
    (void)stream;
    return fake_free_kind(dptr, FK_PTR);
}

FAKE_EXPORT CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev)
{
    if (!g_fake.initialised)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (pool == NULL || dev < 0 || dev >= g_fake.ndev)
        return CUDA_ERROR_INVALID_VALUE;
    *pool = (CUmemoryPool)&g_fake.dev[dev].default_pool;
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *props)
{
    if (pool == NULL || props == NULL || props->location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
        props->location.id < 0 || props->location.id >= g_fake.ndev)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *p = (struct fake_pool){.magic = FAKE_POOL_MAGIC, .dev = props->location.id};
    *pool = (CUmemoryPool)p;
    return CUDA_SUCCESS;
}

static void trim_locked(struct fake_pool *p, uint64_t keep)
{
    uint64_t target = round_up(p->used > keep ? p->used : keep);
    if (p->reserved > target) {
        fake_give(p->dev, p->reserved - target);
        p->reserved = target;
    }
}

FAKE_EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
    struct fake_pool *p = (struct fake_pool *)pool;
    if (p == NULL || p->magic != FAKE_POOL_MAGIC)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_fake.mu);
    trim_locked(p, minBytesToKeep);
    pthread_mutex_unlock(&g_fake.mu);
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    struct fake_pool *p = (struct fake_pool *)pool;
    if (p == NULL || p->magic != FAKE_POOL_MAGIC || p == &g_fake.dev[p->dev].default_pool)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_fake.mu);
    fake_give(p->dev, p->reserved);
    p->magic = 0;
    pthread_mutex_unlock(&g_fake.mu);
    free(p);
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
    struct fake_pool *p = (struct fake_pool *)pool;
    if (p == NULL || p->magic != FAKE_POOL_MAGIC || value == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_fake.mu);
    uint64_t v = attr == CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT ? p->reserved
                 : attr == CU_MEMPOOL_ATTR_USED_MEM_CURRENT   ? p->used
                 : attr == CU_MEMPOOL_ATTR_RELEASE_THRESHOLD  ? UINT64_MAX
                                                              : 0;
    pthread_mutex_unlock(&g_fake.mu);
    *(uint64_t *)value = v;
    return CUDA_SUCCESS;
}
