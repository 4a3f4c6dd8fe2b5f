/*
 * t_limits.c - a container whose limits come from the limits file
 * (TESSERA_LIMITS_FILE): the node agent writes it once the kubelet has said
 * whose allocation it is, which may be after the container started. Whether
 * the file is there at start, appears late, never appears, belongs to
 * another allocation or is malformed, the library either holds the
 * container to the file's limit from its very first allocation, or fails
 * CUDA with one clear line on stderr. Nothing is ever allocated unlimited.
 *
 * Each case runs in a fresh child: the library reads its configuration once
 * per process.
 */
#include "th.h"

#include "tessera_env.h"
#include "tessera_region.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <unistd.h>

#define FAKE_MIB 4096u
#define LIMIT_MIB 1024u
#define CORE_PCT 40u
#define OURS "a1b2c3"
#define OTHER "ffff0000"

/* How the file comes to be, and what must happen. */
enum arrival { PRESENT, NEVER, LATE_AFTER_OTHER, LATE_ABSENT };

struct tcase {
    const char *name;
    enum arrival arrival;
    const char *content; /* "%s" is the device's UUID; NULL: the valid file */
    const char *wait_ms;
    const char *mention; /* NULL: limited; else refused, stderr names this */
};

static char uuid0[64];

static void write_file(const char *path, const char *text)
{
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        perror("write limits file");
        exit(2);
    }
}

static void render(char *out, size_t len, const char *id, const char *content)
{
    char valid[512];
    snprintf(valid, sizeof(valid),
             "tessera-limits v1\nallocation %s\ndevices 1\ndevice 0 %%s %u %u\nend\n", id,
             LIMIT_MIB, CORE_PCT);
    snprintf(out, len, content != NULL ? content : valid, uuid0);
}

/* Late: the other allocation's file is there; once the library has read it
 * (so it is certainly waiting), ours replaces it. */
static void *replace_after_read(void *arg)
{
    const char *path = arg;
    int fd = inotify_init1(IN_CLOEXEC);
    char ev[4096], text[512];
    if (fd < 0 || inotify_add_watch(fd, path, IN_CLOSE_NOWRITE) < 0 ||
        read(fd, ev, sizeof(ev)) <= 0)
        exit(3);
    close(fd);
    render(text, sizeof(text), OURS, NULL);
    write_file(path, text);
    return NULL;
}

static void *write_soon(void *arg)
{
    char text[512];
    struct timespec ts = {0, 100 * 1000 * 1000L};
    nanosleep(&ts, NULL);
    render(text, sizeof(text), OURS, NULL);
    write_file(arg, text);
    return NULL;
}

/* Allocates 64-MiB pieces until refused; returns MiB allocated. */
static uint64_t fill_mib(void)
{
    CUdeviceptr ptrs[256];
    int n = 0;
    while (n < 256 && cuMemAlloc_v2(&ptrs[n], 64 * TH_MIB) == CUDA_SUCCESS)
        n++;
    for (int i = 0; i < n; i++)
        cuMemFree_v2(ptrs[i]);
    return (uint64_t)n * 64;
}

static const struct tessera_region_device *region_dev0(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    void *p = fd < 0 ? MAP_FAILED : mmap(NULL, sizeof(struct tessera_region), PROT_READ, MAP_SHARED, fd, 0);
    if (fd >= 0)
        close(fd);
    return p == MAP_FAILED ? NULL : &((const struct tessera_region *)p)->devices[0];
}

/* Exit 0 when the container was held to the file's limits from its first
 * allocation on. */
