/* lower.c — evaluates what a train declaration uses into the tensor graph.
 *
 * Lowering is abstract interpretation: numbers fold at compile time, tensors become graph
 * nodes, functions and layers are inlined at each call. Shapes are checked here, where the
 * source of every operand is known, so messages name both shapes and where each came from.
 * Every fn, loss, metric and layer is scoped lexically: its body sees its parameters and
 * the global declarations, never its caller's variables.
 */
#include <math.h>
#include <string.h>

#include "nnlc_int.h"
#include "parser.h"

/* ---- values, scopes and messages ---- */

Val val_tensor(IrNode *t, const AstNode *at)
{
    if (!t->src && at) {
        t->src = at->src;
        t->off = at->off;
    }
    return (Val){.kind = V_TENSOR, .t = t, .src = at ? at->src : NULL, .off = at ? at->off : 0};
}

void env_bind(Env *e, const char *name, Val v)
{
    for (int i = e->n - 1; i >= 0; i--)
        if (strcmp(e->names[i], name) == 0) {
            e->vals[i] = v;
            return;
        }
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->names = nnl_realloc(e->names, sizeof(char *) * (size_t)e->cap);
        e->vals = nnl_realloc(e->vals, sizeof(Val) * (size_t)e->cap);
    }
    e->names[e->n] = name;
    e->vals[e->n++] = v;
}

Val *env_find(Env *e, const char *name)
{
    for (int i = e->n - 1; i >= 0; i--)
        if (strcmp(e->names[i], name) == 0)
            return &e->vals[i];
    return NULL;
}

void env_free(Env *e)
{
    nnl_dealloc(e->names);
    nnl_dealloc(e->vals);
}

void lower_error(Lower *L, const AstNode *at, const char *fmt, ...)
{
    /* an error inside the standard library: where the user's script called into it */
    const AstNode *site = NULL;
    for (int i = L->depth - 1; at->src && at->src->is_stdlib && i >= 0 && !site; i--) {
        const AstNode *c = L->calls[i];
        if (c && c->src && !c->src->is_stdlib)
            site = c;
    }
    va_list ap;
    va_start(ap, fmt);
    L->nnl->diag_context = site;
    diag_verror(L->nnl, NNL_SEV_ERROR, at->src, at->off, fmt, ap);
    L->nnl->diag_context = NULL;
    va_end(ap);
    if (site)
        diag_note(L->nnl, site->src, site->off, "in this %s of '%s'",
                  site->kind == AST_CALL ? "call" : "use", site->name);
}

const char *val_desc(Lower *L, Val v)
{
    Arena *a = &L->nnl->arena;
    switch (v.kind) {
    case V_NUM: return arena_printf(a, "the number %g", v.num);
    case V_STR: return "a string";
    case V_LIST: return "a list";
    case V_FUNC: return arena_printf(a, "%s '%s'", ast_kind_name(v.decl->kind), v.decl->name);
    case V_BUILTIN: return arena_printf(a, "the built-in '%s'", sema_builtin_info(v.builtin)->name);
    case V_TENSOR: return arena_printf(a, "a tensor %s", shape_str(a, &v.t->shape));
    case V_DATA: return "a data set";
    case V_ALL: return "'all'";
    default: return "nothing";
    }
}

/* "[B, 3] (from h at model.nnl:4:5)" */
const char *val_origin(Lower *L, Val v)
{
    Arena *a = &L->nnl->arena;
    const char *sh = v.kind == V_TENSOR ? shape_str(a, &v.t->shape) : val_desc(L, v);
    if (!v.src)
        return sh;
    return arena_printf(a, "%s (from %s:%s)", sh, v.src->path, diag_at(L->nnl, v.src, v.off));
}

IrNode *val_node(Lower *L, Val v)
{
    return v.kind == V_TENSOR ? v.t : ir_const(L->p, v.num);
}

/* ---- values of names ---- */

