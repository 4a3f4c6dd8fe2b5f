/*
 * fake_nvml.c - the fake libnvidia-ml.so.1: devices with the same UUIDs as
 * the fake CUDA devices (optionally listed in reverse order, to prove that the
 * hook matches NVML devices by UUID), reporting FAKECUDA_DEVICE_MEMORY_MIB.
 */
#include "fakecuda.h"
#include "tessera_nvml_abi.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define FAKE_EXPORT __attribute__((visibility("default")))
#define NVML_MAX 8
#define NVML_MAX_PROCS 256

struct nvmlDevice_st {
    unsigned int index; /* NVML's order */
    int cuda_id;        /* the fake CUDA device it is */
};

static struct nvmlDevice_st devices[NVML_MAX];
static unsigned int ndev;
static int initialised;

static unsigned long env_ul(const char *name, unsigned long dflt)
{
    const char *v = getenv(name);
    return (v == NULL || *v == '\0') ? dflt : strtoul(v, NULL, 10);
}

FAKE_EXPORT nvmlReturn_t nvmlInit_v2(void)
{
    unsigned long n = env_ul("FAKECUDA_DEVICE_COUNT", 1);
    int reverse = env_ul("FAKENVML_REVERSE", 0) == 1;
    ndev = n < 1 ? 1 : n > NVML_MAX ? NVML_MAX : (unsigned)n;
    for (unsigned i = 0; i < ndev; i++)
        devices[i] =
            (struct nvmlDevice_st){.index = i, .cuda_id = reverse ? (int)(ndev - 1 - i) : (int)i};
    initialised = 1;
    return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlShutdown(void)
{
    initialised = 0;
    return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (count == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = ndev;
    return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || index >= ndev)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    if (device == NULL || index == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = device->index;
    return NVML_SUCCESS;
}

/* Same format and values as fakecuda_uuid, without depending on libcuda. */
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    if (device == NULL || uuid == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (length < 41)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    int id = env_ul("FAKECUDA_REVERSE_UUIDS", 0) == 1 ? (int)ndev - 1 - device->cuda_id
                                                      : device->cuda_id;
    snprintf(uuid, length, "GPU-fa4e0000-0000-0000-0000-0000000000%02x", id & 0xff);
    return NVML_SUCCESS;
}

static unsigned long long total_bytes(void)
{
    return (unsigned long long)env_ul("FAKECUDA_DEVICE_MEMORY_MIB", 16384) * 1024ULL * 1024ULL;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    if (device == NULL || memory == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = total_bytes();
    memory->used = 0;
    memory->free = memory->total;
    return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    if (device == NULL || memory == NULL || memory->version != TESSERA_NVML_MEMORY_V2_VERSION)
        return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = total_bytes();
    memory->reserved = 0;
    memory->used = 0;
    memory->free = memory->total;
    return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
    char mine[64];
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (uuid == NULL || device == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned i = 0; i < ndev; i++) {
        if (nvmlDeviceGetUUID(&devices[i], mine, sizeof(mine)) == NVML_SUCCESS &&
            strcasecmp(mine, uuid) == 0) {
            *device = &devices[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

/* The fake CUDA driver's counters, when it is loaded (it is a separate
 * library: found at run time, as the two real libraries are independent). */
static int cuda_contexts(int dev)
{
    int (*count)(int) = (int (*)(int))dlsym(RTLD_DEFAULT, "fakecuda_context_count");
    return count != NULL ? count(dev) : 0;
}

static unsigned long long cuda_used(int dev)
{
    uint64_t (*used)(int) = (uint64_t(*)(int))dlsym(RTLD_DEFAULT, "fakecuda_used_bytes");
    return used != NULL ? used(dev) : 0;
}

/* Lists the other processes (pids far from any real one), this process if
 * it has a context on the device (what the fake driver handed it out: its
 * contexts and allocations), and with FAKENVML_CHURN a newcomer each time. */
static unsigned collect(const struct nvmlDevice_st *d, nvmlProcessInfo_t *out, unsigned room)
{
    static unsigned churn;
    unsigned n = 0, others = (unsigned)env_ul("FAKENVML_OTHER_PROCS", 0);
    nvmlProcessInfo_t all[NVML_MAX_PROCS];
    for (unsigned i = 0; i < others && n < NVML_MAX_PROCS; i++)
        all[n++] = (nvmlProcessInfo_t){.pid = 4000000 + i, .usedGpuMemory = 1ULL << 30};
    if (cuda_contexts(d->cuda_id) > 0 && n < NVML_MAX_PROCS)
        all[n++] = (nvmlProcessInfo_t){
            .pid = (unsigned)getpid() + (unsigned)env_ul("FAKENVML_PID_OFFSET", 0),
            .usedGpuMemory = cuda_used(d->cuda_id)};
    if (env_ul("FAKENVML_CHURN", 0) == 1 && n < NVML_MAX_PROCS)
        all[n++] = (nvmlProcessInfo_t){.pid = 5000000 + churn++, .usedGpuMemory = 1ULL << 20};
    for (unsigned i = 0; i < n && i < room; i++)
        out[i] = all[i];
    return n;
}

static nvmlReturn_t running_processes(nvmlDevice_t device, unsigned int *count,
                                      nvmlProcessInfo_t *infos)
{
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || count == NULL || (*count > 0 && infos == NULL))
        return NVML_ERROR_INVALID_ARGUMENT;
    if (env_ul("FAKENVML_NO_PROCESSES", 0) == 1)
        return NVML_ERROR_NOT_SUPPORTED;
    unsigned n = collect(device, infos, *count);
    nvmlReturn_t rc = n > *count ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
    *count = n;
    return rc;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                                 unsigned int *count,
                                                                 nvmlProcessInfo_t *infos)
{
    return running_processes(device, count, infos);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device,
                                                                 unsigned int *count,
                                                                 nvmlProcessInfo_t *infos)
{
    return running_processes(device, count, infos);
}
