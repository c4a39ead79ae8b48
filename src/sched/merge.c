/* merge.c - merging partial results: concat, sum, min, max, count and
 * sum-by-key. Partials are borrowed and taken in partition order, so the
 * merged value (and the output bytes) depend only on the plan, never on
 * which worker finished first. */
#include "qpeach/sched.h"
#include "qpeach/table.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- concat ---- */

/* Atom of type -t to a one-item vector (new reference). */
static qp_value *enlist_atom(const qp_value *a)
{
    qp_value *r = qp_vector(-a->type, 1);
    if (!r) return NULL;
    if (a->type == -QP_GUID) memcpy(r->v.data, a->u, 16);
    else if (a->type == -QP_SYMBOL) qp_S(r)[0] = a->s;
    else memcpy(r->v.data, &a->g, qp_type_width(-a->type));
    return r;
}

/* Tables (or a keyed table's halves) row after row; the error says so. */
static qp_value *concat_tables(qp_value *const *t, int64_t n)
{
    qp_value *r = qp_table_concat(t, n);
    if (!r || !qp_is_error(r)) return r;
    qp_value *e = qp_error("concat: partials: %s", r->s);
    qp_unref(r);
    return e;
}

static qp_value *merge_concat(qp_value *const *p, int64_t n)
{
    if (n == 0) return qp_vector(QP_LIST, 0);
    int t = p[0]->type;
    bool same = true;
    for (int64_t i = 1; i < n; i++) if (p[i]->type != t) same = false;
    if (same && t == QP_TABLE) return concat_tables(p, n);
    if (same && qp_is_keyed_table(p[0])) {
        qp_value **k = malloc((size_t)n * sizeof *k), **v = malloc((size_t)n * sizeof *v);
        if (!k || !v) { free(k); free(v); return NULL; }
        for (int64_t i = 0; i < n; i++) {
            if (!qp_is_keyed_table(p[i])) { free(k); free(v); goto list; }
            k[i] = qp_dict_keys(p[i]);
            v[i] = qp_dict_values(p[i]);
        }
        qp_value *kt = concat_tables(k, n), *vt = concat_tables(v, n);
        free(k);
        free(v);
        if (!kt || !vt || qp_is_error(kt) || qp_is_error(vt)) {
            qp_value *e = kt && qp_is_error(kt) ? qp_ref(kt) : vt && qp_is_error(vt) ? qp_ref(vt) : NULL;
            qp_unref(kt);
            qp_unref(vt);
            return e;
        }
        return qp_dict(kt, vt);
    }
    if (same && (qp_is_vector(p[0]) || t == QP_LIST)) return qp_concat(p, n);
    if (same && qp_is_atom(p[0])) {
        qp_value *r = enlist_atom(p[0]);
        for (int64_t i = 1; r && i < n; i++) {
            int rc = p[i]->type == -QP_GUID ? qp_vec_append(r, p[i]->u)
                   : p[i]->type == -QP_SYMBOL ? qp_vec_append(r, &p[i]->s)
                   : qp_vec_append(r, &p[i]->g);
            if (rc) { qp_unref(r); return NULL; }
        }
        return r;
    }
list:;
    /* Mixed shapes: a general list of the partials, as q's raze would not
     * flatten them either. */
    qp_value *r = qp_vector(QP_LIST, n);
    if (!r) return NULL;
    for (int64_t i = 0; i < n; i++) qp_K(r)[i] = qp_ref(p[i]);
    return r;
}

/* ---- sum, min, max ---- */

enum { OP_SUM, OP_MIN, OP_MAX };

static bool is_float_type(int t) { return t == QP_REAL || t == QP_FLOAT; }
static bool is_int_type(int t)
{
    return t == QP_BOOL || t == QP_BYTE || t == QP_SHORT || t == QP_INT || t == QP_LONG;
}

/* Item i of numeric vector data (type t) as int64 or double, with q's
 * nulls reported. */
