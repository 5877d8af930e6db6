/* nnlrt_lib.c — the C side of a model built with `nnlc build --lib`: the parameters, a
 * checkpoint loader and NAME_predict around the compiled predict entry.
 *
 * Not part of libnnlrt: nnlc build --lib writes a small C file that defines the model's
 * constants and then includes this one, compiles it and links it with the generated
 * object into NAME.o. It needs nothing but libc and zlib (for crc32), so that NAME.o can go
 * into any C program. The generated file defines:
 *   NNL_NAME           the prefix of the public functions (NAME_load, NAME_predict, ...)
 *   NNL_PARAMS, NNL_INPUTS, NNL_OUTPUTS   sizes: the parameter arena, per-sample sizes
 *   NNL_NBUFS, NNL_CHUNK                  the entry's buffer table, samples per call
 *   NNL_SIGNATURE      the model signature a checkpoint must carry (nnlrt_model_signature)
 *   NNL_SCALE, NNL_STANDARDIZED           how training inputs were scaled / standardized
 *   nnl_buf_elems[], nnl_buf_batched[]    each buffer's elements (per sample when batched)
 *   nnl_mean[], nnl_sd[] (when standardized)  the training inputs' statistics
 * and declares the entry, NNL_FN(_nnl_predict).
 *
 * The checkpoint checks are those of runtime/checkpoint.c, for versions 2 and 3 of the
 * format (docs/formats.md); the host is little-endian (x86-64), like the files.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define NNL_CAT2(a, b) a##b
#define NNL_CAT(a, b) NNL_CAT2(a, b)
#define NNL_FN(suffix) NNL_CAT(NNL_NAME, suffix)
#define NNL_STR2(a) #a
#define NNL_STR(a) NNL_STR2(a)

enum { NNL_HEADER_V2 = 160, NNL_HEADER = 168, NNL_VERSION = 3 };

/* the public functions, declared as in NAME.h */
int NNL_FN(_load)(const char *path);
int NNL_FN(_set_params)(const float *params, long n);
int NNL_FN(_predict)(const float *x, float *out, int n);
const char *NNL_FN(_error)(void);

static float nnl_params[NNL_PARAMS] __attribute__((aligned(64)));
static int nnl_loaded;
static char nnl_message[512];

static int nnl_fail(const char *fmt, const char *a, const char *b)
{
    snprintf(nnl_message, sizeof nnl_message, fmt, a, b);
    return -1;
}

const char *NNL_FN(_error)(void)
{
    return nnl_message;
}

/* A little-endian unsigned integer of n bytes. */
static uint64_t nnl_get(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t nnl_crc(const unsigned char *d, uint64_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t at = 0; at < n; at += 1u << 30) {
        uint64_t len = n - at < 1u << 30 ? n - at : 1u << 30;
        crc = crc32(crc, d + at, (uInt)len);
    }
    return (uint32_t)crc;
}

/* Magic, version, the size the header promises, the CRC, the model's signature; then the
 * parameter arena into nnl_params. */
static int nnl_check(const char *path, const unsigned char *d, uint64_t size)
{
    if (size < 8 || memcmp(d, "NNLCKPT", 8) != 0)
        return nnl_fail("%s: not an nnlc checkpoint%s", path, "");
    uint64_t version = size < 12 ? 0 : nnl_get(d + 8, 4);
    if (size < 12 || (version != 2 && version != NNL_VERSION))
        return nnl_fail("%s: %s", path, size < 12 ? "truncated checkpoint"
                                                  : "checkpoint format version is not 2 or 3");
    uint64_t header = version == 2 ? NNL_HEADER_V2 : NNL_HEADER;
    if (size < header)
        return nnl_fail("%s: %s", path, "truncated checkpoint");
    uint64_t elem = nnl_get(d + 12, 4), n = nnl_get(d + 24, 8), states = nnl_get(d + 32, 4);
    uint64_t sums = nnl_get(d + 36, 4), table = nnl_get(d + 152, 8);
    uint64_t options = version == 2 ? 0 : nnl_get(d + 160, 8);
    if (elem != 4 || n != NNL_PARAMS || states > 64 || sums > 1u << 20 || table > size ||
        options > size)
        return nnl_fail("%s: %s", path, "the checkpoint belongs to another model (its sizes "
                                        "differ)");
    uint64_t promised = header + 8 * sums + table + options + (states + 1) * n * 4 + 4;
    if (size != promised)
        return nnl_fail("%s: %s", path, size < promised ? "truncated checkpoint"
                                                        : "unexpected data after the checkpoint");
    if (nnl_crc(d, size - 4) != (uint32_t)nnl_get(d + size - 4, 4))
        return nnl_fail("%s: %s", path, "corrupt checkpoint (CRC mismatch)");
    if (nnl_get(d + 16, 8) != (uint64_t)NNL_SIGNATURE)
        return nnl_fail("%s: %s", path, "the checkpoint belongs to another model (the names "
                                        "or shapes of its tensors differ)");
    memcpy(nnl_params, d + header + 8 * sums + table + options, sizeof nnl_params);
    return 0;
}

