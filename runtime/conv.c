/* conv.c — the routines compiled models call for convolutions (pooling: pool.c).
 *
 * Images are channels first, one after another: x[B][C][H][W], as PyTorch has them. A
 * convolution is im2col + one GEMM per chunk of samples: the patches of every sample of
 * the chunk side by side, cols[K][n * P] (K = C·KH·KW, P = OH·OW), then
 * y'[F][n * P] = W[F][K] · cols, then each sample's [F][P] block moved into place. The
 * backward pass reuses the layout: dW += dy'[F][nP] · cols^T and dcols = W^T · dy', then
 * col2im adds the columns back into dx. Chunks keep cols under NNLRT_CONV_SCRATCH bytes.
 *
 * In float with stride 1, on a CPU with AVX2 and FMA, the forward pass is computed
 * directly instead: each sample's padded image, then 8 outputs of a row for 8 filters at a
 * time in registers, every tap a load and 8 fused multiply-adds. bench/conv_rate.c measures
 * both ways (bench/RESULTS.md): the direct forward pass took 0.45 to 0.9 of the time of
 * im2col + sgemm on every shape measured (LeNet's two layers: 0.47, 0.49). Its transpose
 * for the input's gradient (dy convolved with the flipped filters) measured slower than
 * col2im + sgemm (LeNet's second layer: 1.25x the time; it multiplies a wide zero border),
 * so the gradients stay im2col + sgemm.
 *
 * Every routine exists for float (_f32) and double (_f64, gradient checks), written once in
 * conv_impl.h and instantiated at the end of this file; the geometry comes as int64_t
 * arguments: the generated code passes constants.
 */
#include <cblas.h>
#include <immintrin.h> /* AVX2 and FMA, for the direct convolution where the CPU has them */
#include <string.h>

#include "nnlrt_int.h"

enum { NNLRT_CONV_SCRATCH = 8 << 20 };

/* The products of a convolution are short and wide (6 to 16 rows, tens of thousands of
 * columns): OpenBLAS's threads cost more in waking and waiting than they bring (measured:
 * a LeNet epoch took 13 s with 2 threads, 8 s with one). They run on one thread, and the
 * thread count is put back for the model's other products. */
typedef struct {
    int saved;
} ConvThreads;

static ConvThreads conv_threads_one(void)
{
    ConvThreads t = {openblas_get_num_threads()};
    if (t.saved > 1)
        openblas_set_num_threads(1);
    return t;
}

static void conv_threads_restore(ConvThreads t)
{
    if (t.saved > 1)
        openblas_set_num_threads(t.saved);
}

/* Buffers kept per thread and grown as needed: a training step does not call malloc.
 * (Reachable until exit, like any buffer of a run.) */
typedef struct {
    void *p;
    size_t size;
} ConvBuf;

static void *conv_grow(ConvBuf *b, size_t bytes)
{
    if (bytes > b->size) {
        nnlrt_free(b->p);
        b->p = nnlrt_alloc_aligned(bytes);
        b->size = bytes;
    }
    return b->p;
}

static _Thread_local ConvBuf conv_scratch;  /* im2col's columns, a padded image */
static _Thread_local ConvBuf conv_partial;  /* the weight gradient's sum per task */
static _Thread_local ConvBuf conv_filters;  /* the direct kernel's filter blocks */

static void *conv_scratch_get(size_t bytes)
{
    return conv_grow(&conv_scratch, bytes);
}

typedef struct {
    int64_t C, H, W, F, KH, KW, stride, pad, OH, OW, K, P;
} ConvGeom;

static ConvGeom conv_geom(int64_t C, int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,
                          int64_t stride, int64_t pad)
{
    ConvGeom g = {C, H, W, F, KH, KW, stride, pad, 0, 0, 0, 0};
    g.OH = (H + 2 * pad - KH) / stride + 1;
    g.OW = (W + 2 * pad - KW) / stride + 1;
    g.K = C * KH * KW;
    g.P = g.OH * g.OW;
    return g;
}

/* The output columns ow whose input column ow·stride − pad + j lies in the image:
 * [*lo, *hi). */
