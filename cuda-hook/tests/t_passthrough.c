/*
 * t_passthrough.c - without Tessera's environment, or with settings that
 * make no sense, the hook stays out of the way: allocations reach the
 * driver's own capacity, the driver's numbers are reported unchanged, and the
 * problem is said exactly once on stderr. Bad per-device values drop only
 * their own limit.
 */
#include "th.h"

#include "tessera_env.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAKE_MIB 4096u

/* Allocates 256 MiB pieces until refused; returns MiB allocated. */
static uint64_t fill_mib(void)
{
    CUdeviceptr ptrs[64];
    int n = 0;
    while (n < 64 && cuMemAlloc_v2(&ptrs[n], 256 * TH_MIB) == CUDA_SUCCESS)
        n++;
    for (int i = 0; i < n; i++)
        cuMemFree_v2(ptrs[i]);
    return (uint64_t)n * 256;
}

/* Child: allocates and queries with stderr going to a file; exits 0 when the
 * device behaved as an unlimited one with expect_mib of room. */
static int scenario(void *arg)
{
    uint64_t expect_mib = *(uint64_t *)arg;
    int fd = open(th_path("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0 || th_make_current(0) != 0)
        return 2;
    size_t free = 0, total = 0;
    cuMemGetInfo_v2(&free, &total);
    uint64_t got = fill_mib();
    if (got != expect_mib || total != FAKE_MIB * TH_MIB)
        return 10;
    return 0;
}

/* Lines of the last scenario's stderr that mention the hook. */
static int hook_lines(char *first, size_t len)
{
    FILE *f = fopen(th_path("stderr.txt"), "r");
    char line[2048];
    int n = 0;
    first[0] = '\0';
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, "tessera-hook:") != NULL && n++ == 0)
            snprintf(first, len, "%s", line);
    if (f != NULL)
        fclose(f);
    return n;
}

static void clear_env(void)
{
    const char *vars[] = {TESSERA_ENV_DEVICE_COUNT, TESSERA_ENV_REGION_FILE,
                          TESSERA_ENV_MEMORY_LIMIT_PREFIX "0", TESSERA_ENV_CORE_LIMIT_PREFIX "0",
                          TESSERA_ENV_DEVICE_UUID_PREFIX "0"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

static void run(const char *name, const char *mention, uint64_t room_mib)
{
    /* The fake driver's own contexts take their share of its memory. */
    uint64_t expect = (room_mib * TH_MIB - TH_OVERHEAD) / (256 * TH_MIB) * 256;
    int rc = th_in_child(scenario, &expect);
    char first[2048];
    int lines = hook_lines(first, sizeof(first));
    check(rc == 0 && lines == 1 && strstr(first, mention) != NULL, name,
          "exit %d, %d hook lines on stderr, first: %s", rc, lines, first);
}

int main(void)
{
    setenv("FAKECUDA_DEVICE_MEMORY_MIB", "4096", 1);
    clear_env();
    run("no_settings_pass_through", TESSERA_ENV_DEVICE_COUNT, FAKE_MIB);
    setenv(TESSERA_ENV_DEVICE_COUNT, "two", 1);
    run("bad_device_count_passes_through", "two", FAKE_MIB);
    setenv(TESSERA_ENV_DEVICE_COUNT, "99", 1);
    run("too_many_devices_passes_through", "99", FAKE_MIB);
    setenv(TESSERA_ENV_DEVICE_COUNT, "1", 1);
    setenv(TESSERA_ENV_REGION_FILE, th_path("pass.region"), 1);
    setenv(TESSERA_ENV_MEMORY_LIMIT_PREFIX "0", "-5", 1);
    setenv(TESSERA_ENV_CORE_LIMIT_PREFIX "0", "150", 1);
    /* Both bad values are reported in one line; the device has no limit. */
    run("bad_limits_are_dropped_once", "150", FAKE_MIB);
    return check_exit_code();
}
