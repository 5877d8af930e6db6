/* test_runtime.c — unit tests of libnnlrt: CSV loading and its messages, split,
 * standardize, the rng, the training driver and the gradient check.
 *
 *   test_runtime GROUP DATA_DIR      GROUP: a name in the table at the end
 *
 * The files it writes go to the temporary directory of tests/check.h, removed at the end.
 * Error messages are captured (tests/check.h) and compared whole. The model trained here is
 * tests/toy_model.h's, written by hand in C, standing in for a compiled one.
 */
#include "check.h"

#include <math.h>
#include <stdint.h>

#include "nnlrt.h"
#include "toy_model.h"

static const char *data_dir;

/* ---- helpers ---- */

/* The inputs and targets of a float32 data set (CSV, or made here). */
static float *fx(const NnlrtDataset *ds)
{
    return ds->x;
}

static float *fy(const NnlrtDataset *ds)
{
    return ds->y;
}

static const char *data_path(const char *name)
{
    static char buf[4][1024];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", data_dir, name);
    return p;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; p && *p; p++)
        n += *p == '\n';
    return n;
}

/* Line `k` (0-based) of text, copied into buf. */
static const char *nth_line(const char *text, int k, char *buf, size_t size)
{
    for (; k > 0 && text; k--) {
        text = strchr(text, '\n');
        text = text ? text + 1 : NULL;
    }
    if (!text)
        return "";
    size_t n = strcspn(text, "\n");
    n = n < size - 1 ? n : size - 1;
    memcpy(buf, text, n);
    buf[n] = 0;
    return buf;
}

/* ---- csv ---- */

static NnlrtCsvOptions csv_opts(const char *name, bool header)
{
    return (NnlrtCsvOptions){.path = data_path(name), .target_index = -1, .header = header};
}

/* Loads a file that must load; false (after reporting) when it does not. */
static bool load(const NnlrtCsvOptions *o, NnlrtDataset *ds)
{
    check_clear();
    bool ok = nnlrt_csv_load(o, ds);
    EXPECT(ok, "%s: %s", o->path, check_message);
    return ok;
}

static void test_csv_basic(void)
{
    NnlrtCsvOptions o = csv_opts("basic.csv", true);
    NnlrtDataset ds;
    if (!load(&o, &ds))
        return;
    EXPECT(ds.n == 3 && ds.x_size == 2 && ds.y_size == 1, "n %lld x %lld", (long long)ds.n,
           (long long)ds.x_size);
    float x[] = {1, 2, 4.5f, -0.5f, 7, 8}, y[] = {3, 6, 9};
    EXPECT(memcmp(ds.x, x, sizeof x) == 0, "x values");
    EXPECT(memcmp(ds.y, y, sizeof y) == 0, "y values");
    EXPECT(ds.rows[0] == 2 && ds.rows[2] == 4, "rows %lld %lld", (long long)ds.rows[0],
           (long long)ds.rows[2]);
    EXPECT(strcmp(ds.source, o.path) == 0, "source %s", ds.source);
    nnlrt_dataset_free(&ds);

    /* target by name, features by name in a chosen order */
    const char *names[] = {"c", "a"};
    o.target = "b";
    o.feature_names = names;
    o.n_features = 2;
    if (!load(&o, &ds))
        return;
    float x2[] = {3, 1, 6, 4.5f, 9, 7}, y2[] = {2, -0.5f, 8};
    EXPECT(ds.x_size == 2 && memcmp(ds.x, x2, sizeof x2) == 0, "x by name");
    EXPECT(memcmp(ds.y, y2, sizeof y2) == 0, "y by name");
    nnlrt_dataset_free(&ds);

    /* by index */
    const long feats[] = {2};
    o = csv_opts("basic.csv", true);
    o.target_index = 0;
    o.features = feats;
    o.n_features = 1;
    if (!load(&o, &ds))
        return;
    EXPECT(ds.x_size == 1 && fx(&ds)[1] == 6 && fy(&ds)[1] == 4.5f, "by index values");
    nnlrt_dataset_free(&ds);
}

static void test_csv_formats(void)
{
    NnlrtCsvOptions o = csv_opts("quoted.csv", true);
    o.target = "sec\"ond";
    NnlrtDataset ds;
    if (!load(&o, &ds))
        return;
    EXPECT(ds.n == 2 && fx(&ds)[0] == 1.5f && fx(&ds)[1] == 3 && fy(&ds)[0] == 2 &&
               fx(&ds)[2] == 4 && fx(&ds)[3] == 6 && fy(&ds)[1] == 5,
           "quoted values");
    EXPECT(ds.rows[1] == 3, "quoted rows");
    nnlrt_dataset_free(&ds);

    o = csv_opts("semicolon.csv", false);
    o.delimiter = ';';
    o.target_index = 0;
    if (!load(&o, &ds))
        return;
    EXPECT(ds.n == 3 && fy(&ds)[2] == 30 && fx(&ds)[4] == 5 && fx(&ds)[5] == 6,
           "semicolon values");
    nnlrt_dataset_free(&ds);

    o = csv_opts("tabs.tsv", false);
    o.delimiter = '\t';
    if (!load(&o, &ds))
        return;
    EXPECT(ds.n == 2 && fx(&ds)[1] == 2 && fx(&ds)[2] == 4 && fy(&ds)[1] == 6, "tab values");
    nnlrt_dataset_free(&ds);
}

