/* data.c — data sets whatever their file: element types, split, standardize, free.
 *
 * A data set keeps the element type its file had (NnlrtType) and a scale for its inputs;
 * only train_loop.c's batch gathering converts in bulk. The accessors here convert one element
 * at a time, for checks, messages and standardize.
 */
#include <math.h>
#include <string.h>

#include "nnlrt_int.h"

size_t nnlrt_type_size(NnlrtType t)
{
    return t == NNLRT_U8 ? 1 : t == NNLRT_F32 ? 4 : 8;
}

const char *nnlrt_type_name(NnlrtType t)
{
    switch (t) {
    case NNLRT_F32: return "float32";
    case NNLRT_F64: return "float64";
    case NNLRT_U8: return "uint8";
    case NNLRT_I64: return "int64";
    }
    return "?";
}

/* Element i of an array of type t, as a double (int64 beyond 2^53 rounds). */
double nnlrt_value(NnlrtType t, const void *data, int64_t i)
{
    switch (t) {
    case NNLRT_F32: return ((const float *)data)[i];
    case NNLRT_F64: return ((const double *)data)[i];
    case NNLRT_U8: return ((const uint8_t *)data)[i];
    case NNLRT_I64: return (double)((const int64_t *)data)[i];
    }
    return 0;
}

double nnlrt_dataset_x(const NnlrtDataset *ds, int64_t i)
{
    return nnlrt_value(ds->x_type, ds->x, i) * ds->x_scale;
}

double nnlrt_dataset_y(const NnlrtDataset *ds, int64_t i)
{
    return nnlrt_value(ds->y_type, ds->y, i);
}

bool nnlrt_check_scale(double scale)
{
    if (isfinite(scale) && scale != 0)
        return true;
    nnlrt_error(NULL, 0, 0, "the scale of a data set must be a finite number other than 0, "
                "not %g", scale);
    return false;
}

size_t nnlrt_dataset_bytes(const NnlrtDataset *ds)
{
    size_t x = nnlrt_array_bytes((size_t)ds->n * (size_t)ds->x_size, nnlrt_type_size(ds->x_type));
    size_t y = nnlrt_array_bytes((size_t)ds->n * (size_t)ds->y_size, nnlrt_type_size(ds->y_type));
    return x + y;
}

void nnlrt_dataset_free(NnlrtDataset *ds)
{
    nnlrt_free(ds->name);
    nnlrt_free(ds->x);
    nnlrt_free(ds->y);
    nnlrt_free(ds->source);
    nnlrt_free(ds->y_source);
    nnlrt_free(ds->rows);
    memset(ds, 0, sizeof *ds);
}

/* ---- split ---- */

/* Sample `from` of src becomes sample `to` of dst (same types and sizes). */
static void data_copy_sample(const NnlrtDataset *src, int64_t from, NnlrtDataset *dst,
                             int64_t to)
{
    size_t xb = (size_t)src->x_size * nnlrt_type_size(src->x_type);
    size_t yb = (size_t)src->y_size * nnlrt_type_size(src->y_type);
    if (src->x) /* NULL: a set read for its shape only */
        memcpy((char *)dst->x + (size_t)to * xb, (const char *)src->x + (size_t)from * xb, xb);
    memcpy((char *)dst->y + (size_t)to * yb, (const char *)src->y + (size_t)from * yb, yb);
    if (src->rows)
        dst->rows[to] = src->rows[from];
}

static void data_alloc_like(const NnlrtDataset *src, int64_t n, NnlrtDataset *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->name = nnlrt_strdup(src->name);
    dst->source = nnlrt_strdup(src->source);
    dst->y_source = nnlrt_strdup(src->y_source);
    dst->n = n;
    dst->x_size = src->x_size;
    dst->y_size = src->y_size;
    dst->x_type = src->x_type;
    dst->y_type = src->y_type;
    dst->x_scale = src->x_scale;
    size_t xs = nnlrt_array_bytes((size_t)n, (size_t)src->x_size);
    size_t ys = nnlrt_array_bytes((size_t)n, (size_t)src->y_size);
    dst->x = src->x ? nnlrt_alloc(nnlrt_array_bytes(xs, nnlrt_type_size(src->x_type))) : NULL;
    dst->y = nnlrt_alloc(nnlrt_array_bytes(ys, nnlrt_type_size(src->y_type)));
    if (src->rows)
        dst->rows = nnlrt_alloc(nnlrt_array_bytes((size_t)n, sizeof(int64_t)));
}

