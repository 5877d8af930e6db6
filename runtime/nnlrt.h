/* nnlrt.h — libnnlrt, the nnl runtime: data, batching, the training driver.
 *
 * This is the only header generated code depends on. The compiler describes a compiled
 * model with an NnlrtModel (sizes, parameter layout, entry points produced by the JIT or
 * linked into an AOT trainer); the runtime owns the data and the training loop.
 *
 * Element type: every array the entry points see has elements of `NnlrtModel.elem_size`
 * bytes (4: float32 for training, 8: float64 for gradient checks).
 */
#ifndef NNLRT_H
#define NNLRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- allocation: every runtime allocation goes through here ---- */

void *nnlrt_alloc(size_t size);                 /* exits with "out of memory" on failure */
void *nnlrt_alloc_aligned(size_t size);         /* 64-byte aligned, zeroed */
void *nnlrt_realloc(void *p, size_t size);
void nnlrt_free(void *p);
char *nnlrt_strdup(const char *s);              /* through nnlrt_alloc; NULL gives NULL */

/* ---- random numbers: deterministic from a seed, same on every machine ---- */

typedef struct {
    uint64_t s[4]; /* xoshiro256** state */
} NnlrtRng;

void nnlrt_rng_seed(NnlrtRng *rng, uint64_t seed);
uint64_t nnlrt_rng_next(NnlrtRng *rng);
double nnlrt_rand_uniform(NnlrtRng *rng);        /* [0, 1), 53 bits */
double nnlrt_rand_normal(NnlrtRng *rng);         /* N(0, 1) */
uint64_t nnlrt_rand_below(NnlrtRng *rng, uint64_t n); /* uniform on [0, n), unbiased */

/* ---- errors ---- */

/* Runtime errors are reported as "file:line:col: error: msg" (or "file: error: msg" when
 * there is no position) on stderr. Functions that can fail return false after reporting. */
