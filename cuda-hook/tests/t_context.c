/*
 * t_context.c - contexts are charged what the driver says they take. For
 * contexts of 0, 300 and 600 MiB (FAKECUDA_CONTEXT_MIB) and 1, 2 and 8
 * processes racing in 256 MiB steps, the processes together reach the limit
 * minus their contexts' real cost to within one step and never exceed it; a
 * process started after they all exit gets the same. When the footprint
 * cannot be measured (no process list in NVML, or two processes starting at
 * once), the fallback TESSERA_CONTEXT_FALLBACK_MIB is charged instead; a
 * context measured too big for the room left is refused and destroyed.
 */
#include "th.h"

#include "tessera_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define LIMIT_MIB 8192u
#define LIMIT ((uint64_t)LIMIT_MIB * TH_MIB)
#define STEP (256 * TH_MIB)
#define MAX_PROCS 8

static const char *region;

/* Allocates STEP pieces until three refusals in a row (a race for the last
 * bytes may refuse once while room exists); returns the bytes held. */
static uint64_t fill_steps(void)
{
    uint64_t total = 0;
    CUdeviceptr p;
    for (int misses = 0; misses < 3;) {
        CUresult rc = cuMemAlloc_v2(&p, STEP);
        if (rc == CUDA_SUCCESS)
            total += STEP, misses = 0;
        else if (rc == CUDA_ERROR_OUT_OF_MEMORY)
            misses++;
        else
            return UINT64_MAX;
    }
    return total;
}

/* Opens its context, says so, waits for the start, fills, reports what it
 * holds and keeps it until the parent closes the pipe. */
static int child(int go, int report, int hold)
{
    char c;
    uint64_t ready = 0, total;
    if (th_make_current(0) != 0 || write(report, &ready, sizeof(ready)) != sizeof(ready) ||
        read(go, &c, 1) != 1)
        return 2;
    total = fill_steps();
    if (write(report, &total, sizeof(total)) != sizeof(total))
        return 4;
    return read(hold, &c, 1) == 0 ? 0 : 5;
}

struct race {
    int go[2], report[2], hold[2];
    pid_t pids[MAX_PROCS];
    int n;
};

static int spawn(struct race *r)
{
    if (pipe(r->go) || pipe(r->report) || pipe(r->hold))
        return -1;
    for (int i = 0; i < r->n; i++) {
        fflush(stdout);
        r->pids[i] = fork();
        if (r->pids[i] == 0) {
            close(r->go[1]);
            close(r->hold[1]);
            exit(child(r->go[0], r->report[1], r->hold[0]));
        }
    }
    close(r->go[0]);
    close(r->hold[0]);
    close(r->report[1]);
    return 0;
}

/* Starts the racers together, samples the region's peak, sums their holdings. */
static uint64_t race(struct race *r, uint64_t *peak)
{
    uint64_t one, sum = 0;
    *peak = 0;
    for (int i = 0; i < r->n; i++)
        if (read(r->report[0], &one, sizeof(one)) != sizeof(one))
            return UINT64_MAX;
    for (int i = 0; i < r->n; i++)
        if (write(r->go[1], "g", 1) != 1)
            return UINT64_MAX;
    for (int got = 0; got < r->n; got++) {
        uint64_t used = th_region_used(region, 0);
        *peak = used > *peak ? used : *peak;
        if (read(r->report[0], &one, sizeof(one)) != sizeof(one) || one == UINT64_MAX)
            return UINT64_MAX;
        sum += one;
    }
    return sum;
}

static int reap(struct race *r)
{
    int ok = 1, status;
    close(r->hold[1]);
    close(r->go[1]);
    close(r->report[0]);
    for (int i = 0; i < r->n; i++)
        ok &= waitpid(r->pids[i], &status, 0) == r->pids[i] && WIFEXITED(status) &&
              !WEXITSTATUS(status);
    return ok;
}

/* A process alone in the container: fills and exits 0 if it got the limit
 * less its own context, to within one step. */
static int late_fill(void *arg)
{
    (void)arg;
    if (th_make_current(0) != 0)
        return 2;
    uint64_t got = fill_steps();
    return got <= LIMIT - TH_OVERHEAD && got + STEP > LIMIT - TH_OVERHEAD ? 0 : 1;
}

