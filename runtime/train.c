/* train.c — the training driver: the buffer table, epochs of shuffled batches, validation,
 * the progress lines and the CSV log.
 *
 * Reproducibility: the parameters come from an rng seeded with cfg->seed, the sample order
 * from a second rng seeded with cfg->seed ^ TRAIN_SHUFFLE_MIX, drawn from afresh every
 * epoch; sums are accumulated in a fixed order and the log holds no times, so two runs
 * with the same seed on the same machine write the same bytes.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nnlrt_int.h"

enum { TRAIN_EVAL_BATCH = 1024 }; /* validation batch when training is full-batch */
static const uint64_t TRAIN_SHUFFLE_MIX = 0x53485546464C4521u; /* "SHUFFLE!" */

/* ---- the buffer table ---- */

static void *train_array(const NnlrtModel *m, size_t elems)
{
    return nnlrt_alloc_aligned(nnlrt_array_bytes(elems, (size_t)m->elem_size));
}

static size_t train_elems(int64_t a, int64_t b)
{
    return nnlrt_array_bytes((size_t)a, (size_t)b);
}

void nnlrt_buffers_init(NnlrtBuffers *b, const NnlrtModel *m, int64_t max_batch)
{
    int n = m->n_bufs > NNLRT_BUF_FIRST ? m->n_bufs : NNLRT_BUF_FIRST;
    b->max_batch = max_batch;
    b->bufs = nnlrt_alloc(nnlrt_array_bytes((size_t)n, sizeof(void *)));
    b->bufs[NNLRT_BUF_PARAMS] = train_array(m, (size_t)m->n_params);
    b->bufs[NNLRT_BUF_GRADS] = train_array(m, (size_t)m->n_params);
    b->bufs[NNLRT_BUF_X] = train_array(m, train_elems(max_batch, m->x_size));
    b->bufs[NNLRT_BUF_Y] = train_array(m, train_elems(max_batch, m->y_size));
    for (int i = NNLRT_BUF_FIRST; i < m->n_bufs; i++)
        b->bufs[i] = train_array(m, train_elems(m->buf_elems[i],
                                                m->buf_batched[i] ? max_batch : 1));
    b->states = nnlrt_alloc(nnlrt_array_bytes((size_t)m->n_states + 1, sizeof(void *)));
    for (int i = 0; i < m->n_states; i++)
        b->states[i] = train_array(m, (size_t)m->n_params);
}

void nnlrt_buffers_free(NnlrtBuffers *b, const NnlrtModel *m)
{
    int n = m->n_bufs > NNLRT_BUF_FIRST ? m->n_bufs : NNLRT_BUF_FIRST;
    for (int i = 0; b->bufs && i < n; i++)
        nnlrt_free(b->bufs[i]);
    for (int i = 0; b->states && i < m->n_states; i++)
        nnlrt_free(b->states[i]);
    nnlrt_free(b->bufs);
    nnlrt_free(b->states);
    memset(b, 0, sizeof *b);
}

/* d[0..n) = src[from..from+n) * scale, converted from the stored type: the one place a
 * data set's values become the model's. The product is taken in double, then rounded
 * once to the model's type (255 * (1/255) gives exactly 1). */
#define TRAIN_CONVERT(in_t)                                                                   \
    do {                                                                                      \
        const in_t *s = (const in_t *)src + from;                                             \
        for (int64_t i = 0; i < n; i++)                                                       \
            d[i] = (double)s[i] * scale;                                                      \
    } while (0)

static void train_convert_f32(float *d, NnlrtType t, const void *src, int64_t from, int64_t n,
                              double scale)
{
    if (t == NNLRT_F32 && scale == 1) {
        memcpy(d, (const float *)src + from, (size_t)n * sizeof(float));
        return;
    }
    switch (t) {
    case NNLRT_F32: TRAIN_CONVERT(float); break;
    case NNLRT_F64: TRAIN_CONVERT(double); break;
    case NNLRT_U8: TRAIN_CONVERT(uint8_t); break;
    case NNLRT_I64: TRAIN_CONVERT(int64_t); break;
    }
}

