/* env.c - see env.h. */
#include "env.h"

#include "tessera_env.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024ULL * 1024ULL)

#ifndef TESSERA_CONTEXT_FALLBACK_MIB
#define TESSERA_CONTEXT_FALLBACK_MIB 256
#endif

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1; /* rejects "", "-1", " 5" and "+5" alike */
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

__attribute__((format(printf, 3, 4))) static void note(char *msg, size_t msglen, const char *fmt,
                                                       ...)
{
    size_t used = strnlen(msg, msglen);
    if (msglen == 0 || used + 1 >= msglen)
        return;
    if (used > 0)
        used += (size_t)snprintf(msg + used, msglen - used, "; ");
    if (used + 1 >= msglen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + used, msglen - used, fmt, ap);
    va_end(ap);
}

static const char *lookup_indexed(env_lookup_fn get, const char *prefix, int i, char *name,
                                  size_t len)
{
    snprintf(name, len, "%s%d", prefix, i);
    return get(name);
}

static int load_memory(struct tessera_config *cfg, env_lookup_fn get, int i, char *msg,
                       size_t msglen)
{
    char name[64];
    const char *v = lookup_indexed(get, TESSERA_ENV_MEMORY_LIMIT_PREFIX, i, name, sizeof(name));
    uint64_t mib = 0;
    if (parse_u64(v, 1, UINT64_MAX / MIB, &mib) != 0) {
        note(msg, msglen, "%s=%s is not a positive number of MiB: device %d has no memory limit",
             name, v ? v : "(unset)", i);
        return 1;
    }
    cfg->mem_limit[i] = mib * MIB;
    return 0;
}

static int load_cores(struct tessera_config *cfg, env_lookup_fn get, int i, char *msg,
                      size_t msglen)
{
    char name[64];
    const char *v = lookup_indexed(get, TESSERA_ENV_CORE_LIMIT_PREFIX, i, name, sizeof(name));
    uint64_t pct = 0;
    if (v == NULL)
        return 0; /* absent means no cap, by contract */
    if (parse_u64(v, TESSERA_ENV_CORE_LIMIT_MIN, TESSERA_ENV_CORE_LIMIT_MAX, &pct) != 0) {
        note(msg, msglen, "%s=%s is not a percentage in 1-100: device %d has no core cap", name, v,
             i);
        return 1;
    }
    cfg->core_pct[i] = pct < 100 ? (unsigned)pct : 0; /* 100% is no cap at all */
    cfg->any_core_cap |= cfg->core_pct[i] != 0;
    return 0;
}

static void load_uuid(struct tessera_config *cfg, env_lookup_fn get, int i)
{
    char name[64];
    const char *v = lookup_indexed(get, TESSERA_ENV_DEVICE_UUID_PREFIX, i, name, sizeof(name));
    if (v != NULL && strlen(v) < sizeof(cfg->uuid[i]))
        memcpy(cfg->uuid[i], v, strlen(v) + 1);
}

static int load_count(struct tessera_config *cfg, env_lookup_fn get, char *msg, size_t msglen)
{
    const char *v = get(TESSERA_ENV_DEVICE_COUNT);
    uint64_t n = 0;
    if (v == NULL) {
        note(msg, msglen, "%s is not set: passing through without limits",
             TESSERA_ENV_DEVICE_COUNT);
        return 1;
    }
    if (parse_u64(v, 1, TESSERA_REGION_MAX_DEVICES, &n) != 0) {
        note(msg, msglen, "%s=%s is not a device count in 1-%d: passing through without limits",
             TESSERA_ENV_DEVICE_COUNT, v, TESSERA_REGION_MAX_DEVICES);
        return 1;
    }
    cfg->device_count = (int)n;
    return 0;
}

