/*
 * fake_proc.c - cuGetProcAddress of the fake driver. A lookup names the
 * unversioned API ("cuMemAlloc") and the CUDA version the caller was built
 * for; the driver answers with the newest ABI of that name introduced at or
 * before that version, and with the per-thread-default-stream variant
 * (_ptsz/_ptds) when the flags ask for it and one exists. This library is
 * linked with -Bsymbolic, so the addresses below are its own functions even
 * when the hook interposes the same names.
 */
#include "fake.h"

#include <string.h>

struct proc {
    const char *api;  /* the name a lookup uses */
    int version;      /* CUDA version that introduced this ABI */
    int per_thread;   /* a _ptsz/_ptds variant */
    const char *name; /* exported symbol */
    void *fn;
};

#define P(api, ver, pt, fn)                                                                        \
    {                                                                                              \
        api, ver, pt, #fn, (void *)fn                                                              \
    }

static const struct proc procs[] = {
    P("cuInit", 2000, 0, cuInit),
    P("cuDriverGetVersion", 2020, 0, cuDriverGetVersion),
    P("cuDeviceGet", 2000, 0, cuDeviceGet),
    P("cuDeviceGetCount", 2000, 0, cuDeviceGetCount),
    P("cuDeviceGetUuid", 9020, 0, cuDeviceGetUuid),
    P("cuDeviceTotalMem", 3020, 0, cuDeviceTotalMem_v2),
    P("cuDevicePrimaryCtxRetain", 7000, 0, cuDevicePrimaryCtxRetain),
    P("cuDevicePrimaryCtxRelease", 11000, 0, cuDevicePrimaryCtxRelease_v2),
    P("cuCtxCreate", 3020, 0, cuCtxCreate_v2),
    P("cuCtxCreate", 11040, 0, cuCtxCreate_v3),
    P("cuCtxCreate", 12050, 0, cuCtxCreate_v4),
    P("cuCtxDestroy", 4000, 0, cuCtxDestroy_v2),
    P("cuCtxSetCurrent", 4000, 0, cuCtxSetCurrent),
    P("cuCtxGetCurrent", 4000, 0, cuCtxGetCurrent),
    P("cuCtxGetDevice", 2000, 0, cuCtxGetDevice),
    P("cuCtxSynchronize", 2000, 0, cuCtxSynchronize),
    P("cuMemAlloc", 2000, 0, cuMemAlloc),
    P("cuMemAlloc", 3020, 0, cuMemAlloc_v2),
    P("cuMemAllocPitch", 3020, 0, cuMemAllocPitch_v2),
    P("cuMemAllocManaged", 6000, 0, cuMemAllocManaged),
    P("cuMemFree", 3020, 0, cuMemFree_v2),
    P("cuMemGetInfo", 2000, 0, cuMemGetInfo),
    P("cuMemGetInfo", 3020, 0, cuMemGetInfo_v2),
    P("cuMemcpyHtoD", 3020, 0, cuMemcpyHtoD_v2),
    P("cuMemcpyHtoD", 7000, 1, cuMemcpyHtoD_v2_ptds),
    P("cuMemAllocAsync", 11020, 0, cuMemAllocAsync),
    P("cuMemAllocAsync", 11020, 1, cuMemAllocAsync_ptsz),
    P("cuMemAllocFromPoolAsync", 11020, 0, cuMemAllocFromPoolAsync),
    P("cuMemAllocFromPoolAsync", 11020, 1, cuMemAllocFromPoolAsync_ptsz),
    P("cuMemFreeAsync", 11020, 0, cuMemFreeAsync),
    P("cuMemFreeAsync", 11020, 1, cuMemFreeAsync_ptsz),
    P("cuDeviceGetMemPool", 11020, 0, cuDeviceGetMemPool),
    P("cuMemPoolCreate", 11020, 0, cuMemPoolCreate),
    P("cuMemPoolDestroy", 11020, 0, cuMemPoolDestroy),
    P("cuMemPoolTrimTo", 11020, 0, cuMemPoolTrimTo),
    P("cuMemPoolGetAttribute", 11020, 0, cuMemPoolGetAttribute),
    P("cuMemCreate", 10020, 0, cuMemCreate),
    P("cuMemRelease", 10020, 0, cuMemRelease),
    P("cuArrayCreate", 3020, 0, cuArrayCreate_v2),
    P("cuArray3DCreate", 3020, 0, cuArray3DCreate_v2),
    P("cuArrayDestroy", 2000, 0, cuArrayDestroy),
    P("cuMipmappedArrayCreate", 5000, 0, cuMipmappedArrayCreate),
    P("cuMipmappedArrayDestroy", 5000, 0, cuMipmappedArrayDestroy),
    P("cuGraphCreate", 10000, 0, cuGraphCreate),
    P("cuGraphDestroy", 10000, 0, cuGraphDestroy),
    P("cuGraphAddMemAllocNode", 11040, 0, cuGraphAddMemAllocNode),
    P("cuGraphDestroyNode", 10000, 0, cuGraphDestroyNode),
    P("cuGraphInstantiateWithFlags", 11040, 0, cuGraphInstantiateWithFlags),
    P("cuGraphExecDestroy", 10000, 0, cuGraphExecDestroy),
    P("cuGraphLaunch", 10000, 0, cuGraphLaunch),
    P("cuGraphLaunch", 10000, 1, cuGraphLaunch_ptsz),
    P("cuLaunchKernel", 4000, 0, cuLaunchKernel),
    P("cuLaunchKernel", 7000, 1, cuLaunchKernel_ptsz),
    P("cuLaunchKernelEx", 11060, 0, cuLaunchKernelEx),
    P("cuLaunchKernelEx", 11060, 1, cuLaunchKernelEx_ptsz),
    P("cuLaunchCooperativeKernel", 9000, 0, cuLaunchCooperativeKernel),
    P("cuLaunchCooperativeKernel", 9000, 1, cuLaunchCooperativeKernel_ptsz),
    P("cuStreamCreate", 2000, 0, cuStreamCreate),
    P("cuStreamDestroy", 4000, 0, cuStreamDestroy_v2),
    P("cuStreamSynchronize", 2000, 0, cuStreamSynchronize),
    P("cuStreamIsCapturing", 10000, 0, cuStreamIsCapturing),
    P("cuStreamIsCapturing", 10000, 1, cuStreamIsCapturing_ptsz),
    P("cuEventCreate", 2000, 0, cuEventCreate),
    P("cuEventRecord", 2000, 0, cuEventRecord),
    P("cuEventRecord", 7000, 1, cuEventRecord_ptsz),
    P("cuEventQuery", 2000, 0, cuEventQuery),
    P("cuEventSynchronize", 2000, 0, cuEventSynchronize),
    P("cuEventElapsedTime", 2000, 0, cuEventElapsedTime),
    P("cuEventDestroy", 4000, 0, cuEventDestroy_v2),
    P("cuGetProcAddress", 11030, 0, cuGetProcAddress),
    P("cuGetProcAddress", 12000, 0, cuGetProcAddress_v2),
};

