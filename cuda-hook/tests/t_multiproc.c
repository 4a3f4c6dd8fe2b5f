/*
 * t_multiproc.c - eight processes of one container allocate at once, in
 * random sizes, until the hook refuses: together they never exceed the
 * container's limit, neither at the end nor at any moment the parent looks.
 */
#include "th.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROCS 8
#define LIMIT_MIB 4096u
#define LIMIT (LIMIT_MIB * TH_MIB)

static const char *region;

/* Opens its context, says so, waits for the start; then allocates random
 * sizes until even the smallest is refused, reports the total and holds it
 * until the parent closes the pipe. */
static int child(int go, int report, int hold, unsigned seed)
{
    char c = 'r';
    uint64_t ready = 0;
    if (th_make_current(0) != 0 || write(report, &ready, sizeof(ready)) != sizeof(ready) ||
        read(go, &c, 1) != 1)
        return 2;
    uint64_t total = 0;
    srand(seed);
    for (int misses = 0; misses < 3;) {
        uint64_t size = misses ? TH_MIB : (uint64_t)(1 + rand() % 64) * TH_MIB;
        CUdeviceptr p;
        CUresult rc = cuMemAlloc_v2(&p, size);
        if (rc == CUDA_SUCCESS)
            total += size;
        else if (rc == CUDA_ERROR_OUT_OF_MEMORY)
            misses++;
        else
            return 3;
    }
    if (write(report, &total, sizeof(total)) != sizeof(total))
        return 4;
    return read(hold, &c, 1) == 0 ? 0 : 5; /* EOF: the parent is done */
}

struct pipes {
    int go[2], report[2], hold[2];
};

static void spawn(struct pipes *p, pid_t *pids)
{
    for (int i = 0; i < PROCS; i++) {
        fflush(stdout);
        pids[i] = fork();
        if (pids[i] == 0) {
            close(p->go[1]);
            close(p->hold[1]);
            exit(child(p->go[0], p->report[1], p->hold[0], 1000u + (unsigned)i));
        }
    }
    close(p->go[0]);
    close(p->hold[0]);
    close(p->report[1]);
}

/* Starts the children together once all have a context, and samples the
 * region while they race. */
static uint64_t watch(struct pipes *p, uint64_t *sum)
{
    uint64_t peak = 0, total = 0, ready;
    for (int i = 0; i < PROCS; i++)
        if (read(p->report[0], &ready, sizeof(ready)) != sizeof(ready))
            return UINT64_MAX;
    if (write(p->go[1], "GOGOGOGO", PROCS) != PROCS)
        return UINT64_MAX;
    for (int got = 0; got < PROCS;) {
        uint64_t used = th_region_used(region, 0);
        peak = used > peak ? used : peak;
        uint64_t one;
        if (read(p->report[0], &one, sizeof(one)) == sizeof(one)) {
            total += one;
            got++;
        } else {
            break;
        }
    }
    *sum = total;
    return peak;
}

int main(void)
{
    unsigned mem[] = {LIMIT_MIB};
    region = th_path("multiproc.region");
    th_container_env(region, 1, mem, NULL);
    struct pipes p;
    pid_t pids[PROCS];
    if (pipe(p.go) || pipe(p.report) || pipe(p.hold))
        return 2;
    spawn(&p, pids);
    uint64_t sum = 0, peak = watch(&p, &sum);
    uint64_t held = th_region_used(region, 0), charged = sum + PROCS * TH_OVERHEAD;
    check(peak <= LIMIT && held <= LIMIT && charged == held, "eight_processes_stay_under_limit",
          "peak %llu MiB, held %llu MiB, children report %llu MiB, limit %u MiB",
          (unsigned long long)(peak / TH_MIB), (unsigned long long)(held / TH_MIB),
          (unsigned long long)(charged / TH_MIB), LIMIT_MIB);
    check(held + PROCS * 3 * TH_MIB > LIMIT, "eight_processes_fill_the_limit",
          "only %llu of %u MiB used", (unsigned long long)(held / TH_MIB), LIMIT_MIB);
    close(p.hold[1]);
    int ok = 1, status;
    for (int i = 0; i < PROCS; i++)
        ok &= waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) && !WEXITSTATUS(status);
    check(ok && th_region_used(region, 0) == 0 && th_region_records(region) == 0,
          "eight_processes_leave_nothing", "exits ok %d, used %llu, records %d", ok,
          (unsigned long long)th_region_used(region, 0), th_region_records(region));
    return check_exit_code();
}
