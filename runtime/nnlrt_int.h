/* nnlrt_int.h — the internal header of libnnlrt, a section per file. Generated code never
 * sees it; the public interface is nnlrt.h. */
#ifndef NNLRT_INT_H
#define NNLRT_INT_H

#include <stdarg.h>

#include "nnlrt.h"
#include "nnlrt_util.h" /* atomic_file.c and str.c: nnlc uses them too */

#define NNLRT_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum { NNLRT_ALIGN = 64 }; /* arenas and buffers: one cache line, any SIMD width */

/* ---- alloc.c ---- */

/* n * elem, or "out of memory" and exit when that does not fit in a size_t. */
size_t nnlrt_array_bytes(size_t n, size_t elem);

/* ---- parallel.c: tasks on the calling thread and the runtime's workers ---- */

typedef void (*NnlrtTaskFn)(void *ctx, int64_t task);
/* Runs fn(ctx, t) for every t in [0, ntasks), each once, on any thread, and returns when
 * all are done. Tasks must write disjoint memory; per-thread scratch is _Thread_local. */
void nnlrt_parallel(int64_t ntasks, NnlrtTaskFn fn, void *ctx);
int nnlrt_threads(void); /* the calling thread and the workers (starts them) */

/* ---- error.c ---- */

void nnlrt_verror(const char *file, long line, long col, const char *fmt, va_list ap);

/* ---- csv.c: the strict row reader behind data files and parameter files ----
 *
 * A file is read whole, then row by row: one row per line ("\n" or "\r\n"), fields split
 * at the delimiter, blanks (space, tab) around a field dropped, "..." quoting with ""
 * for a quote. Blank lines after the last row are ignored; a blank line before it is an
 * error. Positions are byte offsets into `data` until a message needs line:col. */

typedef struct {
    size_t at;   /* byte offset of the field's first non-blank character */
    size_t text; /* offset of its NUL-terminated text (quotes removed) in NnlrtCsv.buf */
} NnlrtCsvField;

typedef struct {
    const char *path;
    char delim;
    char *data;
    size_t len;
    size_t pos;        /* start of the next line */
    size_t end;        /* end of the last non-blank line */
    long line;         /* the row just read, 1-based */
    size_t line_start; /* its first byte */
    size_t line_end;   /* its end, before the "\n" or "\r\n" */
    NnlrtCsvField *fields;
    int n_fields, cap_fields;
    NnlrtStr buf;      /* the row's fields' texts, each NUL-terminated */
} NnlrtCsv;

/* Reads the whole file; false after reporting when it cannot be opened or read. */
bool nnlrt_csv_open(NnlrtCsv *c, const char *path, char delim);
/* The same over a copy of text[0..len) held in memory; `name` stands for the file in
 * messages. */
void nnlrt_csv_open_text(NnlrtCsv *c, const char *name, const char *text, size_t len,
                         char delim);
/* 1: a row was read into c->fields; 0: no rows left; -1: an error was reported. */
int nnlrt_csv_next(NnlrtCsv *c);
const char *nnlrt_csv_text(const NnlrtCsv *c, int field);
/* Field `field` of the current row as a finite number (finite as a float too when
 * `single`); reports and returns false otherwise. */
bool nnlrt_csv_number(const NnlrtCsv *c, int field, bool single, double *v);
/* Reports an error at byte offset `at` of the current row. */
void nnlrt_csv_error(const NnlrtCsv *c, size_t at, const char *fmt, ...) NNLRT_PRINTF(3, 4);
/* Lines in the file: an upper bound on its rows. */
int64_t nnlrt_csv_max_rows(const NnlrtCsv *c);
void nnlrt_csv_close(NnlrtCsv *c);

/* ---- data.c ---- */

/* Element i of an array of type t, as a double. */
double nnlrt_value(NnlrtType t, const void *data, int64_t i);
/* A loader's `scale`: finite and not 0, else reported. */
bool nnlrt_check_scale(double scale);

