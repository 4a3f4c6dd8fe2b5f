/*
 * region_writer.c - a CUDA process for pkg/region's Go tests: under the hook
 * and the fake driver it allocates <MiB> on device 0, makes <launches>
 * launches from a thread of their own (waiting for each to finish, so that
 * the library has settled the GPU time of all but the last), joins that
 * thread, prints "ready" and holds everything until its stdin closes; then
 * it frees and exits normally. The launching thread ends before "ready"
 * because the library batches a thread's launch figures and writes them to
 * the region every 10 ms or when the thread exits.
 *   usage: region_writer <MiB> <launches>
 */
#include "tessera_cuda_abi.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct work {
    CUcontext ctx;
    long launches;
    int failed;
};

static void *launch_all(void *arg)
{
    struct work *w = arg;
    if (cuCtxSetCurrent(w->ctx) != CUDA_SUCCESS) {
        w->failed = 1;
        return NULL;
    }
    for (long i = 0; i < w->launches && !w->failed; i++)
        w->failed = cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL) != CUDA_SUCCESS ||
                    cuCtxSynchronize() != CUDA_SUCCESS;
    return NULL;
}

int main(int argc, char **argv)
{
    CUdeviceptr p = 0;
    struct work w = {0};
    pthread_t thread;
    if (argc != 3)
        return fprintf(stderr, "usage: region_writer <MiB> <launches>\n"), 2;
    size_t bytes = strtoull(argv[1], NULL, 10) * 1024 * 1024;
    w.launches = strtol(argv[2], NULL, 10);
    if (cuInit(0) != CUDA_SUCCESS || cuDevicePrimaryCtxRetain(&w.ctx, 0) != CUDA_SUCCESS ||
        cuCtxSetCurrent(w.ctx) != CUDA_SUCCESS || cuMemAlloc_v2(&p, bytes) != CUDA_SUCCESS)
        return fprintf(stderr, "region_writer: CUDA setup failed\n"), 3;
    if (pthread_create(&thread, NULL, launch_all, &w) != 0 || pthread_join(thread, NULL) != 0)
        return fprintf(stderr, "region_writer: launching thread failed\n"), 4;
    if (w.failed)
        return fprintf(stderr, "region_writer: launch failed\n"), 4;
    printf("ready\n");
    fflush(stdout);
    while (getchar() != EOF) {
    }
    return cuMemFree_v2(p) == CUDA_SUCCESS ? 0 : 5;
}