void nnlrt_error(const char *file, long line, long col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Where errors go: by default each is printed to stderr followed by a newline. A handler
 * gets the whole message ("file:line:col: error: msg", no newline) instead: tests and the
 * compiler's diagnostics install one. NULL restores the default. */
typedef void (*NnlrtErrorFn)(void *ctx, const char *message);
void nnlrt_set_error_handler(NnlrtErrorFn fn, void *ctx);

/* Exit codes of nnlrt_train (and of nnlc): */
enum {
    NNLRT_OK = 0,
    NNLRT_EUSER = 1,     /* bad data, a bad parameter file: reported */
    NNLRT_EIO = 2,       /* a file that cannot be opened, read or written; out of memory */
    NNLRT_EDIVERGED = 3, /* the loss became NaN or infinite: reported */
};

/* ---- data sets ---- */

typedef struct {
    char *name;           /* the `data` name in the script */
    int64_t n;            /* samples */
    int64_t x_size;       /* input elements per sample */
    int64_t y_size;       /* target elements per sample (1 for a class label) */
    float *x;             /* n * x_size, row-major */
    float *y;             /* n * y_size */
    char *source;         /* file the samples came from, for messages */
    int64_t *rows;        /* source line of each sample (CSV), or NULL */
} NnlrtDataset;

typedef struct {
    const char *path;         /* resolved path */
    const char *target;       /* column name, or NULL to use target_index */
    long target_index;        /* 0-based; -1 means the last column */
    const long *features;     /* 0-based column indices, or NULL for every other column */
    const char *const *feature_names; /* alternatively names (NULL when unused) */
    int n_features;
    bool header;
    char delimiter;
} NnlrtCsvOptions;

/* Loads a CSV file strictly: every row the same number of fields, every field a finite
 * number; errors name file:line:col. */
bool nnlrt_csv_load(const NnlrtCsvOptions *opt, NnlrtDataset *out);

/* Splits `src` into `a` (the first round(frac * n) samples after a seeded shuffle) and `b`. */
void nnlrt_split(const NnlrtDataset *src, double frac, uint64_t seed, NnlrtDataset *a,
                 NnlrtDataset *b);

/* Standardizes every input column of `ds` with mean and deviation measured on `ref`. */
void nnlrt_standardize(NnlrtDataset *ds, const NnlrtDataset *ref);

void nnlrt_dataset_free(NnlrtDataset *ds);

/* ---- the compiled model ---- */

typedef struct {
    const char *name;     /* "h1.W" */
    int rank;
    int64_t dims[4];
    int64_t offset;       /* element offset in the parameter arena */
    int64_t size;         /* elements */
} NnlrtTensor;

/* Entry points, generated. `bufs` is the buffer table: bufs[NNLRT_BUF_*] then the model's
 * own buffers, each sized by NnlrtModel.buf_elems (times the batch size when batched). */
enum {
    NNLRT_BUF_PARAMS = 0,  /* n_params */
    NNLRT_BUF_GRADS = 1,   /* n_params */
    NNLRT_BUF_X = 2,       /* batch * x_size */
    NNLRT_BUF_Y = 3,       /* batch * y_size */
    NNLRT_BUF_FIRST = 4,
};

typedef void (*NnlrtInitFn)(void **bufs, NnlrtRng *rng);
/* Forward and backward on a batch of B samples: writes the gradients of the batch's mean
 * loss, and ADDS the batch's sums of the loss and of each metric to sums[0], sums[1..]. */
typedef void (*NnlrtGradFn)(void **bufs, int64_t B, double *sums);
/* One update of every parameter from the gradients; step counts from 1, epoch from 0. */
typedef void (*NnlrtUpdateFn)(void **bufs, void **states, int64_t step, int64_t epoch);
/* Forward only: adds the batch's sums of the loss and of each metric to sums[0], sums[1..]. */
typedef void (*NnlrtEvalFn)(void **bufs, int64_t B, double *sums);

enum { NNLRT_TARGET_VALUES = 0, NNLRT_TARGET_CLASS = 1 };

typedef struct {
    int elem_size;            /* 4 or 8 */
    int64_t n_params;
    int n_tensors;
    const NnlrtTensor *tensors;
    int n_states;             /* optimizer state arrays, each n_params */
    int64_t x_size, y_size;
    int target_kind;          /* NNLRT_TARGET_* */
    int64_t n_classes;        /* for NNLRT_TARGET_CLASS */
    int n_metrics;
    const char *const *metric_names;
    int n_bufs;               /* total, including the NNLRT_BUF_FIRST fixed ones */
    const int64_t *buf_elems; /* elements per sample (batched) or in all */
    const bool *buf_batched;
    NnlrtInitFn init;
    NnlrtGradFn grad;
    NnlrtUpdateFn update;
    NnlrtEvalFn eval;
} NnlrtModel;

/* ---- training ---- */

typedef struct {
    int64_t epochs;
    int64_t batch;            /* 0: the whole data set (full-batch gradient descent) */
    uint64_t seed;
    bool shuffle;
    const char *log_path;     /* CSV log, or NULL */
    int64_t log_every;        /* 0: one row per epoch; N: one row every N steps */
    const char *init_path;    /* parameters to start from (CSV: name,v1,v2,...), or NULL */
    const char *dump_path;    /* where to write the final parameters (same format), or NULL */
    bool quiet;
    FILE *out;                /* per-epoch lines */
} NnlrtTrainConfig;

/* Per-epoch results, for callers and tests. */
typedef struct {
    double loss;              /* mean training loss over the epoch's samples */
    double *metrics;          /* n_metrics, on the training data */
    double val_loss;          /* NaN without validation data */
    double *val_metrics;
} NnlrtEpochStats;

/* Trains `m` on `train`, validating on `val` (may be NULL) after each epoch. Returns 0,
 * or a non-zero exit code after reporting (1 user error, 2 I/O error). */
int nnlrt_train(const NnlrtModel *m, const NnlrtTrainConfig *cfg, const NnlrtDataset *train,
                const NnlrtDataset *val);

/* Checks the gradients of a float64 model (elem_size 8) against central differences on the
 * first min(n, 8) samples of `ds`, with parameters initialised from `seed`; prints the worst
 * relative error per tensor to `out`. Returns true when every error is below `tol`. */
bool nnlrt_gradcheck(const NnlrtModel *m, const NnlrtDataset *ds, uint64_t seed, double tol,
                     FILE *out);

#endif
