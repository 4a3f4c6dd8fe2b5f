/*
 * pacer.h - the core-limit pacing algorithm, as pure functions of their
 * arguments (no clock, no globals), so that a deterministic simulation can
 * test exactly the code the hook runs.
 *
 * The algorithm is a GCRA-style token bucket over GPU time. Its whole shared
 * state is one 64-bit word per device, the theoretical arrival time (TAT), kept
 * in the container's region so that every process of the container draws on
 * the same budget and updates it with one compare-and-swap. A launch expected
 * to keep the GPU busy for c ns entitles the container to c * 100 / limit ns of
 * wall time; the TAT is the wall time up to which the container has used its
 * entitlement. A launch may start once TAT <= now + tolerance. Launch costs are
 * estimates; when the true GPU time is observed the difference is added back
 * (pacer_correction), so over time the charge equals the GPU time really used.
 */
#ifndef TESSERA_PACER_H
#define TESSERA_PACER_H

#include <stdint.h>

/* Burst the pacer allows ahead of the rate, in wall ns: large enough to keep a
 * launch queue fed, small against a one-second metrics interval. */
#define PACER_TOLERANCE_NS 4000000ULL
/* Cost assumed for a launch before anything has been observed. */
#define PACER_INITIAL_ESTIMATE_NS 100000ULL

struct pacer_decision {
    uint64_t tat;     /* new TAT, to store if wait_ns == 0 */
    uint64_t wait_ns; /* > 0: do not launch yet, ask again after this long */
};

/* Decides whether a launch of estimated cost_ns GPU time may start at now
 * under a limit of pct percent (1-100). */
struct pacer_decision pacer_admit(uint64_t tat, uint64_t now, uint64_t cost_ns, unsigned pct,
                                  uint64_t tolerance_ns);

/* The same decision for a launch whose wall time, pacer_wall_ns(cost_ns,
 * pct), is already known: the hook keeps it per device with the estimate,
 * so that a launch pays no division. */
struct pacer_decision pacer_admit_wall(uint64_t tat, uint64_t now, uint64_t wall_ns,
                                       uint64_t tolerance_ns);

/* Signed change to the TAT once a launch charged charged_ns turned out to
 * keep the GPU busy actual_ns (actual 0 refunds a launch that failed). */
int64_t pacer_correction(uint64_t charged_ns, uint64_t actual_ns, unsigned pct);

/* Running estimate of a launch's GPU time after observing one. */
uint64_t pacer_estimate(uint64_t estimate_ns, uint64_t observed_ns);

/* GPU time a launch of gpu_ns is charged: gpu_ns, capped so that one absurd
 * estimate or measurement cannot stall a container (or inflate its metrics). */
uint64_t pacer_cost_ns(uint64_t gpu_ns);

/* Wall time that gpu_ns of GPU time entitles at pct percent. */
uint64_t pacer_wall_ns(uint64_t gpu_ns, unsigned pct);

#endif