int NNL_FN(_load)(const char *path)
{
    if (!path)
        return nnl_fail("%s_load: %s", NNL_STR(NNL_NAME), "the path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return nnl_fail("%s: cannot open: %s", path, strerror(errno));
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    unsigned char *d = size >= 0 ? malloc(size ? (size_t)size : 1) : NULL;
    int rc = -1;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0)
        nnl_fail("%s: cannot read: %s", path, strerror(errno));
    else if (!d)
        nnl_fail("%s: %s", path, "out of memory");
    else if (fread(d, 1, (size_t)size, f) != (size_t)size)
        nnl_fail("%s: cannot read: %s", path, ferror(f) ? strerror(errno) : "the file shrank");
    else
        rc = nnl_check(path, d, (uint64_t)size);
    free(d);
    fclose(f);
    nnl_loaded |= rc == 0;
    return rc;
}

int NNL_FN(_set_params)(const float *params, long n)
{
    if (!params || n != NNL_PARAMS)
        return nnl_fail("%s_set_params: %s", NNL_STR(NNL_NAME),
                        params ? "expected " NNL_STR(NNL_PARAMS) " parameters"
                               : "params is NULL");
    memcpy(nnl_params, params, sizeof nnl_params);
    nnl_loaded = 1;
    return 0;
}

/* Inputs as the training data's files hold them, scaled and standardized as in training
 * (in double, rounded once: what the trainer does). */
static void nnl_inputs(const float *x, float *to, int64_t count)
{
    for (int64_t i = 0; i < count * NNL_INPUTS; i++) {
        double v = (double)x[i] * NNL_SCALE;
#if NNL_STANDARDIZED
        int64_t j = i % NNL_INPUTS;
        v -= nnl_mean[j];
        if (nnl_sd[j] > 0)
            v /= nnl_sd[j];
#endif
        to[i] = (float)v;
    }
}

int NNL_FN(_predict)(const float *x, float *out, int n)
{
    if (!nnl_loaded)
        return nnl_fail("%s_predict: no parameters: call %s_load first", NNL_STR(NNL_NAME),
                        NNL_STR(NNL_NAME));
    if (n < 0 || (n > 0 && (!x || !out)))
        return nnl_fail("%s_predict: %s", NNL_STR(NNL_NAME),
                        n < 0 ? "n is negative" : "x or out is NULL");
    void *bufs[NNL_NBUFS] = {0};
    int ok = 1;
    for (int i = 1; i < NNL_NBUFS; i++) {
        size_t elems = (size_t)nnl_buf_elems[i] * (nnl_buf_batched[i] ? NNL_CHUNK : 1);
        bufs[i] = aligned_alloc(64, ((elems ? elems : 1) * sizeof(float) + 63) / 64 * 64);
        ok &= bufs[i] != NULL;
    }
    bufs[0] = nnl_params;
    for (int64_t at = 0; ok && at < n; at += NNL_CHUNK) {
        int64_t count = n - at < NNL_CHUNK ? n - at : NNL_CHUNK;
        nnl_inputs(x + at * NNL_INPUTS, bufs[2], count);
        NNL_FN(_nnl_predict)(bufs, count, out + at * NNL_OUTPUTS);
    }
    for (int i = 1; i < NNL_NBUFS; i++)
        free(bufs[i]);
    return ok ? 0 : nnl_fail("%s_predict: %s", NNL_STR(NNL_NAME), "out of memory");
}
