/*
 * symbols.h - every driver symbol the library wraps or calls. Wrapped symbols
 * are exported under the driver's own name (direct interposition) and handed
 * out by dlsym and cuGetProcAddress in place of the real function; the others
 * are only called.
 */
#ifndef TESSERA_SYMBOLS_H
#define TESSERA_SYMBOLS_H

enum sym_lib { LIB_CUDA, LIB_NVML };

enum sym_id {
    /* Wrapped: memory. */
    SYM_cuMemAlloc_v2,
    SYM_cuMemAllocPitch_v2,
    SYM_cuMemAllocManaged,
    SYM_cuMemFree_v2,
    SYM_cuMemAllocAsync,
    SYM_cuMemAllocAsync_ptsz,
    SYM_cuMemAllocFromPoolAsync,
    SYM_cuMemAllocFromPoolAsync_ptsz,
    SYM_cuMemFreeAsync,
    SYM_cuMemFreeAsync_ptsz,
    SYM_cuMemPoolCreate,
    SYM_cuMemPoolDestroy,
    SYM_cuMemPoolTrimTo,
    SYM_cuMemCreate,
    SYM_cuMemRelease,
    SYM_cuArrayCreate_v2,
    SYM_cuArray3DCreate_v2,
    SYM_cuArrayDestroy,
    SYM_cuMipmappedArrayCreate,
    SYM_cuMipmappedArrayDestroy,
    SYM_cuGraphAddMemAllocNode,
    SYM_cuGraphDestroyNode,
    SYM_cuGraphDestroy,
    /* Wrapped: what the application is told about memory. */
    SYM_cuMemGetInfo_v2,
    SYM_cuDeviceTotalMem_v2,
    /* Wrapped: contexts (their memory overhead). */
    SYM_cuDevicePrimaryCtxRetain,
    SYM_cuDevicePrimaryCtxRelease_v2,
    SYM_cuCtxCreate_v2,
    SYM_cuCtxCreate_v3,
    SYM_cuCtxCreate_v4,
    SYM_cuCtxDestroy_v2,
    /* Wrapped: launches. */
    SYM_cuLaunchKernel,
    SYM_cuLaunchKernel_ptsz,
    SYM_cuLaunchKernelEx,
    SYM_cuLaunchKernelEx_ptsz,
    SYM_cuLaunchCooperativeKernel,
    SYM_cuLaunchCooperativeKernel_ptsz,
    SYM_cuGraphLaunch,
    SYM_cuGraphLaunch_ptsz,
    /* Wrapped: resolution. */
    SYM_cuGetProcAddress,
    SYM_cuGetProcAddress_v2,
    /* Wrapped: NVML. */
    SYM_nvmlDeviceGetMemoryInfo,
    SYM_nvmlDeviceGetMemoryInfo_v2,
    /* Called only. */
    SYM_cuCtxGetDevice,
    SYM_cuDeviceGetUuid,
    SYM_cuDeviceGetMemPool,
    SYM_cuMemPoolGetAttribute,
    SYM_cuStreamIsCapturing,
    SYM_cuEventCreate,
    SYM_cuEventRecord,
    SYM_cuEventQuery,
    SYM_cuEventSynchronize,
    SYM_cuEventElapsedTime,
    SYM_cuEventDestroy_v2,
    SYM_nvmlDeviceGetUUID,
    SYM_nvmlDeviceGetIndex,
    SYM_nvmlInit_v2,
    SYM_nvmlDeviceGetHandleByUUID,
    SYM_nvmlDeviceGetComputeRunningProcesses_v3,
    SYM_nvmlDeviceGetComputeRunningProcesses_v2,
    SYM_cuDeviceGetCount,
    SYM_COUNT
};

struct sym_entry {
    const char *name;
    void *wrapper; /* NULL for symbols that are only called */
    enum sym_lib lib;
};

extern const struct sym_entry hook_syms[SYM_COUNT];

/* Index of a symbol by exported name, or -1. */
int sym_find(const char *name);
/* The wrapper to hand out in place of real, or NULL when real is not the
 * real function of a wrapped symbol. */
void *sym_wrapper_of_real(const void *real);

#endif
