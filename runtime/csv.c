/* csv.c — the strict CSV row reader shared by data_csv.c and params.c.
 *
 * Row grammar, one line each:  row = field (delim field)*
 *   field = blanks ( '"' ( [^"] | '""' )* '"' | [^delim]* ) blanks
 * A quoted field ends on its own line (fields cannot span lines). A UTF-8 byte order mark
 * at the start of the file is skipped. Columns in messages count characters from 1.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnlrt_int.h"

enum { CSV_READ_CHUNK = 1 << 16, CSV_SHOW_MAX = 40 };

/* ---- reading the file ---- */

static bool csv_read_all(FILE *f, char **data, size_t *len)
{
    size_t cap = CSV_READ_CHUNK, n = 0;
    char *buf = nnlrt_alloc(cap);
    for (;;) {
        if (n == cap) {
            cap = nnlrt_array_bytes(cap, 2);
            buf = nnlrt_realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    *data = buf;
    *len = n;
    return !ferror(f);
}

static bool csv_read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        nnlrt_error(path, 0, 0, "cannot open the file: %s", strerror(errno));
        return false;
    }
    bool ok = csv_read_all(f, data, len);
    int err = errno;
    if (fclose(f) != 0 && ok) {
        err = errno;
        ok = false;
    }
    if (!ok) {
        nnlrt_error(path, 0, 0, "cannot read the file: %s", strerror(err));
        nnlrt_free(*data);
        *data = NULL;
    }
    return ok;
}

static bool csv_is_blank(const NnlrtCsv *c, char ch)
{
    return (ch == ' ' || ch == '\t') && ch != c->delim;
}

