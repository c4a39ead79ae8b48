/* modules.c - the modules a job's function module imports from its own
 * folder (qp_job_modules), which go with the function to every worker in
 * `.qp.def`'s `modules` option: a server elsewhere has no such files, and
 * `from ohlc import ohlc` in slow.py must work there as it does here.
 *
 * What counts as an import is read line by line, as the statements are
 * written, without Python: a line that starts (after its indentation)
 * with `import a.b as c, d` or `from a.b import x` names a and d. Each
 * name N for which the module's folder holds N.py is shipped, and the
 * modules it imports in turn (a breadth-first walk, each file once).
 * Relative imports (`from . import x`) and packages (folders) are not:
 * a script's folder is not a package. A name read from a string or a
 * comment can only ship a file that is there, never fail a run.
 */
#include "sched_int.h"
#include "core/fileio_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { MAX_MODULES = 64, MAX_BYTES = 16 << 20 };

static bool name_char(char c, bool first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (!first && c >= '0' && c <= '9');
}

/* The length of the identifier at p (0 when none). */
static size_t ident(const char *p, const char *end)
{
    size_t n = 0;
    while (p + n < end && name_char(p[n], n == 0)) n++;
    return n;
}

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    return p;
}

/* Adds name (n bytes) to names unless it is there: 0 or QP_ENOMEM. */
static int add_name(qp_value *names, const char *name, size_t n)
{
    const char *s = qp_sym_intern(name, n);
    if (!s) return QP_ENOMEM;
    for (int64_t i = 0; i < names->v.n; i++)
        if (qp_S(names)[i] == s) return 0;
    return qp_vec_append(names, &s);
}

/* The names line [p, end) imports: `import a.b as c, d` or `from a import
 * x` (the first dotted part of each module), into names. */
static int line_imports(const char *p, const char *end, qp_value *names)
{
    p = skip_blanks(p, end);
    bool from = end - p > 5 && !strncmp(p, "from", 4) && (p[4] == ' ' || p[4] == '\t');
    bool imp = end - p > 7 && !strncmp(p, "import", 6) && (p[6] == ' ' || p[6] == '\t');
    if (!from && !imp) return 0;
    p = skip_blanks(p + (from ? 4 : 6), end);
    for (;;) {
        size_t n = ident(p, end);
        if (!n) return 0;                     /* relative, or not an import */
        int rc = add_name(names, p, n);
        if (rc || from) return rc;
        /* past the dotted name and its `as alias` to the next comma */
        while (p < end && *p != ',' && *p != '#' && *p != ';') p++;
        if (p == end || *p != ',') return 0;
        p = skip_blanks(p + 1, end);
    }
}

/* Every name text imports, into names. */
static int text_imports(const char *text, size_t len, qp_value *names)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        int rc = line_imports(p, eol, names);
        if (rc) return rc;
        p = eol + 1;
    }
    return 0;
}

/* dir/name.py when it is a regular file: malloc'd path, else NULL. */
static char *sibling(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 5;
    char *p = malloc(n);
    struct stat st;
    if (p) snprintf(p, n, "%s/%s.py", dir, name);
    if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode)) return p;
    free(p);
    return NULL;
}

/* Reads module names[i]'s file (dir/NAME.py, or the function's own for
 * the first walk) into the dict being built, and queues what it imports. */
static int visit(const char *path, const char *self, qp_value *names, qp_value *keys,
                 qp_value *vals, size_t *bytes, char *err, size_t errlen)
{
    qp_buf *b = NULL;
    int rc = qp__file_read(path, &b);
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, qp_strerror(rc));
        return rc;
    }
    if ((*bytes += b->len) > MAX_BYTES) {
        snprintf(err, errlen, "%s: the modules beside the function's module come to over %d MB: "
                 "too much to send with it (install them on the workers instead)", path,
                 MAX_BYTES >> 20);
        qp_buf_unref(b);
        return QP_EARG;
    }
    rc = text_imports((const char *)b->data, b->len, names);
    if (!rc && self) {
        qp_value *src = qp_string((const char *)b->data, b->len);
        const char *k = qp_sym_intern(self, strlen(self));
        if (!src || !k || qp_vec_append(keys, &k) < 0 || qp_vec_append(vals, &src) < 0) {
            qp_unref(src);
            rc = QP_ENOMEM;
        }
    }
    qp_buf_unref(b);
    return rc;
}

static int cmp_sym(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* keys!vals with the keys in name order (the same bytes every run). */
static qp_value *sorted_dict(qp_value *keys, qp_value *vals)
{
    int64_t n = keys->v.n;
    qp_value *k = qp_vector(QP_SYMBOL, n), *v = qp_vector(QP_LIST, n);
    if (!k || !v) { qp_unref(k); qp_unref(v); return NULL; }
    memcpy(k->v.data, keys->v.data, (size_t)n * sizeof(char *));
    qsort(k->v.data, (size_t)n, sizeof(char *), cmp_sym);
    for (int64_t i = 0; i < n; i++) {
        int64_t j = 0;
        while (qp_S(keys)[j] != qp_S(k)[i]) j++;
        qp_K(v)[i] = qp_ref(qp_K(vals)[j]);
    }
    return qp_dict(k, v);
}

int qp_job_modules(const char *file, qp_value **out, char *err, size_t errlen)
{
    *out = NULL;
    char *dir = strdup(file), *slash = dir ? strrchr(dir, '/') : NULL, *base = NULL;
    if (dir && slash) *slash = '\0';
    else if (dir) strcpy(dir, ".");
    base = strdup(slash ? slash + 1 : file);
    if (base && strlen(base) > 3 && !strcmp(base + strlen(base) - 3, ".py"))
        base[strlen(base) - 3] = '\0';
    qp_value *names = qp_vector(QP_SYMBOL, 0), *keys = qp_vector(QP_SYMBOL, 0);
    qp_value *vals = qp_vector(QP_LIST, 0);
    size_t bytes = 0;
    int rc = dir && base && names && keys && vals ? 0 : QP_ENOMEM;
    if (!rc) rc = add_name(names, base, strlen(base));    /* never itself */
    if (!rc) rc = visit(file, NULL, names, keys, vals, &bytes, err, errlen);
    for (int64_t i = 1; !rc && i < names->v.n; i++) {
        char *p = sibling(dir, qp_S(names)[i]);
        if (!p) continue;                   /* installed, or a builtin */
        if (keys->v.n == MAX_MODULES) {
            snprintf(err, errlen, "%s: imports more than %d modules from its folder %s (shipped "
                     "with it): install them on the workers instead", file, MAX_MODULES, dir);
            rc = QP_EARG;
        } else {
            rc = visit(p, qp_S(names)[i], names, keys, vals, &bytes, err, errlen);
        }
        free(p);
    }
    if (!rc && !(*out = sorted_dict(keys, vals))) rc = QP_ENOMEM;
    if (rc == QP_ENOMEM) snprintf(err, errlen, "out of memory");
    qp_unref(names);
    qp_unref(keys);
    qp_unref(vals);
    free(dir);
    free(base);
    return rc;
}