static bool get_num(int t, const void *data, int64_t i, int64_t *j, double *f)
{
    switch (t) {
    case QP_BOOL: case QP_BYTE: *j = ((const uint8_t *)data)[i]; return true;
    case QP_SHORT: { int16_t h = ((const int16_t *)data)[i]; *j = h; return h != QP_NULL_H; }
    case QP_INT: { int32_t x = ((const int32_t *)data)[i]; *j = x; return x != QP_NULL_I; }
    case QP_LONG: *j = ((const int64_t *)data)[i]; return *j != QP_NULL_J;
    case QP_REAL: *f = ((const float *)data)[i]; return !isnan(*f);
    default: *f = ((const double *)data)[i]; return !isnan(*f);
    }
}

/* Whether an exact integer sum is a q long: not beyond 0W or -0W (one
 * below -0W is the null). A running sum may pass them on the way. */
static bool long_fits(__int128 v) { return v >= -INT64_MAX && v <= INT64_MAX; }

/* Elementwise over numeric atoms or equal-length numeric vectors. Sums
 * widen (integers to long, reals to float) as q's sum does, exactly: a
 * long sum beyond q's longs fails rather than wraps; min and max keep
 * the type. Nulls are skipped, as q's aggregations skip them. */
static qp_value *merge_arith(int op, qp_value *const *p, int64_t n)
{
    static const char *names[] = { "sum", "min", "max" };
    if (n == 0) return qp_error("%s: no partials", names[op]);
    bool atom = p[0]->type < 0;
    int t = atom ? -p[0]->type : p[0]->type;
    if (!is_int_type(t) && !is_float_type(t))
        return qp_error("%s: partials must be numbers, not %s", names[op], qp_type_name(p[0]->type));
    int64_t len = atom ? 1 : p[0]->v.n;
    for (int64_t i = 1; i < n; i++)
        if (p[i]->type != p[0]->type || (!atom && p[i]->v.n != len))
            return qp_error("%s: partials differ in type or length", names[op]);
    bool fl = is_float_type(t);
    int rt = op == OP_SUM ? (fl ? QP_FLOAT : QP_LONG) : t;
    qp_value *r = atom ? qp_atom(-rt) : qp_vector(rt, len);
    if (!r) return NULL;
    for (int64_t k = 0; k < len; k++) {
        int64_t aj = 0;
        __int128 sum = 0;
        double af = 0;
        bool any = false;
        for (int64_t i = 0; i < n; i++) {
            int64_t j = 0;
            double f = 0;
            const void *data = atom ? (const void *)&p[i]->g : p[i]->v.data;
            if (!get_num(t, data, atom ? 0 : k, &j, &f)) continue;
            if (op == OP_SUM) { sum += j; af += f; }
            else if (!any || (op == OP_MIN ? (fl ? f < af : j < aj) : (fl ? f > af : j > aj)))
                { aj = j; af = f; }
            any = true;
        }
        void *dst = atom ? (void *)&r->g : (char *)r->v.data + (size_t)k * qp_type_width(rt);
        if (op == OP_SUM && !fl && !long_fits(sum)) {
            qp_unref(r);
            return qp_error("sum: item %lld: the sum of the partials is beyond q's longs "
                            "(-0W to 0W)", (long long)k);
        }
        aj = op == OP_SUM ? (int64_t)sum : aj;
        if (op != OP_SUM && !any) {
            /* All null: the null of the type. */
            aj = t == QP_SHORT ? QP_NULL_H : t == QP_INT ? QP_NULL_I : QP_NULL_J;
            af = QP_NULL_F;
        }
        switch (rt) {
        case QP_BOOL: case QP_BYTE: *(uint8_t *)dst = (uint8_t)aj; break;
        case QP_SHORT: *(int16_t *)dst = (int16_t)aj; break;
        case QP_INT: *(int32_t *)dst = (int32_t)aj; break;
        case QP_LONG: *(int64_t *)dst = aj; break;
        case QP_REAL: *(float *)dst = (float)af; break;
        default: *(double *)dst = af; break;
        }
    }
    return r;
}

