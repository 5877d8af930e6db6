/* ir.c — the tensor graph: shapes, node construction with folding, dump, verifier.
 *
 * Nodes are created in topological order and never modified afterwards, except for the
 * scheduling fields that fuse.c fills in. Builders assume valid operands: lower.c checks
 * shapes first and reports user errors there, with both locations.
 */
#include <math.h>
#include <string.h>

#include "nnlc_int.h"

/* ---- ops.def's columns ---- */

static const struct {
    const char *name;
    int arity;
    OpClass cls;
    KernelKind kernel;
    unsigned memory;
    bool script;        /* FN: SCRIPT */
} op_info[] = {
#define SCRIPT true
#define INTERNAL false
#define OP(name, text, arity, cls, kernel, memory, fn, how) \
    {text, arity, OPC_##cls, K_##kernel, memory, fn},
#include "ops.def"
#undef OP
#undef INTERNAL
#undef SCRIPT
};

OpClass ir_op_class(Op op) { return op_info[op].cls; }
const char *ir_op_name(Op op) { return op_info[op].name; }
int ir_op_arity(Op op) { return op_info[op].arity; }
KernelKind ir_op_kernel(Op op) { return op_info[op].kernel; }
bool ir_op_in_memory(Op op, int operand) { return op_info[op].memory >> operand & 1; }

bool ir_op_is_function(Op op) { return op_info[op].script; }

Op ir_op_function(const char *name)
{
    for (int op = 0; op < OP_COUNT; op++)
        if (op_info[op].script && strcmp(op_info[op].name, name) == 0)
            return (Op)op;
    return OP_COUNT;
}

/* HOW's ROUTINE(...) as an OpCall; every other HOW as none */
#define INTRINSIC(f) {0}
#define LIBM(f) {0}
#define CODE {0}
#define ROUTINE(symbol, sig, image, weights, out) \
    {#symbol, CALL_##sig, ROLE_##image, ROLE_##weights, ROLE_##out}
static const OpCall op_calls[] = {
#define OP(name, text, arity, cls, kernel, memory, fn, how) how,
#include "ops.def"
#undef OP
};
#undef ROUTINE
#undef CODE
#undef LIBM
#undef INTRINSIC

const OpCall *ir_op_call(Op op)
{
    return op_calls[op].symbol ? &op_calls[op] : NULL;
}

const IrNode *ir_call_role(const IrNode *n, int role)
{
    return role == ROLE_OUT ? n : role >= 0 ? n->in[role] : NULL;
}

/* Constant folding of the ops whose HOW names a libm function f (INTRINSIC(f), LIBM(f)):
 * f itself, of one or of two arguments as the op's arity. */
typedef double Fold1(double);
typedef double Fold2(double, double);
#define INTRINSIC(f) f
#define LIBM(f) f
#define CODE 0
#define ROUTINE(symbol, sig, image, weights, out) 0
#define FOLD_ARITY1_0(how) 0
#define FOLD_ARITY1_1(how) how
#define FOLD_ARITY1_2(how) 0
#define FOLD_ARITY1_3(how) 0
#define FOLD_ARITY2_0(how) 0
#define FOLD_ARITY2_1(how) 0
#define FOLD_ARITY2_2(how) how
#define FOLD_ARITY2_3(how) 0
static Fold1 *const op_fold1[] = {
#define OP(name, text, arity, cls, kernel, memory, fn, how) FOLD_ARITY1_##arity(how),
#include "ops.def"
#undef OP
};
static Fold2 *const op_fold2[] = {
#define OP(name, text, arity, cls, kernel, memory, fn, how) FOLD_ARITY2_##arity(how),
#include "ops.def"
#undef OP
};
#undef ROUTINE
#undef CODE
#undef LIBM
#undef INTRINSIC

/* ---- shapes ---- */

int64_t shape_size(const Shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->dim[i];
    return n;
}

bool shape_equal(const Shape *a, const Shape *b)
{
    if (a->batched != b->batched || a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i])
            return false;
    return true;
}

Shape shape_scalar(bool batched)
{
    return (Shape){.batched = batched};
}

const char *shape_str(Arena *a, const Shape *s)
{
    StrBuf b = {0};
    sb_putc(&b, '[');
    if (s->batched)
        sb_puts(&b, s->rank ? "B, " : "B");
    for (int i = 0; i < s->rank; i++)
        sb_printf(&b, i ? ", %lld" : "%lld", (long long)s->dim[i]);
    sb_putc(&b, ']');
    const char *r = arena_strndup(a, b.data, b.len);
    sb_free(&b);
    return r;
}

bool shape_broadcast(const Shape *a, const Shape *b, Shape *out)
{
    Shape r = {.batched = a->batched || b->batched};
    r.rank = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < r.rank; i++) {
        int ia = a->rank - r.rank + i, ib = b->rank - r.rank + i;
        int64_t da = ia >= 0 ? a->dim[ia] : 1, db = ib >= 0 ? b->dim[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        r.dim[i] = da == 1 ? db : da;
    }
    *out = r;
    return true;
}

/* ---- construction ---- */

static IrNode *ir_new(IrProgram *p, Op op, Shape shape)
{
    IrNode *n = arena_alloc(p->arena, sizeof *n);
    n->op = op;
    n->shape = shape;
    n->buf = -1;
    if (p->nnodes == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        IrNode **nodes = arena_alloc(p->arena, sizeof(IrNode *) * (size_t)p->cap);
        if (p->nnodes)
            memcpy(nodes, p->nodes, sizeof(IrNode *) * (size_t)p->nnodes);
        p->nodes = nodes;
    }
    n->id = p->nnodes;
    p->nodes[p->nnodes++] = n;
    return n;
}

static IrNode *ir_op(IrProgram *p, Op op, Shape shape, IrNode *a, IrNode *b, IrNode *c)
{
    IrNode *n = ir_new(p, op, shape);
    n->in[0] = a;
    n->in[1] = b;
    n->in[2] = c;
    for (int i = 0; i < 3; i++)
        if (n->in[i] && n->in[i]->needs_grad)
            n->needs_grad = true;
    /* the location of the first operand that has one */
    for (int i = 0; i < 3 && !n->src; i++)
        if (n->in[i]) {
            n->src = n->in[i]->src;
            n->off = n->in[i]->off;
        }
    return n;
}

IrNode *ir_leaf(IrProgram *p, Op op, Shape shape)
{
    return ir_new(p, op, shape);
}

IrNode *ir_const(IrProgram *p, double v)
{
    IrNode *n = ir_new(p, OP_CONST, shape_scalar(false));
    n->value = v;
    return n;
}

IrNode *ir_var(IrProgram *p, VarKind v)
{
    IrNode *n = ir_new(p, OP_VAR, shape_scalar(false));
    n->index = v;
    return n;
}

static bool is_const(const IrNode *n, double v)
{
    return n->op == OP_CONST && n->value == v;
}

/* The ops of HOW CODE here; the others from their libm function (op_fold1, op_fold2). */
double ir_fold_unary(Op op, double a)
{
    switch (op) {
    case OP_NEG: return -a;
    case OP_SIGN: return (a > 0) - (a < 0);
    default: return op_fold1[op] ? op_fold1[op](a) : a;
    }
}

double ir_fold_binary(Op op, double a, double b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_MAX: return isnan(a) || a > b ? a : b;
    case OP_MIN: return isnan(a) || a < b ? a : b;
    case OP_LT: return a < b;
    case OP_LE: return a <= b;
    case OP_GT: return a > b;
    case OP_GE: return a >= b;
    case OP_EQ: return a == b;
    case OP_NE: return a != b;
    default: return op_fold2[op] ? op_fold2[op](a, b) : a;
    }
}

