/* driver.c — the pipeline, on one screen (driver_run), and what it hands the runtime. */
#define _POSIX_C_SOURCE 200809L /* realpath */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nnlc_int.h"

/* Where a run stops: the stages run in this order, and each mode stops after one. */
typedef enum { STOP_CHECK, STOP_IR, STOP_GRAD, STOP_KERNELS, STOP_LLVM, STOP_RUN,
               STOP_BUILD, STOP_PREDICT, STOP_EVAL, STOP_SUMMARY } StopAt;

static StopAt driver_stop(const NnlRunOptions *opt)
{
    static const StopAt stops[] = {
        [NNL_RUN_CHECK] = STOP_CHECK, [NNL_RUN_DUMP_IR] = STOP_IR,
        [NNL_RUN_DUMP_GRAD] = STOP_GRAD, [NNL_RUN_DUMP_KERNELS] = STOP_KERNELS,
        [NNL_RUN_DUMP_LLVM] = STOP_LLVM, [NNL_RUN_TRAIN] = STOP_RUN,
        [NNL_RUN_GRADCHECK] = STOP_RUN, [NNL_RUN_CHECK_NO_DATA] = STOP_CHECK,
        [NNL_RUN_BUILD] = STOP_BUILD, [NNL_RUN_BUILD_LIB] = STOP_BUILD,
        [NNL_RUN_PREDICT] = STOP_PREDICT, [NNL_RUN_EVAL] = STOP_EVAL,
        [NNL_RUN_SUMMARY] = STOP_SUMMARY,
    };
    return stops[opt->mode];
}

/* ---- data ---- */

/* The data sets of a train block as the runtime describes and loads them: the training
 * and validation sets and those they are split from, each once, parents first. The
 * driver finds the files itself, so that a missing one is reported at the declaration. */
typedef struct {
    const ScriptData **src; /* by spec */
    NnlrtDataSpec *specs;
    bool *failed;         /* a file of the spec could not be found (reported once) */
    int n;
    int train, val;       /* val -1: none */
    NnlrtData data;
} DriverData;

static const ScriptData *driver_root(const ScriptData *sd)
{
    while (sd->parent)
        sd = sd->parent;
    return sd;
}

/* The script's directory, absolute, so that a trainer finds the files wherever it runs. */
static const char *driver_abs_dir(Nnl *nnl, const char *dir)
{
    char *abs = realpath(dir ? dir : ".", NULL);
    if (!abs)
        return dir;
    const char *copy = arena_strndup(&nnl->arena, abs, strlen(abs));
    free(abs);
    return copy;
}

/* The spec as the runtime reads it: its parent's index, the script's directory absolute. */
static NnlrtDataSpec driver_spec(Nnl *nnl, const ScriptData *sd, int parent)
{
    NnlrtDataSpec s = sd->spec;
    s.parent = parent;
    if (s.kind != NNLRT_DATA_SPLIT)
        s.script_dir = driver_abs_dir(nnl, s.script_dir);
    return s;
}

static int driver_add_data(Nnl *nnl, DriverData *dd, const ScriptData *ds)
{
    for (int i = 0; i < dd->n; i++)
        if (dd->src[i] == ds)
            return i;
    int parent = ds->parent ? driver_add_data(nnl, dd, ds->parent) : -1;
    size_t n = (size_t)dd->n + 1;
    dd->src = nnl_realloc(dd->src, n * sizeof *dd->src);
    dd->specs = nnl_realloc(dd->specs, n * sizeof *dd->specs);
    dd->failed = nnl_realloc(dd->failed, n * sizeof *dd->failed);
    dd->src[dd->n] = ds;
    dd->specs[dd->n] = driver_spec(nnl, ds, parent);
    dd->failed[dd->n] = false;
    return dd->n++;
}

static void driver_data_init(Nnl *nnl, DriverData *dd, const TrainSpec *spec)
{
    *dd = (DriverData){.val = -1};
    dd->train = driver_add_data(nnl, dd, spec->data);
    if (spec->validate)
        dd->val = driver_add_data(nnl, dd, spec->validate);
    nnlrt_data_init(&dd->data, dd->specs, dd->n);
}

static void driver_data_free(DriverData *dd)
{
    nnlrt_data_free(&dd->data);
    nnl_dealloc(dd->src);
    nnl_dealloc(dd->specs);
    nnl_dealloc(dd->failed);
}

/* A data file named in a script, found next to it, along NNL_DATA_PATH or in
 * /usr/share/datasets; NULL after reporting where it was looked for. */
static const char *driver_find(Nnl *nnl, const ScriptData *sd, const char *name)
{
    const char *dir = sd->spec.script_dir;
    char buf[4096];
    const char *found = nnlrt_find_data(name, dir, buf, sizeof buf);
    if (found)
        return arena_strndup(&nnl->arena, found, strlen(found));
    char places[2048];
    diag_error(nnl, sd->src, sd->off, "cannot find the data file '%s' (looked in: %s)", name,
               nnlrt_data_places(name, dir, places, sizeof places));
    return NULL;
}

static int driver_index(const DriverData *dd, const ScriptData *ds)
{
    for (int i = 0; i < dd->n; i++)
        if (dd->src[i] == ds)
            return i;
    return -1;
}

