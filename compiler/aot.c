/* aot.c — standalone trainers (nnlc build).
 *
 * The optimized module becomes an object file (jit.c: cg_emit_object, with the same
 * TargetMachine settings as the JIT); the model's description, its data sets and the train
 * block's settings become a C file defining an NnlrtProgram and a main that calls
 * nnlrt_trainer_main. Both are compiled and linked with cc against the static libnnlrt.a,
 * OpenBLAS, zlib and libm, in a temporary directory removed afterwards. The trainer needs
 * neither LLVM nor nnlc: it finds the data files from the script's directory as compiled.
 *
 * Where the runtime and the C compiler are comes from the build (CMake): NNLC_RUNTIME_LIB,
 * NNLC_RUNTIME_INCLUDE, NNLC_BLAS_LIB, NNLC_ZLIB_LIB, NNLC_TRAINER_CC and NNLC_TRAINER_FLAGS
 * (the sanitizer flags of a sanitizer build, whose libnnlrt.a needs them). The environment
 * variable NNLC_CC names another C compiler.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, posix_spawnp, realpath */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nnlc_int.h"

#ifndef NNLC_RUNTIME_LIB
#error "NNLC_RUNTIME_LIB (the path of libnnlrt.a) is defined by the build"
#endif
#ifndef NNLC_TRAINER_CC
#define NNLC_TRAINER_CC "cc"
#endif
#ifndef NNLC_TRAINER_FLAGS
#define NNLC_TRAINER_FLAGS ""
#endif

extern char **environ;

enum { AOT_MAX_ARGS = 32 };

/* ---- C text ---- */

/* A C string literal; octal escapes take three digits, so no digit after one is eaten. */
static void aot_cstr(StrBuf *b, const char *s)
{
    if (!s) {
        sb_puts(b, "NULL");
        return;
    }
    sb_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_printf(b, "\\%c", *p);
        else if (*p == '\n')
            sb_puts(b, "\\n");
        else if (*p < 32 || *p >= 127 || *p == '?')
            sb_printf(b, "\\%03o", *p);
        else
            sb_putc(b, (char)*p);
    }
    sb_putc(b, '"');
}

/* A double that reads back as the same bits. */
static void aot_double(StrBuf *b, double v)
{
    sb_printf(b, "%.17g", v);
}

static const char *aot_bool(bool v)
{
    return v ? "true" : "false";
}

/* ---- the description of the compiled-in settings ---- */

/* The source text of a NAME or CALL (a loss, an optimizer, a metric), blanks and line
 * breaks folded into single spaces, comments dropped. */
static void aot_source_text(StrBuf *b, const AstNode *n)
{
    if (n->kind != AST_CALL || !n->src) {
        sb_puts(b, n->name ? n->name : "?");
        return;
    }
    const char *t = n->src->text, *end = t + n->src->len, *p = t + n->off;
    int depth = 0;
    bool space = false, started = false;
    for (; p < end; p++) {
        char c = *p;
        if (c == '#') {
            while (p < end && *p != '\n')
                p++;
            space = true;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = true;
            continue;
        }
        if (space && started && c != ')' && c != ',' && b->len && b->data[b->len - 1] != '(')
            sb_putc(b, ' ');
        space = false;
        started = true;
        if (c == '"') {
            const char *q = p + 1;
            while (q < end && *q != '"' && *q != '\n')
                q += *q == '\\' && q + 1 < end ? 2 : 1;
            sb_putn(b, p, (size_t)(q < end ? q + 1 - p : q - p));
            p = q;
            continue;
        }
        sb_putc(b, c);
        if (c == '(')
            depth++;
        else if (c == ')' && --depth <= 0)
            return;
        else if (depth == 0 && c != '_' && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
                 !(c >= '0' && c <= '9'))
            return; /* not a call after all */
    }
}

static void aot_describe(StrBuf *b, const TrainSpec *spec)
{
    sb_puts(b, "loss       ");
    aot_source_text(b, spec->loss);
    sb_puts(b, "\noptimizer  ");
    aot_source_text(b, spec->optimizer);
    sb_puts(b, "\nmetrics    [");
    for (int i = 0; i < spec->nmetrics; i++) {
        sb_puts(b, i ? ", " : "");
        aot_source_text(b, spec->metrics[i]);
    }
    sb_putc(b, ']');
    for (int k = 0; k < NNLRT_TRAIN_KEY_COUNT; k++) {
        NnlrtKeyKind kind = nnlrt_train_keys[k].kind;
        double v = kind == NNLRT_KEY_POSITIVE || kind == NNLRT_KEY_NONNEGATIVE
                       ? *(const double *)lower_train_field(spec, k) : 0;
        if (v != 0)
            sb_printf(b, "\n%-10s %g", nnlrt_train_keys[k].name, v);
    }
}

