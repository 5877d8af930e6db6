/* test_data.c — unit tests of libnnlrt's data sets: the IDX and NPY loaders (good files,
 * every message, a truncation at every byte and random bit flips, plain and .gz), damaged
 * CSV files checked against an independent reading of the text, finding data files, and
 * stored types (conversion in batches, memory, split, standardize, range checks).
 *
 *   test_data GROUP      GROUP: a name in the table at the end
 *
 * Every file is generated here, into the temporary directory of tests/check.h (removed at
 * the end). Messages are captured by tests/check.h.
 */
#define _DEFAULT_SOURCE /* setenv, malloc_usable_size */
#include "check.h"

#include <ctype.h>
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <zlib.h>

#include "nnlrt.h"
#include "nnlrt_int.h"

/* ---- helpers ---- */

typedef struct {
    unsigned char *p;
    size_t n;
} Bytes;

static void bytes_add(Bytes *b, const void *p, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    if (!b->p) {
        fprintf(stderr, "test_data: out of memory\n");
        exit(2);
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void write_file(const char *path, const void *p, size_t n)
{
    if (!check_write_file(path, p, n)) {
        fprintf(stderr, "test_data: cannot write %s\n", path);
        exit(2);
    }
}

static Bytes read_file(const char *path)
{
    Bytes b = {0};
    b.p = (unsigned char *)check_read_file(path, &b.n);
    return b;
}

/* b gzip-compressed (through a file, as gzip would write it). */
static Bytes gz_bytes(Bytes b, int level)
{
    static char path[1200];
    snprintf(path, sizeof path, "%s/compress.tmp", check_tmp_dir());
    char mode[8];
    snprintf(mode, sizeof mode, "wb%d", level);
    gzFile gz = gzopen(path, mode);
    bool ok = gz && gzwrite(gz, b.p, (unsigned)b.n) == (int)b.n;
    ok = gz && gzclose(gz) == Z_OK && ok;
    if (!ok) {
        fprintf(stderr, "test_data: cannot compress into %s\n", path);
        exit(2);
    }
    Bytes out = read_file(path);
    unlink(path);
    return out;
}

static void write_gz(const char *path, Bytes b)
{
    Bytes z = gz_bytes(b, 6);
    write_file(path, z.p, z.n);
    free(z.p);
}

/* A refused file: one message, naming the file and a byte offset. */
static bool refused_well(const char *path)
{
    return check_messages == 1 && strstr(check_message, path) &&
           strstr(check_message, ": error: at byte ");
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* ---- IDX ---- */

/* An IDX file: 0 0 type ndims, the dims, then `data` (n bytes). */
static Bytes idx_file(int type, int ndims, const uint32_t *dims, const void *data, size_t n)
{
    Bytes b = {0};
    unsigned char h[4] = {0, 0, (unsigned char)type, (unsigned char)ndims};
    bytes_add(&b, h, 4);
    for (int k = 0; k < ndims; k++) {
        be32(h, dims[k]);
        bytes_add(&b, h, 4);
    }
    bytes_add(&b, data, n);
    return b;
}

/* The standard small pair: 3 images of 2 x 3 bytes, 3 labels. */
static const uint32_t idx_dims[] = {3, 2, 3};
static const unsigned char idx_pixels[18] = {0,  1,   2,   3,   4,  5,  10, 20, 30,
                                             40, 250, 255, 128, 64, 32, 16, 8,  7};
static const unsigned char idx_labels[3] = {7, 0, 9};

static Bytes idx_images_good(void)
{
    return idx_file(0x08, 3, idx_dims, idx_pixels, sizeof idx_pixels);
}

static Bytes idx_labels_good(void)
{
    uint32_t n = 3;
    return idx_file(0x08, 1, &n, idx_labels, sizeof idx_labels);
}

static void expect_idx_good(const NnlrtDataset *ds, const char *images, const char *labels)
{
    EXPECT(ds->n == 3 && ds->x_size == 6 && ds->y_size == 1, "sizes %lld %lld %lld",
           (long long)ds->n, (long long)ds->x_size, (long long)ds->y_size);
    EXPECT(ds->x_type == NNLRT_U8 && ds->y_type == NNLRT_U8, "types");
    EXPECT(ds->x_scale == 1.0 / 255, "scale %g", ds->x_scale);
    EXPECT(memcmp(ds->x, idx_pixels, sizeof idx_pixels) == 0, "pixels");
    EXPECT(memcmp(ds->y, idx_labels, sizeof idx_labels) == 0, "labels");
    EXPECT(strcmp(ds->source, images) == 0 && strcmp(ds->y_source, labels) == 0, "sources");
    EXPECT(ds->rows == NULL, "no rows");
    EXPECT(nnlrt_dataset_y(ds, 2) == 9 && nnlrt_dataset_x(ds, 11) == 1.0, "accessors");
}

static void test_idx_good(void)
{
    const char *images = check_tmp_path("images.idx"), *labels = check_tmp_path("labels.idx");
    const char *images_gz = check_tmp_path("images.idx.gz");
    const char *labels_gz = check_tmp_path("labels.idx.gz");
    Bytes im = idx_images_good(), lb = idx_labels_good();
    write_file(images, im.p, im.n);
    write_file(labels, lb.p, lb.n);
    write_gz(images_gz, im);
    write_gz(labels_gz, lb);
    const char *pairs[][2] = {{images, labels}, {images_gz, labels_gz}, {images_gz, labels}};
    for (int i = 0; i < 3; i++) {
        NnlrtDataset ds;
        check_clear();
        bool ok = nnlrt_idx_load(pairs[i][0], pairs[i][1], 1.0 / 255, &ds);
        EXPECT(ok, "%s: %s", pairs[i][0], check_message);
        if (ok)
            expect_idx_good(&ds, pairs[i][0], pairs[i][1]);
        nnlrt_dataset_free(&ds);
        /* the shape alone: the same sizes and labels, no pixels */
        check_clear();
        ok = nnlrt_idx_load_shape(pairs[i][0], pairs[i][1], 1.0 / 255, &ds);
        EXPECT(ok, "%s (shape): %s", pairs[i][0], check_message);
        EXPECT(ds.x == NULL && ds.n == 3 && ds.x_size == 6 && ds.y_size == 1 &&
                   ds.x_type == NNLRT_U8 && ds.x_scale == 1.0 / 255,
               "%s (shape): x %p, sizes %lld %lld", pairs[i][0], ds.x, (long long)ds.n,
               (long long)ds.x_size);
        EXPECT(ds.y && memcmp(ds.y, idx_labels, sizeof idx_labels) == 0, "shape: labels");
        nnlrt_dataset_free(&ds);
    }

    /* one dimension: one value per sample */
    uint32_t n = 3;
    Bytes flat = idx_file(0x08, 1, &n, "abc", 3);
    write_file(images, flat.p, flat.n);
    NnlrtDataset ds;
    EXPECT(nnlrt_idx_load(images, labels, 2, &ds) && ds.x_size == 1 && ds.n == 3 &&
               nnlrt_dataset_x(&ds, 1) == 2 * 'b',
           "1-D images: %s", check_message);
    nnlrt_dataset_free(&ds);
    free(flat.p);
    free(im.p);
    free(lb.p);
}

typedef struct {
    const char *name;
    Bytes images, labels;
    bool labels_wrong;  /* the message is about the labels file */
    const char *expect; /* after "PATH" */
    bool in_pixels;     /* the fault is in the images' data: reading a .gz file's shape
                         * alone does not see it (a plain file's size shows it) */
} IdxCase;

static void idx_error_case(const IdxCase *c, bool gz)
{
    const char *images = check_tmp_path(gz ? "e_images.gz" : "e_images");
    const char *labels = check_tmp_path(gz ? "e_labels.gz" : "e_labels");
    if (gz) {
        write_gz(images, c->images);
        write_gz(labels, c->labels);
    } else {
        write_file(images, c->images.p, c->images.n);
        write_file(labels, c->labels.p, c->labels.n);
    }
    NnlrtDataset ds;
    check_clear();
    EXPECT(!nnlrt_idx_load(images, labels, 1, &ds), "%s: should fail", c->name);
    EXPECT(ds.x == NULL && ds.y == NULL && ds.n == 0, "%s: left allocated", c->name);
    char want[512];
    snprintf(want, sizeof want, "%s", c->expect);
    char *at = strstr(want, "at byte ");
    if (gz && at) { /* "at byte N:" becomes "at byte N (uncompressed):" */
        char *colon = strchr(at, ':');
        char rest[512];
        snprintf(rest, sizeof rest, "%s", colon);
        snprintf(colon, sizeof want - (size_t)(colon - want), " (uncompressed)%s", rest);
    }
    EXPECT_ONE_MESSAGE(c->labels_wrong ? labels : images, want);
    /* the shape alone: the same error, unless it is in the pixels of a .gz file */
    check_clear();
    bool ok = nnlrt_idx_load_shape(images, labels, 1, &ds);
    EXPECT(ok == (gz && c->in_pixels), "%s (shape): %s", c->name, ok ? "accepted" : check_message);
    if (!ok)
        EXPECT_ONE_MESSAGE(c->labels_wrong ? labels : images, want);
    nnlrt_dataset_free(&ds);
}

static void test_idx_errors(void)
{
    Bytes im = idx_images_good(), lb = idx_labels_good();
    uint32_t big[] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 1, 1}, empty[] = {0, 2, 3},
             hollow[] = {3, 0, 3}, two[] = {2};
    IdxCase cases[] = {
        {"magic", idx_file(0x08, 3, idx_dims, idx_pixels, 18), {0}, false,
         ": error: at byte 0: not an IDX file: it starts with 0x0001, not 0x0000", false},
        {"float32", idx_file(0x0D, 3, idx_dims, idx_pixels, 18), {0}, false,
         ": error: at byte 2: IDX element type 0x0d (float32) is not supported: images must "
         "be unsigned bytes (type 0x08)", false},
        {"unknown type", idx_file(0x42, 3, idx_dims, idx_pixels, 18), {0}, false,
         ": error: at byte 2: unknown IDX element type 0x42 (not an IDX file?)", false},
        {"0 dims", idx_file(0x08, 0, idx_dims, idx_pixels, 18), {0}, false,
         ": error: at byte 3: IDX images have 1 to 4 dimensions, the header says 0", false},
        {"5 dims", idx_file(0x08, 5, big, idx_pixels, 0), {0}, false,
         ": error: at byte 3: IDX images have 1 to 4 dimensions, the header says 5", false},
        {"overflow", idx_file(0x08, 3, big, idx_pixels, 18), {0}, false,
         ": error: at byte 8: the dimensions multiply to more than 2^63 bytes", false},
        {"no images", idx_file(0x08, 3, empty, idx_pixels, 0), {0}, false,
         ": error: at byte 4: the file holds no images (the first dimension is 0)", false},
        {"hollow", idx_file(0x08, 3, hollow, idx_pixels, 0), {0}, false,
         ": error: at byte 8: dimension 2 is 0: the images are empty", false},
        {"short", idx_file(0x08, 3, idx_dims, idx_pixels, 10), {0}, false,
         ": error: at byte 26: file truncated: the header promises 18 bytes of data, only 10 "
         "are there", true},
        {"long", idx_file(0x08, 3, idx_dims, "0123456789abcdefghi", 19), {0}, false,
         ": error: at byte 34: 1 byte of unexpected data after the last image", true},
        {"header", idx_file(0x08, 3, idx_dims, NULL, 0), {0}, false, "", false},
        {"count", idx_images_good(), idx_file(0x08, 1, two, idx_labels, 2), true,
         ": error: at byte 4: 2 labels for the 3 images of '%s'", false},
        {"labels dims", idx_images_good(), idx_file(0x08, 2, idx_dims, idx_labels, 3), true,
         ": error: at byte 3: IDX labels have 1 dimension, the header says 2", false},
        {"labels long", idx_images_good(), idx_file(0x08, 1, idx_dims, "abcd", 4), true,
         ": error: at byte 11: 1 byte of unexpected data after the last label", false},
    };
    cases[0].images.p[1] = 1;
    cases[10].images.n = 9; /* 3 dimensions, cut inside the second */
    cases[10].expect = ": error: at byte 9: file truncated in the header (3 dimensions need "
                       "16 bytes of header)";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!cases[i].labels.p)
            cases[i].labels = idx_labels_good();
        for (int gz = 0; gz < 2; gz++) {
            IdxCase c = cases[i];
            char expect[512];
            snprintf(expect, sizeof expect, c.expect,
                     check_tmp_path(gz ? "e_images.gz" : "e_images"));
            c.expect = expect;
            idx_error_case(&c, gz);
        }
        free(cases[i].images.p);
        free(cases[i].labels.p);
    }

    /* no file, a directory, a bad scale */
    const char *labels = check_tmp_path("labels.idx"), *missing = check_tmp_path("missing.idx");
    write_file(labels, lb.p, lb.n);
    NnlrtDataset ds;
    check_clear();
    EXPECT(!nnlrt_idx_load(missing, labels, 1, &ds), "missing file");
    EXPECT_ONE_MESSAGE(missing, ": error: cannot open the file: No such file or directory");
    check_clear();
    EXPECT(!nnlrt_idx_load(check_tmp_dir(), labels, 1, &ds), "directory");
    EXPECT_ONE_MESSAGE(check_tmp_dir(), ": error: cannot read the file: Is a directory");
    check_clear();
    EXPECT(!nnlrt_idx_load(labels, labels, 0, &ds), "scale 0");
    EXPECT_ONE_MESSAGE(NULL, "nnlc: error: the scale of a data set must be a finite number other "
                         "than 0, not 0");
    check_clear();
    EXPECT(!nnlrt_idx_load(labels, labels, NAN, &ds), "scale nan");
    EXPECT(strstr(check_message, "not nan") != NULL, "'%s'", check_message);
    free(im.p);
    free(lb.p);
}

