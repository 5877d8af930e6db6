/* str.c — the growable string (nnlrt_util.h): log rows, JSON headers, nnlc's dumps and
 * generated C. Its memory comes from nnlrt_realloc, whose failure reports and exits. */
#include <stdio.h>
#include <string.h>

#include "nnlrt_int.h"

/* Room for `extra` more bytes and the NUL: doubling from 256. */
static void str_reserve(NnlrtStr *s, size_t extra)
{
    if (s->len + extra + 1 <= s->cap)
        return;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + extra + 1)
        cap = nnlrt_array_bytes(cap, 2);
    s->data = nnlrt_realloc(s->data, cap);
    s->cap = cap;
}

void nnlrt_str_putn(NnlrtStr *s, const char *p, size_t n)
{
    str_reserve(s, n);
    memcpy(s->data + s->len, p, n);
    s->len += n;
    s->data[s->len] = 0;
}

void nnlrt_str_puts(NnlrtStr *s, const char *p)
{
    nnlrt_str_putn(s, p, strlen(p));
}

void nnlrt_str_putc(NnlrtStr *s, char c)
{
    nnlrt_str_putn(s, &c, 1);
}

void nnlrt_str_vprintf(NnlrtStr *s, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n > 0) {
        str_reserve(s, (size_t)n);
        vsnprintf(s->data + s->len, (size_t)n + 1, fmt, ap);
        s->len += (size_t)n;
    }
}

void nnlrt_str_printf(NnlrtStr *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nnlrt_str_vprintf(s, fmt, ap);
    va_end(ap);
}

const char *nnlrt_str_cstr(const NnlrtStr *s)
{
    return s->data ? s->data : "";
}

void nnlrt_str_clear(NnlrtStr *s)
{
    s->len = 0;
    if (s->data)
        s->data[0] = 0;
}

void nnlrt_str_free(NnlrtStr *s)
{
    nnlrt_free(s->data);
    *s = (NnlrtStr){0};
}
