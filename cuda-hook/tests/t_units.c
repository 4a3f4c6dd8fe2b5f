/*
 * t_units.c - unit tests of the library's pure parts, linked from src/
 * directly: the allocation table and the environment parser. The region
 * protocol is in t_units_region.c.
 */
#include "check.h"
#include "env.h"
#include "table.h"
#include "tessera_env.h"

#include <stdlib.h>
#include <string.h>

void test_region(void); /* t_units_region.c */

static uint64_t next_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}

static void test_table(void)
{
    struct table t = {0};
    uint64_t seed = 42, keys[5000];
    for (int i = 0; i < 5000; i++) {
        keys[i] = (next_rand(&seed) << 8) | 0x7f0000000000ULL; /* aligned like pointers */
        struct alloc_rec r = {.key = keys[i], .size = (uint64_t)i, .kind = KIND_PTR, .dev = 1};
        table_put(&t, &r);
    }
    int bad = 0;
    struct alloc_rec out;
    for (int i = 0; i < 5000; i += 2)
        bad += !table_take(&t, KIND_PTR, keys[i], &out) || out.size != (uint64_t)i;
    for (int i = 0; i < 5000; i++)
        bad += table_take(&t, KIND_PTR, keys[i], &out) != (i % 2);
    check(bad == 0 && t.count == 0, "table_put_take", "%d mismatches, %zu left", bad, t.count);
    struct alloc_rec a = {.key = 7, .kind = KIND_ARRAY}, b = {.key = 7, .kind = KIND_VMM};
    table_put(&t, &a);
    table_put(&t, &b);
    check(table_take(&t, KIND_VMM, 7, &out) && out.kind == KIND_VMM && t.count == 1,
          "table_kinds_do_not_collide", "count %zu", t.count);
    struct alloc_rec n1 = {.key = 1, .aux = 99, .kind = KIND_GRAPH_NODE};
    struct alloc_rec n2 = {.key = 2, .aux = 99, .kind = KIND_GRAPH_NODE};
    table_put(&t, &n1);
    table_put(&t, &n2);
    int taken = 0;
    while (table_take_by_aux(&t, KIND_GRAPH_NODE, 99, &out))
        taken++;
    check(taken == 2 && t.count == 1, "table_take_by_aux", "took %d", taken);
    /* A removal that ends its probe run only marks the slot empty (the fast
     * path of every free): what the slot held is never found again. */
    struct alloc_rec g = {.key = 3, .aux = 77, .kind = KIND_GRAPH_NODE};
    table_put(&t, &g);
    int gone = table_take(&t, KIND_GRAPH_NODE, 3, &out) &&
               !table_take(&t, KIND_GRAPH_NODE, 3, &out) &&
               !table_take_by_aux(&t, KIND_GRAPH_NODE, 77, &out);
    check(gone && t.count == 1, "table_removed_slot_is_empty", "count %zu", t.count);
    table_clear(&t);
}

/* A stand-in environment for config_load. */
static const char *const *fake_env;

static const char *lookup(const char *name)
{
    for (int i = 0; fake_env[i] != NULL; i += 2)
        if (strcmp(fake_env[i], name) == 0)
            return fake_env[i + 1];
    return NULL;
}

struct env_case {
    const char *name;
    const char *const *env;
    int enforce, problems;
    uint64_t mem0;
    unsigned core0;
};

/* Environments, and what config_load must make of them. */
static const char *const good[] = {"TESSERA_DEVICE_COUNT",
                                   "2",
                                   "TESSERA_MEMORY_LIMIT_MIB_0",
                                   "1024",
                                   "TESSERA_MEMORY_LIMIT_MIB_1",
                                   "2048",
                                   "TESSERA_CORE_LIMIT_0",
                                   "30",
                                   "TESSERA_DEVICE_UUID_0",
                                   "GPU-a",
                                   "TESSERA_REGION_FILE",
                                   "/r",
                                   NULL};
static const char *const none[] = {NULL};
static const char *const zero[] = {"TESSERA_DEVICE_COUNT", "0", NULL};
static const char *const junk[] = {"TESSERA_DEVICE_COUNT", "1x", NULL};
static const char *const many[] = {"TESSERA_DEVICE_COUNT", "17", NULL};
static const char *const badmem[] = {"TESSERA_DEVICE_COUNT",
                                     "1",
                                     "TESSERA_MEMORY_LIMIT_MIB_0",
                                     "-1",
                                     "TESSERA_REGION_FILE",
                                     "/r",
                                     NULL};
