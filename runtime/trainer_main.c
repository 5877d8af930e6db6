/* trainer_main.c — the main of a standalone trainer (nnlc build): its options, its --help, and
 * the run itself, which loads the data and trains exactly as `nnlc run` would.
 *
 * What the model computes (layers, loss, optimizer, metrics, the data's files and
 * splits) is compiled in; a run may change only what the runtime decides: epochs, batch,
 * seed, shuffle, log, log_every and plot, and where the data files are. Errors read
 * "NAME: error: ..." with the trainer's own name; exit status 1 for bad values and data,
 * 2 for usage and I/O errors, 3 when training diverges.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnlrt_int.h"

enum { TRAINER_MAX_SETS = 64, TRAINER_MAX_DATA = 64 };

typedef struct {
    const NnlrtProgram *p;
    NnlrtTrainConfig cfg;
    const char *sets[TRAINER_MAX_SETS];
    int n_sets;
    const char *data[TRAINER_MAX_DATA]; /* --data NAME=FILE[,FILE] */
    int n_data;
    const char *log;                    /* --log FILE */
    bool help, version;
    /* the options a run records in its checkpoints (trainer_recorded), as given */
    const char *words[2 * (TRAINER_MAX_SETS + TRAINER_MAX_DATA) + 8];
    int n_words;
    int recorded_sets;       /* sets[0..recorded_sets) came from the checkpoint's record */
} TrainerArgs;

/* The options a trainer's run records in its checkpoints, and how a later one replaces an
 * earlier one (docs/checkpoints.md, "Resuming"). */
static const NnlrtOptSpec trainer_recorded[] = {
    {"--set", NNLRT_OPT_SET}, {"--data", NNLRT_OPT_NAMED}, {"--log", NNLRT_OPT_ONE},
    {"--save-params", NNLRT_OPT_ONE},
};
enum { TRAINER_N_RECORDED = sizeof trainer_recorded / sizeof trainer_recorded[0] };

static int trainer_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: error: ", nnlrt_program_name());
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see '%s --help')\n", nnlrt_program_name());
    return NNLRT_EIO;
}

/* ---- --help and --version ---- */

static void trainer_shape(FILE *f, const NnlrtTensor *t)
{
    fputc('[', f);
    for (int k = 0; k < t->rank; k++)
        fprintf(f, "%s%lld", k ? ", " : "", (long long)t->dims[k]);
    fputc(']', f);
}

static int64_t trainer_param_count(const NnlrtModel *m)
{
    int64_t n = 0;
    for (int i = 0; i < m->n_tensors; i++)
        n += m->tensors[i].size;
    return n;
}

static void trainer_help_model(FILE *f, const NnlrtProgram *p)
{
    const NnlrtModel *m = &p->model;
    int width = 4;
    for (int i = 0; i < m->n_tensors; i++)
        if ((int)strlen(m->tensors[i].name) > width)
            width = (int)strlen(m->tensors[i].name);
    fprintf(f, "parameters (%lld in %d tensor%s, %s):\n", (long long)trainer_param_count(m),
            m->n_tensors, m->n_tensors == 1 ? "" : "s", m->elem_size == 8 ? "float64" : "float32");
    for (int i = 0; i < m->n_tensors; i++) {
        fprintf(f, "  %-*s  ", width, m->tensors[i].name);
        trainer_shape(f, &m->tensors[i]);
        fputc('\n', f);
    }
    fprintf(f, "\ninputs: %lld per sample; targets: ", (long long)m->x_size);
    if (m->target_kind == NNLRT_TARGET_CLASS)
        fprintf(f, "class labels 0 to %lld\n", (long long)m->n_classes - 1);
    else
        fprintf(f, "%lld value%s per sample\n", (long long)m->y_size, m->y_size == 1 ? "" : "s");
}

