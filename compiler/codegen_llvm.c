/* codegen_llvm.c — kernels to an LLVM module (LLVM C API).
 *
 * One function per entry point (nnl_init, nnl_grad, nnl_eval, nnl_update; signatures in
 * runtime/nnlrt.h). Each kernel becomes a loop nest over its iteration space, the batch
 * dimension outermost with the runtime size B; an operand's index is its own row-major
 * offset with stride 0 on the dims it is broadcast along. Elementwise subexpressions are
 * generated once per iteration (a cache by node id), so a loop with several outputs shares
 * them (codegen_elem.c). Matrix products call cblas_?gemm, or an inline loop when small;
 * runtime-routine ops their routine (ops.def's ROUTINE).
 * Fast-math flags: reassoc contract arcp afn nsz on arithmetic, never nnan/ninf.
 */
#include <math.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/DebugInfo.h>

#include "codegen_int.h"

enum { CG_INLINE_GEMM = 1 << 15 };

/* ---- helpers ---- */

LLVMValueRef cg_intrinsic(Cg *cg, const char *name, LLVMValueRef *args, int n)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef types[1] = {cg->T};
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, types, 1);
    LLVMTypeRef ft = LLVMIntrinsicGetType(cg->ctx, id, types, 1);
    return LLVMBuildCall2(cg->b, ft, f, args, (unsigned)n, "");
}

LLVMValueRef cg_extern(Cg *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params,
                              int n)
{
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
    if (!f)
        f = LLVMAddFunction(cg->mod, name, LLVMFunctionType(ret, params, (unsigned)n, false));
    return f;
}

/* A libm function of the element type: tanhf or tanh. */
LLVMValueRef cg_libm(Cg *cg, const char *name, LLVMValueRef x)
{
    char full[32];
    snprintf(full, sizeof full, "%s%s", name, cg->elem_size == 4 ? "f" : "");
    LLVMTypeRef t = cg->T;
    LLVMValueRef f = cg_extern(cg, full, t, &t, 1);
    return LLVMBuildCall2(cg->b, LLVMFunctionType(t, &t, 1, false), f, &x, 1, "");
}

LLVMValueRef cg_bool(Cg *cg, LLVMValueRef i1)
{
    return LLVMBuildUIToFP(cg->b, i1, cg->T, "");
}

/* ---- loops: do-while over [0, count), count >= 1 ---- */

typedef struct {
    LLVMBasicBlockRef header;
    LLVMValueRef phi, count;
    int64_t most;        /* the largest trip count it can have */
} Loop;

enum { CG_SMALL_LOOP = 16 }; /* loops this short are not worth vectorizing */

/* !llvm.loop metadata that keeps a loop from being unrolled (it may still be vectorized):
 * a fully unrolled inner loop of 84 makes the vectorizer turn to the loop outside it, with
 * gathers across rows. */
static void cg_loop_no_unroll(Cg *cg, LLVMValueRef br)
{
    LLVMMetadataRef self = LLVMTemporaryMDNode(cg->ctx, NULL, 0);
    LLVMMetadataRef keep[1] = {LLVMMDStringInContext2(cg->ctx, "llvm.loop.unroll.disable", 24)};
    LLVMMetadataRef ops[2] = {self, LLVMMDNodeInContext2(cg->ctx, keep, 1)};
    LLVMMetadataRef loop = LLVMMDNodeInContext2(cg->ctx, ops, 2);
    LLVMMetadataReplaceAllUsesWith(self, loop);
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(cg->ctx, "llvm.loop", 9),
                    LLVMMetadataAsValue(cg->ctx, loop));
}

/* !llvm.loop metadata that turns vectorization, interleaving and unrolling off: short loops
 * would only grow the code (and the compile time) with vector bodies that never run. */
static void cg_loop_scalar(Cg *cg, LLVMValueRef br)
{
    LLVMMetadataRef self = LLVMTemporaryMDNode(cg->ctx, NULL, 0);
    LLVMMetadataRef off[2] = {
        LLVMMDStringInContext2(cg->ctx, "llvm.loop.vectorize.enable", 26),
        LLVMValueAsMetadata(LLVMConstInt(LLVMInt1TypeInContext(cg->ctx), 0, false))};
    LLVMMetadataRef one[2] = {
        LLVMMDStringInContext2(cg->ctx, "llvm.loop.interleave.count", 26),
        LLVMValueAsMetadata(LLVMConstInt(cg->i32, 1, false))};
    LLVMMetadataRef keep[1] = {LLVMMDStringInContext2(cg->ctx, "llvm.loop.unroll.disable", 24)};
    LLVMMetadataRef ops[4] = {self, LLVMMDNodeInContext2(cg->ctx, off, 2),
                              LLVMMDNodeInContext2(cg->ctx, one, 2),
                              LLVMMDNodeInContext2(cg->ctx, keep, 1)};
    LLVMMetadataRef loop = LLVMMDNodeInContext2(cg->ctx, ops, 4);
    LLVMMetadataReplaceAllUsesWith(self, loop);
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(cg->ctx, "llvm.loop", 9),
                    LLVMMetadataAsValue(cg->ctx, loop));
}

static LLVMValueRef cg_loop_begin(Cg *cg, LLVMValueRef count, Loop *l)
{
    l->most = LLVMIsAConstantInt(count) ? LLVMConstIntGetSExtValue(count)
              : count == cg->B           ? cg->max_b
                                         : INT64_MAX;
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(cg->b);
    l->header = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "loop");
    LLVMBuildBr(cg->b, l->header);
    LLVMPositionBuilderAtEnd(cg->b, l->header);
    l->phi = LLVMBuildPhi(cg->b, cg->i64, "i");
    LLVMValueRef zero = k64(cg, 0);
    LLVMAddIncoming(l->phi, &zero, &pre, 1);
    l->count = count;
    return l->phi;
}

