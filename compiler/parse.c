/* parse.c — feeds tokens to the Lemon parser, builds the AST, words syntax errors.
 *
 * Newlines: a line break ends a statement only after a token that can end one (a name,
 * a literal, ')', ']', '}') and never inside ( ) or [ ]; ';' always ends one.
 * Contextual keywords: `fn loss metric layer optimizer model data train` followed by a
 * name, `import` followed by a string, and `param state` followed by a name are keywords
 * at the start of a statement; anywhere else they are ordinary names (`data = train`). At
 * the top level, where only a declaration can start, the declaration words are keywords
 * whatever follows, so that `train {` is reported as a missing name.
 * `return true false` are reserved everywhere.
 */
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#include "nnlc_int.h"
#include "parser.h"

/* ---- AST construction (grammar actions) ---- */

static AstNode *parse_new(ParseState *ps, AstKind kind, uint32_t off)
{
    return ast_new(ps->arena, kind, ps->src, off);
}

static const char *parse_text(ParseState *ps, Token t)
{
    return arena_strndup(ps->arena, ps->src->text + t.off, t.len);
}

/* Expression depth is bounded so that every later recursive pass is too. */
static AstNode *parse_depth(ParseState *ps, AstNode *n, const AstNode *a, const AstNode *b)
{
    int d = 0;
    if (a && a->depth > d)
        d = a->depth;
    if (b && b->depth > d)
        d = b->depth;
    n->depth = d + 1;
    if (n->depth > NNL_MAX_NESTING && !ps->abort) {
        diag_error(ps->nnl, ps->src, n->off,
                   "expression is nested too deeply (the limit is %d levels)", NNL_MAX_NESTING);
        ps->abort = true;
    }
    return n;
}

static void parse_set_name(ParseState *ps, AstNode *n, Token tok);

AstList parse_list1(ParseState *ps, AstNode *first)
{
    AstList l = {0};
    ast_push(ps->arena, &l, first);
    return l;
}

AstNode *parse_leaf(ParseState *ps, AstKind kind, Token tok)
{
    AstNode *n = parse_new(ps, kind, tok.off);
    switch (kind) {
    case AST_INT:
        n->ival = lex_int_value(ps->nnl, ps->src, tok, false);
        break;
    case AST_FLOAT:
        n->fval = lex_float_value(ps->nnl, ps->src, tok, false);
        break;
    case AST_STRING:
        n->name = lex_string_value(ps->nnl, ps->src, tok, ps->arena, false, &n->name_len);
        break;
    case AST_BOOL:
        n->ival = tok.kind == TK_TRUE;
        break;
    default:
        parse_set_name(ps, n, tok);
    }
    n->depth = 1;
    return n;
}

static void parse_set_name(ParseState *ps, AstNode *n, Token tok)
{
    n->name = parse_text(ps, tok);
    n->name_len = tok.len;
}

AstNode *parse_unary(ParseState *ps, Token op, AstNode *operand)
{
    AstNode *n = parse_new(ps, AST_UNARY, op.off);
    n->op = op.kind;
    n->lhs = operand;
    return parse_depth(ps, n, operand, NULL);
}

AstNode *parse_binary(ParseState *ps, Token op, AstNode *lhs, AstNode *rhs)
{
    AstNode *n = parse_new(ps, AST_BINARY, op.off);
    n->op = op.kind;
    n->lhs = lhs;
    n->rhs = rhs;
    return parse_depth(ps, n, lhs, rhs);
}

static AstNode *parse_list_depth(ParseState *ps, AstNode *n)
{
    const AstNode *deepest = NULL;
    for (int i = 0; i < n->args.len; i++)
        if (!deepest || n->args.items[i]->depth > deepest->depth)
            deepest = n->args.items[i];
    return parse_depth(ps, n, deepest, NULL);
}

AstNode *parse_call(ParseState *ps, Token name, AstList args)
{
    AstNode *n = parse_new(ps, AST_CALL, name.off);
    parse_set_name(ps, n, name);
    n->args = args;
    return parse_list_depth(ps, n);
}