#define NPROCS (sizeof(procs) / sizeof(procs[0]))

/* Whether a beats b as the answer: per-thread variants first when asked
 * for, then the newest version. */
static int better(const struct proc *a, const struct proc *b, int want_pt)
{
    if (b == NULL)
        return 1;
    if (want_pt && a->per_thread != b->per_thread)
        return a->per_thread;
    return a->version > b->version;
}

static CUresult lookup(const char *symbol, void **pfn, int version, cuuint64_t flags,
                       CUdriverProcAddressQueryResult *status)
{
    int want_pt = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
    const struct proc *best = NULL;
    int known = 0;
    for (size_t i = 0; i < NPROCS; i++) {
        if (strcmp(procs[i].api, symbol) != 0)
            continue;
        known = 1;
        if (procs[i].version <= version && (want_pt || !procs[i].per_thread) &&
            better(&procs[i], best, want_pt))
            best = &procs[i];
    }
    *pfn = best ? best->fn : NULL;
    if (status != NULL)
        *status = best    ? CU_GET_PROC_ADDRESS_SUCCESS
                  : known ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                          : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return best ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

static CUresult check_args(const char *symbol, void **pfn, cuuint64_t flags)
{
    if (symbol == NULL || pfn == NULL || flags > 3)
        return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                      cuuint64_t flags)
{
    CUresult rc = check_args(symbol, pfn, flags);
    return rc != CUDA_SUCCESS ? rc : lookup(symbol, pfn, cudaVersion, flags, NULL);
}

FAKE_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                         cuuint64_t flags,
                                         CUdriverProcAddressQueryResult *symbolStatus)
{
    CUresult rc = check_args(symbol, pfn, flags);
    return rc != CUDA_SUCCESS ? rc : lookup(symbol, pfn, cudaVersion, flags, symbolStatus);
}

FAKE_EXPORT void *fakecuda_raw_proc(const char *name)
{
    for (size_t i = 0; i < NPROCS; i++)
        if (strcmp(procs[i].name, name) == 0)
            return procs[i].fn;
    return NULL;
}
