/* test_data_spec.c — the runtime's data orchestration (data_spec.c), which nnlc run and
 * standalone trainers share: files found from the script's directory or given, the parts
 * of a split sharing one load of their parent, standardization with the training set's
 * statistics, and the messages of what can go wrong.
 *
 *   test_data_spec WORK_DIR
 *
 * The CSV files are written by the test into WORK_DIR.
 */
#include "check.h"

#include <math.h>

#include "nnlrt.h"

static const char *work_dir;

/* data/ten.csv: x1,x2,y with ten rows; x1 = i, x2 = 10 i + 3, y = i % 2 */
static void write_files(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/data/ten.csv", work_dir);
    FILE *f = fopen(path, "w");
    EXPECT(f != NULL, "cannot write %s", path);
    if (!f)
        return;
    fprintf(f, "x1,x2,y\n");
    for (int i = 0; i < 10; i++)
        fprintf(f, "%d,%d,%d\n", i, 10 * i + 3, i % 2);
    fclose(f);
}

/* csv ten (standardize), split 0.7 into train and test */
static NnlrtDataSpec specs[3];

static void make_specs(bool standardize, double fraction)
{
    memset(specs, 0, sizeof specs);
    specs[0] = (NnlrtDataSpec){.name = "ten", .kind = NNLRT_DATA_CSV, .path = "data/ten.csv",
                               .script_dir = work_dir, .target = "y", .target_index = -1,
                               .header = true, .delimiter = ',', .standardize = standardize,
                               .parent = -1};
    for (int part = 0; part < 2; part++)
        specs[1 + part] = (NnlrtDataSpec){.name = part ? "test" : "train",
                                          .kind = NNLRT_DATA_SPLIT, .parent = 0,
                                          .fraction = fraction, .seed = 5, .part = part};
}

/* The parts of a split come from one load of the parent and hold all of it, once. */
static void test_split_parts(void)
{
    make_specs(false, 0.7);
    NnlrtData d;
    nnlrt_data_init(&d, specs, 3);
    NnlrtDataset *a = nnlrt_data_load(&d, 1);
    NnlrtDataset *parent = d.sets[0];
    NnlrtDataset *b = nnlrt_data_load(&d, 2);
    EXPECT(a && b && parent, "loading failed: %s", check_message);
    if (!a || !b || !parent) {
        nnlrt_data_free(&d);
        return;
    }
    EXPECT(d.sets[0] == parent, "the parent was loaded again");
    EXPECT(nnlrt_data_load(&d, 1) == a, "a second load is not the cached one");
    EXPECT(a->n == 7 && b->n == 3, "parts of %lld and %lld samples", (long long)a->n,
           (long long)b->n);
    EXPECT(strcmp(a->name, "train") == 0 && strcmp(b->name, "test") == 0,
           "names '%s' '%s'", a->name, b->name);
    int seen[10] = {0};
    const NnlrtDataset *parts[2] = {a, b};
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < parts[k]->n; i++)
            seen[(int)nnlrt_dataset_x(parts[k], i * 2)]++;
    for (int i = 0; i < 10; i++)
        EXPECT(seen[i] == 1, "row %d is in the parts %d times", i, seen[i]);
    nnlrt_data_free(&d);
}

static double column_mean(const NnlrtDataset *ds, int col)
{
    double s = 0;
    for (int64_t i = 0; i < ds->n; i++)
        s += nnlrt_dataset_x(ds, i * ds->x_size + col);
    return s / (double)ds->n;
}

/* Both sets standardized with the training set's statistics: the training set's columns
 * have mean 0, and a validation value is (raw - train mean) / train deviation. */
static void test_prepare_standardize(void)
{
    make_specs(true, 0.7);
    NnlrtData d;
    nnlrt_data_init(&d, specs, 3);
    NnlrtDataset *t, *v;
    EXPECT(nnlrt_data_prepare(&d, 1, 2, &t, &v), "prepare failed: %s", check_message);
    if (!t || !v) {
        nnlrt_data_free(&d);
        return;
    }
    /* the same split of the file (the parent itself is not standardized, only the sets
     * a run uses) gives the raw values of each part */
    NnlrtDataset pa, pb;
    nnlrt_split(d.sets[0], 0.7, 5, &pa, &pb);
    double mean = column_mean(&pa, 0), var = 0;
    for (int64_t i = 0; i < pa.n; i++) {
        double dx = nnlrt_dataset_x(&pa, i * 2) - mean;
        var += dx * dx;
    }
    double sd = sqrt(var / (double)pa.n);
    EXPECT(fabs(column_mean(t, 0)) < 1e-6 && fabs(column_mean(t, 1)) < 1e-6,
           "training means %g %g", column_mean(t, 0), column_mean(t, 1));
    for (int64_t i = 0; i < v->n; i++) {
        double want = (nnlrt_dataset_x(&pb, i * 2) - mean) / sd;
        double got = nnlrt_dataset_x(v, i * 2);
        EXPECT(fabs(got - want) < 1e-5, "validation row %lld: %g, expected %g", (long long)i,
               got, want);
    }
    nnlrt_dataset_free(&pa);
    nnlrt_dataset_free(&pb);
    nnlrt_data_free(&d);
}

