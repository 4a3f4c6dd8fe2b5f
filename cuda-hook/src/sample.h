/*
 * sample.h - which launches on a capped device are timed, and how the timed
 * ones set the charge of the others. Pure functions (no clock, no globals)
 * so that the simulation (tests/t_pacer_sim.c) runs exactly this code.
 *
 * Timing a launch costs two cuEventRecord calls and a later query, more than
 * the rest of a paced launch together; so each launch is timed with
 * probability p, by a coin flip before it is admitted:
 *
 *   p = clamp(estimate / SAMPLE_SPAN_NS, 1 / SAMPLE_MIN_RATE_INV, 1)
 *
 * Every launch is charged the running estimate up front. A timed launch's
 * own charge is corrected to its measured time (exact, as before sampling);
 * an untimed launch keeps the estimate. The sample does not correct the
 * others by (actual - charged) / p: that importance-weighted correction is
 * unbiased but arrives in lumps up to 128 times a launch, and the pacer,
 * which banks no idle time, turns lumps into lost entitlement (a 90% cap
 * delivered 87.5%). Instead the sample moves the estimate, which every later
 * launch is charged, by the weight
 *
 *   w = SAMPLE_GAIN * (1 - p) / p     (p < 1; at p = 1, the pacer's 1/4)
 *
 * so that, per launch, the estimate drifts by E[p * w * (x - est)] =
 * SAMPLE_GAIN * (1 - p) * (mean - est). In a steady workload that drift is
 * zero on average exactly when sum((1 - p) * (est - mean)) = 0 over the
 * launches, which is the condition for the untimed charges plus the timed
 * launches' measured times to equal the GPU time used. (A plain average of
 * the samples is biased low: while it is low p is low, so it stays low for
 * more launches; charging it undercharged a decode-like pattern by half.)
 * One sample's error reaches the charges spread over about 1/SAMPLE_GAIN
 * launches instead of at once, with the same total as the weighted
 * correction, so the standard error of the GPU time charged over a window
 * of W ns in which the container used a share s is about
 *
 *   cv * sqrt((1 - p) * SPAN / (W * s))      (p = estimate / SPAN >= 1/128)
 *
 * cv being the relative spread of the launches' lengths: 0 for kernels of
 * one length, 3.7 for one 2 ms kernel in 32 (README.md, "Core limit").
 */
#ifndef TESSERA_SAMPLE_H
#define TESSERA_SAMPLE_H

#include <stdint.h>

/* Launches at least this long (by the estimate) are all timed. */
#define SAMPLE_SPAN_NS 500000ULL
/* At least one launch in this many is timed, however short. 1 times every
 * launch (sampling off). */
#ifndef SAMPLE_MIN_RATE_INV
#define SAMPLE_MIN_RATE_INV 128
#endif
/* p is kept as a threshold on a 32-bit random number: p * 2^32. */
#define SAMPLE_ALWAYS (1ULL << 32)
/* The estimate's gain per launch when p < 1. At most p's floor, so that a
 * sample's weight (1 - p) / p * gain stays below 1: a larger gain would
 * clamp the weight and bring the bias back. */
#define SAMPLE_GAIN_INV SAMPLE_MIN_RATE_INV

/* Sampling threshold (p * 2^32) for launches of estimated length est_ns. */
uint64_t sample_threshold(uint64_t est_ns);

/* A random state from any seed (never 0, which marks "not seeded"). */
uint64_t sample_seed(uint64_t seed);

/* The coin flips in advance: how many launches go untimed before the next
 * timed one, were each launch timed with probability thr / 2^32 (geometric,
 * from one xorshift draw). A launch then only counts down, which costs 3
 * instructions where a flip per launch cost 15; the launches are timed as
 * by independent flips while p holds, and a change of p takes effect at
 * the next timed launch. */
uint64_t sample_skip(uint64_t *state, uint64_t thr);

/* Natural logarithm of a positive normal x (relative error about 1e-15),
 * without libm (the library links libc only); sample_skip's two logarithms
 * were most of a timed launch's own instructions. */
double sample_ln(double x);

/* One xorshift64 step (a bare LCG was tried and rejected: its draws 32
 * apart are correlated, which biased a period-32 workload by +16%). */
uint64_t sample_next(uint64_t *state);

/* The running estimate after a launch timed with threshold thr took
 * observed_ns: weight (1 - p) / p * gain when p < 1 (see above), the
 * pacer's exponential average when every launch is timed. */
uint64_t sample_estimate(uint64_t est_ns, uint64_t observed_ns, uint64_t thr);

#endif
