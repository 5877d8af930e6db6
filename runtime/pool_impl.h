/* pool_impl.h — the pooling routines of pool.c for one element type.
 *
 * Not a header of its own: pool.c includes it once per element type, after its helpers
 * (PoolJob, pool_parallel, POOL_TAKE, the SSE 2x2 kernel), with T the element type, UT the
 * unsigned integer of its size and SFX the names' suffix (f32, f64); it undefines them at
 * the end. FN(name) is name_SFX.
 */
#define POOL_PASTE_(a, b) a##_##b
#define POOL_PASTE(a, b) POOL_PASTE_(a, b)
#define FN(name) POOL_PASTE(name, SFX)

/* The index in a window of its largest value as PyTorch's CPU kernel picks it: the
 * first largest, unless a NaN comes, then the last NaN. */
static inline int64_t FN(pool_argmax)(const T *img, int64_t W, int64_t h0, int64_t w0,
                                      int64_t size)
{
    int64_t best = h0 * W + w0;
    if (size == 2) { /* the common window, unrolled */
        T m = img[best], v;
        int64_t at = best + 1;
        if ((v = img[at]) > m || v != v)
            m = v, best = at;
        if ((v = img[at = (h0 + 1) * W + w0]) > m || v != v)
            m = v, best = at;
        if ((v = img[at = (h0 + 1) * W + w0 + 1]) > m || v != v)
            best = at;
        return best;
    }
    T m = img[best];
    for (int64_t i = 0; i < size; i++)
        for (int64_t j = 0; j < size; j++) {
            int64_t at = (h0 + i) * W + w0 + j;
            T v = img[at];
            if (v > m || v != v) {
                m = v;
                best = at;
            }
        }
    return best;
}

/* 2x2 windows every 2: rows of windows, no index arithmetic per element */
static void FN(maxpool2)(const T *x, T *y, T *dx, const T *dy, int64_t planes,
                         int64_t H, int64_t W)
{
    int64_t OH = H / 2, OW = W / 2;
    for (int64_t q = 0; q < planes; q++)
        for (int64_t oh = 0; oh < OH; oh++) {
            const T *r0 = x + (q * H + 2 * oh) * W, *r1 = r0 + W;
            int64_t o = (q * OH + oh) * OW;
            T *d0 = dx ? dx + (q * H + 2 * oh) * W : NULL, *d1 = d0 ? d0 + W : NULL;
            int64_t ow = 0;
            if (sizeof(T) == sizeof(float))
                ow = maxpool2_sse((const float *)r0, (const float *)r1, OW,
                                  (float *)(y ? y + o : NULL), (float *)d0, (float *)d1,
                                  (const float *)(dy ? dy + o : NULL));
            for (; ow < OW; ow++) {
                /* without branches (the winner is random: a branch would mispredict)
                 * and without an array indexed by it (a store-forwarding stall) */
                T m = r0[2 * ow], v;
                int k = 0;
                POOL_TAKE(T, UT, m, k, r0[2 * ow + 1], 1);
                POOL_TAKE(T, UT, m, k, r1[2 * ow], 2);
                POOL_TAKE(T, UT, m, k, r1[2 * ow + 1], 3);
                if (!dx) {
                    y[o + ow] = m;
                    continue;
                }
                T g = dy[o + ow];
                d0[2 * ow] = k == 0 ? g : 0;
                d0[2 * ow + 1] = k == 1 ? g : 0;
                d1[2 * ow] = k == 2 ? g : 0;
                d1[2 * ow + 1] = k == 3 ? g : 0;
            }
        }
}

/* planes [t·per_task, ...) of a 2x2 pooling, forward or backward */
static void FN(maxpool2_task)(void *ctx, int64_t t)
{
    const PoolJob *j = ctx;
    int64_t q0 = t * j->per_task, n = j->planes - q0 < j->per_task ? j->planes - q0
                                                                  : j->per_task;
    int64_t in = j->H * j->W, out = (j->H / 2) * (j->W / 2);
    FN(maxpool2)((const T *)j->a + q0 * in, (T *)j->out + q0 * out, NULL, NULL, n,
                 j->H, j->W);
}

