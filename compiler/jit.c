/* jit.c — optimizes the module for this CPU and runs it with ORC LLJIT.
 *
 * Facts from shared/notes/llvm.md: default<O3> needs the host TargetMachine to vectorize;
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

LLVMModuleRef cg_module(Nnl *nnl, IrProgram *p, Plan *plan, int elem_size, LLVMContextRef ctx);

struct Jit {
    LLVMOrcLLJITRef lljit;
};

/* Every external function generated code may call. */
static const struct {
    const char *name;
    void *addr;
} jit_symbols[] = {
    {"cblas_sgemm", (void *)cblas_sgemm}, {"cblas_dgemm", (void *)cblas_dgemm},
    {"nnlrt_rand_uniform", (void *)nnlrt_rand_uniform},
    {"nnlrt_rand_normal", (void *)nnlrt_rand_normal},
    {"expf", (void *)expf}, {"exp", (void *)exp}, {"logf", (void *)logf}, {"log", (void *)log},
    {"sinf", (void *)sinf}, {"sin", (void *)sin}, {"cosf", (void *)cosf}, {"cos", (void *)cos},
    {"powf", (void *)powf}, {"pow", (void *)pow}, {"tanhf", (void *)tanhf},
    {"tanh", (void *)tanh}, {"erff", (void *)erff}, {"erf", (void *)erf},
    {"floorf", (void *)floorf}, {"floor", (void *)floor}, {"sqrtf", (void *)sqrtf},
    {"sqrt", (void *)sqrt}, {"fmaxf", (void *)fmaxf}, {"fmax", (void *)fmax},
    {"fminf", (void *)fminf}, {"fmin", (void *)fmin}, {"memset", (void *)memset},
    {"memcpy", (void *)memcpy}, {"memmove", (void *)memmove},
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

static LLVMTargetMachineRef jit_host_machine(Nnl *nnl, LLVMCodeGenOptLevel level)
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
    char *cpu = LLVMGetHostCPUName(), *features = LLVMGetHostCPUFeatures();
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, features,
                                                      level, LLVMRelocPIC,
                                                      LLVMCodeModelJITDefault);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    LLVMDisposeMessage(triple);
    return tm;
}

static bool jit_optimize(Nnl *nnl, LLVMModuleRef mod)
{
    LLVMTargetMachineRef tm = jit_host_machine(nnl, LLVMCodeGenLevelAggressive);
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
    for (int i = 0; i < N; i++) {
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(jit->lljit, jit_symbols[i].name);
        pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)jit_symbols[i].addr;
        pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported |
                                          LLVMJITSymbolGenericFlagsCallable;
        pairs[i].Sym.Flags.TargetFlags = 0;
    }
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, N);
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
    static bool initialized;
    if (!initialized) {
        LLVMInitializeNativeTarget();
        LLVMInitializeNativeAsmPrinter();
        initialized = true;
    }
    *out = NULL;
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef mod = cg_module(nnl, p, plan, elem_size, LLVMOrcThreadSafeContextGetContext(tsc));
    if (!mod || !jit_optimize(nnl, mod)) {
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
    LLVMTargetMachineRef jtm = jit_host_machine(nnl, LLVMCodeGenLevelLess);
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
        good = entries->init && entries->grad && entries->eval && entries->update;
    }
    if (!good) {
        jit_free(jit);
        return NNL_EINTERNAL;
    }
    *out = jit;
    return NNL_OK;
}
