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
/* Failure injection (NNL_FAIL_ALLOC, docs/cli.md): whether the allocation about to be made
 * is to fail. Every allocator of the process asks, nnlc's included, in allocation order. */
bool nnlrt_alloc_fails(void);
/* What must not be left half-done when the process exits for want of memory (nnlc build's
 * temporary directory): nnlrt_oom_cleanup, called by the runtime's allocators and nnlc's
 * before they exit, runs fn(ctx) once. fn must not allocate. NULL clears it. */
void nnlrt_set_oom_cleanup(void (*fn)(void *ctx), void *ctx);
void nnlrt_oom_cleanup(void);

/* ---- random numbers: deterministic from a seed, same on every machine ---- */

typedef struct {
    uint64_t s[4]; /* xoshiro256** state */
} NnlrtRng;

void nnlrt_rng_seed(NnlrtRng *rng, uint64_t seed);
uint64_t nnlrt_rng_next(NnlrtRng *rng);
/* nnlrt_rand_uniform ([0, 1), 53 bits) and nnlrt_rand_normal (N(0, 1)) are declared with
 * the other functions compiled models call: NNLRT_ENTRY_POINTS, below. */
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

/* The name errors without a file start with ("nnlc: error: ..."): "nnlc" by default, a
 * trainer's own name in a trainer. The string must outlive its use. */
void nnlrt_set_program_name(const char *name);
const char *nnlrt_program_name(void);

/* Exit codes of nnlrt_train (and of nnlc): */
enum {
    NNLRT_OK = 0,
    NNLRT_EUSER = 1,     /* bad data, a bad parameter file: reported */
    NNLRT_EIO = 2,       /* a file that cannot be opened, read or written; out of memory */
    NNLRT_EDIVERGED = 3, /* the loss became NaN or infinite: reported */
};

/* ---- data sets ---- */

/* How a data set's inputs or targets are stored: as the file had them (float32 for CSV,
 * uint8 for IDX, the dtype for NPY). Conversion to the model's element type happens only
 * when a batch is gathered, so a 60000 x 784 uint8 image set stays 47 MB. */
typedef enum { NNLRT_F32, NNLRT_F64, NNLRT_U8, NNLRT_I64 } NnlrtType;

size_t nnlrt_type_size(NnlrtType t);            /* 4, 8, 1, 8 */
const char *nnlrt_type_name(NnlrtType t);       /* "float32", "float64", "uint8", "int64" */

typedef struct {
    char *name;           /* the `data` name in the script */
    int64_t n;            /* samples */
    int64_t x_size;       /* input elements per sample */
    int64_t y_size;       /* target elements per sample (1 for a class label) */
    NnlrtType x_type;     /* element type of x as stored */
    NnlrtType y_type;     /* element type of y as stored */
    double x_scale;       /* an input is x[i] * x_scale once converted (1 by default);
                           * targets are never scaled */
    void *x;              /* n * x_size elements of x_type, row-major */
    void *y;              /* n * y_size elements of y_type */
    char *source;         /* file the samples (the inputs) came from, for messages */
    char *y_source;       /* file the targets came from when it is another one (IDX
                           * labels, NPY targets), or NULL */
    int64_t *rows;        /* source line of each sample (CSV), or NULL */
} NnlrtDataset;

/* Element i of x (0 <= i < n * x_size) times x_scale, and element i of y
 * (0 <= i < n * y_size: sample i's target when y_size is 1), as doubles. For checks and
 * messages; batches are converted in bulk by the trainer. */
double nnlrt_dataset_x(const NnlrtDataset *ds, int64_t i);
double nnlrt_dataset_y(const NnlrtDataset *ds, int64_t i);
/* Bytes the samples occupy: n * (x_size * size of x_type + y_size * size of y_type). */
size_t nnlrt_dataset_bytes(const NnlrtDataset *ds);

typedef struct {
    const char *path;         /* resolved path */
    const char *target;       /* column name, or NULL to use target_index */
    long target_index;        /* 0-based; -1 means the last column */
    bool no_target;           /* inputs alone (y_size 0, y NULL): every column, or the
                               * features listed, is an input */
    const long *features;     /* 0-based column indices, or NULL for every other column */
    const char *const *feature_names; /* alternatively names (NULL when unused) */
    int n_features;
    bool header;
    char delimiter;
} NnlrtCsvOptions;