static void cg_loop_end(Cg *cg, Loop *l)
{
    LLVMValueRef next = LLVMBuildNUWAdd(cg->b, l->phi, k64(cg, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->b);
    LLVMAddIncoming(l->phi, &next, &latch, 1);
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "done");
    LLVMValueRef br = LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntULT, next, l->count, ""),
                                      l->header, exit);
    if (l->most <= CG_SMALL_LOOP)
        cg_loop_scalar(cg, br);
    else
        cg_loop_no_unroll(cg, br);
    LLVMPositionBuilderAtEnd(cg->b, exit);
}

/* Opens the loops of an iteration space; `loops` must have CG_MAX_DIMS entries. */
static void cg_iter_begin(Cg *cg, const Shape *s, Iter *it, Loop *loops)
{
    *it = (Iter){.batched = s->batched, .shape = *s};
    if (s->batched)
        it->iv[it->nd] = cg_loop_begin(cg, cg->B, &loops[it->nd]), it->nd++;
    for (int i = 0; i < s->rank; i++) {
        if (s->dim[i] == 1) { /* no loop for a dim of 1: its index is 0 */
            loops[it->nd].header = NULL;
            it->iv[it->nd++] = k64(cg, 0);
            continue;
        }
        it->iv[it->nd] = cg_loop_begin(cg, k64(cg, s->dim[i]), &loops[it->nd]), it->nd++;
    }
    if (it->nd == 0) /* a scalar: one iteration */
        it->iv[it->nd] = cg_loop_begin(cg, k64(cg, 1), &loops[it->nd]), it->nd++;
}

static void cg_iter_end(Cg *cg, Iter *it, Loop *loops)
{
    for (int i = it->nd - 1; i >= 0; i--)
        if (loops[i].header)
            cg_loop_end(cg, &loops[i]);
}

/* s in the merged iteration space of cg_collapse: each group of dims whole (their
 * product) or broadcast (1). The row-major offsets are unchanged. */
static Shape cg_collapsed(const Cg *cg, const Shape *s)
{
    Shape r = {.batched = s->batched, .rank = cg->cgroup[cg->crank - 1] + 1};
    for (int g = 0; g < r.rank; g++)
        r.dim[g] = 1;
    for (int j = 0; j < cg->crank; j++) {
        int i = s->rank - cg->crank + j;
        if (i >= 0)
            r.dim[cg->cgroup[j]] *= s->dim[i];
    }
    return r;
}

/* Element offset of a value of shape `s`, at the iteration `it`, broadcasting. */
LLVMValueRef cg_index(Cg *cg, const Shape *s, const Iter *it)
{
    Shape merged;
    if (cg->crank) {
        merged = cg_collapsed(cg, s);
        s = &merged;
    }
    LLVMValueRef idx = k64(cg, 0);
    int64_t stride = 1;
    int first = it->batched ? 1 : 0;
    for (int i = s->rank - 1; i >= 0; i--) {
        int j = first + it->shape.rank - s->rank + i;
        if (s->dim[i] != 1 && j >= first)
            idx = LLVMBuildAdd(cg->b, idx, LLVMBuildMul(cg->b, it->iv[j], k64(cg, stride), ""), "");
        stride *= s->dim[i];
    }
    if (s->batched && it->batched)
        idx = LLVMBuildAdd(cg->b, idx, LLVMBuildMul(cg->b, it->iv[0], k64(cg, stride), ""), "");
    return idx;
}

static LLVMValueRef cg_base(Cg *cg, int buf)
{
    return buf >= BUF_STATE ? cg->state_base[buf - BUF_STATE]
         : buf == BUF_OUT   ? cg->out_base : cg->base[buf];
}

static LLVMValueRef cg_buf_ptr(Cg *cg, int buf, int64_t off)
{
    LLVMValueRef base = cg_base(cg, buf);
    if (!off)
        return base;
    LLVMValueRef o = k64(cg, off);
    return LLVMBuildGEP2(cg->b, cg->T, base, &o, 1, "");
}

static LLVMValueRef cg_elem_ptr(Cg *cg, int buf, int64_t off, LLVMValueRef idx)
{
    LLVMValueRef i = LLVMBuildAdd(cg->b, idx, k64(cg, off), "");
    LLVMValueRef base = cg_base(cg, buf);
    return LLVMBuildGEP2(cg->b, cg->T, base, &i, 1, "");
}

LLVMValueRef cg_load(Cg *cg, const IrNode *n, const Iter *it)
{
    LLVMValueRef p = cg_elem_ptr(cg, n->buf, n->buf_off, cg_index(cg, &n->shape, it));
    return LLVMBuildLoad2(cg->b, cg->T, p, "");
}
/* ---- kernels ---- */

/* Whether k is the update's loop over the whole parameter arena. */
static bool cg_updates_arena(Cg *cg, const Kernel *k)
{
    for (int o = 0; o < k->nouts; o++) {
        const Shape *s = &k->outs[o].node->shape;
        if (k->outs[o].buf == NNLRT_BUF_PARAMS && k->outs[o].off == 0 && !s->batched &&
            shape_size(s) == cg->p->nparam_elems)
            return true;
    }
    return false;
}

/* gnorm += grads[i]^2, in double, inside the update's loop: the divergence check of every
 * step costs no pass of its own. Reassociable, so the loop still vectorizes. */
static void cg_gnorm_add(Cg *cg, const Iter *it)
{
    LLVMBuilderRef b = cg->b;
    LLVMValueRef g = LLVMBuildLoad2(b, cg->T, cg_elem_ptr(cg, NNLRT_BUF_GRADS, 0, it->iv[0]), "");
    if (cg->elem_size == 4)
        g = LLVMBuildFPExt(b, g, cg->f64, "");
    LLVMValueRef sum = LLVMBuildLoad2(b, cg->f64, cg->gnorm, "");
    LLVMBuildStore(b, fmf(LLVMBuildFAdd(b, sum, fmf(LLVMBuildFMul(b, g, g, "")), "")), cg->gnorm);
}

