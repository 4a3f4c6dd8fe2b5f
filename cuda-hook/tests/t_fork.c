/*
 * t_fork.c - a forked child starts with none of its parent's accounting:
 * no process record (it claims its own, not its parent's), no allocations
 * (freeing an inherited pointer releases nothing of the parent's charge),
 * and the room its parent left; when it exits, the container's usage is
 * the parent's again. Start-up registers this reset (init.c), and the
 * allocation path reaches the record through a cached pointer that the
 * reset must clear, so this is what keeps both honest.
 */
#include "th.h"

#include <stdlib.h>

#define LIMIT_MIB 1024u
#define LIMIT ((uint64_t)LIMIT_MIB * TH_MIB)
#define PARENT_BYTES (128 * TH_MIB)
#define CHUNK (16 * TH_MIB)

static const char *region;
static CUdeviceptr parent_ptr;
static uint64_t parent_used;
static int parent_records;

/* Exit codes say which expectation failed. */
static int child(void *arg)
{
    (void)arg;
    CUdeviceptr p;
    if (cuMemFree_v2(parent_ptr) != CUDA_SUCCESS)
        return 2;
    if (th_region_used(region, 0) != parent_used)
        return 3; /* the parent's charge was released by its child */
    if (cuMemAlloc_v2(&p, CHUNK) != CUDA_SUCCESS)
        return 4;
    if (th_region_used(region, 0) != parent_used + CHUNK ||
        th_region_records(region) != parent_records + 1)
        return 5; /* charged to the parent's record, not one of its own */
    uint64_t got = CHUNK;
    while (cuMemAlloc_v2(&p, CHUNK) == CUDA_SUCCESS)
        got += CHUNK;
    return got <= LIMIT - parent_used && got + CHUNK > LIMIT - parent_used ? 0 : 6;
}

int main(void)
{
    unsigned mem[] = {LIMIT_MIB};
    region = th_path("fork.region");
    th_container_env(region, 1, mem, NULL);
    if (th_make_current(0) != 0 || cuMemAlloc_v2(&parent_ptr, PARENT_BYTES) != CUDA_SUCCESS) {
        check(0, "fork_setup", "cannot allocate in the parent");
        return check_exit_code();
    }
    parent_used = th_region_used(region, 0);
    parent_records = th_region_records(region);
    int rc = th_in_child(child, NULL);
    check(rc == 0, "fork_child_starts_with_nothing_of_its_parent", "child exit %d", rc);
    uint64_t used = th_region_used(region, 0);
    check(used == parent_used && th_region_records(region) == parent_records,
          "fork_child_leaves_the_parent_as_it_was", "used %llu MiB, expected %llu MiB",
          (unsigned long long)(used / TH_MIB), (unsigned long long)(parent_used / TH_MIB));
    check(cuMemFree_v2(parent_ptr) == CUDA_SUCCESS &&
              th_region_used(region, 0) == parent_used - PARENT_BYTES,
          "fork_parent_still_frees_its_own", "used %llu MiB",
          (unsigned long long)(th_region_used(region, 0) / TH_MIB));
    return check_exit_code();
}