static void trainer_help_data(FILE *f, const NnlrtProgram *p, const NnlrtData *d)
{
    int width = 4;
    for (int i = 0; i < p->n_data; i++)
        if (p->data[i].name && (int)strlen(p->data[i].name) > width)
            width = (int)strlen(p->data[i].name);
    fprintf(f, "\ndata (files are looked for in the script's directory, then along "
               "NNL_DATA_PATH and in /usr/share/datasets):\n");
    for (int i = 0; i < p->n_data; i++) {
        char text[1024];
        const char *role = i == p->train_data ? "  (training)"
                           : i == p->val_data ? "  (validation)" : "";
        fprintf(f, "  %-*s  %s%s\n", width, p->data[i].name ? p->data[i].name : "?",
                nnlrt_data_describe(d, i, text, sizeof text), role);
    }
    const char *dir = p->n_data ? p->data[0].script_dir : NULL;
    fprintf(f, "  the script's directory: %s\n", dir ? dir : ".");
}

/* "  batch      32": a setting's value as --set writes it. */
static void trainer_help_key(FILE *f, const NnlrtTrainKey *k, const void *field, bool compiled)
{
    fprintf(f, "  %-10s ", k->name);
    switch (k->kind) {
    case NNLRT_KEY_INT:
    case NNLRT_KEY_BATCH: {
        int64_t n = *(const int64_t *)field;
        if (k->kind == NNLRT_KEY_BATCH && n == 0)
            fprintf(f, "all\n");
        else
            fprintf(f, "%lld%s\n", (long long)n,
                    compiled ? "  (compiled in: the hyper-parameters use it)" : "");
        return;
    }
    case NNLRT_KEY_SEED:
        fprintf(f, "%llu\n", (unsigned long long)*(const uint64_t *)field);
        return;
    case NNLRT_KEY_BOOL:
        fprintf(f, "%s\n", *(const bool *)field ? "true" : "false");
        return;
    default: { /* NNLRT_KEY_PATH */
        const char *path = *(const char *const *)field;
        fprintf(f, "%s\n", path ? path : "(none)");
    }
    }
}

static void trainer_help_settings(FILE *f, const NnlrtProgram *p)
{
    const NnlrtTrainConfig *c = &p->config;
    fprintf(f, "\ntraining, compiled in:\n");
    const char *s = p->description ? p->description : "";
    while (*s) {
        size_t len = strcspn(s, "\n");
        fprintf(f, "  %.*s\n", (int)len, s);
        s += len + (s[len] == '\n');
    }
    fprintf(f, "\ntraining, changed with --set KEY=VALUE:\n");
    for (int id = 0; id < NNLRT_TRAIN_KEY_COUNT; id++) {
        const NnlrtTrainKey *k = &nnlrt_train_keys[id];
        if (k->flags & NNLRT_KEY_SETTABLE)
            trainer_help_key(f, k, (const char *)c + k->offset,
                             id == NNLRT_TRAIN_EPOCHS && p->epochs_compiled);
    }
}

/* The files the trainer writes unless told otherwise (--log, --set log=...). */
static void trainer_help_files(FILE *f, const NnlrtProgram *p)
{
    const NnlrtTrainConfig *c = &p->config;
    fprintf(f, "\nfiles, compiled in:\n");
    fprintf(f, "  checkpoint  %s\n", c->checkpoint_path ? c->checkpoint_path : "(none)");
    if (c->checkpoint_path)
        fprintf(f, "              (a run refuses to replace one already there: --resume it, or\n"
                   "              --fresh to start over)\n");
    fprintf(f, "  log         %s\n", c->log_path ? c->log_path : "(none)");
}

