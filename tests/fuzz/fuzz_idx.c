/* fuzz_idx.c — libFuzzer harness over the IDX loader (runtime/data_idx.c, data_file.c),
 * plain files.
 *
 * The input holds two files (fuzz_split): the images, then the labels, written as they
 * are (a part that starts with the gzip magic is read as compressed, as any file would
 * be). The load must give a data set whose sizes agree with the files' sizes, or one
 * message naming one of the files. replay.c runs the reproducers. */
#include <stdlib.h>

#include "fuzz_files.h"

static void idx_load_pair(const char *images, const char *labels, bool plain, size_t ni,
                          size_t nl)
{
    NnlrtDataset ds;
    fuzz_begin();
    bool ok = nnlrt_idx_load(images, labels, 1.0 / 255, &ds);
    fuzz_check_result(ok, "idx", images, labels, NULL);
    /* a plain pair holds its header, then exactly n * x_size bytes and n labels */
    if (ok && (ds.n < 1 || ds.x_size < 1 || ds.y_size != 1 || ds.x_type != NNLRT_U8 ||
               (plain && (ni < (size_t)(ds.n * ds.x_size) || nl != 8 + (size_t)ds.n))))
        abort();
    nnlrt_dataset_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *a, *b;
    size_t na, nb;
    fuzz_split(data, size, &a, &na, &b, &nb);
    const char *images = fuzz_path("images.idx"), *labels = fuzz_path("labels.idx");
    fuzz_write(images, a, na);
    fuzz_write(labels, b, nb);
    bool plain = !(na >= 2 && a[0] == 0x1f && a[1] == 0x8b) &&
                 !(nb >= 2 && b[0] == 0x1f && b[1] == 0x8b);
    idx_load_pair(images, labels, plain, na, nb);
    return 0;
}
