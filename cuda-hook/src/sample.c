/* sample.c - see sample.h. Pure: results depend on the arguments only. */
#include "sample.h"

#include "pacer.h"

#include <string.h>

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

uint64_t sample_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

double sample_ln(double x)
{
    /* x = m * 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh z with
     * z = (m - 1) / (m + 1), |z| < 0.1716: the series to z^17 (Horner's
     * form, no division but the one for z) leaves out under 1e-15 of the
     * result, where the older series over m in [1, 2) took 13 terms, each
     * with a division. */
    uint64_t bits;
    memcpy(&bits, &x, sizeof(bits));
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    double m;
    memcpy(&m, &bits, sizeof(m));
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double z = (m - 1) / (m + 1), z2 = z * z;
    double s = 1.0 / 15 + z2 * (1.0 / 17);
    s = 1.0 / 13 + z2 * s;
    s = 1.0 / 11 + z2 * s;
    s = 1.0 / 9 + z2 * s;
    s = 1.0 / 7 + z2 * s;
    s = 1.0 / 5 + z2 * s;
    s = 1.0 / 3 + z2 * s;
    s = 1 + z2 * s;
    return 2 * z * s + e * 0.69314718055994530942;
}

uint64_t sample_skip(uint64_t *state, uint64_t thr)
{
    if (thr >= SAMPLE_ALWAYS)
        return 0;
    if (thr == 0)
        thr = 1;
    /* floor(ln U / ln(1 - p)), U uniform in (0, 1]: 53 bits of the draw. */
    double u = (double)((sample_next(state) >> 11) + 1) / 9007199254740992.0;
    double k = sample_ln(u) / sample_ln(1 - (double)thr / (double)SAMPLE_ALWAYS); /* >= 0 */
    return k < 1e15 ? (uint64_t)k : 1000000000000000ULL;
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