static void trainer_help(const NnlrtProgram *p, const NnlrtData *d)
{
    FILE *f = stdout;
    fprintf(f, "usage: %s [OPTIONS]\n\n", nnlrt_program_name());
    fprintf(f, "Trains model '%s' of %s, compiled by nnlc %s for %s.\n\n", p->model_name,
            p->script, p->nnlc_version, p->cpu);
    trainer_help_model(f, p);
    trainer_help_data(f, p, d);
    trainer_help_settings(f, p);
    trainer_help_files(f, p);
    fprintf(f,
            "\noptions:\n"
            "  --set KEY=VALUE      change epochs, batch (a number or all), seed, shuffle (true\n"
            "                       or false), log (a file), log_every or plot (an SVG file);\n"
            "                       'KEY=V; KEY=V' sets several. Other keys are compiled in:\n"
            "                       change the script and run 'nnlc build' again\n"
            "  --data NAME=FILE     read data set NAME from FILE instead (NAME=IMAGES,LABELS\n"
            "                       for idx, NAME=X,Y for npy); a split's parts follow it\n"
            "  --log FILE           write the training log (CSV) to FILE\n"
            "  --init FILE          start from the parameters in FILE (lines: name,v1,v2,...)\n"
            "  --save-params FILE   write the final parameters to FILE, in the same format\n"
            "  --resume CKPT        go on from a checkpoint (the script's checkpoint = \"path\")\n"
            "  --fresh              start over, replacing the checkpoint a run left (without\n"
            "                       it a run that does not resume refuses to replace one)\n"
            "  --quiet              print nothing but errors\n"
            "  --verbose            also the data, the batches, the files and the totals\n"
            "  --help               show this help\n"
            "  --version            print the version and what the trainer was built from\n"
            "\nExit status: 0 trained, 1 an error in the data or an option's value, 2 usage\n"
            "or I/O error, 3 training diverged (the loss became NaN or infinite).\n");
}

static void trainer_version(const NnlrtProgram *p)
{
    printf("%s: model '%s' of %s, compiled by nnlc %s for %s\n", nnlrt_program_name(),
           p->model_name, p->script, p->nnlc_version, p->cpu);
}

/* ---- options ---- */

/* nnlrt_util.h: shared with nnlc's main.c */
const char *nnlrt_option_value(const char *name, int argc, char **argv, int *i,
                               bool *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != 0)
        return NULL;
    if (*i + 1 == argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

/* "--set epochs 5" (or "--set epochs"): the value holds no '='. The example takes the value
 * from the value's second word or the next argument, when that is no option or script. */
bool nnlrt_set_not_pair(const char *prog, const char *value, const char *next)
{
    if (strchr(value, '='))
        return false;
    size_t key = strcspn(value, " \t");
    const char *rest = value + key + strspn(value + key, " \t");
    size_t nlen = next ? strlen(next) : 0;
    if (*rest)
        next = rest;
    else if (!next || next[0] == '-' || (nlen > 4 && strcmp(next + nlen - 4, ".nnl") == 0))
        next = "VALUE";
    fprintf(stderr, "%s: error: --set needs KEY=VALUE, not '%s'", prog, value);
    if (key)
        fprintf(stderr, " (e.g. --set %.*s=%s)", (int)key, value, next);
    fputc('\n', stderr);
    return true;
}

/* argv: the words, cut up later by --set and --data; given: the same words as given, which
 * the record points into. */
static int trainer_parse(TrainerArgs *a, int argc, char **argv, char **given)
{
    static const char *const names[] = {"--set", "--data", "--log", "--init", "--save-params",
                                        "--resume"};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v = NULL;
        bool missing = false;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            a->help = true;
            continue;
        }
        if (strcmp(arg, "--version") == 0) {
            a->version = true;
            continue;
        }
        if (strcmp(arg, "--fresh") == 0) {
            a->cfg.fresh = true;
            continue;
        }
        if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "--verbose") == 0) {
            a->cfg.quiet = arg[2] == 'q'; /* the last of the two wins */
            a->cfg.verbose = arg[2] == 'v';
            continue;
        }
        size_t k = 0;
        for (; k < sizeof names / sizeof *names; k++)
            if ((v = nnlrt_option_value(names[k], argc, argv, &i, &missing)) || missing)
                break;
        if (missing)
            return trainer_usage("option '%s' needs a value", arg);
        if (!v)
            return trainer_usage(arg[0] == '-' ? "unknown option '%s'"
                                               : "unexpected argument '%s': a trainer takes "
                                                 "options only", arg);
        if (k != 3 && k != 5) { /* --init and --resume are not recorded */
            if (a->n_words + 2 > (int)(sizeof a->words / sizeof *a->words))
                return trainer_usage("%s", "too many options");
            a->words[a->n_words++] = names[k];
            a->words[a->n_words++] = given[i] + (v - argv[i]);
        }
        switch (k) {
        case 0:
            if (a->n_sets == TRAINER_MAX_SETS)
                return trainer_usage("%s", "too many --set options");
            if (nnlrt_set_not_pair(nnlrt_program_name(), v, i + 1 < argc ? argv[i + 1] : NULL))
                return NNLRT_EIO;
            a->sets[a->n_sets++] = v;
            break;
        case 1:
            if (a->n_data == TRAINER_MAX_DATA)
                return trainer_usage("%s", "too many --data options");
            a->data[a->n_data++] = v;
            break;
        case 2: a->log = v; break;
        case 3: a->cfg.init_path = v; break;
        case 4: a->cfg.dump_path = v; break;
        case 5: a->cfg.resume_path = v; break;
        }
    }
    return NNLRT_OK;
}