/* The shapes an elementwise kernel indexes with (what it loads and stores); false when it
 * holds an op that indexes otherwise (onehot, the arena mask). */
static bool cg_kernel_shapes(const IrNode *n, bool top, const Shape **shapes, int *ns)
{
    if (n->op == OP_ONEHOT || n->op == OP_BUFMASK)
        return false;
    if ((!top && n->buf >= 0) || n->op == OP_DROPOUT) {
        if (*ns >= 256)
            return false;
        shapes[(*ns)++] = &n->shape;
        if (n->op != OP_DROPOUT)
            return true;
    }
    for (int i = 0; i < 3 && n->in[i]; i++)
        if (!cg_kernel_shapes(n->in[i], false, shapes, ns))
            return false;
    return true;
}

/* Whether dims [a, b] of the iteration `it` (right-aligned) are, in s, all 1 or all whole. */
static bool cg_group_fits(const Shape *it, const Shape *s, int a, int b)
{
    bool ones = true, whole = true;
    for (int j = a; j <= b; j++) {
        int i = s->rank - it->rank + j;
        int64_t d = i >= 0 ? s->dim[i] : 1;
        ones = ones && d == 1;
        whole = whole && d == it->dim[j];
    }
    return ones || whole;
}

/* Merges adjacent per-sample dims of an elementwise or reduction kernel's iteration where
 * every value it reads and writes is whole or broadcast across them: [B, 6, 28, 28] plus a
 * bias [6, 1, 1] iterates [B, 6, 784], one long inner loop instead of two short ones (less
 * code, better vectors). Sets cg->crank and returns the merged shape, or returns `s`. */
static Shape cg_collapse(Cg *cg, const KernelOut *outs, int nouts, const Shape *s)
{
    cg->crank = 0;
    const Shape *shapes[256];
    int ns = 0;
    for (int o = 0; o < nouts; o++) {
        shapes[ns++] = &outs[o].node->shape;
        if (ns >= 200 || !cg_kernel_shapes(outs[o].node, true, shapes, &ns))
            return *s;
    }
    int group[IR_MAX_RANK], ngroups = 0, start = 0;
    for (int j = 0; j < s->rank; j++) {
        bool fits = j > 0;
        for (int q = 0; fits && q < ns; q++)
            fits = cg_group_fits(s, shapes[q], start, j);
        if (!fits) {
            start = j;
            ngroups++;
        }
        group[j] = ngroups - 1;
    }
    if (ngroups == s->rank)
        return *s; /* nothing merges */
    cg->crank = s->rank;
    memcpy(cg->cgroup, group, sizeof group);
    return cg_collapsed(cg, s);
}

/* r op= v at the iteration `it` (v of r's operand there): a reduction's step */
static void cg_accumulate(Cg *cg, const IrNode *r, LLVMValueRef v, const Iter *it)
{
    LLVMValueRef p = cg_elem_ptr(cg, r->buf, r->buf_off, cg_index(cg, &r->shape, it));
    LLVMValueRef acc = LLVMBuildLoad2(cg->b, cg->T, p, "");
    LLVMValueRef args[2] = {acc, v};
    LLVMValueRef nv = r->op == OP_SUM ? cg_fadd(cg, acc, v)
                                      : cg_intrinsic(cg, "llvm.maximum", args, 2);
    LLVMBuildStore(cg->b, nv, p);
}

static void cg_fill(Cg *cg, const IrNode *n, double v);

static void cg_kernel_elem(Cg *cg, const Kernel *k)
{
    Iter it;
    Loop loops[CG_MAX_DIMS];
    for (int o = 0; o < k->nreds; o++)
        cg_fill(cg, k->reds[o].node, k->reds[o].node->op == OP_SUM ? 0.0 : -INFINITY);
    cg_clear_cache(cg);
    Shape space = k->outs[0].node->shape;
    if (k->nreds) { /* the reductions' shapes take part in merging dims */
        KernelOut all[128];
        int n = 0;
        for (int o = 0; o < k->nouts && n < 128; o++)
            all[n++] = k->outs[o];
        for (int o = 0; o < k->nreds && n < 128; o++)
            all[n++] = k->reds[o];
        space = cg_collapse(cg, all, n, &space);
    } else {
        space = cg_collapse(cg, k->outs, k->nouts, &space);
    }
    cg_iter_begin(cg, &space, &it, loops);
    LLVMValueRef vals[64];
    int nouts = k->nouts < 64 ? k->nouts : 64;
    /* compute everything, then store: an output may overwrite another's input */
    for (int o = 0; o < nouts; o++) {
        IrNode *n = k->outs[o].node;
        vals[o] = n->buf == k->outs[o].buf && n->buf_off == k->outs[o].off ? cg_compute(cg, n, &it)
                                                                          : cg_value(cg, n, &it);
        cg->cache[n->id] = vals[o];
    }
    for (int o = 0; o < nouts; o++) {
        LLVMValueRef idx = cg_index(cg, &k->outs[o].node->shape, &it);
        LLVMBuildStore(cg->b, vals[o], cg_elem_ptr(cg, k->outs[o].buf, k->outs[o].off, idx));
    }
    LLVMValueRef rvals[64];
    int nreds = k->nreds < 64 ? k->nreds : 64;
    for (int o = 0; o < nreds; o++) /* the outputs' values are in the cache */
        rvals[o] = cg_value(cg, k->reds[o].node->in[0], &it);
    for (int o = 0; o < nreds; o++)
        cg_accumulate(cg, k->reds[o].node, rvals[o], &it);
    if (cg->gnorm && cg_updates_arena(cg, k))
        cg_gnorm_add(cg, &it);
    cg_iter_end(cg, &it, loops);
    cg_clear_cache(cg);
    cg->crank = 0;
}

