/* data_spec.c — data sets as a script declares them: which loader reads which file, the
 * parts of a split, standardization with the training set's statistics.
 *
 * `nnlc run` and a standalone trainer both load their data through here, so that they see
 * the same samples in the same order with the same values. nnlc finds the files itself
 * (its messages point into the script) and passes them in NnlrtData.files; a trainer lets
 * nnlrt_find_data look from the script's directory as compiled, or takes --data files.
 */
#include <stdio.h>
#include <string.h>

#include "nnlrt_int.h"

enum { SPEC_PATH_MAX = 4096 };

void nnlrt_data_init(NnlrtData *d, const NnlrtDataSpec *specs, int n_specs)
{
    memset(d, 0, sizeof *d);
    d->specs = specs;
    d->n_specs = n_specs;
    size_t n = (size_t)(n_specs > 0 ? n_specs : 1);
    d->files = nnlrt_alloc(nnlrt_array_bytes(2 * n, sizeof(char *)));
    d->sets = nnlrt_alloc(nnlrt_array_bytes(n, sizeof(NnlrtDataset *)));
    d->failed = nnlrt_alloc(n * sizeof(bool));
    memset(d->files, 0, 2 * n * sizeof(char *));
    memset(d->sets, 0, n * sizeof(NnlrtDataset *));
    memset(d->failed, 0, n * sizeof(bool));
}

void nnlrt_data_free(NnlrtData *d)
{
    for (int i = 0; d->sets && i < d->n_specs; i++) {
        if (d->sets[i]) {
            nnlrt_dataset_free(d->sets[i]);
            nnlrt_free(d->sets[i]);
        }
    }
    nnlrt_free(d->sets);
    nnlrt_free(d->files);
    nnlrt_free(d->failed);
    memset(d, 0, sizeof *d);
}

/* File k of spec i: the one given in d->files, or found as written; false after
 * reporting "cannot find the data file". */
static bool spec_file(const NnlrtData *d, int i, int k, char *buf, size_t n)
{
    const NnlrtDataSpec *s = &d->specs[i];
    const char *given = d->files[2 * i + k];
    const char *name = k ? s->path2 : s->path;
    if (given) {
        snprintf(buf, n, "%s", given);
        return true;
    }
    if (nnlrt_find_data(name, s->script_dir, buf, n))
        return true;
    char places[2048];
    nnlrt_error(NULL, 0, 0, "data '%s': cannot find the data file '%s' (looked in: %s)%s",
                s->name ? s->name : "?", name,
                nnlrt_data_places(name, s->script_dir, places, sizeof places),
                d->hint ? d->hint : "");
    return false;
}

static bool spec_load_csv(const NnlrtData *d, int i, NnlrtDataset *out)
{
    const NnlrtDataSpec *s = &d->specs[i];
    char path[SPEC_PATH_MAX];
    if (!spec_file(d, i, 0, path, sizeof path))
        return false;
    NnlrtCsvOptions opt = {.path = path, .target = s->target, .target_index = s->target_index,
                           .features = s->features, .feature_names = s->feature_names,
                           .n_features = s->n_features, .header = s->header,
                           .delimiter = s->delimiter};
    if (!s->n_features)
        opt.features = NULL, opt.feature_names = NULL;
    return nnlrt_csv_load(&opt, out);
}

/* The loaders of the formats of two files (NNLRT_DATA_KINDS), NULL for the others. */
typedef struct {
    bool (*load)(const char *x_path, const char *y_path, double scale, NnlrtDataset *out);
    bool (*load_shape)(const char *x_path, const char *y_path, double scale,
                       NnlrtDataset *out);
} SpecPair;

static const SpecPair spec_pairs[] = {
#define SPEC_PAIR(id, name, files, load, load_shape) {load, load_shape},
    NNLRT_DATA_KINDS(SPEC_PAIR)
#undef SPEC_PAIR
};

static bool spec_load_pair(const NnlrtData *d, int i, NnlrtDataset *out)
{
    const NnlrtDataSpec *s = &d->specs[i];
    char a[SPEC_PATH_MAX], b[SPEC_PATH_MAX];
    if (!spec_file(d, i, 0, a, sizeof a) || !spec_file(d, i, 1, b, sizeof b))
        return false;
    const SpecPair *pair = &spec_pairs[s->kind];
    if (d->shapes_only && !s->standardize)
        return pair->load_shape(a, b, s->scale, out);
    return pair->load(a, b, s->scale, out);
}

/* Part s->part of the parent: the split is made again for each part (it is cheap and
 * deterministic), the other part dropped. */
static bool spec_load_split(NnlrtData *d, int i, NnlrtDataset *out)
{
    const NnlrtDataSpec *s = &d->specs[i];
    if (s->parent < 0 || s->parent >= d->n_specs || s->parent == i) {
        nnlrt_error(NULL, 0, 0, "data '%s': the split's parent is not a data set",
                    s->name ? s->name : "?");
        return false;
    }
    NnlrtDataset *parent = nnlrt_data_load(d, s->parent);
    if (!parent)
        return false;
    NnlrtDataset parts[2];
    nnlrt_split(parent, s->fraction, s->seed, &parts[0], &parts[1]);
    *out = parts[s->part != 0];
    nnlrt_dataset_free(&parts[s->part == 0]);
    return true;
}