/* ---- --set ---- */

static bool trainer_set_error(const char *key, const char *value, const char *fmt)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, key);
    nnlrt_error(NULL, 0, 0, "--set %s=%s: %s", key, value, msg);
    return false;
}

/* A whole number in [lo, INT64_MAX]. */
static bool trainer_int(const char *s, int64_t lo, int64_t *out)
{
    if (!*s || (*s < '0' || *s > '9'))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo)
        return false;
    *out = v;
    return true;
}

static bool trainer_set_number(const char *key, const char *value, int64_t lo, int64_t *out)
{
    if (trainer_int(value, lo, out))
        return true;
    return trainer_set_error(key, value, lo ? "%s must be a whole number, at least 1"
                                            : "%s must be a whole number, at least 0");
}

/* "log.csv" or log.csv */
static const char *trainer_unquote(char *value)
{
    size_t n = strlen(value);
    if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
        value[n - 1] = 0;
        return value + 1;
    }
    return value;
}

/* KEY=VALUE for a key the table (train_keys.def) marks settable, checked by its kind. */
static bool trainer_set_key(TrainerArgs *a, const char *key, char *value)
{
    int id = nnlrt_train_key(key);
    if (id < 0)
        return trainer_set_error(key, value, "unknown train key '%s'");
    const NnlrtTrainKey *k = &nnlrt_train_keys[id];
    if (!(k->flags & NNLRT_KEY_SETTABLE))
        return trainer_set_error(key, value, "'%s' is compiled into the trainer: change it in "
                                 "the script (or with nnlc build --set) and run 'nnlc build' "
                                 "again");
    if (id == NNLRT_TRAIN_EPOCHS && a->p->epochs_compiled)
        return trainer_set_error(key, value, "the script's hyper-parameters use '%s', so "
                                 "it is compiled into the trainer: run 'nnlc build --set "
                                 "epochs=N' instead");
    void *field = (char *)&a->cfg + k->offset;
    int64_t n;
    switch (k->kind) {
    case NNLRT_KEY_BATCH:
        if (strcmp(value, "all") == 0) {
            *(int64_t *)field = 0;
            return true;
        }
        if (trainer_int(value, k->least, field))
            return true;
        return trainer_set_error(key, value, "%s must be a whole number, at least 1, or all");
    case NNLRT_KEY_SEED:
        if (!trainer_set_number(key, value, k->least, &n))
            return false;
        *(uint64_t *)field = (uint64_t)n;
        return true;
    case NNLRT_KEY_BOOL:
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return trainer_set_error(key, value, "%s must be true or false");
        *(bool *)field = strcmp(value, "true") == 0;
        return true;
    case NNLRT_KEY_PATH: {
        const char *path = trainer_unquote(value);
        if (!*path)
            return trainer_set_error(key, value, "%s must name a file");
        *(const char **)field = path;
        return true;
    }
    default: /* NNLRT_KEY_INT: the kinds a run's settings have */
        return trainer_set_number(key, value, k->least, field);
    }
}

