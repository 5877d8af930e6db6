/* nnlrt_util.h — the runtime's utilities that nnlc uses too (it links libnnlrt): the
 * atomic file writer, the growable string, command-line options. Generated code never
 * sees them. */
#ifndef NNLRT_UTIL_H
#define NNLRT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* ---- atomic_file.c: a file replaced whole, or not at all ----
 *
 * The file is written to "<path>.tmp.<pid>" in its directory, fflushed, fsynced and closed,
 * then renamed over <path>, then the directory is fsynced: until the rename, <path> is
 * what it was; a failure removes the temporary file. Every name is allocated by
 * nnlrt_atomic_init, before the temporary file exists: running out of memory (an exit)
 * never leaves one behind.
 *
 *     NnlrtAtomic a;
 *     nnlrt_atomic_init(&a, path, 0);
 *     bool ok = nnlrt_atomic_open(&a) && write(a.f) && nnlrt_atomic_finish(&a, "renaming");
 *     ... report a.err and a.what on failure (a.renamed: the file is in place) ...
 *     nnlrt_atomic_free(&a);
 *
 * This is the one place in nnlc and its runtime that renames a file. */

/* The steps where a test can make a checkpoint write fail (nnlrt_checkpoint_fail_at). */
typedef enum {
    NNLRT_CKPT_NONE,
    NNLRT_CKPT_OPEN,      /* creating <path>.tmp.<pid> */
    NNLRT_CKPT_WRITE,     /* the first fwrite */
    NNLRT_CKPT_FLUSH,
    NNLRT_CKPT_FSYNC,
    NNLRT_CKPT_CLOSE,
    NNLRT_CKPT_ROTATE,    /* the first rotation step (keep >= 2) */
    NNLRT_CKPT_RENAME,    /* the temp file over <path> */
    NNLRT_CKPT_DIRSYNC,   /* fsync of the directory, after the rename */
} NnlrtCkptStep;

enum {
    /* A <path> that exists and is not a regular file (a device such as /dev/stdout, a
     * pipe) cannot be replaced: it is written in place. */
    NNLRT_ATOMIC_IN_PLACE = 1,
    /* The steps honour nnlrt_atomic_fail_at: the checkpoint writer's. */
    NNLRT_ATOMIC_INJECT = 2,
};

typedef struct {
    const char *path;  /* the file replaced */
    char *tmp;         /* "<path>.tmp.<pid>", beside it */
    char *dir;         /* the directory holding both: "." when path has no '/' */
    FILE *f;           /* the file being written, between open and close */
    unsigned flags;    /* NNLRT_ATOMIC_... */
    bool in_place;     /* NNLRT_ATOMIC_IN_PLACE applied: f is <path> itself */
    bool renamed;      /* the temporary file is <path> now */
    int err;           /* errno of the first failure, 0 while all is well */
    const char *what;  /* the step that failed: "write", "fsync", ... */
} NnlrtAtomic;

void nnlrt_atomic_init(NnlrtAtomic *a, const char *path, unsigned flags);
/* Creates the temporary file (what: "creating the temporary file"). */
bool nnlrt_atomic_open(NnlrtAtomic *a);
/* Records the first failure: errno (EIO when 0) and `what`; returns false. */
bool nnlrt_atomic_fail(NnlrtAtomic *a, const char *what);
/* fwrite to a->f; false once anything failed. */
bool nnlrt_atomic_write(NnlrtAtomic *a, const void *p, size_t n);
/* fflush, fsync, fclose: the temporary file whole on disk (a stream error while writing
 * with fprintf shows at the fflush). */
bool nnlrt_atomic_close(NnlrtAtomic *a);
/* The temporary file was written by another program (a->tmp named it there): fsync it. */
bool nnlrt_atomic_sync_written(NnlrtAtomic *a);
/* Renames the temporary file over <path>; `what` names the step in messages. */
bool nnlrt_atomic_rename(NnlrtAtomic *a, const char *what);
/* fsync of the directory, so that the rename survives a power loss ("opening the
 * directory", "fsync of the directory"); a filesystem that cannot sync one (EINVAL)
 * passes. */
bool nnlrt_atomic_sync_dir(NnlrtAtomic *a);
/* close, rename, sync_dir. */
bool nnlrt_atomic_finish(NnlrtAtomic *a, const char *rename_what);
/* Closes and removes the temporary file unless it was renamed; frees the names. */
void nnlrt_atomic_free(NnlrtAtomic *a);

/* The directory holding `path`, allocated: "." when it has no '/'. */
char *nnlrt_dir_of(const char *path);
/* fsync of a directory: 0 (also when the filesystem cannot, EINVAL), or the errno. */
int nnlrt_fsync_dir(const char *dir);
/* Removes the temporary files "<path>.tmp.<pid>" that writers of `path` killed before their
 * rename left (the process gone, or this one, which is not writing yet); a live writer's
 * stays. Best effort: a file that cannot be removed is only space. */
void nnlrt_atomic_clean_stale(const char *path);

/* Whether `path` can be written the way nnlrt_atomic_open will: its temporary file created
 * in the same directory, then removed. 0, or the errno (EISDIR when `path` is a directory).
 * With in_place, a device or a pipe at `path` is written where it is: nothing to check. */
int nnlrt_atomic_probe(const char *path, bool in_place);