static void scenario(unsigned ctx_mib, int procs)
{
    char name[96], v[32], file[64];
    snprintf(v, sizeof(v), "%u", ctx_mib);
    setenv("FAKECUDA_CONTEXT_MIB", v, 1);
    snprintf(file, sizeof(file), "ctx%u_%d.region", ctx_mib, procs);
    region = th_path(file);
    unsigned mem[] = {LIMIT_MIB};
    th_container_env(region, 1, mem, NULL);
    struct race r = {.n = procs};
    uint64_t peak = 0, sum = spawn(&r) == 0 ? race(&r, &peak) : UINT64_MAX;
    uint64_t held = th_region_used(region, 0), ctx = (uint64_t)procs * TH_OVERHEAD;
    snprintf(name, sizeof(name), "ctx%u_procs%d_reach_limit_less_contexts", ctx_mib, procs);
    check(sum != UINT64_MAX && peak <= LIMIT && held == sum + ctx && held <= LIMIT &&
              held + STEP > LIMIT,
          name, "allocated %llu MiB + contexts %llu MiB = held %llu MiB (peak %llu), limit %u MiB",
          (unsigned long long)(sum / TH_MIB), (unsigned long long)(ctx / TH_MIB),
          (unsigned long long)(held / TH_MIB), (unsigned long long)(peak / TH_MIB), LIMIT_MIB);
    int ok = reap(&r);
    snprintf(name, sizeof(name), "ctx%u_procs%d_leave_nothing", ctx_mib, procs);
    check(ok && th_region_used(region, 0) == 0 && th_region_records(region) == 0, name,
          "exits ok %d, used %llu, records %d", ok, (unsigned long long)th_region_used(region, 0),
          th_region_records(region));
    snprintf(name, sizeof(name), "ctx%u_procs%d_late_process_gets_limit", ctx_mib, procs);
    int rc = th_in_child(late_fill, NULL);
    check(rc == 0, name, "child exit %d", rc);
}

/* One process, one retained context: exits 0 when the region charged
 * exactly expect_mib for it, and nothing once it is released. */
static int charged_as(void *arg)
{
    uint64_t expect = *(uint64_t *)arg * TH_MIB;
    if (th_make_current(0) != 0)
        return 2;
    uint64_t with = th_region_used(region, 0);
    if (cuDevicePrimaryCtxRelease_v2(0) != CUDA_SUCCESS)
        return 3;
    uint64_t after = th_region_used(region, 0);
    if (with != expect || after != 0)
        fprintf(stderr, "charged %llu MiB, then %llu\n", (unsigned long long)(with / TH_MIB),
                (unsigned long long)(after / TH_MIB));
    return with == expect && after == 0 ? 0 : 1;
}

/* env NAME=VALUE pairs (NULL-terminated) set only for one child. */
static void charge_case(const char *name, uint64_t expect_mib, const char *const *env)
{
    for (const char *const *e = env; *e != NULL; e += 2)
        setenv(e[0], e[1], 1);
    int rc = th_in_child(charged_as, &expect_mib);
    for (const char *const *e = env; *e != NULL; e += 2)
        unsetenv(e[0]);
    check(rc == 0, name, "child exit %d", rc);
}

static void fallback_cases(void)
{
    unsigned mem[] = {4096};
    region = th_path("fallback.region");
    th_container_env(region, 1, mem, NULL);
    setenv("FAKECUDA_CONTEXT_MIB", "300", 1);
    const char *ns[] = {"FAKENVML_PID_OFFSET", "100000", "FAKENVML_OTHER_PROCS", "3", NULL};
    charge_case("measured_through_pid_namespace", 300, ns);
    const char *none[] = {"FAKENVML_NO_PROCESSES", "1", TESSERA_ENV_CONTEXT_FALLBACK_MIB, "100",
                          NULL};
    charge_case("unmeasurable_charges_fallback", 100, none);
    const char *churn[] = {"FAKENVML_CHURN", "1", TESSERA_ENV_CONTEXT_FALLBACK_MIB, "120", NULL};
    charge_case("ambiguous_newcomer_charges_fallback", 120, churn);
    const char *dflt[] = {"FAKENVML_NO_PROCESSES", "1", NULL};
    charge_case("fallback_defaults_to_build_setting", TESSERA_CONTEXT_FALLBACK_MIB, dflt);
}

/* Limit 1024, contexts of 600: the primary context and 100 MiB leave 324 MiB,
 * room for the fallback (256) but not for a second real context. */
static int too_big(void *arg)
{
    (void)arg;
    CUdeviceptr p;
    CUcontext extra = NULL;
    if (th_make_current(0) != 0 || cuMemAlloc_v2(&p, 100 * TH_MIB) != CUDA_SUCCESS)
        return 2;
    uint64_t before = th_region_used(region, 0);
    CUresult rc = cuCtxCreate_v2(&extra, 0, 0);
    int ok = rc == CUDA_ERROR_OUT_OF_MEMORY && fakecuda_context_count(0) == 1 &&
             th_region_used(region, 0) == before && before == 700 * TH_MIB &&
             fakecuda_used_bytes(0) == before;
    if (!ok)
        fprintf(stderr, "rc %d contexts %d region %llu -> %llu MiB\n", (int)rc,
                fakecuda_context_count(0), (unsigned long long)(before / TH_MIB),
                (unsigned long long)(th_region_used(region, 0) / TH_MIB));
    return ok ? 0 : 1;
}

static void test_too_big(void)
{
    unsigned mem[] = {1024};
    region = th_path("toobig.region");
    th_container_env(region, 1, mem, NULL);
    setenv("FAKECUDA_CONTEXT_MIB", "600", 1);
    int rc = th_in_child(too_big, NULL);
    check(rc == 0, "context_measured_too_big_is_refused_and_destroyed", "child exit %d", rc);
}

int main(void)
{
    static const unsigned ctx_mib[] = {0, 300, 600};
    static const int procs[] = {1, 2, 8};
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 3; p++)
            scenario(ctx_mib[c], procs[p]);
    fallback_cases();
    test_too_big();
    return check_exit_code();
}
