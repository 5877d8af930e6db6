/* codegen_elem.c — one element of an elementwise op, as LLVM instructions.
 *
 * cg_value gives a node's element at an iteration of a kernel's loops: loaded when the
 * node is in memory, otherwise computed from its operands' elements, each generated once
 * per loop body (a cache by node id). How an op's element is computed: ops.def's HOW
 * (an intrinsic, a libm function) or, for CODE, cg_compute's switch. Scalars computed from
 * numbers and the step alone are computed in double (cg_uniform).
 */
#include <math.h>
#include <string.h>

#include "codegen_int.h"

static LLVMValueRef cg_var(Cg *cg, const IrNode *n)
{
    if (n->index == VAR_TRAINING)
        return kT(cg, cg->key ? 1 : 0);
    LLVMValueRef v = n->index == VAR_BATCH ? cg->B : n->index == VAR_STEP ? cg->step : cg->epoch;
    if (!v) {
        diag_file_error(cg->nnl, NULL, "internal error: codegen: %s is not known in this entry "
                        "point", n->index == VAR_BATCH ? "B" : n->index == VAR_STEP ? "step"
                                                                                : "epoch");
        cg->failed = true;
        return kT(cg, 0);
    }
    return LLVMBuildSIToFP(cg->b, v, cg->T, "");
}

static LLVMValueRef cg_rand(Cg *cg, const IrNode *n)
{
    const char *name = n->op == OP_RAND ? "nnlrt_rand_uniform" : "nnlrt_rand_normal";
    LLVMValueRef f = cg_extern(cg, name, cg->f64, &cg->ptr, 1);
    LLVMValueRef r = LLVMBuildCall2(cg->b, LLVMFunctionType(cg->f64, &cg->ptr, 1, false), f,
                                    &cg->rng, 1, "");
    return cg->elem_size == 4 ? LLVMBuildFPTrunc(cg->b, r, cg->T, "") : r;
}

static LLVMValueRef cg_compare(Cg *cg, Op op, LLVMValueRef a, LLVMValueRef b)
{
    LLVMRealPredicate pr = op == OP_LT ? LLVMRealOLT : op == OP_LE ? LLVMRealOLE
                         : op == OP_GT ? LLVMRealOGT : op == OP_GE ? LLVMRealOGE
                         : op == OP_EQ ? LLVMRealOEQ : LLVMRealUNE;
    return cg_bool(cg, LLVMBuildFCmp(cg->b, pr, a, b, ""));
}

/* index[...] -> onehot[..., n]: compare the last loop index with the index value */
static LLVMValueRef cg_onehot(Cg *cg, IrNode *n, const Iter *it)
{
    Iter sub = *it;
    sub.nd--;
    sub.shape.rank--;
    LLVMValueRef idx = LLVMBuildFPToSI(cg->b, cg_value(cg, n->in[0], &sub), cg->i64, "");
    return cg_bool(cg, LLVMBuildICmp(cg->b, LLVMIntEQ, it->iv[it->nd - 1], idx, ""));
}

/* tanh in float32 from expf, which is several times faster than libm's tanhf (itself built
 * on expm1f): copysign((1 - t) / (1 + t), x) with t = exp(-2|x|), and below |x| = 1/16,
 * where 1 - t would cancel, its Taylor series to x^7 (the next term is < 3e-13 relative).
 * Worst error against tanh in double over [-20, 20]: 3.4e-7 relative (libm tanhf: 1.6e-7).
 * NaN stays NaN; large |x| gives exactly ±1. */
static LLVMValueRef cg_tanhf(Cg *cg, LLVMValueRef x)
{
    LLVMValueRef ax = cg_intrinsic(cg, "llvm.fabs", &x, 1);
    LLVMValueRef e = cg_fmul(cg, ax, kT(cg, -2.0));
    LLVMValueRef t = cg_intrinsic(cg, "llvm.exp", &e, 1);
    LLVMValueRef big = cg_fdiv(cg, cg_fsub(cg, kT(cg, 1.0), t), cg_fadd(cg, kT(cg, 1.0), t));
    LLVMValueRef args[2] = {big, x};
    big = cg_intrinsic(cg, "llvm.copysign", args, 2);
    LLVMValueRef x2 = cg_fmul(cg, x, x);
    LLVMValueRef poly = cg_fadd(cg, kT(cg, 2.0 / 15.0), cg_fmul(cg, x2, kT(cg, -17.0 / 315.0)));
    poly = cg_fadd(cg, kT(cg, -1.0 / 3.0), cg_fmul(cg, x2, poly));
    LLVMValueRef small = cg_fadd(cg, x, cg_fmul(cg, cg_fmul(cg, x, x2), poly));
    LLVMValueRef tiny = LLVMBuildFCmp(cg->b, LLVMRealOLT, ax, kT(cg, 0.0625), "");
    return LLVMBuildSelect(cg->b, tiny, small, big, "");
}