static void train_convert_f64(double *d, NnlrtType t, const void *src, int64_t from,
                              int64_t n, double scale)
{
    switch (t) {
    case NNLRT_F32: TRAIN_CONVERT(float); break;
    case NNLRT_F64: TRAIN_CONVERT(double); break;
    case NNLRT_U8: TRAIN_CONVERT(uint8_t); break;
    case NNLRT_I64: TRAIN_CONVERT(int64_t); break;
    }
}

#undef TRAIN_CONVERT

/* Elements from..from+n of a stored array into elements at..at+n of a model buffer. */
static void train_convert(const NnlrtModel *m, void *dst, int64_t at, NnlrtType t,
                          const void *src, int64_t from, int64_t n, double scale)
{
    if (m->elem_size == 4)
        train_convert_f32((float *)dst + at, t, src, from, n, scale);
    else
        train_convert_f64((double *)dst + at, t, src, from, n, scale);
}

void nnlrt_buffers_gather(NnlrtBuffers *b, const NnlrtModel *m, const NnlrtDataset *ds,
                          const int64_t *idx, int64_t count)
{
    for (int64_t k = 0; k < count; k++) {
        int64_t i = idx[k];
        train_convert(m, b->bufs[NNLRT_BUF_X], k * m->x_size, ds->x_type, ds->x,
                      i * ds->x_size, ds->x_size, ds->x_scale);
        train_convert(m, b->bufs[NNLRT_BUF_Y], k * m->y_size, ds->y_type, ds->y,
                      i * ds->y_size, ds->y_size, 1);
    }
}

void nnlrt_init_rng(NnlrtRng *rng, uint64_t seed)
{
    nnlrt_rng_seed(rng, seed);
}

/* ---- checking the data against the model ---- */

static const char *train_y_file(const NnlrtDataset *ds)
{
    return ds->y_source ? ds->y_source : ds->source ? ds->source : ds->name;
}

static bool train_check_label(const NnlrtModel *m, const NnlrtDataset *ds, int64_t i)
{
    double v = nnlrt_dataset_y(ds, i * ds->y_size);
    if (v >= 0 && v < (double)m->n_classes && v == floor(v))
        return true;
    const char *file = train_y_file(ds);
    long line = ds->rows ? (long)ds->rows[i] : 0;
    if (!ds->rows)
        nnlrt_error(file, 0, 0, "sample %lld: label %g is not a class of the model (0 to %lld)",
                    (long long)i + 1, v, (long long)m->n_classes - 1);
    else
        nnlrt_error(file, line, 0, "label %g is not a class of the model (0 to %lld)", v,
                    (long long)m->n_classes - 1);
    return false;
}

/* Whether values of type t times scale can lie beyond what the model's type holds. */
static bool train_may_overflow(NnlrtType t, double scale, double limit)
{
    double max = t == NNLRT_U8 ? 255 : t == NNLRT_F32 ? FLT_MAX : INFINITY;
    return max * fabs(scale) > limit;
}

/* Every input (or target) must stay finite once converted: float64 or int64 data can
 * overflow a float32 model, where it would only show up as a diverged loss. */
static bool train_check_range(const NnlrtModel *m, const NnlrtDataset *ds, bool inputs)
{
    double limit = m->elem_size == 4 ? FLT_MAX : DBL_MAX;
    NnlrtType t = inputs ? ds->x_type : ds->y_type;
    if (!train_may_overflow(t, inputs ? ds->x_scale : 1, limit))
        return true;
    int64_t per = inputs ? ds->x_size : ds->y_size;
    for (int64_t i = 0; i < ds->n * per; i++) {
        double v = inputs ? nnlrt_dataset_x(ds, i) : nnlrt_dataset_y(ds, i);
        if (fabs(v) <= limit)
            continue;
        nnlrt_error(inputs ? (ds->source ? ds->source : ds->name) : train_y_file(ds), 0, 0,
                    "sample %lld: %s %lld is %g, beyond the range of the model's %s",
                    (long long)(i / per + 1), inputs ? "input" : "target",
                    (long long)(i % per + 1), v, m->elem_size == 4 ? "float32" : "float64");
        return false;
    }
    return true;
}

