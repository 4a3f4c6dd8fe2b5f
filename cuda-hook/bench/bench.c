/*
 * bench.c - what the hook adds to a call. Each case calls the same fake
 * driver function twice over: directly (its own address, from
 * fakecuda_raw_proc) and through the hook's exported wrapper, in alternating
 * rounds; each side keeps the fastest round (the machine is shared, and
 * noise only ever adds time). Prints one line per case:
 *   <case> <direct ns/call> <hooked ns/call>
 * Usage: bench nocap|cap   (the environment comes from bench.sh)
 */
#include "fakecuda.h"
#include "tessera_cuda_abi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Many short rounds, alternating sides: both see the same noise, and the
 * fastest round of each is taken where the machine was quiet. */
#define ROUNDS 101

typedef __typeof__(&cuLaunchKernel) launch_fn;
typedef __typeof__(&cuMemAlloc_v2) alloc_fn;
typedef __typeof__(&cuMemFree_v2) free_fn;
typedef __typeof__(&cuGetProcAddress) gpa_fn;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Loops call through volatile pointers so that neither side is inlined or
 * hoisted: both pay the same indirect call. */
static double time_launch(launch_fn volatile *f, long n)
{
    double t = now_ns();
    for (long i = 0; i < n; i++)
        (*f)(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
    return (now_ns() - t) / (double)n;
}

static alloc_fn volatile alloc_direct, alloc_hooked;
static free_fn volatile free_direct, free_hooked;

static double time_alloc(int hooked, long n)
{
    alloc_fn volatile *a = hooked ? &alloc_hooked : &alloc_direct;
    free_fn volatile *f = hooked ? &free_hooked : &free_direct;
    CUdeviceptr p;
    double t = now_ns();
    for (long i = 0; i < n; i++) {
        (*a)(&p, 4096);
        (*f)(p);
    }
    return (now_ns() - t) / (double)n;
}

static double time_gpa(gpa_fn volatile *g, long n)
{
    void *p;
    double t = now_ns();
    for (long i = 0; i < n; i++)
        (*g)("cuLaunchKernel", &p, 12000, 0);
    return (now_ns() - t) / (double)n;
}

static double min2(double a, double b)
{
    return a < b ? a : b;
}

static void bench_launch(const char *name, long n)
{
    static launch_fn volatile direct, hooked;
    direct = (launch_fn)fakecuda_raw_proc("cuLaunchKernel");
    hooked = (launch_fn)dlsym(RTLD_DEFAULT, "cuLaunchKernel");
    double d = 1e30, h = 1e30;
    time_launch(&hooked, n / 10); /* warm-up: lazy start-up, pacer estimate */
    for (int r = 0; r < ROUNDS; r++) {
        d = min2(d, time_launch(&direct, n));
        h = min2(h, time_launch(&hooked, n));
    }
    printf("%s %.2f %.2f\n", name, d, h);
}

static void bench_alloc(long n)
{
    alloc_direct = (alloc_fn)fakecuda_raw_proc("cuMemAlloc_v2");
    free_direct = (free_fn)fakecuda_raw_proc("cuMemFree_v2");
    alloc_hooked = (alloc_fn)dlsym(RTLD_DEFAULT, "cuMemAlloc_v2");
    free_hooked = (free_fn)dlsym(RTLD_DEFAULT, "cuMemFree_v2");
    double d = 1e30, h = 1e30;
    time_alloc(1, n / 10);
    for (int r = 0; r < ROUNDS; r++) {
        d = min2(d, time_alloc(0, n));
        h = min2(h, time_alloc(1, n));
    }
    printf("alloc_free %.2f %.2f\n", d, h);
}

static void bench_gpa(long n)
{
    static gpa_fn volatile direct, hooked;
    direct = (gpa_fn)fakecuda_raw_proc("cuGetProcAddress");
    hooked = (gpa_fn)dlsym(RTLD_DEFAULT, "cuGetProcAddress");
    double d = 1e30, h = 1e30;
    time_gpa(&hooked, n / 10);
    for (int r = 0; r < ROUNDS; r++) {
        d = min2(d, time_gpa(&direct, n));
        h = min2(h, time_gpa(&hooked, n));
    }
    printf("get_proc_address %.2f %.2f\n", d, h);
}

int main(int argc, char **argv)
{
    CUcontext ctx;
    if (argc != 2 || cuInit(0) != CUDA_SUCCESS || cuDevicePrimaryCtxRetain(&ctx, 0) != 0 ||
        cuCtxSetCurrent(ctx) != CUDA_SUCCESS) {
        fprintf(stderr, "usage: bench nocap|cap (with the fake driver)\n");
        return 2;
    }
    if (strcmp(argv[1], "cap") == 0) {
        bench_launch("launch_cap_not_reached", 40000);
        return 0;
    }
    bench_launch("launch_no_cap", 400000);
    bench_alloc(40000);
    bench_gpa(100000);
    return 0;
}