static int limited(const struct tcase *tc)
{
    pthread_t t;
    const char *path = getenv(TESSERA_ENV_LIMITS_FILE);
    if (tc->arrival == LATE_AFTER_OTHER)
        pthread_create(&t, NULL, replace_after_read, (void *)path);
    if (tc->arrival == LATE_ABSENT)
        pthread_create(&t, NULL, write_soon, (void *)path);
    CUdeviceptr p;
    if (th_make_current(0) != 0)
        return 10;
    /* The very first allocation: more than the limit, far less than the
     * device. Unlimited, it would succeed. */
    if (cuMemAlloc_v2(&p, (LIMIT_MIB + 64) * TH_MIB) != CUDA_ERROR_OUT_OF_MEMORY)
        return 11;
    uint64_t want = (LIMIT_MIB * TH_MIB - TH_OVERHEAD) / (64 * TH_MIB) * 64;
    if (fill_mib() != want)
        return 12;
    const struct tessera_region_device *d = region_dev0(getenv(TESSERA_ENV_REGION_FILE));
    if (d == NULL || d->limit_bytes != LIMIT_MIB * TH_MIB || d->core_limit_pct != CORE_PCT)
        return 13;
    size_t free = 0, total = 0;
    if (cuMemGetInfo_v2(&free, &total) != CUDA_SUCCESS || total != LIMIT_MIB * TH_MIB)
        return 14;
    return 0;
}

/* Exit 0 when CUDA failed and nothing reached the device: not through
 * cuInit, and not for a program that initialises the driver behind the
 * library's back (the fake's own cuInit) and then asks for memory. */
static int refused(const struct tcase *tc)
{
    (void)tc;
    if (cuInit(0) != CUDA_ERROR_NOT_INITIALIZED)
        return 20;
    CUresult (*raw_init)(unsigned) = (CUresult(*)(unsigned))fakecuda_raw_proc("cuInit");
    if (raw_init == NULL || raw_init(0) != CUDA_SUCCESS)
        return 21;
    CUcontext ctx;
    if (cuDevicePrimaryCtxRetain(&ctx, 0) == CUDA_SUCCESS)
        return 22;
    CUresult (*raw_retain)(CUcontext *, CUdevice) =
        (CUresult(*)(CUcontext *, CUdevice))fakecuda_raw_proc("cuDevicePrimaryCtxRetain");
    if (raw_retain == NULL || raw_retain(&ctx, 0) != CUDA_SUCCESS || cuCtxSetCurrent(ctx) != 0)
        return 23;
    uint64_t before = fakecuda_used_bytes(0);
    CUdeviceptr p;
    if (cuMemAlloc_v2(&p, TH_MIB) == CUDA_SUCCESS || cuMemAllocManaged(&p, TH_MIB, 1) == CUDA_SUCCESS)
        return 24;
    return fakecuda_used_bytes(0) == before ? 0 : 25;
}

