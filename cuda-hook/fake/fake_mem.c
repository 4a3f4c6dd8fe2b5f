/* fake_mem.c - synchronous memory of the fake driver. */
#include "fake.h"

/* Takes charge bytes (size, or 0 for host memory) on dev and records an
 * allocation of kind; the key is a fresh device address for pointers, a
 * fresh handle otherwise. */
static CUresult alloc_charged(int dev, uint64_t size, uint64_t charge, int kind,
                              unsigned long long *key)
{
    if (size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_fake.mu);
    CUresult rc = fake_take(dev, charge);
    if (rc == CUDA_SUCCESS) {
        *key = kind == FK_PTR ? fake_new_va(dev, size) : 0x1000 + 16 * ++g_fake.next_handle;
        struct fake_alloc a = {.key = *key, .size = charge, .dev = dev, .kind = kind};
        if (fake_record(&a) != 0) {
            fake_give(dev, charge);
            rc = CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    pthread_mutex_unlock(&g_fake.mu);
    return rc;
}

static CUresult alloc_kind(int dev, uint64_t size, int kind, unsigned long long *key)
{
    return alloc_charged(dev, size, size, kind, key);
}

CUresult fake_free_kind(uint64_t key, int kind)
{
    struct fake_alloc a;
    pthread_mutex_lock(&g_fake.mu);
    int found = fake_forget(key, kind, &a);
    if (found && a.pool != NULL)
        a.pool->used -= a.pool_bytes;
    else if (found)
        fake_give(a.dev, a.size);
    pthread_mutex_unlock(&g_fake.mu);
    return found ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

static CUresult alloc_current(uint64_t size, int kind, unsigned long long *key)
{
    CUresult err = CUDA_SUCCESS;
    int dev = fake_current_dev(&err);
    return dev < 0 ? err : alloc_kind(dev, size, kind, key);
}

FAKE_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    if (dptr == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    return alloc_current(bytesize, FK_PTR, dptr);
}

/* The 32-bit ABI of CUDA 2.x is not simulated; it exists so that versioned
 * lookups have a distinct older function to return. */
FAKE_EXPORT CUresult cuMemAlloc(unsigned int *dptr, unsigned int bytesize)
{
    (void)dptr;
    (void)bytesize;
    return CUDA_ERROR_NOT_SUPPORTED;
}

FAKE_EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    if (dptr == NULL || flags > 2)
        return CUDA_ERROR_INVALID_VALUE;
    return alloc_current(bytesize, FK_PTR, dptr);
}

FAKE_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width,
                                        size_t height, unsigned int elementSize)
{
    if (dptr == NULL || pitch == NULL ||
        (elementSize != 4 && elementSize != 8 && elementSize != 16))
        return CUDA_ERROR_INVALID_VALUE;
    size_t row = (width + 255) / 256 * 256; /* this fake aligns rows to 256 */
    CUresult rc = alloc_current((uint64_t)row * height, FK_PTR, dptr);
    if (rc == CUDA_SUCCESS)
        *pitch = row;
    return rc;
}

FAKE_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    if (dptr == 0)
        return CUDA_SUCCESS;
    return fake_free_kind(dptr, FK_PTR);
}

FAKE_EXPORT CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
    CUresult err = CUDA_SUCCESS;
    int dev = fake_current_dev(&err);
    if (dev < 0)
        return err;
    if (free == NULL || total == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_fake.mu);
    *total = g_fake.dev[dev].total;
    *free = g_fake.dev[dev].total - g_fake.dev[dev].used;
    pthread_mutex_unlock(&g_fake.mu);
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemGetInfo(unsigned int *free, unsigned int *total)
{
    (void)free;
    (void)total;
    return CUDA_ERROR_NOT_SUPPORTED;
}

FAKE_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                                 const CUmemAllocationProp *prop, unsigned long long flags)
{
    if (handle == NULL || prop == NULL || flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return alloc_charged(0, size, 0, FK_VMM, handle); /* host memory: no device bytes */
    if (prop->location.id < 0 || prop->location.id >= g_fake.ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    return alloc_kind(prop->location.id, size, FK_VMM, handle);
}

FAKE_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    return fake_free_kind(handle, FK_VMM);
}

FAKE_EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t bytes)
{
    return (dst == 0 || (src == NULL && bytes > 0)) ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dst, const void *src, size_t bytes)
{
    return cuMemcpyHtoD_v2(dst, src, bytes);
}
