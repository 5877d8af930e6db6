/* pool.c — the routines compiled models call for max and average pooling.
 *
 * Images are channels first, as for convolutions (conv.c); a routine sees `planes` = B·C
 * images of H×W. Pooling windows have no padding and drop a partial window at the edge
 * (PyTorch's defaults). Max pooling takes the first largest value of a window (after a NaN,
 * the last NaN) and sends the gradient there, as PyTorch's CPU kernel does.
 *
 * Every routine exists for float (_f32) and double (_f64, gradient checks), written once in
 * pool_impl.h and instantiated at the end of this file.
 */
#include <emmintrin.h> /* SSE2: every x86-64 has it */
#include <string.h>

#include "nnlrt_int.h"

/* What a pooling's tasks share: the operands, the planes, the split. */
typedef struct {
    const void *a, *b;  /* x or dy, dy */
    void *out;          /* y or dx */
    int64_t planes, H, W, per_task;
} PoolJob;

/* 2x2 max pooling of float rows, four windows at a time: the forward pass (y) or, with dx
 * and dy, the backward one (dx written whole: H and W even). Returns the first output
 * column it left to the scalar loop. The rule is PyTorch's, as POOL_TAKE's. */
static int64_t maxpool2_sse(const float *r0, const float *r1, int64_t OW, float *y, float *d0,
                            float *d1, const float *dy)
{
    int64_t ow = 0;
    for (; ow + 4 <= OW; ow += 4) {
        __m128 a = _mm_loadu_ps(r0 + 2 * ow), b = _mm_loadu_ps(r0 + 2 * ow + 4);
        __m128 c = _mm_loadu_ps(r1 + 2 * ow), d = _mm_loadu_ps(r1 + 2 * ow + 4);
        __m128 v[4] = {_mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)),
                       _mm_shuffle_ps(c, d, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm_shuffle_ps(c, d, _MM_SHUFFLE(3, 1, 3, 1))};
        __m128 m = v[0], k = _mm_setzero_ps();
        for (int e = 1; e < 4; e++) {
            __m128 take = _mm_or_ps(_mm_cmpgt_ps(v[e], m), _mm_cmpunord_ps(v[e], v[e]));
            m = _mm_or_ps(_mm_and_ps(take, v[e]), _mm_andnot_ps(take, m));
            k = _mm_or_ps(_mm_and_ps(take, _mm_set1_ps((float)e)), _mm_andnot_ps(take, k));
        }
        if (!d0) {
            _mm_storeu_ps(y + ow, m);
            continue;
        }
        __m128 g = _mm_loadu_ps(dy + ow), w[4];
        for (int e = 0; e < 4; e++)
            w[e] = _mm_and_ps(_mm_cmpeq_ps(k, _mm_set1_ps((float)e)), g);
        _mm_storeu_ps(d0 + 2 * ow, _mm_unpacklo_ps(w[0], w[1]));
        _mm_storeu_ps(d0 + 2 * ow + 4, _mm_unpackhi_ps(w[0], w[1]));
        _mm_storeu_ps(d1 + 2 * ow, _mm_unpacklo_ps(w[2], w[3]));
        _mm_storeu_ps(d1 + 2 * ow + 4, _mm_unpackhi_ps(w[2], w[3]));
    }
    return ow;
}

/* Pooling's planes in POOL_TASKS tasks (fewer when there are fewer planes): each plane's
 * result is its own, so any split gives the same. */
enum { POOL_TASKS = 8 };

static void pool_parallel(PoolJob *j, NnlrtTaskFn fn)
{
    int64_t ntasks = j->planes < POOL_TASKS ? j->planes : POOL_TASKS;
    j->per_task = (j->planes + ntasks - 1) / ntasks;
    nnlrt_parallel((j->planes + j->per_task - 1) / j->per_task, fn, j);
}

/* m, k = v, e when v > m or v is NaN (PyTorch's rule), by masks, not branches */
#define POOL_TAKE(T, UT, m, k, value, e)                                                      \
    do {                                                                                      \
        v = (value);                                                                          \
        UT take_ = (UT)0 - (UT)((v > m) | (v != v)), vb_, mb_;                                \
        memcpy(&vb_, &v, sizeof v);                                                           \
        memcpy(&mb_, &m, sizeof m);                                                           \
        mb_ = (vb_ & take_) | (mb_ & ~take_);                                                 \
        memcpy(&m, &mb_, sizeof m);                                                           \
        k += (int)(take_ & (UT)(e - k));                                                      \
    } while (0)

/* ---- the routines, for float and for double ---- */

#define T float
#define UT uint32_t
#define SFX f32
#include "pool_impl.h"

#define T double
#define UT uint64_t
#define SFX f64
#include "pool_impl.h"
