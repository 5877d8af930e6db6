/* fuzz_idx_gz.c — libFuzzer harness over the IDX loader reading gzip-compressed files
 * (runtime/data_file.c's zlib path, then data_idx.c).
 *
 * The input is a flags byte, then two files (fuzz_split): the images and the labels. Bit 0
 * of the flags: the images part is written as it is (a gzip stream of its own, damaged by
 * the fuzzer); clear, the harness compresses it (so the fuzzer's changes reach the IDX
 * reader through zlib). Bit 1: the same for the labels. Bits 2-3 choose the compression
 * level (1, 6, 9 or 0, stored). The load must give a data set or one message naming one
 * of the files. replay.c runs the reproducers. */
#include <stdlib.h>

#include "fuzz_files.h"

/* The part written as it is, or compressed. */
static void gz_write(const char *path, const uint8_t *p, size_t n, bool raw, int level)
{
    if (raw) {
        fuzz_write(path, p, n);
        return;
    }
    size_t zn;
    uint8_t *z = fuzz_gzip(p, n, level, &zn);
    fuzz_write(path, z, zn);
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const int levels[] = {1, 6, 9, 0};
    int flags = data[0], level = levels[(flags >> 2) & 3];
    const uint8_t *a, *b;
    size_t na, nb;
    fuzz_split(data + 1, size - 1, &a, &na, &b, &nb);
    const char *images = fuzz_path("images.idx.gz"), *labels = fuzz_path("labels.idx.gz");
    gz_write(images, a, na, flags & 1, level);
    gz_write(labels, b, nb, flags & 2, level);
    NnlrtDataset ds;
    fuzz_begin();
    bool ok = nnlrt_idx_load(images, labels, 1.0 / 255, &ds);
    fuzz_check_result(ok, "idx.gz", images, labels, NULL);
    if (ok && (ds.n < 1 || ds.x_size < 1 || ds.y_size != 1 || ds.x_type != NNLRT_U8))
        abort();
    nnlrt_dataset_free(&ds);
    return 0;
}
