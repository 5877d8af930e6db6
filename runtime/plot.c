/* plot.c — a training log (the CSV nnlrt_train writes) drawn as an SVG file: one panel per
 * quantity (the loss, then each metric), training against validation, with ticks, labels
 * and a legend (docs/cli.md, "nnlc plot").
 *
 * The log is read strictly: the header is epoch,step,loss, the metrics, then optionally
 * val_loss and val_<metric> for each metric in the same order; every row has as many
 * fields, whole epoch and step numbers, steps increasing, and numbers or empty cells
 * (per-step rows leave metrics and validation empty). nan and inf are read and not drawn.
 * Errors name file:line:col.
 *
 * The output is deterministic: coordinates are printed with one decimal, tick labels with
 * as many as the tick step needs, so the same log gives the same bytes. It is written
 * atomically (atomic_file.c).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nnlrt_int.h"

/* ---- the log in memory ---- */

typedef struct {
    int n_cols;          /* value columns: loss, metrics, then val_loss, val_<metrics> */
    char **names;        /* their names */
    int n_metrics;
    bool has_val;        /* val_loss is column 1 + n_metrics */
    int64_t n_rows, cap;
    int64_t *epoch, *step;
    double *v;           /* n_rows * n_cols; NaN for an empty cell */
    bool *filled;        /* per column: some cell is not empty */
    bool per_epoch;      /* one row at the end of each epoch: x is the epoch */
} PlotLog;

static void plot_log_free(PlotLog *g)
{
    for (int i = 0; i < g->n_cols; i++)
        nnlrt_free(g->names[i]);
    nnlrt_free(g->names);
    nnlrt_free(g->epoch);
    nnlrt_free(g->step);
    nnlrt_free(g->v);
    nnlrt_free(g->filled);
    memset(g, 0, sizeof *g);
}

