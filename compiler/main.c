/* main.c — the nnlc command line: parses arguments and calls libnnlc. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "nnlc.h"
#include "nnlrt.h"
#include "nnlrt_util.h" /* nnlrt_option_value, nnlrt_set_not_pair, the recorded options */

enum { MAX_SETS = 128 };

/* Everything a command may be given; each command says which options it accepts. */
typedef struct {
    const char *files[64];
    int nfiles;
    const char *stage;
    NnlRunOptions run;
    const char *sets[MAX_SETS];
    bool lib;          /* build --lib */
    bool summary;      /* check --summary */
    /* the options a run records in its checkpoints (recorded_options), as given */
    const char *words[2 * MAX_SETS + 8];
    int nwords;
} Args;

/* The options a run records in its checkpoints, and how a later one replaces an earlier one
 * (docs/checkpoints.md, "Resuming"). */
static const NnlrtOptSpec recorded_options[] = {
    {"--train", NNLRT_OPT_ONE}, {"--set", NNLRT_OPT_SET}, {"--log", NNLRT_OPT_ONE},
    {"--save-params", NNLRT_OPT_ONE}, {"--float64", NNLRT_OPT_FLAG},
};
enum { N_RECORDED = sizeof recorded_options / sizeof recorded_options[0] };

enum { OPT_STAGE = 1, OPT_RUN = 2, OPT_BUILD = 4, OPT_PREDICT = 8, OPT_EVAL = 16,
       OPT_CHECK = 32, OPT_PLOT = 64 };
enum { OPT_USE = OPT_PREDICT | OPT_EVAL }; /* commands that use a trained model */

typedef struct {
    const char *name;
    const char *summary;
    const char *usage;
    const char *details;
    int options;
    bool one_file;
    int (*run)(Args *a);
} Command;

static int cmd_check(Args *a);
static int cmd_dump(Args *a);
static int cmd_run(Args *a);
static int cmd_gradcheck(Args *a);
static int cmd_build(Args *a);
static int cmd_predict(Args *a);
static int cmd_eval(Args *a);
static int cmd_export(int argc, char **argv);
static int cmd_plot(Args *a);

#define RUN_OPTIONS \
    "  --set KEY=VALUE   override a key of the train block (any number of times)\n" \
    "  --train MODEL     the train block to use when the script has several\n" \
    "  --log FILE        write the training log (CSV) to FILE\n" \
    "  --init FILE       start from the parameters in FILE (lines: name,v1,v2,...)\n" \
    "  --save-params FILE  write the final parameters to FILE, in the same format\n" \
    "  --resume CKPT     go on from a checkpoint (written with checkpoint = \"path\")\n" \
    "  --fresh           start over, replacing the checkpoint a run left (without it\n" \
    "                    a run that does not resume refuses to replace one)\n" \
    "  --float64         compute in float64 instead of float32\n" \
    "  --quiet           print nothing but errors\n" \
    "  --verbose         also the compiler's stages and their times, the data and the run\n"