static void cg_fill(Cg *cg, const IrNode *n, double v)
{
    Iter it;
    Loop loops[CG_MAX_DIMS];
    cg_iter_begin(cg, &n->shape, &it, loops);
    LLVMBuildStore(cg->b, kT(cg, v), cg_elem_ptr(cg, n->buf, n->buf_off, cg_index(cg, &n->shape, &it)));
    cg_iter_end(cg, &it, loops);
}

/* r[...] = identity; for every element x of the operand: r[its reduced index] op= x. Several
 * reductions of one space (fuse_merge_loops) share the loop and the operands' values. */
static void cg_kernel_reduce(Cg *cg, const Kernel *k)
{
    KernelOut one = {.node = k->node, .buf = k->node->buf, .off = k->node->buf_off};
    const KernelOut *outs = k->nouts ? k->outs : &one;
    int n = k->nouts ? k->nouts : 1;
    for (int o = 0; o < n; o++)
        cg_fill(cg, outs[o].node, outs[o].node->op == OP_SUM ? 0.0 : -INFINITY);
    Iter it;
    Loop loops[CG_MAX_DIMS];
    cg_clear_cache(cg);
    /* [B, 6, 28, 28] summed to [6, 1, 1] iterates [B, 6, 784] */
    Shape space = cg_collapse(cg, outs, n, &k->node->in[0]->shape);
    cg_iter_begin(cg, &space, &it, loops);
    LLVMValueRef vals[64];
    n = n < 64 ? n : 64;
    for (int o = 0; o < n; o++)
        vals[o] = cg_value(cg, outs[o].node->in[0], &it);
    for (int o = 0; o < n; o++)
        cg_accumulate(cg, outs[o].node, vals[o], &it);
    cg_iter_end(cg, &it, loops);
    cg_clear_cache(cg);
    cg->crank = 0;
}

/* sums[i] += the sum over the batch of a per-sample scalar, accumulated in double */
static void cg_kernel_sumout(Cg *cg, const Kernel *k)
{
    LLVMBuilderRef b = cg->b;
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(b);
    LLVMPositionBuilderAtEnd(b, LLVMGetEntryBasicBlock(cg->fn));
    LLVMValueRef first = LLVMGetFirstInstruction(LLVMGetEntryBasicBlock(cg->fn));
    if (first)
        LLVMPositionBuilderBefore(b, first);
    LLVMValueRef acc = LLVMBuildAlloca(b, cg->f64, "acc");
    LLVMPositionBuilderAtEnd(b, cur);
    LLVMBuildStore(b, LLVMConstReal(cg->f64, 0), acc);
    Iter it;
    Loop loops[CG_MAX_DIMS];
    cg_clear_cache(cg);
    cg_iter_begin(cg, &k->node->shape, &it, loops);
    LLVMValueRef v = cg_value(cg, k->node, &it);
    if (cg->elem_size == 4)
        v = LLVMBuildFPExt(b, v, cg->f64, "");
    LLVMValueRef a = LLVMBuildLoad2(b, cg->f64, acc, "");
    LLVMBuildStore(b, fmf(LLVMBuildFAdd(b, a, v, "")), acc);
    cg_iter_end(cg, &it, loops);
    cg_clear_cache(cg);
    LLVMValueRef i = k64(cg, k->sum_index);
    LLVMValueRef sp = LLVMBuildGEP2(b, cg->f64, cg->sums, &i, 1, "");
    LLVMValueRef total = LLVMBuildFAdd(b, LLVMBuildLoad2(b, cg->f64, sp, ""),
                                       LLVMBuildLoad2(b, cg->f64, acc, ""), "");
    LLVMBuildStore(b, total, sp);
}

static LLVMValueRef cg_rows(Cg *cg, int64_t rows)
{
    return rows < 0 ? cg->B : k64(cg, rows);
}

