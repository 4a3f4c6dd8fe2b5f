/* fake_ctx.c - contexts of the fake driver. */
#include "fake.h"

#include <stdlib.h>

FAKE_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    if (!g_fake.initialised)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (dev < 0 || dev >= g_fake.ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = CUDA_SUCCESS;
    pthread_mutex_lock(&g_fake.mu);
    if (g_fake.dev[dev].primary_refs == 0)
        rc = fake_context_open(dev); /* the first retain creates it */
    g_fake.dev[dev].primary_refs += rc == CUDA_SUCCESS;
    pthread_mutex_unlock(&g_fake.mu);
    if (rc == CUDA_SUCCESS)
        *pctx = (CUcontext)&g_fake.dev[dev].primary;
    return rc;
}

FAKE_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    if (!g_fake.initialised)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (dev < 0 || dev >= g_fake.ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    CUresult rc = CUDA_SUCCESS;
    pthread_mutex_lock(&g_fake.mu);
    if (g_fake.dev[dev].primary_refs == 0)
        rc = CUDA_ERROR_INVALID_CONTEXT;
    else if (--g_fake.dev[dev].primary_refs == 0)
        fake_context_close(dev); /* the last release destroys it */
    pthread_mutex_unlock(&g_fake.mu);
    return rc;
}

static CUresult create(CUcontext *pctx, CUdevice dev)
{
    if (!g_fake.initialised)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (dev < 0 || dev >= g_fake.ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_ctx *c = malloc(sizeof(*c));
    if (c == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&g_fake.mu);
    CUresult rc = fake_context_open(dev);
    pthread_mutex_unlock(&g_fake.mu);
    if (rc != CUDA_SUCCESS) {
        free(c);
        return rc;
    }
    *c = (struct fake_ctx){.magic = FAKE_CTX_MAGIC, .dev = dev};
    fake_current = c; /* a created context becomes current, as in the driver */
    *pctx = (CUcontext)c;
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    (void)flags;
    return create(pctx, dev);
}

FAKE_EXPORT CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params, int numParams,
                                    unsigned int flags, CUdevice dev)
{
    (void)params;
    (void)numParams;
    (void)flags;
    return create(pctx, dev);
}

FAKE_EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags,
                                    CUdevice dev)
{
    (void)params;
    (void)flags;
    return create(pctx, dev);
}

static int is_primary(const struct fake_ctx *c)
{
    return c->dev >= 0 && c->dev < FAKE_MAX_DEVICES && c == &g_fake.dev[c->dev].primary;
}

FAKE_EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    struct fake_ctx *c = (struct fake_ctx *)ctx;
    if (c == NULL || c->magic != FAKE_CTX_MAGIC || is_primary(c))
        return CUDA_ERROR_INVALID_CONTEXT;
    if (fake_current == c)
        fake_current = NULL;
    pthread_mutex_lock(&g_fake.mu);
    fake_context_close(c->dev);
    pthread_mutex_unlock(&g_fake.mu);
    c->magic = 0;
    free(c);
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuCtxSetCurrent(CUcontext ctx)
{
    struct fake_ctx *c = (struct fake_ctx *)ctx;
    if (c != NULL && c->magic != FAKE_CTX_MAGIC)
        return CUDA_ERROR_INVALID_CONTEXT;
    fake_current = c;
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuCtxGetCurrent(CUcontext *ctx)
{
    if (ctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *ctx = (CUcontext)fake_current;
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuCtxGetDevice(CUdevice *dev)
{
    CUresult err = CUDA_SUCCESS;
    int d = fake_current_dev(&err);
    if (d < 0)
        return err;
    if (dev == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *dev = d;
    return CUDA_SUCCESS;
}
