/*
 * mem.c - synchronous allocations (plain, pitched, managed, VMM) and their
 * frees. Every allocation reserves in the region before the driver is asked,
 * so that processes racing for the last bytes cannot overshoot together, and
 * gives the reservation back if the driver fails.
 */
#include "hook.h"

/* cuMemAllocPitch rounds each row up to the device's pitch alignment, which
 * is at most this on current GPUs; reserving for it bounds the real size. */
#define PITCH_ALIGN_BOUND 512ULL

/* After the driver answered: keep and record the reservation, or undo it. */
static CUresult settle(CUresult rc, int dev, uint64_t size, uint8_t kind, uint64_t key)
{
    if (rc != CUDA_SUCCESS)
        hook_release(dev, size);
    else
        hook_track(kind, key, dev, size, 0);
    return rc;
}

/* The most frequent allocation of all: written out without the managed
 * variant's branches. */
TESSERA_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    __typeof__(&cuMemAlloc_v2) real = REAL(cuMemAlloc_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    int dev = hook_current_dev();
    if (dev < 0 || dptr == NULL)
        return real(dptr, bytesize);
    CUresult rc = hook_reserve(dev, bytesize);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real(dptr, bytesize);
    return settle(rc, dev, bytesize, KIND_PTR, rc == CUDA_SUCCESS ? *dptr : 0);
}

/* Managed memory may migrate anywhere; it is charged to the device current
 * at allocation, where it is most likely to live. */
TESSERA_EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    __typeof__(&cuMemAllocManaged) real = REAL(cuMemAllocManaged);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    int dev = hook_current_dev();
    if (dev < 0 || dptr == NULL)
        return real(dptr, bytesize, flags);
    CUresult rc = hook_reserve(dev, bytesize);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real(dptr, bytesize, flags);
    return settle(rc, dev, bytesize, KIND_PTR, rc == CUDA_SUCCESS ? *dptr : 0);
}

static uint64_t pitch_bound(size_t width, size_t height)
{
    uint64_t row =
        ((uint64_t)width + PITCH_ALIGN_BOUND - 1) / PITCH_ALIGN_BOUND * PITCH_ALIGN_BOUND;
    if (row < width || (height != 0 && row > UINT64_MAX / height))
        return UINT64_MAX; /* overflows: the reservation fails as it should */
    return row * height;
}

TESSERA_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width,
                                           size_t height, unsigned int elementSize)
{
    __typeof__(&cuMemAllocPitch_v2) real = REAL(cuMemAllocPitch_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    int dev = hook_current_dev();
    if (dev < 0 || dptr == NULL || pitch == NULL)
        return real(dptr, pitch, width, height, elementSize);
    uint64_t bound = pitch_bound(width, height);
    CUresult rc = hook_reserve(dev, bound);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real(dptr, pitch, width, height, elementSize);
    if (rc != CUDA_SUCCESS) {
        hook_release(dev, bound);
        return rc;
    }
    uint64_t actual = (uint64_t)*pitch * height;
    if (actual > bound)
        region_charge(&g_hook.region, dev, actual - bound);
    else
        hook_release(dev, bound - actual);
    hook_track(KIND_PTR, *dptr, dev, actual, 0);
    return rc;
}

/* Frees a pointer from any allocator (cuMemFree also takes stream-ordered
 * allocations); the record is taken first so that the address, once freed
 * and reused by another thread, cannot meet a stale record. */
TESSERA_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    __typeof__(&cuMemFree_v2) real = REAL(cuMemFree_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    struct alloc_rec rec;
    int had = hook_untrack(KIND_PTR, dptr, &rec) || hook_untrack(KIND_POOL_PTR, dptr, &rec);
    CUresult rc = real(dptr);
    if (!had)
        return rc;
    if (rc == CUDA_SUCCESS)
        hook_release_rec(&rec);
    else
        hook_retrack(&rec);
    return rc;
}

/* Physical memory of the virtual memory management API. Only memory on a
 * device counts; host and NUMA locations pass through. */
TESSERA_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                                    const CUmemAllocationProp *prop, unsigned long long flags)
{
    __typeof__(&cuMemCreate) real = REAL(cuMemCreate);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    int dev = -1;
    if (handle != NULL && prop != NULL && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE)
        dev = hook_dev_of_cuda(prop->location.id);
    if (dev < 0)
        return real(handle, size, prop, flags);
    CUresult rc = hook_reserve(dev, size);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real(handle, size, prop, flags);
    return settle(rc, dev, size, KIND_VMM, rc == CUDA_SUCCESS ? *handle : 0);
}

TESSERA_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    __typeof__(&cuMemRelease) real = REAL(cuMemRelease);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    struct alloc_rec rec;
    int had = hook_untrack(KIND_VMM, handle, &rec);
    CUresult rc = real(handle);
    if (had && rc == CUDA_SUCCESS)
        hook_release_rec(&rec);
    else if (had)
        hook_retrack(&rec);
    return rc;
}
