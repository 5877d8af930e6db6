/* autodiff.c — reverse-mode differentiation of the tensor graph.
 *
 * The objective is the batch mean of the per-sample loss, so the seed is 1/B on every
 * sample. Nodes are visited in reverse creation order (a reverse topological order); each
 * op's rule ad_NAME adds its operands' contributions. Contributions are summed back to the
 * operand's shape where the op broadcast it (unbroadcast).
 */
#include <math.h>
#include <string.h>

#include "nnlc_int.h"

typedef struct {
    IrProgram *p;
    IrNode **adj;   /* adjoint of each forward node, by id; NULL when zero */
    int n;          /* forward nodes */
} Ad;

/* Node ids follow creation order, so that dumps are the same whatever the C compiler:
 * a call never has two arguments that both create nodes (C leaves their order open). */

/* Sums `g` over the dims where `x` was broadcast, giving x's shape. */
static IrNode *ad_unbroadcast(IrProgram *p, IrNode *g, const Shape *x)
{
    if (shape_equal(&g->shape, x))
        return g;
    int mask = g->shape.batched && !x->batched ? 1 : 0;
    for (int i = 0; i < g->shape.rank; i++) {
        int xi = x->rank - g->shape.rank + i;
        int64_t xd = xi >= 0 ? x->dim[xi] : 1;
        if (xd == 1 && g->shape.dim[i] != 1)
            mask |= 2 << i;
    }
    IrNode *r = ir_reduce(p, OP_SUM, g, mask);
    return ir_reshape(p, r, *x);
}

static void ad_add(Ad *ad, IrNode *x, IrNode *contrib)
{
    if (!x->needs_grad || x->id >= ad->n)
        return;
    IrNode *c = ad_unbroadcast(ad->p, contrib, &x->shape);
    ad->adj[x->id] = ad->adj[x->id] ? ir_binary(ad->p, OP_ADD, ad->adj[x->id], c) : c;
}

#define A (y->in[0])
#define B (y->in[1])
#define P (ad->p)
typedef void AdRule(Ad *ad, IrNode *y, IrNode *g);

static void ad_none(Ad *ad, IrNode *y, IrNode *g) { (void)ad; (void)y; (void)g; }
#define ad_INPUT ad_none
#define ad_TARGET ad_none
#define ad_PARAM ad_none
#define ad_CONST ad_none
#define ad_VAR ad_none
#define ad_ARENA ad_none
#define ad_RAND ad_none
#define ad_RANDN ad_none
#define ad_SIGN ad_none
#define ad_FLOOR ad_none
#define ad_NOGRAD ad_none
#define ad_LT ad_none
#define ad_LE ad_none
#define ad_GT ad_none
#define ad_GE ad_none
#define ad_EQ ad_none
#define ad_NE ad_none
#define ad_ONEHOT ad_none
#define ad_ARGMAX ad_none
#define ad_BUFMASK ad_none
#define ad_CONV2D_DX ad_none  /* gradient ops: no second derivatives */
#define ad_CONV2D_DW ad_none
#define ad_MAXPOOL_DX ad_none
#define ad_AVGPOOL_DX ad_none

static IrNode *k(Ad *ad, double v) { return ir_const(ad->p, v); }
static IrNode *mul(Ad *ad, IrNode *a, IrNode *b) { return ir_binary(ad->p, OP_MUL, a, b); }

static void ad_NEG(Ad *ad, IrNode *y, IrNode *g) { ad_add(ad, A, ir_unary(P, OP_NEG, g)); }
static void ad_EXP(Ad *ad, IrNode *y, IrNode *g) { ad_add(ad, A, mul(ad, g, y)); }
static void ad_LOG(Ad *ad, IrNode *y, IrNode *g) { ad_add(ad, A, ir_binary(P, OP_DIV, g, A)); }
static void ad_ABS(Ad *ad, IrNode *y, IrNode *g) { ad_add(ad, A, mul(ad, g, ir_unary(P, OP_SIGN, A))); }
static void ad_BROADCAST(Ad *ad, IrNode *y, IrNode *g) { ad_add(ad, A, g); }
static void ad_ADD(Ad *ad, IrNode *y, IrNode *g) { ad_add(ad, A, g); ad_add(ad, B, g); }

