/*
 * t_busy.c - the observed GPU time the hook records for metrics (busy_ns in
 * each process record). Kernels of the fake driver take FAKECUDA_KERNEL_US
 * of simulated GPU time; the hook learns it only through its timing events,
 * as on hardware, and must record about that much per settled launch on a
 * capped device. Uncapped devices record nothing (their launches are not
 * timed), and a process's busy time leaves the region with its record.
 */
#include "th.h"

#include "tessera_env.h"
#include "tessera_region.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define KERNEL_US 1000
#define LAUNCHES 100

/* busy_ns of device dev summed over the region's records; UINT64_MAX if the
 * region cannot be read. */
static uint64_t region_busy(const char *path, int dev)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return UINT64_MAX;
    const struct tessera_region *m =
        mmap(NULL, sizeof(struct tessera_region), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return UINT64_MAX;
    uint64_t sum = 0;
    for (int i = 0; i < TESSERA_REGION_MAX_PROCS; i++)
        sum += atomic_load(&m->procs[i].busy_ns[dev]);
    munmap((void *)m, sizeof(*m));
    return sum;
}

static int launch_n(int n)
{
    for (int i = 0; i < n; i++)
        if (cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL) != CUDA_SUCCESS)
            return -1;
    return 0;
}

/* Device 0 capped at 50%, device 1 uncapped: launches on both. */
static int capped_process(void *arg)
{
    const char *region = arg;
    if (th_make_current(0) != 0 || launch_n(LAUNCHES) != 0 || cuCtxSynchronize() != CUDA_SUCCESS)
        return 2;
    uint64_t gpu = fakecuda_busy_ns(0);
    /* The hook settles a launch's time at a later launch on the device:
     * this one settles all LAUNCHES (their events have completed). */
    if (launch_n(1) != 0)
        return 2;
    uint64_t busy = region_busy(region, 0), want = (uint64_t)LAUNCHES * KERNEL_US * 1000;
    /* Busy time is what the pacer charged: every launch pays the running
     * estimate and only a sample is timed (README, "Core limit"), so from a
     * cold estimate it trails the kernels' time by a few percent over 100
     * launches; the draws are seeded per thread and clock, so the figure
     * moves from run to run within that bound. */
    check(busy >= want * 90 / 100 && busy <= want * 120 / 100, "busy_ns_is_the_kernels_gpu_time",
          "busy %llu ns after %d launches of %d us, want about %llu", (unsigned long long)busy,
          LAUNCHES, KERNEL_US, (unsigned long long)want);
    check(busy <= gpu + gpu / 10 && busy + gpu / 10 >= gpu, "busy_ns_matches_the_fake_gpu",
          "busy %llu ns, the fake GPU ran %llu ns", (unsigned long long)busy,
          (unsigned long long)gpu);
    if (th_make_current(1) != 0 || launch_n(20) != 0 || cuCtxSynchronize() != CUDA_SUCCESS ||
        launch_n(1) != 0)
        return 2;
    uint64_t uncapped = region_busy(region, 1);
    check(uncapped == 0, "uncapped_device_records_no_busy_time", "busy %llu ns on device 1",
          (unsigned long long)uncapped);
    uint64_t again = region_busy(region, 0);
    check(again == busy, "other_devices_launches_leave_busy_ns_alone", "busy %llu ns, was %llu",
          (unsigned long long)again, (unsigned long long)busy);
    return 0;
}

/* No device capped: launches take the driver's own function directly. */
static int uncapped_process(void *arg)
{
    const char *region = arg;
    if (th_make_current(0) != 0 || launch_n(LAUNCHES) != 0 || cuCtxSynchronize() != CUDA_SUCCESS ||
        launch_n(1) != 0)
        return 2;
    uint64_t busy = region_busy(region, 0);
    /* The region exists only if something charged memory; either way no
     * busy time may be recorded. */
    check(busy == 0 || busy == UINT64_MAX, "uncapped_container_records_no_busy_time",
          "busy %llu ns", (unsigned long long)busy);
    return 0;
}

