/* driver.c — the pipeline, on one screen (driver_run), and what it hands the runtime. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "nnlc_int.h"

/* ---- data ---- */

static const DataSource *driver_root(const DataSource *ds)
{
    while (ds->kind == DS_SPLIT)
        ds = ds->parent;
    return ds;
}

/* A data file named in a script, found next to it, along NNL_DATA_PATH or in
 * /usr/share/datasets; NULL after reporting where it was looked for. */
static const char *driver_find(Nnl *nnl, DataSource *ds, const char *name)
{
    char buf[4096];
    const char *found = nnlrt_find_data(name, ds->script_dir, buf, sizeof buf);
    if (found)
        return arena_strndup(&nnl->arena, found, strlen(found));
    char places[2048];
    diag_error(nnl, ds->src, ds->off, "cannot find the data file '%s' (looked in: %s)", name,
               nnlrt_data_places(name, ds->script_dir, places, sizeof places));
    return NULL;
}

static bool driver_load_files(Nnl *nnl, DataSource *ds, NnlrtDataset *out)
{
    const char *a = driver_find(nnl, ds, ds->path);
    const char *b = a && ds->path2 ? driver_find(nnl, ds, ds->path2) : NULL;
    if (!a || (ds->path2 && !b))
        return false;
    bool good = ds->kind == DS_IDX ? nnlrt_idx_load(a, b, ds->scale, out)
                                   : nnlrt_npy_load(a, b, ds->scale, out);
    if (!good)
        nnl->nerrors++; /* the runtime has reported it */
    return good;
}

static NnlrtDataset *driver_load(Nnl *nnl, DataSource *ds)
{
    if (ds->loaded)
        return ds->loaded;
    NnlrtDataset *out = arena_alloc(&nnl->arena, sizeof *out);
    if (ds->kind == DS_IDX || ds->kind == DS_NPY) {
        if (!driver_load_files(nnl, ds, out))
            return NULL;
    } else if (ds->kind == DS_CSV) {
        const char *path = driver_find(nnl, ds, ds->path);
        if (!path)
            return NULL;
        NnlrtCsvOptions opt = {.path = path, .target = ds->target_name,
                               .target_index = ds->target_index, .features = ds->features,
                               .feature_names = ds->feature_names,
                               .n_features = ds->nfeatures, .header = ds->header,
                               .delimiter = ds->delimiter};
        if (!ds->nfeatures)
            opt.features = NULL, opt.feature_names = NULL;
        if (!nnlrt_csv_load(&opt, out)) {
            nnl->nerrors++; /* the runtime has reported it */
            return NULL;
        }
    } else {
        NnlrtDataset *parent = driver_load(nnl, ds->parent);
        if (!parent)
            return NULL;
        NnlrtDataset parts[2];
        nnlrt_split(parent, ds->fraction, ds->seed, &parts[0], &parts[1]);
        *out = parts[ds->part];
        nnlrt_dataset_free(&parts[1 - ds->part]);
        if (out->n == 0) {
            diag_error(nnl, ds->src, ds->off, "split leaves no samples in part %d of '%s' "
                       "(%lld samples in all)", ds->part + 1, ds->name ? ds->name : "?",
                       (long long)parent->n);
            return NULL;
        }
    }
    ds->loaded = out;
    return out;
}

