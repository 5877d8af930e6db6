/* data_npy.c — NPY files (numpy.save): inputs in one file, targets in another.
 *
 * Layout:
 *   bytes 0-5   "\x93NUMPY"
 *   bytes 6-7   version: 1.0, 2.0 or 3.0
 *   then        the header's length: uint16 little-endian (1.0) or uint32 (2.0, 3.0)
 *   then        the header, a Python dict literal padded with blanks:
 *               {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }
 *   then        the elements, row-major (C order), nothing after them
 * The header grammar read here, blanks (space, tab, newline) allowed between tokens:
 *   header = '{' [ item (',' item)* [','] ] '}'      each of the three keys exactly once
 *   item   = string ':' (string | 'True' | 'False' | tuple)
 *   tuple  = '(' [ int (',' int)* [','] ] ')'         an int may end in 'L' (Python 2)
 *   string = "'" chars "'" | '"' chars '"'            no escapes
 * dtypes: <f4, <f8, |u1, <i8. The first dimension counts samples.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nnlrt_int.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "data_npy.c reads little-endian NPY data in place: port it to this machine"
#endif

enum { NPY_MAX_DIMS = 32, NPY_MAX_HEADER = 1 << 20 };

typedef struct {
    NnlrtFile f;
    const char *what;   /* "inputs" or "targets" */
    NnlrtType type;
    int n_dims;
    int64_t dims[NPY_MAX_DIMS];
    int64_t shape_at;   /* where the shape's '(' is, for messages */
    int64_t count;      /* dims[0] */
    int64_t size;       /* the product of the others */
    int64_t data_at;    /* where the elements start */
} NpyFile;

/* ---- the header ---- */

typedef struct {
    NpyFile *npy;
    const char *text;
    int64_t len;
    int64_t pos;
    int64_t base;       /* the file offset of text[0] */
    bool seen[3];       /* descr, fortran_order, shape */
} NpyHeader;

static bool npy_fail(const NpyHeader *h, const char *what)
{
    nnlrt_file_error(&h->npy->f, h->base + h->pos, "malformed NPY header: %s", what);
    return false;
}

static bool npy_is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n';
}

static void npy_blanks(NpyHeader *h)
{
    while (h->pos < h->len && npy_is_blank(h->text[h->pos]))
        h->pos++;
}

/* The next token's first character (after blanks), or -1 at the end (a NUL byte is a
 * character like any other, and wrong wherever it is). */
static int npy_peek(NpyHeader *h)
{
    npy_blanks(h);
    return h->pos < h->len ? (unsigned char)h->text[h->pos] : -1;
}

static bool npy_expect(NpyHeader *h, char c, const char *what)
{
    if (npy_peek(h) != c)
        return npy_fail(h, what);
    h->pos++;
    return true;
}

/* A quoted string: its text is text[*start .. *start + *n). */
static bool npy_string(NpyHeader *h, int64_t *start, int64_t *n)
{
    int q = npy_peek(h);
    if (q != '\'' && q != '"')
        return npy_fail(h, "expected a quoted string");
    int64_t open = h->pos++;
    while (h->pos < h->len && h->text[h->pos] != q) {
        unsigned char c = (unsigned char)h->text[h->pos];
        if (c == '\\' || c < 0x20 || c >= 0x7f)
            return npy_fail(h, "unexpected character in a string");
        h->pos++;
    }
    if (h->pos == h->len) {
        h->pos = open;
        return npy_fail(h, "the string is not closed");
    }
    *start = open + 1;
    *n = h->pos++ - open - 1;
    return true;
}

static bool npy_is(const NpyHeader *h, int64_t start, int64_t n, const char *s)
{
    return (size_t)n == strlen(s) && memcmp(h->text + start, s, (size_t)n) == 0;
}

