/* table.c - see table.h. */
#include "table.h"

#include <stdlib.h>
#include <string.h>

/* Only records that are there are moved, so each lands in an empty slot. */
static void insert_raw(struct table *t, const struct alloc_rec *rec)
{
    *table_probe(t, rec->kind, rec->key) = *rec;
    t->count++;
}

int table_grow(struct table *t)
{
    size_t old_cap = t->cap, cap = old_cap ? old_cap * 2 : 256;
    struct alloc_rec *old = t->slots;
    struct alloc_rec *fresh = calloc(cap, sizeof(*fresh));
    if (fresh == NULL)
        return -1;
    t->slots = fresh;
    t->cap = cap;
    t->count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].kind != KIND_EMPTY)
            insert_raw(t, &old[i]);
    free(old);
    return 0;
}

/* Backward-shift deletion: pulls later members of the probe run into the
 * hole, so lookups never need tombstones. */
void table_shift_into(struct table *t, size_t hole)
{
    size_t mask = t->cap - 1;
    for (size_t i = (hole + 1) & mask; t->slots[i].kind != KIND_EMPTY; i = (i + 1) & mask) {
        size_t home = table_home(t, t->slots[i].kind, t->slots[i].key);
        /* The entry may move into the hole only if the hole lies on the
         * cyclic path from its home slot to where it sits now. */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            t->slots[hole] = t->slots[i];
            hole = i;
        }
    }
    memset(&t->slots[hole], 0, sizeof(t->slots[hole]));
    t->count--;
}

int table_take_by_aux(struct table *t, uint8_t kind, uint64_t aux, struct alloc_rec *out)
{
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].kind == kind && t->slots[i].aux == aux) {
            *out = t->slots[i];
            table_shift_into(t, i);
            return 1;
        }
    }
    return 0;
}

void table_clear(struct table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = 0;
    t->count = 0;
}