/* sigmoid(z) as the stdlib writes it: 1 / (1 + exp(-z)). Returns z or NULL. */
static IrNode *match_sigmoid(IrNode *n)
{
    if (n->op != OP_DIV || !is_const(n->in[0], 1))
        return NULL;
    IrNode *d = n->in[1];
    if (d->op != OP_ADD || !is_const(d->in[0], 1) || d->in[1]->op != OP_EXP)
        return NULL;
    IrNode *e = d->in[1]->in[0];
    return e->op == OP_NEG ? e->in[0] : NULL;
}

/* softplus(t) = max(t, 0) + log(1 + exp(-|t|)), which never overflows */
static IrNode *ir_softplus(IrProgram *p, IrNode *t)
{
    IrNode *neg_abs = ir_unary(p, OP_NEG, ir_unary(p, OP_ABS, t));
    IrNode *one = ir_const(p, 1), *e = ir_unary(p, OP_EXP, neg_abs);
    IrNode *l = ir_unary(p, OP_LOG, ir_binary(p, OP_ADD, one, e));
    return ir_binary(p, OP_ADD, ir_binary(p, OP_MAX, t, ir_const(p, 0)), l);
}

IrNode *ir_unary(IrProgram *p, Op op, IrNode *a)
{
    if (a->op == OP_CONST && op != OP_NOGRAD && op != OP_BROADCAST)
        return ir_const(p, ir_fold_unary(op, a->value));
    if (op == OP_NEG && a->op == OP_NEG)
        return a->in[0];
    if (op == OP_LOG) {
        /* log(sigmoid(z)) = -softplus(-z); log(1 - sigmoid(z)) = -softplus(z): this is
         * how bce on a sigmoid output becomes the stable logits form. */
        IrNode *z = match_sigmoid(a);
        if (z)
            return ir_unary(p, OP_NEG, ir_softplus(p, ir_unary(p, OP_NEG, z)));
        if (a->op == OP_SUB && is_const(a->in[0], 1) && (z = match_sigmoid(a->in[1])))
            return ir_unary(p, OP_NEG, ir_softplus(p, z));
    }
    IrNode *n = ir_op(p, op, a->shape, a, NULL, NULL);
    if (op == OP_NOGRAD || op == OP_SIGN || op == OP_FLOOR)
        n->needs_grad = false;
    return n;
}

