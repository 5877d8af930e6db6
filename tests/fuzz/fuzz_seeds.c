/* fuzz_seeds.c — writes the generated seed corpus of a file-reader harness.
 *
 *   fuzz_seeds KIND DIR      KIND: idx idx_gz npy checkpoint
 *
 * Good files of each kind, made here the way the readers expect them (the checkpoints by
 * nnlrt_checkpoint_write itself, so they follow the format of the runtime they are built
 * with), encoded as the harness reads its input (fuzz_files.h). */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_files.h"
#include "nnlrt_int.h"

typedef struct {
    uint8_t *p;
    size_t n;
} Buf;

static void buf_add(Buf *b, const void *p, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    if (!b->p)
        exit(2);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static const char *seed_dir;
static int seed_count;

static void seed(const void *p, size_t n)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/seed-%02d", seed_dir, seed_count++);
    fuzz_write(path, p, n);
}

static void seed_pair(Buf a, Buf b, int flags)
{
    size_t n;
    uint8_t *p = fuzz_join(a.p, a.n, b.p, b.n, &n);
    if (flags < 0) {
        seed(p, n);
    } else {
        Buf f = {0};
        uint8_t flag = (uint8_t)flags;
        buf_add(&f, &flag, 1);
        buf_add(&f, p, n);
        seed(f.p, f.n);
        free(f.p);
    }
    free(p);
}

/* ---- IDX ---- */

static Buf idx_file(int ndims, const uint32_t *dims, const uint8_t *data, size_t n)
{
    Buf b = {0};
    uint8_t h[4] = {0, 0, 0x08, (uint8_t)ndims};
    buf_add(&b, h, 4);
    for (int k = 0; k < ndims; k++) {
        uint8_t d[4] = {(uint8_t)(dims[k] >> 24), (uint8_t)(dims[k] >> 16),
                        (uint8_t)(dims[k] >> 8), (uint8_t)dims[k]};
        buf_add(&b, d, 4);
    }
    buf_add(&b, data, n);
    return b;
}

static Buf gz(Buf b, int level)
{
    Buf z = {0};
    z.p = fuzz_gzip(b.p, b.n, level, &z.n);
    return z;
}

/* flags < 0: plain pairs (fuzz_idx); else the flags byte of fuzz_idx_gz. */
static void seeds_idx(bool compressed)
{
    uint8_t pixels[48], labels[4] = {7, 0, 9, 3};
    for (int i = 0; i < 48; i++)
        pixels[i] = (uint8_t)(i * 37);
    uint32_t d3[] = {3, 2, 3}, d1[] = {4}, d4[] = {2, 2, 3, 2}, n3 = 3, n2 = 2;
    Buf im3 = idx_file(3, d3, pixels, 18), lb3 = idx_file(1, &n3, labels, 3);
    Buf im1 = idx_file(1, d1, pixels, 4), lb4 = idx_file(1, d1, labels, 4);
    Buf im4 = idx_file(4, d4, pixels, 24), lb2 = idx_file(1, &n2, labels, 2);
    if (!compressed) {
        seed_pair(im3, lb3, -1);
        seed_pair(im1, lb4, -1);
        seed_pair(im4, lb2, -1);
        Buf z = gz(im3, 6);
        seed_pair(z, lb3, -1);
        free(z.p);
    } else {
        seed_pair(im3, lb3, 0);
        seed_pair(im1, lb4, 1 << 2);
        seed_pair(im4, lb2, 2 << 2);
        seed_pair(im3, lb3, 3 << 2);
        Buf zi = gz(im3, 9), zl = gz(lb3, 1);
        seed_pair(zi, zl, 3);
        seed_pair(zi, lb3, 1);
        seed_pair(im3, zl, 2);
        free(zi.p);
        free(zl.p);
    }
    free(im3.p), free(lb3.p), free(im1.p), free(lb4.p), free(im4.p), free(lb2.p);
}

/* ---- NPY ---- */