/* Frees a data set and the ones it was split from (each once: parts share a parent). */
static void driver_free_data(DataSource *ds)
{
    for (; ds; ds = ds->kind == DS_SPLIT ? ds->parent : NULL) {
        if (ds->loaded) {
            nnlrt_dataset_free(ds->loaded);
            ds->loaded = NULL;
        }
    }
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

static bool driver_overrides(Nnl *nnl, const RunOptions *opt, AstList *out)
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

static NnlResult driver_train(Nnl *nnl, const RunOptions *opt, TrainSpec *spec,
                              IrProgram *p, Plan *plan, JitEntries *fns, NnlrtDataset *train,
                              NnlrtDataset *val)
{
    NnlrtTensor *tensors = arena_alloc(&nnl->arena, sizeof(NnlrtTensor) * (size_t)p->nparams);
    for (int i = 0; i < p->nparams; i++) {
        IrParam *prm = &p->params[i];
        tensors[i] = (NnlrtTensor){.name = prm->name, .rank = prm->shape.rank,
                                   .offset = prm->offset, .size = prm->size};
        memcpy(tensors[i].dims, prm->shape.dim, sizeof tensors[i].dims);
    }
    NnlrtModel m = {
        .elem_size = opt->elem_size, .n_params = p->nparam_elems, .n_tensors = p->nparams,
        .tensors = tensors, .n_states = p->nstates, .x_size = train->x_size, .y_size = 1,
        .target_kind = p->target_kind, .n_classes = p->n_classes, .n_metrics = p->nmetrics,
        .metric_names = p->metric_names, .n_bufs = plan->nbufs, .buf_elems = plan->buf_elems,
        .buf_batched = plan->buf_batched, .init = fns->init, .grad = fns->grad,
        .eval = fns->eval, .update = fns->update,
    };
    if (opt->gradcheck)
        return nnlrt_gradcheck(&m, train, spec->seed, 1e-6, opt->out) ? NNL_OK : NNL_EUSER;
    NnlrtTrainConfig cfg = {
        .epochs = spec->epochs, .batch = spec->batch, .seed = spec->seed,
        .shuffle = spec->shuffle, .log_path = opt->log ? opt->log : spec->log,
        .log_every = spec->log_every, .init_path = opt->init, .dump_path = opt->dump_params,
        .quiet = opt->quiet, .out = opt->out,
    };
    int rc = nnlrt_train(&m, &cfg, train, val);
    return (NnlResult)rc;
}

static NnlResult driver_run_train(Nnl *nnl, const RunOptions *opt, AstNode *train);

/* check → names → train keys → data → graph → gradients → kernels → LLVM → train */
NnlResult driver_run(Nnl *nnl, const RunOptions *opt)
{
    NnlResult r = nnl_parse(nnl);
    if (r != NNL_OK)
        return r;
    if (!nnl->checked) {
        nnl->checked = true;
        if ((r = sema_check(nnl)) != NNL_OK)
            return r;
    }
    if (opt->stop == STOP_CHECK && !opt->train_name) {
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
        return r;
    }
    AstNode *train = driver_find_train(nnl, opt->train_name);
    return train ? driver_run_train(nnl, opt, train) : NNL_EUSER;
}

static NnlResult driver_run_train(Nnl *nnl, const RunOptions *opt, AstNode *train)
{
    NnlResult r;
    AstList overrides = {0};
    TrainSpec spec;
    if (!driver_overrides(nnl, opt, &overrides) ||
        lower_train_spec(nnl, train, &overrides, &spec) != NNL_OK)
        return NNL_EUSER;
    IrProgram prog = {.arena = &nnl->arena};
    Plan plan = {0};
    Jit *jit = NULL;
    StrBuf dump = {0};
    if (opt->no_data) {
        /* names, keys and shapes only, with data shaped as the model's input */
        r = lower_program(nnl, &spec, -1, &prog);
        goto done;
    }
    NnlrtDataset *data = driver_load(nnl, spec.data);
    NnlrtDataset *val = spec.validate ? driver_load(nnl, spec.validate) : NULL;
    r = NNL_EUSER;
    if (!data || (spec.validate && !val))
        goto done;
    if (val && val->x_size != data->x_size) {
        diag_error(nnl, spec.validate->src, spec.validate->off, "validation data '%s' has %lld "
                   "inputs per sample, the training data %lld", spec.validate->name,
                   (long long)val->x_size, (long long)data->x_size);
        goto done;
    }
    if (driver_root(spec.data)->standardize) {
        if ((val && !nnlrt_standardize(val, data)) || !nnlrt_standardize(data, data)) {
            nnl->nerrors++; /* the runtime has reported it */
            goto done;
        }
    }
    if (lower_program(nnl, &spec, data->x_size, &prog) != NNL_OK)
        goto done;
    if (prog.target_kind == NNLRT_TARGET_CLASS &&
        (!driver_check_labels(nnl, data, &spec, &prog) ||
         (val && !driver_check_labels(nnl, val, &spec, &prog))))
        goto done;
    r = NNL_OK;
    if (opt->stop == STOP_CHECK)
        goto done;
    int forward = prog.nnodes;
    if (opt->stop == STOP_IR) {
        driver_dump_ir(&dump, &prog, 0, forward);
        driver_dump_roots(&dump, &prog, false);
        goto done;
    }
    ad_backward(&prog);
    if (!ir_verify(nnl, &prog)) {
        r = NNL_EINTERNAL;
        goto done;
    }
    if (opt->stop == STOP_GRAD) {
        driver_dump_ir(&dump, &prog, forward, prog.nnodes);
        driver_dump_roots(&dump, &prog, true);
        goto done;
    }
    fuse_plan(nnl, &prog, &plan);
    if (opt->stop == STOP_KERNELS) {
        fuse_dump(&dump, &prog, &plan);
        goto done;
    }
    /* training steps take `batch` samples (all of them with batch = all); the runtime
     * evaluates in batches of `batch`, or of 1024 with batch = all */
    plan.max_batch = spec.batch ? spec.batch : data->n;
    plan.max_batch_eval = spec.batch ? spec.batch : 1024;
    if (opt->gradcheck)
        plan.max_batch = plan.max_batch_eval = data->n < 8 ? data->n : 8;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    JitEntries fns;
    r = cg_compile(nnl, &prog, &plan, opt->elem_size, opt->stop == STOP_LLVM ? &dump : NULL,
                   &jit, &fns);
    if (r != NNL_OK || opt->stop == STOP_LLVM)
        goto done;
    if (!opt->quiet)
    {
        int64_t nparams = 0; /* the arena pads each tensor; count what the model has */
        for (int i = 0; i < prog.nparams; i++)
            nparams += prog.params[i].size;
        fprintf(opt->out, "nnlc: %s: %lld parameters, compiled in %.0f ms; training on %lld "
                "samples\n", spec.model->name, (long long)nparams, driver_ms(&t0),
                (long long)data->n);
    }
    r = driver_train(nnl, opt, &spec, &prog, &plan, &fns, data, val);
done:
    if (dump.len && fwrite(dump.data, 1, dump.len, opt->out) != dump.len)
        r = NNL_EUSAGE;
    sb_free(&dump);
    jit_free(jit);
    if (plan.entries[0].name)
        fuse_free(&plan);
    nnl_dealloc(prog.params);
    nnl_dealloc(prog.new_states);
    nnl_dealloc(prog.state_init);
    driver_free_data(spec.data);
    if (spec.validate)
        driver_free_data(spec.validate);
    return r;
}

NnlResult nnl_run(Nnl *nnl, const NnlRunOptions *o)
{
    static const StopAt stops[] = {
        [NNL_RUN_CHECK] = STOP_CHECK, [NNL_RUN_DUMP_IR] = STOP_IR,
        [NNL_RUN_DUMP_GRAD] = STOP_GRAD, [NNL_RUN_DUMP_KERNELS] = STOP_KERNELS,
        [NNL_RUN_DUMP_LLVM] = STOP_LLVM, [NNL_RUN_TRAIN] = STOP_RUN,
        [NNL_RUN_GRADCHECK] = STOP_RUN, [NNL_RUN_CHECK_NO_DATA] = STOP_CHECK,
    };
    RunOptions opt = {
        .stop = stops[o->mode], .train_name = o->train, .sets = o->sets, .nsets = o->nsets,
        .log = o->log, .init = o->init, .dump_params = o->dump_params,
        .elem_size = o->mode == NNL_RUN_GRADCHECK || o->float64 ? 8 : 4,
        .gradcheck = o->mode == NNL_RUN_GRADCHECK, .quiet = o->quiet != 0,
        .no_data = o->mode == NNL_RUN_CHECK_NO_DATA,
        .out = o->out ? o->out : stdout,
    };
    return driver_run(nnl, &opt);
}
