/*
 * arrays.c - CUDA arrays and mipmapped arrays. The driver does not say how
 * much memory an array takes (it pads and tiles), so the charge is the
 * texel data itself: width x height x depth x channels x element size, summed
 * over mipmap levels. This underestimates by the padding only.
 */
#include "hook.h"

static uint64_t format_bytes(CUarray_format f)
{
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8:
        return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
        return 2;
    default:
        return 4; /* 32-bit formats; others are rare and charged as 32-bit */
    }
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    return (b != 0 && a > UINT64_MAX / b) ? UINT64_MAX : a * b;
}

/* Bytes of one level; a zero height or depth means the dimension is absent. */
static uint64_t level_bytes(size_t w, size_t h, size_t d, CUarray_format f, unsigned ch)
{
    uint64_t n = mul_sat(w, h ? h : 1);
    n = mul_sat(n, d ? d : 1);
    return mul_sat(n, mul_sat(ch ? ch : 1, format_bytes(f)));
}

static uint64_t half(size_t v)
{
    return v > 1 ? v / 2 : v;
}

static uint64_t mipmap_bytes(const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned levels)
{
    uint64_t w = d->Width, h = d->Height, depth = d->Depth, sum = 0;
    for (unsigned i = 0; i < levels && i < 64; i++) {
        uint64_t b = level_bytes(w, h, depth, d->Format, d->NumChannels);
        sum = sum + b < sum ? UINT64_MAX : sum + b;
        w = half(w);
        h = half(h);
        depth = half(depth); /* layered arrays would keep layers; rare enough */
    }
    return sum;
}

/* Reserves size on the current device; *dev < 0 means pass through. */
static CUresult reserve_current(uint64_t size, int *dev)
{
    *dev = hook_current_dev();
    return *dev < 0 ? CUDA_SUCCESS : hook_reserve(*dev, size);
}

static CUresult settle(CUresult rc, int dev, uint64_t size, uint8_t kind, uint64_t key)
{
    if (dev < 0)
        return rc;
    if (rc != CUDA_SUCCESS)
        hook_release(dev, size);
    else
        hook_track(kind, key, dev, size, 0);
    return rc;
}

TESSERA_EXPORT CUresult cuArrayCreate_v2(CUarray *array, const CUDA_ARRAY_DESCRIPTOR *desc)
{
    __typeof__(&cuArrayCreate_v2) real = REAL(cuArrayCreate_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (array == NULL || desc == NULL)
        return real(array, desc);
    uint64_t size = level_bytes(desc->Width, desc->Height, 0, desc->Format, desc->NumChannels);
    int dev;
    CUresult rc = reserve_current(size, &dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real(array, desc);
    return settle(rc, dev, size, KIND_ARRAY, rc == CUDA_SUCCESS ? (uintptr_t)*array : 0);
}

TESSERA_EXPORT CUresult cuArray3DCreate_v2(CUarray *array, const CUDA_ARRAY3D_DESCRIPTOR *desc)
{
    __typeof__(&cuArray3DCreate_v2) real = REAL(cuArray3DCreate_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (array == NULL || desc == NULL)
        return real(array, desc);
    uint64_t size =
        level_bytes(desc->Width, desc->Height, desc->Depth, desc->Format, desc->NumChannels);
    int dev;
    CUresult rc = reserve_current(size, &dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real(array, desc);
    return settle(rc, dev, size, KIND_ARRAY, rc == CUDA_SUCCESS ? (uintptr_t)*array : 0);
}

TESSERA_EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *handle,
                                               const CUDA_ARRAY3D_DESCRIPTOR *desc,
                                               unsigned int numLevels)
{
    __typeof__(&cuMipmappedArrayCreate) real = REAL(cuMipmappedArrayCreate);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (handle == NULL || desc == NULL)
        return real(handle, desc, numLevels);
    uint64_t size = mipmap_bytes(desc, numLevels);
    int dev;
    CUresult rc = reserve_current(size, &dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real(handle, desc, numLevels);
    return settle(rc, dev, size, KIND_MIPMAP, rc == CUDA_SUCCESS ? (uintptr_t)*handle : 0);
}

static CUresult destroyed(CUresult rc, int had, const struct alloc_rec *rec)
{
    if (had && rc == CUDA_SUCCESS)
        hook_release_rec(rec);
    else if (had)
        hook_retrack(rec);
    return rc;
}

TESSERA_EXPORT CUresult cuArrayDestroy(CUarray array)
{
    __typeof__(&cuArrayDestroy) real = REAL(cuArrayDestroy);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    struct alloc_rec rec;
    int had = hook_untrack(KIND_ARRAY, (uintptr_t)array, &rec);
    return destroyed(real(array), had, &rec);
}

TESSERA_EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray handle)
{
    __typeof__(&cuMipmappedArrayDestroy) real = REAL(cuMipmappedArrayDestroy);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    struct alloc_rec rec;
    int had = hook_untrack(KIND_MIPMAP, (uintptr_t)handle, &rec);
    return destroyed(real(handle), had, &rec);
}