IrNode *ir_binary(IrProgram *p, Op op, IrNode *a, IrNode *b)
{
    Shape s;
    if (!shape_broadcast(&a->shape, &b->shape, &s))
        return NULL;
    if (a->op == OP_CONST && b->op == OP_CONST)
        return ir_const(p, ir_fold_binary(op, a->value, b->value));
    /* identities that keep graphs small; only where the shape does not change */
    if (shape_equal(&s, &a->shape)) {
        if ((op == OP_ADD || op == OP_SUB) && is_const(b, 0))
            return a;
        if ((op == OP_MUL || op == OP_DIV || op == OP_POW) && is_const(b, 1))
            return a;
    }
    if (shape_equal(&s, &b->shape)) {
        if (op == OP_ADD && is_const(a, 0))
            return b;
        if (op == OP_MUL && is_const(a, 1))
            return b;
    }
    if (op == OP_POW && is_const(b, 2)) /* as PyTorch computes x ** 2 */
        return ir_binary(p, OP_MUL, a, a);
    IrNode *n = ir_op(p, op, s, a, b, NULL);
    if (op >= OP_LT && op <= OP_NE)
        n->needs_grad = false;
    return n;
}

IrNode *ir_where(IrProgram *p, IrNode *c, IrNode *a, IrNode *b)
{
    Shape s1, s;
    if (!shape_broadcast(&a->shape, &b->shape, &s1) || !shape_broadcast(&s1, &c->shape, &s))
        return NULL;
    if (c->op == OP_CONST && shape_equal(&s, &(c->value != 0 ? a : b)->shape))
        return c->value != 0 ? a : b;
    IrNode *n = ir_op(p, OP_WHERE, s, c, a, b);
    n->needs_grad = a->needs_grad || b->needs_grad;
    return n;
}

IrNode *ir_broadcast(IrProgram *p, IrNode *a, Shape to)
{
    if (shape_equal(&a->shape, &to))
        return a;
    return ir_op(p, OP_BROADCAST, to, a, NULL, NULL);
}

IrNode *ir_reduce(IrProgram *p, Op op, IrNode *a, int mask)
{
    Shape s = a->shape;
    if ((mask & 1) && s.batched)
        s.batched = false;
    for (int i = 0; i < s.rank; i++)
        if (mask & (2 << i))
            s.dim[i] = 1;
    if (shape_equal(&s, &a->shape) && !(mask & 1 && a->shape.batched))
        return a;
    IrNode *n = ir_op(p, op, s, a, NULL, NULL);
    n->aux = mask;
    if (op == OP_RMAX)
        n->needs_grad = a->needs_grad;
    return n;
}

