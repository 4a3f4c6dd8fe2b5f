/*
 * account.c - reserving against a device's limit and remembering what each
 * allocation charged (see account.h). Reservations go to the lock-free
 * region; the record of which allocation charged what is process-local,
 * under one short spinning lock.
 */
#include "account.h"

#include "poolacct.h"
#include "spin.h"

static atomic_int warned_full, warned_untracked;

CUresult hook_reserve_again(int dev, uint64_t bytes, int rc)
{
    struct region *r = &g_hook.region;
    uint64_t limit = g_hook.cfg.mem_limit[dev];
    if (g_hook.cfg.refused)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (rc == -1) {
        /* Pools may have handed memory back since we last looked. */
        pool_resync_all();
        rc = region_reserve(r, dev, bytes, limit);
    }
    if (rc == 0)
        return CUDA_SUCCESS;
    if (rc == -2 && atomic_exchange(&warned_full, 1) == 0)
        hook_log("every process record of the region is taken: allocation refused");
    return CUDA_ERROR_OUT_OF_MEMORY;
}

/* Without a record the charge can never be released: it stays, which errs
 * on the side of the limit. */
__attribute__((noinline, cold)) static void untracked(void)
{
    if (atomic_exchange(&warned_untracked, 1) == 0)
        hook_log("out of memory for the allocation table: some frees will not be credited");
}

/* The lock was taken, or the table must grow (which calls calloc). */
__attribute__((noinline, cold)) static void track_slow(uint8_t kind, uint64_t key, int dev,
                                                        uint64_t size, uint64_t aux)
{
    struct alloc_rec rec = {.key = key, .size = size, .aux = aux, .kind = kind, .dev = (int8_t)dev};
    spin_lock(&g_hook.allocs_lock);
    int rc = table_put(&g_hook.allocs, &rec);
    spin_unlock(&g_hook.allocs_lock);
    if (rc != 0)
        untracked();
}

/* Every allocation's path. Its slow cases are tail calls, so that the fast
 * one keeps its arguments in registers and saves none on the stack. */
void hook_track(uint8_t kind, uint64_t key, int dev, uint64_t size, uint64_t aux)
{
    struct table *t = &g_hook.allocs;
    if (!spin_trylock(&g_hook.allocs_lock))
        return track_slow(kind, key, dev, size, aux);
    if (__builtin_expect((t->count + 1) * 2 > t->cap, 0)) {
        spin_unlock(&g_hook.allocs_lock);
        return track_slow(kind, key, dev, size, aux);
    }
    struct alloc_rec rec = {.key = key, .size = size, .aux = aux, .kind = kind, .dev = (int8_t)dev};
    table_put(t, &rec); /* cannot fail: there is room */
    spin_unlock(&g_hook.allocs_lock);
}

void hook_retrack(const struct alloc_rec *rec)
{
    hook_track(rec->kind, rec->key, rec->dev, rec->size, rec->aux);
}

__attribute__((noinline, cold)) static int untrack_slow(uint8_t kind, uint64_t key,
                                                         struct alloc_rec *out)
{
    spin_lock(&g_hook.allocs_lock);
    int found = table_take(&g_hook.allocs, kind, key, out);
    spin_unlock(&g_hook.allocs_lock);
    return found;
}

/* Every free's path; as hook_track, contention is a tail call. */
int hook_untrack(uint8_t kind, uint64_t key, struct alloc_rec *out)
{
    if (!spin_trylock(&g_hook.allocs_lock))
        return untrack_slow(kind, key, out);
    int found = table_take(&g_hook.allocs, kind, key, out);
    spin_unlock(&g_hook.allocs_lock);
    return found;
}

int hook_untrack_by_aux(uint8_t kind, uint64_t aux, struct alloc_rec *out)
{
    spin_lock(&g_hook.allocs_lock);
    int found = table_take_by_aux(&g_hook.allocs, kind, aux, out);
    spin_unlock(&g_hook.allocs_lock);
    return found;
}

void hook_release_rec(const struct alloc_rec *rec)
{
    if (rec->kind == KIND_POOL_PTR)
        pool_resync((CUmemoryPool)(uintptr_t)rec->aux);
    else
        hook_release(rec->dev, rec->size); /* contexts too: size is their charge */
}
