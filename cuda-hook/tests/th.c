/* th.c - see th.h. */
#include "th.h"

#include "tessera_env.h"
#include "tessera_region.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

uint64_t th_context_bytes(void)
{
    const char *v = getenv("FAKECUDA_CONTEXT_MIB");
    return v == NULL ? 0 : strtoull(v, NULL, 10) * TH_MIB;
}

const char *th_tmpdir(void)
{
    static char dir[64];
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/tessera-hook-test.XXXXXX");
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

const char *th_path(const char *name)
{
    static char path[8][256];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 256, "%s/%s", th_tmpdir(), name);
    return p;
}

static void set_indexed(const char *prefix, int i, const char *value)
{
    char name[64];
    snprintf(name, sizeof(name), "%s%d", prefix, i);
    setenv(name, value, 1);
}

void th_container_env(const char *region, int n, const unsigned *mem_mib, const unsigned *core)
{
    char v[64];
    snprintf(v, sizeof(v), "%d", n);
    setenv(TESSERA_ENV_DEVICE_COUNT, v, 1);
    setenv(TESSERA_ENV_REGION_FILE, region, 1);
    for (int i = 0; i < n; i++) {
        snprintf(v, sizeof(v), "%u", mem_mib[i]);
        set_indexed(TESSERA_ENV_MEMORY_LIMIT_PREFIX, i, v);
        fakecuda_uuid(i, v, sizeof(v));
        set_indexed(TESSERA_ENV_DEVICE_UUID_PREFIX, i, v);
        if (core != NULL && core[i] != 0) {
            snprintf(v, sizeof(v), "%u", core[i]);
            set_indexed(TESSERA_ENV_CORE_LIMIT_PREFIX, i, v);
        }
    }
}

int th_make_current(int dev)
{
    CUcontext ctx;
    if (cuInit(0) != CUDA_SUCCESS || cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS)
        return -1;
    return cuCtxSetCurrent(ctx) == CUDA_SUCCESS ? 0 : -1;
}

static const struct tessera_region *map_region(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    void *p = mmap(NULL, sizeof(struct tessera_region), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static uint64_t collect(const struct tessera_region *m, int dev, uint64_t *v)
{
    uint64_t sum = 0;
    for (int i = 0; i < TESSERA_REGION_MAX_PROCS; i++)
        sum += v[i] = atomic_load(&m->procs[i].used_bytes[dev]);
    return sum;
}

/* Two collects that agree: a one-pass sum is not an instant's usage while
 * other processes reserve and release. */
uint64_t th_region_used(const char *region, int dev)
{
    const struct tessera_region *m = map_region(region);
    if (m == NULL)
        return UINT64_MAX;
    uint64_t a[TESSERA_REGION_MAX_PROCS], b[TESSERA_REGION_MAX_PROCS], sum = 0;
    for (int attempt = 0; attempt < 1000; attempt++) {
        sum = collect(m, dev, a);
        if (collect(m, dev, b) == sum && memcmp(a, b, sizeof(a)) == 0)
            break;
    }
    munmap((void *)m, sizeof(*m));
    return sum;
}

int th_region_records(const char *region)
{
    const struct tessera_region *m = map_region(region);
    if (m == NULL)
        return -1;
    int n = 0;
    for (int i = 0; i < TESSERA_REGION_MAX_PROCS; i++)
        n += atomic_load(&m->procs[i].pid) != 0;
    munmap((void *)m, sizeof(*m));
    return n;
}

#define TH_MAX_KEYS 4096

/* Allocates until the first failure; returns how many pieces and the error. */
static int fill(const struct th_allocator *a, uint64_t chunk, uint64_t *keys, CUresult *last)
{
    int n = 0;
    while (n < TH_MAX_KEYS && (*last = a->alloc(a->state, chunk, &keys[n])) == CUDA_SUCCESS)
        n++;
    return n;
}

void th_check_fill(const struct th_allocator *a, uint64_t chunk, uint64_t limit, const char *region)
{
    static uint64_t keys[TH_MAX_KEYS];
    char name[128];
    uint64_t fake_before = fakecuda_used_bytes(0), region_before = th_region_used(region, 0);
    uint64_t room = limit - region_before;
    CUresult last = CUDA_SUCCESS;
    int n = fill(a, chunk, keys, &last);
    uint64_t got = (uint64_t)n * chunk;
    snprintf(name, sizeof(name), "%s_stops_at_limit", a->name);
    check(last == CUDA_ERROR_OUT_OF_MEMORY && got <= room && got + chunk > room, name,
          "allocated %llu MiB of %llu MiB room, then error %d", (unsigned long long)(got / TH_MIB),
          (unsigned long long)(room / TH_MIB), (int)last);
    int freed = 0;
    for (int i = 0; i < n; i++)
        freed += a->release(a->state, keys[i]) == CUDA_SUCCESS;
    if (a->finish != NULL)
        a->finish(a->state);
    snprintf(name, sizeof(name), "%s_frees_leave_nothing", a->name);
    check(freed == n && fakecuda_used_bytes(0) == fake_before &&
              th_region_used(region, 0) == region_before,
          name, "freed %d/%d; driver %llu -> %llu bytes, region %llu -> %llu bytes", freed, n,
          (unsigned long long)fake_before, (unsigned long long)fakecuda_used_bytes(0),
          (unsigned long long)region_before, (unsigned long long)th_region_used(region, 0));
}

int th_in_child(int (*fn)(void *), void *arg)
{
    th_tmpdir(); /* parent and child must agree on where files are */
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        exit(fn(arg)); /* exit, not _exit: the hook's exit handler must run */
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