bool nnlrt_check_dataset(const NnlrtModel *m, const NnlrtDataset *ds)
{
    const char *file = ds->source ? ds->source : ds->name;
    if (ds->x_size != m->x_size || ds->y_size != m->y_size) {
        nnlrt_error(file, 0, 0,
                    "the samples have %lld inputs and %lld targets, the model takes %lld and %lld",
                    (long long)ds->x_size, (long long)ds->y_size, (long long)m->x_size,
                    (long long)m->y_size);
        return false;
    }
    if (ds->n <= 0) {
        nnlrt_error(file, 0, 0, "the data set has no samples");
        return false;
    }
    if (!train_check_range(m, ds, true) || !train_check_range(m, ds, false))
        return false;
    if (m->target_kind != NNLRT_TARGET_CLASS || ds->y_size != 1)
        return true;
    for (int64_t i = 0; i < ds->n; i++)
        if (!train_check_label(m, ds, i))
            return false;
    return true;
}

static bool train_check_config(const NnlrtModel *m, const NnlrtTrainConfig *cfg)
{
    if (m->elem_size != 4 && m->elem_size != 8) {
        nnlrt_error(NULL, 0, 0, "the model's elements have %d bytes (expected 4 or 8)",
                    m->elem_size);
        return false;
    }
    if (cfg->epochs < 0 || cfg->batch < 0 || cfg->log_every < 0) {
        nnlrt_error(NULL, 0, 0, "epochs, batch and log_every cannot be negative");
        return false;
    }
    return true;
}

/* ---- the trainer ---- */

typedef struct {
    const NnlrtModel *m;
    const NnlrtTrainConfig *cfg;
    const NnlrtDataset *train, *val;
    FILE *out;
    FILE *log;
    NnlrtBuffers b;
    int64_t batch;        /* training batch size */
    int64_t val_batch;
    int64_t *order;       /* the epoch's sample order */
    int64_t *identity;    /* 0, 1, 2, ...: validation order */
    NnlrtRng shuffle;
    double *batch_sums;   /* 1 + n_metrics: what grad added for one batch */
    double *sums;         /* the same over the epoch */
    double *val_sums;
    NnlrtEpochStats stats;
    int64_t step;         /* updates so far */
    double last_loss;     /* the last finite batch loss, NaN before the first */
    double window_loss;   /* sum of batch losses since the last per-step log row */
    int64_t window_steps;
} Trainer;

static double *train_doubles(int n)
{
    double *p = nnlrt_alloc(nnlrt_array_bytes((size_t)n, sizeof(double)));
    memset(p, 0, (size_t)n * sizeof(double));
    return p;
}

static int64_t train_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void train_setup(Trainer *t, const NnlrtModel *m, const NnlrtTrainConfig *cfg,
                        const NnlrtDataset *train, const NnlrtDataset *val)
{
    memset(t, 0, sizeof *t);
    t->m = m;
    t->cfg = cfg;
    t->train = train;
    t->val = val;
    t->out = cfg->out ? cfg->out : stdout;
    t->batch = cfg->batch > 0 ? train_min(cfg->batch, train->n) : train->n;
    int64_t n_max = train->n;
    if (val) {
        t->val_batch = train_min(cfg->batch > 0 ? cfg->batch : TRAIN_EVAL_BATCH, val->n);
        n_max = val->n > n_max ? val->n : n_max;
    }
    nnlrt_buffers_init(&t->b, m, t->val_batch > t->batch ? t->val_batch : t->batch);
    t->order = nnlrt_alloc(nnlrt_array_bytes((size_t)train->n, sizeof(int64_t)));
    t->identity = nnlrt_alloc(nnlrt_array_bytes((size_t)n_max, sizeof(int64_t)));
    for (int64_t i = 0; i < n_max; i++)
        t->identity[i] = i;
    nnlrt_rng_seed(&t->shuffle, cfg->seed ^ TRAIN_SHUFFLE_MIX);
    int n_sums = 1 + m->n_metrics;
    t->batch_sums = train_doubles(n_sums);
    t->sums = train_doubles(n_sums);
    t->val_sums = train_doubles(n_sums);
    t->stats.metrics = train_doubles(n_sums);
    t->stats.val_metrics = train_doubles(n_sums);
    t->last_loss = NAN;
}