/* ---- data_file.c: binary data files, plain or .gz, read with byte offsets ----
 *
 * Offsets (`at`) count bytes of the uncompressed data; messages read
 * "PATH: error: at byte N: ..." ("at byte N (uncompressed)" for a .gz). */

typedef struct {
    const char *path;
    struct gzFile_s *gz;  /* zlib's gzFile */
    bool compressed;      /* starts with the gzip magic */
    bool cut;             /* the .gz stream ended before its end marker */
    int64_t file_size;    /* bytes on disk; -1 when not a regular file */
    int64_t at;           /* bytes of data read so far */
} NnlrtFile;

/* Opens for reading; false after reporting ("cannot open the file: ..."). */
bool nnlrt_file_open(NnlrtFile *f, const char *path);
void nnlrt_file_close(NnlrtFile *f);
/* Reports "at byte `at`: msg" against the file. */
void nnlrt_file_error(const NnlrtFile *f, int64_t at, const char *fmt, ...) NNLRT_PRINTF(3, 4);
/* Up to n bytes: fewer only at the end of the data (f->cut says whether a .gz stream was
 * cut off there); -1 after reporting a read error or corrupt .gz data. */
int64_t nnlrt_file_read(NnlrtFile *f, void *buf, int64_t n);
/* Exactly n bytes of a header, or reports "file truncated in the header (what)". */
bool nnlrt_file_header(NnlrtFile *f, void *buf, int64_t n, const char *what);
/* Before allocating: for a plain file, that exactly `bytes` are left after the header
 * (reporting "file truncated: ..." or "N bytes of unexpected data after the last LAST"). A
 * .gz passes: its size is only known once read. */
bool nnlrt_file_check_size(const NnlrtFile *f, int64_t bytes, const char *last);
/* Reads the `bytes` of data the header promises into a new allocation (*out, exactly that
 * size; while a .gz is read, at most max(16 MB, twice what it holds)), then checks that nothing
 * follows them (and the .gz trailer). False after reporting. */
bool nnlrt_file_data(NnlrtFile *f, int64_t bytes, const char *last, void **out);

/* ---- params.c: parameter files (init_path, dump_path) ----
 *
 * One line per tensor, `name,v1,v2,...`, values row-major; every tensor of the model
 * exactly once, in any order. */

/* Loads into the parameter arena `params` (elements of m->elem_size bytes). Returns 0,
 * or NNLRT_EUSER / NNLRT_EIO after reporting. */
int nnlrt_params_load(const NnlrtModel *m, const char *path, void *params);
/* Writes with %.9g (float) or %.17g (double): enough digits to read back the same bits. */
int nnlrt_params_dump(const NnlrtModel *m, const char *path, const void *params);

/* ---- train_loop.c: the buffer table, shared with gradcheck.c ---- */

typedef struct {
    int64_t max_batch;
    void **bufs;   /* m->n_bufs entries: params, grads, x, y, then the model's own */
    void **states; /* m->n_states optimizer state arrays, each n_params */
} NnlrtBuffers;

/* Allocates every buffer zeroed and 64-byte aligned, sized for batches of max_batch. */
void nnlrt_buffers_init(NnlrtBuffers *b, const NnlrtModel *m, int64_t max_batch);
void nnlrt_buffers_free(NnlrtBuffers *b, const NnlrtModel *m);
/* Copies samples idx[0..count) of ds into bufs[X] and bufs[Y], converted from their stored
 * types to the model's element type, inputs times ds->x_scale: the only place data set
 * values are converted in bulk. */
void nnlrt_buffers_gather(NnlrtBuffers *b, const NnlrtModel *m, const NnlrtDataset *ds,
                          const int64_t *idx, int64_t count);
/* The generator the parameters are initialised from. */
void nnlrt_init_rng(NnlrtRng *rng, uint64_t seed);

