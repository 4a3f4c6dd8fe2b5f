/* timing.c - see timing.h. */
#include "timing.h"

#include "devmap.h"
#include "pacer.h"
#include "state.h"

#include <errno.h>
#include <time.h>

/* Paced launches whose GPU time is still unknown, per device. When all are
 * outstanding the oldest is waited for, which bounds how far a capped
 * process can run ahead of the GPU. */
#define RING_SIZE 64
/* Longest single sleep: the pacing word may move while we sleep (another
 * process's correction), so the decision is re-taken at least this often. */
#define MAX_SLEEP_NS 20000000ULL

enum entry_state { ENTRY_FREE, ENTRY_RESERVED, ENTRY_PENDING, ENTRY_CANCELLED };

struct ring_entry {
    CUevent start, end;
    uint64_t charged;
    enum entry_state state;
};

struct ring {
    pthread_mutex_t mu;
    struct ring_entry e[RING_SIZE];
    unsigned head, tail; /* oldest outstanding, next to hand out */
    uint64_t estimate;   /* running estimate of a launch's GPU time */
};

static struct ring rings[TESSERA_REGION_MAX_DEVICES];
static pthread_once_t rings_once = PTHREAD_ONCE_INIT;

/* Events belong to the parent's contexts, which a child cannot use. */
static void forget_all(void)
{
    for (int i = 0; i < TESSERA_REGION_MAX_DEVICES; i++) {
        pthread_mutex_init(&rings[i].mu, NULL);
        for (int j = 0; j < RING_SIZE; j++)
            rings[i].e[j] = (struct ring_entry){.state = ENTRY_FREE};
        rings[i].head = rings[i].tail = 0;
    }
}

static void rings_init(void)
{
    for (int i = 0; i < TESSERA_REGION_MAX_DEVICES; i++) {
        pthread_mutex_init(&rings[i].mu, NULL);
        rings[i].estimate = PACER_INITIAL_ESTIMATE_NS;
    }
    hook_atfork_child(forget_all);
}

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

static void correct(int dev, uint64_t charged, uint64_t actual)
{
    int64_t delta = pacer_correction(charged, actual, g_hook.cfg.core_pct[dev]);
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

/* Retires finished entries in order, feeding their GPU time to the pacer. */
static void poll_locked(struct ring *r, int dev)
{
    __typeof__(&cuEventQuery) query = REAL(cuEventQuery);
    while (r->head != r->tail) {
        struct ring_entry *e = &r->e[r->head % RING_SIZE];
        if (e->state == ENTRY_RESERVED)
            return; /* its launch is still being submitted */
        if (e->state == ENTRY_PENDING) {
            CUresult q = query ? query(e->end) : CUDA_ERROR_NOT_FOUND;
            if (q == CUDA_ERROR_NOT_READY)
                return;
            uint64_t actual = q == CUDA_SUCCESS ? measured(e) : e->charged;
            correct(dev, e->charged, actual);
            r->estimate = pacer_estimate(r->estimate, actual);
            /* The charge is now settled at actual: that is the GPU time the
             * metrics attribute to this launch. */
            region_add_busy(&g_hook.region, dev, pacer_cost_ns(actual));
        }
        e->state = ENTRY_FREE;
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
        if (old->state == ENTRY_PENDING && sync != NULL)
            (void)sync(old->end); /* errors surface in the poll below */
        poll_locked(r, dev);
        if (r->tail - r->head == RING_SIZE)
            return -1;
    }
    struct ring_entry *e = &r->e[r->tail % RING_SIZE];
    if (make_events(e) != 0)
        return -1;
    e->state = ENTRY_RESERVED;
    return (int)(r->tail++ % RING_SIZE);
}

/* Waits until the shared pacing word admits a launch of cost ns. */
static void admit(int dev, uint64_t cost)
{
    _Atomic uint64_t *word = region_pace_word(&g_hook.region, dev);
    unsigned pct = g_hook.cfg.core_pct[dev];
    for (;;) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        uint64_t tat = atomic_load(word);
        struct pacer_decision d = pacer_admit(tat, now, cost, pct, PACER_TOLERANCE_NS);
        if (d.wait_ns == 0 && atomic_compare_exchange_weak(word, &tat, d.tat))
            return;
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
    __typeof__(&cuStreamIsCapturing) query = REAL(cuStreamIsCapturing);
    return query == NULL || query(s, &st) != CUDA_SUCCESS || st != CU_STREAM_CAPTURE_STATUS_NONE;
}

void pace_begin(CUstream stream, struct pace_ticket *t)
{
    t->active = 0;
    int dev = hook_current_dev();
    if (dev < 0 || g_hook.cfg.core_pct[dev] == 0 || capturing(stream))
        return;
    pthread_once(&rings_once, rings_init);
    struct ring *r = &rings[dev];
    pthread_mutex_lock(&r->mu);
    poll_locked(r, dev);
    *t = (struct pace_ticket){.active = 1,
                              .dev = dev,
                              .stream = stream,
                              .charged = r->estimate,
                              .entry = reserve_locked(r, dev)};
    if (t->entry >= 0)
        r->e[t->entry].charged = t->charged; /* what its correction starts from */
    pthread_mutex_unlock(&r->mu);
    admit(dev, t->charged);
    __typeof__(&cuEventRecord) record = REAL(cuEventRecord);
    pthread_mutex_lock(&r->mu);
    if (t->entry >= 0 && (record == NULL || record(r->e[t->entry].start, stream) != CUDA_SUCCESS)) {
        r->e[t->entry].state = ENTRY_CANCELLED;
        t->entry = -1;
    }
    pthread_mutex_unlock(&r->mu);
    region_note_launch(&g_hook.region, dev, clock_ns(CLOCK_REALTIME));
}

void pace_end(struct pace_ticket *t, CUresult rc)
{
    if (!t->active)
        return;
    struct ring *r = &rings[t->dev];
    __typeof__(&cuEventRecord) record = REAL(cuEventRecord);
    pthread_mutex_lock(&r->mu);
    int timed = t->entry >= 0 && rc == CUDA_SUCCESS && record != NULL &&
                record(r->e[t->entry].end, t->stream) == CUDA_SUCCESS;
    if (t->entry >= 0)
        r->e[t->entry].state = timed ? ENTRY_PENDING : ENTRY_CANCELLED;
    pthread_mutex_unlock(&r->mu);
    if (rc != CUDA_SUCCESS)
        correct(t->dev, t->charged, 0); /* nothing ran: refund the charge */
    else if (!timed)
        region_add_busy(&g_hook.region, t->dev, pacer_cost_ns(t->charged)); /* charge stands */
}
