/*
 * t_dlsym.c - lookups the hook must not change: versioned ABIs, symbols it
 * does not wrap, unknown names (for dlsym and cuGetProcAddress), RTLD_NEXT
 * relative to the real caller, and dlerror after a substituted lookup. Also
 * that every wrapped symbol is substituted through both lookups.
 */
#include "th.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static void *hooked(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

static void test_versions_pass_through(void)
{
    void *p = NULL;
    cuGetProcAddress("cuMemAlloc", &p, 3000, 0);
    check(p == fakecuda_raw_proc("cuMemAlloc"), "old_version_gets_driver_v1", "got %p", p);
    p = NULL;
    cuGetProcAddress("cuMemGetInfo", &p, 2000, 0);
    check(p == fakecuda_raw_proc("cuMemGetInfo"), "old_meminfo_gets_driver_v1", "got %p", p);
    p = NULL;
    cuGetProcAddress("cuCtxGetDevice", &p, 12000, 0);
    check(p == fakecuda_raw_proc("cuCtxGetDevice"), "unwrapped_symbol_passes_through", "got %p", p);
    p = NULL;
    cuGetProcAddress("cuMemcpyHtoD", &p, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
    check(p == fakecuda_raw_proc("cuMemcpyHtoD_v2_ptds"), "unwrapped_ptds_passes_through", "got %p",
          p);
}

static void test_unknown_symbols(void)
{
    void *p = (void *)1;
    CUresult rc = cuGetProcAddress("cuNoSuchFunction", &p, 12000, 0);
    check(rc == CUDA_ERROR_NOT_FOUND && p == NULL, "unknown_symbol_not_found", "rc %d p %p",
          (int)rc, p);
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
    rc = cuGetProcAddress_v2("cuNoSuchFunction", &p, 12000, 0, &st);
    check(rc == CUDA_ERROR_NOT_FOUND && st == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
          "unknown_symbol_status", "rc %d status %d", (int)rc, (int)st);
    rc = cuGetProcAddress_v2("cuMemAllocAsync", &p, 11000, 0, &st);
    check(rc == CUDA_ERROR_NOT_FOUND && st == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT,
          "too_old_version_status", "rc %d status %d", (int)rc, (int)st);
    rc = cuGetProcAddress("cuMemAlloc", NULL, 12000, 0);
    check(rc == CUDA_ERROR_INVALID_VALUE, "null_pfn_is_drivers_error", "rc %d", (int)rc);
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    dlerror();
    p = dlsym(h, "cuNoSuchFunction");
    check(p == NULL && dlerror() != NULL, "dlsym_unknown_is_null_with_error", "got %p", p);
}

static void test_dlsym_semantics(void)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    dlerror();
    void *p = dlsym(h, "cuMemAlloc_v2");
    check(p == hooked("cuMemAlloc_v2") && dlerror() == NULL, "substitution_leaves_no_dlerror",
          "got %p", p);
    check(dlsym(h, "cuCtxGetDevice") == fakecuda_raw_proc("cuCtxGetDevice"),
          "dlsym_unwrapped_passes_through", "mismatch");
    /* From the executable, the next definition is the preloaded hook's. */
    p = dlsym(RTLD_NEXT, "cuMemAlloc_v2");
    check(p == hooked("cuMemAlloc_v2"), "rtld_next_keeps_the_callers_view", "got %p", p);
    check(dlsym(RTLD_DEFAULT, "strlen") == (void *)strlen, "dlsym_other_names_untouched",
          "mismatch");
}

/* Every exported wrapper and how the runtime would look it up. */
struct wrapper_case {
    const char *sym, *api;
    int ver;
    cuuint64_t flags;
};

