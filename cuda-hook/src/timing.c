/* timing.c - see timing.h. The untimed path (most launches) takes no lock
 * and makes no driver call beyond the capture check: it reads the estimate,
 * flips the coin, admits, and counts the launch in thread-local totals that
 * reach the region in batches. Timed launches take the device's ring lock. */
#include "timing.h"

#include "devmap.h"
#include "pacer.h"
#include "sample.h"
#include "state.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

/* Timed launches whose GPU time is still unknown, per device. When all are
 * outstanding at the next timed launch, the oldest is waited for: that
 * bounds how far a capped process can run ahead of its corrections. */
#define RING_SIZE 64
/* Longest single sleep: the pacing word may move while we sleep (another
 * process's correction), so the decision is re-taken at least this often. */
#define MAX_SLEEP_NS 20000000ULL
/* A launching thread's counts reach the region at least this often (and at
 * every timed launch), so the metrics trail by no more than this. */
#define BATCH_NS 10000000ULL
#define MAX_DEV TESSERA_REGION_MAX_DEVICES


enum entry_state { ENTRY_FREE, ENTRY_RESERVED, ENTRY_PENDING, ENTRY_CANCELLED };

/* An entry is handed out RESERVED under the ring lock; the launching
 * thread then owns it, records its events without the lock and publishes
 * the outcome (PENDING or CANCELLED) with a release store. */
struct ring_entry {
    CUevent start, end;
    uint64_t charged, thr; /* what its launch was charged, and its sampling threshold */
    _Atomic int state;     /* enum entry_state */
};

struct ring {
    pthread_mutex_t mu;
    struct ring_entry e[RING_SIZE];
    unsigned head, tail; /* oldest outstanding, next to hand out */
};

/* What every launch reads without a lock: written only under the ring lock
 * (est, wall, thr) or once (word). */
struct pace_dev {
    _Atomic uint64_t *word;    /* the region's pacing word, once known */
    _Atomic uint64_t est;      /* running estimate of a launch's GPU time */
    _Atomic uint64_t wall;     /* pacer_wall_ns(est, cap): its charge in wall time */
    _Atomic uint64_t thr;      /* sample_threshold(est); stored last, read first */
};

/* A thread's paced launches not yet in the region. */
struct batch {
    uint64_t rng;        /* sampling state, seeded by thread_start */
    int started;         /* thread_start has run */
    /* Launches per device still to go untimed (sample_skip; 0: the next is
     * timed, as a thread's first is), and the threshold they were drawn at:
     * the probability with which the next timed launch was chosen. */
    uint32_t skip[MAX_DEV];
    uint64_t skip_thr[MAX_DEV];
    uint64_t flush_due; /* CLOCK_MONOTONIC when the counts are next handed in */
    uint32_t launches[MAX_DEV];
    uint64_t last_at[MAX_DEV]; /* CLOCK_MONOTONIC of the last launch */
    uint64_t charged[MAX_DEV]; /* estimates charged to untimed launches */
};

static struct ring rings[MAX_DEV] = {[0 ... MAX_DEV - 1] = {.mu = PTHREAD_MUTEX_INITIALIZER}};
static struct pace_dev devs[MAX_DEV] = {
    [0 ... MAX_DEV - 1] = {.est = PACER_INITIAL_ESTIMATE_NS, .thr = SAMPLE_ALWAYS}};
/* initial-exec: the library is preloaded, so its TLS is static and one
 * instruction away, where the default model would call __tls_get_addr. */