/* The files of data set i's root, found once; false after reporting. */
static bool driver_find_files(Nnl *nnl, DriverData *dd, int i)
{
    const ScriptData *root = driver_root(dd->src[i]);
    const NnlrtDataSpec *ds = &root->spec;
    int r = driver_index(dd, root);
    if (dd->failed[r])
        return false;
    if (!dd->data.files[2 * r]) {
        const char *a = driver_find(nnl, root, ds->path);
        const char *b = a && ds->path2 ? driver_find(nnl, root, ds->path2) : NULL;
        dd->failed[r] = !a || (ds->path2 && !b);
        dd->data.files[2 * r] = a;
        dd->data.files[2 * r + 1] = b;
    }
    return !dd->failed[r];
}

/* Data set i, loaded by the runtime; NULL after reporting. */
static NnlrtDataset *driver_load(Nnl *nnl, DriverData *dd, int i)
{
    if (!driver_find_files(nnl, dd, i))
        return NULL;
    NnlrtDataset *out = nnlrt_data_load(&dd->data, i);
    if (!out) {
        nnl->nerrors++; /* the runtime has reported it */
        return NULL;
    }
    const ScriptData *sd = dd->src[i];
    const NnlrtDataSpec *ds = &sd->spec;
    if (ds->kind == NNLRT_DATA_SPLIT && out->n == 0) {
        diag_error(nnl, sd->src, sd->off, "split leaves no samples in part %d of '%s' "
                   "(%lld samples in all)", ds->part + 1, ds->name ? ds->name : "?",
                   (long long)dd->data.sets[driver_index(dd, sd->parent)]->n);
        return NULL;
    }
    return out;
}

/* The training and validation sets, checked against the declarations, then prepared by
 * the runtime as a trainer would (standardized with the training set's statistics). */
static bool driver_load_data(Nnl *nnl, DriverData *dd, const TrainSpec *spec,
                             NnlrtDataset **data, NnlrtDataset **val)
{
    NnlrtDataset *t = driver_load(nnl, dd, dd->train);
    NnlrtDataset *v = dd->val >= 0 ? driver_load(nnl, dd, dd->val) : NULL;
    if (!t || (dd->val >= 0 && !v))
        return false;
    if (v && v->x_size != t->x_size) {
        diag_error(nnl, spec->validate->src, spec->validate->off, "validation data '%s' has "
                   "%lld inputs per sample, the training data %lld", spec->validate->spec.name,
                   (long long)v->x_size, (long long)t->x_size);
        return false;
    }
    if (!nnlrt_data_prepare(&dd->data, dd->train, dd->val, data, val)) {
        nnl->nerrors++; /* the runtime has reported it */
        return false;
    }
    return true;
}

/* The name of the standard library's loss the train block uses ("bce", "mse"...), or NULL
 * for a loss of the user's. */
static const char *driver_stdlib_loss(Nnl *nnl, const TrainSpec *spec)
{
    const AstNode *d = sema_lookup(nnl, spec->loss->name);
    return d && d->src && d->src->is_stdlib ? d->name : NULL;
}

static int driver_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* What a data set's targets hold: "{0, 1, 2}" (its distinct values, the first and last few
 * when there are many), with *classes set to K when they look like the class numbers
 * 0..K-1 of K >= 2 classes, else 0. */
static const char *driver_target_values(Nnl *nnl, const NnlrtDataset *ds, int64_t *classes)
{
    double *v = malloc(sizeof(double) * (size_t)(ds->n ? ds->n : 1));
    if (!v)
        return "(too many to list)";
    for (int64_t i = 0; i < ds->n; i++)
        v[i] = nnlrt_dataset_y(ds, i);
    qsort(v, (size_t)ds->n, sizeof *v, driver_cmp_double);
    int64_t k = 0;
    for (int64_t i = 0; i < ds->n; i++)
        if (k == 0 || v[i] != v[k - 1])
            v[k++] = v[i];
    bool index = k > 0 && v[0] >= 0 && v[k - 1] < 1e6;
    for (int64_t i = 0; i < k && index; i++)
        index = v[i] == floor(v[i]);
    /* class numbers when at least half of 0..max are there (not prices, say) */
    *classes = index && v[k - 1] >= 1 && v[k - 1] + 1 <= 2.0 * (double)k
        ? (int64_t)v[k - 1] + 1 : 0;
    const char *s = "{";
    for (int64_t i = 0; i < k; i++) {
        if (k > 10 && i == 5) {
            s = arena_printf(&nnl->arena, "%s, ...", s);
            i = k - 3;
        }
        s = arena_printf(&nnl->arena, "%s%s%g", s, i ? ", " : "", v[i]);
    }
    s = arena_printf(&nnl->arena, "%s}", s);
    if (k > 10)
        s = arena_printf(&nnl->arena, "%s (%lld distinct values)", s, (long long)k);
    free(v);
    return s;
}

/* The loss fits the data: bce and bce_logits take targets between 0 and 1, a loss that
 * picks the label needs at least two classes. False after reporting at the loss. */
