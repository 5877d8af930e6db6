/* check.h — the harness the C test programs share: EXPECT, libnnlrt's messages captured,
 * a private temporary directory, whole files, and the group runner.
 *
 * A test program is one C file that includes this header (before any system header, or
 * with _DEFAULT_SOURCE defined). Its groups are one table,
 *
 *     static const CheckGroup groups[] = {
 *         CHECK_GROUP(csv, test_csv),
 *         CHECK_GROUP(rng, test_rng),
 *     };
 *
 * and main ends with `return check_run(groups, CHECK_COUNT(groups), "PROGRAM", argv[1]);`.
 * tests/CMakeLists.txt's check_groups() reads the CHECK_GROUP lines of the source to
 * register one ctest per group, so a group is added in the table alone.
 */
#ifndef CHECK_H
#define CHECK_H

#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* mkdtemp; a program that includes system headers first defines it */
#endif
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnlrt.h"

#define CHECK_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- failures ---- */

static int check_failures;

static inline void check_fail(const char *file, int line, const char *cond, const char *fmt,
                              ...)
{
    fprintf(stderr, "%s:%d: FAIL: %s: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    check_failures++;
}

/* Counts a failure, with the condition and a printf-style explanation, when cond is false;
 * the test goes on. */
#define EXPECT(cond, ...)                                                                     \
    do {                                                                                      \
        if (!(cond))                                                                          \
            check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                               \
    } while (0)

/* ---- libnnlrt's messages (check_capture_messages installs the handler) ---- */

static char check_message[2048]; /* the last one */
static int check_messages;       /* how many since check_clear */

static inline void check_capture(void *ctx, const char *message)
{
    (void)ctx;
    snprintf(check_message, sizeof check_message, "%s", message);
    check_messages++;
}

static inline void check_capture_messages(void)
{
    nnlrt_set_error_handler(check_capture, NULL);
}

static inline void check_clear(void)
{
    check_message[0] = 0;
    check_messages = 0;
}

static inline void check_expect_message(const char *file, int line, const char *path,
                                        const char *tail, bool only)
{
    char want[2048];
    snprintf(want, sizeof want, "%s%s", path ? path : "", tail);
    if (strcmp(check_message, want) != 0)
        check_fail(file, line, "message", "\n  got  '%s'\n  want '%s'", check_message, want);
    if (only && check_messages != 1)
        check_fail(file, line, "one message", "%d messages for one error", check_messages);
}

/* The last message is PATH (none when NULL) followed by TAIL; EXPECT_ONE_MESSAGE: and it is
 * the only one since check_clear. */
#define EXPECT_MESSAGE(path, tail) check_expect_message(__FILE__, __LINE__, path, tail, false)
#define EXPECT_ONE_MESSAGE(path, tail) check_expect_message(__FILE__, __LINE__, path, tail, true)

/* ---- the temporary directory ---- */

static char check_dir[1024];
static pid_t check_dir_owner;

static inline void check_remove_tree(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[2048];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (depth < 3 && lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            check_remove_tree(path, depth + 1);
        else
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* At exit of the process that made it (not of a forked child). */
static inline void check_remove_dir(void)
{
    if (getpid() == check_dir_owner)
        check_remove_tree(check_dir, 0);
}

/* A fresh directory under $TMPDIR (or /tmp), made on first use and removed at exit with
 * what is left in it (three levels of subdirectories). Exits (2) when it cannot be made:
 * a test that cannot write its files tests nothing. */
static inline const char *check_tmp_dir(void)
{
    if (check_dir[0])
        return check_dir;
    const char *base = getenv("TMPDIR");
    snprintf(check_dir, sizeof check_dir, "%s/nnl-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(check_dir)) {
        fprintf(stderr, "check: cannot create a directory in %s\n", base ? base : "/tmp");
        exit(2);
    }
    check_dir_owner = getpid();
    atexit(check_remove_dir);
    return check_dir;
}

/* "<the temporary directory>/<name>": the same pointer for the same name, for as long as
 * the program runs. */
static inline const char *check_tmp_path(const char *name)
{
    enum { MAX_NAMES = 64 };
    static char names[MAX_NAMES][64], paths[MAX_NAMES][1200];
    static int n;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return paths[i];
    if (n == MAX_NAMES || strlen(name) >= sizeof names[0]) {
        fprintf(stderr, "check: too many temporary names, or too long: %s\n", name);
        exit(2);
    }
    snprintf(names[n], sizeof names[0], "%s", name);
    snprintf(paths[n], sizeof paths[0], "%s/%s", check_tmp_dir(), name);
    return paths[n++];
}

/* ---- files ---- */

/* The whole file with a NUL after it (caller frees), its length in *len (when not NULL);
 * NULL (and a length of 0) when it cannot be read. */
static inline char *check_read_file(const char *path, size_t *len)
{
    if (len)
        *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *s = malloc(cap);
    while (s && (got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n == cap - 1)
            s = realloc(s, cap *= 2);
    }
    fclose(f);
    if (s)
        s[n] = 0;
    if (len)
        *len = n;
    return s;
}

static inline bool check_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = len == 0 || fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* Both files can be read and hold the same bytes. */
static inline bool check_same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = check_read_file(a, &na), *y = check_read_file(b, &nb);
    bool same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* ---- groups ---- */

typedef struct {
    const char *name;
    void (*run)(void);
} CheckGroup;

/* One line each: tests/CMakeLists.txt reads the names from the source. */
#define CHECK_GROUP(name, fn) {#name, fn}

/* "usage: PROGRAM a|b|c ARGS" on stderr; returns 2, the exit code of a usage error. */
static inline int check_usage(const char *program, const CheckGroup *groups, size_t n,
                              const char *args)
{
    fprintf(stderr, "usage: %s ", program);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%s", i ? "|" : "", groups[i].name);
    fprintf(stderr, "%s%s\n", args ? " " : "", args ? args : "");
    return 2;
}

/* Runs the group called `name`: the exit code, 0 when every check passed, 1 after a failure
 * (counted on stderr), 2 for a name the table does not have. */
static inline int check_run(const CheckGroup *groups, size_t n, const char *program,
                            const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(groups[i].name, name) != 0)
            continue;
        groups[i].run();
        if (check_failures)
            fprintf(stderr, "%s: %d failure%s\n", name, check_failures,
                    check_failures == 1 ? "" : "s");
        return check_failures ? 1 : 0;
    }
    fprintf(stderr, "%s: unknown group '%s'\n", program, name);
    return 2;
}

#endif