IrNode *ir_reshape(IrProgram *p, IrNode *a, Shape to)
{
    if (shape_equal(&a->shape, &to))
        return a;
    if (a->op == OP_RESHAPE)
        a = a->in[0];
    if (shape_equal(&a->shape, &to))
        return a;
    return ir_op(p, OP_RESHAPE, to, a, NULL, NULL);
}

IrNode *ir_sum_all(IrProgram *p, IrNode *a, bool batch)
{
    int mask = batch ? 1 : 0;
    for (int i = 0; i < a->shape.rank; i++)
        mask |= 2 << i;
    IrNode *r = ir_reduce(p, OP_SUM, a, mask);
    return ir_reshape(p, r, shape_scalar(r->shape.batched));
}

void ir_matrix_dims(const IrNode *n, int64_t *rows, int64_t *cols)
{
    const Shape *s = &n->shape;
    if (s->batched) {
        *rows = -1;
        *cols = shape_size(s);
    } else if (s->rank == 2) {
        *rows = s->dim[0];
        *cols = s->dim[1];
    } else {
        *rows = 1;
        *cols = shape_size(s);
    }
}

/* C = op(A) @ op(B). A batched operand is the matrix [B, per-sample size]. The result is
 * batched when its rows are B; otherwise a matrix [m, n] (or a vector when m is 1 and
 * neither operand was a matrix). */
IrNode *ir_matmul(IrProgram *p, IrNode *a, IrNode *b, bool ta, bool tb)
{
    int64_t ar, ac, br, bc;
    ir_matrix_dims(a, &ar, &ac);
    ir_matrix_dims(b, &br, &bc);
    int64_t m = ta ? ac : ar, n = tb ? br : bc;
    Shape s = {0};
    if (m == -1) {
        s.batched = true;
        s.rank = 1;
        s.dim[0] = n;
    } else if (m == 1 && a->shape.rank < 2 && !a->shape.batched) {
        s.rank = 1;
        s.dim[0] = n;
    } else {
        s.rank = 2;
        s.dim[0] = m;
        s.dim[1] = n;
    }
    IrNode *r = ir_op(p, OP_MATMUL, s, a, b, NULL);
    r->aux = (ta ? 1 : 0) | (tb ? 2 : 0);
    return r;
}

IrNode *ir_dropout(IrProgram *p, IrNode *x, double prob, int salt)
{
    IrNode *r = ir_op(p, OP_DROPOUT, x->shape, x, NULL, NULL);
    r->value = prob;
    r->aux = salt < 0 ? r->id : salt;
    return r;
}

IrNode *ir_conv2d(IrProgram *p, IrNode *x, IrNode *w, int stride, int pad)
{
    Shape s = {.batched = x->shape.batched, .rank = 3};
    s.dim[0] = w->shape.dim[0];
    s.dim[1] = (x->shape.dim[1] + 2 * pad - w->shape.dim[2]) / stride + 1;
    s.dim[2] = (x->shape.dim[2] + 2 * pad - w->shape.dim[3]) / stride + 1;
    IrNode *r = ir_op(p, OP_CONV2D, s, x, w, NULL);
    r->aux = stride | pad << 16;
    return r;
}

IrNode *ir_pool(IrProgram *p, Op op, IrNode *x, int size, int stride)
{
    Shape s = x->shape;
    s.dim[s.rank - 2] = (s.dim[s.rank - 2] - size) / stride + 1;
    s.dim[s.rank - 1] = (s.dim[s.rank - 1] - size) / stride + 1;
    IrNode *r = ir_op(p, op, s, x, NULL, NULL);
    r->aux = size | stride << 16;
    return r;
}

IrNode *ir_call(IrProgram *p, Op op, Shape shape, IrNode *a, IrNode *b, int aux)
{
    IrNode *r = ir_op(p, op, shape, a, b, NULL);
    r->aux = aux;
    return r;
}

IrNode *ir_pick(IrProgram *p, IrNode *x, IrNode *index)
{
    Shape s = x->shape;
    s.rank--;
    s.batched = x->shape.batched || index->shape.batched;
    return ir_op(p, OP_PICK, s, x, index, NULL);
}