static bool plot_is_name(const char *s)
{
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    for (s++; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static size_t plot_at(const NnlrtCsv *c, int field)
{
    return field < c->n_fields ? c->fields[field].at : c->line_end;
}

/* epoch,step,loss: the first three columns. */
static bool plot_header_start(const NnlrtCsv *c)
{
    static const char *const first[] = {"epoch", "step", "loss"};
    for (int i = 0; i < 3; i++) {
        if (i < c->n_fields && strcmp(nnlrt_csv_text(c, i), first[i]) == 0)
            continue;
        nnlrt_csv_error(c, plot_at(c, i), "not a training log: its header starts with "
                        "epoch,step,loss (column %d is %s%s%s)", i + 1,
                        i < c->n_fields ? "'" : "missing",
                        i < c->n_fields ? nnlrt_csv_text(c, i) : "",
                        i < c->n_fields ? "'" : "");
        return false;
    }
    return true;
}

/* Column i (>= 3) of the header: a metric before val_loss, val_<metric k> after it. */
static bool plot_header_column(const NnlrtCsv *c, PlotLog *g, int i, int *val_at)
{
    const char *s = nnlrt_csv_text(c, i);
    size_t at = c->fields[i].at;
    if (*val_at < 0 && strcmp(s, "val_loss") == 0) {
        *val_at = i;
        return true;
    }
    if (*val_at < 0) {
        if (!plot_is_name(s)) {
            nnlrt_csv_error(c, at, "column '%.40s' is not a metric's name", s);
            return false;
        }
        for (int k = 3; k < i; k++)
            if (strcmp(nnlrt_csv_text(c, k), s) == 0) {
                nnlrt_csv_error(c, at, "column '%s' appears twice", s);
                return false;
            }
        g->n_metrics++;
        return true;
    }
    int k = i - *val_at + 2; /* the metric this column validates */
    const char *want = k < 3 + g->n_metrics ? nnlrt_csv_text(c, k) : NULL;
    if (want && strncmp(s, "val_", 4) == 0 && strcmp(s + 4, want) == 0)
        return true;
    if (want)
        nnlrt_csv_error(c, at, "unknown column '%.40s': after val_loss come the metrics' "
                        "val_ columns in order (expected 'val_%s')", s, want);
    else
        nnlrt_csv_error(c, at, "unknown column '%.40s': every metric has its val_ column "
                        "already", s);
    return false;
}

static bool plot_header(const NnlrtCsv *c, PlotLog *g)
{
    if (!plot_header_start(c))
        return false;
    int val_at = -1;
    for (int i = 3; i < c->n_fields; i++)
        if (!plot_header_column(c, g, i, &val_at))
            return false;
    if (val_at >= 0 && c->n_fields - val_at != 1 + g->n_metrics) {
        nnlrt_csv_error(c, c->line_end, "the header ends before 'val_%s': every metric "
                        "needs its val_ column", nnlrt_csv_text(c, c->n_fields - val_at + 2));
        return false;
    }
    g->has_val = val_at >= 0;
    g->n_cols = c->n_fields - 2;
    g->names = nnlrt_alloc(nnlrt_array_bytes((size_t)g->n_cols, sizeof(char *)));
    g->filled = nnlrt_alloc((size_t)g->n_cols);
    for (int i = 0; i < g->n_cols; i++) {
        g->names[i] = nnlrt_strdup(nnlrt_csv_text(c, i + 2));
        g->filled[i] = false;
    }
    return true;
}

/* A whole number >= lo in field i, else reported. */
static bool plot_whole(const NnlrtCsv *c, int i, int64_t lo, int64_t *out)
{
    const char *s = nnlrt_csv_text(c, i);
    char *end = NULL;
    errno = 0;
    long long v = *s >= '0' && *s <= '9' ? strtoll(s, &end, 10) : -1;
    if (v >= lo && end && !*end && errno == 0) {
        *out = v;
        return true;
    }
    nnlrt_csv_error(c, c->fields[i].at, "%s must be a whole number of at least %lld, not "
                    "'%.40s'", i == 0 ? "epoch" : "step", (long long)lo, s);
    return false;
}

/* A cell: empty (NaN, not drawn), or a number (nan and inf are read, and not drawn). */
static bool plot_cell(const NnlrtCsv *c, int i, double *out, bool *filled)
{
    const char *s = nnlrt_csv_text(c, i);
    if (!*s) {
        *out = NAN;
        return true;
    }
    char *end = NULL;
    double v = *s == ' ' || (*s >= '\t' && *s <= '\r') ? 0 : strtod(s, &end);
    if (!end || end == s || *end) {
        nnlrt_csv_error(c, c->fields[i].at, "cannot read '%.40s' as a number", s);
        return false;
    }
    *out = v;
    *filled = true;
    return true;
}

static void plot_grow(PlotLog *g)
{
    if (g->n_rows < g->cap)
        return;
    g->cap = g->cap ? 2 * g->cap : 64;
    g->epoch = nnlrt_realloc(g->epoch, nnlrt_array_bytes((size_t)g->cap, sizeof(int64_t)));
    g->step = nnlrt_realloc(g->step, nnlrt_array_bytes((size_t)g->cap, sizeof(int64_t)));
    size_t cells = nnlrt_array_bytes((size_t)g->cap, (size_t)g->n_cols);
    g->v = nnlrt_realloc(g->v, nnlrt_array_bytes(cells, sizeof(double)));
}

static bool plot_row(const NnlrtCsv *c, PlotLog *g)
{
    if (c->n_fields != g->n_cols + 2) {
        int at = c->n_fields < g->n_cols + 2 ? c->n_fields : g->n_cols + 2;
        nnlrt_csv_error(c, plot_at(c, at), "%d fields where the header has %d",
                        c->n_fields, g->n_cols + 2);
        return false;
    }
    plot_grow(g);
    int64_t r = g->n_rows;
    if (!plot_whole(c, 0, 1, &g->epoch[r]) || !plot_whole(c, 1, 0, &g->step[r]))
        return false;
    if (r > 0 && g->step[r] <= g->step[r - 1]) {
        nnlrt_csv_error(c, c->fields[1].at, "step %lld is not after the row before's (%lld): "
                        "the steps of a log increase", (long long)g->step[r],
                        (long long)g->step[r - 1]);
        return false;
    }
    for (int i = 0; i < g->n_cols; i++)
        if (!plot_cell(c, i + 2, &g->v[r * g->n_cols + i], &g->filled[i]))
            return false;
    g->n_rows++;
    return true;
}

/* Per-epoch rows: every row's step is its epoch times the same number of steps. */
static bool plot_per_epoch(const PlotLog *g)
{
    if (g->n_rows == 0 || g->step[0] % g->epoch[0] != 0)
        return false;
    int64_t per = g->step[0] / g->epoch[0];
    for (int64_t r = 0; r < g->n_rows; r++)
        if (g->step[r] % g->epoch[r] != 0 || g->step[r] / g->epoch[r] != per)
            return false;
    return true;
}

static bool plot_read(NnlrtCsv *c, PlotLog *g)
{
    int got = nnlrt_csv_next(c);
    if (got == 0)
        nnlrt_error(c->path, 1, 1, "not a training log: the file is empty");
    if (got <= 0 || !plot_header(c, g))
        return false;
    while ((got = nnlrt_csv_next(c)) == 1)
        if (!plot_row(c, g))
            return false;
    g->per_epoch = plot_per_epoch(g);
    return got == 0;
}

/* ---- axes ---- */

enum { PLOT_MAX_TICKS = 16 };

typedef struct {
    double lo, hi;       /* the axis' ends, in data units (log: their log10) */
    bool log;            /* log10 scale: ticks hold exponents */
    int n;
    double ticks[PLOT_MAX_TICKS];
    int decimals;        /* tick labels: %.*f with this many, or -1: %g */
} PlotAxis;

/* 1, 2 or 5 times a power of ten, at least x (> 0). */
static double plot_nice(double x)
{
    double p = pow(10, floor(log10(x)));
    double f = x / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/* When nice steps do not fit (values near the limits of double): the ends only. */
static void plot_axis_plain(PlotAxis *a, double lo, double hi)
{
    a->lo = fmax(lo, -DBL_MAX);
    a->hi = hi > lo ? fmin(hi, DBL_MAX) : a->lo + 1;
    a->n = 2;
    a->ticks[0] = a->lo;
    a->ticks[1] = a->hi;
    a->decimals = -1;
}

/* A linear axis over [lo, hi] with about `want` nice ticks; integer steps when `whole`. */
static void plot_axis_linear(PlotAxis *a, double lo, double hi, int want, bool whole)
{
    memset(a, 0, sizeof *a);
    if (!(hi > lo)) {
        double pad = whole || lo == 0 ? 1 : fabs(lo) * 0.1;
        lo -= pad;
        hi += pad;
    }
    double step = plot_nice((hi - lo) / want);
    if (whole && step < 1)
        step = 1;
    double first = floor(lo / step), last = ceil(hi / step);
    if (!isfinite(step) || step <= 0 || !isfinite(first * step) || !isfinite(last * step) ||
        last - first >= PLOT_MAX_TICKS) {
        plot_axis_plain(a, lo, hi);
        return;
    }
    a->lo = first * step;
    a->hi = last * step;
    for (double k = first; k <= last && a->n < PLOT_MAX_TICKS; k++) {
        double t = k * step;
        a->ticks[a->n++] = fabs(t) < step * 1e-9 ? 0 : t;
    }
    int e = (int)floor(log10(step) + 1e-9);
    double big = fmax(fabs(a->lo), fabs(a->hi));
    a->decimals = big >= 1e7 || e < -8 ? -1 : e < 0 ? -e : 0;
}

/* A log10 axis over [lo, hi] (0 < lo < hi): ticks at powers of ten. */
static void plot_axis_log(PlotAxis *a, double lo, double hi)
{
    memset(a, 0, sizeof *a);
    int first = (int)floor(log10(lo)), last = (int)ceil(log10(hi));
    if (last == first)
        last++;
    int every = (last - first + 7) / 8;
    last = first + (last - first + every - 1) / every * every;
    a->log = true;
    a->lo = first;
    a->hi = last;
    for (int k = first; k <= last && a->n < PLOT_MAX_TICKS; k += every)
        a->ticks[a->n++] = k;
}

static void plot_tick_label(const PlotAxis *a, double t, char *buf, size_t n)
{
    if (a->log) {
        int k = (int)t;
        if (k >= -4 && k <= 4)
            snprintf(buf, n, "%g", pow(10, k));
        else
            snprintf(buf, n, "1e%d", k);
    } else if (a->decimals >= 0) {
        snprintf(buf, n, "%.*f", a->decimals, t);
    } else {
        snprintf(buf, n, "%.3g", t);
    }
}

/* ---- drawing ---- */

enum {
    PLOT_W = 640, PLOT_PANEL_H = 300,
    PLOT_LEFT = 72, PLOT_RIGHT = 20, PLOT_TOP = 40, PLOT_BOTTOM = 50,
    PLOT_MARKERS_MAX = 40, /* series with at most this many points get a dot on each */
};
static const char *const PLOT_COLOURS[2] = {"#1f77b4", "#ff7f0e"}; /* training, validation */

typedef struct {
    FILE *f;
    const PlotLog *g;
    double top;          /* the panel's top edge */
    double x0, x1, y0, y1; /* the plot area */
    PlotAxis xa, ya;
} Panel;

static double plot_px(const Panel *p, double x)
{
    /* halves: exact, and finite where hi - lo would not be */
    return p->x0 + (x / 2 - p->xa.lo / 2) / (p->xa.hi / 2 - p->xa.lo / 2) * (p->x1 - p->x0);
}

/* y in the axis' units: log10 of the value on a log scale. */
static double plot_py_axis(const Panel *p, double y)
{
    return p->y1 - (y / 2 - p->ya.lo / 2) / (p->ya.hi / 2 - p->ya.lo / 2) * (p->y1 - p->y0);
}

static double plot_py(const Panel *p, double y)
{
    return plot_py_axis(p, p->ya.log ? log10(y) : y);
}

static double plot_x(const PlotLog *g, int64_t r)
{
    return (double)(g->per_epoch ? g->epoch[r] : g->step[r]);
}

static double plot_value(const PlotLog *g, int64_t r, int col)
{
    return g->v[r * g->n_cols + col];
}

/* Writes s with &, < and > escaped. */
static void plot_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else
            fputc(*s, f);
    }
}

static void plot_axes(const Panel *p)
{
    FILE *f = p->f;
    char label[64];
    for (int i = 0; i < p->ya.n; i++) {
        double y = plot_py_axis(p, p->ya.ticks[i]);
        plot_tick_label(&p->ya, p->ya.ticks[i], label, sizeof label);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                p->x0, y, p->x1, y, p->x0 - 6, y + 4, label);
    }
    for (int i = 0; i < p->xa.n; i++) {
        double x = plot_px(p, p->xa.ticks[i]);
        plot_tick_label(&p->xa, p->xa.ticks[i], label, sizeof label);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                x, p->y0, x, p->y1, x, p->y1 + 16, label);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#333333\"/>\n", p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
}

