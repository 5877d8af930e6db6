/* checkpoint_files.c — a checkpoint's files: written atomically (atomic_file.c), the older
 * ones rotated, the temporary files of killed writers removed. The format itself is
 * checkpoint.c's.
 *
 * A write: "<path>.tmp.<pid>" in the same directory, written whole, fflush, fsync, fclose,
 * then the older checkpoints rotated (keep = K), then renamed over <path>, then the
 * directory fsynced. Until that rename <path> is the previous checkpoint, byte for byte; a
 * failure removes the temp file. A killed writer leaves a temp file:
 * nnlrt_checkpoint_clean_stale removes those of processes that are gone.
 */
#define _POSIX_C_SOURCE 200809L /* kill, link */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnlrt_int.h"

void nnlrt_checkpoint_fail_at(NnlrtCkptStep step, int err)
{
    nnlrt_atomic_fail_at(step, err);
}

/* ---- rotation ---- */

/* The rotation's "<path>.<n>" names, allocated before the temporary file exists (running
 * out of memory once it does would leave it behind, or a rotated checkpoint unrestored),
 * and rewritten in place. */
typedef struct {
    const char *path;
    char *from, *to;
    size_t len; /* bytes of from and to */
} CkptNames;

static CkptNames ckpt_names(const char *path)
{
    CkptNames n = {.path = path, .len = strlen(path) + 24};
    n.from = nnlrt_alloc(n.len);
    n.to = nnlrt_alloc(n.len);
    return n;
}

static void ckpt_names_free(CkptNames *n)
{
    nnlrt_free(n->from);
    nnlrt_free(n->to);
}

/* "<path>.<i>" into buf (from or to of `n`). */
static char *ckpt_numbered(const CkptNames *n, char *buf, int64_t i)
{
    snprintf(buf, n->len, "%s.%lld", n->path, (long long)i);
    return buf;
}

/* rename(from, to), where a missing `from` is nothing to do. A rename outside
 * atomic_file.c: rotation moves whole, older checkpoints among their own names; the new
 * one is put in place by nnlrt_atomic_rename. */
static bool ckpt_shift(const char *from, const char *to, NnlrtAtomic *a)
{
    if (nnlrt_atomic_injected(a, NNLRT_CKPT_ROTATE))
        return nnlrt_atomic_fail(a, "rotating the older checkpoints");
    if (rename(from, to) == 0 || errno == ENOENT)
        return true;
    return nnlrt_atomic_fail(a, "rotating the older checkpoints");
}

/* <path>.(K-2) -> <path>.(K-1), ..., <path>.1 -> <path>.2, each a rename; then <path>
 * becomes <path>.1 as a second link, so that <path> names a whole checkpoint at every
 * instant (a rename where links are not supported: *moved says so). */
static bool ckpt_rotate(const CkptNames *n, int64_t keep, bool *moved, NnlrtAtomic *a)
{
    *moved = false;
    bool ok = true;
    for (int64_t i = keep - 1; ok && i >= 2; i--)
        ok = ckpt_shift(ckpt_numbered(n, n->from, i - 1), ckpt_numbered(n, n->to, i), a);
    if (!ok || keep < 2)
        return ok;
    const char *first = ckpt_numbered(n, n->to, 1);
    if (unlink(first) != 0 && errno != ENOENT)
        ok = nnlrt_atomic_fail(a, "rotating the older checkpoints");
    else if (nnlrt_atomic_injected(a, NNLRT_CKPT_ROTATE))
        ok = nnlrt_atomic_fail(a, "rotating the older checkpoints");
    else if (link(n->path, first) != 0 && errno != ENOENT) {
        ok = ckpt_shift(n->path, first, a);
        *moved = ok;
    }
    return ok;
}

/* ---- writing ---- */

/* The rename over <path> failed after the rotation moved it to <path>.1: put it back where
 * it was (a rename outside atomic_file.c: the rotation's own, undone); false when that
 * fails too. */
static bool ckpt_unrotate(const CkptNames *n)
{
    return rename(ckpt_numbered(n, n->to, 1), n->path) == 0;
}

bool nnlrt_checkpoint_write(const char *path, int64_t keep, const NnlrtModel *m,
                            const NnlrtCheckpoint *c)
{
    NnlrtAtomic a;
    nnlrt_atomic_init(&a, path, NNLRT_ATOMIC_INJECT);
    CkptNames n = ckpt_names(path);
    struct stat st;
    bool existed = stat(path, &st) == 0;
    bool moved = false;
    bool ok = nnlrt_atomic_open(&a) && nnlrt_checkpoint_put(&a, m, c) &&
              nnlrt_atomic_close(&a) && ckpt_rotate(&n, keep, &moved, &a);
    if (ok && !nnlrt_atomic_rename(&a, "renaming over the checkpoint")) {
        ok = false;
        moved = moved && ckpt_unrotate(&n);
    }
    if (!ok) {
        nnlrt_error(path, 0, 0, "cannot write the checkpoint: %s (%s); %s", strerror(a.err),
                    a.what, !existed ? "no checkpoint was written"
                            : moved  ? "the previous checkpoint is now its '.1'"
                                     : "the previous checkpoint is unchanged");
    } else if (!nnlrt_atomic_sync_dir(&a)) {
        ok = false;
        nnlrt_error(path, 0, 0, "the checkpoint was written, but its directory cannot be "
                    "synced: %s (%s); it may not survive a power loss", strerror(a.err), a.what);
    }
    nnlrt_atomic_free(&a);
    ckpt_names_free(&n);
    return ok;
}

/* ---- stale temporary files ---- */

/* The temporary files are atomic_file.c's: nnlrt_atomic_clean_stale removes them. */
void nnlrt_checkpoint_clean_stale(const char *path)
{
    nnlrt_atomic_clean_stale(path);
}