typedef struct {
    const char *file;
    bool header;
    const char *target;
    long target_index;
    const char *expect; /* the message after "DATA_DIR/file" */
} CsvErrorCase;

static const CsvErrorCase csv_errors[] = {
    {"empty.csv", false, NULL, -1, ":1:1: error: the file is empty: expected rows of numbers"},
    {"blank_only.csv", false, NULL, -1,
     ":1:1: error: the file is empty: expected rows of numbers"},
    {"header_only.csv", true, NULL, -1,
     ":1:1: error: the file has a header row and no data rows after it"},
    {"too_many.csv", true, NULL, -1,
     ":3:7: error: row has 5 fields, expected 3 (as in the header at line 1)"},
    {"too_few.csv", false, NULL, -1,
     ":2:4: error: row has 2 fields, expected 3 (as in the first row at line 1)"},
    {"utf8_width.csv", true, NULL, -1,
     ":2:9: error: row has 4 fields, expected 3 (as in the header at line 1)"},
    {"not_number.csv", true, NULL, -1, ":3:4: error: cannot read 'abc' as a number"},
    {"nan.csv", false, NULL, -1, ":1:3: error: value 'nan' is not a finite number"},
    {"inf.csv", false, NULL, -1, ":2:1: error: value '-inf' is not a finite number"},
    {"overflow.csv", false, NULL, -1, ":1:3: error: value '1e999' is not a finite number"},
    {"float_overflow.csv", false, NULL, -1,
     ":2:3: error: value '1e39' is not a finite number (too large for float32)"},
    {"empty_field.csv", false, NULL, -1, ":2:3: error: empty field where a number is expected"},
    {"blank_middle.csv", false, NULL, -1,
     ":2:1: error: blank line (blank lines are allowed only at the end of the file)"},
    {"unclosed.csv", false, NULL, -1, ":2:3: error: the quoted field is not closed on this line"},
    {"after_quote.csv", false, NULL, -1,
     ":1:6: error: unexpected 'x' after the closing quote of a field"},
    {"nul.csv", false, NULL, -1, ":2:3: error: NUL byte in the line (not a text file?)"},
    {"one_column.csv", false, NULL, -1,
     ":1:1: error: the file has one column, the target, and no feature columns"},
    {"basic.csv", true, "z", -1, ":1:1: error: no column named 'z' (the columns are a, b, c)"},
    {"basic.csv", true, NULL, 3,
     ":1:1: error: target column 3 is out of range: the file has 3 columns (0 to 2)"},
    {"basic.csv", false, NULL, -2,
     ":1:1: error: target column -2 is out of range: the file has 3 columns (0 to 2)"},
    {"basic.csv", false, "c", -1,
     ": error: column 'c' is chosen by name, but the file is read without a header row"},
    {"missing.csv", false, NULL, -1, ": error: cannot open the file: No such file or directory"},
    {".", false, NULL, -1, ": error: cannot read the file: Is a directory"},
};

static void test_csv_errors(void)
{
    for (size_t i = 0; i < sizeof csv_errors / sizeof csv_errors[0]; i++) {
        const CsvErrorCase *e = &csv_errors[i];
        NnlrtCsvOptions o = csv_opts(e->file, e->header);
        o.target = e->target;
        o.target_index = e->target_index;
        NnlrtDataset ds;
        check_clear();
        EXPECT(!nnlrt_csv_load(&o, &ds), "%s should fail", e->file);
        EXPECT(ds.x == NULL && ds.n == 0, "%s: dataset left allocated", e->file);
        EXPECT_ONE_MESSAGE(o.path, e->expect);
    }
}