static void plot_labels(const Panel *p, const char *name)
{
    FILE *f = p->f;
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"15\" font-weight=\"bold\">",
            p->x0, p->top + 24);
    plot_text(f, name);
    fprintf(f, "%s</text>\n", p->ya.log ? " (log scale)" : "");
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
            (p->x0 + p->x1) / 2, p->y1 + 38, p->g->per_epoch ? "epoch" : "step");
    double cy = (p->y0 + p->y1) / 2;
    fprintf(f, "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" "
               "transform=\"rotate(-90 16 %.1f)\">", cy, cy);
    plot_text(f, name);
    fprintf(f, "</text>\n");
}

static void plot_dot(FILE *f, double x, double y, const char *colour)
{
    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", x, y, colour);
}

static int64_t plot_finite_count(const PlotLog *g, int col)
{
    int64_t n = 0;
    for (int64_t r = 0; r < g->n_rows; r++)
        n += isfinite(plot_value(g, r, col));
    return n;
}

/* Column `col` as polylines broken where a cell is empty or not finite; a dot on every
 * point of a short series, and on a point with no neighbour. */
static void plot_series(const Panel *p, int col, const char *colour)
{
    FILE *f = p->f;
    const PlotLog *g = p->g;
    bool dots = plot_finite_count(g, col) <= PLOT_MARKERS_MAX;
    for (int64_t r = 0; r < g->n_rows;) {
        if (!isfinite(plot_value(g, r, col))) {
            r++;
            continue;
        }
        int64_t end = r;
        while (end < g->n_rows && isfinite(plot_value(g, end, col)))
            end++;
        if (end - r > 1) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                    colour);
            for (int64_t k = r; k < end; k++)
                fprintf(f, "%s%.1f,%.1f", k > r ? " " : "", plot_px(p, plot_x(g, k)),
                        plot_py(p, plot_value(g, k, col)));
            fprintf(f, "\"/>\n");
        }
        for (int64_t k = r; k < end; k++)
            if (dots || end - r == 1)
                plot_dot(f, plot_px(p, plot_x(g, k)), plot_py(p, plot_value(g, k, col)),
                         colour);
        r = end;
    }
}