static void conv_valid(const ConvGeom *g, int64_t j, int64_t *lo, int64_t *hi)
{
    int64_t first = g->pad - j; /* ow·stride >= pad − j */
    *lo = first <= 0 ? 0 : (first + g->stride - 1) / g->stride;
    int64_t last = g->W - 1 + g->pad - j; /* ow·stride <= W − 1 + pad − j */
    *hi = last < 0 ? 0 : last / g->stride + 1;
    if (*hi > g->OW)
        *hi = g->OW;
    if (*lo > *hi)
        *lo = *hi;
}

/* Samples per chunk: at most CONV_TASK, and cols and the output block together within
 * the scratch budget. A chunk is a task of nnlrt_parallel; the chunks depend on the
 * geometry only, so that the weight gradient's sum over them is the same for any number of
 * threads. */
enum { CONV_TASK = 16 };

static int64_t conv_chunk(const ConvGeom *g, int64_t B, size_t elem)
{
    size_t per = (size_t)(g->K + g->F) * (size_t)g->P * elem;
    int64_t n = (int64_t)(NNLRT_CONV_SCRATCH / (per ? per : 1));
    n = n < CONV_TASK ? n : CONV_TASK;
    return n < 1 ? 1 : n > B ? B : n;
}

/* What a convolution's tasks share: the operands, the geometry, the chunk. */
typedef struct {
    const void *a, *b, *bias; /* x or dy, w or dy, the bias */
    void *out;                /* y, dx, or the weight gradient's partial sums */
    const float *wt;          /* the direct kernel's filters */
    bool relu;                /* the forward pass's activation */
    ConvGeom g;
    int64_t B, chunk;
} ConvJob;

static int64_t conv_tasks(const ConvJob *j)
{
    return (j->B + j->chunk - 1) / j->chunk;
}

/* Samples [*s0, *s0 + *n) of task t. */
static void conv_task_samples(const ConvJob *j, int64_t t, int64_t *s0, int64_t *n)
{
    *s0 = t * j->chunk;
    *n = j->B - *s0 < j->chunk ? j->B - *s0 : j->chunk;
}

/* Task t of an im2col routine: its samples, and this thread's scratch for them: room for
 * the columns [K][n·P] and an [F][n·P] block after them, of elements of `elem` bytes. */
static void *conv_task_begin(const ConvJob *j, int64_t t, size_t elem, int64_t *s0, int64_t *n)
{
    conv_task_samples(j, t, s0, n);
    return conv_scratch_get((size_t)(j->g.K + j->g.F) * (size_t)(*n * j->g.P) * elem);
}

/* ---- direct convolution (float, stride 1, AVX2 + FMA) ---- */

static int conv_direct_mode = -1; /* -1: where measured faster; 0: never; 1: where possible */

void nnlrt_conv_set_direct(int mode)
{
    conv_direct_mode = mode < 0 ? -1 : mode > 0;
}

static bool conv_cpu_has_avx2(void)
{
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return has;
}

/* Whether the forward pass of a float convolution of this geometry is computed directly:
 * stride 1 on a CPU with AVX2 and FMA (mode -1 and 1 alike: it measured faster on every
 * shape tried). */
static bool conv_direct(const ConvGeom *g)
{
    return conv_direct_mode != 0 && g->stride == 1 && conv_cpu_has_avx2();
}

enum { CD_LANES = 8, CD_FILTERS = 8 };

/* One block of up to 8 filters, for one sample: y[f0 + fb][OH][OW] from the padded image
 * xp[C][HP][WP] and wt[C·KH·KW][8] (tap-major, the block's 8 filters side by side), each
 * output starting from its filter's bias bias8[fb]. */
