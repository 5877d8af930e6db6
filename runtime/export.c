/* export.c — a checkpoint's parameters as safetensors or as NPY files (nnlc export).
 *
 * The checkpoint is read without its model (nnlrt_checkpoint_read_tensors): its tensor
 * table names the tensors. Only the parameters are written, never the optimizer states.
 *
 *   safetensors  u64 little-endian N, then N bytes of JSON, padded with spaces to a
 *                multiple of 8: {"NAME": {"dtype": "F32", "shape": [2, 8],
 *                "data_offsets": [BEGIN, END]}, ..., "__metadata__": {...}}, then the
 *                tensors' data one after the other, little-endian, in the table's order.
 *   npy          DIR/NAME.npy per tensor, NPY 1.0: "\x93NUMPY", 1, 0, u16 header length,
 *                a dict {'descr': '<f4', 'fortran_order': False, 'shape': (2, 8), }
 *                padded with spaces and ended by '\n' to a multiple of 64, then the data.
 *
 * Every file is written atomically (atomic_file.c); for npy, all files are written before
 * the first rename: a failed export removes its temporary files and leaves no file
 * half-written. docs/formats.md describes both formats for users.
 */
#define _POSIX_C_SOURCE 200809L /* rmdir */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnlrt_int.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "export.c writes the parameter arena as little-endian data in place: port it"
#endif

/* ---- JSON ---- */

/* s as a JSON string: quotes, backslashes and control characters escaped; the rest (UTF-8,
 * checked by the checkpoint reader) as it is. */
static void export_json_string(NnlrtStr *b, const char *s)
{
    nnlrt_str_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            nnlrt_str_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7F)
            nnlrt_str_printf(b, "\\u%04x", *p);
        else
            nnlrt_str_printf(b, "%c", *p);
    }
    nnlrt_str_printf(b, "\"");
}

/* ---- one output file: atomic_file.c ---- */

static void out_report(const NnlrtAtomic *o)
{
    nnlrt_error(o->path, 0, 0, "cannot write the export: %s (%s); nothing was written",
                strerror(o->err), o->what);
}

/* ---- safetensors ---- */

/* The JSON header, padded with spaces to a multiple of 8. */
static void st_header(NnlrtStr *b, const NnlrtCheckpointTensors *t)
{
    const char *dtype = t->elem_size == 8 ? "F64" : "F32";
    int64_t at = 0;
    nnlrt_str_printf(b, "{");
    for (int i = 0; i < t->n_tensors; i++) {
        const NnlrtTensor *x = &t->tensors[i];
        export_json_string(b, x->name);
        nnlrt_str_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", dtype);
        for (int d = 0; d < x->rank; d++)
            nnlrt_str_printf(b, "%s%lld", d ? "," : "", (long long)x->dims[d]);
        int64_t end = at + x->size * t->elem_size;
        nnlrt_str_printf(b, "],\"data_offsets\":[%lld,%lld]},", (long long)at, (long long)end);
        at = end;
    }
    nnlrt_str_printf(b, "\"__metadata__\":{\"producer\":\"nnlc export\",\"step\":\"%lld\"}}",
            (long long)t->step);
    while (b->len % 8)
        nnlrt_str_printf(b, " ");
}

static bool st_write(NnlrtAtomic *o, const NnlrtCheckpointTensors *t)
{
    NnlrtStr h = {0};
    st_header(&h, t);
    uint8_t n[8];
    for (int i = 0; i < 8; i++)
        n[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    bool ok = nnlrt_atomic_write(o, n, 8) && nnlrt_atomic_write(o, h.data, h.len);
    nnlrt_str_free(&h);
    const char *arena = t->params;
    for (int i = 0; ok && i < t->n_tensors; i++) {
        const NnlrtTensor *x = &t->tensors[i];
        ok = nnlrt_atomic_write(o, arena + x->offset * t->elem_size, (size_t)(x->size * t->elem_size));
    }
    return ok;
}

static int export_safetensors(const char *out, const NnlrtCheckpointTensors *t)
{
    for (int i = 0; i < t->n_tensors; i++)
        if (strcmp(t->tensors[i].name, "__metadata__") == 0) {
            nnlrt_error(out, 0, 0, "a tensor named '__metadata__' cannot be written to "
                        "safetensors, where that key holds the metadata: use --format npy");
            return NNLRT_EUSER;
        }
    NnlrtAtomic o;
    nnlrt_atomic_init(&o, out, 0);
    bool ok = nnlrt_atomic_open(&o) && st_write(&o, t) && nnlrt_atomic_close(&o) &&
              nnlrt_atomic_rename(&o, "renaming over the file");
    if (!ok)
        out_report(&o);
    else if (!nnlrt_atomic_sync_dir(&o))
        nnlrt_error(out, 0, 0, "written, but its directory cannot be synced: %s",
                    strerror(o.err));
    nnlrt_atomic_free(&o);
    return ok ? NNLRT_OK : NNLRT_EIO;
}

/* ---- npy: one file per tensor ---- */

/* Whether a tensor's name can be a file's name as it is: letters, digits, '_', '.' and
 * '-', not starting with '.' ("h1.W" -> "h1.W.npy"). */
static bool npy_safe_name(const char *name)
{
    if (name[0] == '.' || strlen(name) > 200)
        return false;
    for (const char *p = name; *p; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
            *p != '_' && *p != '.' && *p != '-')
            return false;
    return true;
}

static bool npy_write(NnlrtAtomic *o, const NnlrtTensor *x, const NnlrtCheckpointTensors *t)
{
    NnlrtStr h = {0};
    nnlrt_str_printf(&h, "{'descr': '<f%d', 'fortran_order': False, 'shape': (", t->elem_size);
    for (int d = 0; d < x->rank; d++)
        nnlrt_str_printf(&h, "%s%lld", d ? ", " : "", (long long)x->dims[d]);
    nnlrt_str_printf(&h, "%s), }", x->rank == 1 ? "," : "");
    while ((10 + h.len + 1) % 64)
        nnlrt_str_printf(&h, " ");
    nnlrt_str_printf(&h, "\n");
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)h.len,
                       (uint8_t)(h.len >> 8)};
    bool ok = nnlrt_atomic_write(o, pre, 10) && nnlrt_atomic_write(o, h.data, h.len);
    nnlrt_str_free(&h);
    const char *arena = t->params;
    return ok && nnlrt_atomic_write(o, arena + x->offset * t->elem_size, (size_t)(x->size * t->elem_size));
}

