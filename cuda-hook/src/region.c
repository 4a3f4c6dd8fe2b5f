/*
 * region.c - reservations and process records in the shared region. All
 * shared updates are sequentially consistent atomics: the reservation
 * protocol (add to own record, then sum all records) relies on a total order
 * of those operations across processes.
 */
#include "region.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Attempts before a reservation gives up while others race for the same
 * bytes; each attempt re-checks that room really exists. */
#define RESERVE_ATTEMPTS 8

static struct tessera_region_proc *rec_of(const struct region *r, int i)
{
    return &r->map->procs[i];
}

static void wipe(struct tessera_region_proc *p)
{
    for (int d = 0; d < TESSERA_REGION_MAX_DEVICES; d++) {
        atomic_store(&p->used_bytes[d], 0);
        atomic_store(&p->pending_bytes[d], 0);
        atomic_store(&p->launches[d], 0);
        atomic_store(&p->last_launch_ns[d], 0);
        atomic_store(&p->busy_ns[d], 0);
    }
    atomic_store(&p->start_time, 0);
}

static void raise_hwm(struct tessera_region *m, uint32_t n)
{
    uint32_t cur = atomic_load(&m->proc_hwm);
    while (cur < n && !atomic_compare_exchange_weak(&m->proc_hwm, &cur, n)) {
    }
}

static int try_claim(struct region *r)
{
    for (int i = 0; i < TESSERA_REGION_MAX_PROCS; i++) {
        struct tessera_region_proc *p = rec_of(r, i);
        int32_t expect = 0;
        if (atomic_load(&p->pid) != 0 || !atomic_compare_exchange_strong(&p->pid, &expect, r->pid))
            continue;
        wipe(p); /* already zero unless a reclaimer was cut short */
        atomic_store(&p->start_time, region_proc_start_time(r->pid));
        /* Raise the high-water mark before any usage is added, so a
         * concurrent reservation that sees our usage also sees our record. */
        raise_hwm(r->map, (uint32_t)i + 1);
        /* me before slot: a thread that sees the slot claimed sees me too. */
        atomic_store(&r->me, p);
        atomic_store(&r->slot, i);
        return 0;
    }
    return -1;
}

/* The process's record, claimed on first use; threads of the process that
 * get here together must end up with the same one. */
static int claim(struct region *r)
{
    if (atomic_load(&r->slot) >= 0)
        return 0;
    pthread_mutex_lock(&r->claim_mu);
    int rc = 0;
    if (atomic_load(&r->slot) < 0 && try_claim(r) != 0)
        rc = region_reclaim(r) > 0 ? try_claim(r) : -1;
    pthread_mutex_unlock(&r->claim_mu);
    return rc;
}

/* Records in use, bounded once so the sums below test one limit per record
 * (the high-water mark is shared, so it is not trusted to be in range). */
static uint32_t records(const struct tessera_region *m)
{
    uint32_t n = atomic_load(&m->proc_hwm);
    return n < TESSERA_REGION_MAX_PROCS ? n : TESSERA_REGION_MAX_PROCS;
}

/* The mapping is read once into a local: the atomic loads would otherwise
 * make the compiler read it again for every record. */
uint64_t region_used(const struct region *r, int dev)
{
    struct tessera_region *m = r->map;
    uint32_t n = records(m);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += atomic_load(&m->procs[i].used_bytes[dev]);
    return sum;
}

uint64_t region_mine(const struct region *r, int dev)
{
    int slot = atomic_load(&r->slot);
    return slot < 0 ? 0 : atomic_load(&rec_of(r, slot)->used_bytes[dev]);
}

/* Usage plus reservations in flight. Per record, pending is read before
 * used: a reservation moves from pending to used (used first, pending
 * after), so this order can count it twice but never miss it. */
static uint64_t claimed(const struct region *r, int dev)
{
    struct tessera_region *m = r->map;
    uint32_t n = records(m);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        sum += atomic_load(&m->procs[i].pending_bytes[dev]);
        sum += atomic_load(&m->procs[i].used_bytes[dev]);
    }
    return sum;
}

/*
 * Announce, check, then commit or withdraw. Of any set of reservations held
 * at once, the one announced last saw all the others announced (pending or
 * used) when it checked, so a set that passed never exceeds the limit.
 */
/* The announcement of the first attempt failed: others may be racing for
 * the same bytes, or a dead process may hold them. */