/* ---- the program ---- */

static void aot_tensors(StrBuf *b, const NnlrtModel *m)
{
    sb_puts(b, "static const NnlrtTensor tensors[] = {\n");
    for (int i = 0; i < m->n_tensors; i++) {
        const NnlrtTensor *t = &m->tensors[i];
        sb_puts(b, "    {.name = ");
        aot_cstr(b, t->name);
        sb_printf(b, ", .rank = %d, .dims = {%lld, %lld, %lld, %lld}, .offset = %lld, "
                  ".size = %lld, .buffer = %s},\n", t->rank, (long long)t->dims[0],
                  (long long)t->dims[1], (long long)t->dims[2], (long long)t->dims[3],
                  (long long)t->offset, (long long)t->size, aot_bool(t->buffer));
    }
    sb_puts(b, "};\n\n");
}

/* The separator before item i of a list written 8 to a line. */
static const char *aot_sep(int i)
{
    return i == 0 ? "\n    " : i % 8 ? ", " : ",\n    ";
}

static void aot_buffers(StrBuf *b, const NnlrtModel *m)
{
    sb_puts(b, "static const int64_t buf_elems[] = {");
    for (int i = 0; i < m->n_bufs; i++)
        sb_printf(b, "%s%lld", aot_sep(i), (long long)m->buf_elems[i]);
    sb_puts(b, "\n};\n\nstatic const bool buf_batched[] = {");
    for (int i = 0; i < m->n_bufs; i++)
        sb_printf(b, "%s%s", aot_sep(i), aot_bool(m->buf_batched[i]));
    sb_puts(b, "\n};\n\n");
}

static void aot_strings(StrBuf *b, const char *name, const char *const *s, int n, bool null)
{
    sb_printf(b, "static const char *const %s[] = {", name);
    for (int i = 0; i < n; i++) {
        sb_puts(b, "\n    ");
        aot_cstr(b, s[i]);
        sb_putc(b, ',');
    }
    sb_puts(b, null ? "\n    NULL,\n};\n\n" : "\n};\n\n");
}

/* The arrays a CSV spec points to, named dataN_features and dataN_feature_names. */
static void aot_spec_arrays(StrBuf *b, const NnlrtDataSpec *s, int i)
{
    if (s->kind != NNLRT_DATA_CSV || s->n_features == 0)
        return;
    if (s->features) {
        sb_printf(b, "static const long data%d_features[] = {", i);
        for (int k = 0; k < s->n_features; k++)
            sb_printf(b, "%s%ld", k ? ", " : "", s->features[k]);
        sb_puts(b, "};\n\n");
    }
    if (s->feature_names) {
        char name[64];
        snprintf(name, sizeof name, "data%d_feature_names", i);
        aot_strings(b, name, s->feature_names, s->n_features, false);
    }
}

static void aot_spec(StrBuf *b, const NnlrtDataSpec *s, int i)
{
    static const char *const kinds[] = {
#define AOT_DATA_KIND(id, name, files, load, load_shape) "NNLRT_DATA_" #id,
        NNLRT_DATA_KINDS(AOT_DATA_KIND)
#undef AOT_DATA_KIND
    };
    sb_puts(b, "    {.name = ");
    aot_cstr(b, s->name);
    sb_printf(b, ", .kind = %s, .path = ", kinds[s->kind]);
    aot_cstr(b, s->path);
    sb_puts(b, ", .path2 = ");
    aot_cstr(b, s->path2);
    sb_puts(b, ",\n     .script_dir = ");
    aot_cstr(b, s->script_dir);
    sb_puts(b, ", .scale = ");
    aot_double(b, s->scale);
    sb_puts(b, ",\n     .target = ");
    aot_cstr(b, s->target);
    sb_printf(b, ", .target_index = %ld, .n_features = %d", s->target_index, s->n_features);
    if (s->kind == NNLRT_DATA_CSV && s->n_features && s->features)
        sb_printf(b, ", .features = data%d_features", i);
    if (s->kind == NNLRT_DATA_CSV && s->n_features && s->feature_names)
        sb_printf(b, ", .feature_names = data%d_feature_names", i);
    sb_printf(b, ",\n     .header = %s, .delimiter = %d, .standardize = %s,\n     .parent = %d, "
              ".fraction = ", aot_bool(s->header), s->delimiter, aot_bool(s->standardize),
              s->parent);
    aot_double(b, s->fraction);
    sb_printf(b, ", .seed = %lluull, .part = %d},\n", (unsigned long long)s->seed, s->part);
}