IrNode *ir_argmax(IrProgram *p, IrNode *x)
{
    Shape s = x->shape;
    s.rank--;
    IrNode *n = ir_op(p, OP_ARGMAX, s, x, NULL, NULL);
    n->needs_grad = false;
    return n;
}

IrNode *ir_onehot(IrProgram *p, IrNode *index, int64_t n)
{
    Shape s = index->shape;
    s.dim[s.rank++] = n;
    IrNode *r = ir_op(p, OP_ONEHOT, s, index, NULL, NULL);
    r->needs_grad = false;
    return r;
}

/* ---- dump and verifier ---- */

void ir_dump_node(StrBuf *out, const IrNode *n)
{
    Arena tmp = {0};
    sb_printf(out, "%%%d = %s", n->id, ir_op_name(n->op));
    for (int i = 0; i < 3 && n->in[i]; i++)
        sb_printf(out, "%s%%%d", i ? ", " : " ", n->in[i]->id);
    switch (n->op) {
    case OP_CONST: sb_printf(out, " %.9g", n->value); break;
    case OP_VAR:
        sb_puts(out, n->index == VAR_BATCH ? " B" : n->index == VAR_STEP ? " step"
                     : n->index == VAR_EPOCH ? " epoch" : " training");
        break;
    case OP_ARENA:
        if (n->index == ARENA_STATE)
            sb_printf(out, " state%d", n->aux);
        else
            sb_puts(out, n->index == ARENA_PARAMS ? " params" : " grads");
        break;
    case OP_PARAM: sb_printf(out, " #%d", n->index); break;
    case OP_SUM:
    case OP_RMAX: sb_printf(out, " dims=0x%x", n->aux); break;
    case OP_MATMUL:
        if (n->aux)
            sb_printf(out, " %s%s", n->aux & 1 ? "tA" : "", n->aux & 2 ? "tB" : "");
        break;
    default: break;
    }
    sb_printf(out, " : %s", shape_str(&tmp, &n->shape));
    if (n->src) {
        LineCol lc = source_linecol(n->src, n->off);
        sb_printf(out, "  @%u:%u", lc.line, lc.col);
    }
    sb_putc(out, '\n');
    arena_free(&tmp);
}

static bool ir_verify_node(const IrNode *n, const char **why)
{
    int arity = ir_op_arity(n->op);
    for (int i = 0; i < 3; i++) {
        if ((i < arity) != (n->in[i] != NULL)) {
            *why = "wrong number of operands";
            return false;
        }
        if (n->in[i] && n->in[i]->id >= n->id) {
            *why = "operand defined after its use";
            return false;
        }
    }
    if (n->shape.rank < 0 || n->shape.rank > IR_MAX_RANK) {
        *why = "rank out of range";
        return false;
    }
    for (int i = 0; i < n->shape.rank; i++)
        if (n->shape.dim[i] < 1) {
            *why = "empty dimension";
            return false;
        }
    if (ir_op_class(n->op) == OPC_ELEM && n->op != OP_ONEHOT) {
        for (int i = 0; i < arity; i++) {
            Shape s;
            if (!shape_broadcast(&n->in[i]->shape, &n->shape, &s) || !shape_equal(&s, &n->shape)) {
                *why = "operand does not broadcast to the result";
                return false;
            }
        }
    }
    if (n->op == OP_RESHAPE && shape_size(&n->shape) != shape_size(&n->in[0]->shape)) {
        *why = "reshape changes the number of elements";
        return false;
    }
    return true;
}

bool ir_verify(Nnl *nnl, const IrProgram *p)
{
    for (int i = 0; i < p->nnodes; i++) {
        const char *why = NULL;
        if (p->nodes[i]->id != i) {
            why = "node numbering is broken";
        } else if (!ir_verify_node(p->nodes[i], &why)) {
            StrBuf b = {0};
            ir_dump_node(&b, p->nodes[i]);
            diag_file_error(nnl, NULL, "internal error: IR verifier: %s in %s", why, b.data);
            sb_free(&b);
            return false;
        }
        if (why) {
            diag_file_error(nnl, NULL, "internal error: IR verifier: %s", why);
            return false;
        }
    }
    return true;
}
