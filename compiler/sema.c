/* sema.c — names: every name defined before use, calls with the right arguments, no
 * duplicate or clashing definitions, each statement where its declaration allows it.
 *
 * Shapes and values are checked by lower.c, which evaluates what a train declaration uses;
 * this pass looks at everything, used or not, so that a typo anywhere is reported.
 */
#include <stdlib.h>
#include <string.h>

#include "nnlc_int.h"
#include "parser.h"

static const BuiltinInfo builtins[BI_COUNT] = {
#define BUILTIN(id, name, least, most, ...) [BI_##id] = {name, least, most, {__VA_ARGS__}},
#define VALUE(id, name)
#include "builtins.def"
#undef BUILTIN
#undef VALUE
};

static const char *const builtin_values[BV_COUNT] = {
#define BUILTIN(id, ...)
#define VALUE(id, name) [BV_##id] = name,
#include "builtins.def"
#undef BUILTIN
#undef VALUE
};

const char *const sema_train_keys[] = {
#define RUN_KEY(id, name, ...) name,
#define MODEL_KEY(id, name, ...) name,
#include "train_keys.def"
#undef RUN_KEY
#undef MODEL_KEY
    NULL,
};

/* The ops of ops.def that scripts call as functions (FN SCRIPT), each of one tensor. */
static const BuiltinInfo op_builtins[OP_COUNT] = {
#define OP(name, text, arity, cls, kernel, memory, fn, how) [OP_##name] = {text, 1, 1, {"x"}},
#include "ops.def"
#undef OP
};

Builtin sema_builtin(const char *name)
{
    for (int i = 1; i < BI_COUNT; i++)
        if (strcmp(builtins[i].name, name) == 0)
            return (Builtin)i;
    Op op = ir_op_function(name);
    return op == OP_COUNT ? BI_NONE : (Builtin)(BI_OP + op);
}

const BuiltinInfo *sema_builtin_info(Builtin b)
{
    return b >= BI_OP ? &op_builtins[b - BI_OP] : &builtins[b];
}

BuiltinValue sema_builtin_value(const char *name)
{
    for (int i = 1; i < BV_COUNT; i++)
        if (strcmp(builtin_values[i], name) == 0)
            return (BuiltinValue)i;
    return BV_NONE;
}

/* ---- suggestions ---- */

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    int row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int sub = prev + (a[i - 1] != b[j - 1]);
            int del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}

const char *sema_suggest(const char *name, const char *const *candidates, int n)
{
    const char *best = NULL;
    int best_d = (int)strlen(name) / 3 + 1;
    if (best_d > 3)
        best_d = 3;
    for (int i = 0; i < n; i++) {
        if (!candidates[i])
            continue;
        int d = edit_distance(name, candidates[i]);
        if (d <= best_d && (!best || d < best_d)) {
            best = candidates[i];
            best_d = d;
        }
    }
    return best;
}

/* ---- globals ---- */

AstNode *sema_lookup(Nnl *nnl, const char *name)
{
    for (int i = 0; i < nnl->nglobals; i++)
        if (strcmp(nnl->global_names[i], name) == 0)
            return nnl->globals[i];
    return NULL;
}

static const char *decl_kind_word(AstKind k)
{
    return ast_kind_name(k);
}

static void sema_define_global(Nnl *nnl, const char *name, AstNode *decl, uint32_t off)
{
    AstNode *prev = sema_lookup(nnl, name);
    if (prev) {
        Source *src = decl->src;
        if (prev->src->is_stdlib && !src->is_stdlib)
            diag_error(nnl, src, off,
                       "'%s' is already defined by the standard library (%s, %s:%s); "
                       "choose another name",
                       name, decl_kind_word(prev->kind), prev->src->path,
                       diag_at(nnl, prev->src, prev->off));
        else
            diag_error(nnl, src, off, "'%s' is defined twice: first as a %s at %s:%s", name,
                       decl_kind_word(prev->kind), prev->src->path,
                       diag_at(nnl, prev->src, prev->off));
        return;
    }
    if (sema_builtin(name) || sema_builtin_value(name)) {
        diag_error(nnl, decl->src, off, "'%s' is a built-in name and cannot be redefined",
                   name);
        return;
    }
    nnl->globals = nnl_realloc(nnl->globals, sizeof(AstNode *) * (size_t)(nnl->nglobals + 1));
    nnl->global_names =
        nnl_realloc(nnl->global_names, sizeof(char *) * (size_t)(nnl->nglobals + 1));
    nnl->globals[nnl->nglobals] = decl;
    nnl->global_names[nnl->nglobals++] = name;
}