AstNode *parse_list(ParseState *ps, Token open, AstList elems)
{
    AstNode *n = parse_new(ps, AST_LIST, open.off);
    n->args = elems;
    return parse_list_depth(ps, n);
}

AstNode *parse_arg(ParseState *ps, const Token *name, AstNode *value)
{
    AstNode *n = parse_new(ps, AST_ARG, name ? name->off : value->off);
    if (name)
        parse_set_name(ps, n, *name);
    n->rhs = value;
    n->depth = value->depth;
    return n;
}

AstNode *parse_import(ParseState *ps, Token kw, Token path)
{
    AstNode *n = parse_new(ps, AST_IMPORT, kw.off);
    n->rhs = parse_leaf(ps, AST_STRING, path);
    return n;
}

AstNode *parse_callable(ParseState *ps, Token kw, Token name, AstList formals,
                        const AstList *block, AstNode *const *expr)
{
    AstKind kind = kw.kind == TK_FN ? AST_FN : kw.kind == TK_LOSS ? AST_LOSS
                 : kw.kind == TK_METRIC ? AST_METRIC : kw.kind == TK_LAYER ? AST_LAYER
                 : kw.kind == TK_OPTIMIZER ? AST_OPTIMIZER : AST_MODEL;
    AstNode *n = parse_new(ps, kind, kw.off);
    parse_set_name(ps, n, name);
    n->params = formals;
    if (block)
        n->body = *block;
    if (expr)
        n->rhs = *expr;
    return n;
}

AstNode *parse_data(ParseState *ps, Token kw, AstList names, AstNode *value)
{
    AstNode *n = parse_new(ps, AST_DATA, kw.off);
    n->names = names;
    n->rhs = value;
    return n;
}

AstNode *parse_train(ParseState *ps, Token kw, Token model, AstList block)
{
    AstNode *n = parse_new(ps, AST_TRAIN, kw.off);
    parse_set_name(ps, n, model);
    n->body = block;
    return n;
}

AstNode *parse_formal(ParseState *ps, Token name, AstList shape, AstNode *def)
{
    AstNode *n = parse_new(ps, AST_FORMAL, name.off);
    parse_set_name(ps, n, name);
    n->shape = shape;
    n->rhs = def;
    return n;
}

AstNode *parse_assign(ParseState *ps, Token target, Token op, AstNode *value)
{
    AstNode *n = parse_new(ps, AST_ASSIGN, target.off);
    parse_set_name(ps, n, target);
    n->op = op.kind;
    n->rhs = value;
    return n;
}

AstNode *parse_var(ParseState *ps, AstKind kind, Token kw, Token name, AstList shape,
                   AstNode *value)
{
    (void)kw;
    AstNode *n = parse_new(ps, kind, name.off);
    parse_set_name(ps, n, name);
    n->shape = shape;
    n->rhs = value;
    return n;
}

AstNode *parse_return(ParseState *ps, Token kw, AstNode *value)
{
    AstNode *n = parse_new(ps, AST_RETURN, kw.off);
    n->rhs = value;
    return n;
}

/* ---- syntax errors ---- */

static bool parse_is_linebreak(ParseState *ps, Token t)
{
    return t.kind == TK_NEWLINE && ps->src->text[t.off] != ';';
}

/* "identifier 'foo'", "number '3'", "'('", "end of line" … */
static const char *parse_describe(ParseState *ps, Token t)
{
    Arena *a = ps->arena;
    const char *s = ps->src->text + t.off;
    int n = t.len > 40 ? 40 : (int)t.len;
    const char *more = t.len > 40 ? "…" : "";
    switch (t.kind) {
    case TK_EOF:
        return "end of file";
    case TK_NEWLINE:
        if (t.len == 0 || t.off >= ps->src->len) /* the one the feeder adds at the end */
            return "end of file";
        return parse_is_linebreak(ps, t) ? "end of line" : "';'";
    case TK_IDENT:
        return arena_printf(a, "identifier '%.*s%s'", n, s, more);
    case TK_INT:
    case TK_FLOAT:
        return arena_printf(a, "number '%.*s%s'", n, s, more);
    case TK_STRING:
        return arena_printf(a, "string %.*s%s", n, s, more);
    default:
        return arena_printf(a, "'%.*s'", n, s);
    }
}

