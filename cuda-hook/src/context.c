/*
 * context.c - the memory a context itself takes on its device (code, stacks,
 * the driver's own buffers). It is invisible to allocation calls but real.
 * Each context is charged what the driver reports it took (ctxmem.h): the
 * fallback is reserved before the driver is asked, so that a context the
 * container has no room for fails with CUDA_ERROR_OUT_OF_MEMORY as on a full
 * GPU, and the charge is then trued up to the measured size. The charge
 * lives in the process's record, so it goes when the context is destroyed,
 * when the process exits, or when a dead process's record is reclaimed.
 */
#include "ctxmem.h"
#include "hook.h"

#include <string.h>

/* The first call of every CUDA program. A container whose limits did not
 * arrive (or were refused) fails it, so that the runtime and every driver
 * call after it fail too: start-up already said why, in one line. The
 * reservations refuse as well (account.h), for a program that skips it. */
TESSERA_EXPORT CUresult cuInit(unsigned int flags)
{
    __typeof__(&cuInit) real = REAL(cuInit);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (g_hook.cfg.refused)
        return CUDA_ERROR_NOT_INITIALIZED;
    return real(flags);
}

/* Per device: a lock held from the first reading to the true-up, so that
 * two contexts opening at once in this process cannot mix their readings;
 * and the primary context's references and charge. */
struct dev_ctx {
    pthread_mutex_t mu;
    int primary_refs;
    uint64_t primary_charge;
};

static struct dev_ctx devs[TESSERA_REGION_MAX_DEVICES];
static pthread_once_t devs_once = PTHREAD_ONCE_INIT;

/* A forked child has none of its parent's contexts. */
static void forget_all(void)
{
    for (int i = 0; i < TESSERA_REGION_MAX_DEVICES; i++) {
        pthread_mutex_init(&devs[i].mu, NULL);
        devs[i].primary_refs = 0;
        devs[i].primary_charge = 0;
    }
    ctxmem_forget();
}

static void devs_init(void)
{
    for (int i = 0; i < TESSERA_REGION_MAX_DEVICES; i++)
        pthread_mutex_init(&devs[i].mu, NULL);
    hook_atfork_child(forget_all);
}

static struct dev_ctx *dev_ctx(int ordinal)
{
    pthread_once(&devs_once, devs_init);
    return &devs[ordinal];
}

/* Creates a context through create(args), charging it: returns the driver's
 * status or CUDA_ERROR_OUT_OF_MEMORY, and the charge in *charge. undo(args)
 * destroys a context that turned out not to fit. Caller holds the lock. */
