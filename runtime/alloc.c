/* alloc.c — the one place the runtime allocates memory.
 *
 * Running out of memory is not recoverable in a training run: say how much was asked for
 * and stop with status 2 (a resource problem, like an I/O error, not a bug).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnlrt_int.h"

static void nnlrt_out_of_memory(size_t size)
{
    fprintf(stderr, "%s: error: out of memory (allocating %zu bytes)\n", nnlrt_program_name(),
            size);
    exit(NNLRT_EIO);
}

void *nnlrt_alloc(size_t size)
{
    void *p = malloc(size ? size : 1);
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
    void *p = aligned_alloc(NNLRT_ALIGN, rounded);
    if (!p)
        nnlrt_out_of_memory(size);
    memset(p, 0, rounded);
    return p;
}

void *nnlrt_realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
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
