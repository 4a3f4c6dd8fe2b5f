/*
 * poolacct.c - the registry of memory pools and their charge (see
 * poolacct.h). An allocation from a pool first reserves its own size (the
 * most the pool can grow by); once the driver answered, that reservation
 * is replaced by the pool's actual growth. Frees and trims re-read the pool
 * and release what it gave back.
 */
#include "poolacct.h"

#include "account.h"

#define POOL_MAX 64

struct pool_ent {
    CUmemoryPool pool;
    int dev;
    uint64_t charged; /* reserved bytes already charged to the region */
};

/* Guarded by mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pool_ent pools[POOL_MAX];
static _Atomic int pool_count; /* read without the lock by pool_resync_all */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* A forked child has none of its parent's pools; the lock may have been
 * held by a parent thread that the child lacks. */
static void forget_all(void)
{
    pthread_mutex_init(&mu, NULL);
    pool_count = 0;
}

static void register_fork(void)
{
    hook_atfork_child(forget_all);
}

static struct pool_ent *find(CUmemoryPool pool)
{
    for (int i = 0; i < pool_count; i++)
        if (pools[i].pool == pool)
            return &pools[i];
    return NULL;
}

static struct pool_ent *find_or_add(CUmemoryPool pool, int dev)
{
    struct pool_ent *e = find(pool);
    if (e == NULL && pool_count < POOL_MAX) {
        e = &pools[pool_count++];
        *e = (struct pool_ent){.pool = pool, .dev = dev, .charged = 0};
    }
    return e;
}

/* Brings a pool's charge to its reserved size; stores the change (for the
 * caller to apply to the region) and returns 0, or -1 if the pool cannot be
 * read. */
static int sync_locked(struct pool_ent *e, int64_t *delta)
{
    uint64_t reserved = 0;
    __typeof__(&cuMemPoolGetAttribute) get = REAL(cuMemPoolGetAttribute);
    if (get == NULL ||
        get(e->pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &reserved) != CUDA_SUCCESS)
        return -1;
    *delta = (int64_t)(reserved - e->charged);
    e->charged = reserved;
    return 0;
}

static void apply(int dev, int64_t delta)
{
    if (delta > 0)
        region_charge(&g_hook.region, dev, (uint64_t)delta);
    else if (delta < 0)
        hook_release(dev, (uint64_t)-delta);
}

void pool_resync(CUmemoryPool pool)
{
    pthread_mutex_lock(&mu);
    struct pool_ent *e = find(pool);
    int64_t delta = 0;
    if (e != NULL && sync_locked(e, &delta) == 0)
        apply(e->dev, delta);
    pthread_mutex_unlock(&mu);
}

void pool_resync_all(void)
{
    /* Most processes never create a pool: their cuMemGetInfo takes no lock. */
    if (atomic_load_explicit(&pool_count, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < pool_count; i++) {
        int64_t delta = 0;
        if (sync_locked(&pools[i], &delta) == 0)
            apply(pools[i].dev, delta);
    }
    pthread_mutex_unlock(&mu);
}

int pool_settle_growth(CUmemoryPool pool, int dev, uint64_t size)
{
    int rc = -1;
    int64_t delta = 0;
    pthread_once(&fork_once, register_fork);
    pthread_mutex_lock(&mu);
    struct pool_ent *e = find_or_add(pool, dev);
    if (e != NULL && sync_locked(e, &delta) == 0) {
        apply(e->dev, delta - (int64_t)size);
        rc = 0;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

int pool_dev(CUmemoryPool pool, int current)
{
    pthread_mutex_lock(&mu);
    struct pool_ent *e = find(pool);
    int dev = e != NULL ? e->dev : current;
    pthread_mutex_unlock(&mu);
    return dev;
}

void pool_register(CUmemoryPool pool, int dev)
{
    pthread_once(&fork_once, register_fork);
    pthread_mutex_lock(&mu);
    find_or_add(pool, dev);
    pthread_mutex_unlock(&mu);
}

void pool_unregister(CUmemoryPool pool)
{
    pthread_mutex_lock(&mu);
    struct pool_ent *e = find(pool);
    if (e != NULL) {
        hook_release(e->dev, e->charged);
        *e = pools[--pool_count];
    }
    pthread_mutex_unlock(&mu);
}
