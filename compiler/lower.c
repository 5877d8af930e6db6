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

typedef enum { V_NONE, V_NUM, V_STR, V_LIST, V_FUNC, V_BUILTIN, V_TENSOR, V_DATA, V_ALL } VKind;

typedef struct Val Val;
struct Val {
    VKind kind;
    double num;
    const char *str;
    Val *items;
    int n;
    AstNode *decl;      /* V_FUNC */
    Builtin builtin;    /* V_BUILTIN */
    IrNode *t;          /* V_TENSOR */
    DataSource *data;   /* V_DATA */
    Source *src;        /* where the value was made */
    uint32_t off;
};

/* What is being evaluated: globals (data, train keys, hyper-parameters), a model, a loss
 * or metric, an initializer, an optimizer body. */
typedef enum { MODE_GLOBAL, MODE_MODEL, MODE_OBJECTIVE, MODE_INIT, MODE_OPT } Mode;

enum { LOWER_MAX_DEPTH = 64, LOWER_MAX_NODES = 1 << 16 };

typedef struct {
    Nnl *nnl;
    IrProgram *p;
    TrainSpec *spec;
    Mode mode;
    int depth;              /* call depth, against runaway recursion */
    const AstNode *calls[LOWER_MAX_DEPTH]; /* the call sites being evaluated, outermost first */
    bool exploded;          /* the graph grew past LOWER_MAX_NODES (reported) */
    /* parameters: the prefix of the layer being evaluated, the name hint of the statement */
    const char *prefix;
    const char *hint;
    int last_matrix;        /* the last rank >= 2 parameter of the current layer, or -1 */
    /* initializers */
    Shape init_shape;
    double fan_in, fan_out;
    /* optimizer */
    IrNode *param_arena, *grad_arena;
    bool target_is_index;
    int64_t target_classes;
    const AstNode *target_use;
    DataSource **data_cache_keys;
    int ndata_cache;
} Lower;

typedef struct {
    const char **names;
    Val *vals;
    int n, cap;
} Env;


static Val val_err(void) { return (Val){.kind = V_NONE}; }
static bool ok(Val v) { return v.kind != V_NONE; }

static Val val_num(double x, const AstNode *at)
{
    return (Val){.kind = V_NUM, .num = x, .src = at ? at->src : NULL, .off = at ? at->off : 0};
}

static Val val_tensor(IrNode *t, const AstNode *at)
{
    if (!t->src && at) {
        t->src = at->src;
        t->off = at->off;
    }
    return (Val){.kind = V_TENSOR, .t = t, .src = at ? at->src : NULL, .off = at ? at->off : 0};
}

static void env_bind(Env *e, const char *name, Val v)
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

static Val *env_find(Env *e, const char *name)
{
    for (int i = e->n - 1; i >= 0; i--)
        if (strcmp(e->names[i], name) == 0)
            return &e->vals[i];
    return NULL;
}

static void env_free(Env *e)
{
    nnl_dealloc(e->names);
    nnl_dealloc(e->vals);
}

static void lerr(Lower *L, const AstNode *at, const char *fmt, ...) NNL_PRINTF(3, 4);
static void lerr(Lower *L, const AstNode *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(L->nnl, NNL_SEV_ERROR, at->src, at->off, fmt, ap);
    va_end(ap);
    /* an error inside the standard library: where the user's script called into it */
    if (!at->src || !at->src->is_stdlib)
        return;
    for (int i = L->depth - 1; i >= 0; i--) {
        const AstNode *c = L->calls[i];
        if (c && c->src && !c->src->is_stdlib) {
            diag_note(L->nnl, c->src, c->off, "in this call of '%s'", c->name);
            return;
        }
    }
}

static const char *val_desc(Lower *L, Val v)
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
static const char *val_origin(Lower *L, Val v)
{
    Arena *a = &L->nnl->arena;
    const char *sh = v.kind == V_TENSOR ? shape_str(a, &v.t->shape) : val_desc(L, v);
    if (!v.src)
        return sh;
    return arena_printf(a, "%s (from %s:%s)", sh, v.src->path, diag_at(L->nnl, v.src, v.off));
}

static IrNode *as_node(Lower *L, Val v)
{
    return v.kind == V_TENSOR ? v.t : ir_const(L->p, v.num);
}

static bool is_numeric(Val v)
{
    return v.kind == V_NUM || v.kind == V_TENSOR;
}

static Val lower_expr(Lower *L, Env *e, AstNode *x);
static Val lower_call_decl(Lower *L, AstNode *decl, AstNode *call, Env *caller, Val *pre,
                           int npre);

/* ---- values of names ---- */

static Val lower_data_decl(Lower *L, AstNode *decl, const char *name);

static Val lower_builtin_value(Lower *L, AstNode *at, BuiltinValue bv)
{
    switch (bv) {
    case BV_PI:
        return val_num(M_PI, at);
    case BV_EPOCHS:
        L->spec->uses_epochs = true;
        return val_num((double)L->spec->epochs, at);
    case BV_EPOCH:
    case BV_STEP:
        if (L->mode == MODE_OPT || L->mode == MODE_GLOBAL)
            return val_tensor(ir_var(L->p, bv == BV_EPOCH ? VAR_EPOCH : VAR_STEP), at);
        lerr(L, at, "'%s' is only known to an optimizer and its hyper-parameters, not in a "
             "model, loss or metric", at->name);
        return val_err();
    case BV_FAN_IN:
    case BV_FAN_OUT:
        if (L->mode == MODE_INIT)
            return val_num(bv == BV_FAN_IN ? L->fan_in : L->fan_out, at);
        lerr(L, at, "'%s' is only known in a parameter's initializer", at->name);
        return val_err();
    case BV_PARAM:
    case BV_GRAD:
        if (L->mode == MODE_OPT)
            return val_tensor(bv == BV_PARAM ? L->param_arena : L->grad_arena, at);
        lerr(L, at, "'%s' is only known in an optimizer", at->name);
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
        lerr(L, x, "model '%s' cannot be used as a value", x->name);
    else
        lerr(L, x, "unknown name '%s'", x->name);
    return val_err();
}

/* ---- arithmetic ---- */

static Op binary_op(int tk)
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
        lerr(L, at, "'@' multiplies tensors, not %s", val_desc(L, a.kind != V_TENSOR ? a : b));
        return val_err();
    }
    const Shape *sa = &a.t->shape, *sb = &b.t->shape;
    if (sb->batched || sb->rank != 2 || sa->rank > 2 || sa->rank < 1 ||
        (sa->batched && sa->rank != 1)) {
        lerr(L, at, "'@' needs a vector or matrix on the left and a parameter matrix on the "
             "right; found %s @ %s", val_origin(L, a), val_origin(L, b));
        return val_err();
    }
    int64_t k = sa->dim[sa->rank - 1];
    if (k != sb->dim[0]) {
        lerr(L, at, "cannot multiply %s @ %s: the inner sizes %lld and %lld differ",
             val_origin(L, a), val_origin(L, b), (long long)k, (long long)sb->dim[0]);
        return val_err();
    }
    return val_tensor(ir_matmul(L->p, a.t, b.t, false, false), at);
}

static Val lower_binary(Lower *L, AstNode *at, Op op, Val a, Val b);

/* A list in arithmetic works item by item: epoch >= [30, 80] is [epoch >= 30, epoch >= 80]. */
static Val lower_binary_list(Lower *L, AstNode *at, Op op, Val a, Val b)
{
    int n = a.kind == V_LIST ? a.n : b.n;
    if (a.kind == V_LIST && b.kind == V_LIST && a.n != b.n) {
        lerr(L, at, "lists of different lengths (%d and %d)", a.n, b.n);
        return val_err();
    }
    Val r = {.kind = V_LIST, .n = n, .src = at->src, .off = at->off};
    r.items = arena_alloc(&L->nnl->arena, sizeof(Val) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        r.items[i] = lower_binary(L, at, op, a.kind == V_LIST ? a.items[i] : a,
                                  b.kind == V_LIST ? b.items[i] : b);
        if (!ok(r.items[i]))
            return val_err();
    }
    return r;
}

