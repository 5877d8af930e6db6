/* conv_impl.h — the convolution routines of conv.c for one element type.
 *
 * Not a header of its own: conv.c includes it once per element type, after its helpers
 * (ConvGeom, ConvJob, the scratch buffers, the direct kernel), with T the element type,
 * SFX the names' suffix (f32, f64) and GEMM its cblas_?gemm; it undefines them at the end.
 * FN(name) is name_SFX.
 */
#define CONV_PASTE_(a, b) a##_##b
#define CONV_PASTE(a, b) CONV_PASTE_(a, b)
#define FN(name) CONV_PASTE(name, SFX)

/* cols[k][s * P + p] for samples x[0..n) */
static void FN(im2col)(const T *x, T *cols, int64_t n, const ConvGeom *g)
{
    int64_t row = n * g->P;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t i = 0; i < g->KH; i++)
            for (int64_t j = 0; j < g->KW; j++) {
                T *out = cols + ((c * g->KH + i) * g->KW + j) * row;
                int64_t lo, hi;
                conv_valid(g, j, &lo, &hi);
                for (int64_t s = 0; s < n; s++) {
                    const T *img = x + (s * g->C + c) * g->H * g->W;
                    for (int64_t oh = 0; oh < g->OH; oh++) {
                        int64_t h = oh * g->stride - g->pad + i;
                        T *o = out + s * g->P + oh * g->OW;
                        if (h < 0 || h >= g->H || lo >= hi) {
                            memset(o, 0, sizeof(T) * (size_t)g->OW);
                            continue;
                        }
                        const T *src = img + h * g->W + lo * g->stride - g->pad + j;
                        memset(o, 0, sizeof(T) * (size_t)lo);
                        if (g->stride == 1)
                            memcpy(o + lo, src, sizeof(T) * (size_t)(hi - lo));
                        else
                            for (int64_t ow = lo; ow < hi; ow++)
                                o[ow] = src[(ow - lo) * g->stride];
                        memset(o + hi, 0, sizeof(T) * (size_t)(g->OW - hi));
                    }
                }
            }
}

/* dx[s] += the columns of cols, the inverse gather */
static void FN(col2im)(const T *cols, T *dx, int64_t n, const ConvGeom *g)
{
    int64_t row = n * g->P;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t i = 0; i < g->KH; i++)
            for (int64_t j = 0; j < g->KW; j++) {
                const T *in = cols + ((c * g->KH + i) * g->KW + j) * row;
                int64_t lo, hi;
                conv_valid(g, j, &lo, &hi);
                for (int64_t s = 0; s < n; s++) {
                    T *img = dx + (s * g->C + c) * g->H * g->W;
                    for (int64_t oh = 0; oh < g->OH; oh++) {
                        int64_t h = oh * g->stride - g->pad + i;
                        if (h < 0 || h >= g->H)
                            continue;
                        const T *v = in + s * g->P + oh * g->OW;
                        T *d = img + h * g->W + lo * g->stride - g->pad + j;
                        for (int64_t ow = lo; ow < hi; ow++)
                            d[(ow - lo) * g->stride] += v[ow];
                    }
                }
            }
}

/* one chunk of samples: im2col, the product, each block into place plus its bias */
static void FN(conv_forward_task)(void *ctx, int64_t t)
{
    const ConvJob *j = ctx;
    const ConvGeom *g = &j->g;
    int64_t s0, n;
    T *cols = conv_task_begin(j, t, sizeof(T), &s0, &n);
    int64_t np = n * g->P;
    T *out = cols + g->K * np;
    const T *bias = j->bias;
    T *y = j->out;
    FN(im2col)((const T *)j->a + s0 * g->C * g->H * g->W, cols, n, g);
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->F, (int)np, (int)g->K, 1,
         j->b, (int)g->K, cols, (int)np, 0, out, (int)np);
    for (int64_t s = 0; s < n; s++)
        for (int64_t f = 0; f < g->F; f++) {
            T *to = y + ((s0 + s) * g->F + f) * g->P;
            const T *from = out + f * np + s * g->P;
            T b = bias ? bias[f] : 0;
            for (int64_t p = 0; p < g->P; p++) {
                T v = from[p] + b;
                to[p] = !j->relu || v > 0 || v != v ? v : 0;
            }
        }
}