/* C[m, n] = op(A)[m, k] op(B)[k, n], row-major; small ones inline, others cblas_?gemm */
static void cg_kernel_matmul(Cg *cg, const Kernel *k)
{
    LLVMBuilderRef b = cg->b;
    IrNode *c = k->node, *A = c->in[0], *Bm = c->in[1];
    bool ta = c->aux & 1, tb = c->aux & 2;
    int64_t ar, ac, br, bc;
    ir_matrix_dims(A, &ar, &ac);
    ir_matrix_dims(Bm, &br, &bc);
    LLVMValueRef rA = cg_rows(cg, ar), cA = k64(cg, ac), rB = cg_rows(cg, br), cB = k64(cg, bc);
    LLVMValueRef m = ta ? cA : rA, kk = ta ? rA : cA, n = tb ? rB : cB;
    LLVMValueRef pa = cg_buf_ptr(cg, A->buf, A->buf_off), pb = cg_buf_ptr(cg, Bm->buf, Bm->buf_off);
    LLVMValueRef pc = cg_buf_ptr(cg, c->buf, c->buf_off);
    /* the work with B at its smallest (1) and at its largest decides statically if it can */
    int64_t r1 = ar < 0 ? 1 : ar, r2 = br < 0 ? 1 : br;
    int64_t least = (ta ? ac : r1) * (ta ? r1 : ac) * (tb ? r2 : bc);
    int64_t most = ar < 0 || br < 0 ? least * cg->max_b : least;
    LLVMBasicBlockRef small = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "gemm_small");
    LLVMBasicBlockRef big = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "gemm_blas");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "gemm_done");
    if (most < CG_INLINE_GEMM) {
        LLVMBuildBr(b, small);
    } else if (least >= CG_INLINE_GEMM) {
        LLVMBuildBr(b, big);
    } else {
        LLVMValueRef work = LLVMBuildMul(b, LLVMBuildMul(b, m, n, ""), kk, "");
        LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, work, k64(cg, CG_INLINE_GEMM), ""), small, big);
    }

    /* inline: for i, j: c = sum_p a(i, p) b(p, j) */
    LLVMPositionBuilderAtEnd(b, small);
    Loop li, lj, lp;
    LLVMValueRef i = cg_loop_begin(cg, m, &li);
    LLVMValueRef j = cg_loop_begin(cg, n, &lj);
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(b);
    lp.header = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "dot");
    LLVMBuildBr(b, lp.header);
    LLVMPositionBuilderAtEnd(b, lp.header);
    lp.phi = LLVMBuildPhi(b, cg->i64, "p");
    LLVMValueRef acc = LLVMBuildPhi(b, cg->T, "acc");
    LLVMValueRef zero = k64(cg, 0), zt = kT(cg, 0);
    LLVMAddIncoming(lp.phi, &zero, &pre, 1);
    LLVMAddIncoming(acc, &zt, &pre, 1);
    lp.count = kk;
    lp.most = ta ? (ar < 0 ? cg->max_b : ar) : ac;
    LLVMValueRef p = lp.phi;
    LLVMValueRef ia = ta ? LLVMBuildAdd(b, LLVMBuildMul(b, p, cA, ""), i, "")
                         : LLVMBuildAdd(b, LLVMBuildMul(b, i, cA, ""), p, "");
    LLVMValueRef ib = tb ? LLVMBuildAdd(b, LLVMBuildMul(b, j, cB, ""), p, "")
                         : LLVMBuildAdd(b, LLVMBuildMul(b, p, cB, ""), j, "");
    LLVMValueRef va = LLVMBuildLoad2(b, cg->T, LLVMBuildGEP2(b, cg->T, pa, &ia, 1, ""), "");
    LLVMValueRef vb = LLVMBuildLoad2(b, cg->T, LLVMBuildGEP2(b, cg->T, pb, &ib, 1, ""), "");
    LLVMValueRef nacc = cg_fadd(cg, acc, cg_fmul(cg, va, vb));
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(b);
    LLVMAddIncoming(acc, &nacc, &latch, 1);
    cg_loop_end(cg, &lp);
    LLVMValueRef ic = LLVMBuildAdd(b, LLVMBuildMul(b, i, n, ""), j, "");
    LLVMBuildStore(b, nacc, LLVMBuildGEP2(b, cg->T, pc, &ic, 1, ""));
    cg_loop_end(cg, &lj);
    cg_loop_end(cg, &li);
    LLVMBuildBr(b, join);

    /* cblas_?gemm(RowMajor, ta, tb, m, n, k, 1, A, lda, B, ldb, 0, C, ldc) */
    LLVMPositionBuilderAtEnd(b, big);
    LLVMTypeRef params[14] = {cg->i32, cg->i32, cg->i32, cg->i32, cg->i32, cg->i32, cg->T,
                              cg->ptr, cg->i32, cg->ptr, cg->i32, cg->T, cg->ptr, cg->i32};
    const char *name = cg->elem_size == 4 ? "cblas_sgemm" : "cblas_dgemm";
    LLVMTypeRef ft = LLVMFunctionType(cg->vd, params, 14, false);
    LLVMValueRef f = cg_extern(cg, name, cg->vd, params, 14);
#define I32(v) LLVMBuildTrunc(b, (v), cg->i32, "")
    LLVMValueRef args[14] = {
        LLVMConstInt(cg->i32, 101, false), LLVMConstInt(cg->i32, ta ? 112 : 111, false),
        LLVMConstInt(cg->i32, tb ? 112 : 111, false), I32(m), I32(n), I32(kk), kT(cg, 1), pa,
        I32(cA), pb, I32(cB), kT(cg, 0), pc, I32(n)};
#undef I32
    LLVMBuildCall2(b, ft, f, args, 14, "");
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, join);
}

/* An op's runtime routine, nnlrt_SYMBOL_f32 or _f64, called with the arguments of its
 * signature (ops.def's ROUTINE, OpCallSig in nnlc_int.h): the operands' pointers, a
 * convolution's bias or NULL, the result's pointer, its activation, then B or the planes
 * and the geometry as constants. */
static void cg_kernel_call(Cg *cg, const Kernel *k)
{
    IrNode *y = k->node;
    const OpCall *call = ir_op_call(y->op);
    int64_t lo = y->aux & 0xffff, hi = y->aux >> 16;
    LLVMValueRef args[14];
    int n = 0;
    for (int i = 0; i < ir_op_arity(y->op); i++)
        args[n++] = cg_buf_ptr(cg, y->in[i]->buf, y->in[i]->buf_off);
    if (call->sig == CALL_CONV_BIAS) /* the bias fuse_conv_bias gave it, or none */
        args[n++] = y->in[2] ? cg_buf_ptr(cg, y->in[2]->buf, y->in[2]->buf_off)
                             : LLVMConstPointerNull(cg->ptr);
    args[n++] = cg_buf_ptr(cg, y->buf, y->buf_off);
    if (call->sig == CALL_CONV_BIAS) /* the activation fuse_conv_relu gave it, or none */
        args[n++] = k64(cg, y->index);
    const Shape *img = &ir_call_role(y, call->image)->shape;
    int r = img->rank;
    if (call->sig == CALL_CONV_BIAS || call->sig == CALL_CONV) {
        const Shape *w = &ir_call_role(y, call->weights)->shape;
        int64_t geom[9] = {img->dim[0], img->dim[1], img->dim[2], w->dim[0], w->dim[2],
                           w->dim[3], lo, hi};
        args[n++] = cg->B;
        for (int i = 0; i < 8; i++)
            args[n++] = k64(cg, geom[i]);
    } else {
        int64_t planes = 1;
        for (int i = 0; i < r - 2; i++)
            planes *= img->dim[i];
        args[n++] = LLVMBuildMul(cg->b, cg->B, k64(cg, planes), "");
        args[n++] = k64(cg, img->dim[r - 2]);
        args[n++] = k64(cg, img->dim[r - 1]);
        args[n++] = k64(cg, lo);
        args[n++] = k64(cg, hi);
    }
    LLVMTypeRef types[14];
    for (int i = 0; i < n; i++)
        types[i] = LLVMTypeOf(args[i]);
    char fn[64];
    snprintf(fn, sizeof fn, "nnlrt_%s_%s", call->symbol, cg->elem_size == 4 ? "f32" : "f64");
    LLVMValueRef f = cg_extern(cg, fn, cg->vd, types, n);
    LLVMBuildCall2(cg->b, LLVMFunctionType(cg->vd, types, (unsigned)n, false), f, args,
                   (unsigned)n, "");
}