static bool driver_check_loss(Nnl *nnl, const NnlrtDataset *ds, const TrainSpec *spec,
                              const IrProgram *p, const char *which)
{
    const AstNode *out = spec->model->body.items[spec->model->body.len - 1]->rhs;
    LineCol lc = source_linecol(out->src, out->off);
    const char *file = ds->y_source ? ds->y_source : ds->source;
    int64_t classes = 0;
    if (!ds->y)
        return true;
    if (p->target_kind == NNLRT_TARGET_CLASS) {
        if (p->n_classes != 1)
            return true;
        const char *held = driver_target_values(nnl, ds, &classes);
        diag_error(nnl, spec->loss->src, spec->loss->off, "loss '%s' needs one output per "
                   "class, but the model's output (%s:%u:%u) has 1; the %s data's targets "
                   "(%s) are %s: %s", spec->loss->name, out->src->path, lc.line, lc.col, which,
                   file, held, classes > 2
                       ? arena_printf(&nnl->arena, "give the model %lld outputs",
                                      (long long)classes)
                       : "for two classes use bce on a sigmoid output (or bce_logits on the "
                         "logit), or give the model 2 outputs");
        return false;
    }
    const char *loss = driver_stdlib_loss(nnl, spec);
    if (!loss || (strcmp(loss, "bce") != 0 && strcmp(loss, "bce_logits") != 0))
        return true;
    for (int64_t i = 0; i < ds->n; i++) {
        double y = nnlrt_dataset_y(ds, i);
        if (y >= 0 && y <= 1)
            continue;
        const char *held = driver_target_values(nnl, ds, &classes);
        diag_error(nnl, spec->loss->src, spec->loss->off, "loss '%s' takes targets between "
                   "0 and 1 (class 0 or 1), but the %s data's targets (%s) are %s: %s",
                   spec->loss->name, which, file, held, classes > 2
                       ? arena_printf(&nnl->arena, "for %lld classes use cross_entropy on a "
                                      "model with %lld outputs", (long long)classes,
                                      (long long)classes)
                       : "for values use a regression loss such as mse");
        return false;
    }
    return true;
}

/* Labels of a classifier must be class numbers of the model's output. */
static bool driver_check_labels(Nnl *nnl, const NnlrtDataset *ds, const TrainSpec *spec,
                                const IrProgram *p)
{
    /* the model's output: what its return (the last statement, per sema) computes */
    const AstNode *out = spec->model->body.items[spec->model->body.len - 1]->rhs;
    for (int64_t i = 0; i < ds->n; i++) {
        double y = nnlrt_dataset_y(ds, i);
        if (y != floor(y) || y < 0 || y >= (double)p->n_classes) {
            LineCol lc = source_linecol(out->src, out->off);
            const char *file = ds->y_source ? ds->y_source : ds->source;
            const char *where = ds->rows
                ? arena_printf(&nnl->arena, "%s:%lld", file, (long long)ds->rows[i])
                : arena_printf(&nnl->arena, "%s: sample %lld", file, (long long)i + 1);
            diag_file_error(nnl, where, "label %g is not a class of the model: its output "
                            "(%s:%u:%u) has %lld class%s, numbered from 0", y,
                            out->src->path, lc.line, lc.col, (long long)p->n_classes,
                            p->n_classes == 1 ? "" : "es");
            return false;
        }
    }
    return true;
}

/* ---- the train declaration ---- */

static AstNode *driver_find_train(Nnl *nnl, const char *name)
{
    AstNode *found = NULL;
    int n = 0;
    for (int i = 0; i < nnl->nsources; i++) {
        if (nnl->sources[i]->is_stdlib || !nnl->programs[i])
            continue;
        AstList *body = &nnl->programs[i]->body;
        for (int j = 0; j < body->len; j++) {
            AstNode *d = body->items[j];
            if (d->kind != AST_TRAIN || (name && strcmp(d->name, name) != 0))
                continue;
            if (!found)
                found = d;
            n++;
        }
    }
    if (!found)
        diag_file_error(nnl, nnl->sources[0]->path, name ? "no 'train %s' declaration"
                        : "no train declaration: nothing to run%s", name ? name : "");
    else if (n > 1 && !name)
        diag_error(nnl, found->src, found->off, "%d train declarations: choose one with "
                   "--train MODEL", n);
    return n == 1 || (found && name) ? found : NULL;
}

static bool driver_overrides(Nnl *nnl, const NnlRunOptions *opt, AstList *out)
{
    for (int i = 0; i < opt->nsets; i++) {
        if (!strchr(opt->sets[i], '=')) {
            diag_file_error(nnl, "--set", "'%s' is not key=value", opt->sets[i]);
            return false;
        }
        Source *src = nnl_text_source(nnl, "--set", opt->sets[i]);
        int before = nnl->nerrors;
        AstNode *t = parse_train_body(nnl, src);
        if (!t || nnl->nerrors != before)
            return false;
        for (int j = 0; j < t->body.len; j++)
            ast_push(&nnl->arena, out, t->body.items[j]);
    }
    if (opt->data) {
        /* evaluating on a data set is validating on it */
        const char *d = opt->data;
        bool ident = (*d >= 'a' && *d <= 'z') || (*d >= 'A' && *d <= 'Z') || *d == '_';
        for (const char *c = d; ident && *c; c++)
            ident = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
                    (*c >= '0' && *c <= '9');
        if (!ident) {
            diag_file_error(nnl, "--data", "'%s' is not the name of a data declaration", d);
            return false;
        }
        const char *text = arena_printf(&nnl->arena, "validate = %s", opt->data);
        AstNode *t = parse_train_body(nnl, nnl_text_source(nnl, "--data", text));
        if (!t || t->body.len != 1)
            return false;
        ast_push(&nnl->arena, out, t->body.items[0]);
    }
    return true;
}