/* ---- atomic_file.c: an output owned by one run ----
 *
 * A run's lock on an output `path` is an flock (exclusive, not waiting) on the companion file
 * "<path>.lock", which holds the pid of its owner. The file itself is not locked: a
 * checkpoint is replaced by a rename, and a lock on the replaced file would lock nothing.
 * The kernel releases the lock of a process that dies, so a lock file a killed run left is
 * taken over; nnlrt_lock_release removes the file. */
typedef struct {
    int fd;     /* -1: nothing held */
    char *file; /* "<path>.lock" */
} NnlrtLock;

/* Takes the lock on `path`. NNLRT_LOCK_OK; NNLRT_LOCK_BUSY with *holder the pid recorded
 * by the run that holds it (0 when unknown); NNLRT_LOCK_ERROR with errno set. A device or
 * a pipe at `path` is not locked (OK, nothing held). */
enum { NNLRT_LOCK_OK, NNLRT_LOCK_BUSY, NNLRT_LOCK_ERROR };
int nnlrt_lock_acquire(NnlrtLock *l, const char *path, long *holder);
/* Removes the lock file and releases the lock (nothing when nothing is held). */
void nnlrt_lock_release(NnlrtLock *l);

/* Failure injection for tests: the next write flagged NNLRT_ATOMIC_INJECT fails at `step`
 * as if the call there had failed with errno `err` (once; NNLRT_CKPT_NONE turns it off). */
void nnlrt_atomic_fail_at(NnlrtCkptStep step, int err);
/* Whether that write is to fail at `step` now (once), with errno set as it would be. */
bool nnlrt_atomic_injected(const NnlrtAtomic *a, NnlrtCkptStep step);

/* ---- trainer_main.c: command-line options, for trainers and nnlc ---- */

/* "--name=value" or "--name value" at argv[*i]: the value, advancing *i past it; NULL when
 * argv[*i] is not --name, or (with *missing set) when the value is missing. */
const char *nnlrt_option_value(const char *name, int argc, char **argv, int *i,
                               bool *missing);
/* A --set value without '=': reports "PROG: error: --set needs KEY=VALUE, not 'epochs'
 * (e.g. --set epochs=5)" with an example from `next` (the argument after it, or NULL) and
 * returns true; false, silently, for a KEY=VALUE. */
bool nnlrt_set_not_pair(const char *prog, const char *value, const char *next);

/* ---- run_options.c: the options a run records in its checkpoints ----
 *
 * Options as words of a command line, each option followed by its value when it takes
 * one ("--set", "epochs=40", "--float64"). A resume parses the words recorded in its
 * checkpoint before its own command line's, which win (docs/checkpoints.md). */

typedef enum {
    NNLRT_OPT_FLAG,  /* no value: --float64 */
    NNLRT_OPT_ONE,   /* a value, the last one wins: --log FILE */
    NNLRT_OPT_SET,   /* KEY=VALUE items, the last of each key wins: --set */
    NNLRT_OPT_NAMED, /* NAME=VALUE, the last of each NAME wins: --data */
} NnlrtOptKind;

typedef struct {
    const char *name; /* "--set" */
    NnlrtOptKind kind;
} NnlrtOptSpec;

/* One KEY=VALUE item of a --set text, pointing into it: the key, and the item trimmed. */
typedef struct {
    const char *key;
    int key_len;
    const char *text;
    int len;
} NnlrtSetItem;

enum { NNLRT_MAX_SET_ITEMS = 64 };

/* The items of a --set text, separated by ';' or new lines outside strings ("epochs=4;
 * batch = 8"): at most max into items; returns how many. Pieces without "KEY =" are left
 * out. */
int nnlrt_set_items(const char *text, NnlrtSetItem *items, int max);
/* words[0..n) without the occurrences a later one replaces (the same option of kind ONE
 * or FLAG, the same NAME, a --set whose every key is set again later), in order, into out
 * (room for n); returns how many. */
int nnlrt_options_dedupe(const NnlrtOptSpec *spec, int n_spec, const char *const *words, int n,
                         const char **out);
/* Says on `out` what a resume goes on with: "PROG: with the options recorded in
 * CKPT: WORDS" (words[0..n_old), the recorded ones), then a line for each of the command
 * line's options (words[n_old..n)) that replaces a recorded one with another value:
 * "PROG: --set epochs=50 replaces epochs=40, recorded in CKPT". */
void nnlrt_options_report(FILE *out, const char *prog, const char *ckpt,
                          const NnlrtOptSpec *spec, int n_spec, const char *const *words,
                          int n_old, int n);
/* `s` as one shell word: as it is when plain, else in single quotes (in buf, of n bytes). */
const char *nnlrt_shell_word(const char *s, char *buf, size_t n);

/* ---- str.c: the growable string ----
 *
 * data is NUL-terminated once anything was added (NULL before: nnlrt_str_cstr gives "");
 * it grows through nnlrt_realloc, so running out of memory reports and exits like every
 * allocation (in nnlc: "nnlc: error: out of memory (allocating N bytes)", status 2). */

typedef struct {
    char *data;
    size_t len, cap;
} NnlrtStr;

void nnlrt_str_putn(NnlrtStr *s, const char *p, size_t n);
void nnlrt_str_puts(NnlrtStr *s, const char *p);
void nnlrt_str_putc(NnlrtStr *s, char c);
void nnlrt_str_printf(NnlrtStr *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nnlrt_str_vprintf(NnlrtStr *s, const char *fmt, va_list ap);
const char *nnlrt_str_cstr(const NnlrtStr *s);
/* Empties s, keeping its memory. */
void nnlrt_str_clear(NnlrtStr *s);
void nnlrt_str_free(NnlrtStr *s);

#endif
