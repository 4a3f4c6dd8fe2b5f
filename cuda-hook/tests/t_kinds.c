/*
 * t_kinds.c - every kind of device memory the hook limits reaches the limit
 * with CUDA_ERROR_OUT_OF_MEMORY and leaves nothing charged once freed:
 * pitched, managed, stream-ordered (default pool and a created pool), VMM,
 * arrays, mipmapped arrays, graph allocation nodes; and the context overhead.
 */
#include "th.h"

#include <string.h>

#define LIMIT_MIB 1024u
#define CHUNK (32 * TH_MIB)

static const char *region;

static CUresult pitch_alloc(void *s, uint64_t size, uint64_t *key)
{
    (void)s;
    CUdeviceptr p = 0;
    size_t pitch = 0;
    CUresult rc = cuMemAllocPitch_v2(&p, &pitch, 1024, size / 1024, 4);
    *key = p;
    return rc;
}

static CUresult managed_alloc(void *s, uint64_t size, uint64_t *key)
{
    (void)s;
    CUdeviceptr p = 0;
    CUresult rc = cuMemAllocManaged(&p, size, 1);
    *key = p;
    return rc;
}

static CUresult ptr_free(void *s, uint64_t key)
{
    (void)s;
    return cuMemFree_v2(key);
}

static CUresult pool_alloc(void *s, uint64_t size, uint64_t *key)
{
    CUdeviceptr p = 0;
    CUmemoryPool pool = *(CUmemoryPool *)s;
    CUresult rc =
        pool ? cuMemAllocFromPoolAsync(&p, size, pool, NULL) : cuMemAllocAsync(&p, size, NULL);
    *key = p;
    return rc;
}

static CUresult pool_free(void *s, uint64_t key)
{
    (void)s;
    return cuMemFreeAsync(key, NULL);
}