/* descr: the dtype. */
static bool npy_descr(NpyHeader *h)
{
    npy_blanks(h);
    int64_t at = h->pos, s, n;
    if (!npy_string(h, &s, &n))
        return false;
    static const struct {
        const char *descr;
        NnlrtType type;
    } known[] = {
        {"<f4", NNLRT_F32}, {"<f8", NNLRT_F64}, {"<i8", NNLRT_I64},
        {"|u1", NNLRT_U8},  {"<u1", NNLRT_U8},  {">u1", NNLRT_U8}, /* one byte: any order */
    };
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        if (npy_is(h, s, n, known[k].descr)) {
            h->npy->type = known[k].type;
            return true;
        }
    }
    const NnlrtFile *f = &h->npy->f;
    int shown = n < 40 ? (int)n : 40;
    if (n == 3 && h->text[s] == '>')
        nnlrt_file_error(f, h->base + at, "dtype '%.3s' is big-endian: save the array as "
                         "little-endian (numpy: a.astype('<%.2s'))", h->text + s, h->text + s + 1);
    else
        nnlrt_file_error(f, h->base + at, "dtype '%.*s' is not supported: the %s must be "
                         "float32 '<f4', float64 '<f8', uint8 '|u1' or int64 '<i8' (numpy: "
                         "a.astype('float32'))", shown, h->text + s, h->npy->what);
    return false;
}

/* fortran_order: True or False; only False (C order) is read. */
static bool npy_fortran(NpyHeader *h)
{
    npy_blanks(h);
    int64_t at = h->pos, left = h->len - h->pos;
    if (left >= 5 && memcmp(h->text + at, "False", 5) == 0) {
        h->pos += 5;
        return true;
    }
    if (left >= 4 && memcmp(h->text + at, "True", 4) == 0) {
        nnlrt_file_error(&h->npy->f, h->base + at, "the array is in Fortran order: save it in "
                         "C order (numpy: np.ascontiguousarray(a))");
        return false;
    }
    return npy_fail(h, "'fortran_order' must be True or False");
}

/* One dimension of the shape: a non-negative integer that fits an int64. */
static bool npy_int(NpyHeader *h, int64_t *v)
{
    npy_blanks(h);
    int64_t start = h->pos;
    *v = 0;
    while (h->pos < h->len && h->text[h->pos] >= '0' && h->text[h->pos] <= '9') {
        if (__builtin_mul_overflow(*v, 10, v) ||
            __builtin_add_overflow(*v, h->text[h->pos] - '0', v)) {
            h->pos = start;
            return npy_fail(h, "a dimension is too large");
        }
        h->pos++;
    }
    if (h->pos == start)
        return npy_fail(h, "expected a dimension (a whole number)");
    if (h->pos < h->len && h->text[h->pos] == 'L')
        h->pos++;
    return true;
}

/* shape: (d0, d1, ...). */
static bool npy_shape(NpyHeader *h)
{
    NpyFile *npy = h->npy;
    if (!npy_expect(h, '(', "'shape' must be a tuple such as (100, 4)"))
        return false;
    npy->shape_at = h->base + h->pos - 1;
    npy->n_dims = 0;
    while (npy_peek(h) != ')') {
        if (npy->n_dims == NPY_MAX_DIMS)
            return npy_fail(h, "more than 32 dimensions");
        if (!npy_int(h, &npy->dims[npy->n_dims++]))
            return false;
        if (npy_peek(h) == ',')
            h->pos++;
        else if (npy_peek(h) != ')')
            return npy_fail(h, "expected ',' or ')' in the shape");
    }
    h->pos++;
    return true;
}

static bool npy_item(NpyHeader *h)
{
    static const char *const keys[] = {"descr", "fortran_order", "shape"};
    npy_blanks(h);
    int64_t at = h->pos, s, n;
    if (!npy_string(h, &s, &n))
        return false;
    int k = 0;
    while (k < 3 && !npy_is(h, s, n, keys[k]))
        k++;
    if (k == 3 || h->seen[k]) {
        h->pos = at;
        return npy_fail(h, k == 3 ? "unknown key (the keys are 'descr', 'fortran_order' and "
                                    "'shape')"
                                  : "a key is given twice");
    }
    h->seen[k] = true;
    if (!npy_expect(h, ':', "expected ':' after the key"))
        return false;
    return k == 0 ? npy_descr(h) : k == 1 ? npy_fortran(h) : npy_shape(h);
}