/* Absent is the build's default; a bad value keeps it (never zero by mistake). */
static int load_fallback(struct tessera_config *cfg, env_lookup_fn get, char *msg, size_t msglen)
{
    const char *v = get(TESSERA_ENV_CONTEXT_FALLBACK_MIB);
    uint64_t mib = TESSERA_CONTEXT_FALLBACK_MIB;
    cfg->context_fallback = mib * MIB;
    if (v == NULL)
        return 0;
    if (parse_u64(v, 0, TESSERA_ENV_CONTEXT_FALLBACK_MAX_MIB, &mib) != 0) {
        note(msg, msglen, "%s=%s is not a number of MiB in 0-%d: using %d",
             TESSERA_ENV_CONTEXT_FALLBACK_MIB, v, TESSERA_ENV_CONTEXT_FALLBACK_MAX_MIB,
             TESSERA_CONTEXT_FALLBACK_MIB);
        return 1;
    }
    cfg->context_fallback = mib * MIB;
    return 0;
}

/* Absent or bad: seeds from the clock and the thread (the default). */
static int load_seed(struct tessera_config *cfg, env_lookup_fn get, char *msg, size_t msglen)
{
    const char *v = get(TESSERA_ENV_SAMPLE_SEED);
    if (v == NULL)
        return 0;
    if (parse_u64(v, 0, UINT64_MAX, &cfg->sample_seed) != 0) {
        note(msg, msglen, "%s=%s is not a decimal number: the sampling is seeded from the clock",
             TESSERA_ENV_SAMPLE_SEED, v);
        return 1;
    }
    cfg->has_sample_seed = 1;
    return 0;
}

/* The settings of a container whose limits come from a file; any problem
 * refuses it (see config_load). */
static void load_file_mode(struct tessera_config *cfg, env_lookup_fn get)
{
    const char *id = get(TESSERA_ENV_ALLOCATION_ID);
    const char *wait = get(TESSERA_ENV_LIMITS_WAIT_MS);
    char why[256] = "";
    cfg->limits_path = get(TESSERA_ENV_LIMITS_FILE);
    cfg->allocation_id = id;
    if (load_count(cfg, get, why, sizeof(why)) != 0) {
        cfg->refused = 1;
        snprintf(cfg->refusal, sizeof(cfg->refusal), "%s", why);
    } else if (id == NULL || id[0] == '\0' || strlen(id) > TESSERA_LIMITS_MAX_ID_LEN) {
        cfg->refused = 1;
        snprintf(cfg->refusal, sizeof(cfg->refusal), "%s is not set or too long",
                 TESSERA_ENV_ALLOCATION_ID);
    } else if (parse_u64(wait, 0, TESSERA_ENV_LIMITS_WAIT_MAX_MS, &cfg->limits_wait_ms) != 0) {
        cfg->refused = 1;
        snprintf(cfg->refusal, sizeof(cfg->refusal), "%s=%s is not a number of ms in 0-%d",
                 TESSERA_ENV_LIMITS_WAIT_MS, wait ? wait : "(unset)",
                 TESSERA_ENV_LIMITS_WAIT_MAX_MS);
    }
    for (int i = 0; i < cfg->device_count; i++)
        load_uuid(cfg, get, i);
}

int config_load(struct tessera_config *cfg, env_lookup_fn get, char *msg, size_t msglen)
{
    memset(cfg, 0, sizeof(*cfg));
    if (msglen > 0)
        msg[0] = '\0';
    int problems = 0;
    const char *file = get(TESSERA_ENV_LIMITS_FILE);
    if (file != NULL && file[0] != '\0') {
        load_file_mode(cfg, get);
    } else {
        if (load_count(cfg, get, msg, msglen) != 0)
            return 1;
        for (int i = 0; i < cfg->device_count; i++) {
            problems += load_memory(cfg, get, i, msg, msglen);
            problems += load_cores(cfg, get, i, msg, msglen);
            load_uuid(cfg, get, i);
        }
    }
    problems += load_fallback(cfg, get, msg, msglen);
    problems += load_seed(cfg, get, msg, msglen);
    cfg->region_path = get(TESSERA_ENV_REGION_FILE);
    if (cfg->region_path == NULL || cfg->region_path[0] == '\0') {
        cfg->region_path = NULL;
        note(msg, msglen, "%s is not set: limits hold per process, not per container",
             TESSERA_ENV_REGION_FILE);
        problems++;
    }
    cfg->enforce = 1;
    return problems;
}