/* The name after a declaration's keyword ("train NAME"), for messages about the name. */
static uint32_t decl_name_off(const AstNode *d)
{
    uint32_t off = d->off;
    const char *t = d->src->text;
    while (off < d->src->len && t[off] != ' ' && t[off] != '\t')
        off++;
    while (off < d->src->len && (t[off] == ' ' || t[off] == '\t'))
        off++;
    return off;
}

/* The keyword before a statement's name ("param W"), for messages about the keyword. */
static uint32_t stmt_keyword_off(const AstNode *s)
{
    uint32_t off = s->off;
    const char *t = s->src->text;
    while (off > 0 && (t[off - 1] == ' ' || t[off - 1] == '\t'))
        off--;
    while (off > 0 && t[off - 1] >= 'a' && t[off - 1] <= 'z')
        off--;
    return off;
}

static void sema_collect_globals(Nnl *nnl, AstNode *prog)
{
    for (int i = 0; i < prog->body.len; i++) {
        AstNode *d = prog->body.items[i];
        switch (d->kind) {
        case AST_DATA:
            for (int j = 0; j < d->names.len; j++)
                sema_define_global(nnl, d->names.items[j]->name, d, d->names.items[j]->off);
            break;
        case AST_IMPORT:
        case AST_TRAIN:
            break;
        default:
            /* the name follows the keyword: point at it */
            sema_define_global(nnl, d->name, d, decl_name_off(d));
        }
    }
}

/* ---- local scopes ---- */

typedef struct {
    Nnl *nnl;
    AstNode *decl;        /* the declaration being checked */
    const char **names;   /* visible local names */
    int nnames, cap;
    /* A train key's value: the kinds of declaration it names (KIND_BIT), those suggested
     * first (`want`) and those it also accepts (`also`), and the word for them in a
     * message ("data set"); 0 and NULL elsewhere. */
    uint32_t want, also;
    const char *what;
} Scope;

#define KIND_BIT(k) (1u << (k))

static void scope_add(Scope *sc, const char *name)
{
    if (sc->nnames == sc->cap) {
        sc->cap = sc->cap ? sc->cap * 2 : 16;
        sc->names = nnl_realloc(sc->names, sizeof(char *) * (size_t)sc->cap);
    }
    sc->names[sc->nnames++] = name;
}

static bool scope_has(const Scope *sc, const char *name)
{
    for (int i = sc->nnames - 1; i >= 0; i--)
        if (strcmp(sc->names[i], name) == 0)
            return true;
    return false;
}

/* Every name a reference could have meant, for suggestions: with `kinds`, only the
 * declarations of those kinds; for a call, only what can be called. */
static const char **scope_candidates(const Scope *sc, uint32_t kinds, bool call, int *n)
{
    Nnl *nnl = sc->nnl;
    int cap = sc->nnames + nnl->nglobals + OP_COUNT + BI_COUNT + BV_COUNT;
    const char **c = arena_alloc(&nnl->arena, sizeof(char *) * (size_t)cap);
    int k = 0;
    if (kinds) {
        for (int i = 0; i < nnl->nglobals; i++)
            if (kinds & KIND_BIT(nnl->globals[i]->kind))
                c[k++] = nnl->global_names[i];
        *n = k;
        return c;
    }
    const uint32_t not_called =
        KIND_BIT(AST_MODEL) | KIND_BIT(AST_DATA) | KIND_BIT(AST_OPTIMIZER);
    for (int i = 0; i < sc->nnames; i++)
        c[k++] = sc->names[i];
    for (int i = 0; i < nnl->nglobals; i++)
        if (!call || !(not_called & KIND_BIT(nnl->globals[i]->kind)))
            c[k++] = nnl->global_names[i];
    for (int op = 0; op < OP_COUNT; op++)
        if (ir_op_is_function((Op)op))
            c[k++] = op_builtins[op].name;
    for (int i = 1; i < BI_COUNT; i++)
        c[k++] = builtins[i].name;
    for (int i = 1; !call && i < BV_COUNT; i++)
        c[k++] = builtin_values[i];
    *n = k;
    return c;
}

