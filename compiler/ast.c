/* ast.c — syntax tree nodes and their stable text dump (nnlc dump --stage=ast). */
#include <string.h>

#include "nnlc_int.h"
#include "parser.h"

AstNode *ast_new(Arena *a, AstKind kind, Source *src, uint32_t off)
{
    AstNode *n = arena_alloc(a, sizeof *n);
    n->kind = kind;
    n->src = src;
    n->off = off;
    return n;
}

/* Lists grow inside the arena: a failed parse leaves nothing to free. */
void ast_push(Arena *a, AstList *list, AstNode *node)
{
    if (!node)
        return;
    if (list->len == list->cap) {
        int cap = list->cap ? list->cap * 2 : 4;
        AstNode **items = arena_alloc(a, sizeof(AstNode *) * (size_t)cap);
        if (list->len)
            memcpy(items, list->items, sizeof(AstNode *) * (size_t)list->len);
        list->items = items;
        list->cap = cap;
    }
    list->items[list->len++] = node;
}

const char *ast_kind_name(AstKind kind)
{
    static const char *const names[] = {
        [AST_INT] = "int", [AST_FLOAT] = "float", [AST_STRING] = "string",
        [AST_BOOL] = "bool", [AST_NAME] = "name", [AST_CALL] = "call", [AST_LIST] = "list",
        [AST_UNARY] = "unary", [AST_BINARY] = "binary", [AST_ARG] = "arg",
        [AST_ASSIGN] = "assign", [AST_PARAM] = "param", [AST_STATE] = "state",
        [AST_RETURN] = "return", [AST_IMPORT] = "import", [AST_FN] = "fn",
        [AST_LOSS] = "loss", [AST_METRIC] = "metric", [AST_LAYER] = "layer",
        [AST_OPTIMIZER] = "optimizer", [AST_MODEL] = "model", [AST_DATA] = "data",
        [AST_TRAIN] = "train", [AST_FORMAL] = "formal", [AST_PROGRAM] = "program",
    };
    return names[kind];
}

/* An operator's spelling: "+", "+=" … */
static const char *ast_op_text(int op)
{
    const char *text = lex_token_text(op);
    return text ? text : "?";
}

/* A string literal's value, escaped back so that the dump is one line of ASCII. */
static void ast_put_string(StrBuf *out, const char *s, uint32_t n)
{
    sb_putc(out, '"');
    for (uint32_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\n': sb_puts(out, "\\n"); break;
        case '\t': sb_puts(out, "\\t"); break;
        case '\r': sb_puts(out, "\\r"); break;
        case '\0': sb_puts(out, "\\0"); break;
        case '\\': sb_puts(out, "\\\\"); break;
        case '"': sb_puts(out, "\\\""); break;
        default: sb_putc(out, (char)c);
        }
    }
    sb_putc(out, '"');
}

static void ast_dump_list(StrBuf *out, Nnl *nnl, const char *label, const AstList *l,
                          int indent)
{
    if (!l->len)
        return;
    sb_printf(out, "%*s%s:\n", indent, "", label);
    for (int i = 0; i < l->len; i++)
        ast_dump(out, nnl, l->items[i], indent + 2);
}

static void ast_dump_child(StrBuf *out, Nnl *nnl, const char *label, const AstNode *n,
                           int indent)
{
    if (!n)
        return;
    sb_printf(out, "%*s%s:\n", indent, "", label);
    ast_dump(out, nnl, n, indent + 2);
}

/* One line per node: kind, its own data, and its position; children indented below. */
void ast_dump(StrBuf *out, Nnl *nnl, const AstNode *n, int indent)
{
    LineCol lc = source_linecol(n->src, n->off);
    sb_printf(out, "%*s%s", indent, "", ast_kind_name(n->kind));
    switch (n->kind) {
    case AST_INT: sb_printf(out, " %lld", (long long)n->ival); break;
    case AST_FLOAT: sb_printf(out, " %.17g", n->fval); break;
    case AST_BOOL: sb_puts(out, n->ival ? " true" : " false"); break;
    case AST_STRING: sb_putc(out, ' '); ast_put_string(out, n->name, n->name_len); break;
    case AST_UNARY:
    case AST_BINARY: sb_printf(out, " %s", ast_op_text(n->op)); break;
    case AST_ASSIGN: sb_printf(out, " %s %s", n->name, ast_op_text(n->op)); break;
    case AST_PROGRAM: sb_printf(out, " %s", n->src->path); break;
    default:
        if (n->name)
            sb_printf(out, " %s", n->name);
    }
    if (n->kind != AST_PROGRAM)
        sb_printf(out, " @%u:%u", lc.line, lc.col);
    sb_putc(out, '\n');
    int in = indent + 2;
    switch (n->kind) {
    case AST_UNARY:
        ast_dump(out, nnl, n->lhs, in);
        break;
    case AST_BINARY:
        ast_dump(out, nnl, n->lhs, in);
        ast_dump(out, nnl, n->rhs, in);
        break;
    case AST_CALL:
    case AST_LIST:
        for (int i = 0; i < n->args.len; i++)
            ast_dump(out, nnl, n->args.items[i], in);
        break;
    case AST_DATA:
        ast_dump_list(out, nnl, "names", &n->names, in);
        ast_dump_child(out, nnl, "value", n->rhs, in);
        break;
    case AST_FORMAL:
    case AST_PARAM:
    case AST_STATE:
        ast_dump_list(out, nnl, "shape", &n->shape, in);
        ast_dump_child(out, nnl, n->kind == AST_FORMAL ? "default" : "init", n->rhs, in);
        break;
    case AST_PROGRAM:
        for (int i = 0; i < n->body.len; i++)
            ast_dump(out, nnl, n->body.items[i], in);
        break;
    default:
        ast_dump_list(out, nnl, "params", &n->params, in);
        if (n->kind == AST_ARG || n->kind == AST_ASSIGN || n->kind == AST_RETURN ||
            n->kind == AST_IMPORT)
            ast_dump(out, nnl, n->rhs, in);
        else
            ast_dump_child(out, nnl, "value", n->rhs, in);
        ast_dump_list(out, nnl, "body", &n->body, in);
    }
}