static Val lower_binary(Lower *L, AstNode *at, Op op, Val a, Val b)
{
    if (!ok(a) || !ok(b))
        return val_err();
    if (a.kind == V_LIST || b.kind == V_LIST)
        return lower_binary_list(L, at, op, a, b);
    if (!is_numeric(a) || !is_numeric(b)) {
        lerr(L, at, "'%s' needs numbers or tensors, not %s", ir_op_name(op),
             val_desc(L, !is_numeric(a) ? a : b));
        return val_err();
    }
    if (a.kind == V_NUM && b.kind == V_NUM)
        return val_num(ir_fold_binary(op, a.num, b.num), at);
    IrNode *na = as_node(L, a), *nb = as_node(L, b);
    Shape s;
    if (!shape_broadcast(&na->shape, &nb->shape, &s)) {
        lerr(L, at, "shapes do not match: %s and %s", val_origin(L, a), val_origin(L, b));
        return val_err();
    }
    IrNode *r = ir_binary(L->p, op, na, nb);
    if (r->op == OP_CONST)
        return val_num(r->value, at);
    return val_tensor(r, at);
}

static Val lower_unary_op(Lower *L, AstNode *at, Op op, Val a)
{
    if (!ok(a))
        return val_err();
    if (!is_numeric(a)) {
        lerr(L, at, "'%s' needs a number or a tensor, not %s", ir_op_name(op), val_desc(L, a));
        return val_err();
    }
    if (a.kind == V_NUM)
        return val_num(ir_fold_unary(op, a.num), at);
    IrNode *r = ir_unary(L->p, op, as_node(L, a));
    return r->op == OP_CONST ? val_num(r->value, at) : val_tensor(r, at);
}

/* ---- builtins ---- */

/* Arguments of a builtin by parameter position, named ones placed (sema checked them). */
static int builtin_args(Lower *L, Env *e, AstNode *call, Builtin b, Val *out, bool *given)
{
    const BuiltinInfo *bi = sema_builtin_info(b);
    int npos = 0;
    for (int i = 0; i < BUILTIN_MAX_ARGS; i++)
        given[i] = false;
    for (int i = 0; i < call->args.len; i++) {
        AstNode *a = call->args.items[i];
        int k = npos;
        if (a->name) {
            for (k = 0; k < BUILTIN_MAX_ARGS && bi->params[k]; k++)
                if (strcmp(bi->params[k], a->name) == 0)
                    break;
        } else {
            npos++;
        }
        if (k >= BUILTIN_MAX_ARGS)
            return -1;
        out[k] = lower_expr(L, e, a->rhs);
        if (!ok(out[k]))
            return -1;
        given[k] = true;
    }
    return npos;
}

static bool want_tensor(Lower *L, AstNode *at, Val v, const char *what)
{
    if (v.kind == V_TENSOR)
        return true;
    lerr(L, at, "%s needs a tensor, not %s", what, val_desc(L, v));
    return false;
}

static bool want_int(Lower *L, AstNode *at, Val v, const char *what, int64_t lo, int64_t *out)
{
    if (v.kind != V_NUM || v.num != floor(v.num) || v.num < (double)lo || v.num > 1e15) {
        lerr(L, at, "%s must be a whole number of at least %lld, not %s", what, (long long)lo,
             val_desc(L, v));
        return false;
    }
    *out = (int64_t)v.num;
    return true;
}

/* The reduction mask of `axis` (a per-sample axis, negative counting from the end), or of
 * every per-sample dim without it. */
static bool axis_mask(Lower *L, AstNode *at, const Shape *s, Val *axis, bool given, int *mask)
{
    if (!given) {
        *mask = 0;
        for (int i = 0; i < s->rank; i++)
            *mask |= 2 << i;
        return true;
    }
    if (axis->kind != V_NUM || axis->num != floor(axis->num) || axis->num < -s->rank ||
        axis->num >= s->rank || s->rank == 0) {
        lerr(L, at, "axis %s is out of range for a sample of shape %s", val_desc(L, *axis),
             shape_str(&L->nnl->arena, &(Shape){.rank = s->rank, .dim = {s->dim[0], s->dim[1],
                                                  s->dim[2], s->dim[3]}}));
        return false;
    }
    int ax = (int)axis->num;
    if (ax < 0)
        ax += s->rank;
    *mask = 2 << ax;
    return true;
}

/* Drops the reduced (size-1) dims that `mask` marks. */
static IrNode *squeeze(Lower *L, IrNode *r, const Shape *before, int mask)
{
    Shape s = {.batched = r->shape.batched};
    for (int i = 0; i < before->rank; i++)
        if (!(mask & (2 << i)))
            s.dim[s.rank++] = before->dim[i];
    return ir_reshape(L->p, r, s);
}

static Val lower_reduce(Lower *L, AstNode *at, Builtin b, Val x, Val *axis, bool has_axis)
{
    if (x.kind == V_NUM)
        return x;
    if (x.kind == V_LIST && (b == BI_SUM || b == BI_MEAN) && !has_axis) {
        /* the sum of a list's items */
        Val acc = val_num(0, at);
        for (int i = 0; i < x.n && ok(acc); i++)
            acc = lower_binary(L, at, OP_ADD, acc, x.items[i]);
        if (ok(acc) && b == BI_MEAN && x.n > 0)
            acc = lower_binary(L, at, OP_DIV, acc, val_num((double)x.n, at));
        return acc;
    }
    if (!want_tensor(L, at, x, sema_builtin_info(b)->name))
        return val_err();
    IrProgram *p = L->p;
    IrNode *t = x.t;
    int mask;
    if (!axis_mask(L, at, &t->shape, axis, has_axis, &mask))
        return val_err();
    IrNode *r;
    switch (b) {
    case BI_SUM:
        r = ir_reduce(p, OP_SUM, t, mask);
        break;
    case BI_MEAN: {
        int64_t count = 1;
        for (int i = 0; i < t->shape.rank; i++)
            if (mask & (2 << i))
                count *= t->shape.dim[i];
        IrNode *total = ir_reduce(p, OP_SUM, t, mask);
        r = ir_binary(p, OP_DIV, total, ir_const(p, (double)count));
        break;
    }
    case BI_MAX:
        r = ir_reduce(p, OP_RMAX, t, mask);
        break;
    case BI_MIN:
        r = ir_unary(p, OP_NEG, ir_reduce(p, OP_RMAX, ir_unary(p, OP_NEG, t), mask));
        break;
    default: { /* logsumexp: m + log(sum(exp(x - m))), m = max(x) held constant */
        IrNode *m = ir_unary(p, OP_NOGRAD, ir_reduce(p, OP_RMAX, t, mask));
        IrNode *s = ir_reduce(p, OP_SUM, ir_unary(p, OP_EXP, ir_binary(p, OP_SUB, t, m)), mask);
        r = ir_binary(p, OP_ADD, m, ir_unary(p, OP_LOG, s));
    }
    }
    return val_tensor(squeeze(L, r, &t->shape, mask), at);
}

static void note_target_index(Lower *L, AstNode *at, IrNode *index, int64_t n)
{
    if (index != L->p->target)
        return;
    if (L->target_is_index && L->target_classes != n) {
        lerr(L, at, "the target is used as an index into %lld classes here, but into %lld "
             "classes at %s", (long long)n, (long long)L->target_classes,
             diag_at(L->nnl, L->target_use->src, L->target_use->off));
        return;
    }
    L->target_is_index = true;
    L->target_classes = n;
    L->target_use = at;
}

static Val lower_shape_list(Lower *L, AstNode *at, Val v, Shape *out)
{
    if (v.kind != V_LIST || v.n < 1 || v.n > IR_MAX_RANK) {
        lerr(L, at, "a shape is a list of 1 to %d sizes, like [1, 28, 28]", IR_MAX_RANK);
        return val_err();
    }
    *out = (Shape){.rank = v.n};
    for (int i = 0; i < v.n; i++)
        if (!want_int(L, at, v.items[i], "a size", 1, &out->dim[i]))
            return val_err();
    return v;
}

static Val lower_data_call(Lower *L, AstNode *call, Builtin b, Val *a, bool *given);

/* A window op's image: a per-sample tensor with at least `rank` dims. */
static bool want_image(Lower *L, AstNode *call, Val x, int rank, const char *what)
{
    if (!want_tensor(L, call, x, what))
        return false;
    if (!x.t->shape.batched || x.t->shape.rank < rank) {
        lerr(L, call, "%s needs an image per sample, [%s], not %s", what,
             rank == 3 ? "channels, height, width" : "..., height, width", val_origin(L, x));
        return false;
    }
    return true;
}

