/* lower_train.c — the keys of a train declaration (and --set overrides) to a TrainSpec. */
#include <math.h>
#include <string.h>

#include "nnlc_int.h"

/* ---- the train declaration ---- */

static int train_key(const char *name)
{
    for (int k = 0; sema_train_keys[k]; k++)
        if (strcmp(sema_train_keys[k], name) == 0)
            return k;
    return -1;
}

/* NAME or NAME(args) of a declaration of one of the `kinds`. */
static bool want_decl_ref(Lower *L, AstNode *x, const AstKind *kinds, int nkinds,
                          const char *what)
{
    if (x->kind == AST_NAME || x->kind == AST_CALL) {
        AstNode *d = sema_lookup(L->nnl, x->name);
        for (int i = 0; d && i < nkinds; i++)
            if (d->kind == kinds[i])
                return true;
        if (d) {
            lower_error(L, x, "'%s' is a %s, not %s", x->name, ast_kind_name(d->kind), what);
            return false;
        }
    }
    lower_error(L, x, "expected %s here, like 'name' or 'name(option = value)'", what);
    return false;
}

static bool train_number(Lower *L, AstNode *x, int64_t lo, int64_t *out, const char *what)
{
    Env env = {0};
    Val v = lower_expr(L, &env, x);
    env_free(&env);
    return val_ok(v) && lower_want_int(L, x, v, what, lo, out);
}

static bool train_key_value(Lower *L, TrainSpec *spec, int key, AstNode *x)
{
    static const AstKind losses[] = {AST_LOSS, AST_FN};
    static const AstKind metrics[] = {AST_METRIC, AST_LOSS, AST_FN};
    static const AstKind optimizers[] = {AST_OPTIMIZER};
    Env env = {0};
    Val v;
    int64_t n;
    bool good = true;
    switch (key) {
    case KEY_DATA:
    case KEY_VALIDATE:
        v = lower_expr(L, &env, x);
        if (val_ok(v) && v.kind != V_DATA) {
            lower_error(L, x, "expected a data set (the name of a data declaration), found %s",
                 val_desc(L, v));
            good = false;
        } else if (val_ok(v)) {
            *(key == KEY_DATA ? &spec->data : &spec->validate) = v.data;
        }
        good = good && val_ok(v);
        break;
    case KEY_LOSS:
        good = want_decl_ref(L, x, losses, 2, "a loss");
        spec->loss = x;
        break;
    case KEY_OPTIMIZER:
        good = want_decl_ref(L, x, optimizers, 1, "an optimizer");
        spec->optimizer = x;
        break;
    case KEY_METRICS:
        if (x->kind != AST_LIST) {
            lower_error(L, x, "metrics is a list, like [accuracy]");
            good = false;
            break;
        }
        spec->nmetrics = x->args.len;
        spec->metrics = x->args.items;
        for (int i = 0; i < x->args.len; i++)
            good &= want_decl_ref(L, x->args.items[i], metrics, 3, "a metric or a loss");
        break;
    case KEY_EPOCHS:
        good = train_number(L, x, 1, &spec->epochs, "epochs");
        break;
    case KEY_BATCH:
        v = lower_expr(L, &env, x);
        if (val_ok(v) && v.kind == V_ALL)
            spec->batch = 0;
        else
            good = val_ok(v) && lower_want_int(L, x, v, "batch (or 'all')", 1, &spec->batch);
        break;
    case KEY_SEED:
        good = train_number(L, x, 0, &n, "seed");
        spec->seed = (uint64_t)n;
        break;
    case KEY_SHUFFLE:
        v = lower_expr(L, &env, x);
        if (val_ok(v) && v.kind == V_NUM)
            spec->shuffle = v.num != 0;
        else if (val_ok(v)) {
            lower_error(L, x, "shuffle must be true or false");
            good = false;
        }
        good = good && val_ok(v);
        break;
    case KEY_LOG:
        v = lower_expr(L, &env, x);
        good = val_ok(v) && lower_want_str(L, x, v, "log");
        if (good)
            spec->log = v.str;
        break;
    case KEY_LOG_EVERY:
        good = train_number(L, x, 0, &spec->log_every, "log_every");
        break;
    case KEY_CHECKPOINT:
        v = lower_expr(L, &env, x);
        good = val_ok(v) && lower_want_str(L, x, v, "checkpoint");
        if (good)
            spec->checkpoint = v.str;
        break;
    case KEY_CHECKPOINT_EVERY:
        good = train_number(L, x, 1, &spec->checkpoint_every, "checkpoint_every (epochs)");
        break;
    case KEY_CHECKPOINT_EVERY_STEPS:
        good = train_number(L, x, 1, &spec->checkpoint_every_steps,
                            "checkpoint_every_steps");
        break;
    case KEY_KEEP:
        good = train_number(L, x, 1, &spec->keep, "keep");
        break;
    case KEY_PLOT:
        v = lower_expr(L, &env, x);
        good = val_ok(v) && lower_want_str(L, x, v, "plot");
        if (good)
            spec->plot = v.str;
        break;
    case KEY_CLIP_NORM:
    case KEY_CLIP_VALUE:
    case KEY_L1:
    case KEY_L2: {
        v = lower_expr(L, &env, x);
        bool clip = key == KEY_CLIP_NORM || key == KEY_CLIP_VALUE;
        if (val_ok(v) && (v.kind != V_NUM || !(clip ? v.num > 0 : v.num >= 0) || !isfinite(v.num))) {
            lower_error(L, x, "%s must be a %s number, not %s", sema_train_keys[key],
                 clip ? "positive" : "non-negative", val_desc(L, v));
            good = false;
        }
        good = good && val_ok(v);
        if (good)
            *(key == KEY_CLIP_NORM ? &spec->clip_norm : key == KEY_CLIP_VALUE ? &spec->clip_value
              : key == KEY_L1 ? &spec->l1 : &spec->l2) = v.num;
        break;
    }
    }
    env_free(&env);
    return good;
}