/* Loads a CSV file strictly: every row the same number of fields, every field a finite
 * number; errors name file:line:col. Inputs and targets are stored as float32. */
bool nnlrt_csv_load(const NnlrtCsvOptions *opt, NnlrtDataset *out);

/* Binary data files, plain or gzip-compressed (told apart by their first bytes). Both
 * loaders are strict: the headers are checked, and for a plain file the sizes they promise
 * against the file's size, before anything is allocated (a .gz, whose size is only known
 * once read, is read into a buffer that grows with what arrives); a file shorter or longer
 * than its header says, a cut or corrupt .gz stream, is an error. Errors read "FILE: error: at byte N: ...", N
 * counting bytes of the uncompressed data (said so for a .gz). `scale` becomes x_scale
 * (1/255 turns bytes into [0, 1]); it must be finite and not 0. */

/* IDX (MNIST) files: `images` holds N samples of unsigned bytes in 1 to 4 dimensions
 * (x_size: the product of all but the first), `labels` N unsigned bytes (y_size 1). */
bool nnlrt_idx_load(const char *images, const char *labels, double scale, NnlrtDataset *out);
/* The same with the images' header only (x NULL): the sizes, and the labels, read and
 * checked as nnlrt_idx_load does; a plain file's size is checked against its header, a
 * .gz one's is not (that takes decompressing it). For nnlc build, whose trainer reads the
 * images when it runs. */
bool nnlrt_idx_load_shape(const char *images, const char *labels, double scale,
                          NnlrtDataset *out);

/* NPY files (format 1.0, 2.0, 3.0), C order, dtype <f4, <f8, |u1 or <i8: `x_path`
 * holds N samples (the first dimension; x_size is the product of the rest), `y_path`
 * shape (N) or (N, y_size), or NULL for inputs alone (y_size 0, y NULL). Floating-point
 * values must be finite. */
bool nnlrt_npy_load(const char *x_path, const char *y_path, double scale, NnlrtDataset *out);
/* The same with the inputs' header only (x NULL), as nnlrt_idx_load_shape. */
bool nnlrt_npy_load_shape(const char *x_path, const char *y_path, double scale,
                          NnlrtDataset *out);

/* Splits `src` into `a` (the first round(frac * n) samples after a seeded shuffle) and `b`,
 * keeping the stored types and the scale (a set read for its shape only, x NULL, splits
 * into two such sets). */
void nnlrt_split(const NnlrtDataset *src, double frac, uint64_t seed, NnlrtDataset *a,
                 NnlrtDataset *b);

/* Standardizes every input column of `ds` in place with the mean and deviation of `ref`'s
 * (scaled) inputs, and sets ds->x_scale to 1. Floating-point data only: for uint8 or
 * int64 inputs (of ds or ref) it reports "standardize needs floating-point data; ..." and
 * returns false, changing nothing (converting a uint8 image set to float32 would take
 * four times its memory; scale it instead). Also false when the input sizes differ. */
bool nnlrt_standardize(NnlrtDataset *ds, const NnlrtDataset *ref);
/* The means and population standard deviations of ref's scaled input columns (x_size
 * each): the statistics nnlrt_standardize uses. */
void nnlrt_column_stats(const NnlrtDataset *ref, double *mean, double *sd);

void nnlrt_dataset_free(NnlrtDataset *ds);

/* ---- finding data files ---- */

/* Where a data file named in a script is: an absolute name as it is; a relative one next
 * to the script (in `script_dir`; NULL means the current directory), then in each
 * directory of the colon-separated NNL_DATA_PATH (empty entries skipped), then in
 * /usr/share/datasets. Returns the first candidate that exists and is not a directory,
 * written into buf, or NULL (candidates too long for buf are skipped); the caller then
 * reports "cannot find 'NAME' (looked in: PLACES)" with nnlrt_data_places. */
