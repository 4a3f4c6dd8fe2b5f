/* sample.c - see sample.h. Pure: results depend on the arguments only. */
#include "sample.h"

#include "pacer.h"

uint64_t sample_threshold(uint64_t est_ns)
{
    /* est / SPAN * 2^32: below SPAN (< 2^20), est << 32 fits in 64 bits. */
    if (est_ns >= SAMPLE_SPAN_NS)
        return SAMPLE_ALWAYS;
    uint64_t thr = (est_ns << 32) / SAMPLE_SPAN_NS;
    uint64_t floor = SAMPLE_ALWAYS / SAMPLE_MIN_RATE_INV;
    return thr > floor ? thr : floor;
}

uint64_t sample_seed(uint64_t seed)
{
    /* splitmix64's finaliser: nearby seeds (thread addresses, clock values)
     * give unrelated streams; xorshift needs a nonzero state. */
    seed += 0x9e3779b97f4a7c15ULL;
    seed = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9ULL;
    seed = (seed ^ (seed >> 27)) * 0x94d049bb133111ebULL;
    seed ^= seed >> 31;
    return seed != 0 ? seed : 1;
}

/* delta / p = delta * 2^32 / thr, bounded by +-limit. */
static int64_t scale(int64_t delta, uint64_t thr, int64_t limit)
{
    if (thr == 0 || thr > SAMPLE_ALWAYS)
        thr = SAMPLE_ALWAYS;
    double v = (double)delta * (double)SAMPLE_ALWAYS / (double)thr;
    if (v > (double)limit)
        return limit;
    if (v < -(double)limit)
        return -limit;
    return (int64_t)v;
}

int64_t sample_correction(uint64_t charged_ns, uint64_t actual_ns, uint64_t thr, unsigned pct)
{
    int64_t limit = (int64_t)pacer_wall_ns(pacer_cost_ns(UINT64_MAX), pct);
    return scale(pacer_correction(charged_ns, actual_ns, pct), thr, limit);
}

int64_t sample_busy_ns(uint64_t charged_ns, uint64_t actual_ns, uint64_t thr)
{
    int64_t charged = (int64_t)pacer_cost_ns(charged_ns);
    int64_t delta = (int64_t)pacer_cost_ns(actual_ns) - charged;
    return charged + scale(delta, thr, (int64_t)pacer_cost_ns(UINT64_MAX));
}

int64_t sample_apply(uint64_t tat, uint64_t now, uint64_t *credit, int64_t delta)
{
    int64_t net = delta - (int64_t)*credit;
    *credit = 0;
    if (net >= 0)
        return net;
    uint64_t want = (uint64_t)-net, room = tat > now ? tat - now : 0;
    uint64_t take = want < room ? want : room;
    *credit = want - take < SAMPLE_MAX_CREDIT_NS ? want - take : SAMPLE_MAX_CREDIT_NS;
    return -(int64_t)take;
}