/* DIR exists as a directory, or is made; *made says which. */
static bool npy_dir(const char *dir, bool *made)
{
    struct stat st;
    *made = false;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return true;
        nnlrt_error(dir, 0, 0, "exists and is not a directory: --format npy writes one "
                    "NAME.npy per tensor into a directory");
        return false;
    }
    if (mkdir(dir, 0777) != 0) {
        nnlrt_error(dir, 0, 0, "cannot create the directory: %s", strerror(errno));
        return false;
    }
    *made = true;
    return true;
}

/* Every tensor's temporary file, then every rename. */
static bool npy_write_all(const NnlrtCheckpointTensors *t, NnlrtAtomic *outs)
{
    for (int i = 0; i < t->n_tensors; i++)
        if (!nnlrt_atomic_open(&outs[i]) || !npy_write(&outs[i], &t->tensors[i], t) ||
            !nnlrt_atomic_close(&outs[i])) {
            out_report(&outs[i]);
            return false;
        }
    for (int i = 0; i < t->n_tensors; i++)
        if (!nnlrt_atomic_rename(&outs[i], "renaming over the file")) {
            out_report(&outs[i]);
            return false;
        }
    return true;
}

static int export_npy(const char *dir, const NnlrtCheckpointTensors *t)
{
    for (int i = 0; i < t->n_tensors; i++)
        if (!npy_safe_name(t->tensors[i].name)) {
            nnlrt_error(dir, 0, 0, "the tensor name '%s' cannot be a file name (only letters, "
                        "digits, '_', '.' and '-', not first '.'): use --format safetensors",
                        t->tensors[i].name);
            return NNLRT_EUSER;
        }
    bool made;
    if (!npy_dir(dir, &made))
        return NNLRT_EIO;
    int n = t->n_tensors;
    NnlrtAtomic *outs = nnlrt_alloc(sizeof *outs * (size_t)(n ? n : 1));
    char **paths = nnlrt_alloc(sizeof *paths * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(t->tensors[i].name) + 8;
        paths[i] = nnlrt_alloc(len);
        snprintf(paths[i], len, "%s/%s.npy", dir, t->tensors[i].name);
        nnlrt_atomic_init(&outs[i], paths[i], 0);
    }
    bool ok = npy_write_all(t, outs);
    for (int i = 0; i < n; i++) {
        nnlrt_atomic_free(&outs[i]);
        nnlrt_free(paths[i]);
    }
    nnlrt_free(outs);
    nnlrt_free(paths);
    if (!ok && made)
        rmdir(dir);
    int err = ok ? nnlrt_fsync_dir(dir) : 0;
    if (err)
        nnlrt_error(dir, 0, 0, "written, but the directory cannot be synced: %s",
                    strerror(err));
    return ok ? NNLRT_OK : NNLRT_EIO;
}

/* ---- the command ---- */

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

/* The format asked for, or the one `out` implies: "safetensors", "npy", or NULL after
 * reporting. */
static const char *export_format(const char *out, const char *format)
{
    struct stat st;
    if (format && strcmp(format, "safetensors") != 0 && strcmp(format, "npy") != 0) {
        nnlrt_error(NULL, 0, 0, "unknown export format '%s' (safetensors or npy)", format);
        return NULL;
    }
    if (format)
        return format;
    if (ends_with(out, ".safetensors"))
        return "safetensors";
    if (ends_with(out, "/") || (stat(out, &st) == 0 && S_ISDIR(st.st_mode)))
        return "npy";
    nnlrt_error(out, 0, 0, "cannot tell the format from the name: end it in .safetensors, "
                "or give --format safetensors or --format npy");
    return NULL;
}

int nnlrt_export(const char *ckpt, const char *out, const char *format)
{
    if (!*out) {
        nnlrt_error(NULL, 0, 0, "the output's name is empty");
        return NNLRT_EIO;
    }
    format = export_format(out, format);
    if (!format)
        return NNLRT_EIO;
    struct stat st;
    if (strcmp(format, "safetensors") == 0 && stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        nnlrt_error(out, 0, 0, "is a directory: safetensors is one file (--format npy "
                    "writes a directory)");
        return NNLRT_EIO;
    }
    NnlrtCheckpointTensors t;
    int rc = nnlrt_checkpoint_read_tensors(ckpt, &t);
    if (rc)
        return rc;
    rc = strcmp(format, "npy") == 0 ? export_npy(out, &t) : export_safetensors(out, &t);
    nnlrt_checkpoint_tensors_free(&t);
    return rc;
}
