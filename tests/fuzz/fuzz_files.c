/* fuzz_files.c — temporary files, two-file inputs, gzip and message checks for the
 * harnesses of the file readers (fuzz_files.h). */
#define _DEFAULT_SOURCE /* mkdtemp */
#include "fuzz_files.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

enum { FUZZ_NAMES = 16 };

static char fuzz_dir[1024];
static char fuzz_names[FUZZ_NAMES][64], fuzz_paths[FUZZ_NAMES][1200];
static int fuzz_n_paths;

static void fuzz_cleanup(void)
{
    for (int i = 0; i < fuzz_n_paths; i++)
        unlink(fuzz_paths[i]);
    rmdir(fuzz_dir);
}

static void fuzz_die(const char *what)
{
    fprintf(stderr, "fuzz: %s\n", what);
    exit(2);
}

const char *fuzz_path(const char *name)
{
    if (!fuzz_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/nnl-fuzz-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(fuzz_dir))
            fuzz_die("cannot create a temporary directory");
        atexit(fuzz_cleanup);
    }
    for (int i = 0; i < fuzz_n_paths; i++)
        if (strcmp(fuzz_names[i], name) == 0)
            return fuzz_paths[i];
    if (fuzz_n_paths == FUZZ_NAMES)
        fuzz_die("too many temporary names");
    snprintf(fuzz_names[fuzz_n_paths], sizeof fuzz_names[0], "%s", name);
    snprintf(fuzz_paths[fuzz_n_paths], sizeof fuzz_paths[0], "%s/%s", fuzz_dir, name);
    return fuzz_paths[fuzz_n_paths++];
}

void fuzz_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && (n == 0 || fwrite(p, 1, n, f) == n);
    ok = f && fclose(f) == 0 && ok;
    if (!ok)
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

static const NnlrtTensor fuzz_tensors[] = {
    {"lin.W", 2, {3, 2}, 0, 6, false},
    {"lin.b", 1, {2}, 6, 2, false},
};
static const char *const fuzz_metric_names[] = {"mae"};

/* float32 only: y = x W + b, loss the sum of squares over 2, metric the sum of |error|;
 * SGD with momentum (the state). */
static void fuzz_init(void **bufs, NnlrtRng *rng)
{
    float *p = bufs[NNLRT_BUF_PARAMS];
    for (int i = 0; i < 8; i++)
        p[i] = (float)(nnlrt_rand_uniform(rng) - 0.5);
}

static void fuzz_forward(void **bufs, int64_t B, double *sums, bool grads)
{
    const float *p = bufs[NNLRT_BUF_PARAMS], *x = bufs[NNLRT_BUF_X], *y = bufs[NNLRT_BUF_Y];
    float *g = bufs[NNLRT_BUF_GRADS];
    if (grads)
        memset(g, 0, 8 * sizeof(float));
    for (int64_t k = 0; k < B; k++) {
        for (int j = 0; j < 2; j++) {
            double e = p[6 + j] - y[2 * k + j];
            for (int i = 0; i < 3; i++)
                e += (double)x[3 * k + i] * p[2 * i + j];
            sums[0] += e * e / 2;
            sums[1] += fabs(e);
            for (int i = 0; grads && i < 3; i++)
                g[2 * i + j] += (float)(e * x[3 * k + i] / (double)B);
            if (grads)
                g[6 + j] += (float)(e / (double)B);
        }
    }
}

static void fuzz_grad(void **bufs, int64_t B, double *sums, uint64_t key)
{
    (void)key;
    fuzz_forward(bufs, B, sums, true);
}

static void fuzz_eval(void **bufs, int64_t B, double *sums)
{
    fuzz_forward(bufs, B, sums, false);
}

static double fuzz_update(void **bufs, void **states, int64_t step, int64_t epoch)
{
    (void)step;
    (void)epoch;
    float *p = bufs[NNLRT_BUF_PARAMS], *g = bufs[NNLRT_BUF_GRADS], *m = states[0];
    double g2 = 0;
    for (int i = 0; i < 8; i++) {
        m[i] = 0.9f * m[i] + g[i];
        p[i] -= 0.05f * m[i];
        g2 += (double)g[i] * g[i];
    }
    return g2;
}

NnlrtModel fuzz_model(int elem)
{
    NnlrtModel m = {.elem_size = elem, .n_params = 8, .n_tensors = 2,
                    .tensors = fuzz_tensors, .n_states = 1, .x_size = 3, .y_size = 2,
                    .n_metrics = 1, .metric_names = fuzz_metric_names,
                    .n_bufs = NNLRT_BUF_FIRST};
    if (elem == 4) {
        m.init = fuzz_init;
        m.grad = fuzz_grad;
        m.update = fuzz_update;
        m.eval = fuzz_eval;
    }
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
