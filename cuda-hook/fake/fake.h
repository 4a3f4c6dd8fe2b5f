/*
 * fake.h - internal state of the fake CUDA driver. One process-local
 * simulated GPU per device: a memory counter, a bump allocator of device
 * addresses, and a timeline on which launches run back to back.
 */
#ifndef TESSERA_FAKE_H
#define TESSERA_FAKE_H

#include "fakecuda.h"
#include "tessera_cuda_abi.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define FAKE_EXPORT __attribute__((visibility("default")))
#define FAKE_MAX_DEVICES 8
#define FAKE_MIB (1024ULL * 1024ULL)

enum fake_kind { FK_PTR = 1, FK_VMM, FK_ARRAY, FK_MIPMAP };

struct fake_alloc {
    uint64_t key;
    uint64_t size; /* bytes taken from the device (0 for pool allocations) */
    int dev, kind;
    struct fake_pool *pool; /* stream-ordered allocations only */
    uint64_t pool_bytes;
};

struct fake_ctx {
    uint32_t magic;
    int dev;
};

struct fake_pool {
    uint32_t magic;
    int dev;
    uint64_t reserved, used;
};

struct fake_device {
    uint64_t total, used, next_va;
    uint64_t tail_ns;       /* when the last submitted work finishes */
    uint64_t busy_total_ns; /* GPU time of all submitted work */
    int primary_refs;
    int contexts; /* live contexts (the primary one counts once) */
    struct fake_ctx primary;
    struct fake_pool default_pool;
};

struct fake {
    pthread_mutex_t mu;
    int initialised, ndev, reverse_uuids;
    int events_work_only; /* FAKECUDA_EVENTS_WORK_ONLY (fakecuda.h) */
    uint64_t kernel_ns, next_handle;
    uint64_t context_bytes; /* device memory each context takes */
    struct fake_device dev[FAKE_MAX_DEVICES];
    struct fake_alloc *allocs;
    size_t nallocs, cap_allocs;
    _Atomic uint64_t launches;
};

extern struct fake g_fake;

/* The calling thread's current context (initial-exec TLS: the fake is a
 * link-time dependency, and a general-dynamic access would dominate the
 * cost of a fake launch in the benchmark). */
extern _Thread_local struct fake_ctx *fake_current __attribute__((tls_model("initial-exec")));

#define FAKE_CTX_MAGIC 0xC0DE0C70u
#define FAKE_POOL_MAGIC 0x9001u

uint64_t fake_now_ns(void);
/* Device of the current context, or -1 (then *err says why). */
int fake_current_dev(CUresult *err);
/* Takes/gives device memory; take fails with CUDA_ERROR_OUT_OF_MEMORY. */
CUresult fake_take(int dev, uint64_t bytes);
void fake_give(int dev, uint64_t bytes);
/* A context opens/closes on dev: takes/gives its memory (g_fake.mu held). */
CUresult fake_context_open(int dev);
void fake_context_close(int dev);
/* Records/forgets a live allocation (caller holds g_fake.mu). */
int fake_record(const struct fake_alloc *a);
int fake_forget(uint64_t key, int kind, struct fake_alloc *out);
uint64_t fake_new_va(int dev, uint64_t size);
/* Runs ns of work on dev's timeline (caller holds g_fake.mu). */
void fake_submit(int dev, uint64_t ns);
/* Frees a recorded allocation of kind (pool allocations return to their pool). */
CUresult fake_free_kind(uint64_t key, int kind);
/* Pool allocation bookkeeping shared by the memory and graph parts. */
CUresult fake_pool_alloc(struct fake_pool *p, uint64_t size, CUdeviceptr *dptr);

/* Legacy and per-thread entry points the shared header does not declare. */
CUresult cuMemAlloc(unsigned int *dptr, unsigned int bytesize);
CUresult cuMemGetInfo(unsigned int *free, unsigned int *total);
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t bytes);
CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dst, const void *src, size_t bytes);
CUresult cuEventRecord_ptsz(CUevent event, CUstream stream);
CUresult cuStreamIsCapturing_ptsz(CUstream stream, CUstreamCaptureStatus *status);

#endif
