/* data_idx.c — IDX files (MNIST and its kin): a file of images and a file of labels.
 *
 * Layout, integers big-endian:
 *   bytes 0-1   0x00 0x00
 *   byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
 *               0x0E float64
 *   byte  3     number of dimensions
 *   bytes 4...  one uint32 size per dimension
 *   then        the elements, row-major, nothing after them
 * The first dimension counts samples. Images are uint8 in 1 to 4 dimensions (a sample is
 * the product of all but the first: 28 x 28 = 784); labels are uint8 in 1 dimension.
 * Both headers, and the sizes they promise, are checked before anything is allocated.
 */
#include <string.h>

#include "nnlrt_int.h"

enum { IDX_MAX_DIMS = 4, IDX_U8 = 0x08 };

typedef struct {
    NnlrtFile f;
    const char *what;  /* "images" or "labels" */
    int n_dims;
    int64_t count;     /* the first dimension */
    int64_t size;      /* elements per sample: the product of the others */
} IdxFile;

static const char *idx_type_name(int type)
{
    switch (type) {
    case 0x08: return "uint8";
    case 0x09: return "int8";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    }
    return NULL;
}

static uint32_t idx_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Bytes 0-3: the magic, 0 0 TYPE DIMS. */
static bool idx_check_magic(IdxFile *x, const unsigned char *h, int max_dims)
{
    if (h[0] != 0 || h[1] != 0) {
        nnlrt_file_error(&x->f, 0, "not an IDX file: it starts with 0x%02x%02x, not 0x0000",
                         h[0], h[1]);
        return false;
    }
    const char *name = idx_type_name(h[2]);
    if (!name) {
        nnlrt_file_error(&x->f, 2, "unknown IDX element type 0x%02x (not an IDX file?)", h[2]);
        return false;
    }
    if (h[2] != IDX_U8) {
        nnlrt_file_error(&x->f, 2, "IDX element type 0x%02x (%s) is not supported: %s must "
                         "be unsigned bytes (type 0x08)", h[2], name, x->what);
        return false;
    }
    x->n_dims = h[3];
    if (x->n_dims >= 1 && x->n_dims <= max_dims)
        return true;
    if (max_dims == 1)
        nnlrt_file_error(&x->f, 3, "IDX %s have 1 dimension, the header says %d", x->what,
                         x->n_dims);
    else
        nnlrt_file_error(&x->f, 3, "IDX %s have 1 to %d dimensions, the header says %d",
                         x->what, max_dims, x->n_dims);
    return false;
}

/* Bytes 4...: the sizes. None may be 0, and their product (in bytes) must fit an int64. */
static bool idx_check_dims(IdxFile *x, const unsigned char *dims)
{
    x->count = idx_u32(dims);
    x->size = 1;
    if (x->count == 0) {
        nnlrt_file_error(&x->f, 4, "the file holds no %s (the first dimension is 0)", x->what);
        return false;
    }
    for (int k = 1; k < x->n_dims; k++) {
        int64_t d = idx_u32(dims + 4 * k), total;
        if (d == 0) {
            nnlrt_file_error(&x->f, 4 + 4 * k, "dimension %d is 0: the %s are empty", k + 1,
                             x->what);
            return false;
        }
        if (__builtin_mul_overflow(x->size, d, &x->size) ||
            __builtin_mul_overflow(x->size, x->count, &total)) {
            nnlrt_file_error(&x->f, 4 + 4 * k, "the dimensions multiply to more than 2^63 "
                             "bytes");
            return false;
        }
    }
    return true;
}

static bool idx_open(IdxFile *x, const char *path, const char *what, int max_dims)
{
    x->what = what;
    if (!nnlrt_file_open(&x->f, path))
        return false;
    unsigned char h[4 + 4 * IDX_MAX_DIMS];
    if (!nnlrt_file_header(&x->f, h, 4, "an IDX file starts with 4 bytes: 0, 0, type, "
                           "dimensions") ||
        !idx_check_magic(x, h, max_dims))
        return false;
    char what_header[64];
    snprintf(what_header, sizeof what_header, "%d dimension%s need %d bytes of header",
             x->n_dims, x->n_dims == 1 ? "" : "s", 4 + 4 * x->n_dims);
    return nnlrt_file_header(&x->f, h + 4, 4 * x->n_dims, what_header) &&
           idx_check_dims(x, h + 4);
}

static bool idx_check_counts(const IdxFile *im, const IdxFile *lb)
{
    if (im->count == lb->count)
        return true;
    nnlrt_file_error(&lb->f, 4, "%lld labels for the %lld images of '%s'",
                     (long long)lb->count, (long long)im->count, im->f.path);
    return false;
}

/* Each header, and (for a plain file) the size it promises, then the counts; only then
 * the data. A file is checked against itself before against the other, so that the one
 * at fault is named. */
static bool idx_read(IdxFile *im, IdxFile *lb, const char *images, const char *labels,
                     bool images_too, NnlrtDataset *out)
{
    if (!idx_open(im, images, "images", IDX_MAX_DIMS) ||
        !nnlrt_file_check_size(&im->f, im->count * im->size, "image") ||
        !idx_open(lb, labels, "labels", 1) ||
        !nnlrt_file_check_size(&lb->f, lb->count, "label") || !idx_check_counts(im, lb))
        return false;
    return (!images_too || nnlrt_file_data(&im->f, im->count * im->size, "image", &out->x)) &&
           nnlrt_file_data(&lb->f, lb->count, "label", &out->y);
}

static bool idx_load(const char *images, const char *labels, double scale, bool images_too,
                     NnlrtDataset *out)
{
    memset(out, 0, sizeof *out);
    if (!nnlrt_check_scale(scale))
        return false;
    IdxFile im = {0}, lb = {0};
    bool ok = idx_read(&im, &lb, images, labels, images_too, out);
    nnlrt_file_close(&im.f);
    nnlrt_file_close(&lb.f);
    if (!ok) {
        nnlrt_dataset_free(out);
        return false;
    }
    out->n = im.count;
    out->x_size = im.size;
    out->y_size = 1;
    out->x_type = out->y_type = NNLRT_U8;
    out->x_scale = scale;
    out->source = nnlrt_strdup(images);
    out->y_source = nnlrt_strdup(labels);
    return true;
}

bool nnlrt_idx_load(const char *images, const char *labels, double scale, NnlrtDataset *out)
{
    return idx_load(images, labels, scale, true, out);
}

bool nnlrt_idx_load_shape(const char *images, const char *labels, double scale,
                          NnlrtDataset *out)
{
    return idx_load(images, labels, scale, false, out);
}