static _Thread_local struct batch tb __attribute__((tls_model("initial-exec")));
static pthread_once_t timing_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static int exit_key_ok;
static _Atomic uint64_t threads_seeded; /* threads seeded from TESSERA_SAMPLE_SEED */

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ULL),
                          .tv_nsec = (long)(ns % 1000000000ULL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Moves a thread's counts into the region. */
static void flush(struct batch *b, uint64_t now)
{
    uint64_t to_real = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
    for (int dev = 0; dev < MAX_DEV; dev++) {
        if (b->launches[dev] == 0)
            continue;
        region_note_launch(&g_hook.region, dev, b->launches[dev], b->last_at[dev] + to_real);
        region_add_busy(&g_hook.region, dev, b->charged[dev]);
        b->launches[dev] = 0;
        b->charged[dev] = 0;
    }
    b->flush_due = now + BATCH_NS;
}

/* A thread that exits hands in its counts (exit() runs no key destructors,
 * but then the process's record leaves the region with them anyway). */
static void thread_exit(void *b)
{
    flush(b, clock_ns(CLOCK_MONOTONIC));
}

/* Events belong to the parent's contexts, which a child cannot use, and
 * the forking thread's counts are the parent's. */
static void forget_all(void)
{
    for (int i = 0; i < MAX_DEV; i++) {
        pthread_mutex_init(&rings[i].mu, NULL);
        for (int j = 0; j < RING_SIZE; j++)
            rings[i].e[j] = (struct ring_entry){.state = ENTRY_FREE};
        rings[i].head = rings[i].tail = 0;
    }
    tb = (struct batch){.started = 0}; /* reseeded at the child's next launch */
}

static void timing_init(void)
{
    hook_atfork_child(forget_all);
    exit_key_ok = pthread_key_create(&exit_key, thread_exit) == 0;
    if (!exit_key_ok)
        hook_log("cannot register a thread-exit handler: launch counts of exiting threads may "
                 "be lost");
}

/* A thread's random stream: from the clock, the thread and the process, or
 * with TESSERA_SAMPLE_SEED the same in every run (the Nth thread to start
 * gets seed + N - 1). */
static uint64_t thread_seed(const struct batch *b, uint64_t now)
{
    if (g_hook.cfg.has_sample_seed)
        return g_hook.cfg.sample_seed + atomic_fetch_add(&threads_seeded, 1);
    return now ^ (uint64_t)(uintptr_t)b ^ ((uint64_t)getpid() << 32);
}

/* A thread's first paced launch: its own random stream, and its counts
 * handed in when it exits. */
static void thread_start(struct batch *b, uint64_t now)
{
    b->started = 1;
    pthread_once(&timing_once, timing_init);
    b->rng = sample_seed(thread_seed(b, now));
    b->flush_due = now + BATCH_NS;
    if (exit_key_ok && pthread_setspecific(exit_key, b) != 0)
        hook_log("cannot register a thread-exit handler for this thread");
}

static void correct(int dev, int64_t delta)
{
    atomic_fetch_add(region_pace_word(&g_hook.region, dev), (uint64_t)delta);
}

/* GPU time of a finished entry, or charged when it cannot be measured. */
static uint64_t measured(const struct ring_entry *e)
{
    float ms = 0;
    __typeof__(&cuEventElapsedTime) elapsed = REAL(cuEventElapsedTime);
    if (elapsed == NULL || elapsed(&ms, e->start, e->end) != CUDA_SUCCESS || ms < 0)
        return e->charged;
    return (uint64_t)((double)ms * 1e6);
}

/* A timed launch's GPU time is known: its own charge is corrected to it,
 * and it moves the estimate that every later launch is charged (and with
 * it p), by the weight that keeps those charges unbiased (sample.h). */
static void settle(int dev, const struct ring_entry *e, uint64_t actual)
{
    struct pace_dev *d = &devs[dev];
    correct(dev, pacer_correction(e->charged, actual, g_hook.cfg.core_pct[dev]));
    uint64_t est = sample_estimate(atomic_load(&d->est), actual, e->thr);
    atomic_store(&d->est, est);
    atomic_store(&d->wall, pacer_wall_ns(est, g_hook.cfg.core_pct[dev]));
    /* Until the first settle every launch is timed (thr starts at
     * SAMPLE_ALWAYS), so wall is set before any launch can go untimed. */
    atomic_store_explicit(&d->thr, sample_threshold(est), memory_order_release);
    region_add_busy(&g_hook.region, dev, pacer_cost_ns(actual));
}

/* Retires finished entries in order. */
static void poll_locked(struct ring *r, int dev)
{
    __typeof__(&cuEventQuery) query = REAL(cuEventQuery);
    while (r->head != r->tail) {
        struct ring_entry *e = &r->e[r->head % RING_SIZE];
        int state = atomic_load_explicit(&e->state, memory_order_acquire);
        if (state == ENTRY_RESERVED)
            return; /* its launch is still being submitted */
        if (state == ENTRY_PENDING) {
            CUresult q = query ? query(e->end) : CUDA_ERROR_NOT_FOUND;
            if (q == CUDA_ERROR_NOT_READY)
                return;
            settle(dev, e, q == CUDA_SUCCESS ? measured(e) : e->charged);
        }
        atomic_store_explicit(&e->state, ENTRY_FREE, memory_order_relaxed);
        r->head++;
    }
}

static int make_events(struct ring_entry *e)
{
    __typeof__(&cuEventCreate) create = REAL(cuEventCreate);
    if (create == NULL)
        return -1;
    if (e->start == NULL && create(&e->start, CU_EVENT_DEFAULT) != CUDA_SUCCESS)
        return -1;
    if (e->end == NULL && create(&e->end, CU_EVENT_DEFAULT) != CUDA_SUCCESS)
        return -1;
    return 0;
}

/* Hands out the next entry, waiting for the oldest if all are in use;
 * returns -1 when the launch cannot be timed. */
static int reserve_locked(struct ring *r, int dev)
{
    if (r->tail - r->head == RING_SIZE) {
        struct ring_entry *old = &r->e[r->head % RING_SIZE];
        __typeof__(&cuEventSynchronize) sync = REAL(cuEventSynchronize);
        if (atomic_load(&old->state) == ENTRY_PENDING && sync != NULL)
            (void)sync(old->end); /* errors surface in the poll below */
        poll_locked(r, dev);
        if (r->tail - r->head == RING_SIZE)
            return -1;
    }
    struct ring_entry *e = &r->e[r->tail % RING_SIZE];
    if (make_events(e) != 0)
        return -1;
    atomic_store_explicit(&e->state, ENTRY_RESERVED, memory_order_relaxed);
    return (int)(r->tail++ % RING_SIZE);
}

/* Waits until the shared pacing word admits a launch entitled to wall ns;
 * returns the time of admission. */
static __attribute__((noinline)) uint64_t admit_wait(int dev, uint64_t wall)
{
    _Atomic uint64_t *word = region_pace_word(&g_hook.region, dev);
    for (;;) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        uint64_t tat = atomic_load(word);
        struct pacer_decision d = pacer_admit_wall(tat, now, wall, PACER_TOLERANCE_NS);
        if (d.wait_ns == 0 && atomic_compare_exchange_weak(word, &tat, d.tat))
            return now;
        if (d.wait_ns > 0)
            sleep_ns(d.wait_ns < MAX_SLEEP_NS ? d.wait_ns : MAX_SLEEP_NS);
    }
}

