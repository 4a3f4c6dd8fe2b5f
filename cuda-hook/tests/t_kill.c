/*
 * t_kill.c - a process killed with SIGKILL in the middle of allocating and
 * freeing leaves its usage in the region; the next process that needs the
 * room reclaims it and gets the whole limit.
 */
#include "th.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LIMIT_MIB 1024u
#define LIMIT ((uint64_t)LIMIT_MIB * TH_MIB)
#define CHUNK (16 * TH_MIB)
#define ROUNDS 6

static const char *region;

/* Churns allocations forever, holding up to most of the limit; says so on
 * fd once it holds something, so that it is killed while it does. */
static int churn(int fd)
{
    CUdeviceptr ptrs[64];
    int n = 0;
    if (th_make_current(0) != 0)
        return 2;
    for (;;) {
        if (n < 40 && cuMemAlloc_v2(&ptrs[n], CHUNK) == CUDA_SUCCESS)
            n++;
        else
            while (n > 10)
                cuMemFree_v2(ptrs[--n]);
        if (fd >= 0 && n > 0) {
            if (write(fd, "a", 1) != 1)
                return 3;
            close(fd);
            fd = -1;
        }
    }
}

/* Needs the whole limit: succeeds only if the dead process was reclaimed. */
static int take_all(void *arg)
{
    (void)arg;
    if (th_make_current(0) != 0)
        return 2;
    uint64_t got = 0;
    CUdeviceptr p;
    while (cuMemAlloc_v2(&p, CHUNK) == CUDA_SUCCESS)
        got += CHUNK;
    return got + CHUNK > LIMIT - TH_OVERHEAD ? 0 : 1;
}

static void kill_midway(unsigned round)
{
    int p[2];
    char c;
    if (pipe(p) != 0)
        return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        _exit(churn(p[1]));
    }
    close(p[1]);
    if (read(p[0], &c, 1) == 1) { /* allocating: let it churn a while */
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(round * 3) * 1000000L};
        nanosleep(&ts, NULL);
    }
    close(p[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int main(void)
{
    unsigned mem[] = {LIMIT_MIB};
    region = th_path("kill.region");
    th_container_env(region, 1, mem, NULL);
    int all_ok = 1;
    for (unsigned round = 0; round < ROUNDS; round++) {
        kill_midway(round);
        uint64_t stale = th_region_used(region, 0);
        int rc = th_in_child(take_all, NULL);
        all_ok &= stale > 0 && rc == 0;
        if (stale == 0 || rc != 0)
            printf("     round %u: killed process left %llu MiB; successor exit %d\n", round,
                   (unsigned long long)(stale / TH_MIB), rc);
    }
    check(all_ok, "killed_process_is_reclaimed", "see rounds above");
    check(th_region_used(region, 0) == 0 && th_region_records(region) == 0,
          "nothing_left_after_reclaim", "used %llu, records %d",
          (unsigned long long)th_region_used(region, 0), th_region_records(region));
    return check_exit_code();
}