/* ---- sum-by-key ---- */

/* The shapes a sum-by-key partial may take; the result takes the first
 * partial's shape. */
enum kv_shape {
    KV_DICT_VEC,     /* keys!values: one key vector, one value vector */
    KV_DICT_TABLE,   /* keys!table: one key vector, the table's columns as values */
    KV_KEYED,        /* keyed table: key columns and value columns */
    KV_TABLE         /* plain table: [merge] key names the key columns */
};

/* A partial split into key columns and value columns (borrowed). */
typedef struct kv {
    enum kv_shape shape;
    int nk, nv;
    qp_value *k[16];
    qp_value *v[64];
    qp_value *knames, *vnames;   /* owned for KV_TABLE, else borrowed */
    int64_t rows;
} kv;

static qp_value *split_kv(const qp_value *x, char *const *keys, int nkeys, kv *o)
{
    memset(o, 0, sizeof *o);
    if (qp_is_keyed_table(x)) {
        qp_value *kt = qp_dict_keys(x), *vt = qp_dict_values(x);
        o->shape = KV_KEYED;
        o->knames = qp_table_names(kt);
        o->vnames = qp_table_names(vt);
        o->nk = (int)o->knames->v.n;
        o->nv = (int)o->vnames->v.n;
        if (o->nk > 16 || o->nv > 64) return qp_error("sum-by-key: too many columns");
        for (int i = 0; i < o->nk; i++) o->k[i] = qp_K(qp_table_columns(kt))[i];
        for (int i = 0; i < o->nv; i++) o->v[i] = qp_K(qp_table_columns(vt))[i];
    } else if (qp_is_dict(x)) {
        qp_value *k = qp_dict_keys(x), *v = qp_dict_values(x);
        o->nk = 1;
        o->k[0] = k;
        if (v->type == QP_TABLE) {
            o->shape = KV_DICT_TABLE;
            o->vnames = qp_table_names(v);
            o->nv = (int)o->vnames->v.n;
            if (o->nv > 64) return qp_error("sum-by-key: too many columns");
            for (int i = 0; i < o->nv; i++) o->v[i] = qp_K(qp_table_columns(v))[i];
        } else {
            o->shape = KV_DICT_VEC;
            o->nv = 1;
            o->v[0] = v;
        }
    } else if (x->type == QP_TABLE) {
        if (!nkeys) return qp_error("sum-by-key: a plain table needs [merge] key = column, ...");
        o->shape = KV_TABLE;
        o->knames = qp_vector(QP_SYMBOL, 0);   /* owned: freed by the caller */
        o->vnames = qp_vector(QP_SYMBOL, 0);
        if (!o->knames || !o->vnames) return qp_error("wsfull");
        qp_value *names = qp_table_names(x);
        for (int i = 0; i < nkeys; i++) {
            qp_value *c = qp_table_column(x, keys[i]);
            if (!c) return qp_error("sum-by-key: no key column %s in a partial", keys[i]);
            if (o->nk == 16) return qp_error("sum-by-key: too many key columns");
            o->k[o->nk++] = c;
            const char *s = qp_sym_intern(keys[i], strlen(keys[i]));
            if (!s || qp_vec_append(o->knames, &s)) return qp_error("wsfull");
        }
        for (int64_t c = 0; c < names->v.n; c++) {
            bool key = false;
            for (int i = 0; i < nkeys; i++)
                if (!strcmp(qp_S(names)[c], keys[i])) key = true;
            if (key) continue;
            if (o->nv == 64) return qp_error("sum-by-key: too many columns");
            o->v[o->nv++] = qp_K(qp_table_columns(x))[c];
            if (qp_vec_append(o->vnames, &qp_S(names)[c])) return qp_error("wsfull");
        }
    } else {
        return qp_error("sum-by-key: partials must be dicts or tables, not %s",
                        qp_type_name(x->type));
    }
    o->rows = qp_count(o->k[0]);
    for (int i = 0; i < o->nk; i++)
        if (!qp_is_vector(o->k[i]) || o->k[i]->v.n != o->rows)
            return qp_error("sum-by-key: keys must be vectors of one length");
    for (int i = 0; i < o->nv; i++)
        if (!qp_is_vector(o->v[i]) || o->v[i]->v.n != o->rows
            || !(is_int_type(o->v[i]->type) || is_float_type(o->v[i]->type)))
            return qp_error("sum-by-key: values must be numeric vectors as long as the keys");
    return NULL;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;    /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* The distinct keys seen so far, in first-seen order: open addressing
 * over slot (row numbers, -1 empty, at most half full), the key bytes of
 * row q at keyb + q*kw, and its nv sums at acc + q*nv (each an exact
 * integer sum, or the bits of a double in its first 8 bytes). */
typedef struct keyhash {
    int64_t cap, nrows, rcap;
    int64_t *slot;
    uint8_t *keyb;
    __int128 *acc;
    size_t kw;
    int nv;
} keyhash;

static void keyhash_free(keyhash *h)
{
    free(h->slot);
    free(h->keyb);
    free(h->acc);
}

static int keyhash_init(keyhash *h, size_t kw, int nv)
{
    *h = (keyhash){ .cap = 1024, .rcap = 256, .kw = kw, .nv = nv };
    h->slot = malloc((size_t)h->cap * sizeof *h->slot);
    h->keyb = malloc((size_t)h->rcap * (kw ? kw : 1));
    h->acc = calloc((size_t)h->rcap * (size_t)(nv ? nv : 1), sizeof *h->acc);
    if (!h->slot || !h->keyb || !h->acc) { keyhash_free(h); return QP_ENOMEM; }
    memset(h->slot, 0xff, (size_t)h->cap * sizeof *h->slot);
    return 0;
}

/* Doubles the slots and rehashes the rows. */
static int keyhash_rehash(keyhash *h)
{
    int64_t ncap = h->cap * 2;
    int64_t *ns = malloc((size_t)ncap * sizeof *ns);
    if (!ns) return QP_ENOMEM;
    memset(ns, 0xff, (size_t)ncap * sizeof *ns);
    for (int64_t q = 0; q < h->nrows; q++) {
        int64_t a = (int64_t)(hash_bytes(h->keyb + (size_t)q * h->kw, h->kw) & (uint64_t)(ncap - 1));
        while (ns[a] >= 0) a = (a + 1) & (ncap - 1);
        ns[a] = q;
    }
    free(h->slot);
    h->slot = ns;
    h->cap = ncap;
    return 0;
}

/* Row number of the key bytes row (kw of them), added with zero sums if
 * new; QP_ENOMEM if it cannot be added. */
static int64_t keyhash_row(keyhash *h, const uint8_t *row)
{
    size_t kw = h->kw, nv = (size_t)(h->nv ? h->nv : 1);
    int64_t at = (int64_t)(hash_bytes(row, kw) & (uint64_t)(h->cap - 1));
    while (h->slot[at] >= 0 && memcmp(h->keyb + (size_t)h->slot[at] * kw, row, kw))
        at = (at + 1) & (h->cap - 1);
    if (h->slot[at] >= 0) return h->slot[at];
    if (h->nrows == h->rcap) {
        uint8_t *k2 = realloc(h->keyb, (size_t)h->rcap * 2 * (kw ? kw : 1));
        if (!k2) return QP_ENOMEM;
        h->keyb = k2;
        __int128 *a2 = realloc(h->acc, (size_t)h->rcap * 2 * nv * sizeof *a2);
        if (!a2) return QP_ENOMEM;
        h->acc = a2;
        h->rcap *= 2;
    }
    int64_t dst = h->slot[at] = h->nrows++;
    memcpy(h->keyb + (size_t)dst * kw, row, kw);
    memset(h->acc + (size_t)dst * nv, 0, nv * sizeof *h->acc);
    if (h->nrows * 2 > h->cap && keyhash_rehash(h)) return QP_ENOMEM;
    assert(h->nrows * 2 <= h->cap);   /* probing always finds a free slot */
    return dst;
}

static int name_at(const qp_value *names, int nn, const char *s)
{
    for (int c = 0; c < nn; c++) if (qp_S(names)[c] == s) return c;
    return -1;
}

/* Puts the key columns of keyed-table partial p in the first partial's
 * order, matched by name; an error when the names differ. */
static qp_value *align_keys(const kv *first, kv *p, int64_t i)
{
    qp_value *k[16];
    for (int c = 0; c < first->nk; c++) {
        int at = name_at(p->knames, p->nk, qp_S(first->knames)[c]);
        if (at < 0) {
            char a[512], b[512];
            qp_syms_text(a, sizeof a, p->knames, p->nk);
            qp_syms_text(b, sizeof b, first->knames, first->nk);
            return qp_error("sum-by-key: partial %lld has key columns (%s) where partial 1 "
                            "has (%s)", (long long)i + 1, a, b);
        }
        k[c] = p->k[at];
    }
    memcpy(p->k, k, (size_t)first->nk * sizeof *k);
    return NULL;
}

/* Checks that the partials s[1..n) have the first one's shape, key names
 * (keyed tables' key columns matched by name) and key types. */
static qp_value *check_shapes(kv *s, int64_t n)
{
    for (int64_t i = 1; i < n; i++) {
        if (s[i].shape != s[0].shape || s[i].nk != s[0].nk)
            return qp_error("sum-by-key: partials differ in shape");
        qp_value *e = s[0].shape == KV_KEYED ? align_keys(&s[0], &s[i], i) : NULL;
        if (e) return e;
        for (int c = 0; c < s[0].nk; c++)
            if (s[i].k[c]->type != s[0].k[c]->type)
                return qp_error("sum-by-key: key types differ between partials");
    }
    return NULL;
}

/* The value columns of the result, matched by name across the partials:
 * the first partial's, then (missing = zero) names first seen in later
 * ones. col[i][c]: partial i's column for result column c, or -1 (none:
 * it adds nothing, as a column of zeros would). */
typedef struct schema {
    int nv;
    const char *names[64];
    int (*col)[64];
} schema;

/* Partial p's value names against the first's: the error names both. */
static qp_value *names_differ(const kv *first, const kv *p, int64_t i)
{
    char a[512], b[512];
    qp_syms_text(a, sizeof a, p->vnames, p->nv);
    qp_syms_text(b, sizeof b, first->vnames, first->nv);
    return qp_error("sum-by-key: partial %lld has value columns (%s) where partial 1 has (%s): "
                    "name them alike, or set [merge] missing = zero to count a partial's "
                    "missing columns as zero", (long long)i + 1, a, b);
}

/* Fills sc from the partials' value names (an unnamed dict value vector
 * is column 0 of every partial). */
static qp_value *match_values(const kv *s, int64_t n, bool zero, schema *sc)
{
    if (s[0].shape == KV_DICT_VEC) {
        sc->nv = 1;
        for (int64_t i = 0; i < n; i++) sc->col[i][0] = 0;
        return NULL;
    }
    sc->nv = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int c = 0; c < 64; c++) sc->col[i][c] = -1;
        for (int c = 0; c < s[i].nv; c++) {
            const char *name = qp_S(s[i].vnames)[c];
            int at = -1;
            for (int k = 0; k < sc->nv && at < 0; k++) if (sc->names[k] == name) at = k;
            if (at >= 0 && sc->col[i][at] >= 0)
                return qp_error("sum-by-key: partial %lld has two value columns named %s",
                                (long long)i + 1, name);
            if (at < 0 && i > 0 && !zero) return names_differ(&s[0], &s[i], i);
            if (at < 0 && sc->nv == 64) return qp_error("sum-by-key: too many columns");
            if (at < 0) sc->names[at = sc->nv++] = name;
            sc->col[i][at] = c;
        }
        if (!zero && s[i].nv != s[0].nv) return names_differ(&s[0], &s[i], i);
    }
    return NULL;
}

