/*
 * timing.h - pacing of kernel launches on devices with a core cap. The
 * decision is the pure pacer (pacer.h) over the region's shared pacing word;
 * this part supplies its inputs on real hardware, where a launch's GPU time
 * is not known when it is submitted. Every launch is charged the running
 * estimate; a random sample of them (sample.h) is bracketed by two CUDA
 * events on its stream, and once a sample's end event has completed (polled
 * with cuEventQuery at later timed launches, never waited for unless the
 * ring of outstanding samples is full) its elapsed time corrects the charge
 * of the launches it stands for and moves the estimate.
 */
#ifndef TESSERA_TIMING_H
#define TESSERA_TIMING_H

#include "tessera_cuda_abi.h"

#include <stdint.h>

/* A launch chosen to be timed, between pace_begin and pace_end. */
struct pace_ticket {
    int dev;
    int entry; /* ring entry timing it, -1 if it could not be timed */
    uint64_t charged;
    uint64_t now; /* CLOCK_MONOTONIC when it was admitted */
    CUstream stream;
};

/* Every launch's pacing, on its stream. Returns 1 when the caller just
 * launches: the device has no cap, the stream is capturing, or the launch
 * was admitted untimed (after waiting, if the cap required). Returns 0 when
 * this launch was chosen to be timed: then pace_begin, launch, pace_end.
 * An untimed launch that the driver refuses keeps its charge (see README). */
int pace_launch(CUstream stream);
/* A timed launch: waits until it may start; fills t for pace_end. */
void pace_begin(CUstream stream, struct pace_ticket *t);
/* Records the timed launch's outcome (refunds the charge if rc is an error). */
void pace_end(struct pace_ticket *t, CUresult rc);

#endif