__attribute__((target("avx2,fma"))) static inline void
conv_direct_block(const float *xp, int64_t HP, int64_t WP, const ConvGeom *g, const float *wt,
                  const float *bias8, bool relu, int nf, float *y, int64_t OH, int64_t OW)
{
    for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow0 = 0; ow0 < OW; ow0 += CD_LANES) {
            __m256 acc[CD_FILTERS]; /* registers: the loops over fb are unrolled */
#pragma GCC unroll 8
            for (int fb = 0; fb < CD_FILTERS; fb++)
                acc[fb] = _mm256_broadcast_ss(bias8 + fb);
            const float *wp = wt;
            for (int64_t c = 0; c < g->C; c++)
                for (int64_t i = 0; i < g->KH; i++) {
                    const float *r = xp + (c * HP + oh + i) * WP + ow0;
                    for (int64_t j = 0; j < g->KW; j++, wp += CD_FILTERS) {
                        __m256 xv = _mm256_loadu_ps(r + j);
#pragma GCC unroll 8
                        for (int fb = 0; fb < CD_FILTERS; fb++)
                            acc[fb] = _mm256_fmadd_ps(_mm256_broadcast_ss(wp + fb), xv, acc[fb]);
                    }
                }
            int64_t n = OW - ow0 < CD_LANES ? OW - ow0 : CD_LANES;
            if (relu) /* keep v > 0 and NaN (compares unordered), else +0 */
#pragma GCC unroll 8
                for (int fb = 0; fb < CD_FILTERS; fb++)
                    acc[fb] = _mm256_and_ps(acc[fb], _mm256_cmp_ps(acc[fb], _mm256_setzero_ps(),
                                                                   _CMP_NLE_UQ));
#pragma GCC unroll 8
            for (int fb = 0; fb < nf; fb++) {
                float *yr = y + (fb * OH + oh) * OW + ow0;
                if (n == CD_LANES) {
                    _mm256_storeu_ps(yr, acc[fb]);
                } else {
                    float tmp[CD_LANES];
                    _mm256_storeu_ps(tmp, acc[fb]);
                    memcpy(yr, tmp, sizeof(float) * (size_t)n);
                }
            }
        }
}

/* y[B][F][OH][OW] = x[B][C][H][W] convolved with the filters (stride 1, padding g->pad),
 * given as conv_direct_weights makes them, plus bias[f] (bias NULL: 0). */
__attribute__((target("avx2,fma"))) static void
conv_direct_run(const float *x, const float *wt, const float *bias, bool relu, float *y,
                int64_t B, const ConvGeom *g)
{
    int64_t HP = g->H + 2 * g->pad, WP = g->W + 2 * g->pad + CD_LANES;
    int64_t OH = HP - g->KH + 1, OW = g->W + 2 * g->pad - g->KW + 1, K = g->K;
    size_t plane = (size_t)(g->C * HP * WP);
    float *xp = conv_scratch_get(sizeof(float) * plane);
    memset(xp, 0, sizeof(float) * plane); /* the border stays 0 */
    for (int64_t s = 0; s < B; s++) {
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t h = 0; h < g->H; h++)
                memcpy(xp + (c * HP + h + g->pad) * WP + g->pad,
                       x + ((s * g->C + c) * g->H + h) * g->W, sizeof(float) * (size_t)g->W);
        for (int64_t f0 = 0; f0 < g->F; f0 += CD_FILTERS) {
            int nf = g->F - f0 < CD_FILTERS ? (int)(g->F - f0) : CD_FILTERS;
            float bias8[CD_FILTERS] = {0};
            for (int fb = 0; bias && fb < nf; fb++)
                bias8[fb] = bias[f0 + fb];
            conv_direct_block(xp, HP, WP, g, wt + f0 * K, bias8, relu, nf,
                              y + (s * g->F + f0) * OH * OW, OH, OW);
        }
    }
}

/* The filters as conv_direct_run takes them: ceil(F / 8) blocks of [C·KH·KW][8], the
 * filters past F 0. Kept per thread and grown as needed, like the scratch area. */
static void conv_direct_task(void *ctx, int64_t t)
{
    const ConvJob *j = ctx;
    int64_t s0, n;
    conv_task_samples(j, t, &s0, &n);
    const ConvGeom *g = &j->g;
    conv_direct_run((const float *)j->a + s0 * g->C * g->H * g->W, j->wt, j->bias, j->relu,
                    (float *)j->out + s0 * g->F * g->P, n, g);
}

static const float *conv_direct_weights(const float *w, const ConvGeom *g)
{
    int64_t blocks = (g->F + CD_FILTERS - 1) / CD_FILTERS;
    float *wt = conv_grow(&conv_filters, sizeof(float) * (size_t)(blocks * g->K * CD_FILTERS));
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t t = 0; t < g->K; t++)
            for (int64_t fb = 0; fb < CD_FILTERS; fb++) {
                int64_t f = b * CD_FILTERS + fb;
                wt[(b * g->K + t) * CD_FILTERS + fb] = f < g->F ? w[f * g->K + t] : 0;
            }
    return wt;
}

/* ---- the routines, for float and for double ---- */

#define T float
#define SFX f32
#define GEMM cblas_sgemm
#include "conv_impl.h"

#define T double
#define SFX f64
#define GEMM cblas_dgemm
#include "conv_impl.h"
