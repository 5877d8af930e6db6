/* error.c — runtime error messages: "file:line:col: error: msg", to stderr or a handler. */
#include <stdarg.h>
#include <stdio.h>

#include "nnlrt_int.h"

/* A message longer than this is cut; the position and the start of the text are what a
 * reader needs. */
enum { NNLRT_MAX_MESSAGE = 1024 };

static NnlrtErrorFn nnlrt_error_fn;
static void *nnlrt_error_ctx;
static const char *nnlrt_name = "nnlc";

void nnlrt_set_program_name(const char *name)
{
    nnlrt_name = name ? name : "nnlc";
}

const char *nnlrt_program_name(void)
{
    return nnlrt_name;
}

void nnlrt_set_error_handler(NnlrtErrorFn fn, void *ctx)
{
    nnlrt_error_fn = fn;
    nnlrt_error_ctx = ctx;
}

/* The position prefix: as much of file:line:col as is known. */
static int nnlrt_error_prefix(char *buf, size_t size, const char *file, long line, long col)
{
    if (!file)
        return snprintf(buf, size, "%s: ", nnlrt_name);
    if (line <= 0)
        return snprintf(buf, size, "%s: ", file);
    if (col <= 0)
        return snprintf(buf, size, "%s:%ld: ", file, line);
    return snprintf(buf, size, "%s:%ld:%ld: ", file, line, col);
}

/* Bytes of msg in use after a snprintf at `used` returned n (which may report truncation). */
static size_t nnlrt_error_used(size_t size, size_t used, int n)
{
    if (n < 0)
        return used;
    return (size_t)n < size - used ? used + (size_t)n : size - 1;
}

void nnlrt_verror(const char *file, long line, long col, const char *fmt, va_list ap)
{
    char msg[NNLRT_MAX_MESSAGE];
    size_t used = nnlrt_error_used(sizeof msg, 0,
                                   nnlrt_error_prefix(msg, sizeof msg, file, line, col));
    used = nnlrt_error_used(sizeof msg, used, snprintf(msg + used, sizeof msg - used, "error: "));
    vsnprintf(msg + used, sizeof msg - used, fmt, ap);
    if (nnlrt_error_fn)
        nnlrt_error_fn(nnlrt_error_ctx, msg);
    else
        fprintf(stderr, "%s\n", msg);
}

void nnlrt_error(const char *file, long line, long col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nnlrt_verror(file, line, col, fmt, ap);
    va_end(ap);
}
