/* conv.c — the routines compiled models call for convolutions and pooling.
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
 * Pooling windows have no padding and drop a partial window at the edge (PyTorch's
 * defaults). Max pooling takes the first largest value of a window (after a NaN, the last
 * NaN) and sends the gradient there, as PyTorch's CPU kernel does.
 *
 * Every routine exists for float (_f32) and double (_f64, gradient checks); the geometry
 * comes as int64_t arguments: the generated code passes constants.
 */
#include <cblas.h>
#include <emmintrin.h> /* SSE2: every x86-64 has it */
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

/* What a convolution's or pooling's tasks share: the operands, the geometry, the chunk. */
typedef struct {
    const void *a, *b, *bias; /* x or dy, w or dy, the bias */
    void *out;                /* y, dx, or the weight gradient's partial sums */
    const float *wt;          /* the direct kernel's filters */
    bool relu;                /* the forward pass's activation */
    ConvGeom g;
    int64_t B, chunk;
    int64_t planes, H, W, per_task; /* pooling */
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

static void pool_parallel(ConvJob *j, NnlrtTaskFn fn)
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

#define CONV_ROUTINES(T, UT, SFX, GEMM)                                                           \
    /* cols[k][s * P + p] for samples x[0..n) */                                              \
    static void im2col_##SFX(const T *x, T *cols, int64_t n, const ConvGeom *g)               \
    {                                                                                         \
        int64_t row = n * g->P;                                                               \
        for (int64_t c = 0; c < g->C; c++)                                                    \
            for (int64_t i = 0; i < g->KH; i++)                                               \
                for (int64_t j = 0; j < g->KW; j++) {                                         \
                    T *out = cols + ((c * g->KH + i) * g->KW + j) * row;                      \
                    int64_t lo, hi;                                                           \
                    conv_valid(g, j, &lo, &hi);                                               \
                    for (int64_t s = 0; s < n; s++) {                                         \
                        const T *img = x + (s * g->C + c) * g->H * g->W;                      \
                        for (int64_t oh = 0; oh < g->OH; oh++) {                              \
                            int64_t h = oh * g->stride - g->pad + i;                          \
                            T *o = out + s * g->P + oh * g->OW;                               \
                            if (h < 0 || h >= g->H || lo >= hi) {                             \
                                memset(o, 0, sizeof(T) * (size_t)g->OW);                      \
                                continue;                                                     \
                            }                                                                 \
                            const T *src = img + h * g->W + lo * g->stride - g->pad + j;      \
                            memset(o, 0, sizeof(T) * (size_t)lo);                             \
                            if (g->stride == 1)                                               \
                                memcpy(o + lo, src, sizeof(T) * (size_t)(hi - lo));           \
                            else                                                              \
                                for (int64_t ow = lo; ow < hi; ow++)                          \
                                    o[ow] = src[(ow - lo) * g->stride];                       \
                            memset(o + hi, 0, sizeof(T) * (size_t)(g->OW - hi));              \
                        }                                                                     \
                    }                                                                         \
                }                                                                             \
    }                                                                                         \
                                                                                              \
    /* dx[s] += the columns of cols, the inverse gather */                                    \
    static void col2im_##SFX(const T *cols, T *dx, int64_t n, const ConvGeom *g)              \
    {                                                                                         \
        int64_t row = n * g->P;                                                               \
        for (int64_t c = 0; c < g->C; c++)                                                    \
            for (int64_t i = 0; i < g->KH; i++)                                               \
                for (int64_t j = 0; j < g->KW; j++) {                                         \
                    const T *in = cols + ((c * g->KH + i) * g->KW + j) * row;                 \
                    int64_t lo, hi;                                                           \
                    conv_valid(g, j, &lo, &hi);                                               \
                    for (int64_t s = 0; s < n; s++) {                                         \
                        T *img = dx + (s * g->C + c) * g->H * g->W;                           \
                        for (int64_t oh = 0; oh < g->OH; oh++) {                              \
                            int64_t h = oh * g->stride - g->pad + i;                          \
                            if (h < 0 || h >= g->H)                                           \
                                continue;                                                     \
                            const T *v = in + s * g->P + oh * g->OW;                          \
                            T *d = img + h * g->W + lo * g->stride - g->pad + j;              \
                            for (int64_t ow = lo; ow < hi; ow++)                              \
                                d[(ow - lo) * g->stride] += v[ow];                            \
                        }                                                                     \
                    }                                                                         \
                }                                                                             \
    }                                                                                         \
                                                                                              \
    /* one chunk of samples: im2col, the product, each block into place plus its bias */    \
    static void conv_forward_task_##SFX(void *ctx, int64_t t)                                 \
    {                                                                                         \
        const ConvJob *j = ctx;                                                               \
        const ConvGeom *g = &j->g;                                                            \
        int64_t s0, n;                                                                        \
        T *cols = conv_task_begin(j, t, sizeof(T), &s0, &n);                                  \
        int64_t np = n * g->P;                                                                \
        T *out = cols + g->K * np;                                                            \
        const T *bias = j->bias;                                                              \
        T *y = j->out;                                                                        \
        im2col_##SFX((const T *)j->a + s0 * g->C * g->H * g->W, cols, n, g);                  \
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->F, (int)np, (int)g->K, 1,     \
             j->b, (int)g->K, cols, (int)np, 0, out, (int)np);                                \
        for (int64_t s = 0; s < n; s++)                                                       \
            for (int64_t f = 0; f < g->F; f++) {                                              \
                T *to = y + ((s0 + s) * g->F + f) * g->P;                                     \
                const T *from = out + f * np + s * g->P;                                      \
                T b = bias ? bias[f] : 0;                                                     \
                for (int64_t p = 0; p < g->P; p++) {                                          \
                    T v = from[p] + b;                                                        \
                    to[p] = !j->relu || v > 0 || v != v ? v : 0;                              \
                }                                                                             \
            }                                                                                 \
    }                                                                                         \
                                                                                              \
    void nnlrt_conv2d_##SFX(const T *x, const T *w, const T *bias, T *y, int64_t act,         \
                            int64_t B, int64_t C, int64_t H, int64_t W, int64_t F,            \
                            int64_t KH, int64_t KW, int64_t stride, int64_t pad)              \
    {                                                                                         \
        ConvJob j = {.a = x, .b = w, .bias = bias, .out = y, .B = B, .relu = act == 1,        \
                     .g = conv_geom(C, H, W, F, KH, KW, stride, pad)};                        \
        if (sizeof(T) == sizeof(float) && conv_direct(&j.g)) {                                \
            j.wt = conv_direct_weights((const float *)w, &j.g);                               \
            j.chunk = B < CONV_TASK ? B : CONV_TASK;                                          \
            nnlrt_parallel(conv_tasks(&j), conv_direct_task, &j);                             \
            return;                                                                           \
        }                                                                                     \
        ConvThreads threads = conv_threads_one();                                             \
        j.chunk = conv_chunk(&j.g, B, sizeof(T));                                             \
        nnlrt_parallel(conv_tasks(&j), conv_forward_task_##SFX, &j);                          \
        conv_threads_restore(threads);                                                        \
    }                                                                                         \
                                                                                              \
    /* dy of samples s0..s0+n as dy'[F][n * P] */                                             \
    static void gather_dy_##SFX(const T *dy, T *to, int64_t s0, int64_t n, const ConvGeom *g) \
    {                                                                                         \
        int64_t np = n * g->P;                                                                \
        for (int64_t s = 0; s < n; s++)                                                       \
            for (int64_t f = 0; f < g->F; f++)                                                \
                memcpy(to + f * np + s * g->P, dy + ((s0 + s) * g->F + f) * g->P,             \
                       sizeof(T) * (size_t)g->P);                                             \
    }                                                                                         \
                                                                                              \
    /* one chunk: dy gathered, the product with w, the columns added back into dx */         \
    static void conv_dx_task_##SFX(void *ctx, int64_t t)                                      \
    {                                                                                         \
        const ConvJob *j = ctx;                                                               \
        const ConvGeom *g = &j->g;                                                            \
        int64_t s0, n;                                                                        \
        T *cols = conv_task_begin(j, t, sizeof(T), &s0, &n);                                  \
        int64_t np = n * g->P, img = g->C * g->H * g->W;                                      \
        T *d = cols + g->K * np;                                                              \
        T *dx = (T *)j->out + s0 * img;                                                       \
        memset(dx, 0, sizeof(T) * (size_t)(n * img));                                         \
        gather_dy_##SFX(j->a, d, s0, n, g);                                                   \
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g->K, (int)np, (int)g->F, 1, j->b, \
             (int)g->K, d, (int)np, 0, cols, (int)np);                                        \
        col2im_##SFX(cols, dx, n, g);                                                         \
    }                                                                                         \
                                                                                              \
    void nnlrt_conv2d_dx_##SFX(const T *dy, const T *w, T *dx, int64_t B, int64_t C,          \
                               int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,       \
                               int64_t stride, int64_t pad)                                   \
    {                                                                                         \
        ConvJob j = {.a = dy, .b = w, .out = dx, .B = B,                                      \
                     .g = conv_geom(C, H, W, F, KH, KW, stride, pad)};                        \
        ConvThreads threads = conv_threads_one();                                             \
        j.chunk = conv_chunk(&j.g, B, sizeof(T));                                             \
        nnlrt_parallel(conv_tasks(&j), conv_dx_task_##SFX, &j);                               \
        conv_threads_restore(threads);                                                        \
    }                                                                                         \
                                                                                              \
    /* one chunk's part of the weight gradient, into its own slot of F·K */                  \
    static void conv_dw_task_##SFX(void *ctx, int64_t t)                                      \
    {                                                                                         \
        const ConvJob *j = ctx;                                                               \
        const ConvGeom *g = &j->g;                                                            \
        int64_t s0, n;                                                                        \
        T *cols = conv_task_begin(j, t, sizeof(T), &s0, &n);                                  \
        int64_t np = n * g->P;                                                                \
        T *d = cols + g->K * np;                                                              \
        im2col_##SFX((const T *)j->a + s0 * g->C * g->H * g->W, cols, n, g);                  \
        gather_dy_##SFX(j->b, d, s0, n, g);                                                   \
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->F, (int)g->K, (int)np, 1, d,    \
             (int)np, cols, (int)np, 0, (T *)j->out + t * g->F * g->K, (int)g->K);            \
    }                                                                                         \
                                                                                              \
    void nnlrt_conv2d_dw_##SFX(const T *x, const T *dy, T *dw, int64_t B, int64_t C,          \
                               int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,       \
                               int64_t stride, int64_t pad)                                   \
    {                                                                                         \
        ConvJob j = {.a = x, .b = dy, .B = B,                                                 \
                     .g = conv_geom(C, H, W, F, KH, KW, stride, pad)};                        \
        ConvThreads threads = conv_threads_one();                                             \
        j.chunk = conv_chunk(&j.g, B, sizeof(T));                                             \
        int64_t ntasks = conv_tasks(&j), fk = F * j.g.K;                                      \
        T *part = conv_grow(&conv_partial, sizeof(T) * (size_t)(ntasks * fk));                \
        j.out = part;                                                                         \
        nnlrt_parallel(ntasks, conv_dw_task_##SFX, &j);                                       \
        memcpy(dw, part, sizeof(T) * (size_t)fk); /* the sum in task order */                 \
        for (int64_t t = 1; t < ntasks; t++)                                                  \
            for (int64_t i = 0; i < fk; i++)                                                  \
                dw[i] += part[t * fk + i];                                                    \
        conv_threads_restore(threads);                                                        \
    }                                                                                         \
                                                                                              \
    /* The index in a window of its largest value as PyTorch's CPU kernel picks it: the   \
     * first largest, unless a NaN comes, then the last NaN. */                               \
    static inline int64_t pool_argmax_##SFX(const T *img, int64_t W, int64_t h0, int64_t w0,  \
                                            int64_t size)                                     \
    {                                                                                         \
        int64_t best = h0 * W + w0;                                                           \
        if (size == 2) { /* the common window, unrolled */                                    \
            T m = img[best], v;                                                               \
            int64_t at = best + 1;                                                            \
            if ((v = img[at]) > m || v != v)                                                  \
                m = v, best = at;                                                             \
            if ((v = img[at = (h0 + 1) * W + w0]) > m || v != v)                              \
                m = v, best = at;                                                             \
            if ((v = img[at = (h0 + 1) * W + w0 + 1]) > m || v != v)                          \
                best = at;                                                                    \
            return best;                                                                      \
        }                                                                                     \
        T m = img[best];                                                                      \
        for (int64_t i = 0; i < size; i++)                                                    \
            for (int64_t j = 0; j < size; j++) {                                              \
                int64_t at = (h0 + i) * W + w0 + j;                                           \
                T v = img[at];                                                                \
                if (v > m || v != v) {                                                        \
                    m = v;                                                                    \
                    best = at;                                                                \
                }                                                                             \
            }                                                                                 \
        return best;                                                                          \
    }                                                                                         \
                                                                                              \
    /* 2x2 windows every 2: rows of windows, no index arithmetic per element */             \
    static void maxpool2_##SFX(const T *x, T *y, T *dx, const T *dy, int64_t planes,          \
                               int64_t H, int64_t W)                                          \
    {                                                                                         \
        int64_t OH = H / 2, OW = W / 2;                                                       \
        for (int64_t q = 0; q < planes; q++)                                                  \
            for (int64_t oh = 0; oh < OH; oh++) {                                             \
                const T *r0 = x + (q * H + 2 * oh) * W, *r1 = r0 + W;                         \
                int64_t o = (q * OH + oh) * OW;                                               \
                T *d0 = dx ? dx + (q * H + 2 * oh) * W : NULL, *d1 = d0 ? d0 + W : NULL;      \
                int64_t ow = 0;                                                               \
                if (sizeof(T) == sizeof(float))                                               \
                    ow = maxpool2_sse((const float *)r0, (const float *)r1, OW,               \
                                      (float *)(y ? y + o : NULL), (float *)d0, (float *)d1,  \
                                      (const float *)(dy ? dy + o : NULL));                   \
                for (; ow < OW; ow++) {                                                       \
                    /* without branches (the winner is random: a branch would mispredict)  \
                     * and without an array indexed by it (a store-forwarding stall) */        \
                    T m = r0[2 * ow], v;                                                      \
                    int k = 0;                                                                \
                    POOL_TAKE(T, UT, m, k, r0[2 * ow + 1], 1);                                \
                    POOL_TAKE(T, UT, m, k, r1[2 * ow], 2);                                    \
                    POOL_TAKE(T, UT, m, k, r1[2 * ow + 1], 3);                                \
                    if (!dx) {                                                                \
                        y[o + ow] = m;                                                        \
                        continue;                                                             \
                    }                                                                         \
                    T g = dy[o + ow];                                                         \
                    d0[2 * ow] = k == 0 ? g : 0;                                              \
                    d0[2 * ow + 1] = k == 1 ? g : 0;                                          \
                    d1[2 * ow] = k == 2 ? g : 0;                                              \
                    d1[2 * ow + 1] = k == 3 ? g : 0;                                          \
                }                                                                             \
            }                                                                                 \
    }                                                                                         \
                                                                                              \
    /* planes [t·per_task, ...) of a 2x2 pooling, forward or backward */                     \
    static void maxpool2_task_##SFX(void *ctx, int64_t t)                                     \
    {                                                                                         \
        const ConvJob *j = ctx;                                                               \
        int64_t q0 = t * j->per_task, n = j->planes - q0 < j->per_task ? j->planes - q0        \
                                                                      : j->per_task;          \
        int64_t in = j->H * j->W, out = (j->H / 2) * (j->W / 2);                              \
        maxpool2_##SFX((const T *)j->a + q0 * in, (T *)j->out + q0 * out, NULL, NULL, n,      \
                       j->H, j->W);                                                           \
    }                                                                                         \
                                                                                              \
    static void maxpool2_dx_task_##SFX(void *ctx, int64_t t)                                  \
    {                                                                                         \
        const ConvJob *j = ctx;                                                               \
        int64_t q0 = t * j->per_task, n = j->planes - q0 < j->per_task ? j->planes - q0        \
                                                                      : j->per_task;          \
        int64_t in = j->H * j->W, out = (j->H / 2) * (j->W / 2);                              \
        maxpool2_##SFX((const T *)j->a + q0 * in, NULL, (T *)j->out + q0 * in,                \
                       (const T *)j->b + q0 * out, n, j->H, j->W);                            \
    }                                                                                         \
                                                                                              \
    void nnlrt_maxpool_##SFX(const T *x, T *y, int64_t planes, int64_t H, int64_t W,          \
                             int64_t size, int64_t stride)                                    \
    {                                                                                         \
        if (size == 2 && stride == 2) {                                                       \
            ConvJob j = {.a = x, .out = y, .planes = planes, .H = H, .W = W};                 \
            pool_parallel(&j, maxpool2_task_##SFX);                                           \
            return;                                                                           \
        }                                                                                     \
        int64_t OH = (H - size) / stride + 1, OW = (W - size) / stride + 1;                   \
        for (int64_t q = 0; q < planes; q++) {                                                \
            const T *img = x + q * H * W;                                                     \
            T *out = y + q * OH * OW;                                                         \
            for (int64_t oh = 0; oh < OH; oh++)                                               \
                for (int64_t ow = 0; ow < OW; ow++)                                           \
                    out[oh * OW + ow] =                                                       \
                        img[pool_argmax_##SFX(img, W, oh * stride, ow * stride, size)];       \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    void nnlrt_maxpool_dx_##SFX(const T *x, const T *dy, T *dx, int64_t planes, int64_t H,    \
                                int64_t W, int64_t size, int64_t stride)                      \
    {                                                                                         \
        if (size == 2 && stride == 2 && H % 2 == 0 && W % 2 == 0) { /* every x in a window */ \
            ConvJob j = {.a = x, .b = dy, .out = dx, .planes = planes, .H = H, .W = W};       \
            pool_parallel(&j, maxpool2_dx_task_##SFX);                                        \
            return;                                                                           \
        }                                                                                     \
        int64_t OH = (H - size) / stride + 1, OW = (W - size) / stride + 1;                   \
        memset(dx, 0, sizeof(T) * (size_t)(planes * H * W));                                  \
        for (int64_t q = 0; q < planes; q++) {                                                \
            const T *img = x + q * H * W;                                                     \
            const T *g = dy + q * OH * OW;                                                    \
            T *d = dx + q * H * W;                                                            \
            for (int64_t oh = 0; oh < OH; oh++)                                               \
                for (int64_t ow = 0; ow < OW; ow++)                                           \
                    d[pool_argmax_##SFX(img, W, oh * stride, ow * stride, size)] +=           \
                        g[oh * OW + ow];                                                      \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    void nnlrt_avgpool_##SFX(const T *x, T *y, int64_t planes, int64_t H, int64_t W,          \
                             int64_t size, int64_t stride)                                    \
    {                                                                                         \
        int64_t OH = (H - size) / stride + 1, OW = (W - size) / stride + 1;                   \
        T scale = (T)1 / (T)(size * size);                                                    \
        for (int64_t q = 0; q < planes; q++)                                                  \
            for (int64_t oh = 0; oh < OH; oh++)                                               \
                for (int64_t ow = 0; ow < OW; ow++) {                                         \
                    const T *img = x + q * H * W + oh * stride * W + ow * stride;             \
                    T s = 0;                                                                  \
                    for (int64_t i = 0; i < size; i++)                                        \
                        for (int64_t j = 0; j < size; j++)                                    \
                            s += img[i * W + j];                                              \
                    y[(q * OH + oh) * OW + ow] = s * scale;                                   \
                }                                                                             \
    }                                                                                         \
                                                                                              \
    void nnlrt_avgpool_dx_##SFX(const T *dy, T *dx, int64_t planes, int64_t H, int64_t W,     \
                                int64_t size, int64_t stride)                                 \
    {                                                                                         \
        int64_t OH = (H - size) / stride + 1, OW = (W - size) / stride + 1;                   \
        T scale = (T)1 / (T)(size * size);                                                    \
        memset(dx, 0, sizeof(T) * (size_t)(planes * H * W));                                  \
        for (int64_t q = 0; q < planes; q++)                                                  \
            for (int64_t oh = 0; oh < OH; oh++)                                               \
                for (int64_t ow = 0; ow < OW; ow++) {                                         \
                    T g = dy[(q * OH + oh) * OW + ow] * scale;                                \
                    T *img = dx + q * H * W + oh * stride * W + ow * stride;                  \
                    for (int64_t i = 0; i < size; i++)                                        \
                        for (int64_t j = 0; j < size; j++)                                    \
                            img[i * W + j] += g;                                              \
                }                                                                             \
    }

CONV_ROUTINES(float, uint32_t, f32, cblas_sgemm)
CONV_ROUTINES(double, uint64_t, f64, cblas_dgemm)