/* A stride, padding or window size: it must fit the op's 16 bits. */
static bool want_geometry(Lower *L, AstNode *call, Val v, const char *what, int64_t lo,
                          int64_t *out)
{
    if (!want_int(L, call, v, what, lo, out))
        return false;
    if (*out <= 65535)
        return true;
    lerr(L, call, "%s must be at most 65535, not %lld", what, (long long)*out);
    return false;
}

/* convolve2d(x[C, H, W], w[F, C, KH, KW], stride = 1, padding = 0) -> [F, OH, OW] */
static Val lower_convolve(Lower *L, AstNode *call, Val *a, bool *given)
{
    int64_t stride = 1, pad = 0;
    if (!want_image(L, call, a[0], 3, "convolve2d") || !want_tensor(L, call, a[1], "convolve2d") ||
        (given[2] && !want_geometry(L, call, a[2], "the stride", 1, &stride)) ||
        (given[3] && !want_geometry(L, call, a[3], "the padding", 0, &pad)))
        return val_err();
    const Shape *x = &a[0].t->shape, *w = &a[1].t->shape;
    if (x->rank != 3 || w->batched || w->rank != 4 || w->dim[1] != x->dim[0]) {
        lerr(L, call, "convolve2d needs an image [channels, height, width] and kernels "
             "[filters, channels, height, width] with as many channels, not %s and %s",
             val_origin(L, a[0]), val_origin(L, a[1]));
        return val_err();
    }
    if (x->dim[1] + 2 * pad < w->dim[2] || x->dim[2] + 2 * pad < w->dim[3]) {
        lerr(L, call, "the kernels %s are larger than the image %s with padding %lld",
             val_origin(L, a[1]), val_origin(L, a[0]), (long long)pad);
        return val_err();
    }
    return val_tensor(ir_conv2d(L->p, a[0].t, a[1].t, (int)stride, (int)pad), call);
}

/* A parameter tensor of the layer with one value per channel, [C]: its index, or -1. */
static int channel_param(Lower *L, AstNode *call, Val v, int64_t channels, const char *what)
{
    IrProgram *p = L->p;
    if (v.kind != V_TENSOR || v.t->op != OP_PARAM || v.t->shape.rank != 1 ||
        v.t->shape.dim[0] != channels) {
        lerr(L, call, "batch_normalize: %s must be a parameter [%lld] (one value per channel), "
             "not %s", what, (long long)channels, val_desc(L, v));
        return -1;
    }
    return v.t->index < p->nparams ? v.t->index : -1;
}

/* batch_normalize(x[C, ...], gamma, beta, running_mean, running_var, momentum = 0.1,
 * eps = 1e-5), PyTorch's BatchNorm: in a training step each channel is normalized with
 * the batch's mean and (biased) variance over the samples and the other dims, and the
 * running statistics move towards them (the variance unbiased); otherwise the running
 * statistics normalize. Then times gamma, plus beta. */
static Val lower_batch_norm(Lower *L, AstNode *call, Val *a, bool *given)
{
    IrProgram *p = L->p;
    double momentum = given[5] && a[5].kind == V_NUM ? a[5].num : 0.1;
    double eps = given[6] && a[6].kind == V_NUM ? a[6].num : 1e-5;
    if ((given[5] && (a[5].kind != V_NUM || !(momentum >= 0 && momentum <= 1))) ||
        (given[6] && (a[6].kind != V_NUM || !(eps > 0)))) {
        lerr(L, call, "batch_normalize: momentum must be a number in [0, 1] and eps a "
             "positive number");
        return val_err();
    }
    if (!want_tensor(L, call, a[0], "batch_normalize"))
        return val_err();
    IrNode *x = a[0].t;
    if (!x->shape.batched || x->shape.rank < 1 || L->mode != MODE_MODEL) {
        lerr(L, call, "batch_normalize works on the samples in a model: %s is not per sample",
             val_origin(L, a[0]));
        return val_err();
    }
    int64_t C = x->shape.dim[0];
    int idx[4];
    static const char *const what[4] = {"gamma", "beta", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++)
        if ((idx[i] = channel_param(L, call, a[1 + i], C, what[i])) < 0)
            return val_err();
    for (int i = 2; i < 4; i++) {
        if (p->params[idx[i]].buffer) {
            lerr(L, call, "batch_normalize: '%s' already holds another normalization's "
                 "running statistics", p->params[idx[i]].name);
            return val_err();
        }
    }
    /* per channel: [C, 1, ...], reduced over the batch and every other dim */
    Shape cs = {.rank = x->shape.rank, .dim = {C, 1, 1, 1}};
    int mask = 1;
    int64_t per = 1;
    for (int i = 1; i < x->shape.rank; i++) {
        mask |= 2 << i;
        per *= x->shape.dim[i];
    }
    /* one node-creating argument per call: node ids must not depend on C's order */
    IrNode *batch = ir_var(p, VAR_BATCH);
    IrNode *n = ir_binary(p, OP_MUL, batch, ir_const(p, (double)per));
    /* one centred tensor d serves the variance and the output: in a training step mu is
     * the batch mean and sum(d²)/n the batch variance; otherwise that sum is not used.
     * Fewer per-sample temporaries: the normalization is memory-bound. */
    IrNode *mean = ir_binary(p, OP_DIV, ir_reduce(p, OP_SUM, x, mask), n);
    IrNode *rm = ir_reshape(p, a[3].t, cs), *rv = ir_reshape(p, a[4].t, cs);
    IrNode *training = ir_var(p, VAR_TRAINING);
    IrNode *mu = ir_where(p, training, mean, rm);
    IrNode *d = ir_binary(p, OP_SUB, x, mu);
    IrNode *var = ir_binary(p, OP_DIV, ir_reduce(p, OP_SUM, ir_binary(p, OP_MUL, d, d), mask), n);
    IrNode *sigma2 = ir_where(p, training, var, rv);
    IrNode *one = ir_const(p, 1);
    IrNode *inv = ir_binary(p, OP_DIV, one,
                            ir_unary(p, OP_SQRT, ir_binary(p, OP_ADD, sigma2, ir_const(p, eps))));
    IrNode *y = ir_binary(p, OP_MUL, d, inv);
    y = ir_binary(p, OP_MUL, y, ir_reshape(p, a[1].t, cs));
    y = ir_binary(p, OP_ADD, y, ir_reshape(p, a[2].t, cs));
    /* the running statistics' new values, from the batch's (detached from the loss) */
    Shape vs = {.rank = 1, .dim = {C}};
    IrNode *keep = ir_const(p, 1 - momentum);
    IrNode *mom = ir_const(p, momentum);
    IrNode *n1 = ir_binary(p, OP_MAX, ir_binary(p, OP_SUB, n, one), one); /* n − 1, at least 1 */
    IrNode *unbiased = ir_binary(p, OP_DIV, n, n1);
    IrNode *mean_v = ir_reshape(p, ir_unary(p, OP_NOGRAD, mean), vs);
    IrNode *var_v = ir_reshape(p, ir_unary(p, OP_NOGRAD, ir_binary(p, OP_MUL, var, unbiased)),
                               vs);
    IrParam *pm = &p->params[idx[2]], *pv = &p->params[idx[3]];
    pm->buffer = pv->buffer = true;
    IrNode *old_m = ir_binary(p, OP_MUL, keep, a[3].t);
    pm->update = ir_binary(p, OP_ADD, old_m, ir_binary(p, OP_MUL, mom, mean_v));
    IrNode *old_v = ir_binary(p, OP_MUL, keep, a[4].t);
    pv->update = ir_binary(p, OP_ADD, old_v, ir_binary(p, OP_MUL, mom, var_v));
    return val_tensor(y, call);
}

/* max_pool2d / avg_pool2d(x[..., H, W], size, stride = size) */
static Val lower_pool(Lower *L, AstNode *call, Builtin b, Val *a, bool *given)
{
    const char *name = sema_builtin_info(b)->name;
    int64_t size, stride;
    if (!want_image(L, call, a[0], 2, name) ||
        !want_geometry(L, call, a[1], "the window size", 1, &size))
        return val_err();
    stride = size;
    if (given[2] && !want_geometry(L, call, a[2], "the stride", 1, &stride))
        return val_err();
    const Shape *x = &a[0].t->shape;
    if (x->dim[x->rank - 2] < size || x->dim[x->rank - 1] < size) {
        lerr(L, call, "a %lldx%lld window does not fit in %s", (long long)size,
             (long long)size, val_origin(L, a[0]));
        return val_err();
    }
    Op op = b == BI_MAX_POOL2D ? OP_MAXPOOL : OP_AVGPOOL;
    return val_tensor(ir_pool(L->p, op, a[0].t, (int)size, (int)stride), call);
}