static void aot_data(StrBuf *b, const AotInput *in)
{
    for (int i = 0; i < in->ndata; i++)
        aot_spec_arrays(b, &in->data[i], i);
    sb_puts(b, "static const NnlrtDataSpec data[] = {\n");
    for (int i = 0; i < in->ndata; i++)
        aot_spec(b, &in->data[i], i);
    sb_puts(b, "};\n\n");
}

/* The CPU features __builtin_cpu_supports can test that code for `cpu` may use: for a
 * named x86-64 level its features, for the host those of its feature string. */
static void aot_cpu_check(StrBuf *b, const char *cpu, const char *features)
{
    static const char *const known[] = {"sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx",
                                        "avx2", "fma", "bmi", "bmi2", "avx512f", "avx512bw",
                                        "avx512cd", "avx512dq", "avx512vl"};
    static const int level_count[] = {0, 5, 10, 15}; /* x86-64, -v2, -v3, -v4 */
    int level = strcmp(cpu, "x86-64-v2") == 0   ? 1
                : strcmp(cpu, "x86-64-v3") == 0 ? 2
                : strcmp(cpu, "x86-64-v4") == 0 ? 3
                                                : 0;
    sb_puts(b, "static const char *missing_cpu_feature(void)\n{\n    __builtin_cpu_init();\n");
    for (size_t i = 0; i < NNL_COUNTOF(known); i++) {
        char plus[32];
        snprintf(plus, sizeof plus, "+%s", known[i]);
        const char *at = strstr(features, plus);
        size_t len = strlen(plus);
        bool host = at && (at[len] == ',' || at[len] == 0);
        if ((int)i < level_count[level] || host)
            sb_printf(b, "    if (!__builtin_cpu_supports(\"%s\"))\n        return \"%s\";\n",
                      known[i], known[i]);
    }
    sb_puts(b, "    return NULL;\n}\n\n");
}

static void aot_model(StrBuf *b, const NnlrtModel *m)
{
    sb_printf(b, "    .model = {\n        .elem_size = %d, .n_params = %lld, .n_tensors = %d, "
              ".tensors = tensors,\n        .n_states = %d, .x_size = %lld, .y_size = %lld, "
              ".target_kind = %d, .n_classes = %lld,\n        .n_metrics = %d, .metric_names = "
              "%s, .n_bufs = %d,\n        .buf_elems = buf_elems, .buf_batched = buf_batched,\n"
              "        .init = nnl_init, .grad = nnl_grad, .update = nnl_update, "
              ".eval = nnl_eval,\n    },\n",
              m->elem_size, (long long)m->n_params, m->n_tensors, m->n_states,
              (long long)m->x_size, (long long)m->y_size, m->target_kind,
              (long long)m->n_classes, m->n_metrics, m->n_metrics ? "metric_names" : "NULL",
              m->n_bufs);
}

/* The run's settings: each RUN_KEY of train_keys.def, written as its kind says. */
static void aot_config(StrBuf *b, const NnlrtTrainConfig *c)
{
    static const char *const fields[NNLRT_TRAIN_KEY_COUNT] = {
#define RUN_KEY(id, name, kind, least, def, what, flags, field) [NNLRT_TRAIN_##id] = #field,
#define MODEL_KEY(id, ...)
#include "train_keys.def"
#undef RUN_KEY
#undef MODEL_KEY
    };
    const char *sep = "    .config = {";
    for (int k = 0; k < NNLRT_TRAIN_KEY_COUNT; k++) {
        const NnlrtTrainKey *key = &nnlrt_train_keys[k];
        if (key->offset < 0)
            continue;
        const void *v = (const char *)c + key->offset;
        sb_printf(b, "%s.%s = ", sep, fields[k]);
        sep = ", ";
        if (key->kind == NNLRT_KEY_SEED)
            sb_printf(b, "%lluull", (unsigned long long)*(const uint64_t *)v);
        else if (key->kind == NNLRT_KEY_BOOL)
            sb_puts(b, aot_bool(*(const bool *)v));
        else if (key->kind == NNLRT_KEY_PATH)
            aot_cstr(b, *(const char *const *)v);
        else
            sb_printf(b, "%lld", (long long)*(const int64_t *)v);
    }
    sb_puts(b, "},\n");
}