NnlrtDataset *nnlrt_data_load(NnlrtData *d, int i)
{
    if (i < 0 || i >= d->n_specs)
        return NULL;
    if (d->sets[i] || d->failed[i])
        return d->sets[i];
    d->failed[i] = true; /* until it loads */
    NnlrtDataset loaded;
    memset(&loaded, 0, sizeof loaded);
    bool ok;
    NnlrtDataKind kind = d->specs[i].kind;
    if (kind == NNLRT_DATA_CSV)
        ok = spec_load_csv(d, i, &loaded);
    else if (kind == NNLRT_DATA_SPLIT)
        ok = spec_load_split(d, i, &loaded);
    else if ((size_t)kind < sizeof spec_pairs / sizeof spec_pairs[0] && spec_pairs[kind].load)
        ok = spec_load_pair(d, i, &loaded);
    else {
        ok = false;
        nnlrt_error(NULL, 0, 0, "data set %d has an unknown kind", i);
    }
    if (!ok)
        return NULL;
    nnlrt_free(loaded.name);
    loaded.name = nnlrt_strdup(d->specs[i].name);
    d->sets[i] = nnlrt_alloc(sizeof(NnlrtDataset));
    *d->sets[i] = loaded;
    d->failed[i] = false;
    return d->sets[i];
}

/* The spec a split part comes from in the end: its file. */
static const NnlrtDataSpec *spec_root(const NnlrtData *d, int i)
{
    for (int depth = 0; d->specs[i].kind == NNLRT_DATA_SPLIT && depth < d->n_specs; depth++)
        i = d->specs[i].parent;
    return &d->specs[i];
}

static bool spec_not_empty(const NnlrtData *d, int i)
{
    const NnlrtDataSpec *s = &d->specs[i];
    if (d->sets[i]->n > 0)
        return true;
    if (s->kind == NNLRT_DATA_SPLIT)
        nnlrt_error(NULL, 0, 0, "split leaves no samples in part %d of '%s' (%lld samples in "
                    "all)", s->part + 1, s->name ? s->name : "?",
                    (long long)d->sets[s->parent]->n);
    else
        nnlrt_error(NULL, 0, 0, "data '%s' has no samples", s->name ? s->name : "?");
    return false;
}

bool nnlrt_data_prepare(NnlrtData *d, int train, int val, NnlrtDataset **train_out,
                        NnlrtDataset **val_out)
{
    *train_out = NULL;
    *val_out = NULL;
    NnlrtDataset *t = nnlrt_data_load(d, train);
    NnlrtDataset *v = val >= 0 ? nnlrt_data_load(d, val) : NULL;
    if (!t || (val >= 0 && !v) || !spec_not_empty(d, train) || (v && !spec_not_empty(d, val)))
        return false;
    if (v && v->x_size != t->x_size) {
        nnlrt_error(NULL, 0, 0, "validation data '%s' has %lld inputs per sample, the "
                    "training data %lld", d->specs[val].name ? d->specs[val].name : "?",
                    (long long)v->x_size, (long long)t->x_size);
        return false;
    }
    /* the validation set first: the training set's statistics must be taken before it
     * changes (and a set used for both is standardized once) */
    if (spec_root(d, train)->standardize) {
        if ((v && v != t && !nnlrt_standardize(v, t)) || !nnlrt_standardize(t, t))
            return false;
    }
    *train_out = t;
    *val_out = v;
    return true;
}

/* ---- descriptions, for a trainer's --help ---- */

typedef struct {
    char *buf;
    size_t n, used;
} SpecText;