static const Command commands[] = {
    {"run", "compile a script and train its model", "nnlc run FILE [OPTIONS]",
     "Checks FILE, differentiates the model, compiles forward pass, backward pass and\n"
     "optimizer update with LLVM, and trains as the train block says, printing a line per\n"
     "epoch.\n\noptions:\n" RUN_OPTIONS
     "\nExit status: 0 trained, 1 an error in the script or its data, 2 usage or I/O error,\n"
     "3 training diverged (the loss became NaN or infinite), 70 internal error.\n",
     OPT_RUN, true, cmd_run},
    {"build", "compile a script into a standalone trainer",
     "nnlc build FILE [-o TRAINER] [--cpu=CPU] [OPTIONS]\n       nnlc build --lib FILE -o NAME [--cpu=CPU] [OPTIONS]",
     "Runs the same steps as 'nnlc run' up to the compiled model (the data files are read\n"
     "and checked: the model's sizes come from them), then writes TRAINER, an executable\n"
     "that trains the model as 'nnlc run' would, without nnlc or LLVM. It is linked with\n"
     "cc against nnl's runtime, OpenBLAS and zlib. 'TRAINER --help' describes it.\n"
     "With --lib it writes NAME.o and NAME.h instead: the model's inference as C functions\n"
     "(NAME_predict, and NAME_load to read the weights of a checkpoint) to link into a C\n"
     "program with -lopenblas -lz -lm; NAME.h says how to call them.\n"
     "\noptions:\n"
     "  -o, --output FILE  the trainer to write (default: the script's name without .nnl);\n"
     "                     with --lib, NAME: the files NAME.o and NAME.h, functions NAME_*\n"
     "  --lib              write an object file and a header for C programs, not a trainer\n"
     "  --cpu=CPU          the processor the code is for: x86-64-v3 (the default: any\n"
     "                     x86-64 CPU with AVX2 and FMA), native (this machine's, with all\n"
     "                     its features: as fast as 'nnlc run', and bit-identical to it),\n"
     "                     x86-64, x86-64-v2 or x86-64-v4\n"
     "  --set KEY=VALUE    override a key of the train block; it is compiled in\n"
     "  --train MODEL      the train block to use when the script has several\n"
     "  --float64          compute in float64 instead of float32\n"
     "  --quiet            print nothing but errors\n"
     "  --verbose          also the compiler's stages and their times\n"
     "\nExit status: 0 built, 1 an error in the script or its data, 2 usage or I/O error\n"
     "(no C compiler, a file that cannot be written), 70 internal error.\n",
     OPT_BUILD, true, cmd_build},
    {"predict", "compute a trained model's outputs for new inputs",
     "nnlc predict FILE --checkpoint CKPT --input INPUTS [-o OUT] [OPTIONS]",
     "Compiles the model of FILE, loads the parameters of CKPT (a checkpoint written by\n"
     "'nnlc run' with checkpoint = \"path\") and writes the model's output for every sample\n"
     "of INPUTS. INPUTS is a .npy of samples, or a CSV read as the training data's file is\n"
     "(its header and delimiter; a target column, if present, is left out); inputs get the\n"
     "training data's scale and standardization. OUT is a .csv (a header row, then per\n"
     "sample the predicted class for a classifier and every output) or a .npy of shape\n"
     "(samples, outputs); without -o the CSV goes to standard output.\n"
     "\noptions:\n"
     "  --checkpoint CKPT  the trained parameters (required)\n"
     "  --input FILE       the inputs, .csv or .npy (required)\n"
     "  -o, --output FILE  where to write the outputs, .csv or .npy\n"
     "  --set KEY=VALUE    override a key of the train block, as for 'nnlc run'\n"
     "  --train MODEL      the train block to use when the script has several\n"
     "  --float64          the checkpoint is from a float64 run\n"
     "\nExit status: 0 written, 1 an error in the script, its data, the inputs or the\n"
     "checkpoint, 2 usage or I/O error, 70 internal error.\n",
     OPT_PREDICT, true, cmd_predict},
    {"eval", "evaluate a trained model: loss, metrics, confusion matrix",
     "nnlc eval FILE --checkpoint CKPT [--data NAME] [OPTIONS]",
     "Compiles the model of FILE, loads the parameters of CKPT and prints the mean loss and\n"
     "each metric of the train block over a data set: NAME, a data declaration of FILE, or\n"
     "by default the validation data (the training data when there is none). For a\n"
     "classifier it also prints the confusion matrix: a row per true class, a column per\n"
     "predicted class. A class target (cross_entropy) predicts the largest output; a binary\n"
     "classifier (one output, targets 0 or 1) predicts 1 when the output is > 0.5 with\n"
     "bce (a probability), > 0 with bce_logits (a logit).\n"
     "\noptions:\n"
     "  --checkpoint CKPT  the trained parameters (required)\n"
     "  --data NAME        the data declaration to evaluate on\n"
     "  --set KEY=VALUE    override a key of the train block, as for 'nnlc run'\n"
     "  --train MODEL      the train block to use when the script has several\n"
     "  --float64          the checkpoint is from a float64 run\n"
     "  --quiet            print the figures only\n"
     "\nExit status: 0 evaluated, 1 an error in the script, its data or the checkpoint,\n"
     "2 usage or I/O error, 70 internal error.\n",
     OPT_EVAL, true, cmd_eval},
    {"check", "check scripts for errors without running them",
     "nnlc check [--summary] FILE...",
     "Reads each FILE ('-' is standard input) and reports every error it finds as\n"
     "FILE:LINE:COL: error: MESSAGE, followed by the line and a caret: syntax, names,\n"
     "arguments, shapes, and the data files the train block uses.\n"
     "\noptions:\n"
     "  --summary         then describe each model: input and output, layers and their\n"
     "                    parameters, FLOPs per sample, memory for the train block's batch\n"
     "  --set KEY=VALUE   override a key of the train block (batch = N for the memory)\n"
     "  --train MODEL     the train block to describe when the script has several\n"
     "\n"
     "Exit status: 0 when every file is correct, 1 when a file has errors,\n"
     "2 when a file cannot be read.\n",
     OPT_CHECK, false, cmd_check},
    {"dump", "print the output of a compiler stage", "nnlc dump --stage=STAGE FILE [OPTIONS]",
     "Prints the stable text form of a stage:\n"
     "  tokens   the tokens the parser receives, one per line: LINE:COL KIND TEXT\n"
     "  ast      the syntax tree, one node per line, children indented\n"
     "  ir       the tensor graph of the forward pass, the loss, the metrics and the update\n"
     "  grad     the nodes autodiff adds, and each parameter's gradient\n"
     "  kernels  the fused loops and library calls of each entry point\n"
     "  llvm     the optimized LLVM module\n"
     "The stages from ir on take the same options as 'nnlc run'.\n"
     "\n"
     "Exit status as for 'nnlc check'; nothing is printed when a file has errors.\n",
     OPT_STAGE | OPT_RUN, false, cmd_dump},
    {"gradcheck", "compare gradients with finite differences", "nnlc gradcheck FILE [OPTIONS]",
     "Compiles the model in float64, initialises it from the seed and compares every\n"
     "parameter's gradient on the first samples with central differences. Prints the worst\n"
     "relative error of each tensor; exit status 1 when one is 1e-6 or more.\n",
     OPT_RUN, true, cmd_gradcheck},
    {"export", "write a checkpoint's parameters as safetensors or NPY files",
     "nnlc export CKPT -o OUT [--format safetensors|npy]",
     "Reads the checkpoint CKPT (its tensor table names the tensors: no script is needed)\n"
     "and writes its parameters, not its optimizer states:\n"
     "  -o, --output OUT    OUT.safetensors: one safetensors file; a directory: npy\n"
     "  --format FORMAT     safetensors, or npy: one NAME.npy per tensor in directory OUT\n"
     "                      (made if missing)\n"
     "Files are written whole or not at all. Exit status: 0 written, 1 a checkpoint\n"
     "refused, 2 usage or I/O error.\n",
     0, true, NULL},
    {"plot", "draw a training log as an SVG file", "nnlc plot LOG.csv [-o PLOT.svg]",
     "Reads LOG.csv, the CSV log a run writes (train key log, or --log), and draws it into\n"
     "PLOT.svg (default: LOG with .svg for .csv): a panel for the loss, then one per metric,\n"
     "training and validation as two curves, against the epoch (or the step, for a log\n"
     "with a row every N steps); the loss on a log scale when it spans more than 100x.\n"
     "\nExit status: 0 written, 1 a malformed log, 2 usage or I/O error.\n",
     OPT_PLOT, true, cmd_plot},
    {"help", "show help for a command", "nnlc help [COMMAND]", "", 0, false, NULL},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void print_usage(FILE *out)
{
    fprintf(out, "nnlc %s — a compiler for neural-network training scripts (.nnl)\n\n"
                 "usage: nnlc COMMAND [OPTIONS] [FILE...]\n\ncommands:\n", NNLC_VERSION);
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\noptions:\n"
                 "  -h, --help  show this help ('nnlc help COMMAND' for a command's)\n"
                 "  --version   print the version\n"
                 "\nThe language and the commands are described in docs/language.md and "
                 "docs/cli.md.\n");
}

