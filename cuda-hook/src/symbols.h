/*
 * symbols.h - every driver symbol the library wraps or calls, as one list.
 * Wrapped symbols (W) are exported under the driver's own name (direct
 * interposition) and handed out by dlsym and cuGetProcAddress in place of
 * the real function (resolve.c); the others (C) are only called. The enum,
 * the name table below and resolve.c's table of wrappers are all generated
 * from this one list, so they cannot drift apart.
 *
 * Layer 1 (config): names only, no state. See README.md, "Layers".
 */
#ifndef TESSERA_SYMBOLS_H
#define TESSERA_SYMBOLS_H

enum sym_lib { LIB_CUDA, LIB_NVML };

/* HOOK_SYMBOLS(W, C): W(name, lib) for a wrapped symbol, C(name, lib) for
 * one that is only called. */
#define HOOK_SYMBOLS(W, C) \
    /* Wrapped: initialisation (a refused container's). */    \
    W(cuInit, LIB_CUDA)                                       \
    /* Wrapped: memory. */                                    \
    W(cuMemAlloc_v2, LIB_CUDA)                                \
    W(cuMemAllocPitch_v2, LIB_CUDA)                           \
    W(cuMemAllocManaged, LIB_CUDA)                            \
    W(cuMemFree_v2, LIB_CUDA)                                 \
    W(cuMemAllocAsync, LIB_CUDA)                              \
    W(cuMemAllocAsync_ptsz, LIB_CUDA)                         \
    W(cuMemAllocFromPoolAsync, LIB_CUDA)                      \
    W(cuMemAllocFromPoolAsync_ptsz, LIB_CUDA)                 \
    W(cuMemFreeAsync, LIB_CUDA)                               \
    W(cuMemFreeAsync_ptsz, LIB_CUDA)                          \
    W(cuMemPoolCreate, LIB_CUDA)                              \
    W(cuMemPoolDestroy, LIB_CUDA)                             \
    W(cuMemPoolTrimTo, LIB_CUDA)                              \
    W(cuMemCreate, LIB_CUDA)                                  \
    W(cuMemRelease, LIB_CUDA)                                 \
    W(cuArrayCreate_v2, LIB_CUDA)                             \
    W(cuArray3DCreate_v2, LIB_CUDA)                           \
    W(cuArrayDestroy, LIB_CUDA)                               \
    W(cuMipmappedArrayCreate, LIB_CUDA)                       \
    W(cuMipmappedArrayDestroy, LIB_CUDA)                      \
    W(cuGraphAddMemAllocNode, LIB_CUDA)                       \
    W(cuGraphDestroyNode, LIB_CUDA)                           \
    W(cuGraphDestroy, LIB_CUDA)                               \
    /* Wrapped: what the application is told about memory. */ \
    W(cuMemGetInfo_v2, LIB_CUDA)                              \
    W(cuDeviceTotalMem_v2, LIB_CUDA)                          \
    /* Wrapped: contexts (their memory overhead). */          \
    W(cuDevicePrimaryCtxRetain, LIB_CUDA)                     \
    W(cuDevicePrimaryCtxRelease_v2, LIB_CUDA)                 \
    W(cuCtxCreate_v2, LIB_CUDA)                               \
    W(cuCtxCreate_v3, LIB_CUDA)                               \
    W(cuCtxCreate_v4, LIB_CUDA)                               \
    W(cuCtxDestroy_v2, LIB_CUDA)                              \
    /* Wrapped: launches. */                                  \
    W(cuLaunchKernel, LIB_CUDA)                               \
    W(cuLaunchKernel_ptsz, LIB_CUDA)                          \
    W(cuLaunchKernelEx, LIB_CUDA)                             \
    W(cuLaunchKernelEx_ptsz, LIB_CUDA)                        \
    W(cuLaunchCooperativeKernel, LIB_CUDA)                    \
    W(cuLaunchCooperativeKernel_ptsz, LIB_CUDA)               \
    W(cuGraphLaunch, LIB_CUDA)                                \
    W(cuGraphLaunch_ptsz, LIB_CUDA)                           \
    /* Wrapped: resolution. */                                \
    W(cuGetProcAddress, LIB_CUDA)                             \
    W(cuGetProcAddress_v2, LIB_CUDA)                          \
    /* Wrapped: NVML. */                                      \
    W(nvmlDeviceGetMemoryInfo, LIB_NVML)                      \
    W(nvmlDeviceGetMemoryInfo_v2, LIB_NVML)                   \
    /* Called only. */                                        \
    C(cuCtxGetDevice, LIB_CUDA)                               \
    C(cuDeviceGetUuid, LIB_CUDA)                              \
    C(cuDeviceGetMemPool, LIB_CUDA)                           \
    C(cuMemPoolGetAttribute, LIB_CUDA)                        \
    C(cuStreamIsCapturing, LIB_CUDA)                          \
    C(cuEventCreate, LIB_CUDA)                                \
    C(cuEventRecord, LIB_CUDA)                                \
    C(cuEventQuery, LIB_CUDA)                                 \
    C(cuEventSynchronize, LIB_CUDA)                           \
    C(cuEventElapsedTime, LIB_CUDA)                           \
    C(cuEventDestroy_v2, LIB_CUDA)                            \
    C(nvmlDeviceGetUUID, LIB_NVML)                            \
    C(nvmlDeviceGetIndex, LIB_NVML)                           \
    C(nvmlInit_v2, LIB_NVML)                                  \
    C(nvmlDeviceGetHandleByUUID, LIB_NVML)                    \
    C(nvmlDeviceGetComputeRunningProcesses_v3, LIB_NVML)      \
    C(nvmlDeviceGetComputeRunningProcesses_v2, LIB_NVML)      \
    C(cuDeviceGetCount, LIB_CUDA)

#define SYM_ID(name, lib) SYM_##name,
enum sym_id { HOOK_SYMBOLS(SYM_ID, SYM_ID) SYM_COUNT };
#undef SYM_ID

struct sym_entry {
    const char *name;
    enum sym_lib lib;
};

/* Indexed by enum sym_id. */
extern const struct sym_entry hook_syms[SYM_COUNT];

/* Index of a symbol by exported name, or -1. */
int sym_find(const char *name);

#endif
