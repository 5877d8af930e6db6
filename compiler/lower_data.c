/* lower_data.c — data declarations: csv, idx, npy and split calls to data sets. */
#include <math.h>
#include <string.h>

#include "nnlc_int.h"

/* ---- data ---- */

/* The directory of the script a data set is declared in (NULL: the current one). */
static const char *script_dir(Lower *L, Source *src)
{
    const char *slash = strrchr(src->path, '/');
    if (src->is_stdlib || !slash)
        return NULL;
    return arena_strndup(&L->nnl->arena, src->path, (size_t)(slash - src->path));
}

static Val lower_csv(Lower *L, AstNode *call, Val *a, bool *given)
{
    Arena *ar = &L->nnl->arena;
    ScriptData *sd = arena_alloc(ar, sizeof *sd);
    sd->src = call->src;
    sd->off = call->off;
    NnlrtDataSpec *ds = &sd->spec;
    ds->kind = NNLRT_DATA_CSV;
    ds->header = true;
    ds->delimiter = ',';
    ds->target_index = -1;
    if (!lower_want_str(L, call, a[0], "the path of csv"))
        return val_err();
    ds->path = a[0].str;
    ds->script_dir = script_dir(L, call->src);
    if (given[1]) {
        if (a[1].kind == V_STR)
            ds->target = a[1].str;
        else if (a[1].kind == V_NUM && a[1].num == floor(a[1].num) && a[1].num >= 0)
            ds->target_index = (long)a[1].num;
        else {
            lower_error(L, call, "target must be a column name or a column number (from 0), not %s",
                        val_desc(L, a[1]));
            return val_err();
        }
    }
    if (given[2]) {
        if (a[2].kind != V_LIST || a[2].n == 0) {
            lower_error(L, call, "features must be a non-empty list of column names or numbers");
            return val_err();
        }
        long *numbers = arena_alloc(ar, sizeof(long) * (size_t)a[2].n);
        const char **names_of = arena_alloc(ar, sizeof(char *) * (size_t)a[2].n);
        ds->n_features = a[2].n;
        bool names = a[2].items[0].kind == V_STR;
        for (int i = 0; i < a[2].n; i++) {
            Val f = a[2].items[i];
            if (names && f.kind == V_STR) {
                names_of[i] = f.str;
            } else if (!names && f.kind == V_NUM && f.num == floor(f.num) && f.num >= 0) {
                numbers[i] = (long)f.num;
            } else {
                lower_error(L, call, "features must be all column names or all column numbers");
                return val_err();
            }
        }
        if (names)
            ds->feature_names = names_of;
        else
            ds->features = numbers;
    }
    if (given[3]) {
        if (a[3].kind != V_NUM) {
            lower_error(L, call, "header must be true or false");
            return val_err();
        }
        ds->header = a[3].num != 0;
    }
    if (given[4]) {
        if (!lower_want_str(L, call, a[4], "delimiter"))
            return val_err();
        if (strlen(a[4].str) != 1 || a[4].str[0] == '"' || a[4].str[0] == '\n') {
            lower_error(L, call, "delimiter must be one character (not a quote or a new line)");
            return val_err();
        }
        ds->delimiter = a[4].str[0];
    }
    if (given[5]) {
        if (a[5].kind != V_NUM) {
            lower_error(L, call, "standardize must be true or false");
            return val_err();
        }
        ds->standardize = a[5].num != 0;
    }
    return (Val){.kind = V_DATA, .data = sd, .src = call->src, .off = call->off};
}

/* The data sources of two files, inputs and targets, with a scale: `name(inputs, targets,
 * scale = 1)`. A new format of this kind is a row here (and its runtime row in nnlrt.h's
 * NNLRT_DATA_KINDS, its line in builtins.def). */
static const struct {
    Builtin builtin;
    NnlrtDataKind kind;
    const char *inputs, *targets; /* the files as messages name them */
} file_pairs[] = {
    {BI_IDX, NNLRT_DATA_IDX, "the images file", "the labels file"},
    {BI_NPY, NNLRT_DATA_NPY, "the inputs file", "the targets file"},
};

static int file_pair_index(Builtin b)
{
    for (int i = 0; i < (int)NNL_COUNTOF(file_pairs); i++)
        if (file_pairs[i].builtin == b)
            return i;
    return -1;
}

