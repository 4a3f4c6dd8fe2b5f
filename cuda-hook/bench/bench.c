/*
 * bench.c - what the hook adds to a call. Each case calls the same fake
 * driver function twice over: directly (its own address, from
 * fakecuda_raw_proc) and through the hook's exported wrapper.
 *
 *   bench nocap|cap        timing: alternating rounds, each side keeps its
 *                          fastest round (the machine is shared, and noise
 *                          only ever adds time). One line per case:
 *                          <case> <direct ns/call> <hooked ns/call>
 *   bench count CASE SIDE N   runs N iterations of one case (launch,
 *                          alloc_free, mem_get_info) on one side (direct,
 *                          hooked) inside measured(), for callgrind's
 *                          --toggle-collect=measured: instruction counts do
 *                          not move with the machine's load.
 *
 * The environment comes from bench.sh.
 */
#include "fakecuda.h"
#include "tessera_cuda_abi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Many short rounds, alternating sides: both see the same noise, and the
 * fastest round of each is taken where the machine was quiet. */
#define ROUNDS 101
/* The size the numbers are for; the cost does not depend on it. */
#define ALLOC_SIZE (1024 * 1024)

typedef __typeof__(&cuLaunchKernel) launch_fn;
typedef __typeof__(&cuMemAlloc_v2) alloc_fn;
typedef __typeof__(&cuMemFree_v2) free_fn;
typedef __typeof__(&cuMemGetInfo_v2) info_fn;
typedef __typeof__(&cuGetProcAddress) gpa_fn;

/* One side of every case: the functions that loops call through volatile
 * pointers, so that neither side is inlined or hoisted and both pay the
 * same indirect call. */
struct side {
    launch_fn volatile launch;
    alloc_fn volatile alloc;
    free_fn volatile free;
    info_fn volatile info;
    gpa_fn volatile gpa;
};

static struct side direct, hooked;

static void load_side(struct side *s, void *(*find)(const char *))
{
    s->launch = (launch_fn)find("cuLaunchKernel");
    s->alloc = (alloc_fn)find("cuMemAlloc_v2");
    s->free = (free_fn)find("cuMemFree_v2");
    s->info = (info_fn)find("cuMemGetInfo_v2");
    s->gpa = (gpa_fn)find("cuGetProcAddress");
}

static void *find_exported(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

enum bench_case { C_LAUNCH, C_ALLOC_FREE, C_MEM_GET_INFO, C_GPA, C_COUNT };
static const char *const case_names[C_COUNT] = {"launch", "alloc_free", "mem_get_info",
                                                "get_proc_address"};

static void run_case(const struct side *s, enum bench_case c, long n)
{
    CUdeviceptr p;
    size_t free_b, total_b;
    void *fn;
    for (long i = 0; i < n; i++) {
        switch (c) {
        case C_LAUNCH:
            s->launch(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
            break;
        case C_ALLOC_FREE:
            s->alloc(&p, ALLOC_SIZE);
            s->free(p);
            break;
        case C_MEM_GET_INFO:
            s->info(&free_b, &total_b);
            break;
        default:
            s->gpa("cuLaunchKernel", &fn, 12000, 0);
            break;
        }
    }
}

/* The only function callgrind collects in (bench.sh); noinline so that it
 * exists under this name. */
__attribute__((noinline)) void measured(const struct side *s, enum bench_case c, long n)
{
    run_case(s, c, n);
}

static double time_case(const struct side *s, enum bench_case c, long n)
{
    double t = now_ns();
    run_case(s, c, n);
    return (now_ns() - t) / (double)n;
}

static double min2(double a, double b)
{
    return a < b ? a : b;
}

static void bench(const char *label, enum bench_case c, long n)
{
    double d = 1e30, h = 1e30;
    time_case(&hooked, c, n / 10); /* warm-up: lazy start-up, pacer estimate */
    for (int r = 0; r < ROUNDS; r++) {
        d = min2(d, time_case(&direct, c, n));
        h = min2(h, time_case(&hooked, c, n));
    }
    printf("%s %.2f %.2f\n", label, d, h);
}

static int case_of(const char *name)
{
    for (int c = 0; c < C_COUNT; c++)
        if (strcmp(name, case_names[c]) == 0)
            return c;
    return -1;
}

/* bench count CASE SIDE N: warms the hooked side up outside measured(), with
 * as many calls as it then counts: a capped launch's estimate starts at
 * 100 us and takes thousands of launches to reach the fake's kernels, and
 * until it has, more launches than at rest are timed. */
static int count(int argc, char **argv)
{
    int c = argc == 5 ? case_of(argv[2]) : -1;
    long n = argc == 5 ? atol(argv[4]) : 0;
    if (c < 0 || n <= 0 || (strcmp(argv[3], "direct") != 0 && strcmp(argv[3], "hooked") != 0))
        return 2;
    run_case(&hooked, (enum bench_case)c, n);
    measured(strcmp(argv[3], "direct") == 0 ? &direct : &hooked, (enum bench_case)c, n);
    return 0;
}

int main(int argc, char **argv)
{
    CUcontext ctx;
    if (argc < 2 || cuInit(0) != CUDA_SUCCESS || cuDevicePrimaryCtxRetain(&ctx, 0) != 0 ||
        cuCtxSetCurrent(ctx) != CUDA_SUCCESS) {
        fprintf(stderr, "usage: bench nocap|cap|count CASE SIDE N (with the fake driver)\n");
        return 2;
    }
    load_side(&direct, fakecuda_raw_proc);
    load_side(&hooked, find_exported);
    if (strcmp(argv[1], "count") == 0)
        return count(argc, argv);
    if (strcmp(argv[1], "cap") == 0) {
        bench("launch_cap_not_reached", C_LAUNCH, 40000);
        return 0;
    }
    bench("launch_no_cap", C_LAUNCH, 400000);
    bench("alloc_free", C_ALLOC_FREE, 40000);
    bench("mem_get_info", C_MEM_GET_INFO, 100000);
    bench("get_proc_address", C_GPA, 100000);
    return 0;
}