/* d sqrt(x) = 0.5 / sqrt(x) */
static void ad_SQRT(Ad *ad, IrNode *y, IrNode *g)
{
    ad_add(ad, A, ir_binary(P, OP_DIV, mul(ad, g, k(ad, 0.5)), y));
}

/* d tanh(x) = 1 - tanh(x)^2 */
static void ad_TANH(Ad *ad, IrNode *y, IrNode *g)
{
    IrNode *one = k(ad, 1), *yy = mul(ad, y, y);
    ad_add(ad, A, mul(ad, g, ir_binary(P, OP_SUB, one, yy)));
}

/* d erf(x) = 2/sqrt(pi) exp(-x^2) */
static void ad_ERF(Ad *ad, IrNode *y, IrNode *g)
{
    IrNode *e = ir_unary(P, OP_EXP, ir_unary(P, OP_NEG, mul(ad, A, A)));
    ad_add(ad, A, mul(ad, g, mul(ad, k(ad, 2 / sqrt(M_PI)), e)));
}

static void ad_SIN(Ad *ad, IrNode *y, IrNode *g) { ad_add(ad, A, mul(ad, g, ir_unary(P, OP_COS, A))); }
static void ad_COS(Ad *ad, IrNode *y, IrNode *g)
{
    ad_add(ad, A, ir_unary(P, OP_NEG, mul(ad, g, ir_unary(P, OP_SIN, A))));
}

static void ad_SUB(Ad *ad, IrNode *y, IrNode *g)
{
    ad_add(ad, A, g);
    if (B->needs_grad)
        ad_add(ad, B, ir_unary(P, OP_NEG, g));
}

static void ad_MUL(Ad *ad, IrNode *y, IrNode *g)
{
    if (A->needs_grad)
        ad_add(ad, A, mul(ad, g, B));
    if (B->needs_grad)
        ad_add(ad, B, mul(ad, g, A));
}

/* y = a / b: da = g / b, db = -g y / b */
static void ad_DIV(Ad *ad, IrNode *y, IrNode *g)
{
    if (A->needs_grad)
        ad_add(ad, A, ir_binary(P, OP_DIV, g, B));
    if (B->needs_grad)
        ad_add(ad, B, ir_unary(P, OP_NEG, ir_binary(P, OP_DIV, mul(ad, g, y), B)));
}

/* y = a ^ b: da = g b a^(b-1), db = g y log(a) */
static void ad_POW(Ad *ad, IrNode *y, IrNode *g)
{
    if (A->needs_grad) {
        IrNode *pw = ir_binary(P, OP_POW, A, ir_binary(P, OP_SUB, B, k(ad, 1)));
        ad_add(ad, A, mul(ad, g, mul(ad, B, pw)));
    }
    if (B->needs_grad)
        ad_add(ad, B, mul(ad, g, mul(ad, y, ir_unary(P, OP_LOG, A))));
}

/* max and min: the gradient goes to the chosen operand, halved on a tie (as PyTorch's
 * maximum and minimum) */
static void ad_minmax(Ad *ad, IrNode *y, IrNode *g, Op wins)
{
    IrNode *won = ir_binary(P, wins, A, B), *half = k(ad, 0.5);
    IrNode *tie = mul(ad, half, ir_binary(P, OP_EQ, A, B));
    IrNode *share = ir_binary(P, OP_ADD, won, tie);
    if (A->needs_grad)
        ad_add(ad, A, mul(ad, g, share));
    if (B->needs_grad)
        ad_add(ad, B, mul(ad, g, ir_binary(P, OP_SUB, k(ad, 1), share)));
}
static void ad_MAX(Ad *ad, IrNode *y, IrNode *g) { ad_minmax(ad, y, g, OP_GT); }
static void ad_MIN(Ad *ad, IrNode *y, IrNode *g) { ad_minmax(ad, y, g, OP_LT); }

static void ad_WHERE(Ad *ad, IrNode *y, IrNode *g)
{
    IrNode *zero = k(ad, 0);
    if (y->in[1]->needs_grad)
        ad_add(ad, y->in[1], ir_where(P, y->in[0], g, zero));
    if (y->in[2]->needs_grad)
        ad_add(ad, y->in[2], ir_where(P, y->in[0], zero, g));
}