/* A set that is both the training and the validation set is standardized once. */
static void test_prepare_same_set(void)
{
    make_specs(true, 0.7);
    NnlrtData d;
    nnlrt_data_init(&d, specs, 3);
    NnlrtDataset *t, *v;
    EXPECT(nnlrt_data_prepare(&d, 0, 0, &t, &v), "prepare failed: %s", check_message);
    EXPECT(t == v, "two data sets");
    if (t) {
        double sd = 0;
        for (int64_t i = 0; i < t->n; i++)
            sd += nnlrt_dataset_x(t, i * 2) * nnlrt_dataset_x(t, i * 2);
        sd = sqrt(sd / (double)t->n);
        EXPECT(fabs(sd - 1) < 1e-5, "deviation %g after standardizing (twice?)", sd);
    }
    nnlrt_data_free(&d);
}

/* A missing file: one message, with the places and the hint, and a set that stays failed. */
static void test_missing_file(void)
{
    make_specs(false, 0.7);
    specs[0].path = "data/none.csv";
    NnlrtData d;
    nnlrt_data_init(&d, specs, 3);
    d.hint = "; HINT";
    check_clear();
    NnlrtDataset *t, *v;
    EXPECT(!nnlrt_data_prepare(&d, 1, 2, &t, &v), "a missing file prepared");
    EXPECT(check_messages == 1, "%d messages", check_messages);
    char want[2048];
    snprintf(want, sizeof want, "test: error: data 'ten': cannot find the data file "
             "'data/none.csv' (looked in: %s", work_dir);
    EXPECT(strncmp(check_message, want, strlen(want)) == 0, "message '%s'", check_message);
    EXPECT(strstr(check_message, "); HINT") != NULL, "no hint in '%s'", check_message);
    /* a file given instead is read as it is */
    char given[1024];
    snprintf(given, sizeof given, "%s/data/ten.csv", work_dir);
    nnlrt_data_free(&d);
    nnlrt_data_init(&d, specs, 3);
    d.files[0] = given;
    check_clear();
    EXPECT(nnlrt_data_prepare(&d, 1, 2, &t, &v), "a given file: %s", check_message);
    char text[512];
    EXPECT(strstr(nnlrt_data_describe(&d, 0, text, sizeof text), given) != NULL,
           "description '%s'", text);
    nnlrt_data_free(&d);
}

/* An empty part of a split is reported by prepare, with the parent's size. */
static void test_empty_part(void)
{
    make_specs(false, 0.99);
    NnlrtData d;
    nnlrt_data_init(&d, specs, 3);
    check_clear();
    NnlrtDataset *t, *v;
    EXPECT(nnlrt_data_load(&d, 2) != NULL && d.sets[2]->n == 0, "the empty part loads");
    EXPECT(check_messages == 0, "load reported '%s'", check_message);
    EXPECT(!nnlrt_data_prepare(&d, 1, 2, &t, &v), "an empty part prepared");
    EXPECT(strcmp(check_message, "test: error: split leaves no samples in part 2 of 'test' "
                  "(10 samples in all)") == 0, "message '%s'", check_message);
    nnlrt_data_free(&d);
}

static void test_describe(void)
{
    make_specs(true, 0.7);
    NnlrtData d;
    nnlrt_data_init(&d, specs, 3);
    char text[512];
    nnlrt_data_describe(&d, 0, text, sizeof text);
    EXPECT(strcmp(text, "csv(\"data/ten.csv\", target = \"y\", standardize = true)") == 0,
           "'%s'", text);
    nnlrt_data_describe(&d, 2, text, sizeof text);
    EXPECT(strcmp(text, "split(ten, 0.7, seed = 5), second part") == 0, "'%s'", text);
    nnlrt_data_free(&d);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_data_spec WORK_DIR\n");
        return 2;
    }
    work_dir = argv[1];
    nnlrt_set_program_name("test");
    write_files();
    check_capture_messages();
    test_split_parts();
    test_prepare_standardize();
    test_prepare_same_set();
    test_missing_file();
    test_empty_part();
    test_describe();
    if (check_failures)
        fprintf(stderr, "%d failures\n", check_failures);
    return check_failures != 0;
}