/* Damaged .gz streams: cut short, corrupt data, a bad trailer. */
static void test_idx_gz_damage(void)
{
    Bytes im = idx_images_good(), lb = idx_labels_good();
    const char *images = check_tmp_path("g_images.gz"), *labels = check_tmp_path("g_labels.idx");
    write_file(labels, lb.p, lb.n);
    Bytes z = gz_bytes(im, 6);
    NnlrtDataset ds;

    write_file(images, z.p, z.n - 4); /* the length in the trailer is missing */
    check_clear();
    EXPECT(!nnlrt_idx_load(images, labels, 1, &ds), "no trailer length");
    EXPECT_ONE_MESSAGE(images, ": error: at byte 34 (uncompressed): the compressed stream is cut "
                           "short after the data");

    z.p[z.n - 6] ^= 0x10; /* the CRC */
    write_file(images, z.p, z.n);
    check_clear();
    EXPECT(!nnlrt_idx_load(images, labels, 1, &ds), "bad crc");
    /* zlib inflates a small stream whole on the first read, and drops it: the place is
     * where reading stood */
    EXPECT_ONE_MESSAGE(images, ": error: at byte 0 (uncompressed): corrupt gzip data (incorrect "
                           "data check)");
    z.p[z.n - 6] ^= 0x10;

    write_file(images, z.p, 20); /* cut inside the deflate data */
    check_clear();
    EXPECT(!nnlrt_idx_load(images, labels, 1, &ds), "cut stream");
    EXPECT(refused_well(images) && (strstr(check_message, "cut short") ||
                                    strstr(check_message, "truncated in the header")),
           "'%s'", check_message);
    free(z.p);
    free(im.p);
    free(lb.p);
}

/* What a damaged file may do: be refused, naming itself and a byte offset; or load with
 * the sizes of the good file (one flipped bit cannot change a header's sizes and still
 * agree with the data) and, for a plain file, the data it holds. */
typedef struct {
    const char *path;     /* the file that is damaged */
    bool is_x;            /* it holds the inputs (else the targets) */
    size_t data_at;       /* where its data starts; 0 for a .gz (data not compared) */
    int64_t n, x_size, y_size;
} Mutation;

