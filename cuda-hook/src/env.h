/*
 * env.h - reads the limits the device plugin put in the environment
 * (names in include/tessera_env.h) into a checked configuration.
 */
#ifndef TESSERA_ENV_PARSE_H
#define TESSERA_ENV_PARSE_H

#include "tessera_region.h"

#include <stddef.h>
#include <stdint.h>

struct tessera_config {
    int enforce;      /* 0: pass everything through without limits */
    int device_count; /* container devices, ordinal 0..device_count-1 */
    int any_core_cap;
    uint64_t mem_limit[TESSERA_REGION_MAX_DEVICES]; /* bytes; 0 = no limit */
    unsigned core_pct[TESSERA_REGION_MAX_DEVICES];  /* 0 = no cap */
    char uuid[TESSERA_REGION_MAX_DEVICES][TESSERA_REGION_UUID_LEN];
    const char *region_path; /* NULL: no shared region */
    uint64_t context_fallback; /* bytes charged for a context that cannot be measured */
    int has_sample_seed;       /* TESSERA_SAMPLE_SEED was set (and valid) */
    uint64_t sample_seed;
    /* Limits from a file (TESSERA_LIMITS_FILE, limitsfile.h) instead of the
     * environment: its path, this allocation's ID and how long to wait. */
    const char *limits_path; /* NULL: limits from the environment */
    const char *allocation_id;
    uint64_t limits_wait_ms;
    /* Set when the container must not use CUDA: its limits did not arrive,
     * were malformed, or were refused. Every reservation then fails, so
     * nothing is ever allocated without a limit. refusal says why. */
    int refused;
    char refusal[768];
};

/* getenv, or a stand-in for tests. */
typedef const char *(*env_lookup_fn)(const char *name);

/*
 * Fills *cfg from the environment. Every problem is described, "; "-separated,
 * in msg (truncated to msglen), for the caller to print once. Returns the
 * number of problems. A missing or invalid device count disables enforcement;
 * a bad per-device value drops only that limit. With TESSERA_LIMITS_FILE set
 * the limits are not read here (limits_load does, later) and any bad
 * setting refuses the container instead: that container was meant to have
 * limits, so passing through would run it unlimited.
 */
int config_load(struct tessera_config *cfg, env_lookup_fn get, char *msg, size_t msglen);

/* Parses a whole decimal number in [min, max]; returns 0 on success. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