static CUresult pool_trim(void *s)
{
    CUmemoryPool pool = *(CUmemoryPool *)s;
    if (pool == NULL && cuDeviceGetMemPool(&pool, 0) != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    return cuMemPoolTrimTo(pool, 0);
}

static CUresult vmm_alloc(void *s, uint64_t size, uint64_t *key)
{
    (void)s;
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof(prop));
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location = (CUmemLocation){.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
    CUmemGenericAllocationHandle h = 0;
    CUresult rc = cuMemCreate(&h, size, &prop, 0);
    *key = h;
    return rc;
}

static CUresult vmm_free(void *s, uint64_t key)
{
    (void)s;
    return cuMemRelease(key);
}

static CUresult array_alloc(void *s, uint64_t size, uint64_t *key)
{
    (void)s;
    CUDA_ARRAY3D_DESCRIPTOR d = {.Width = 1024,
                                 .Height = size / 4096,
                                 .Depth = 0,
                                 .Format = CU_AD_FORMAT_FLOAT,
                                 .NumChannels = 1};
    CUarray a = NULL;
    CUresult rc = cuArray3DCreate_v2(&a, &d);
    *key = (uintptr_t)a;
    return rc;
}

static CUresult array_free(void *s, uint64_t key)
{
    (void)s;
    return cuArrayDestroy((CUarray)(uintptr_t)key);
}

static CUresult array2d_alloc(void *s, uint64_t size, uint64_t *key)
{
    (void)s;
    CUDA_ARRAY_DESCRIPTOR d = {
        .Width = 2048, .Height = size / 4096, .Format = CU_AD_FORMAT_HALF, .NumChannels = 1};
    CUarray a = NULL;
    CUresult rc = cuArrayCreate_v2(&a, &d);
    *key = (uintptr_t)a;
    return rc;
}

static CUresult mipmap_alloc(void *s, uint64_t size, uint64_t *key)
{
    (void)s;
    CUDA_ARRAY3D_DESCRIPTOR d = {.Width = 1024,
                                 .Height = size / 4096,
                                 .Format = CU_AD_FORMAT_UNSIGNED_INT8,
                                 .NumChannels = 4};
    CUmipmappedArray m = NULL;
    CUresult rc = cuMipmappedArrayCreate(&m, &d, 1);
    *key = (uintptr_t)m;
    return rc;
}

static CUresult mipmap_free(void *s, uint64_t key)
{
    (void)s;
    return cuMipmappedArrayDestroy((CUmipmappedArray)(uintptr_t)key);
}

static CUresult node_alloc(void *s, uint64_t size, uint64_t *key)
{
    CUDA_MEM_ALLOC_NODE_PARAMS p;
    memset(&p, 0, sizeof(p));
    p.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    p.poolProps.location = (CUmemLocation){.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
    p.bytesize = size;
    CUgraphNode node = NULL;
    CUresult rc = cuGraphAddMemAllocNode(&node, *(CUgraph *)s, NULL, 0, &p);
    *key = (uintptr_t)node;
    return rc;
}

static CUresult node_free(void *s, uint64_t key)
{
    (void)s;
    return cuGraphDestroyNode((CUgraphNode)(uintptr_t)key);
}

static void fill(const char *name, void *alloc, void *release, void *finish, void *state)
{
    struct th_allocator a = {name, alloc, release, finish, state};
    th_check_fill(&a, CHUNK, LIMIT_MIB * TH_MIB, region);
}

static void test_pools(void)
{
    CUmemoryPool none = NULL, mine = NULL;
    fill("default_pool", pool_alloc, pool_free, pool_trim, &none);
    CUmemPoolProps props;
    memset(&props, 0, sizeof(props));
    props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    props.location = (CUmemLocation){.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
    check(cuMemPoolCreate(&mine, &props) == CUDA_SUCCESS, "pool_create", "failed");
    fill("created_pool", pool_alloc, pool_free, pool_trim, &mine);
    /* Allocations kept in a pool after free stay charged until trimmed or
     * destroyed: destroying gives them back. */
    uint64_t key = 0, before = th_region_used(region, 0);
    pool_alloc(&mine, CHUNK, &key);
    pool_free(&mine, key);
    uint64_t held = th_region_used(region, 0);
    cuMemPoolDestroy(mine);
    check(held == before + CHUNK && th_region_used(region, 0) == before,
          "pool_destroy_releases_reserve", "before %llu held %llu after %llu",
          (unsigned long long)before, (unsigned long long)held,
          (unsigned long long)th_region_used(region, 0));
}

static void test_graph_nodes(void)
{
    CUgraph g = NULL;
    cuGraphCreate(&g, 0);
    fill("graph_alloc_node", node_alloc, node_free, NULL, &g);
    uint64_t key = 0, before = th_region_used(region, 0);
    node_alloc(&g, CHUNK, &key);
    node_alloc(&g, CHUNK, &key);
    uint64_t held = th_region_used(region, 0);
    cuGraphDestroy(g);
    check(held == before + 2 * CHUNK && th_region_used(region, 0) == before,
          "graph_destroy_releases_nodes", "held %llu after %llu", (unsigned long long)held,
          (unsigned long long)th_region_used(region, 0));
}

static int open_context(void *arg)
{
    (void)arg;
    CUcontext c;
    if (cuInit(0) != CUDA_SUCCESS)
        return 2;
    return cuDevicePrimaryCtxRetain(&c, 0) == CUDA_ERROR_OUT_OF_MEMORY ? 0 : 1;
}

/* A context needs room too: with the container full, another process of it
 * cannot open one. */
static void test_context_refused_when_full(void)
{
    CUdeviceptr ptrs[64];
    int n = 0;
    while (n < 64 && cuMemAlloc_v2(&ptrs[n], CHUNK) == CUDA_SUCCESS)
        n++;
    int rc = th_in_child(open_context, NULL);
    while (n > 0)
        cuMemFree_v2(ptrs[--n]);
    check(rc == 0, "context_refused_when_container_full", "child exit %d", rc);
}

static void test_context_overhead(void)
{
    CUcontext extra = NULL;
    uint64_t with_primary = th_region_used(region, 0);
    cuCtxCreate_v2(&extra, 0, 0); /* a second context on the same device */
    uint64_t with_two = th_region_used(region, 0);
    cuCtxDestroy_v2(extra);
    cuDevicePrimaryCtxRelease_v2(0);
    check(with_primary == TH_OVERHEAD && with_two == 2 * TH_OVERHEAD &&
              th_region_used(region, 0) == 0,
          "each_context_charged_what_it_takes", "primary %llu two %llu after %llu",
          (unsigned long long)with_primary, (unsigned long long)with_two,
          (unsigned long long)th_region_used(region, 0));
}

int main(void)
{
    unsigned mem[] = {LIMIT_MIB};
    region = th_path("kinds.region");
    th_container_env(region, 1, mem, NULL);
    if (th_make_current(0) != 0)
        return check(0, "kinds_setup", "no context"), 1;
    fill("pitch", pitch_alloc, ptr_free, NULL, NULL);
    fill("managed", managed_alloc, ptr_free, NULL, NULL);
    test_pools();
    fill("vmm", vmm_alloc, vmm_free, NULL, NULL);
    fill("array3d", array_alloc, array_free, NULL, NULL);
    fill("array2d", array2d_alloc, array_free, NULL, NULL);
    fill("mipmap", mipmap_alloc, mipmap_free, NULL, NULL);
    test_graph_nodes();
    test_context_refused_when_full();
    test_context_overhead();
    return check_exit_code();
}
