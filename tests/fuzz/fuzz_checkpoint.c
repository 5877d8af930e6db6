/* fuzz_checkpoint.c — libFuzzer harness over the checkpoint reader (runtime/checkpoint.c),
 * through its API only: nnlrt_checkpoint_verify and nnlrt_checkpoint_read.
 *
 * The input is the file. It is verified and read against the fixed small model of
 * fuzz_model, in float32 and in float64. A CRC stops almost every change, so a copy whose
 * last 4 bytes are replaced by the CRC32 of the bytes before them (where format 1 keeps
 * its CRC) is read too: the fuzzer's changes then reach the checks behind the CRC. (A
 * format that keeps its CRC elsewhere makes that copy one more damaged file.) Every read
 * must succeed silently or fail with one message naming the file; a copy that reads as a
 * float32 checkpoint is then resumed by nnlrt_train (fuzz_resume: 3 epochs of 3 batches),
 * which must train, refuse it the same way, or stop on a divergence. The seed corpus is
 * written with nnlrt_checkpoint_write by fuzz_seeds, so it follows the format; replay.c
 * runs the reproducers. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_files.h"
#include "nnlrt_int.h"

static bool ckpt_read_as(const char *path, int elem)
{
    NnlrtModel m = fuzz_model(elem);
    fuzz_begin();
    int rc = nnlrt_checkpoint_verify(&m, path);
    fuzz_check_result(rc == 0, "checkpoint_verify", path, NULL);

    double params[8], state[8], sums[2];
    void *states[1] = {state};
    NnlrtCheckpoint c;
    memset(&c, 0, sizeof c);
    c.n_sums = 2;
    c.sums = sums;
    c.params = params;
    c.states = states;
    fuzz_begin();
    int rc2 = nnlrt_checkpoint_read(path, &m, &c);
    fuzz_check_result(rc2 == 0, "checkpoint_read", path, NULL);
    if ((rc == 0) != (rc2 == 0) || (rc != 0 && rc != NNLRT_EUSER && rc != NNLRT_EIO))
        abort(); /* verify and read disagree, or an exit code that is neither */
    return rc == 0;
}

/* Parameters from a damaged file may make the loss NaN: a divergence (exit code 3,
 * "nnlc: error: training diverged ...") is a proper end too. */
static void ckpt_resume(const char *path)
{
    fuzz_begin();
    int rc = fuzz_resume(path, 3);
    fuzz_check_result(rc == 0, "resume", path, "nnlc", NULL);
    if (rc != 0 && rc != NNLRT_EUSER && rc != NNLRT_EIO && rc != NNLRT_EDIVERGED)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_path("run.ckpt");
    fuzz_write(path, data, size);
    if (ckpt_read_as(path, 4))
        ckpt_resume(path);
    ckpt_read_as(path, 8);
    if (size < 4)
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    uLong crc = crc32(crc32(0, Z_NULL, 0), copy, (uInt)(size - 4));
    for (int i = 0; i < 4; i++)
        copy[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    fuzz_write(path, copy, size);
    free(copy);
    if (ckpt_read_as(path, 4))
        ckpt_resume(path);
    ckpt_read_as(path, 8);
    return 0;
}
