/* plan.c - partition plans: row ranges, column values, files. Partitions
 * of a resident table travel as descriptors, never as data. */
#include "qpeach/sched.h"
#include "qpeach/table.h"

#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qp_partplan *plan_new(int64_t n)
{
    qp_partplan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->parts = calloc(n ? (size_t)n : 1, sizeof *p->parts);
    if (!p->parts) { free(p); return NULL; }
    p->n = n;
    return p;
}

void qp_partplan_free(qp_partplan *p)
{
    if (!p) return;
    for (int64_t i = 0; i < p->n; i++) {
        qp_unref(p->parts[i].value);
        free(p->parts[i].file);
    }
    free(p->parts);
    free(p->column);
    free(p);
}

int qp_partplan_rows(int64_t count, int pieces, qp_partplan **out)
{
    *out = NULL;
    if (count < 0 || pieces < 1) return QP_EARG;
    int64_t n = count < pieces ? (count ? count : 1) : pieces;
    qp_partplan *p = plan_new(n);
    if (!p) return QP_ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        /* i*count/n without overflow for any count below 2^63 / n. */
        __int128 a = (__int128)count * i / n, b = (__int128)count * (i + 1) / n;
        p->parts[i] = (qp_part){ .kind = QP_PART_ROWS, .start = (int64_t)a, .end = (int64_t)b,
                                 .rows = (int64_t)(b - a) };
    }
    *out = p;
    return 0;
}

int qp_partplan_column(const char *column, const qp_value *values, qp_partplan **out)
{
    *out = NULL;
    if (!qp_is_vector(values) && values->type != QP_ENUM) return QP_EARG;
    qp_value *d = qp_distinct_sorted(values);
    if (!d) return QP_ENOMEM;
    if (qp_is_error(d)) { qp_unref(d); return QP_ETYPE; }
    qp_partplan *p = plan_new(d->v.n);
    if (!p || !(p->column = strdup(column))) { qp_partplan_free(p); qp_unref(d); return QP_ENOMEM; }
    for (int64_t i = 0; i < d->v.n; i++) {
        p->parts[i] = (qp_part){ .kind = QP_PART_COLUMN, .value = qp_item(d, i), .rows = -1 };
        if (!p->parts[i].value) { qp_partplan_free(p); qp_unref(d); return QP_ENOMEM; }
    }
    qp_unref(d);
    *out = p;
    return 0;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int qp_partplan_files(const char *pattern, qp_partplan **out)
{
    *out = NULL;
    glob_t g;
    int rc = glob(pattern, GLOB_ERR, NULL, &g);
    if (rc == GLOB_NOMATCH) { globfree(&g); return QP_EARG; }
    if (rc) { globfree(&g); return rc == GLOB_NOSPACE ? QP_ENOMEM : QP_EIO; }
    /* glob sorts by the locale; the plan must not depend on it. */
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_path);
    qp_partplan *p = plan_new((int64_t)g.gl_pathc);
    if (!p) { globfree(&g); return QP_ENOMEM; }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        p->parts[i] = (qp_part){ .kind = QP_PART_FILE, .file = strdup(g.gl_pathv[i]), .rows = -1 };
        if (!p->parts[i].file) { globfree(&g); qp_partplan_free(p); return QP_ENOMEM; }
    }
    globfree(&g);
    *out = p;
    return 0;
}

qp_value *qp_part_descriptor(const qp_partplan *p, int64_t i)
{
    const qp_part *pt = &p->parts[i];
    switch (pt->kind) {
    case QP_PART_ROWS: {
        qp_value *v = qp_vector(QP_LONG, 2);
        if (v) { qp_J(v)[0] = pt->start; qp_J(v)[1] = pt->end; }
        return v;
    }
    case QP_PART_COLUMN:
        return qp_list(2, qp_symbol(p->column), qp_ref(pt->value));
    default:
        return qp_cstring(pt->file);
    }
}

qp_value *qp_partplan_value(const qp_partplan *p)
{
    qp_value *l = qp_vector(QP_LIST, p->n);
    if (!l) return NULL;
    for (int64_t i = 0; i < p->n; i++) {
        qp_K(l)[i] = qp_part_descriptor(p, i);
        if (!qp_K(l)[i]) {
            for (int64_t k = i; k < p->n; k++) qp_K(l)[k] = qp_identity();
            qp_unref(l);
            return NULL;
        }
    }
    return l;
}

/* An atom as q's console prints it, for messages and log lines ("`IBM",
 * "42", "2024.01.02", "2024.03m", "09:30", "0D00:00:01.500000000"): the
 * console formatter's text, every type included. */
static void atom_text(const qp_value *a, char *buf, size_t n)
{
    char *s = qp_format(a, 1 << 20);
    snprintf(buf, n, "%.*s", s ? (int)strcspn(s, "\n") : 1, s ? s : "?");
    free(s);
}

char *qp_part_describe(const qp_partplan *p, int64_t i)
{
    const qp_part *pt = &p->parts[i];
    char buf[512];
    switch (pt->kind) {
    case QP_PART_ROWS:
        snprintf(buf, sizeof buf, "rows %" PRId64 "-%" PRId64, pt->start, pt->end);
        break;
    case QP_PART_COLUMN: {
        char a[128];
        atom_text(pt->value, a, sizeof a);
        snprintf(buf, sizeof buf, "%s=%s", p->column, a);
        break;
    }
    default: {
        const char *s = strrchr(pt->file, '/');
        snprintf(buf, sizeof buf, "file %s", s ? s + 1 : pt->file);
    }
    }
    return strdup(buf);
}
