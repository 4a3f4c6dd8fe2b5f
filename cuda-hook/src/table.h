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

/* Inserts or replaces; returns 0, or -1 when memory for growth is missing. */
int table_put(struct table *t, const struct alloc_rec *rec);
/* Removes the record of (kind, key) into *out; returns 1 if it was there. */
int table_take(struct table *t, uint8_t kind, uint64_t key, struct alloc_rec *out);
/* Removes the first record of kind whose aux equals aux; returns 1 if any. */
int table_take_by_aux(struct table *t, uint8_t kind, uint64_t aux, struct alloc_rec *out);
/* Forgets everything (after fork: the child owns none of the parent's memory). */
void table_clear(struct table *t);

#endif
