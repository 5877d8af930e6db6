/* params.c — parameter files: the values of every tensor, one line each.
 *
 *   h1.W,0.0123,-0.0456,...
 *   h1.b,0,0,...
 *
 * A line is the tensor's name then its `size` values in row-major order. Loading needs
 * every tensor of the model exactly once, in any order; dumping writes them in the model's
 * order with enough digits to read back the same bits.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nnlrt_int.h"

enum { PARAMS_NAMES_SHOWN = 600 };

/* "h1.W, h1.b", cut short with "..." when long. */
static void params_name_list(const NnlrtModel *m, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", m->tensors[i].name);
        if (n < 0 || (size_t)n >= size - used) {
            snprintf(buf + (size > 4 ? size - 4 : 0), size > 4 ? 4 : size, "...");
            return;
        }
        used += (size_t)n;
    }
}

static int params_find(const NnlrtCsv *c, const NnlrtModel *m)
{
    const char *name = nnlrt_csv_text(c, 0);
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    char list[PARAMS_NAMES_SHOWN];
    params_name_list(m, list, sizeof list);
    nnlrt_csv_error(c, c->fields[0].at, "no parameter tensor named '%s' (the model has %s)",
                    name, list);
    return -1;
}

static bool params_check_count(const NnlrtCsv *c, const NnlrtTensor *t)
{
    int64_t found = c->n_fields - 1;
    if (found == t->size)
        return true;
    size_t at = found > t->size ? c->fields[t->size + 1].at : c->line_end;
    nnlrt_csv_error(c, at, "tensor '%s' has %lld values here, expected %lld", t->name,
                    (long long)found, (long long)t->size);
    return false;
}

static void params_store(const NnlrtModel *m, void *params, int64_t at, double v)
{
    if (m->elem_size == 4)
        ((float *)params)[at] = (float)v;
    else
        ((double *)params)[at] = v;
}

/* One line: a known tensor not seen before, with exactly its number of values. */
static bool params_read_row(const NnlrtCsv *c, const NnlrtModel *m, long *seen, void *params)
{
    int i = params_find(c, m);
    if (i < 0)
        return false;
    const NnlrtTensor *t = &m->tensors[i];
    if (seen[i]) {
        nnlrt_csv_error(c, c->fields[0].at, "tensor '%s' is given twice (first at line %ld)",
                        t->name, seen[i]);
        return false;
    }
    seen[i] = c->line;
    if (!params_check_count(c, t))
        return false;
    for (int64_t k = 0; k < t->size; k++) {
        double v;
        if (!nnlrt_csv_number(c, (int)k + 1, m->elem_size == 4, &v))
            return false;
        params_store(m, params, t->offset + k, v);
    }
    return true;
}

static bool params_check_all_seen(const NnlrtCsv *c, const NnlrtModel *m, const long *seen)
{
    for (int i = 0; i < m->n_tensors; i++) {
        if (!seen[i]) {
            nnlrt_error(c->path, 0, 0,
                        "no values for tensor '%s' (every tensor of the model must be given)",
                        m->tensors[i].name);
            return false;
        }
    }
    return true;
}

int nnlrt_params_load(const NnlrtModel *m, const char *path, void *params)
{
    NnlrtCsv c;
    if (!nnlrt_csv_open(&c, path, ','))
        return NNLRT_EIO;
    long *seen = nnlrt_alloc(nnlrt_array_bytes((size_t)m->n_tensors + 1, sizeof(long)));
    memset(seen, 0, ((size_t)m->n_tensors + 1) * sizeof(long));
    int r;
    while ((r = nnlrt_csv_next(&c)) > 0) {
        if (!params_read_row(&c, m, seen, params)) {
            r = -1;
            break;
        }
    }
    bool ok = r == 0 && params_check_all_seen(&c, m, seen);
    nnlrt_free(seen);
    nnlrt_csv_close(&c);
    return ok ? NNLRT_OK : NNLRT_EUSER;
}

/* ---- writing ---- */

/* A name with a comma, a quote or blanks at either end is quoted, so it reads back. */
static bool params_write_name(FILE *f, const char *name)
{
    size_t n = strlen(name);
    bool plain = strpbrk(name, ",\"") == NULL &&
                 (n == 0 || (name[0] != ' ' && name[0] != '\t' && name[n - 1] != ' ' &&
                             name[n - 1] != '\t'));
    if (plain)
        return fputs(name, f) >= 0;
    if (fputc('"', f) == EOF)
        return false;
    for (const char *p = name; *p; p++)
        if ((*p == '"' && fputc('"', f) == EOF) || fputc(*p, f) == EOF)
            return false;
    return fputc('"', f) != EOF;
}

static bool params_write_tensor(FILE *f, const NnlrtModel *m, const NnlrtTensor *t,
                                const void *params)
{
    if (!params_write_name(f, t->name))
        return false;
    for (int64_t k = 0; k < t->size; k++) {
        int n = m->elem_size == 4
                    ? fprintf(f, ",%.9g", (double)((const float *)params)[t->offset + k])
                    : fprintf(f, ",%.17g", ((const double *)params)[t->offset + k]);
        if (n < 0)
            return false;
    }
    return fputc('\n', f) != EOF;
}

/* Atomically (atomic_file.c), or in place when path is a device or a pipe. */
int nnlrt_params_dump(const NnlrtModel *m, const char *path, const void *params)
{
    NnlrtAtomic a;
    nnlrt_atomic_init(&a, path, NNLRT_ATOMIC_IN_PLACE);
    if (!nnlrt_atomic_open(&a)) {
        nnlrt_error(path, 0, 0, "cannot open the file for writing: %s", strerror(a.err));
        nnlrt_atomic_free(&a);
        return NNLRT_EIO;
    }
    bool ok = true;
    for (int i = 0; ok && i < m->n_tensors; i++)
        ok = params_write_tensor(a.f, m, &m->tensors[i], params);
    if (!ok)
        nnlrt_atomic_fail(&a, "write");
    ok = nnlrt_atomic_finish(&a, "rename");
    if (!ok)
        nnlrt_error(path, 0, 0, "cannot write the file: %s", strerror(a.err));
    nnlrt_atomic_free(&a);
    return ok ? NNLRT_OK : NNLRT_EIO;
}