static Val lower_builtin(Lower *L, Env *e, AstNode *call, Builtin b)
{
    Val a[BUILTIN_MAX_ARGS] = {0};
    bool given[BUILTIN_MAX_ARGS];
    int npos = builtin_args(L, e, call, b, a, given);
    if (npos < 0)
        return val_err();
    IrProgram *p = L->p;
    static const Op unary_ops[] = {
        [BI_EXP] = OP_EXP, [BI_LOG] = OP_LOG, [BI_SQRT] = OP_SQRT, [BI_ABS] = OP_ABS,
        [BI_SIGN] = OP_SIGN, [BI_TANH] = OP_TANH, [BI_ERF] = OP_ERF, [BI_SIN] = OP_SIN,
        [BI_COS] = OP_COS, [BI_FLOOR] = OP_FLOOR,
    };
    switch (b) {
    case BI_EXP: case BI_LOG: case BI_SQRT: case BI_ABS: case BI_SIGN: case BI_TANH:
    case BI_ERF: case BI_SIN: case BI_COS: case BI_FLOOR:
        return lower_unary_op(L, call, unary_ops[b], a[0]);
    case BI_MIN:
    case BI_MAX:
        if (given[1])
            return lower_binary(L, call, b == BI_MAX ? OP_MAX : OP_MIN, a[0], a[1]);
        return lower_reduce(L, call, b, a[0], &a[2], given[2]);
    case BI_SUM: case BI_MEAN: case BI_LOGSUMEXP:
        return lower_reduce(L, call, b, a[0], &a[1], given[1]);
    case BI_WHERE:
        if (a[0].kind == V_NUM)
            return a[0].num != 0 ? a[1] : a[2];
        if (!is_numeric(a[0]) || !is_numeric(a[1]) || !is_numeric(a[2])) {
            lerr(L, call, "'where' needs numbers or tensors");
            return val_err();
        }
        {
            IrNode *c = as_node(L, a[0]), *x = as_node(L, a[1]), *y = as_node(L, a[2]);
            Shape s1, s;
            if (!shape_broadcast(&x->shape, &y->shape, &s1) ||
                !shape_broadcast(&s1, &c->shape, &s)) {
                lerr(L, call, "shapes do not match in 'where': %s, %s and %s",
                     val_origin(L, a[0]), val_origin(L, a[1]), val_origin(L, a[2]));
                return val_err();
            }
            return val_tensor(ir_where(p, c, x, y), call);
        }
    case BI_PICK: {
        if (!want_tensor(L, call, a[0], "pick") || !is_numeric(a[1]))
            return val_err();
        IrNode *x = a[0].t, *idx = as_node(L, a[1]);
        Shape want = x->shape;
        want.rank--;
        want.batched = idx->shape.batched;
        if (x->shape.rank < 1 || idx->shape.rank != want.rank ||
            (idx->shape.rank && memcmp(idx->shape.dim, want.dim, sizeof(int64_t) * (size_t)want.rank))) {
            lerr(L, call, "pick needs an index for each vector of %s, but the index is %s",
                 val_origin(L, a[0]), val_origin(L, a[1]));
            return val_err();
        }
        note_target_index(L, call, idx, x->shape.dim[x->shape.rank - 1]);
        return val_tensor(ir_pick(p, x, idx), call);
    }
    case BI_ONEHOT: {
        int64_t n;
        if (!is_numeric(a[0]) || !want_int(L, call, a[1], "the number of classes", 1, &n))
            return val_err();
        IrNode *idx = as_node(L, a[0]);
        if (idx->shape.rank + 1 > IR_MAX_RANK) {
            lerr(L, call, "onehot of %s has too many dimensions", val_origin(L, a[0]));
            return val_err();
        }
        note_target_index(L, call, idx, n);
        return val_tensor(ir_onehot(p, idx, n), call);
    }
    case BI_ARGMAX:
        if (!want_tensor(L, call, a[0], "argmax"))
            return val_err();
        if (a[0].t->shape.rank < 1) {
            lerr(L, call, "argmax needs a vector, not %s", val_origin(L, a[0]));
            return val_err();
        }
        return val_tensor(ir_argmax(p, a[0].t), call);
    case BI_DIM: {
        if (!want_tensor(L, call, a[0], "dim"))
            return val_err();
        const Shape *s = &a[0].t->shape;
        int64_t ax = -1;
        if (given[1]) {
            if (a[1].kind != V_NUM || a[1].num != floor(a[1].num)) {
                lerr(L, call, "the axis of dim must be a whole number");
                return val_err();
            }
            ax = (int64_t)a[1].num;
        }
        if (ax < 0)
            ax += s->rank;
        if (ax < 0 || ax >= s->rank) {
            lerr(L, call, "dim: axis out of range for %s", val_origin(L, a[0]));
            return val_err();
        }
        return val_num((double)s->dim[ax], call);
    }
    case BI_RESHAPE:
    case BI_FLATTEN: {
        if (!want_tensor(L, call, a[0], sema_builtin_info(b)->name))
            return val_err();
        Shape to = {.rank = 1, .dim = {shape_size(&a[0].t->shape)}};
        if (b == BI_RESHAPE && !ok(lower_shape_list(L, call, a[1], &to)))
            return val_err();
        to.batched = a[0].t->shape.batched;
        if (shape_size(&to) != shape_size(&a[0].t->shape)) {
            lerr(L, call, "cannot reshape %s to %s: the number of elements differs",
                 val_origin(L, a[0]), shape_str(&L->nnl->arena, &to));
            return val_err();
        }
        return val_tensor(ir_reshape(p, a[0].t, to), call);
    }
    case BI_CONVOLVE2D:
        return lower_convolve(L, call, a, given);
    case BI_MAX_POOL2D:
    case BI_AVG_POOL2D:
        return lower_pool(L, call, b, a, given);
    case BI_BATCH_NORMALIZE:
        return lower_batch_norm(L, call, a, given);
    case BI_DROP:
        if (!want_tensor(L, call, a[0], "drop"))
            return val_err();
        if (a[1].kind != V_NUM || !(a[1].num >= 0 && a[1].num < 1)) {
            lerr(L, call, "the probability of drop must be a number in [0, 1), not %s",
                 val_desc(L, a[1]));
            return val_err();
        }
        if (!a[0].t->shape.batched || (L->mode != MODE_MODEL && L->mode != MODE_OBJECTIVE)) {
            lerr(L, call, "drop works on the samples of a training step: %s does not depend "
                 "on the model's input", val_origin(L, a[0]));
            return val_err();
        }
        return a[1].num == 0 ? a[0] : val_tensor(ir_dropout(p, a[0].t, a[1].num, -1), call);
    case BI_RAND:
    case BI_RANDN:
        if (L->mode != MODE_INIT) {
            lerr(L, call, "'%s' draws random numbers for initializers and is only known "
                 "there", call->name);
            return val_err();
        }
        return val_tensor(ir_leaf(p, b == BI_RAND ? OP_RAND : OP_RANDN, L->init_shape), call);
    case BI_CSV:
    case BI_SPLIT:
    case BI_IDX:
    case BI_NPY:
        return lower_data_call(L, call, b, a, given);
    default:
        lerr(L, call, "internal error: the built-in '%s' has no lowering", call->name);
        return val_err();
    }
}

/* ---- data ---- */

/* The directory of the script a data set is declared in (NULL: the current one). */
static const char *script_dir(Lower *L, Source *src)
{
    const char *slash = strrchr(src->path, '/');
    if (src->is_stdlib || !slash)
        return NULL;
    return arena_strndup(&L->nnl->arena, src->path, (size_t)(slash - src->path));
}

static bool want_str(Lower *L, AstNode *at, Val v, const char *what)
{
    if (v.kind == V_STR)
        return true;
    lerr(L, at, "%s must be a string, not %s", what, val_desc(L, v));
    return false;
}