/* Adds the rows of partial p into h: result column c from p's column
 * col[c] (none when -1); fl[c] says column c sums as float. Returns 0 or
 * QP_ENOMEM. */
static int add_partial(keyhash *h, const kv *p, const int *col, const bool *fl)
{
    uint8_t row[16 * 16 + 64];
    for (int64_t r = 0; r < p->rows; r++) {
        size_t off = 0;
        for (int c = 0; c < p->nk; c++) {    /* 0.0 and -0.0 one key, as q's = */
            size_t w = qp_type_width(p->k[c]->type);
            qp_item_key(p->k[c]->type, (const char *)p->k[c]->v.data + (size_t)r * w, row + off);
            off += w;
        }
        int64_t dst = keyhash_row(h, row);
        if (dst < 0) return (int)dst;
        for (int c = 0; c < h->nv; c++) {
            int64_t j = 0;
            double f = 0;
            if (col[c] < 0) continue;
            const qp_value *v = p->v[col[c]];
            if (!get_num(v->type, v->v.data, r, &j, &f)) continue;
            __int128 *a = &h->acc[(size_t)dst * (size_t)h->nv + (size_t)c];
            if (fl[c]) {
                /* An integer column adds into float sums as its value. */
                double d;
                memcpy(&d, a, 8);
                d += is_float_type(v->type) ? f : (double)j;
                memcpy(a, &d, 8);
            } else {
                *a += j;
            }
        }
    }
    return 0;
}

