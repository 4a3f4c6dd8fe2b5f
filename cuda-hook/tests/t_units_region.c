/*
 * t_units_region.c - the region protocol without any driver: reservations
 * against a limit, reclaiming the records of dead processes (including a
 * reused pid), running out of records, and many processes reserving and
 * releasing at once while an observer checks that the limit always holds.
 */
#include "check.h"
#include "region.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024ULL * 1024ULL)

static char path[128];

static int attach(struct region *r)
{
    struct tessera_config cfg = {.enforce = 1, .device_count = 1, .region_path = path};
    cfg.mem_limit[0] = 100 * MIB;
    char msg[256] = "";
    return region_attach(r, &cfg, msg, sizeof(msg)) == 0 && !r->private_map ? 0 : -1;
}

static int32_t dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return (int32_t)pid;
}

static void test_reserve_release(struct region *r)
{
    int a = region_reserve(r, 0, 60 * MIB, 100 * MIB);
    int b = region_reserve(r, 0, 50 * MIB, 100 * MIB);
    int c = region_reserve(r, 0, 40 * MIB, 100 * MIB);
    check(a == 0 && b == -1 && c == 0 && region_used(r, 0) == 100 * MIB,
          "region_reserve_up_to_limit", "%d %d %d used %llu", a, b, c,
          (unsigned long long)region_used(r, 0));
    region_release(r, 0, 100 * MIB);
    check(region_reserve(r, 0, UINT64_MAX, 100 * MIB) == -1 && region_used(r, 0) == 0,
          "region_huge_reservation_refused", "used %llu", (unsigned long long)region_used(r, 0));
}

/* Plants a record of a process that is gone, holding bytes. */
static void plant(struct region *r, int slot, int32_t pid, uint64_t start, uint64_t bytes)
{
    struct tessera_region_proc *p = &r->map->procs[slot];
    atomic_store(&p->pid, pid);
    atomic_store(&p->start_time, start);
    atomic_store(&p->used_bytes[0], bytes);
    uint32_t hwm = atomic_load(&r->map->proc_hwm);
    if (hwm < (uint32_t)slot + 1)
        atomic_store(&r->map->proc_hwm, (uint32_t)slot + 1);
}

static void test_reclaim(struct region *r)
{
    plant(r, 10, dead_pid(), 0, 70 * MIB);
    /* Our own pid with another start time: a previous process of that pid. */
    plant(r, 11, (int32_t)getpid(), 1, 20 * MIB);
    int rc = region_reserve(r, 0, 90 * MIB, 100 * MIB);
    check(rc == 0 && atomic_load(&r->map->procs[10].pid) == 0 &&
              atomic_load(&r->map->procs[11].pid) == 0,
          "region_reclaims_dead_and_reused_pids", "rc %d", rc);
    region_release(r, 0, 90 * MIB);
    plant(r, 12, -dead_pid(), 0, 5 * MIB); /* a reclaimer that died midway */
    check(region_reclaim(r) == 1 && region_used(r, 0) == 0, "region_finishes_dead_reclaimer",
          "used %llu", (unsigned long long)region_used(r, 0));
}

static void test_full_table(struct region *r)
{
    int32_t gone = dead_pid();
    for (int i = 0; i < TESSERA_REGION_MAX_PROCS; i++)
        plant(r, i, gone, 0, 0);
    region_forget_slot(r);
    int rc = region_reserve(r, 0, MIB, 100 * MIB);
    check(rc == 0 && atomic_load(&r->slot) >= 0, "region_full_table_reclaims_slots",
          "rc %d slot %d", rc, atomic_load(&r->slot));
    region_release(r, 0, MIB);
    region_reclaim(r);
}

/* After leaving (its record given back), a process that reserves again
 * claims a record anew: the reservation path's cached record pointer must
 * not outlive the record. */
static void test_rejoin(struct region *r)
{
    region_leave(r);
    int rc = region_reserve(r, 0, MIB, 100 * MIB);
    int slot = atomic_load(&r->slot);
    int ours = slot >= 0 && atomic_load(&r->map->procs[slot].pid) == r->pid;
    check(rc == 0 && ours && region_mine(r, 0) == MIB && region_used(r, 0) == MIB,
          "region_leave_then_reserve_claims_anew", "rc %d slot %d used %llu", rc, slot,
          (unsigned long long)region_used(r, 0));
    region_release(r, 0, MIB);
}