static void expect_mutation_ok(const Mutation *m, bool ok, const NnlrtDataset *ds,
                               const char *what, size_t at, Bytes file)
{
    if (!ok) {
        EXPECT(refused_well(m->path), "%s at %zu of %s: '%s'", what, at, m->path, check_message);
        EXPECT(ds->x == NULL && ds->y == NULL, "%s at %zu: left allocated", what, at);
        return;
    }
    bool sizes = ds->n == m->n && ds->x_size == m->x_size && ds->y_size == m->y_size;
    EXPECT(sizes, "%s at %zu of %s: loaded with sizes %lld %lld %lld", what, at, m->path,
           (long long)ds->n, (long long)ds->x_size, (long long)ds->y_size);
    if (sizes && m->data_at)
        EXPECT(memcmp(m->is_x ? ds->x : ds->y, file.p + m->data_at, file.n - m->data_at) == 0,
               "%s at %zu of %s: the data set holds other values than the file", what, at,
               m->path);
}

typedef bool (*LoadFn)(const char *x, const char *y, double scale, NnlrtDataset *out);

/* Every prefix of `file`, written to m->path, loaded as the pair (x, y). */
static void truncate_every_byte(LoadFn load, const Mutation *m, Bytes file, const char *x,
                                const char *y)
{
    int refused = 0;
    for (size_t k = 0; k < file.n; k++) {
        write_file(m->path, file.p, k);
        NnlrtDataset ds;
        check_clear();
        bool ok = load(x, y, 0.5, &ds);
        EXPECT(!ok, "truncated at %zu of %zu: %s loaded", k, file.n, m->path);
        expect_mutation_ok(m, ok, &ds, "truncated", k, file);
        refused += !ok;
        nnlrt_dataset_free(&ds);
    }
    EXPECT(refused == (int)file.n, "%s: %d of %zu truncations refused", m->path, refused,
           file.n);
}

/* `flips` random single-bit flips of `file`, each on its own; counts the ones that load. */
static void flip_bits(LoadFn load, const Mutation *m, Bytes file, const char *x, const char *y,
                      int flips, uint64_t seed, int *loaded)
{
    NnlrtRng rng;
    nnlrt_rng_seed(&rng, seed);
    Bytes copy = {0};
    bytes_add(&copy, file.p, file.n);
    for (int i = 0; i < flips; i++) {
        size_t at = (size_t)nnlrt_rand_below(&rng, file.n);
        unsigned char bit = (unsigned char)(1u << nnlrt_rand_below(&rng, 8));
        copy.p[at] ^= bit;
        write_file(m->path, copy.p, copy.n);
        NnlrtDataset ds;
        check_clear();
        bool ok = load(x, y, 0.5, &ds);
        expect_mutation_ok(m, ok, &ds, "bit flip", at, copy);
        *loaded += ok;
        nnlrt_dataset_free(&ds);
        copy.p[at] ^= bit;
    }
    free(copy.p);
}

/* The four files of a pair, each damaged in turn: truncated at every byte, and bit flips. */
typedef struct {
    const char *path;
    Bytes file;
    const char *x, *y;
    bool is_x;
    size_t data_at;
} MutationTarget;

static int mutate_all(LoadFn load, const MutationTarget *targets, int64_t n, int64_t x_size,
                      uint64_t seed)
{
    int loaded = 0;
    for (int t = 0; t < 4; t++) {
        const MutationTarget *g = &targets[t];
        Mutation m = {g->path, g->is_x, g->data_at, n, x_size, 1};
        truncate_every_byte(load, &m, g->file, g->x, g->y);
        flip_bits(load, &m, g->file, g->x, g->y, 250, seed + (uint64_t)t, &loaded);
        write_file(g->path, g->file.p, g->file.n); /* restore */
    }
    return loaded;
}

static void test_idx_mutations(void)
{
    Bytes im = idx_images_good(), lb = idx_labels_good();
    const char *images = check_tmp_path("m_images"), *labels = check_tmp_path("m_labels");
    const char *images_gz = check_tmp_path("m_images.gz");
    const char *labels_gz = check_tmp_path("m_labels.gz");
    Bytes zim = gz_bytes(im, 9), zlb = gz_bytes(lb, 9);
    write_file(images, im.p, im.n);
    write_file(labels, lb.p, lb.n);
    write_file(images_gz, zim.p, zim.n);
    write_file(labels_gz, zlb.p, zlb.n);
    MutationTarget targets[] = {
        {images, im, images, labels, true, 16},
        {labels, lb, images, labels, false, 8},
        {images_gz, zim, images_gz, labels_gz, true, 0},
        {labels_gz, zlb, images_gz, labels_gz, false, 0},
    };
    int loaded = mutate_all(nnlrt_idx_load, targets, 3, 6, 100);
    /* a flipped pixel or label loads; most other flips are refused */
    EXPECT(loaded > 0 && loaded < 1000, "%d of 1000 flipped files loaded", loaded);
    free(im.p);
    free(lb.p);
    free(zim.p);
    free(zlb.p);
}

/* 60000 x 784 bytes, as MNIST: the data set holds them as bytes, in one allocation of
 * that size, plain or compressed. */
static void test_idx_memory(void)
{
    enum { N = 60000, D = 784 };
    uint32_t dims[] = {N, 28, 28}, n = N;
    unsigned char *pixels = malloc((size_t)N * D), *labels = malloc(N);
    if (!pixels || !labels)
        exit(2);
    for (size_t i = 0; i < (size_t)N * D; i++)
        pixels[i] = (unsigned char)(i * 31 + i / 7);
    for (size_t i = 0; i < N; i++)
        labels[i] = (unsigned char)(i % 10);
    Bytes im = idx_file(0x08, 3, dims, pixels, (size_t)N * D);
    Bytes lb = idx_file(0x08, 1, &n, labels, N);
    const char *im_path = check_tmp_path("big_images"), *lb_path = check_tmp_path("big_labels");
    const char *im_gz = check_tmp_path("big_images.gz");
    write_file(im_path, im.p, im.n);
    write_file(lb_path, lb.p, lb.n);
    Bytes z = gz_bytes(im, 1);
    write_file(im_gz, z.p, z.n);
    const char *paths[] = {im_path, im_gz};
    for (int i = 0; i < 2; i++) {
        NnlrtDataset ds;
        check_clear();
        bool ok = nnlrt_idx_load(paths[i], lb_path, 1.0 / 255, &ds);
        EXPECT(ok, "%s: %s", paths[i], check_message);
        if (!ok)
            continue;
        EXPECT(ds.n == N && ds.x_size == D && ds.x_type == NNLRT_U8, "MNIST sizes");
        EXPECT(nnlrt_dataset_bytes(&ds) == (size_t)N * D + N, "%zu bytes",
               nnlrt_dataset_bytes(&ds));
#ifdef __GLIBC__
        size_t got = malloc_usable_size(ds.x);
        EXPECT(got >= (size_t)N * D && got < (size_t)N * D + 65536,
               "%s: the images take %zu bytes", paths[i], got);
#endif
        EXPECT(memcmp(ds.x, pixels, (size_t)N * D) == 0 && memcmp(ds.y, labels, N) == 0,
               "%s: values", paths[i]);
        nnlrt_dataset_free(&ds);
    }
    unlink(im_path);
    unlink(lb_path);
    unlink(im_gz);
    free(z.p);
    free(im.p);
    free(lb.p);
    free(pixels);
    free(labels);
}

static void test_idx(void)
{
    test_idx_good();
    test_idx_errors();
    test_idx_gz_damage();
    test_idx_mutations();
    test_idx_memory();
}

/* ---- NPY ---- */

/* An NPY file of format `version` with the header dict `dict`, padded with spaces and a
 * newline to a multiple of 64 bytes as numpy does, then `data`. */
static Bytes npy_file(int version, const char *dict, const void *data, size_t n)
{
    size_t pre = version == 1 ? 10 : 12, len = strlen(dict) + 1;
    len += (64 - (pre + len) % 64) % 64;
    Bytes b = {0};
    unsigned char p[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)version, 0};
    for (size_t k = 0; k < pre - 8; k++)
        p[8 + k] = (unsigned char)(len >> (8 * k));
    bytes_add(&b, p, pre);
    bytes_add(&b, dict, strlen(dict));
    for (size_t k = strlen(dict); k + 1 < len; k++)
        bytes_add(&b, " ", 1);
    bytes_add(&b, "\n", 1);
    bytes_add(&b, data, n);
    return b;
}

