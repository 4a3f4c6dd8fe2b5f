/*
 * limitsfile.h - the C reader of the limits file (pkg/hookenv/limits.go is
 * the format's definition; include/tessera_env.h names its bounds). The node
 * agent writes the file once the kubelet has said which pod a device
 * allocation belongs to, which is after the container's environment was
 * fixed; the library waits for it at CUDA initialisation.
 *
 * Layer 1 (config): parsing and reading a file, no process state.
 */
#ifndef TESSERA_LIMITSFILE_H
#define TESSERA_LIMITSFILE_H

#include "env.h"
#include "tessera_env.h"

#include <stddef.h>
#include <stdint.h>

enum limits_status {
    LIMITS_OK,        /* this allocation's limits */
    LIMITS_REFUSED,   /* this allocation's refusal: the container must not use CUDA */
    LIMITS_ABSENT,    /* no file (yet) */
    LIMITS_OTHER_ID,  /* a well-formed file of another allocation (yet) */
    LIMITS_MALFORMED, /* never valid: the writer renames whole files into place */
};

struct limits_file {
    int device_count;
    uint64_t mem_mib[TESSERA_REGION_MAX_DEVICES];
    unsigned core_pct[TESSERA_REGION_MAX_DEVICES]; /* 0: no cap */
    char uuid[TESSERA_REGION_MAX_DEVICES][TESSERA_LIMITS_MAX_UUID_LEN + 1];
    char refused[TESSERA_LIMITS_MAX_REASON_LEN + 1];
};

/* Parses len bytes of a file for allocation want_id. why says what is wrong
 * (LIMITS_MALFORMED, LIMITS_OTHER_ID). */
enum limits_status limits_parse(const char *buf, size_t len, const char *want_id,
                                struct limits_file *out, char *why, size_t whylen);

/* Reads and parses path once. */
enum limits_status limits_read(const char *path, const char *want_id, struct limits_file *out,
                               char *why, size_t whylen);

/*
 * For a configuration whose limits come from a file (cfg->limits_path set by
 * config_load): waits up to cfg->limits_wait_ms for the file to hold this
 * allocation's limits, then applies them to cfg. Returns 0 when they apply.
 * Otherwise the configuration is refused (cfg->refused, and cfg->refusal
 * says why in one line): nothing may then be allocated, because there is no
 * limit to hold it to.
 */
int limits_load(struct tessera_config *cfg);

#endif