static void FN(maxpool2_dx_task)(void *ctx, int64_t t)
{
    const PoolJob *j = ctx;
    int64_t q0 = t * j->per_task, n = j->planes - q0 < j->per_task ? j->planes - q0
                                                                  : j->per_task;
    int64_t in = j->H * j->W, out = (j->H / 2) * (j->W / 2);
    FN(maxpool2)((const T *)j->a + q0 * in, NULL, (T *)j->out + q0 * in,
                 (const T *)j->b + q0 * out, n, j->H, j->W);
}

void FN(nnlrt_maxpool)(const T *x, T *y, int64_t planes, int64_t H, int64_t W,
                       int64_t size, int64_t stride)
{
    if (size == 2 && stride == 2) {
        PoolJob j = {.a = x, .out = y, .planes = planes, .H = H, .W = W};
        pool_parallel(&j, FN(maxpool2_task));
        return;
    }
    int64_t OH = (H - size) / stride + 1, OW = (W - size) / stride + 1;
    for (int64_t q = 0; q < planes; q++) {
        const T *img = x + q * H * W;
        T *out = y + q * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                out[oh * OW + ow] =
                    img[FN(pool_argmax)(img, W, oh * stride, ow * stride, size)];
    }
}

void FN(nnlrt_maxpool_dx)(const T *x, const T *dy, T *dx, int64_t planes, int64_t H,
                          int64_t W, int64_t size, int64_t stride)
{
    if (size == 2 && stride == 2 && H % 2 == 0 && W % 2 == 0) { /* every x in a window */
        PoolJob j = {.a = x, .b = dy, .out = dx, .planes = planes, .H = H, .W = W};
        pool_parallel(&j, FN(maxpool2_dx_task));
        return;
    }
    int64_t OH = (H - size) / stride + 1, OW = (W - size) / stride + 1;
    memset(dx, 0, sizeof(T) * (size_t)(planes * H * W));
    for (int64_t q = 0; q < planes; q++) {
        const T *img = x + q * H * W;
        const T *g = dy + q * OH * OW;
        T *d = dx + q * H * W;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                d[FN(pool_argmax)(img, W, oh * stride, ow * stride, size)] +=
                    g[oh * OW + ow];
    }
}

void FN(nnlrt_avgpool)(const T *x, T *y, int64_t planes, int64_t H, int64_t W,
                       int64_t size, int64_t stride)
{
    int64_t OH = (H - size) / stride + 1, OW = (W - size) / stride + 1;
    T scale = (T)1 / (T)(size * size);
    for (int64_t q = 0; q < planes; q++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                const T *img = x + q * H * W + oh * stride * W + ow * stride;
                T s = 0;
                for (int64_t i = 0; i < size; i++)
                    for (int64_t j = 0; j < size; j++)
                        s += img[i * W + j];
                y[(q * OH + oh) * OW + ow] = s * scale;
            }
}

void FN(nnlrt_avgpool_dx)(const T *dy, T *dx, int64_t planes, int64_t H, int64_t W,
                          int64_t size, int64_t stride)
{
    int64_t OH = (H - size) / stride + 1, OW = (W - size) / stride + 1;
    T scale = (T)1 / (T)(size * size);
    memset(dx, 0, sizeof(T) * (size_t)(planes * H * W));
    for (int64_t q = 0; q < planes; q++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                T g = dy[(q * OH + oh) * OW + ow] * scale;
                T *img = dx + q * H * W + oh * stride * W + ow * stride;
                for (int64_t i = 0; i < size; i++)
                    for (int64_t j = 0; j < size; j++)
                        img[i * W + j] += g;
            }
}

#undef FN
#undef POOL_PASTE
#undef POOL_PASTE_
#undef T
#undef UT
#undef SFX