/* out[...] = x[..., index[...]], the index clamped into range */
static void cg_kernel_pick(Cg *cg, const Kernel *k)
{
    IrNode *o = k->node, *x = o->in[0];
    int64_t n = x->shape.dim[x->shape.rank - 1];
    Iter it;
    Loop loops[CG_MAX_DIMS];
    cg_clear_cache(cg);
    cg_iter_begin(cg, &o->shape, &it, loops);
    LLVMValueRef idx = LLVMBuildFPToSI(cg->b, cg_value(cg, o->in[1], &it), cg->i64, "");
    idx = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, idx, k64(cg, 0), ""), k64(cg, 0), idx, "");
    idx = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGE, idx, k64(cg, n), ""), k64(cg, n - 1), idx, "");
    Shape prefix = x->shape;
    prefix.rank--;
    LLVMValueRef row = LLVMBuildMul(cg->b, cg_index(cg, &prefix, &it), k64(cg, n), "");
    LLVMValueRef v = LLVMBuildLoad2(cg->b, cg->T,
                                    cg_elem_ptr(cg, x->buf, x->buf_off, LLVMBuildAdd(cg->b, row, idx, "")), "");
    LLVMBuildStore(cg->b, v, cg_elem_ptr(cg, o->buf, o->buf_off, cg_index(cg, &o->shape, &it)));
    cg_iter_end(cg, &it, loops);
    cg_clear_cache(cg);
}

/* out[...] = the first index of the largest x[..., i] */
static void cg_kernel_argmax(Cg *cg, const Kernel *k)
{
    LLVMBuilderRef b = cg->b;
    IrNode *o = k->node, *x = o->in[0];
    int64_t n = x->shape.dim[x->shape.rank - 1];
    Iter it;
    Loop loops[CG_MAX_DIMS], inner;
    cg_iter_begin(cg, &o->shape, &it, loops);
    Shape prefix = x->shape;
    prefix.rank--;
    LLVMValueRef row = LLVMBuildMul(b, cg_index(cg, &prefix, &it), k64(cg, n), "");
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(b);
    LLVMValueRef c = cg_loop_begin(cg, k64(cg, n), &inner);
    LLVMValueRef best = LLVMBuildPhi(b, cg->T, "best"), arg = LLVMBuildPhi(b, cg->i64, "arg");
    LLVMValueRef ninf = kT(cg, -INFINITY), zero = k64(cg, 0);
    LLVMAddIncoming(best, &ninf, &pre, 1);
    LLVMAddIncoming(arg, &zero, &pre, 1);
    LLVMValueRef v = LLVMBuildLoad2(b, cg->T, cg_elem_ptr(cg, x->buf, x->buf_off,
                                                         LLVMBuildAdd(b, row, c, "")), "");
    LLVMValueRef gt = LLVMBuildFCmp(b, LLVMRealOGT, v, best, "");
    LLVMValueRef nbest = LLVMBuildSelect(b, gt, v, best, ""), narg = LLVMBuildSelect(b, gt, c, arg, "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(b);
    LLVMAddIncoming(best, &nbest, &latch, 1);
    LLVMAddIncoming(arg, &narg, &latch, 1);
    cg_loop_end(cg, &inner);
    LLVMBuildStore(b, LLVMBuildSIToFP(b, narg, cg->T, ""),
                   cg_elem_ptr(cg, o->buf, o->buf_off, cg_index(cg, &o->shape, &it)));
    cg_iter_end(cg, &it, loops);
}

/* ---- entry points ---- */

static void cg_kernels(Cg *cg, const Entry *e, int from, int to)
{
    for (int i = from; i < to && !cg->failed; i++) {
        const Kernel *k = &e->kernels[i];
        switch (k->kind) {
        case K_ELEM: cg_kernel_elem(cg, k); break;
        case K_REDUCE: cg_kernel_reduce(cg, k); break;
        case K_MATMUL: cg_kernel_matmul(cg, k); break;
        case K_PICK: cg_kernel_pick(cg, k); break;
        case K_ARGMAX: cg_kernel_argmax(cg, k); break;
        case K_CALL: cg_kernel_call(cg, k); break;
        case K_SUMOUT: cg_kernel_sumout(cg, k); break;
        case K_NONE: break; /* fuse.c schedules no such kernel */
        }
    }
}

static void cg_add_attr(Cg *cg, LLVMValueRef fn, unsigned index, const char *name)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    if (kind) /* 0: unknown to this LLVM; skip rather than guess */
        LLVMAddAttributeAtIndex(fn, index, LLVMCreateEnumAttribute(cg->ctx, kind, 0));
}

/* The entry point loads the buffer table and calls the body, which takes every buffer as
 * a `noalias` pointer: they are distinct allocations, and saying so lets the vectorizer
 * drop its run-time overlap checks. The body is inlined back by the optimizer. */