/* Feature lists that cannot be satisfied. */
static void test_csv_feature_errors(void)
{
    static const long bad_index[] = {0, 7}, target_too[] = {0, 2}, twice[] = {1, 1};
    static const char *const bad_name[] = {"a", "q"};
    struct {
        const long *idx;
        const char *const *names;
        const char *expect;
    } cases[] = {
        {bad_index, NULL,
         ":1:1: error: feature column 7 is out of range: the file has 3 columns (0 to 2)"},
        {target_too, NULL, ":1:1: error: column 2 ('c') is both the target and a feature"},
        {twice, NULL, ":1:1: error: column 1 ('b') is listed twice as a feature"},
        {NULL, bad_name, ":1:1: error: no column named 'q' (the columns are a, b, c)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        NnlrtCsvOptions o = csv_opts("basic.csv", true);
        o.features = cases[i].idx;
        o.feature_names = cases[i].names;
        o.n_features = 2;
        NnlrtDataset ds;
        check_clear();
        EXPECT(!nnlrt_csv_load(&o, &ds), "feature case %zu should fail", i);
        EXPECT_ONE_MESSAGE(o.path, cases[i].expect);
    }
}

static void test_csv(void)
{
    test_csv_basic();
    test_csv_formats();
    test_csv_errors();
    test_csv_feature_errors();
}

/* ---- rng ---- */

static void test_rng(void)
{
    NnlrtRng a, b;
    nnlrt_rng_seed(&a, 0);
    /* xoshiro256** seeded through splitmix64, computed independently (Python) */
    EXPECT(nnlrt_rng_next(&a) == 0x99ec5f36cb75f2b4u, "seed 0, first value");
    EXPECT(nnlrt_rng_next(&a) == 0xbf6e1f784956452au, "seed 0, second value");
    nnlrt_rng_seed(&a, 42);
    EXPECT(nnlrt_rng_next(&a) == 0x15780b2e0c2ec716u, "seed 42, first value");
    nnlrt_rng_seed(&a, 42);
    EXPECT(nnlrt_rand_uniform(&a) == 0.08386297105988216, "seed 42, first uniform");

    nnlrt_rng_seed(&a, 7);
    nnlrt_rng_seed(&b, 7);
    bool same = true;
    for (int i = 0; i < 1000; i++)
        same = same && nnlrt_rand_normal(&a) == nnlrt_rand_normal(&b) &&
               nnlrt_rand_below(&a, 10) == nnlrt_rand_below(&b, 10);
    EXPECT(same, "same seed, same sequence");

    enum { N = 200000 };
    double sum = 0, sq = 0, lo = 1, hi = 0;
    int64_t counts[3] = {0};
    for (int i = 0; i < N; i++) {
        double u = nnlrt_rand_uniform(&a), z = nnlrt_rand_normal(&a);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        sum += z;
        sq += z * z;
        uint64_t r = nnlrt_rand_below(&a, 3);
        EXPECT(r < 3, "rand_below(3) gave %llu", (unsigned long long)r);
        counts[r < 3 ? r : 0]++;
    }
    EXPECT(lo >= 0 && hi < 1, "uniform in [0, 1): %g %g", lo, hi);
    EXPECT(fabs(sum / N) < 0.01 && fabs(sq / N - 1) < 0.02, "normal mean %g var %g", sum / N,
           sq / N);
    for (int k = 0; k < 3; k++)
        EXPECT(fabs((double)counts[k] / N - 1.0 / 3) < 0.01, "rand_below(3) frequency %d", k);
    EXPECT(nnlrt_rand_below(&a, 1) == 0, "rand_below(1)");
}

/* ---- split and standardize ---- */

static void make_dataset(NnlrtDataset *ds, int64_t n)
{
    memset(ds, 0, sizeof *ds);
    ds->name = nnlrt_strdup("d");
    ds->source = nnlrt_strdup("d.csv");
    ds->n = n;
    ds->x_size = 2;
    ds->y_size = 1;
    ds->x_type = ds->y_type = NNLRT_F32;
    ds->x_scale = 1;
    ds->x = nnlrt_alloc((size_t)n * 2 * sizeof(float));
    ds->y = nnlrt_alloc((size_t)n * sizeof(float));
    ds->rows = nnlrt_alloc((size_t)n * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
        fx(ds)[2 * i] = (float)i;
        fx(ds)[2 * i + 1] = 5;
        fy(ds)[i] = (float)(100 + i);
        ds->rows[i] = i + 2;
    }
}

/* a and b hold every sample of src exactly once, each intact. */
static void expect_partition(const NnlrtDataset *src, const NnlrtDataset *a,
                             const NnlrtDataset *b)
{
    int seen[64] = {0};
    const NnlrtDataset *parts[] = {a, b};
    for (int p = 0; p < 2; p++) {
        for (int64_t i = 0; i < parts[p]->n; i++) {
            int64_t k = (int64_t)fx(parts[p])[2 * i];
            EXPECT(k >= 0 && k < src->n && k < 64, "sample %lld", (long long)k);
            if (k < 0 || k >= 64)
                continue;
            seen[k]++;
            EXPECT(fy(parts[p])[i] == 100 + k && parts[p]->rows[i] == k + 2,
                   "sample %lld kept with its target and row", (long long)k);
        }
    }
    for (int64_t k = 0; k < src->n; k++)
        EXPECT(seen[k] == 1, "sample %lld seen %d times", (long long)k, seen[k]);
}

static void test_split(void)
{
    NnlrtDataset src, a, b, a2, b2;
    make_dataset(&src, 10);
    nnlrt_split(&src, 0.8, 1, &a, &b);
    EXPECT(a.n == 8 && b.n == 2, "0.8 of 10: %lld + %lld", (long long)a.n, (long long)b.n);
    expect_partition(&src, &a, &b);
    EXPECT(strcmp(a.name, "d") == 0 && strcmp(b.source, "d.csv") == 0, "name and source kept");
    nnlrt_split(&src, 0.8, 1, &a2, &b2);
    EXPECT(memcmp(a.x, a2.x, 8 * 2 * sizeof(float)) == 0, "same seed, same split");
    nnlrt_dataset_free(&a2);
    nnlrt_dataset_free(&b2);
    nnlrt_split(&src, 0.8, 2, &a2, &b2);
    EXPECT(memcmp(a.x, a2.x, 8 * 2 * sizeof(float)) != 0, "another seed, another split");
    bool moved = false;
    for (int i = 0; i < 8; i++)
        moved = moved || fx(&a)[2 * i] != (float)i;
    EXPECT(moved, "the split shuffles");
    nnlrt_dataset_free(&a);
    nnlrt_dataset_free(&b);
    nnlrt_dataset_free(&a2);
    nnlrt_dataset_free(&b2);

    nnlrt_split(&src, 0.25, 3, &a, &b);
    EXPECT(a.n == 3 && b.n == 7, "round(2.5) = 3: %lld", (long long)a.n);
    nnlrt_dataset_free(&a);
    nnlrt_dataset_free(&b);
    nnlrt_split(&src, 1.0, 3, &a, &b);
    EXPECT(a.n == 10 && b.n == 0, "all in a");
    expect_partition(&src, &a, &b);
    nnlrt_dataset_free(&a);
    nnlrt_dataset_free(&b);
    nnlrt_dataset_free(&src);
}

static void test_standardize(void)
{
    NnlrtDataset ds, other;
    make_dataset(&ds, 4);   /* column 0: 0 1 2 3, column 1: 5 5 5 5 */
    make_dataset(&other, 2);
    nnlrt_standardize(&other, &ds);
    nnlrt_standardize(&ds, &ds);
    double sd = sqrt(1.25); /* population deviation of 0 1 2 3 */
    for (int i = 0; i < 4; i++) {
        EXPECT(fabs(fx(&ds)[2 * i] - (i - 1.5) / sd) < 1e-6, "column 0, row %d: %g", i,
               fx(&ds)[2 * i]);
        EXPECT(fx(&ds)[2 * i + 1] == 0, "constant column is only centred: %g",
               fx(&ds)[2 * i + 1]);
    }
    EXPECT(fabs(fx(&other)[2] - (1 - 1.5) / sd) < 1e-6, "other with ref's statistics: %g",
           fx(&other)[2]);
    EXPECT(fy(&ds)[0] == 100, "targets unchanged");
    nnlrt_dataset_free(&ds);
    nnlrt_dataset_free(&other);
}

/* ---- the model: tests/toy_model.h with two inputs and one output ---- */

static NnlrtModel tm_model(int elem_size)
{
    return toy_model(elem_size, 2, 1);
}

/* ---- training ---- */

static NnlrtDataset train_set, val_set;

static bool load_linear(void)
{
    NnlrtCsvOptions o = csv_opts("linear.csv", true);
    o.target = "y";
    if (!load(&o, &train_set))
        return false;
    o.path = data_path("linear_val.csv");
    if (load(&o, &val_set))
        return true;
    nnlrt_dataset_free(&train_set);
    return false;
}

static NnlrtTrainConfig quiet_config(int64_t epochs)
{
    return (NnlrtTrainConfig){.epochs = epochs, .batch = 8, .seed = 1, .shuffle = true,
                              .quiet = true};
}

/* The three parameters of a dump: lin.W's two values, then lin.b's. */
static bool read_dump(const char *path, double p[3])
{
    char *text = check_read_file(path, NULL);
    bool ok = text && sscanf(text, "lin.W,%lf,%lf\nlin.b,%lf\n", &p[0], &p[1], &p[2]) == 3;
    free(text);
    return ok;
}

static void test_train_converges(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = quiet_config(60);
    cfg.log_path = check_tmp_path("converge.log");
    cfg.dump_path = check_tmp_path("converge.params");
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, &val_set) == 0, "train: %s", check_message);
    double p[3] = {0};
    EXPECT(read_dump(cfg.dump_path, p), "dump readable");
    EXPECT(fabs(p[0] - 2) < 1e-3 && fabs(p[1] + 3) < 1e-3 && fabs(p[2] - 0.5) < 1e-3,
           "converged to %g %g %g", p[0], p[1], p[2]);
    EXPECT(!toy.misaligned, "buffers 64-byte aligned");
    EXPECT(!toy.bad_order && toy.last_step == 60 * 8 && toy.last_epoch == 59,
           "step %lld epoch %lld", (long long)toy.last_step, (long long)toy.last_epoch);

    char *log = check_read_file(cfg.log_path, NULL);
    char line[256];
    EXPECT(log && strcmp(nth_line(log, 0, line, sizeof line),
                         "epoch,step,loss,mae,val_loss,val_mae") == 0,
           "log header '%s'", line);
    EXPECT(count_lines(log) == 61, "one row per epoch: %d lines", count_lines(log));
    EXPECT(strncmp(nth_line(log, 1, line, sizeof line), "1,8,", 4) == 0, "first row '%s'",
           line);
    double loss = 1, mae = 1, val_loss = 1, val_mae = 1;
    long long e, s;
    int got = sscanf(nth_line(log, 60, line, sizeof line), "%lld,%lld,%lf,%lf,%lf,%lf", &e, &s,
                     &loss, &mae, &val_loss, &val_mae);
    EXPECT(got == 6 && e == 60 && s == 480, "last row '%s'", line);
    EXPECT(loss < 1e-6 && mae < 1e-3 && val_loss < 1e-6 && val_mae < 1e-3, "last row '%s'",
           line);
    free(log);
}

