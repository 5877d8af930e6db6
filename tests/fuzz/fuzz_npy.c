/* fuzz_npy.c — libFuzzer harness over the NPY loader (runtime/data_npy.c, data_file.c).
 *
 * The input holds two files (fuzz_split): the inputs, then the targets, written as they
 * are. The load must give a data set whose floating-point values are all finite, or one
 * message naming one of the files. replay.c runs the reproducers. */
#include <math.h>
#include <stdlib.h>

#include "fuzz_files.h"

/* Floating-point values of a loaded part must be finite. */
static bool npy_all_finite(const void *p, NnlrtType t, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (t == NNLRT_F32 && !isfinite(((const float *)p)[i]))
            return false;
        if (t == NNLRT_F64 && !isfinite(((const double *)p)[i]))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *a, *b;
    size_t na, nb;
    fuzz_split(data, size, &a, &na, &b, &nb);
    const char *x = fuzz_path("x.npy"), *y = fuzz_path("y.npy");
    fuzz_write(x, a, na);
    fuzz_write(y, b, nb);
    NnlrtDataset ds;
    fuzz_begin();
    bool ok = nnlrt_npy_load(x, y, 1, &ds);
    fuzz_check_result(ok, "npy", x, y, NULL);
    if (ok && (ds.n < 1 || ds.x_size < 1 || ds.y_size < 1 ||
               !npy_all_finite(ds.x, ds.x_type, ds.n * ds.x_size) ||
               !npy_all_finite(ds.y, ds.y_type, ds.n * ds.y_size)))
        abort();
    nnlrt_dataset_free(&ds);
    return 0;
}