static const float npy_x4[12] = {1, 2, 3, 4.5f, -5, 6, 7, 8, 9, 1e-3f, 0, -0.25f};
static const unsigned char npy_u4[4] = {0, 2, 1, 2};

static Bytes npy_x_good(void)
{
    return npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", npy_x4,
                    sizeof npy_x4);
}

static Bytes npy_y_good(void)
{
    return npy_file(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", npy_u4, 4);
}

static bool npy_load_pair(Bytes x, Bytes y, bool gz, double scale, NnlrtDataset *ds)
{
    const char *xp = check_tmp_path(gz ? "x.npy.gz" : "x.npy");
    const char *yp = check_tmp_path(gz ? "y.npy.gz" : "y.npy");
    if (gz) {
        write_gz(xp, x);
        write_gz(yp, y);
    } else {
        write_file(xp, x.p, x.n);
        write_file(yp, y.p, y.n);
    }
    check_clear();
    bool ok = nnlrt_npy_load(xp, yp, scale, ds);
    EXPECT(ok, "%s: %s", xp, check_message);
    if (ok)
        EXPECT(strcmp(ds->source, xp) == 0 && strcmp(ds->y_source, yp) == 0, "sources");
    /* the shape alone: the same sizes, types and targets, no inputs */
    NnlrtDataset shape;
    check_clear();
    bool shaped = nnlrt_npy_load_shape(xp, yp, scale, &shape);
    EXPECT(shaped == ok, "%s (shape): %s", xp, check_message);
    if (ok && shaped) {
        size_t yb = (size_t)ds->n * (size_t)ds->y_size * nnlrt_type_size(ds->y_type);
        EXPECT(shape.x == NULL && shape.n == ds->n && shape.x_size == ds->x_size &&
                   shape.y_size == ds->y_size && shape.x_type == ds->x_type &&
                   shape.y_type == ds->y_type && shape.x_scale == ds->x_scale &&
                   memcmp(shape.y, ds->y, yb) == 0,
               "%s (shape): not the file's shape and targets", xp);
    }
    nnlrt_dataset_free(&shape);
    return ok;
}

static void test_npy_good(void)
{
    double y8[8] = {1, -1, 2, -2, 3, -3, 4, -4}, x16[16];
    int64_t i8[4] = {3, 1, -7, 1LL << 40};
    unsigned char u12[12];
    for (int i = 0; i < 16; i++)
        x16[i] = i * 0.5 - 3;
    for (int i = 0; i < 12; i++)
        u12[i] = (unsigned char)(i * 20);
    for (int gz = 0; gz < 2; gz++) {
        NnlrtDataset ds;
        Bytes x = npy_x_good(), y = npy_y_good();
        if (npy_load_pair(x, y, gz, 1, &ds)) {
            EXPECT(ds.n == 4 && ds.x_size == 3 && ds.y_size == 1, "f4/u1 sizes");
            EXPECT(ds.x_type == NNLRT_F32 && ds.y_type == NNLRT_U8 && ds.x_scale == 1, "types");
            EXPECT(memcmp(ds.x, npy_x4, sizeof npy_x4) == 0 && memcmp(ds.y, npy_u4, 4) == 0,
                   "f4/u1 values");
        }
        nnlrt_dataset_free(&ds);
        free(x.p);
        free(y.p);

        /* format 2.0, float64 in 3 dimensions, targets of 2 values per sample */
        x = npy_file(2, "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2, 2), }", x16,
                     sizeof x16);
        y = npy_file(2, "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2), }", y8,
                     sizeof y8);
        if (npy_load_pair(x, y, gz, 2, &ds)) {
            EXPECT(ds.n == 4 && ds.x_size == 4 && ds.y_size == 2, "f8 sizes");
            EXPECT(ds.x_type == NNLRT_F64 && ds.y_type == NNLRT_F64 && ds.x_scale == 2, "types");
            EXPECT(nnlrt_dataset_x(&ds, 15) == 2 * 4.5 && nnlrt_dataset_y(&ds, 7) == -4,
                   "f8 values");
        }
        nnlrt_dataset_free(&ds);
        free(x.p);
        free(y.p);

        /* format 3.0, bytes and int64; double quotes, other key order, Python 2 longs */
        x = npy_file(3, "{\"shape\": (4L, 3L), \"fortran_order\": False, \"descr\": \"|u1\"}",
                     u12, sizeof u12);
        y = npy_file(3, "{'descr':'<i8','fortran_order':False,'shape':(4,)}", i8, sizeof i8);
        if (npy_load_pair(x, y, gz, 1.0 / 255, &ds)) {
            EXPECT(ds.n == 4 && ds.x_size == 3 && ds.y_size == 1, "u1/i8 sizes");
            EXPECT(ds.x_type == NNLRT_U8 && ds.y_type == NNLRT_I64, "types");
            EXPECT(memcmp(ds.x, u12, sizeof u12) == 0 && memcmp(ds.y, i8, sizeof i8) == 0,
                   "u1/i8 values");
            EXPECT(nnlrt_dataset_y(&ds, 3) == 1099511627776.0, "int64 target");
        }
        nnlrt_dataset_free(&ds);
        free(x.p);
        free(y.p);
    }
}

typedef struct {
    const char *name;
    int version;
    const char *dict;   /* the inputs' header; NULL for the good one */
    size_t bytes;       /* bytes of data after the header that is not the good one (from
                         * npy_x4 or npy_u4, then zeros) */
    const char *y_dict; /* the targets' header; NULL for the good one */
    const char *expect; /* after "PATH" of the file that is wrong */
} NpyCase;

static const NpyCase npy_cases[] = {
    {"version", 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", 48, NULL,
     ": error: at byte 6: NPY version 4.0 is not supported (1.0, 2.0 and 3.0 are)"},
    {"big-endian", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4, 3), }", 48, NULL,
     ": error: at byte 20: dtype '>f4' is big-endian: save the array as little-endian "
     "(numpy: a.astype('<f4'))"},
    {"int32", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4, 3), }", 48, NULL,
     ": error: at byte 20: dtype '<i4' is not supported: the inputs must be float32 '<f4', "
     "float64 '<f8', uint8 '|u1' or int64 '<i8' (numpy: a.astype('float32'))"},
    {"structured", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }",
     48, NULL, ": error: at byte 20: malformed NPY header: expected a quoted string"},
    {"fortran", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 3), }", 48, NULL,
     ": error: at byte 44: the array is in Fortran order: save it in C order (numpy: "
     "np.ascontiguousarray(a))"},
    {"fortran value", 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (4, 3), }", 48, NULL,
     ": error: at byte 44: malformed NPY header: 'fortran_order' must be True or False"},
    {"no brace", 1, "'descr': '<f4', 'fortran_order': False, 'shape': (4, 3)", 48, NULL,
     ": error: at byte 10: malformed NPY header: expected '{'"},
    {"unclosed", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), ", 48, NULL,
     ": error: at byte 128: malformed NPY header: expected a quoted string"},
    {"unknown key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), 'x': 1}",
     48, NULL,
     ": error: at byte 68: malformed NPY header: unknown key (the keys are 'descr', "
     "'fortran_order' and 'shape')"},
    {"twice", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4, 3)}",
     48, NULL, ": error: at byte 27: malformed NPY header: a key is given twice"},
    {"no shape", 1, "{'descr': '<f4', 'fortran_order': False}", 48, NULL,
     ": error: at byte 49: malformed NPY header: no 'shape'"},
    {"after", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3)} x", 48, NULL,
     ": error: at byte 68: malformed NPY header: unexpected text after the closing '}'"},
    {"unclosed string", 1, "{'descr: '<f4', 'fortran_order': False, 'shape': (4, 3)}", 48, NULL,
     ": error: at byte 11: malformed NPY header: unknown key (the keys are 'descr', "
     "'fortran_order' and 'shape')"},
    {"shape text", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, x), }", 48, NULL,
     ": error: at byte 64: malformed NPY header: expected a dimension (a whole number)"},
    {"huge dim", 1,
     "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 3), }", 48,
     NULL, ": error: at byte 61: malformed NPY header: a dimension is too large"},
    {"scalar", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4, NULL,
     ": error: at byte 60: the shape () is a single value: the samples need a first "
     "dimension"},
    {"no samples", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", 0, NULL,
     ": error: at byte 60: the file holds no samples (the first dimension is 0)"},
    {"empty samples", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", 0,
     NULL, ": error: at byte 60: a dimension is 0: the samples are empty"},
    {"overflow", 1,
     "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3000000000, 3000000000), }", 48,
     NULL, ": error: at byte 60: the dimensions multiply to more than 2^63 bytes"},
    {"short", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", 40, NULL,
     ": error: at byte 168: file truncated: the header promises 48 bytes of data, only 40 "
     "are there"},
    {"long", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", 52, NULL,
     ": error: at byte 176: 4 bytes of unexpected data after the last sample"},
    {"y 3-D", 1, NULL, 4, "{'descr': '|u1', 'fortran_order': False, 'shape': (4, 1, 1), }",
     ": error: at byte 60: targets have 1 or 2 dimensions: (samples) or (samples, values)"},
    {"y count", 1, NULL, 3, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }",
     ": error: at byte 60: 3 samples of targets for the 4 samples of inputs in '%s'"},
    {"y dtype", 1, NULL, 4, "{'descr': '<U3', 'fortran_order': False, 'shape': (4,), }",
     ": error: at byte 20: dtype '<U3' is not supported: the targets must be float32 '<f4', "
     "float64 '<f8', uint8 '|u1' or int64 '<i8' (numpy: a.astype('float32'))"},
};