Val lower_builtin_value(Lower *L, AstNode *at, BuiltinValue bv)
{
    switch (bv) {
    case BV_PI:
        return val_num(M_PI, at);
    case BV_EPOCHS:
        L->spec->uses_epochs = true;
        return val_num((double)L->spec->config.epochs, at);
    case BV_EPOCH:
    case BV_STEP:
        if (L->mode == MODE_OPT || L->mode == MODE_GLOBAL)
            return val_tensor(ir_var(L->p, bv == BV_EPOCH ? VAR_EPOCH : VAR_STEP), at);
        lower_error(L, at, "'%s' is only known to an optimizer and its hyper-parameters, not in a "
                    "model, loss or metric", at->name);
        return val_err();
    case BV_FAN_IN:
    case BV_FAN_OUT:
        if (L->mode == MODE_INIT)
            return val_num(bv == BV_FAN_IN ? L->fan_in : L->fan_out, at);
        lower_error(L, at, "'%s' is only known in a parameter's initializer", at->name);
        return val_err();
    case BV_PARAM:
    case BV_GRAD:
        if (L->mode == MODE_OPT)
            return val_tensor(bv == BV_PARAM ? L->param_arena : L->grad_arena, at);
        lower_error(L, at, "'%s' is only known in an optimizer", at->name);
        return val_err();
    case BV_ALL:
        return (Val){.kind = V_ALL, .src = at->src, .off = at->off};
    default:
        return val_err();
    }
}

static Val lower_name(Lower *L, Env *e, AstNode *x)
{
    Val *v = env_find(e, x->name);
    if (v)
        return *v;
    BuiltinValue bv = sema_builtin_value(x->name);
    if (bv)
        return lower_builtin_value(L, x, bv);
    AstNode *d = sema_lookup(L->nnl, x->name);
    if (d && d->kind == AST_DATA)
        return lower_data_decl(L, d, x->name);
    if (d && d->kind != AST_MODEL)
        return (Val){.kind = V_FUNC, .decl = d, .src = x->src, .off = x->off};
    Builtin b = sema_builtin(x->name);
    if (b)
        return (Val){.kind = V_BUILTIN, .builtin = b, .src = x->src, .off = x->off};
    if (d)
        lower_error(L, x, "model '%s' cannot be used as a value", x->name);
    else
        lower_error(L, x, "unknown name '%s'", x->name);
    return val_err();
}

/* ---- arithmetic ---- */

Op lower_token_op(int tk)
{
    switch (tk) {
    case TK_PLUS: case TK_PLUSEQ: return OP_ADD;
    case TK_MINUS: case TK_MINUSEQ: return OP_SUB;
    case TK_STAR: case TK_STAREQ: return OP_MUL;
    case TK_SLASH: case TK_SLASHEQ: return OP_DIV;
    case TK_CARET: return OP_POW;
    case TK_EQ: return OP_EQ;
    case TK_NE: return OP_NE;
    case TK_LT: return OP_LT;
    case TK_LE: return OP_LE;
    case TK_GT: return OP_GT;
    default: return OP_GE;
    }
}

static Val lower_matmul(Lower *L, AstNode *at, Val a, Val b)
{
    if (a.kind != V_TENSOR || b.kind != V_TENSOR) {
        lower_error(L, at, "'@' multiplies tensors, not %s",
                    val_desc(L, a.kind != V_TENSOR ? a : b));
        return val_err();
    }
    const Shape *sa = &a.t->shape, *sb = &b.t->shape;
    if (sb->batched || sb->rank != 2 || sa->rank > 2 || sa->rank < 1 ||
        (sa->batched && sa->rank != 1)) {
        lower_error(L, at, "'@' needs a vector or matrix on the left and a parameter matrix on the "
                    "right; found %s @ %s", val_origin(L, a), val_origin(L, b));
        return val_err();
    }
    int64_t k = sa->dim[sa->rank - 1];
    if (k != sb->dim[0]) {
        lower_error(L, at, "cannot multiply %s @ %s: the inner sizes %lld and %lld differ",
                    val_origin(L, a), val_origin(L, b), (long long)k, (long long)sb->dim[0]);
        return val_err();
    }
    return val_tensor(ir_matmul(L->p, a.t, b.t, false, false), at);
}