static void train_free(Trainer *t)
{
    nnlrt_buffers_free(&t->b, t->m);
    nnlrt_free(t->order);
    nnlrt_free(t->identity);
    nnlrt_free(t->batch_sums);
    nnlrt_free(t->sums);
    nnlrt_free(t->val_sums);
    nnlrt_free(t->stats.metrics);
    nnlrt_free(t->stats.val_metrics);
}

static int train_init_params(Trainer *t)
{
    if (t->cfg->init_path)
        return nnlrt_params_load(t->m, t->cfg->init_path, t->b.bufs[NNLRT_BUF_PARAMS]);
    NnlrtRng rng;
    nnlrt_init_rng(&rng, t->cfg->seed);
    t->m->init(t->b.bufs, &rng);
    return NNLRT_OK;
}

/* ---- the CSV log ---- */

static int train_log_failed(Trainer *t)
{
    nnlrt_error(t->cfg->log_path, 0, 0, "cannot write the log: %s", strerror(errno));
    return NNLRT_EIO;
}

/* epoch,step,loss,<metrics>[,val_loss,val_<metrics>] */
static int train_log_header(Trainer *t)
{
    const NnlrtModel *m = t->m;
    bool ok = fputs("epoch,step,loss", t->log) >= 0;
    for (int i = 0; i < m->n_metrics; i++)
        ok = ok && fprintf(t->log, ",%s", m->metric_names[i]) >= 0;
    if (t->val) {
        ok = ok && fputs(",val_loss", t->log) >= 0;
        for (int i = 0; i < m->n_metrics; i++)
            ok = ok && fprintf(t->log, ",val_%s", m->metric_names[i]) >= 0;
    }
    ok = ok && fputc('\n', t->log) != EOF;
    return ok ? NNLRT_OK : train_log_failed(t);
}

static int train_open_log(Trainer *t)
{
    if (!t->cfg->log_path)
        return NNLRT_OK;
    t->log = fopen(t->cfg->log_path, "w");
    if (!t->log) {
        nnlrt_error(t->cfg->log_path, 0, 0, "cannot open the log for writing: %s",
                    strerror(errno));
        return NNLRT_EIO;
    }
    return train_log_header(t);
}

/* Closes the log; a failure there turns a successful run into an I/O error. */
static int train_close_log(Trainer *t, int rc)
{
    if (!t->log)
        return rc;
    int closed = fclose(t->log);
    t->log = NULL;
    if (closed != 0 && rc == NNLRT_OK)
        return train_log_failed(t);
    return rc;
}

/* A logged number: ",%.9g" when training in float32, ",%.17g" in float64, so that a
 * float64 log resolves what the run computes (as the parameter files do). */
static const char *log_number_format(const Trainer *t)
{
    return t->m->elem_size == 8 ? ",%.17g" : ",%.9g";
}