static void npy_error_case(const NpyCase *c, bool gz)
{
    unsigned char data[64] = {0};
    memcpy(data, npy_x4, sizeof npy_x4);
    Bytes x = c->dict ? npy_file(c->version, c->dict, data, c->bytes) : npy_x_good();
    Bytes y = c->y_dict ? npy_file(1, c->y_dict, npy_u4, c->bytes) : npy_y_good();
    const char *xp = check_tmp_path(gz ? "ex.npy.gz" : "ex.npy");
    const char *yp = check_tmp_path(gz ? "ey.npy.gz" : "ey.npy");
    if (gz) {
        write_gz(xp, x);
        write_gz(yp, y);
    } else {
        write_file(xp, x.p, x.n);
        write_file(yp, y.p, y.n);
    }
    char want[768], fmt[768];
    snprintf(fmt, sizeof fmt, "%s", c->expect);
    char *colon = strchr(strstr(fmt, "at byte "), ':');
    if (gz) {
        char rest[768];
        snprintf(rest, sizeof rest, "%s", colon);
        snprintf(colon, sizeof fmt - (size_t)(colon - fmt), " (uncompressed)%s", rest);
    }
    snprintf(want, sizeof want, fmt, xp);
    NnlrtDataset ds;
    check_clear();
    EXPECT(!nnlrt_npy_load(xp, yp, 1, &ds), "%s: should fail", c->name);
    EXPECT(ds.x == NULL && ds.y == NULL && ds.n == 0, "%s: left allocated", c->name);
    EXPECT_ONE_MESSAGE(c->y_dict ? yp : xp, want);
    free(x.p);
    free(y.p);
}

static void test_npy_errors(void)
{
    for (size_t i = 0; i < sizeof npy_cases / sizeof npy_cases[0]; i++)
        for (int gz = 0; gz < 2; gz++)
            npy_error_case(&npy_cases[i], gz);

    const char *xp = check_tmp_path("p.npy"), *yp = check_tmp_path("q.npy");
    Bytes y = npy_y_good();
    write_file(yp, y.p, y.n);
    NnlrtDataset ds;
    write_file(xp, "\x93NUMPZ\x01\x00", 8);
    check_clear();
    EXPECT(!nnlrt_npy_load(xp, yp, 1, &ds), "magic");
    EXPECT_ONE_MESSAGE(xp,
                       ": error: at byte 0: not an NPY file: it does not start with \\x93NUMPY");

    write_file(xp, "\x93NUMPY\x01\x01\x10\x00", 10);
    check_clear();
    EXPECT(!nnlrt_npy_load(xp, yp, 1, &ds), "version 1.1");
    EXPECT_ONE_MESSAGE(xp, ": error: at byte 6: NPY version 1.1 is not supported (1.0, 2.0 and "
                       "3.0 are)");

    write_file(xp, "\x93NUMPY\x02\x00\x00\x00\x20\x00", 12);
    check_clear();
    EXPECT(!nnlrt_npy_load(xp, yp, 1, &ds), "header length");
    EXPECT_ONE_MESSAGE(xp, ": error: at byte 8: the header length 2097152 is more than the 1 MB "
                       "an NPY header can have here");

    write_file(xp, "\x93NUMPY\x01\x00\x40\x00{'descr'", 17);
    check_clear();
    EXPECT(!nnlrt_npy_load(xp, yp, 1, &ds), "header cut");
    EXPECT_ONE_MESSAGE(xp, ": error: at byte 17: file truncated in the header (the header length "
                       "says 64 bytes of header from byte 10)");

    write_file(xp, "\x93NUM", 4);
    check_clear();
    EXPECT(!nnlrt_npy_load(xp, yp, 1, &ds), "preamble cut");
    EXPECT_ONE_MESSAGE(xp, ": error: at byte 4: file truncated in the header (an NPY file starts "
                       "with 10 bytes: magic, version, header length)");

    /* a non-finite value, with its place */
    float bad[12];
    memcpy(bad, npy_x4, sizeof bad);
    bad[7] = NAN;
    Bytes x = npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", bad,
                       sizeof bad);
    write_file(xp, x.p, x.n);
    check_clear();
    EXPECT(!nnlrt_npy_load(xp, yp, 1, &ds), "nan");
    EXPECT_ONE_MESSAGE(xp, ": error: at byte 156: value nan is not a finite number (sample 3, "
                       "element 2)");
    free(x.p);
    double inf[4] = {0, 1, -INFINITY, 3};
    x = npy_file(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", inf,
                 sizeof inf);
    write_file(yp, x.p, x.n);
    free(x.p);
    x = npy_x_good();
    write_file(xp, x.p, x.n);
    check_clear();
    EXPECT(!nnlrt_npy_load(xp, yp, 1, &ds), "-inf");
    EXPECT_ONE_MESSAGE(yp, ": error: at byte 144: value -inf is not a finite number (sample 3, "
                       "element 1)");
    free(x.p);
    free(y.p);
}

static void test_npy_mutations(void)
{
    Bytes x = npy_x_good(), y = npy_y_good();
    const char *xp = check_tmp_path("m_x.npy"), *yp = check_tmp_path("m_y.npy");
    const char *xz = check_tmp_path("m_x.npy.gz"), *yz = check_tmp_path("m_y.npy.gz");
    Bytes zx = gz_bytes(x, 9), zy = gz_bytes(y, 9);
    write_file(xp, x.p, x.n);
    write_file(yp, y.p, y.n);
    write_file(xz, zx.p, zx.n);
    write_file(yz, zy.p, zy.n);
    MutationTarget targets[] = {
        {xp, x, xp, yp, true, 128},
        {yp, y, xp, yp, false, 128},
        {xz, zx, xz, yz, true, 0},
        {yz, zy, xz, yz, false, 0},
    };
    int loaded = mutate_all(nnlrt_npy_load, targets, 4, 3, 200);
    EXPECT(loaded > 0 && loaded < 1000, "%d of 1000 flipped files loaded", loaded);
    free(x.p);
    free(y.p);
    free(zx.p);
    free(zy.p);
}

static void test_npy(void)
{
    test_npy_good();
    test_npy_errors();
    test_npy_mutations();
}

/* ---- CSV: damaged files against an independent reading ----
 *
 * A damaged CSV file may still be a valid one (a digit flipped into another digit, a cut at
 * a line end). So each damaged text is also read here by a plain reading of the rules
 * (docs/data.md, "Rules of the CSV reader"), restricted to what one flip or cut of a file
 * without quotes can produce: lines split at '\n' (one '\r' before it dropped), blank lines
 * at the end ignored, fields split at ',' with spaces and tabs trimmed, a field that starts
 * with a quote refused unless it is one quoted field. The header names the target "y";
 * every data field must be read whole by strtod, without leading white space, and be
 * finite in float32. That reading says "accepted, with these values" or "refused at line
 * L"; the loader must agree: the same sample count, every value the float32 of the text,
 * each sample's line; or one message "PATH:L:C: error: ..." with the same L. */