static const char *const hugemem[] = {"TESSERA_DEVICE_COUNT",
                                      "1",
                                      "TESSERA_MEMORY_LIMIT_MIB_0",
                                      "17592186044416",
                                      "TESSERA_REGION_FILE",
                                      "/r",
                                      NULL};
static const char *const core100[] = {"TESSERA_DEVICE_COUNT",
                                      "1",
                                      "TESSERA_MEMORY_LIMIT_MIB_0",
                                      "1",
                                      "TESSERA_CORE_LIMIT_0",
                                      "100",
                                      "TESSERA_REGION_FILE",
                                      "/r",
                                      NULL};
static const char *const core0[] = {"TESSERA_DEVICE_COUNT",
                                    "1",
                                    "TESSERA_MEMORY_LIMIT_MIB_0",
                                    "1",
                                    "TESSERA_CORE_LIMIT_0",
                                    "0",
                                    NULL};
static const struct env_case cases[] = {
    {"env_valid", good, 1, 0, 1024ULL << 20, 30},
    {"env_missing_count_passes_through", none, 0, 1, 0, 0},
    {"env_zero_devices_passes_through", zero, 0, 1, 0, 0},
    {"env_junk_count_passes_through", junk, 0, 1, 0, 0},
    {"env_too_many_devices_passes_through", many, 0, 1, 0, 0},
    {"env_negative_memory_drops_limit", badmem, 1, 1, 0, 0},
    {"env_overflowing_memory_drops_limit", hugemem, 1, 1, 0, 0},
    {"env_core_100_is_no_cap", core100, 1, 0, 1ULL << 20, 0},
    {"env_core_0_and_no_region_reported", core0, 1, 2, 1ULL << 20, 0},
};
static void test_env(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tessera_config cfg;
        char msg[512];
        fake_env = cases[i].env;
        int problems = config_load(&cfg, lookup, msg, sizeof(msg));
        check(cfg.enforce == cases[i].enforce && problems == cases[i].problems &&
                  (!cfg.enforce ||
                   (cfg.mem_limit[0] == cases[i].mem0 && cfg.core_pct[0] == cases[i].core0)),
              cases[i].name, "enforce %d problems %d mem %llu core %u (%s)", cfg.enforce, problems,
              (unsigned long long)cfg.mem_limit[0], cfg.core_pct[0], msg);
    }
}

/* TESSERA_SAMPLE_SEED: a bad value is reported, naming the variable, and
 * leaves the default seeding; the limits are read as without it. */
struct seed_case {
    const char *name, *value;
    int problems, seeded;
    uint64_t seed;
};

static const struct seed_case seed_cases[] = {
    {"env_seed_absent_seeds_from_the_clock", NULL, 0, 0, 0},
    {"env_seed_fixed", "42", 0, 1, 42},
    {"env_seed_zero", "0", 0, 1, 0},
    {"env_seed_largest", "18446744073709551615", 0, 1, UINT64_MAX},
    {"env_seed_overflowing_reported", "18446744073709551616", 1, 0, 0},
    {"env_seed_junk_reported", "7x", 1, 0, 0},
    {"env_seed_negative_reported", "-1", 1, 0, 0},
    {"env_seed_empty_reported", "", 1, 0, 0},
};

static void test_env_seed(void)
{
    for (size_t i = 0; i < sizeof(seed_cases) / sizeof(seed_cases[0]); i++) {
        const struct seed_case *c = &seed_cases[i];
        const char *env[] = {"TESSERA_DEVICE_COUNT", "1",     "TESSERA_MEMORY_LIMIT_MIB_0",
                             "1",                    "TESSERA_REGION_FILE", "/r",
                             TESSERA_ENV_SAMPLE_SEED, c->value, NULL};
        struct tessera_config cfg;
        char msg[512];
        fake_env = env;
        int problems = config_load(&cfg, lookup, msg, sizeof(msg));
        int named = c->problems == 0 || strstr(msg, TESSERA_ENV_SAMPLE_SEED) != NULL;
        check(problems == c->problems && named && cfg.has_sample_seed == c->seeded &&
                  (!c->seeded || cfg.sample_seed == c->seed) && cfg.mem_limit[0] == 1ULL << 20,
              c->name, "problems %d seeded %d seed %llu (%s)", problems, cfg.has_sample_seed,
              (unsigned long long)cfg.sample_seed, msg);
    }
}

int main(void)
{
    test_table();
    test_env();
    test_env_seed();
    test_region();
    return check_exit_code();
}
