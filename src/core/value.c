/* value.c - the q value model: construction, lifetime, items and slices.
 * Memory rules are in include/qpeach/value.h. */
#include "qpeach/value.h"
#include "value_int.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

const char *qp_strerror(int code)
{
    switch (code) {
#define QP__ERR_CASE(name, c, text) case c: return text;
    QP_ERRORS(QP__ERR_CASE)
#undef QP__ERR_CASE
    case 0: return "success";
    default: return code < 0 && code > -1000 ? strerror(-code) : "unknown error";
    }
}

/* ------------------------------------------------------------------ */
/* Buffers                                                             */
/* ------------------------------------------------------------------ */

qp_buf *qp_buf_new_skewed(size_t len, size_t skew)
{
    skew %= 16;
    qp_buf *b = malloc(sizeof *b);
    if (!b) return NULL;
    /* malloc aligns to 16; 16 spare bytes let data start at any skew. */
    b->base = malloc(len + 16 + skew);
    if (!b->base) { free(b); return NULL; }
    uintptr_t p = (uintptr_t)b->base;
    uintptr_t start = ((p + 15) & ~(uintptr_t)15) + skew;
    b->data = (uint8_t *)start;
    b->len = len;
    b->maplen = 0;
    atomic_init(&b->refs, 1);
    return b;
}

qp_buf *qp_buf_new(size_t len) { return qp_buf_new_skewed(len, 0); }

