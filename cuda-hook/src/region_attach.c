/*
 * region_attach.c - opening, sizing and initialising the region file. The
 * device plugin may pre-create it as an empty file, and several processes of
 * a container may start at once: sizing with ftruncate is idempotent, and
 * exactly one process wins the compare-and-swap that publishes the header.
 */
#include "region.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REGION_SIZE sizeof(struct tessera_region)
/* How long a process waits for another to finish initialising: far longer
 * than the few stores it takes, short enough not to hang an application. */
#define REGION_INIT_WAIT_MS 2000

static void write_header(struct tessera_region *m)
{
    m->magic = TESSERA_REGION_MAGIC;
    m->version = TESSERA_REGION_VERSION;
    m->size = (uint32_t)REGION_SIZE;
    m->max_devices = TESSERA_REGION_MAX_DEVICES;
    m->max_procs = TESSERA_REGION_MAX_PROCS;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits for the winner of initialisation; takes over (the writes are
 * idempotent) if it died or takes implausibly long. */
static void wait_ready(struct tessera_region *m)
{
    for (int waited = 0; waited < REGION_INIT_WAIT_MS; waited++) {
        if (atomic_load(&m->state) == TESSERA_REGION_READY)
            return;
        int32_t owner = atomic_load(&m->init_pid);
        if (owner > 0 && !region_pid_alive(owner, 0))
            break;
        sleep_ms(1);
    }
    write_header(m);
    atomic_store(&m->state, TESSERA_REGION_READY);
}

static int init_or_wait(struct tessera_region *m)
{
    uint32_t expect = TESSERA_REGION_EMPTY;
    if (atomic_compare_exchange_strong(&m->state, &expect, TESSERA_REGION_INITIALISING)) {
        atomic_store(&m->init_pid, (int32_t)getpid());
        write_header(m);
        atomic_store(&m->state, TESSERA_REGION_READY);
        return 0;
    }
    if (expect != TESSERA_REGION_INITIALISING && expect != TESSERA_REGION_READY)
        return -1;
    wait_ready(m);
    return 0;
}

static int header_ok(const struct tessera_region *m)
{
    return m->magic == TESSERA_REGION_MAGIC && m->version == TESSERA_REGION_VERSION &&
           m->size == REGION_SIZE && m->max_devices == TESSERA_REGION_MAX_DEVICES &&
           m->max_procs == TESSERA_REGION_MAX_PROCS;
}

/* Every process writes the limits of its environment: they are the same for
 * the whole container, and readers then never see a region without them. */
static void publish_limits(struct tessera_region *m, const struct tessera_config *cfg)
{
    m->device_count = (uint32_t)cfg->device_count;
    for (int i = 0; i < cfg->device_count; i++) {
        struct tessera_region_device *d = &m->devices[i];
        atomic_store(&d->limit_bytes, cfg->mem_limit[i]);
        atomic_store(&d->core_limit_pct, cfg->core_pct[i]);
        if (strncmp(d->uuid, cfg->uuid[i], sizeof(d->uuid)) != 0)
            memcpy(d->uuid, cfg->uuid[i], sizeof(d->uuid));
    }
}

static struct tessera_region *map_file(const char *path, char *msg, size_t msglen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(msg, msglen, "cannot open region %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    void *p = MAP_FAILED;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        snprintf(msg, msglen, "region %s is not a regular file", path);
    else if ((size_t)st.st_size < REGION_SIZE && ftruncate(fd, (off_t)REGION_SIZE) != 0)
        snprintf(msg, msglen, "cannot size region %s: %s", path, strerror(errno));
    else if ((p = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
        snprintf(msg, msglen, "cannot map region %s: %s", path, strerror(errno));
    close(fd); /* the mapping keeps the file */
    return p == MAP_FAILED ? NULL : p;
}

static struct tessera_region *map_shared(const char *path, char *msg, size_t msglen)
{
    struct tessera_region *m = map_file(path, msg, msglen);
    if (m == NULL)
        return NULL;
    if (init_or_wait(m) == 0 && header_ok(m))
        return m;
    snprintf(msg, msglen, "region %s has an unknown layout (magic %#llx, version %u)", path,
             (unsigned long long)m->magic, m->version);
    munmap(m, REGION_SIZE);
    return NULL;
}

static struct tessera_region *map_private(void)
{
    void *p = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    write_header(p);
    atomic_store(&((struct tessera_region *)p)->state, TESSERA_REGION_READY);
    return p;
}

int region_attach(struct region *r, const struct tessera_config *cfg, char *msg, size_t msglen)
{
    memset(r, 0, sizeof(*r));
    atomic_init(&r->slot, -1);
    atomic_init(&r->me, NULL);
    pthread_mutex_init(&r->claim_mu, NULL);
    r->pid = (int32_t)getpid();
    if (cfg->region_path != NULL)
        r->map = map_shared(cfg->region_path, msg, msglen);
    if (r->map == NULL) {
        r->map = map_private();
        r->private_map = 1;
    }
    if (r->map == NULL)
        return -1;
    publish_limits(r->map, cfg);
    return 0;
}
