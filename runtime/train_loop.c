/* train_loop.c — the training driver: the buffer table, epochs of shuffled batches, validation,
 * checkpoints and stops. The CSV log is train_log.c's, the progress lines train_progress.c's.
 *
 * Reproducibility: the parameters come from an rng seeded with cfg->seed, the sample order
 * from a second rng seeded with cfg->seed ^ TRAIN_SHUFFLE_MIX, drawn from afresh every
 * epoch; sums are accumulated in a fixed order and the log holds no times, so two runs
 * with the same seed on the same machine write the same bytes.
 *
 * Checkpoints (checkpoint.c) hold the run's state between two steps: the parameters and
 * optimizer states, the step, the epoch and the next batch in it, the shuffle generator as
 * it was at the start of that epoch (the order is drawn again from it), the epoch's sums
 * so far and the log's length and CRC. A run stopped after any step and resumed from its
 * checkpoint writes the same parameters and log bytes as one that was never stopped.
 *
 * Before the first step every output (checkpoint, log, plot, parameter file) is probed the
 * way its write will create it, and the checkpoint and the log are locked for the run's
 * whole life (atomic_file.c; docs/checkpoints.md).
 */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

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
        if (ds->y) /* inputs alone (prediction) have no targets */
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
    if (!ds->y && ds->x_size != m->x_size) { /* inputs alone: what prediction reads */
        nnlrt_error(file, 0, 0, "the samples have %lld inputs, the model takes %lld",
                    (long long)ds->x_size, (long long)m->x_size);
        return false;
    }
    if (ds->y && (ds->x_size != m->x_size || ds->y_size != m->y_size)) {
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
    if (m->target_kind != NNLRT_TARGET_CLASS || !ds->y || ds->y_size != 1)
        return true;
    for (int64_t i = 0; i < ds->n; i++)
        if (!train_check_label(m, ds, i))
            return false;
    return true;
}

enum { TRAIN_MAX_KEEP = 1000 };

static bool train_check_checkpoints(const NnlrtTrainConfig *cfg)
{
    const char *msg = NULL;
    if (cfg->checkpoint_every < 0 || cfg->checkpoint_every_steps < 0 || cfg->keep < 0 ||
        cfg->stop_after_steps < 0)
        msg = "checkpoint_every, checkpoint_every_steps, keep and stop_after_steps cannot be "
              "negative";
    else if (cfg->checkpoint_every > 0 && cfg->checkpoint_every_steps > 0)
        msg = "checkpoint_every and checkpoint_every_steps cannot both be given: checkpoints "
              "are written by epochs or by steps";
    else if (!cfg->checkpoint_path &&
             (cfg->checkpoint_every > 0 || cfg->checkpoint_every_steps > 0 || cfg->keep > 1))
        msg = "checkpoint_every, checkpoint_every_steps and keep need a checkpoint file";
    else if (cfg->keep > TRAIN_MAX_KEEP)
        msg = "keep is at most 1000";
    else if (cfg->plot_path && cfg->log_path && strcmp(cfg->plot_path, cfg->log_path) == 0)
        msg = "plot and log name the same file: the plot would replace the log";
    else if (cfg->init_path && cfg->resume_path)
        msg = "a run starts from a parameter file (init) or goes on from a checkpoint "
              "(resume), not both";
    else if (cfg->checkpoint_path && !nnlrt_checkpoint_options_fit(cfg->options, cfg->n_options))
        msg = "the run's options are too long to be recorded in its checkpoints (1 MiB at "
              "most)";
    if (msg)
        nnlrt_error(NULL, 0, 0, "%s", msg);
    return msg == NULL;
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
    return train_check_checkpoints(cfg);
}

/* ---- the trainer ---- */

int64_t nnlrt_train_batches(const NnlrtTrainer *t)
{
    return (t->train->n + t->batch - 1) / t->batch;
}

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

