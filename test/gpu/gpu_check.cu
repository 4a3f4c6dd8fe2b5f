// gpu_check.cu - checks of the Tessera interception library on a real GPU,
// run by test/gpu/run.sh under LD_PRELOAD with a container's environment.
// Written in C style: the driver API for memory (what the limit is made of)
// and the runtime for launches (so the runtime's cuGetProcAddress path is
// exercised too). Prints "PASS name" / "FAIL name: why" lines.
//
//   gpu_check mem            limit reported, and enforced, through both APIs
//   gpu_check spin <n>       runs n busy kernels, prints "kernels_per_s <x>"
#include <cuda.h>
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures;

static void check(int ok, const char *name, const char *why)
{
    printf(ok ? "PASS %s\n" : "FAIL %s: %s\n", name, why);
    failures += !ok;
}

static size_t limit_bytes(void)
{
    const char *v = getenv("TESSERA_MEMORY_LIMIT_MIB_0");
    return v ? (size_t)strtoull(v, NULL, 10) << 20 : 0;
}

// Driver API: the limit is the total, and allocation stops at it with
// CUDA_ERROR_OUT_OF_MEMORY.
static void driver_memory(size_t limit)
{
    CUcontext ctx;
    CUdevice dev;
    size_t free_b = 0, total = 0, dev_total = 0, got = 0;
    char why[256];
    cuInit(0);
    cuDeviceGet(&dev, 0);
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);
    cuMemGetInfo(&free_b, &total);
    cuDeviceTotalMem(&dev_total, dev);
    snprintf(why, sizeof(why), "total %zu, device total %zu, free %zu, limit %zu", total,
             dev_total, free_b, limit);
    check(total == limit && dev_total == limit && free_b <= limit, "driver_reports_limit", why);
    CUdeviceptr ptrs[4096];
    int n = 0;
    CUresult rc = CUDA_SUCCESS;
    while (n < 4096 && (rc = cuMemAlloc(&ptrs[n], 64 << 20)) == CUDA_SUCCESS)
        n++, got += 64 << 20;
    snprintf(why, sizeof(why), "allocated %zu MiB of %zu, then error %d", got >> 20, limit >> 20,
             (int)rc);
    check(rc == CUDA_ERROR_OUT_OF_MEMORY && got <= limit, "driver_alloc_stops_at_limit", why);
    while (n > 0)
        cuMemFree(ptrs[--n]);
}

// Runtime API (cudart reaches the driver through cuGetProcAddress).
static void runtime_memory(size_t limit)
{
    size_t free_b = 0, total = 0, got = 0;
    char why[256];
    cudaMemGetInfo(&free_b, &total);
    snprintf(why, sizeof(why), "total %zu, limit %zu", total, limit);
    check(total == limit, "runtime_reports_limit", why);
    void *ptrs[4096];
    int n = 0;
    cudaError_t err = cudaSuccess;
    while (n < 4096 && (err = cudaMalloc(&ptrs[n], 64 << 20)) == cudaSuccess)
        n++, got += 64 << 20;
    snprintf(why, sizeof(why), "allocated %zu MiB of %zu, then %s", got >> 20, limit >> 20,
             cudaGetErrorName(err));
    check(err == cudaErrorMemoryAllocation && got <= limit, "runtime_alloc_stops_at_limit", why);
    while (n > 0)
        cudaFree(ptrs[--n]);
}

__global__ void spin(long long cycles)
{
    long long start = clock64();
    while (clock64() - start < cycles) {
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// Cycles that make spin() last about ms milliseconds, measured with events
// (pacing delays launches, not the kernels' own run time).
static long long calibrate(int blocks, float ms)
{
    long long cycles = 1000000;
    cudaEvent_t a, b;
    float took = 0;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    cudaEventRecord(a, 0);
    spin<<<blocks, 32>>>(cycles);
    cudaEventRecord(b, 0);
    cudaEventSynchronize(b);
    cudaEventElapsedTime(&took, a, b);
    return took > 0 ? (long long)(cycles * (ms / took)) : cycles;
}

// Kernels of about 2 ms on every SM, synchronised every 8, like a training
// loop.
static void spin_rate(int n)
{
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    long long cycles = calibrate(sms, 2.0f);
    double t = now_s();
    for (int i = 0; i < n; i++) {
        spin<<<sms, 32>>>(cycles);
        if (i % 8 == 7)
            cudaDeviceSynchronize();
    }
    cudaDeviceSynchronize();
    printf("kernels_per_s %.2f\n", n / (now_s() - t));
}

__global__ void empty(void) {}

// Host time of one launch of an empty kernel, launched back to back in
// batches of 256 with a synchronisation after each batch, as a decode
// step launches many small kernels: what the hook's launch path adds shows
// as the difference between a capped and an uncapped run.
static void launch_cost(int n)
{
    empty<<<1, 32>>>(); // the first launch pays for module loading
    cudaDeviceSynchronize();
    double launch = 0;
    for (int done = 0; done < n; done += 256) {
        double t = now_s();
        for (int i = 0; i < 256; i++)
            empty<<<1, 32>>>();
        launch += now_s() - t;
        cudaDeviceSynchronize();
    }
    printf("ns_per_launch %.1f\n", launch * 1e9 / n);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "mem") == 0) {
        size_t limit = limit_bytes();
        driver_memory(limit);
        runtime_memory(limit);
    } else if (argc == 3 && strcmp(argv[1], "spin") == 0) {
        spin_rate(atoi(argv[2]));
    } else if (argc == 3 && strcmp(argv[1], "launch") == 0) {
        launch_cost(atoi(argv[2]));
    } else {
        fprintf(stderr, "usage: gpu_check mem | gpu_check spin <n> | gpu_check launch <n>\n");
        return 2;
    }
    return failures == 0 ? 0 : 1;
}