/* ---- dumps ---- */

static void driver_dump_ir(StrBuf *b, const IrProgram *p, int from, int to)
{
    for (int i = from; i < to; i++)
        ir_dump_node(b, p->nodes[i]);
}

static void driver_dump_roots(StrBuf *b, const IrProgram *p, bool grads)
{
    Arena tmp = {0};
    for (int i = 0; i < p->nparams; i++) {
        const IrParam *prm = &p->params[i];
        sb_printf(b, "param %s %s at %lld: %%%d, init %%%d", prm->name,
                  shape_str(&tmp, &prm->shape), (long long)prm->offset, prm->node->id,
                  prm->init->id);
        if (grads)
            sb_printf(b, ", grad %%%d", prm->grad->id);
        sb_putc(b, '\n');
    }
    sb_printf(b, "output %%%d\nloss %%%d\n", p->output->id, p->loss->id);
    for (int i = 0; i < p->nmetrics; i++)
        sb_printf(b, "metric %s %%%d\n", p->metric_names[i], p->metrics[i]->id);
    sb_printf(b, "update params %%%d", p->new_params->id);
    for (int k = 0; k < p->nstates; k++)
        sb_printf(b, ", state%d %%%d (from %g)", k, p->new_states[k]->id, p->state_init[k]);
    sb_putc(b, '\n');
    arena_free(&tmp);
}

/* ---- training ---- */

static double driver_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* --verbose: "nnlc: STAGE  T ms  DETAIL" for the stage that began at *t0, which then
 * restarts for the next one. */
static void driver_stage(const NnlRunOptions *opt, struct timespec *t0, const char *stage,
                         const char *fmt, ...) NNL_PRINTF(4, 5);
static void driver_stage(const NnlRunOptions *opt, struct timespec *t0, const char *stage,
                         const char *fmt, ...)
{
    if (opt->verbose) {
        fprintf(opt->out, "nnlc: %-10s %8.1f ms  ", stage, driver_ms(t0));
        va_list ap;
        va_start(ap, fmt);
        vfprintf(opt->out, fmt, ap);
        va_end(ap);
        fputc('\n', opt->out);
    }
    clock_gettime(CLOCK_MONOTONIC, t0);
}

static int driver_kernels(const Plan *plan)
{
    int n = 0;
    for (int i = 0; i < ENTRY_COUNT; i++)
        n += plan->entries[i].nkernels;
    return n;
}

/* The compiled model as the runtime sees it (entry points from the JIT, or NULL). */
static NnlrtModel driver_model(Nnl *nnl, const NnlRunOptions *opt, IrProgram *p, Plan *plan,
                               const JitEntries *fns, const NnlrtDataset *train)
{
    NnlrtTensor *tensors = arena_alloc(&nnl->arena, sizeof(NnlrtTensor) * (size_t)p->nparams);
    for (int i = 0; i < p->nparams; i++) {
        IrParam *prm = &p->params[i];
        tensors[i] = (NnlrtTensor){.name = prm->name, .rank = prm->shape.rank,
                                   .offset = prm->offset, .size = prm->size,
                                   .buffer = prm->buffer};
        memcpy(tensors[i].dims, prm->shape.dim, sizeof tensors[i].dims);
    }
    return (NnlrtModel){
        .elem_size = driver_elem_size(opt), .n_params = p->nparam_elems, .n_tensors = p->nparams,
        .tensors = tensors, .n_states = p->nstates, .x_size = train->x_size, .y_size = 1,
        .target_kind = p->target_kind, .n_classes = p->n_classes, .n_metrics = p->nmetrics,
        .metric_names = p->metric_names, .n_bufs = plan->nbufs, .buf_elems = plan->buf_elems,
        .buf_batched = plan->buf_batched, .init = fns ? fns->init : NULL,
        .grad = fns ? fns->grad : NULL, .eval = fns ? fns->eval : NULL,
        .update = fns ? fns->update : NULL, .out_size = shape_size(&p->output->shape),
        .predict = fns ? fns->predict : NULL,
    };
}

/* The train block's settings for the runtime, with the command line's. */
static NnlrtTrainConfig driver_config(const NnlRunOptions *opt, const TrainSpec *spec)
{
    NnlrtTrainConfig c = spec->config;
    if (opt->log)
        c.log_path = opt->log;
    c.init_path = opt->init;
    c.dump_path = opt->dump_params;
    c.resume_path = opt->resume;
    c.fresh = opt->fresh != 0;
    c.quiet = opt->quiet;
    c.verbose = opt->verbose;
    c.out = opt->out;
    c.options = opt->options;
    c.n_options = opt->noptions;
    return c;
}

static NnlResult driver_train(Nnl *nnl, const NnlRunOptions *opt, TrainSpec *spec,
                              IrProgram *p, Plan *plan, JitEntries *fns, NnlrtDataset *train,
                              NnlrtDataset *val)
{
    NnlrtModel m = driver_model(nnl, opt, p, plan, fns, train);
    if (opt->mode == NNL_RUN_GRADCHECK)
        return nnlrt_gradcheck(&m, train, spec->config.seed, NNLRT_GRADCHECK_RTOL, opt->out) ? NNL_OK : NNL_EUSER;
    NnlrtTrainConfig cfg = driver_config(opt, spec);
    char word[4096];
    cfg.resume_hint = arena_printf(&nnl->arena, "nnlc run %s --resume",
                                   nnlrt_shell_word(spec->decl->src->path, word, sizeof word));
    return (NnlResult)nnlrt_train(&m, &cfg, train, val);
}

