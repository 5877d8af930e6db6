/* checkpoint.c — the checkpoint file format: everything a run needs to go on bit-exactly.
 *
 * The file (version 3; docs/formats.md says the same for users). Integers are
 * little-endian and of fixed width; f64 is an IEEE double stored as its u64 bits.
 *
 *   offset  size  field
 *        0     8  magic "NNLCKPT\0"
 *        8     4  u32 format version (3)
 *       12     4  u32 elem_size: 4 (float32) or 8 (float64)
 *       16     8  u64 model signature (nnlrt_model_signature)
 *       24     8  i64 n_params
 *       32     4  u32 n_states: optimizer state arrays, each n_params
 *       36     4  u32 n_sums: 1 + the number of metrics
 *       40     8  i64 epoch: the epoch in progress, from 0 (= epochs done when next_batch is 0)
 *       48     8  i64 step: updates done
 *       56     8  i64 next_batch: the index of the next batch in that epoch
 *       64    32  u64[4] the shuffle generator (xoshiro256**) at the start of that epoch
 *       96     8  i64 batch: the run's batch size (the whole set for full-batch training)
 *      104     8  i64 n_train: training samples
 *      112     4  u32 flags: bit 0 the run shuffles, bit 1 it writes a log
 *      116     4  u32 log_crc: CRC32 of the log's first log_bytes bytes
 *      120     8  u64 log_bytes: the log's length when the checkpoint was written
 *      128     8  f64 last_loss: the last finite batch loss (NaN before the first)
 *      136     8  f64 window_loss: per-step log rows: the batch losses since the last row
 *      144     8  i64 window_steps: how many
 *      152     8  u64 table_bytes: the size of the tensor table
 *      160     8  u64 options_bytes: the size of the run's options
 *      168  8*n_sums       f64 the epoch's training sums so far (loss, then each metric)
 *        .  table_bytes:   the tensor table: u32 n_tensors, then per tensor u32 name_len,
 *                          the name (UTF-8, no NUL), u32 rank (0..4), rank x i64 dims,
 *                          i64 offset, i64 size (elements, in the parameter arena)
 *        .  options_bytes: the options of the run that wrote it, the words of its command
 *                          line (NnlrtTrainConfig.options): u32 n_options, then per option
 *                          u32 len and its bytes (no NUL)
 *        .  P = n_params * elem_size: the parameter arena
 *        .  n_states * P:  each optimizer state arena, in order
 *        .     4  u32 CRC32 (zlib's crc32) of every byte before it
 *
 * Version 2 had no options_bytes and no options: its sums start at 160. It is read as a
 * checkpoint of a run without options.
 *
 * Reading checks, in this order, before anything is allocated from a size in the file:
 * the magic, the version (the layout of the rest depends on it), the file's size against
 * the one the header's sizes promise (table_bytes at most CKPT_MAX_TABLE, options_bytes
 * at most CKPT_MAX_OPTIONS), the CRC, the model signature, then the tensor table:
 * well-formed, and the model's tensors exactly; then the options, well-formed.
 * nnlrt_checkpoint_read_tensors reads one without a model: the checks up to the CRC, the
 * table well-formed, then the table and the parameter arena. Every refusal is reported as
 * "PATH: error: ..."; nothing of a refused file reaches the trainer.
 *
 * Writing: nnlrt_checkpoint_put writes the bytes; checkpoint_files.c makes the write atomic
 * and durable and rotates the older checkpoints.
 */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat, lstat, open, read */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nnlrt_int.h"

static const uint8_t CKPT_MAGIC[8] = {'N', 'N', 'L', 'C', 'K', 'P', 'T', 0};
enum {
    CKPT_CHUNK = 1 << 16,     /* bytes per read, write and crc32 call */
    CKPT_FLAG_SHUFFLE = 1,
    CKPT_FLAG_LOG = 2,
    CKPT_MAX_TABLE = 64 << 20, /* bytes: far more than any model's names and shapes */
    CKPT_MIN_ENTRY = 4 + 1 + 4 + 16, /* the smallest tensor entry: a 1-byte name, rank 0 */
    CKPT_V2 = 2, CKPT_V2_HEADER = 160, /* version 2: no options */
};

/* ---- the model signature ---- */

/* FNV-1a, 64 bits, over bytes laid out the same on every machine. */
static uint64_t sig_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001B3u;
    return h;
}

static uint64_t sig_u64(uint64_t h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return sig_bytes(h, b, 8);
}

/* Every tensor's name (with its NUL), rank, dims, offset and size, in order; then the
 * element size, the number of optimizer states and the parameter count. */