static void spec_printf(SpecText *t, const char *fmt, ...) NNLRT_PRINTF(2, 3);
static void spec_printf(SpecText *t, const char *fmt, ...)
{
    if (t->used >= t->n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(t->buf + t->used, t->n - t->used, fmt, ap);
    va_end(ap);
    if (w > 0)
        t->used = (size_t)w < t->n - t->used ? t->used + (size_t)w : t->n;
}

static void spec_describe_csv(SpecText *t, const NnlrtDataSpec *s)
{
    spec_printf(t, "csv(\"%s\"", s->path);
    if (s->target)
        spec_printf(t, ", target = \"%s\"", s->target);
    else if (s->target_index >= 0)
        spec_printf(t, ", target = %ld", s->target_index);
    for (int k = 0; k < s->n_features; k++) {
        spec_printf(t, "%s", k ? ", " : ", features = [");
        if (s->feature_names)
            spec_printf(t, "\"%s\"", s->feature_names[k]);
        else if (s->features)
            spec_printf(t, "%ld", s->features[k]);
    }
    if (s->n_features)
        spec_printf(t, "]");
    if (!s->header)
        spec_printf(t, ", header = false");
    if (s->delimiter != ',')
        spec_printf(t, ", delimiter = \"%c\"", s->delimiter);
    if (s->standardize)
        spec_printf(t, ", standardize = true");
    spec_printf(t, ")");
}

static const char *const spec_kind_names[] = {
#define SPEC_KIND_NAME(id, name, files, load, load_shape) name,
    NNLRT_DATA_KINDS(SPEC_KIND_NAME)
#undef SPEC_KIND_NAME
};

const char *nnlrt_data_describe(const NnlrtData *d, int i, char *buf, size_t n)
{
    SpecText t = {buf, n, 0};
    if (n)
        buf[0] = 0;
    const NnlrtDataSpec *s = &d->specs[i];
    switch (s->kind) {
    case NNLRT_DATA_CSV: spec_describe_csv(&t, s); break;
    default: /* two files */
        spec_printf(&t, "%s(\"%s\", \"%s\"", spec_kind_names[s->kind], s->path, s->path2);
        if (s->scale != 1)
            spec_printf(&t, ", scale = %g", s->scale);
        spec_printf(&t, ")");
        break;
    case NNLRT_DATA_SPLIT:
        spec_printf(&t, "split(%s, %g, seed = %llu), %s part",
                    s->parent >= 0 && s->parent < d->n_specs && d->specs[s->parent].name
                        ? d->specs[s->parent].name : "?",
                    s->fraction, (unsigned long long)s->seed, s->part ? "second" : "first");
        break;
    }
    for (int k = 0; k < 2 && s->kind != NNLRT_DATA_SPLIT; k++)
        if (d->files[2 * i + k])
            spec_printf(&t, "%s%s", k ? ", " : "; read from ", d->files[2 * i + k]);
    return buf;
}

/* ---- new inputs, read as the training data's declaration reads its file ---- */

static bool spec_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The number of fields of the file's first line; -1 after reporting. */
static int spec_csv_width(const char *path, char delim)
{
    NnlrtCsv c;
    if (!nnlrt_csv_open(&c, path, delim))
        return -1;
    int r = nnlrt_csv_next(&c), n = c.n_fields;
    if (r == 0)
        nnlrt_error(path, 1, 1, "the file is empty: expected rows of numbers");
    nnlrt_csv_close(&c);
    return r > 0 ? n : -1;
}

/* A CSV of inputs for a model trained on `root`: with the training file's header and
 * delimiter; features chosen by name when the training file's were; else every column
 * when there are as many as the model's inputs, or the training file's own columns. */
static bool spec_inputs_csv(const NnlrtDataSpec *root, int64_t x_size, const char *path,
                            NnlrtDataset *out)
{
    bool csv = root->kind == NNLRT_DATA_CSV;
    char delim = csv && root->delimiter ? root->delimiter : ',';
    NnlrtCsvOptions opt = {.path = path, .header = csv && root->header, .delimiter = delim,
                           .no_target = true};
    if (csv && root->feature_names && root->n_features) {
        opt.feature_names = root->feature_names;
        opt.n_features = root->n_features;
    } else if (csv) {
        int width = spec_csv_width(path, delim);
        if (width < 0)
            return false;
        if (width != x_size && !root->n_features && width != x_size + 1) {
            nnlrt_error(path, 1, 1, "%d column%s; the model takes %lld inputs: a file of "
                        "%lld columns, or of the training file's %lld with its target",
                        width, width == 1 ? "" : "s", (long long)x_size, (long long)x_size,
                        (long long)x_size + 1);
            return false;
        }
        if (width != x_size) { /* the training file's layout, target column included */
            opt.no_target = false;
            opt.target = root->target;
            opt.target_index = root->target_index;
            opt.features = root->n_features ? root->features : NULL;
            opt.n_features = root->n_features;
        }
    }
    if (!nnlrt_csv_load(&opt, out))
        return false;
    nnlrt_free(out->y); /* a target column, when the file has one, is not an input */
    out->y = NULL;
    out->y_size = 0;
    out->x_scale = csv ? 1 : root->scale;
    return true;
}

bool nnlrt_data_load_inputs(NnlrtData *d, int train, const char *path, NnlrtDataset *out)
{
    memset(out, 0, sizeof *out);
    const NnlrtDataset *t = nnlrt_data_load(d, train);
    if (!t)
        return false;
    const NnlrtDataSpec *root = spec_root(d, train);
    bool ok = spec_ends_with(path, ".npy")
                  ? nnlrt_npy_load(path, NULL, root->kind == NNLRT_DATA_CSV ? 1 : root->scale, out)
                  : spec_inputs_csv(root, t->x_size, path, out);
    if (ok && out->x_size != t->x_size) {
        nnlrt_error(path, 0, 0, "%lld inputs per sample; the model takes %lld (as many as "
                    "'%s' has)", (long long)out->x_size, (long long)t->x_size,
                    d->specs[train].name ? d->specs[train].name : "?");
        ok = false;
    }
    if (ok && out->n == 0) {
        nnlrt_error(path, 0, 0, "no samples");
        ok = false;
    }
    if (ok && root->standardize)
        ok = nnlrt_standardize(out, t);
    if (!ok)
        nnlrt_dataset_free(out);
    return ok;
}
