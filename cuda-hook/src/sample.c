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

uint64_t sample_estimate(uint64_t est_ns, uint64_t observed_ns, uint64_t thr)
{
    /* Every launch timed: none was charged the estimate, which serves the
     * admission only; the pacer's fast average. */
    if (thr >= SAMPLE_ALWAYS || thr == 0 || est_ns == 0)
        return pacer_estimate(est_ns, observed_ns);
    if (thr < SAMPLE_ALWAYS / SAMPLE_GAIN_INV) /* below p's floor: not ours */
        thr = SAMPLE_ALWAYS / SAMPLE_GAIN_INV;
    /* est + (x - est) * (2^32 - thr) / (thr * GAIN_INV). Both lengths are
     * at most pacer_cost_ns's 2 s (< 2^31), so the product stays below
     * 2^63; thr is at least 2^32 / GAIN_INV, so the weight is below 1. */
    int64_t diff = (int64_t)pacer_cost_ns(observed_ns) - (int64_t)pacer_cost_ns(est_ns);
    int64_t step = diff * (int64_t)(SAMPLE_ALWAYS - thr) / (int64_t)(thr * SAMPLE_GAIN_INV);
    int64_t est = (int64_t)pacer_cost_ns(est_ns) + step;
    return est > 0 ? (uint64_t)est : 1;
}
