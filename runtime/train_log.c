/* train_log.c — the training log: a CSV row per epoch or every log_every steps
 * (docs/cli.md), in a file or, for the plot, in memory.
 *
 * A row is built in t->row and written whole, so that the log's length and CRC32 are
 * known at every checkpoint. A resumed run checks the log against them, cuts off what the
 * stopped run wrote after its checkpoint (rows that will be written again) and appends:
 * the rows before stay, none is written twice. */
#define _POSIX_C_SOURCE 200809L /* fsync, ftruncate */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "nnlrt_int.h"

static int log_failed(NnlrtTrainer *t)
{
    nnlrt_error(t->cfg->log_path, 0, 0, "cannot write the log: %s", strerror(errno));
    return NNLRT_EIO;
}

/* Rows are written to the log file, or kept in memory for the plot, or neither. */
static bool log_enabled(const NnlrtTrainer *t)
{
    return t->log || t->log_in_memory;
}

/* Ends the row and writes it. */
static int log_row_write(NnlrtTrainer *t)
{
    nnlrt_str_putc(&t->row, '\n');
    size_t n = t->row.len;
    int rc = NNLRT_OK;
    if (!t->log)
        nnlrt_str_putn(&t->mem_log, t->row.data, n);
    else if (fwrite(t->row.data, 1, n, t->log) != n)
        rc = log_failed(t);
    else {
        t->log_crc = crc32(t->log_crc, (const Bytef *)t->row.data, (uInt)n);
        t->log_bytes += n;
    }
    nnlrt_str_clear(&t->row);
    return rc;
}

/* epoch,step,loss,<metrics>[,val_loss,val_<metrics>] */
static int log_header(NnlrtTrainer *t)
{
    const NnlrtModel *m = t->m;
    nnlrt_str_printf(&t->row, "epoch,step,loss");
    for (int i = 0; i < m->n_metrics; i++)
        nnlrt_str_printf(&t->row, ",%s", m->metric_names[i]);
    if (t->val) {
        nnlrt_str_printf(&t->row, ",val_loss");
        for (int i = 0; i < m->n_metrics; i++)
            nnlrt_str_printf(&t->row, ",val_%s", m->metric_names[i]);
    }
    return log_row_write(t);
}

/* The first c->log_bytes bytes of f: there, and with the CRC the checkpoint recorded. */
static int log_check_old(NnlrtTrainer *t, FILE *f, const NnlrtCheckpoint *c)
{
    const char *path = t->cfg->log_path;
    uLong crc = crc32(0, Z_NULL, 0);
    uint64_t got = 0;
    char buf[1 << 14];
    for (size_t k = 1; got < c->log_bytes && k > 0; got += k) {
        uint64_t left = c->log_bytes - got;
        k = fread(buf, 1, left < sizeof buf ? (size_t)left : sizeof buf, f);
        crc = crc32(crc, (const Bytef *)buf, (uInt)k);
    }
    if (ferror(f)) {
        nnlrt_error(path, 0, 0, "cannot read the log: %s", strerror(errno));
        return NNLRT_EIO;
    }
    if (got == c->log_bytes && (uint32_t)crc == c->log_crc) {
        t->log_crc = crc;
        t->log_bytes = got;
        return NNLRT_OK;
    }
    nnlrt_error(path, 0, 0, "is not the log of the run being resumed: it had %llu bytes when "
                "the checkpoint was written, and %s; give another log file (one that does "
                "not exist is started afresh)", (unsigned long long)c->log_bytes,
                got < c->log_bytes ? "now has fewer" : "its first ones differ now");
    return NNLRT_EUSER;
}

/* Resuming from a checkpoint that has a log: that log, cut to its length then. A missing
 * log is started afresh (t->log stays NULL). */
static int log_continue(NnlrtTrainer *t, const NnlrtCheckpoint *c)
{
    const char *path = t->cfg->log_path;
    FILE *f = fopen(path, "r+b");
    if (!f && errno == ENOENT)
        return NNLRT_OK;
    if (!f) {
        nnlrt_error(path, 0, 0, "cannot open the log for writing: %s", strerror(errno));
        return NNLRT_EIO;
    }
    int rc = log_check_old(t, f, c);
    if (rc == NNLRT_OK && (fflush(f) != 0 || ftruncate(fileno(f), (off_t)c->log_bytes) != 0 ||
                           fseek(f, 0, SEEK_END) != 0)) {
        t->log = f;
        return log_failed(t);
    }
    if (rc != NNLRT_OK)
        fclose(f);
    else
        t->log = f;
    return rc;
}

