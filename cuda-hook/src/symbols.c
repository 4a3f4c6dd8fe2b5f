/* symbols.c - the symbol table; see symbols.h. */
#include "hook.h"

#include <string.h>

/* Indexed by enum sym_id, so an entry can never drift from its id. */
const struct sym_entry hook_syms[SYM_COUNT] = {
    [SYM_cuMemAlloc_v2] = {"cuMemAlloc_v2", (void *)cuMemAlloc_v2, LIB_CUDA},
    [SYM_cuMemAllocPitch_v2] = {"cuMemAllocPitch_v2", (void *)cuMemAllocPitch_v2, LIB_CUDA},
    [SYM_cuMemAllocManaged] = {"cuMemAllocManaged", (void *)cuMemAllocManaged, LIB_CUDA},
    [SYM_cuMemFree_v2] = {"cuMemFree_v2", (void *)cuMemFree_v2, LIB_CUDA},
    [SYM_cuMemAllocAsync] = {"cuMemAllocAsync", (void *)cuMemAllocAsync, LIB_CUDA},
    [SYM_cuMemAllocAsync_ptsz] = {"cuMemAllocAsync_ptsz", (void *)cuMemAllocAsync_ptsz, LIB_CUDA},
    [SYM_cuMemAllocFromPoolAsync] = {"cuMemAllocFromPoolAsync", (void *)cuMemAllocFromPoolAsync,
                                     LIB_CUDA},
    [SYM_cuMemAllocFromPoolAsync_ptsz] = {"cuMemAllocFromPoolAsync_ptsz",
                                          (void *)cuMemAllocFromPoolAsync_ptsz, LIB_CUDA},
    [SYM_cuMemFreeAsync] = {"cuMemFreeAsync", (void *)cuMemFreeAsync, LIB_CUDA},
    [SYM_cuMemFreeAsync_ptsz] = {"cuMemFreeAsync_ptsz", (void *)cuMemFreeAsync_ptsz, LIB_CUDA},
    [SYM_cuMemPoolCreate] = {"cuMemPoolCreate", (void *)cuMemPoolCreate, LIB_CUDA},
    [SYM_cuMemPoolDestroy] = {"cuMemPoolDestroy", (void *)cuMemPoolDestroy, LIB_CUDA},
    [SYM_cuMemPoolTrimTo] = {"cuMemPoolTrimTo", (void *)cuMemPoolTrimTo, LIB_CUDA},
    [SYM_cuMemCreate] = {"cuMemCreate", (void *)cuMemCreate, LIB_CUDA},
    [SYM_cuMemRelease] = {"cuMemRelease", (void *)cuMemRelease, LIB_CUDA},
    [SYM_cuArrayCreate_v2] = {"cuArrayCreate_v2", (void *)cuArrayCreate_v2, LIB_CUDA},
    [SYM_cuArray3DCreate_v2] = {"cuArray3DCreate_v2", (void *)cuArray3DCreate_v2, LIB_CUDA},
    [SYM_cuArrayDestroy] = {"cuArrayDestroy", (void *)cuArrayDestroy, LIB_CUDA},
    [SYM_cuMipmappedArrayCreate] = {"cuMipmappedArrayCreate", (void *)cuMipmappedArrayCreate,
                                    LIB_CUDA},
    [SYM_cuMipmappedArrayDestroy] = {"cuMipmappedArrayDestroy", (void *)cuMipmappedArrayDestroy,
                                     LIB_CUDA},
    [SYM_cuGraphAddMemAllocNode] = {"cuGraphAddMemAllocNode", (void *)cuGraphAddMemAllocNode,
                                    LIB_CUDA},
    [SYM_cuGraphDestroyNode] = {"cuGraphDestroyNode", (void *)cuGraphDestroyNode, LIB_CUDA},
    [SYM_cuGraphDestroy] = {"cuGraphDestroy", (void *)cuGraphDestroy, LIB_CUDA},
    [SYM_cuMemGetInfo_v2] = {"cuMemGetInfo_v2", (void *)cuMemGetInfo_v2, LIB_CUDA},
    [SYM_cuDeviceTotalMem_v2] = {"cuDeviceTotalMem_v2", (void *)cuDeviceTotalMem_v2, LIB_CUDA},
    [SYM_cuDevicePrimaryCtxRetain] = {"cuDevicePrimaryCtxRetain", (void *)cuDevicePrimaryCtxRetain,
                                      LIB_CUDA},
    [SYM_cuDevicePrimaryCtxRelease_v2] = {"cuDevicePrimaryCtxRelease_v2",
                                          (void *)cuDevicePrimaryCtxRelease_v2, LIB_CUDA},
    [SYM_cuCtxCreate_v2] = {"cuCtxCreate_v2", (void *)cuCtxCreate_v2, LIB_CUDA},
    [SYM_cuCtxCreate_v3] = {"cuCtxCreate_v3", (void *)cuCtxCreate_v3, LIB_CUDA},
    [SYM_cuCtxCreate_v4] = {"cuCtxCreate_v4", (void *)cuCtxCreate_v4, LIB_CUDA},
    [SYM_cuCtxDestroy_v2] = {"cuCtxDestroy_v2", (void *)cuCtxDestroy_v2, LIB_CUDA},
    [SYM_cuLaunchKernel] = {"cuLaunchKernel", (void *)cuLaunchKernel, LIB_CUDA},
    [SYM_cuLaunchKernel_ptsz] = {"cuLaunchKernel_ptsz", (void *)cuLaunchKernel_ptsz, LIB_CUDA},
    [SYM_cuLaunchKernelEx] = {"cuLaunchKernelEx", (void *)cuLaunchKernelEx, LIB_CUDA},
    [SYM_cuLaunchKernelEx_ptsz] = {"cuLaunchKernelEx_ptsz", (void *)cuLaunchKernelEx_ptsz,
                                   LIB_CUDA},
    [SYM_cuLaunchCooperativeKernel] = {"cuLaunchCooperativeKernel",
                                       (void *)cuLaunchCooperativeKernel, LIB_CUDA},
    [SYM_cuLaunchCooperativeKernel_ptsz] = {"cuLaunchCooperativeKernel_ptsz",
                                            (void *)cuLaunchCooperativeKernel_ptsz, LIB_CUDA},
    [SYM_cuGraphLaunch] = {"cuGraphLaunch", (void *)cuGraphLaunch, LIB_CUDA},
    [SYM_cuGraphLaunch_ptsz] = {"cuGraphLaunch_ptsz", (void *)cuGraphLaunch_ptsz, LIB_CUDA},
    [SYM_cuGetProcAddress] = {"cuGetProcAddress", (void *)cuGetProcAddress, LIB_CUDA},
    [SYM_cuGetProcAddress_v2] = {"cuGetProcAddress_v2", (void *)cuGetProcAddress_v2, LIB_CUDA},
    [SYM_nvmlDeviceGetMemoryInfo] = {"nvmlDeviceGetMemoryInfo", (void *)nvmlDeviceGetMemoryInfo,
                                     LIB_NVML},
    [SYM_nvmlDeviceGetMemoryInfo_v2] = {"nvmlDeviceGetMemoryInfo_v2",
                                        (void *)nvmlDeviceGetMemoryInfo_v2, LIB_NVML},
    [SYM_cuCtxGetDevice] = {"cuCtxGetDevice", NULL, LIB_CUDA},
    [SYM_cuDeviceGetUuid] = {"cuDeviceGetUuid", NULL, LIB_CUDA},
    [SYM_cuDeviceGetMemPool] = {"cuDeviceGetMemPool", NULL, LIB_CUDA},
    [SYM_cuMemPoolGetAttribute] = {"cuMemPoolGetAttribute", NULL, LIB_CUDA},
    [SYM_cuStreamIsCapturing] = {"cuStreamIsCapturing", NULL, LIB_CUDA},
    [SYM_cuEventCreate] = {"cuEventCreate", NULL, LIB_CUDA},
    [SYM_cuEventRecord] = {"cuEventRecord", NULL, LIB_CUDA},
    [SYM_cuEventQuery] = {"cuEventQuery", NULL, LIB_CUDA},
    [SYM_cuEventSynchronize] = {"cuEventSynchronize", NULL, LIB_CUDA},
    [SYM_cuEventElapsedTime] = {"cuEventElapsedTime", NULL, LIB_CUDA},
    [SYM_cuEventDestroy_v2] = {"cuEventDestroy_v2", NULL, LIB_CUDA},
    [SYM_nvmlDeviceGetUUID] = {"nvmlDeviceGetUUID", NULL, LIB_NVML},
    [SYM_nvmlDeviceGetIndex] = {"nvmlDeviceGetIndex", NULL, LIB_NVML},
    [SYM_nvmlInit_v2] = {"nvmlInit_v2", NULL, LIB_NVML},
    [SYM_nvmlDeviceGetHandleByUUID] = {"nvmlDeviceGetHandleByUUID", NULL, LIB_NVML},
    [SYM_nvmlDeviceGetComputeRunningProcesses_v3] = {"nvmlDeviceGetComputeRunningProcesses_v3",
                                                     NULL, LIB_NVML},
    [SYM_nvmlDeviceGetComputeRunningProcesses_v2] = {"nvmlDeviceGetComputeRunningProcesses_v2",
                                                     NULL, LIB_NVML},
    [SYM_cuDeviceGetCount] = {"cuDeviceGetCount", NULL, LIB_CUDA},
};

int sym_find(const char *name)
{
    for (int i = 0; i < SYM_COUNT; i++)
        if (strcmp(hook_syms[i].name, name) == 0)
            return i;
    return -1;
}

void *sym_wrapper_of_real(const void *real)
{
    if (real == NULL)
        return NULL;
    for (int i = 0; i < SYM_COUNT; i++)
        if (hook_syms[i].wrapper != NULL && g_hook.real[i] == real)
            return hook_syms[i].wrapper;
    return NULL;
}