/* A list in arithmetic works item by item: epoch >= [30, 80] is [epoch >= 30, epoch >= 80]. */
static Val lower_binary_list(Lower *L, AstNode *at, Op op, Val a, Val b)
{
    int n = a.kind == V_LIST ? a.n : b.n;
    if (a.kind == V_LIST && b.kind == V_LIST && a.n != b.n) {
        lower_error(L, at, "lists of different lengths (%d and %d)", a.n, b.n);
        return val_err();
    }
    Val r = {.kind = V_LIST, .n = n, .src = at->src, .off = at->off};
    r.items = arena_alloc(&L->nnl->arena, sizeof(Val) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        r.items[i] = lower_binary(L, at, op, a.kind == V_LIST ? a.items[i] : a,
                                  b.kind == V_LIST ? b.items[i] : b);
        if (!val_ok(r.items[i]))
            return val_err();
    }
    return r;
}

Val lower_binary(Lower *L, AstNode *at, Op op, Val a, Val b)
{
    if (!val_ok(a) || !val_ok(b))
        return val_err();
    if (a.kind == V_LIST || b.kind == V_LIST)
        return lower_binary_list(L, at, op, a, b);
    if (!val_is_numeric(a) || !val_is_numeric(b)) {
        lower_error(L, at, "'%s' needs numbers or tensors, not %s", ir_op_name(op),
                    val_desc(L, !val_is_numeric(a) ? a : b));
        return val_err();
    }
    if (a.kind == V_NUM && b.kind == V_NUM)
        return val_num(ir_fold_binary(op, a.num, b.num), at);
    IrNode *na = val_node(L, a), *nb = val_node(L, b);
    Shape s;
    if (!shape_broadcast(&na->shape, &nb->shape, &s)) {
        lower_error(L, at, "shapes do not match: %s and %s", val_origin(L, a), val_origin(L, b));
        return val_err();
    }
    IrNode *r = ir_binary(L->p, op, na, nb);
    if (r->op == OP_CONST)
        return val_num(r->value, at);
    return val_tensor(r, at);
}

Val lower_unary_op(Lower *L, AstNode *at, Op op, Val a)
{
    if (!val_ok(a))
        return val_err();
    if (!val_is_numeric(a)) {
        lower_error(L, at, "'%s' needs a number or a tensor, not %s", ir_op_name(op),
                    val_desc(L, a));
        return val_err();
    }
    if (a.kind == V_NUM)
        return val_num(ir_fold_unary(op, a.num), at);
    IrNode *r = ir_unary(L->p, op, val_node(L, a));
    return r->op == OP_CONST ? val_num(r->value, at) : val_tensor(r, at);
}

/* ---- checks of values, with a message ---- */

bool lower_want_tensor(Lower *L, AstNode *at, Val v, const char *what)
{
    if (v.kind == V_TENSOR)
        return true;
    lower_error(L, at, "%s needs a tensor, not %s", what, val_desc(L, v));
    return false;
}

bool lower_want_int(Lower *L, AstNode *at, Val v, const char *what, int64_t lo, int64_t *out)
{
    if (v.kind != V_NUM || v.num != floor(v.num) || v.num < (double)lo || v.num > 1e15) {
        lower_error(L, at, "%s must be a whole number of at least %lld, not %s", what,
                    (long long)lo, val_desc(L, v));
        return false;
    }
    *out = (int64_t)v.num;
    return true;
}

bool lower_want_str(Lower *L, AstNode *at, Val v, const char *what)
{
    if (v.kind == V_STR)
        return true;
    lower_error(L, at, "%s must be a string, not %s", what, val_desc(L, v));
    return false;
}

/* ---- expressions ---- */