/* With TESSERA_SAMPLE_SEED the launches that are timed are the same in
 * every run. The kernels here take no GPU time and the fake's events count
 * only work (FAKECUDA_EVENTS_WORK_ONLY), so every sample reads 0 and has
 * completed by the next: the estimates charged to the untimed launches, and
 * so the busy time a thread hands in at its exit, follow from the draws. */
#define SEEDED_LAUNCHES 3000

struct seeded_run {
    const char *region;
    uint64_t busy;
};

static void *seeded_thread(void *arg)
{
    (void)arg;
    if (th_make_current(0) != 0 || launch_n(SEEDED_LAUNCHES) != 0)
        return (void *)1;
    return NULL;
}

static int seeded_process(void *arg)
{
    struct seeded_run *run = arg;
    pthread_t t;
    void *rc = (void *)1;
    if (pthread_create(&t, NULL, seeded_thread, NULL) != 0 || pthread_join(t, &rc) != 0 ||
        rc != NULL)
        return 2;
    uint64_t busy = region_busy(run->region, 0);
    /* The child's memory is its own: the figure goes back as a file. */
    FILE *f = fopen(th_path("seeded_busy"), "w");
    if (f == NULL || fprintf(f, "%llu\n", (unsigned long long)busy) < 0 || fclose(f) != 0)
        return 2;
    return 0;
}

static uint64_t seeded_busy(const char *seed)
{
    struct seeded_run run = {.region = th_path("busy_seeded.region")};
    unsigned long long busy = 0;
    setenv(TESSERA_ENV_SAMPLE_SEED, seed, 1);
    if (th_in_child(seeded_process, &run) != 0)
        return 0;
    FILE *f = fopen(th_path("seeded_busy"), "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu", &busy) != 1)
        busy = 0;
    fclose(f);
    return busy;
}

static void test_fixed_seed(void)
{
    unsigned mem[] = {4096}, core[] = {90};
    setenv("FAKECUDA_KERNEL_US", "0", 1);
    setenv("FAKECUDA_EVENTS_WORK_ONLY", "1", 1);
    th_container_env(th_path("busy_seeded.region"), 1, mem, core);
    uint64_t a = seeded_busy("7"), b = seeded_busy("7"), c = seeded_busy("8");
    unsetenv(TESSERA_ENV_SAMPLE_SEED);
    check(a != 0 && a == b, "fixed_seed_repeats_the_timed_launches",
          "busy %llu ns, then %llu ns with the same seed", (unsigned long long)a,
          (unsigned long long)b);
    check(a != 0 && c != 0 && c != a, "another_seed_times_other_launches",
          "busy %llu ns with seed 7, %llu ns with seed 8", (unsigned long long)a,
          (unsigned long long)c);
}

int main(void)
{
    char us[16];
    snprintf(us, sizeof(us), "%d", KERNEL_US);
    setenv("FAKECUDA_KERNEL_US", us, 1);
    setenv("FAKECUDA_DEVICE_COUNT", "2", 1);
    unsigned mem[] = {4096, 4096}, core[] = {50, 0};

    const char *capped = th_path("busy_capped.region");
    th_container_env(capped, 2, mem, core);
    int rc = th_in_child(capped_process, (void *)capped);
    check(rc == 0, "capped_process_ran", "exit status %d", rc);
    uint64_t left = region_busy(capped, 0);
    check(left == 0, "busy_ns_leaves_with_the_process", "busy %llu ns after exit",
          (unsigned long long)left);

    const char *uncapped = th_path("busy_uncapped.region");
    th_container_env(uncapped, 1, mem, NULL);
    unsetenv(TESSERA_ENV_CORE_LIMIT_PREFIX "0"); /* left by the capped run */
    rc = th_in_child(uncapped_process, (void *)uncapped);
    check(rc == 0, "uncapped_process_ran", "exit status %d", rc);
    test_fixed_seed();
    return check_exit_code();
}