static void test_train_reproducible(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = quiet_config(5);
    cfg.log_path = check_tmp_path("run1.log");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, &val_set) == 0, "run 1: %s", check_message);
    m = tm_model(4);
    cfg.log_path = check_tmp_path("run2.log");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, &val_set) == 0, "run 2: %s", check_message);
    EXPECT(check_same_file(check_tmp_path("run1.log"), check_tmp_path("run2.log")),
           "same seed, same log");
    m = tm_model(4);
    cfg.seed = 2;
    cfg.log_path = check_tmp_path("run3.log");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, &val_set) == 0, "run 3: %s", check_message);
    EXPECT(!check_same_file(check_tmp_path("run1.log"), check_tmp_path("run3.log")),
           "another seed, another log");
}

/* Column 2 (the loss) of row k of a log. */
static double log_loss(const char *log, int k)
{
    char line[256];
    const char *s = strchr(strchr(nth_line(log, k, line, sizeof line), ',') + 1, ',') + 1;
    return strtod(s, NULL);
}

static void test_train_step_log(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = quiet_config(2);
    cfg.log_every = 1;
    cfg.log_path = check_tmp_path("steps.log");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, &val_set) == 0, "train: %s", check_message);
    char *log = check_read_file(cfg.log_path, NULL), line[256];
    EXPECT(count_lines(log) == 17, "16 steps: %d lines", count_lines(log));
    EXPECT(strncmp(nth_line(log, 1, line, sizeof line), "1,1,", 4) == 0, "row 1 '%s'", line);
    nth_line(log, 16, line, sizeof line);
    size_t n = strlen(line);
    EXPECT(strncmp(line, "2,16,", 5) == 0 && n > 3 && strcmp(line + n - 3, ",,,") == 0,
           "row 16 '%s': metric and validation fields empty", line);

    m = tm_model(4);
    cfg.log_every = 3;
    cfg.log_path = check_tmp_path("steps3.log");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, &val_set) == 0, "train: %s", check_message);
    char *log3 = check_read_file(cfg.log_path, NULL);
    EXPECT(count_lines(log3) == 6, "every 3 of 16 steps: %d lines", count_lines(log3));
    EXPECT(strncmp(nth_line(log3, 5, line, sizeof line), "2,15,", 5) == 0, "row 5 '%s'", line);
    double mean = (log_loss(log, 1) + log_loss(log, 2) + log_loss(log, 3)) / 3;
    EXPECT(fabs(log_loss(log3, 1) - mean) < 1e-7 * mean, "mean of 3 steps: %.9g vs %.9g",
           log_loss(log3, 1), mean);
    free(log);
    free(log3);
}