static Val lower_call(Lower *L, Env *e, AstNode *call)
{
    Val *local = env_find(e, call->name);
    if (local) {
        if (local->kind == V_FUNC)
            return lower_call_decl(L, local->decl, call, e, NULL, 0);
        if (local->kind == V_BUILTIN)
            return lower_builtin(L, e, call, local->builtin);
        lower_error(L, call, "'%s' is %s, not a function", call->name, val_desc(L, *local));
        return val_err();
    }
    Builtin b = sema_builtin(call->name);
    if (b)
        return lower_builtin(L, e, call, b);
    AstNode *d = sema_lookup(L->nnl, call->name);
    if (!d) {
        lower_error(L, call, "unknown function '%s'", call->name);
        return val_err();
    }
    return lower_call_decl(L, d, call, e, NULL, 0);
}

Val lower_expr(Lower *L, Env *e, AstNode *x)
{
    switch (x->kind) {
    case AST_INT:
        return val_num((double)x->ival, x);
    case AST_FLOAT:
        return val_num(x->fval, x);
    case AST_BOOL:
        return val_num((double)x->ival, x);
    case AST_STRING:
        return (Val){.kind = V_STR, .str = x->name, .src = x->src, .off = x->off};
    case AST_NAME:
        return lower_name(L, e, x);
    case AST_LIST: {
        Val v = {.kind = V_LIST, .n = x->args.len, .src = x->src, .off = x->off};
        v.items = arena_alloc(&L->nnl->arena, sizeof(Val) * (size_t)(x->args.len + 1));
        for (int i = 0; i < x->args.len; i++)
            if (!val_ok(v.items[i] = lower_expr(L, e, x->args.items[i])))
                return val_err();
        return v;
    }
    case AST_UNARY: {
        Val a = lower_expr(L, e, x->lhs);
        return x->op == TK_MINUS ? lower_unary_op(L, x, OP_NEG, a) : a;
    }
    case AST_BINARY: {
        Val a = lower_expr(L, e, x->lhs);
        Val b = lower_expr(L, e, x->rhs);
        if (!val_ok(a) || !val_ok(b))
            return val_err();
        if (x->op == TK_AT)
            return lower_matmul(L, x, a, b);
        return lower_binary(L, x, lower_token_op(x->op), a, b);
    }
    case AST_CALL:
        return lower_call(L, e, x);
    default:
        lower_error(L, x, "internal error: unexpected %s in an expression", ast_kind_name(x->kind));
        return val_err();
    }
}

/* ---- layers and parameters ---- */

static bool param_name_taken(IrProgram *p, const char *base)
{
    size_t n = strlen(base);
    for (int i = 0; i < p->nparams; i++)
        if (strncmp(p->params[i].name, base, n) == 0 && p->params[i].name[n] == '.')
            return true;
    return false;
}

/* The prefix of a layer instance: the statement's name ("h1"), made unique ("h1_2"). */
static const char *layer_prefix(Lower *L)
{
    const char *hint = L->hint ? L->hint : "output";
    const char *base = L->prefix ? arena_printf(&L->nnl->arena, "%s.%s", L->prefix, hint) : hint;
    if (!param_name_taken(L->p, base))
        return base;
    for (int k = 2;; k++) {
        const char *b = arena_printf(&L->nnl->arena, "%s_%d", base, k);
        if (!param_name_taken(L->p, b))
            return b;
    }
}

static Val lower_init_value(Lower *L, Env *e, AstNode *s, IrParam *prm)
{
    Mode saved = L->mode;
    L->mode = MODE_INIT;
    L->init_shape = prm->shape;
    const Shape *sh = &prm->shape;
    if (sh->rank == 4) { /* convolution kernels [filters, channels, kh, kw], as PyTorch */
        L->fan_in = (double)(shape_size(sh) / sh->dim[0]);
        L->fan_out = (double)(shape_size(sh) / sh->dim[1]);
    } else if (sh->rank >= 2) {
        L->fan_in = (double)(shape_size(sh) / sh->dim[sh->rank - 1]);
        L->fan_out = (double)sh->dim[sh->rank - 1];
    } else if (L->last_matrix >= 0) {
        const Shape *m = &L->p->params[L->last_matrix].shape;
        bool conv = m->rank == 4;
        L->fan_in = (double)(shape_size(m) / m->dim[conv ? 0 : m->rank - 1]);
        L->fan_out = (double)(conv ? shape_size(m) / m->dim[1] : m->dim[m->rank - 1]);
    } else {
        L->fan_in = L->fan_out = (double)shape_size(sh);
    }
    Val v = lower_expr(L, e, s->rhs);
    if (v.kind == V_FUNC)
        v = lower_call_decl(L, v.decl, NULL, e, NULL, 0);
    L->mode = saved;
    return v;
}

