/* main.c — the nnlc command line: parses arguments and calls libnnlc. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "nnlc.h"

typedef struct {
    const char *name;
    const char *summary;
    const char *usage;
    const char *details;
    int (*run)(int argc, char **argv);
} Command;

static int cmd_check(int argc, char **argv);
static int cmd_dump(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const Command commands[] = {
    {"check", "check scripts for errors without running them", "nnlc check FILE...",
     "Reads each FILE ('-' is standard input) and reports every error it finds as\n"
     "FILE:LINE:COL: error: MESSAGE, followed by the line and a caret.\n"
     "\n"
     "Exit status: 0 when every file is correct, 1 when a file has errors,\n"
     "2 when a file cannot be read.\n",
     cmd_check},
    {"dump", "print the output of a compiler stage", "nnlc dump --stage=STAGE FILE...",
     "Prints the stable text form of a stage for each FILE:\n"
     "  tokens   the tokens the parser receives, one per line: LINE:COL KIND TEXT\n"
     "  ast      the syntax tree, one node per line, children indented\n"
     "\n"
     "Exit status as for 'nnlc check'; nothing is printed when a file has errors.\n",
     cmd_dump},
    {"help", "show help for a command", "nnlc help [COMMAND]", "", cmd_help},
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "nnlc %s — a compiler for neural-network training scripts (.nnl)\n"
            "\n"
            "usage: nnlc COMMAND [OPTIONS] [FILE...]\n"
            "\n"
            "commands:\n",
            NNLC_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "options:\n"
            "  -h, --help  show this help ('nnlc help COMMAND' for a command's)\n"
            "  --version   print the version\n"
            "\n"
            "The language and the commands are described in docs/language.md and docs/cli.md.\n");
}

static const Command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
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

/* Loads every file; the worst result wins (an unreadable file is a usage/I-O error). */
static int load_files(Nnl *nnl, int nfiles, char **files)
{
    int worst = NNL_OK;
    for (int i = 0; i < nfiles; i++) {
        int r = nnl_load_file(nnl, files[i]);
        if (r > worst)
            worst = r;
    }
    return worst;
}

/* Splits arguments into options (returned through `stage`) and files; returns -1 when
 * an argument is not understood. */
static int collect_files(const char *cmd, int argc, char **argv, char **files,
                         const char **stage)
{
    int n = 0;
    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
        } else if (!options_done && stage && strncmp(a, "--stage=", 8) == 0) {
            *stage = a + 8;
        } else if (!options_done && stage && strcmp(a, "--stage") == 0) {
            if (i + 1 == argc) {
                usage_error(cmd, "option '%s' needs a value", a);
                return -1;
            }
            *stage = argv[++i];
        } else if (!options_done && a[0] == '-' && a[1] != 0) {
            usage_error(cmd, "unknown option '%s'", a);
            return -1;
        } else {
            files[n++] = (char *)a;
        }
    }
    if (n == 0) {
        usage_error(cmd, "%s needs at least one file", cmd);
        return -1;
    }
    return n;
}

static int cmd_check(int argc, char **argv)
{
    char *files[argc + 1];
    int n = collect_files("check", argc, argv, files, NULL);
    if (n < 0)
        return NNL_EUSAGE;
    Nnl *nnl = nnl_new(print_diag, NULL);
    int r = load_files(nnl, n, files);
    int p = nnl_parse(nnl);
    nnl_free(nnl);
    return r > p ? r : p;
}

static int cmd_dump(int argc, char **argv)
{
    char *files[argc + 1];
    const char *stage = NULL;
    int n = collect_files("dump", argc, argv, files, &stage);
    if (n < 0)
        return NNL_EUSAGE;
    NnlStage st;
    if (!stage)
        return usage_error("dump", "%s needs --stage=tokens|ast", "dump");
    if (strcmp(stage, "tokens") == 0)
        st = NNL_DUMP_TOKENS;
    else if (strcmp(stage, "ast") == 0)
        st = NNL_DUMP_AST;
    else
        return usage_error("dump", "unknown stage '%s' (stages: tokens, ast)", stage);
    Nnl *nnl = nnl_new(print_diag, NULL);
    int r = load_files(nnl, n, files);
    if (r == NNL_OK)
        r = nnl_dump(nnl, st, stdout);
    nnl_free(nnl);
    if (fflush(stdout) != 0 && r == NNL_OK) {
        fprintf(stderr, "nnlc: error: cannot write the output\n");
        r = NNL_EUSAGE;
    }
    return r;
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

int main(int argc, char **argv)
{
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
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_command_help(stdout, c);
            return NNL_OK;
        }
    }
    return c->run(argc - 2, argv + 2);
}
