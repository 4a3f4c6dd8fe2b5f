/*
 * tessera_region.h - layout of the shared usage region: one file per
 * container, mmap'd by every process of the container that uses CUDA, and
 * read (read-only) by the node agent for metrics through pkg/region.
 *
 * Fixed-size types only, so the layout is the same for every compiler and for
 * Go. Every field that changes after initialisation is updated with C11
 * atomics, never under a lock: a process killed at any instruction leaves
 * nothing held. Its usage stays in its own record until another process
 * notices the pid is gone and folds the record back (see region.c).
 */
#ifndef TESSERA_REGION_H
#define TESSERA_REGION_H

#include <stdatomic.h>
#include <stdint.h>

#define TESSERA_REGION_MAGIC 0x5445535345524131ULL /* "TESSERA1" */
/* 2: struct tessera_region_proc gained busy_ns. Readers and the library
 * accept their own version only: a file of another version is a foreign
 * layout (the library falls back to a private region). */
#define TESSERA_REGION_VERSION 2
#define TESSERA_REGION_MAX_DEVICES 16
#define TESSERA_REGION_MAX_PROCS 128
#define TESSERA_REGION_UUID_LEN 64

/* Values of tessera_region.state. A fresh (zero-filled) file is EMPTY. */
#define TESSERA_REGION_EMPTY 0
#define TESSERA_REGION_INITIALISING 1
#define TESSERA_REGION_READY 2

/* One device of the container, in the container's ordinal order. */
struct tessera_region_device {
    _Atomic uint64_t limit_bytes;    /* memory limit; 0 = none */
    _Atomic uint32_t core_limit_pct; /* core cap in percent; 0 = none */
    uint32_t reserved0;
    /* Pacing state shared by the container's processes: the theoretical
     * arrival time (CLOCK_MONOTONIC ns) of the pacer in pacer.h. */
    _Atomic uint64_t pace_tat_ns;
    char uuid[TESSERA_REGION_UUID_LEN]; /* NUL-terminated, may be empty */
};

/*
 * One process. pid is the ownership word: 0 = free, > 0 = owned by that pid,
 * < 0 = being reclaimed by the process -pid. A device's usage is the sum of
 * used_bytes[device] over all records, so a dead process's usage is removed
 * exactly by zeroing its record. pending_bytes holds reservations still being
 * checked against the limit: they count when others check, but are not usage.
 */
struct tessera_region_proc {
    _Atomic int32_t pid;
    uint32_t reserved0;
    _Atomic uint64_t start_time; /* /proc/<pid>/stat starttime, detects pid reuse */
    _Atomic uint64_t used_bytes[TESSERA_REGION_MAX_DEVICES];
    _Atomic uint64_t pending_bytes[TESSERA_REGION_MAX_DEVICES];
    _Atomic uint64_t launches[TESSERA_REGION_MAX_DEVICES];       /* paced launches */
    _Atomic uint64_t last_launch_ns[TESSERA_REGION_MAX_DEVICES]; /* CLOCK_REALTIME */
    /* GPU time (ns) attributed to this process's paced launches: what the
     * pacer finally charged each one (its measured time, or its estimate
     * when it could not be timed; nothing for a failed launch). Only grows,
     * and is added when a launch's time is settled, so it trails the GPU by
     * the launches still in flight. Kept on capped devices only. */
    _Atomic uint64_t busy_ns[TESSERA_REGION_MAX_DEVICES];
};

struct tessera_region {
    uint64_t magic;
    uint32_t version;
    _Atomic uint32_t state; /* TESSERA_REGION_EMPTY/INITIALISING/READY */
    uint32_t size;          /* sizeof(struct tessera_region) */
    uint32_t device_count;
    uint32_t max_devices;      /* TESSERA_REGION_MAX_DEVICES */
    uint32_t max_procs;        /* TESSERA_REGION_MAX_PROCS */
    _Atomic uint32_t proc_hwm; /* records [0, proc_hwm) may be in use */
    _Atomic int32_t init_pid;  /* process that claimed initialisation */
    uint64_t reserved0[4];
    struct tessera_region_device devices[TESSERA_REGION_MAX_DEVICES];
    struct tessera_region_proc procs[TESSERA_REGION_MAX_PROCS];
};

/* The layout relies on atomics being plain, lock-free words. */
_Static_assert(sizeof(_Atomic uint64_t) == 8, "64-bit atomics must be 8 bytes");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(sizeof(struct tessera_region_device) == 88, "device record size");
_Static_assert(sizeof(struct tessera_region_proc) == 656, "process record size");
_Static_assert(sizeof(struct tessera_region) == 72 + 16 * 88 + 128 * 656, "region size");

#endif