/* the reduced dims were kept as 1, so g broadcasts back */
static void ad_SUM(Ad *ad, IrNode *y, IrNode *g) { ad_add(ad, A, ir_broadcast(P, g, A->shape)); }

static void ad_RMAX(Ad *ad, IrNode *y, IrNode *g)
{
    IrNode *gb = ir_broadcast(P, g, A->shape);
    ad_add(ad, A, mul(ad, gb, ir_binary(P, OP_EQ, A, y)));
}

/* y = a @ b: da = g @ b^T, db = a^T @ g */
static void ad_MATMUL(Ad *ad, IrNode *y, IrNode *g)
{
    if (A->needs_grad)
        ad_add(ad, A, ir_reshape(P, ir_matmul(P, g, B, false, true), A->shape));
    if (B->needs_grad)
        ad_add(ad, B, ir_reshape(P, ir_matmul(P, A, g, true, false), B->shape));
}

/* y = x[index]: dx = onehot(index) * g */
static void ad_PICK(Ad *ad, IrNode *y, IrNode *g)
{
    int64_t n = A->shape.dim[A->shape.rank - 1];
    Shape s = g->shape;
    s.dim[s.rank++] = 1;
    IrNode *gs = g->shape.rank ? ir_reshape(P, g, s) : g; /* a scalar broadcasts as it is */
    ad_add(ad, A, mul(ad, ir_onehot(P, B, n), gs));
}

static void ad_RESHAPE(Ad *ad, IrNode *y, IrNode *g) { ad_add(ad, A, ir_reshape(P, g, A->shape)); }

/* the same mask: the same salt, the same element indices (g has y's shape) */
static void ad_DROPOUT(Ad *ad, IrNode *y, IrNode *g)
{
    ad_add(ad, A, ir_dropout(P, g, y->value, y->aux));
}

static void ad_CONV2D(Ad *ad, IrNode *y, IrNode *g)
{
    if (A->needs_grad)
        ad_add(ad, A, ir_call(P, OP_CONV2D_DX, A->shape, g, B, y->aux));
    if (B->needs_grad)
        ad_add(ad, B, ir_call(P, OP_CONV2D_DW, B->shape, A, g, y->aux));
}

static void ad_MAXPOOL(Ad *ad, IrNode *y, IrNode *g)
{
    ad_add(ad, A, ir_call(P, OP_MAXPOOL_DX, A->shape, A, g, y->aux));
}

static void ad_AVGPOOL(Ad *ad, IrNode *y, IrNode *g)
{
    ad_add(ad, A, ir_call(P, OP_AVGPOOL_DX, A->shape, g, NULL, y->aux));
}

#undef A
#undef B
#undef P

static AdRule *const ad_rules[OP_COUNT] = {
#define OP(name, text, arity, cls, kernel, memory, fn, how) [OP_##name] = ad_##name,
#include "ops.def"
#undef OP
};

void ad_backward(IrProgram *p)
{
    Ad ad = {.p = p, .n = p->nnodes};
    ad.adj = nnl_malloc(sizeof(IrNode *) * (size_t)ad.n);
    memset(ad.adj, 0, sizeof(IrNode *) * (size_t)ad.n);
    /* d(mean over the batch)/d(loss of one sample) = 1 / B */
    IrNode *one = ir_const(p, 1), *batch = ir_var(p, VAR_BATCH);
    ad.adj[p->loss->id] = ir_binary(p, OP_DIV, one, batch);
    for (int i = ad.n - 1; i >= 0; i--) {
        IrNode *y = p->nodes[i];
        if (!ad.adj[i] || !y->needs_grad)
            continue;
        IrNode *g = ir_broadcast(p, ad.adj[i], y->shape);
        ad_rules[y->op](&ad, y, g);
    }
    for (int i = 0; i < p->nparams; i++) {
        IrParam *prm = &p->params[i];
        IrNode *g = ad.adj[prm->node->id];
        prm->grad = ir_broadcast(p, g ? g : ir_const(p, 0), prm->shape);
        if (prm->buffer) /* its slot carries the new running value instead */
            prm->grad = prm->update;
    }
    nnl_dealloc(ad.adj);
}