static bool npy_parse(NpyHeader *h)
{
    if (!npy_expect(h, '{', "expected '{'"))
        return false;
    while (npy_peek(h) != '}') {
        if (!npy_item(h))
            return false;
        if (npy_peek(h) == ',')
            h->pos++;
        else if (npy_peek(h) != '}')
            return npy_fail(h, "expected ',' or '}' after a value");
    }
    int64_t close = h->pos++;
    if (npy_peek(h) != -1)
        return npy_fail(h, "unexpected text after the closing '}'");
    h->pos = close;
    for (int k = 0; k < 3; k++)
        if (!h->seen[k])
            return npy_fail(h, k == 0 ? "no 'descr'" : k == 1 ? "no 'fortran_order'"
                                                              : "no 'shape'");
    return true;
}

/* Magic, version and the header's length; *base is where the header starts. */
static bool npy_preamble(NpyFile *npy, int64_t *len, int64_t *base)
{
    unsigned char p[12];
    const char *what = "an NPY file starts with 10 bytes: magic, version, header length";
    if (!nnlrt_file_header(&npy->f, p, 8, what))
        return false;
    if (memcmp(p, "\x93NUMPY", 6) != 0) {
        nnlrt_file_error(&npy->f, 0, "not an NPY file: it does not start with \\x93NUMPY");
        return false;
    }
    if (p[7] != 0 || p[6] < 1 || p[6] > 3) {
        nnlrt_file_error(&npy->f, 6, "NPY version %d.%d is not supported (1.0, 2.0 and 3.0 "
                         "are)", p[6], p[7]);
        return false;
    }
    int n = p[6] == 1 ? 2 : 4;
    if (!nnlrt_file_header(&npy->f, p + 8, n, what))
        return false;
    *len = p[8] | p[9] << 8 | (n == 4 ? (int64_t)p[10] << 16 | (int64_t)p[11] << 24 : 0);
    *base = 8 + n;
    if (*len <= NPY_MAX_HEADER)
        return true;
    nnlrt_file_error(&npy->f, 8, "the header length %lld is more than the 1 MB an NPY "
                     "header can have here", (long long)*len);
    return false;
}

static bool npy_read_header(NpyFile *npy)
{
    int64_t len, base;
    if (!npy_preamble(npy, &len, &base))
        return false;
    char *text = nnlrt_alloc((size_t)len);
    char what[96];
    snprintf(what, sizeof what, "the header length says %lld bytes of header from byte %lld",
             (long long)len, (long long)base);
    NpyHeader h = {.npy = npy, .text = text, .len = len, .base = base};
    bool ok = nnlrt_file_header(&npy->f, text, len, what) && npy_parse(&h);
    nnlrt_free(text);
    npy->data_at = base + len;
    return ok;
}

/* ---- shapes ---- */

static bool npy_shape_error(const NpyFile *npy, const char *msg)
{
    nnlrt_file_error(&npy->f, npy->shape_at, "%s", msg);
    return false;
}

/* count and size from the shape; no dimension 0, no product past 2^63 bytes. */
static bool npy_sizes(NpyFile *npy, int max_dims)
{
    if (npy->n_dims == 0)
        return npy_shape_error(npy, "the shape () is a single value: the samples need a "
                               "first dimension");
    if (npy->n_dims > max_dims)
        return npy_shape_error(npy, "targets have 1 or 2 dimensions: (samples) or (samples, "
                               "values)");
    npy->count = npy->dims[0];
    npy->size = 1;
    int64_t bytes = (int64_t)nnlrt_type_size(npy->type);
    for (int k = 0; k < npy->n_dims; k++) {
        if (npy->dims[k] == 0)
            return npy_shape_error(npy, k == 0 ? "the file holds no samples (the first "
                                                 "dimension is 0)"
                                               : "a dimension is 0: the samples are empty");
        if ((k > 0 && __builtin_mul_overflow(npy->size, npy->dims[k], &npy->size)) ||
            __builtin_mul_overflow(bytes, npy->dims[k], &bytes))
            return npy_shape_error(npy, "the dimensions multiply to more than 2^63 bytes");
    }
    return true;
}

