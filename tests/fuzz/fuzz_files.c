/* fuzz_files.c — temporary files, two-file inputs, gzip and message checks for the
 * harnesses of the file readers (fuzz_files.h), on tests/check.h and tests/toy_model.h. */
#include "check.h"
#include "fuzz_files.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "toy_model.h"

static void fuzz_die(const char *what)
{
    fprintf(stderr, "fuzz: %s\n", what);
    exit(2);
}

const char *fuzz_path(const char *name)
{
    return check_tmp_path(name);
}

void fuzz_write(const char *path, const void *p, size_t n)
{
    if (!check_write_file(path, p, n))
        fuzz_die("cannot write a temporary file");
}

void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *na,
                const uint8_t **b, size_t *nb)
{
    size_t len = size >= 2 ? (size_t)(data[0] | data[1] << 8) : 0;
    size_t rest = size >= 2 ? size - 2 : 0;
    *a = data + (size >= 2 ? 2 : size);
    *na = len < rest ? len : rest;
    *b = *a + *na;
    *nb = rest - *na;
}

uint8_t *fuzz_join(const void *a, size_t na, const void *b, size_t nb, size_t *n)
{
    if (na > 0xFFFF)
        fuzz_die("a seed's first file is over 65535 bytes");
    uint8_t *p = malloc(2 + na + nb);
    if (!p)
        fuzz_die("out of memory");
    p[0] = (uint8_t)na;
    p[1] = (uint8_t)(na >> 8);
    memcpy(p + 2, a, na);
    memcpy(p + 2 + na, b, nb);
    *n = 2 + na + nb;
    return p;
}

uint8_t *fuzz_gzip(const void *p, size_t n, int level, size_t *out_n)
{
    z_stream z = {0};
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        fuzz_die("deflateInit2 failed");
    size_t cap = deflateBound(&z, (uLong)n);
    uint8_t *out = malloc(cap);
    if (!out)
        fuzz_die("out of memory");
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        fuzz_die("deflate failed");
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* ---- messages ---- */

static char fuzz_message[4096];
static int fuzz_messages;

static void fuzz_capture(void *ctx, const char *message)
{
    (void)ctx;
    snprintf(fuzz_message, sizeof fuzz_message, "%s", message);
    fuzz_messages++;
}

void fuzz_begin(void)
{
    nnlrt_set_error_handler(fuzz_capture, NULL);
    fuzz_message[0] = 0;
    fuzz_messages = 0;
}

/* After "PATH": ": error: " or ":LINE:COL: error: " with LINE, COL >= 1. */
static bool fuzz_located(const char *s)
{
    if (strncmp(s, ": error: ", 9) == 0)
        return true;
    char *end;
    if (*s != ':' || strtol(s + 1, &end, 10) < 1 || *end != ':' ||
        strtol(end + 1, &end, 10) < 1)
        return false;
    return strncmp(end, ": error: ", 9) == 0;
}

void fuzz_check_result(bool ok, const char *what, ...)
{
    bool good = ok ? fuzz_messages == 0 : fuzz_messages == 1;
    bool named = ok;
    va_list ap;
    va_start(ap, what);
    for (const char *path; !ok && (path = va_arg(ap, const char *)) != NULL;)
        named = named || (strncmp(fuzz_message, path, strlen(path)) == 0 &&
                          fuzz_located(fuzz_message + strlen(path)));
    va_end(ap);
    if (good && named)
        return;
    fprintf(stderr, "fuzz: %s %s with %d message(s), the last: '%s'\n", what,
            ok ? "succeeded" : "failed", fuzz_messages, fuzz_message);
    abort();
}

/* ---- the checkpoint harness's model ---- */

NnlrtModel fuzz_model(int elem)
{
    NnlrtModel m = toy_model(elem, 3, 2);
    toy.lr = 0.05;
    toy.momentum = 0.9;
    return m;
}

NnlrtDataset fuzz_train_set(void)
{
    NnlrtDataset ds = {.n = FUZZ_TRAIN_N, .x_size = 3, .y_size = 2, .x_type = NNLRT_F32,
                       .y_type = NNLRT_F32, .x_scale = 1};
    float *x = malloc(FUZZ_TRAIN_N * 3 * sizeof(float));
    float *y = malloc(FUZZ_TRAIN_N * 2 * sizeof(float));
    if (!x || !y)
        fuzz_die("out of memory");
    for (int i = 0; i < FUZZ_TRAIN_N; i++) {
        for (int k = 0; k < 3; k++)
            x[3 * i + k] = (float)((i * 7 + k * 3) % 5) / 4 - 0.5f;
        y[2 * i] = x[3 * i] - 2 * x[3 * i + 2];
        y[2 * i + 1] = 0.5f * x[3 * i + 1] + 1;
    }
    ds.x = x;
    ds.y = y;
    return ds;
}

int fuzz_resume(const char *path, int64_t epochs)
{
    NnlrtModel m = fuzz_model(4);
    NnlrtDataset ds = fuzz_train_set();
    NnlrtTrainConfig cfg = {.epochs = epochs, .batch = FUZZ_TRAIN_BATCH, .seed = 1,
                            .shuffle = true, .quiet = true, .resume_path = path};
    int rc = nnlrt_train(&m, &cfg, &ds, NULL);
    free(ds.x);
    free(ds.y);
    return rc;
}