qp_buf *qp_buf_ref(qp_buf *b)
{
    if (b) atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void qp_buf_unref(qp_buf *b)
{
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (b->maplen) munmap(b->base, b->maplen);
    else free(b->base);
    free(b);
}

/* Mappings made so far: lets tests check that a lazy open mapped nothing. */
static atomic_llong maps_made;

long long qp__buf_maps(void) { return atomic_load(&maps_made); }

int qp_buf_map(int fd, size_t len, qp_buf **out)
{
    *out = NULL;
    if (len == 0) {
        *out = qp_buf_new(0);
        return *out ? 0 : QP_ENOMEM;
    }
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return -errno;
    qp_buf *b = malloc(sizeof *b);
    if (!b) { munmap(p, len); return QP_ENOMEM; }
    b->base = p;
    b->data = p;
    b->len = len;
    b->maplen = len;
    atomic_init(&b->refs, 1);
    atomic_fetch_add(&maps_made, 1);
    *out = b;
    return 0;
}

int qp_buf_resize(qp_buf *b, size_t len)
{
    /* Only the one holder of a buffer may move its bytes. */
    assert(atomic_load_explicit(&b->refs, memory_order_relaxed) == 1);
    if (b->maplen) return QP_EARG;     /* a read-only mapping never grows */
    size_t skew = (size_t)(b->data - (uint8_t *)b->base);
    /* realloc keeps malloc's 16-byte alignment, so data's alignment
     * survives at the same offset. */
    void *nb = realloc(b->base, len + skew);
    if (!nb) return QP_ENOMEM;
    b->base = nb;
    b->data = (uint8_t *)nb + skew;
    b->len = len;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Types                                                               */
/* ------------------------------------------------------------------ */

int64_t qp_days_from_ymd(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468 - QP_EPOCH_DAYS;
}

void qp_ymd_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t z = days + QP_EPOCH_DAYS + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

size_t qp_type_width(int t)
{
    static const uint8_t w[20] = {0, 1, 16, 0, 1, 2, 4, 8, 4, 8, 1,
                                  sizeof(char *), 8, 4, 4, 8, 8, 4, 4, 4};
    if (t < 0) t = -t;
    if (t == QP_ENUM) return 8;        /* int64 indices */
    return t >= 0 && t < 20 ? w[t] : 0;
}

const char *qp_type_name(int t)
{
    static const char *const names[20] = {
        "list", "boolean", "guid", "?", "byte", "short", "int", "long", "real",
        "float", "char", "symbol", "timestamp", "month", "date", "datetime",
        "timespan", "minute", "second", "time"};
    if (t == QP_ERROR) return "error";
    int a = t < 0 ? -t : t;
    if (a < 20) return names[a];
    switch (t) {
    case QP_ENUM: return "enum";
    case QP_TABLE: return "table";
    case QP_DICT: return "dict";
    case QP_SORTED_DICT: return "sorted dict";
    case QP_LAMBDA: return "lambda";
    case QP_UNARY: return "unary primitive";
    case QP_BINARY: return "operator";
    case QP_TERNARY: return "iterator";
    case QP_PROJECTION: return "projection";
    case QP_COMPOSITION: return "composition";
    case QP_DYNLOAD: return "dynamic load";
    default: return t > 100 && t < 112 ? "derived function" : "unknown";
    }
}

/* ------------------------------------------------------------------ */
/* Lifetime                                                            */
/* ------------------------------------------------------------------ */

static qp_value *value_new(int type)
{
    qp_value *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->type = (int8_t)type;
    atomic_init(&x->refs, 1);
    return x;
}

static bool holds_children(int t)
{
    return t == QP_LIST || t == QP_TABLE || qp_is_dict(&(qp_value){.type = (int8_t)t});
}

void qp_unref(qp_value *x)
{
    if (!x || atomic_fetch_sub_explicit(&x->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (x->type == QP_ERROR) {
        free((char *)x->s);
    } else if (holds_children(x->type)) {
        for (int64_t i = 0; i < x->v.n; i++) qp_unref(qp_K(x)[i]);
        free(x->v.data);
    } else if (qp_is_vector(x)) {
        qp_buf_unref(x->v.owner);
    } else if (x->type == QP_ENUM) {
        qp_buf_unref(x->v.owner);
        qp_unref(x->v.dom);
    } else if (qp_is_func(x)) {
        free(x->v.data);
    }
    free(x);
}

/* ------------------------------------------------------------------ */
/* Atoms                                                               */
/* ------------------------------------------------------------------ */

qp_value *qp_atom(int type) { return value_new(type); }

#define ATOM_CTOR(fn, ctype, code, field)          \
    qp_value *fn(ctype v)                          \
    {                                              \
        qp_value *x = value_new(code);             \
        if (x) x->field = v;                       \
        return x;                                  \
    }
ATOM_CTOR(qp_byte, uint8_t, -QP_BYTE, g)
ATOM_CTOR(qp_short, int16_t, -QP_SHORT, h)
ATOM_CTOR(qp_int, int32_t, -QP_INT, i)
ATOM_CTOR(qp_long, int64_t, -QP_LONG, j)
ATOM_CTOR(qp_real, float, -QP_REAL, e)
ATOM_CTOR(qp_float, double, -QP_FLOAT, f)
ATOM_CTOR(qp_char, char, -QP_CHAR, c)
#undef ATOM_CTOR

qp_value *qp_bool(bool b)
{
    qp_value *x = value_new(-QP_BOOL);
    if (x) x->g = b ? 1 : 0;
    return x;
}

qp_value *qp_symbol(const char *s)
{
    const char *in = qp_sym_intern(s, strlen(s));
    qp_value *x = in ? value_new(-QP_SYMBOL) : NULL;
    if (x) x->s = in;
    return x;
}

qp_value *qp_guid(const uint8_t u[16])
{
    qp_value *x = value_new(-QP_GUID);
    if (x) memcpy(x->u, u, 16);
    return x;
}

qp_value *qp_temporal_i(int type, int32_t i)
{
    qp_value *x = value_new(type < 0 ? type : -type);
    if (x) x->i = i;
    return x;
}

qp_value *qp_temporal_j(int type, int64_t j)
{
    qp_value *x = value_new(type < 0 ? type : -type);
    if (x) x->j = j;
    return x;
}

qp_value *qp_identity(void)
{
    static const uint8_t zero = 0;
    return qp_func(QP_UNARY, &zero, 1);
}

qp_value *qp_error(const char *fmt, ...)
{
    qp_value *x = value_new(QP_ERROR);
    if (!x) return NULL;
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0) text = NULL;
    va_end(ap);
    if (!text) { free(x); return NULL; }
    x->s = text;
    return x;
}

/* ------------------------------------------------------------------ */
/* Vectors and lists                                                   */
/* ------------------------------------------------------------------ */

/* Bytes for n items of vector type t; never below 16 so empty vectors
 * still own a buffer and can be appended to. */
static size_t vec_bytes(int t, int64_t n)
{
    size_t b = (size_t)n * qp_type_width(t);
    return b < 16 ? 16 : b;
}

qp_value *qp_vector(int type, int64_t n)
{
    if (n < 0 || type < 0 || type > 19 || type == 3) return NULL;
    qp_value *x = value_new(type);
    if (!x) return NULL;
    x->v.n = x->v.cap = n;
    if (type == QP_LIST) {
        x->v.data = calloc(n ? (size_t)n : 1, sizeof(qp_value *));
        if (!x->v.data) goto fail;
        return x;
    }
    size_t bytes = vec_bytes(type, n);
    x->v.owner = qp_buf_new(bytes);
    if (!x->v.owner) goto fail;
    memset(x->v.owner->data, 0, bytes);
    x->v.data = x->v.owner->data;
    if (type == QP_SYMBOL) {
        const char *empty = qp_sym_intern("", 0);
        for (int64_t i = 0; i < n; i++) qp_S(x)[i] = empty;
    }
    x->v.cap = (int64_t)(bytes / qp_type_width(type));
    return x;
fail:
    free(x);
    return NULL;
}

qp_value *qp_vector_borrow(int type, int64_t n, void *data, qp_buf *buf)
{
    qp_value *x = value_new(type);
    if (!x) return NULL;
    x->v.n = x->v.cap = n;
    x->v.data = data;
    x->v.owner = qp_buf_ref(buf);
    return x;
}

qp_value *qp_string(const char *s, size_t n)
{
    qp_value *x = qp_vector(QP_CHAR, (int64_t)n);
    if (x && n) memcpy(x->v.data, s, n);
    return x;
}

qp_value *qp_cstring(const char *s) { return qp_string(s, strlen(s)); }

/* Makes x's items private and room for at least need items. */
static int vec_reserve(qp_value *x, int64_t need)
{
    if (x->type == QP_LIST) {
        if (need <= x->v.cap) return 0;
        int64_t cap = x->v.cap < 4 ? 8 : x->v.cap * 2;
        if (cap < need) cap = need;
        void *d = realloc(x->v.data, (size_t)cap * sizeof(qp_value *));
        if (!d) return QP_ENOMEM;
        x->v.data = d;
        x->v.cap = cap;
        return 0;
    }
    size_t w = qp_type_width(x->type);
    qp_buf *b = x->v.owner;
    bool private = atomic_load(&b->refs) == 1 && x->v.data == b->data && !b->maplen;
    if (private && need <= x->v.cap) return 0;
    int64_t cap = x->v.cap < 8 ? 16 : x->v.cap * 2;
    if (cap < need) cap = need;
    if (private) {
        if (qp_buf_resize(b, (size_t)cap * w)) return QP_ENOMEM;
    } else {
        qp_buf *nb = qp_buf_new((size_t)cap * w);
        if (!nb) return QP_ENOMEM;
        memcpy(nb->data, x->v.data, (size_t)x->v.n * w);
        qp_buf_unref(b);
        x->v.owner = b = nb;
    }
    x->v.data = b->data;
    x->v.cap = cap;
    return 0;
}

int qp_vec_append(qp_value *x, const void *item)
{
    /* A value is mutated only while its count is 1 (value.h): another
     * holder would see its items change. */
    assert(atomic_load_explicit(&x->refs, memory_order_relaxed) == 1);
    /* An enum's items are indices checked against its domain when it was
     * made: appending one unchecked would break that promise. */
    if (x->type == QP_ENUM || (x->type > 19 && x->type != QP_LIST)) return QP_ETYPE;
    int rc = vec_reserve(x, x->v.n + 1);
    if (rc) {
        if (x->type == QP_LIST) qp_unref(*(qp_value *const *)item);
        return rc;
    }
    size_t w = x->type == QP_LIST ? sizeof(qp_value *) : qp_type_width(x->type);
    memcpy((uint8_t *)x->v.data + (size_t)x->v.n * w, item, w);
    x->v.n++;
    return 0;
}

qp_value *qp_list(int64_t n, ...)
{
    qp_value *x = qp_vector(QP_LIST, n);
    va_list ap;
    va_start(ap, n);
    bool ok = x != NULL;
    for (int64_t i = 0; i < n; i++) {
        qp_value *item = va_arg(ap, qp_value *);
        if (!item) ok = false;
        if (x) qp_K(x)[i] = item;
        else qp_unref(item);
    }
    va_end(ap);
    if (!ok) { qp_unref(x); return NULL; }
    return x;
}

static qp_value *pair(int type, qp_value *a, qp_value *b)
{
    qp_value *x = a && b ? value_new(type) : NULL;
    qp_value **kids = x ? malloc(2 * sizeof *kids) : NULL;
    if (!kids) { free(x); qp_unref(a); qp_unref(b); return NULL; }
    kids[0] = a;
    kids[1] = b;
    x->v.data = kids;
    x->v.n = x->v.cap = 2;
    return x;
}

qp_value *qp_dict(qp_value *keys, qp_value *values) { return pair(QP_DICT, keys, values); }
qp_value *qp_dict_sorted(qp_value *keys, qp_value *values)
{
    return pair(QP_SORTED_DICT, keys, values);
}

qp_value *qp_table(qp_value *dict)
{
    if (!dict) return NULL;
    qp_value *names = qp_dict_keys(dict), *cols = qp_dict_values(dict);
    const char *why = NULL;
    if (names->type != QP_SYMBOL) why = "column names must be symbols";
    else if (cols->type != QP_LIST) why = "columns must be a general list";
    else if (cols->v.n != names->v.n) why = "names and columns differ in count";
    for (int64_t i = 0; !why && i < cols->v.n; i++) {
        qp_value *c = qp_K(cols)[i];
        if (c->type < 0 || c->type > QP_ENUM) why = "a column is not a list";
        else if (c->v.n != qp_K(cols)[0]->v.n) why = "columns differ in length";
    }
    if (why) { qp_unref(dict); return qp_error("table: %s", why); }
    qp_value *t = value_new(QP_TABLE);
    qp_value **kid = t ? malloc(sizeof *kid) : NULL;
    if (!kid) { free(t); qp_unref(dict); return NULL; }
    kid[0] = dict;
    t->v.data = kid;
    t->v.n = t->v.cap = 1;
    return t;
}

qp_value *qp_func(int type, const uint8_t *bytes, size_t n)
{
    qp_value *x = value_new(type);
    if (!x) return NULL;
    x->v.data = malloc(n ? n : 1);
    if (!x->v.data) { free(x); return NULL; }
    memcpy(x->v.data, bytes, n);
    x->v.n = x->v.cap = (int64_t)n;
    return x;
}

/* ------------------------------------------------------------------ */
/* Counts, items and slices                                            */
/* ------------------------------------------------------------------ */

int64_t qp_count(const qp_value *x)
{
    if (x->type < 0) return 1;
    if (qp_is_dict(x)) return qp_count(qp_dict_keys(x));
    if (x->type == QP_TABLE) {
        qp_value *cols = qp_table_columns(x);
        return cols->v.n ? qp_count(qp_K(cols)[0]) : 0;
    }
    if (x->type <= QP_ENUM) return x->v.n;
    return 1;
}

qp_value *qp_item(const qp_value *x, int64_t i)
{
    if (x->type == QP_LIST) return qp_ref(qp_K(x)[i]);
    if (x->type == QP_ENUM) return qp_symbol(qp_enum_sym(x, i));
    if (!qp_is_vector(x)) return NULL;
    qp_value *a = value_new(-x->type);
    if (!a) return NULL;
    size_t w = qp_type_width(x->type);
    memcpy(&a->g, (uint8_t *)x->v.data + (size_t)i * w, w);
    return a;
}

qp_value *qp_slice(const qp_value *x, int64_t start, int64_t n)
{
    int64_t count = x->v.n;
    if (start < 0) start = 0;
    if (start > count) start = count;
    if (n < 0) n = 0;
    if (n > count - start) n = count - start;
    if (x->type == QP_LIST) {
        qp_value *y = qp_vector(QP_LIST, n);
        for (int64_t i = 0; y && i < n; i++) qp_K(y)[i] = qp_ref(qp_K(x)[start + i]);
        return y;
    }
    size_t w = qp_type_width(x->type);
    qp_value *y = qp_vector_borrow(x->type, n, (uint8_t *)x->v.data + (size_t)start * w,
                                   x->v.owner);
    if (y) y->attr = x->attr == QP_ATTR_SORTED ? QP_ATTR_SORTED : QP_ATTR_NONE;
    if (y && x->type == QP_ENUM) y->v.dom = qp_ref(x->v.dom);
    return y;
}

qp_value *qp_table_slice(const qp_value *t, int64_t start, int64_t n)
{
    qp_value *cols = qp_table_columns(t);
    qp_value *out = qp_vector(QP_LIST, cols->v.n);
    for (int64_t i = 0; out && i < cols->v.n; i++) {
        qp_K(out)[i] = qp_slice(qp_K(cols)[i], start, n);
        if (!qp_K(out)[i]) { qp_unref(out); out = NULL; }
    }
    if (!out) return NULL;
    return qp_table(qp_dict(qp_ref(qp_table_names(t)), out));
}

/* Whether x's items can follow those of a vector of type t (qp_concat). */
static bool concat_ok(int t, const qp_value *x)
{
    bool sym = t == QP_SYMBOL || t == QP_ENUM;
    return x->type == t || (sym && (x->type == QP_SYMBOL || x->type == QP_ENUM));
}

/* qp_concat of enumerations over one domain: the indices, copied. */
static qp_value *concat_indices(qp_value *const *v, int64_t n, int64_t total)
{
    qp_buf *b = qp_buf_new((size_t)(total ? total : 1) * 8);
    if (!b) return NULL;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        if (v[i]->v.n) memcpy(b->data + at * 8, v[i]->v.data, (size_t)v[i]->v.n * 8);
        at += v[i]->v.n;
    }
    qp_value *r = qp_enum_borrow(total, (int64_t *)b->data, b, qp_ref(v[0]->v.dom));
    qp_buf_unref(b);
    return r;
}

qp_value *qp_concat(qp_value *const *v, int64_t n)
{
    if (n == 0) return qp_vector(QP_LIST, 0);
    int t = v[0]->type;
    bool one_dom = t == QP_ENUM;
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!concat_ok(v[0]->type, v[i]))
            return qp_error("%s and %s do not concatenate", qp_type_name(v[0]->type),
                            qp_type_name(v[i]->type));
        if (v[i]->type != QP_ENUM || v[i]->v.dom != v[0]->v.dom) one_dom = false;
        total += v[i]->v.n;
    }
    if (one_dom) return concat_indices(v, n, total);
    if (t == QP_ENUM) t = QP_SYMBOL;
    qp_value *r = qp_vector(t, total);
    size_t w = t == QP_LIST ? 0 : qp_type_width(t);
    for (int64_t i = 0, at = 0; r && i < n; at += v[i]->v.n, i++) {
        const qp_value *x = v[i];
        if (t == QP_LIST)
            for (int64_t k = 0; k < x->v.n; k++) qp_K(r)[at + k] = qp_ref(qp_K(x)[k]);
        else if (x->type == QP_ENUM)
            for (int64_t k = 0; k < x->v.n; k++) qp_S(r)[at + k] = qp_enum_sym(x, k);
        else if (x->v.n)
            memcpy((char *)r->v.data + (size_t)at * w, x->v.data, (size_t)x->v.n * w);
    }
    return r;
}