__attribute__((noinline, cold)) static int
reserve_again(struct region *r, struct tessera_region_proc *me, int dev, uint64_t bytes,
              uint64_t limit)
{
    region_reclaim(r);
    for (int attempt = 1; attempt < RESERVE_ATTEMPTS; attempt++) {
        if (region_used(r, dev) + bytes > limit)
            return -1; /* no room even without racing reservations */
        sched_yield();
        atomic_fetch_add(&me->pending_bytes[dev], bytes);
        int fits = claimed(r, dev) <= limit;
        if (fits)
            atomic_fetch_add(&me->used_bytes[dev], bytes);
        atomic_fetch_sub(&me->pending_bytes[dev], bytes);
        if (fits)
            return 0;
    }
    return -1;
}

/* The first attempt is written out on its own: it is every allocation's
 * path, and almost always the only one. */
int region_reserve(struct region *r, int dev, uint64_t bytes, uint64_t limit)
{
    struct tessera_region_proc *me = atomic_load_explicit(&r->me, memory_order_acquire);
    if (__builtin_expect(me == NULL, 0)) {
        if (claim(r) != 0)
            return -2;
        me = atomic_load(&r->me);
    }
    if (limit == 0) {
        atomic_fetch_add(&me->used_bytes[dev], bytes); /* nothing to check against */
        return 0;
    }
    if (bytes > limit)
        return -1;
    atomic_fetch_add(&me->pending_bytes[dev], bytes);
    int fits = claimed(r, dev) <= limit;
    if (fits)
        atomic_fetch_add(&me->used_bytes[dev], bytes);
    atomic_fetch_sub(&me->pending_bytes[dev], bytes);
    return fits ? 0 : reserve_again(r, me, dev, bytes, limit);
}

void region_charge(struct region *r, int dev, uint64_t bytes)
{
    if (claim(r) == 0)
        atomic_fetch_add(&rec_of(r, atomic_load(&r->slot))->used_bytes[dev], bytes);
}

void region_release(struct region *r, int dev, uint64_t bytes)
{
    struct tessera_region_proc *me = atomic_load_explicit(&r->me, memory_order_acquire);
    if (me == NULL)
        return;
    _Atomic uint64_t *mine = &me->used_bytes[dev];
    /* Only this process's threads write its record while it lives, so one
     * subtraction suffices; should a caller release more than it charged,
     * the excess is put back, so the record never stays below zero. */
    uint64_t old = atomic_fetch_sub(mine, bytes);
    if (__builtin_expect(old < bytes, 0))
        atomic_fetch_add(mine, bytes - old);
}

void region_note_launch(struct region *r, int dev, uint64_t count, uint64_t realtime_ns)
{
    if (claim(r) != 0)
        return;
    struct tessera_region_proc *me = rec_of(r, atomic_load(&r->slot));
    atomic_fetch_add(&me->launches[dev], count);
    atomic_store(&me->last_launch_ns[dev], realtime_ns);
}

void region_add_busy(struct region *r, int dev, uint64_t gpu_ns)
{
    if (gpu_ns == 0 || claim(r) != 0)
        return;
    atomic_fetch_add(&rec_of(r, atomic_load(&r->slot))->busy_ns[dev], gpu_ns);
}

_Atomic uint64_t *region_pace_word(struct region *r, int dev)
{
    return &r->map->devices[dev].pace_tat_ns;
}

static int record_dead(const struct tessera_region_proc *p, int32_t pid)
{
    if (pid < 0) /* a reclaimer's mark: dead if the reclaimer is */
        return !region_pid_alive(-pid, 0);
    return !region_pid_alive(pid, atomic_load(&p->start_time));
}

int region_reclaim(struct region *r)
{
    int freed = 0;
    uint32_t n = records(r->map);
    for (uint32_t i = 0; i < n; i++) {
        struct tessera_region_proc *p = rec_of(r, (int)i);
        int32_t pid = atomic_load(&p->pid);
        if (pid == 0 || (int)i == atomic_load(&r->slot) || !record_dead(p, pid))
            continue;
        /* Mark the record ours first, so only one reclaimer folds it back;
         * if we die here, the negative mark lets the next one take over. */
        if (!atomic_compare_exchange_strong(&p->pid, &pid, -r->pid))
            continue;
        wipe(p);
        atomic_store(&p->pid, 0);
        freed++;
    }
    return freed;
}

void region_leave(struct region *r)
{
    int slot = r->map == NULL ? -1 : atomic_exchange(&r->slot, -1);
    if (slot < 0)
        return;
    atomic_store(&r->me, NULL);
    struct tessera_region_proc *p = rec_of(r, slot);
    wipe(p);
    atomic_store(&p->pid, 0);
}

/* The lock may have been held by a parent thread that the child lacks. */
void region_forget_slot(struct region *r)
{
    pthread_mutex_init(&r->claim_mu, NULL);
    atomic_store(&r->slot, -1);
    atomic_store(&r->me, NULL);
    r->pid = (int32_t)getpid();
}