static int parse_closer(int open)
{
    return open == TK_LPAREN ? TK_RPAREN : open == TK_LBRACKET ? TK_RBRACKET : TK_RBRACE;
}

static const int expr_start[] = {TK_IDENT, TK_INT, TK_FLOAT, TK_STRING, TK_TRUE, TK_FALSE,
                                 TK_LPAREN, TK_LBRACKET, TK_MINUS, TK_PLUS};
static const int binary_ops[] = {TK_EQ, TK_NE, TK_LT, TK_LE, TK_GT, TK_GE, TK_PLUS,
                                 TK_MINUS, TK_STAR, TK_SLASH, TK_AT, TK_CARET};
static const int decl_words[] = {TK_IMPORT, TK_FN, TK_LOSS, TK_METRIC, TK_LAYER,
                                 TK_OPTIMIZER, TK_MODEL, TK_DATA, TK_TRAIN};

static bool parse_take_group(bool *set, const int *group, int n, bool need_all)
{
    bool all = true, any = false;
    for (int i = 0; i < n; i++) {
        all &= set[group[i]];
        any |= set[group[i]];
    }
    if (need_all ? !all : !any)
        return false;
    for (int i = 0; i < n; i++)
        set[group[i]] = false;
    return true;
}

/* Words the expected set: "an expression", "a new line", "')'" … joined with commas/"or". */
static const char *parse_expected(ParseState *ps)
{
    int ntok = parse_token_count();
    bool set[256] = {0};
    for (int k = 0; k < ntok && k < 256; k++)
        set[k] = parse_accepts(ps, k);
    const char *items[16];
    int n = 0;
    if (parse_take_group(set, decl_words, NNL_COUNTOF(decl_words), true)) {
        items[n++] = "a declaration (fn, loss, metric, layer, optimizer, model, data, train, "
                     "import)";
        set[TK_EOF] = false;
    }
    if (set[TK_IDENT] && set[TK_PARAM] && set[TK_RETURN]) {
        items[n++] = "a statement";
        set[TK_IDENT] = set[TK_PARAM] = set[TK_STATE] = set[TK_RETURN] = false;
    }
    if (parse_take_group(set, expr_start, NNL_COUNTOF(expr_start), true))
        items[n++] = "an expression";
    bool ops = parse_take_group(set, binary_ops, NNL_COUNTOF(binary_ops), false);
    if (ops)
        set[TK_LPAREN] = false; /* a call after a name: not worth listing */
    if (set[TK_NEWLINE]) {
        items[n++] = "a new line or ';'";
        set[TK_NEWLINE] = false;
    }
    for (int k = 1; k < ntok && k < 256 && n < 12; k++) {
        if (!set[k])
            continue;
        const char *name = lex_token_name(k);
        items[n++] = name;
    }
    if (set[TK_EOF] && n < 12)
        items[n++] = "end of file";
    if (ops && n < 12)
        items[n++] = "an operator";
    if (n == 0)
        return "something else";
    StrBuf b = {0};
    for (int i = 0; i < n; i++) {
        if (i > 0)
            sb_puts(&b, i == n - 1 ? " or " : ", ");
        sb_puts(&b, items[i]);
    }
    const char *r = arena_strndup(ps->arena, b.data, b.len);
    sb_free(&b);
    return r;
}

static bool parse_is_decl_word(int kind)
{
    for (size_t i = 0; i < NNL_COUNTOF(decl_words); i++)
        if (decl_words[i] == kind)
            return true;
    return false;
}

static bool parse_is_comparison(int kind)
{
    switch (kind) {
    case TK_EQ: case TK_NE: case TK_LT: case TK_LE: case TK_GT: case TK_GE:
        return true;
    default:
        return false;
    }
}