/* Whether table u has the columns of table t, each once, in any order
 * (an error value saying how not, naming both sets, else NULL). */
static qp_value *same_columns(const qp_value *t, const qp_value *u, int64_t which)
{
    const qp_value *a = qp_table_names(t), *b = qp_table_names(u);
    if (qp_equal(a, b)) return NULL;            /* same order: by position */
    bool ok = a->v.n == b->v.n;
    for (int64_t i = 0; ok && i < a->v.n; i++) {
        int64_t in_a = 0, in_b = 0;
        for (int64_t k = 0; k < a->v.n; k++) {
            in_a += qp_S(a)[k] == qp_S(a)[i];
            in_b += qp_S(b)[k] == qp_S(a)[i];
        }
        ok = in_a == 1 && in_b == 1;
    }
    if (ok) return NULL;
    char x[512], y[512];
    qp_syms_text(x, sizeof x, b, b->v.n);
    qp_syms_text(y, sizeof y, a, a->v.n);
    return qp_error("the tables have different columns: table %lld has (%s) where table 1 has "
                    "(%s)", (long long)which + 1, x, y);
}

/* Table u's column named as column c of t (same_columns holds): the one
 * at the same place when it has that name, so equal names in equal order
 * (duplicates too) go by position. */
static qp_value *column_as(const qp_value *t, const qp_value *u, int64_t c)
{
    const qp_value *b = qp_table_names(u);
    const char *name = qp_S(qp_table_names(t))[c];
    for (int64_t k = c; k < c + b->v.n; k++)
        if (qp_S(b)[k % b->v.n] == name) return qp_K(qp_table_columns(u))[k % b->v.n];
    return NULL;
}

