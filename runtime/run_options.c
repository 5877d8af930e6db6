/* run_options.c — the options a run records in its checkpoints, and how a resume goes on
 * with them (docs/checkpoints.md, "Resuming"), for nnlc and trainers alike.
 *
 * A run's options are words of a command line, each option name followed by its value:
 * "--set", "epochs=40", "--log", "fit.csv", "--float64". A resume parses the recorded words
 * first and its own command line after them, so that its own options win; the run then
 * records the words that still matter (nnlrt_options_dedupe): an option given again
 * replaces the earlier one, and a --set whose every key is set again later is dropped, so
 * that a chain of resumes does not grow its record.
 */
#include <stdio.h>
#include <string.h>

#include "nnlrt_int.h"

static bool set_name_char(char c, bool digits)
{
    return c == '_' || ((c | 32) >= 'a' && (c | 32) <= 'z') || (digits && c >= '0' && c <= '9');
}

/* The items of a --set text: "KEY=VALUE" pieces separated by ';' or new lines (not inside
 * a string), trimmed, with their keys. Pieces without "KEY =" are left out. */
int nnlrt_set_items(const char *text, NnlrtSetItem *items, int max)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        const char *start = p;
        bool quoted = false;
        for (; *p && (quoted || (*p != ';' && *p != '\n')); p++)
            if (*p == '"')
                quoted = !quoted;
        const char *end = p;
        if (*p)
            p++;
        while (start < end && (*start == ' ' || *start == '\t'))
            start++;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            end--;
        const char *k = start;
        if (k < end && set_name_char(*k, false))
            while (k < end && set_name_char(*k, true))
                k++;
        const char *eq = k;
        while (eq < end && (*eq == ' ' || *eq == '\t'))
            eq++;
        if (k == start || eq == end || *eq != '=' || n == max)
            continue;
        items[n++] = (NnlrtSetItem){start, (int)(k - start), start, (int)(end - start)};
    }
    return n;
}

static const NnlrtOptSpec *opt_spec(const NnlrtOptSpec *spec, int n_spec, const char *word)
{
    for (int i = 0; i < n_spec; i++)
        if (strcmp(spec[i].name, word) == 0)
            return &spec[i];
    return NULL;
}

/* The length of a --data value's name: "train=x.csv" -> 5. */
static size_t opt_named_len(const char *value)
{
    return strcspn(value, "=");
}

static bool set_has_key(const char *text, const NnlrtSetItem *key)
{
    NnlrtSetItem items[NNLRT_MAX_SET_ITEMS];
    int n = nnlrt_set_items(text, items, NNLRT_MAX_SET_ITEMS);
    for (int i = 0; i < n; i++)
        if (items[i].key_len == key->key_len && memcmp(items[i].key, key->key, (size_t)key->key_len) == 0)
            return true;
    return false;
}

/* Whether the occurrence at words[i] (an option with its value at i + 1, if it takes one)
 * is replaced by one after it, at j. */
static bool opt_replaced_by(const NnlrtOptSpec *s, const char *const *words, int i, int j)
{
    if (strcmp(words[i], words[j]) != 0)
        return false;
    switch (s->kind) {
    case NNLRT_OPT_FLAG:
    case NNLRT_OPT_ONE:
        return true;
    case NNLRT_OPT_NAMED: {
        size_t a = opt_named_len(words[i + 1]), b = opt_named_len(words[j + 1]);
        return a == b && memcmp(words[i + 1], words[j + 1], a) == 0;
    }
    default: /* NNLRT_OPT_SET: replaced key by key, elsewhere */
        return false;
    }
}

/* The words an occurrence of the option `word` takes: 2 with its value, 1 for a flag (and
 * for a word that is no option of spec). */
static int opt_width(const NnlrtOptSpec *spec, int n_spec, const char *word)
{
    const NnlrtOptSpec *s = opt_spec(spec, n_spec, word);
    return s && s->kind != NNLRT_OPT_FLAG ? 2 : 1;
}

/* Every key of the --set at words[i] is set by a --set after it. */
static bool set_replaced(const char *const *words, int n, int i)
{
    NnlrtSetItem items[NNLRT_MAX_SET_ITEMS];
    int k = nnlrt_set_items(words[i + 1], items, NNLRT_MAX_SET_ITEMS);
    for (int a = 0; a < k; a++) {
        bool later = false;
        for (int j = i + 2; !later && j + 1 < n; j++)
            later = strcmp(words[j], words[i]) == 0 && set_has_key(words[j + 1], &items[a]);
        if (!later)
            return false;
    }
    return k > 0;
}