/* The key columns (kcols) and sum columns (vcols, h->nv of them) of h,
 * as general lists of new references; QP_ENOMEM with both NULL if out of
 * memory. */
static int keyhash_columns(const keyhash *h, const kv *first, const bool *fl,
                           qp_value **kcols, qp_value **vcols)
{
    qp_value *kc = qp_vector(QP_LIST, first->nk), *vc = qp_vector(QP_LIST, h->nv);
    if (kc) for (int c = 0; c < first->nk; c++) qp_K(kc)[c] = NULL;
    if (vc) for (int c = 0; c < h->nv; c++) qp_K(vc)[c] = NULL;
    if (!kc || !vc) goto fail;
    size_t koff = 0;
    for (int c = 0; c < first->nk; c++) {
        int t = first->k[c]->type;
        size_t w = qp_type_width(t);
        qp_value *col = qp_K(kc)[c] = qp_vector(t, h->nrows);
        if (!col) goto fail;
        for (int64_t q = 0; q < h->nrows; q++)
            memcpy((char *)col->v.data + (size_t)q * w, h->keyb + (size_t)q * h->kw + koff, w);
        koff += w;
    }
    for (int c = 0; c < h->nv; c++) {
        qp_value *col = qp_K(vc)[c] = qp_vector(fl[c] ? QP_FLOAT : QP_LONG, h->nrows);
        if (!col) goto fail;
        for (int64_t q = 0; q < h->nrows; q++) {
            const __int128 *a = &h->acc[(size_t)q * (size_t)h->nv + (size_t)c];
            if (fl[c]) memcpy(qp_J(col) + q, a, 8);
            else qp_J(col)[q] = (int64_t)*a;     /* sums_fit checked it */
        }
    }
    *kcols = kc;
    *vcols = vc;
    return 0;
fail:
    for (int c = 0; kc && c < first->nk; c++) if (!qp_K(kc)[c]) qp_K(kc)[c] = qp_identity();
    for (int c = 0; vc && c < h->nv; c++) if (!qp_K(vc)[c]) qp_K(vc)[c] = qp_identity();
    qp_unref(kc);
    qp_unref(vc);
    *kcols = *vcols = NULL;
    return QP_ENOMEM;
}

