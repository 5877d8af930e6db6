/* gradcheck.c — analytic gradients against central differences, for float64 models.
 *
 * One batch of the first min(n, 8) samples. For a parameter element p, with
 * h = 1e-6 * max(1, |p|), the numeric derivative of the mean loss is
 * (L(p + h) - L(p - h)) / ((p + h) - (p - h)), the denominator being the step actually
 * taken after rounding. Relative error |a - n| / max(|a|, |n|, 1e-8), skipping elements
 * where both are below 1e-9 (noise). Tensors of more than 4000 elements are sampled at
 * 4000 evenly spaced elements.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nnlrt_int.h"

enum { GC_MAX_SAMPLES = 8, GC_MAX_ELEMENTS = 4000 };

/* The step: about the cube root of float64's epsilon (2.2e-16), which balances the
 * difference's truncation error (h^2) against its rounding error (eps / h). */
#define GC_STEP 6e-6
/* The absolute tolerance, times max(1, |L|): well above the rounding noise, about
 * eps * |L| / h = 4e-11 * |L|. */
#define GC_ATOL 1e-8

typedef struct {
    const NnlrtModel *m;
    NnlrtBuffers b;
    int64_t B;
    double *sums;      /* 1 + n_metrics */
    double *analytic;  /* n_params: the gradient grad wrote */
} GradCheck;

enum { GC_KEY = 1 }; /* the random numbers of the step checked (dropout masks) */

/* The mean loss of the batch at the current parameters, as the training step computes it
 * (with its dropout masks: eval would leave them out). */
static double gc_loss(GradCheck *g)
{
    memset(g->sums, 0, (size_t)(1 + g->m->n_metrics) * sizeof(double));
    g->m->grad(g->b.bufs, g->B, g->sums, GC_KEY);
    return g->sums[0] / (double)g->B;
}

static double gc_numeric(GradCheck *g, int64_t at)
{
    double *params = g->b.bufs[NNLRT_BUF_PARAMS];
    double p = params[at];
    double h = GC_STEP * fmax(1.0, fabs(p));
    double up = p + h, down = p - h;
    params[at] = up;
    double l_up = gc_loss(g);
    params[at] = down;
    double l_down = gc_loss(g);
    params[at] = p;
    return (l_up - l_down) / (up - down);
}

/* One tensor's worst element: the largest |a - n| / (atol / rtol + max(|a|, |n|)), which is
 * at most rtol exactly when |a - n| <= atol + rtol * max(|a|, |n|). NaN when any is NaN. */
typedef struct {
    double err;      /* the measure above */
    int64_t element; /* index in the tensor */
    double a, n;     /* analytic and numeric gradient there */
} GcWorst;

static GcWorst gc_tensor(GradCheck *g, const NnlrtTensor *t, double floor)
{
    int64_t n = t->size < GC_MAX_ELEMENTS ? t->size : GC_MAX_ELEMENTS;
    GcWorst worst = {0, 0, 0, 0};
    for (int64_t k = 0; k < n; k++) {
        int64_t el = t->size <= GC_MAX_ELEMENTS ? k : k * t->size / n;
        int64_t at = t->offset + el;
        double a = g->analytic[at], num = gc_numeric(g, at);
        double err = fabs(a - num) / (floor + fmax(fabs(a), fabs(num)));
        if (!(err <= worst.err) && !isnan(worst.err)) /* also takes a NaN, which then stays */
            worst = (GcWorst){err, el, a, num};
    }
    return worst;
}

/* "h.W[3, 1]": the element's index in the tensor's shape. */
static void gc_element_name(const NnlrtTensor *t, int64_t el, char *buf, size_t size)
{
    int64_t idx[4] = {0, 0, 0, 0};
    int rank = t->rank > 0 && t->rank <= 4 ? t->rank : 1;
    int64_t rest = el;
    for (int d = rank - 1; d >= 0; d--) {
        int64_t dim = t->rank > 0 && t->rank <= 4 && t->dims[d] > 0 ? t->dims[d] : t->size;
        idx[d] = rest % dim;
        rest /= dim;
    }
    int w = snprintf(buf, size, "%s[", t->name);
    for (int d = 0; d < rank && w >= 0 && (size_t)w < size; d++)
        w += snprintf(buf + w, size - (size_t)w, "%s%lld", d ? ", " : "", (long long)idx[d]);
    if (w >= 0 && (size_t)w < size)
        snprintf(buf + w, size - (size_t)w, "]");
}