/* Trims blanks in place. */
static char *trainer_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* One --set: "KEY=VALUE", or several separated by ';'. `text` is modified (the config
 * keeps pointers into it). */
static bool trainer_set(TrainerArgs *a, char *text)
{
    for (char *item = text; item;) {
        char *next = strchr(item, ';');
        if (next)
            *next++ = 0;
        item = trainer_trim(item);
        if (*item) {
            char *eq = strchr(item, '=');
            if (!eq) {
                nnlrt_error(NULL, 0, 0, "--set: '%s' is not key=value", item);
                return false;
            }
            *eq = 0;
            if (!trainer_set_key(a, trainer_trim(item), trainer_trim(eq + 1)))
                return false;
        }
        item = next;
    }
    return true;
}

/* ---- --data ---- */

static int trainer_find_data(const NnlrtProgram *p, const char *name)
{
    for (int i = 0; i < p->n_data; i++)
        if (p->data[i].name && strcmp(p->data[i].name, name) == 0)
            return i;
    return -1;
}

/* NAME=FILE or NAME=FILE,FILE: `text` is modified (d->files points into it). */
static bool trainer_data(const NnlrtProgram *p, NnlrtData *d, char *text)
{
    char *eq = strchr(text, '=');
    if (!eq || eq == text || !eq[1]) {
        nnlrt_error(NULL, 0, 0, "--data %s: expected NAME=FILE", text);
        return false;
    }
    *eq = 0;
    char *files = eq + 1;
    int i = trainer_find_data(p, text);
    if (i < 0) {
        char names[512] = "";
        size_t used = 0;
        for (int k = 0; k < p->n_data && used < sizeof names; k++) {
            int w = snprintf(names + used, sizeof names - used, "%s%s", k ? ", " : "",
                             p->data[k].name ? p->data[k].name : "?");
            used += w > 0 ? (size_t)w : 0;
        }
        nnlrt_error(NULL, 0, 0, "--data %s=%s: the trainer reads no data set '%s' (it reads "
                    "%s)", text, files, text, names);
        return false;
    }
    const NnlrtDataSpec *s = &p->data[i];
    if (s->kind == NNLRT_DATA_SPLIT) {
        const char *parent = s->parent >= 0 && s->parent < p->n_data && p->data[s->parent].name
                                 ? p->data[s->parent].name : "?";
        nnlrt_error(NULL, 0, 0, "--data %s=%s: '%s' is a part of a split of '%s': give the "
                    "file(s) of '%s'", text, files, text, parent, parent);
        return false;
    }
    char *comma = strchr(files, ',');
    static const char *const takes[] = {
#define TRAINER_DATA_FILES(id, name, files, load, load_shape) files,
        NNLRT_DATA_KINDS(TRAINER_DATA_FILES)
#undef TRAINER_DATA_FILES
    };
    bool pair = s->path2 != NULL;
    if (pair != (comma != NULL) || (comma && (comma == files || !comma[1]))) {
        nnlrt_error(NULL, 0, 0, "--data %s=%s: '%s' is read from %s", text, files, text,
                    takes[s->kind]);
        return false;
    }
    if (comma)
        *comma = 0;
    d->files[2 * i] = files;
    d->files[2 * i + 1] = comma ? comma + 1 : NULL;
    return true;
}

/* ---- the run ---- */

static const char *trainer_basename(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path && *path ? path : "trainer";
}

/* The options' texts are copied: --set and --data cut them up in place. */
static char **trainer_copy_args(int argc, char **argv)
{
    char **copy = nnlrt_alloc(nnlrt_array_bytes((size_t)argc + 1, sizeof(char *)));
    for (int i = 0; i < argc; i++)
        copy[i] = nnlrt_strdup(argv[i]);
    copy[argc] = NULL;
    return copy;
}