static CUresult charged(CUdevice dev, int ordinal, CUresult (*create)(void *),
                        CUresult (*undo)(void *), void *args, uint64_t *charge)
{
    struct ctxmem_probe probe;
    uint64_t fallback = g_hook.cfg.context_fallback, real = 0;
    ctxmem_before(&probe, dev, ordinal);
    CUresult rc = hook_reserve(ordinal, fallback);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = create(args);
    if (rc != CUDA_SUCCESS) {
        hook_release(ordinal, fallback);
        return rc;
    }
    *charge = fallback;
    if (ctxmem_after(&probe, dev, fallback, &real) != 0 || real == fallback)
        return CUDA_SUCCESS;
    if (real < fallback) {
        hook_release(ordinal, fallback - real);
    } else if (hook_reserve(ordinal, real - fallback) != CUDA_SUCCESS) {
        undo(args); /* it does not fit after all: as if the driver ran out */
        hook_release(ordinal, fallback);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *charge = real;
    return CUDA_SUCCESS;
}

struct retain_args {
    CUcontext *pctx;
    CUdevice dev;
};

static CUresult retain_call(void *p)
{
    struct retain_args *a = p;
    return REAL(cuDevicePrimaryCtxRetain)(a->pctx, a->dev);
}

static CUresult retain_undo(void *p)
{
    struct retain_args *a = p;
    return REAL(cuDevicePrimaryCtxRelease_v2)(a->dev);
}

/* The primary context is created by its first retain and destroyed by its
 * last release: only the first is measured and charged. */
TESSERA_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    __typeof__(&cuDevicePrimaryCtxRetain) real = REAL(cuDevicePrimaryCtxRetain);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    int ordinal = hook_dev_of_cuda(dev);
    if (ordinal < 0 || pctx == NULL)
        return real(pctx, dev);
    struct dev_ctx *d = dev_ctx(ordinal);
    struct retain_args a = {.pctx = pctx, .dev = dev};
    CUresult rc;
    pthread_mutex_lock(&d->mu);
    if (d->primary_refs > 0)
        rc = real(pctx, dev);
    else
        rc = charged(dev, ordinal, retain_call, retain_undo, &a, &d->primary_charge);
    d->primary_refs += rc == CUDA_SUCCESS;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

TESSERA_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    __typeof__(&cuDevicePrimaryCtxRelease_v2) real = REAL(cuDevicePrimaryCtxRelease_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    int ordinal = hook_dev_of_cuda(dev);
    if (ordinal < 0)
        return real(dev);
    struct dev_ctx *d = dev_ctx(ordinal);
    pthread_mutex_lock(&d->mu);
    CUresult rc = real(dev);
    if (rc == CUDA_SUCCESS && d->primary_refs > 0 && --d->primary_refs == 0) {
        hook_release(ordinal, d->primary_charge);
        d->primary_charge = 0;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

struct create_args {
    CUcontext *pctx;
    void *params;
    int numParams;
    unsigned int flags;
    CUdevice dev;
    int version;
};

static CUresult create_call(void *p)
{
    struct create_args *a = p;
    if (a->version == 2)
        return REAL(cuCtxCreate_v2)(a->pctx, a->flags, a->dev);
    if (a->version == 3)
        return REAL(cuCtxCreate_v3)(a->pctx, a->params, a->numParams, a->flags, a->dev);
    return REAL(cuCtxCreate_v4)(a->pctx, a->params, a->flags, a->dev);
}

static CUresult create_undo(void *p)
{
    struct create_args *a = p;
    return REAL(cuCtxDestroy_v2)(*a->pctx);
}

/* Every created context is a context of its own, charged on its own and
 * remembered by handle until it is destroyed. */
static CUresult create(struct create_args *a)
{
    int ordinal = hook_dev_of_cuda(a->dev);
    if (ordinal < 0 || a->pctx == NULL)
        return create_call(a);
    struct dev_ctx *d = dev_ctx(ordinal);
    uint64_t charge = 0;
    pthread_mutex_lock(&d->mu);
    CUresult rc = charged(a->dev, ordinal, create_call, create_undo, a, &charge);
    pthread_mutex_unlock(&d->mu);
    if (rc == CUDA_SUCCESS)
        hook_track(KIND_CTX, (uint64_t)(uintptr_t)*a->pctx, ordinal, charge, 0);
    return rc;
}

TESSERA_EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    struct create_args a = {.pctx = pctx, .flags = flags, .dev = dev, .version = 2};
    return REAL(cuCtxCreate_v2) ? create(&a) : CUDA_ERROR_NOT_FOUND;
}

TESSERA_EXPORT CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params, int numParams,
                                       unsigned int flags, CUdevice dev)
{
    struct create_args a = {.pctx = pctx,
                            .params = params,
                            .numParams = numParams,
                            .flags = flags,
                            .dev = dev,
                            .version = 3};
    return REAL(cuCtxCreate_v3) ? create(&a) : CUDA_ERROR_NOT_FOUND;
}

TESSERA_EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params,
                                       unsigned int flags, CUdevice dev)
{
    struct create_args a = {.pctx = pctx, .params = params, .flags = flags, .dev = dev, .version = 4};
    return REAL(cuCtxCreate_v4) ? create(&a) : CUDA_ERROR_NOT_FOUND;
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
        hook_release_rec(&rec);
    else if (had)
        hook_retrack(&rec);
    return rc;
}
