/*
 * account.h - reserving against a device's limit in the region, and
 * remembering what each allocation charged so that its free releases
 * exactly that. The record of which allocation charged what is
 * process-local, under one short spinning lock (spin.h).
 *
 * Layer 4 (accounting): includes only the state (3) and what is below it.
 */
#ifndef TESSERA_ACCOUNT_H
#define TESSERA_ACCOUNT_H

#include "state.h"

#include <stdint.h>

/* After region_reserve refused (rc): resyncs pools and tries again, or
 * says why not. 0 or CUDA_ERROR_OUT_OF_MEMORY. */
CUresult hook_reserve_again(int dev, uint64_t bytes, int rc);

/* Reserves bytes on container device dev; 0 or CUDA_ERROR_OUT_OF_MEMORY.
 * Inline: every allocation takes it, and it almost always succeeds at once. */
static inline CUresult hook_reserve(int dev, uint64_t bytes)
{
    /* A refused container has no limit to hold an allocation to: nothing
     * is allocated at all (start-up said why, once). */
    if (__builtin_expect(g_hook.cfg.refused, 0))
        return CUDA_ERROR_NOT_INITIALIZED;
    int rc = region_reserve(&g_hook.region, dev, bytes, g_hook.cfg.mem_limit[dev]);
    return rc == 0 ? CUDA_SUCCESS : hook_reserve_again(dev, bytes, rc);
}
static inline void hook_release(int dev, uint64_t bytes)
{
    region_release(&g_hook.region, dev, bytes);
}
/* Remembers what an allocation charged; call after the driver succeeded. */
void hook_track(uint8_t kind, uint64_t key, int dev, uint64_t size, uint64_t aux);
/* Forgets an allocation; returns 1 and the record if it was tracked. */
int hook_untrack(uint8_t kind, uint64_t key, struct alloc_rec *out);
/* Forgets the first record of kind with that aux (a graph's nodes). */
int hook_untrack_by_aux(uint8_t kind, uint64_t aux, struct alloc_rec *out);
/* Undoes what a tracked record charged, by its kind. */
void hook_release_rec(const struct alloc_rec *rec);
/* Puts a record back after the driver refused to free it. */
void hook_retrack(const struct alloc_rec *rec);

#endif