typedef struct {
    const char *p;
    size_t n;
} CsvSpan;

typedef struct {
    bool ok;
    long bad_line;    /* refused: the first line at fault */
    int64_t n;        /* accepted: samples, */
    int64_t x_size;   /* features per sample, */
    float *x, *y;     /* their values, */
    int64_t *rows;    /* and lines */
} CsvOracle;

static bool csv_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* The trimmed fields of a line, at most `max`; returns how many, -1 on a bad quote. */
static int oracle_fields(CsvSpan line, CsvSpan *f, int max)
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= line.n; i++) {
        if (i < line.n && line.p[i] != ',')
            continue;
        size_t a = start, b = i;
        while (a < b && csv_blank(line.p[a]))
            a++;
        while (b > a && csv_blank(line.p[b - 1]))
            b--;
        if (a < b && line.p[a] == '"') {
            if (b - a < 2 || line.p[b - 1] != '"' || memchr(line.p + a + 1, '"', b - a - 2))
                return -1;
            a++, b--;
        }
        if (n < max)
            f[n] = (CsvSpan){line.p + a, b - a};
        n++;
        start = i + 1;
    }
    return n;
}

/* A field read whole as a float32 number, as the rules say. */
static bool oracle_number(CsvSpan f, float *v)
{
    char buf[128];
    if (f.n == 0 || f.n >= sizeof buf || memchr(f.p, 0, f.n) || isspace((unsigned char)f.p[0]))
        return false;
    memcpy(buf, f.p, f.n);
    buf[f.n] = 0;
    char *end;
    double d = strtod(buf, &end);
    if (end != buf + f.n || !isfinite(d) || !isfinite((float)d))
        return false;
    *v = (float)d;
    return true;
}

enum { ORACLE_MAX_LINES = 64, ORACLE_MAX_COLS = 16 };

/* The file's lines up to the last one holding more than blanks and '\r'. */
static int oracle_lines(const char *text, size_t len, CsvSpan *lines)
{
    int n = 0, last = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len && n < ORACLE_MAX_LINES; i++) {
        if (i < len && text[i] != '\n')
            continue;
        CsvSpan l = {text + start, i - start};
        bool blank = true;
        for (size_t k = 0; k < l.n; k++)
            blank = blank && (csv_blank(l.p[k]) || l.p[k] == '\r');
        if (l.n && l.p[l.n - 1] == '\r')
            l.n--;
        lines[n++] = l;
        if (!blank)
            last = n;
        start = i + 1;
    }
    return last;
}

static CsvOracle oracle_read(const char *text, size_t len)
{
    CsvOracle o = {0};
    CsvSpan lines[ORACLE_MAX_LINES], f[ORACLE_MAX_COLS];
    int n_lines = oracle_lines(text, len, lines);
    o.bad_line = 1;
    if (n_lines < 2 || memchr(lines[0].p, 0, lines[0].n))
        return o;
    int cols = oracle_fields(lines[0], f, ORACLE_MAX_COLS), target = -1;
    for (int k = 0; k < cols && k < ORACLE_MAX_COLS && target < 0; k++)
        if (f[k].n == 1 && f[k].p[0] == 'y')
            target = k;
    if (cols < 2 || cols > ORACLE_MAX_COLS || target < 0)
        return o;
    o.x_size = cols - 1;
    o.x = malloc(sizeof(float) * (size_t)(n_lines * cols));
    o.y = malloc(sizeof(float) * (size_t)n_lines);
    o.rows = malloc(sizeof(int64_t) * (size_t)n_lines);
    for (int l = 1; l < n_lines; l++) {
        o.bad_line = l + 1;
        float v[ORACLE_MAX_COLS];
        bool good = lines[l].n && !memchr(lines[l].p, 0, lines[l].n) &&
                    oracle_fields(lines[l], f, ORACLE_MAX_COLS) == cols;
        for (int k = 0; good && k < cols; k++)
            good = oracle_number(f[k], &v[k]);
        if (!good)
            return o;
        for (int k = 0, j = 0; k < cols; k++) {
            if (k == target)
                o.y[o.n] = v[k];
            else
                o.x[o.n * o.x_size + j++] = v[k];
        }
        o.rows[o.n++] = l + 1;
    }
    o.ok = true;
    return o;
}

static void oracle_free(CsvOracle *o)
{
    free(o->x);
    free(o->y);
    free(o->rows);
}

/* The line of a message "PATH:LINE:COL: error: ...", or 0 when it is not of that form. */
static long message_line(const char *path)
{
    size_t n = strlen(path);
    if (strncmp(check_message, path, n) != 0 || check_message[n] != ':')
        return 0;
    char *end;
    long line = strtol(check_message + n + 1, &end, 10);
    if (*end != ':')
        return 0;
    long col = strtol(end + 1, &end, 10);
    return col >= 1 && strncmp(end, ": error: ", 9) == 0 ? line : 0;
}

/* Loads `text` (damaged at `at`: `what`) and compares with the independent reading.
 * Returns whether it loaded. */
static bool csv_damaged_case(const char *path, const char *text, size_t len, const char *what,
                             size_t at)
{
    write_file(path, text, len);
    NnlrtCsvOptions opt = {.path = path, .target = "y", .header = true};
    NnlrtDataset ds;
    check_clear();
    bool ok = nnlrt_csv_load(&opt, &ds);
    CsvOracle o = oracle_read(text, len);
    EXPECT(ok == o.ok, "%s at %zu: the loader %s, the rules say %s (line %ld): '%s'\n%.*s",
           what, at, ok ? "accepts" : "refuses", o.ok ? "accept" : "refuse", o.bad_line,
           check_message, (int)len, text);
    if (!ok) {
        long line = message_line(path);
        EXPECT(check_messages == 1 && line >= 1, "%s at %zu: %d messages, '%s'", what, at,
               check_messages, check_message);
        EXPECT(o.ok || line == o.bad_line, "%s at %zu: refused at line %ld, the rules say %ld: "
               "'%s'", what, at, line, o.bad_line, check_message);
        EXPECT(ds.x == NULL && ds.y == NULL && ds.rows == NULL, "%s at %zu: left allocated",
               what, at);
    } else if (o.ok) {
        bool sizes = ds.n == o.n && ds.x_size == o.x_size && ds.y_size == 1 &&
                     ds.x_type == NNLRT_F32 && ds.y_type == NNLRT_F32;
        EXPECT(sizes, "%s at %zu: %lld samples of %lld, the text has %lld of %lld", what, at,
               (long long)ds.n, (long long)ds.x_size, (long long)o.n, (long long)o.x_size);
        if (sizes) {
            EXPECT(memcmp(ds.x, o.x, sizeof(float) * (size_t)(o.n * o.x_size)) == 0 &&
                       memcmp(ds.y, o.y, sizeof(float) * (size_t)o.n) == 0,
                   "%s at %zu: the data set holds other values than the text", what, at);
            EXPECT(memcmp(ds.rows, o.rows, sizeof(int64_t) * (size_t)o.n) == 0,
                   "%s at %zu: sample lines differ", what, at);
        }
    }
    oracle_free(&o);
    nnlrt_dataset_free(&ds);
    return ok;
}

/* Header, then rows with signs, exponents, blanks around fields, a CRLF line; a blank
 * line at the end. */
static const char csv_damage_text[] =
    "x1, x2,x3 ,y\n"
    "0.5,-1.25,3,1\n"
    "2.75,1e-3,-0.125,0\n"
    "  -7 ,\t42,6.0221e2,1\n"
    "1.5E+1,.25,-0,0\r\n"
    "3,4,5,1\n"
    "-2.5e-2,8.125,19,0\n"
    "100,-200,300.5,1\n"
    "0.0625,7,-3.5,0\n"
    "9,8,7,1\n"
    "6.5,5.25,4e1,0\n"
    "12,-0.5,2.5e-1,1\n"
    "-4.75,33,0.001,0\n"
    "88.5,1.125,-64,1\n"
    "\n";

