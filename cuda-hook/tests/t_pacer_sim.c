/*
 * t_pacer_sim.c - deterministic simulation of the pacer (src/pacer.c) on a
 * virtual clock: containers of one to four processes launch kernels of varied
 * lengths onto one simulated GPU that runs them in submission order; each
 * process keeps up to `depth` launches in flight, like an application that
 * synchronises every few launches. The checks are on the GPU time each
 * container receives, the quantity the core limit promises.
 */
#include "../src/pacer.h"
#include "check.h"

#include <stdint.h>
#include <string.h>

#define SIM_MAX_PROCS 8
#define SIM_MAX_DEPTH 8
#define SIM_LAUNCH_CPU_NS 5000ULL       /* host cost of one launch */
#define SIM_SLEEP_OVERSHOOT_NS 60000ULL /* a sleep ends this much late */
#define SIM_WARMUP_NS 2000000000ULL
#define SIM_END_NS 22000000000ULL

struct sim_kernel {
    uint64_t end, dur, charged;
};

struct sim_proc {
    int cont, depth, nq;
    uint64_t est, wake, rng;
    struct sim_kernel q[SIM_MAX_DEPTH];
};

struct sim_cont {
    unsigned pct;
    uint64_t tat, busy;
};

struct sim {
    struct sim_cont c[2];
    struct sim_proc p[SIM_MAX_PROCS];
    int np;
    uint64_t gpu_free;
};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Kernel lengths from 20 us to 4 ms, mixed as in a real training step. */
static uint64_t kernel_ns(uint64_t *rng)
{
    static const uint64_t lengths[] = {20000, 50000, 100000, 300000, 1000000, 2000000, 4000000};
    return lengths[rng_next(rng) % (sizeof(lengths) / sizeof(lengths[0]))];
}

static uint64_t overlap(uint64_t a, uint64_t b)
{
    uint64_t lo = a > SIM_WARMUP_NS ? a : SIM_WARMUP_NS;
    uint64_t hi = b < SIM_END_NS ? b : SIM_END_NS;
    return hi > lo ? hi - lo : 0;
}

/* What the hook measures for a kernel: event timing is off by up to +-10%. */
static uint64_t observed_ns(uint64_t dur, uint64_t *rng)
{
    uint64_t jitter = dur / 10;
    return dur - jitter + rng_next(rng) % (2 * jitter + 1);
}

/* Observes finished kernels as the hook does at its next launch. */
static void retire(struct sim *s, struct sim_proc *p, uint64_t now)
{
    struct sim_cont *c = &s->c[p->cont];
    while (p->nq > 0 && p->q[0].end <= now) {
        uint64_t seen = observed_ns(p->q[0].dur, &p->rng);
        c->tat += (uint64_t)pacer_correction(p->q[0].charged, seen, c->pct);
        p->est = pacer_estimate(p->est, seen);
        memmove(&p->q[0], &p->q[1], sizeof(p->q[0]) * (size_t)(--p->nq));
    }
}

static void launch(struct sim *s, struct sim_proc *p, uint64_t now)
{
    struct sim_cont *c = &s->c[p->cont];
    uint64_t dur = kernel_ns(&p->rng);
    uint64_t start = now > s->gpu_free ? now : s->gpu_free;
    s->gpu_free = start + dur;
    c->busy += overlap(start, start + dur);
    p->q[p->nq++] = (struct sim_kernel){.end = start + dur, .dur = dur, .charged = p->est};
    p->wake = now + SIM_LAUNCH_CPU_NS;
}

static void step(struct sim *s, struct sim_proc *p)
{
    uint64_t now = p->wake;
    struct sim_cont *c = &s->c[p->cont];
    retire(s, p, now);
    if (p->nq == p->depth) {
        p->wake = p->q[0].end; /* the application waits for the GPU */
        return;
    }
    struct pacer_decision d = pacer_admit(c->tat, now, p->est, c->pct, PACER_TOLERANCE_NS);
    if (d.wait_ns > 0) {
        p->wake = now + d.wait_ns + SIM_SLEEP_OVERSHOOT_NS;
        return;
    }
    c->tat = d.tat;
    launch(s, p, now);
}

