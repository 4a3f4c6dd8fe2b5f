/*
 * timing.h - pacing of kernel launches on devices with a core cap. The
 * decision is the pure pacer (pacer.h) over the region's shared pacing word;
 * this part supplies its inputs on real hardware, where a launch's GPU time
 * is not known when it is submitted: each paced launch is bracketed by two
 * CUDA events on its stream, and once the end event has completed (polled
 * with cuEventQuery at later launches, never waited for unless the ring of
 * outstanding pairs is full) the elapsed time corrects the charge.
 */
#ifndef TESSERA_TIMING_H
#define TESSERA_TIMING_H

#include "tessera_cuda_abi.h"

#include <stdint.h>

struct pace_ticket {
    int active; /* 0: this launch is not paced */
    int dev;
    int entry; /* ring entry timing it, -1 if untimed */
    uint64_t charged;
    CUstream stream;
};

/* Waits until the launch may start; fills t for pace_end. */
void pace_begin(CUstream stream, struct pace_ticket *t);
/* Records the launch's outcome (refunds the charge if rc is an error). */
void pace_end(struct pace_ticket *t, CUresult rc);

#endif