/* Launches into a capturing stream only record work; they are paced when
 * the graph is launched. An unknown status is treated the same way, so the
 * timing events never disturb a capture. */
static int capturing(CUstream s)
{
    CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_NONE;
    /* The launch wrapper has resolved the driver already: no REAL() check. */
    __typeof__(&cuStreamIsCapturing) query =
        (__typeof__(&cuStreamIsCapturing))g_hook.real[SYM_cuStreamIsCapturing];
    return query == NULL || query(s, &st) != CUDA_SUCCESS || st != CU_STREAM_CAPTURE_STATUS_NONE;
}

/* The coin chose this launch: settles finished samples and takes a ring
 * entry for it (the slow path, one launch in 128 or more). */
static void begin_timed(struct pace_ticket *t, uint64_t thr)
{
    struct ring *r = &rings[t->dev];
    pthread_mutex_lock(&r->mu);
    poll_locked(r, t->dev);
    t->entry = reserve_locked(r, t->dev);
    if (t->entry >= 0) {
        r->e[t->entry].charged = t->charged; /* what its correction starts from */
        r->e[t->entry].thr = thr;
    }
    pthread_mutex_unlock(&r->mu);
}

/* Brackets the admitted launch: the start event, then (at its end) the end
 * event, on the entry this thread owns; an entry whose events cannot be
 * recorded is cancelled, and its launch keeps the estimate it was charged. */
static void record_or_cancel(struct pace_ticket *t, int ok, int end)
{
    struct ring_entry *e = &rings[t->dev].e[t->entry];
    __typeof__(&cuEventRecord) record = REAL(cuEventRecord);
    ok = ok && record != NULL && record(end ? e->end : e->start, t->stream) == CUDA_SUCCESS;
    if (ok && !end)
        return;
    atomic_store_explicit(&e->state, ok ? ENTRY_PENDING : ENTRY_CANCELLED, memory_order_release);
    if (!ok)
        t->entry = -1;
}

/* Counts a launch in the thread's batch; charged is what joins the observed
 * use (0 for a timed launch, whose sample accounts for it). */
static inline void count(struct batch *b, int dev, uint64_t now, uint64_t charged)
{
    b->launches[dev]++;
    b->last_at[dev] = now;
    b->charged[dev] += charged;
}

/* The rare turns of the untimed path, each reached by a tail call so that
 * the common path saves no registers (it makes no other call). */
static __attribute__((noinline)) int untimed_flush(uint64_t now)
{
    if (!tb.started) /* the thread's first launch (flush_due is 0) */
        thread_start(&tb, now);
    flush(&tb, now);
    return 1;
}

static __attribute__((noinline)) int untimed_wait(int dev, uint64_t est, uint64_t wall)
{
    uint64_t now = admit_wait(dev, wall);
    count(&tb, dev, now, est);
    return now >= tb.flush_due ? untimed_flush(now) : 1;
}

