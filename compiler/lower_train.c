/* lower_train.c — the keys of a train declaration (and --set overrides) to a TrainSpec. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "nnlc_int.h"

/* ---- the train declaration ---- */

/* Where each key's value goes in a TrainSpec: the field its row names. */
static const size_t train_field[NNLRT_TRAIN_KEY_COUNT] = {
#define RUN_KEY(id, name, kind, least, def, what, flags, field) \
    [NNLRT_TRAIN_##id] = offsetof(TrainSpec, config.field),
#define MODEL_KEY(id, name, kind, least, def, what, flags, field) \
    [NNLRT_TRAIN_##id] = offsetof(TrainSpec, field),
#include "train_keys.def"
#undef RUN_KEY
#undef MODEL_KEY
};

const void *lower_train_field(const TrainSpec *spec, int key)
{
    return (const char *)spec + train_field[key];
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

/* The value of a key that is an expression; V_NONE after reporting. */
static Val train_eval(Lower *L, AstNode *x)
{
    Env env = {0};
    Val v = lower_expr(L, &env, x);
    env_free(&env);
    return v;
}

static bool train_data(Lower *L, AstNode *x, ScriptData **out)
{
    Val v = train_eval(L, x);
    if (val_ok(v) && v.kind != V_DATA) {
        lower_error(L, x, "expected a data set (the name of a data declaration), found %s",
                    val_desc(L, v));
        return false;
    }
    if (val_ok(v))
        *out = v.data;
    return val_ok(v);
}

static bool train_metrics(Lower *L, TrainSpec *spec, const NnlrtTrainKey *k, AstNode *x)
{
    static const AstKind metrics[] = {AST_METRIC, AST_LOSS, AST_FN};
    if (x->kind != AST_LIST) {
        lower_error(L, x, "metrics is a list, like [accuracy]");
        return false;
    }
    spec->nmetrics = x->args.len;
    spec->metrics = x->args.items;
    bool good = true;
    for (int i = 0; i < x->args.len; i++)
        good &= want_decl_ref(L, x->args.items[i], metrics, 3, k->what);
    return good;
}

/* A whole number: INT, BATCH (with 'all': 0) or SEED. */
static bool train_whole(Lower *L, const NnlrtTrainKey *k, AstNode *x, void *field)
{
    Val v = train_eval(L, x);
    int64_t n;
    if (val_ok(v) && k->kind == NNLRT_KEY_BATCH && v.kind == V_ALL) {
        *(int64_t *)field = 0;
        return true;
    }
    if (!val_ok(v) || !lower_want_int(L, x, v, k->what, k->least, &n))
        return false;
    if (k->kind == NNLRT_KEY_SEED)
        *(uint64_t *)field = (uint64_t)n;
    else
        *(int64_t *)field = n;
    return true;
}

/* POSITIVE or NONNEGATIVE: a number. */
static bool train_real(Lower *L, const NnlrtTrainKey *k, AstNode *x, double *field)
{
    Val v = train_eval(L, x);
    bool positive = k->kind == NNLRT_KEY_POSITIVE;
    if (val_ok(v) && (v.kind != V_NUM || !(positive ? v.num > 0 : v.num >= 0) ||
                      !isfinite(v.num))) {
        lower_error(L, x, "%s must be a %s number, not %s", k->what,
                    positive ? "positive" : "non-negative", val_desc(L, v));
        return false;
    }
    if (val_ok(v))
        *field = v.num;
    return val_ok(v);
}

/* The value of `key`, checked as its kind says, into its field of `spec`. */
static bool train_key_value(Lower *L, TrainSpec *spec, int key, AstNode *x)
{
    static const AstKind losses[] = {AST_LOSS, AST_FN};
    static const AstKind optimizers[] = {AST_OPTIMIZER};
    const NnlrtTrainKey *k = &nnlrt_train_keys[key];
    void *field = (char *)spec + train_field[key];
    Val v;
    switch (k->kind) {
    case NNLRT_KEY_DATA:
        return train_data(L, x, field);
    case NNLRT_KEY_LOSS:
    case NNLRT_KEY_OPTIMIZER:
        *(AstNode **)field = x;
        return k->kind == NNLRT_KEY_LOSS ? want_decl_ref(L, x, losses, 2, k->what)
                                         : want_decl_ref(L, x, optimizers, 1, k->what);
    case NNLRT_KEY_METRICS:
        return train_metrics(L, spec, k, x);
    case NNLRT_KEY_INT:
    case NNLRT_KEY_BATCH:
    case NNLRT_KEY_SEED:
        return train_whole(L, k, x, field);
    case NNLRT_KEY_BOOL:
        v = train_eval(L, x);
        if (val_ok(v) && v.kind != V_NUM) {
            lower_error(L, x, "%s must be true or false", k->what);
            return false;
        }
        if (val_ok(v))
            *(bool *)field = v.num != 0;
        return val_ok(v);
    case NNLRT_KEY_PATH:
        v = train_eval(L, x);
        if (!val_ok(v) || !lower_want_str(L, x, v, k->what))
            return false;
        *(const char **)field = v.str;
        return true;
    case NNLRT_KEY_POSITIVE:
    case NNLRT_KEY_NONNEGATIVE:
        return train_real(L, k, x, field);
    }
    return false;
}

/* The statement setting each key: the train block's, then --set's (which win). */
static void train_chosen(Nnl *nnl, AstNode *train, AstList *overrides, AstNode **chosen)
{
    for (int i = 0; i < train->body.len; i++) {
        int k = nnlrt_train_key(train->body.items[i]->name);
        if (k >= 0)
            chosen[k] = train->body.items[i];
    }
    for (int i = 0; overrides && i < overrides->len; i++) {
        AstNode *s = overrides->items[i];
        int k = nnlrt_train_key(s->name);
        if (k < 0) {
            const char *sug = sema_suggest(s->name, sema_train_keys, NNLRT_TRAIN_KEY_COUNT);
            diag_error(nnl, s->src, s->off, "unknown train key '%s'%s%s%s", s->name,
                       sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
            continue;
        }
        chosen[k] = s;
    }
}

NnlResult lower_train_spec(Nnl *nnl, AstNode *train, AstList *overrides, TrainSpec *spec)
{
    int before = nnl->nerrors;
    *spec = (TrainSpec){.decl = train};
    nnlrt_train_defaults(&spec->config);
    spec->model = sema_lookup(nnl, train->name);
    Lower L = {.nnl = nnl, .spec = spec, .mode = MODE_GLOBAL, .last_matrix = -1};
    IrProgram scratch = {.arena = &nnl->arena};
    L.p = &scratch;
    AstNode *chosen[NNLRT_TRAIN_KEY_COUNT] = {0};
    train_chosen(nnl, train, overrides, chosen);
    /* epochs first: hyper-parameters may use it; then in the table's order */
    for (int i = -1; i < NNLRT_TRAIN_KEY_COUNT; i++) {
        int k = i < 0 ? NNLRT_TRAIN_EPOCHS : i;
        if (chosen[k] && (i < 0 || k != NNLRT_TRAIN_EPOCHS)) {
            spec->key_at[k] = chosen[k];
            train_key_value(&L, spec, k, chosen[k]->rhs);
        }
    }
    for (int k = 0; k < NNLRT_TRAIN_KEY_COUNT; k++)
        if ((nnlrt_train_keys[k].flags & NNLRT_KEY_REQUIRED) && !chosen[k])
            diag_error(nnl, train->src, train->off, "train '%s' needs '%s = ...'", train->name,
                       nnlrt_train_keys[k].name);
    if (nnl->nerrors == before && (!spec->data || !spec->loss || !spec->optimizer))
        diag_error(nnl, train->src, train->off, "internal error: train '%s' is incomplete "
                   "without a reported error", train->name);
    nnl_dealloc(L.data_cache_keys);
    return nnl->nerrors != before ? NNL_EUSER : NNL_OK;
}
