/* nnlc.h — the public interface of libnnlc, the nnl compiler library.
 *
 * A client creates an Nnl context with a diagnostic callback, loads sources into it and
 * runs stages on them. Every diagnostic goes through the callback; nothing is printed by
 * the library itself. All memory belongs to the context and is freed by nnl_free.
 */
#ifndef NNLC_H
#define NNLC_H

#include <stdio.h>

#define NNLC_VERSION "0.1.0"

/* Results of library calls; they are also the CLI's exit codes. */
typedef enum {
    NNL_OK = 0,
    NNL_EUSER = 1,      /* an error in a script, a data file, a flag: reported */
    NNL_EUSAGE = 2,     /* bad command line or an I/O failure: reported */
    NNL_EINTERNAL = 70, /* a bug in nnlc: reported */
} NnlResult;

typedef enum { NNL_SEV_ERROR, NNL_SEV_WARNING, NNL_SEV_NOTE } NnlSeverity;

typedef struct {
    NnlSeverity severity;
    const char *path;       /* file the diagnostic is about, or NULL */
    int line, col;          /* 1-based; 0 when there is no position */
    const char *message;
    const char *line_text;  /* the source line (not NUL-terminated), or NULL */
    int line_len;
    int caret;              /* byte offset of the caret within line_text */
} NnlDiag;

typedef void (*NnlDiagFn)(void *user, const NnlDiag *d);

typedef struct Nnl Nnl;

Nnl *nnl_new(NnlDiagFn fn, void *user);
void nnl_free(Nnl *nnl);

/* Loads a script from a file ("-" is stdin). Returns NNL_OK or a reported failure. */
NnlResult nnl_load_file(Nnl *nnl, const char *path);
/* Loads a script held in memory under a display name. */
NnlResult nnl_load_text(Nnl *nnl, const char *name, const char *text, size_t len);

/* Parses every loaded script (and the embedded stdlib). */
NnlResult nnl_parse(Nnl *nnl);

typedef enum { NNL_DUMP_TOKENS, NNL_DUMP_AST } NnlStage;
/* Writes the stable text form of a stage for the user's scripts (not the stdlib). */
NnlResult nnl_dump(Nnl *nnl, NnlStage stage, FILE *out);

/* What nnl_run does with the loaded script. */
typedef enum {
    NNL_RUN_CHECK,         /* names, shapes and data; nothing runs */
    NNL_RUN_DUMP_IR,       /* the forward graph */
    NNL_RUN_DUMP_GRAD,     /* the backward graph */
    NNL_RUN_DUMP_KERNELS,  /* the fused kernels of each entry point */
    NNL_RUN_DUMP_LLVM,     /* the optimized LLVM module */
    NNL_RUN_TRAIN,         /* compile and train */
    NNL_RUN_GRADCHECK,     /* compile in float64, compare gradients with finite differences */
    NNL_RUN_CHECK_NO_DATA, /* as CHECK, without reading data files (the fuzz harness) */
    NNL_RUN_BUILD,         /* compile into a standalone trainer (output, cpu) */
    NNL_RUN_BUILD_LIB,     /* compile into NAME.o and NAME.h for C programs (output, cpu) */
    NNL_RUN_PREDICT,       /* the trained model's outputs (checkpoint, input, output) */
    NNL_RUN_EVAL,          /* loss, metrics, confusion matrix (checkpoint, data) */
    NNL_RUN_SUMMARY,       /* as CHECK, then the model's layers, sizes, FLOPs, memory */
} NnlRunMode;

typedef struct {
    NnlRunMode mode;
    const char *train;          /* --train MODEL, when there are several */
    const char **sets;          /* --set key=value */
    int nsets;
    const char *log;            /* --log FILE */
    const char *init;           /* --init FILE: starting parameters */
    const char *dump_params;    /* --save-params FILE: final parameters */
    const char *resume;         /* --resume CKPT: go on from a checkpoint */
    int fresh;                  /* --fresh: start over, replacing the checkpoint there */
    int quiet;
    int verbose;                /* --verbose: stages and their times, data, the run */
    int float64;                /* --float64: train in double precision */
    FILE *out;                  /* dumps and progress */
    const char *output;         /* build: the trainer to write */
    const char *cpu;            /* build: "x86-64-v3" (NULL), "native", or a CPU name */
    const char *checkpoint;     /* predict, eval: --checkpoint CKPT */
    const char *input;          /* predict: --input FILE (.csv or .npy); output: -o FILE,
                                 * NULL for CSV on `out` */
    const char *data;           /* eval: --data NAME, a data declaration; NULL: the
                                 * validation data, else the training data */
    const char *const *options; /* run: the options it records in its checkpoints, as
                                 * words of a command line (docs/checkpoints.md) */
    int noptions;
} NnlRunOptions;

/* Checks, compiles and runs the train declaration of the loaded script. */
NnlResult nnl_run(Nnl *nnl, const NnlRunOptions *opt);

/* Number of errors reported so far. */
int nnl_error_count(const Nnl *nnl);

/* Prints a diagnostic the way the CLI does: "file:line:col: error: msg", the line, a caret. */
void nnl_print_diag(FILE *out, const NnlDiag *d);

#endif