const char *nnlrt_find_data(const char *name, const char *script_dir, char *buf, size_t n);
/* The places nnlrt_find_data looks for `name`, in order, as "dir, dir, ..." (the name
 * itself when absolute), cut short with "..." when buf is too small. Returns buf. */
const char *nnlrt_data_places(const char *name, const char *script_dir, char *buf, size_t n);

/* ---- data sets as a script declares them ---- */

/* One `data` declaration, as nnlc evaluated it: enough for the runtime to load it the way
 * `nnlc run` does, so that a standalone trainer needs no compiler. */
/* The kinds of data set, X(ID, the built-in that declares one, the files a trainer's
 * --data NAME=... takes for one, and for a format of two files (inputs, targets) its
 * loaders: the whole set, and the inputs' header only, as nnlrt_idx_load and
 * nnlrt_idx_load_shape): a new format of two files is a row here and its loader. */
#define NNLRT_DATA_KINDS(X) \
    X(CSV, "csv", "one CSV file", NULL, NULL) \
    X(IDX, "idx", "two files: give IMAGES,LABELS", nnlrt_idx_load, nnlrt_idx_load_shape) \
    X(NPY, "npy", "two files: give X,Y", nnlrt_npy_load, nnlrt_npy_load_shape) \
    X(SPLIT, "split", "the file(s) of the data set it splits", NULL, NULL)

typedef enum {
#define NNLRT_DATA_KIND_ID(id, name, files, load, load_shape) NNLRT_DATA_##id,
    NNLRT_DATA_KINDS(NNLRT_DATA_KIND_ID)
#undef NNLRT_DATA_KIND_ID
} NnlrtDataKind;

typedef struct {
    const char *name;         /* the data declaration's name */
    NnlrtDataKind kind;
    /* files as written in the script (csv: path; idx: images, labels; npy: x, y), found
     * with nnlrt_find_data from script_dir */
    const char *path, *path2;
    const char *script_dir;   /* the script's directory, absolute (NULL: the current one) */
    double scale;             /* idx, npy: the inputs' scale */
    /* csv: as NnlrtCsvOptions */
    const char *target;
    long target_index;
    const long *features;
    const char *const *feature_names;
    int n_features;
    bool header;
    char delimiter;
    bool standardize;         /* a training set drawn from this file is standardized */
    /* split: part `part` (0: the first round(fraction * n) samples after a shuffle with
     * `seed`, 1: the rest) of spec `parent` */
    int parent;
    double fraction;
    uint64_t seed;
    int part;
} NnlrtDataSpec;

/* The data sets of a program, each loaded at most once: the two parts of a split share
 * their parent. `files` holds two entries per spec: where to read each of its files from,
 * or NULL (as nnlrt_data_init leaves them) to find the file as written with
 * nnlrt_find_data. */
typedef struct {
    const NnlrtDataSpec *specs;
    int n_specs;
    const char **files;       /* 2 * n_specs */
    const char *hint;         /* appended to "cannot find the data file" messages, or NULL */
    bool shapes_only;         /* IDX and NPY inputs not read (x NULL), only their headers,
                               * unless the set is standardized: for nnlc build */
    NnlrtDataset **sets;      /* n_specs, loaded ones non-NULL */
    bool *failed;             /* n_specs: loading was tried and reported an error */
} NnlrtData;

void nnlrt_data_init(NnlrtData *d, const NnlrtDataSpec *specs, int n_specs);
/* Data set i, loaded (with its parent, for a split part) or from the cache; NULL after
 * reporting (once: a set that failed to load fails again silently). A split part may be
 * empty here: nnlrt_data_prepare reports that. */
NnlrtDataset *nnlrt_data_load(NnlrtData *d, int i);
/* The training set `train` and the validation set `val` (-1: none) as a run uses them:
 * loaded, not empty, with as many inputs per sample each, and, when the file the training
 * set comes from says `standardize`, both standardized with the training set's statistics.
 * False after reporting. */
bool nnlrt_data_prepare(NnlrtData *d, int train, int val, NnlrtDataset **train_out,
                        NnlrtDataset **val_out);
