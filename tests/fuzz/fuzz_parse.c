/* fuzz_parse.c — libFuzzer harness over the lexer, the parser, names and lowering.
 *
 * Any input must end in a report or a tree: no crash, no leak, no hang. Built with
 * -fsanitize=fuzzer in the sanitizer configuration; replay.c runs the same entry point
 * over the saved reproducers in every configuration. */
#include <stdint.h>
#include <stdio.h>

#include "nnlc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore(void *user, const NnlDiag *d)
{
    (void)user;
    (void)d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    for (int stage = NNL_DUMP_TOKENS; stage <= NNL_DUMP_AST; stage++) {
        Nnl *nnl = nnl_new(ignore, NULL);
        if (nnl_load_text(nnl, "fuzz.nnl", (const char *)data, size) == NNL_OK)
            nnl_dump(nnl, (NnlStage)stage, sink);
        nnl_free(nnl);
    }
    /* names, train keys, shapes: everything but reading data files and code generation */
    Nnl *nnl = nnl_new(ignore, NULL);
    NnlRunOptions opt = {.mode = NNL_RUN_CHECK_NO_DATA, .out = sink};
    if (nnl_load_text(nnl, "fuzz.nnl", (const char *)data, size) == NNL_OK)
        nnl_run(nnl, &opt);
    nnl_free(nnl);
    return 0;
}