static Val lower_param(Lower *L, Env *e, AstNode *s, const char *prefix)
{
    IrProgram *p = L->p;
    Shape shape = {.rank = s->shape.len};
    if (s->shape.len > IR_MAX_RANK) {
        lower_error(L, s, "a parameter has at most %d dimensions", IR_MAX_RANK);
        return val_err();
    }
    for (int i = 0; i < s->shape.len; i++) {
        Val d = lower_expr(L, e, s->shape.items[i]);
        if (!val_ok(d) ||
            !lower_want_int(L, s->shape.items[i], d, "a parameter size", 1, &shape.dim[i]))
            return val_err();
    }
    if (shape_size(&shape) > (int64_t)1 << 31) {
        lower_error(L, s, "parameter '%s' is too large (%lld elements)", s->name,
                    (long long)shape_size(&shape));
        return val_err();
    }
    p->params = nnl_realloc(p->params, sizeof(IrParam) * (size_t)(p->nparams + 1));
    IrParam *prm = &p->params[p->nparams];
    *prm = (IrParam){.name = arena_printf(&L->nnl->arena, "%s.%s", prefix, s->name),
                     .shape = shape, .offset = p->nparam_elems, .size = shape_size(&shape),
                     .src = s->src, .off = s->off};
    int index = p->nparams++;
    /* 64-byte alignment of every tensor keeps the arena vector-friendly */
    p->nparam_elems += (prm->size + 15) / 16 * 16;
    IrNode *leaf = ir_leaf(p, OP_PARAM, shape);
    leaf->index = index;
    leaf->needs_grad = true;
    leaf->src = s->src;
    leaf->off = s->off;
    prm->node = leaf;
    Val init = lower_init_value(L, e, s, prm);
    prm = &p->params[index];
    if (!val_ok(init))
        return val_err();
    if (!val_is_numeric(init)) {
        lower_error(L, s->rhs, "the initializer of '%s' must give numbers, not %s", prm->name,
                    val_desc(L, init));
        return val_err();
    }
    IrNode *in = val_node(L, init);
    Shape bs;
    if (in->shape.batched || in->needs_grad || !shape_broadcast(&in->shape, &shape, &bs) ||
        !shape_equal(&bs, &shape)) {
        lower_error(L, s->rhs, "the initializer of '%s' gives %s, which does not fit its shape %s",
                    prm->name, val_origin(L, init), shape_str(&L->nnl->arena, &shape));
        return val_err();
    }
    prm->init = ir_broadcast(p, in, shape);
    if (shape.rank >= 2)
        L->last_matrix = index;
    return val_tensor(leaf, s);
}

/* ---- calls of declarations ---- */

static Val lower_block(Lower *L, Env *e, AstNode *decl, const char *prefix);

/* Binds the formals of `decl`: `pre` values first (the model output and target of a loss),
 * then the call's arguments, then defaults, evaluated in the callee's environment. */
