/*
 * spin.h - the lock of the allocation table. Its critical sections are a
 * probe of a hash table and never call out, so a spinning lock costs two
 * atomic instructions where an uncontended pthread mutex costs about fifty,
 * on every allocation and free. A waiter that spins long yields, in case the
 * holder was preempted.
 */
#ifndef TESSERA_SPIN_H
#define TESSERA_SPIN_H

#include <sched.h>
#include <stdatomic.h>

/* Spins before each yield: far longer than a table operation takes. */
#define SPIN_BEFORE_YIELD 200

/* Out of line, so that the uncontended path keeps no loop and no call. */
__attribute__((noinline, cold)) static void spin_wait(atomic_flag *f)
{
    unsigned spins = 0;
    while (atomic_flag_test_and_set_explicit(f, memory_order_acquire))
        if (++spins % SPIN_BEFORE_YIELD == 0)
            sched_yield();
}

static inline void spin_lock(atomic_flag *f)
{
    if (__builtin_expect(atomic_flag_test_and_set_explicit(f, memory_order_acquire), 0))
        spin_wait(f);
}

/* 1 when the lock was free and is now held. For callers whose contended
 * path is a tail call to a slow variant: then nothing the fast path holds
 * in registers has to be saved around a call. */
static inline int spin_trylock(atomic_flag *f)
{
    return !__builtin_expect(atomic_flag_test_and_set_explicit(f, memory_order_acquire), 0);
}

static inline void spin_unlock(atomic_flag *f)
{
    atomic_flag_clear_explicit(f, memory_order_release);
}

#endif