int nnlrt_log_open(NnlrtTrainer *t, const NnlrtCheckpoint *from)
{
    if (!t->cfg->log_path && t->cfg->plot_path) {
        t->log_in_memory = true;
        t->log_started = true;
        return log_header(t);
    }
    if (!t->cfg->log_path)
        return NNLRT_OK;
    if (from && from->has_log) {
        int rc = log_continue(t, from);
        t->log_started = rc == NNLRT_OK && t->log;
        if (rc != NNLRT_OK || t->log)
            return rc;
    }
    t->log = fopen(t->cfg->log_path, "w");
    if (!t->log) {
        nnlrt_error(t->cfg->log_path, 0, 0, "cannot open the log for writing: %s",
                    strerror(errno));
        return NNLRT_EIO;
    }
    t->log_started = true;
    return log_header(t);
}

/* Before a checkpoint: the log's bytes on disk, since the checkpoint records them. A log
 * that cannot be synced (a pipe, a terminal) says EINVAL. */
int nnlrt_log_sync(NnlrtTrainer *t)
{
    if (!t->log)
        return NNLRT_OK;
    if (fflush(t->log) != 0 || (fsync(fileno(t->log)) != 0 && errno != EINVAL))
        return log_failed(t);
    return NNLRT_OK;
}

/* Closes the log; a failure there turns a successful run into an I/O error. */
int nnlrt_log_close(NnlrtTrainer *t, int rc)
{
    if (!t->log)
        return rc;
    int closed = fclose(t->log);
    t->log = NULL;
    if (closed != 0 && rc == NNLRT_OK)
        return log_failed(t);
    return rc;
}

/* A logged number: ",%.9g" when training in float32, ",%.17g" in float64, so that a
 * float64 log resolves what the run computes (as the parameter files do). */
static const char *log_number_format(const NnlrtTrainer *t)
{
    return t->m->elem_size == 8 ? ",%.17g" : ",%.9g";
}

int nnlrt_log_epoch(NnlrtTrainer *t, int64_t epoch)
{
    if (!log_enabled(t) || t->cfg->log_every > 0)
        return NNLRT_OK;
    const NnlrtEpochStats *s = &t->stats;
    const char *num = log_number_format(t);
    nnlrt_str_printf(&t->row, "%lld,%lld", (long long)epoch + 1, (long long)t->step);
    nnlrt_str_printf(&t->row, num, s->loss);
    for (int i = 0; i < t->m->n_metrics; i++)
        nnlrt_str_printf(&t->row, num, s->metrics[i]);
    if (t->val) {
        nnlrt_str_printf(&t->row, num, s->val_loss);
        for (int i = 0; i < t->m->n_metrics; i++)
            nnlrt_str_printf(&t->row, num, s->val_metrics[i]);
    }
    return log_row_write(t);
}

/* Every log_every steps: the mean batch loss of those steps; metrics and validation are
 * only measured per epoch, so their fields stay empty. */
int nnlrt_log_step(NnlrtTrainer *t, int64_t epoch, double loss)
{
    if (!log_enabled(t) || t->cfg->log_every == 0)
        return NNLRT_OK;
    t->window_loss += loss;
    if (++t->window_steps < t->cfg->log_every)
        return NNLRT_OK;
    double mean = t->window_loss / (double)t->window_steps;
    t->window_loss = 0;
    t->window_steps = 0;
    nnlrt_str_printf(&t->row, "%lld,%lld", (long long)epoch + 1, (long long)t->step);
    nnlrt_str_printf(&t->row, log_number_format(t), mean);
    int empty = t->m->n_metrics + (t->val ? 1 + t->m->n_metrics : 0);
    for (int i = 0; i < empty; i++)
        nnlrt_str_printf(&t->row, ",");
    return log_row_write(t);
}