static void aot_program(Nnl *nnl, StrBuf *b, const AotInput *in, const char *script,
                        const char *cpu_label, const char *cpu, const char *features)
{
    const NnlrtModel *m = in->model;
    sb_puts(b, "/* Generated by nnlc " NNLC_VERSION ": the standalone trainer of model ");
    sb_printf(b, "'%s'. */\n#include \"nnlrt.h\"\n\n", in->spec->model->name);
    /* the object file's entry points, predict aside (a trainer does not predict) */
#define X(Type, name, ret, params)                                                            \
    if (strcmp(#name, "predict") != 0)                                                        \
        sb_puts(b, #ret " nnl_" #name #params ";\n");
    NNLRT_MODEL_ENTRY_POINTS(X)
#undef X
    sb_puts(b, "\n");
    aot_tensors(b, m);
    aot_buffers(b, m);
    if (m->n_metrics)
        aot_strings(b, "metric_names", m->metric_names, m->n_metrics, false);
    aot_data(b, in);
    aot_cpu_check(b, cpu, features);
    StrBuf desc = {0};
    aot_describe(&desc, in->spec);
    sb_puts(b, "static const NnlrtProgram program = {\n    .model_name = ");
    aot_cstr(b, in->spec->model->name);
    sb_puts(b, ",\n    .script = ");
    aot_cstr(b, script);
    sb_puts(b, ",\n    .nnlc_version = \"" NNLC_VERSION "\",\n    .cpu = ");
    aot_cstr(b, cpu_label);
    sb_puts(b, ",\n    .description = ");
    aot_cstr(b, desc.data ? desc.data : "");
    sb_puts(b, ",\n");
    sb_free(&desc);
    aot_model(b, m);
    sb_printf(b, "    .data = data, .n_data = %d, .train_data = %d, .val_data = %d,\n",
              in->ndata, in->train_data, in->val_data);
    aot_config(b, in->config);
    sb_printf(b, "    .epochs_compiled = %s,\n"
              "    .missing_cpu_feature = missing_cpu_feature,\n};\n\n",
              aot_bool(in->spec->uses_epochs));
    sb_puts(b, "int main(int argc, char **argv)\n{\n"
               "    return nnlrt_trainer_main(&program, argc, argv);\n}\n");
    (void)nnl;
}

/* ---- files and the C compiler ---- */

static bool aot_write(Nnl *nnl, const char *path, const StrBuf *b)
{
    FILE *f = fopen(path, "w");
    bool ok = f && fwrite(b->data, 1, b->len, f) == b->len;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok)
        diag_file_error(nnl, path, "cannot write the file: %s", strerror(errno));
    return ok;
}

/* Whether `cc` names a program: a path, or a name found along PATH. */
static bool aot_find_program(const char *cc)
{
    if (strchr(cc, '/'))
        return access(cc, X_OK) == 0;
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t len = strcspn(path, ":");
        char buf[4096];
        int w = snprintf(buf, sizeof buf, "%.*s/%s", (int)len, len ? path : ".", cc);
        struct stat st;
        if (w > 0 && (size_t)w < sizeof buf && stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
            access(buf, X_OK) == 0)
            return true;
        path += len + (path[len] == ':');
    }
    return false;
}

static bool aot_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Splits `flags` at spaces into argv (copies in the arena). */
static void aot_add_flags(Nnl *nnl, const char **argv, int *n, const char *flags)
{
    while (*flags && *n < AOT_MAX_ARGS - 12) {
        size_t len = strcspn(flags, " ");
        if (len)
            argv[(*n)++] = arena_strndup(&nnl->arena, flags, len);
        flags += len + (flags[len] == ' ');
    }
}

/* Runs the C compiler and waits for it. The command line for a message is made first:
 * running out of memory while cc runs would leave it writing the trainer alone. */
static NnlResult aot_run(Nnl *nnl, const char *const *argv)
{
    StrBuf cmd = {0};
    for (int i = 0; argv[i]; i++)
        sb_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
    NnlResult r = NNL_OK;
    int status = 0;
    if (err) {
        diag_file_error(nnl, NULL, "cannot run '%s': %s: %s", argv[0], strerror(err), cmd.data);
        r = NNL_EUSAGE;
    } else if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
        diag_file_error(nnl, NULL, "'%s' failed (%s %d): %s", argv[0],
                        WIFSIGNALED(status) ? "signal" : "exit status",
                        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), cmd.data);
        r = NNL_EUSAGE;
    }
    sb_free(&cmd);
    return r;
}