static void test_csv_damage(void)
{
    const char *path = check_tmp_path("damaged.csv");
    size_t len = sizeof csv_damage_text - 1;
    EXPECT(csv_damaged_case(path, csv_damage_text, len, "undamaged", 0), "the good file: %s",
           check_message);

    /* a cut at every byte */
    int cases = 0, loaded = 0;
    for (size_t k = 0; k < len; k++, cases++)
        loaded += csv_damaged_case(path, csv_damage_text, k, "truncated", k);
    /* at the end of each row (and after its last digit when a digit less is still a
     * number): those load */
    EXPECT(loaded >= 13 && loaded < cases, "%d of %d truncations loaded", loaded, cases);

    /* 400 random single-bit flips, then 200 damages of 2 to 4 bits */
    char copy[sizeof csv_damage_text];
    NnlrtRng rng;
    nnlrt_rng_seed(&rng, 7);
    int flipped = 0;
    for (int i = 0; i < 600; i++, cases++) {
        memcpy(copy, csv_damage_text, sizeof copy);
        int bits = i < 400 ? 1 : 2 + (int)nnlrt_rand_below(&rng, 3);
        size_t at = 0;
        for (int b = 0; b < bits; b++) {
            at = (size_t)nnlrt_rand_below(&rng, len);
            copy[at] ^= (char)(1u << nnlrt_rand_below(&rng, 8));
        }
        flipped += csv_damaged_case(path, copy, len, bits == 1 ? "bit flip" : "bit flips", at);
    }
    /* a digit into another digit loads; a digit into a letter does not */
    EXPECT(flipped > 0 && flipped < 600, "%d of 600 flipped files loaded", flipped);
    EXPECT(len >= 200 && cases >= 800, "%zu bytes, %d cases", len, cases);
}

static void test_csv(void)
{
    test_csv_damage();
}

/* ---- finding data files ---- */

static void make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0) {
        fprintf(stderr, "test_data: cannot create %s\n", path);
        exit(2);
    }
}

static void test_find(void)
{
    char script[1200], a[1200], b[1200], env[4000], buf[4096], want[4096];
    snprintf(script, sizeof script, "%s/script", check_tmp_dir());
    snprintf(a, sizeof a, "%s/a", check_tmp_dir());
    snprintf(b, sizeof b, "%s/b/", check_tmp_dir()); /* a trailing slash */
    make_dir(script);
    make_dir(a);
    make_dir(b);
    write_file(check_tmp_path("script/here.csv"), "1\n", 2);
    write_file(check_tmp_path("a/both.csv"), "1\n", 2);
    write_file(check_tmp_path("b/both.csv"), "1\n", 2);
    write_file(check_tmp_path("b/only_b.csv"), "1\n", 2);
    make_dir(check_tmp_path("a/only_b.csv")); /* a directory is not a data file */
    snprintf(env, sizeof env, ":%s::%s:", a, b);
    setenv("NNL_DATA_PATH", env, 1);

    const char *got = nnlrt_find_data("here.csv", script, buf, sizeof buf);
    snprintf(want, sizeof want, "%s/here.csv", script);
    EXPECT(got && strcmp(got, want) == 0, "next to the script: %s", got ? got : "NULL");
    got = nnlrt_find_data("both.csv", script, buf, sizeof buf);
    snprintf(want, sizeof want, "%s/both.csv", a);
    EXPECT(got && strcmp(got, want) == 0, "first of the path: %s", got ? got : "NULL");
    got = nnlrt_find_data("only_b.csv", script, buf, sizeof buf);
    snprintf(want, sizeof want, "%sonly_b.csv", b);
    EXPECT(got && strcmp(got, want) == 0, "directories skipped: %s", got ? got : "NULL");
    EXPECT(!nnlrt_find_data("none.csv", script, buf, sizeof buf), "missing");
    got = nnlrt_find_data(check_tmp_path("b/both.csv"), "/nowhere", buf, sizeof buf);
    EXPECT(got && strcmp(got, check_tmp_path("b/both.csv")) == 0, "absolute: %s",
           got ? got : "NULL");
    EXPECT(!nnlrt_find_data(check_tmp_path("b/none.csv"), script, buf, sizeof buf),
           "absolute, missing");
    EXPECT(!nnlrt_find_data("here.csv", script, buf, 8), "too long for the buffer");

    nnlrt_data_places("none.csv", script, buf, sizeof buf);
    snprintf(want, sizeof want, "%s, %s, %s, /usr/share/datasets", script, a, b);
    EXPECT(strcmp(buf, want) == 0, "places '%s'", buf);
    nnlrt_data_places("/x/none.csv", script, buf, sizeof buf);
    EXPECT(strcmp(buf, "/x/none.csv") == 0, "absolute places '%s'", buf);
    nnlrt_data_places("none.csv", "sdir", buf, 20);
    EXPECT(strcmp(buf, "sdir, ...") == 0, "cut places '%s'", buf);
    nnlrt_data_places("none.csv", script, buf, 20);
    EXPECT(strcmp(buf, "...") == 0, "cut places '%s'", buf);

    unsetenv("NNL_DATA_PATH");
    nnlrt_data_places("none.csv", NULL, buf, sizeof buf);
    EXPECT(strcmp(buf, "., /usr/share/datasets") == 0, "default places '%s'", buf);
    char cwd[1024];
    if (getcwd(cwd, sizeof cwd) && chdir(script) == 0) {
        got = nnlrt_find_data("here.csv", NULL, buf, sizeof buf);
        EXPECT(got && strcmp(got, "here.csv") == 0, "current directory: %s", got ? got : "NULL");
        EXPECT(chdir(cwd) == 0, "back to %s", cwd);
    }
}

/* ---- stored types ---- */

static NnlrtModel gather_model(int elem_size, int64_t x_size, int64_t y_size)
{
    return (NnlrtModel){.elem_size = elem_size, .x_size = x_size, .y_size = y_size,
                        .n_bufs = NNLRT_BUF_FIRST};
}

/* A data set of one type made here: n samples, x_size inputs, one target. */
static void make_typed(NnlrtDataset *ds, NnlrtType xt, NnlrtType yt, int64_t n, int64_t x_size)
{
    memset(ds, 0, sizeof *ds);
    ds->source = nnlrt_strdup("made.npy");
    ds->n = n;
    ds->x_size = x_size;
    ds->y_size = 1;
    ds->x_type = xt;
    ds->y_type = yt;
    ds->x_scale = 1;
    ds->x = nnlrt_alloc((size_t)(n * x_size) * nnlrt_type_size(xt));
    ds->y = nnlrt_alloc((size_t)n * nnlrt_type_size(yt));
}

/* Bytes 0..255 times 1/255: each converted once, from the product in double. */
static void test_gather_bytes(void)
{
    NnlrtDataset ds;
    make_typed(&ds, NNLRT_U8, NNLRT_I64, 2, 256);
    ds.x_scale = 1.0 / 255;
    for (int i = 0; i < 512; i++)
        ((uint8_t *)ds.x)[i] = (uint8_t)(i < 256 ? i : 511 - i);
    ((int64_t *)ds.y)[0] = 9;
    ((int64_t *)ds.y)[1] = -3;
    for (int elem = 4; elem <= 8; elem += 4) {
        NnlrtModel m = gather_model(elem, 256, 1);
        NnlrtBuffers b;
        nnlrt_buffers_init(&b, &m, 2);
        int64_t idx[2] = {1, 0};
        nnlrt_buffers_gather(&b, &m, &ds, idx, 2);
        bool exact = true;
        for (int k = 0; k < 2; k++) {
            for (int j = 0; j < 256; j++) {
                int v = idx[k] == 0 ? j : 255 - j;
                double want = v * (1.0 / 255);
                if (elem == 4)
                    exact = exact && ((float *)b.bufs[NNLRT_BUF_X])[k * 256 + j] == (float)want;
                else
                    exact = exact && ((double *)b.bufs[NNLRT_BUF_X])[k * 256 + j] == want;
            }
        }
        EXPECT(exact, "elem %d: bytes times 1/255", elem);
        if (elem == 4) {
            float *x = b.bufs[NNLRT_BUF_X], *y = b.bufs[NNLRT_BUF_Y];
            EXPECT(x[256 + 255] == 1.0f && x[0] == 1.0f && x[255] == 0, "255 * (1/255) = 1");
            EXPECT(y[0] == -3 && y[1] == 9, "int64 targets %g %g", y[0], y[1]);
        } else {
            double *y = b.bufs[NNLRT_BUF_Y];
            EXPECT(y[0] == -3 && y[1] == 9, "int64 targets %g %g", y[0], y[1]);
        }
        nnlrt_buffers_free(&b, &m);
    }
    nnlrt_dataset_free(&ds);
}

