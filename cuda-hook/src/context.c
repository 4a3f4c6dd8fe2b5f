/*
 * context.c - the memory a context itself takes on its device (code, stacks,
 * the driver's own buffers). It is invisible to allocation calls but real, so
 * a process is charged a fixed estimate while it holds any context on a
 * device, reserved like an allocation when its first context there opens.
 * The estimate is a build setting (see the Makefile and README).
 */
#include "hook.h"

#include <string.h>

#ifndef TESSERA_CONTEXT_OVERHEAD_MIB
#define TESSERA_CONTEXT_OVERHEAD_MIB 256
#endif
#define CONTEXT_OVERHEAD_BYTES ((uint64_t)TESSERA_CONTEXT_OVERHEAD_MIB * 1024 * 1024)

/* This process's contexts per device. Its own lock, held across the
 * reservation, so that two threads opening the first context of a device
 * cannot both skip (or both take) the charge. */
static pthread_mutex_t ctx_mu = PTHREAD_MUTEX_INITIALIZER;
static int ctx_refs[TESSERA_REGION_MAX_DEVICES];

/* Before the driver creates a context on dev: the first one reserves the
 * overhead against the limit, so a context the container has no room for
 * fails with CUDA_ERROR_OUT_OF_MEMORY, as it would on a full GPU. */
static CUresult opening(int dev)
{
    if (dev < 0)
        return CUDA_SUCCESS;
    CUresult rc = CUDA_SUCCESS;
    pthread_mutex_lock(&ctx_mu);
    if (ctx_refs[dev] == 0)
        rc = hook_reserve(dev, CONTEXT_OVERHEAD_BYTES);
    if (rc == CUDA_SUCCESS)
        ctx_refs[dev]++;
    pthread_mutex_unlock(&ctx_mu);
    return rc;
}

/* After a context on dev is gone, or was never created after all. */
static void closed(int dev)
{
    if (dev < 0)
        return;
    pthread_mutex_lock(&ctx_mu);
    if (ctx_refs[dev] > 0 && --ctx_refs[dev] == 0)
        hook_release(dev, CONTEXT_OVERHEAD_BYTES);
    pthread_mutex_unlock(&ctx_mu);
}

void context_forget_all(void)
{
    pthread_mutex_init(&ctx_mu, NULL);
    memset(ctx_refs, 0, sizeof(ctx_refs));
}

TESSERA_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    __typeof__(&cuDevicePrimaryCtxRetain) real = REAL(cuDevicePrimaryCtxRetain);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    int ordinal = hook_dev_of_cuda(dev);
    CUresult rc = opening(ordinal);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real(pctx, dev);
    if (rc != CUDA_SUCCESS)
        closed(ordinal);
    return rc;
}

TESSERA_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    __typeof__(&cuDevicePrimaryCtxRelease_v2) real = REAL(cuDevicePrimaryCtxRelease_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(dev);
    if (rc == CUDA_SUCCESS)
        closed(hook_dev_of_cuda(dev));
    return rc;
}

/* Common to the three versions of cuCtxCreate; create calls the driver. */
static CUresult create(CUcontext *pctx, CUdevice dev, CUresult (*call)(void *), void *args)
{
    int ordinal = hook_dev_of_cuda(dev);
    CUresult rc = opening(ordinal);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = call(args);
    if (rc != CUDA_SUCCESS || pctx == NULL || ordinal < 0)
        closed(ordinal);
    else
        hook_track(KIND_CTX, (uint64_t)(uintptr_t)*pctx, ordinal, 0, 0);
    return rc;
}

struct create_args {
    CUcontext *pctx;
    void *params;
    int numParams;
    unsigned int flags;
    CUdevice dev;
};

static CUresult call_v2(void *p)
{
    struct create_args *a = p;
    return REAL(cuCtxCreate_v2)(a->pctx, a->flags, a->dev);
}

static CUresult call_v3(void *p)
{
    struct create_args *a = p;
    return REAL(cuCtxCreate_v3)(a->pctx, a->params, a->numParams, a->flags, a->dev);
}

static CUresult call_v4(void *p)
{
    struct create_args *a = p;
    return REAL(cuCtxCreate_v4)(a->pctx, a->params, a->flags, a->dev);
}

TESSERA_EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    struct create_args a = {.pctx = pctx, .flags = flags, .dev = dev};
    return REAL(cuCtxCreate_v2) ? create(pctx, dev, call_v2, &a) : CUDA_ERROR_NOT_FOUND;
}

TESSERA_EXPORT CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params, int numParams,
                                       unsigned int flags, CUdevice dev)
{
    struct create_args a = {
        .pctx = pctx, .params = params, .numParams = numParams, .flags = flags, .dev = dev};
    return REAL(cuCtxCreate_v3) ? create(pctx, dev, call_v3, &a) : CUDA_ERROR_NOT_FOUND;
}

TESSERA_EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params,
                                       unsigned int flags, CUdevice dev)
{
    struct create_args a = {.pctx = pctx, .params = params, .flags = flags, .dev = dev};
    return REAL(cuCtxCreate_v4) ? create(pctx, dev, call_v4, &a) : CUDA_ERROR_NOT_FOUND;
}

TESSERA_EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    __typeof__(&cuCtxDestroy_v2) real = REAL(cuCtxDestroy_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    struct alloc_rec rec;
    int had = hook_untrack(KIND_CTX, (uint64_t)(uintptr_t)ctx, &rec);
    CUresult rc = real(ctx);
    if (had && rc == CUDA_SUCCESS)
        closed(rec.dev);
    else if (had)
        hook_retrack(&rec);
    return rc;
}
