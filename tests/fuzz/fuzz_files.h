/* fuzz_files.h — what the harnesses of the file readers share (fuzz_files.c).
 *
 * The readers take paths: a harness writes its input into files of a private temporary
 * directory, calls the reader, and checks what every refusal must look like. */
#ifndef FUZZ_FILES_H
#define FUZZ_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nnlrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* "<dir>/<name>" in a directory made on first use under $TMPDIR (or /tmp) and removed at
 * exit; the same pointer for the same name. */
const char *fuzz_path(const char *name);
/* Writes n bytes to path, or exits: a harness that cannot write its input tests nothing. */
void fuzz_write(const char *path, const void *p, size_t n);

/* Two files in one input: a u16 (little-endian) length of the first, the first, the second
 * (a length beyond the input takes what there is). */
void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *na,
                const uint8_t **b, size_t *nb);
/* The reverse, for seeds: *n bytes at a malloc'ed pointer. */
uint8_t *fuzz_join(const void *a, size_t na, const void *b, size_t nb, size_t *n);

/* p gzip-compressed in memory at `level` (0 to 9): *n bytes at a malloc'ed pointer. */
uint8_t *fuzz_gzip(const void *p, size_t n, int level, size_t *out_n);

/* Messages: the harness installs fuzz_capture as libnnlrt's error handler (fuzz_begin),
 * runs a reader, then fuzz_check_result says whether the outcome is well formed: a
 * success with no message, or a failure with exactly one, "PATH..." for one of the files
 * given (NULL-terminated) followed by ": error: " or ":LINE:COL: error: ". Anything else
 * is printed and aborts, which the fuzzer reports. */
void fuzz_begin(void);
void fuzz_check_result(bool ok, const char *what, ...);

/* The fixed small model of the checkpoint harness: tests/toy_model.h with 3 inputs and 2
 * outputs, tensors "lin.W" [3, 2] and "lin.b" [2] (8 parameters), one optimizer state, one
 * metric; float32, or float64 when elem is 8. */
NnlrtModel fuzz_model(int elem);
/* Its training set, made here: FUZZ_TRAIN_N samples, in batches of FUZZ_TRAIN_BATCH
 * (x and y malloc'ed). */
enum { FUZZ_TRAIN_N = 10, FUZZ_TRAIN_BATCH = 4 };
NnlrtDataset fuzz_train_set(void);
/* nnlrt_train of the float32 model on that set, shuffled, for `epochs`, resumed from the
 * checkpoint at path, quiet, without log: its exit code. */
int fuzz_resume(const char *path, int64_t epochs);

#endif