int nnlrt_options_dedupe(const NnlrtOptSpec *spec, int n_spec, const char *const *words, int n,
                         const char **out)
{
    int kept = 0;
    for (int i = 0; i < n;) {
        const NnlrtOptSpec *s = opt_spec(spec, n_spec, words[i]);
        int w = opt_width(spec, n_spec, words[i]);
        bool replaced = false;
        if (s && s->kind == NNLRT_OPT_SET)
            replaced = i + 1 < n && set_replaced(words, n, i);
        else if (s && i + w <= n)
            for (int j = i + w; !replaced && j < n; j += opt_width(spec, n_spec, words[j]))
                replaced = j + w <= n && opt_replaced_by(s, words, i, j);
        for (int k = 0; k < w && i + k < n; k++)
            if (!replaced)
                out[kept++] = words[i + k];
        i += w;
    }
    return kept;
}

const char *nnlrt_shell_word(const char *s, char *buf, size_t n)
{
    if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                        "_-+=./:,@%") == strlen(s))
        return s;
    size_t used = 0;
    buf[used++] = '\'';
    for (; *s && used + 6 < n; s++) {
        if (*s == '\'') {
            memcpy(buf + used, "'\\''", 4);
            used += 4;
        } else
            buf[used++] = *s;
    }
    buf[used++] = '\'';
    buf[used] = 0;
    return buf;
}

static void print_words(FILE *out, const char *const *words, int n)
{
    char buf[1024];
    for (int i = 0; i < n; i++)
        fprintf(out, " %s", nnlrt_shell_word(words[i], buf, sizeof buf));
}

/* For the --set at words[j] (of the command line): each key that a recorded --set (words
 * before n_old) gave another value. */
static void report_set(FILE *out, const char *prog, const char *ckpt, const char *const *words,
                       int n_old, int j)
{
    NnlrtSetItem now[NNLRT_MAX_SET_ITEMS];
    int k = nnlrt_set_items(words[j + 1], now, NNLRT_MAX_SET_ITEMS);
    for (int a = 0; a < k; a++) {
        NnlrtSetItem before = {0}, items[NNLRT_MAX_SET_ITEMS];
        for (int i = 0; i + 1 < n_old; i++) {
            if (strcmp(words[i], words[j]) != 0)
                continue;
            int m = nnlrt_set_items(words[i + 1], items, NNLRT_MAX_SET_ITEMS);
            for (int b = 0; b < m; b++)
                if (items[b].key_len == now[a].key_len &&
                    memcmp(items[b].key, now[a].key, (size_t)now[a].key_len) == 0)
                    before = items[b];
        }
        if (before.text && (before.len != now[a].len ||
                            memcmp(before.text, now[a].text, (size_t)now[a].len) != 0))
            fprintf(out, "%s: %s %.*s replaces %.*s, recorded in %s\n", prog, words[j],
                    now[a].len, now[a].text, before.len, before.text, ckpt);
    }
}

void nnlrt_options_report(FILE *out, const char *prog, const char *ckpt,
                          const NnlrtOptSpec *spec, int n_spec, const char *const *words,
                          int n_old, int n)
{
    if (n_old > 0) {
        fprintf(out, "%s: with the options recorded in %s:", prog, ckpt);
        print_words(out, words, n_old);
        fputc('\n', out);
    }
    for (int j = n_old; j < n; j += opt_width(spec, n_spec, words[j])) {
        const NnlrtOptSpec *s = opt_spec(spec, n_spec, words[j]);
        if (!s || s->kind == NNLRT_OPT_FLAG || j + 1 >= n)
            continue;
        if (s->kind == NNLRT_OPT_SET) {
            report_set(out, prog, ckpt, words, n_old, j);
            continue;
        }
        int before = -1;
        for (int i = 0; i + 1 < n_old; i += opt_width(spec, n_spec, words[i]))
            if (opt_replaced_by(s, words, i, j))
                before = i;
        if (before >= 0 && strcmp(words[before + 1], words[j + 1]) != 0)
            fprintf(out, "%s: %s %s replaces %s %s, recorded in %s\n", prog, words[j],
                    words[j + 1], words[before], words[before + 1], ckpt);
    }
}