qp_value *qp_table_concat(qp_value *const *t, int64_t n)
{
    if (n == 1) return qp_ref(t[0]);            /* one table: itself, views kept */
    qp_value *names = qp_table_names(t[0]);
    for (int64_t i = 1; i < n; i++) {
        qp_value *e = same_columns(t[0], t[i], i);
        if (e) return e;
    }
    int64_t nc = names->v.n;
    qp_value *cols = qp_vector(QP_LIST, nc), *err = NULL;
    qp_value **col = malloc((size_t)(n ? n : 1) * sizeof *col);
    for (int64_t c = 0; cols && col && c < nc && !err; c++) {
        for (int64_t i = 0; i < n; i++) col[i] = column_as(t[0], t[i], c);
        qp_value *x = qp_concat(col, n);
        if (x && qp_is_error(x)) {
            err = qp_error("column %s: %s", qp_S(names)[c], x->s);
            qp_unref(x);
            x = NULL;
        }
        if (!x && !err) break;                  /* out of memory */
        qp_K(cols)[c] = x;
    }
    free(col);
    bool whole = cols && !err && (nc == 0 || qp_K(cols)[nc - 1]);
    if (!whole) {
        for (int64_t c = 0; cols && c < nc; c++) if (!qp_K(cols)[c]) qp_K(cols)[c] = qp_identity();
        qp_unref(cols);
        return err;
    }
    return qp_table(qp_dict(qp_ref(names), cols));
}