static void run(struct sim *s)
{
    for (;;) {
        struct sim_proc *next = &s->p[0];
        for (int i = 1; i < s->np; i++)
            if (s->p[i].wake < next->wake)
                next = &s->p[i];
        if (next->wake >= SIM_END_NS)
            return;
        step(s, next);
    }
}

static void add_procs(struct sim *s, int cont, int n, uint64_t seed)
{
    static const int depths[] = {1, 4, 2, 8};
    for (int i = 0; i < n; i++) {
        struct sim_proc *p = &s->p[s->np++];
        memset(p, 0, sizeof(*p));
        p->cont = cont;
        p->depth = depths[(i + cont) % 4];
        p->est = PACER_INITIAL_ESTIMATE_NS;
        p->rng = seed * 7919 + (uint64_t)s->np * 104729 + 1;
        p->wake = (uint64_t)i * 1000;
    }
}

static double share(const struct sim *s, int cont)
{
    return 100.0 * (double)s->c[cont].busy / (double)(SIM_END_NS - SIM_WARMUP_NS);
}

static void test_single_container(void)
{
    for (unsigned pct = 10; pct <= 90; pct += 10) {
        for (int n = 1; n <= 4; n++) {
            struct sim s = {.c = {{.pct = pct}}};
            add_procs(&s, 0, n, pct * 10 + (unsigned)n);
            run(&s);
            char name[64];
            snprintf(name, sizeof(name), "pacer_sim_limit_%u_procs_%d", pct, n);
            double got = share(&s, 0);
            check(got >= pct - 5.0 && got <= pct + 5.0, name, "delivered %.2f%% for limit %u%%",
                  got, pct);
            if (n == 1)
                printf("     (limit %u%%: one process received %.2f%% of the GPU)\n", pct, got);
        }
    }
}

static void test_two_containers(void)
{
    for (int n = 1; n <= 2; n++) {
        struct sim s = {.c = {{.pct = 10}, {.pct = 90}}};
        add_procs(&s, 0, n, 11);
        add_procs(&s, 1, n, 13);
        run(&s);
        double a = share(&s, 0), b = share(&s, 1);
        double ratio = b / a;
        char name[64];
        snprintf(name, sizeof(name), "pacer_sim_10_vs_90_procs_%d", n);
        check(ratio >= 9.0 * 0.9 && ratio <= 9.0 * 1.1, name,
              "shares %.2f%% and %.2f%%: ratio %.2f, want 9 +-10%%", a, b, ratio);
        printf("     (10%% container got %.2f%%, 90%% container got %.2f%%)\n", a, b);
    }
}

static void test_pure_functions(void)
{
    struct pacer_decision d = pacer_admit(0, 1000, 500, 50, 0);
    check(d.wait_ns == 0 && d.tat == 2000, "pacer_admit_charges_wall_time", "tat %llu wait %llu",
          (unsigned long long)d.tat, (unsigned long long)d.wait_ns);
    d = pacer_admit(10000, 1000, 500, 50, 4000);
    check(d.wait_ns == 5000 && d.tat == 10000, "pacer_admit_waits_beyond_tolerance",
          "tat %llu wait %llu", (unsigned long long)d.tat, (unsigned long long)d.wait_ns);
    check(pacer_correction(100, 300, 50) == 400 && pacer_correction(300, 100, 50) == -400,
          "pacer_correction_is_signed", "got %lld", (long long)pacer_correction(100, 300, 50));
    check(pacer_estimate(0, 80) == 80 && pacer_estimate(100, 200) == 125,
          "pacer_estimate_moves_a_quarter", "got %llu",
          (unsigned long long)pacer_estimate(100, 200));
}

int main(void)
{
    test_pure_functions();
    test_single_container();
    test_two_containers();
    return check_exit_code();
}
