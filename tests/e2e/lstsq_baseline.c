/* lstsq_baseline.c — the least-squares baseline that regression examples are judged against.
 *
 *   lstsq_baseline FILE TARGET FRACTION SEED
 *
 * Loads the CSV file FILE (with a header) through the runtime, taking the column named
 * TARGET as the target and every other column as an input; splits it with
 * nnlrt_split(FRACTION, SEED) exactly as a `train` block would; standardizes the inputs of
 * both parts with the training part's mean and deviation; fits ordinary least squares with
 * an intercept on the training part (normal equations in double, Gaussian elimination with
 * partial pivoting); prints the mean squared error on the held-out part with "%.9g".
 *
 * Exit status: 0, 1 on a bad argument or a singular system, or whatever failure the runtime
 * reported while loading (1).
 */
#include "nnlrt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: lstsq_baseline FILE TARGET FRACTION SEED\n");
    return 1;
}

/* Solves a[n][n] x = b in place (x returned in b). Returns false when the matrix is
 * singular to working precision. */
static bool solve(double *a, double *b, int n)
{
    double norm = 0;
    for (int i = 0; i < n * n; i++)
        norm = fmax(norm, fabs(a[i]));
    for (int k = 0; k < n; k++) {
        int piv = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > fabs(a[piv * n + k]))
                piv = i;
        if (!(fabs(a[piv * n + k]) > 1e-12 * norm))
            return false;
        if (piv != k) {
            for (int j = 0; j < n; j++) {
                double t = a[k * n + j];
                a[k * n + j] = a[piv * n + j];
                a[piv * n + j] = t;
            }
            double t = b[k];
            b[k] = b[piv];
            b[piv] = t;
        }
        for (int i = k + 1; i < n; i++) {
            double f = a[i * n + k] / a[k * n + k];
            if (f == 0)
                continue;
            for (int j = k; j < n; j++)
                a[i * n + j] -= f * a[k * n + j];
            b[i] -= f * b[k];
        }
    }
    for (int k = n - 1; k >= 0; k--) {
        double s = b[k];
        for (int j = k + 1; j < n; j++)
            s -= a[k * n + j] * b[j];
        b[k] = s / a[k * n + k];
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return usage();

    char *end;
    errno = 0;
    double frac = strtod(argv[3], &end);
    if (errno || end == argv[3] || *end || !(frac > 0 && frac < 1)) {
        fprintf(stderr, "lstsq_baseline: FRACTION must be a number in (0, 1), got '%s'\n",
                argv[3]);
        return 1;
    }
    errno = 0;
    unsigned long long seed = strtoull(argv[4], &end, 10);
    if (errno || end == argv[4] || *end || argv[4][0] == '-') {
        fprintf(stderr, "lstsq_baseline: SEED must be a non-negative integer, got '%s'\n",
                argv[4]);
        return 1;
    }

    NnlrtCsvOptions opt;
    memset(&opt, 0, sizeof opt);
    opt.path = argv[1];
    opt.target = argv[2];
    opt.target_index = -1;
    opt.features = NULL;
    opt.feature_names = NULL;
    opt.n_features = 0;
    opt.header = true;
    opt.delimiter = ',';

    NnlrtDataset all, train, test;
    memset(&all, 0, sizeof all);
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    if (!nnlrt_csv_load(&opt, &all))
        return 1;
    if (all.y_size != 1) {
        fprintf(stderr, "lstsq_baseline: expected one target value per sample, got %lld\n",
                (long long)all.y_size);
        nnlrt_dataset_free(&all);
        return 1;
    }
    nnlrt_split(&all, frac, (uint64_t)seed, &train, &test);

    const int64_t d = train.x_size;
    const int p = (int)d + 1; /* intercept first */
    if (train.n < p || test.n < 1) {
        fprintf(stderr,
                "lstsq_baseline: %lld training and %lld held-out samples are too few for "
                "%d coefficients\n",
                (long long)train.n, (long long)test.n, p);
        nnlrt_dataset_free(&test);
        nnlrt_dataset_free(&train);
        nnlrt_dataset_free(&all);
        return 1;
    }

    /* The held-out part first, while the training part is still raw; then the training part
     * against an unmodified copy of itself, so the result does not depend on whether
     * nnlrt_standardize tolerates ds == ref. */
    nnlrt_standardize(&test, &train);
    NnlrtDataset ref = train;
    ref.x = nnlrt_alloc((size_t)(train.n * d) * sizeof(float));
    memcpy(ref.x, train.x, (size_t)(train.n * d) * sizeof(float));
    nnlrt_standardize(&train, &ref);
    nnlrt_free(ref.x);

    /* Normal equations: (X'X) w = X'y with X = [1 | x]. */
    double *a = calloc((size_t)p * (size_t)p, sizeof(double));
    double *w = calloc((size_t)p, sizeof(double));
    double *row = calloc((size_t)p, sizeof(double));
    if (!a || !w || !row) {
        fprintf(stderr, "lstsq_baseline: out of memory\n");
        return 1;
    }
    for (int64_t s = 0; s < train.n; s++) {
        row[0] = 1.0;
        for (int64_t j = 0; j < d; j++)
            row[j + 1] = ((const float *)train.x)[s * d + j]; /* CSV data are float32 */
        double y = nnlrt_dataset_y(&train, s);
        for (int i = 0; i < p; i++) {
            for (int j = 0; j < p; j++)
                a[i * p + j] += row[i] * row[j];
            w[i] += row[i] * y;
        }
    }
    if (!solve(a, w, p)) {
        fprintf(stderr, "lstsq_baseline: the normal equations are singular (a constant or "
                        "duplicated input column?)\n");
        free(a);
        free(w);
        free(row);
        nnlrt_dataset_free(&test);
        nnlrt_dataset_free(&train);
        nnlrt_dataset_free(&all);
        return 1;
    }

    double sse = 0;
    for (int64_t s = 0; s < test.n; s++) {
        double pred = w[0];
        for (int64_t j = 0; j < d; j++)
            pred += w[j + 1] * ((const float *)test.x)[s * d + j];
        double e = pred - nnlrt_dataset_y(&test, s);
        sse += e * e;
    }
    printf("%.9g\n", sse / (double)test.n);

    free(a);
    free(w);
    free(row);
    nnlrt_dataset_free(&test);
    nnlrt_dataset_free(&train);
    nnlrt_dataset_free(&all);
    return 0;
}