uint64_t nnlrt_model_signature(const NnlrtModel *m)
{
    uint64_t h = sig_u64(0xCBF29CE484222325u, (uint64_t)m->n_tensors);
    for (int i = 0; i < m->n_tensors; i++) {
        const NnlrtTensor *t = &m->tensors[i];
        h = sig_bytes(h, t->name, strlen(t->name) + 1);
        h = sig_u64(h, (uint64_t)t->rank);
        for (int d = 0; d < t->rank && d < 4; d++)
            h = sig_u64(h, (uint64_t)t->dims[d]);
        h = sig_u64(sig_u64(h, (uint64_t)t->offset), (uint64_t)t->size);
    }
    h = sig_u64(h, (uint64_t)m->elem_size);
    h = sig_u64(h, (uint64_t)m->n_states);
    return sig_u64(h, (uint64_t)m->n_params);
}

/* ---- little-endian fields ---- */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_f64(uint8_t *p, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_u64(p, u);
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static double get_f64(const uint8_t *p)
{
    uint64_t u = get_u64(p);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static bool ckpt_host_le(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Reverses the bytes of each of n elements of `size` bytes: host order <-> little-endian
 * on a big-endian machine. */
static void ckpt_swap(uint8_t *p, size_t n, size_t size)
{
    for (size_t i = 0; i < n; i++, p += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* The size of m's tensor table in a checkpoint. */
static uint64_t ckpt_table_bytes(const NnlrtModel *m)
{
    uint64_t n = 4;
    for (int i = 0; i < m->n_tensors; i++)
        n += 4 + strlen(m->tensors[i].name) + 4 + 8 * (uint64_t)m->tensors[i].rank + 16;
    return n;
}

/* The size of the options' record in a checkpoint. */
static uint64_t ckpt_options_bytes(const char *const *options, int n)
{
    uint64_t bytes = 4;
    for (int i = 0; i < n; i++)
        bytes += 4 + strlen(options[i]);
    return bytes;
}

bool nnlrt_checkpoint_options_fit(const char *const *options, int n)
{
    return n >= 0 && ckpt_options_bytes(options, n) <= NNLRT_CKPT_MAX_OPTIONS;
}

/* The layout of header h's version: the header's size, and the size of the options. */
static size_t ckpt_header_bytes(const uint8_t *h)
{
    return get_u32(h + 8) == CKPT_V2 ? CKPT_V2_HEADER : NNLRT_CKPT_HEADER;
}

static uint64_t ckpt_options_in(const uint8_t *h)
{
    return get_u32(h + 8) == CKPT_V2 ? 0 : get_u64(h + 160);
}

static void ckpt_encode_header(uint8_t *h, const NnlrtModel *m, const NnlrtCheckpoint *c)
{
    memset(h, 0, NNLRT_CKPT_HEADER);
    memcpy(h, CKPT_MAGIC, 8);
    put_u32(h + 8, NNLRT_CKPT_VERSION);
    put_u32(h + 12, (uint32_t)m->elem_size);
    put_u64(h + 16, nnlrt_model_signature(m));
    put_u64(h + 24, (uint64_t)m->n_params);
    put_u32(h + 32, (uint32_t)m->n_states);
    put_u32(h + 36, (uint32_t)c->n_sums);
    put_u64(h + 40, (uint64_t)c->epoch);
    put_u64(h + 48, (uint64_t)c->step);
    put_u64(h + 56, (uint64_t)c->next_batch);
    for (int i = 0; i < 4; i++)
        put_u64(h + 64 + 8 * i, c->shuffle.s[i]);
    put_u64(h + 96, (uint64_t)c->batch);
    put_u64(h + 104, (uint64_t)c->n_train);
    put_u32(h + 112, (c->shuffled ? CKPT_FLAG_SHUFFLE : 0) | (c->has_log ? CKPT_FLAG_LOG : 0));
    put_u32(h + 116, c->log_crc);
    put_u64(h + 120, c->log_bytes);
    put_f64(h + 128, c->last_loss);
    put_f64(h + 136, c->window_loss);
    put_u64(h + 144, (uint64_t)c->window_steps);
    put_u64(h + 152, ckpt_table_bytes(m));
    put_u64(h + 160, ckpt_options_bytes(c->options, c->n_options));
}

/* The run's position and state from a header that passed every check. */
static void ckpt_decode_header(const uint8_t *h, NnlrtCheckpoint *c)
{
    c->epoch = (int64_t)get_u64(h + 40);
    c->step = (int64_t)get_u64(h + 48);
    c->next_batch = (int64_t)get_u64(h + 56);
    for (int i = 0; i < 4; i++)
        c->shuffle.s[i] = get_u64(h + 64 + 8 * i);
    c->batch = (int64_t)get_u64(h + 96);
    c->n_train = (int64_t)get_u64(h + 104);
    uint32_t flags = get_u32(h + 112);
    c->shuffled = flags & CKPT_FLAG_SHUFFLE;
    c->has_log = flags & CKPT_FLAG_LOG;
    c->log_crc = get_u32(h + 116);
    c->log_bytes = get_u64(h + 120);
    c->last_loss = get_f64(h + 128);
    c->window_loss = get_f64(h + 136);
    c->window_steps = (int64_t)get_u64(h + 144);
}

/* ---- failure injection (tests) ---- */

/* ---- writing ---- */

typedef struct {
    NnlrtAtomic *a;
    uLong crc;
} CkptOut;

static bool out_bytes(CkptOut *o, const void *p, size_t n)
{
    if (o->a->err)
        return false;
    o->crc = crc32(o->crc, p, (uInt)n);
    return nnlrt_atomic_write(o->a, p, n);
}

/* n elements of `size` bytes from host order, as little-endian. */
static bool out_array(CkptOut *o, const void *data, size_t n, size_t size)
{
    const uint8_t *p = data;
    uint8_t buf[CKPT_CHUNK];
    size_t per = CKPT_CHUNK / size;
    for (size_t done = 0; done < n; done += per) {
        size_t k = n - done < per ? n - done : per;
        const uint8_t *src = p + done * size;
        if (!ckpt_host_le()) {
            memcpy(buf, src, k * size);
            ckpt_swap(buf, k, size);
            src = buf;
        }
        if (!out_bytes(o, src, k * size))
            return false;
    }
    return true;
}

/* u32 n_tensors, then each tensor: u32 name_len, the name, u32 rank, the dims, offset and
 * size as i64. */
static bool out_table(CkptOut *o, const NnlrtModel *m)
{
    uint8_t b[4 + 8 * 4 + 16];
    put_u32(b, (uint32_t)m->n_tensors);
    bool ok = out_bytes(o, b, 4);
    for (int i = 0; ok && i < m->n_tensors; i++) {
        const NnlrtTensor *t = &m->tensors[i];
        size_t len = strlen(t->name);
        put_u32(b, (uint32_t)len);
        ok = out_bytes(o, b, 4) && out_bytes(o, t->name, len);
        put_u32(b, (uint32_t)t->rank);
        for (int d = 0; d < t->rank; d++)
            put_u64(b + 4 + 8 * d, (uint64_t)t->dims[d]);
        put_u64(b + 4 + 8 * t->rank, (uint64_t)t->offset);
        put_u64(b + 12 + 8 * t->rank, (uint64_t)t->size);
        ok = ok && out_bytes(o, b, 20 + 8 * (size_t)t->rank);
    }
    return ok;
}

bool nnlrt_checkpoint_put(NnlrtAtomic *a, const NnlrtModel *m, const NnlrtCheckpoint *c)
{
    CkptOut out = {a, crc32(0, Z_NULL, 0)}, *o = &out;
    uint8_t h[NNLRT_CKPT_HEADER];
    ckpt_encode_header(h, m, c);
    bool ok = out_bytes(o, h, sizeof h);
    for (int i = 0; ok && i < c->n_sums; i++) {
        uint8_t b[8];
        put_f64(b, c->sums[i]);
        ok = out_bytes(o, b, 8);
    }
    ok = ok && out_table(o, m);
    uint8_t b[4];
    put_u32(b, (uint32_t)c->n_options);
    ok = ok && out_bytes(o, b, 4);
    for (int i = 0; ok && i < c->n_options; i++) {
        size_t len = strlen(c->options[i]);
        put_u32(b, (uint32_t)len);
        ok = out_bytes(o, b, 4) && out_bytes(o, c->options[i], len);
    }
    size_t elem = (size_t)m->elem_size;
    ok = ok && out_array(o, c->params, (size_t)m->n_params, elem);
    for (int i = 0; ok && i < m->n_states; i++)
        ok = out_array(o, c->states[i], (size_t)m->n_params, elem);
    uint8_t crc[4];
    put_u32(crc, (uint32_t)o->crc);
    return ok && out_bytes(o, crc, 4);
}

/* ---- reading ---- */

typedef struct {
    const char *path;
    FILE *f;
    uLong crc;
} CkptIn;

static bool in_bytes(CkptIn *r, void *p, size_t n)
{
    if (fread(p, 1, n, r->f) == n) {
        r->crc = crc32(r->crc, p, (uInt)n);
        return true;
    }
    if (ferror(r->f))
        nnlrt_error(r->path, 0, 0, "cannot read the checkpoint: %s", strerror(errno));
    else
        nnlrt_error(r->path, 0, 0, "the checkpoint changed while it was being read");
    return false;
}

/* n bytes into the CRC only, in chunks. */
static bool in_skip(CkptIn *r, uint64_t n)
{
    uint8_t buf[CKPT_CHUNK];
    for (uint64_t left = n; left > 0;) {
        size_t k = left < CKPT_CHUNK ? (size_t)left : CKPT_CHUNK;
        if (!in_bytes(r, buf, k))
            return false;
        left -= k;
    }
    return true;
}

/* n elements of `size` bytes, little-endian, into host order at p. */
static bool in_array(CkptIn *r, void *p, size_t n, size_t size)
{
    uint8_t *dst = p;
    size_t per = CKPT_CHUNK / size;
    for (size_t done = 0; done < n; done += per) {
        size_t k = n - done < per ? n - done : per;
        if (!in_bytes(r, dst + done * size, k * size))
            return false;
        if (!ckpt_host_le())
            ckpt_swap(dst + done * size, k, size);
    }
    return true;
}

/* The file size the header promises, or false when its sizes cannot be those of a file
 * (an element size other than 4 or 8, counts out of range, a table of fewer than 4 bytes
 * or more than CKPT_MAX_TABLE). */
static bool ckpt_promised(const uint8_t *h, uint64_t *size)
{
    uint64_t elem = get_u32(h + 12), n_params = get_u64(h + 24);
    uint64_t states = get_u32(h + 32), sums = get_u32(h + 36), table = get_u64(h + 152);
    uint64_t options = ckpt_options_in(h), header = ckpt_header_bytes(h);
    const uint64_t max = (uint64_t)INT64_MAX;
    if ((elem != 4 && elem != 8) || n_params > max / 8 / (states + 1) || sums > 1u << 20 ||
        table < 4 || table > CKPT_MAX_TABLE ||
        (header == NNLRT_CKPT_HEADER && (options < 4 || options > NNLRT_CKPT_MAX_OPTIONS)))
        return false;
    uint64_t arenas = n_params * elem * (states + 1);
    if (arenas > max - header - 8 * sums - table - options - 4)
        return false;
    *size = header + 8 * sums + table + options + arenas + 4;
    return true;
}

/* Magic, version and size: what can be told from the header and the file's size. `got`
 * bytes of the header could be read. */
static bool ckpt_check_header(const char *path, const uint8_t *h, size_t got, uint64_t size)
{
    if (memcmp(h, CKPT_MAGIC, got < 8 ? got : 8) != 0) {
        nnlrt_error(path, 0, 0, "not an nnlc checkpoint (it does not start with \"NNLCKPT\")");
        return false;
    }
    uint32_t v = got >= 12 ? get_u32(h + 8) : NNLRT_CKPT_VERSION;
    if (v != NNLRT_CKPT_VERSION && v != CKPT_V2) {
        nnlrt_error(path, 0, 0, "checkpoint format version %u; this runtime reads versions 2 "
                    "and %d (%s)", v, NNLRT_CKPT_VERSION, v == 1 ? "it was written by an older "
                    "nnlc, before checkpoints had a tensor table: resume it with that nnlc"
                    : "was it written by another nnlc?");
        return false;
    }
    size_t header = v == CKPT_V2 ? CKPT_V2_HEADER : NNLRT_CKPT_HEADER;
    if (got < header) {
        nnlrt_error(path, 0, 0, "truncated at byte %zu (the header alone is %zu bytes)", got,
                    header);
        return false;
    }
    uint64_t promised;
    if (!ckpt_promised(h, &promised)) {
        nnlrt_error(path, 0, 0, "corrupt: the header's sizes are out of range (elements of "
                    "%u bytes, %llu parameters, %u states, %u sums, a tensor table of %llu "
                    "bytes, options of %llu bytes)", get_u32(h + 12),
                    (unsigned long long)get_u64(h + 24), get_u32(h + 32), get_u32(h + 36),
                    (unsigned long long)get_u64(h + 152),
                    (unsigned long long)ckpt_options_in(h));
        return false;
    }
    if (size < promised) {
        nnlrt_error(path, 0, 0, "truncated at byte %llu (the header promises %llu bytes)",
                    (unsigned long long)size, (unsigned long long)promised);
        return false;
    }
    if (size > promised) {
        nnlrt_error(path, 0, 0, "%llu bytes of unexpected data after byte %llu, where the "
                    "header says the checkpoint ends", (unsigned long long)(size - promised),
                    (unsigned long long)promised);
        return false;
    }
    return true;
}

static const char *ckpt_elem_name(uint32_t elem)
{
    return elem == 8 ? "float64" : "float32";
}

/* Names what differs between the checkpoint's model and m, as far as the header says. */
static bool ckpt_check_model(const char *path, const uint8_t *h, const NnlrtModel *m,
                             int n_sums)
{
    uint32_t elem = get_u32(h + 12), states = get_u32(h + 32), sums = get_u32(h + 36);
    uint64_t n_params = get_u64(h + 24), sig = get_u64(h + 16);
    const char *msg = "belongs to another model: ";
    if (elem != (uint32_t)m->elem_size)
        nnlrt_error(path, 0, 0, "%sits parameters are %s, this model's are %s", msg,
                    ckpt_elem_name(elem), ckpt_elem_name((uint32_t)m->elem_size));
    else if (n_params != (uint64_t)m->n_params)
        nnlrt_error(path, 0, 0, "%sit has %llu parameters, this model %lld", msg,
                    (unsigned long long)n_params, (long long)m->n_params);
    else if (states != (uint32_t)m->n_states)
        nnlrt_error(path, 0, 0, "%sit has %u optimizer state%s, this model %d", msg, states,
                    states == 1 ? "" : "s", m->n_states);
    else if (sig != nnlrt_model_signature(m))
        nnlrt_error(path, 0, 0, "%sthe names or shapes of its tensors differ (signature "
                    "%016llx, this model's %016llx)", msg, (unsigned long long)sig,
                    (unsigned long long)nnlrt_model_signature(m));
    else if (sums != (uint32_t)n_sums)
        nnlrt_error(path, 0, 0, "%sit was trained with %u metric%s, this model has %d", msg,
                    sums ? sums - 1 : 0, sums == 2 ? "" : "s", n_sums - 1);
    else
        return true;
    return false;
}

/* ---- the tensor table ---- */

typedef struct {
    const char *path;
    const uint8_t *p;
    uint64_t left;     /* bytes of the table after p */
    int64_t n_params;  /* the arena the offsets point into */
} CkptTable;

/* Reports a table that is not well-formed: "corrupt: its tensor table ...". */
static bool table_bad(const CkptTable *t, int i, const char *what)
{
    if (i < 0)
        nnlrt_error(t->path, 0, 0, "corrupt: its tensor table %s", what);
    else
        nnlrt_error(t->path, 0, 0, "corrupt: its tensor table's entry %d %s", i, what);
    return false;
}

static bool table_u32(CkptTable *t, int i, uint32_t *v)
{
    if (t->left < 4)
        return table_bad(t, i, "runs past the table's end");
    *v = get_u32(t->p);
    t->p += 4;
    t->left -= 4;
    return true;
}

static bool table_i64(CkptTable *t, int i, int64_t *v)
{
    if (t->left < 8)
        return table_bad(t, i, "runs past the table's end");
    *v = (int64_t)get_u64(t->p);
    t->p += 8;
    t->left -= 8;
    return true;
}

/* Whether the n bytes at s are UTF-8 without a NUL (overlong forms and surrogates refused). */
static bool table_utf8(const uint8_t *s, uint64_t n)
{
    for (uint64_t i = 0; i < n;) {
        uint8_t c = s[i];
        int more = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2
                 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (c == 0 || more < 0 || (uint64_t)more >= n - i || c == 0xC0 || c == 0xC1 || c > 0xF4)
            return false;
        for (int k = 1; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] >= 0x90))
            return false;
        i += 1 + (uint64_t)more;
    }
    return true;
}

static bool table_name(CkptTable *t, int i, NnlrtTensor *x)
{
    uint32_t len;
    if (!table_u32(t, i, &len))
        return false;
    if (len == 0)
        return table_bad(t, i, "has an empty name");
    if (len > t->left)
        return table_bad(t, i, "runs past the table's end");
    if (!table_utf8(t->p, len))
        return table_bad(t, i, "has a name that is not UTF-8 (or holds a NUL)");
    char *name = nnlrt_alloc(len + 1);
    memcpy(name, t->p, len);
    name[len] = 0;
    x->name = name;
    t->p += len;
    t->left -= len;
    return true;
}

/* Rank, dims, offset and size: dims >= 1 whose product is the size, inside the arena. A
 * scalar parameter (`param s = 1`) has rank 0 and size 1. */
static bool table_shape(CkptTable *t, int i, NnlrtTensor *x)
{
    uint32_t rank;
    if (!table_u32(t, i, &rank))
        return false;
    if (rank > 4)
        return table_bad(t, i, "has a rank above 4");
    x->rank = (int)rank;
    int64_t product = 1;
    for (uint32_t d = 0; d < rank; d++) {
        if (!table_i64(t, i, &x->dims[d]))
            return false;
        if (x->dims[d] < 1 || x->dims[d] > t->n_params || product > t->n_params / x->dims[d])
            return table_bad(t, i, "has a dimension out of range");
        product *= x->dims[d];
    }
    if (!table_i64(t, i, &x->offset) || !table_i64(t, i, &x->size))
        return false;
    if (x->size != product)
        return table_bad(t, i, "has a size that is not the product of its dimensions");
    if (x->offset < 0 || x->offset > t->n_params - x->size)
        return table_bad(t, i, "lies outside the parameter arena");
    return true;
}

static int table_by_offset(const void *a, const void *b)
{
    const NnlrtTensor *x = *(const NnlrtTensor *const *)a, *y = *(const NnlrtTensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int table_by_name(const void *a, const void *b)
{
    const NnlrtTensor *x = *(const NnlrtTensor *const *)a, *y = *(const NnlrtTensor *const *)b;
    return strcmp(x->name, y->name);
}

/* No two tensors share bytes of the arena or a name. */
static bool table_disjoint(const CkptTable *t, const NnlrtTensor *x, int n)
{
    const NnlrtTensor **s = nnlrt_alloc(sizeof *s * (size_t)n);
    for (int i = 0; i < n; i++)
        s[i] = &x[i];
    bool ok = true;
    qsort(s, (size_t)n, sizeof *s, table_by_offset);
    for (int i = 1; ok && i < n; i++)
        if (s[i - 1]->offset + s[i - 1]->size > s[i]->offset)
            ok = table_bad(t, (int)(s[i] - x), "overlaps another tensor in the arena");
    qsort(s, (size_t)n, sizeof *s, table_by_name);
    for (int i = 1; ok && i < n; i++)
        if (strcmp(s[i - 1]->name, s[i]->name) == 0)
            ok = table_bad(t, (int)(s[i] - x), "has the name of another tensor");
    nnlrt_free(s);
    return ok;
}

static void ckpt_tensors_free(NnlrtTensor *x, int n)
{
    for (int i = 0; x && i < n; i++)
        nnlrt_free((char *)x[i].name);
    nnlrt_free(x);
}

/* Parses and checks the table's `size` bytes at p, for an arena of n_params elements: the
 * tensors into *out (names allocated; nnlrt_tensors_free), their number into *n. */
static bool ckpt_parse_table(const char *path, const uint8_t *p, uint64_t size,
                             int64_t n_params, NnlrtTensor **out, int *n)
{
    CkptTable t = {path, p, size, n_params};
    uint32_t count;
    if (!table_u32(&t, -1, &count))
        return false;
    if (count > t.left / CKPT_MIN_ENTRY)
        return table_bad(&t, -1, "counts more tensors than it has room for");
    NnlrtTensor *x = nnlrt_alloc(sizeof *x * (count ? count : 1));
    memset(x, 0, sizeof *x * (count ? count : 1));
    bool ok = true;
    for (uint32_t i = 0; ok && i < count; i++)
        ok = table_name(&t, (int)i, &x[i]) && table_shape(&t, (int)i, &x[i]);
    if (ok && t.left)
        ok = table_bad(&t, -1, "has bytes after its last entry");
    ok = ok && table_disjoint(&t, x, (int)count);
    if (!ok) {
        ckpt_tensors_free(x, (int)count);
        return false;
    }
    *out = x;
    *n = (int)count;
    return true;
}

/* The table read from the file says exactly what the model's tensors are. */
static bool ckpt_table_matches(const char *path, const NnlrtTensor *x, int n,
                               const NnlrtModel *m)
{
    bool same = n == m->n_tensors;
    for (int i = 0; same && i < n; i++) {
        const NnlrtTensor *a = &x[i], *b = &m->tensors[i];
        same = strcmp(a->name, b->name) == 0 && a->rank == b->rank &&
               a->offset == b->offset && a->size == b->size;
        for (int d = 0; same && d < a->rank; d++)
            same = a->dims[d] == b->dims[d];
    }
    if (!same)
        nnlrt_error(path, 0, 0, "corrupt: its tensor table disagrees with its model signature");
    return same;
}

static bool in_seek_body(CkptIn *r, const uint8_t *h);

/* Everything up to the CRC, then the CRC (*crc) against it. h: the header, already read. */
static bool ckpt_check_crc(CkptIn *r, const uint8_t *h, uint64_t size, uint32_t *crc)
{
    if (!in_seek_body(r, h) || !in_skip(r, size - ckpt_header_bytes(h) - 4))
        return false;
    uint32_t computed = *crc = (uint32_t)r->crc;
    uint8_t b[4];
    if (!in_bytes(r, b, 4))
        return false;
    if (get_u32(b) == computed)
        return true;
    nnlrt_error(r->path, 0, 0, "corrupt: CRC mismatch (stored %08x, computed %08x)", get_u32(b),
                computed);
    return false;
}

/* To the sums, after the header h (of its version's size), which the CRC is begun with. */
static bool in_seek_body(CkptIn *r, const uint8_t *h)
{
    size_t header = ckpt_header_bytes(h);
    if (fseek(r->f, (long)header, SEEK_SET) != 0) {
        nnlrt_error(r->path, 0, 0, "cannot read the checkpoint: %s", strerror(errno));
        return false;
    }
    r->crc = crc32(crc32(0, Z_NULL, 0), h, (uInt)header);
    return true;
}

/* The tensor table (its size from header h), parsed and checked into *x and *n. */
static bool in_table(CkptIn *r, const uint8_t *h, NnlrtTensor **x, int *n)
{
    uint64_t size = get_u64(h + 152);
    uint8_t *buf = nnlrt_alloc((size_t)size);
    bool ok = in_bytes(r, buf, (size_t)size) &&
              ckpt_parse_table(r->path, buf, size, (int64_t)get_u64(h + 24), x, n);
    nnlrt_free(buf);
    return ok;
}

/* ---- the options ---- */

static bool options_bad(const char *path, int i, const char *what)
{
    if (i < 0)
        nnlrt_error(path, 0, 0, "corrupt: its record of the run's options %s", what);
    else
        nnlrt_error(path, 0, 0, "corrupt: its record of the run's options: option %d %s", i,
                    what);
    return false;
}

void nnlrt_checkpoint_options_free(char **options, int n)
{
    for (int i = 0; options && i < n; i++)
        nnlrt_free(options[i]);
    nnlrt_free(options);
}

/* Parses and checks the options' `size` bytes at p: u32 count, then u32 len and the bytes
 * of each, none a NUL, nothing after the last. Into *out (allocated; NULL for none) when
 * out is not NULL. */
static bool ckpt_parse_options(const char *path, const uint8_t *p, uint64_t size,
                               char ***out, int *n)
{
    if (size < 4)
        return options_bad(path, -1, "is cut short");
    uint32_t count = get_u32(p);
    uint64_t at = 4;
    if (count > (size - 4) / 4)
        return options_bad(path, -1, "counts more options than it has room for");
    char **list = out && count ? nnlrt_alloc(sizeof *list * count) : NULL;
    int made = 0; /* entries of list allocated */
    bool ok = true;
    for (uint32_t i = 0; ok && i < count; i++) {
        uint32_t len = size - at >= 4 ? get_u32(p + at) : 0;
        if (size - at < 4 || len > size - at - 4)
            ok = options_bad(path, (int)i + 1, "runs past the record's end");
        else if (memchr(p + at + 4, 0, len))
            ok = options_bad(path, (int)i + 1, "holds a NUL byte");
        else if (list) {
            list[made] = nnlrt_alloc((size_t)len + 1);
            memcpy(list[made], p + at + 4, len);
            list[made++][len] = 0;
        }
        at += 4 + (uint64_t)len;
    }
    if (ok && at != size)
        ok = options_bad(path, -1, "has bytes after its last option");
    if (!ok) {
        nnlrt_checkpoint_options_free(list, made);
        return false;
    }
    if (out) {
        *out = list;
        *n = (int)count;
    }
    return true;
}

/* The options (their size from header h; none in version 2), checked, into *out and *n
 * unless out is NULL. */
static bool in_options(CkptIn *r, const uint8_t *h, char ***out, int *n)
{
    uint64_t size = ckpt_options_in(h);
    if (size == 0) { /* version 2 */
        if (out) {
            *out = NULL;
            *n = 0;
        }
        return true;
    }
    uint8_t *buf = nnlrt_alloc((size_t)size);
    bool ok = in_bytes(r, buf, (size_t)size) && ckpt_parse_options(r->path, buf, size, out, n);
    nnlrt_free(buf);
    return ok;
}

/* The CRC computed on this second reading against the first one's. */
static bool in_same_crc(CkptIn *r, uint32_t crc)
{
    if ((uint32_t)r->crc == crc)
        return true;
    nnlrt_error(r->path, 0, 0, "the checkpoint changed while it was being read");
    return false;
}

/* The sums, the table (against m) and the arenas into c's arrays (skipped when c->params
 * is NULL), checking the CRC again on the way: the file was read once to verify it; it
 * must not have changed since. */
static bool ckpt_load(CkptIn *r, const uint8_t *h, const NnlrtModel *m, NnlrtCheckpoint *c,
                      uint32_t crc)
{
    bool ok = in_seek_body(r, h);
    for (int i = 0; ok && i < c->n_sums; i++) {
        uint8_t b[8];
        ok = in_bytes(r, b, 8);
        if (ok && c->sums)
            c->sums[i] = get_f64(b);
    }
    NnlrtTensor *x;
    int n;
    if (ok && in_table(r, h, &x, &n)) {
        ok = ckpt_table_matches(r->path, x, n, m);
        ckpt_tensors_free(x, n);
    } else
        ok = false;
    ok = ok && in_options(r, h, NULL, NULL);
    size_t elem = (size_t)m->elem_size, np = (size_t)m->n_params;
    if (ok && !c->params)
        ok = in_skip(r, (uint64_t)np * elem * (uint64_t)(1 + m->n_states));
    else if (ok) {
        ok = in_array(r, c->params, np, elem);
        for (int i = 0; ok && i < m->n_states; i++)
            ok = in_array(r, c->states[i], np, elem);
    }
    return ok && in_same_crc(r, crc);
}

/* A regular file's header, checked (magic, version, size), and its CRC (*crc). */
static int ckpt_open_header(CkptIn *r, uint8_t *h, uint32_t *crc)
{
    struct stat st;
    if (fstat(fileno(r->f), &st) != 0 || !S_ISREG(st.st_mode)) {
        nnlrt_error(r->path, 0, 0, "not a checkpoint: not a regular file");
        return NNLRT_EUSER;
    }
    uint64_t size = (uint64_t)st.st_size;
    memset(h, 0, NNLRT_CKPT_HEADER);
    size_t got = fread(h, 1, size < NNLRT_CKPT_HEADER ? (size_t)size : NNLRT_CKPT_HEADER, r->f);
    if (ferror(r->f)) {
        nnlrt_error(r->path, 0, 0, "cannot read the checkpoint: %s", strerror(errno));
        return NNLRT_EIO;
    }
    if (!ckpt_check_header(r->path, h, got, size) || !ckpt_check_crc(r, h, size, crc))
        return NNLRT_EUSER;
    return NNLRT_OK;
}

static int ckpt_read(CkptIn *r, const NnlrtModel *m, NnlrtCheckpoint *c)
{
    uint8_t h[NNLRT_CKPT_HEADER];
    uint32_t crc;
    int rc = ckpt_open_header(r, h, &crc);
    if (rc)
        return rc;
    if (!ckpt_check_model(r->path, h, m, c->n_sums))
        return NNLRT_EUSER;
    ckpt_decode_header(h, c);
    return ckpt_load(r, h, m, c, crc) ? NNLRT_OK : NNLRT_EUSER;
}

int nnlrt_checkpoint_read(const char *path, const NnlrtModel *m, NnlrtCheckpoint *c)
{
    CkptIn r = {path, fopen(path, "rb"), 0};
    if (!r.f) {
        nnlrt_error(path, 0, 0, "cannot open the checkpoint: %s", strerror(errno));
        return NNLRT_EIO;
    }
    int rc = ckpt_read(&r, m, c);
    fclose(r.f);
    return rc;
}

int nnlrt_checkpoint_verify(const NnlrtModel *m, const char *path)
{
    NnlrtCheckpoint c;
    memset(&c, 0, sizeof c);
    c.n_sums = 1 + m->n_metrics;
    return nnlrt_checkpoint_read(path, m, &c);
}

/* With open and read, not stdio: nothing is allocated (tests/oom counts allocations). */
NnlrtCkptFound nnlrt_checkpoint_found(const char *path, const NnlrtModel *m, int64_t *step)
{
    struct stat st;
    if (lstat(path, &st) != 0 && errno == ENOENT)
        return NNLRT_FOUND_NOTHING;
    int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return NNLRT_FOUND_NOT_CHECKPOINT;
    uint8_t h[NNLRT_CKPT_HEADER];
    size_t got = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        while (got < sizeof h) {
            ssize_t n = read(fd, h + got, sizeof h - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    close(fd);
    if (got < sizeof h || memcmp(h, CKPT_MAGIC, 8) != 0)
        return NNLRT_FOUND_NOT_CHECKPOINT;
    uint32_t version = get_u32(h + 8);
    if ((version != NNLRT_CKPT_VERSION && version != CKPT_V2) ||
        get_u64(h + 16) != nnlrt_model_signature(m))
        return NNLRT_FOUND_OTHER_MODEL;
    *step = (int64_t)get_u64(h + 48);
    return NNLRT_FOUND_THIS_MODEL;
}

/* ---- reading without a model: the tensors alone ---- */

/* The table, the options and (with `params`) the parameter arena of a verified file into
 * t; sums and states skipped. */
static bool ckpt_load_tensors(CkptIn *r, const uint8_t *h, uint32_t crc,
                              NnlrtCheckpointTensors *t, bool params)
{
    t->elem_size = (int)get_u32(h + 12);
    t->n_params = (int64_t)get_u64(h + 24);
    t->n_states = (int)get_u32(h + 32);
    t->epoch = (int64_t)get_u64(h + 40);
    t->step = (int64_t)get_u64(h + 48);
    if (!in_seek_body(r, h) || !in_skip(r, 8 * (uint64_t)get_u32(h + 36)) ||
        !in_table(r, h, &t->tensors, &t->n_tensors) ||
        !in_options(r, h, &t->options, &t->n_options))
        return false;
    size_t elem = (size_t)t->elem_size, np = (size_t)t->n_params;
    uint64_t skip = (uint64_t)np * elem * (uint64_t)t->n_states;
    if (params) {
        t->params = nnlrt_alloc_aligned(nnlrt_array_bytes(np, elem));
        if (!in_array(r, t->params, np, elem))
            return false;
    } else
        skip += (uint64_t)np * elem;
    return in_skip(r, skip) && in_same_crc(r, crc);
}

static int ckpt_read_tensors(const char *path, NnlrtCheckpointTensors *t, bool params)
{
    memset(t, 0, sizeof *t);
    CkptIn r = {path, fopen(path, "rb"), 0};
    if (!r.f) {
        nnlrt_error(path, 0, 0, "cannot open the checkpoint: %s", strerror(errno));
        return NNLRT_EIO;
    }
    uint8_t h[NNLRT_CKPT_HEADER];
    uint32_t crc;
    int rc = ckpt_open_header(&r, h, &crc);
    if (!rc && !ckpt_load_tensors(&r, h, crc, t, params)) {
        nnlrt_checkpoint_tensors_free(t);
        rc = NNLRT_EUSER;
    }
    fclose(r.f);
    return rc;
}

int nnlrt_checkpoint_read_tensors(const char *path, NnlrtCheckpointTensors *t)
{
    return ckpt_read_tensors(path, t, true);
}

int nnlrt_checkpoint_read_options(const char *path, NnlrtCheckpointTensors *t)
{
    return ckpt_read_tensors(path, t, false);
}

void nnlrt_checkpoint_tensors_free(NnlrtCheckpointTensors *t)
{
    ckpt_tensors_free(t->tensors, t->n_tensors);
    nnlrt_checkpoint_options_free(t->options, t->n_options);
    nnlrt_free(t->params);
    memset(t, 0, sizeof *t);
}
