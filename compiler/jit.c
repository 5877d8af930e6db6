/* jit.c — optimizes the module for this CPU and runs it with ORC LLJIT; or, for nnlc
 * build, optimizes it for a chosen CPU and writes an object file.
 *
 * JIT and AOT make their TargetMachines with one function (cg_machine), so that a native
 * trainer runs the very code `nnlc run` runs: the same default<O3> pipeline with the same
 * CPU and features, and code generation at the same level (Less). They differ only in the
 * code model (the JIT's default is the large one), which changes how addresses are
 * formed, not the arithmetic.
 *
 * Facts this file rests on: default<O3> needs the host TargetMachine to vectorize;
 * the runtime and BLAS reach JIT code through an explicit absolute-symbol table (Debian
 * links with --as-needed); adding a module hands it over even on error; every error is
 * turned into an internal-error diagnostic, never an abort.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "nnlc_int.h"

struct Jit {
    LLVMOrcLLJITRef lljit;
};

/* Every external function generated code may call: the runtime's (NNLRT_ENTRY_POINTS in
 * runtime/nnlrt.h), the libm functions ops.def names (INTRINSIC(f): what llvm.f may lower
 * to; LIBM(f)), both in float and double, and, written out here, BLAS's GEMM and what
 * LLVM itself may emit calls to (memset and its kin, fmax and fmin). A name may come
 * twice (two ops of one function); jit_define_symbols defines it once. */
static const struct {
    const char *name;
    void *addr;
} jit_symbols[] = {
#define X(ret, name, params) {#name, (void *)name},
    NNLRT_ENTRY_POINTS(X)
#undef X
#define INTRINSIC(fn) {#fn "f", (void *)fn##f}, {#fn, (void *)fn},
#define LIBM(fn) {#fn "f", (void *)fn##f}, {#fn, (void *)fn},
#define CODE
#define ROUTINE(symbol, sig, image, weights, out)
#define OP(name, text, arity, cls, kernel, memory, fn, how) how
#include "ops.def"
#undef OP
#undef ROUTINE
#undef CODE
#undef LIBM
#undef INTRINSIC
    {"cblas_sgemm", (void *)cblas_sgemm}, {"cblas_dgemm", (void *)cblas_dgemm},
    {"memset", (void *)memset}, {"memcpy", (void *)memcpy}, {"memmove", (void *)memmove},
    {"fmaxf", (void *)fmaxf}, {"fmax", (void *)fmax},
    {"fminf", (void *)fminf}, {"fmin", (void *)fmin},
};

static bool jit_error(Nnl *nnl, const char *what, LLVMErrorRef err)
{
    char *msg = LLVMGetErrorMessage(err); /* consumes err */
    diag_file_error(nnl, NULL, "internal error: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return false;
}

static void jit_report(void *ctx, LLVMErrorRef err)
{
    jit_error(ctx, "JIT", err);
}

/* The one TargetMachine every compiled model is optimized and generated with, for JIT
 * and AOT alike: `cpu` "native" is the host's CPU with the host's features, any other name
 * that CPU with its own features only. Optimizing runs at `level` Aggressive, code
 * generation at Less (the module is optimized already); `jit` picks the JIT's code model. */
static LLVMTargetMachineRef cg_machine(Nnl *nnl, const char *cpu, LLVMCodeGenOptLevel level,
                                       bool jit)
{
    char *triple = LLVMGetDefaultTargetTriple();
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &err)) {
        diag_file_error(nnl, NULL, "internal error: no LLVM target for %s: %s", triple, err);
        LLVMDisposeMessage(err);
        LLVMDisposeMessage(triple);
        return NULL;
    }
    bool host = strcmp(cpu, "native") == 0;
    char *name = host ? LLVMGetHostCPUName() : NULL;
    char *features = host ? LLVMGetHostCPUFeatures() : NULL;
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(
        target, triple, host ? name : cpu, host ? features : "", level, LLVMRelocPIC,
        jit ? LLVMCodeModelJITDefault : LLVMCodeModelDefault);
    LLVMDisposeMessage(name);
    LLVMDisposeMessage(features);
    LLVMDisposeMessage(triple);
    if (!tm)
        diag_file_error(nnl, NULL, "internal error: cannot create an LLVM target machine for %s",
                        cpu);
    return tm;
}