static int train_log_epoch(Trainer *t, int64_t epoch)
{
    if (!t->log || t->cfg->log_every > 0)
        return NNLRT_OK;
    const NnlrtEpochStats *s = &t->stats;
    const char *num = log_number_format(t);
    bool ok = fprintf(t->log, "%lld,%lld", (long long)epoch + 1, (long long)t->step) >= 0;
    ok = ok && fprintf(t->log, num, s->loss) >= 0;
    for (int i = 0; i < t->m->n_metrics; i++)
        ok = ok && fprintf(t->log, num, s->metrics[i]) >= 0;
    if (t->val) {
        ok = ok && fprintf(t->log, num, s->val_loss) >= 0;
        for (int i = 0; i < t->m->n_metrics; i++)
            ok = ok && fprintf(t->log, num, s->val_metrics[i]) >= 0;
    }
    ok = ok && fputc('\n', t->log) != EOF;
    return ok ? NNLRT_OK : train_log_failed(t);
}

/* Every log_every steps: the mean batch loss of those steps; metrics and validation are
 * only measured per epoch, so their fields stay empty. */
static int train_log_step(Trainer *t, int64_t epoch, double loss)
{
    if (!t->log || t->cfg->log_every == 0)
        return NNLRT_OK;
    t->window_loss += loss;
    if (++t->window_steps < t->cfg->log_every)
        return NNLRT_OK;
    double mean = t->window_loss / (double)t->window_steps;
    t->window_loss = 0;
    t->window_steps = 0;
    bool ok = fprintf(t->log, "%lld,%lld", (long long)epoch + 1, (long long)t->step) >= 0;
    ok = ok && fprintf(t->log, log_number_format(t), mean) >= 0;
    int empty = t->m->n_metrics + (t->val ? 1 + t->m->n_metrics : 0);
    for (int i = 0; i < empty; i++)
        ok = ok && fputc(',', t->log) != EOF;
    ok = ok && fputc('\n', t->log) != EOF;
    return ok ? NNLRT_OK : train_log_failed(t);
}

/* ---- progress ---- */

static double train_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int train_digits(int64_t n)
{
    int d = 1;
    for (; n >= 10; n /= 10)
        d++;
    return d;
}

/* epoch  3/10  loss 0.412345  accuracy 0.8421  val_loss 0.43  val_accuracy 0.84  (0.52 s) */
static int train_print_epoch(Trainer *t, int64_t epoch, double seconds)
{
    if (t->cfg->quiet)
        return NNLRT_OK;
    const NnlrtModel *m = t->m;
    const NnlrtEpochStats *s = &t->stats;
    FILE *f = t->out;
    bool ok = fprintf(f, "epoch %*lld/%lld  loss %.6g", train_digits(t->cfg->epochs),
                      (long long)epoch + 1, (long long)t->cfg->epochs, s->loss) >= 0;
    for (int i = 0; i < m->n_metrics; i++)
        ok = ok && fprintf(f, "  %s %.4g", m->metric_names[i], s->metrics[i]) >= 0;
    if (t->val) {
        ok = ok && fprintf(f, "  val_loss %.6g", s->val_loss) >= 0;
        for (int i = 0; i < m->n_metrics; i++)
            ok = ok && fprintf(f, "  val_%s %.4g", m->metric_names[i], s->val_metrics[i]) >= 0;
    }
    ok = ok && fprintf(f, "  (%.2f s)\n", seconds) >= 0 && fflush(f) == 0;
    if (ok)
        return NNLRT_OK;
    nnlrt_error(NULL, 0, 0, "cannot write the progress output: %s", strerror(errno));
    return NNLRT_EIO;
}

/* ---- epochs and batches ---- */

/* The epoch's sample order: a fresh Fisher-Yates shuffle of 0..n-1, or file order. */
static void train_order(Trainer *t)
{
    int64_t n = t->train->n;
    memcpy(t->order, t->identity, (size_t)n * sizeof(int64_t));
    if (!t->cfg->shuffle)
        return;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nnlrt_rand_below(&t->shuffle, (uint64_t)i + 1);
        int64_t tmp = t->order[i];
        t->order[i] = t->order[j];
        t->order[j] = tmp;
    }
}