/* New inputs for the model trained on data set `train`, from `path`: a .npy of samples
 * (times the training file's scale for idx/npy data), or a CSV read as the training
 * file is (its header and delimiter, features by name when it chose them by name; a
 * target column, if the file has one, is dropped), or without a header, every column an
 * input, when the model was trained on idx/npy data. Standardized with the statistics of
 * the training set as loaded: call it before nnlrt_data_prepare changes that set. The
 * result has y NULL and y_size 0. False after reporting. */
bool nnlrt_data_load_inputs(NnlrtData *d, int train, const char *path, NnlrtDataset *out);
/* The spec's file(s) as a call, written into buf: csv("data/iris.csv", target = "species"),
 * split(iris, 0.8, seed = 0) part 1. Returns buf. */
const char *nnlrt_data_describe(const NnlrtData *d, int i, char *buf, size_t n);
void nnlrt_data_free(NnlrtData *d);

/* ---- the compiled model ---- */

typedef struct {
    const char *name;     /* "h1.W" */
    int rank;
    int64_t dims[4];
    int64_t offset;       /* element offset in the parameter arena */
    int64_t size;         /* elements */
    bool buffer;          /* not trained: a running statistic the training step updates
                           * (batch normalization); its "gradient" slot holds the new value */
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

/* The model's entry points (codegen_llvm.c generates them), each as X(Type, name, return
 * type, (parameters)): the types NnlrtInitFn, NnlrtGradFn, NnlrtEvalFn, NnlrtUpdateFn,
 * NnlrtPredictFn, and the functions nnl_init ... a trainer's object file defines (nnlc
 * build declares them from this list, compiler/aot.c).
 *   init     the initializers: the parameters' first values, drawn from `rng`
 *   grad     forward and backward on a batch of B samples: writes the gradients of the
 *            batch's mean loss, and ADDS the batch's sums of the loss and of each metric to
 *            sums[0], sums[1..]. `key` draws the step's random numbers (dropout masks):
 *            nnlrt_step_key of the run's seed and the step, so that a resumed run draws the
 *            same ones.
 *   eval     forward only: adds the batch's sums of the loss and of each metric to sums[0],
 *            sums[1..].
 *   update   one update of every parameter from the gradients; step counts from 1, epoch
 *            from 0. Returns the sum of the squares of the gradient arena (computed in the
 *            same loop, in double): not finite when a gradient is NaN or infinite.
 *   predict  forward only, inputs alone (bufs[NNLRT_BUF_Y] is not read): writes the
 *            model's output for each of the B samples, out_size elements each, to out. */
#define NNLRT_MODEL_ENTRY_POINTS(X)                                                          \
    X(Init, init, void, (void **bufs, NnlrtRng *rng))                                        \
    X(Grad, grad, void, (void **bufs, int64_t B, double *sums, uint64_t key))                \
    X(Eval, eval, void, (void **bufs, int64_t B, double *sums))                              \
    X(Update, update, double, (void **bufs, void **states, int64_t step, int64_t epoch))     \
    X(Predict, predict, void, (void **bufs, int64_t B, void *out))

#define NNLRT_ENTRY_TYPE_(Type, name, ret, params) typedef ret(*Nnlrt##Type##Fn) params;
NNLRT_MODEL_ENTRY_POINTS(NNLRT_ENTRY_TYPE_)
#undef NNLRT_ENTRY_TYPE_

/* The key of training step `step` (from 1) of a run seeded with `seed`. */
uint64_t nnlrt_step_key(uint64_t seed, int64_t step);

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
    int64_t out_size;         /* output elements per sample */
    NnlrtPredictFn predict;   /* NULL: the model cannot predict (a hand-written test model) */
} NnlrtModel;

/* Reads NNL_THREADS (the runtime's threads, docs/cli.md) and exits with a message and
 * status 2 when it is not a whole number from 1 to 16. nnlc and trainers call it first. */
void nnlrt_threads_check(void);

/* Whether the forward pass of float convolutions of stride 1 is computed directly (conv.c)
 * where the CPU has AVX2 and FMA: -1 where that measured faster (the default), 0 never
 * (im2col + GEMM), 1 wherever possible. For tests and bench/conv_rate.c. */
void nnlrt_conv_set_direct(int mode);

