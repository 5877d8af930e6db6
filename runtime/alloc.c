/* alloc.c — the one place the runtime allocates memory.
 *
 * Running out of memory is not recoverable in a training run: say how much was asked for
 * and stop with status 2 (a resource problem, like an I/O error, not a bug).
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnlrt_int.h"

/* ---- failure injection: NNL_FAIL_ALLOC (docs/cli.md) ----
 *
 * NNL_FAIL_ALLOC=N makes the N-th allocation of the process fail as if malloc had returned
 * NULL; NNL_FAIL_ALLOC=count prints how many allocations the process made when it exits.
 * nnlc's own allocator (compiler/util.c) asks here too, so one count covers the compiler
 * and the runtime in the order they allocate, and a test can make each one fail in turn.
 *
 * It is in every build, not only in a test build: the test then runs the very nnlc and
 * trainers users get, and the cost is one predictable branch on a static per allocation
 * (the variable is read once, at the first allocation), none of them on a per-step path. */

enum { INJECT_UNREAD, INJECT_OFF, INJECT_COUNT, INJECT_FAIL };
static int inject_mode = INJECT_UNREAD;
static unsigned long long inject_count, inject_fail_at;

static void inject_report(void)
{
    fprintf(stderr, "%s: note: NNL_FAIL_ALLOC: %llu allocations\n", nnlrt_program_name(),
            inject_count);
}

/* A value that is neither a count nor "count" is refused, not ignored: a test that
 * misspells it would otherwise pass without injecting anything. */
static void inject_read(void)
{
    const char *v = getenv("NNL_FAIL_ALLOC");
    inject_mode = INJECT_OFF;
    if (!v || !*v)
        return;
    if (strcmp(v, "count") == 0) {
        inject_mode = INJECT_COUNT;
        atexit(inject_report);
        return;
    }
    inject_fail_at = strspn(v, "0123456789") == strlen(v) ? strtoull(v, NULL, 10) : 0;
    if (inject_fail_at == 0 || inject_fail_at == ULLONG_MAX) {
        fprintf(stderr, "%s: error: NNL_FAIL_ALLOC must be 'count' or the number (from 1) of "
                "the allocation to fail, not '%s'\n", nnlrt_program_name(), v);
        exit(NNLRT_EIO);
    }
    inject_mode = INJECT_FAIL;
}

bool nnlrt_alloc_fails(void)
{
    if (__builtin_expect(inject_mode == INJECT_OFF, 1))
        return false;
    if (inject_mode == INJECT_UNREAD) {
        inject_read();
        if (inject_mode == INJECT_OFF)
            return false;
    }
    return ++inject_count == inject_fail_at;
}

/* ---- what to undo before exiting for want of memory ---- */

static void (*oom_cleanup_fn)(void *);
static void *oom_cleanup_ctx;

void nnlrt_set_oom_cleanup(void (*fn)(void *ctx), void *ctx)
{
    oom_cleanup_fn = fn;
    oom_cleanup_ctx = ctx;
}

void nnlrt_oom_cleanup(void)
{
    void (*fn)(void *) = oom_cleanup_fn;
    oom_cleanup_fn = NULL;
    if (fn)
        fn(oom_cleanup_ctx);
}

static void nnlrt_out_of_memory(size_t size)
{
    nnlrt_oom_cleanup();
    fprintf(stderr, "%s: error: out of memory (allocating %zu bytes)\n", nnlrt_program_name(),
            size);
    exit(NNLRT_EIO);
}

void *nnlrt_alloc(size_t size)
{
    void *p = nnlrt_alloc_fails() ? NULL : malloc(size ? size : 1);
    if (!p)
        nnlrt_out_of_memory(size);
    return p;
}

/* aligned_alloc wants a size that is a multiple of the alignment. */
void *nnlrt_alloc_aligned(size_t size)
{
    if (size > SIZE_MAX - (NNLRT_ALIGN - 1))
        nnlrt_out_of_memory(size);
    size_t rounded = (size + NNLRT_ALIGN - 1) / NNLRT_ALIGN * NNLRT_ALIGN;
    if (rounded == 0)
        rounded = NNLRT_ALIGN;
    void *p = nnlrt_alloc_fails() ? NULL : aligned_alloc(NNLRT_ALIGN, rounded);
    if (!p)
        nnlrt_out_of_memory(size);
    memset(p, 0, rounded);
    return p;
}

void *nnlrt_realloc(void *p, size_t size)
{
    void *q = nnlrt_alloc_fails() ? NULL : realloc(p, size ? size : 1);
    if (!q)
        nnlrt_out_of_memory(size);
    return q;
}

void nnlrt_free(void *p)
{
    free(p);
}

/* n * elem bytes, refusing sizes that do not fit in a size_t. */
size_t nnlrt_array_bytes(size_t n, size_t elem)
{
    if (elem != 0 && n > SIZE_MAX / elem) {
        fprintf(stderr, "%s: error: out of memory (allocating %zu elements of %zu bytes)\n",
                nnlrt_program_name(), n, elem);
        exit(NNLRT_EIO);
    }
    return n * elem;
}

char *nnlrt_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = nnlrt_alloc(n);
    memcpy(p, s, n);
    return p;
}