/* The result in the first partial's shape, its value columns named
 * vnames; steals kcols, vcols and vnames. */
static qp_value *shape_result(const kv *first, qp_value *kcols, qp_value *vcols,
                              qp_value *vnames)
{
    qp_value *r = NULL;
    switch (first->shape) {
    case KV_DICT_VEC:
        r = qp_dict(qp_ref(qp_K(kcols)[0]), qp_ref(qp_K(vcols)[0]));
        break;
    case KV_DICT_TABLE:
        r = qp_dict(qp_ref(qp_K(kcols)[0]), qp_table(qp_dict(vnames, vcols)));
        vcols = vnames = NULL;
        break;
    case KV_KEYED:
        r = qp_dict(qp_table(qp_dict(qp_ref(first->knames), kcols)),
                    qp_table(qp_dict(vnames, vcols)));
        kcols = vcols = vnames = NULL;
        break;
    case KV_TABLE: {
        /* Key columns first, then the sums, as q's `0!select sum v by k
         * from t` lays them out. */
        int nk = first->nk, nv = (int)vnames->v.n;
        qp_value *names = qp_vector(QP_SYMBOL, nk + nv), *cols = qp_vector(QP_LIST, nk + nv);
        if (!names || !cols) { qp_unref(names); qp_unref(cols); break; }
        for (int c = 0; c < nk; c++) {
            qp_S(names)[c] = qp_S(first->knames)[c];
            qp_K(cols)[c] = qp_ref(qp_K(kcols)[c]);
        }
        for (int c = 0; c < nv; c++) {
            qp_S(names)[nk + c] = qp_S(vnames)[c];
            qp_K(cols)[nk + c] = qp_ref(qp_K(vcols)[c]);
        }
        r = qp_table(qp_dict(names, cols));
        break;
    }
    }
    qp_unref(kcols);
    qp_unref(vcols);
    qp_unref(vnames);
    return r;
}