/* A process that reserves and releases random amounts, fast. */
static void hammer(unsigned seed)
{
    struct region r;
    if (attach(&r) != 0)
        _exit(2);
    uint64_t held = 0;
    srand(seed);
    for (int i = 0; i < 20000; i++) {
        uint64_t n = (uint64_t)(1 + rand() % 30) * MIB;
        if (rand() % 2 == 0 && region_reserve(&r, 0, n, 100 * MIB) == 0)
            held += n;
        else if (held >= n) {
            region_release(&r, 0, n);
            held -= n;
        }
    }
    region_leave(&r);
    _exit(0);
}

/* The usage at one instant: summing records one by one is not atomic (a
 * release seen in one record and a later reservation in another would add
 * up to more than ever existed), so two collects must agree. Returns
 * UINT64_MAX when the records kept moving. Pending bytes are not usage. */
static uint64_t snapshot(const struct region *r)
{
    uint64_t a[TESSERA_REGION_MAX_PROCS], b[TESSERA_REGION_MAX_PROCS];
    for (int attempt = 0; attempt < 64; attempt++) {
        uint64_t sum = 0;
        for (int i = 0; i < TESSERA_REGION_MAX_PROCS; i++)
            a[i] = atomic_load(&r->map->procs[i].used_bytes[0]);
        for (int i = 0; i < TESSERA_REGION_MAX_PROCS; i++)
            b[i] = atomic_load(&r->map->procs[i].used_bytes[0]);
        if (memcmp(a, b, sizeof(a)) != 0)
            continue;
        for (int i = 0; i < TESSERA_REGION_MAX_PROCS; i++)
            sum += a[i];
        return sum;
    }
    return UINT64_MAX;
}

static void test_concurrent(struct region *r)
{
    pid_t pids[8];
    for (int i = 0; i < 8; i++)
        if ((pids[i] = fork()) == 0)
            hammer(77u + (unsigned)i);
    uint64_t peak = 0, samples = 0;
    for (int alive = 8; alive > 0;) {
        uint64_t used = snapshot(r);
        if (used != UINT64_MAX) {
            peak = used > peak ? used : peak;
            samples++;
        }
        alive = 0;
        for (int i = 0; i < 8; i++)
            alive += waitpid(pids[i], NULL, WNOHANG) == 0;
    }
    check(peak <= 100 * MIB && samples > 100 && region_used(r, 0) == 0,
          "region_concurrent_never_over_limit", "peak %llu MiB in %llu samples, left %llu",
          (unsigned long long)(peak / MIB), (unsigned long long)samples,
          (unsigned long long)region_used(r, 0));
    printf("     (8 processes, 20000 operations each: peak %llu of 100 MiB over %llu snapshots)\n",
           (unsigned long long)(peak / MIB), (unsigned long long)samples);
}

struct thread_arg {
    struct region *r;
    int ok;
};

static void *reserve_once(void *p)
{
    struct thread_arg *a = p;
    a->ok = region_reserve(a->r, 0, MIB, 100 * MIB) == 0;
    return NULL;
}

/* The first reservations of a process, from many threads at once, all land
 * in one record. */
static void test_threads_share_a_record(void)
{
    struct region r;
    pthread_t th[8];
    struct thread_arg args[8];
    if (attach(&r) != 0)
        return (void)check(0, "region_threads_share_a_record", "attach");
    for (int i = 0; i < 8; i++) {
        args[i] = (struct thread_arg){.r = &r};
        pthread_create(&th[i], NULL, reserve_once, &args[i]);
    }
    int ok = 1, mine = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ok &= args[i].ok;
    }
    for (int i = 0; i < TESSERA_REGION_MAX_PROCS; i++)
        mine += atomic_load(&r.map->procs[i].pid) == (int32_t)getpid();
    check(ok && mine == 1 && region_used(&r, 0) == 8 * MIB, "region_threads_share_a_record",
          "%d records of ours, used %llu", mine, (unsigned long long)region_used(&r, 0));
    region_leave(&r);
}

void test_region(void)
{
    snprintf(path, sizeof(path), "/tmp/tessera-units-%d.region", (int)getpid());
    struct region r;
    if (attach(&r) != 0) {
        check(0, "region_attach", "cannot attach %s", path);
        return;
    }
    test_reserve_release(&r);
    test_reclaim(&r);
    test_full_table(&r);
    test_rejoin(&r);
    test_concurrent(&r);
    region_leave(&r);
    test_threads_share_a_record();
    unlink(path);
}