static void test_train_progress(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = quiet_config(10);
    cfg.quiet = false;
    cfg.batch = 0;
    cfg.out = tmpfile();
    EXPECT(cfg.out != NULL, "tmpfile");
    if (!cfg.out)
        return;
    EXPECT(nnlrt_train(&m, &cfg, &train_set, &val_set) == 0, "train: %s", check_message);
    EXPECT(toy.last_step == 10, "full batch: one step per epoch, %lld", (long long)toy.last_step);
    char text[4096] = {0}, line[256];
    rewind(cfg.out);
    size_t n = fread(text, 1, sizeof text - 1, cfg.out);
    text[n] = 0;
    fclose(cfg.out);
    EXPECT(count_lines(text) == 10, "10 epoch lines:\n%s", text);
    nth_line(text, 2, line, sizeof line);
    EXPECT(strncmp(line, "epoch  3/10  loss ", 18) == 0 && strstr(line, "  mae ") &&
               strstr(line, "  val_loss ") && strstr(line, "  val_mae ") && strstr(line, " s)"),
           "progress line '%s'", line);
}

static void test_train_diverges(void)
{
    NnlrtModel m = tm_model(4);
    toy.nan_at = 11;
    NnlrtTrainConfig cfg = quiet_config(5);
    cfg.log_path = check_tmp_path("diverged.log");
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 3, "exit code 3");
    const char *want = "nnlc: error: training diverged: the loss is nan at epoch 2, step 11 "
                       "(last finite loss ";
    EXPECT(strncmp(check_message, want, strlen(want)) == 0, "message '%s'", check_message);
    EXPECT(toy.last_step == 10, "no update after the NaN: %lld", (long long)toy.last_step);
    char *log = check_read_file(cfg.log_path, NULL);
    EXPECT(log && strcmp(log, "epoch,step,loss,mae\n") != 0 && count_lines(log) == 2,
           "the log keeps the finished epoch:\n%s", log ? log : "(none)");
    free(log);

    m = tm_model(4);
    toy.lr = 50; /* far past stability: the loss overflows to inf */
    check_clear();
    cfg = quiet_config(100);
    cfg.log_path = NULL;
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 3, "large lr diverges");
    EXPECT(strstr(check_message, "training diverged: the loss is "), "message '%s'", check_message);
}