static void train_setup(NnlrtTrainer *t, const NnlrtModel *m, const NnlrtTrainConfig *cfg,
                        const NnlrtDataset *train, const NnlrtDataset *val)
{
    memset(t, 0, sizeof *t);
    t->m = m;
    t->cfg = cfg;
    t->train = train;
    t->val = val;
    t->out = cfg->out ? cfg->out : stdout;
    t->live = !cfg->quiet && isatty(fileno(t->out));
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
    t->ckpt_step = -1;
    t->log_crc = crc32(0, Z_NULL, 0);
}

static void train_free(NnlrtTrainer *t)
{
    nnlrt_buffers_free(&t->b, t->m);
    nnlrt_free(t->order);
    nnlrt_free(t->identity);
    nnlrt_free(t->batch_sums);
    nnlrt_free(t->sums);
    nnlrt_free(t->val_sums);
    nnlrt_free(t->stats.metrics);
    nnlrt_free(t->stats.val_metrics);
    nnlrt_str_free(&t->row);
    nnlrt_str_free(&t->mem_log);
    nnlrt_str_free(&t->line);
}

static int train_init_params(NnlrtTrainer *t)
{
    if (t->cfg->init_path)
        return nnlrt_params_load(t->m, t->cfg->init_path, t->b.bufs[NNLRT_BUF_PARAMS]);
    NnlrtRng rng;
    nnlrt_init_rng(&rng, t->cfg->seed);
    t->m->init(t->b.bufs, &rng);
    return NNLRT_OK;
}
/* ---- epochs and batches ---- */

/* The epoch's sample order: a fresh Fisher-Yates shuffle of 0..n-1, or file order. */
static void train_order(NnlrtTrainer *t)
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

static int train_diverged(const NnlrtTrainer *t, int64_t epoch, double loss)
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

/* The first tensor, in the model's order, with a gradient that is not finite. */
static const NnlrtTensor *train_bad_tensor(const NnlrtTrainer *t, double *value)
{
    const NnlrtModel *m = t->m;
    const void *g = t->b.bufs[NNLRT_BUF_GRADS];
    for (int i = 0; i < m->n_tensors; i++) {
        const NnlrtTensor *tn = &m->tensors[i];
        for (int64_t k = tn->offset; k < tn->offset + tn->size; k++) {
            double v = m->elem_size == 4 ? (double)((const float *)g)[k] : ((const double *)g)[k];
            if (!isfinite(v)) {
                *value = v;
                return tn;
            }
        }
    }
    return NULL;
}

/* The step's update is applied by the time its gradient norm is known: the run stops
 * there, before any checkpoint could record it. */