/* The untimed path, after the checks and the clock: the coin flip, the
 * admission at the first try, the thread's counts. A thread's first launch
 * is either timed (pace_begin) or flushes (flush_due is 0), and both
 * start the thread's state. */
static inline __attribute__((always_inline)) int untimed(int dev, uint64_t now)
{
    struct batch *b = &tb;
    struct pace_dev *d = &devs[dev];
    if (__builtin_expect(b->skip[dev] == 0, 0))
        return 0;
    b->skip[dev]--;
    uint64_t est = atomic_load_explicit(&d->est, memory_order_relaxed);
    uint64_t wall = atomic_load_explicit(&d->wall, memory_order_relaxed);
    _Atomic uint64_t *word = atomic_load_explicit(&d->word, memory_order_relaxed);
    uint64_t tat = atomic_load(word);
    struct pacer_decision pd = pacer_admit_wall(tat, now, wall, PACER_TOLERANCE_NS);
    if (__builtin_expect(pd.wait_ns != 0, 0) || !atomic_compare_exchange_strong(word, &tat, pd.tat))
        return untimed_wait(dev, est, wall);
    count(b, dev, now, est);
    if (__builtin_expect(now >= b->flush_due, 0))
        return untimed_flush(now);
    return 1;
}

/* pace_launch when CUDA sees several devices (or does not know yet): the
 * current one costs a driver call. Out of line, as a tail call, so that the
 * common case keeps nothing across its calls and saves no registers. */
static __attribute__((noinline)) int pace_other(uint64_t now)
{
    int dev = hook_current_dev_slow();
    if (dev < 0 || g_hook.cfg.core_pct[dev] == 0)
        return 1;
    return untimed(dev, now);
}

/* The capture check and the clock come before the device, which is read
 * after the calls: nothing then lives across them. A launch on a device
 * without a cap (only in a container some of whose devices are capped, or
 * with no context) pays for both before it is let through. */
int pace_launch(CUstream stream)
{
    if (capturing(stream))
        return 1;
    uint64_t now = clock_ns(CLOCK_MONOTONIC);
    int dev = atomic_load_explicit(&g_hook.sole_dev, memory_order_relaxed);
    if (__builtin_expect(dev < 0, 0))
        return pace_other(now);
    if (g_hook.cfg.core_pct[dev] == 0)
        return 1;
    return untimed(dev, now);
}

/* After a timed launch has settled what it could (and so moved p): how many
 * of this thread's next launches on dev go untimed. Read with acquire, so
 * that the estimate stored before thr is what those launches charge. */
static void draw_skip(int dev)
{
    uint64_t thr = atomic_load_explicit(&devs[dev].thr, memory_order_acquire);
    uint64_t k = sample_skip(&tb.rng, thr);
    tb.skip[dev] = k < UINT32_MAX ? (uint32_t)k : UINT32_MAX;
    tb.skip_thr[dev] = thr;
}

void pace_begin(CUstream stream, struct pace_ticket *t)
{
    int dev = hook_current_dev(); /* pace_launch found it capped */
    uint64_t est = atomic_load(&devs[dev].est);
    /* Set before the first settle lets any launch go untimed (thr). */
    if (atomic_load_explicit(&devs[dev].word, memory_order_relaxed) == NULL)
        atomic_store(&devs[dev].word, region_pace_word(&g_hook.region, dev));
    *t = (struct pace_ticket){.dev = dev, .entry = -1, .stream = stream, .charged = est};
    if (!tb.started)
        thread_start(&tb, clock_ns(CLOCK_MONOTONIC));
    /* 0: no skip was drawn on this device yet, its first launch is timed. */
    begin_timed(t, tb.skip_thr[dev] != 0 ? tb.skip_thr[dev] : SAMPLE_ALWAYS);
    draw_skip(dev);
    t->now = admit_wait(dev, pacer_wall_ns(est, g_hook.cfg.core_pct[dev]));
    if (t->entry >= 0)
        record_or_cancel(t, 1, 0);
}

void pace_end(struct pace_ticket *t, CUresult rc)
{
    if (t->entry >= 0)
        record_or_cancel(t, rc == CUDA_SUCCESS, 1);
    if (rc != CUDA_SUCCESS) /* nothing ran: refund the charge */
        correct(t->dev, pacer_correction(t->charged, 0, g_hook.cfg.core_pct[t->dev]));
    /* Untimed after all (no events): its charge stands. */
    count(&tb, t->dev, t->now, rc == CUDA_SUCCESS && t->entry < 0 ? t->charged : 0);
}
