/* rng.c — xoshiro256** (Blackman and Vigna), seeded through splitmix64.
 *
 * Only integer arithmetic and IEEE-exact operations feed the uniform numbers, so a seed
 * gives the same stream on every machine. The normals use log and sqrt from libm.
 */
#include <math.h>

#include "nnlrt_int.h"

static uint64_t nnlrt_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static uint64_t nnlrt_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64 never yields four zero words in a row, so the state is never all zero. */
void nnlrt_rng_seed(NnlrtRng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = nnlrt_splitmix64(&x);
}

uint64_t nnlrt_rng_next(NnlrtRng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = nnlrt_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = nnlrt_rotl(s[3], 45);
    return result;
}

double nnlrt_rand_uniform(NnlrtRng *rng)
{
    return (double)(nnlrt_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* Marsaglia's polar method. NnlrtRng has no room for the second value of each pair, so it
 * is dropped: one call, one normal, the same sequence whatever the caller interleaves. */
double nnlrt_rand_normal(NnlrtRng *rng)
{
    for (;;) {
        double u = 2.0 * nnlrt_rand_uniform(rng) - 1.0;
        double v = 2.0 * nnlrt_rand_uniform(rng) - 1.0;
        double s = u * u + v * v;
        if (s > 0.0 && s < 1.0)
            return u * sqrt(-2.0 * log(s) / s);
    }
}

/* Rejection: values below 2^64 mod n would make the small residues more likely. n = 0
 * has no valid result; it gives 0. */
uint64_t nnlrt_rand_below(NnlrtRng *rng, uint64_t n)
{
    if (n == 0)
        return 0;
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t r = nnlrt_rng_next(rng);
        if (r >= threshold)
            return r % n;
    }
}

uint64_t nnlrt_step_key(uint64_t seed, int64_t step)
{
    /* splitmix64 of the two: a different stream for every step */
    uint64_t z = seed ^ 0x44524F504F555421u; /* "DROPOUT!" */
    z += (uint64_t)step * 0x9E3779B97F4A7C15u;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}