/* float64 inputs into a float32 model, float32 with a scale into a float64 one. */
static void test_gather_floats(void)
{
    NnlrtDataset ds;
    make_typed(&ds, NNLRT_F64, NNLRT_F32, 1, 3);
    double *x = ds.x;
    x[0] = 0.1, x[1] = -2.5, x[2] = 1e-300;
    ((float *)ds.y)[0] = 0.3f;
    NnlrtModel m = gather_model(4, 3, 1);
    NnlrtBuffers b;
    nnlrt_buffers_init(&b, &m, 1);
    int64_t idx = 0;
    nnlrt_buffers_gather(&b, &m, &ds, &idx, 1);
    float *fx = b.bufs[NNLRT_BUF_X];
    EXPECT(fx[0] == 0.1f && fx[1] == -2.5f && fx[2] == 0, "float64 to float32");
    nnlrt_buffers_free(&b, &m);
    nnlrt_dataset_free(&ds);

    make_typed(&ds, NNLRT_F32, NNLRT_F32, 1, 2);
    ((float *)ds.x)[0] = 0.1f, ((float *)ds.x)[1] = 3;
    ((float *)ds.y)[0] = 0.3f;
    ds.x_scale = 2;
    m = gather_model(8, 2, 1);
    nnlrt_buffers_init(&b, &m, 1);
    nnlrt_buffers_gather(&b, &m, &ds, &idx, 1);
    double *dx = b.bufs[NNLRT_BUF_X], *dy = b.bufs[NNLRT_BUF_Y];
    EXPECT(dx[0] == 2 * (double)0.1f && dx[1] == 6 && dy[0] == (double)0.3f,
           "float32 to float64, scaled");
    nnlrt_buffers_free(&b, &m);
    nnlrt_dataset_free(&ds);
}

static void test_split_types(void)
{
    NnlrtDataset src, a, b;
    make_typed(&src, NNLRT_U8, NNLRT_I64, 10, 3);
    src.x_scale = 0.5;
    src.y_source = nnlrt_strdup("labels");
    for (int i = 0; i < 10; i++) {
        for (int j = 0; j < 3; j++)
            ((uint8_t *)src.x)[i * 3 + j] = (uint8_t)(i * 10 + j);
        ((int64_t *)src.y)[i] = 1000 + i;
    }
    nnlrt_split(&src, 0.7, 5, &a, &b);
    EXPECT(a.n == 7 && b.n == 3, "sizes");
    EXPECT(a.x_type == NNLRT_U8 && b.y_type == NNLRT_I64 && a.x_scale == 0.5 &&
               strcmp(b.y_source, "labels") == 0,
           "types, scale and sources kept");
    EXPECT(nnlrt_dataset_bytes(&a) == 7 * (3 + 8), "bytes %zu", nnlrt_dataset_bytes(&a));
    int seen[10] = {0};
    const NnlrtDataset *parts[] = {&a, &b};
    for (int p = 0; p < 2; p++) {
        for (int64_t i = 0; i < parts[p]->n; i++) {
            const uint8_t *x = (const uint8_t *)parts[p]->x + i * 3;
            int k = x[0] / 10;
            EXPECT(x[1] == x[0] + 1 && x[2] == x[0] + 2 && nnlrt_dataset_y(parts[p], i) == 1000 + k,
                   "sample %d intact", k);
            seen[k < 10 ? k : 0]++;
        }
    }
    for (int k = 0; k < 10; k++)
        EXPECT(seen[k] == 1, "sample %d seen %d times", k, seen[k]);
    nnlrt_dataset_free(&a);
    nnlrt_dataset_free(&b);
    nnlrt_dataset_free(&src);
}

static void test_standardize_types(void)
{
    NnlrtDataset u8, f64;
    make_typed(&u8, NNLRT_U8, NNLRT_U8, 2, 1);
    make_typed(&f64, NNLRT_F64, NNLRT_F64, 4, 1);
    ((uint8_t *)u8.x)[0] = 1, ((uint8_t *)u8.x)[1] = 2;
    for (int i = 0; i < 4; i++)
        ((double *)f64.x)[i] = i;
    f64.x_scale = 10;
    check_clear();
    EXPECT(!nnlrt_standardize(&u8, &u8), "bytes refused");
    EXPECT_ONE_MESSAGE("made.npy", ": error: standardize needs floating-point data; the inputs "
                               "are stored as uint8 (scale them instead, e.g. scale = 1/255 "
                               "for bytes)");
    EXPECT(((uint8_t *)u8.x)[1] == 2, "unchanged");
    check_clear();
    EXPECT(!nnlrt_standardize(&f64, &u8), "a uint8 reference refused");
    EXPECT(check_messages == 1, "one message");
    EXPECT(nnlrt_standardize(&f64, &f64), "float64: %s", check_message);
    double sd = sqrt(1.25);
    EXPECT(f64.x_scale == 1 && fabs(((double *)f64.x)[3] - 1.5 / sd) < 1e-12,
           "scaled then standardized: %g", ((double *)f64.x)[3]);
    nnlrt_dataset_free(&u8);
    nnlrt_dataset_free(&f64);
}

/* Values a float32 model cannot hold, and labels checked through their stored type. */
static void test_check_types(void)
{
    NnlrtDataset ds;
    make_typed(&ds, NNLRT_F64, NNLRT_U8, 2, 2);
    double *x = ds.x;
    x[0] = 1, x[1] = 2, x[2] = 3, x[3] = 1e300;
    ((uint8_t *)ds.y)[0] = 1, ((uint8_t *)ds.y)[1] = 10;
    ds.y_source = nnlrt_strdup("labels.idx");
    NnlrtModel m = gather_model(4, 2, 1);
    check_clear();
    EXPECT(!nnlrt_check_dataset(&m, &ds), "1e300 in float32");
    EXPECT_ONE_MESSAGE("made.npy", ": error: sample 2: input 2 is 1e+300, beyond the range of the "
                               "model's float32");
    x[3] = 4;
    m.target_kind = NNLRT_TARGET_CLASS;
    m.n_classes = 10;
    check_clear();
    EXPECT(!nnlrt_check_dataset(&m, &ds), "label 10 of 10");
    EXPECT_ONE_MESSAGE("labels.idx", ": error: sample 2: label 10 is not a class of the model (0 "
                                 "to 9)");
    m.n_classes = 11;
    EXPECT(nnlrt_check_dataset(&m, &ds), "labels in range: %s", check_message);
    nnlrt_dataset_free(&ds);
}

static void test_types(void)
{
    EXPECT(nnlrt_type_size(NNLRT_U8) == 1 && nnlrt_type_size(NNLRT_F32) == 4 &&
               nnlrt_type_size(NNLRT_F64) == 8 && nnlrt_type_size(NNLRT_I64) == 8,
           "type sizes");
    test_gather_bytes();
    test_gather_floats();
    test_split_types();
    test_standardize_types();
    test_check_types();
}

/* ---- main ---- */

static const CheckGroup groups[] = {
    CHECK_GROUP(idx, test_idx),
    CHECK_GROUP(npy, test_npy),
    CHECK_GROUP(csv, test_csv),
    CHECK_GROUP(find, test_find),
    CHECK_GROUP(types, test_types),
};

int main(int argc, char **argv)
{
    if (argc != 2)
        return check_usage("test_data", groups, CHECK_COUNT(groups), NULL);
    check_capture_messages();
    return check_run(groups, CHECK_COUNT(groups), "test_data", argv[1]);
}