/* `what` is "name", "function" or "model"; a train key's value says what it names. */
static void sema_unknown(Scope *sc, const AstNode *at, const char *what, const char *name)
{
    if (strcmp(what, "name") == 0 && sema_builtin_value(name)) { /* param, grad */
        diag_error(sc->nnl, at->src, at->off, "'%s' is only known in an optimizer", name);
        return;
    }
    bool call = strcmp(what, "function") == 0;
    int n;
    const char *s = NULL;
    if (sc->want) { /* the kinds that fit the place first, then those it also accepts */
        what = sc->what;
        const char **cand = scope_candidates(sc, sc->want, call, &n);
        s = sema_suggest(name, cand, n);
        if (!s && sc->also) {
            cand = scope_candidates(sc, sc->also, call, &n);
            s = sema_suggest(name, cand, n);
        }
    } else {
        const char **cand = scope_candidates(sc, strcmp(what, "model") == 0 ?
                                                 KIND_BIT(AST_MODEL) : 0, call, &n);
        s = sema_suggest(name, cand, n);
    }
    if (s)
        diag_error(sc->nnl, at->src, at->off, "unknown %s '%s'; did you mean '%s'?", what, name, s);
    else
        diag_error(sc->nnl, at->src, at->off, "unknown %s '%s'", what, name);
}

static bool is_value_visible(Scope *sc, const char *name)
{
    BuiltinValue bv = sema_builtin_value(name);
    if (bv == BV_PARAM || bv == BV_GRAD)
        return sc->decl && sc->decl->kind == AST_OPTIMIZER;
    return bv || scope_has(sc, name) || sema_lookup(sc->nnl, name) || sema_builtin(name);
}

static void sema_expr(Scope *sc, AstNode *e);

/* Arguments against formals: at most as many positional as formals, named ones known
 * and given once, every formal without a default given. */
static void sema_args(Scope *sc, AstNode *call, const char *const *params, int nparams,
                      int required, const char *callee_desc, int npre)
{
    Nnl *nnl = sc->nnl;
    bool given[64] = {0};
    int npos = 0;
    for (; npos < npre && npos < 64; npos++)
        given[npos] = true;
    for (int i = 0; i < call->args.len; i++) {
        AstNode *a = call->args.items[i];
        if (!a->name) {
            if (npos >= nparams) {
                diag_error(nnl, a->src, a->off, "too many arguments to %s: it takes %d%s",
                           callee_desc, nparams - npre,
                           npre ? " besides the model's output and the target" : "");
                return;
            }
            given[npos++] = true;
            continue;
        }
        int k = -1;
        for (int j = 0; j < nparams && j < 64; j++)
            if (strcmp(params[j], a->name) == 0)
                k = j;
        if (k < 0) {
            const char *s = sema_suggest(a->name, params, nparams);
            if (s)
                diag_error(nnl, a->src, a->off, "%s has no parameter '%s'; did you mean '%s'?",
                           callee_desc, a->name, s);
            else
                diag_error(nnl, a->src, a->off, "%s has no parameter '%s'", callee_desc,
                           a->name);
        } else if (given[k]) {
            diag_error(nnl, a->src, a->off, "argument '%s' of %s is given twice", a->name,
                       callee_desc);
        } else {
            given[k] = true;
        }
    }
    for (int j = 0; j < required && j < 64; j++)
        if (!given[j]) {
            diag_error(nnl, call->src, call->off, "missing argument '%s' in the call of %s",
                       params[j], callee_desc);
            return;
        }
}

/* `npre`: leading parameters the caller supplies itself (a loss in a train block gets the
 * model's output and the target). */
