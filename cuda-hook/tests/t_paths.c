/*
 * t_paths.c - every way a program reaches the driver hands out the hook's
 * wrapper and enforces the limit: the direct symbol, dlsym on a libcuda
 * handle, cuGetProcAddress and cuGetProcAddress_v2 (legacy and per-thread
 * flags, and the runtime's own lookup of cuGetProcAddress), while lookups of
 * other versions, other symbols and unknown names get the driver's answer.
 */
#include "th.h"

#include <dlfcn.h>
#include <string.h>

#define LIMIT_MIB 1024u
#define CHUNK (32 * TH_MIB)

typedef __typeof__(&cuMemAlloc_v2) alloc_fn;
typedef __typeof__(&cuMemFree_v2) free_fn;
typedef __typeof__(&cuMemAllocAsync) async_fn;
typedef __typeof__(&cuMemFreeAsync) free_async_fn;
typedef __typeof__(&cuGetProcAddress_v2) gpa_v2_fn;

static const char *region;

struct plain {
    alloc_fn alloc;
    free_fn release;
};

static CUresult plain_alloc(void *s, uint64_t size, uint64_t *key)
{
    CUdeviceptr p = 0;
    CUresult rc = ((struct plain *)s)->alloc(&p, size);
    *key = p;
    return rc;
}

static CUresult plain_free(void *s, uint64_t key)
{
    return ((struct plain *)s)->release(key);
}

static void fill_with(const char *name, void *alloc, void *release)
{
    struct plain p = {(alloc_fn)alloc, (free_fn)release};
    struct th_allocator a = {name, plain_alloc, plain_free, NULL, &p};
    th_check_fill(&a, CHUNK, LIMIT_MIB * TH_MIB, region);
}

/* The hook's own function for a name (the first definition in the process). */
static void *hooked(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

static void *lookup(const char *api, int version, cuuint64_t flags)
{
    void *p = NULL;
    return cuGetProcAddress(api, &p, version, flags) == CUDA_SUCCESS ? p : NULL;
}

static void test_direct_and_dlsym(void)
{
    fill_with("direct", (void *)cuMemAlloc_v2, (void *)cuMemFree_v2);
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    void *a = dlsym(h, "cuMemAlloc_v2"), *f = dlsym(h, "cuMemFree_v2");
    check(h != NULL && a == hooked("cuMemAlloc_v2") && f == hooked("cuMemFree_v2"),
          "dlsym_on_libcuda_handle_returns_wrapper", "handle %p alloc %p", h, a);
    fill_with("dlsym", a, f);
}

static void test_get_proc_address(void)
{
    void *a = lookup("cuMemAlloc", 12000, CU_GET_PROC_ADDRESS_DEFAULT);
    void *f = lookup("cuMemFree", 12000, CU_GET_PROC_ADDRESS_DEFAULT);
    check(a == hooked("cuMemAlloc_v2"), "cuGetProcAddress_returns_wrapper", "got %p", a);
    fill_with("cuGetProcAddress", a, f);
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    void *a2 = NULL, *f2 = NULL;
    cuGetProcAddress_v2("cuMemAlloc", &a2, 12080, CU_GET_PROC_ADDRESS_LEGACY_STREAM, &st);
    cuGetProcAddress_v2("cuMemFree", &f2, 12080, CU_GET_PROC_ADDRESS_LEGACY_STREAM, NULL);
    check(a2 == hooked("cuMemAlloc_v2") && st == CU_GET_PROC_ADDRESS_SUCCESS,
          "cuGetProcAddress_v2_returns_wrapper", "got %p status %d", a2, (int)st);
    fill_with("cuGetProcAddress_v2", a2, f2);
}

/* What the CUDA runtime does first: look up cuGetProcAddress itself, through
 * dlsym, then everything else through the pointer it got. */
static void test_runtime_self_lookup(void)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    void *gpa1 = dlsym(h, "cuGetProcAddress");
    void *gpa = NULL;
    ((gpa_v2_fn)dlsym(h, "cuGetProcAddress_v2"))("cuGetProcAddress", &gpa, 12000, 0, NULL);
    check(gpa1 == hooked("cuGetProcAddress") && gpa == hooked("cuGetProcAddress_v2"),
          "runtime_self_lookup_returns_wrapper", "v1 %p v2 %p", gpa1, gpa);
    void *a = NULL, *f = NULL;
    if (gpa != NULL) {
        ((gpa_v2_fn)gpa)("cuMemAlloc", &a, 12000, 0, NULL);
        ((gpa_v2_fn)gpa)("cuMemFree", &f, 12000, 0, NULL);
    }
    fill_with("runtime_lookup", a, f);
}

struct async {
    async_fn alloc;
    free_async_fn release;
};

static CUresult async_alloc(void *s, uint64_t size, uint64_t *key)
{
    CUdeviceptr p = 0;
    CUresult rc = ((struct async *)s)->alloc(&p, size, NULL);
    *key = p;
    return rc;
}

static CUresult async_free(void *s, uint64_t key)
{
    return ((struct async *)s)->release(key, NULL);
}

static CUresult trim_default_pool(void *s)
{
    (void)s;
    CUmemoryPool pool;
    return cuDeviceGetMemPool(&pool, 0) == CUDA_SUCCESS ? cuMemPoolTrimTo(pool, 0)
                                                        : CUDA_ERROR_UNKNOWN;
}

static void test_per_thread_stream(void)
{
    cuuint64_t pt = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    struct async s = {(async_fn)lookup("cuMemAllocAsync", 12000, pt),
                      (free_async_fn)lookup("cuMemFreeAsync", 12000, pt)};
    check((void *)s.alloc == hooked("cuMemAllocAsync_ptsz") &&
              (void *)s.release == hooked("cuMemFreeAsync_ptsz"),
          "ptsz_lookup_returns_ptsz_wrapper", "alloc %p", (void *)s.alloc);
    struct th_allocator a = {"ptsz_async", async_alloc, async_free, trim_default_pool, &s};
    th_check_fill(&a, CHUNK, LIMIT_MIB * TH_MIB, region);
    void *k = lookup("cuLaunchKernel", 12000, pt);
    uint64_t before = fakecuda_launch_count();
    CUresult rc = k ? ((__typeof__(&cuLaunchKernel))k)(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL)
                    : CUDA_ERROR_NOT_FOUND;
    check(k == hooked("cuLaunchKernel_ptsz") && rc == CUDA_SUCCESS &&
              fakecuda_launch_count() == before + 1,
          "ptsz_launch_reaches_driver", "pointer %p rc %d", k, (int)rc);
}

int main(void)
{
    unsigned mem[] = {LIMIT_MIB};
    region = th_path("paths.region");
    th_container_env(region, 1, mem, NULL);
    if (th_make_current(0) != 0)
        return check(0, "paths_setup", "no context"), 1;
    test_direct_and_dlsym();
    test_get_proc_address();
    test_runtime_self_lookup();
    test_per_thread_stream();
    return check_exit_code();
}