qp_value *qp_table_column(const qp_value *t, const char *name)
{
    qp_value *names = qp_table_names(t);
    const char *s = qp_sym_intern(name, strlen(name));
    for (int64_t i = 0; i < names->v.n; i++)
        if (qp_S(names)[i] == s) return qp_K(qp_table_columns(t))[i];
    return NULL;
}

bool qp_is_keyed_table(const qp_value *x)
{
    return qp_is_dict(x) && qp_dict_keys(x)->type == QP_TABLE &&
           qp_dict_values(x)->type == QP_TABLE;
}

/* ------------------------------------------------------------------ */
/* Equality                                                            */
/* ------------------------------------------------------------------ */

static bool items_equal(int t, const void *a, const void *b, int64_t n)
{
    if (t == QP_REAL) {
        const float *x = a, *y = b;
        for (int64_t i = 0; i < n; i++)
            if (!(x[i] == y[i] || (isnan(x[i]) && isnan(y[i])))) return false;
        return true;
    }
    if (t == QP_FLOAT || t == QP_DATETIME) {
        const double *x = a, *y = b;
        for (int64_t i = 0; i < n; i++)
            if (!(x[i] == y[i] || (isnan(x[i]) && isnan(y[i])))) return false;
        return true;
    }
    return memcmp(a, b, (size_t)n * qp_type_width(t)) == 0;
}

