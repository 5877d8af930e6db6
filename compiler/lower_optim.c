/* lower_optim.c — the optimizer's update of the parameter and state arenas. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nnlc_int.h"
#include "parser.h"

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

/* `state NAME = number`: an arena of the parameters' shape, starting from the number. */
static bool optim_state(Lower *L, Env *env, AstNode *s, Shape arena, IrNode **leaves,
                        const char **names)
{
    IrProgram *p = L->p;
    Val init = lower_expr(L, env, s->rhs);
    if (!val_ok(init) || init.kind != V_NUM) {
        if (val_ok(init))
            lower_error(L, s->rhs, "a state starts from a number, not %s", val_desc(L, init));
        return false;
    }
    if (s->shape.len || p->nstates >= 32) {
        lower_error(L, s, s->shape.len ? "a state has the shape of each parameter; it takes "
                    "no size" : "too many states (the limit is 32)");
        return false;
    }
    int k = p->nstates++;
    p->new_states = nnl_realloc(p->new_states, sizeof(IrNode *) * (size_t)p->nstates);
    p->state_init = nnl_realloc(p->state_init, sizeof(double) * (size_t)p->nstates);
    p->state_init[k] = init.num;
    names[k] = s->name;
    IrNode *leaf = ir_leaf(p, OP_ARENA, arena);
    leaf->index = ARENA_STATE;
    leaf->aux = k;
    leaves[k] = leaf;
    IrNode *cur = leaf;
    if (init.num != 0) { /* the arenas start at 0: the first step sees `init` */
        IrNode *stp = ir_var(p, VAR_STEP), *one = ir_const(p, 1);
        IrNode *first = ir_binary(p, OP_EQ, stp, one);
        cur = ir_where(p, first, ir_const(p, init.num), leaf);
    }
    env_bind(env, s->name, val_tensor(cur, s));
    return true;
}

/* `NAME = expr` or `NAME op= expr`: numbers, or tensors element by element. */
static bool optim_assign(Lower *L, Env *env, AstNode *s)
{
    Val v = lower_expr(L, env, s->rhs);
    if (val_ok(v) && s->op != TK_ASSIGN) {
        Val *old = env_find(env, s->name);
        Val cur = old ? *old : lower_builtin_value(L, s, sema_builtin_value(s->name));
        v = lower_binary(L, s, lower_token_op(s->op), cur, v);
    }
    if (!val_ok(v))
        return false;
    if (!val_is_numeric(v) ||
        (v.kind == V_TENSOR && (v.t->shape.batched || v.t->shape.rank > 1))) {
        lower_error(L, s, "an optimizer works on numbers, element by element; '%s' is %s",
                    s->name, val_desc(L, v));
        return false;
    }
    env_bind(env, s->name, v);
    return true;
}

/* The value of a hyper-parameter at the first step (step 1, epoch 0), when it is a number
 * or an expression of numbers, step and epoch; false when it is not known before running. */
static bool optim_value_at(const IrNode *n, double step, double epoch, double *out)
{
    if (n->shape.rank != 0 || n->shape.batched || n->needs_grad)
        return false;
    if (n->op == OP_CONST) {
        *out = n->value;
        return true;
    }
    if (n->op == OP_VAR) {
        *out = n->index == VAR_STEP ? step : epoch;
        return n->index == VAR_STEP || n->index == VAR_EPOCH;
    }
    if (ir_op_class(n->op) != OPC_ELEM)
        return false;
    double v[3];
    int arity = ir_op_arity(n->op);
    for (int i = 0; i < arity; i++)
        if (!n->in[i] || !optim_value_at(n->in[i], step, epoch, &v[i]))
            return false;
    if (n->op == OP_WHERE)
        *out = v[0] != 0 ? v[1] : v[2];
    else if (arity == 1)
        *out = ir_fold_unary(n->op, v[0]);
    else if (arity == 2)
        *out = ir_fold_binary(n->op, v[0], v[1]);
    else
        return false;
    return true;
}

/* The ranges PyTorch's optimizers accept for the standard library's hyper-parameters
 * (docs/optimizers.md); eps must be positive (PyTorch accepts 0), as the division it
 * guards needs: Adam's first step divides 0 by 0 where a gradient is 0. */
static const struct {
    const char *name;
    double lo, hi;
    bool lo_open, hi_open;
    const char *rule;
} optim_ranges[] = {
    {"lr", 0, INFINITY, false, true, "must be >= 0 (PyTorch's rule)"},
    {"momentum", 0, INFINITY, false, true, "must be >= 0 (PyTorch's rule)"},
    {"weight_decay", 0, INFINITY, false, true, "must be >= 0 (PyTorch's rule)"},
    {"lr_decay", 0, INFINITY, false, true, "must be >= 0 (PyTorch's rule)"},
    {"initial_accumulator_value", 0, INFINITY, false, true, "must be >= 0 (PyTorch's rule)"},
    {"momentum_decay", 0, INFINITY, false, true, "must be >= 0 (PyTorch's rule)"},
    {"alpha", 0, INFINITY, false, true, "must be >= 0 (PyTorch's rule)"},
    {"beta1", 0, 1, false, true, "must be in [0, 1) (PyTorch's rule)"},
    {"beta2", 0, 1, false, true, "must be in [0, 1) (PyTorch's rule)"},
    {"rho", 0, 1, false, false, "must be in [0, 1] (PyTorch's rule)"},
    {"eps", 0, INFINITY, true, true, "must be > 0 (it keeps a division from 0 / 0)"},
    {"etaminus", 0, 1, true, true, "must be in (0, 1) (PyTorch's rule)"},
    {"etaplus", 1, INFINITY, true, true, "must be > 1 (PyTorch's rule)"},
};

