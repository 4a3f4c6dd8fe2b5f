/*
 * sample.h - which launches on a capped device are timed, and how a timed
 * launch stands for the untimed ones. Pure functions (no clock, no globals)
 * so that the simulation (tests/t_pacer_sim.c) runs exactly this code.
 *
 * Timing a launch costs two cuEventRecord calls and a later query, which is
 * more than the rest of a paced launch together; so each launch is timed
 * with probability p, decided by a coin flip before it is admitted, and
 * every launch is charged the running estimate (pacer_estimate). When a timed
 * launch completes, its correction (actual - charged) is divided by p: the
 * Horvitz-Thompson form of a difference estimator. Each launch had the same
 * chance p of standing for the others, so the expected sum of corrections
 * equals the sum of every launch's error, whatever the mix or order of
 * kernels (no aliasing with periodic workloads, unlike "every Nth").
 *
 *   p = clamp(estimate / SAMPLE_SPAN_NS, 1 / SAMPLE_MIN_RATE_INV, 1)
 *
 * so launches of 500 us or more are all timed (as before sampling), and short
 * ones are timed about once per 500 us of GPU time, but at least one in 128.
 * The standard error of the charged GPU time over a window of W ns in which
 * the container got share s is about cv * sqrt((1 - p) * SPAN / (W * s)),
 * cv being the spread of (actual - estimate) relative to the mean (see
 * README.md, "Core limit").
 */
#ifndef TESSERA_SAMPLE_H
#define TESSERA_SAMPLE_H

#include <stdint.h>

/* Launches at least this long (by the estimate) are all timed. */
#define SAMPLE_SPAN_NS 500000ULL
/* At least one launch in this many is timed, however short. Set to 1, every
 * launch is timed and sampling is off: it stays off until the simulation
 * holds its bounds with sampling on (with 128 it does not yet: see the
 * issue 14 notes in README.md, "Core limit"). */
#ifndef SAMPLE_MIN_RATE_INV
#define SAMPLE_MIN_RATE_INV 1
#endif
/* p is kept as a threshold on a 32-bit random number: p * 2^32. */
#define SAMPLE_ALWAYS (1ULL << 32)

/* Sampling threshold (p * 2^32) for launches of estimated length est_ns. */
uint64_t sample_threshold(uint64_t est_ns);

/* A random state from any seed (never 0, which marks "not seeded"). */
uint64_t sample_seed(uint64_t seed);

/* The coin flip: advances the xorshift state, 1 when this launch is timed.
 * Inline: it is on every capped launch's path. (A bare 64-bit LCG, 5
 * instructions cheaper, was tried and rejected: its draws 32 launches apart
 * are correlated, which biased the charge of a period-32 workload by +16%
 * in tests/t_pacer_sim.c.) */
static inline int sample_pick(uint64_t *state, uint64_t threshold)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return (x >> 32) < threshold;
}

/* Signed change to the TAT when a launch timed with threshold thr, charged
 * charged_ns, turned out to take actual_ns: the launch's own correction
 * divided by p, bounded by what one launch may be charged (pacer_cost_ns). */
int64_t sample_correction(uint64_t charged_ns, uint64_t actual_ns, uint64_t thr, unsigned pct);

/* Most wall time a process is owed by negative corrections that could not
 * be applied yet (see sample_apply). */
#define SAMPLE_MAX_CREDIT_NS 100000000ULL

/* How much of a correction of delta wall ns to add to the TAT, which stands
 * at tat at time now. The pacer does not bank idle time (a TAT below now
 * counts as now), so a large negative correction, which sampling produces
 * when the untimed launches were overcharged, would be partly lost and
 * the container would get less than its cap. So the TAT is lowered at most
 * to now, and the rest is kept in *credit (at most SAMPLE_MAX_CREDIT_NS),
 * from which later positive corrections are paid first. */
int64_t sample_apply(uint64_t tat, uint64_t now, uint64_t *credit, int64_t delta);

/* GPU time the timed launch and those it stands for add to the observed use:
 * charged + (actual - charged) / p, bounded like sample_correction; negative
 * when the untimed launches were overcharged. */
int64_t sample_busy_ns(uint64_t charged_ns, uint64_t actual_ns, uint64_t thr);

#endif
