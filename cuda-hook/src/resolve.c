/*
 * resolve.c - the indirect ways to reach the driver. dlsym on a driver handle
 * (JAX/XLA, ctypes, go-nvml) and cuGetProcAddress (the CUDA runtime, for every
 * entry point) both ask the real library first; when the answer is the real
 * function behind one of our wrappers, the wrapper is handed out instead.
 * Comparing pointers, not names, means a versioned lookup (say the 32-bit
 * cuMemAlloc of cudaVersion 3000) passes through untouched, and a symbol we
 * do not know is answered exactly as the driver answers it.
 */
#include "hook.h"

#include <dlfcn.h>

/* The wrapper of every wrapped symbol, indexed by enum sym_id; NULL for
 * symbols that are only called. */
#define SYM_WRAPPER(name, lib) [SYM_##name] = (void *)name,
#define SYM_NONE(name, lib)
static void *const wrappers[SYM_COUNT] = {HOOK_SYMBOLS(SYM_WRAPPER, SYM_NONE)};

/* The wrapper to hand out in place of real, or NULL when real is not the
 * real function of a wrapped symbol. */
static void *wrapper_of_real(const void *real)
{
    if (real == NULL)
        return NULL;
    for (int i = 0; i < SYM_COUNT; i++)
        if (wrappers[i] != NULL && g_hook.real[i] == real)
            return wrappers[i];
    return NULL;
}

/* Cheap filter: only driver names can need a substitution. */
static int maybe_ours(const char *name)
{
    return (name[0] == 'c' && name[1] == 'u') ||
           (name[0] == 'n' && name[1] == 'v' && name[2] == 'm' && name[3] == 'l');
}

static void *substitute(dlsym_fn real, void *handle, const char *name)
{
    void *p = real(handle, name);
    int i = p != NULL && !hook_loading ? sym_find(name) : -1;
    if (i < 0 || wrappers[i] == NULL)
        return p;
    /* Never load a library here: if it is not loaded, handle is not it. */
    int loaded = hook_syms[i].lib == LIB_CUDA ? hook_cuda_load(0) : hook_nvml_load(0);
    return loaded && g_hook.real[i] == p ? wrappers[i] : p;
}

TESSERA_EXPORT void *dlsym(void *handle, const char *name)
{
    dlsym_fn real = hook_dlsym_real();
    if (real == NULL)
        return NULL;
    if (handle != RTLD_NEXT && maybe_ours(name)) /* name is non-null by contract */
        return substitute(real, handle, name);
    /* A tail call: glibc finds RTLD_NEXT's "next" from the return address,
     * which must stay the caller's. */
    return real(handle, name);
}

static void swap_in_wrapper(void **pfn)
{
    void *w = wrapper_of_real(*pfn);
    if (w != NULL)
        *pfn = w;
}

TESSERA_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                         cuuint64_t flags)
{
    __typeof__(&cuGetProcAddress) real = REAL(cuGetProcAddress);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(symbol, pfn, cudaVersion, flags);
    if (rc == CUDA_SUCCESS && pfn != NULL)
        swap_in_wrapper(pfn);
    return rc;
}

TESSERA_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                            cuuint64_t flags,
                                            CUdriverProcAddressQueryResult *symbolStatus)
{
    __typeof__(&cuGetProcAddress_v2) real = REAL(cuGetProcAddress_v2);
    if (real == NULL)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(symbol, pfn, cudaVersion, flags, symbolStatus);
    if (rc == CUDA_SUCCESS && pfn != NULL)
        swap_in_wrapper(pfn);
    return rc;
}