/* x·keep/(1 − p), keep = u >= p for u uniform on [0, 1) from a splitmix64 hash of the
 * step's key, the node's salt and the element's index in the batch. */
static LLVMValueRef cg_dropout(Cg *cg, const IrNode *n, LLVMValueRef x, const Iter *it)
{
    LLVMBuilderRef b = cg->b;
    LLVMValueRef idx = cg_index(cg, &n->shape, it);
    LLVMValueRef salt = k64(cg, (int64_t)((uint64_t)(n->aux + 1) * 0xD1B54A32D192ED03u));
    LLVMValueRef z = LLVMBuildXor(b, cg->key, salt, "");
    z = LLVMBuildAdd(b, z, LLVMBuildMul(b, idx, k64(cg, (int64_t)0x9E3779B97F4A7C15u), ""), "");
    static const uint64_t mul[2] = {0xBF58476D1CE4E5B9u, 0x94D049BB133111EBu};
    static const int shift[3] = {30, 27, 31};
    for (int i = 0; i < 3; i++) {
        z = LLVMBuildXor(b, z, LLVMBuildLShr(b, z, k64(cg, shift[i]), ""), "");
        if (i < 2)
            z = LLVMBuildMul(b, z, k64(cg, (int64_t)mul[i]), "");
    }
    /* the top 24 bits: exact in float32 */
    LLVMValueRef u = LLVMBuildUIToFP(b, LLVMBuildLShr(b, z, k64(cg, 40), ""), cg->T, "");
    LLVMValueRef keep = LLVMBuildFCmp(b, LLVMRealOGE, u, kT(cg, n->value * 16777216.0), "");
    LLVMValueRef scaled = cg_fmul(cg, x, kT(cg, 1 / (1 - n->value)));
    return LLVMBuildSelect(b, keep, scaled, kT(cg, 0), "");
}

/* 1 where the arena index is inside a buffer tensor's range, else 0 */
static LLVMValueRef cg_bufmask(Cg *cg, const Iter *it)
{
    LLVMBuilderRef b = cg->b;
    LLVMValueRef in = LLVMConstInt(LLVMInt1TypeInContext(cg->ctx), 0, false);
    for (int i = 0; i < cg->p->nparams; i++) {
        const IrParam *prm = &cg->p->params[i];
        if (!prm->buffer)
            continue;
        LLVMValueRef lo = LLVMBuildICmp(b, LLVMIntSGE, it->iv[0], k64(cg, prm->offset), "");
        LLVMValueRef hi = LLVMBuildICmp(b, LLVMIntSLT, it->iv[0],
                                        k64(cg, prm->offset + prm->size), "");
        in = LLVMBuildOr(b, in, LLVMBuildAnd(b, lo, hi, ""), "");
    }
    return LLVMBuildSelect(b, in, kT(cg, 1), kT(cg, 0), "");
}

/* How ops.def says an element of each op is computed, where it names a function. */
typedef struct {
    const char *intrinsic;  /* "llvm.exp" */
    const char *libm;       /* "erf": erff or erf */
} CgScalar;

#define INTRINSIC(f) {"llvm." #f, NULL}
#define LIBM(f) {NULL, #f}
#define CODE {NULL, NULL}
#define ROUTINE(symbol, sig, image, weights, out) {NULL, NULL}
static const CgScalar cg_scalars[OP_COUNT] = {
#define OP(name, text, arity, cls, kernel, memory, fn, how) how,
#include "ops.def"
#undef OP
};
#undef ROUTINE
#undef CODE
#undef LIBM
#undef INTRINSIC