static bool csv_is_blank_line(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

/* The end of the last line holding anything but blanks: lines after it are ignored. */
static size_t csv_content_end(const char *data, size_t start, size_t len)
{
    size_t k = len;
    while (k > start && (csv_is_blank_line(data[k - 1]) || data[k - 1] == '\n'))
        k--;
    if (k == start)
        return start;
    const char *nl = memchr(data + k, '\n', len - k);
    return nl ? (size_t)(nl - data) : len;
}

/* c->data and c->len are set: skips a byte order mark, finds the end of the content. */
static void csv_start(NnlrtCsv *c)
{
    if (c->len >= 3 && memcmp(c->data, "\xEF\xBB\xBF", 3) == 0)
        c->pos = 3;
    c->end = csv_content_end(c->data, c->pos, c->len);
}

bool nnlrt_csv_open(NnlrtCsv *c, const char *path, char delim)
{
    memset(c, 0, sizeof *c);
    c->path = path;
    c->delim = delim;
    if (!csv_read_file(path, &c->data, &c->len))
        return false;
    csv_start(c);
    return true;
}

void nnlrt_csv_open_text(NnlrtCsv *c, const char *name, const char *text, size_t len,
                         char delim)
{
    memset(c, 0, sizeof *c);
    c->path = name;
    c->delim = delim;
    c->data = nnlrt_alloc(len + 1);
    memcpy(c->data, text, len);
    c->len = len;
    csv_start(c);
}

void nnlrt_csv_close(NnlrtCsv *c)
{
    nnlrt_free(c->data);
    nnlrt_free(c->fields);
    nnlrt_str_free(&c->buf);
    memset(c, 0, sizeof *c);
}

int64_t nnlrt_csv_max_rows(const NnlrtCsv *c)
{
    int64_t n = 1;
    for (size_t i = 0; i < c->len; i++)
        n += c->data[i] == '\n';
    return n;
}

/* ---- messages ---- */

static long csv_column(const NnlrtCsv *c, size_t at)
{
    long col = 1;
    for (size_t i = c->line_start; i < at && i < c->len; i++)
        col += ((unsigned char)c->data[i] & 0xC0) != 0x80;
    return col;
}

void nnlrt_csv_error(const NnlrtCsv *c, size_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nnlrt_verror(c->path, c->line, csv_column(c, at), fmt, ap);
    va_end(ap);
}

/* ---- splitting a line into fields ---- */

static void csv_put(NnlrtCsv *c, const char *s, size_t n)
{
    nnlrt_str_putn(&c->buf, s, n);
}

static void csv_begin_field(NnlrtCsv *c, size_t at)
{
    if (c->n_fields == c->cap_fields) {
        c->cap_fields = c->cap_fields ? 2 * c->cap_fields : 16;
        c->fields = nnlrt_realloc(c->fields,
                                  nnlrt_array_bytes((size_t)c->cap_fields, sizeof *c->fields));
    }
    c->fields[c->n_fields++] = (NnlrtCsvField){at, c->buf.len};
}

static size_t csv_skip_blanks(const NnlrtCsv *c, size_t p)
{
    while (p < c->line_end && csv_is_blank(c, c->data[p]))
        p++;
    return p;
}

/* An unquoted field from p: up to the delimiter, trailing blanks dropped. */
static size_t csv_plain_field(NnlrtCsv *c, size_t p)
{
    size_t q = p;
    while (q < c->line_end && c->data[q] != c->delim)
        q++;
    size_t t = q;
    while (t > p && csv_is_blank(c, c->data[t - 1]))
        t--;
    csv_put(c, c->data + p, t - p);
    return q;
}

/* A quoted field from the opening quote at *pp; leaves *pp after its trailing blanks. */
static bool csv_quoted_field(NnlrtCsv *c, size_t *pp)
{
    size_t open = *pp, p = open + 1;
    for (;;) {
        const char *q = memchr(c->data + p, '"', c->line_end - p);
        if (!q) {
            nnlrt_csv_error(c, open, "the quoted field is not closed on this line");
            return false;
        }
        size_t at = (size_t)(q - c->data);
        csv_put(c, c->data + p, at - p + 1); /* with the quote: kept only when doubled */
        if (at + 1 < c->line_end && c->data[at + 1] == '"') {
            p = at + 2;
            continue;
        }
        c->buf.len--;
        p = at + 1;
        break;
    }
    p = csv_skip_blanks(c, p);
    if (p < c->line_end && c->data[p] != c->delim) {
        nnlrt_csv_error(c, p, "unexpected '%c' after the closing quote of a field", c->data[p]);
        return false;
    }
    *pp = p;
    return true;
}

static bool csv_split_line(NnlrtCsv *c)
{
    c->n_fields = 0;
    nnlrt_str_clear(&c->buf);
    size_t p = c->line_start;
    for (;;) {
        p = csv_skip_blanks(c, p);
        csv_begin_field(c, p);
        if (p < c->line_end && c->data[p] == '"') {
            if (!csv_quoted_field(c, &p))
                return false;
        } else {
            p = csv_plain_field(c, p);
        }
        csv_put(c, "", 1);
        if (p >= c->line_end)
            return true;
        p++; /* the delimiter */
    }
}

static bool csv_line_is_blank(const NnlrtCsv *c)
{
    for (size_t i = c->line_start; i < c->line_end; i++)
        if (!csv_is_blank_line(c->data[i]))
            return false;
    return true;
}

int nnlrt_csv_next(NnlrtCsv *c)
{
    if (c->pos >= c->end)
        return 0;
    const char *nl = memchr(c->data + c->pos, '\n', c->len - c->pos);
    size_t next = nl ? (size_t)(nl - c->data) : c->len;
    c->line++;
    c->line_start = c->pos;
    c->line_end = next > c->pos && c->data[next - 1] == '\r' ? next - 1 : next;
    c->pos = next + 1;
    const char *nul = memchr(c->data + c->line_start, '\0', c->line_end - c->line_start);
    if (nul) {
        nnlrt_csv_error(c, (size_t)(nul - c->data), "NUL byte in the line (not a text file?)");
        return -1;
    }
    if (csv_line_is_blank(c)) {
        nnlrt_csv_error(c, c->line_start,
                        "blank line (blank lines are allowed only at the end of the file)");
        return -1;
    }
    return csv_split_line(c) ? 1 : -1;
}

/* ---- fields ---- */

const char *nnlrt_csv_text(const NnlrtCsv *c, int field)
{
    return c->buf.data + c->fields[field].text;
}

bool nnlrt_csv_number(const NnlrtCsv *c, int field, bool single, double *v)
{
    const char *s = nnlrt_csv_text(c, field);
    size_t at = c->fields[field].at;
    bool cut = strlen(s) > (size_t)CSV_SHOW_MAX;
    if (!*s) {
        nnlrt_csv_error(c, at, "empty field where a number is expected");
        return false;
    }
    /* strtod would skip leading white space (a quoted " 1" or a \v); a field is the
     * number alone. */
    bool space = s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r');
    char *end = NULL;
    double d = space ? 0 : strtod(s, &end);
    if (space || end == s || *end) {
        nnlrt_csv_error(c, at, "cannot read '%.*s%s' as a number", CSV_SHOW_MAX, s,
                        cut ? "..." : "");
        return false;
    }
    if (!isfinite(d) || (single && !isfinite((float)d))) {
        nnlrt_csv_error(c, at, "value '%.*s%s' is not a finite number%s", CSV_SHOW_MAX, s,
                        cut ? "..." : "", isfinite(d) ? " (too large for float32)" : "");
        return false;
    }
    *v = d;
    return true;
}
