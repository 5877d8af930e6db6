/* nnl.c — the compiler context: loading scripts, the embedded stdlib, the pipeline. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "nnlc_int.h"
#include "parser.h"

Nnl *nnl_new(NnlDiagFn fn, void *user)
{
    Nnl *nnl = nnl_malloc(sizeof *nnl);
    *nnl = (Nnl){.diag_fn = fn, .diag_user = user};
    return nnl;
}

void nnl_free(Nnl *nnl)
{
    if (!nnl)
        return;
    for (int i = 0; i < nnl->nsources; i++)
        nnl_dealloc(nnl->sources[i]->line_starts);
    nnl_dealloc(nnl->sources);
    nnl_dealloc(nnl->programs);
    nnl_dealloc(nnl->globals);
    nnl_dealloc(nnl->global_names);
    arena_free(&nnl->arena);
    nnl_dealloc(nnl);
}

int nnl_error_count(const Nnl *nnl)
{
    return nnl->nerrors;
}

static Source *nnl_add_source(Nnl *nnl, const char *path, const char *text, size_t len,
                              bool is_stdlib)
{
    Source *src = arena_alloc(&nnl->arena, sizeof *src);
    src->path = arena_strndup(&nnl->arena, path, strlen(path));
    char *copy = arena_alloc(&nnl->arena, len + 1);
    memcpy(copy, text, len);
    src->text = copy;
    src->len = (uint32_t)len;
    src->is_stdlib = is_stdlib;
    nnl->sources = nnl_realloc(nnl->sources, sizeof(Source *) * (size_t)(nnl->nsources + 1));
    nnl->sources[nnl->nsources++] = src;
    return src;
}

Source *nnl_text_source(Nnl *nnl, const char *name, const char *text)
{
    Source *src = arena_alloc(&nnl->arena, sizeof *src);
    src->path = arena_strndup(&nnl->arena, name, strlen(name));
    src->text = arena_strndup(&nnl->arena, text, strlen(text));
    src->len = (uint32_t)strlen(text);
    /* freed with the context: nnl_free walks nnl->sources only, so keep it there too */
    nnl->sources = nnl_realloc(nnl->sources, sizeof(Source *) * (size_t)(nnl->nsources + 1));
    nnl->programs = nnl_realloc(nnl->programs, sizeof(AstNode *) * (size_t)(nnl->nsources + 1));
    nnl->programs[nnl->nsources] = NULL;
    nnl->sources[nnl->nsources++] = src;
    return src;
}

/* `size` < 0: a pipe, read only to one byte past the limit. */
static NnlResult nnl_too_large(Nnl *nnl, const char *name, long long size)
{
    if (size < 0)
        diag_file_error(nnl, name, "file is too large (more than the limit of %d bytes)",
                        NNL_MAX_FILE_BYTES);
    else
        diag_file_error(nnl, name, "file is too large (%lld bytes; the limit is %d bytes)", size,
                        NNL_MAX_FILE_BYTES);
    return NNL_EUSER;
}

NnlResult nnl_load_text(Nnl *nnl, const char *name, const char *text, size_t len)
{
    if (len > NNL_MAX_FILE_BYTES)
        return nnl_too_large(nnl, name, (long long)len);
    nnl_add_source(nnl, name, text, len, false);
    return NNL_OK;
}

NnlResult nnl_load_file(Nnl *nnl, const char *path)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        diag_file_error(nnl, name, "cannot open file: %s", strerror(errno));
        return NNL_EUSAGE;
    }
    /* A regular file over the limit is refused by its size, unread. Anything else (a pipe)
     * is read to one byte past the limit, so that an endless pipe is refused too. */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > NNL_MAX_FILE_BYTES) {
        if (!is_stdin)
            fclose(f);
        return nnl_too_large(nnl, name, (long long)st.st_size);
    }
    size_t cap = 64 * 1024, len = 0;
    char *buf = nnl_malloc(cap);
    while (len <= NNL_MAX_FILE_BYTES) {
        if (len == cap) {
            cap = cap * 2 > NNL_MAX_FILE_BYTES ? NNL_MAX_FILE_BYTES + 1 : cap * 2;
            buf = nnl_realloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int err = ferror(f) ? errno : 0;
    if (!is_stdin)
        fclose(f);
    NnlResult r;
    if (err) {
        diag_file_error(nnl, name, "cannot read file: %s", strerror(err));
        r = NNL_EUSAGE;
    } else if (len > NNL_MAX_FILE_BYTES) {
        r = nnl_too_large(nnl, name, -1);
    } else {
        r = nnl_load_text(nnl, name, buf, len);
    }
    nnl_dealloc(buf);
    return r;
}

/* Parses the stdlib (first, so that its definitions come first) and every script. */
NnlResult nnl_parse(Nnl *nnl)
{
    if (nnl->parsed)
        return nnl->nerrors ? NNL_EUSER : NNL_OK;
    nnl->parsed = true;
    int nuser = nnl->nsources;
    for (int i = 0; i < nnl_stdlib_count; i++)
        nnl_add_source(nnl, nnl_stdlib_files[i].name, nnl_stdlib_files[i].text,
                       nnl_stdlib_files[i].len, true);
    nnl->programs = nnl_malloc(sizeof(AstNode *) * (size_t)(nnl->nsources + 1));
    for (int i = nuser; i < nnl->nsources; i++) {
        int before = nnl->nerrors;
        nnl->programs[i] = parse_source(nnl, nnl->sources[i], NULL, NULL);
        if (nnl->nerrors != before) {
            diag_file_error(nnl, nnl->sources[i]->path,
                            "internal error: the embedded standard library does not parse");
            return NNL_EINTERNAL;
        }
    }
    for (int i = 0; i < nuser && !diag_stopped(nnl); i++)
        nnl->programs[i] = parse_source(nnl, nnl->sources[i], NULL, NULL);
    return nnl->nerrors ? NNL_EUSER : NNL_OK;
}

/* ---- dumps ---- */

static void nnl_dump_token(void *user, Source *src, Token t)
{
    StrBuf *out = user;
    LineCol lc = source_linecol(src, t.off);
    sb_printf(out, "%u:%u %s", lc.line, lc.col, lex_kind_tag(t.kind));
    if (t.kind != TK_EOF && t.kind != TK_NEWLINE) {
        sb_putc(out, ' ');
        sb_putn(out, src->text + t.off, t.len);
    }
    sb_putc(out, '\n');
}

NnlResult nnl_dump(Nnl *nnl, NnlStage stage, FILE *out)
{
    StrBuf b = {0};
    for (int i = 0; i < nnl->nsources && !diag_stopped(nnl); i++) {
        Source *src = nnl->sources[i];
        if (src->is_stdlib)
            continue;
        if (stage == NNL_DUMP_TOKENS) {
            parse_source(nnl, src, nnl_dump_token, &b);
        } else {
            AstNode *prog = parse_source(nnl, src, NULL, NULL);
            if (!nnl->nerrors)
                ast_dump(&b, nnl, prog, 0);
        }
    }
    NnlResult r = nnl->nerrors ? NNL_EUSER : NNL_OK;
    if (r == NNL_OK && b.len && fwrite(b.data, 1, b.len, out) != b.len)
        r = NNL_EUSAGE;
    sb_free(&b);
    return r;
}
