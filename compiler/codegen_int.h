/* codegen_int.h — what the files of codegen share (codegen_llvm.c: loops, indexing,
 * kernels, entry points; codegen_elem.c: one element of an elementwise op). Apart from
 * nnlc_int.h because it needs the LLVM C API's headers, which only these files include.
 */
#ifndef CODEGEN_INT_H
#define CODEGEN_INT_H

#include <llvm-c/Core.h>

#include "nnlc_int.h"

enum { CG_MAX_DIMS = IR_MAX_RANK + 1 };

typedef struct {
    int nd;
    LLVMValueRef iv[CG_MAX_DIMS];   /* loop indices, i64 */
    bool batched;                  /* iv[0] is the batch index */
    Shape shape;                   /* the iteration space */
} Iter;

typedef struct {
    Nnl *nnl;
    IrProgram *p;
    Plan *plan;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef T, i64, i32, f64, ptr, vd;
    int elem_size;
    /* the function being generated */
    LLVMValueRef fn, bufs, B, sums, states, step, epoch, rng;
    LLVMValueRef *base;            /* base pointer of every buffer, loaded on entry */
    LLVMValueRef *state_base;
    LLVMValueRef out_base;         /* the predict entry's output */
    LLVMValueRef gnorm;            /* update: the double the gradients' squares add up in */
    LLVMValueRef key;              /* grad: the step's key (dropout); NULL: not training */
    LLVMValueRef *cache;           /* per node id, valid in the current loop body */
    LLVMValueRef *dcache;          /* the same for values computed in double */
    signed char *uniform;          /* cg_uniform's memo: 0 unknown, 1 yes, -1 no */
    bool in_double;                /* computing a uniform scalar in double */
    LLVMValueRef forward;          /* nnl_forward, shared by grad and eval, or NULL */
    int nforward;                  /* the kernels it holds (a prefix of both) */
    int64_t max_b;                 /* the largest B of the entry being generated */
    /* an elementwise kernel whose adjacent dims are merged (cg_collapse): the per-sample
     * dims of the iteration (right-aligned), and the merged dim each belongs to */
    int crank;                     /* 0: no merging */
    int cgroup[IR_MAX_RANK];
    bool failed;
} Cg;

/* ---- small helpers ---- */

static inline LLVMValueRef k64(Cg *cg, int64_t v) { return LLVMConstInt(cg->i64, (unsigned long long)v, true); }
static inline LLVMValueRef kT(Cg *cg, double v) { return LLVMConstReal(cg->T, v); }

static inline LLVMValueRef fmf(LLVMValueRef v)
{
    if (LLVMIsAInstruction(v) && LLVMCanValueUseFastMathFlags(v))
        LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc | LLVMFastMathNoSignedZeros |
                                LLVMFastMathAllowReciprocal | LLVMFastMathAllowContract |
                                LLVMFastMathApproxFunc);
    return v;
}

static inline LLVMValueRef cg_fadd(Cg *cg, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFAdd(cg->b, a, b, "")); }
static inline LLVMValueRef cg_fsub(Cg *cg, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFSub(cg->b, a, b, "")); }
static inline LLVMValueRef cg_fmul(Cg *cg, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFMul(cg->b, a, b, "")); }
static inline LLVMValueRef cg_fdiv(Cg *cg, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFDiv(cg->b, a, b, "")); }

/* ---- codegen_llvm.c ---- */

/* A call of LLVM's intrinsic `name` ("llvm.exp") of the element type. */
LLVMValueRef cg_intrinsic(Cg *cg, const char *name, LLVMValueRef *args, int n);
/* The module's declaration of an external function, added on first use. */
LLVMValueRef cg_extern(Cg *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n);
/* A call of a libm function of the element type: tanhf or tanh. */
LLVMValueRef cg_libm(Cg *cg, const char *name, LLVMValueRef x);
LLVMValueRef cg_bool(Cg *cg, LLVMValueRef i1);  /* 1 or 0 of the element type */
/* Element offset of a value of shape `s`, at the iteration `it`, broadcasting. */
LLVMValueRef cg_index(Cg *cg, const Shape *s, const Iter *it);
LLVMValueRef cg_load(Cg *cg, const IrNode *n, const Iter *it);  /* n's element at `it` */

/* ---- codegen_elem.c ---- */

/* n's element at the iteration `it`: loaded when n is in memory, else computed (once per
 * loop body: a cache by node id, which cg_clear_cache empties between loops). */
LLVMValueRef cg_value(Cg *cg, IrNode *n, const Iter *it);
/* n's element computed from its operands' values, even when n is in memory. */
LLVMValueRef cg_compute(Cg *cg, IrNode *n, const Iter *it);
void cg_clear_cache(Cg *cg);

#endif