void FN(nnlrt_conv2d)(const T *x, const T *w, const T *bias, T *y, int64_t act,
                      int64_t B, int64_t C, int64_t H, int64_t W, int64_t F,
                      int64_t KH, int64_t KW, int64_t stride, int64_t pad)
{
    ConvJob j = {.a = x, .b = w, .bias = bias, .out = y, .B = B, .relu = act == 1,
                 .g = conv_geom(C, H, W, F, KH, KW, stride, pad)};
    if (sizeof(T) == sizeof(float) && conv_direct(&j.g)) {
        j.wt = conv_direct_weights((const float *)w, &j.g);
        j.chunk = B < CONV_TASK ? B : CONV_TASK;
        nnlrt_parallel(conv_tasks(&j), conv_direct_task, &j);
        return;
    }
    ConvThreads threads = conv_threads_one();
    j.chunk = conv_chunk(&j.g, B, sizeof(T));
    nnlrt_parallel(conv_tasks(&j), FN(conv_forward_task), &j);
    conv_threads_restore(threads);
}

/* dy of samples s0..s0+n as dy'[F][n * P] */
static void FN(gather_dy)(const T *dy, T *to, int64_t s0, int64_t n, const ConvGeom *g)
{
    int64_t np = n * g->P;
    for (int64_t s = 0; s < n; s++)
        for (int64_t f = 0; f < g->F; f++)
            memcpy(to + f * np + s * g->P, dy + ((s0 + s) * g->F + f) * g->P,
                   sizeof(T) * (size_t)g->P);
}

/* one chunk: dy gathered, the product with w, the columns added back into dx */
static void FN(conv_dx_task)(void *ctx, int64_t t)
{
    const ConvJob *j = ctx;
    const ConvGeom *g = &j->g;
    int64_t s0, n;
    T *cols = conv_task_begin(j, t, sizeof(T), &s0, &n);
    int64_t np = n * g->P, img = g->C * g->H * g->W;
    T *d = cols + g->K * np;
    T *dx = (T *)j->out + s0 * img;
    memset(dx, 0, sizeof(T) * (size_t)(n * img));
    FN(gather_dy)(j->a, d, s0, n, g);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g->K, (int)np, (int)g->F, 1, j->b,
         (int)g->K, d, (int)np, 0, cols, (int)np);
    FN(col2im)(cols, dx, n, g);
}

void FN(nnlrt_conv2d_dx)(const T *dy, const T *w, T *dx, int64_t B, int64_t C,
                         int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,
                         int64_t stride, int64_t pad)
{
    ConvJob j = {.a = dy, .b = w, .out = dx, .B = B,
                 .g = conv_geom(C, H, W, F, KH, KW, stride, pad)};
    ConvThreads threads = conv_threads_one();
    j.chunk = conv_chunk(&j.g, B, sizeof(T));
    nnlrt_parallel(conv_tasks(&j), FN(conv_dx_task), &j);
    conv_threads_restore(threads);
}

/* one chunk's part of the weight gradient, into its own slot of F·K */
static void FN(conv_dw_task)(void *ctx, int64_t t)
{
    const ConvJob *j = ctx;
    const ConvGeom *g = &j->g;
    int64_t s0, n;
    T *cols = conv_task_begin(j, t, sizeof(T), &s0, &n);
    int64_t np = n * g->P;
    T *d = cols + g->K * np;
    FN(im2col)((const T *)j->a + s0 * g->C * g->H * g->W, cols, n, g);
    FN(gather_dy)(j->b, d, s0, n, g);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->F, (int)g->K, (int)np, 1, d,
         (int)np, cols, (int)np, 0, (T *)j->out + t * g->F * g->K, (int)g->K);
}

void FN(nnlrt_conv2d_dw)(const T *x, const T *dy, T *dw, int64_t B, int64_t C,
                         int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,
                         int64_t stride, int64_t pad)
{
    ConvJob j = {.a = x, .b = dy, .B = B,
                 .g = conv_geom(C, H, W, F, KH, KW, stride, pad)};
    ConvThreads threads = conv_threads_one();
    j.chunk = conv_chunk(&j.g, B, sizeof(T));
    int64_t ntasks = conv_tasks(&j), fk = F * j.g.K;
    T *part = conv_grow(&conv_partial, sizeof(T) * (size_t)(ntasks * fk));
    j.out = part;
    nnlrt_parallel(ntasks, FN(conv_dw_task), &j);
    memcpy(dw, part, sizeof(T) * (size_t)fk); /* the sum in task order */
    for (int64_t t = 1; t < ntasks; t++)
        for (int64_t i = 0; i < fk; i++)
            dw[i] += part[t * fk + i];
    conv_threads_restore(threads);
}

#undef FN
#undef CONV_PASTE
#undef CONV_PASTE_
#undef T
#undef SFX
#undef GEMM