static void test_train_params_files(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = quiet_config(3);
    cfg.dump_path = check_tmp_path("dump1.params");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "train: %s", check_message);
    cfg.epochs = 0;
    cfg.init_path = cfg.dump_path;
    cfg.dump_path = check_tmp_path("dump2.params");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "reload: %s", check_message);
    EXPECT(check_same_file(check_tmp_path("dump1.params"), check_tmp_path("dump2.params")),
           "float round trip");

    m = tm_model(8);
    cfg.epochs = 3;
    cfg.init_path = NULL;
    cfg.dump_path = check_tmp_path("dump3.params");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "train f64: %s", check_message);
    cfg.epochs = 0;
    cfg.init_path = cfg.dump_path;
    cfg.dump_path = check_tmp_path("dump4.params");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "reload f64: %s", check_message);
    EXPECT(check_same_file(check_tmp_path("dump3.params"), check_tmp_path("dump4.params")),
           "double round trip");

    /* starting from the exact solution, the loss stays at (almost) zero */
    m = tm_model(4);
    cfg = quiet_config(1);
    cfg.init_path = data_path("init_good.csv");
    cfg.log_path = check_tmp_path("from_init.log");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "init_good: %s", check_message);
    char *log = check_read_file(cfg.log_path, NULL);
    EXPECT(log && log_loss(log, 1) < 1e-10, "loss from the exact parameters: %g",
           log ? log_loss(log, 1) : -1);
    free(log);
}

static void test_train_init_errors(void)
{
    struct {
        const char *file;
        int rc;
        const char *expect;
    } cases[] = {
        {"init_unknown.csv", 1,
         ":2:1: error: no parameter tensor named 'lin.c' (the model has lin.W, lin.b)"},
        {"init_count.csv", 1, ":1:12: error: tensor 'lin.W' has 3 values here, expected 2"},
        {"init_few.csv", 1, ":1:8: error: tensor 'lin.W' has 1 values here, expected 2"},
        {"init_twice.csv", 1, ":3:1: error: tensor 'lin.W' is given twice (first at line 1)"},
        {"init_missing.csv", 1,
         ": error: no values for tensor 'lin.b' (every tensor of the model must be given)"},
        {"init_nan.csv", 1, ":1:9: error: cannot read 'x' as a number"},
        {"no_such_file.csv", 2, ": error: cannot open the file: No such file or directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        NnlrtModel m = tm_model(4);
        NnlrtTrainConfig cfg = quiet_config(1);
        cfg.init_path = data_path(cases[i].file);
        check_clear();
        int rc = nnlrt_train(&m, &cfg, &train_set, NULL);
        EXPECT(rc == cases[i].rc, "%s: exit code %d", cases[i].file, rc);
        EXPECT_ONE_MESSAGE(cfg.init_path, cases[i].expect);
    }
}

static void test_train_io_errors(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = quiet_config(1);
    cfg.log_path = check_tmp_path("no/such/dir/train.log");
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 2, "log in a missing directory");
    EXPECT_ONE_MESSAGE(cfg.log_path,
                   ": error: cannot open the log for writing: No such file or directory");

    FILE *full = fopen("/dev/full", "w");
    if (!full)
        return; /* not on Linux: nothing to test with */
    fclose(full);
    cfg.log_path = "/dev/full";
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 2, "log on a full device");
    EXPECT_ONE_MESSAGE("/dev/full", ": error: cannot write the log: No space left on device");
    cfg.log_path = NULL;
    cfg.dump_path = "/dev/full";
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 2, "dump on a full device");
    EXPECT_ONE_MESSAGE("/dev/full", ": error: cannot write the file: No space left on device");
}

static void test_train_labels(void)
{
    NnlrtModel m = tm_model(4);
    m.target_kind = NNLRT_TARGET_CLASS;
    m.n_classes = 2;
    NnlrtCsvOptions o = csv_opts("labels.csv", true);
    const char *bad[][2] = {
        {"bad_label.csv", ":3: error: label 5 is not a class of the model (0 to 1)"},
        {"half_label.csv", ":2: error: label 0.5 is not a class of the model (0 to 1)"},
    };
    NnlrtDataset ds;
    NnlrtTrainConfig cfg = quiet_config(1);
    if (load(&o, &ds)) {
        EXPECT(nnlrt_train(&m, &cfg, &ds, NULL) == 0, "good labels: %s", check_message);
        nnlrt_dataset_free(&ds);
    }
    for (int i = 0; i < 2; i++) {
        o = csv_opts(bad[i][0], true);
        if (!load(&o, &ds))
            continue;
        check_clear();
        EXPECT(nnlrt_train(&m, &cfg, &ds, NULL) == 1, "%s: exit code", bad[i][0]);
        EXPECT_ONE_MESSAGE(o.path, bad[i][1]);
        nnlrt_dataset_free(&ds);
    }
}

static void test_train(void)
{
    if (!load_linear())
        return;
    test_train_converges();
    test_train_reproducible();
    test_train_step_log();
    test_train_progress();
    test_train_diverges();
    test_train_params_files();
    test_train_init_errors();
    test_train_io_errors();
    test_train_labels();
    nnlrt_dataset_free(&train_set);
    nnlrt_dataset_free(&val_set);
}

/* ---- gradient check ---- */