/* Where a binary classifier's one output turns to class 1, from what the loss says the
 * model outputs: the standard library's bce takes a probability (0.5), bce_logits a logit
 * (0, where its sigmoid is 0.5). NaN for any other model or loss: no confusion matrix. */
static double driver_binary_threshold(Nnl *nnl, const TrainSpec *spec, const NnlrtModel *m)
{
    if (m->target_kind == NNLRT_TARGET_CLASS || m->out_size != 1 || m->y_size != 1)
        return NAN;
    const char *loss = driver_stdlib_loss(nnl, spec);
    if (!loss)
        return NAN;
    if (strcmp(loss, "bce") == 0)
        return 0.5;
    return strcmp(loss, "bce_logits") == 0 ? 0 : NAN;
}

/* "loss 0.31" and each metric, then for a classifier the confusion matrix: K x K (K 2
 * for a binary one, with the threshold in the title). */
static void driver_report(FILE *out, const NnlrtModel *m, const double *means,
                          const int64_t *confusion, double threshold)
{
    fprintf(out, "%-10s %.6g\n", "loss", means[0]);
    for (int i = 0; i < m->n_metrics; i++)
        fprintf(out, "%-10s %.6g\n", m->metric_names[i], means[1 + i]);
    if (!confusion)
        return;
    bool binary = m->target_kind != NNLRT_TARGET_CLASS;
    int64_t k = binary ? 2 : m->n_classes, most = 0;
    for (int64_t i = 0; i < k * k; i++)
        most = confusion[i] > most ? confusion[i] : most;
    int w = snprintf(NULL, 0, "%lld", (long long)(most > k ? most : k)) + 1;
    if (binary)
        fprintf(out, "\nconfusion matrix (rows: true class, columns: predicted class, 1 when "
                "the output%s is > %g)\n%*s", threshold == 0 ? ", a logit," : "", threshold, w,
                "");
    else
        fprintf(out, "\nconfusion matrix (rows: true class, columns: predicted class)\n%*s",
                w, "");
    for (int64_t j = 0; j < k; j++)
        fprintf(out, " %*lld", w, (long long)j);
    for (int64_t i = 0; i < k; i++) {
        fprintf(out, "\n%*lld", w, (long long)i);
        for (int64_t j = 0; j < k; j++)
            fprintf(out, " %*lld", w, (long long)confusion[i * k + j]);
    }
    fputc('\n', out);
}

/* nnlc predict and nnlc eval: the checkpoint's parameters, then the outputs for the
 * inputs, or the loss, metrics and confusion matrix on a data set. */
static NnlResult driver_infer(Nnl *nnl, const NnlRunOptions *opt, const TrainSpec *spec,
                              IrProgram *p, Plan *plan, JitEntries *fns, NnlrtDataset *train,
                              NnlrtDataset *val, NnlrtDataset *input)
{
    NnlrtModel m = driver_model(nnl, opt, p, plan, fns, train);
    void *params = nnlrt_alloc_aligned((size_t)m.n_params * (size_t)m.elem_size);
    int rc = nnlrt_checkpoint_load_params(&m, opt->checkpoint, params);
    if (rc == NNLRT_OK && driver_stop(opt) == STOP_PREDICT) {
        rc = nnlrt_check_dataset(&m, input) ? NNLRT_OK : NNLRT_EUSER;
        void *out = rc ? NULL : nnlrt_alloc((size_t)(input->n * m.out_size) * (size_t)m.elem_size);
        if (out) {
            nnlrt_predict(&m, params, input, plan->max_batch_eval, out);
            rc = nnlrt_write_predictions(&m, opt->output, out, input->n, opt->out);
        }
        nnlrt_free(out);
    } else if (rc == NNLRT_OK) {
        const NnlrtDataset *ds = val ? val : train;
        double *means = nnl_malloc(sizeof(double) * (size_t)(1 + m.n_metrics));
        double threshold = driver_binary_threshold(nnl, spec, &m);
        int64_t k = m.target_kind == NNLRT_TARGET_CLASS ? m.n_classes : isnan(threshold) ? 0 : 2;
        int64_t *confusion = k ? nnl_malloc(sizeof(int64_t) * (size_t)(k * k)) : NULL;
        int64_t not_binary = nnlrt_evaluate(&m, params, ds, plan->max_batch_eval, means,
                                            confusion, threshold);
        if (!opt->quiet)
            fprintf(opt->out, "nnlc: %s evaluated on '%s' (%lld samples) with %s\n",
                    spec->model->name, val ? spec->validate->spec.name : spec->data->spec.name,
                    (long long)ds->n, opt->checkpoint);
        driver_report(opt->out, &m, means, not_binary ? NULL : confusion, threshold);
        if (not_binary)
            fprintf(opt->out, "\nno confusion matrix: the targets must be 0 or 1, and %lld of "
                    "the %lld %s not\n", (long long)not_binary, (long long)ds->n,
                    not_binary == 1 ? "is" : "are");
        nnl_dealloc(means);
        nnl_dealloc(confusion);
    }
    nnlrt_free(params);
    return (NnlResult)rc;
}