static int train_diverged(const Trainer *t, int64_t epoch, double loss)
{
    const char *what = isnan(loss) ? "nan" : loss > 0 ? "inf" : "-inf";
    char last[64] = "no finite loss before it";
    if (!isnan(t->last_loss))
        snprintf(last, sizeof last, "last finite loss %.9g", t->last_loss);
    /* The step this batch would have been: its update is not applied. */
    nnlrt_error(NULL, 0, 0, "training diverged: the loss is %s at epoch %lld, step %lld (%s)",
                what, (long long)epoch + 1, (long long)t->step + 1, last);
    return NNLRT_EDIVERGED;
}

static int train_batch(Trainer *t, int64_t epoch, const int64_t *idx, int64_t count)
{
    const NnlrtModel *m = t->m;
    int n_sums = 1 + m->n_metrics;
    nnlrt_buffers_gather(&t->b, m, t->train, idx, count);
    memset(t->batch_sums, 0, (size_t)n_sums * sizeof(double));
    m->grad(t->b.bufs, count, t->batch_sums);
    double loss = t->batch_sums[0] / (double)count;
    if (!isfinite(loss))
        return train_diverged(t, epoch, loss);
    t->step++;
    m->update(t->b.bufs, t->b.states, t->step, epoch);
    for (int i = 0; i < n_sums; i++)
        t->sums[i] += t->batch_sums[i];
    t->last_loss = loss;
    return train_log_step(t, epoch, loss);
}

/* Means over the validation samples of what eval adds, in batches of val_batch. */
static void train_validate(Trainer *t)
{
    const NnlrtModel *m = t->m;
    int n_sums = 1 + m->n_metrics;
    memset(t->val_sums, 0, (size_t)n_sums * sizeof(double));
    for (int64_t start = 0; start < t->val->n; start += t->val_batch) {
        int64_t count = train_min(t->val_batch, t->val->n - start);
        nnlrt_buffers_gather(&t->b, m, t->val, t->identity + start, count);
        m->eval(t->b.bufs, count, t->val_sums);
    }
    t->stats.val_loss = t->val_sums[0] / (double)t->val->n;
    for (int i = 0; i < m->n_metrics; i++)
        t->stats.val_metrics[i] = t->val_sums[1 + i] / (double)t->val->n;
}

static int train_epoch(Trainer *t, int64_t epoch)
{
    const NnlrtModel *m = t->m;
    int64_t n = t->train->n;
    double started = train_now();
    train_order(t);
    memset(t->sums, 0, (size_t)(1 + m->n_metrics) * sizeof(double));
    for (int64_t start = 0; start < n; start += t->batch) {
        int rc = train_batch(t, epoch, t->order + start, train_min(t->batch, n - start));
        if (rc != NNLRT_OK)
            return rc;
    }
    t->stats.loss = t->sums[0] / (double)n;
    for (int i = 0; i < m->n_metrics; i++)
        t->stats.metrics[i] = t->sums[1 + i] / (double)n;
    t->stats.val_loss = NAN;
    if (t->val)
        train_validate(t);
    int rc = train_log_epoch(t, epoch);
    return rc != NNLRT_OK ? rc : train_print_epoch(t, epoch, train_now() - started);
}

int nnlrt_train(const NnlrtModel *m, const NnlrtTrainConfig *cfg, const NnlrtDataset *train,
                const NnlrtDataset *val)
{
    if (!train_check_config(m, cfg) || !nnlrt_check_dataset(m, train) ||
        (val && !nnlrt_check_dataset(m, val)))
        return NNLRT_EUSER;
    Trainer t;
    train_setup(&t, m, cfg, train, val);
    int rc = train_init_params(&t);
    if (rc == NNLRT_OK)
        rc = train_open_log(&t);
    for (int64_t epoch = 0; rc == NNLRT_OK && epoch < cfg->epochs; epoch++)
        rc = train_epoch(&t, epoch);
    rc = train_close_log(&t, rc);
    if (rc == NNLRT_OK && cfg->dump_path)
        rc = nnlrt_params_dump(m, cfg->dump_path, t.b.bufs[NNLRT_BUF_PARAMS]);
    train_free(&t);
    return rc;
}
