/* fuzz_csv.c — libFuzzer harness over the CSV data loader (runtime/csv.c, data_csv.c).
 *
 * The input is the file. It is loaded three ways (a header with the target the last
 * column; no header, tab-separated, target column 0; a header, ';'-separated, the target
 * named "y" and the features named "x2", "x1"). Each load must end in a data set whose
 * every value is finite and whose sample lines increase, or in one message naming the file
 * (fuzz_check_result): no crash, no leak, no hang. replay.c runs the reproducers. */
#include <math.h>
#include <stdlib.h>

#include "fuzz_files.h"

/* What a loaded CSV data set must be; aborts otherwise. */
static void csv_check_loaded(const NnlrtDataset *ds)
{
    bool good = ds->n >= 1 && ds->y_size == 1 && ds->x_size >= 1 && ds->rows;
    for (int64_t i = 0; good && i < ds->n; i++) {
        good = isfinite(((const float *)ds->y)[i]) && ds->rows[i] >= 1 &&
               (i == 0 || ds->rows[i] > ds->rows[i - 1]);
        for (int64_t j = 0; good && j < ds->x_size; j++)
            good = isfinite(((const float *)ds->x)[i * ds->x_size + j]);
    }
    if (!good)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_path("data.csv");
    fuzz_write(path, data, size);
    static const char *const names[] = {"x2", "x1"};
    static const long index[] = {1};
    NnlrtCsvOptions opts[] = {
        {.path = path, .target_index = -1, .header = true},
        {.path = path, .target_index = 0, .features = index, .n_features = 1,
         .delimiter = '\t'},
        {.path = path, .target = "y", .feature_names = names, .n_features = 2, .header = true,
         .delimiter = ';'},
    };
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        NnlrtDataset ds;
        fuzz_begin();
        bool ok = nnlrt_csv_load(&opts[k], &ds);
        fuzz_check_result(ok, "csv", path, NULL);
        if (ok)
            csv_check_loaded(&ds);
        nnlrt_dataset_free(&ds);
    }
    return 0;
}
