/* fake_arrays.c - arrays and mipmapped arrays of the fake driver, sized as
 * texel data (the real driver pads; this fake does not). */
#include "fake.h"

static uint64_t texel_bytes(CUarray_format f, unsigned ch)
{
    uint64_t b = (f == CU_AD_FORMAT_UNSIGNED_INT8 || f == CU_AD_FORMAT_SIGNED_INT8) ? 1
                 : (f == CU_AD_FORMAT_UNSIGNED_INT16 || f == CU_AD_FORMAT_SIGNED_INT16 ||
                    f == CU_AD_FORMAT_HALF)
                     ? 2
                     : 4;
    return b * (ch ? ch : 1);
}

static CUresult make(uint64_t bytes, int kind, uint64_t *key)
{
    CUresult err = CUDA_SUCCESS;
    int dev = fake_current_dev(&err);
    if (dev < 0)
        return err;
    if (bytes == 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_fake.mu);
    CUresult rc = fake_take(dev, bytes);
    if (rc == CUDA_SUCCESS) {
        *key = 0x1000 + 16 * ++g_fake.next_handle;
        struct fake_alloc a = {.key = *key, .size = bytes, .dev = dev, .kind = kind};
        if (fake_record(&a) != 0) {
            fake_give(dev, bytes);
            rc = CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    pthread_mutex_unlock(&g_fake.mu);
    return rc;
}

static CUresult destroy(uint64_t key, int kind)
{
    struct fake_alloc a;
    pthread_mutex_lock(&g_fake.mu);
    int found = fake_forget(key, kind, &a);
    if (found)
        fake_give(a.dev, a.size);
    pthread_mutex_unlock(&g_fake.mu);
    return found ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

static uint64_t dims(size_t w, size_t h, size_t d)
{
    return (uint64_t)w * (h ? h : 1) * (d ? d : 1);
}

FAKE_EXPORT CUresult cuArrayCreate_v2(CUarray *array, const CUDA_ARRAY_DESCRIPTOR *desc)
{
    if (array == NULL || desc == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    uint64_t key = 0;
    CUresult rc =
        make(dims(desc->Width, desc->Height, 0) * texel_bytes(desc->Format, desc->NumChannels),
             FK_ARRAY, &key);
    if (rc == CUDA_SUCCESS)
        *array = (CUarray)(uintptr_t)key;
    return rc;
}

FAKE_EXPORT CUresult cuArray3DCreate_v2(CUarray *array, const CUDA_ARRAY3D_DESCRIPTOR *desc)
{
    if (array == NULL || desc == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    uint64_t key = 0;
    CUresult rc = make(dims(desc->Width, desc->Height, desc->Depth) *
                           texel_bytes(desc->Format, desc->NumChannels),
                       FK_ARRAY, &key);
    if (rc == CUDA_SUCCESS)
        *array = (CUarray)(uintptr_t)key;
    return rc;
}

FAKE_EXPORT CUresult cuArrayDestroy(CUarray array)
{
    return destroy((uintptr_t)array, FK_ARRAY);
}

FAKE_EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *handle,
                                            const CUDA_ARRAY3D_DESCRIPTOR *desc,
                                            unsigned int numLevels)
{
    if (handle == NULL || desc == NULL || numLevels == 0)
        return CUDA_ERROR_INVALID_VALUE;
    uint64_t w = desc->Width, h = desc->Height, d = desc->Depth, total = 0, key = 0;
    for (unsigned i = 0; i < numLevels; i++) {
        total += dims(w, h, d) * texel_bytes(desc->Format, desc->NumChannels);
        w = w > 1 ? w / 2 : w;
        h = h > 1 ? h / 2 : h;
        d = d > 1 ? d / 2 : d;
    }
    CUresult rc = make(total, FK_MIPMAP, &key);
    if (rc == CUDA_SUCCESS)
        *handle = (CUmipmappedArray)(uintptr_t)key;
    return rc;
}

FAKE_EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray handle)
{
    return destroy((uintptr_t)handle, FK_MIPMAP);
}