/* ---- checkpoint.c, checkpoint_files.c: crash-safe checkpoints (the format: checkpoint.c
 * and docs/formats.md; the files: checkpoint_files.c) ---- */

enum {
    NNLRT_CKPT_VERSION = 3,
    NNLRT_CKPT_HEADER = 168,
    NNLRT_CKPT_MAX_OPTIONS = 1 << 20, /* bytes of the run's options, at most */
};

/* A run's state between two steps, everything needed to go on bit-exactly. The arrays
 * belong to the caller (the trainer's buffers): written from, or read into. */
typedef struct {
    int64_t epoch;          /* the epoch in progress, from 0 (epochs done when next_batch is 0) */
    int64_t step;           /* updates done */
    int64_t next_batch;     /* index of the next batch of `epoch` */
    NnlrtRng shuffle;       /* the shuffle generator at the start of `epoch` */
    int64_t batch, n_train; /* the run's batch size and training samples */
    bool shuffled;          /* the run shuffles */
    bool has_log;           /* the run writes a log: */
    uint32_t log_crc;       /*   CRC32 of its first log_bytes bytes */
    uint64_t log_bytes;     /*   its length when the checkpoint was written */
    double last_loss;       /* the last finite batch loss, NaN before the first */
    double window_loss;     /* per-step log rows: batch losses since the last row */
    int64_t window_steps;
    int n_sums;             /* 1 + n_metrics: set by the caller, also to read */
    double *sums;           /* the epoch's training sums so far */
    void *params;           /* n_params elements; NULL to read only the header (verify) */
    void **states;          /* n_states arenas of n_params */
    const char *const *options; /* the run's options, written (NnlrtTrainConfig.options) */
    int n_options;
} NnlrtCheckpoint;

/* Writes atomically, keeping the `keep` (>= 1) most recent as <path>, <path>.1, ...
 * False after reporting; <path> is then the previous checkpoint, byte for byte (unless
 * only the final fsync of the directory failed, which the message says). */
bool nnlrt_checkpoint_write(const char *path, int64_t keep, const NnlrtModel *m,
                            const NnlrtCheckpoint *c);
/* The checkpoint's bytes, in the format (checkpoint.c), into an opened atomic write. */
bool nnlrt_checkpoint_put(NnlrtAtomic *a, const NnlrtModel *m, const NnlrtCheckpoint *c);
/* Verifies <path> against m (magic, version, size, CRC, signature, then the metrics), then
 * fills c: its fields, and its arrays unless c->params is NULL. Returns 0, or NNLRT_EIO
 * (cannot open or read) / NNLRT_EUSER (refused) after reporting. */
int nnlrt_checkpoint_read(const char *path, const NnlrtModel *m, NnlrtCheckpoint *c);

/* Whether options of the run fit in a checkpoint (NNLRT_CKPT_MAX_OPTIONS bytes). */
bool nnlrt_checkpoint_options_fit(const char *const *options, int n);

/* What is at `path`, where a run that does not resume would write its checkpoint, from the
 * header alone (magic, version, model signature), reporting nothing: nothing there, a
 * checkpoint of m (*step: its updates done), another model's (or format's) checkpoint, or a
 * file that is not a checkpoint (also one that cannot be read). */
typedef enum {
    NNLRT_FOUND_NOTHING,
    NNLRT_FOUND_THIS_MODEL,
    NNLRT_FOUND_OTHER_MODEL,
    NNLRT_FOUND_NOT_CHECKPOINT,
} NnlrtCkptFound;
NnlrtCkptFound nnlrt_checkpoint_found(const char *path, const NnlrtModel *m, int64_t *step);

/* Failure injection for tests: the next checkpoint write fails at `step` as if the call
 * there had failed with errno `err` (once; NNLRT_CKPT_NONE turns it off). The steps:
 * nnlrt_util.h. */
void nnlrt_checkpoint_fail_at(NnlrtCkptStep step, int err);

