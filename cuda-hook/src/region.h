/*
 * region.h - operations on the shared usage region (layout in
 * include/tessera_region.h): attach and initialise it, reserve and release
 * memory against a device's limit, reclaim the records of dead processes.
 *
 * A reservation is announced in the caller's own record first and then
 * checked against the sum of every record: two processes racing for the
 * last bytes may both back off, but they can never both succeed past the
 * limit (each sees the other's announcement), and no lock is ever held, so
 * a killed process blocks nobody.
 */
#ifndef TESSERA_REGION_OPS_H
#define TESSERA_REGION_OPS_H

#include "env.h"
#include "tessera_region.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct region {
    struct tessera_region *map;
    int private_map;          /* 1: an anonymous mapping, limits hold per process */
    _Atomic int slot;         /* this process's record, -1 until first needed */
    /* &map->procs[slot], or NULL while slot is -1: the reservation path
     * takes its record with one load instead of indexing every time. */
    _Atomic(struct tessera_region_proc *) me;
    pthread_mutex_t claim_mu; /* one claim per process, whatever its threads */
    int32_t pid;
};

/* Maps the region file (creating and initialising it if needed). When the
 * file is unusable, maps a private region instead and explains why in msg.
 * Returns 0 on success, -1 if not even a private region could be mapped. */
int region_attach(struct region *r, const struct tessera_config *cfg, char *msg, size_t msglen);

/* Reserves bytes on device dev against limit (0 = none). Returns 0 when
 * reserved, -1 when it would exceed the limit, -2 when no record is free. */
int region_reserve(struct region *r, int dev, uint64_t bytes, uint64_t limit);
/* Adds bytes without a limit check (memory the driver already handed out). */
void region_charge(struct region *r, int dev, uint64_t bytes);
void region_release(struct region *r, int dev, uint64_t bytes);
/* Usage of device dev by all processes of the container. */
uint64_t region_used(const struct region *r, int dev);
/* Usage of device dev charged by this process alone (0 before its first). */
uint64_t region_mine(const struct region *r, int dev);
/* Frees the records of processes that no longer exist; returns how many. */
int region_reclaim(struct region *r);
/* Records count paced launches on dev, the last at realtime_ns (for metrics). */
void region_note_launch(struct region *r, int dev, uint64_t count, uint64_t realtime_ns);
/* Adds gpu_ns of settled GPU time to this process's busy_ns on dev (for
 * metrics; the record is claimed if need be). */
void region_add_busy(struct region *r, int dev, uint64_t gpu_ns);
/* The shared pacing word of device dev. */
_Atomic uint64_t *region_pace_word(struct region *r, int dev);
/* Gives this process's record back (normal exit). */
void region_leave(struct region *r);
/* In a forked child: the parent's record is not ours. */
void region_forget_slot(struct region *r);

/* Whether the process pid, started at start_time (0 = unknown), still runs. */
int region_pid_alive(int32_t pid, uint64_t start_time);
/* starttime of /proc/<pid>/stat, or 0 if unknown. */
uint64_t region_proc_start_time(int32_t pid);

#endif