static Val lower_csv(Lower *L, AstNode *call, Val *a, bool *given)
{
    Arena *ar = &L->nnl->arena;
    DataSource *ds = arena_alloc(ar, sizeof *ds);
    ds->kind = DS_CSV;
    ds->src = call->src;
    ds->off = call->off;
    ds->header = true;
    ds->delimiter = ',';
    ds->target_index = -1;
    if (!want_str(L, call, a[0], "the path of csv"))
        return val_err();
    ds->path = a[0].str;
    ds->script_dir = script_dir(L, call->src);
    if (given[1]) {
        if (a[1].kind == V_STR)
            ds->target_name = a[1].str;
        else if (a[1].kind == V_NUM && a[1].num == floor(a[1].num) && a[1].num >= 0)
            ds->target_index = (long)a[1].num;
        else {
            lerr(L, call, "target must be a column name or a column number (from 0), not %s",
                 val_desc(L, a[1]));
            return val_err();
        }
    }
    if (given[2]) {
        if (a[2].kind != V_LIST || a[2].n == 0) {
            lerr(L, call, "features must be a non-empty list of column names or numbers");
            return val_err();
        }
        ds->nfeatures = a[2].n;
        ds->features = arena_alloc(ar, sizeof(long) * (size_t)a[2].n);
        ds->feature_names = arena_alloc(ar, sizeof(char *) * (size_t)a[2].n);
        bool names = a[2].items[0].kind == V_STR;
        for (int i = 0; i < a[2].n; i++) {
            Val f = a[2].items[i];
            if (names && f.kind == V_STR) {
                ds->feature_names[i] = f.str;
            } else if (!names && f.kind == V_NUM && f.num == floor(f.num) && f.num >= 0) {
                ds->features[i] = (long)f.num;
            } else {
                lerr(L, call, "features must be all column names or all column numbers");
                return val_err();
            }
        }
        if (names)
            ds->features = NULL;
        else
            ds->feature_names = NULL;
    }
    if (given[3]) {
        if (a[3].kind != V_NUM) {
            lerr(L, call, "header must be true or false");
            return val_err();
        }
        ds->header = a[3].num != 0;
    }
    if (given[4]) {
        if (!want_str(L, call, a[4], "delimiter"))
            return val_err();
        if (strlen(a[4].str) != 1 || a[4].str[0] == '"' || a[4].str[0] == '\n') {
            lerr(L, call, "delimiter must be one character (not a quote or a new line)");
            return val_err();
        }
        ds->delimiter = a[4].str[0];
    }
    if (given[5]) {
        if (a[5].kind != V_NUM) {
            lerr(L, call, "standardize must be true or false");
            return val_err();
        }
        ds->standardize = a[5].num != 0;
    }
    return (Val){.kind = V_DATA, .data = ds, .src = call->src, .off = call->off};
}

/* idx(images, labels, scale = 1) and npy(x, y, scale = 1) */
static Val lower_file_pair(Lower *L, AstNode *call, Builtin b, Val *a, bool *given)
{
    if (!want_str(L, call, a[0], b == BI_IDX ? "the images file" : "the inputs file") ||
        !want_str(L, call, a[1], b == BI_IDX ? "the labels file" : "the targets file"))
        return val_err();
    double scale = 1;
    if (given[2]) {
        if (a[2].kind != V_NUM || !isfinite(a[2].num) || a[2].num == 0) {
            lerr(L, call, "scale must be a non-zero number, not %s", val_desc(L, a[2]));
            return val_err();
        }
        scale = a[2].num;
    }
    DataSource *ds = arena_alloc(&L->nnl->arena, sizeof *ds);
    *ds = (DataSource){.kind = b == BI_IDX ? DS_IDX : DS_NPY, .src = call->src,
                       .off = call->off, .path = a[0].str, .path2 = a[1].str,
                       .script_dir = script_dir(L, call->src), .scale = scale};
    return (Val){.kind = V_DATA, .data = ds, .src = call->src, .off = call->off};
}

static Val lower_data_call(Lower *L, AstNode *call, Builtin b, Val *a, bool *given)
{
    if (L->mode != MODE_GLOBAL) {
        lerr(L, call, "'%s' describes a data set and belongs in a data declaration", call->name);
        return val_err();
    }
    if (b == BI_CSV)
        return lower_csv(L, call, a, given);
    if (b == BI_IDX || b == BI_NPY)
        return lower_file_pair(L, call, b, a, given);
    if (a[0].kind != V_DATA) {
        lerr(L, call, "split needs a data set, not %s", val_desc(L, a[0]));
        return val_err();
    }
    if (a[1].kind != V_NUM || !(a[1].num > 0 && a[1].num < 1)) {
        lerr(L, call, "the fraction of split must be a number between 0 and 1, not %s",
             val_desc(L, a[1]));
        return val_err();
    }
    int64_t seed = 0;
    if (given[2] && !want_int(L, call, a[2], "the seed", 0, &seed))
        return val_err();
    Val pair = {.kind = V_LIST, .n = 2, .src = call->src, .off = call->off};
    pair.items = arena_alloc(&L->nnl->arena, sizeof(Val) * 2);
    for (int i = 0; i < 2; i++) {
        DataSource *ds = arena_alloc(&L->nnl->arena, sizeof *ds);
        *ds = (DataSource){.kind = DS_SPLIT, .src = call->src, .off = call->off,
                           .parent = a[0].data, .fraction = a[1].num, .seed = (uint64_t)seed,
                           .part = i};
        pair.items[i] = (Val){.kind = V_DATA, .data = ds, .src = call->src, .off = call->off};
    }
    return pair;
}

/* A data declaration, evaluated once per name. */
static Val lower_data_decl(Lower *L, AstNode *decl, const char *name)
{
    for (int i = 0; i < L->ndata_cache; i++)
        if (strcmp(L->data_cache_keys[i]->name, name) == 0)
            return (Val){.kind = V_DATA, .data = L->data_cache_keys[i]};
    Mode saved = L->mode;
    L->mode = MODE_GLOBAL;
    Env env = {0};
    Val v = lower_expr(L, &env, decl->rhs);
    env_free(&env);
    L->mode = saved;
    if (!ok(v))
        return v;
    int n = decl->names.len;
    if (n == 1 && v.kind == V_LIST && v.n == 2 && v.items[0].kind == V_DATA) {
        lerr(L, decl, "split makes two data sets: name both, as in 'data %s, test = ...'",
             decl->names.items[0]->name);
        return val_err();
    }
    bool all_data = v.kind == V_LIST;
    for (int i = 0; all_data && i < v.n; i++)
        all_data = v.items[i].kind == V_DATA;
    if ((n == 1 && v.kind != V_DATA) || (n > 1 && (!all_data || v.n != n))) {
        lerr(L, decl->rhs, "a data declaration needs %s, not %s",
             n == 1 ? "a data set such as csv(...)" : "as many data sets as names",
             val_desc(L, v));
        return val_err();
    }
    Val result = val_err();
    for (int i = 0; i < n; i++) {
        DataSource *ds = n == 1 ? v.data : v.items[i].data;
        ds->name = decl->names.items[i]->name;
        L->data_cache_keys = nnl_realloc(L->data_cache_keys,
                                         sizeof(DataSource *) * (size_t)(L->ndata_cache + 1));
        L->data_cache_keys[L->ndata_cache++] = ds;
        if (strcmp(ds->name, name) == 0)
            result = (Val){.kind = V_DATA, .data = ds, .src = decl->src, .off = decl->off};
    }
    return result;
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
        lerr(L, call, "'%s' is %s, not a function", call->name, val_desc(L, *local));
        return val_err();
    }
    Builtin b = sema_builtin(call->name);
    if (b)
        return lower_builtin(L, e, call, b);
    AstNode *d = sema_lookup(L->nnl, call->name);
    if (!d) {
        lerr(L, call, "unknown function '%s'", call->name);
        return val_err();
    }
    return lower_call_decl(L, d, call, e, NULL, 0);
}

