/* distinct.c - the distinct items of a vector, sorted (value.h): what a
 * `by = column` plan partitions by and what `.qp.distinct` answers, over a
 * resident column, a mapped enumeration or a db's partitions. */
#include "qpeach/value.h"

#include <stdlib.h>
#include <string.h>

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