static void sema_call(Scope *sc, AstNode *call, int npre)
{
    Nnl *nnl = sc->nnl;
    uint32_t want = sc->want; /* the arguments are expressions of their own */
    sc->want = 0;
    for (int i = 0; i < call->args.len; i++)
        sema_expr(sc, call->args.items[i]->rhs);
    sc->want = want;
    if (scope_has(sc, call->name))
        return; /* a function passed as an argument: checked when it is called */
    Builtin b = sema_builtin(call->name);
    if (b) {
        const BuiltinInfo *bi = sema_builtin_info(b);
        int np = 0;
        while (np < BUILTIN_MAX_ARGS && bi->params[np])
            np++;
        const char *desc = arena_printf(&nnl->arena, "'%s'", call->name);
        int npos = 0;
        for (int i = 0; i < call->args.len; i++)
            npos += !call->args.items[i]->name;
        if (call->args.len < bi->min_args) {
            diag_error(nnl, call->src, call->off, "'%s' needs %s%d argument%s, given %d",
                       call->name, bi->min_args == bi->max_args ? "" : "at least ",
                       bi->min_args, bi->min_args == 1 ? "" : "s", call->args.len);
            return;
        }
        if (npos > bi->max_args) {
            AstNode *extra = call->args.items[0];
            for (int i = 0, k = 0; i < call->args.len && k <= bi->max_args; i++)
                if (!call->args.items[i]->name && k++ == bi->max_args)
                    extra = call->args.items[i];
            diag_error(nnl, extra->src, extra->off, "'%s' takes %s%d argument%s, given %d",
                       call->name, bi->min_args == bi->max_args ? "" : "at most ",
                       bi->max_args, bi->max_args == 1 ? "" : "s", npos);
            return;
        }
        sema_args(sc, call, bi->params, np, bi->min_args, desc, 0);
        return;
    }
    AstNode *d = sema_lookup(nnl, call->name);
    if (!d) {
        sema_unknown(sc, call, "function", call->name);
        return;
    }
    if (d->kind == AST_MODEL || d->kind == AST_DATA) {
        diag_error(nnl, call->src, call->off, "'%s' is a %s, not a function", call->name,
                   ast_kind_name(d->kind));
        return;
    }
    const char *params[64];
    int np = 0, required = 0;
    for (int i = 0; i < d->params.len && i < 64; i++) {
        params[np++] = d->params.items[i]->name;
        if (!d->params.items[i]->rhs)
            required = np;
    }
    const char *desc = arena_printf(&nnl->arena, "%s '%s' (%s:%s)", ast_kind_name(d->kind),
                                    d->name, d->src->path, diag_at(nnl, d->src, d->off));
    sema_args(sc, call, params, np, required, desc, npre);
}

static void sema_expr(Scope *sc, AstNode *e)
{
    switch (e->kind) {
    case AST_NAME:
        if (!is_value_visible(sc, e->name))
            sema_unknown(sc, e, "name", e->name);
        break;
    case AST_CALL:
        sema_call(sc, e, 0);
        break;
    case AST_LIST:
        for (int i = 0; i < e->args.len; i++)
            sema_expr(sc, e->args.items[i]);
        break;
    case AST_UNARY:
        sema_expr(sc, e->lhs);
        break;
    case AST_BINARY:
        sema_expr(sc, e->lhs);
        sema_expr(sc, e->rhs);
        break;
    default:
        break;
    }
}