bool lower_bind_args(Lower *L, Env *callee, Env *caller, AstNode *decl, AstNode *call,
                      Val *pre, int npre)
{
    int nf = decl->params.len;
    bool given[64] = {0};
    if (nf > 64) {
        lower_error(L, decl, "too many parameters");
        return false;
    }
    Val vals[64];
    int pos = 0;
    for (int i = 0; i < npre && pos < nf; i++) {
        vals[pos] = pre[i];
        given[pos++] = true;
    }
    for (int i = 0; call && i < call->args.len; i++) {
        AstNode *a = call->args.items[i];
        int k = pos;
        if (a->name) {
            for (k = 0; k < nf; k++)
                if (strcmp(decl->params.items[k]->name, a->name) == 0)
                    break;
        } else {
            pos++;
        }
        if (k >= nf) {
            lower_error(L, a, "too many arguments to %s '%s'", ast_kind_name(decl->kind),
                        decl->name);
            return false;
        }
        if (given[k] && a->name) {
            lower_error(L, a, "argument '%s' is given twice", a->name);
            return false;
        }
        vals[k] = lower_expr(L, caller, a->rhs);
        if (!val_ok(vals[k]))
            return false;
        given[k] = true;
    }
    for (int k = 0; k < nf; k++) {
        AstNode *f = decl->params.items[k];
        if (!given[k]) {
            if (!f->rhs) {
                lower_error(L, call ? call : decl, "missing argument '%s' of %s '%s'", f->name,
                            ast_kind_name(decl->kind), decl->name);
                return false;
            }
            vals[k] = lower_expr(L, callee, f->rhs);
            if (!val_ok(vals[k]))
                return false;
        }
        env_bind(callee, f->name, vals[k]);
    }
    return true;
}

Val lower_call_decl(Lower *L, AstNode *decl, AstNode *call, Env *caller, Val *pre,
                           int npre)
{
    AstNode *at = call ? call : decl;
    if (decl->kind == AST_OPTIMIZER || decl->kind == AST_MODEL || decl->kind == AST_DATA) {
        lower_error(L, at, "%s '%s' cannot be called here", ast_kind_name(decl->kind), decl->name);
        return val_err();
    }
    if (L->depth >= LOWER_MAX_DEPTH) {
        lower_error(L, at, "calls are nested more than %d deep: is '%s' recursive? (recursion "
                    "is not supported)", LOWER_MAX_DEPTH, decl->name);
        return val_err();
    }
    if (L->exploded)
        return val_err(); /* reported once; the callers unwind quietly */
    if (L->p->nnodes > LOWER_MAX_NODES) {
        L->exploded = true;
        lower_error(L, at, "the program expands to more than %d graph nodes at this call of '%s'; "
                    "is a function calling itself or others many times over?", LOWER_MAX_NODES,
                    decl->name);
        return val_err();
    }
    if (decl->kind == AST_LAYER && L->mode != MODE_MODEL) {
        lower_error(L, at, "layer '%s' has parameters and can only be used in a model", decl->name);
        return val_err();
    }
    Env callee = {0};
    L->calls[L->depth++] = call;
    Val r = val_err();
    const char *saved_prefix = L->prefix, *saved_hint = L->hint;
    int saved_matrix = L->last_matrix;
    if (lower_bind_args(L, &callee, caller, decl, call, pre, npre)) {
        const char *prefix = NULL;
        if (decl->kind == AST_LAYER) {
            prefix = layer_prefix(L);
            L->prefix = prefix;
            L->last_matrix = -1;
        }
        L->hint = NULL;
        if (decl->rhs)
            r = lower_expr(L, &callee, decl->rhs);
        else
            r = lower_block(L, &callee, decl, prefix);
        if (val_ok(r) && call) { /* the caller's messages point at the call, not into the body */
            r.src = call->src;
            r.off = call->off;
        }
    }
    L->prefix = saved_prefix;
    L->hint = saved_hint;
    L->last_matrix = saved_matrix;
    L->depth--;
    env_free(&callee);
    return r;
}

