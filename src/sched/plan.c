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

/* ---- distinct, sorted ---- */

static int cmp_sym(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}
#define CMP_NUM(name, T)                                                   \
    static int name(const void *a, const void *b)                          \
    {                                                                      \
        T x = *(const T *)a, y = *(const T *)b;                            \
        return (x > y) - (x < y);                                          \
    }
CMP_NUM(cmp_u8, uint8_t)
CMP_NUM(cmp_i16, int16_t)
CMP_NUM(cmp_i32, int32_t)
CMP_NUM(cmp_i64, int64_t)
CMP_NUM(cmp_char, char)
static int cmp_f64(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    if (x != x) return y != y ? 0 : -1;    /* nulls first, as q sorts */
    if (y != y) return 1;
    return (x > y) - (x < y);
}
static int cmp_f32(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    if (x != x) return y != y ? 0 : -1;
    if (y != y) return 1;
    return (x > y) - (x < y);
}
static int cmp_guid(const void *a, const void *b) { return memcmp(a, b, 16); }

/* The distinct symbols an enumeration stands for: one pass marking the
 * indices it uses (a byte per name of its domain; its indices were checked
 * when it was made), then only those names sorted. Sorting a symbol per
 * row instead took seconds for a 10M-row column. */
static qp_value *distinct_enum(const qp_value *v)
{
    const qp_value *dom = v->v.dom;
    int64_t nd = dom->v.n, k = 0;
    uint8_t *seen = calloc((size_t)nd + 1, 1);        /* seen[nd]: the null */
    if (!seen) return NULL;
    const int64_t *idx = qp_J(v);
    for (int64_t i = 0; i < v->v.n; i++) seen[idx[i] == QP_NULL_J ? nd : idx[i]] = 1;
    for (int64_t i = 0; i <= nd; i++) k += seen[i];
    qp_value *s = qp_vector(QP_SYMBOL, k), *d = NULL;
    const char *empty = qp_sym_intern("", 0);
    if (s && empty) {
        k = 0;
        for (int64_t i = 0; i <= nd; i++)
            if (seen[i]) qp_S(s)[k++] = i == nd ? empty : qp_S(dom)[i];
        d = qp_distinct_sorted(s);     /* a domain may hold a name twice */
    }
    qp_unref(s);
    free(seen);
    return d;
}

qp_value *qp_distinct_sorted(const qp_value *v)
{
    if (v->type == QP_ENUM) return distinct_enum(v);
    int (*cmp)(const void *, const void *) = NULL;
    switch (v->type) {
    case QP_BOOL: case QP_BYTE: cmp = cmp_u8; break;
    case QP_SHORT: cmp = cmp_i16; break;
    case QP_INT: case QP_MONTH: case QP_DATE: case QP_MINUTE: case QP_SECOND: case QP_TIME:
        cmp = cmp_i32; break;
    case QP_LONG: case QP_TIMESTAMP: case QP_TIMESPAN: cmp = cmp_i64; break;
    case QP_REAL: cmp = cmp_f32; break;
    case QP_FLOAT: case QP_DATETIME: cmp = cmp_f64; break;
    case QP_CHAR: cmp = cmp_char; break;
    case QP_SYMBOL: cmp = cmp_sym; break;
    case QP_GUID: cmp = cmp_guid; break;
    default: return qp_error("cannot partition by a column of type %s", qp_type_name(v->type));
    }
    size_t w = qp_type_width(v->type);
    qp_value *r = qp_vector(v->type, v->v.n);
    if (!r) return NULL;
    if (v->v.n) memcpy(r->v.data, v->v.data, (size_t)v->v.n * w);
    qsort(r->v.data, (size_t)r->v.n, w, cmp);
    int64_t k = 0;
    char *d = r->v.data;
    for (int64_t i = 0; i < r->v.n; i++)
        if (k == 0 || cmp(d + (size_t)(k - 1) * w, d + (size_t)i * w)) {
            if (k != i) memcpy(d + (size_t)k * w, d + (size_t)i * w, w);
            k++;
        }
    r->v.n = k;
    /* The comparisons take -0.0 as 0.0 and every NaN as one, as q's =
     * does; each kept value is written as that one (0.0, the null), which
     * the rows of its partition are then selected by (qp_item_eq). */
    for (int64_t i = 0; i < k; i++) qp_item_key(r->type, d + (size_t)i * w, d + (size_t)i * w);
    return r;
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

int qp_partplan_files(const char *pattern, qp_partplan **out)
{
    *out = NULL;
    glob_t g;
    int rc = glob(pattern, GLOB_ERR, NULL, &g);
    if (rc == GLOB_NOMATCH) { globfree(&g); return QP_EARG; }
    if (rc) { globfree(&g); return rc == GLOB_NOSPACE ? QP_ENOMEM : QP_EIO; }
    /* glob sorts by the locale; the plan must not depend on it. */
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_sym);
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
