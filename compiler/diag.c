/* diag.c — positions and diagnostics.
 *
 * Locations are byte offsets everywhere; they become line:col only here, when printed.
 * Columns count characters (UTF-8 sequences), starting at 1; a tab counts as one.
 */
#include <stdio.h>
#include <string.h>

#include "nnlc_int.h"

static void source_index_lines(Source *src)
{
    uint32_t n = 1;
    for (uint32_t i = 0; i < src->len; i++)
        n += src->text[i] == '\n';
    src->line_starts = nnl_malloc(n * sizeof(uint32_t));
    src->nlines = 0;
    /* A UTF-8 byte-order mark, which the lexer skips, is not a column of line 1. */
    bool bom = src->len >= 3 && memcmp(src->text, "\xEF\xBB\xBF", 3) == 0;
    src->line_starts[src->nlines++] = bom ? 3 : 0;
    for (uint32_t i = 0; i < src->len; i++)
        if (src->text[i] == '\n')
            src->line_starts[src->nlines++] = i + 1;
}

/* Index of the line holding byte `off` (0-based). */
static uint32_t source_line_index(Source *src, uint32_t off)
{
    if (!src->line_starts)
        source_index_lines(src);
    uint32_t lo = 0, hi = src->nlines;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (src->line_starts[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

LineCol source_linecol(Source *src, uint32_t off)
{
    if (off > src->len)
        off = src->len;
    uint32_t li = source_line_index(src, off);
    uint32_t col = 1;
    for (uint32_t i = src->line_starts[li]; i < off; i++)
        col += ((unsigned char)src->text[i] & 0xC0) != 0x80;
    return (LineCol){li + 1, col};
}

const char *diag_at(Nnl *nnl, Source *src, uint32_t off)
{
    LineCol lc = source_linecol(src, off);
    return arena_printf(&nnl->arena, "%u:%u", lc.line, lc.col);
}

bool diag_stopped(const Nnl *nnl)
{
    return nnl->stopped;
}

/* An error or warning already shown: its place, message and context. */
struct DiagShown {
    struct DiagShown *next;
    NnlSeverity severity;
    const char *path, *message;
    int line, col;
    const void *context;
};

/* True when `d` was shown before (and it is then not shown again); notes go with the
 * error or warning before them. */
static bool diag_repeated(Nnl *nnl, const NnlDiag *d)
{
    if (d->severity == NNL_SEV_NOTE)
        return nnl->diag_skip_notes;
    for (const struct DiagShown *s = nnl->diag_shown; s; s = s->next)
        if (s->severity == d->severity && s->line == d->line && s->col == d->col &&
            s->context == nnl->diag_context && strcmp(s->message, d->message) == 0 &&
            (s->path == d->path || (s->path && d->path && strcmp(s->path, d->path) == 0))) {
            nnl->diag_skip_notes = true;
            return true;
        }
    struct DiagShown *s = arena_alloc(&nnl->arena, sizeof *s);
    *s = (struct DiagShown){.next = nnl->diag_shown, .severity = d->severity,
                            .path = d->path ? arena_printf(&nnl->arena, "%s", d->path) : NULL,
                            .message = arena_printf(&nnl->arena, "%s", d->message),
                            .line = d->line, .col = d->col, .context = nnl->diag_context};
    nnl->diag_shown = s;
    nnl->diag_skip_notes = false;
    return false;
}

static void diag_emit(Nnl *nnl, const NnlDiag *d)
{
    if (nnl->stopped)
        return;
    if (d->severity == NNL_SEV_ERROR)
        nnl->nerrors++; /* a repeated error still fails the stage that finds it */
    if (diag_repeated(nnl, d))
        return;
    if (nnl->diag_fn)
        nnl->diag_fn(nnl->diag_user, d);
    if (d->severity == NNL_SEV_ERROR && nnl->nerrors >= NNL_MAX_ERRORS) {
        NnlDiag stop = {.severity = NNL_SEV_ERROR, .path = d->path,
                        .message = "too many errors; stopping here"};
        if (nnl->diag_fn)
            nnl->diag_fn(nnl->diag_user, &stop);
        nnl->stopped = true;
    }
}

void diag_verror(Nnl *nnl, NnlSeverity sev, Source *src, uint32_t off, const char *fmt,
                 va_list ap)
{
    if (nnl->stopped)
        return;
    NnlDiag d = {.severity = sev, .path = src->path};
    d.message = arena_vprintf(&nnl->arena, fmt, ap);
    if (off > src->len)
        off = src->len;
    LineCol lc = source_linecol(src, off);
    uint32_t start = src->line_starts[lc.line - 1];
    uint32_t end = start;
    while (end < src->len && src->text[end] != '\n')
        end++;
    if (end > start && src->text[end - 1] == '\r')
        end--;
    d.line = (int)lc.line;
    d.col = (int)lc.col;
    d.line_text = src->text + start;
    d.line_len = (int)(end - start);
    d.caret = off > start ? (int)(off - start) : 0;
    diag_emit(nnl, &d);
}

void diag_error(Nnl *nnl, Source *src, uint32_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(nnl, NNL_SEV_ERROR, src, off, fmt, ap);
    va_end(ap);
}

void diag_note(Nnl *nnl, Source *src, uint32_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(nnl, NNL_SEV_NOTE, src, off, fmt, ap);
    va_end(ap);
}

void diag_file_error(Nnl *nnl, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    NnlDiag d = {.severity = NNL_SEV_ERROR, .path = path};
    d.message = arena_vprintf(&nnl->arena, fmt, ap);
    va_end(ap);
    diag_emit(nnl, &d);
}

enum { DIAG_MAX_SHOWN = 160 }; /* bytes of a source line shown under a message */

static const char *const severity_names[] = {"error", "warning", "note"};

void nnl_print_diag(FILE *out, const NnlDiag *d)
{
    if (d->path && d->line > 0)
        fprintf(out, "%s:%d:%d: ", d->path, d->line, d->col);
    else if (d->path)
        fprintf(out, "%s: ", d->path);
    else
        fprintf(out, "nnlc: ");
    fprintf(out, "%s: %s\n", severity_names[d->severity], d->message);
    if (!d->line_text)
        return;
    /* Long lines are shown as a window around the caret; bytes that would upset a
     * terminal (control characters, invalid UTF-8) are shown as '?'. */
    const unsigned char *line = (const unsigned char *)d->line_text;
    int start = 0, end = d->line_len;
    if (d->line_len > DIAG_MAX_SHOWN) {
        start = d->caret > DIAG_MAX_SHOWN / 2 ? d->caret - DIAG_MAX_SHOWN / 2 : 0;
        while (start > 0 && (line[start] & 0xC0) == 0x80)
            start--;
        end = start + DIAG_MAX_SHOWN < d->line_len ? start + DIAG_MAX_SHOWN : d->line_len;
        while (end < d->line_len && (line[end] & 0xC0) == 0x80)
            end++;
    }
    const char *dots = start > 0 ? "..." : "";
    fputs(dots, out);
    for (int i = start; i < end;) {
        int n = utf8_seq_len(line + i, (size_t)(end - i));
        if (n == 0 || (line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7F) {
            fputc('?', out);
            i++;
        } else {
            fwrite(line + i, 1, (size_t)n, out);
            i += n;
        }
    }
    fputs(end < d->line_len ? "...\n" : "\n", out);
    /* The caret line copies tabs so that it lines up in any tab setting. */
    fputs(start > 0 ? "   " : "", out);
    for (int i = start; i < d->caret && i < end; i++) {
        if (line[i] == '\t')
            fputc('\t', out);
        else if ((line[i] & 0xC0) != 0x80)
            fputc(' ', out);
    }
    fputs("^\n", out);
}