static bool npy_open(NpyFile *npy, const char *path, const char *what, int max_dims)
{
    npy->what = what;
    return nnlrt_file_open(&npy->f, path) && npy_read_header(npy) && npy_sizes(npy, max_dims);
}

static bool npy_check_counts(const NpyFile *x, const NpyFile *y)
{
    if (x->count == y->count)
        return true;
    nnlrt_file_error(&y->f, y->shape_at, "%lld samples of targets for the %lld samples of "
                     "inputs in '%s'", (long long)y->count, (long long)x->count, x->f.path);
    return false;
}

/* ---- data ---- */

static int64_t npy_bytes(const NpyFile *npy)
{
    return npy->count * npy->size * (int64_t)nnlrt_type_size(npy->type);
}

/* Floating-point elements must be finite, as in a CSV file. */
static bool npy_check_finite(const NpyFile *npy, const void *data)
{
    if (npy->type != NNLRT_F32 && npy->type != NNLRT_F64)
        return true;
    int64_t n = npy->count * npy->size;
    for (int64_t i = 0; i < n; i++) {
        double v = nnlrt_value(npy->type, data, i);
        if (isfinite(v))
            continue;
        int64_t at = npy->data_at + i * (int64_t)nnlrt_type_size(npy->type);
        nnlrt_file_error(&npy->f, at, "value %g is not a finite number (sample %lld, "
                         "element %lld)", v, (long long)(i / npy->size + 1),
                         (long long)(i % npy->size + 1));
        return false;
    }
    return true;
}

static bool npy_data(NpyFile *npy, void **out)
{
    return nnlrt_file_data(&npy->f, npy_bytes(npy), "sample", out) &&
           npy_check_finite(npy, *out);
}

static bool npy_read(NpyFile *x, NpyFile *y, const char *x_path, const char *y_path,
                     bool inputs_too, NnlrtDataset *out)
{
    if (!npy_open(x, x_path, "inputs", NPY_MAX_DIMS) ||
        !nnlrt_file_check_size(&x->f, npy_bytes(x), "sample"))
        return false;
    if (!y_path)
        return !inputs_too || npy_data(x, &out->x);
    if (!npy_open(y, y_path, "targets", 2) ||
        !nnlrt_file_check_size(&y->f, npy_bytes(y), "sample") || !npy_check_counts(x, y))
        return false;
    return (!inputs_too || npy_data(x, &out->x)) && npy_data(y, &out->y);
}

static bool npy_load(const char *x_path, const char *y_path, double scale, bool inputs_too,
                     NnlrtDataset *out)
{
    memset(out, 0, sizeof *out);
    if (!nnlrt_check_scale(scale))
        return false;
    NpyFile x = {0}, y = {0};
    bool ok = npy_read(&x, &y, x_path, y_path, inputs_too, out);
    nnlrt_file_close(&x.f);
    nnlrt_file_close(&y.f);
    if (!ok) {
        nnlrt_dataset_free(out);
        return false;
    }
    out->n = x.count;
    out->x_size = x.size;
    out->y_size = y_path ? y.size : 0;
    out->x_type = x.type;
    out->y_type = y_path ? y.type : NNLRT_F32;
    out->x_scale = scale;
    out->source = nnlrt_strdup(x_path);
    out->y_source = nnlrt_strdup(y_path);
    return true;
}

bool nnlrt_npy_load(const char *x_path, const char *y_path, double scale, NnlrtDataset *out)
{
    return npy_load(x_path, y_path, scale, true, out);
}

bool nnlrt_npy_load_shape(const char *x_path, const char *y_path, double scale,
                          NnlrtDataset *out)
{
    return npy_load(x_path, y_path, scale, false, out);
}