/* ---- what compiled models call ----
 *
 * NNLRT_ENTRY_POINTS(X) lists every runtime function generated code calls, each as
 * X(return type, name, (parameters)). The prototypes below and the JIT's symbol table
 * (compiler/jit.c) are made from it; codegen calls nnlrt_rand_* for initializers and each
 * runtime-routine op's nnlrt_SYMBOL_f32 / _f64 as compiler/ops.def names it; a trainer's
 * object file is linked against libnnlrt.a for them.
 *
 * nnlrt_rand_uniform: U[0, 1), 53 bits; nnlrt_rand_normal: N(0, 1) (rng.c).
 *
 * Convolutions (conv.c): channels-first images, B of them: x[B][C][H][W]. conv2d:
 * w[F][C][KH][KW] gives y[B][F][OH][OW] with OH = (H + 2·pad − KH) / stride + 1 (likewise
 * OW), zero padding, plus bias[f] on every output of filter f (bias NULL: none), then the
 * activation `act` (0 none, 1 relu: v > 0 or NaN kept, else +0, as the standard library's
 * relu); _dx the gradient of x (overwritten), _dw that of w summed over the batch
 * (overwritten). Pooling (pool.c) works on `planes` = B·C images of H×W, windows of
 * size×size every `stride`, no padding: OH = (H − size) / stride + 1. _f64 variants are
 * the same in double. */
#define NNLRT_WINDOW_ROUTINES(X, T, SFX)                                                     \
    X(void, nnlrt_conv2d_##SFX, (const T *x, const T *w, const T *bias, T *y, int64_t act,   \
                                 int64_t B, int64_t C, int64_t H, int64_t W, int64_t F,      \
                                 int64_t KH, int64_t KW, int64_t stride, int64_t pad))       \
    X(void, nnlrt_conv2d_dx_##SFX, (const T *dy, const T *w, T *dx, int64_t B, int64_t C,    \
                                    int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW, \
                                    int64_t stride, int64_t pad))                            \
    X(void, nnlrt_conv2d_dw_##SFX, (const T *x, const T *dy, T *dw, int64_t B, int64_t C,    \
                                    int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW, \
                                    int64_t stride, int64_t pad))                            \
    X(void, nnlrt_maxpool_##SFX, (const T *x, T *y, int64_t planes, int64_t H, int64_t W,    \
                                  int64_t size, int64_t stride))                             \
    X(void, nnlrt_maxpool_dx_##SFX, (const T *x, const T *dy, T *dx, int64_t planes,         \
                                     int64_t H, int64_t W, int64_t size, int64_t stride))    \
    X(void, nnlrt_avgpool_##SFX, (const T *x, T *y, int64_t planes, int64_t H, int64_t W,    \
                                  int64_t size, int64_t stride))                             \
    X(void, nnlrt_avgpool_dx_##SFX, (const T *dy, T *dx, int64_t planes, int64_t H,          \
                                     int64_t W, int64_t size, int64_t stride))
#define NNLRT_ENTRY_POINTS(X)                                                                \
    X(double, nnlrt_rand_uniform, (NnlrtRng *rng))                                           \
    X(double, nnlrt_rand_normal, (NnlrtRng *rng))                                            \
    NNLRT_WINDOW_ROUTINES(X, float, f32)                                                     \
    NNLRT_WINDOW_ROUTINES(X, double, f64)