/* What a library needs of the training inputs to take inputs as the files hold them:
 * their scale and, when standardized, the raw training set's statistics. */
static bool driver_lib_inputs(Nnl *nnl, DriverData *dd, AotInput *lib)
{
    const NnlrtDataset *t = driver_load(nnl, dd, dd->train);
    if (!t)
        return false;
    const ScriptData *root = driver_root(dd->src[dd->train]);
    lib->x_scale = t->x_scale;
    if (!root->spec.standardize)
        return true;
    double *mean = arena_alloc(&nnl->arena, sizeof(double) * (size_t)t->x_size);
    double *sd = arena_alloc(&nnl->arena, sizeof(double) * (size_t)t->x_size);
    nnlrt_column_stats(t, mean, sd);
    lib->x_mean = mean;
    lib->x_sd = sd;
    return true;
}

static NnlResult driver_build(Nnl *nnl, const NnlRunOptions *opt, TrainSpec *spec,
                              IrProgram *p, Plan *plan, const DriverData *dd,
                              const NnlrtDataset *train, const AotInput *lib)
{
    NnlrtModel m = driver_model(nnl, opt, p, plan, NULL, train);
    NnlrtTrainConfig cfg = driver_config(opt, spec);
    AotInput in = {.spec = spec, .prog = p, .plan = plan, .model = &m, .data = dd->specs,
                   .ndata = dd->n, .train_data = dd->train, .val_data = dd->val,
                   .config = &cfg, .x_mean = lib->x_mean, .x_sd = lib->x_sd,
                   .x_scale = lib->x_scale};
    return opt->mode == NNL_RUN_BUILD_LIB ? aot_build_lib(nnl, opt, &in) : aot_build(nnl, opt, &in);
}

static NnlResult driver_run_train(Nnl *nnl, const NnlRunOptions *opt, AstNode *train);

/* Whether a train declaration of the user's script trains `model`. */
static bool driver_model_trained(Nnl *nnl, const AstNode *model)
{
    for (int i = 0; i < nnl->nsources; i++) {
        if (nnl->sources[i]->is_stdlib || !nnl->programs[i])
            continue;
        AstList *body = &nnl->programs[i]->body;
        for (int j = 0; j < body->len; j++)
            if (body->items[j]->kind == AST_TRAIN && strcmp(body->items[j]->name, model->name) == 0)
                return true;
    }
    return false;
}

/* nnlc check: the forward pass of each model of the user's script that declares the shape
 * of its one input and that no train declaration trains (those are checked with it). */
static NnlResult driver_check_models(Nnl *nnl)
{
    NnlResult r = NNL_OK;
    for (int i = 0; i < nnl->nsources && !diag_stopped(nnl); i++) {
        if (nnl->sources[i]->is_stdlib || !nnl->programs[i])
            continue;
        AstList *body = &nnl->programs[i]->body;
        for (int j = 0; j < body->len && !diag_stopped(nnl); j++) {
            AstNode *m = body->items[j];
            if (m->kind != AST_MODEL || m->params.len != 1 || m->params.items[0]->shape.len == 0 ||
                driver_model_trained(nnl, m))
                continue;
            IrProgram prog = {.arena = &nnl->arena};
            if (lower_model_forward(nnl, m, &prog) != NNL_OK)
                r = NNL_EUSER;
            nnl_dealloc(prog.params);
            nnl_dealloc(prog.new_states);
            nnl_dealloc(prog.state_init);
        }
    }
    return r;
}

/* check → names → train keys → data → graph → gradients → kernels → LLVM → train */
static NnlResult driver_run(Nnl *nnl, const NnlRunOptions *opt)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    NnlResult r = nnl_parse(nnl);
    if (r != NNL_OK)
        return r;
    if (!nnl->checked) {
        nnl->checked = true;
        if ((r = sema_check(nnl)) != NNL_OK)
            return r;
    }
    if (driver_stop(opt) >= STOP_RUN)
        driver_stage(opt, &t0, "check", "%d source files (the script and the stdlib "
                     "modules it imports)", nnl->nsources);
    if ((driver_stop(opt) == STOP_CHECK || driver_stop(opt) == STOP_SUMMARY) && !opt->train) {
        /* check every train declaration there is */
        int nuser = nnl->nsources;
        for (int i = 0; i < nuser; i++) {
            if (nnl->sources[i]->is_stdlib || !nnl->programs[i])
                continue;
            AstList *body = &nnl->programs[i]->body;
            for (int j = 0; j < body->len && !diag_stopped(nnl); j++) {
                NnlResult rt = NNL_OK;
                if (body->items[j]->kind == AST_TRAIN)
                    rt = driver_run_train(nnl, opt, body->items[j]);
                if (rt > r)
                    r = rt;
            }
        }
        if (driver_stop(opt) == STOP_CHECK) {
            NnlResult rm = driver_check_models(nnl);
            if (rm > r)
                r = rm;
        }
        return r;
    }
    AstNode *train = driver_find_train(nnl, opt->train);
    return train ? driver_run_train(nnl, opt, train) : NNL_EUSER;
}