static void cg_entry(Cg *cg, int which)
{
    const Entry *e = &cg->plan->entries[which];
    int nb = cg->plan->nbufs, ns = cg->p->nstates;
    LLVMTypeRef params[4];
    int np = 0;
    params[np++] = cg->ptr; /* bufs */
    switch (which) {
    case ENTRY_INIT: params[np++] = cg->ptr; break;                           /* rng */
    case ENTRY_GRAD: params[np++] = cg->i64; params[np++] = cg->ptr; params[np++] = cg->i64; break;
    case ENTRY_EVAL: params[np++] = cg->i64; params[np++] = cg->ptr; break;
    case ENTRY_UPDATE: params[np++] = cg->ptr; params[np++] = cg->i64; params[np++] = cg->i64; break;
    case ENTRY_PREDICT: params[np++] = cg->i64; params[np++] = cg->ptr; break; /* B, out */
    }
    LLVMTypeRef ret = which == ENTRY_UPDATE ? cg->f64 : cg->vd; /* update: the gradients' norm² */
    LLVMValueRef entry_fn = LLVMAddFunction(cg->mod, e->name,
                                            LLVMFunctionType(ret, params, (unsigned)np, false));
    /* body(bufs..., states..., the entry's own arguments after the table) */
    int nbody = nb + ns + np - 1;
    LLVMTypeRef *bp = nnl_malloc(sizeof(LLVMTypeRef) * (size_t)nbody);
    for (int i = 0; i < nb + ns; i++)
        bp[i] = cg->ptr;
    for (int i = 1; i < np; i++)
        bp[nb + ns + i - 1] = params[i];
    char name[64];
    snprintf(name, sizeof name, "%s.body", e->name);
    cg->fn = LLVMAddFunction(cg->mod, name, LLVMFunctionType(ret, bp, (unsigned)nbody, false));
    LLVMSetLinkage(cg->fn, LLVMInternalLinkage);
    cg_add_attr(cg, cg->fn, LLVMAttributeFunctionIndex, "alwaysinline");
    for (int i = 0; i < nb + ns; i++)
        cg_add_attr(cg, cg->fn, (unsigned)i + 1, "noalias");
    if (which == ENTRY_PREDICT)
        cg_add_attr(cg, cg->fn, (unsigned)(nb + ns + 2), "noalias");

    /* the entry: load the table (and the states' table), call the body */
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, entry_fn, "entry"));
    LLVMValueRef *args = nnl_malloc(sizeof(LLVMValueRef) * (size_t)nbody);
    for (int i = 0; i < nb + ns; i++) {
        bool state = i >= nb;
        LLVMValueRef table = state ? LLVMGetParam(entry_fn, 1) : LLVMGetParam(entry_fn, 0);
        LLVMValueRef idx = k64(cg, state ? i - nb : i);
        args[i] = state && which != ENTRY_UPDATE
                      ? LLVMConstPointerNull(cg->ptr)
                      : LLVMBuildLoad2(cg->b, cg->ptr,
                                       LLVMBuildGEP2(cg->b, cg->ptr, table, &idx, 1, ""), "");
    }
    for (int i = 1; i < np; i++)
        args[nb + ns + i - 1] = LLVMGetParam(entry_fn, (unsigned)i);
    LLVMValueRef result = LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(cg->fn), cg->fn, args,
                                         (unsigned)nbody, "");
    if (which == ENTRY_UPDATE)
        LLVMBuildRet(cg->b, result);
    else
        LLVMBuildRetVoid(cg->b);
    nnl_dealloc(args);
    nnl_dealloc(bp);

    /* the body */
    cg->max_b = which == ENTRY_EVAL || which == ENTRY_PREDICT ? cg->plan->max_batch_eval
                                                              : cg->plan->max_batch;
    cg->B = cg->sums = cg->states = cg->step = cg->epoch = cg->rng = cg->out_base = NULL;
    cg->key = NULL;
    for (int i = 0; i < nb; i++)
        cg->base[i] = LLVMGetParam(cg->fn, (unsigned)i);
    for (int k = 0; k < ns; k++)
        cg->state_base[k] = LLVMGetParam(cg->fn, (unsigned)(nb + k));
    int a = nb + ns;
    switch (which) {
    case ENTRY_INIT: cg->rng = LLVMGetParam(cg->fn, (unsigned)a); break;
    case ENTRY_GRAD:
    case ENTRY_EVAL:
        cg->B = LLVMGetParam(cg->fn, (unsigned)a);
        cg->sums = LLVMGetParam(cg->fn, (unsigned)a + 1);
        if (which == ENTRY_GRAD)
            cg->key = LLVMGetParam(cg->fn, (unsigned)a + 2);
        break;
    case ENTRY_UPDATE:
        cg->step = LLVMGetParam(cg->fn, (unsigned)a + 1);
        cg->epoch = LLVMGetParam(cg->fn, (unsigned)a + 2);
        break;
    case ENTRY_PREDICT:
        cg->B = LLVMGetParam(cg->fn, (unsigned)a);
        cg->out_base = LLVMGetParam(cg->fn, (unsigned)a + 1);
        break;
    }
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "entry"));
    int first = 0;
    if ((which == ENTRY_GRAD || which == ENTRY_EVAL) && cg->forward) {
        /* the forward pass both share: one call instead of a second copy */
        int nf = nb + ns + 1;
        LLVMValueRef *fargs = nnl_malloc(sizeof(LLVMValueRef) * (size_t)nf);
        for (int i = 0; i < nb + ns; i++)
            fargs[i] = LLVMGetParam(cg->fn, (unsigned)i);
        fargs[nb + ns] = cg->B;
        LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(cg->forward), cg->forward, fargs,
                       (unsigned)nf, "");
        nnl_dealloc(fargs);
        first = cg->nforward;
    }
    cg->gnorm = NULL;
    if (which == ENTRY_UPDATE) {
        cg->gnorm = LLVMBuildAlloca(cg->b, cg->f64, "gnorm");
        LLVMBuildStore(cg->b, LLVMConstReal(cg->f64, 0), cg->gnorm);
    }
    cg_kernels(cg, e, first, e->nkernels);
    if (cg->gnorm)
        LLVMBuildRet(cg->b, LLVMBuildLoad2(cg->b, cg->f64, cg->gnorm, ""));
    else
        LLVMBuildRetVoid(cg->b);
    cg->gnorm = NULL;
}

