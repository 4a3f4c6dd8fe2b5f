/*
 * t_info.c - what applications are told: cuMemGetInfo, cuDeviceTotalMem and
 * NVML (direct and through dlsym, as pynvml and go-nvml call it) report the
 * limit as the total and the container's remaining room as free; NULL
 * arguments get the driver's own error; devices are matched by UUID even when
 * CUDA and NVML number them differently from the device plugin.
 */
#include "th.h"

#include "tessera_env.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static const char *region;

/* Two devices; the plugin's ordinal 0 is CUDA device 1 and vice versa, and
 * NVML lists them in reverse order again. */
static void crossed_env(void)
{
    unsigned mem[] = {1024, 2048};
    char uuid[64];
    th_container_env(region, 2, mem, NULL);
    fakecuda_uuid(1, uuid, sizeof(uuid));
    setenv(TESSERA_ENV_DEVICE_UUID_PREFIX "0", uuid, 1);
    fakecuda_uuid(0, uuid, sizeof(uuid));
    setenv(TESSERA_ENV_DEVICE_UUID_PREFIX "1", uuid, 1);
    setenv("FAKECUDA_DEVICE_COUNT", "2", 1);
    setenv("FAKENVML_REVERSE", "1", 1);
}

static void test_device_total(void)
{
    size_t t0 = 0, t1 = 0;
    cuDeviceTotalMem_v2(&t0, 0);
    cuDeviceTotalMem_v2(&t1, 1);
    check(t0 == 2048 * TH_MIB && t1 == 1024 * TH_MIB, "device_total_is_limit_by_uuid",
          "device 0: %zu MiB, device 1: %zu MiB", t0 / TH_MIB, t1 / TH_MIB);
}

static void test_mem_get_info(void)
{
    size_t free0 = 0, total = 0, free1 = 0;
    cuMemGetInfo_v2(&free0, &total);
    CUdeviceptr p = 0;
    cuMemAlloc_v2(&p, 100 * TH_MIB);
    cuMemGetInfo_v2(&free1, &total);
    check(total == 2048 * TH_MIB && free0 == 2048 * TH_MIB - TH_OVERHEAD &&
              free1 == free0 - 100 * TH_MIB,
          "mem_get_info_reports_limit", "total %zu MiB, free %zu then %zu MiB", total / TH_MIB,
          free0 / TH_MIB, free1 / TH_MIB);
    cuMemFree_v2(p);
    CUresult a = cuMemGetInfo_v2(NULL, &total), b = cuMemGetInfo_v2(&free0, NULL);
    CUresult c = cuMemGetInfo_v2(NULL, NULL);
    check(a == CUDA_ERROR_INVALID_VALUE && b == a && c == a, "mem_get_info_null_is_drivers_error",
          "got %d %d %d", (int)a, (int)b, (int)c);
}

typedef __typeof__(&nvmlDeviceGetMemoryInfo) mem_fn;
typedef __typeof__(&nvmlDeviceGetMemoryInfo_v2) mem_v2_fn;

/* NVML index 0 is CUDA device 1, which is the plugin's ordinal 0. */
static void check_nvml(const char *how, mem_fn v1, mem_v2_fn v2)
{
    nvmlDevice_t d0, d1;
    nvmlMemory_t m0 = {0}, m1 = {0};
    nvmlMemory_v2_t n0 = {.version = TESSERA_NVML_MEMORY_V2_VERSION};
    nvmlDeviceGetHandleByIndex_v2(0, &d0);
    nvmlDeviceGetHandleByIndex_v2(1, &d1);
    v1(d0, &m0);
    v1(d1, &m1);
    v2(d0, &n0);
    char name[64];
    snprintf(name, sizeof(name), "nvml_%s_reports_limit", how);
    check(m0.total == 1024 * TH_MIB && m1.total == 2048 * TH_MIB &&
              m1.used == th_region_used(region, 1) && m1.free == m1.total - m1.used &&
              n0.total == 1024 * TH_MIB && n0.free + n0.used + n0.reserved == n0.total,
          name, "index 0: %llu MiB, index 1: %llu MiB (used %llu), v2 %llu MiB", m0.total / TH_MIB,
          m1.total / TH_MIB, m1.used / TH_MIB, n0.total / TH_MIB);
}

static void test_nvml(void)
{
    nvmlInit_v2();
    check_nvml("direct", nvmlDeviceGetMemoryInfo, nvmlDeviceGetMemoryInfo_v2);
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    mem_fn v1 = (mem_fn)dlsym(h, "nvmlDeviceGetMemoryInfo");
    mem_v2_fn v2 = (mem_v2_fn)dlsym(h, "nvmlDeviceGetMemoryInfo_v2");
    check((void *)v1 == dlsym(RTLD_DEFAULT, "nvmlDeviceGetMemoryInfo") && v2 != NULL,
          "nvml_dlsym_returns_wrapper", "got %p", (void *)v1);
    if (v1 != NULL && v2 != NULL)
        check_nvml("dlsym", v1, v2);
    nvmlShutdown();
}

int main(void)
{
    region = th_path("info.region");
    crossed_env();
    if (th_make_current(0) != 0)
        return check(0, "info_setup", "no context"), 1;
    test_device_total();
    test_mem_get_info();
    test_nvml();
    return check_exit_code();
}
