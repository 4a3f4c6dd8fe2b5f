/*
 * t_region_init.c - the region file's life: created 0600 when absent;
 * initialised exactly once when the device plugin pre-created it empty and
 * eight processes start at once; taken over when the process that began
 * initialising it died; and a file with a foreign layout, or one that cannot
 * be opened, still leaves the process limited (per process) and warned.
 */
#include "th.h"

#include "tessera_region.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LIMIT_MIB 1024u
#define PROCS 8

/* Opens a context and allocates; exits 0 if the limit held. */
static int use_gpu(void *arg)
{
    (void)arg;
    if (th_make_current(0) != 0)
        return 2;
    CUdeviceptr p;
    if (cuMemAlloc_v2(&p, 64 * TH_MIB) != CUDA_SUCCESS)
        return 3;
    return cuMemAlloc_v2(&p, LIMIT_MIB * TH_MIB) == CUDA_ERROR_OUT_OF_MEMORY ? 0 : 4;
}

static int header_ok(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct tessera_region m;
    int ok = fd >= 0 && read(fd, &m, sizeof(m)) == (ssize_t)sizeof(m) &&
             m.magic == TESSERA_REGION_MAGIC && m.version == TESSERA_REGION_VERSION &&
             atomic_load(&m.state) == TESSERA_REGION_READY && m.device_count == 1 &&
             atomic_load(&m.devices[0].limit_bytes) == LIMIT_MIB * TH_MIB;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void use_region(const char *path)
{
    unsigned mem[] = {LIMIT_MIB};
    th_container_env(path, 1, mem, NULL);
}

static void test_created_private(void)
{
    const char *path = th_path("fresh.region");
    use_region(path);
    struct stat st;
    int rc = th_in_child(use_gpu, NULL);
    check(rc == 0 && stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && header_ok(path),
          "absent_region_created_0600", "exit %d mode %o", rc, (unsigned)(st.st_mode & 0777));
}

static void test_precreated_concurrent(void)
{
    const char *path = th_path("empty.region");
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0666);
    fchmod(fd, 0666);
    close(fd);
    use_region(path);
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        fflush(stdout);
        if ((pids[i] = fork()) == 0)
            exit(use_gpu(NULL));
    }
    int ok = 1, status;
    for (int i = 0; i < PROCS; i++)
        ok &= waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) && !WEXITSTATUS(status);
    struct stat st;
    stat(path, &st);
    check(ok && header_ok(path) && (size_t)st.st_size == sizeof(struct tessera_region) &&
              (st.st_mode & 0777) == 0666 && th_region_used(path, 0) == 0,
          "empty_region_initialised_once_by_many", "children ok %d size %lld mode %o", ok,
          (long long)st.st_size, (unsigned)(st.st_mode & 0777));
}

static pid_t dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

/* A region left half-initialised by a process that died meanwhile. */
static void test_dead_initialiser(void)
{
    const char *path = th_path("stale.region");
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    struct tessera_region *m = NULL;
    if (fd >= 0 && ftruncate(fd, sizeof(*m)) == 0)
        m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == NULL || m == MAP_FAILED)
        return (void)check(0, "dead_initialiser_taken_over", "cannot prepare file");
    atomic_store(&m->state, TESSERA_REGION_INITIALISING);
    atomic_store(&m->init_pid, dead_pid());
    munmap(m, sizeof(*m));
    close(fd);
    use_region(path);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = th_in_child(use_gpu, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    check(rc == 0 && header_ok(path) && secs < 1.0, "dead_initialiser_taken_over",
          "exit %d after %.2f s", rc, secs);
}

static void test_unusable_files(void)
{
    const char *path = th_path("foreign.region");
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    char junk[sizeof(struct tessera_region)];
    memset(junk, 0x5a, sizeof(junk));
    int wrote = fd >= 0 && write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk);
    if (fd >= 0)
        close(fd);
    use_region(path);
    int rc = th_in_child(use_gpu, NULL);
    check(wrote && rc == 0, "foreign_region_limits_per_process", "exit %d", rc);
    use_region("/nonexistent-dir/x.region");
    rc = th_in_child(use_gpu, NULL);
    check(rc == 0, "unopenable_region_limits_per_process", "exit %d", rc);
}

int main(void)
{
    test_created_private();
    test_precreated_concurrent();
    test_dead_initialiser();
    test_unusable_files();
    return check_exit_code();
}
