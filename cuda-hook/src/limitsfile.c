/* limitsfile.c - see limitsfile.h. */
#include "limitsfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* How often the file is looked at while waiting: short against any wait an
 * operator would set, long enough to cost nothing. */
#define POLL_NS (5 * 1000 * 1000L)

/* One line of the file: [p, p + n), without its '\n'. */
struct cursor {
    const char *p, *end;
};

static int next_line(struct cursor *c, const char **line, size_t *n)
{
    if (c->p >= c->end)
        return 0;
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    /* limits_parse checked that the file ends in '\n'. */
    *line = c->p;
    *n = (size_t)(nl - c->p);
    c->p = nl + 1;
    return 1;
}

static int is_lit(const char *line, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(line, lit, n) == 0;
}

/* The field after prefix, when line starts with it. */
static int cut_prefix(const char *line, size_t n, const char *prefix, const char **rest,
                      size_t *rn)
{
    size_t pn = strlen(prefix);
    if (n < pn || memcmp(line, prefix, pn) != 0)
        return 0;
    *rest = line + pn;
    *rn = n - pn;
    return 1;
}

/* Canonical decimal only (no sign, no leading zero), as the Go side. */
static int parse_canon(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 19 || (n > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int valid_id(const char *s, size_t n)
{
    if (n == 0 || n > TESSERA_LIMITS_MAX_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

static int valid_uuid(const char *s, size_t n)
{
    if (n == 0 || n > TESSERA_LIMITS_MAX_UUID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* "device <i> <uuid> <memoryMiB> <corePercent>" */
static int parse_device(const char *line, size_t n, int i, struct limits_file *out)
{
    const char *f[5];
    size_t fn[5];
    int k = 0;
    const char *start = line, *end = line + n;
    for (const char *p = line; p <= end; p++) {
        if (p == end || *p == ' ') {
            if (k == 5)
                return -1;
            f[k] = start;
            fn[k++] = (size_t)(p - start);
            start = p + 1;
        }
    }
    uint64_t ord = 0, mem = 0, core = 0;
    if (k != 5 || !is_lit(f[0], fn[0], "device") || parse_canon(f[1], fn[1], 64, &ord) != 0 ||
        ord != (uint64_t)i || !valid_uuid(f[2], fn[2]) ||
        parse_canon(f[3], fn[3], TESSERA_LIMITS_MAX_MEMORY_MIB, &mem) != 0 || mem == 0 ||
        parse_canon(f[4], fn[4], 100, &core) != 0)
        return -1;
    memcpy(out->uuid[i], f[2], fn[2]);
    out->uuid[i][fn[2]] = '\0';
    out->mem_mib[i] = mem;
    out->core_pct[i] = (unsigned)core;
    return 0;
}

#define MALFORMED(...)                             \
    do {                                           \
        snprintf(why, whylen, __VA_ARGS__);        \
        return LIMITS_MALFORMED;                   \
    } while (0)

enum limits_status limits_parse(const char *buf, size_t len, const char *want_id,
                                struct limits_file *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (len > TESSERA_LIMITS_MAX_BYTES)
        MALFORMED("more than %d bytes", TESSERA_LIMITS_MAX_BYTES);
    if (len == 0 || buf[len - 1] != '\n')
        MALFORMED("empty, or the last line does not end in a newline");
    struct cursor c = {buf, buf + len};
    const char *line, *v;
    size_t n, vn;
    if (!next_line(&c, &line, &n) || !is_lit(line, n, TESSERA_LIMITS_MAGIC))
        MALFORMED("the first line is not \"%s\"", TESSERA_LIMITS_MAGIC);
    if (!next_line(&c, &line, &n) || !cut_prefix(line, n, "allocation ", &v, &vn) ||
        !valid_id(v, vn))
        MALFORMED("line 2 is not \"allocation <id>\"");
    int ours = want_id != NULL && strlen(want_id) == vn && memcmp(v, want_id, vn) == 0;
    if (!next_line(&c, &line, &n))
        MALFORMED("no line 3");
    if (cut_prefix(line, n, "refused ", &v, &vn)) {
        if (vn == 0 || vn > TESSERA_LIMITS_MAX_REASON_LEN || !printable(v, vn))
            MALFORMED("the refusal's reason is empty, too long or not printable");
        memcpy(out->refused, v, vn);
        out->refused[vn] = '\0';
    } else {
        uint64_t count = 0;
        if (!cut_prefix(line, n, "devices ", &v, &vn) ||
            parse_canon(v, vn, TESSERA_REGION_MAX_DEVICES, &count) != 0 || count == 0)
            MALFORMED("line 3 is not \"devices <1-%d>\" or \"refused <reason>\"",
                      TESSERA_REGION_MAX_DEVICES);
        for (int i = 0; i < (int)count; i++)
            if (!next_line(&c, &line, &n) || parse_device(line, n, i, out) != 0)
                MALFORMED("device line %d is not \"device %d <uuid> <MiB> <percent>\"", i, i);
        out->device_count = (int)count;
    }
    if (!next_line(&c, &line, &n) || !is_lit(line, n, "end"))
        MALFORMED("no \"end\" line where it belongs");
    if (c.p != c.end)
        MALFORMED("lines after \"end\"");
    if (!ours) {
        snprintf(why, whylen, "it is another allocation's");
        return LIMITS_OTHER_ID;
    }
    return out->refused[0] != '\0' ? LIMITS_REFUSED : LIMITS_OK;
}

enum limits_status limits_read(const char *path, const char *want_id, struct limits_file *out,
                               char *why, size_t whylen)
{
    /* One byte more than the bound tells "too big" from "exactly full". */
    char buf[TESSERA_LIMITS_MAX_BYTES + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return LIMITS_ABSENT;
    }
    size_t len = 0;
    ssize_t r = 0;
    while (len < sizeof(buf) && (r = read(fd, buf + len, sizeof(buf) - len)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        len += (size_t)r;
    }
    int err = errno;
    close(fd);
    if (r < 0) {
        snprintf(why, whylen, "cannot read it: %s", strerror(err));
        return LIMITS_MALFORMED;
    }
    return limits_parse(buf, len, want_id, out, why, whylen);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* UUIDs are compared as device matching does (devmap.c): case aside. */
static int apply(struct tessera_config *cfg, const struct limits_file *lf)
{
    if (lf->device_count != cfg->device_count) {
        snprintf(cfg->refusal, sizeof(cfg->refusal),
                 "limits file %s names %d devices, the container has %d", cfg->limits_path,
                 lf->device_count, cfg->device_count);
        return -1;
    }
    for (int i = 0; i < lf->device_count; i++) {
        if (cfg->uuid[i][0] != '\0' && strcasecmp(cfg->uuid[i], lf->uuid[i]) != 0) {
            snprintf(cfg->refusal, sizeof(cfg->refusal),
                     "limits file %s names device %d %s, the container has %s", cfg->limits_path,
                     i, lf->uuid[i], cfg->uuid[i]);
            return -1;
        }
    }
    for (int i = 0; i < lf->device_count; i++) {
        cfg->mem_limit[i] = lf->mem_mib[i] * 1024ULL * 1024ULL;
        cfg->core_pct[i] = lf->core_pct[i] < 100 ? lf->core_pct[i] : 0; /* 100%: no cap */
        cfg->any_core_cap |= cfg->core_pct[i] != 0;
        if (cfg->uuid[i][0] == '\0')
            snprintf(cfg->uuid[i], sizeof(cfg->uuid[i]), "%s", lf->uuid[i]);
    }
    return 0;
}

int limits_load(struct tessera_config *cfg)
{
    /* Static: 2 KiB of devices is too much for a caller's small stack, and
     * this runs once per process, under the start-up lock. */
    static struct limits_file lf;
    char why[256] = "";
    if (cfg->refused)
        return -1; /* config_load already refused (a bad ID or wait) */
    uint64_t deadline = now_ns() + cfg->limits_wait_ms * 1000000ULL;
    enum limits_status st;
    for (;;) {
        st = limits_read(cfg->limits_path, cfg->allocation_id, &lf, why, sizeof(why));
        if ((st != LIMITS_ABSENT && st != LIMITS_OTHER_ID) || now_ns() >= deadline)
            break;
        struct timespec ts = {0, POLL_NS};
        nanosleep(&ts, NULL);
    }
    cfg->refused = 1;
    switch (st) {
    case LIMITS_OK:
        cfg->refused = apply(cfg, &lf) != 0;
        return cfg->refused ? -1 : 0;
    case LIMITS_REFUSED:
        snprintf(cfg->refusal, sizeof(cfg->refusal), "the node agent refused this container: %s",
                 lf.refused);
        break;
    case LIMITS_MALFORMED:
        snprintf(cfg->refusal, sizeof(cfg->refusal), "limits file %s is malformed: %s",
                 cfg->limits_path, why);
        break;
    default:
        snprintf(cfg->refusal, sizeof(cfg->refusal),
                 "no limits for allocation %s in %s after %llu ms (%s)", cfg->allocation_id,
                 cfg->limits_path, (unsigned long long)cfg->limits_wait_ms, why);
    }
    return -1;
}