NnlResult lower_train_spec(Nnl *nnl, AstNode *train, AstList *overrides, TrainSpec *spec)
{
    int before = nnl->nerrors;
    *spec = (TrainSpec){.decl = train, .epochs = 1, .batch = 32, .shuffle = true};
    spec->model = sema_lookup(nnl, train->name);
    Lower L = {.nnl = nnl, .spec = spec, .mode = MODE_GLOBAL, .last_matrix = -1};
    IrProgram scratch = {.arena = &nnl->arena};
    L.p = &scratch;
    AstNode *chosen[KEY_COUNT] = {0};
    for (int i = 0; i < train->body.len; i++) {
        int k = train_key(train->body.items[i]->name);
        if (k >= 0)
            chosen[k] = train->body.items[i];
    }
    for (int i = 0; overrides && i < overrides->len; i++) {
        AstNode *s = overrides->items[i];
        int k = train_key(s->name);
        if (k < 0) {
            const char *sug = sema_suggest(s->name, sema_train_keys, KEY_COUNT);
            diag_error(nnl, s->src, s->off, "unknown train key '%s'%s%s%s", s->name,
                       sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
            continue;
        }
        chosen[k] = s;
    }
    /* epochs first: hyper-parameters may use it */
    static const int order[] = {KEY_EPOCHS, KEY_DATA, KEY_VALIDATE, KEY_LOSS, KEY_OPTIMIZER,
                                KEY_BATCH, KEY_SEED, KEY_SHUFFLE, KEY_METRICS, KEY_LOG,
                                KEY_LOG_EVERY, KEY_CLIP_NORM, KEY_CLIP_VALUE, KEY_L1, KEY_L2,
                                KEY_CHECKPOINT, KEY_CHECKPOINT_EVERY,
                                KEY_CHECKPOINT_EVERY_STEPS, KEY_KEEP, KEY_PLOT};
    for (size_t i = 0; i < NNL_COUNTOF(order); i++) {
        int k = order[i];
        if (chosen[k]) {
            spec->key_at[k] = chosen[k];
            train_key_value(&L, spec, k, chosen[k]->rhs);
        }
    }
    static const char *const required[] = {"data", "loss", "optimizer"};
    static const int required_keys[] = {KEY_DATA, KEY_LOSS, KEY_OPTIMIZER};
    for (int i = 0; i < 3; i++)
        if (!chosen[required_keys[i]])
            diag_error(nnl, train->src, train->off, "train '%s' needs '%s = ...'", train->name,
                       required[i]);
    if (nnl->nerrors == before && (!spec->data || !spec->loss || !spec->optimizer))
        diag_error(nnl, train->src, train->off, "internal error: train '%s' is incomplete "
                   "without a reported error", train->name);
    nnl_dealloc(L.data_cache_keys);
    return nnl->nerrors != before ? NNL_EUSER : NNL_OK;
}