void parse_syntax_error(ParseState *ps, void *parser, int major, Token tok)
{
    (void)parser;
    if (ps->abort)
        return;
    tok.kind = major;
    const char *found = parse_describe(ps, tok);
    /* An operand that could go on with '+' but not with a comparison ends `a < b`. */
    if (parse_is_comparison(major) && parse_accepts(ps, TK_PLUS)) {
        diag_error(ps->nnl, ps->src, tok.off,
                   "comparisons cannot be chained (found %s after a comparison); to require "
                   "both, write (a < b) * (b < c)", found);
        return;
    }
    Token open;
    if (parse_innermost_open(ps, &open)) {
        int closer = parse_closer(open.kind);
        /* Inside ( ) or [ ] a missing closer is the likely mistake, unless a ',' has just
         * said that the list goes on; inside { } only when the file ends or a new
         * declaration starts. */
        bool likely = (open.kind != TK_LBRACE && parse_snapshot_top(ps) != TK_COMMA) ||
                      major == TK_EOF || parse_is_decl_word(major);
        if (likely && parse_accepts(ps, closer)) {
            diag_error(ps->nnl, ps->src, tok.off, "expected %s to close '%c' at %s, found %s",
                       lex_token_name(closer), ps->src->text[open.off],
                       diag_at(ps->nnl, ps->src, open.off), found);
            return;
        }
    }
    diag_error(ps->nnl, ps->src, tok.off, "expected %s, found %s", parse_expected(ps),
               found);
}

/* ---- the token feeder ---- */

static bool parse_ends_statement(int kind)
{
    switch (kind) {
    case TK_IDENT: case TK_INT: case TK_FLOAT: case TK_STRING: case TK_TRUE: case TK_FALSE:
    case TK_RPAREN: case TK_RBRACKET: case TK_RBRACE:
        return true;
    default:
        return false;
    }
}

static bool parse_at_statement_start(int last)
{
    return last == TK_EOF || last == TK_NEWLINE || last == TK_LBRACE;
}

/* Reserved words everywhere; contextual keywords by position and the next token. */
static int parse_keyword(ParseState *ps, void *parser, Token t, int last, Token next)
{
    bool reserved;
    int kind = lex_keyword(ps->src->text + t.off, t.len, &reserved);
    if (reserved)
        return kind;
    if (!parse_at_statement_start(last))
        return TK_IDENT;
    Token open;
    parse_snapshot(parser, ps);
    bool top = !parse_innermost_open(ps, &open);
    if (kind == TK_IMPORT)
        return next.kind == TK_STRING || top ? TK_IMPORT : TK_IDENT;
    if (kind != TK_IDENT)
        return next.kind == TK_IDENT || (top && parse_is_decl_word(kind)) ? kind : TK_IDENT;
    return TK_IDENT;
}

/* Whether a TK_NEWLINE from the lexer reaches the parser. */
static bool parse_newline_counts(ParseState *ps, void *parser, Token t, int last)
{
    if (last == TK_EOF || last == TK_NEWLINE || last == TK_LBRACE)
        return false;
    if (!parse_is_linebreak(ps, t))
        return true;
    if (!parse_ends_statement(last))
        return false;
    Token open;
    parse_snapshot(parser, ps);
    return !parse_innermost_open(ps, &open) || open.kind == TK_LBRACE;
}

static bool parse_feed(ParseState *ps, void *parser, Token t)
{
    if (parse_stack_depth(parser) >= NNL_MAX_PARSE_DEPTH) {
        diag_error(ps->nnl, ps->src, t.off,
                   "program is nested too deeply here (the parser's limit is %d levels)",
                   NNL_MAX_PARSE_DEPTH);
        ps->abort = true;
        return false;
    }
    if (ps->hook)
        ps->hook(ps->hook_user, ps->src, t);
    parse_snapshot(parser, ps);
    nnlParse(parser, t.kind, t);
    if (t.kind == TK_NEWLINE)
        parse_statement_boundary(parser);
    return !ps->abort && !diag_stopped(ps->nnl);
}

