/* lower_builtin.c — the built-in functions: their arguments, shape rules and graph nodes. */
#include <math.h>
#include <string.h>

#include "nnlc_int.h"
#include "parser.h"

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
        if (!val_ok(out[k]))
            return -1;
        given[k] = true;
    }
    return npos;
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
        lower_error(L, at, "axis %s is out of range for a sample of shape %s", val_desc(L, *axis),
                    shape_str(&L->nnl->arena, &(Shape){.rank = s->rank,
                                                       .dim = {s->dim[0], s->dim[1],
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
        for (int i = 0; i < x.n && val_ok(acc); i++)
            acc = lower_binary(L, at, OP_ADD, acc, x.items[i]);
        if (val_ok(acc) && b == BI_MEAN && x.n > 0)
            acc = lower_binary(L, at, OP_DIV, acc, val_num((double)x.n, at));
        return acc;
    }
    if (!lower_want_tensor(L, at, x, sema_builtin_info(b)->name))
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
        lower_error(L, at, "the target is used as an index into %lld classes here, but into %lld "
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
        lower_error(L, at, "a shape is a list of 1 to %d sizes, like [1, 28, 28]", IR_MAX_RANK);
        return val_err();
    }
    *out = (Shape){.rank = v.n};
    for (int i = 0; i < v.n; i++)
        if (!lower_want_int(L, at, v.items[i], "a size", 1, &out->dim[i]))
            return val_err();
    return v;
}

/* A window op's image: a per-sample tensor with at least `rank` dims. */
static bool want_image(Lower *L, AstNode *call, Val x, int rank, const char *what)
{
    if (!lower_want_tensor(L, call, x, what))
        return false;
    if (!x.t->shape.batched || x.t->shape.rank < rank) {
        lower_error(L, call, "%s needs an image per sample, [%s], not %s", what,
                    rank == 3 ? "channels, height, width" : "..., height, width", val_origin(L, x));
        return false;
    }
    return true;
}

/* A stride, padding or window size: it must fit the op's 16 bits. */
static bool want_geometry(Lower *L, AstNode *call, Val v, const char *what, int64_t lo,
                          int64_t *out)
{
    if (!lower_want_int(L, call, v, what, lo, out))
        return false;
    if (*out <= 65535)
        return true;
    lower_error(L, call, "%s must be at most 65535, not %lld", what, (long long)*out);
    return false;
}

/* convolve2d(x[C, H, W], w[F, C, KH, KW], stride = 1, padding = 0) -> [F, OH, OW] */
static Val lower_convolve(Lower *L, AstNode *call, Val *a, bool *given)
{
    int64_t stride = 1, pad = 0;
    if (!want_image(L, call, a[0], 3, "convolve2d") ||
        !lower_want_tensor(L, call, a[1], "convolve2d") ||
        (given[2] && !want_geometry(L, call, a[2], "the stride", 1, &stride)) ||
        (given[3] && !want_geometry(L, call, a[3], "the padding", 0, &pad)))
        return val_err();
    const Shape *x = &a[0].t->shape, *w = &a[1].t->shape;
    if (x->rank != 3 || w->batched || w->rank != 4 || w->dim[1] != x->dim[0]) {
        lower_error(L, call, "convolve2d needs an image [channels, height, width] and kernels "
                    "[filters, channels, height, width] with as many channels, not %s and %s",
                    val_origin(L, a[0]), val_origin(L, a[1]));
        return val_err();
    }
    if (x->dim[1] + 2 * pad < w->dim[2] || x->dim[2] + 2 * pad < w->dim[3]) {
        lower_error(L, call, "the kernels %s are larger than the image %s with padding %lld",
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
        lower_error(L, call, "batch_normalize: %s must be a parameter [%lld] (one value per "
                    "channel), not %s", what, (long long)channels, val_desc(L, v));
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
        lower_error(L, call, "batch_normalize: momentum must be a number in [0, 1] and eps a "
                    "positive number");
        return val_err();
    }
    if (!lower_want_tensor(L, call, a[0], "batch_normalize"))
        return val_err();
    IrNode *x = a[0].t;
    if (!x->shape.batched || x->shape.rank < 1 || L->mode != MODE_MODEL) {
        lower_error(L, call, "batch_normalize works on the samples in a model: %s is not per "
                    "sample", val_origin(L, a[0]));
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
            lower_error(L, call, "batch_normalize: '%s' already holds another normalization's "
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
        lower_error(L, call, "a %lldx%lld window does not fit in %s", (long long)size,
                    (long long)size, val_origin(L, a[0]));
        return val_err();
    }
    Op op = b == BI_MAX_POOL2D ? OP_MAXPOOL : OP_AVGPOOL;
    return val_tensor(ir_pool(L->p, op, a[0].t, (int)size, (int)stride), call);
}

/* where(c, x, y): x where c is non-zero, else y; a number c chooses at compile time. */
static Val lower_where(Lower *L, AstNode *call, Val *a)
{
    if (a[0].kind == V_NUM)
        return a[0].num != 0 ? a[1] : a[2];
    if (!val_is_numeric(a[0]) || !val_is_numeric(a[1]) || !val_is_numeric(a[2])) {
        lower_error(L, call, "'where' needs numbers or tensors");
        return val_err();
    }
    IrNode *c = val_node(L, a[0]), *x = val_node(L, a[1]), *y = val_node(L, a[2]);
    Shape s1, s;
    if (!shape_broadcast(&x->shape, &y->shape, &s1) || !shape_broadcast(&s1, &c->shape, &s)) {
        lower_error(L, call, "shapes do not match in 'where': %s, %s and %s",
                    val_origin(L, a[0]), val_origin(L, a[1]), val_origin(L, a[2]));
        return val_err();
    }
    return val_tensor(ir_where(L->p, c, x, y), call);
}

/* pick(x[..., n], index[...]): the element of each vector of x that the index names. */
static Val lower_pick(Lower *L, AstNode *call, Val *a)
{
    if (!lower_want_tensor(L, call, a[0], "pick") || !val_is_numeric(a[1]))
        return val_err();
    IrNode *x = a[0].t, *idx = val_node(L, a[1]);
    Shape want = x->shape;
    want.rank--;
    want.batched = idx->shape.batched;
    if (x->shape.rank < 1 || idx->shape.rank != want.rank ||
        (idx->shape.rank &&
         memcmp(idx->shape.dim, want.dim, sizeof(int64_t) * (size_t)want.rank))) {
        lower_error(L, call, "pick needs an index for each vector of %s, but the index is %s",
                    val_origin(L, a[0]), val_origin(L, a[1]));
        return val_err();
    }
    note_target_index(L, call, idx, x->shape.dim[x->shape.rank - 1]);
    return val_tensor(ir_pick(L->p, x, idx), call);
}

/* onehot(index[...], n) -> [..., n] */
static Val lower_onehot(Lower *L, AstNode *call, Val *a)
{
    int64_t n;
    if (!val_is_numeric(a[0]) || !lower_want_int(L, call, a[1], "the number of classes", 1, &n))
        return val_err();
    IrNode *idx = val_node(L, a[0]);
    if (idx->shape.rank + 1 > IR_MAX_RANK) {
        lower_error(L, call, "onehot of %s has too many dimensions", val_origin(L, a[0]));
        return val_err();
    }
    note_target_index(L, call, idx, n);
    return val_tensor(ir_onehot(L->p, idx, n), call);
}

static Val lower_argmax(Lower *L, AstNode *call, Val *a)
{
    if (!lower_want_tensor(L, call, a[0], "argmax"))
        return val_err();
    if (a[0].t->shape.rank < 1) {
        lower_error(L, call, "argmax needs a vector, not %s", val_origin(L, a[0]));
        return val_err();
    }
    return val_tensor(ir_argmax(L->p, a[0].t), call);
}

/* dim(x, axis = -1): a size of x's sample, a number at compile time. */
static Val lower_dim(Lower *L, AstNode *call, Val *a, bool *given)
{
    if (!lower_want_tensor(L, call, a[0], "dim"))
        return val_err();
    const Shape *s = &a[0].t->shape;
    int64_t ax = -1;
    if (given[1]) {
        if (a[1].kind != V_NUM || a[1].num != floor(a[1].num)) {
            lower_error(L, call, "the axis of dim must be a whole number");
            return val_err();
        }
        ax = (int64_t)a[1].num;
    }
    if (ax < 0)
        ax += s->rank;
    if (ax < 0 || ax >= s->rank) {
        lower_error(L, call, "dim: axis out of range for %s", val_origin(L, a[0]));
        return val_err();
    }
    return val_num((double)s->dim[ax], call);
}

/* reshape(x, shape) and flatten(x): the same elements in another per-sample shape. */
static Val lower_reshape(Lower *L, AstNode *call, Builtin b, Val *a)
{
    if (!lower_want_tensor(L, call, a[0], sema_builtin_info(b)->name))
        return val_err();
    Shape to = {.rank = 1, .dim = {shape_size(&a[0].t->shape)}};
    if (b == BI_RESHAPE && !val_ok(lower_shape_list(L, call, a[1], &to)))
        return val_err();
    to.batched = a[0].t->shape.batched;
    if (shape_size(&to) != shape_size(&a[0].t->shape)) {
        lower_error(L, call, "cannot reshape %s to %s: the number of elements differs",
                    val_origin(L, a[0]), shape_str(&L->nnl->arena, &to));
        return val_err();
    }
    return val_tensor(ir_reshape(L->p, a[0].t, to), call);
}

/* drop(x, p): dropout of the samples in a training step. */
static Val lower_drop(Lower *L, AstNode *call, Val *a)
{
    if (!lower_want_tensor(L, call, a[0], "drop"))
        return val_err();
    if (a[1].kind != V_NUM || !(a[1].num >= 0 && a[1].num < 1)) {
        lower_error(L, call, "the probability of drop must be a number in [0, 1), not %s",
                    val_desc(L, a[1]));
        return val_err();
    }
    if (!a[0].t->shape.batched || (L->mode != MODE_MODEL && L->mode != MODE_OBJECTIVE)) {
        lower_error(L, call, "drop works on the samples of a training step: %s does not "
                    "depend on the model's input", val_origin(L, a[0]));
        return val_err();
    }
    return a[1].num == 0 ? a[0] : val_tensor(ir_dropout(L->p, a[0].t, a[1].num, -1), call);
}

/* rand() and randn(): random numbers of the parameter's shape, in its initializer. */
static Val lower_rand(Lower *L, AstNode *call, Builtin b)
{
    if (L->mode != MODE_INIT) {
        lower_error(L, call, "'%s' draws random numbers for initializers and is only known "
                    "there", call->name);
        return val_err();
    }
    return val_tensor(ir_leaf(L->p, b == BI_RAND ? OP_RAND : OP_RANDN, L->init_shape), call);
}

Val lower_builtin(Lower *L, Env *e, AstNode *call, Builtin b)
{
    Val a[BUILTIN_MAX_ARGS] = {0};
    bool given[BUILTIN_MAX_ARGS];
    int npos = builtin_args(L, e, call, b, a, given);
    if (npos < 0)
        return val_err();
    if (b >= BI_OP) /* exp, log, tanh...: ops.def's FN SCRIPT ops */
        return lower_unary_op(L, call, (Op)(b - BI_OP), a[0]);
    switch (b) {
    case BI_MIN:
    case BI_MAX:
        if (given[1])
            return lower_binary(L, call, b == BI_MAX ? OP_MAX : OP_MIN, a[0], a[1]);
        return lower_reduce(L, call, b, a[0], &a[2], given[2]);
    case BI_SUM: case BI_MEAN: case BI_LOGSUMEXP:
        return lower_reduce(L, call, b, a[0], &a[1], given[1]);
    case BI_WHERE:
        return lower_where(L, call, a);
    case BI_PICK:
        return lower_pick(L, call, a);
    case BI_ONEHOT:
        return lower_onehot(L, call, a);
    case BI_ARGMAX:
        return lower_argmax(L, call, a);
    case BI_DIM:
        return lower_dim(L, call, a, given);
    case BI_RESHAPE:
    case BI_FLATTEN:
        return lower_reshape(L, call, b, a);
    case BI_CONVOLVE2D:
        return lower_convolve(L, call, a, given);
    case BI_MAX_POOL2D:
    case BI_AVG_POOL2D:
        return lower_pool(L, call, b, a, given);
    case BI_BATCH_NORMALIZE:
        return lower_batch_norm(L, call, a, given);
    case BI_DROP:
        return lower_drop(L, call, a);
    case BI_RAND:
    case BI_RANDN:
        return lower_rand(L, call, b);
    default: /* the data sets (csv, idx, npy, split); it reports any other */
        return lower_data_call(L, call, b, a, given);
    }
}