static const Command *find_command(const char *name)
{
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_command_help(FILE *out, const Command *c)
{
    fprintf(out, "usage: %s\n\n%s — %s\n", c->usage, c->name, c->summary);
    if (*c->details)
        fprintf(out, "\n%s", c->details);
}

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "nnlc: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'nnlc help%s%s')\n", cmd ? " " : "", cmd ? cmd : "");
    return NNL_EUSAGE;
}

static void print_diag(void *user, const NnlDiag *d)
{
    (void)user;
    nnl_print_diag(stderr, d);
}

/* An option a run records, and its value (NULL: none), in a->words; false when full. */
static bool push_word(Args *a, const char *option, const char *value)
{
    if (a->nwords + 2 > (int)(sizeof a->words / sizeof *a->words))
        return false;
    a->words[a->nwords++] = option;
    if (value)
        a->words[a->nwords++] = value;
    return true;
}

static int parse_args(const Command *c, int argc, char **argv, Args *a)
{
    /* options with a value, the commands that take each, and whether a run records it */
    static const struct {
        const char *name;
        int commands;
        bool recorded;
    } run_opts[] = {
        {"--set", OPT_RUN | OPT_BUILD | OPT_USE | OPT_CHECK, true},
        {"--train", OPT_RUN | OPT_BUILD | OPT_USE | OPT_CHECK, true},
        {"--log", OPT_RUN, true}, {"--init", OPT_RUN, false}, {"--save-params", OPT_RUN, true},
        {"--output", OPT_BUILD | OPT_PREDICT | OPT_PLOT, false},
        {"-o", OPT_BUILD | OPT_PREDICT | OPT_PLOT, false},
        {"--cpu", OPT_BUILD, false}, {"--resume", OPT_RUN, false},
        {"--checkpoint", OPT_USE, false}, {"--input", OPT_PREDICT, false},
        {"--data", OPT_EVAL, false},
    };
    bool options_done = false;
    a->run.sets = a->sets;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *v;
        bool missing = false, matched = false;
        if (options_done || arg[0] != '-' || arg[1] == 0) {
            if (a->nfiles == 64)
                return usage_error(c->name, "%s", "too many files");
            a->files[a->nfiles++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if ((c->options & OPT_STAGE) && (v = nnlrt_option_value("--stage", argc, argv, &i, &missing))) {
            a->stage = v;
            continue;
        }
        if ((c->options & (OPT_RUN | OPT_BUILD | OPT_EVAL)) && strcmp(arg, "--quiet") == 0) {
            a->run.quiet = 1; /* the last of --quiet and --verbose wins */
            a->run.verbose = 0;
            continue;
        }
        if ((c->options & (OPT_RUN | OPT_BUILD)) && strcmp(arg, "--verbose") == 0) {
            a->run.verbose = 1;
            a->run.quiet = 0;
            continue;
        }
        if ((c->options & (OPT_RUN | OPT_BUILD | OPT_USE)) && strcmp(arg, "--float64") == 0) {
            if (!a->run.float64 && !push_word(a, arg, NULL))
                return usage_error(c->name, "%s", "too many options");
            a->run.float64 = 1;
            continue;
        }
        if ((c->options & OPT_RUN) && strcmp(arg, "--fresh") == 0) {
            a->run.fresh = 1;
            continue;
        }
        if ((c->options & OPT_CHECK) && strcmp(arg, "--summary") == 0) {
            a->summary = true;
            continue;
        }
        if ((c->options & OPT_BUILD) && strcmp(arg, "--lib") == 0) {
            a->lib = true;
            continue;
        }
        for (size_t k = 0; k < sizeof run_opts / sizeof *run_opts && !missing; k++) {
            if (!(c->options & run_opts[k].commands) ||
                !(v = nnlrt_option_value(run_opts[k].name, argc, argv, &i, &missing)))
                continue;
            matched = true;
            if (run_opts[k].recorded && !push_word(a, run_opts[k].name, v))
                return usage_error(c->name, "%s", "too many options");
            if (k == 0) {
                if (a->run.nsets == MAX_SETS)
                    return usage_error(c->name, "%s", "too many --set options");
                if (nnlrt_set_not_pair("nnlc", v, i + 1 < argc ? argv[i + 1] : NULL))
                    return NNL_EUSAGE;
                a->sets[a->run.nsets++] = v;
            } else {
                const char **dst[] = {NULL, &a->run.train, &a->run.log, &a->run.init,
                                      &a->run.dump_params, &a->run.output, &a->run.output,
                                      &a->run.cpu, &a->run.resume, &a->run.checkpoint,
                                      &a->run.input, &a->run.data};
                *dst[k] = v;
            }
            break;
        }
        if (missing)
            return usage_error(c->name, "option '%s' needs a value", arg);
        if (!matched)
            return usage_error(c->name, "unknown option '%s'", arg);
    }
    if (a->nfiles == 0)
        return usage_error(c->name, "%s needs a file", c->name);
    if (c->one_file && a->nfiles > 1)
        return usage_error(c->name, "%s takes one file", c->name);
    return NNL_OK;
}

/* Runs `mode` on one file in a context of its own; the worst result wins. */
static int run_file(const char *path, NnlRunOptions *opt)
{
    Nnl *nnl = nnl_new(print_diag, NULL);
    int r = nnl_load_file(nnl, path);
    if (r == NNL_OK)
        r = nnl_run(nnl, opt);
    nnl_free(nnl);
    return r;
}

static int cmd_check(Args *a)
{
    int worst = NNL_OK;
    a->run.mode = a->summary ? NNL_RUN_SUMMARY : NNL_RUN_CHECK;
    for (int i = 0; i < a->nfiles; i++) {
        int r = run_file(a->files[i], &a->run);
        if (r > worst)
            worst = r;
    }
    return worst;
}

static int cmd_run(Args *a)
{
    a->run.mode = NNL_RUN_TRAIN;
    return run_file(a->files[0], &a->run);
}

static int cmd_gradcheck(Args *a)
{
    a->run.mode = NNL_RUN_GRADCHECK;
    return run_file(a->files[0], &a->run);
}

/* The trainer's default name: the script's without its directory and ".nnl". */
static const char *default_output(const char *script, char *buf, size_t n)
{
    const char *slash = strrchr(script, '/');
    const char *base = slash ? slash + 1 : script;
    size_t len = strlen(base);
    if (len > 4 && strcmp(base + len - 4, ".nnl") == 0)
        len -= 4;
    else
        return NULL;
    snprintf(buf, n, "%.*s", (int)len, base);
    return buf;
}

static int cmd_build(Args *a)
{
    static const char *const cpus[] = {"native", "x86-64", "x86-64-v2", "x86-64-v3",
                                       "x86-64-v4"};
    char name[256];
    bool known = !a->run.cpu;
    for (size_t i = 0; !known && i < sizeof cpus / sizeof *cpus; i++)
        known = strcmp(a->run.cpu, cpus[i]) == 0;
    if (!known)
        return usage_error("build", "unknown CPU '%s' (--cpu=native, x86-64, x86-64-v2, "
                           "x86-64-v3 or x86-64-v4)", a->run.cpu);
    if (a->lib && !a->run.output)
        return usage_error("build", "%s", "--lib needs -o NAME (the files NAME.o and NAME.h)");
    if (!a->run.output && !(a->run.output = default_output(a->files[0], name, sizeof name)))
        return usage_error("build", "name the trainer with -o FILE (the script '%s' does "
                           "not end in .nnl)", a->files[0]);
    if (!*a->run.output)
        return usage_error("build", "%s", "-o needs a file name");
    a->run.mode = a->lib ? NNL_RUN_BUILD_LIB : NNL_RUN_BUILD;
    return run_file(a->files[0], &a->run);
}

static int cmd_predict(Args *a)
{
    if (!a->run.checkpoint || !*a->run.checkpoint)
        return usage_error("predict", "%s", "predict needs --checkpoint CKPT");
    if (!a->run.input || !*a->run.input)
        return usage_error("predict", "%s", "predict needs --input FILE (.csv or .npy)");
    if (a->run.output && !*a->run.output)
        return usage_error("predict", "%s", "-o needs a file name");
    a->run.mode = NNL_RUN_PREDICT;
    return run_file(a->files[0], &a->run);
}

static int cmd_eval(Args *a)
{
    if (!a->run.checkpoint || !*a->run.checkpoint)
        return usage_error("eval", "%s", "eval needs --checkpoint CKPT");
    a->run.mode = NNL_RUN_EVAL;
    return run_file(a->files[0], &a->run);
}

/* nnlc plot LOG [-o SVG]: the default SVG is LOG less ".csv", plus ".svg". */
static int cmd_plot(Args *a)
{
    char name[4096];
    const char *log = a->files[0], *svg = a->run.output;
    size_t n = strlen(log);
    if (!svg) {
        bool csv = n > 4 && strcmp(log + n - 4, ".csv") == 0;
        snprintf(name, sizeof name, "%.*s.svg", (int)(csv ? n - 4 : n), log);
        svg = name;
    }
    if (!*svg || strcmp(svg, log) == 0)
        return usage_error("plot", "%s", *svg ? "the plot would replace the log: give "
                           "another -o FILE" : "-o needs a file name");
    return nnlrt_plot(log, svg);
}

static int cmd_dump(Args *a)
{
    static const struct {
        const char *name;
        int run_mode; /* -1: a front-end stage */
        NnlStage stage;
    } stages[] = {
        {"tokens", -1, NNL_DUMP_TOKENS}, {"ast", -1, NNL_DUMP_AST},
        {"ir", NNL_RUN_DUMP_IR, 0}, {"grad", NNL_RUN_DUMP_GRAD, 0},
        {"kernels", NNL_RUN_DUMP_KERNELS, 0}, {"llvm", NNL_RUN_DUMP_LLVM, 0},
    };
    if (!a->stage)
        return usage_error("dump", "%s needs --stage=tokens|ast|ir|grad|kernels|llvm", "dump");
    int s = -1;
    for (int i = 0; i < (int)(sizeof stages / sizeof stages[0]); i++)
        if (strcmp(stages[i].name, a->stage) == 0)
            s = i;
    if (s < 0)
        return usage_error("dump", "unknown stage '%s' (stages: tokens, ast, ir, grad, kernels, "
                           "llvm)", a->stage);
    int worst = NNL_OK;
    for (int i = 0; i < a->nfiles; i++) {
        int r;
        if (stages[s].run_mode >= 0) {
            a->run.mode = (NnlRunMode)stages[s].run_mode;
            r = run_file(a->files[i], &a->run);
        } else {
            Nnl *nnl = nnl_new(print_diag, NULL);
            r = nnl_load_file(nnl, a->files[i]);
            if (r == NNL_OK)
                r = nnl_dump(nnl, stages[s].stage, stdout);
            nnl_free(nnl);
        }
        if (r > worst)
            worst = r;
    }
    if (fflush(stdout) != 0 && worst == NNL_OK) {
        fprintf(stderr, "nnlc: error: cannot write the output\n");
        worst = NNL_EUSAGE;
    }
    return worst;
}

static int cmd_help(int argc, char **argv)
{
    if (argc == 0) {
        print_usage(stdout);
        return NNL_OK;
    }
    const Command *c = find_command(argv[0]);
    if (!c)
        return usage_error(NULL, "unknown command '%s'", argv[0]);
    print_command_help(stdout, c);
    return NNL_OK;
}

/* nnlc export CKPT -o OUT [--format F]: its own options, then libnnlrt's nnlrt_export. */
static int cmd_export(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *format = NULL, *v;
    for (int i = 0; i < argc; i++) {
        bool missing = false;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return cmd_help(1, (char *[]){"export"});
        if ((v = nnlrt_option_value("-o", argc, argv, &i, &missing)) ||
            (v = nnlrt_option_value("--output", argc, argv, &i, &missing)))
            out = v;
        else if ((v = nnlrt_option_value("--format", argc, argv, &i, &missing)))
            format = v;
        else if (missing)
            return usage_error("export", "option '%s' needs a value", argv[i]);
        else if (argv[i][0] == '-' && argv[i][1])
            return usage_error("export", "unknown option '%s'", argv[i]);
        else if (ckpt)
            return usage_error("export", "%s", "export takes one checkpoint");
        else
            ckpt = argv[i];
    }
    if (!ckpt || !out)
        return usage_error("export", "%s", ckpt ? "export needs -o OUT"
                                                : "export needs a checkpoint");
    return nnlrt_export(ckpt, out, format);
}

/* The recorded words of checkpoint `ckpt` (t) that command c takes, into *kept: for run
 * all of them, for eval and predict --set, --train and --float64 (the model's; the log and
 * the parameter file are the run's). False after reporting a record this nnlc cannot go
 * on with. */
static bool recorded_for(const Command *c, const char *ckpt, const NnlrtCheckpointTensors *t,
                         const char **kept, int *n)
{
    bool run = c->run == cmd_run;
    *n = 0;
    for (int i = 0; i < t->n_options;) {
        const char *w = t->options[i];
        const NnlrtOptSpec *s = NULL;
        for (int k = 0; k < N_RECORDED; k++)
            if (strcmp(recorded_options[k].name, w) == 0)
                s = &recorded_options[k];
        bool trainers = strcmp(w, "--data") == 0; /* a trainer's: its data files */
        int width = (s && s->kind == NNLRT_OPT_FLAG) ? 1 : 2;
        if ((!s && !trainers) || i + width > t->n_options) {
            fprintf(stderr, "%s: error: corrupt: its record of the run's options holds '%s'%s, "
                    "which nnlc does not know\n", ckpt, w,
                    s || trainers ? " without its value" : "");
            return false;
        }
        if (trainers && run) {
            fprintf(stderr, "%s: error: was written by a trainer given '--data %s', which "
                    "'nnlc run' cannot take: resume it with that trainer\n", ckpt,
                    t->options[i + 1]);
            return false;
        }
        bool model = s && (strcmp(w, "--log") != 0 && strcmp(w, "--save-params") != 0);
        for (int k = 0; k < width && (run || model); k++)
            kept[(*n)++] = t->options[i + k];
        i += width;
    }
    return true;
}

/* run --resume CKPT, eval and predict --checkpoint CKPT: the options recorded in CKPT,
 * then argv's (which win), parsed again into *a (docs/checkpoints.md, "Resuming"); what the
 * run will record into a->run.options. *t keeps the recorded words (free it after the
 * run). */
static int use_recorded(const Command *c, int argc, char **argv, Args *a,
                        NnlrtCheckpointTensors *t)
{
    bool run = c->run == cmd_run, use = c->run == cmd_eval || c->run == cmd_predict;
    const char *ckpt = run ? a->run.resume : use ? a->run.checkpoint : NULL;
    int n_old = 0;
    if (ckpt && *ckpt) {
        int rc = nnlrt_checkpoint_read_options(ckpt, t);
        if (rc != NNLRT_OK)
            return rc;
        const char **kept = nnlrt_alloc(sizeof *kept * ((size_t)t->n_options + (size_t)argc + 1));
        if (!recorded_for(c, ckpt, t, kept, &n_old)) {
            nnlrt_free(kept);
            return NNL_EUSER;
        }
        if (n_old > 0) {
            memcpy(kept + n_old, argv, sizeof *kept * (size_t)argc);
            *a = (Args){.run.out = stdout};
            int rc2 = parse_args(c, n_old + argc, (char **)kept, a);
            if (rc2 == NNL_OK && !a->run.quiet)
                nnlrt_options_report(run ? stdout : stderr, "nnlc", ckpt, recorded_options,
                                     N_RECORDED, a->words, n_old, a->nwords);
            nnlrt_free(kept); /* argv's words and t's stay: a points into them */
            if (rc2 != NNL_OK)
                return rc2;
        } else
            nnlrt_free(kept);
    }
    if (run) {
        const char **record = nnlrt_alloc(sizeof *record * ((size_t)a->nwords + 1));
        a->run.noptions = nnlrt_options_dedupe(recorded_options, N_RECORDED, a->words,
                                               a->nwords, record);
        a->run.options = record;
    }
    return NNL_OK;
}

int main(int argc, char **argv)
{
    nnlrt_threads_check();
    if (argc < 2) {
        print_usage(stderr);
        return NNL_EUSAGE;
    }
    const char *a = argv[1];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
        return cmd_help(0, NULL);
    if (strcmp(a, "--version") == 0) {
        printf("nnlc %s\n", NNLC_VERSION);
        return NNL_OK;
    }
    const Command *c = find_command(a);
    if (!c)
        return usage_error(NULL, a[0] == '-' ? "unknown option '%s'" : "unknown command '%s'",
                           a);
    if (strcmp(c->name, "export") == 0)
        return cmd_export(argc - 2, argv + 2);
    if (!c->run)
        return cmd_help(argc - 2, argv + 2);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_command_help(stdout, c);
            return NNL_OK;
        }
    }
    Args args = {0};
    args.run.out = stdout;
    int r = parse_args(c, argc - 2, argv + 2, &args);
    if (r != NNL_OK)
        return r;
    NnlrtCheckpointTensors recorded = {0};
    r = use_recorded(c, argc - 2, argv + 2, &args, &recorded);
    if (r == NNL_OK)
        r = c->run(&args);
    nnlrt_free((void *)args.run.options);
    nnlrt_checkpoint_tensors_free(&recorded);
    return r;
}
