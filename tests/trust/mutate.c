/* mutate.c — writes a damaged copy of a file, for tests/trust/mutate.sh.
 *
 *   mutate IN OUT SEED
 *
 * 1 to 3 random damages, chosen from SEED alone (the same seed, the same copy): a bit
 * flipped, a byte deleted, a byte inserted (one of the script language's punctuation, a
 * digit, a letter, a quote, a newline or a NUL), a run of up to 16 bytes deleted or
 * repeated, the first half of a line swapped with its second. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnlrt.h"

static unsigned char *text;
static size_t len, cap;

static void room(size_t more)
{
    if (len + more <= cap)
        return;
    cap = 2 * (len + more);
    text = realloc(text, cap);
    if (!text) {
        fprintf(stderr, "mutate: out of memory\n");
        exit(2);
    }
}

static void damage(NnlrtRng *rng)
{
    static const char inserts[] = "{}()[]=,:;.+-*/#\"\n0123456789aexyz_ \t";
    size_t at = len ? (size_t)nnlrt_rand_below(rng, len) : 0;
    size_t run = 1 + (size_t)nnlrt_rand_below(rng, 16);
    if (at + run > len)
        run = len - at;
    switch (nnlrt_rand_below(rng, 6)) {
    case 0: /* flip a bit */
        if (len)
            text[at] ^= (unsigned char)(1u << nnlrt_rand_below(rng, 8));
        break;
    case 1: /* delete a byte */
        if (len)
            memmove(text + at, text + at + 1, --len - at);
        break;
    case 2: { /* insert a byte; the one past the punctuation is a NUL */
        room(1);
        memmove(text + at + 1, text + at, len - at);
        text[at] = (unsigned char)inserts[nnlrt_rand_below(rng, sizeof inserts)];
        len++;
        break;
    }
    case 3: /* delete a run */
        memmove(text + at, text + at + run, len - at - run);
        len -= run;
        break;
    case 4: /* repeat a run */
        room(run);
        memmove(text + at + run, text + at, len - at);
        len += run;
        break;
    default: { /* swap the halves of the line around `at` */
        size_t a = at, b = at;
        while (a > 0 && text[a - 1] != '\n')
            a--;
        while (b < len && text[b] != '\n')
            b++;
        size_t mid = a + (b - a) / 2, n1 = mid - a, n2 = b - mid;
        unsigned char *tmp = malloc(n1 + n2 + 1);
        if (!tmp)
            exit(2);
        memcpy(tmp, text + mid, n2);
        memcpy(tmp + n2, text + a, n1);
        memcpy(text + a, tmp, n1 + n2);
        free(tmp);
        break;
    }
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: mutate IN OUT SEED\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 2;
    }
    size_t got;
    room(4096);
    while ((got = fread(text + len, 1, cap - len, in)) > 0) {
        len += got;
        room(4096);
    }
    fclose(in);
    NnlrtRng rng;
    nnlrt_rng_seed(&rng, strtoull(argv[3], NULL, 10));
    int n = 1 + (int)nnlrt_rand_below(&rng, 3);
    for (int i = 0; i < n; i++)
        damage(&rng);
    FILE *out = fopen(argv[2], "wb");
    if (!out || fwrite(text, 1, len, out) != len || fclose(out) != 0) {
        perror(argv[2]);
        return 2;
    }
    free(text);
    return 0;
}