#define NNLRT_PROTOTYPE_(ret, name, params) ret name params;
NNLRT_ENTRY_POINTS(NNLRT_PROTOTYPE_)
#undef NNLRT_PROTOTYPE_

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
    /* Checkpoints (runtime/checkpoint.c, docs/checkpoints.md); all 0/NULL: none. */
    const char *checkpoint_path;    /* write checkpoints here: at the end, on SIGINT/SIGTERM,
                                     * and every N epochs or steps as below; NULL: none */
    int64_t checkpoint_every;       /* also after every N epochs (0: not by epochs) */
    int64_t checkpoint_every_steps; /* or after every N steps (0: not by steps); not both */
    int64_t keep;                   /* keep K: <path>, <path>.1 ... <path>.(K-1); 0 means 1 */
    const char *resume_path;        /* a checkpoint to go on from, or NULL */
    const char *resume_hint;        /* the command that resumes, less the path, for the
                                     * message on a stop ("nnlc run x.nnl --resume"); NULL:
                                     * "--resume" */
    bool fresh;                     /* without resume_path: replace a checkpoint already at
                                     * checkpoint_path (--fresh); false: refuse to start */
    int64_t stop_after_steps;       /* test hook: stop after step N as on SIGINT (0: never) */
    const char *const *options;     /* the options that made this run, as words of a
                                     * command line ("--set", "epochs=40", "--log", "f.csv"),
                                     * recorded in its checkpoints: a resume goes on with
                                     * them (docs/checkpoints.md); at most
                                     * 1 MiB in all */
    int n_options;
    /* Progress and plots (docs/cli.md). On a terminal (isatty of `out`) each epoch's line
     * is drawn live while it runs (batches, running loss, samples/s, ETA) and ends as the
     * plain line; elsewhere the plain line alone. */
    bool verbose;                   /* also the data, the batches, the files, the totals */
    const char *plot_path;          /* SVG of the log's curves, written when the run ends
                                     * (also when stopped or diverged); without log_path
                                     * the rows are kept in memory for it; NULL: none */
} NnlrtTrainConfig;

/* The keys of a train block (train_keys.def, train_keys.c): nnlc checks and evaluates
 * them, and a trainer's --set changes the settable ones, from this one table. */
typedef enum {
    NNLRT_KEY_INT,         /* a whole number of at least `least` (int64_t) */
    NNLRT_KEY_BATCH,       /* a whole number of at least `least`, or all: 0 (int64_t) */
    NNLRT_KEY_SEED,        /* a whole number of at least 0 (uint64_t) */
    NNLRT_KEY_BOOL,        /* true or false (bool) */
    NNLRT_KEY_PATH,        /* a file (a string) */
    NNLRT_KEY_POSITIVE,    /* a number above 0 (double) */
    NNLRT_KEY_NONNEGATIVE, /* a number of at least 0 (double) */
    NNLRT_KEY_DATA,        /* the name of a data declaration */
    NNLRT_KEY_LOSS,        /* a loss or fn, by name or called with options */
    NNLRT_KEY_OPTIMIZER,   /* an optimizer, by name or called with options */
    NNLRT_KEY_METRICS,     /* a list of metrics, losses or fns */
} NnlrtKeyKind;

enum { NNLRT_KEY_REQUIRED = 1, NNLRT_KEY_SETTABLE = 2 };

typedef enum {
#define RUN_KEY(id, ...) NNLRT_TRAIN_##id,
#define MODEL_KEY(id, ...) NNLRT_TRAIN_##id,
#include "train_keys.def"
#undef RUN_KEY
#undef MODEL_KEY
    NNLRT_TRAIN_KEY_COUNT
} NnlrtTrainKeyId;

typedef struct {
    const char *name;
    NnlrtKeyKind kind;
    int64_t least, def;       /* the least whole number; the default (train_keys.def) */
    const char *what;         /* the key as messages name it */
    int flags;                /* NNLRT_KEY_REQUIRED, NNLRT_KEY_SETTABLE */
    int offset;               /* of its field in NnlrtTrainConfig; -1: compiled in */
} NnlrtTrainKey;

extern const NnlrtTrainKey nnlrt_train_keys[NNLRT_TRAIN_KEY_COUNT];
/* The NnlrtTrainKeyId of `name`, or -1. */
int nnlrt_train_key(const char *name);
/* Every setting of the run to its default (the others untouched). */
void nnlrt_train_defaults(NnlrtTrainConfig *c);

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

/* ---- using a trained model (runtime/infer.c) ---- */

/* Checks that ds fits the model: sizes, values that stay finite in the model's element
 * type once scaled, and class labels that are whole numbers in [0, n_classes). Inputs
 * alone (y NULL) are checked as inputs. Reports at the sample's source line (CSV) or
 * number. */
bool nnlrt_check_dataset(const NnlrtModel *m, const NnlrtDataset *ds);
/* The parameters of checkpoint `path`, which must belong to m (as a resume checks it), into
 * params (n_params elements). Returns 0, or NNLRT_EIO / NNLRT_EUSER after reporting. */