static void test_gradcheck(void)
{
    if (!load_linear())
        return;
    NnlrtModel m = tm_model(8);
    FILE *out = tmpfile();
    EXPECT(out != NULL, "tmpfile");
    if (!out)
        return;
    EXPECT(nnlrt_gradcheck(&m, &train_set, 1, NNLRT_GRADCHECK_RTOL, out),
           "correct gradients pass");
    char text[1024] = {0}, line[256];
    rewind(out);
    text[fread(text, 1, sizeof text - 1, out)] = 0;
    double err = 1;
    EXPECT(sscanf(nth_line(text, 0, line, sizeof line), "lin.W %lf", &err) == 1 && err < 1e-6,
           "lin.W line '%s'", line);
    EXPECT(strncmp(nth_line(text, 1, line, sizeof line), "lin.b ", 6) == 0, "lin.b line");
    fclose(out);

    m = tm_model(8);
    toy.wrong_grad = true;
    out = tmpfile();
    EXPECT(out != NULL, "tmpfile");
    if (!out)
        return;
    check_clear();
    EXPECT(!nnlrt_gradcheck(&m, &train_set, 1, NNLRT_GRADCHECK_RTOL, out),
           "a wrong gradient fails");
    rewind(out);
    text[fread(text, 1, sizeof text - 1, out)] = 0;
    /* off by 10%: |a - n| / (atol / rtol + max(|a|, |n|)) a little below 0.1 / 1.1 */
    EXPECT(sscanf(nth_line(text, 1, line, sizeof line), "lin.b %lf", &err) == 1 &&
               err > 0.08 && err <= 0.1 / 1.1 + 1e-6,
           "lin.b off by 10%%: '%s'", line);
    EXPECT(strstr(check_message, "the gradient check failed: the worst element is lin.b[0]") !=
               NULL,
           "names the worst element: '%s'", check_message);
    fclose(out);

    m = tm_model(4);
    check_clear();
    EXPECT(!nnlrt_gradcheck(&m, &train_set, 1, NNLRT_GRADCHECK_RTOL, stdout),
           "float model refused");
    EXPECT(strcmp(check_message, "nnlc: error: the gradient check needs a float64 model "
                              "(elements of 4 bytes)") == 0,
           "message '%s'", check_message);
    nnlrt_dataset_free(&train_set);
    nnlrt_dataset_free(&val_set);
}

/* Pooling: the float kernels (2x2 windows: vectorized) against the double ones (scalar,
 * window by window), forward and backward, on data with ties, zeros (as after relu) and
 * NaNs, for sizes that leave columns to the scalar tail and odd sides. */
static void test_pool(void)
{
    static const int64_t sides[][2] = {{28, 28}, {10, 10}, {6, 14}, {9, 9}, {4, 18}, {2, 2}};
    NnlrtRng rng;
    nnlrt_rng_seed(&rng, 11);
    for (size_t s = 0; s < sizeof sides / sizeof *sides; s++) {
        int64_t H = sides[s][0], W = sides[s][1], planes = 3, OH = H / 2, OW = W / 2;
        int64_t n = planes * H * W, m = planes * OH * OW;
        float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)m);
        float *dy = malloc(sizeof(float) * (size_t)m), *dx = malloc(sizeof(float) * (size_t)n);
        double *xd = malloc(sizeof(double) * (size_t)n), *yd = malloc(sizeof(double) * (size_t)m);
        double *dyd = malloc(sizeof(double) * (size_t)m);
        double *dxd = malloc(sizeof(double) * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            double u = nnlrt_rand_uniform(&rng);
            /* a third zeros (ties), a few NaNs, the rest in a few levels (more ties) */
            xd[i] = u < 0.33 ? 0 : u < 0.35 ? NAN : floor(u * 8) - 3;
            x[i] = (float)xd[i];
        }
        for (int64_t i = 0; i < m; i++)
            dyd[i] = dy[i] = (float)(nnlrt_rand_uniform(&rng) - 0.5);
        nnlrt_maxpool_f32(x, y, planes, H, W, 2, 2);
        nnlrt_maxpool_f64(xd, yd, planes, H, W, 2, 2);
        nnlrt_maxpool_dx_f32(x, dy, dx, planes, H, W, 2, 2);
        nnlrt_maxpool_dx_f64(xd, dyd, dxd, planes, H, W, 2, 2);
        int bad = 0;
        for (int64_t i = 0; i < m; i++)
            bad += !((isnan(y[i]) && isnan(yd[i])) || (double)y[i] == yd[i]);
        for (int64_t i = 0; i < n; i++)
            bad += (double)dx[i] != dxd[i];
        EXPECT(bad == 0, "maxpool %lldx%lld: %d elements differ between float and double",
               (long long)H, (long long)W, bad);
        free(x), free(y), free(dy), free(dx), free(xd), free(yd), free(dyd), free(dxd);
    }
}

/* Convolutions: the float routine both ways, direct (where the CPU has AVX2 and FMA; else
 * the same im2col + GEMM again) and im2col + GEMM, against the double one, for shapes that
 * leave filters and columns over (F, OW not multiples of 8), padding, rectangular filters,
 * one channel and several, one sample and several, strides 1 and 2, with a bias and
 * without, with relu applied and without. */