static bool gc_check_inputs(const NnlrtModel *m, const NnlrtDataset *ds)
{
    if (m->elem_size != 8) {
        nnlrt_error(NULL, 0, 0, "the gradient check needs a float64 model (elements of %d bytes)",
                    m->elem_size);
        return false;
    }
    return nnlrt_check_dataset(m, ds);
}

static void gc_setup(GradCheck *g, const NnlrtModel *m, const NnlrtDataset *ds, uint64_t seed)
{
    memset(g, 0, sizeof *g);
    g->m = m;
    g->B = ds->n < GC_MAX_SAMPLES ? ds->n : GC_MAX_SAMPLES;
    nnlrt_buffers_init(&g->b, m, g->B);
    int64_t idx[GC_MAX_SAMPLES];
    for (int64_t i = 0; i < g->B; i++)
        idx[i] = i;
    nnlrt_buffers_gather(&g->b, m, ds, idx, g->B);
    NnlrtRng rng;
    nnlrt_init_rng(&rng, seed);
    m->init(g->b.bufs, &rng);
    size_t n_sums = (size_t)(1 + m->n_metrics);
    g->sums = nnlrt_alloc(nnlrt_array_bytes(n_sums, sizeof(double)));
    memset(g->sums, 0, n_sums * sizeof(double));
    m->grad(g->b.bufs, g->B, g->sums, GC_KEY);
    size_t bytes = nnlrt_array_bytes((size_t)m->n_params, sizeof(double));
    g->analytic = nnlrt_alloc(bytes);
    memcpy(g->analytic, g->b.bufs[NNLRT_BUF_GRADS], bytes);
}

bool nnlrt_gradcheck(const NnlrtModel *m, const NnlrtDataset *ds, uint64_t seed, double rtol,
                     FILE *out)
{
    if (!gc_check_inputs(m, ds))
        return false;
    GradCheck g;
    gc_setup(&g, m, ds, seed);
    /* the noise of the differences grows with the loss's magnitude */
    double atol = GC_ATOL * fmax(1.0, fabs(gc_loss(&g)));
    double floor = atol / rtol;
    bool pass = true, written = true;
    GcWorst worst = {0, 0, 0, 0};
    int worst_tensor = -1;
    for (int i = 0; i < m->n_tensors; i++) {
        if (m->tensors[i].buffer) { /* updated by the step, not by a gradient */
            written = written && fprintf(out, "%s running statistic, not checked\n",
                                         m->tensors[i].name) >= 0;
            continue;
        }
        GcWorst w = gc_tensor(&g, &m->tensors[i], floor);
        if (worst_tensor < 0 || (!(w.err <= worst.err) && !isnan(worst.err))) {
            worst = w;
            worst_tensor = i;
        }
        pass = pass && w.err <= rtol;
        written = written && fprintf(out, "%s %.3e\n", m->tensors[i].name, w.err) >= 0;
    }
    written = written && fflush(out) == 0;
    if (!written)
        nnlrt_error(NULL, 0, 0, "cannot write the gradient check's results");
    else if (!pass) {
        char name[160];
        gc_element_name(&m->tensors[worst_tensor], worst.element, name, sizeof name);
        nnlrt_error(NULL, 0, 0,
                    "the gradient check failed: the worst element is %s, analytic %.9e, "
                    "numeric %.9e (|a - n| = %.3e, above %.3e = atol %.1e + rtol %.1e * %.3e)",
                    name, worst.a, worst.n, fabs(worst.a - worst.n),
                    atol + rtol * fmax(fabs(worst.a), fabs(worst.n)), atol, rtol,
                    fmax(fabs(worst.a), fabs(worst.n)));
    }
    nnlrt_buffers_free(&g.b, m);
    nnlrt_free(g.sums);
    nnlrt_free(g.analytic);
    return pass && written;
}