/* Key row q of h as text, its key columns' atoms as the console shows
 * them, for an error; malloc'd, NULL on OOM. */
static char *key_text(const keyhash *h, const kv *first, int64_t q)
{
    qp_value *l = qp_vector(QP_LIST, first->nk);
    size_t off = 0;
    for (int c = 0; l && c < first->nk; c++) {
        int t = first->k[c]->type;
        qp_value *one = qp_vector(t, 1);
        if (one) memcpy(one->v.data, h->keyb + (size_t)q * h->kw + off, qp_type_width(t));
        qp_K(l)[c] = one ? qp_item(one, 0) : NULL;
        qp_unref(one);
        if (!qp_K(l)[c]) qp_K(l)[c] = qp_identity();
        off += qp_type_width(t);
    }
    char *text = l ? qp_format(first->nk == 1 ? qp_K(l)[0] : l, 0) : NULL;
    qp_unref(l);
    return text;
}

/* An error naming the first long sum of h beyond q's longs (column and
 * key), or NULL when every one fits. */
static qp_value *sums_fit(const keyhash *h, const kv *first, const bool *fl, const schema *sc)
{
    for (int64_t q = 0; q < h->nrows; q++)
        for (int c = 0; c < h->nv; c++) {
            if (fl[c] || long_fits(h->acc[(size_t)q * (size_t)h->nv + (size_t)c])) continue;
            char *key = key_text(h, first, q);
            qp_value *e = qp_error("sum-by-key: the sum of column %s for key %s is beyond q's "
                                   "longs (-0W to 0W)", sc->names[c] ? sc->names[c] : "(values)",
                                   key ? key : "?");
            free(key);
            return e;
        }
    return NULL;
}