static int train_bad_gradient(const NnlrtTrainer *t, int64_t epoch, double loss, double g2)
{
    double v = NAN;
    const NnlrtTensor *bad = train_bad_tensor(t, &v);
    char which[300] = "a gradient";
    if (bad)
        snprintf(which, sizeof which, "the gradient of '%s' (%s first)", bad->name,
                 isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    nnlrt_error(NULL, 0, 0, "training diverged: %s is not finite at epoch %lld, step %lld "
                "(gradient norm %s; the step's loss %.9g)", which, (long long)epoch + 1,
                (long long)t->step, isnan(g2) ? "nan" : "inf", loss);
    return NNLRT_EDIVERGED;
}

static int train_batch(NnlrtTrainer *t, int64_t epoch, const int64_t *idx, int64_t count)
{
    const NnlrtModel *m = t->m;
    int n_sums = 1 + m->n_metrics;
    nnlrt_buffers_gather(&t->b, m, t->train, idx, count);
    memset(t->batch_sums, 0, (size_t)n_sums * sizeof(double));
    m->grad(t->b.bufs, count, t->batch_sums, nnlrt_step_key(t->cfg->seed, t->step + 1));
    double loss = t->batch_sums[0] / (double)count;
    if (!isfinite(loss)) {
        nnlrt_progress_end_live(t);
        return train_diverged(t, epoch, loss);
    }
    t->step++;
    t->run_samples += count;
    double g2 = m->update(t->b.bufs, t->b.states, t->step, epoch);
    if (!isfinite(g2))
        return train_bad_gradient(t, epoch, loss, g2);
    for (int i = 0; i < n_sums; i++)
        t->sums[i] += t->batch_sums[i];
    t->last_loss = loss;
    return nnlrt_log_step(t, epoch, loss);
}

/* Means over the validation samples of what eval adds, in batches of val_batch. */
static void train_validate(NnlrtTrainer *t)
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

/* ---- checkpoints ---- */

/* The run's state now, between two steps, into t->cfg->checkpoint_path. */
static int train_checkpoint(NnlrtTrainer *t)
{
    if (t->ckpt_step == t->step)
        return NNLRT_OK;
    int rc = nnlrt_log_sync(t);
    if (rc != NNLRT_OK)
        return rc;
    NnlrtCheckpoint c = {
        .epoch = t->epoch,
        .step = t->step,
        .next_batch = t->next_batch,
        .shuffle = t->next_batch > 0 ? t->epoch_rng : t->shuffle,
        .batch = t->batch,
        .n_train = t->train->n,
        .shuffled = t->cfg->shuffle,
        .has_log = t->log != NULL,
        .log_crc = (uint32_t)t->log_crc,
        .log_bytes = t->log_bytes,
        .last_loss = t->last_loss,
        .window_loss = t->window_loss,
        .window_steps = t->window_steps,
        .n_sums = 1 + t->m->n_metrics,
        .sums = t->sums,
        .params = t->b.bufs[NNLRT_BUF_PARAMS],
        .states = t->b.states,
        .options = t->cfg->options,
        .n_options = t->cfg->n_options,
    };
    int64_t keep = t->cfg->keep > 0 ? t->cfg->keep : 1;
    if (!nnlrt_checkpoint_write(t->cfg->checkpoint_path, keep, t->m, &c))
        return NNLRT_EIO;
    t->ckpt_step = t->step;
    return NNLRT_OK;
}

/* A checkpoint goes on the run it was written by: the same batches of the same samples. */
static bool train_check_resume(const NnlrtTrainer *t, const NnlrtCheckpoint *c)
{
    const char *path = t->cfg->resume_path;
    if (c->batch != t->batch || c->n_train != t->train->n || c->shuffled != t->cfg->shuffle) {
        nnlrt_error(path, 0, 0, "was written by a run with batches of %lld out of %lld "
                    "training samples%s; this run has batches of %lld out of %lld%s: resume "
                    "with the same data, batch and shuffle", (long long)c->batch,
                    (long long)c->n_train, c->shuffled ? ", shuffled" : ", not shuffled",
                    (long long)t->batch, (long long)t->train->n,
                    t->cfg->shuffle ? ", shuffled" : ", not shuffled");
        return false;
    }
    if (c->epoch < 0 || c->step < 0 || c->next_batch < 0 || c->next_batch >= nnlrt_train_batches(t) ||
        c->window_steps < 0) {
        nnlrt_error(path, 0, 0, "corrupt: its position is out of range (epoch %lld, batch %lld "
                    "of %lld, step %lld)", (long long)c->epoch + 1, (long long)c->next_batch + 1,
                    (long long)nnlrt_train_batches(t), (long long)c->step);
        return false;
    }
    if (c->next_batch == 0 && c->epoch > t->cfg->epochs) {
        nnlrt_error(path, 0, 0, "was written at the end of epoch %lld, beyond the %lld epochs "
                    "of this run", (long long)c->epoch, (long long)t->cfg->epochs);
        return false;
    }
    if (c->next_batch > 0 && c->epoch >= t->cfg->epochs) {
        nnlrt_error(path, 0, 0, "was written in epoch %lld, beyond the %lld epochs of this run",
                    (long long)c->epoch + 1, (long long)t->cfg->epochs);
        return false;
    }
    /* Every epoch has the same batches, so the steps done follow from the position. A CRC
     * is no proof against a file made on purpose: a step count that does not (INT64_MAX
     * would overflow at the next step) is refused. */
    int64_t batches = nnlrt_train_batches(t);
    if (c->epoch > (INT64_MAX - c->next_batch) / batches ||
        c->step != c->epoch * batches + c->next_batch || c->window_steps > c->step) {
        nnlrt_error(path, 0, 0, "corrupt: its step count %lld (%lld in the log's window) does "
                    "not match its position (epoch %lld, batch %lld of %lld)",
                    (long long)c->step, (long long)c->window_steps, (long long)c->epoch + 1,
                    (long long)c->next_batch + 1, (long long)batches);
        return false;
    }
    return true;
}

/* Parameters, optimizer states, position, shuffle generator and sums from the checkpoint
 * (`c` keeps what the log needs). */
static int train_resume(NnlrtTrainer *t, NnlrtCheckpoint *c)
{
    memset(c, 0, sizeof *c);
    c->n_sums = 1 + t->m->n_metrics;
    c->sums = t->sums;
    c->params = t->b.bufs[NNLRT_BUF_PARAMS];
    c->states = t->b.states;
    int rc = nnlrt_checkpoint_read(t->cfg->resume_path, t->m, c);
    if (rc != NNLRT_OK)
        return rc;
    if (!train_check_resume(t, c))
        return NNLRT_EUSER;
    t->epoch = c->epoch;
    t->step = c->step;
    t->next_batch = c->next_batch;
    t->shuffle = c->shuffle;
    t->last_loss = c->last_loss;
    t->window_loss = c->window_loss;
    t->window_steps = c->window_steps;
    t->ckpt_step = c->step;
    if (t->cfg->quiet)
        return NNLRT_OK;
    if (fprintf(t->out, "resuming from %s: step %lld, epoch %lld, batch %lld\n",
                t->cfg->resume_path, (long long)t->step, (long long)t->epoch + 1,
                (long long)t->next_batch + 1) >= 0)
        return NNLRT_OK;
    nnlrt_error(NULL, 0, 0, "cannot write the progress output: %s", strerror(errno));
    return NNLRT_EIO;
}

/* ---- stopping on SIGINT and SIGTERM ----
 *
 * The handler only records the signal. The loop looks at it after every step, writes a
 * checkpoint (when one is configured) and returns 128 + the signal. SA_RESETHAND: a
 * second signal stops the process at once (the checkpoint being written, if any, is then
 * a temp file, and the previous one stays). */

static volatile sig_atomic_t train_signal;

static void train_on_signal(int sig)
{
    if (!train_signal)
        train_signal = sig;
}

typedef struct {
    struct sigaction old_int, old_term;
    bool caught_int, caught_term;
} TrainSignals;

/* Catches sig unless it is ignored (as nohup and background jobs leave SIGINT). */
static bool train_catch(int sig, struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = train_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    if (sigaction(sig, NULL, old) != 0 || old->sa_handler == SIG_IGN)
        return false;
    return sigaction(sig, &sa, NULL) == 0;
}

static void train_signals_catch(TrainSignals *s)
{
    train_signal = 0;
    s->caught_int = train_catch(SIGINT, &s->old_int);
    s->caught_term = train_catch(SIGTERM, &s->old_term);
}

static void train_signals_restore(const TrainSignals *s)
{
    if (s->caught_int)
        sigaction(SIGINT, &s->old_int, NULL);
    if (s->caught_term)
        sigaction(SIGTERM, &s->old_term, NULL);
}

/* The stop's position: "after step 13 (epoch 3, batch 3 of 5)" or "(the end of epoch 2)". */
static void train_stop_position(const NnlrtTrainer *t, char *buf, size_t n)
{
    if (t->next_batch > 0)
        snprintf(buf, n, "after step %lld (epoch %lld, batch %lld of %lld)",
                 (long long)t->step, (long long)t->epoch + 1, (long long)t->next_batch,
                 (long long)nnlrt_train_batches(t));
    else
        snprintf(buf, n, "after step %lld (the end of epoch %lld)", (long long)t->step,
                 (long long)t->epoch);
}

/* A stop: sig is SIGINT, SIGTERM, or -1 for t->stop_after (as SIGINT). */
static int train_stop(NnlrtTrainer *t, int sig)
{
    const NnlrtTrainConfig *cfg = t->cfg;
    const char *why = sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : t->stop_by;
    int code = sig == SIGTERM ? NNLRT_ETERM : NNLRT_EINT;
    char where[128], word[512];
    nnlrt_progress_end_live(t);
    train_stop_position(t, where, sizeof where);
    if (!cfg->checkpoint_path) {
        nnlrt_error(NULL, 0, 0, "stopped by %s %s: no checkpoint was requested, so the run "
                    "cannot be resumed", why, where);
        return code;
    }
    int rc = train_checkpoint(t);
    if (rc != NNLRT_OK)
        return rc;
    nnlrt_error(NULL, 0, 0, "stopped by %s %s; checkpoint written to %s; to resume: %s %s", why,
                where, cfg->checkpoint_path, cfg->resume_hint ? cfg->resume_hint : "--resume",
                nnlrt_shell_word(cfg->checkpoint_path, word, sizeof word));
    return code;
}

/* After a step (and, with epoch_end, its epoch's end): a stop when one was asked for, a
 * checkpoint when one is due. */
static int train_between_steps(NnlrtTrainer *t, bool epoch_end)
{
    const NnlrtTrainConfig *cfg = t->cfg;
    int sig = train_signal;
    if (!sig && t->stop_after > 0 && t->step == t->stop_after)
        sig = -1;
    if (sig)
        return train_stop(t, sig);
    bool due = cfg->checkpoint_path &&
               ((cfg->checkpoint_every_steps > 0 && t->step % cfg->checkpoint_every_steps == 0) ||
                (epoch_end && cfg->checkpoint_every > 0 && t->epoch % cfg->checkpoint_every == 0));
    return due ? train_checkpoint(t) : NNLRT_OK;
}

/* ---- the loop ---- */

/* The rest of epoch t->epoch: from batch t->next_batch (0 but in a resumed run), then the
 * epoch's end (means, validation, the log row, the progress line). */
static int train_epoch(NnlrtTrainer *t)
{
    const NnlrtModel *m = t->m;
    int64_t n = t->train->n, n_batches = nnlrt_train_batches(t), epoch = t->epoch;
    double started = nnlrt_now();
    t->epoch_start = started;
    t->epoch_from = t->next_batch;
    t->epoch_rng = t->shuffle;
    train_order(t);
    while (t->next_batch < n_batches) {
        int64_t start = t->next_batch * t->batch;
        int rc = train_batch(t, epoch, t->order + start, train_min(t->batch, n - start));
        if (rc == NNLRT_OK && ++t->next_batch < n_batches &&
            (rc = nnlrt_progress_batch(t)) == NNLRT_OK)
            rc = train_between_steps(t, false);
        if (rc != NNLRT_OK) {
            nnlrt_progress_end_live(t);
            return rc;
        }
    }
    t->stats.loss = t->sums[0] / (double)n;
    for (int i = 0; i < m->n_metrics; i++)
        t->stats.metrics[i] = t->sums[1 + i] / (double)n;
    memset(t->sums, 0, (size_t)(1 + m->n_metrics) * sizeof(double));
    t->stats.val_loss = NAN;
    if (t->val)
        train_validate(t);
    int rc = nnlrt_log_epoch(t, epoch);
    if (rc == NNLRT_OK)
        rc = nnlrt_progress_epoch(t, epoch, nnlrt_now() - started);
    if (rc != NNLRT_OK)
        return rc;
    t->epoch++;
    t->next_batch = 0;
    return train_between_steps(t, true);
}

/* ---- --verbose ---- */

static const char *train_data_source(const NnlrtDataset *ds)
{
    return ds->source ? ds->source : ds->name ? ds->name : "?";
}

/* What the run will do, before it starts. */
static bool train_describe(const NnlrtTrainer *t)
{
    const NnlrtTrainConfig *c = t->cfg;
    const NnlrtDataset *d = t->train;
    FILE *f = t->out;
    int64_t batches = nnlrt_train_batches(t), last = d->n - (batches - 1) * t->batch;
    double bytes = (double)nnlrt_dataset_bytes(d);
    int unit = bytes < 1e3 ? 0 : bytes < 1e6 ? 1 : bytes < 1e9 ? 2 : 3;
    bool ok = fprintf(f, "data: %lld training samples from %s (%lld input%s, %lld target%s "
                      "each, %s, %.*f %s)", (long long)d->n, train_data_source(d),
                      (long long)d->x_size, d->x_size == 1 ? "" : "s", (long long)d->y_size,
                      d->y_size == 1 ? "" : "s", nnlrt_type_name(d->x_type), unit ? 1 : 0,
                      bytes / pow(1e3, unit), (const char *[]){"B", "kB", "MB", "GB"}[unit])
              >= 0;
    if (t->val)
        ok = ok && fprintf(f, "; %lld validation samples from %s", (long long)t->val->n,
                           train_data_source(t->val)) >= 0;
    ok = ok && fprintf(f, "\nbatches: %lld per epoch of %lld samples (the last of %lld), %s; "
                       "%lld epoch%s, %lld steps\n", (long long)batches, (long long)t->batch,
                       (long long)last, c->shuffle ? "shuffled" : "in file order",
                       (long long)c->epochs, c->epochs == 1 ? "" : "s",
                       (long long)(c->epochs * batches)) >= 0;
    if (c->log_path)
        ok = ok && fprintf(f, "log: %s (%s)\n", c->log_path,
                           c->log_every ? "a row every log_every steps" : "a row per epoch") >= 0;
    if (c->plot_path)
        ok = ok && fprintf(f, "plot: %s, when the run ends%s\n", c->plot_path,
                           c->log_path ? "" : " (the log's rows kept in memory)") >= 0;
    if (c->checkpoint_path)
        ok = ok && fprintf(f, "checkpoint: %s\n", c->checkpoint_path) >= 0;
    return ok && fprintf(f, "progress: %s\n", t->live ? "live, on a terminal"
                                                       : "a line per epoch") >= 0;
}

/* What this process did, when the run ends. */
static bool train_totals(const NnlrtTrainer *t)
{
    double secs = nnlrt_now() - t->run_start;
    return fprintf(t->out, "done: %lld steps, %lld samples in %.2f s (%.0f samples/s)\n",
                   (long long)t->step, (long long)t->run_samples, secs,
                   secs > 0 ? (double)t->run_samples / secs : 0) >= 0;
}

/* The plot of a run that trained (to the end, stopped, or diverged): from the log file,
 * which holds the whole run, or the rows kept in memory. */
static int train_plot(NnlrtTrainer *t, int rc)
{
    const char *svg = t->cfg->plot_path;
    if (!svg || !t->log_started ||
        !(rc == NNLRT_OK || rc == NNLRT_EINT || rc == NNLRT_ETERM || rc == NNLRT_EDIVERGED))
        return rc;
    int done = t->cfg->log_path ? nnlrt_plot(t->cfg->log_path, svg)
                                : nnlrt_plot_text("the training log", t->mem_log.data,
                                                  t->mem_log.len, svg);
    if (done == NNLRT_OK && t->cfg->verbose && fprintf(t->out, "plot: wrote %s\n", svg) < 0)
        done = nnlrt_progress_failed();
    return rc == NNLRT_OK ? done : rc;
}

/* Epochs until the last, then the final checkpoint, with SIGINT and SIGTERM caught. */
static int train_run(NnlrtTrainer *t)
{
    TrainSignals s;
    train_signals_catch(&s);
    t->run_start = nnlrt_now();
    int rc = t->cfg->verbose && !train_describe(t) ? nnlrt_progress_failed() : NNLRT_OK;
    while (rc == NNLRT_OK && t->epoch < t->cfg->epochs)
        rc = train_epoch(t);
    if (rc == NNLRT_OK && t->cfg->checkpoint_path)
        rc = train_checkpoint(t);
    if (rc == NNLRT_OK && t->cfg->verbose && !train_totals(t))
        rc = nnlrt_progress_failed();
    train_signals_restore(&s);
    return rc;
}

/* ---- the outputs, before the first step ---- */

/* Every file the run will write, created the way its write will (atomic_file.c), so that a
 * path that cannot be written fails now and not after the last epoch. */
static bool train_check_outputs(const NnlrtTrainConfig *cfg)
{
    static const char *const what[] = {
        "cannot write the checkpoint: %s (creating its temporary file, checked before training)",
        "cannot open the log for writing: %s",
        "cannot write the plot: %s (creating its temporary file, checked before training)",
        ("cannot write the parameter file: %s (creating its temporary file, checked before "
         "training)"),
    };
    const char *paths[] = {cfg->checkpoint_path, cfg->log_path, cfg->plot_path, cfg->dump_path};
    for (int i = 0; i < 4; i++) {
        /* the log and the parameter file are written in place to a device or a pipe */
        int err = paths[i] ? nnlrt_atomic_probe(paths[i], i == 1 || i == 3) : 0;
        if (err) {
            nnlrt_error(paths[i], 0, 0, what[i], strerror(err));
            return false;
        }
    }
    return true;
}

/* A run that does not resume replaces no checkpoint it did not write: one already at the
 * path stops it before the first step, untouched, unless cfg->fresh (--fresh) says to start
 * over. Checked under the lock, so that a run writing it now is named instead. */
static bool train_check_fresh(const NnlrtModel *m, const NnlrtTrainConfig *cfg)
{
    if (!cfg->checkpoint_path || cfg->resume_path || cfg->fresh)
        return true;
    int64_t step = 0;
    NnlrtCkptFound found = nnlrt_checkpoint_found(cfg->checkpoint_path, m, &step);
    if (found == NNLRT_FOUND_NOTHING)
        return true;
    char word[1024];
    const char *path = nnlrt_shell_word(cfg->checkpoint_path, word, sizeof word);
    if (found == NNLRT_FOUND_THIS_MODEL)
        nnlrt_error(cfg->checkpoint_path, 0, 0, "a checkpoint is already there (step %lld of a "
                    "run of this model): go on from it with --resume %s, or start over with "
                    "--fresh (which replaces it)", (long long)step, path);
    else
        nnlrt_error(cfg->checkpoint_path, 0, 0, "%s is already there, where this run would "
                    "write its checkpoint: start over with --fresh (which replaces it), or "
                    "give this run another checkpoint", found == NNLRT_FOUND_OTHER_MODEL
                    ? "another model's checkpoint" : "a file that is not a checkpoint");
    return false;
}

/* The checkpoint's and the log's locks (atomic_file.c), held while the run lasts: two runs
 * never write the same checkpoint or log. */
typedef struct {
    NnlrtLock ckpt, log;
} TrainLocks;

static void train_unlock_outputs(TrainLocks *l)
{
    nnlrt_lock_release(&l->log);
    nnlrt_lock_release(&l->ckpt);
}

static int train_lock_one(NnlrtLock *l, const char *path, const char *what)
{
    long holder = 0;
    int got = nnlrt_lock_acquire(l, path, &holder);
    if (got == NNLRT_LOCK_OK)
        return NNLRT_OK;
    if (got == NNLRT_LOCK_ERROR) {
        nnlrt_error(path, 0, 0, "cannot create the lock file '%s.lock' of the %s: %s", path,
                    what, strerror(errno));
        return NNLRT_EIO;
    }
    char pid[32] = "a process";
    if (holder > 0)
        snprintf(pid, sizeof pid, "process %ld", holder);
    nnlrt_error(path, 0, 0, "the %s is in use by another run (%s holds '%s.lock'): wait for it "
                "to end, or give this run another %s", what, pid, path, what);
    return NNLRT_EUSER;
}

/* Running out of memory exits: the lock files go first (alloc.c). */
static void train_unlock_on_oom(void *ctx)
{
    train_unlock_outputs(ctx);
}

static int train_lock_outputs(const NnlrtTrainConfig *cfg, TrainLocks *l)
{
    l->ckpt.fd = l->log.fd = -1;
    l->ckpt.file = l->log.file = NULL;
    nnlrt_set_oom_cleanup(train_unlock_on_oom, l);
    int rc = cfg->checkpoint_path ? train_lock_one(&l->ckpt, cfg->checkpoint_path, "checkpoint")
                                  : NNLRT_OK;
    bool same = cfg->checkpoint_path && cfg->log_path &&
                strcmp(cfg->checkpoint_path, cfg->log_path) == 0;
    if (rc == NNLRT_OK && cfg->log_path && !same)
        rc = train_lock_one(&l->log, cfg->log_path, "log");
    if (rc != NNLRT_OK) {
        train_unlock_outputs(l);
        nnlrt_set_oom_cleanup(NULL, NULL);
    }
    return rc;
}

/* NNL_STOP_AFTER=N (docs/cli.md): the step after which to stop as on SIGINT, a test hook
 * for nnlc and trainers alike; 0 when unset, -1 after reporting a value that is not a whole
 * number of at least 1. */
static int64_t train_stop_after_env(void)
{
    const char *v = getenv("NNL_STOP_AFTER");
    if (!v || !*v)
        return 0;
    char *end = NULL;
    errno = 0;
    long long n = *v >= '0' && *v <= '9' ? strtoll(v, &end, 10) : 0;
    if (n >= 1 && !errno && !*end)
        return n;
    nnlrt_error(NULL, 0, 0, "NNL_STOP_AFTER must be a whole number of at least 1 (a step), "
                "not '%s'", v);
    return -1;
}

int nnlrt_train(const NnlrtModel *m, const NnlrtTrainConfig *cfg, const NnlrtDataset *train,
                const NnlrtDataset *val)
{
    int64_t stop_env = train_stop_after_env();
    if (stop_env < 0)
        return NNLRT_EIO;
    if (!train_check_config(m, cfg) || !nnlrt_check_dataset(m, train) ||
        (val && !nnlrt_check_dataset(m, val)))
        return NNLRT_EUSER;
    /* what a run killed while writing its outputs, or probing them, left (atomic_file.c) */
    const char *outputs[] = {cfg->checkpoint_path, cfg->dump_path, cfg->plot_path,
                             cfg->log_path};
    for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++)
        if (outputs[i])
            nnlrt_atomic_clean_stale(outputs[i]);
    if (!train_check_outputs(cfg))
        return NNLRT_EIO;
    TrainLocks locks;
    int rc = train_lock_outputs(cfg, &locks);
    if (rc != NNLRT_OK)
        return rc;
    if (!train_check_fresh(m, cfg)) {
        train_unlock_outputs(&locks);
        nnlrt_set_oom_cleanup(NULL, NULL);
        return NNLRT_EUSER;
    }
    NnlrtTrainer t;
    train_setup(&t, m, cfg, train, val);
    t.stop_after = stop_env ? stop_env : cfg->stop_after_steps;
    t.stop_by = stop_env ? "NNL_STOP_AFTER" : "stop_after_steps";
    NnlrtCheckpoint from;
    rc = cfg->resume_path ? train_resume(&t, &from) : train_init_params(&t);
    if (rc == NNLRT_OK)
        rc = nnlrt_log_open(&t, cfg->resume_path ? &from : NULL);
    if (rc == NNLRT_OK)
        rc = train_run(&t);
    rc = nnlrt_log_close(&t, rc);
    rc = train_plot(&t, rc);
    if (rc == NNLRT_OK && cfg->dump_path)
        rc = nnlrt_params_dump(m, cfg->dump_path, t.b.bufs[NNLRT_BUF_PARAMS]);
    train_free(&t);
    train_unlock_outputs(&locks);
    nnlrt_set_oom_cleanup(NULL, NULL);
    return rc;
}
