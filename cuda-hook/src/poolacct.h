/*
 * poolacct.h - what each memory pool has been charged. A pool keeps freed
 * memory for reuse, so what a pool costs its device is the memory it has
 * reserved from the driver (CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), not the
 * sum of its live allocations; the registry here keeps each known pool's
 * charge equal to that. The entry points are in pool.c and pool_free.c.
 *
 * Layer 4 (accounting): includes only the state (3) and what is below it.
 */
#ifndef TESSERA_POOLACCT_H
#define TESSERA_POOLACCT_H

#include "state.h"

#include <stdint.h>

/* Re-reads one pool, or every known pool, and applies the change. */
void pool_resync(CUmemoryPool pool);
void pool_resync_all(void);
/* Remembers which device a pool draws on; forgets a destroyed pool (which
 * has returned all it reserved). */
void pool_register(CUmemoryPool pool, int dev);
void pool_unregister(CUmemoryPool pool);
/* Replaces a reservation of size by the pool's growth. Returns 0, or -1
 * when the pool cannot be tracked (then the allocation is charged by size). */
int pool_settle_growth(CUmemoryPool pool, int dev, uint64_t size);
/* Device a pool belongs to: known from its creation, else current. */
int pool_dev(CUmemoryPool pool, int current);

#endif
