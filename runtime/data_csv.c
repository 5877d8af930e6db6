/* data_csv.c — CSV data sets.
 *
 * A CSV data set is one target column (y_size = 1) and a list of feature columns (every
 * other column in file order by default), chosen by header name or 0-based index. Every
 * field of every row, used or not, must be a finite number: a file is either all good or
 * rejected with the position of the first problem. Inputs and targets are stored as
 * float32 (the values were checked to be finite as floats).
 */
#include <stdio.h>
#include <string.h>

#include "nnlrt_int.h"

enum { CSV_NAMES_SHOWN = 600 }; /* bytes of column names listed in a message */

/* The file's columns and the ones the data set takes. */
typedef struct {
    int n_cols;
    long header_line; /* 0 without a header */
    long first_line;  /* where the column count comes from: the header or first row */
    char **names;     /* n_cols header names, or NULL without a header */
    long target;
    long *features;
    int n_features;
} CsvColumns;

static void csv_columns_free(CsvColumns *cols)
{
    for (int i = 0; cols->names && i < cols->n_cols; i++)
        nnlrt_free(cols->names[i]);
    nnlrt_free(cols->names);
    nnlrt_free(cols->features);
}

static void csv_keep_names(const NnlrtCsv *c, CsvColumns *cols)
{
    cols->names = nnlrt_alloc(nnlrt_array_bytes((size_t)c->n_fields, sizeof(char *)));
    for (int i = 0; i < c->n_fields; i++)
        cols->names[i] = nnlrt_strdup(nnlrt_csv_text(c, i));
}

/* "x1, x2, y", cut short with "..." when long. */
static void csv_name_list(const CsvColumns *cols, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < cols->n_cols; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", cols->names[i]);
        if (n < 0 || (size_t)n >= size - used) {
            snprintf(buf + (size > 4 ? size - 4 : 0), size > 4 ? 4 : size, "...");
            return;
        }
        used += (size_t)n;
    }
}

/* "column 2 ('y')" or, without a header, "column 2". */
static void csv_describe(const CsvColumns *cols, long col, char *buf, size_t size)
{
    if (cols->names)
        snprintf(buf, size, "column %ld ('%s')", col, cols->names[col]);
    else
        snprintf(buf, size, "column %ld", col);
}

static bool csv_column_by_name(const NnlrtCsv *c, const CsvColumns *cols, const char *name,
                               long *col)
{
    if (!cols->names) {
        nnlrt_error(c->path, 0, 0,
                    "column '%s' is chosen by name, but the file is read without a header row",
                    name);
        return false;
    }
    for (int i = 0; i < cols->n_cols; i++) {
        if (strcmp(cols->names[i], name) == 0) {
            *col = i;
            return true;
        }
    }
    char list[CSV_NAMES_SHOWN];
    csv_name_list(cols, list, sizeof list);
    nnlrt_error(c->path, cols->first_line, 1, "no column named '%s' (the columns are %s)", name,
                list);
    return false;
}

static bool csv_check_index(const NnlrtCsv *c, const CsvColumns *cols, long col,
                            const char *what)
{
    if (col >= 0 && col < cols->n_cols)
        return true;
    nnlrt_error(c->path, cols->first_line, 1,
                "%s column %ld is out of range: the file has %d columns (0 to %d)", what, col,
                cols->n_cols, cols->n_cols - 1);
    return false;
}

static bool csv_resolve_target(const NnlrtCsv *c, const NnlrtCsvOptions *opt, CsvColumns *cols)
{
    if (opt->no_target) {
        cols->target = -1;
        return true;
    }
    if (opt->target)
        return csv_column_by_name(c, cols, opt->target, &cols->target);
    cols->target = opt->target_index == -1 ? cols->n_cols - 1 : opt->target_index;
    return csv_check_index(c, cols, cols->target, "target");
}

/* Every column but the target, in file order. */
static bool csv_default_features(const NnlrtCsv *c, CsvColumns *cols)
{
    if (cols->n_cols < 2 && cols->target >= 0) {
        nnlrt_error(c->path, cols->first_line, 1,
                    "the file has one column, the target, and no feature columns");
        return false;
    }
    cols->n_features = 0;
    for (long i = 0; i < cols->n_cols; i++)
        if (i != cols->target)
            cols->features[cols->n_features++] = i;
    return true;
}

/* A listed feature must not be the target or listed before. */
static bool csv_check_feature(const NnlrtCsv *c, const CsvColumns *cols, int k)
{
    long col = cols->features[k];
    char what[256];
    csv_describe(cols, col, what, sizeof what);
    if (col == cols->target) {
        nnlrt_error(c->path, cols->first_line, 1, "%s is both the target and a feature", what);
        return false;
    }
    for (int i = 0; i < k; i++) {
        if (cols->features[i] == col) {
            nnlrt_error(c->path, cols->first_line, 1, "%s is listed twice as a feature", what);
            return false;
        }
    }
    return true;
}

/* Features from opt->features (indices) or opt->feature_names; every other column when
 * neither is given or the list is empty. */
