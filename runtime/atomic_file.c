/* atomic_file.c — a file replaced whole or not at all: the temporary file beside it, fsync,
 * rename, fsync of the directory (nnlrt_util.h). Checkpoints, --save-params, exports,
 * predictions, plots and nnlc build's outputs are all written through it. The outputs of a
 * training run are probed before its first step (nnlrt_atomic_probe) and locked for its whole
 * life (nnlrt_lock_acquire). */
#define _DEFAULT_SOURCE /* flock */
#define _POSIX_C_SOURCE 200809L /* fsync, kill */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnlrt_int.h"

/* ---- failure injection ---- */

static NnlrtCkptStep atomic_fail_step;
static int atomic_fail_errno;

void nnlrt_atomic_fail_at(NnlrtCkptStep step, int err)
{
    atomic_fail_step = step;
    atomic_fail_errno = err;
}

bool nnlrt_atomic_injected(const NnlrtAtomic *a, NnlrtCkptStep step)
{
    if (!(a->flags & NNLRT_ATOMIC_INJECT) || atomic_fail_step != step)
        return false;
    atomic_fail_step = NNLRT_CKPT_NONE;
    errno = atomic_fail_errno;
    return true;
}

/* ---- names ---- */

char *nnlrt_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return nnlrt_strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = nnlrt_alloc(n + 1);
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

void nnlrt_atomic_init(NnlrtAtomic *a, const char *path, unsigned flags)
{
    memset(a, 0, sizeof *a);
    a->path = path;
    a->flags = flags;
    size_t n = strlen(path) + 32;
    a->tmp = nnlrt_alloc(n);
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->dir = nnlrt_dir_of(path);
}

/* ---- writing ---- */

bool nnlrt_atomic_fail(NnlrtAtomic *a, const char *what)
{
    if (!a->err) {
        a->err = errno ? errno : EIO;
        a->what = what;
    }
    return false;
}

/* A device or a pipe: there is nothing to rename over it. */
static bool atomic_not_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

bool nnlrt_atomic_open(NnlrtAtomic *a)
{
    a->in_place = (a->flags & NNLRT_ATOMIC_IN_PLACE) && atomic_not_regular(a->path);
    const char *name = a->in_place ? a->path : a->tmp;
    a->f = nnlrt_atomic_injected(a, NNLRT_CKPT_OPEN) ? NULL : fopen(name, "wb");
    return a->f || nnlrt_atomic_fail(a, "creating the temporary file");
}

bool nnlrt_atomic_write(NnlrtAtomic *a, const void *p, size_t n)
{
    if (a->err)
        return false;
    if (nnlrt_atomic_injected(a, NNLRT_CKPT_WRITE) || fwrite(p, 1, n, a->f) != n)
        return nnlrt_atomic_fail(a, "write");
    return true;
}

/* A device or a pipe cannot be synced (EINVAL): its bytes are gone once written. */
static bool atomic_fsync(NnlrtAtomic *a)
{
    if (nnlrt_atomic_injected(a, NNLRT_CKPT_FSYNC))
        return false;
    return fsync(fileno(a->f)) == 0 || (a->in_place && errno == EINVAL);
}

bool nnlrt_atomic_close(NnlrtAtomic *a)
{
    bool ok = !a->err;
    if (ok && ferror(a->f))
        ok = nnlrt_atomic_fail(a, "write");
    if (ok && (nnlrt_atomic_injected(a, NNLRT_CKPT_FLUSH) || fflush(a->f) != 0))
        ok = nnlrt_atomic_fail(a, "fflush");
    if (ok && !atomic_fsync(a))
        ok = nnlrt_atomic_fail(a, "fsync");
    int closed = fclose(a->f);
    if (nnlrt_atomic_injected(a, NNLRT_CKPT_CLOSE))
        closed = EOF;
    if (closed != 0 && ok)
        ok = nnlrt_atomic_fail(a, "fclose");
    a->f = NULL;
    return ok;
}

bool nnlrt_atomic_sync_written(NnlrtAtomic *a)
{
    int fd = open(a->tmp, O_RDONLY);
    if (fd < 0)
        return nnlrt_atomic_fail(a, "opening the file");
    bool ok = fsync(fd) == 0 || nnlrt_atomic_fail(a, "fsync");
    close(fd);
    return ok;
}

/* ---- putting it in place ---- */

bool nnlrt_atomic_rename(NnlrtAtomic *a, const char *what)
{
    if (a->in_place)
        return true;
    if (nnlrt_atomic_injected(a, NNLRT_CKPT_RENAME) || rename(a->tmp, a->path) != 0)
        return nnlrt_atomic_fail(a, what);
    a->renamed = true;
    return true;
}

int nnlrt_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return errno ? errno : EIO;
    int err = fsync(fd) == 0 || errno == EINVAL ? 0 : errno;
    close(fd);
    return err;
}

