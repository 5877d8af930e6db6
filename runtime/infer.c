/* infer.c — using a trained model: its parameters from a checkpoint, its outputs for new
 * inputs (nnlc predict), its loss, metrics and confusion matrix on a data set (nnlc eval),
 * and the output files predictions are written to.
 */
#define _POSIX_C_SOURCE 200809L /* getpid */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nnlrt_int.h"

int nnlrt_checkpoint_load_params(const NnlrtModel *m, const char *path, void *params)
{
    NnlrtCheckpoint c;
    memset(&c, 0, sizeof c);
    c.n_sums = 1 + m->n_metrics;
    c.sums = nnlrt_alloc(nnlrt_array_bytes((size_t)c.n_sums, sizeof(double)));
    c.params = params;
    c.states = nnlrt_alloc(nnlrt_array_bytes((size_t)m->n_states + 1, sizeof(void *)));
    for (int i = 0; i < m->n_states; i++)
        c.states[i] = nnlrt_alloc_aligned(nnlrt_array_bytes((size_t)m->n_params,
                                                            (size_t)m->elem_size));
    int rc = nnlrt_checkpoint_read(path, m, &c);
    for (int i = 0; i < m->n_states; i++)
        nnlrt_free(c.states[i]);
    nnlrt_free(c.states);
    nnlrt_free(c.sums);
    return rc;
}

static int64_t infer_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Buffers for batches of `batch` with `params` copied in, and the identity order. */
static int64_t *infer_setup(NnlrtBuffers *b, const NnlrtModel *m, const void *params,
                            const NnlrtDataset *ds, int64_t batch)
{
    nnlrt_buffers_init(b, m, batch);
    memcpy(b->bufs[NNLRT_BUF_PARAMS], params,
           nnlrt_array_bytes((size_t)m->n_params, (size_t)m->elem_size));
    int64_t *idx = nnlrt_alloc(nnlrt_array_bytes((size_t)ds->n, sizeof(int64_t)));
    for (int64_t i = 0; i < ds->n; i++)
        idx[i] = i;
    return idx;
}

void nnlrt_predict(const NnlrtModel *m, const void *params, const NnlrtDataset *ds,
                   int64_t batch, void *out)
{
    NnlrtBuffers b;
    int64_t *idx = infer_setup(&b, m, params, ds, batch);
    size_t row = (size_t)m->out_size * (size_t)m->elem_size;
    for (int64_t start = 0; start < ds->n; start += batch) {
        int64_t count = infer_min(batch, ds->n - start);
        nnlrt_buffers_gather(&b, m, ds, idx + start, count);
        m->predict(b.bufs, count, (char *)out + (size_t)start * row);
    }
    nnlrt_free(idx);
    nnlrt_buffers_free(&b, m);
}

/* The output element `i` as a double. */
static double infer_value(const NnlrtModel *m, const void *out, int64_t i)
{
    return m->elem_size == 4 ? (double)((const float *)out)[i] : ((const double *)out)[i];
}

int64_t nnlrt_argmax(const NnlrtModel *m, const void *out, int64_t sample)
{
    int64_t best = 0;
    double v = infer_value(m, out, sample * m->out_size);
    for (int64_t k = 1; k < m->out_size; k++) {
        double w = infer_value(m, out, sample * m->out_size + k);
        if (w > v || (isnan(w) && !isnan(v))) {
            v = w;
            best = k;
        }
    }
    return best;
}

int64_t nnlrt_evaluate(const NnlrtModel *m, const void *params, const NnlrtDataset *ds,
                       int64_t batch, double *means, int64_t *confusion, double threshold)
{
    NnlrtBuffers b;
    int64_t *idx = infer_setup(&b, m, params, ds, batch);
    int n_sums = 1 + m->n_metrics;
    bool binary = m->target_kind != NNLRT_TARGET_CLASS;
    int64_t k = binary ? 2 : m->n_classes, not_binary = 0;
    memset(means, 0, (size_t)n_sums * sizeof(double));
    void *out = confusion ? nnlrt_alloc(nnlrt_array_bytes((size_t)batch * (size_t)m->out_size,
                                                          (size_t)m->elem_size))
                          : NULL;
    if (confusion)
        memset(confusion, 0, (size_t)(k * k) * sizeof(int64_t));
    for (int64_t start = 0; start < ds->n; start += batch) {
        int64_t count = infer_min(batch, ds->n - start);
        nnlrt_buffers_gather(&b, m, ds, idx + start, count);
        m->eval(b.bufs, count, means);
        if (!confusion)
            continue;
        m->predict(b.bufs, count, out);
        for (int64_t i = 0; i < count; i++) {
            double y = nnlrt_dataset_y(ds, start + i);
            if (binary && y != 0 && y != 1) {
                not_binary++;
                continue;
            }
            int64_t predicted = binary ? infer_value(m, out, i) > threshold
                                       : nnlrt_argmax(m, out, i);
            confusion[(int64_t)y * k + predicted]++;
        }
    }
    for (int i = 0; i < n_sums; i++)
        means[i] /= (double)ds->n;
    nnlrt_free(out);
    nnlrt_free(idx);
    nnlrt_buffers_free(&b, m);
    return not_binary;
}

