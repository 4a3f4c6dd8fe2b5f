/*
 * info.c - what the application is told about memory. Inside a container the
 * device's size is its limit: cuMemGetInfo, cuDeviceTotalMem and NVML report
 * the limit as the total and the limit minus the container's usage as free,
 * so frameworks that size their caches from these numbers stay inside it.
 */
#include "hook.h"

static uint64_t limit_of(int dev)
{
    return dev < 0 ? 0 : g_hook.cfg.mem_limit[dev];
}

static uint64_t room(int dev)
{
    uint64_t limit = limit_of(dev), used = region_used(&g_hook.region, dev);
    return used < limit ? limit - used : 0;
}

/* The driver sees the NULL arguments first, so errors are exactly its own;
 * only outputs the application asked for are adjusted. */
TESSERA_EXPORT CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
    __typeof__(&cuMemGetInfo_v2) real = REAL(cuMemGetInfo_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(free, total);
    if (rc != CUDA_SUCCESS)
        return rc;
    int dev = hook_current_dev();
    uint64_t limit = limit_of(dev);
    if (limit == 0)
        return rc;
    pool_resync_all();
    if (total != NULL)
        *total = limit;
    if (free != NULL) {
        uint64_t left = room(dev); /* read once: others allocate meanwhile */
        if (*free > left)
            *free = left; /* the GPU itself may have less: keep the smaller */
    }
    return rc;
}

TESSERA_EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice device)
{
    __typeof__(&cuDeviceTotalMem_v2) real = REAL(cuDeviceTotalMem_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(bytes, device);
    uint64_t limit = limit_of(hook_dev_of_cuda(device));
    if (rc == CUDA_SUCCESS && bytes != NULL && limit != 0)
        *bytes = limit;
    return rc;
}

TESSERA_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    __typeof__(&nvmlDeviceGetMemoryInfo) real = REAL_NVML(nvmlDeviceGetMemoryInfo);
    if (real == NULL)
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    nvmlReturn_t rc = real(device, memory);
    int dev = rc == NVML_SUCCESS && memory != NULL ? hook_dev_of_nvml(device) : -1;
    if (limit_of(dev) == 0)
        return rc;
    memory->total = limit_of(dev);
    memory->free = room(dev);
    memory->used = memory->total - memory->free;
    return rc;
}

TESSERA_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    __typeof__(&nvmlDeviceGetMemoryInfo_v2) real = REAL_NVML(nvmlDeviceGetMemoryInfo_v2);
    if (real == NULL)
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    nvmlReturn_t rc = real(device, memory);
    int dev = rc == NVML_SUCCESS && memory != NULL ? hook_dev_of_nvml(device) : -1;
    if (limit_of(dev) == 0)
        return rc;
    /* The driver's own reservation is folded into used, so that total =
     * free + used + reserved still holds. */
    memory->total = limit_of(dev);
    memory->reserved = 0;
    memory->free = room(dev);
    memory->used = memory->total - memory->free;
    return rc;
}