static Val lower_expr(Lower *L, Env *e, AstNode *x)
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
            if (!ok(v.items[i] = lower_expr(L, e, x->args.items[i])))
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
        if (!ok(a) || !ok(b))
            return val_err();
        if (x->op == TK_AT)
            return lower_matmul(L, x, a, b);
        return lower_binary(L, x, binary_op(x->op), a, b);
    }
    case AST_CALL:
        return lower_call(L, e, x);
    default:
        lerr(L, x, "internal error: unexpected %s in an expression", ast_kind_name(x->kind));
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
        lerr(L, s, "a parameter has at most %d dimensions", IR_MAX_RANK);
        return val_err();
    }
    for (int i = 0; i < s->shape.len; i++) {
        Val d = lower_expr(L, e, s->shape.items[i]);
        if (!ok(d) || !want_int(L, s->shape.items[i], d, "a parameter size", 1, &shape.dim[i]))
            return val_err();
    }
    if (shape_size(&shape) > (int64_t)1 << 31) {
        lerr(L, s, "parameter '%s' is too large (%lld elements)", s->name,
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
    if (!ok(init))
        return val_err();
    if (!is_numeric(init)) {
        lerr(L, s->rhs, "the initializer of '%s' must give numbers, not %s", prm->name,
             val_desc(L, init));
        return val_err();
    }
    IrNode *in = as_node(L, init);
    Shape bs;
    if (in->shape.batched || in->needs_grad || !shape_broadcast(&in->shape, &shape, &bs) ||
        !shape_equal(&bs, &shape)) {
        lerr(L, s->rhs, "the initializer of '%s' gives %s, which does not fit its shape %s",
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
static bool bind_args(Lower *L, Env *callee, Env *caller, AstNode *decl, AstNode *call,
                      Val *pre, int npre)
{
    int nf = decl->params.len;
    bool given[64] = {0};
    if (nf > 64) {
        lerr(L, decl, "too many parameters");
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
            lerr(L, a, "too many arguments to %s '%s'", ast_kind_name(decl->kind), decl->name);
            return false;
        }
        if (given[k] && a->name) {
            lerr(L, a, "argument '%s' is given twice", a->name);
            return false;
        }
        vals[k] = lower_expr(L, caller, a->rhs);
        if (!ok(vals[k]))
            return false;
        given[k] = true;
    }
    for (int k = 0; k < nf; k++) {
        AstNode *f = decl->params.items[k];
        if (!given[k]) {
            if (!f->rhs) {
                lerr(L, call ? call : decl, "missing argument '%s' of %s '%s'", f->name,
                     ast_kind_name(decl->kind), decl->name);
                return false;
            }
            vals[k] = lower_expr(L, callee, f->rhs);
            if (!ok(vals[k]))
                return false;
        }
        env_bind(callee, f->name, vals[k]);
    }
    return true;
}

static Val lower_call_decl(Lower *L, AstNode *decl, AstNode *call, Env *caller, Val *pre,
                           int npre)
{
    AstNode *at = call ? call : decl;
    if (decl->kind == AST_OPTIMIZER || decl->kind == AST_MODEL || decl->kind == AST_DATA) {
        lerr(L, at, "%s '%s' cannot be called here", ast_kind_name(decl->kind), decl->name);
        return val_err();
    }
    if (L->depth >= LOWER_MAX_DEPTH) {
        lerr(L, at, "calls are nested more than %d deep: is '%s' recursive? (recursion is not "
             "supported)", LOWER_MAX_DEPTH, decl->name);
        return val_err();
    }
    if (L->exploded)
        return val_err(); /* reported once; the callers unwind quietly */
    if (L->p->nnodes > LOWER_MAX_NODES) {
        L->exploded = true;
        lerr(L, at, "the program expands to more than %d graph nodes at this call of '%s'; "
             "is a function calling itself or others many times over?", LOWER_MAX_NODES,
             decl->name);
        return val_err();
    }
    if (decl->kind == AST_LAYER && L->mode != MODE_MODEL) {
        lerr(L, at, "layer '%s' has parameters and can only be used in a model", decl->name);
        return val_err();
    }
    Env callee = {0};
    L->calls[L->depth++] = call;
    Val r = val_err();
    const char *saved_prefix = L->prefix, *saved_hint = L->hint;
    int saved_matrix = L->last_matrix;
    if (bind_args(L, &callee, caller, decl, call, pre, npre)) {
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
        if (ok(r) && call) { /* the caller's messages point at the call, not into the body */
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
            if (!ok(v))
                return v;
            if (s->op != TK_ASSIGN) {
                Val *old = env_find(e, s->name);
                if (!old) {
                    lerr(L, s, "'%s' has no value yet", s->name);
                    return val_err();
                }
                v = lower_binary(L, s, binary_op(s->op), *old, v);
                if (!ok(v))
                    return v;
            }
            env_bind(e, s->name, v);
            break;
        }
        case AST_PARAM: {
            Val v = lower_param(L, e, s, prefix);
            if (!ok(v))
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
            lerr(L, s, "'%s' is not allowed in a %s", ast_kind_name(s->kind),
                 ast_kind_name(decl->kind));
            return val_err();
        }
    }
    lerr(L, decl, "%s '%s' ends without 'return'", ast_kind_name(decl->kind), decl->name);
    return val_err();
}

/* ---- the train declaration ---- */

enum { KEY_DATA, KEY_VALIDATE, KEY_LOSS, KEY_OPTIMIZER, KEY_EPOCHS, KEY_BATCH, KEY_SEED,
       KEY_SHUFFLE, KEY_METRICS, KEY_LOG, KEY_LOG_EVERY, KEY_CLIP_NORM, KEY_CLIP_VALUE,
       KEY_L1, KEY_L2, KEY_CHECKPOINT, KEY_CHECKPOINT_EVERY, KEY_CHECKPOINT_EVERY_STEPS,
       KEY_KEEP, KEY_PLOT, KEY_COUNT };

static int train_key(const char *name)
{
    for (int k = 0; sema_train_keys[k]; k++)
        if (strcmp(sema_train_keys[k], name) == 0)
            return k;
    return -1;
}

/* NAME or NAME(args) of a declaration of one of the `kinds`. */
static bool want_decl_ref(Lower *L, AstNode *x, const AstKind *kinds, int nkinds,
                          const char *what)
{
    if (x->kind == AST_NAME || x->kind == AST_CALL) {
        AstNode *d = sema_lookup(L->nnl, x->name);
        for (int i = 0; d && i < nkinds; i++)
            if (d->kind == kinds[i])
                return true;
        if (d) {
            lerr(L, x, "'%s' is a %s, not %s", x->name, ast_kind_name(d->kind), what);
            return false;
        }
    }
    lerr(L, x, "expected %s here, like 'name' or 'name(option = value)'", what);
    return false;
}

static bool train_number(Lower *L, AstNode *x, int64_t lo, int64_t *out, const char *what)
{
    Env env = {0};
    Val v = lower_expr(L, &env, x);
    env_free(&env);
    return ok(v) && want_int(L, x, v, what, lo, out);
}

static bool train_key_value(Lower *L, TrainSpec *spec, int key, AstNode *x)
{
    static const AstKind losses[] = {AST_LOSS, AST_FN};
    static const AstKind metrics[] = {AST_METRIC, AST_LOSS, AST_FN};
    static const AstKind optimizers[] = {AST_OPTIMIZER};
    Env env = {0};
    Val v;
    int64_t n;
    bool good = true;
    switch (key) {
    case KEY_DATA:
    case KEY_VALIDATE:
        v = lower_expr(L, &env, x);
        if (ok(v) && v.kind != V_DATA) {
            lerr(L, x, "expected a data set (the name of a data declaration), found %s",
                 val_desc(L, v));
            good = false;
        } else if (ok(v)) {
            *(key == KEY_DATA ? &spec->data : &spec->validate) = v.data;
        }
        good = good && ok(v);
        break;
    case KEY_LOSS:
        good = want_decl_ref(L, x, losses, 2, "a loss");
        spec->loss = x;
        break;
    case KEY_OPTIMIZER:
        good = want_decl_ref(L, x, optimizers, 1, "an optimizer");
        spec->optimizer = x;
        break;
    case KEY_METRICS:
        if (x->kind != AST_LIST) {
            lerr(L, x, "metrics is a list, like [accuracy]");
            good = false;
            break;
        }
        spec->nmetrics = x->args.len;
        spec->metrics = x->args.items;
        for (int i = 0; i < x->args.len; i++)
            good &= want_decl_ref(L, x->args.items[i], metrics, 3, "a metric or a loss");
        break;
    case KEY_EPOCHS:
        good = train_number(L, x, 1, &spec->epochs, "epochs");
        break;
    case KEY_BATCH:
        v = lower_expr(L, &env, x);
        if (ok(v) && v.kind == V_ALL)
            spec->batch = 0;
        else
            good = ok(v) && want_int(L, x, v, "batch (or 'all')", 1, &spec->batch);
        break;
    case KEY_SEED:
        good = train_number(L, x, 0, &n, "seed");
        spec->seed = (uint64_t)n;
        break;
    case KEY_SHUFFLE:
        v = lower_expr(L, &env, x);
        if (ok(v) && v.kind == V_NUM)
            spec->shuffle = v.num != 0;
        else if (ok(v)) {
            lerr(L, x, "shuffle must be true or false");
            good = false;
        }
        good = good && ok(v);
        break;
    case KEY_LOG:
        v = lower_expr(L, &env, x);
        good = ok(v) && want_str(L, x, v, "log");
        if (good)
            spec->log = v.str;
        break;
    case KEY_LOG_EVERY:
        good = train_number(L, x, 0, &spec->log_every, "log_every");
        break;
    case KEY_CHECKPOINT:
        v = lower_expr(L, &env, x);
        good = ok(v) && want_str(L, x, v, "checkpoint");
        if (good)
            spec->checkpoint = v.str;
        break;
    case KEY_CHECKPOINT_EVERY:
        good = train_number(L, x, 1, &spec->checkpoint_every, "checkpoint_every (epochs)");
        break;
    case KEY_CHECKPOINT_EVERY_STEPS:
        good = train_number(L, x, 1, &spec->checkpoint_every_steps,
                            "checkpoint_every_steps");
        break;
    case KEY_KEEP:
        good = train_number(L, x, 1, &spec->keep, "keep");
        break;
    case KEY_PLOT:
        v = lower_expr(L, &env, x);
        good = ok(v) && want_str(L, x, v, "plot");
        if (good)
            spec->plot = v.str;
        break;
    case KEY_CLIP_NORM:
    case KEY_CLIP_VALUE:
    case KEY_L1:
    case KEY_L2: {
        v = lower_expr(L, &env, x);
        bool clip = key == KEY_CLIP_NORM || key == KEY_CLIP_VALUE;
        if (ok(v) && (v.kind != V_NUM || !(clip ? v.num > 0 : v.num >= 0) || !isfinite(v.num))) {
            lerr(L, x, "%s must be a %s number, not %s", sema_train_keys[key],
                 clip ? "positive" : "non-negative", val_desc(L, v));
            good = false;
        }
        good = good && ok(v);
        if (good)
            *(key == KEY_CLIP_NORM ? &spec->clip_norm : key == KEY_CLIP_VALUE ? &spec->clip_value
              : key == KEY_L1 ? &spec->l1 : &spec->l2) = v.num;
        break;
    }
    }
    env_free(&env);
    return good;
}

NnlResult lower_train_spec(Nnl *nnl, AstNode *train, AstList *overrides, TrainSpec *spec)
{
    int before = nnl->nerrors;
    *spec = (TrainSpec){.decl = train, .epochs = 1, .batch = 32, .shuffle = true};
    spec->model = sema_lookup(nnl, train->name);
    Lower L = {.nnl = nnl, .spec = spec, .mode = MODE_GLOBAL, .last_matrix = -1};
    IrProgram scratch = {.arena = &nnl->arena};
    L.p = &scratch;
    AstNode *chosen[KEY_COUNT] = {0};
    for (int i = 0; i < train->body.len; i++) {
        int k = train_key(train->body.items[i]->name);
        if (k >= 0)
            chosen[k] = train->body.items[i];
    }
    for (int i = 0; overrides && i < overrides->len; i++) {
        AstNode *s = overrides->items[i];
        int k = train_key(s->name);
        if (k < 0) {
            const char *sug = sema_suggest(s->name, sema_train_keys, KEY_COUNT);
            diag_error(nnl, s->src, s->off, "unknown train key '%s'%s%s%s", s->name,
                       sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
            continue;
        }
        chosen[k] = s;
    }
    /* epochs first: hyper-parameters may use it */
    static const int order[] = {KEY_EPOCHS, KEY_DATA, KEY_VALIDATE, KEY_LOSS, KEY_OPTIMIZER,
                                KEY_BATCH, KEY_SEED, KEY_SHUFFLE, KEY_METRICS, KEY_LOG,
                                KEY_LOG_EVERY, KEY_CLIP_NORM, KEY_CLIP_VALUE, KEY_L1, KEY_L2,
                                KEY_CHECKPOINT, KEY_CHECKPOINT_EVERY,
                                KEY_CHECKPOINT_EVERY_STEPS, KEY_KEEP, KEY_PLOT};
    for (size_t i = 0; i < NNL_COUNTOF(order); i++) {
        int k = order[i];
        if (chosen[k]) {
            spec->key_at[k] = chosen[k];
            train_key_value(&L, spec, k, chosen[k]->rhs);
        }
    }
    static const char *const required[] = {"data", "loss", "optimizer"};
    static const int required_keys[] = {KEY_DATA, KEY_LOSS, KEY_OPTIMIZER};
    for (int i = 0; i < 3; i++)
        if (!chosen[required_keys[i]])
            diag_error(nnl, train->src, train->off, "train '%s' needs '%s = ...'", train->name,
                       required[i]);
    if (nnl->nerrors == before && (!spec->data || !spec->loss || !spec->optimizer))
        diag_error(nnl, train->src, train->off, "internal error: train '%s' is incomplete "
                   "without a reported error", train->name);
    nnl_dealloc(L.data_cache_keys);
    return nnl->nerrors != before ? NNL_EUSER : NNL_OK;
}

/* ---- the program ---- */

static Val lower_model(Lower *L, int64_t x_size)
{
    AstNode *m = L->spec->model;
    IrProgram *p = L->p;
    if (m->params.len != 1) {
        lerr(L, m, "model '%s' has %d inputs; nnlc trains models with exactly one input",
             m->name, m->params.len);
        return val_err();
    }
    AstNode *f = m->params.items[0];
    Shape in = {.batched = true, .rank = f->shape.len};
    Env env = {0};
    if (f->shape.len > IR_MAX_RANK) {
        lerr(L, f, "an input has at most %d dimensions", IR_MAX_RANK);
        return val_err();
    }
    for (int i = 0; i < f->shape.len; i++) {
        Val d = lower_expr(L, &env, f->shape.items[i]);
        if (!ok(d) || !want_int(L, f->shape.items[i], d, "an input size", 1, &in.dim[i]))
            return val_err();
    }
    DataSource *ds = L->spec->data;
    if (x_size >= 0 && shape_size(&in) != x_size) {
        const AstNode *at = L->spec->key_at[KEY_DATA];
        lerr(L, f, "model '%s' takes %s%s, but each sample of data '%s' (%s:%s) has %lld "
             "value%s", m->name, f->name,
             shape_str(&L->nnl->arena, &(Shape){.rank = in.rank, .dim = {in.dim[0], in.dim[1],
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
    if (ok(out) && (out.kind != V_TENSOR || !out.t->shape.batched)) {
        lerr(L, m, "model '%s' must return a tensor computed from its input, not %s", m->name,
             val_desc(L, out));
        return val_err();
    }
    return out;
}

/* A loss or metric applied to (model output, target): one number per sample. */
static IrNode *lower_objective(Lower *L, AstNode *ref, Val out, Val target, const char *what)
{
    AstNode *d = sema_lookup(L->nnl, ref->name);
    if (d->params.len < 2) {
        lerr(L, ref, "%s '%s' takes %d parameter%s, but a %s is called with the model's output "
             "and the target", ast_kind_name(d->kind), d->name, d->params.len,
             d->params.len == 1 ? "" : "s", what);
        return NULL;
    }
    Env global = {0};
    Val pre[2] = {out, target};
    Val v = lower_call_decl(L, d, ref->kind == AST_CALL ? ref : NULL, &global, pre, 2);
    env_free(&global);
    if (!ok(v))
        return NULL;
    if (v.kind != V_TENSOR || !v.t->shape.batched) {
        lerr(L, ref, "%s '%s' must depend on the model's output and the target, but gives %s",
             what, ref->name, val_desc(L, v));
        return NULL;
    }
    if (shape_size(&v.t->shape) != 1) {
        lerr(L, ref, "%s '%s' must give one number per sample, but gives %s", what, ref->name,
             val_origin(L, v));
        return NULL;
    }
    return ir_reshape(L->p, v.t, shape_scalar(true));
}

/* What the optimizer sees as `grad`: the loss's gradient, plus the regularization terms
 * (l1: l1 |w|, l2: l2 w^2 added to the objective), clipped elementwise (clip_value), then
 * scaled to a global L2 norm of at most clip_norm (as torch.nn.utils.clip_grad_norm_). */
static IrNode *lower_grad_terms(Lower *L, IrNode *g, IrNode *w)
{
    IrProgram *p = L->p;
    TrainSpec *sp = L->spec;
    if (sp->l1) {
        IrNode *l1 = ir_const(p, sp->l1), *sg = ir_unary(p, OP_SIGN, w);
        g = ir_binary(p, OP_ADD, g, ir_binary(p, OP_MUL, l1, sg));
    }
    if (sp->l2)
        g = ir_binary(p, OP_ADD, g, ir_binary(p, OP_MUL, ir_const(p, 2 * sp->l2), w));
    if (sp->clip_value) {
        IrNode *lo = ir_binary(p, OP_MAX, g, ir_const(p, -sp->clip_value));
        g = ir_binary(p, OP_MIN, lo, ir_const(p, sp->clip_value));
    }
    if (sp->clip_norm) {
        IrNode *norm = ir_unary(p, OP_SQRT, ir_sum_all(p, ir_binary(p, OP_MUL, g, g), false));
        IrNode *limit = ir_const(p, sp->clip_norm);
        IrNode *coef = ir_binary(p, OP_DIV, limit, ir_binary(p, OP_ADD, norm, ir_const(p, 1e-6)));
        g = ir_binary(p, OP_MUL, g, ir_binary(p, OP_MIN, coef, ir_const(p, 1)));
    }
    return g;
}

static bool lower_optimizer(Lower *L)
{
    IrProgram *p = L->p;
    AstNode *ref = L->spec->optimizer;
    AstNode *d = sema_lookup(L->nnl, ref->name);
    Shape arena = {.rank = 1, .dim = {p->nparam_elems}};
    L->param_arena = ir_leaf(p, OP_ARENA, arena);
    L->param_arena->index = ARENA_PARAMS;
    L->grad_arena = ir_leaf(p, OP_ARENA, arena);
    L->grad_arena->index = ARENA_GRADS;
    /* running statistics (batch normalization) are not trained: their slots of the grad
     * arena hold their new values, which replace them; the optimizer sees zeros there */
    IrNode *raw_grads = L->grad_arena, *bufmask = NULL;
    for (int i = 0; i < p->nparams && !bufmask; i++)
        if (p->params[i].buffer)
            bufmask = ir_leaf(p, OP_BUFMASK, arena);
    if (bufmask) {
        IrNode *zero = ir_const(p, 0);
        L->grad_arena = ir_where(p, bufmask, zero, raw_grads);
    }
    L->grad_arena = lower_grad_terms(L, L->grad_arena, L->param_arena);
    IrNode *state_leaves[32];
    Env env = {0}, global = {0};
    L->mode = MODE_GLOBAL; /* hyper-parameters: numbers, or expressions of epoch and step */
    bool good = bind_args(L, &env, &global, d, ref->kind == AST_CALL ? ref : NULL, NULL, 0);
    env_free(&global);
    L->mode = MODE_OPT;
    const char *state_names[32];
    for (int i = 0; good && i < d->body.len; i++) {
        AstNode *s = d->body.items[i];
        if (s->kind == AST_STATE) {
            Val init = lower_expr(L, &env, s->rhs);
            if (!ok(init) || init.kind != V_NUM) {
                if (ok(init))
                    lerr(L, s->rhs, "a state starts from a number, not %s", val_desc(L, init));
                good = false;
                break;
            }
            if (s->shape.len || p->nstates >= 32) {
                lerr(L, s, s->shape.len ? "a state has the shape of each parameter; it takes "
                     "no size" : "too many states (the limit is 32)");
                good = false;
                break;
            }
            int k = p->nstates++;
            p->new_states = nnl_realloc(p->new_states, sizeof(IrNode *) * (size_t)p->nstates);
            p->state_init = nnl_realloc(p->state_init, sizeof(double) * (size_t)p->nstates);
            p->state_init[k] = init.num;
            state_names[k] = s->name;
            IrNode *leaf = ir_leaf(p, OP_ARENA, arena);
            leaf->index = ARENA_STATE;
            leaf->aux = k;
            state_leaves[k] = leaf;
            IrNode *cur = leaf;
            if (init.num != 0) /* the arenas start at 0: the first step sees `init` */
            {
                IrNode *stp = ir_var(p, VAR_STEP), *one = ir_const(p, 1);
                IrNode *first = ir_binary(p, OP_EQ, stp, one);
                cur = ir_where(p, first, ir_const(p, init.num), leaf);
            }
            env_bind(&env, s->name, val_tensor(cur, s));
        } else if (s->kind == AST_ASSIGN) {
            Val v = lower_expr(L, &env, s->rhs);
            if (ok(v) && s->op != TK_ASSIGN) {
                Val *old = env_find(&env, s->name);
                Val cur = old ? *old : lower_builtin_value(L, s, sema_builtin_value(s->name));
                v = lower_binary(L, s, binary_op(s->op), cur, v);
            }
            if (!ok(v)) {
                good = false;
                break;
            }
            if (!is_numeric(v) || (v.kind == V_TENSOR && (v.t->shape.batched ||
                                                          v.t->shape.rank > 1))) {
                lerr(L, s, "an optimizer works on numbers, element by element; '%s' is %s",
                     s->name, val_desc(L, v));
                good = false;
                break;
            }
            env_bind(&env, s->name, v);
        } else {
            lerr(L, s, "'%s' is not allowed in an optimizer", ast_kind_name(s->kind));
            good = false;
        }
    }
    if (good) {
        Val *np = env_find(&env, "param");
        if (!np) {
            lerr(L, d, "optimizer '%s' never updates 'param'", d->name);
            good = false;
        } else {
            p->new_params = ir_broadcast(p, as_node(L, *np), arena);
            for (int k = 0; k < p->nstates; k++)
                p->new_states[k] = ir_broadcast(p, as_node(L, *env_find(&env, state_names[k])),
                                                arena);
            if (bufmask) { /* buffers take their new values; their states stay */
                p->new_params = ir_where(p, bufmask, raw_grads, p->new_params);
                for (int k = 0; k < p->nstates; k++)
                    p->new_states[k] = ir_where(p, bufmask, state_leaves[k], p->new_states[k]);
            }
        }
    }
    env_free(&env);
    L->mode = MODE_GLOBAL;
    return good;
}

NnlResult lower_program(Nnl *nnl, TrainSpec *spec, int64_t x_size, IrProgram *prog)
{
    int before = nnl->nerrors;
    Lower L = {.nnl = nnl, .p = prog, .spec = spec, .mode = MODE_GLOBAL, .last_matrix = -1};
    prog->arena = &nnl->arena;
    Val out = lower_model(&L, x_size);
    if (!ok(out))
        goto done;
    prog->output = out.t;
    if (prog->nparams == 0) {
        lerr(&L, spec->model, "model '%s' has no parameters to train", spec->model->name);
        goto done;
    }
    prog->target = ir_leaf(prog, OP_TARGET, shape_scalar(true));
    L.mode = MODE_OBJECTIVE;
    Val target = val_tensor(prog->target, spec->key_at[KEY_DATA]);
    prog->loss = lower_objective(&L, spec->loss, out, target, "loss");
    if (!prog->loss)
        goto done;
    if (!prog->loss->needs_grad) {
        lerr(&L, spec->loss, "loss '%s' does not depend on the model's parameters",
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
            lerr(&L, spec->loss, "loss '%s' compares the model's output %s with a target of "
                 "one value per sample; for classes use a loss that picks the label, such as "
                 "cross_entropy", spec->loss->name, val_origin(&L, out));
            goto done;
        }
    }
    L.mode = MODE_GLOBAL;
    lower_optimizer(&L);
done:
    nnl_dealloc(L.data_cache_keys);
    return nnl->nerrors != before ? NNL_EUSER : NNL_OK;
}