static void test_conv(void)
{
    static const int64_t geoms[][9] = {
        /* B, C, H, W, F, KH, KW, stride, pad */
        {4, 1, 28, 28, 6, 5, 5, 1, 2}, {3, 6, 14, 14, 16, 5, 5, 1, 0},
        {1, 3, 9, 13, 11, 3, 2, 1, 1}, {2, 2, 7, 7, 9, 3, 3, 1, 2},
        {2, 5, 6, 20, 8, 1, 1, 1, 0},  {2, 3, 11, 11, 5, 3, 3, 2, 1},
    };
    NnlrtRng rng;
    nnlrt_rng_seed(&rng, 12);
    for (size_t k = 0; k < sizeof geoms / sizeof *geoms; k++) {
        const int64_t *g = geoms[k];
        int64_t B = g[0], C = g[1], H = g[2], W = g[3], F = g[4], KH = g[5], KW = g[6];
        int64_t stride = g[7], pad = g[8];
        int64_t OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
        int64_t nx = B * C * H * W, nw = F * C * KH * KW, ny = B * F * OH * OW;
        float *x = malloc(sizeof(float) * (size_t)nx), *w = malloc(sizeof(float) * (size_t)nw);
        double *xd = malloc(sizeof(double) * (size_t)nx), *wd = malloc(sizeof(double) * (size_t)nw);
        double *yd = malloc(sizeof(double) * (size_t)ny), bd[16];
        float *y[2] = {malloc(sizeof(float) * (size_t)ny), malloc(sizeof(float) * (size_t)ny)};
        float b[16];
        for (int64_t f = 0; f < F; f++) /* a bias for every other shape, else none (0) */
            b[f] = (float)(bd[f] = k % 2 ? (float)(nnlrt_rand_uniform(&rng) - 0.5) : 0);
        for (int64_t i = 0; i < nx; i++)
            x[i] = (float)(xd[i] = (float)(nnlrt_rand_uniform(&rng) - 0.3));
        for (int64_t i = 0; i < nw; i++)
            w[i] = (float)(wd[i] = (float)(nnlrt_rand_uniform(&rng) - 0.5));
        int act = k % 3 == 0; /* relu applied by the routine */
        nnlrt_conv2d_f64(xd, wd, bd, yd, act, B, C, H, W, F, KH, KW, stride, pad);
        for (int mode = 0; mode < 2; mode++) {
            nnlrt_conv_set_direct(mode);
            nnlrt_conv2d_f32(x, w, k % 2 ? b : NULL, y[mode], act, B, C, H, W, F, KH, KW,
                             stride, pad);
            double worst = 0;
            for (int64_t i = 0; i < ny; i++)
                worst = fmax(worst, fabs(y[mode][i] - yd[i]));
            EXPECT(worst < 1e-5 * (double)(C * KH * KW), "conv %zu, %s: float differs from "
                   "double by %g", k, mode ? "direct" : "im2col", worst);
        }
        nnlrt_conv_set_direct(-1);
        free(x), free(w), free(xd), free(wd), free(yd), free(y[0]), free(y[1]);
    }

    /* relu as the standard library has it: a negative becomes +0, a NaN stays NaN (a 1x1
     * filter of weight 1 over 16 columns: the direct kernel's vector and its tail) */
    float xs[18] = {NAN, -1, 0, 2, -3, 4, -0.5f, 1, NAN, -2, 3, -4, 5, -6, 7, -8, 9, -10};
    float one = 1, ys[2][18];
    for (int mode = 0; mode < 2; mode++) {
        nnlrt_conv_set_direct(mode);
        nnlrt_conv2d_f32(xs, &one, NULL, ys[mode], 1, 1, 1, 1, 18, 1, 1, 1, 1, 0);
        for (int i = 0; i < 18; i++) {
            uint32_t bits;
            memcpy(&bits, &ys[mode][i], sizeof bits);
            bool good = isnan(xs[i]) ? isnan(ys[mode][i])
                        : xs[i] > 0  ? ys[mode][i] == xs[i] : bits == 0;
            EXPECT(good, "relu %s: %g gave %g", mode ? "direct" : "im2col", xs[i], ys[mode][i]);
        }
    }
    nnlrt_conv_set_direct(-1);
}

static void test_split_group(void)
{
    test_split();
    test_standardize();
}

static const CheckGroup groups[] = {
    CHECK_GROUP(csv, test_csv),
    CHECK_GROUP(rng, test_rng),
    CHECK_GROUP(split, test_split_group),
    CHECK_GROUP(train, test_train),
    CHECK_GROUP(gradcheck, test_gradcheck),
    CHECK_GROUP(pool, test_pool),
    CHECK_GROUP(conv, test_conv),
};

int main(int argc, char **argv)
{
    if (argc != 3)
        return check_usage("test_runtime", groups, CHECK_COUNT(groups), "DATA_DIR");
    data_dir = argv[2];
    check_capture_messages();
    return check_run(groups, CHECK_COUNT(groups), "test_runtime", argv[1]);
}