/* `key = value` lines given on the command line, parsed as the body of a train block:
 * the parser is fed `train _ {` before the text and `}` after it. */
AstNode *parse_train_body(Nnl *nnl, Source *src)
{
    ParseState ps = {.nnl = nnl, .src = src, .arena = &nnl->arena};
    ps.program = ast_new(ps.arena, AST_PROGRAM, src, 0);
    if (!lex_check_encoding(nnl, src))
        return NULL;
    void *parser = nnlParseAlloc(nnl_malloc, &ps);
    static const int prologue[] = {TK_TRAIN, TK_IDENT, TK_LBRACE};
    bool good = true;
    for (size_t i = 0; i < NNL_COUNTOF(prologue) && good; i++)
        good = parse_feed(&ps, parser, (Token){prologue[i], 0, 0});
    Lexer lx;
    lex_init(&lx, nnl, src);
    int last = TK_LBRACE;
    for (Token t = lex_next(&lx); good && t.kind != TK_EOF; t = lex_next(&lx)) {
        if (t.kind == TK_NEWLINE && !parse_newline_counts(&ps, parser, t, last))
            continue;
        if (t.kind == TK_IDENT)
            t.kind = parse_keyword(&ps, parser, t, last, (Token){TK_ASSIGN, 0, 0});
        good = parse_feed(&ps, parser, t);
        last = t.kind;
    }
    static const int epilogue[] = {TK_NEWLINE, TK_RBRACE, TK_NEWLINE, TK_EOF};
    for (size_t i = 0; i < NNL_COUNTOF(epilogue) && good; i++)
        good = parse_feed(&ps, parser, (Token){epilogue[i], src->len, 0});
    nnlParseFree(parser, nnl_dealloc);
    nnl_dealloc(ps.snap);
    if (ps.program->body.len != 1 || ps.program->body.items[0]->kind != AST_TRAIN)
        return NULL;
    return ps.program->body.items[0];
}

AstNode *parse_source(Nnl *nnl, Source *src, ParseTokenHook hook, void *user)
{
    ParseState ps = {.nnl = nnl, .src = src, .arena = &nnl->arena, .hook = hook,
                     .hook_user = user};
    ps.program = ast_new(ps.arena, AST_PROGRAM, src, 0);
    if (!lex_check_encoding(nnl, src))
        return ps.program;
    void *parser = nnlParseAlloc(nnl_malloc, &ps);
#ifndef NDEBUG
    if (getenv("NNL_PARSER_TRACE")) /* debug builds: Lemon's trace of every action */
        nnlParseTrace(stderr, "parser> ");
#endif
    Lexer lx;
    lex_init(&lx, nnl, src);
    Token t = lex_next(&lx);
    int last = TK_EOF; /* nothing fed yet */
    uint32_t last_end = 0;
    for (;;) {
        if (t.kind == TK_EOF)
            t.off = last_end; /* errors at the end point just past the last token */
        if (t.kind == TK_NEWLINE && !parse_newline_counts(&ps, parser, t, last)) {
            t = lex_next(&lx);
            continue;
        }
        /* The token after is read early only where a keyword depends on it, so that the
         * lexer's messages come in order with the parser's. */
        bool ahead = t.kind == TK_IDENT && parse_at_statement_start(last);
        Token next = ahead ? lex_next(&lx) : t;
        if (t.kind == TK_IDENT)
            t.kind = parse_keyword(&ps, parser, t, last, next);
        if (t.kind == TK_EOF && parse_ends_statement(last)) {
            Token nl = {TK_NEWLINE, t.off, 0};
            if (!parse_feed(&ps, parser, nl))
                break;
        }
        if (!parse_feed(&ps, parser, t) || t.kind == TK_EOF)
            break;
        last = t.kind;
        if (t.kind != TK_NEWLINE)
            last_end = t.off + t.len;
        t = ahead ? next : lex_next(&lx);
    }
    nnlParseFree(parser, nnl_dealloc);
    nnl_dealloc(ps.snap);
    return ps.program;
}