int nnlrt_checkpoint_load_params(const NnlrtModel *m, const char *path, void *params);
/* The model's outputs for every sample of ds (its targets, if any, unused), computed in
 * batches of at most `batch`: ds->n * m->out_size elements of m->elem_size into out. */
void nnlrt_predict(const NnlrtModel *m, const void *params, const NnlrtDataset *ds,
                   int64_t batch, void *out);
/* The index of sample i's largest output (the predicted class); a NaN counts as largest. */
int64_t nnlrt_argmax(const NnlrtModel *m, const void *out, int64_t sample);
/* The means over ds of the loss and of each metric (means[0], means[1..n_metrics]), and,
 * when confusion is not NULL, a classifier's confusion matrix: K x K counts, row the true
 * class, column the predicted one. For a class target K is n_classes and the predicted
 * class the argmax; otherwise the model is a binary classifier (one output, targets 0 or
 * 1), K is 2 and the predicted class 1 when the output is > threshold (a NaN: 0). Returns
 * how many samples of a binary classifier have a target neither 0 nor 1 (left out of the
 * matrix); 0 for a class target. */
int64_t nnlrt_evaluate(const NnlrtModel *m, const void *params, const NnlrtDataset *ds,
                       int64_t batch, double *means, int64_t *confusion, double threshold);
/* Writes n samples of outputs to `path`, a .csv (a header row, then per sample the class
 * for a classifier and every output) or a .npy (shape (n, out_size)), atomically; with
 * path NULL, the CSV to `to`. Returns 0, or NNLRT_EUSER / NNLRT_EIO after reporting. */
int nnlrt_write_predictions(const NnlrtModel *m, const char *path, const void *out, int64_t n,
                            FILE *to);

/* ---- standalone trainers (nnlc build) ---- */

/* Everything a trainer knows about its model: nnlc build writes one as C, next to the
 * object file with the entry points, and links it with libnnlrt into an executable whose
 * main is nnlrt_trainer_main. */
typedef struct {
    const char *model_name;       /* the trained model: "net" */
    const char *script;           /* the script it was compiled from (absolute) */
    const char *nnlc_version;
    const char *cpu;              /* what the code was compiled for: "x86-64-v3", or the
                                   * host's CPU for --cpu=native */
    const char *description;      /* the compiled-in train keys, a "key  value" line each */
    NnlrtModel model;
    const NnlrtDataSpec *data;    /* every data set the run reads, parents included */
    int n_data;
    int train_data, val_data;     /* indices in data; val_data -1: no validation */
    NnlrtTrainConfig config;      /* the train block's settings; out NULL: stdout */
    bool epochs_compiled;         /* hyper-parameters use `epochs`: it cannot change */
    /* The first CPU feature the code needs that this machine lacks, or NULL. */
    const char *(*missing_cpu_feature)(void);
} NnlrtProgram;

/* A trainer's main: parses its options (--set, --data, --log, --init, --save-params,
 * --quiet, --help, --version), loads the data and trains. Returns the exit status. */
int nnlrt_trainer_main(const NnlrtProgram *p, int argc, char **argv);

/* Checks the gradients of a float64 model (elem_size 8) against central differences on the
 * first min(n, 8) samples of `ds`, with parameters initialised from `seed`. An element passes
 * when |a - n| <= atol + rtol * max(|a|, |n|), atol being 1e-8 * max(1, |loss|); prints per
 * tensor the worst |a - n| / (atol / rtol + max(|a|, |n|)) (at most rtol when it passes) to
 * `out`, and reports the worst element when one fails. Returns true when every one passes. */
#define NNLRT_GRADCHECK_RTOL 1e-4
bool nnlrt_gradcheck(const NnlrtModel *m, const NnlrtDataset *ds, uint64_t seed, double rtol,
                     FILE *out);

/* ==== checkpoints and stopping (runtime/checkpoint.c, train_loop.c; docs/checkpoints.md) ====
 * A section of its own, apart from the program/trainer interface above. */

