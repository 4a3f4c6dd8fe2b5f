/*
 * table.h - process-local map from an allocation's key (device pointer, VMM
 * handle, array, graph node, context) to what was charged for it, so that a
 * free releases exactly what its allocation reserved. Open addressing with
 * linear probing; the caller serialises access (one short critical section).
 */
#ifndef TESSERA_TABLE_H
#define TESSERA_TABLE_H

#include <stddef.h>
#include <stdint.h>

/* What a key names; keys of different kinds never collide. 0 marks empty. */
enum alloc_kind {
    KIND_EMPTY = 0,
    KIND_PTR,        /* cuMemAlloc family, released by size on free */
    KIND_POOL_PTR,   /* pool allocation, accounted by pool growth */
    KIND_VMM,        /* cuMemCreate handle */
    KIND_ARRAY,      /* cuArrayCreate / cuArray3DCreate */
    KIND_MIPMAP,     /* cuMipmappedArrayCreate */
    KIND_GRAPH_NODE, /* cuGraphAddMemAllocNode; aux = owning graph */
    KIND_CTX         /* cuCtxCreate; size = the context's charge */
};

struct alloc_rec {
    uint64_t key;
    uint64_t size; /* bytes charged to the region */
    uint64_t aux;  /* pool or graph, by kind */
    uint8_t kind;
    int8_t dev; /* container device ordinal */
};

struct table {
    struct alloc_rec *slots;
    size_t cap; /* power of two, or 0 before the first insert */
    size_t count;
};

/* Out of line, rare: doubles the capacity (0 or -1 without memory), and
 * closes a hole whose probe run goes on (backward-shift deletion). */
__attribute__((noinline, cold)) int table_grow(struct table *t);
__attribute__((noinline, cold)) void table_shift_into(struct table *t, size_t hole);

/* The put and take below are inline: every allocation and free takes them
 * under the table's lock, and with the load kept under one half the probe
 * almost always ends at its first slot. */
static inline size_t table_home(const struct table *t, uint8_t kind, uint64_t key)
{
    /* Fibonacci hashing: device pointers are aligned, so the low bits are
     * mostly zero and must not pick the slot on their own. */
    uint64_t h = (key ^ ((uint64_t)kind << 56)) * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 20) & (t->cap - 1);
}

/* The slot holding (kind, key), or the empty slot ending its probe run. */
static inline struct alloc_rec *table_probe(const struct table *t, uint8_t kind, uint64_t key)
{
    size_t mask = t->cap - 1, i = table_home(t, kind, key);
    while (t->slots[i].kind != KIND_EMPTY && !(t->slots[i].kind == kind && t->slots[i].key == key))
        i = (i + 1) & mask;
    return &t->slots[i];
}

/* Inserts or replaces; returns 0, or -1 when memory for growth is missing. */
static inline int table_put(struct table *t, const struct alloc_rec *rec)
{
    /* Keep the load under one half so probe sequences stay short. */
    if (__builtin_expect((t->count + 1) * 2 > t->cap, 0) && table_grow(t) != 0)
        return -1;
    struct alloc_rec *s = table_probe(t, rec->kind, rec->key);
    t->count += s->kind == KIND_EMPTY;
    *s = *rec;
    return 0;
}

/* Removes the record of (kind, key) into *out; returns 1 if it was there. */
static inline int table_take(struct table *t, uint8_t kind, uint64_t key, struct alloc_rec *out)
{
    if (t->cap == 0)
        return 0;
    struct alloc_rec *s = table_probe(t, kind, key);
    if (s->kind == KIND_EMPTY)
        return 0;
    *out = *s;
    size_t hole = (size_t)(s - t->slots);
    /* Usually the run ends here: emptying the slot is the whole removal. */
    if (t->slots[(hole + 1) & (t->cap - 1)].kind == KIND_EMPTY) {
        s->kind = KIND_EMPTY;
        t->count--;
    } else {
        table_shift_into(t, hole);
    }
    return 1;
}
/* Removes the first record of kind whose aux equals aux; returns 1 if any. */
int table_take_by_aux(struct table *t, uint8_t kind, uint64_t aux, struct alloc_rec *out);
/* Forgets everything (after fork: the child owns none of the parent's memory). */
void table_clear(struct table *t);

#endif