/* cc [flags] -I include program.c model.o libnnlrt.a openblas zlib -lm -o output */
static NnlResult aot_link(Nnl *nnl, const char *cc, const char *c_file, const char *obj,
                          const char *output)
{
    const char *argv[AOT_MAX_ARGS];
    int n = 0;
    argv[n++] = cc;
    aot_add_flags(nnl, argv, &n, NNLC_TRAINER_FLAGS);
    argv[n++] = "-I" NNLC_RUNTIME_INCLUDE;
    argv[n++] = c_file;
    argv[n++] = obj;
    argv[n++] = NNLC_RUNTIME_LIB;
    argv[n++] = NNLC_BLAS_LIB;
    argv[n++] = NNLC_ZLIB_LIB;
    argv[n++] = "-lm";
    argv[n++] = "-pthread"; /* the runtime's worker threads */
    argv[n++] = "-o";
    argv[n++] = output;
    argv[n] = NULL;
    return aot_run(nnl, argv);
}

/* What nnlc build needs besides itself: a C compiler and the runtime it was built with. */
static const char *aot_check_tools(Nnl *nnl)
{
    const char *cc = getenv("NNLC_CC");
    if (!cc || !*cc)
        cc = NNLC_TRAINER_CC;
    if (!aot_find_program(cc)) {
        diag_file_error(nnl, NULL, "cannot find the C compiler '%s'%s: nnlc build compiles "
                        "and links the trainer with it (install one, e.g. gcc, or name it "
                        "with NNLC_CC)", cc, strchr(cc, '/') ? "" : " on PATH");
        return NULL;
    }
    const char *need[] = {NNLC_RUNTIME_LIB, NNLC_RUNTIME_INCLUDE "/nnlrt.h"};
    for (int i = 0; i < 2; i++) {
        if (!aot_file_exists(need[i])) {
            diag_file_error(nnl, need[i], "the nnl runtime is missing (nnlc build links "
                            "trainers with the libnnlrt.a and nnlrt.h nnlc was built with)");
            return NULL;
        }
    }
    return cc;
}

static double aot_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The script as an absolute path, for the trainer's --help. */
static const char *aot_script(Nnl *nnl, const TrainSpec *spec)
{
    const char *path = spec->decl->src->path;
    char *abs = realpath(path, NULL);
    if (!abs)
        return path;
    const char *copy = arena_strndup(&nnl->arena, abs, strlen(abs));
    free(abs);
    return copy;
}

/* nnlc build's temporary directory and what it holds while the trainer is made. */
typedef struct {
    char *dir;
    const char *obj, *c_file;
    const char *c_obj;      /* --lib: the C file compiled */
} AotTemp;

/* Also what an "out of memory" exit does while the directory exists: no allocation. */
static void aot_remove_temp(void *ctx)
{
    const AotTemp *t = ctx;
    if (t->obj)
        remove(t->obj);
    if (t->c_file)
        remove(t->c_file);
    if (t->c_obj)
        remove(t->c_obj);
    rmdir(t->dir);
}

/* Makes t's directory in TMPDIR (or /tmp) and has an "out of memory" exit remove it with
 * what it holds. False after reporting. */
static bool aot_temp_dir(Nnl *nnl, AotTemp *t)
{
    const char *tmp = getenv("TMPDIR");
    t->dir = arena_printf(&nnl->arena, "%s/nnlc-build-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(t->dir)) {
        diag_file_error(nnl, t->dir, "cannot create a temporary directory: %s", strerror(errno));
        return false;
    }
    nnlrt_set_oom_cleanup(aot_remove_temp, t);
    return true;
}

/* The temporary file cc (and objcopy) wrote, the trainer or the --lib object, synced and
 * renamed over its target; false after reporting. */
static bool aot_put_object(Nnl *nnl, NnlrtAtomic *a)
{
    if (nnlrt_atomic_sync_written(a) && nnlrt_atomic_rename(a, "rename") &&
        nnlrt_atomic_sync_dir(a))
        return true;
    diag_file_error(nnl, a->path, "cannot write the file: %s", strerror(a->err));
    return false;
}