/* rename() is atomic but not durable until the directory is synced. */
bool nnlrt_atomic_sync_dir(NnlrtAtomic *a)
{
    if (a->in_place)
        return true;
    int fd = open(a->dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return nnlrt_atomic_fail(a, "opening the directory");
    bool ok = !nnlrt_atomic_injected(a, NNLRT_CKPT_DIRSYNC) && (fsync(fd) == 0 || errno == EINVAL);
    if (!ok)
        nnlrt_atomic_fail(a, "fsync of the directory");
    close(fd);
    return ok;
}

bool nnlrt_atomic_finish(NnlrtAtomic *a, const char *rename_what)
{
    return nnlrt_atomic_close(a) && nnlrt_atomic_rename(a, rename_what) &&
           nnlrt_atomic_sync_dir(a);
}

void nnlrt_atomic_free(NnlrtAtomic *a)
{
    if (a->f)
        fclose(a->f);
    if (a->tmp && !a->renamed && !a->in_place)
        unlink(a->tmp);
    nnlrt_free(a->tmp);
    nnlrt_free(a->dir);
    memset(a, 0, sizeof *a);
}

/* ---- temporary files of killed writers ---- */

/* The pid of "<base>.tmp.<pid>", or 0 when `name` is not one. */
static long atomic_tmp_pid(const char *name, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(name, base, n) != 0 || strncmp(name + n, ".tmp.", 5) != 0)
        return 0;
    const char *digits = name + n + 5;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 9)
        return 0;
    return strtol(digits, NULL, 10);
}

/* A temp file is stale when the process that wrote it is gone (or is this one, which is
 * not writing yet): a live writer of the same path keeps its file. */
static bool atomic_stale(long pid)
{
    if (pid == (long)getpid())
        return true;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void nnlrt_atomic_clean_stale(const char *path)
{
    char *dir = nnlrt_dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        long pid = atomic_tmp_pid(e->d_name, base);
        if (pid <= 0 || !atomic_stale(pid))
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *file = nnlrt_alloc(len);
        snprintf(file, len, "%s/%s", dir, e->d_name);
        unlink(file); /* best effort: a file that stays is only space */
        nnlrt_free(file);
    }
    if (d)
        closedir(d);
    nnlrt_free(dir);
}

/* ---- probing ---- */

int nnlrt_atomic_probe(const char *path, bool in_place)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return EISDIR;
    if (in_place && atomic_not_regular(path))
        return 0;
    NnlrtAtomic a;
    nnlrt_atomic_init(&a, path, 0);
    int err = 0;
    int fd = open(a.tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        err = errno ? errno : EIO;
    else {
        close(fd);
        unlink(a.tmp);
    }
    nnlrt_atomic_free(&a);
    return err;
}

/* ---- locks ---- */

/* The pid recorded in an open lock file, or 0. */
static long lock_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    long pid = strtol(buf, NULL, 10);
    return pid > 0 ? pid : 0;
}

/* Whether fd is still the file named `file`: another run may have removed it (its end)
 * between our open and our flock, and a new run may have created another. */
static bool lock_same_file(int fd, const char *file)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(file, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

int nnlrt_lock_acquire(NnlrtLock *l, const char *path, long *holder)
{
    l->fd = -1;
    l->file = NULL;
    *holder = 0;
    if (atomic_not_regular(path))
        return NNLRT_LOCK_OK;
    size_t n = strlen(path) + 6;
    char *file = nnlrt_alloc(n);
    snprintf(file, n, "%s.lock", path);
    for (int tries = 0; tries < 100; tries++) {
        int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
            break;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            if (err == EWOULDBLOCK)
                *holder = lock_pid(fd);
            close(fd);
            nnlrt_free(file);
            errno = err;
            return err == EWOULDBLOCK ? NNLRT_LOCK_BUSY : NNLRT_LOCK_ERROR;
        }
        if (!lock_same_file(fd, file)) { /* removed by the run that held it: again */
            close(fd);
            continue;
        }
        char pid[32];
        int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
            int err = errno;
            unlink(file);
            close(fd);
            nnlrt_free(file);
            errno = err;
            return NNLRT_LOCK_ERROR;
        }
        l->fd = fd;
        l->file = file;
        return NNLRT_LOCK_OK;
    }
    int err = errno ? errno : EIO;
    nnlrt_free(file);
    errno = err;
    return NNLRT_LOCK_ERROR;
}

void nnlrt_lock_release(NnlrtLock *l)
{
    if (l->fd >= 0) {
        unlink(l->file); /* while still held: whoever opened it retries on the new one */
        close(l->fd);
    }
    nnlrt_free(l->file);
    l->fd = -1;
    l->file = NULL;
}