LLVMValueRef cg_compute(Cg *cg, IrNode *n, const Iter *it)
{
    LLVMValueRef a = NULL, b = NULL, c = NULL, args[2];
    if (n->op == OP_ONEHOT)
        return cg_onehot(cg, n, it);
    if (n->in[0])
        a = cg_value(cg, n->in[0], it);
    if (n->in[1])
        b = cg_value(cg, n->in[1], it);
    if (n->in[2])
        c = cg_value(cg, n->in[2], it);
    switch (n->op) {
    case OP_CONST: return kT(cg, n->value);
    case OP_VAR: return cg_var(cg, n);
    case OP_RAND:
    case OP_RANDN: return cg_rand(cg, n);
    case OP_NEG: return fmf(LLVMBuildFNeg(cg->b, a, ""));
    case OP_TANH:
        if (cg->elem_size == 4)
            return cg_tanhf(cg, a);
        break; /* libm's tanh, as ops.def says */
    case OP_SIGN:
        return cg_fsub(cg, cg_compare(cg, OP_GT, a, kT(cg, 0)), cg_compare(cg, OP_LT, a, kT(cg, 0)));
    case OP_NOGRAD:
    case OP_BROADCAST: return a;
    case OP_DROPOUT: return cg->key ? cg_dropout(cg, n, a, it) : a;
    case OP_BUFMASK: return cg_bufmask(cg, it);
    case OP_ADD: return cg_fadd(cg, a, b);
    case OP_SUB: return cg_fsub(cg, a, b);
    case OP_MUL: return cg_fmul(cg, a, b);
    case OP_DIV: return cg_fdiv(cg, a, b);
    case OP_MAX:
    case OP_MIN: /* NaN-propagating, so that a NaN is never hidden by relu */
        args[0] = a, args[1] = b;
        return cg_intrinsic(cg, n->op == OP_MAX ? "llvm.maximum" : "llvm.minimum", args, 2);
    case OP_LT: case OP_LE: case OP_GT: case OP_GE: case OP_EQ: case OP_NE:
        return cg_compare(cg, n->op, a, b);
    case OP_WHERE:
        return LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealUNE, a, kT(cg, 0), ""), b, c, "");
    default: break;
    }
    /* ops.def's INTRINSIC(f) or LIBM(f) */
    args[0] = a, args[1] = b;
    const CgScalar *how = &cg_scalars[n->op];
    if (how->intrinsic)
        return cg_intrinsic(cg, how->intrinsic, args, ir_op_arity(n->op));
    if (how->libm && ir_op_arity(n->op) == 1)
        return cg_libm(cg, how->libm, a);
    diag_file_error(cg->nnl, NULL, "internal error: codegen: %s is not elementwise",
                    ir_op_name(n->op));
    cg->failed = true;
    return kT(cg, 0);
}

/* A scalar computed from numbers, the batch size, step and epoch only: a hyper-parameter
 * and its schedule. */
static bool cg_uniform(Cg *cg, const IrNode *n)
{
    if (cg->uniform[n->id])
        return cg->uniform[n->id] > 0;
    bool u = !n->shape.batched && n->shape.rank == 0;
    if (u && n->op != OP_CONST && n->op != OP_VAR) {
        u = ir_op_class(n->op) == OPC_ELEM && n->op != OP_ONEHOT;
        for (int i = 0; u && i < 3 && n->in[i]; i++)
            u = cg_uniform(cg, n->in[i]);
    }
    cg->uniform[n->id] = u ? 1 : -1;
    return u;
}

/* Such scalars are computed in double, as PyTorch computes them in Python, and rounded
 * once where they meet float32 data: 1 - 0.999^step in float32 would lose 1e-5. */
static LLVMValueRef cg_uniform_value(Cg *cg, IrNode *n, const Iter *it)
{
    LLVMTypeRef t = cg->T;
    int es = cg->elem_size;
    cg->in_double = true;
    cg->T = cg->f64;
    cg->elem_size = 8;
    LLVMValueRef v = cg_value(cg, n, it);
    cg->in_double = false;
    cg->T = t;
    cg->elem_size = es;
    return LLVMBuildFPTrunc(cg->b, v, cg->T, "");
}

LLVMValueRef cg_value(Cg *cg, IrNode *n, const Iter *it)
{
    if (cg->in_double) {
        if (!cg->dcache[n->id])
            cg->dcache[n->id] = cg_compute(cg, n, it);
        return cg->dcache[n->id];
    }
    if (cg->cache[n->id])
        return cg->cache[n->id];
    if (n->buf < 0 && cg->elem_size == 4 && n->op != OP_CONST && cg_uniform(cg, n)) {
        cg->cache[n->id] = cg_uniform_value(cg, n, it);
        return cg->cache[n->id];
    }
    /* Everything is generated in the innermost loop body, so a value stays valid for the
     * rest of it (onehot's operand, computed one dim up, does not depend on the last). */
    LLVMValueRef v = n->buf >= 0 ? cg_load(cg, n, it) : cg_compute(cg, n, it);
    cg->cache[n->id] = v;
    return v;
}

void cg_clear_cache(Cg *cg)
{
    memset(cg->cache, 0, sizeof(LLVMValueRef) * (size_t)cg->p->nnodes);
    memset(cg->dcache, 0, sizeof(LLVMValueRef) * (size_t)cg->p->nnodes);
}