/* Above the plot area, right-aligned on the title's line, where it hides no data. */
static void plot_legend(const Panel *p, const int *cols, int n)
{
    static const char *const names[2] = {"training", "validation"};
    static const double widths[2] = {96, 108}; /* line, gap, text and space after */
    FILE *f = p->f;
    double x = p->x1, y = p->top + 24;
    for (int i = 0; i < n; i++)
        x -= cols[i] >= 0 ? widths[i] : 0;
    for (int i = 0; i < n; i++) {
        if (cols[i] < 0)
            continue;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"2\"/>\n<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                x, y - 4, x + 22, y - 4, PLOT_COLOURS[i], x + 28, y, names[i]);
        x += widths[i];
    }
}

/* The range of the finite values of the columns cols[0..n) (-1: none); false when none. */
static bool plot_range(const PlotLog *g, const int *cols, int n, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int64_t r = 0; cols[i] >= 0 && r < g->n_rows; r++) {
            double v = plot_value(g, r, cols[i]);
            if (isfinite(v)) {
                *lo = fmin(*lo, v);
                *hi = fmax(*hi, v);
            }
        }
    return *lo <= *hi;
}

static void plot_x_axis(const PlotLog *g, PlotAxis *a)
{
    double lo = g->n_rows ? plot_x(g, 0) : 0, hi = g->n_rows ? plot_x(g, g->n_rows - 1) : 1;
    plot_axis_linear(a, lo, hi, 6, true);
}