/* default<O3> with the TargetMachine for `cpu` (without one nothing vectorizes). */
static bool cg_optimize(Nnl *nnl, LLVMModuleRef mod, const char *cpu, bool jit)
{
    LLVMTargetMachineRef tm = cg_machine(nnl, cpu, LLVMCodeGenLevelAggressive, jit);
    if (!tm)
        return false;
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, dl);
    LLVMDisposeTargetData(dl);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMErrorRef err = LLVMRunPasses(mod, "default<O3>", tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    LLVMDisposeTargetMachine(tm);
    return err ? jit_error(nnl, "optimizing", err) : true;
}

static void cg_init_llvm(void)
{
    static bool initialized;
    if (!initialized) {
        LLVMInitializeNativeTarget();
        LLVMInitializeNativeAsmPrinter();
        initialized = true;
    }
}

void jit_free(Jit *jit)
{
    if (!jit)
        return;
    if (jit->lljit)
        LLVMOrcDisposeLLJIT(jit->lljit);
    nnl_dealloc(jit);
}

static bool jit_define_symbols(Nnl *nnl, Jit *jit)
{
    enum { N = sizeof jit_symbols / sizeof jit_symbols[0] };
    LLVMOrcCSymbolMapPair pairs[N];
    int n = 0;
    for (int i = 0; i < N; i++) {
        bool seen = false;
        for (int k = 0; k < i && !seen; k++)
            seen = strcmp(jit_symbols[k].name, jit_symbols[i].name) == 0;
        if (seen)
            continue;
        pairs[n].Name = LLVMOrcLLJITMangleAndIntern(jit->lljit, jit_symbols[i].name);
        pairs[n].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)jit_symbols[i].addr;
        pairs[n].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported |
                                          LLVMJITSymbolGenericFlagsCallable;
        pairs[n].Sym.Flags.TargetFlags = 0;
        n++;
    }
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, (size_t)n);
    LLVMErrorRef err = LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(jit->lljit), mu);
    return err ? jit_error(nnl, "defining runtime symbols", err) : true;
}

static void *jit_lookup(Nnl *nnl, Jit *jit, const char *name)
{
    LLVMOrcExecutorAddress addr = 0;
    LLVMErrorRef err = LLVMOrcLLJITLookup(jit->lljit, &addr, name);
    if (err) {
        jit_error(nnl, name, err);
        return NULL;
    }
    return (void *)(uintptr_t)addr;
}