/* One train declaration's run: what its stages make, freed by driver_run_free. */
typedef struct {
    const NnlRunOptions *opt;
    TrainSpec spec;
    IrProgram prog;
    int forward;              /* the forward graph is prog's nodes [0, forward) */
    Plan plan;
    Jit *jit;
    StrBuf dump;              /* the text of the stage the run stops at */
    DriverData dd;
    NnlrtDataset *data, *val; /* the training and validation sets, prepared */
    NnlrtDataset input;       /* nnlc predict: the inputs */
    AotInput lib;             /* nnlc build --lib: the training inputs' scale and statistics */
    struct timespec t0;       /* when the current stage began */
} DriverRun;

/* The data sets, loaded and prepared (and predict's inputs); false after reporting. */
static bool driver_read_data(Nnl *nnl, DriverRun *R)
{
    const NnlRunOptions *opt = R->opt;
    DriverData *dd = &R->dd;
    driver_data_init(nnl, dd, &R->spec);
    /* a trainer reads (and checks) its inputs when it runs: building takes the sizes from
     * the files' headers, and reads the labels to check them */
    dd->data.shapes_only = driver_stop(opt) == STOP_BUILD;
    if (opt->mode == NNL_RUN_BUILD_LIB && !driver_lib_inputs(nnl, dd, &R->lib))
        return false;
    if (driver_stop(opt) == STOP_PREDICT) {
        /* new inputs take the training set's statistics before it is standardized */
        if (!driver_load(nnl, dd, dd->train))
            return false;
        if (!nnlrt_data_load_inputs(&dd->data, dd->train, opt->input, &R->input)) {
            nnl->nerrors++; /* the runtime has reported it */
            return false;
        }
    }
    if (!driver_load_data(nnl, dd, &R->spec, &R->data, &R->val))
        return false;
    driver_stage(opt, &R->t0, "data", "%lld training samples, %lld validation samples",
                 (long long)R->data->n, R->val ? (long long)R->val->n : 0LL);
    return true;
}

/* The graph for the data's inputs, with the labels checked; false after reporting. */
static bool driver_lower(Nnl *nnl, DriverRun *R)
{
    IrProgram *prog = &R->prog;
    const NnlrtDataset *sets[2] = {R->data, R->val};
    for (int i = 0; i < 2; i++) {
        const NnlrtDataset *ds = sets[i];
        if (!ds || !ds->y || ds->y_size == 1)
            continue;
        diag_error(nnl, R->spec.loss->src, R->spec.loss->off, "loss '%s' compares the "
                   "model's output with one target value per sample, but the %s data's "
                   "targets (%s) have %lld values per sample (shape (%lld, %lld)): give the "
                   "data one target per sample (shape (%lld) or (%lld, 1))",
                   R->spec.loss->name, i ? "validation" : "training",
                   ds->y_source ? ds->y_source : ds->source, (long long)ds->y_size,
                   (long long)ds->n, (long long)ds->y_size, (long long)ds->n, (long long)ds->n);
        return false;
    }
    if (R->data->y && R->data->y_size == 1) {
        const char *held = driver_target_values(nnl, R->data, &R->spec.target_classes);
        const char *file = R->data->y_source ? R->data->y_source : R->data->source;
        R->spec.target_held = arena_printf(&nnl->arena, "the training data's targets (%s) "
                                           "are %s", file, held);
    }
    R->spec.n_train = R->data->n;
    if (lower_program(nnl, &R->spec, R->data->x_size, prog) != NNL_OK)
        return false;
    if (!driver_check_loss(nnl, R->data, &R->spec, prog, "training") ||
        (R->val && !driver_check_loss(nnl, R->val, &R->spec, prog, "validation")))
        return false;
    return prog->target_kind != NNLRT_TARGET_CLASS ||
           (driver_check_labels(nnl, R->data, &R->spec, prog) &&
            (!R->val || driver_check_labels(nnl, R->val, &R->spec, prog)));
}

/* graph → gradients → kernels, each dumped when the run stops there; false when it
 * stops (*r set). */
static bool driver_graph(Nnl *nnl, DriverRun *R, NnlResult *r)
{
    const NnlRunOptions *opt = R->opt;
    StopAt stop = driver_stop(opt);
    IrProgram *prog = &R->prog;
    if (stop == STOP_CHECK)
        return false;
    R->forward = prog->nnodes;
    driver_stage(opt, &R->t0, "graph", "%d nodes", R->forward);
    if (stop == STOP_IR) {
        driver_dump_ir(&R->dump, prog, 0, R->forward);
        driver_dump_roots(&R->dump, prog, false);
        return false;
    }
    ad_backward(prog);
    if (!ir_verify(nnl, prog)) {
        *r = NNL_EINTERNAL;
        return false;
    }
    driver_stage(opt, &R->t0, "gradients", "%d nodes in all", prog->nnodes);
    if (stop == STOP_GRAD) {
        driver_dump_ir(&R->dump, prog, R->forward, prog->nnodes);
        driver_dump_roots(&R->dump, prog, true);
        return false;
    }
    fuse_plan(nnl, prog, &R->plan);
    driver_stage(opt, &R->t0, "kernels", "%d fused loops and library calls",
                 driver_kernels(&R->plan));
    if (stop == STOP_KERNELS)
        fuse_dump(&R->dump, prog, &R->plan);
    if (stop == STOP_SUMMARY) {
        int64_t n = R->data->n;
        summary_write(&R->dump, &R->spec, prog, &R->plan, R->forward,
                      R->spec.config.batch ? R->spec.config.batch : n, n, driver_elem_size(opt));
    }
    return stop != STOP_KERNELS && stop != STOP_SUMMARY;
}

