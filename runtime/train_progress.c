/* train_progress.c — what a training run prints while it runs: a plain line per epoch; on
 * a terminal the line is drawn while the epoch runs (after its first batch, then at most
 * every PROGRESS_INTERVAL seconds) with '\r' and spaces over the previous one, no escape
 * sequences, and ends as the plain line. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nnlrt_int.h"

static const double PROGRESS_INTERVAL = 0.1; /* seconds between two live progress lines */

static int64_t progress_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

double nnlrt_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int progress_digits(int64_t n)
{
    int d = 1;
    for (; n >= 10; n /= 10)
        d++;
    return d;
}

int nnlrt_progress_failed(void)
{
    nnlrt_error(NULL, 0, 0, "cannot write the progress output: %s", strerror(errno));
    return NNLRT_EIO;
}

/* The line built in t->line, then spaces over what is left of the live line, then `end`;
 * t->line is emptied. */
static int progress_show(NnlrtTrainer *t, const char *end)
{
    int len = (int)t->line.len, pad = t->live_width > len ? t->live_width - len : 0;
    bool ok = fprintf(t->out, "%s%s%*s%s", t->live ? "\r" : "", nnlrt_str_cstr(&t->line), pad,
                      "", end) >= 0 &&
              fflush(t->out) == 0;
    nnlrt_str_clear(&t->line);
    t->live_width = *end == '\n' ? 0 : len;
    return ok ? NNLRT_OK : nnlrt_progress_failed();
}

/* "12s", "3m05s", "2h07m" */
static void progress_duration(double s, char *buf, size_t n)
{
    long v = s < 1e9 ? (long)(s + 0.5) : 999999999;
    if (v < 60)
        snprintf(buf, n, "%lds", v);
    else if (v < 3600)
        snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
    else
        snprintf(buf, n, "%ldh%02ldm", v / 3600, v / 60 % 60);
}

/* On a terminal, while an epoch runs:
 * epoch  3/10  batch  120/469  loss 0.4123  5230 samples/s  ETA 12s */
static int progress_draw_live(NnlrtTrainer *t, double now)
{
    int64_t n = t->train->n, batches = nnlrt_train_batches(t);
    int64_t done = progress_min(t->next_batch * t->batch, n);
    int64_t here = done - progress_min(t->epoch_from * t->batch, n);
    double secs = now - t->epoch_start, rate = secs > 0 ? (double)here / secs : 0;
    char eta[32] = "?";
    if (rate > 0)
        progress_duration((double)(n - done) / rate, eta, sizeof eta);
    nnlrt_str_printf(&t->line, "epoch %*lld/%lld  batch %*lld/%lld  loss %.4g  %.0f samples/s  ETA %s",
                  progress_digits(t->cfg->epochs), (long long)t->epoch + 1,
                  (long long)t->cfg->epochs, progress_digits(batches), (long long)t->next_batch,
                  (long long)batches, t->sums[0] / (double)done, rate, eta);
    t->last_draw = now;
    return progress_show(t, "");
}

/* After a batch: the live line, when it is due. */
int nnlrt_progress_batch(NnlrtTrainer *t)
{
    if (!t->live || t->next_batch >= nnlrt_train_batches(t))
        return NNLRT_OK;
    double now = nnlrt_now();
    if (t->live_width > 0 && now - t->last_draw < PROGRESS_INTERVAL)
        return NNLRT_OK;
    return progress_draw_live(t, now);
}

/* Before a message on stderr: the live line ends where it is. */
void nnlrt_progress_end_live(NnlrtTrainer *t)
{
    if (t->live_width > 0 && fputc('\n', t->out) != EOF)
        fflush(t->out);
    t->live_width = 0;
}

/* epoch  3/10  loss 0.412345  accuracy 0.8421  val_loss 0.43  val_accuracy 0.84  (0.52 s) */
int nnlrt_progress_epoch(NnlrtTrainer *t, int64_t epoch, double seconds)
{
    if (t->cfg->quiet)
        return NNLRT_OK;
    const NnlrtModel *m = t->m;
    const NnlrtEpochStats *s = &t->stats;
    nnlrt_str_printf(&t->line, "epoch %*lld/%lld  loss %.6g", progress_digits(t->cfg->epochs),
                  (long long)epoch + 1, (long long)t->cfg->epochs, s->loss);
    for (int i = 0; i < m->n_metrics; i++)
        nnlrt_str_printf(&t->line, "  %s %.4g", m->metric_names[i], s->metrics[i]);
    if (t->val) {
        nnlrt_str_printf(&t->line, "  val_loss %.6g", s->val_loss);
        for (int i = 0; i < m->n_metrics; i++)
            nnlrt_str_printf(&t->line, "  val_%s %.4g", m->metric_names[i], s->val_metrics[i]);
    }
    nnlrt_str_printf(&t->line, "  (%.2f s)", seconds);
    return progress_show(t, "\n");
}