static NnlResult aot_in_dir(Nnl *nnl, const NnlRunOptions *opt, const AotInput *in,
                            const char *cc, const AotTemp *t)
{
    const char *cpu_name = NULL, *features = NULL;
    NnlResult r = cg_emit_object(nnl, in->prog, in->plan, driver_elem_size(opt), opt->cpu, t->obj,
                                 NULL, &cpu_name, &features);
    if (r != NNL_OK)
        return r;
    const char *label = strcmp(opt->cpu, "native") == 0
                            ? arena_printf(&nnl->arena, "%s (--cpu=native)", cpu_name)
                            : opt->cpu;
    StrBuf b = {0};
    aot_program(nnl, &b, in, aot_script(nnl, in->spec), label, opt->cpu, features);
    NnlrtAtomic a; /* the trainer appears whole, or the one there stays as it was */
    nnlrt_atomic_init(&a, opt->output, 0);
    r = aot_write(nnl, t->c_file, &b) ? aot_link(nnl, cc, t->c_file, t->obj, a.tmp)
                                      : NNL_EUSAGE;
    if (r == NNL_OK && !aot_put_object(nnl, &a))
        r = NNL_EUSAGE;
    nnlrt_atomic_free(&a);
    sb_free(&b);
    return r;
}

NnlResult aot_build(Nnl *nnl, const NnlRunOptions *opt, const AotInput *in)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *cc = aot_check_tools(nnl);
    if (!cc)
        return NNL_EUSAGE;
    AotTemp t = {0};
    if (!aot_temp_dir(nnl, &t))
        return NNL_EUSAGE;
    t.obj = arena_printf(&nnl->arena, "%s/model.o", t.dir);
    t.c_file = arena_printf(&nnl->arena, "%s/program.c", t.dir);
    NnlResult r = aot_in_dir(nnl, opt, in, cc, &t);
    nnlrt_set_oom_cleanup(NULL, NULL);
    remove(t.obj);
    remove(t.c_file);
    if (rmdir(t.dir) != 0 && r == NNL_OK) {
        diag_file_error(nnl, t.dir, "cannot remove the temporary directory: %s", strerror(errno));
        r = NNL_EUSAGE;
    }
    if (r == NNL_OK && !opt->quiet) {
        int64_t nparams = 0;
        for (int i = 0; i < in->model->n_tensors; i++)
            nparams += in->model->tensors[i].size;
        fprintf(opt->out, "nnlc: built %s: %s, %lld parameters, for %s, in %.0f ms\n",
                opt->output, in->spec->model->name, (long long)nparams, opt->cpu,
                aot_ms(&t0));
    }
    return r;
}

/* ---- libraries (nnlc build --lib) ---- */