void qp_item_key(int t, const void *src, void *dst)
{
    if (t == QP_REAL) {
        float e;
        memcpy(&e, src, 4);
        e = isnan(e) ? QP_NULL_E : e == 0 ? 0.0f : e;
        memcpy(dst, &e, 4);
    } else if (t == QP_FLOAT || t == QP_DATETIME) {
        double f;
        memcpy(&f, src, 8);
        f = isnan(f) ? QP_NULL_F : f == 0 ? 0.0 : f;
        memcpy(dst, &f, 8);
    } else if (dst != src) {
        memcpy(dst, src, qp_type_width(t));
    }
}

bool qp_item_eq(int t, const void *a, const void *b)
{
    uint8_t x[16], y[16];
    size_t w = qp_type_width(t);
    qp_item_key(t, a, x);
    qp_item_key(t, b, y);
    return memcmp(x, y, w) == 0;
}

/* Equality of an enum with anything: as the symbols it stands for. */
static bool enum_equal(const qp_value *a, const qp_value *b)
{
    qp_value *ra = qp_enum_resolve(a), *rb = qp_enum_resolve(b);
    bool eq = ra && rb && qp_equal(ra, rb);
    qp_unref(ra);
    qp_unref(rb);
    return eq;
}

bool qp_equal(const qp_value *a, const qp_value *b)
{
    if (a == b) return true;
    if (a && b && (a->type == QP_ENUM || b->type == QP_ENUM)) return enum_equal(a, b);
    if (!a || !b || a->type != b->type) return false;
    if (a->type == QP_ERROR) return strcmp(a->s, b->s) == 0;
    if (a->type < 0) {
        int t = -a->type;
        return items_equal(t, &a->g, &b->g, 1);
    }
    if (a->attr != b->attr || a->v.n != b->v.n) return false;
    if (holds_children(a->type)) {
        for (int64_t i = 0; i < a->v.n; i++)
            if (!qp_equal(qp_K(a)[i], qp_K(b)[i])) return false;
        return true;
    }
    if (qp_is_func(a)) return memcmp(a->v.data, b->v.data, (size_t)a->v.n) == 0;
    return items_equal(a->type, a->v.data, b->v.data, a->v.n);
}