static int scenario(void *arg)
{
    const struct tcase *tc = arg;
    int fd = open(th_path("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0)
        return 2;
    return tc->mention == NULL ? limited(tc) : refused(tc);
}

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

static void run(const struct tcase *tc, int i)
{
    char name[64], text[TESSERA_LIMITS_MAX_BYTES + 64];
    snprintf(name, sizeof(name), "limits%d.region", i);
    unsigned env_mem[] = {FAKE_MIB}; /* ignored in file mode: the file's limit holds */
    th_container_env(th_path(name), 1, env_mem, NULL);
    snprintf(name, sizeof(name), "limits%d", i);
    const char *path = th_path(name);
    unlink(path);
    setenv(TESSERA_ENV_LIMITS_FILE, path, 1);
    setenv(TESSERA_ENV_ALLOCATION_ID, OURS, 1);
    setenv(TESSERA_ENV_LIMITS_WAIT_MS, tc->wait_ms, 1);
    if (tc->arrival == PRESENT) {
        render(text, sizeof(text), OURS, tc->content);
        write_file(path, text);
    }
    if (tc->arrival == LATE_AFTER_OTHER || (tc->arrival == NEVER && tc->content != NULL)) {
        render(text, sizeof(text), OTHER, tc->content);
        write_file(path, text);
    }
    int rc = th_in_child(scenario, (void *)tc);
    char first[2048];
    int lines = hook_lines(first, sizeof(first));
    if (tc->mention == NULL)
        check(rc == 0 && lines == 0, tc->name, "exit %d, %d hook lines, first: %s", rc, lines,
              first);
    else
        check(rc == 0 && lines == 1 && strstr(first, "every CUDA call fails") != NULL &&
                  strstr(first, tc->mention) != NULL,
              tc->name, "exit %d, %d hook lines, first: %s", rc, lines, first);
}

int main(void)
{
    static char big[TESSERA_LIMITS_MAX_BYTES + 16];
    memset(big, 'x', sizeof(big) - 1);
    memcpy(big, "tessera-limits v1\n", 18);
    big[sizeof(big) - 2] = '\n';
    const struct tcase cases[] = {
        {"file_present_limit_applies", PRESENT, NULL, "60000", NULL},
        {"file_late_after_other_allocation_limit_applies_from_first", LATE_AFTER_OTHER, NULL,
         "60000", NULL},
        {"file_late_absent_limit_applies_from_first", LATE_ABSENT, NULL, "60000", NULL},
        {"file_never_refused", NEVER, NULL, "50", "no limits for allocation " OURS},
        {"other_allocation_never_replaced_refused", NEVER,
         "tessera-limits v1\nallocation " OTHER "\ndevices 1\ndevice 0 %s 64 0\nend\n", "50",
         "no limits for allocation"},
        {"refusal_refused_with_reason", PRESENT,
         "tessera-limits v1\nallocation " OURS "\nrefused pod b holds these GPUs\nend\n",
         "60000", "pod b holds these GPUs"},
        {"malformed_truncated_refused_at_once", PRESENT,
         "tessera-limits v1\nallocation " OURS "\ndevices 1\ndevice 0 %s 1024 40\n", "600000",
         "malformed"},
        {"malformed_leading_zero_refused", PRESENT,
         "tessera-limits v1\nallocation " OURS "\ndevices 1\ndevice 0 %s 01024 40\nend\n",
         "600000", "malformed"},
        {"malformed_zero_memory_refused", PRESENT,
         "tessera-limits v1\nallocation " OURS "\ndevices 1\ndevice 0 %s 0 40\nend\n", "600000",
         "malformed"},
        {"malformed_core_over_100_refused", PRESENT,
         "tessera-limits v1\nallocation " OURS "\ndevices 1\ndevice 0 %s 1024 101\nend\n",
         "600000", "malformed"},
        {"malformed_trailing_line_refused", PRESENT,
         "tessera-limits v1\nallocation " OURS "\ndevices 1\ndevice 0 %s 1024 40\nend\nx\n",
         "600000", "malformed"},
        {"malformed_wrong_version_refused", PRESENT,
         "tessera-limits v2\nallocation " OURS "\ndevices 1\ndevice 0 %s 1024 40\nend\n",
         "600000", "malformed"},
        {"malformed_too_big_refused", PRESENT, big, "600000", "malformed"},
        {"other_device_refused", PRESENT,
         "tessera-limits v1\nallocation " OURS "\ndevices 1\ndevice 0 GPU-other 1024 40\nend\n",
         "600000", "GPU-other"},
        {"more_devices_than_the_container_refused", PRESENT,
         "tessera-limits v1\nallocation " OURS
         "\ndevices 2\ndevice 0 %s 1024 40\ndevice 1 GPU-b 1024 0\nend\n",
         "600000", "names 2 devices"},
        {"bad_wait_setting_refused", PRESENT, NULL, "soon", TESSERA_ENV_LIMITS_WAIT_MS},
    };
    setenv("FAKECUDA_DEVICE_MEMORY_MIB", "4096", 1);
    fakecuda_uuid(0, uuid0, sizeof(uuid0));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run(&cases[i], (int)i);
    return check_exit_code();
}