/* idx(images, labels, scale = 1), npy(x, y, scale = 1): file_pairs[pair] */
static Val lower_file_pair(Lower *L, AstNode *call, int pair, Val *a, bool *given)
{
    if (!lower_want_str(L, call, a[0], file_pairs[pair].inputs) ||
        !lower_want_str(L, call, a[1], file_pairs[pair].targets))
        return val_err();
    double scale = 1;
    if (given[2]) {
        if (a[2].kind != V_NUM || !isfinite(a[2].num) || a[2].num == 0) {
            lower_error(L, call, "scale must be a non-zero number, not %s", val_desc(L, a[2]));
            return val_err();
        }
        scale = a[2].num;
    }
    ScriptData *sd = arena_alloc(&L->nnl->arena, sizeof *sd);
    *sd = (ScriptData){.src = call->src, .off = call->off, .spec = {
        .kind = file_pairs[pair].kind, .path = a[0].str,
        .path2 = a[1].str, .script_dir = script_dir(L, call->src), .scale = scale}};
    return (Val){.kind = V_DATA, .data = sd, .src = call->src, .off = call->off};
}

Val lower_data_call(Lower *L, AstNode *call, Builtin b, Val *a, bool *given)
{
    int file_pair = file_pair_index(b);
    if (b != BI_CSV && b != BI_SPLIT && file_pair < 0) {
        lower_error(L, call, "internal error: the built-in '%s' has no lowering", call->name);
        return val_err();
    }
    if (L->mode != MODE_GLOBAL) {
        lower_error(L, call, "'%s' describes a data set and belongs in a data declaration",
                    call->name);
        return val_err();
    }
    if (b == BI_CSV)
        return lower_csv(L, call, a, given);
    if (file_pair >= 0)
        return lower_file_pair(L, call, file_pair, a, given);
    if (a[0].kind != V_DATA) {
        lower_error(L, call, "split needs a data set, not %s", val_desc(L, a[0]));
        return val_err();
    }
    if (a[1].kind != V_NUM || !(a[1].num > 0 && a[1].num < 1)) {
        lower_error(L, call, "the fraction of split must be a number between 0 and 1, not %s",
                    val_desc(L, a[1]));
        return val_err();
    }
    int64_t seed = 0;
    if (given[2] && !lower_want_int(L, call, a[2], "the seed", 0, &seed))
        return val_err();
    Val pair = {.kind = V_LIST, .n = 2, .src = call->src, .off = call->off};
    pair.items = arena_alloc(&L->nnl->arena, sizeof(Val) * 2);
    for (int i = 0; i < 2; i++) {
        ScriptData *sd = arena_alloc(&L->nnl->arena, sizeof *sd);
        *sd = (ScriptData){.src = call->src, .off = call->off, .parent = a[0].data, .spec = {
            .kind = NNLRT_DATA_SPLIT, .fraction = a[1].num, .seed = (uint64_t)seed, .part = i}};
        pair.items[i] = (Val){.kind = V_DATA, .data = sd, .src = call->src, .off = call->off};
    }
    return pair;
}

/* A data declaration, evaluated once per name. */
Val lower_data_decl(Lower *L, AstNode *decl, const char *name)
{
    for (int i = 0; i < L->ndata_cache; i++)
        if (strcmp(L->data_cache_keys[i]->spec.name, name) == 0)
            return (Val){.kind = V_DATA, .data = L->data_cache_keys[i]};
    Mode saved = L->mode;
    L->mode = MODE_GLOBAL;
    Env env = {0};
    Val v = lower_expr(L, &env, decl->rhs);
    env_free(&env);
    L->mode = saved;
    if (!val_ok(v))
        return v;
    int n = decl->names.len;
    if (n == 1 && v.kind == V_LIST && v.n == 2 && v.items[0].kind == V_DATA) {
        lower_error(L, decl, "split makes two data sets: name both, as in 'data %s, test = ...'",
                    decl->names.items[0]->name);
        return val_err();
    }
    bool all_data = v.kind == V_LIST;
    for (int i = 0; all_data && i < v.n; i++)
        all_data = v.items[i].kind == V_DATA;
    if ((n == 1 && v.kind != V_DATA) || (n > 1 && (!all_data || v.n != n))) {
        lower_error(L, decl->rhs, "a data declaration needs %s, not %s",
                    n == 1 ? "a data set such as csv(...)" : "as many data sets as names",
                    val_desc(L, v));
        return val_err();
    }
    Val result = val_err();
    for (int i = 0; i < n; i++) {
        ScriptData *ds = n == 1 ? v.data : v.items[i].data;
        ds->spec.name = decl->names.items[i]->name;
        L->data_cache_keys = nnl_realloc(L->data_cache_keys,
                                         sizeof(ScriptData *) * (size_t)(L->ndata_cache + 1));
        L->data_cache_keys[L->ndata_cache++] = ds;
        if (strcmp(ds->spec.name, name) == 0)
            result = (Val){.kind = V_DATA, .data = ds, .src = decl->src, .off = decl->off};
    }
    return result;
}