/* Exit codes of nnlrt_train, continuing the list above: a SIGINT (or the stop_after_steps
 * hook) or a SIGTERM stopped the run after its current step, once a checkpoint was
 * written if one was configured: 128 + the signal's number, as shells report it. */
enum { NNLRT_EINT = 130, NNLRT_ETERM = 143 };

/* A 64-bit FNV-1a hash of every tensor's name, rank, dims, offset and size, in order, then
 * the element size, the number of optimizer states and the parameter count: what a
 * checkpoint must match to be loaded into m. The same on every machine. */
uint64_t nnlrt_model_signature(const NnlrtModel *m);

/* Removes the "<path>.tmp.<pid>" files that writers of checkpoint `path` killed before
 * their rename left behind (those whose process is gone). nnlrt_train does that at start
 * for the checkpoint, the --save-params file and the plot. */
void nnlrt_checkpoint_clean_stale(const char *path);

/* Checks that `path` is a whole, uncorrupted checkpoint of m, loading nothing. Returns 0,
 * or NNLRT_EIO / NNLRT_EUSER after reporting "PATH: error: ..." as a resume would. */
int nnlrt_checkpoint_verify(const NnlrtModel *m, const char *path);

/* What a checkpoint says without its model: its tensor table and parameter arena. */
typedef struct {
    int elem_size;            /* 4 (float32) or 8 (float64) */
    int64_t n_params;
    int n_states;             /* optimizer state arenas in the file (not read) */
    int64_t epoch, step;      /* where the run was: the epoch in progress, updates done */
    int n_tensors;
    NnlrtTensor *tensors;     /* names allocated */
    void *params;             /* the parameter arena: n_params elements, host order */
    char **options;           /* the options of the run that wrote it, the words of its
                               * command line (NnlrtTrainConfig.options); none in a
                               * checkpoint of format version 2 */
    int n_options;
} NnlrtCheckpointTensors;

/* Reads `path` without a model: checks the magic, the version, the size, the CRC and that
 * the tensor table is well-formed (sizes the product of the dims, inside the arena, not
 * overlapping, names non-empty, UTF-8 and unique), then fills t. Returns 0, or NNLRT_EIO /
 * NNLRT_EUSER after reporting "PATH: error: ..." (t is then empty). */
int nnlrt_checkpoint_read_tensors(const char *path, NnlrtCheckpointTensors *t);
/* The same checks, without the parameter arena (t->params NULL): what the run that wrote
 * it was, its tensors and its options. */
int nnlrt_checkpoint_read_options(const char *path, NnlrtCheckpointTensors *t);
void nnlrt_checkpoint_tensors_free(NnlrtCheckpointTensors *t);
void nnlrt_checkpoint_options_free(char **options, int n);

/* nnlc export (runtime/export.c, docs/formats.md): the parameters of checkpoint `ckpt`
 * (not its optimizer states) as `format` "safetensors" (one file `out`) or "npy" (one
 * NAME.npy per tensor in directory `out`, made if missing); NULL: from `out`, which ends
 * in .safetensors, or names a directory (npy). Every file is written to a temporary file
 * and renamed: a failed export leaves none half-written. Returns 0, or NNLRT_EUSER (the
 * checkpoint refused, a name that cannot be written) / NNLRT_EIO (usage, I/O) after
 * reporting. */
int nnlrt_export(const char *ckpt, const char *out, const char *format);
/* ==== plots of a training log (runtime/plot.c; docs/cli.md, "nnlc plot") ==== */

/* Reads the training log `log_path` (the CSV nnlrt_train writes: epoch,step,loss, the
 * metrics, then val_loss and val_<metric>) and writes its curves to `svg_path` as SVG, a
 * panel per quantity, atomically (a temp file renamed over it). Returns 0, NNLRT_EUSER
 * after reporting a malformed log at file:line:col, or NNLRT_EIO after reporting a file
 * that cannot be read or written. The same log gives the same bytes. */
int nnlrt_plot(const char *log_path, const char *svg_path);
/* The same from a log held in memory, text[0..len); `name` stands for it in messages. */
int nnlrt_plot_text(const char *name, const char *text, size_t len, const char *svg_path);

#endif