static void sema_stmt(Scope *sc, AstNode *s, bool last)
{
    Nnl *nnl = sc->nnl;
    AstKind dk = sc->decl->kind;
    switch (s->kind) {
    case AST_ASSIGN:
        sema_expr(sc, s->rhs);
        if (s->op != TK_ASSIGN && !is_value_visible(sc, s->name))
            sema_unknown(sc, s, "name", s->name);
        if (sema_builtin_value(s->name) && !(dk == AST_OPTIMIZER && strcmp(s->name, "param") == 0))
            diag_error(nnl, s->src, s->off, "cannot assign to the built-in '%s'", s->name);
        scope_add(sc, s->name);
        break;
    case AST_PARAM:
    case AST_STATE:
        for (int i = 0; i < s->shape.len; i++)
            sema_expr(sc, s->shape.items[i]);
        if (s->kind == AST_PARAM && dk != AST_LAYER)
            diag_error(nnl, s->src, stmt_keyword_off(s), "'param' declares a parameter and "
                       "belongs in a layer, not in a %s", ast_kind_name(dk));
        else if (s->kind == AST_STATE && dk != AST_OPTIMIZER)
            diag_error(nnl, s->src, stmt_keyword_off(s), "'state' belongs in an optimizer, "
                       "not in a %s", ast_kind_name(dk));
        else if (scope_has(sc, s->name))
            diag_error(nnl, s->src, s->off, "'%s' is already defined in this %s", s->name,
                       ast_kind_name(dk));
        {
            /* an initializer sees fan_in and fan_out; a state starts from a number */
            sema_expr(sc, s->rhs);
        }
        scope_add(sc, s->name);
        break;
    case AST_RETURN:
        sema_expr(sc, s->rhs);
        if (dk == AST_OPTIMIZER)
            diag_error(nnl, s->src, s->off, "an optimizer does not return a value: it updates "
                       "'param'");
        else if (!last)
            diag_error(nnl, s->src, s->off, "'return' must be the last statement");
        break;
    default:
        break;
    }
}

static void sema_callable(Nnl *nnl, AstNode *d)
{
    Scope sc = {.nnl = nnl, .decl = d};
    for (int i = 0; i < d->params.len; i++) {
        AstNode *f = d->params.items[i];
        for (int j = 0; j < f->shape.len; j++)
            sema_expr(&sc, f->shape.items[j]);
        if (f->shape.len && d->kind != AST_MODEL)
            diag_error(nnl, f->src, f->off, "only a model's inputs have shapes; a %s's "
                       "parameters take the shape of their arguments", ast_kind_name(d->kind));
        if (f->rhs)
            sema_expr(&sc, f->rhs);
        if (scope_has(&sc, f->name))
            diag_error(nnl, f->src, f->off, "parameter '%s' is listed twice", f->name);
        scope_add(&sc, f->name);
    }
    if (d->kind == AST_MODEL) {
        for (int i = 0; i < d->params.len; i++)
            if (!d->params.items[i]->shape.len)
                diag_error(nnl, d->params.items[i]->src, d->params.items[i]->off,
                           "model input '%s' needs a shape, as in %s[784]",
                           d->params.items[i]->name, d->params.items[i]->name);
    }
    if (d->rhs) {
        sema_expr(&sc, d->rhs);
    } else {
        for (int i = 0; i < d->body.len; i++)
            sema_stmt(&sc, d->body.items[i], i == d->body.len - 1);
        bool returns = false; /* one that is not last has been reported */
        for (int i = 0; i < d->body.len; i++)
            returns |= d->body.items[i]->kind == AST_RETURN;
        if (d->kind != AST_OPTIMIZER && !returns)
            diag_error(nnl, d->src, d->off, "%s '%s' must end with 'return'",
                       ast_kind_name(d->kind), d->name);
    }
    nnl_dealloc(sc.names);
}

/* "data, validate, loss, ...": every train key, for a message. */
static const char *sema_train_key_list(Nnl *nnl)
{
    StrBuf b = {0};
    for (int k = 0; k < NNLRT_TRAIN_KEY_COUNT; k++)
        sb_printf(&b, "%s%s", k ? ", " : "", sema_train_keys[k]);
    const char *list = arena_strndup(&nnl->arena, b.data, b.len);
    sb_free(&b);
    return list;
}