/* Training steps take `batch` samples (all of them with batch = all); the runtime
 * evaluates validation data in batches of `batch`, or of 1024 with batch = all. These
 * only steer code generation (vector or scalar loops, BLAS or inline products): any
 * batch size runs correctly. */
static void driver_batches(DriverRun *R)
{
    const NnlRunOptions *opt = R->opt;
    const TrainSpec *spec = &R->spec;
    Plan *plan = &R->plan;
    int64_t n = R->data->n;
    int64_t batch = spec->config.batch;
    plan->max_batch = batch ? batch : n;
    plan->max_batch_eval = !spec->validate ? plan->max_batch : batch ? batch : 1024;
    if (opt->mode == NNL_RUN_GRADCHECK)
        plan->max_batch = plan->max_batch_eval = n < 8 ? n : 8;
    plan->predict = driver_stop(opt) == STOP_PREDICT || driver_stop(opt) == STOP_EVAL ||
                    opt->mode == NNL_RUN_BUILD_LIB;
}

/* build, or LLVM → predict, eval or train. */
static NnlResult driver_compile(Nnl *nnl, DriverRun *R)
{
    const NnlRunOptions *opt = R->opt;
    StopAt stop = driver_stop(opt);
    TrainSpec *spec = &R->spec;
    IrProgram *prog = &R->prog;
    driver_batches(R);
    if (stop == STOP_BUILD)
        return driver_build(nnl, opt, spec, prog, &R->plan, &R->dd, R->data, &R->lib);
    JitEntries fns;
    NnlResult r = cg_compile(nnl, prog, &R->plan, driver_elem_size(opt),
                             stop == STOP_LLVM ? &R->dump : NULL, &R->jit, &fns);
    if (r != NNL_OK || stop == STOP_LLVM)
        return r;
    double llvm_ms = driver_ms(&R->t0);
    driver_stage(opt, &R->t0, "LLVM", "code generated, optimized and JIT-compiled");
    if (stop == STOP_PREDICT || stop == STOP_EVAL)
        return driver_infer(nnl, opt, spec, prog, &R->plan, &fns, R->data, R->val, &R->input);
    if (!opt->quiet) {
        int64_t nparams = 0; /* the arena pads each tensor; count what the model has */
        for (int i = 0; i < prog->nparams; i++)
            nparams += prog->params[i].size;
        fprintf(opt->out, "nnlc: %s: %lld parameters, compiled in %.0f ms; training on %lld "
                "samples\n", spec->model->name, (long long)nparams, llvm_ms,
                (long long)R->data->n);
    }
    return driver_train(nnl, opt, spec, prog, &R->plan, &fns, R->data, R->val);
}

/* Writes the dump, if any, and frees what the run made. */
static NnlResult driver_run_free(DriverRun *R, NnlResult r)
{
    StrBuf *dump = &R->dump;
    if (dump->len && fwrite(dump->data, 1, dump->len, R->opt->out) != dump->len)
        r = NNL_EUSAGE;
    sb_free(dump);
    jit_free(R->jit);
    if (R->plan.entries[0].name)
        fuse_free(&R->plan);
    nnl_dealloc(R->prog.params);
    nnl_dealloc(R->prog.new_states);
    nnl_dealloc(R->prog.state_init);
    driver_data_free(&R->dd);
    nnlrt_dataset_free(&R->input);
    return r;
}

static NnlResult driver_run_train(Nnl *nnl, const NnlRunOptions *opt, AstNode *train)
{
    DriverRun R = {.opt = opt, .prog = {.arena = &nnl->arena}, .lib = {.x_scale = 1}};
    clock_gettime(CLOCK_MONOTONIC, &R.t0);
    AstList overrides = {0};
    if (!driver_overrides(nnl, opt, &overrides) ||
        lower_train_spec(nnl, train, &overrides, &R.spec) != NNL_OK)
        return NNL_EUSER;
    driver_stage(opt, &R.t0, "train keys", "train %s", R.spec.model->name);
    NnlResult r = NNL_OK;
    if (opt->mode == NNL_RUN_CHECK_NO_DATA) /* names, keys and shapes, data as the model's */
        r = lower_program(nnl, &R.spec, -1, &R.prog);
    else if (!driver_read_data(nnl, &R) || !driver_lower(nnl, &R))
        r = NNL_EUSER;
    else if (driver_graph(nnl, &R, &r))
        r = driver_compile(nnl, &R);
    return driver_run_free(&R, r);
}

NnlResult nnl_run(Nnl *nnl, const NnlRunOptions *o)
{
    NnlRunOptions opt = *o;
    opt.float64 = o->float64 || o->mode == NNL_RUN_GRADCHECK;
    opt.verbose = o->verbose && !o->quiet && (o->mode == NNL_RUN_TRAIN ||
                                              o->mode == NNL_RUN_BUILD);
    opt.out = o->out ? o->out : stdout;
    opt.cpu = o->cpu ? o->cpu : "x86-64-v3";
    return driver_run(nnl, &opt);
}