static const struct wrapper_case all[] = {
    {"cuMemAlloc_v2", "cuMemAlloc", 12000, 0},
    {"cuMemAllocPitch_v2", "cuMemAllocPitch", 12000, 0},
    {"cuMemAllocManaged", "cuMemAllocManaged", 12000, 0},
    {"cuMemFree_v2", "cuMemFree", 12000, 0},
    {"cuMemAllocAsync", "cuMemAllocAsync", 12000, 0},
    {"cuMemAllocAsync_ptsz", "cuMemAllocAsync", 12000, 2},
    {"cuMemAllocFromPoolAsync", "cuMemAllocFromPoolAsync", 12000, 0},
    {"cuMemAllocFromPoolAsync_ptsz", "cuMemAllocFromPoolAsync", 12000, 2},
    {"cuMemFreeAsync", "cuMemFreeAsync", 12000, 0},
    {"cuMemFreeAsync_ptsz", "cuMemFreeAsync", 12000, 2},
    {"cuMemPoolCreate", "cuMemPoolCreate", 12000, 0},
    {"cuMemPoolDestroy", "cuMemPoolDestroy", 12000, 0},
    {"cuMemPoolTrimTo", "cuMemPoolTrimTo", 12000, 0},
    {"cuMemCreate", "cuMemCreate", 12000, 0},
    {"cuMemRelease", "cuMemRelease", 12000, 0},
    {"cuArrayCreate_v2", "cuArrayCreate", 12000, 0},
    {"cuArray3DCreate_v2", "cuArray3DCreate", 12000, 0},
    {"cuArrayDestroy", "cuArrayDestroy", 12000, 0},
    {"cuMipmappedArrayCreate", "cuMipmappedArrayCreate", 12000, 0},
    {"cuMipmappedArrayDestroy", "cuMipmappedArrayDestroy", 12000, 0},
    {"cuGraphAddMemAllocNode", "cuGraphAddMemAllocNode", 12000, 0},
    {"cuGraphDestroyNode", "cuGraphDestroyNode", 12000, 0},
    {"cuGraphDestroy", "cuGraphDestroy", 12000, 0},
    {"cuMemGetInfo_v2", "cuMemGetInfo", 12000, 0},
    {"cuDeviceTotalMem_v2", "cuDeviceTotalMem", 12000, 0},
    {"cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRetain", 12000, 0},
    {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease", 12000, 0},
    {"cuCtxCreate_v2", "cuCtxCreate", 11000, 0},
    {"cuCtxCreate_v3", "cuCtxCreate", 12000, 0},
    {"cuCtxCreate_v4", "cuCtxCreate", 12080, 0},
    {"cuCtxDestroy_v2", "cuCtxDestroy", 12000, 0},
    {"cuLaunchKernel", "cuLaunchKernel", 12000, 0},
    {"cuLaunchKernel_ptsz", "cuLaunchKernel", 12000, 2},
    {"cuLaunchKernelEx", "cuLaunchKernelEx", 12000, 0},
    {"cuLaunchKernelEx_ptsz", "cuLaunchKernelEx", 12000, 2},
    {"cuLaunchCooperativeKernel", "cuLaunchCooperativeKernel", 12000, 0},
    {"cuLaunchCooperativeKernel_ptsz", "cuLaunchCooperativeKernel", 12000, 2},
    {"cuGraphLaunch", "cuGraphLaunch", 12000, 0},
    {"cuGraphLaunch_ptsz", "cuGraphLaunch", 12000, 2},
    {"cuGetProcAddress", "cuGetProcAddress", 11080, 0},
    {"cuGetProcAddress_v2", "cuGetProcAddress", 12000, 0},
    {"cuInit", "cuInit", 12000, 0},
};

/* Every exported wrapper, looked up on the libcuda handle and through
 * cuGetProcAddress with its unversioned name, is the hook's. */
static void test_every_wrapper(void)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    int bad = 0;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        void *w = hooked(all[i].sym), *p = NULL;
        cuGetProcAddress(all[i].api, &p, all[i].ver, all[i].flags);
        if (w == NULL || w == fakecuda_raw_proc(all[i].sym) || dlsym(h, all[i].sym) != w ||
            p != w) {
            printf("     %s: hook %p dlsym %p proc %p\n", all[i].sym, w, dlsym(h, all[i].sym), p);
            bad++;
        }
    }
    check(bad == 0, "every_wrapper_through_every_lookup", "%d symbols not substituted", bad);
}

int main(void)
{
    unsigned mem[] = {1024};
    th_container_env(th_path("dlsym.region"), 1, mem, NULL);
    if (th_make_current(0) != 0)
        return check(0, "dlsym_setup", "no context"), 1;
    test_versions_pass_through();
    test_unknown_symbols();
    test_dlsym_semantics();
    test_every_wrapper();
    return check_exit_code();
}
