/*
 * region_writer.c - a CUDA process for pkg/region's Go tests: under the hook
 * and the fake driver it allocates <MiB> on device 0, makes <launches>
 * launches (waiting for each to finish, so that the library has settled the
 * GPU time of all but the last when it prints), prints "ready" and holds
 * everything until its stdin closes; then it frees and exits normally.
 *   usage: region_writer <MiB> <launches>
 */
#include "tessera_cuda_abi.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    CUcontext ctx;
    CUdeviceptr p = 0;
    if (argc != 3)
        return fprintf(stderr, "usage: region_writer <MiB> <launches>\n"), 2;
    size_t bytes = strtoull(argv[1], NULL, 10) * 1024 * 1024;
    long launches = strtol(argv[2], NULL, 10);
    if (cuInit(0) != CUDA_SUCCESS || cuDevicePrimaryCtxRetain(&ctx, 0) != CUDA_SUCCESS ||
        cuCtxSetCurrent(ctx) != CUDA_SUCCESS || cuMemAlloc_v2(&p, bytes) != CUDA_SUCCESS)
        return fprintf(stderr, "region_writer: CUDA setup failed\n"), 3;
    for (long i = 0; i < launches; i++)
        if (cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL) != CUDA_SUCCESS ||
            cuCtxSynchronize() != CUDA_SUCCESS)
            return fprintf(stderr, "region_writer: launch failed\n"), 4;
    printf("ready\n");
    fflush(stdout);
    while (getchar() != EOF) {
    }
    return cuMemFree_v2(p) == CUDA_SUCCESS ? 0 : 5;
}