static void trainer_free_args(int argc, char **copy)
{
    for (int i = 0; i < argc; i++)
        nnlrt_free(copy[i]);
    nnlrt_free(copy);
}

/* --data, then --set, then --log (which wins over --set log=, as in nnlc run). */
static int trainer_configure(TrainerArgs *a, NnlrtData *d)
{
    for (int i = 0; i < a->n_data; i++)
        if (!trainer_data(a->p, d, (char *)a->data[i]))
            return NNLRT_EUSER;
    for (int i = 0; i < a->n_sets; i++)
        if (!trainer_set(a, (char *)a->sets[i])) {
            if (i < a->recorded_sets)
                fprintf(stderr, "%s: note: that --set is recorded in %s: the run that wrote it "
                        "was given it\n", nnlrt_program_name(), a->cfg.resume_path);
            return NNLRT_EUSER;
        }
    if (a->log)
        a->cfg.log_path = a->log;
    return NNLRT_OK;
}

static int trainer_run(TrainerArgs *a, NnlrtData *d)
{
    const NnlrtProgram *p = a->p;
    const char *missing = p->missing_cpu_feature ? p->missing_cpu_feature() : NULL;
    if (missing) {
        nnlrt_error(NULL, 0, 0, "this trainer was compiled for %s, and this CPU lacks %s: "
                    "build it again with 'nnlc build --cpu=native' on this machine", p->cpu,
                    missing);
        return NNLRT_EUSER;
    }
    NnlrtDataset *train, *val;
    if (!nnlrt_data_prepare(d, p->train_data, p->val_data, &train, &val))
        return NNLRT_EUSER;
    if (!a->cfg.quiet && printf("%s: %s: %lld parameters; training on %lld samples\n",
                                nnlrt_program_name(), p->model_name,
                                (long long)trainer_param_count(&p->model),
                                (long long)train->n) < 0)
        return NNLRT_EIO;
    return nnlrt_train(&p->model, &a->cfg, train, val);
}

/* The words of checkpoint record t a trainer goes on with, into kept: --set, --data, --log
 * and --save-params; nnlc's --train and --float64 say what its model is, and the checkpoint
 * is checked against this one's. False after reporting. */
static bool trainer_recorded_words(const char *ckpt, const NnlrtCheckpointTensors *t,
                                   const char **kept, int *n)
{
    *n = 0;
    for (int i = 0; i < t->n_options;) {
        const char *w = t->options[i];
        bool known = false, model = strcmp(w, "--train") == 0 || strcmp(w, "--float64") == 0;
        for (int k = 0; k < TRAINER_N_RECORDED; k++)
            known = known || strcmp(trainer_recorded[k].name, w) == 0;
        int width = strcmp(w, "--float64") == 0 ? 1 : 2;
        if ((!known && !model) || i + width > t->n_options) {
            nnlrt_error(ckpt, 0, 0, "corrupt: its record of the run's options holds '%s'%s, "
                        "which this trainer does not know", w,
                        known || model ? " without its value" : "");
            return false;
        }
        for (int k = 0; k < width && known; k++)
            kept[(*n)++] = t->options[i + k];
        i += width;
    }
    return true;
}

/* With --resume CKPT: the options recorded in CKPT, then the command line's (which win),
 * parsed again into *a, with copies cut up by --set and --data in *args. What the run
 * records, into a->cfg.options. t keeps the recorded words (free them after the run). */