static bool aot_identifier(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

/* The model's constants, then runtime/nnlrt_lib.c. */
static void aot_lib_glue(StrBuf *b, const AotInput *in, const char *name)
{
    const NnlrtModel *m = in->model;
    sb_printf(b, "/* Generated by nnlc " NNLC_VERSION ": model '%s' for C programs. */\n",
              in->spec->model->name);
    sb_printf(b, "#include <stdint.h>\n#define NNL_NAME %s\n#define NNL_PARAMS %lld\n"
              "#define NNL_INPUTS %lld\n#define NNL_OUTPUTS %lld\n#define NNL_NBUFS %d\n"
              "#define NNL_CHUNK %lld\n#define NNL_SIGNATURE 0x%016llxull\n"
              "#define NNL_STANDARDIZED %d\n#define NNL_SCALE ", name, (long long)m->n_params,
              (long long)m->x_size, (long long)m->out_size, m->n_bufs,
              (long long)in->plan->max_batch_eval,
              (unsigned long long)nnlrt_model_signature(m), in->x_mean != NULL);
    aot_double(b, in->x_scale);
    sb_puts(b, "\n\n");
#define X(Type, entry, ret, params)                                                           \
    if (strcmp(#entry, "predict") == 0)                                                       \
        sb_printf(b, #ret " %s_nnl_" #entry #params ";\n\n", name);
    NNLRT_MODEL_ENTRY_POINTS(X)
#undef X
    sb_puts(b, "static const int64_t nnl_buf_elems[] = {");
    for (int i = 0; i < m->n_bufs; i++)
        sb_printf(b, "%s%lld", aot_sep(i), (long long)m->buf_elems[i]);
    sb_puts(b, "\n};\n\nstatic const unsigned char nnl_buf_batched[] = {");
    for (int i = 0; i < m->n_bufs; i++)
        sb_printf(b, "%s%d", aot_sep(i), m->buf_batched[i]);
    sb_puts(b, "\n};\n\n");
    for (int k = 0; k < 2 && in->x_mean; k++) {
        const double *v = k ? in->x_sd : in->x_mean;
        sb_printf(b, "static const double %s[] = {", k ? "nnl_sd" : "nnl_mean");
        for (int64_t i = 0; i < m->x_size; i++) {
            sb_puts(b, aot_sep((int)i));
            aot_double(b, v[i]);
        }
        sb_puts(b, "\n};\n\n");
    }
    sb_puts(b, "#include \"nnlrt_lib.c\"\n");
}

static void aot_lib_header(StrBuf *b, const AotInput *in, const char *name, const char *script)
{
    const NnlrtModel *m = in->model;
    bool cls = m->target_kind == NNLRT_TARGET_CLASS;
    sb_printf(b, "/* %s.h — generated by nnlc " NNLC_VERSION " from %s: model '%s' as C "
              "functions.\n *\n", name, script, in->spec->model->name);
    sb_printf(b, " * Link a program with %s.o and its libraries:\n"
              " *     cc program.c %s.o -lopenblas -lz -lm -pthread\n *\n", name, name);
    sb_printf(b, " * Each sample is %s_INPUTS floats as the training data's files hold them%s;"
              "\n * the model gives %s_OUTPUTS floats per sample%s.\n", name,
              in->x_mean ? " (the\n * training data's standardization is applied inside)"
              : in->x_scale != 1 ? " (the\n * training data's scale is applied inside)" : "",
              name, cls ? ": a score per class, the\n * largest is the predicted class" : "");
    sb_printf(b, " *\n * Functions return 0, or -1 with the reason in %s_error(). Load the "
              "parameters once\n * before predicting; %s_predict may then run in several "
              "threads at once.\n */\n", name, name);
    sb_printf(b, "#ifndef %s_NNL_H\n#define %s_NNL_H\n\n", name, name);
    sb_printf(b, "#define %s_INPUTS %lld\n#define %s_OUTPUTS %lld\n#define %s_PARAMS %lld\n\n",
              name, (long long)m->x_size, name, (long long)m->out_size, name,
              (long long)m->n_params);
    sb_puts(b, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    sb_printf(b, "/* The parameters of a checkpoint written by training this model (nnlc run "
              "with\n * checkpoint = \"path\"), checked: magic, version, size, CRC, model "
              "signature. */\nint %s_load(const char *checkpoint);\n\n", name);
    sb_printf(b, "/* The parameter arena itself: %s_PARAMS floats, laid out as in a "
              "checkpoint. */\nint %s_set_params(const float *params, long n);\n\n", name,
              name);
    sb_printf(b, "/* The outputs for n samples: x holds n * %s_INPUTS floats, out receives\n"
              " * n * %s_OUTPUTS. */\nint %s_predict(const float *x, float *out, int n);\n\n",
              name, name, name);
    sb_printf(b, "/* Why the last call that failed did. */\nconst char *%s_error(void);\n\n",
              name);
    sb_puts(b, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
}

/* Writes `b` to path atomically (runtime/atomic_file.c). A failure before the rename is
 * reported against the temporary file, where it happened. */
static bool aot_write_atomic(Nnl *nnl, const char *path, const StrBuf *b)
{
    NnlrtAtomic a;
    nnlrt_atomic_init(&a, path, 0);
    bool ok = nnlrt_atomic_open(&a) && nnlrt_atomic_write(&a, b->data, b->len) &&
              nnlrt_atomic_close(&a);
    if (!ok)
        diag_file_error(nnl, a.tmp, "cannot write the file: %s", strerror(a.err));
    else if (!nnlrt_atomic_rename(&a, "rename") || !nnlrt_atomic_sync_dir(&a)) {
        ok = false;
        diag_file_error(nnl, path, "cannot write the file: %s", strerror(a.err));
    }
    nnlrt_atomic_free(&a);
    return ok;
}

/* cc -c the glue, then cc -r: one relocatable object of both and of the runtime routines
 * the model calls (convolutions: libnnlrt.a's members, pulled in as needed), then objcopy
 * keeps only NAME_* global, so that two models' objects link into one program. Everything
 * is allocated before the temporary object exists. */
static NnlResult aot_lib_link(Nnl *nnl, const char *cc, const AotTemp *t, const char *out,
                              const char *name)
{
    const char *compile[] = {cc, "-std=gnu11", "-O2", "-fPIC", "-I" NNLC_RUNTIME_INCLUDE, "-c",
                             t->c_file, "-o", t->c_obj, NULL};
    NnlrtAtomic a;
    nnlrt_atomic_init(&a, out, 0);
    const char *merge[] = {cc, "-r", "-nostdlib", t->obj, t->c_obj, NNLC_RUNTIME_LIB, "-o", a.tmp,
                           NULL};
    static const char *const api[] = {"load", "set_params", "predict", "error", "nnl_predict"};
    const char *localize[AOT_MAX_ARGS];
    int n = 0;
    localize[n++] = "objcopy";
    for (size_t i = 0; i < NNL_COUNTOF(api); i++)
        localize[n++] = arena_printf(&nnl->arena, "--keep-global-symbol=%s_%s", name, api[i]);
    localize[n++] = a.tmp;
    localize[n] = NULL;
    NnlResult r = aot_run(nnl, compile);
    if (r == NNL_OK)
        r = aot_run(nnl, merge);
    if (r == NNL_OK)
        r = aot_run(nnl, localize);
    if (r == NNL_OK && !aot_put_object(nnl, &a))
        r = NNL_EUSAGE;
    nnlrt_atomic_free(&a);
    return r;
}

static NnlResult aot_lib_in_dir(Nnl *nnl, const NnlRunOptions *opt, const AotInput *in,
                                const char *cc, const AotTemp *t, const char *name)
{
    const char *cpu_name = NULL, *features = NULL;
    NnlResult r = cg_emit_object(nnl, in->prog, in->plan, driver_elem_size(opt), opt->cpu, t->obj,
                                 name, &cpu_name, &features);
    StrBuf b = {0}, h = {0};
    if (r == NNL_OK) {
        aot_lib_glue(&b, in, name);
        r = aot_write(nnl, t->c_file, &b) ? NNL_OK : NNL_EUSAGE;
    }
    if (r == NNL_OK)
        r = aot_lib_link(nnl, cc, t, arena_printf(&nnl->arena, "%s.o", opt->output), name);
    if (r == NNL_OK) {
        aot_lib_header(&h, in, name, aot_script(nnl, in->spec));
        r = aot_write_atomic(nnl, arena_printf(&nnl->arena, "%s.h", opt->output), &h)
                ? NNL_OK : NNL_EUSAGE;
    }
    sb_free(&b);
    sb_free(&h);
    return r;
}

NnlResult aot_build_lib(Nnl *nnl, const NnlRunOptions *opt, const AotInput *in)
{
    const char *slash = strrchr(opt->output, '/');
    const char *name = slash ? slash + 1 : opt->output;
    if (!aot_identifier(name)) {
        diag_file_error(nnl, NULL, "--lib: '%s' cannot name C functions (%s_predict): use a "
                        "name of letters, digits and '_', not starting with a digit", name,
                        name);
        return NNL_EUSAGE;
    }
    if (driver_elem_size(opt) != 4) {
        diag_file_error(nnl, NULL, "--lib builds float32 inference: leave out --float64");
        return NNL_EUSAGE;
    }
    const char *cc = aot_check_tools(nnl);
    if (!cc)
        return NNL_EUSAGE;
    if (!aot_file_exists(NNLC_RUNTIME_INCLUDE "/nnlrt_lib.c")) {
        diag_file_error(nnl, NNLC_RUNTIME_INCLUDE "/nnlrt_lib.c", "the nnl runtime is "
                        "missing (nnlc build --lib compiles it into the library)");
        return NNL_EUSAGE;
    }
    AotTemp t = {0};
    if (!aot_temp_dir(nnl, &t))
        return NNL_EUSAGE;
    t.obj = arena_printf(&nnl->arena, "%s/model.o", t.dir);
    t.c_file = arena_printf(&nnl->arena, "%s/glue.c", t.dir);
    t.c_obj = arena_printf(&nnl->arena, "%s/glue.o", t.dir);
    NnlResult r = aot_lib_in_dir(nnl, opt, in, cc, &t, name);
    nnlrt_set_oom_cleanup(NULL, NULL);
    aot_remove_temp(&t);
    if (r == NNL_OK && !opt->quiet)
        fprintf(opt->out, "nnlc: built %s.o and %s.h: %s_predict, %lld inputs -> %lld outputs, "
                "for %s\n", opt->output, opt->output, name, (long long)in->model->x_size,
                (long long)in->model->out_size, opt->cpu);
    return r;
}