/* Sums the partials of s into a result: value columns by name (sc),
 * float sums for a column that is float in any partial. */
static qp_value *sum_partials(const kv *s, int64_t n, const schema *sc)
{
    keyhash h = { 0 };
    bool fl[64] = { false };
    qp_value *kcols, *vcols, *vnames = NULL, *result = NULL;
    size_t kw = 0;
    for (int i = 0; i < s[0].nk; i++) kw += qp_type_width(s[0].k[i]->type);
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < sc->nv; c++)
            if (sc->col[i][c] >= 0 && is_float_type(s[i].v[sc->col[i][c]]->type)) fl[c] = true;
    if (keyhash_init(&h, kw, sc->nv)) return NULL;
    for (int64_t i = 0; i < n; i++)
        if (add_partial(&h, &s[i], sc->col[i], fl)) goto done;
    if ((result = sums_fit(&h, &s[0], fl, sc))) goto done;
    if (s[0].shape != KV_DICT_VEC) {
        if (!(vnames = qp_vector(QP_SYMBOL, sc->nv))) goto done;
        for (int c = 0; c < sc->nv; c++) qp_S(vnames)[c] = sc->names[c];
    }
    if (keyhash_columns(&h, &s[0], fl, &kcols, &vcols)) { qp_unref(vnames); goto done; }
    result = shape_result(&s[0], kcols, vcols, vnames);
done:
    keyhash_free(&h);
    return result;
}

/* Sums the value columns of the partials by key, keys in first-seen
 * order, value columns matched by name (zero: a partial's missing ones
 * count as zero, else they fail the merge). Returns a new reference, an
 * error value, or NULL if out of memory. */
static qp_value *merge_by_key(qp_value *const *p, int64_t n, char *const *keys, int nkeys,
                              bool zero)
{
    if (n == 0) return qp_error("sum-by-key: no partials");
    qp_value *err = NULL, *result = NULL;
    schema sc = { 0 };
    int64_t done = 0;
    kv *s = calloc((size_t)n, sizeof *s);
    sc.col = calloc((size_t)n, sizeof *sc.col);
    if (!s || !sc.col) goto fail;
    while (done < n && !err) err = split_kv(p[done], keys, nkeys, &s[done]), done++;
    if (err || (err = check_shapes(s, n)) || (err = match_values(s, n, zero, &sc))) goto fail;
    result = sum_partials(s, n, &sc);
fail:
    for (int64_t i = 0; i < done; i++)
        if (s[i].shape == KV_TABLE) { qp_unref(s[i].knames); qp_unref(s[i].vnames); }
    free(s);
    free(sc.col);
    return err ? err : result;
}

qp_value *qp_merge(int how, qp_value *const *parts, int64_t n, char *const *keys, int nkeys)
{
    bool zero = how & QP_MERGE_MISSING_ZERO;
    switch (how & ~QP_MERGE_MISSING_ZERO) {
    case QP_MERGE_CONCAT: return merge_concat(parts, n);
    case QP_MERGE_SUM: return merge_arith(OP_SUM, parts, n);
    case QP_MERGE_MIN: return merge_arith(OP_MIN, parts, n);
    case QP_MERGE_MAX: return merge_arith(OP_MAX, parts, n);
    case QP_MERGE_COUNT: {
        int64_t c = 0;
        for (int64_t i = 0; i < n; i++) c += qp_count(parts[i]);
        return qp_long(c);
    }
    case QP_MERGE_SUM_BY_KEY: return merge_by_key(parts, n, keys, nkeys, zero);
    default: {
        qp_value *r = qp_vector(QP_LIST, n);
        if (r) for (int64_t i = 0; i < n; i++) qp_K(r)[i] = qp_ref(parts[i]);
        return r;
    }
    }
}