static void sema_train(Nnl *nnl, AstNode *t)
{
    AstNode *m = sema_lookup(nnl, t->name);
    if (!m || m->kind != AST_MODEL) {
        Scope sc = {.nnl = nnl, .decl = t};
        AstNode at = {.src = t->src, .off = decl_name_off(t)};
        if (m)
            diag_error(nnl, t->src, at.off, "'%s' is a %s; train needs a model", t->name,
                       ast_kind_name(m->kind));
        else
            sema_unknown(&sc, &at, "model", t->name);
    }
    Scope sc = {.nnl = nnl, .decl = t};
    for (int i = 0; i < t->body.len; i++) {
        AstNode *s = t->body.items[i];
        if (s->kind != AST_ASSIGN || s->op != TK_ASSIGN) {
            diag_error(nnl, s->src, s->off, "a train block holds only 'key = value' lines");
            continue;
        }
        int key = nnlrt_train_key(s->name);
        if (key < 0) {
            const char *sug = sema_suggest(s->name, sema_train_keys, NNLRT_TRAIN_KEY_COUNT);
            if (sug)
                diag_error(nnl, s->src, s->off, "unknown train key '%s'; did you mean '%s'?",
                           s->name, sug);
            else
                diag_error(nnl, s->src, s->off, "unknown train key '%s' (known: %s)", s->name,
                           sema_train_key_list(nnl));
        }
        for (int j = 0; j < i; j++)
            if (strcmp(t->body.items[j]->name, s->name) == 0) {
                diag_error(nnl, s->src, s->off, "train key '%s' is set twice (first at %s)",
                           s->name, diag_at(nnl, s->src, t->body.items[j]->off));
                break;
            }
        /* loss = huber(delta = 2), metrics = [accuracy]: called with (output, target) */
        NnlrtKeyKind kind = key >= 0 ? nnlrt_train_keys[key].kind : NNLRT_KEY_INT;
        bool objective = kind == NNLRT_KEY_LOSS || kind == NNLRT_KEY_METRICS;
        AstNode *v = s->rhs;
        /* an unknown name here is suggested among the declarations the key takes */
        sc.want = sc.also = 0;
        switch (kind) {
        case NNLRT_KEY_DATA:
            sc.want = KIND_BIT(AST_DATA), sc.what = "data set";
            break;
        case NNLRT_KEY_LOSS:
            sc.want = KIND_BIT(AST_LOSS), sc.also = KIND_BIT(AST_FN), sc.what = "loss";
            break;
        case NNLRT_KEY_OPTIMIZER:
            sc.want = KIND_BIT(AST_OPTIMIZER), sc.what = "optimizer";
            break;
        case NNLRT_KEY_METRICS:
            sc.want = KIND_BIT(AST_METRIC) | KIND_BIT(AST_LOSS), sc.also = KIND_BIT(AST_FN);
            sc.what = "metric";
            break;
        default:
            break;
        }
        if (objective && v->kind == AST_CALL) {
            sema_call(&sc, v, 2);
        } else if (objective && v->kind == AST_LIST) {
            for (int j = 0; j < v->args.len; j++) {
                if (v->args.items[j]->kind == AST_CALL)
                    sema_call(&sc, v->args.items[j], 2);
                else
                    sema_expr(&sc, v->args.items[j]);
            }
        } else {
            sema_expr(&sc, v);
        }
    }
}

static void sema_program(Nnl *nnl, AstNode *prog)
{
    for (int i = 0; i < prog->body.len && !diag_stopped(nnl); i++) {
        AstNode *d = prog->body.items[i];
        switch (d->kind) {
        case AST_IMPORT:
            if (d->rhs->name_len != 3 || strcmp(d->rhs->name, "std") != 0)
                diag_error(nnl, d->rhs->src, d->rhs->off,
                           "unknown module \"%s\" (only \"std\" exists, and it is always "
                           "imported)", d->rhs->name);
            break;
        case AST_DATA: {
            Scope sc = {.nnl = nnl, .decl = d};
            sema_expr(&sc, d->rhs);
            break;
        }
        case AST_TRAIN:
            sema_train(nnl, d);
            break;
        default:
            sema_callable(nnl, d);
        }
    }
}

NnlResult sema_check(Nnl *nnl)
{
    int before = nnl->nerrors;
    /* stdlib first: a user definition with a stdlib name is the user's error */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < nnl->nsources; i++)
            if (nnl->sources[i]->is_stdlib == (pass == 0) && nnl->programs[i])
                sema_collect_globals(nnl, nnl->programs[i]);
    for (int i = 0; i < nnl->nsources; i++)
        if (nnl->programs[i])
            sema_program(nnl, nnl->programs[i]);
    return nnl->nerrors != before ? NNL_EUSER : NNL_OK;
}