static Buf npy_file(int version, const char *dict, const void *data, size_t n)
{
    size_t pre = version == 1 ? 10 : 12, len = strlen(dict) + 1;
    len += (64 - (pre + len) % 64) % 64;
    Buf b = {0};
    uint8_t p[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (uint8_t)version, 0};
    for (size_t k = 0; k < pre - 8; k++)
        p[8 + k] = (uint8_t)(len >> (8 * k));
    buf_add(&b, p, pre);
    buf_add(&b, dict, strlen(dict));
    for (size_t k = strlen(dict); k + 1 < len; k++)
        buf_add(&b, " ", 1);
    buf_add(&b, "\n", 1);
    buf_add(&b, data, n);
    return b;
}

static void seeds_npy(void)
{
    float x4[12] = {1, 2, 3, 4.5f, -5, 6, 7, 8, 9, 1e-3f, 0, -0.25f};
    double y4[4] = {0.5, -1, 2, 1e10}, x2[4] = {1, 2, 3, 4};
    uint8_t u8[8] = {0, 2, 1, 2, 255, 7, 9, 4};
    int64_t i64[2] = {3, -1};
    Buf a = npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", x4, 48);
    Buf b = npy_file(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", u8, 4);
    seed_pair(a, b, -1);
    Buf c = npy_file(2, "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 1), }", y4, 32);
    seed_pair(a, c, -1);
    Buf d = npy_file(3, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 2), }", u8, 8);
    Buf e = npy_file(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", i64, 16);
    seed_pair(d, e, -1);
    Buf f = npy_file(1, "{'shape': (2, 2), 'descr': '<f8', 'fortran_order': False}", x2, 32);
    Buf g = npy_file(1, "{'descr':'<f8','fortran_order':False,'shape':(2,)}", y4, 16);
    seed_pair(f, g, -1);
    Buf z = gz(a, 6);
    seed_pair(z, b, -1);
    free(a.p), free(b.p), free(c.p), free(d.p), free(e.p), free(f.p), free(g.p), free(z.p);
}

/* ---- checkpoints ---- */

static void seed_checkpoint(int elem, int64_t epoch, int64_t step, int64_t next_batch,
                            bool log)
{
    NnlrtModel m = fuzz_model(elem);
    double params[8], state[8], sums[2] = {1.25, 0.5};
    for (int i = 0; i < 8; i++) {
        if (elem == 4) {
            ((float *)params)[i] = (float)i / 3;
            ((float *)state)[i] = -(float)i;
        } else {
            params[i] = i / 3.0;
            state[i] = -i;
        }
    }
    void *states[1] = {state};
    NnlrtCheckpoint c = {.epoch = epoch, .step = step, .next_batch = next_batch,
                         .batch = 4, .n_train = 10, .shuffled = true, .has_log = log,
                         .log_crc = log ? 0x1234abcdu : 0, .log_bytes = log ? 77 : 0,
                         .last_loss = step ? 0.75 : NAN, .n_sums = 2, .sums = sums,
                         .params = params, .states = states};
    /* the options of the run: none for the first seed, words with a value for the others */
    static const char *const options[] = {"--set", "epochs=3; batch = 4", "--log", "fit.csv",
                                          "--float64"};
    c.options = options;
    c.n_options = step ? (elem == 8 ? 5 : 4) : 0;
    nnlrt_rng_seed(&c.shuffle, 42);
    char path[1200];
    snprintf(path, sizeof path, "%s/seed-%02d", seed_dir, seed_count++);
    if (!nnlrt_checkpoint_write(path, 1, &m, &c))
        exit(2);
}

static void seeds_checkpoint(void)
{
    seed_checkpoint(4, 0, 0, 0, false);
    seed_checkpoint(4, 1, 4, 1, true);
    seed_checkpoint(4, 3, 9, 0, false);
    seed_checkpoint(8, 2, 7, 2, true);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_seeds idx|idx_gz|npy|checkpoint DIR\n");
        return 2;
    }
    seed_dir = argv[2];
    if (strcmp(argv[1], "idx") == 0)
        seeds_idx(false);
    else if (strcmp(argv[1], "idx_gz") == 0)
        seeds_idx(true);
    else if (strcmp(argv[1], "npy") == 0)
        seeds_npy();
    else if (strcmp(argv[1], "checkpoint") == 0)
        seeds_checkpoint();
    else {
        fprintf(stderr, "fuzz_seeds: unknown kind '%s'\n", argv[1]);
        return 2;
    }
    printf("fuzz_seeds: %d %s seeds in %s\n", seed_count, argv[1], seed_dir);
    return 0;
}