/* One panel: column `col` (training) and its validation column `vcol` (-1: none). */
static void plot_panel(FILE *f, const PlotLog *g, int index, int col, int vcol, bool loss)
{
    Panel p = {.f = f, .g = g, .top = (double)index * PLOT_PANEL_H};
    p.x0 = PLOT_LEFT;
    p.x1 = PLOT_W - PLOT_RIGHT;
    p.y0 = p.top + PLOT_TOP;
    p.y1 = p.top + PLOT_PANEL_H - PLOT_BOTTOM;
    int cols[2] = {col, vcol};
    double lo, hi;
    bool any = plot_range(g, cols, 2, &lo, &hi);
    plot_x_axis(g, &p.xa);
    if (!any)
        plot_axis_linear(&p.ya, 0, 1, 5, false);
    else if (loss && lo > 0 && hi / lo > 100)
        plot_axis_log(&p.ya, lo, hi);
    else
        plot_axis_linear(&p.ya, lo, hi, 5, false);
    fprintf(f, "<g>\n");
    plot_axes(&p);
    plot_labels(&p, g->names[col]);
    for (int i = 0; i < 2; i++)
        if (cols[i] >= 0)
            plot_series(&p, cols[i], PLOT_COLOURS[i]);
    if (!any)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#666666\">"
                   "no finite values</text>\n", (p.x0 + p.x1) / 2, (p.y0 + p.y1) / 2);
    plot_legend(&p, cols, vcol >= 0 ? 2 : 1);
    fprintf(f, "</g>\n");
}

/* The loss, then each metric with any value (per-step rows leave metrics empty). */
static void plot_svg(FILE *f, const PlotLog *g)
{
    int *panels = nnlrt_alloc(nnlrt_array_bytes((size_t)g->n_metrics + 1, sizeof(int)));
    int n = 0, vbase = 1 + g->n_metrics; /* val_loss */
    for (int i = 0; i <= g->n_metrics; i++)
        if (i == 0 || g->filled[i] || (g->has_val && g->filled[vbase + i]))
            panels[n++] = i;
    int height = n * PLOT_PANEL_H;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\" "
               "fill=\"#222222\">\n"
               "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
            PLOT_W, height, PLOT_W, height, PLOT_W, height);
    for (int k = 0; k < n; k++) {
        int i = panels[k];
        plot_panel(f, g, k, i, g->has_val ? vbase + i : -1, i == 0);
    }
    fprintf(f, "</svg>\n");
    nnlrt_free(panels);
}

/* ---- writing the file ---- */

static int plot_write_failed(const char *path, int err)
{
    nnlrt_error(path, 0, 0, "cannot write the plot: %s", strerror(err));
    return NNLRT_EIO;
}

/* Atomically (atomic_file.c). */
static int plot_write(const PlotLog *g, const char *path)
{
    NnlrtAtomic a;
    nnlrt_atomic_init(&a, path, 0);
    bool ok = nnlrt_atomic_open(&a);
    if (ok)
        plot_svg(a.f, g);
    ok = ok && nnlrt_atomic_finish(&a, "rename");
    int err = a.err;
    nnlrt_atomic_free(&a);
    return ok ? NNLRT_OK : plot_write_failed(path, err);
}

static int plot_from(NnlrtCsv *c, const char *svg_path)
{
    PlotLog g;
    memset(&g, 0, sizeof g);
    int rc = plot_read(c, &g) ? plot_write(&g, svg_path) : NNLRT_EUSER;
    plot_log_free(&g);
    nnlrt_csv_close(c);
    return rc;
}

int nnlrt_plot(const char *log_path, const char *svg_path)
{
    NnlrtCsv c;
    if (!nnlrt_csv_open(&c, log_path, ','))
        return NNLRT_EIO;
    return plot_from(&c, svg_path);
}

int nnlrt_plot_text(const char *name, const char *text, size_t len, const char *svg_path)
{
    NnlrtCsv c;
    nnlrt_csv_open_text(&c, name, text, len, ',');
    return plot_from(&c, svg_path);
}