enum { OPTIM_MAX_CHECKED = 1000000 }; /* steps of a run whose schedules are checked */

/* Whether x is in range r; else reports it at argument a (`when`: at which step). */
static bool optim_in_range(Lower *L, size_t r, const AstNode *a, double x, const char *when)
{
    double lo = optim_ranges[r].lo, hi = optim_ranges[r].hi;
    if ((optim_ranges[r].lo_open ? x > lo : x >= lo) && (optim_ranges[r].hi_open ? x < hi : x <= hi))
        return true;
    lower_error(L, a->rhs, "%s %s, not %g%s", optim_ranges[r].name, optim_ranges[r].rule, x, when);
    return false;
}

/* A schedule n (an expression of step and epoch) within range r at every step of the run
 * the train block describes: epochs of ceil(n_train / batch) steps, the step counted from
 * 1, the epoch from 0 (docs/language.md). Runs of more than OPTIM_MAX_CHECKED steps are
 * checked at that many steps spread over them, and at the last. Nothing is checked when
 * the data was not read. */
static bool optim_check_run(Lower *L, size_t r, const AstNode *a, const IrNode *n)
{
    const TrainSpec *spec = L->spec;
    int64_t batch = spec->config.batch > 0 ? spec->config.batch : spec->n_train;
    if (spec->n_train <= 0 || batch <= 0 || spec->config.epochs <= 0)
        return true;
    int64_t per_epoch = (spec->n_train + batch - 1) / batch;
    if (spec->config.epochs > INT64_MAX / per_epoch)
        return true;
    int64_t steps = spec->config.epochs * per_epoch;
    int64_t stride = steps > OPTIM_MAX_CHECKED ? steps / OPTIM_MAX_CHECKED : 1;
    for (int64_t s = 2; s <= steps; s = s + stride > steps && s < steps ? steps : s + stride) {
        double x;
        int64_t epoch = (s - 1) / per_epoch;
        if (!optim_value_at(n, (double)s, (double)epoch, &x))
            return true;
        char when[128];
        snprintf(when, sizeof when, " (its value at step %lld, in epoch %lld of %lld)",
                 (long long)s, (long long)epoch + 1, (long long)spec->config.epochs);
        if (!optim_in_range(L, r, a, x, when))
            return false;
    }
    return true;
}

/* The hyper-parameters the user's call of a standard library optimizer gives, each within
 * the range PyTorch accepts, at the first step, and a schedule at every step of the run;
 * false after reporting at the argument. */
static bool optim_check_ranges(Lower *L, Env *env, const AstNode *d, const AstNode *call)
{
    if (!call || call->kind != AST_CALL || !d->src || !d->src->is_stdlib)
        return true;
    int pos = 0;
    for (int i = 0; i < call->args.len; i++) {
        const AstNode *a = call->args.items[i];
        int k = a->name ? -1 : pos++;
        const char *name = a->name ? a->name
                         : k < d->params.len ? d->params.items[k]->name : NULL;
        Val *v = name ? env_find(env, name) : NULL;
        double x;
        if (!v || !(v->kind == V_NUM ? (x = v->num, true)
                    : v->kind == V_TENSOR && optim_value_at(v->t, 1, 0, &x)))
            continue;
        for (size_t r = 0; r < sizeof optim_ranges / sizeof optim_ranges[0]; r++)
            if (strcmp(optim_ranges[r].name, name) == 0 &&
                (!optim_in_range(L, r, a, x, v->kind == V_NUM ? "" : " (its value at the first step)") ||
                 (v->kind == V_TENSOR && !optim_check_run(L, r, a, v->t))))
                return false;
    }
    return true;
}

bool lower_optimizer(Lower *L)
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
    /* the train block's optimizer key: what an error in the optimizer's body notes */
    L->calls[L->depth++] = ref;
    L->mode = MODE_GLOBAL; /* hyper-parameters: numbers, or expressions of epoch and step */
    bool good = lower_bind_args(L, &env, &global, d, ref->kind == AST_CALL ? ref : NULL, NULL, 0);
    env_free(&global);
    good = good && optim_check_ranges(L, &env, d, ref);
    L->mode = MODE_OPT;
    const char *state_names[32];
    for (int i = 0; good && i < d->body.len; i++) {
        AstNode *s = d->body.items[i];
        if (s->kind == AST_STATE) {
            good = optim_state(L, &env, s, arena, state_leaves, state_names);
        } else if (s->kind == AST_ASSIGN) {
            good = optim_assign(L, &env, s);
        } else {
            lower_error(L, s, "'%s' is not allowed in an optimizer", ast_kind_name(s->kind));
            good = false;
        }
    }
    if (good) {
        Val *np = env_find(&env, "param");
        if (!np) {
            lower_error(L, d, "optimizer '%s' never updates 'param'", d->name);
            good = false;
        } else {
            p->new_params = ir_broadcast(p, val_node(L, *np), arena);
            for (int k = 0; k < p->nstates; k++)
                p->new_states[k] = ir_broadcast(p, val_node(L, *env_find(&env, state_names[k])),
                                                arena);
            if (bufmask) { /* buffers take their new values; their states stay */
                p->new_params = ir_where(p, bufmask, raw_grads, p->new_params);
                for (int k = 0; k < p->nstates; k++)
                    p->new_states[k] = ir_where(p, bufmask, state_leaves[k], p->new_states[k]);
            }
        }
    }
    env_free(&env);
    L->depth--;
    L->mode = MODE_GLOBAL;
    return good;
}