/* ------------------------------------------------------------------ */
/* Enumerations                                                        */
/* ------------------------------------------------------------------ */

int64_t qp_enum_check(const int64_t *idx, int64_t n, int64_t ndom)
{
    uint64_t dn = (uint64_t)ndom;
    /* Blocks with no early exit per item (one well-predicted branch per
     * 4096); the first bad index is looked for only in a block that has
     * one. */
    for (int64_t b = 0; b < n; b += 4096) {
        int64_t e = b + 4096 < n ? b + 4096 : n;
        bool bad = false;
        for (int64_t i = b; i < e; i++) bad |= (uint64_t)idx[i] >= dn && idx[i] != QP_NULL_J;
        for (int64_t i = b; bad && i < e; i++)
            if ((uint64_t)idx[i] >= dn && idx[i] != QP_NULL_J) return i;
    }
    return -1;
}

qp_value *qp_enum_borrow(int64_t n, const int64_t *idx, qp_buf *buf, qp_value *dom)
{
    if (!dom) return NULL;
    if (dom->type != QP_SYMBOL || n < 0) {
        int t = dom->type;
        qp_unref(dom);
        return qp_error("enum: the domain is not a symbol vector (type %d)", t);
    }
    int64_t bad = qp_enum_check(idx, n, dom->v.n);
    if (bad >= 0) {
        qp_value *e = qp_error("enum: index %lld at row %lld is beyond the domain of %lld names",
                               (long long)idx[bad], (long long)bad, (long long)dom->v.n);
        qp_unref(dom);
        return e;
    }
    qp_value *x = value_new(QP_ENUM);
    if (!x) { qp_unref(dom); return NULL; }
    x->v.n = x->v.cap = n;
    x->v.data = (void *)idx;
    x->v.owner = qp_buf_ref(buf);
    x->v.dom = dom;
    return x;
}

const char *qp_enum_sym(const qp_value *e, int64_t i)
{
    static _Atomic(const char *) empty;
    int64_t k = qp_J(e)[i];
    if (k != QP_NULL_J) return qp_S(e->v.dom)[k];
    const char *s = atomic_load_explicit(&empty, memory_order_relaxed);
    if (!s) {   /* interning is idempotent: two threads store the same pointer */
        s = qp_sym_intern("", 0);
        if (!s) return "";
        atomic_store_explicit(&empty, s, memory_order_relaxed);
    }
    return s;
}

qp_value *qp_enum_resolve(const qp_value *x)
{
    if (!x) return NULL;
    if (x->type != QP_ENUM) return qp_ref((qp_value *)x);
    qp_value *s = qp_vector(QP_SYMBOL, x->v.n);
    if (!s) return NULL;
    for (int64_t i = 0; i < x->v.n; i++) qp_S(s)[i] = qp_enum_sym(x, i);
    s->attr = x->attr;
    return s;
}