/* ---- train_loop.c, train_log.c, train_progress.c: one run of nnlrt_train ----
 *
 * train_loop.c runs the epochs, the checkpoints and the stops; train_log.c writes the CSV
 * log; train_progress.c draws the progress lines. They share the run's state. */

typedef struct {
    const NnlrtModel *m;
    const NnlrtTrainConfig *cfg;
    const NnlrtDataset *train, *val;
    FILE *out;
    NnlrtBuffers b;
    int64_t batch;        /* training batch size */
    int64_t val_batch;
    int64_t *order;       /* the epoch's sample order */
    int64_t *identity;    /* 0, 1, 2, ...: validation order */
    NnlrtRng shuffle;
    NnlrtRng epoch_rng;   /* the shuffle generator at the start of the epoch */
    int64_t epoch;        /* the epoch in progress, from 0 */
    int64_t next_batch;   /* the next batch of that epoch */
    int64_t ckpt_step;    /* step of the last checkpoint written or resumed from, or -1 */
    double *batch_sums;   /* 1 + n_metrics: what grad added for one batch */
    double *sums;         /* the same over the epoch */
    double *val_sums;
    NnlrtEpochStats stats;
    int64_t step;         /* updates so far */
    double last_loss;     /* the last finite batch loss, NaN before the first */
    int64_t stop_after;   /* stop after this step as on SIGINT (0: never): */
    const char *stop_by;  /*   cfg->stop_after_steps, or NNL_STOP_AFTER (docs/cli.md) */
    /* the log (train_log.c) */
    FILE *log;
    double window_loss;   /* sum of batch losses since the last per-step log row */
    int64_t window_steps;
    NnlrtStr row;         /* the log row being built */
    unsigned long log_crc; /* CRC32 of the log's bytes so far (zlib's uLong) */
    uint64_t log_bytes;
    bool log_started;     /* the log (file or memory) has its header */
    bool log_in_memory;   /* no log file: the rows are kept in mem_log for the plot */
    NnlrtStr mem_log;
    /* the progress lines (train_progress.c) */
    NnlrtStr line;        /* the progress line being built */
    bool live;            /* progress drawn in place: out is a terminal */
    int live_width;       /* characters of the live line shown, 0: none */
    double epoch_start;   /* when this process began the epoch, at batch epoch_from */
    int64_t epoch_from;
    double last_draw;
    double run_start;     /* --verbose totals: this process's time and samples */
    int64_t run_samples;
} NnlrtTrainer;

/* Batches per epoch. */
int64_t nnlrt_train_batches(const NnlrtTrainer *t);

/* train_log.c. `from`: the checkpoint a resumed run goes on from, else NULL. */
int nnlrt_log_open(NnlrtTrainer *t, const NnlrtCheckpoint *from);
/* Before a checkpoint: the log's bytes on disk, since the checkpoint records them. */
int nnlrt_log_sync(NnlrtTrainer *t);
/* Closes the log; a failure there turns a successful run (rc 0) into an I/O error. */
int nnlrt_log_close(NnlrtTrainer *t, int rc);
/* The epoch's row (when the log has a row per epoch). */
int nnlrt_log_epoch(NnlrtTrainer *t, int64_t epoch);
/* After a step: a row every log_every steps. */
int nnlrt_log_step(NnlrtTrainer *t, int64_t epoch, double loss);

/* train_progress.c */
double nnlrt_now(void); /* seconds, monotonic */
/* Reports that the progress output cannot be written; NNLRT_EIO. */
int nnlrt_progress_failed(void);
/* After a batch: the live line, when it is due. */
int nnlrt_progress_batch(NnlrtTrainer *t);
/* Before a message on stderr: the live line ends where it is. */
void nnlrt_progress_end_live(NnlrtTrainer *t);
/* The epoch's line. */
int nnlrt_progress_epoch(NnlrtTrainer *t, int64_t epoch, double seconds);

#endif