static bool cg_same_kernel(const Kernel *a, const Kernel *b)
{
    if (a->kind != b->kind || a->node != b->node || a->nouts != b->nouts ||
        a->nreds != b->nreds)
        return false;
    for (int o = 0; o < a->nreds; o++)
        if (a->reds[o].node != b->reds[o].node)
            return false;
    for (int o = 0; o < a->nouts; o++)
        if (a->outs[o].node != b->outs[o].node || a->outs[o].buf != b->outs[o].buf ||
            a->outs[o].off != b->outs[o].off)
            return false;
    return true;
}

/* The forward pass: eval's kernels before its sums, when grad begins with exactly them
 * (it does unless the backward pass needs a forward value the loss does not). It becomes
 * one internal function, not inlined, so that it is optimized and compiled once. */
static void cg_forward(Cg *cg)
{
    const Entry *g = &cg->plan->entries[ENTRY_GRAD], *e = &cg->plan->entries[ENTRY_EVAL];
    int n = 0;
    while (n < e->nkernels && e->kernels[n].kind != K_SUMOUT)
        n++;
    if (n == 0 || n > g->nkernels)
        return;
    for (int i = 0; i < n; i++)
        if (!cg_same_kernel(&g->kernels[i], &e->kernels[i]))
            return;
    for (int i = 0; i < cg->p->nnodes; i++) {
        const IrNode *x = cg->p->nodes[i];
        if (x->op == OP_DROPOUT || (x->op == OP_VAR && x->index == VAR_TRAINING))
            return; /* training's forward pass differs from evaluation's */
    }
    int nb = cg->plan->nbufs, ns = cg->p->nstates;
    LLVMTypeRef *params = nnl_malloc(sizeof(LLVMTypeRef) * (size_t)(nb + ns + 1));
    for (int i = 0; i < nb + ns; i++)
        params[i] = cg->ptr;
    params[nb + ns] = cg->i64;
    cg->fn = LLVMAddFunction(cg->mod, "nnl_forward",
                             LLVMFunctionType(cg->vd, params, (unsigned)(nb + ns + 1), false));
    nnl_dealloc(params);
    LLVMSetLinkage(cg->fn, LLVMInternalLinkage);
    cg_add_attr(cg, cg->fn, LLVMAttributeFunctionIndex, "noinline");
    for (int i = 0; i < nb + ns; i++)
        cg_add_attr(cg, cg->fn, (unsigned)i + 1, "noalias");
    for (int i = 0; i < nb; i++)
        cg->base[i] = LLVMGetParam(cg->fn, (unsigned)i);
    for (int k = 0; k < ns; k++)
        cg->state_base[k] = LLVMGetParam(cg->fn, (unsigned)(nb + k));
    cg->B = LLVMGetParam(cg->fn, (unsigned)(nb + ns));
    cg->sums = cg->states = cg->step = cg->epoch = cg->rng = cg->key = NULL;
    cg->max_b = cg->plan->max_batch > cg->plan->max_batch_eval ? cg->plan->max_batch
                                                                : cg->plan->max_batch_eval;
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "entry"));
    cg_kernels(cg, g, 0, n);
    LLVMBuildRetVoid(cg->b);
    cg->forward = cg->fn;
    cg->nforward = n;
}

/* Builds the module in `ctx`; NULL after reporting an internal error. */
LLVMModuleRef cg_module(Nnl *nnl, IrProgram *p, Plan *plan, int elem_size, LLVMContextRef ctx)
{
    Cg cg = {.nnl = nnl, .p = p, .plan = plan, .ctx = ctx, .elem_size = elem_size};
    cg.mod = LLVMModuleCreateWithNameInContext("nnl", ctx);
    cg.b = LLVMCreateBuilderInContext(ctx);
    cg.T = elem_size == 4 ? LLVMFloatTypeInContext(ctx) : LLVMDoubleTypeInContext(ctx);
    cg.f64 = LLVMDoubleTypeInContext(ctx);
    cg.i64 = LLVMInt64TypeInContext(ctx);
    cg.i32 = LLVMInt32TypeInContext(ctx);
    cg.ptr = LLVMPointerTypeInContext(ctx, 0);
    cg.vd = LLVMVoidTypeInContext(ctx);
    cg.base = nnl_malloc(sizeof(LLVMValueRef) * (size_t)plan->nbufs);
    cg.state_base = nnl_malloc(sizeof(LLVMValueRef) * (size_t)(p->nstates + 1));
    cg.cache = nnl_malloc(sizeof(LLVMValueRef) * (size_t)p->nnodes);
    cg.dcache = nnl_malloc(sizeof(LLVMValueRef) * (size_t)p->nnodes);
    cg.uniform = nnl_malloc((size_t)p->nnodes);
    memset(cg.uniform, 0, (size_t)p->nnodes);
    cg_clear_cache(&cg);
    cg_forward(&cg);
    for (int e = 0; e < ENTRY_COUNT && !cg.failed; e++)
        if (e != ENTRY_PREDICT || plan->predict)
            cg_entry(&cg, e);
    LLVMDisposeBuilder(cg.b);
    nnl_dealloc(cg.base);
    nnl_dealloc(cg.state_base);
    nnl_dealloc(cg.cache);
    nnl_dealloc(cg.dcache);
    nnl_dealloc(cg.uniform);
    char *msg = NULL;
    if (!cg.failed && LLVMVerifyModule(cg.mod, LLVMReturnStatusAction, &msg)) {
        diag_file_error(nnl, NULL, "internal error: the generated LLVM module is invalid: %s", msg);
        cg.failed = true;
    }
    LLVMDisposeMessage(msg);
    if (cg.failed) {
        LLVMDisposeModule(cg.mod);
        return NULL;
    }
    return cg.mod;
}