/* ---- writing predictions ---- */

static bool infer_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* One row per sample: the class first for a classifier, then every output. */
static bool infer_write_csv(FILE *f, const NnlrtModel *m, const void *out, int64_t n)
{
    bool cls = m->target_kind == NNLRT_TARGET_CLASS;
    const char *fmt = m->elem_size == 4 ? "%.9g" : "%.17g";
    if (cls)
        fprintf(f, "class,");
    for (int64_t k = 0; k < m->out_size; k++) {
        if (m->out_size == 1)
            fprintf(f, "output");
        else
            fprintf(f, "%soutput%lld", k ? "," : "", (long long)k);
    }
    fputc('\n', f);
    for (int64_t i = 0; i < n; i++) {
        if (cls)
            fprintf(f, "%lld,", (long long)nnlrt_argmax(m, out, i));
        for (int64_t k = 0; k < m->out_size; k++) {
            if (k)
                fputc(',', f);
            fprintf(f, fmt, infer_value(m, out, i * m->out_size + k));
        }
        fputc('\n', f);
    }
    return !ferror(f);
}

/* NPY 1.0: shape (n, out_size), float32 or float64, little-endian. */
static bool infer_write_npy(FILE *f, const NnlrtModel *m, const void *out, int64_t n)
{
    char dict[128];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f%d', 'fortran_order': False, "
                       "'shape': (%lld, %lld), }", m->elem_size, (long long)n,
                       (long long)m->out_size);
    int total = 10 + len + 1; /* magic, version, length; the dict; the newline */
    int pad = (64 - total % 64) % 64;
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                              (unsigned char)((len + pad + 1) & 0xff),
                              (unsigned char)((len + pad + 1) >> 8)};
    fwrite(head, 1, sizeof head, f);
    fwrite(dict, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    size_t elems = (size_t)n * (size_t)m->out_size;
    fwrite(out, (size_t)m->elem_size, elems, f); /* the host is little-endian (x86-64) */
    return !ferror(f);
}

int nnlrt_write_predictions(const NnlrtModel *m, const char *path, const void *out, int64_t n,
                            FILE *to)
{
    if (!path) {
        if (!infer_write_csv(to, m, out, n) || fflush(to) != 0) {
            nnlrt_error(NULL, 0, 0, "cannot write the predictions: %s", strerror(errno));
            return NNLRT_EIO;
        }
        return NNLRT_OK;
    }
    bool npy = infer_ends_with(path, ".npy");
    if (!npy && !infer_ends_with(path, ".csv")) {
        nnlrt_error(path, 0, 0, "cannot tell the output format: name the file .csv or .npy");
        return NNLRT_EUSER;
    }
    if (snprintf(NULL, 0, "%s.tmp.%ld", path, (long)getpid()) >= 4096) {
        nnlrt_error(path, 0, 0, "the file name is too long");
        return NNLRT_EIO;
    }
    NnlrtAtomic a;
    nnlrt_atomic_init(&a, path, 0);
    bool ok = nnlrt_atomic_open(&a);
    if (ok && !(npy ? infer_write_npy(a.f, m, out, n) : infer_write_csv(a.f, m, out, n)))
        ok = nnlrt_atomic_fail(&a, "write");
    ok = ok && nnlrt_atomic_finish(&a, "rename");
    if (!ok)
        nnlrt_error(path, 0, 0, "cannot write the predictions: %s", strerror(a.err));
    nnlrt_atomic_free(&a);
    return ok ? NNLRT_OK : NNLRT_EIO;
}