NnlResult cg_compile(Nnl *nnl, IrProgram *p, Plan *plan, int elem_size, StrBuf *dump,
                     Jit **out, JitEntries *entries)
{
    cg_init_llvm();
    *out = NULL;
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef mod = cg_module(nnl, p, plan, elem_size, LLVMOrcThreadSafeContextGetContext(tsc));
    if (!mod || !cg_optimize(nnl, mod, "native", true)) {
        if (mod)
            LLVMDisposeModule(mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return NNL_EINTERNAL;
    }
    if (dump) {
        char *text = LLVMPrintModuleToString(mod);
        sb_puts(dump, text);
        LLVMDisposeMessage(text);
        LLVMDisposeModule(mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return NNL_OK;
    }
    Jit *jit = nnl_malloc(sizeof *jit);
    *jit = (Jit){0};
    /* The module is optimized already: the JIT's own code generator runs at -O1 */
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    LLVMTargetMachineRef jtm = cg_machine(nnl, "native", LLVMCodeGenLevelLess, true);
    if (jtm)
        LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(
            builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(jtm));
    LLVMErrorRef err = LLVMOrcCreateLLJIT(&jit->lljit, builder);
    if (err) {
        jit->lljit = NULL;
        jit_error(nnl, "creating the JIT", err);
        LLVMDisposeModule(mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        jit_free(jit);
        return NNL_EINTERNAL;
    }
    LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(jit->lljit),
                                            jit_report, nnl);
    bool good = jit_define_symbols(nnl, jit);
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc); /* the module keeps it alive */
    if (good) {
        err = LLVMOrcLLJITAddLLVMIRModule(jit->lljit, LLVMOrcLLJITGetMainJITDylib(jit->lljit), tsm);
        good = err ? jit_error(nnl, "adding the module", err) : true;
    } else {
        LLVMOrcDisposeThreadSafeModule(tsm);
    }
    if (good) {
        entries->init = (NnlrtInitFn)jit_lookup(nnl, jit, "nnl_init");
        entries->grad = (NnlrtGradFn)jit_lookup(nnl, jit, "nnl_grad");
        entries->eval = (NnlrtEvalFn)jit_lookup(nnl, jit, "nnl_eval");
        entries->update = (NnlrtUpdateFn)jit_lookup(nnl, jit, "nnl_update");
        entries->predict = plan->predict
                               ? (NnlrtPredictFn)jit_lookup(nnl, jit, "nnl_predict") : NULL;
        good = entries->init && entries->grad && entries->eval && entries->update &&
               (entries->predict || !plan->predict);
    }
    if (!good) {
        jit_free(jit);
        return NNL_EINTERNAL;
    }
    *out = jit;
    return NNL_OK;
}

/* ---- ahead of time (nnlc build) ---- */

/* A library keeps only the predict entry, as `prefix`_nnl_predict, hidden: the others
 * become internal, and the optimizer drops them. */
static void cg_keep_predict(LLVMModuleRef mod, const char *prefix)
{
    static const char *const entries[] = {"nnl_init", "nnl_grad", "nnl_eval", "nnl_update"};
    for (size_t i = 0; i < NNL_COUNTOF(entries); i++) {
        LLVMValueRef fn = LLVMGetNamedFunction(mod, entries[i]);
        if (fn)
            LLVMSetLinkage(fn, LLVMInternalLinkage);
    }
    LLVMValueRef fn = LLVMGetNamedFunction(mod, "nnl_predict");
    if (!fn)
        return;
    char name[300];
    snprintf(name, sizeof name, "%s_nnl_predict", prefix);
    LLVMSetValueName2(fn, name, strlen(name));
    LLVMSetVisibility(fn, LLVMHiddenVisibility);
}

NnlResult cg_emit_object(Nnl *nnl, IrProgram *p, Plan *plan, int elem_size, const char *cpu,
                         const char *path, const char *lib_prefix, const char **cpu_name,
                         const char **features)
{
    cg_init_llvm();
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = cg_module(nnl, p, plan, elem_size, ctx);
    if (mod && lib_prefix)
        cg_keep_predict(mod, lib_prefix);
    LLVMTargetMachineRef tm = mod && cg_optimize(nnl, mod, cpu, false)
                                  ? cg_machine(nnl, cpu, LLVMCodeGenLevelLess, false) : NULL;
    NnlResult r = tm ? NNL_OK : NNL_EINTERNAL;
    char *err = NULL;
    if (tm && LLVMTargetMachineEmitToFile(tm, mod, (char *)path, LLVMObjectFile, &err)) {
        diag_file_error(nnl, path, "cannot write the object file: %s", err);
        r = NNL_EUSAGE;
    }
    if (tm) {
        char *name = LLVMGetTargetMachineCPU(tm), *feat = LLVMGetTargetMachineFeatureString(tm);
        *cpu_name = arena_strndup(&nnl->arena, name, strlen(name));
        *features = arena_strndup(&nnl->arena, feat, strlen(feat));
        LLVMDisposeMessage(name);
        LLVMDisposeMessage(feat);
        LLVMDisposeTargetMachine(tm);
    }
    LLVMDisposeMessage(err);
    if (mod)
        LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    return r;
}
