/* data_find.c — where a data file named in a script is.
 *
 * An absolute name is taken as it is. A relative one is looked for, in order: next to the
 * script, in each directory of NNL_DATA_PATH (colon-separated; empty entries are
 * skipped, not read as the current directory), then in /usr/share/datasets. The first
 * candidate that exists and is not a directory wins.
 */
#define _POSIX_C_SOURCE 200809L /* stat */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nnlrt_int.h"

static const char FIND_SYSTEM_DIR[] = "/usr/share/datasets";

/* Called with each directory to look in (not NUL-terminated); true stops the walk. */
typedef bool (*FindVisit)(void *ctx, const char *dir, size_t len);

static void find_walk(const char *script_dir, FindVisit visit, void *ctx)
{
    const char *here = script_dir && *script_dir ? script_dir : ".";
    if (visit(ctx, here, strlen(here)))
        return;
    const char *p = getenv("NNL_DATA_PATH");
    while (p && *p) {
        size_t len = strcspn(p, ":");
        if (len > 0 && visit(ctx, p, len))
            return;
        p += len + (p[len] == ':');
    }
    visit(ctx, FIND_SYSTEM_DIR, sizeof FIND_SYSTEM_DIR - 1);
}

static bool find_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

typedef struct {
    const char *name;
    char *buf;
    size_t n;
    bool found;
} FindSearch;

/* dir/name into buf ("name" alone for "."); false when it does not fit. */
static bool find_join(FindSearch *s, const char *dir, size_t len)
{
    int w;
    if (len == 1 && dir[0] == '.')
        w = snprintf(s->buf, s->n, "%s", s->name);
    else
        w = snprintf(s->buf, s->n, "%.*s%s%s", (int)len, dir, dir[len - 1] == '/' ? "" : "/",
                     s->name);
    return w >= 0 && (size_t)w < s->n;
}

static bool find_visit(void *ctx, const char *dir, size_t len)
{
    FindSearch *s = ctx;
    s->found = len < (size_t)INT32_MAX && find_join(s, dir, len) && find_exists(s->buf);
    return s->found;
}

const char *nnlrt_find_data(const char *name, const char *script_dir, char *buf, size_t n)
{
    if (!name || !*name || n == 0)
        return NULL;
    FindSearch s = {name, buf, n, false};
    if (name[0] == '/')
        s.found = strlen(name) < n && find_exists(name) && snprintf(buf, n, "%s", name) >= 0;
    else
        find_walk(script_dir, find_visit, &s);
    return s.found ? buf : NULL;
}

typedef struct {
    char *buf;
    size_t n, used;
} FindList;

/* Appends ", dir" (or "dir" first); when it does not fit, ends the list with ", ..." (or
 * "..." cutting into it when even that does not fit). */
static bool find_list(void *ctx, const char *dir, size_t len)
{
    FindList *l = ctx;
    const char *sep = l->used ? ", " : "";
    int w = len < (size_t)INT32_MAX
                ? snprintf(l->buf + l->used, l->n - l->used, "%s%.*s", sep, (int)len, dir)
                : -1;
    if (w >= 0 && (size_t)w < l->n - l->used) {
        l->used += (size_t)w;
        return false;
    }
    const char *more = l->used ? ", ..." : "...";
    size_t at = l->used;
    if (at + strlen(more) >= l->n) {
        more = "...";
        at = l->n > 4 ? l->n - 4 : 0;
    }
    snprintf(l->buf + at, l->n - at, "%s", more);
    return true;
}

const char *nnlrt_data_places(const char *name, const char *script_dir, char *buf, size_t n)
{
    if (n == 0)
        return buf;
    buf[0] = 0;
    FindList l = {buf, n, 0};
    if (name && name[0] == '/')
        find_list(&l, name, strlen(name));
    else
        find_walk(script_dir, find_list, &l);
    return buf;
}