static int trainer_use_recorded(TrainerArgs *a, int argc, char **argv, char ***args,
                                int *n_args, NnlrtCheckpointTensors *t)
{
    const char *ckpt = a->cfg.resume_path;
    int n_old = 0;
    if (ckpt) {
        int rc = nnlrt_checkpoint_read_options(ckpt, t);
        if (rc != NNLRT_OK)
            return rc;
        const char **given = nnlrt_alloc(sizeof *given * ((size_t)t->n_options + (size_t)argc + 1));
        if (!trainer_recorded_words(ckpt, t, given + 1, &n_old)) {
            nnlrt_free(given);
            return NNLRT_EUSER;
        }
        if (n_old > 0) {
            given[0] = argv[0];
            memcpy(given + 1 + n_old, argv + 1, sizeof *given * (size_t)(argc - 1));
            trainer_free_args(*n_args, *args);
            *n_args = n_old + argc;
            *args = trainer_copy_args(*n_args, (char **)given);
            TrainerArgs b = {.p = a->p, .cfg = a->cfg};
            b.cfg.quiet = b.cfg.verbose = b.cfg.fresh = false;
            b.cfg.init_path = b.cfg.dump_path = b.cfg.resume_path = NULL;
            *a = b;
            rc = trainer_parse(a, *n_args, *args, (char **)given);
            for (int i = 1; i <= n_old; i++)
                a->recorded_sets += strcmp(given[i], "--set") == 0;
            if (rc == NNLRT_OK && !a->cfg.quiet) /* ckpt pointed into the old copies */
                nnlrt_options_report(stdout, nnlrt_program_name(), a->cfg.resume_path,
                                     trainer_recorded,
                                     TRAINER_N_RECORDED, a->words, n_old, a->n_words);
        }
        nnlrt_free(given); /* a points into argv, t and the copies, not into given */
        if (rc != NNLRT_OK)
            return rc;
    }
    const char **record = nnlrt_alloc(sizeof *record * ((size_t)a->n_words + 1));
    a->cfg.n_options = nnlrt_options_dedupe(trainer_recorded, TRAINER_N_RECORDED, a->words,
                                            a->n_words, record);
    a->cfg.options = record;
    return NNLRT_OK;
}

int nnlrt_trainer_main(const NnlrtProgram *p, int argc, char **argv)
{
    nnlrt_set_program_name(trainer_basename(argc > 0 ? argv[0] : NULL));
    nnlrt_threads_check();
    char **args = trainer_copy_args(argc, argv);
    TrainerArgs a;
    memset(&a, 0, sizeof a);
    a.p = p;
    a.cfg = p->config;
    a.cfg.init_path = a.cfg.dump_path = a.cfg.resume_path = NULL;
    static char hint[4096]; /* how to resume, shown when a run is stopped */
    char word[4000];
    snprintf(hint, sizeof hint, "%s --resume",
             nnlrt_shell_word(argc > 0 ? argv[0] : "trainer", word, sizeof word));
    a.cfg.resume_hint = hint;
    a.cfg.quiet = a.cfg.verbose = false;
    a.cfg.out = stdout;
    NnlrtData d;
    nnlrt_data_init(&d, p->data, p->n_data);
    d.hint = "; give its place with --data NAME=FILE";
    int rc = trainer_parse(&a, argc, args, argv), n_args = argc;
    NnlrtCheckpointTensors recorded = {0};
    if (rc == NNLRT_OK && a.help)
        trainer_help(p, &d);
    else if (rc == NNLRT_OK && a.version)
        trainer_version(p);
    else if (rc == NNLRT_OK && (rc = trainer_use_recorded(&a, argc, argv, &args, &n_args,
                                                           &recorded)) == NNLRT_OK)
        rc = trainer_configure(&a, &d);
    if (rc == NNLRT_OK && !a.help && !a.version)
        rc = trainer_run(&a, &d);
    if (rc == NNLRT_OK && fflush(stdout) != 0) {
        nnlrt_error(NULL, 0, 0, "cannot write the output: %s", strerror(errno));
        rc = NNLRT_EIO;
    }
    nnlrt_data_free(&d);
    trainer_free_args(n_args, args);
    nnlrt_free((void *)a.cfg.options);
    nnlrt_checkpoint_tensors_free(&recorded);
    return rc;
}