static bool csv_resolve_features(const NnlrtCsv *c, const NnlrtCsvOptions *opt,
                                 CsvColumns *cols)
{
    bool listed = (opt->features || opt->feature_names) && opt->n_features > 0;
    int n = listed ? opt->n_features : cols->n_cols;
    cols->features = nnlrt_alloc(nnlrt_array_bytes((size_t)n, sizeof(long)));
    if (!listed)
        return csv_default_features(c, cols);
    for (int k = 0; k < n; k++) {
        cols->n_features = k + 1;
        if (opt->features) {
            cols->features[k] = opt->features[k];
            if (!csv_check_index(c, cols, cols->features[k], "feature"))
                return false;
        } else if (!csv_column_by_name(c, cols, opt->feature_names[k], &cols->features[k])) {
            return false;
        }
        if (!csv_check_feature(c, cols, k))
            return false;
    }
    return true;
}

/* Reads the header (when there is one) and the first data row, and picks the columns.
 * Leaves the first data row current. */
static bool csv_read_layout(NnlrtCsv *c, const NnlrtCsvOptions *opt, CsvColumns *cols)
{
    int r = nnlrt_csv_next(c);
    if (r < 0)
        return false;
    if (r == 0) {
        nnlrt_error(c->path, 1, 1, "the file is empty: expected rows of numbers");
        return false;
    }
    cols->n_cols = c->n_fields;
    cols->first_line = c->line;
    if (opt->header) {
        cols->header_line = c->line;
        csv_keep_names(c, cols);
        r = nnlrt_csv_next(c);
        if (r < 0)
            return false;
        if (r == 0) {
            nnlrt_error(c->path, cols->header_line, 1,
                        "the file has a header row and no data rows after it");
            return false;
        }
    }
    return csv_resolve_target(c, opt, cols) && csv_resolve_features(c, opt, cols);
}

static bool csv_check_width(const NnlrtCsv *c, const CsvColumns *cols)
{
    if (c->n_fields == cols->n_cols)
        return true;
    size_t at = c->n_fields > cols->n_cols ? c->fields[cols->n_cols].at : c->line_end;
    nnlrt_csv_error(c, at, "row has %d field%s, expected %d (as in the %s at line %ld)",
                    c->n_fields, c->n_fields == 1 ? "" : "s", cols->n_cols,
                    cols->header_line ? "header" : "first row", cols->first_line);
    return false;
}

/* Converts every field of the current row (into `vals`) and stores sample i. */
static bool csv_store_row(const NnlrtCsv *c, const CsvColumns *cols, double *vals,
                          NnlrtDataset *out, int64_t i)
{
    if (!csv_check_width(c, cols))
        return false;
    for (int k = 0; k < cols->n_cols; k++)
        if (!nnlrt_csv_number(c, k, true, &vals[k]))
            return false;
    float *x = (float *)out->x + i * out->x_size, *y = out->y;
    for (int k = 0; k < cols->n_features; k++)
        x[k] = (float)vals[cols->features[k]];
    if (cols->target >= 0)
        y[i] = (float)vals[cols->target];
    out->rows[i] = c->line;
    return true;
}

static bool csv_read_rows(NnlrtCsv *c, const CsvColumns *cols, NnlrtDataset *out)
{
    int64_t cap = nnlrt_csv_max_rows(c);
    out->x_size = cols->n_features;
    out->y_size = cols->target >= 0;
    out->x_type = out->y_type = NNLRT_F32;
    out->x_scale = 1;
    out->x = nnlrt_alloc(nnlrt_array_bytes((size_t)cap, (size_t)out->x_size * sizeof(float)));
    if (out->y_size)
        out->y = nnlrt_alloc(nnlrt_array_bytes((size_t)cap, sizeof(float)));
    out->rows = nnlrt_alloc(nnlrt_array_bytes((size_t)cap, sizeof(int64_t)));
    double *vals = nnlrt_alloc(nnlrt_array_bytes((size_t)cols->n_cols, sizeof(double)));
    int r = 1;
    for (out->n = 0; r > 0; out->n++) {
        if (!csv_store_row(c, cols, vals, out, out->n)) {
            r = -1;
            break;
        }
        r = nnlrt_csv_next(c);
    }
    nnlrt_free(vals);
    return r == 0;
}

static bool csv_check_delimiter(const NnlrtCsvOptions *opt, char delim)
{
    if (delim != '"' && delim != '\n' && delim != '\r')
        return true;
    nnlrt_error(opt->path, 0, 0, "a CSV delimiter cannot be a quote or a line break");
    return false;
}

bool nnlrt_csv_load(const NnlrtCsvOptions *opt, NnlrtDataset *out)
{
    memset(out, 0, sizeof *out);
    char delim = opt->delimiter ? opt->delimiter : ',';
    NnlrtCsv c;
    if (!csv_check_delimiter(opt, delim) || !nnlrt_csv_open(&c, opt->path, delim))
        return false;
    CsvColumns cols = {0};
    bool ok = csv_read_layout(&c, opt, &cols) && csv_read_rows(&c, &cols, out);
    csv_columns_free(&cols);
    nnlrt_csv_close(&c);
    if (!ok) {
        nnlrt_dataset_free(out);
        return false;
    }
    out->source = nnlrt_strdup(opt->path);
    return true;
}