/* The statements of a fn, layer or model body; the value of its `return`. */
static Val lower_block(Lower *L, Env *e, AstNode *decl, const char *prefix)
{
    for (int i = 0; i < decl->body.len; i++) {
        AstNode *s = decl->body.items[i];
        switch (s->kind) {
        case AST_ASSIGN: {
            L->hint = s->name;
            Val v = lower_expr(L, e, s->rhs);
            L->hint = NULL;
            if (!val_ok(v))
                return v;
            if (s->op != TK_ASSIGN) {
                Val *old = env_find(e, s->name);
                if (!old) {
                    lower_error(L, s, "'%s' has no value yet", s->name);
                    return val_err();
                }
                v = lower_binary(L, s, lower_token_op(s->op), *old, v);
                if (!val_ok(v))
                    return v;
            }
            env_bind(e, s->name, v);
            break;
        }
        case AST_PARAM: {
            Val v = lower_param(L, e, s, prefix);
            if (!val_ok(v))
                return v;
            env_bind(e, s->name, v);
            break;
        }
        case AST_RETURN:
            L->hint = "output";
            {
                Val v = lower_expr(L, e, s->rhs);
                L->hint = NULL;
                return v;
            }
        default:
            lower_error(L, s, "'%s' is not allowed in a %s", ast_kind_name(s->kind),
                        ast_kind_name(decl->kind));
            return val_err();
        }
    }
    lower_error(L, decl, "%s '%s' ends without 'return'", ast_kind_name(decl->kind), decl->name);
    return val_err();
}

/* ---- the program ---- */

static Val lower_model(Lower *L, int64_t x_size)
{
    AstNode *m = L->spec->model;
    IrProgram *p = L->p;
    if (m->params.len != 1) {
        lower_error(L, m, "model '%s' has %d inputs; nnlc trains models with exactly one input",
                    m->name, m->params.len);
        return val_err();
    }
    AstNode *f = m->params.items[0];
    Shape in = {.batched = true, .rank = f->shape.len};
    Env env = {0};
    if (f->shape.len > IR_MAX_RANK) {
        lower_error(L, f, "an input has at most %d dimensions", IR_MAX_RANK);
        return val_err();
    }
    for (int i = 0; i < f->shape.len; i++) {
        Val d = lower_expr(L, &env, f->shape.items[i]);
        if (!val_ok(d) ||
            !lower_want_int(L, f->shape.items[i], d, "an input size", 1, &in.dim[i]))
            return val_err();
    }
    if (x_size >= 0 && shape_size(&in) != x_size) {
        const NnlrtDataSpec *ds = &L->spec->data->spec;
        const AstNode *at = L->spec->key_at[NNLRT_TRAIN_DATA];
        lower_error(L, f, "model '%s' takes %s%s, but each sample of data '%s' (%s:%s) has %lld "
                    "value%s", m->name, f->name,
                    shape_str(&L->nnl->arena, &(Shape){.rank = in.rank,
                                                       .dim = {in.dim[0], in.dim[1],
                                                               in.dim[2], in.dim[3]}}),
                    ds->name ? ds->name : "?", at->src->path, diag_at(L->nnl, at->src, at->off),
                    (long long)x_size, x_size == 1 ? "" : "s");
        env_free(&env);
        return val_err();
    }
    p->input = ir_leaf(p, OP_INPUT, in);
    p->input->src = f->src;
    p->input->off = f->off;
    env_bind(&env, f->name, val_tensor(p->input, f));
    L->mode = MODE_MODEL;
    Val out = lower_block(L, &env, m, NULL);
    L->mode = MODE_GLOBAL;
    env_free(&env);
    if (val_ok(out) && (out.kind != V_TENSOR || !out.t->shape.batched)) {
        lower_error(L, m, "model '%s' must return a tensor computed from its input, not %s",
                    m->name, val_desc(L, out));
        return val_err();
    }
    return out;
}

/* nnlc check: the forward pass of a model no train declaration uses, on its input as
 * declared, for the shape errors in its body. */
NnlResult lower_model_forward(Nnl *nnl, AstNode *model, IrProgram *prog)
{
    int before = nnl->nerrors;
    TrainSpec spec = {.model = model};
    Lower L = {.nnl = nnl, .p = prog, .spec = &spec, .mode = MODE_GLOBAL, .last_matrix = -1};
    prog->arena = &nnl->arena;
    lower_model(&L, -1);
    nnl_dealloc(L.data_cache_keys);
    return nnl->nerrors != before ? NNL_EUSER : NNL_OK;
}