void nnlrt_split(const NnlrtDataset *src, double frac, uint64_t seed, NnlrtDataset *a,
                 NnlrtDataset *b)
{
    int64_t n = src->n;
    double want = frac > 0 ? (frac < 1 ? round(frac * (double)n) : (double)n) : 0;
    int64_t n_a = (int64_t)want;
    int64_t *perm = nnlrt_alloc(nnlrt_array_bytes((size_t)n, sizeof(int64_t)));
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    NnlrtRng rng;
    nnlrt_rng_seed(&rng, seed);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nnlrt_rand_below(&rng, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    data_alloc_like(src, n_a, a);
    data_alloc_like(src, n - n_a, b);
    for (int64_t i = 0; i < n; i++) {
        if (i < n_a)
            data_copy_sample(src, perm[i], a, i);
        else
            data_copy_sample(src, perm[i], b, i - n_a);
    }
    nnlrt_free(perm);
}

/* ---- standardize ---- */

static bool data_is_float(NnlrtType t)
{
    return t == NNLRT_F32 || t == NNLRT_F64;
}

static bool data_check_standardize(const NnlrtDataset *ds, const NnlrtDataset *ref)
{
    const NnlrtDataset *bad = !data_is_float(ds->x_type)    ? ds
                              : !data_is_float(ref->x_type) ? ref
                                                            : NULL;
    if (bad) {
        nnlrt_error(bad->source ? bad->source : bad->name, 0, 0,
                    "standardize needs floating-point data; the inputs are stored as %s "
                    "(scale them instead, e.g. scale = 1/255 for bytes)",
                    nnlrt_type_name(bad->x_type));
        return false;
    }
    if (ref->x_size != ds->x_size) {
        nnlrt_error(ds->source ? ds->source : ds->name, 0, 0,
                    "cannot standardize %lld inputs per sample with statistics of %lld",
                    (long long)ds->x_size, (long long)ref->x_size);
        return false;
    }
    return true;
}

/* Two passes over the rows (summing every column of a row at once reads memory in order). */
void nnlrt_column_stats(const NnlrtDataset *ref, double *mean, double *sd)
{
    int64_t d = ref->x_size;
    memset(mean, 0, (size_t)d * sizeof(double));
    memset(sd, 0, (size_t)d * sizeof(double));
    for (int64_t i = 0; i < ref->n; i++)
        for (int64_t j = 0; j < d; j++)
            mean[j] += nnlrt_dataset_x(ref, i * d + j);
    for (int64_t j = 0; j < d; j++)
        mean[j] /= (double)ref->n;
    for (int64_t i = 0; i < ref->n; i++) {
        for (int64_t j = 0; j < d; j++) {
            double v = nnlrt_dataset_x(ref, i * d + j) - mean[j];
            sd[j] += v * v;
        }
    }
    for (int64_t j = 0; j < d; j++)
        sd[j] = sqrt(sd[j] / (double)ref->n);
}

static void data_store(NnlrtDataset *ds, int64_t i, double v)
{
    if (ds->x_type == NNLRT_F32)
        ((float *)ds->x)[i] = (float)v;
    else
        ((double *)ds->x)[i] = v;
}

/* All statistics are taken before any value changes, so ref may be ds itself. A constant
 * column (deviation 0) is only centred. */
bool nnlrt_standardize(NnlrtDataset *ds, const NnlrtDataset *ref)
{
    if (!data_check_standardize(ds, ref))
        return false;
    if (ref->n == 0)
        return true;
    int64_t d = ds->x_size;
    size_t bytes = nnlrt_array_bytes((size_t)d, sizeof(double));
    double *mean = nnlrt_alloc(bytes), *sd = nnlrt_alloc(bytes);
    nnlrt_column_stats(ref, mean, sd);
    for (int64_t i = 0; i < ds->n; i++) {
        for (int64_t j = 0; j < d; j++) {
            double v = nnlrt_dataset_x(ds, i * d + j) - mean[j];
            data_store(ds, i * d + j, sd[j] > 0 ? v / sd[j] : v);
        }
    }
    ds->x_scale = 1;
    nnlrt_free(mean);
    nnlrt_free(sd);
    return true;
}
