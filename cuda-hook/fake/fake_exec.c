/*
 * fake_exec.c - launches, streams, events and graphs of the fake driver.
 * Each device has one timeline: work (of FAKECUDA_KERNEL_US per launch)
 * starts when the previous work has finished, whatever its stream. Events
 * complete when the timeline passes them, in real time, so that a hook
 * timing launches with events observes the simulated durations. Events and
 * graphs are in fake_event.c.
 */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

void fake_submit(int dev, uint64_t ns)
{
    struct fake_device *d = &g_fake.dev[dev];
    uint64_t now = fake_now_ns();
    d->tail_ns = (d->tail_ns > now ? d->tail_ns : now) + ns;
    d->busy_total_ns += ns;
}

FAKE_EXPORT uint64_t fakecuda_busy_ns(int dev)
{
    if (dev < 0 || dev >= FAKE_MAX_DEVICES)
        return 0;
    pthread_mutex_lock(&g_fake.mu);
    struct fake_device *d = &g_fake.dev[dev];
    uint64_t now = fake_now_ns();
    uint64_t queued = d->tail_ns > now ? d->tail_ns - now : 0;
    uint64_t busy = d->busy_total_ns - queued; /* only what has run so far */
    pthread_mutex_unlock(&g_fake.mu);
    return busy;
}

/* One launch: counted always, timed only when a duration is configured, so
 * that the benchmark's baseline stays a few instructions. */
static CUresult launch(void)
{
    CUresult err = CUDA_SUCCESS;
    int dev = fake_current_dev(&err);
    if (dev < 0)
        return err;
    atomic_store_explicit(&g_fake.launches,
                          atomic_load_explicit(&g_fake.launches, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (g_fake.kernel_ns != 0) {
        pthread_mutex_lock(&g_fake.mu);
        fake_submit(dev, g_fake.kernel_ns);
        pthread_mutex_unlock(&g_fake.mu);
    }
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                    unsigned bx, unsigned by, unsigned bz, unsigned shm, CUstream s,
                                    void **params, void **extra)
{
    (void)f, (void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)shm, (void)s;
    (void)params, (void)extra;
    return launch();
}

FAKE_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                         unsigned bx, unsigned by, unsigned bz, unsigned shm,
                                         CUstream s, void **params, void **extra)
{
    return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shm, s, params, extra);
}

FAKE_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *cfg, CUfunction f, void **params,
                                      void **extra)
{
    (void)f, (void)params, (void)extra;
    return cfg == NULL ? CUDA_ERROR_INVALID_VALUE : launch();
}

FAKE_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *cfg, CUfunction f, void **params,
                                           void **extra)
{
    return cuLaunchKernelEx(cfg, f, params, extra);
}

FAKE_EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                               unsigned bx, unsigned by, unsigned bz, unsigned shm,
                                               CUstream s, void **params)
{
    (void)f, (void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)shm, (void)s;
    (void)params;
    return launch();
}

FAKE_EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned gx, unsigned gy,
                                                    unsigned gz, unsigned bx, unsigned by,
                                                    unsigned bz, unsigned shm, CUstream s,
                                                    void **params)
{
    return cuLaunchCooperativeKernel(f, gx, gy, gz, bx, by, bz, shm, s, params);
}

static void sleep_until(uint64_t at_ns)
{
    uint64_t now = fake_now_ns();
    if (at_ns <= now)
        return;
    struct timespec ts = {.tv_sec = (time_t)((at_ns - now) / 1000000000ULL),
                          .tv_nsec = (long)((at_ns - now) % 1000000000ULL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t tail_of_current(CUresult *err)
{
    int dev = fake_current_dev(err);
    if (dev < 0)
        return 0;
    pthread_mutex_lock(&g_fake.mu);
    uint64_t t = g_fake.dev[dev].tail_ns;
    pthread_mutex_unlock(&g_fake.mu);
    return t;
}

FAKE_EXPORT CUresult cuCtxSynchronize(void)
{
    CUresult err = CUDA_SUCCESS;
    uint64_t t = tail_of_current(&err);
    if (err == CUDA_SUCCESS)
        sleep_until(t);
    return err;
}

FAKE_EXPORT CUresult cuStreamCreate(CUstream *stream, unsigned int flags)
{
    (void)flags;
    if (stream == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *stream = (CUstream)malloc(16);
    return *stream == NULL ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamDestroy_v2(CUstream stream)
{
    if (stream == NULL || stream == CU_STREAM_LEGACY || stream == CU_STREAM_PER_THREAD)
        return CUDA_ERROR_INVALID_HANDLE;
    free(stream);
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamSynchronize(CUstream stream)
{
    (void)stream; /* one timeline per device: a stream is done when the device is */
    return cuCtxSynchronize();
}

FAKE_EXPORT CUresult cuStreamIsCapturing(CUstream stream, CUstreamCaptureStatus *status)
{
    (void)stream;
    if (status == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *status = CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamIsCapturing_ptsz(CUstream stream, CUstreamCaptureStatus *status)
{
    return cuStreamIsCapturing(stream, status);
}