/* A loss or metric applied to (model output, target): one number per sample. */
static IrNode *lower_objective(Lower *L, AstNode *ref, Val out, Val target, const char *what)
{
    AstNode *d = sema_lookup(L->nnl, ref->name);
    if (d->params.len < 2) {
        lower_error(L, ref, "%s '%s' takes %d parameter%s, but a %s is called with the model's "
                    "output and the target", ast_kind_name(d->kind), d->name, d->params.len,
                    d->params.len == 1 ? "" : "s", what);
        return NULL;
    }
    Env global = {0};
    Val pre[2] = {out, target};
    L->calls[L->depth++] = ref; /* a loss named without options: messages point here too */
    Val v = lower_call_decl(L, d, ref->kind == AST_CALL ? ref : NULL, &global, pre, 2);
    L->depth--;
    env_free(&global);
    if (!val_ok(v))
        return NULL;
    if (v.kind != V_TENSOR || !v.t->shape.batched) {
        lower_error(L, ref, "%s '%s' must depend on the model's output and the target, but "
                    "gives %s", what, ref->name, val_desc(L, v));
        return NULL;
    }
    if (shape_size(&v.t->shape) != 1) {
        lower_error(L, ref, "%s '%s' must give one number per sample, but gives %s", what,
                    ref->name, val_origin(L, v));
        return NULL;
    }
    return ir_reshape(L->p, v.t, shape_scalar(true));
}

NnlResult lower_program(Nnl *nnl, TrainSpec *spec, int64_t x_size, IrProgram *prog)
{
    int before = nnl->nerrors;
    Lower L = {.nnl = nnl, .p = prog, .spec = spec, .mode = MODE_GLOBAL, .last_matrix = -1};
    prog->arena = &nnl->arena;
    Val out = lower_model(&L, x_size);
    if (!val_ok(out))
        goto done;
    prog->output = out.t;
    if (prog->nparams == 0) {
        lower_error(&L, spec->model, "model '%s' has no parameters to train", spec->model->name);
        goto done;
    }
    prog->target = ir_leaf(prog, OP_TARGET, shape_scalar(true));
    L.mode = MODE_OBJECTIVE;
    Val target = val_tensor(prog->target, spec->key_at[NNLRT_TRAIN_DATA]);
    prog->loss = lower_objective(&L, spec->loss, out, target, "loss");
    if (!prog->loss)
        goto done;
    if (!prog->loss->needs_grad) {
        lower_error(&L, spec->loss, "loss '%s' does not depend on the model's parameters",
                    spec->loss->name);
        goto done;
    }
    prog->nmetrics = spec->nmetrics;
    prog->metrics = arena_alloc(&nnl->arena, sizeof(IrNode *) * (size_t)(spec->nmetrics + 1));
    prog->metric_names = arena_alloc(&nnl->arena, sizeof(char *) * (size_t)(spec->nmetrics + 1));
    for (int i = 0; i < spec->nmetrics; i++) {
        prog->metric_names[i] = spec->metrics[i]->name;
        prog->metrics[i] = lower_objective(&L, spec->metrics[i], out, target, "metric");
        if (!prog->metrics[i])
            goto done;
    }
    if (L.target_is_index) {
        prog->target_kind = NNLRT_TARGET_CLASS;
        prog->n_classes = L.target_classes;
    } else {
        prog->target_kind = NNLRT_TARGET_VALUES;
        if (shape_size(&out.t->shape) != 1) {
            const char *held = spec->target_held
                ? arena_printf(&nnl->arena, "; %s", spec->target_held) : "";
            const char *classes = spec->target_classes > 0
                ? arena_printf(&nnl->arena, "for %lld classes", (long long)spec->target_classes)
                : "for classes";
            lower_error(&L, spec->loss, "loss '%s' compares the model's output %s with a target "
                        "of one value per sample%s: give the model 1 output, or %s use a loss "
                        "that picks the label, such as cross_entropy", spec->loss->name,
                        val_origin(&L, out), held, classes);
            goto done;
        }
    }
    L.mode = MODE_GLOBAL;
    lower_optimizer(&L);
done:
    nnl_dealloc(L.data_cache_keys);
    return nnl->nerrors != before ? NNL_EUSER : NNL_OK;
}
