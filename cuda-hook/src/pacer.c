/* pacer.c - see pacer.h. Pure: results depend on the arguments only. */
#include "pacer.h"

/* A single launch is never charged more than this, so one absurd estimate or
 * measurement cannot stall a container for minutes. */
#define PACER_MAX_COST_NS 2000000000ULL

uint64_t pacer_cost_ns(uint64_t gpu_ns)
{
    return gpu_ns > PACER_MAX_COST_NS ? PACER_MAX_COST_NS : gpu_ns;
}

uint64_t pacer_wall_ns(uint64_t gpu_ns, unsigned pct)
{
    if (pct == 0 || pct > 100)
        pct = 100;
    return pacer_cost_ns(gpu_ns) * 100 / pct;
}

struct pacer_decision pacer_admit_wall(uint64_t tat, uint64_t now, uint64_t wall_ns,
                                       uint64_t tolerance_ns)
{
    struct pacer_decision d = {.tat = tat, .wait_ns = 0};
    if (tat > now + tolerance_ns) {
        d.wait_ns = tat - tolerance_ns - now;
        return d;
    }
    /* An idle container does not bank entitlement beyond the tolerance:
     * the TAT never lags the present when a new launch is charged. */
    uint64_t start = tat > now ? tat : now;
    d.tat = start + wall_ns;
    return d;
}

struct pacer_decision pacer_admit(uint64_t tat, uint64_t now, uint64_t cost_ns, unsigned pct,
                                  uint64_t tolerance_ns)
{
    return pacer_admit_wall(tat, now, pacer_wall_ns(cost_ns, pct), tolerance_ns);
}

int64_t pacer_correction(uint64_t charged_ns, uint64_t actual_ns, unsigned pct)
{
    uint64_t charged = pacer_wall_ns(charged_ns, pct);
    uint64_t actual = pacer_wall_ns(actual_ns, pct);
    return actual >= charged ? (int64_t)(actual - charged) : -(int64_t)(charged - actual);
}

uint64_t pacer_estimate(uint64_t estimate_ns, uint64_t observed_ns)
{
    /* Exponential average with weight 1/4: follows a change of kernel mix
     * within a few launches while one outlier moves it only a little. */
    if (estimate_ns == 0)
        return observed_ns;
    if (observed_ns >= estimate_ns)
        return estimate_ns + (observed_ns - estimate_ns) / 4;
    return estimate_ns - (estimate_ns - observed_ns) / 4;
}
