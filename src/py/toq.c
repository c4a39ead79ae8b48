/* src/py/toq.c - Python objects to q values (always copied into q memory).
 *
 * The mapping (Python -> q):
 *   None -> (::)    bool -> bool    int -> long (beyond 64 bits: error)
 *   float -> float  str -> symbol   bytes, bytearray -> byte vector
 *   uuid.UUID -> guid   datetime.datetime -> timestamp   datetime.date -> date
 *   datetime.timedelta -> timespan   datetime.time -> time
 *   numpy scalars and arrays by dtype:
 *     bool -> bool, uint8 -> byte, int8/int16 -> short, uint16/int32 -> int,
 *     uint32/int64/uint64 -> long (uint64 wraps), float16/float32 -> real,
 *     float64/longdouble -> float,
 *     datetime64[D] -> date, [M] -> month, other units -> timestamp (ns),
 *     timedelta64[m] -> minute, [s] -> second, [ms] -> time (each when the
 *     values fit q's 32 bits, else timespan), other units -> timespan,
 *     S1 arrays (and bytes_ items) and object arrays of one-byte bytes ->
 *     char vectors (q's chars, as PyKX's toq), other str/bytes arrays and
 *     object arrays of str -> symbol vectors, other object arrays ->
 *     lists, 2-d and up -> lists of rows; masked arrays with q's nulls
 *     where masked.
 *   list, tuple -> general list, collapsed to a vector when every item
 *     converts to an atom of one type (as q collapses (1;2;3) to 1 2 3);
 *     empty -> ().
 *   dict of str -> equal-length 1-d arrays (or Series, Categoricals,
 *     SymbolCodes) -> table, an empty object column a symbol column; any
 *     other dict -> dict (keys and values collapsed as lists are).
 *   pandas: DataFrame -> table (keyed by its index when the index is
 *     named, as set_index and groupby leave it; an unnamed index is dropped;
 *     columns that were q char columns, named in df.attrs, -> chars),
 *     Series/Index -> vector, Categorical (and qpeach's SymbolCodes) ->
 *     symbol vector.
 * Nulls: NaN -> 0n/0Ne, NaT -> the temporal null, int64 max/min+1 of a
 * datetime64/timedelta64 (any unit) -> +-infinity; ints map to themselves,
 * so q's sentinels round-trip. pandas' <NA> (nullable integers, floats,
 * strings), masked items, and None/NaN in a column of str -> q's null of
 * the type (pdcol.c); a missing boolean or byte is an error (q has none).
 * Temporal values are converted in exact integer arithmetic from their own
 * unit (toqtime.c): one beyond q's type (a timestamp outside
 * 1707.09.22..2292.04.10) is an error naming its column and row (or list
 * item), never a wrapped value.
 * Anything else is an error naming the Python type.
 */
#include "py_int.h"

#include <datetime.h>
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static qp_value *to_q(PyObject *o, int depth);

static qp_value *cannot(PyObject *o, const char *why)
{
    return qp_error("qpeach: cannot convert Python %s to q%s", Py_TYPE(o)->tp_name, why);
}

qp_value *qp__py_failed(const char *what)
{
    qp_value *e = qp_py_error();
    qp_value *r = qp_error("qpeach: %s: %s", what, e ? e->s : "?");
    qp_unref(e);
    return r;
}

/* ---- collapse: (1;2;3) -> 1 2 3 ---- */

qp_value *qp__collapse(qp_value *lst)
{
    if (!lst || lst->type != QP_LIST || lst->v.n == 0) return lst;
    qp_value **k = qp_K(lst);
    int t = k[0]->type;
    if (t >= 0 || t == QP_ERROR) return lst;
    for (int64_t i = 1; i < lst->v.n; i++)
        if (k[i]->type != t) return lst;
    qp_value *v = qp_vector(-t, lst->v.n);
    if (!v) { qp_unref(lst); return NULL; }
    size_t w = -t == QP_GUID ? 16 : qp_type_width(-t);
    for (int64_t i = 0; i < lst->v.n; i++) {
        const void *src = -t == QP_GUID ? (const void *)k[i]->u : (const void *)&k[i]->g;
        memcpy((char *)v->v.data + (size_t)i * w, src, w);
    }
    qp_unref(lst);
    return v;
}

/* ---- str -> symbol, with a per-conversion cache keyed by the object ---- */

typedef struct { PyObject *k; const char *s; } strslot;
typedef struct { strslot *t; size_t cap, used; } strcache;

static inline size_t obj_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return (size_t)x;
}

static const char *str_intern(PyObject *o)
{
    Py_ssize_t n;
    if (PyBytes_Check(o)) return qp_sym_intern(PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
    const char *u = PyUnicode_AsUTF8AndSize(o, &n);
    if (!u) {   /* lone surrogates (from undecodable q bytes) go back raw */
        PyErr_Clear();
        PyObject *b = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
        if (!b) return NULL;
        const char *s = qp_sym_intern(PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
        Py_DECREF(b);
        return s;
    }
    return qp_sym_intern(u, (size_t)n);
}

static const char *cached_intern(strcache *c, PyObject *o)
{
    if ((c->used + 1) * 2 > c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 256;
        strslot *t = calloc(ncap, sizeof *t);
        if (!t) return NULL;
        for (size_t i = 0; i < c->cap; i++) {
            if (!c->t[i].k) continue;
            size_t h = obj_hash(c->t[i].k) & (ncap - 1);
            while (t[h].k) h = (h + 1) & (ncap - 1);
            t[h] = c->t[i];
        }
        free(c->t);
        c->t = t;
        c->cap = ncap;
    }
    size_t h = obj_hash(o) & (c->cap - 1);
    while (c->t[h].k && c->t[h].k != o) h = (h + 1) & (c->cap - 1);
    if (c->t[h].k) return c->t[h].s;
    const char *s = str_intern(o);
    if (!s) return NULL;
    c->t[h].k = o;      /* borrowed: the array keeps o alive meanwhile */
    c->t[h].s = s;
    c->used++;
    return s;
}

/* Whether o is a missing value as pandas and numpy write one in a column
 * of objects: None, a float NaN, pandas.NA. */
static bool is_missing(PyObject *o)
{
    if (o == Py_None) return true;
    if (PyFloat_Check(o)) return isnan(PyFloat_AS_DOUBLE(o));
    const char *t = Py_TYPE(o)->tp_name, *dot = strrchr(t, '.');
    return !strcmp(dot ? dot + 1 : t, "NAType");
}

/* Symbol vector from n str objects at items (borrowed); missing values
 * (is_missing) are the null symbol. */
static qp_value *symbols_from(PyObject *const *items, Py_ssize_t n)
{
    qp_value *v = qp_vector(QP_SYMBOL, n);
    if (!v) return NULL;
    strcache c = {0};
    const char **s = qp_S(v);
    PyObject *last = NULL;
    const char *lasts = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (items[i] != last) {
            lasts = is_missing(items[i]) ? qp_sym_intern("", 0) : cached_intern(&c, items[i]);
            if (!lasts) { free(c.t); qp_unref(v); return qp__py_failed("symbol"); }
            last = items[i];
        }
        s[i] = lasts;
    }
    free(c.t);
    return v;
}

/* ---- numpy arrays ---- */

static qp_value *numeric_copy(PyArrayObject *a, int qt, int npy)
{
    PyArray_Descr *d = PyArray_DescrFromType(npy);
    PyArrayObject *c = (PyArrayObject *)PyArray_FromAny((PyObject *)a, d, 1, 1,
                                                        NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST, NULL);
    if (!c) return qp__py_failed("array cast");
    npy_intp n = PyArray_DIM(c, 0);
    qp_value *v = qp_vector(qt, n);
    if (v && n) memcpy(v->v.data, PyArray_DATA(c), (size_t)n * qp_type_width(qt));
    Py_DECREF(c);
    return v;
}

/* Error e (stolen) placed at item i of a list, or row i of column col. */
static qp_value *at_item(qp_value *e, const char *col, Py_ssize_t i)
{
    if (!e || !qp_is_error(e)) return e;
    const char *m = strncmp(e->s, "qpeach: ", 8) ? e->s : e->s + 8;
    qp_value *r = col ? qp_error("qpeach: column %s, row %zd: %s", col, i, m)
                      : qp_error("qpeach: item %zd: %s", i, m);
    qp_unref(e);
    return r;
}

static qp_value *list_items(PyObject *const *items, Py_ssize_t n, int depth, const char *col)
{
    qp_value *l = qp_vector(QP_LIST, n);
    if (!l) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        qp_value *v = to_q(items[i], depth);
        if (!v || qp_is_error(v)) {
            for (Py_ssize_t j = i; j < n; j++) qp_K(l)[j] = qp_identity();
            qp_unref(l);
            return at_item(v, col, i);
        }
        qp_K(l)[i] = v;
    }
    return qp__collapse(l);
}

/* An object array: str items (and missing values, is_missing) are a
 * symbol vector; one-byte bytes items a char vector (PyKX's .pd() of a
 * char column, and pandas' view of an S1 array); others a general list. */
static qp_value *objects_to_q(PyArrayObject *a, int depth, const char *col)
{
    PyArrayObject *c = (PyArrayObject *)PyArray_FromAny((PyObject *)a, NULL, 1, 1,
                                                        NPY_ARRAY_CARRAY_RO, NULL);
    if (!c) return qp__py_failed("array");
    npy_intp n = PyArray_DIM(c, 0);
    PyObject *const *items = PyArray_DATA(c);
    bool str = false, syms = n > 0, chars = n > 0;
    for (npy_intp i = 0; i < n && (syms || chars); i++) {
        PyObject *o = items[i];
        bool s = o && PyUnicode_Check(o), b = o && PyBytes_Check(o) && PyBytes_GET_SIZE(o) == 1;
        str |= s;
        syms &= s || (o && is_missing(o));
        chars &= b;
    }
    qp_value *v = NULL;
    if (chars && (v = qp_vector(QP_CHAR, n)))
        for (npy_intp i = 0; i < n; i++) ((char *)v->v.data)[i] = PyBytes_AS_STRING(items[i])[0];
    if (!chars) v = syms && str ? symbols_from(items, n) : list_items(items, n, depth, col);
    Py_DECREF(c);
    return v;
}

static qp_value *chars_to_q(PyArrayObject *a)
{
    if (PyArray_DESCR(a)->kind == 'S' && PyArray_DESCR(a)->elsize == 1) {   /* S1: q's chars */
        PyArrayObject *c = (PyArrayObject *)PyArray_GETCONTIGUOUS(a);
        if (!c) return qp__py_failed("array");
        qp_value *v = qp_string(PyArray_DATA(c), (size_t)PyArray_DIM(c, 0));
        Py_DECREF(c);
        return v;
    }
    /* other fixed-width str/bytes arrays: one Python object per item, once */
    PyObject *l = PySequence_List((PyObject *)a);
    if (!l) return qp__py_failed("array");
    qp_value *v = symbols_from(PySequence_Fast_ITEMS(l), PyList_GET_SIZE(l));
    Py_DECREF(l);
    return v;
}

static bool is_instance(PyObject *o, const char *module, const char *cls);

/* a: a numpy array (1-d, or 0-d for an atom); col: the table column it is
 * (row numbers in errors), or NULL. */
static qp_value *array_to_q(PyArrayObject *a, int depth, const char *col)
{
    if (!PyArray_CheckExact(a) && is_instance((PyObject *)a, "numpy.ma", "MaskedArray")) {
        PyObject *u = qp__pd_unmask((PyObject *)a);
        qp_value *v = !u ? qp__py_failed("masked array")
                    : PyArray_Check(u) ? array_to_q((PyArrayObject *)u, depth, col) : to_q(u, depth);
        Py_XDECREF(u);
        return v;
    }
    int nd = PyArray_NDIM(a);
    if (nd == 0) {
        PyObject *r = PyArray_Ravel(a, NPY_CORDER);
        if (!r) return qp__py_failed("array");
        qp_value *v = array_to_q((PyArrayObject *)r, depth, qp__atom_pos);
        Py_DECREF(r);
        if (!v || qp_is_error(v)) return v;
        qp_value *atom = qp_item(v, 0);
        qp_unref(v);
        return atom;
    }
    if (nd > 1) {
        PyObject *l = PySequence_List((PyObject *)a);
        if (!l) return qp__py_failed("array");
        qp_value *v = list_items(PySequence_Fast_ITEMS(l), PyList_GET_SIZE(l), depth, col);
        if (v && v->type != QP_LIST && !qp_is_error(v)) {   /* rows are lists, never atoms */
            qp_unref(v);
            v = qp_error("qpeach: cannot convert numpy array of shape %d-d", nd);
        }
        Py_DECREF(l);
        return v;
    }
    PyArray_Descr *d = PyArray_DESCR(a);
    int size = (int)d->elsize;
    switch (d->kind) {
    case 'b': return numeric_copy(a, QP_BOOL, NPY_BOOL);
    case 'u':
        if (size == 1) return numeric_copy(a, QP_BYTE, NPY_UINT8);
        if (size == 2) return numeric_copy(a, QP_INT, NPY_INT32);
        return numeric_copy(a, QP_LONG, NPY_INT64);
    case 'i':
        if (size <= 2) return numeric_copy(a, QP_SHORT, NPY_INT16);
        if (size == 4) return numeric_copy(a, QP_INT, NPY_INT32);
        return numeric_copy(a, QP_LONG, NPY_INT64);
    case 'f':
        if (size <= 4) return numeric_copy(a, QP_REAL, NPY_FLOAT32);
        return numeric_copy(a, QP_FLOAT, NPY_FLOAT64);
    case 'M': case 'm': return qp__temporal_to_q(a, col);
    case 'O': return objects_to_q(a, depth, col == qp__atom_pos ? NULL : col);
    case 'U': case 'S': return chars_to_q(a);
    default: break;
    }
    return qp_error("qpeach: cannot convert numpy array of dtype %c%d to q", d->kind, size);
}

/* ---- pandas ---- */

/* Whether o is an instance of module.cls, when that module is loaded (o
 * cannot be one of its types otherwise, and nothing is imported). */
static bool is_instance(PyObject *o, const char *module, const char *cls)
{
    PyObject *mods = PyImport_GetModuleDict();
    PyObject *m = mods ? PyDict_GetItemString(mods, module) : NULL;   /* borrowed */
    if (!m) return false;
    PyObject *c = PyObject_GetAttrString(m, cls);
    if (!c) { PyErr_Clear(); return false; }
    int r = PyObject_IsInstance(o, c);
    Py_DECREF(c);
    if (r < 0) PyErr_Clear();
    return r > 0;
}

static bool is_pandas(PyObject *o, const char *cls)
{
    return is_instance(o, "pandas", cls);
}

/* A pandas Categorical, or a SymbolCodes (whose categories are an array
 * already): codes into categories. */
static qp_value *categorical_to_q(PyObject *cat)
{
    PyObject *codes = PyObject_GetAttrString(cat, "codes");
    PyObject *cats = codes ? PyObject_GetAttrString(cat, "categories") : NULL;
    PyObject *names = !cats ? NULL : PyArray_Check(cats) ? (Py_INCREF(cats), cats)
                    : PyObject_CallMethod(cats, "to_numpy", NULL);
    PyArrayObject *c = codes ? (PyArrayObject *)PyArray_FromAny(codes, PyArray_DescrFromType(NPY_INT64),
                                                                1, 1, NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST, NULL) : NULL;
    qp_value *v = NULL, *syms = NULL;
    if (!c || !names) { v = qp__py_failed("categorical"); goto done; }
    syms = to_q(names, 1);
    if (!syms || qp_is_error(syms) || (syms->type != QP_SYMBOL && PyArray_SIZE((PyArrayObject *)names) > 0)) {
        /* categories that are not strings: convert the values as they are */
        qp_unref(syms);
        syms = NULL;
        PyObject *vals = PyArray_FromAny(cat, NULL, 1, 1, 0, NULL);
        v = vals ? to_q(vals, 1) : qp__py_failed("categorical");
        Py_XDECREF(vals);
        goto done;
    }
    npy_intp n = PyArray_DIM(c, 0);
    const int64_t *k = PyArray_DATA(c);
    v = qp_vector(QP_SYMBOL, n);
    const char *null = qp_sym_intern("", 0);
    for (npy_intp i = 0; v && i < n; i++)
        qp_S(v)[i] = (k[i] < 0 || k[i] >= syms->v.n) ? null : qp_S(syms)[k[i]];
done:
    qp_unref(syms);
    Py_XDECREF((PyObject *)c);
    Py_XDECREF(names);
    Py_XDECREF(cats);
    Py_XDECREF(codes);
    return v;
}

/* The pending Python exception as an error at column col (or "pandas"):
 * its message alone, which says which row. */
static qp_value *pd_failed(const char *col)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyObject *m = v ? PyObject_Str(v) : NULL;
    const char *txt = m ? PyUnicode_AsUTF8(m) : NULL;
    PyErr_Clear();
    qp_value *e = qp_error("qpeach: %s%s%s %s", col ? "column " : "pandas", col ? col : "",
                           txt && !strncmp(txt, "row ", 4) ? "," : ":", txt ? txt : "?");
    Py_XDECREF(m);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return e;
}

/* Series s (column col of a frame, or NULL): a Categorical as symbols,
 * other values through numpy with q's nulls for pandas' <NA> (pdcol.c). */
static qp_value *series_to_q(PyObject *s, const char *col)
{
    PyObject *dt = PyObject_GetAttrString(s, "dtype");
    PyObject *name = dt ? PyObject_GetAttrString(dt, "name") : NULL;
    bool cat = name && PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, "category") == 0;
    Py_XDECREF(name);
    Py_XDECREF(dt);
    PyErr_Clear();
    PyObject *x = cat ? PyObject_GetAttrString(s, "array") : qp__pd_values(s);
    if (!x) return pd_failed(col);
    qp_value *v = cat ? categorical_to_q(x)
                : PyArray_Check(x) ? array_to_q((PyArrayObject *)x, 1, col) : to_q(x, 1);
    Py_DECREF(x);
    return v;
}

/* Symbols v (stolen) of a column that was a q char column, as chars when
 * each is one char (the null symbol is the char null, a blank); else v. */
static qp_value *as_chars(qp_value *v)
{
    if (!v || v->type != QP_SYMBOL) return v;
    for (int64_t i = 0; i < v->v.n; i++)
        if (qp_S(v)[i] && strlen(qp_S(v)[i]) > 1) return v;
    qp_value *c = qp_vector(QP_CHAR, v->v.n);
    for (int64_t i = 0; c && i < v->v.n; i++) {
        const char *s = qp_S(v)[i];
        ((char *)c->v.data)[i] = s && *s ? *s : QP_NULL_C;
    }
    qp_unref(v);
    return c;
}

static qp_value *column_to_q(PyObject *v, int depth, const char *name);

/* Column i of a frame (cols: its columns, iloc: its iloc), named *sym;
 * one of chars (the frame's columns marked as q char columns) goes back
 * as chars. New reference or an error value. */
static qp_value *frame_column(PyObject *cols, PyObject *iloc, PyObject *chars, Py_ssize_t i,
                              const char **sym)
{
    PyObject *nm = PySequence_GetItem(cols, i);
    PyObject *ns = nm ? PyObject_Str(nm) : NULL;
    PyObject *key = Py_BuildValue("(On)", Py_None, i);
    PyObject *slice = key ? PySlice_New(NULL, NULL, NULL) : NULL;
    if (key && slice) PyTuple_SetItem(key, 0, slice);    /* steals slice */
    PyObject *s = (ns && key && slice) ? PyObject_GetItem(iloc, key) : NULL;
    *sym = ns ? str_intern(ns) : NULL;
    int marked = ns ? PySequence_Contains(chars, ns) : 0;
    Py_XDECREF(key);
    Py_XDECREF(nm);
    Py_XDECREF(ns);
    qp_value *c = !s || !*sym || marked < 0 ? qp__py_failed("DataFrame column") : column_to_q(s, 1, *sym);
    Py_XDECREF(s);
    return marked > 0 ? as_chars(c) : c;
}

/* An index is a key only when named (set_index, groupby): the unnamed
 * index a filter such as df[df.x > 0] leaves behind is dropped. */
static bool unkeyed_index(PyObject *idx)
{
    PyObject *names = PyObject_GetAttrString(idx, "names");
    PyObject *f = names ? PySequence_Fast(names, "") : NULL;
    bool unnamed = f != NULL;
    for (Py_ssize_t i = 0; f && i < PySequence_Fast_GET_SIZE(f); i++)
        if (PySequence_Fast_ITEMS(f)[i] != Py_None) unnamed = false;
    Py_XDECREF(f);
    Py_XDECREF(names);
    PyErr_Clear();
    return unnamed;
}

/* Table from frame df (no index), or keyed by its first nkeys columns. */
static qp_value *frame_columns(PyObject *df, Py_ssize_t nkeys);

static qp_value *dataframe_to_q(PyObject *df)
{
    PyObject *idx = PyObject_GetAttrString(df, "index");
    if (!idx) return qp__py_failed("DataFrame");
    if (unkeyed_index(idx)) {
        Py_DECREF(idx);
        return frame_columns(df, 0);
    }
    PyObject *nl = PyObject_GetAttrString(idx, "nlevels");
    Py_ssize_t nkeys = nl ? PyLong_AsSsize_t(nl) : -1;
    Py_XDECREF(nl);
    Py_DECREF(idx);
    PyObject *flat = nkeys > 0 ? PyObject_CallMethod(df, "reset_index", NULL) : NULL;
    if (!flat) return qp__py_failed("DataFrame index");
    qp_value *v = frame_columns(flat, nkeys);
    Py_DECREF(flat);
    return v;
}

static qp_value *frame_columns(PyObject *df, Py_ssize_t nkeys)
{
    PyObject *cols = PyObject_GetAttrString(df, "columns");
    PyObject *iloc = cols ? PyObject_GetAttrString(df, "iloc") : NULL;
    PyObject *chars = iloc ? qp__pd_char_columns(df) : NULL;
    Py_ssize_t nc = cols ? PyObject_Length(cols) : -1;
    qp_value *names = NULL, *vals = NULL, *r = NULL;
    if (!chars || nc < 0) { r = qp__py_failed("DataFrame"); goto done; }
    names = qp_vector(QP_SYMBOL, nc);
    vals = qp_vector(QP_LIST, nc);
    if (!names || !vals) goto done;
    for (Py_ssize_t i = 0; i < nc; i++) qp_K(vals)[i] = qp_identity();
    for (Py_ssize_t i = 0; i < nc; i++) {
        const char *sym;
        qp_value *c = frame_column(cols, iloc, chars, i, &sym);
        for (Py_ssize_t j = 0; c && !qp_is_error(c) && j < i; j++)   /* a table keeps one column per name */
            if (qp_S(names)[j] == sym) {
                qp_unref(c);
                c = qp_error("qpeach: DataFrame column %s appears twice (columns %zd and %zd)", sym, j + 1, i + 1);
            }
        if (!c || qp_is_error(c)) { r = c; goto done; }
        qp_S(names)[i] = sym;
        qp_unref(qp_K(vals)[i]);
        qp_K(vals)[i] = c;
    }
    if (nkeys == 0) {
        r = qp_table(qp_dict(names, vals));
        names = vals = NULL;
        goto done;
    }
    {   /* keyed: split the flat table into key columns and value columns */
        qp_value *kn = qp_slice(names, 0, nkeys), *kv = qp_slice(vals, 0, nkeys);
        qp_value *vn = qp_slice(names, nkeys, nc - nkeys), *vv = qp_slice(vals, nkeys, nc - nkeys);
        qp_value *kt = qp_table(qp_dict(kn, kv)), *vt = qp_table(qp_dict(vn, vv));
        if (kt && qp_is_error(kt)) { r = kt; qp_unref(vt); goto done; }
        if (vt && qp_is_error(vt)) { r = vt; qp_unref(kt); goto done; }
        r = qp_dict(kt, vt);
    }
done:
    qp_unref(names);
    qp_unref(vals);
    Py_XDECREF(chars);
    Py_XDECREF(iloc);
    Py_XDECREF(cols);
    return r;
}

/* ---- dicts ---- */

static bool is_symbols(PyObject *v)
{
    return is_pandas(v, "Categorical") || qp__is_symbol_codes(v);
}

/* A table's column: a 1-d array, a Series, or symbols as a function gets
 * them with symbols = categorical or codes. */
static bool is_column(PyObject *v, Py_ssize_t *len)
{
    if (PyArray_Check(v)) {
        if (PyArray_NDIM((PyArrayObject *)v) != 1) return false;
        *len = PyArray_DIM((PyArrayObject *)v, 0);
        return true;
    }
    if (is_pandas(v, "Series") || is_symbols(v)) {
        *len = PyObject_Length(v);
        return *len >= 0;
    }
    return false;
}

/* Column v of a table. An empty object column is a symbol column, the
 * dtype symbols have (an empty table's symbol column arrives as one), not
 * an empty general list: an empty table keeps its symbol columns. (An
 * empty guid column, also an object array, says nothing of its type: it
 * becomes a symbol column too.) */
static qp_value *column_to_q(PyObject *v, int depth, const char *name)
{
    qp_value *c = PyArray_Check(v) ? array_to_q((PyArrayObject *)v, depth, name)
                : is_pandas(v, "Series") ? series_to_q(v, name) : categorical_to_q(v);
    if (c && c->type == QP_LIST && c->v.n == 0) {
        qp_unref(c);
        c = qp_vector(QP_SYMBOL, 0);
    }
    return c;
}

static qp_value *dict_to_q(PyObject *o, int depth)
{
    Py_ssize_t n = PyDict_Size(o), pos = 0, i = 0, len = -1, l;
    PyObject *k, *v;
    bool table = n > 0;
    while (table && PyDict_Next(o, &pos, &k, &v))
        table = PyUnicode_Check(k) && is_column(v, &l) && (len < 0 || l == len) && ((len = l), true);
    qp_value *keys = qp_vector(QP_LIST, n), *vals = qp_vector(QP_LIST, n), *r = NULL;
    if (!keys || !vals) goto done;
    for (Py_ssize_t j = 0; j < n; j++) qp_K(keys)[j] = qp_K(vals)[j] = NULL;
    pos = 0;
    while (PyDict_Next(o, &pos, &k, &v)) {
        qp_value *kq = to_q(k, depth), *vq = NULL;
        if (kq && !qp_is_error(kq))
            vq = table ? column_to_q(v, depth, PyUnicode_AsUTF8(k)) : to_q(v, depth);
        if (!kq || qp_is_error(kq) || !vq || qp_is_error(vq)) {
            r = kq && qp_is_error(kq) ? kq : vq;
            if (r == kq) qp_unref(vq); else qp_unref(kq);
            goto done;
        }
        qp_K(keys)[i] = kq;
        qp_K(vals)[i] = vq;
        i++;
    }
    keys = qp__collapse(keys);
    if (table) {
        r = qp_table(qp_dict(keys, vals));
    } else {
        r = qp_dict(keys, qp__collapse(vals));
    }
    return r;
done:
    /* fill holes so the lists can be freed */
    for (Py_ssize_t j = 0; keys && vals && j < n; j++) {
        if (!qp_K(keys)[j]) qp_K(keys)[j] = qp_identity();
        if (!qp_K(vals)[j]) qp_K(vals)[j] = qp_identity();
    }
    qp_unref(keys);
    qp_unref(vals);
    return r;
}

/* ---- datetime module objects, through numpy's scalars ---- */

static qp_value *via_numpy(PyObject *o, const char *ctor)
{
    PyObject *np = PyImport_ImportModule("numpy");
    PyObject *r = np ? PyObject_CallMethod(np, ctor, "O", o) : NULL;
    Py_XDECREF(np);
    if (!r) return qp__py_failed(ctor);
    qp_value *v = to_q(r, 1);
    Py_DECREF(r);
    return v;
}

static qp_value *to_q(PyObject *o, int depth)
{
    if (++depth > QP_PY_MAX_DEPTH) return cannot(o, ": nested too deep");
    if (o == Py_None) return qp_identity();
    if (PyBool_Check(o)) return qp_bool(o == Py_True);
    if (PyLong_Check(o)) {
        int over = 0;
        long long j = PyLong_AsLongLongAndOverflow(o, &over);
        if (over) return cannot(o, ": value beyond a 64-bit long");
        if (j == -1 && PyErr_Occurred()) return qp__py_failed("int");
        return qp_long(j);
    }
    if (PyFloat_Check(o)) return qp_float(PyFloat_AS_DOUBLE(o));
    if (PyUnicode_Check(o)) {
        const char *s = str_intern(o);
        return s ? qp_symbol(s) : qp__py_failed("str");
    }
    /* numpy's bytes_ (an item of an S array) converts as its array does */
    if ((PyBytes_Check(o) && !PyArray_IsScalar(o, String)) || PyByteArray_Check(o)) {
        Py_ssize_t n = PyBytes_Check(o) ? PyBytes_GET_SIZE(o) : PyByteArray_GET_SIZE(o);
        const char *p = PyBytes_Check(o) ? PyBytes_AS_STRING(o) : PyByteArray_AS_STRING(o);
        qp_value *v = qp_vector(QP_BYTE, n);
        if (v && n) memcpy(v->v.data, p, (size_t)n);
        return v;
    }
    if (PyArray_IsScalar(o, Generic)) {
        PyObject *a = PyArray_FromScalar(o, NULL);
        if (!a) return qp__py_failed("numpy scalar");
        qp_value *v = array_to_q((PyArrayObject *)a, depth, NULL);
        Py_DECREF(a);
        return v;
    }
    if (PyArray_Check(o)) return array_to_q((PyArrayObject *)o, depth, NULL);
    if (PyDict_Check(o)) return dict_to_q(o, depth);
    if (PyList_Check(o) || PyTuple_Check(o)) {
        PyObject *f = PySequence_Fast(o, "");
        if (!f) return qp__py_failed("sequence");
        qp_value *v = list_items(PySequence_Fast_ITEMS(f), PySequence_Fast_GET_SIZE(f), depth, NULL);
        Py_DECREF(f);
        return v;
    }
    if (!PyDateTimeAPI) PyDateTime_IMPORT;
    if (PyDateTimeAPI) {
        if (PyDateTime_Check(o) || PyDate_Check(o) || PyDelta_Check(o)) {
            /* pandas' Timestamp/Timedelta keep nanoseconds this way */
            const char *m = PyDelta_Check(o) ? "to_timedelta64" : "to_datetime64";
            if (PyObject_HasAttrString(o, m)) {
                PyObject *r = PyObject_CallMethod(o, m, NULL);
                qp_value *v = r ? to_q(r, depth) : qp__py_failed(m);
                Py_XDECREF(r);
                return v;
            }
            return via_numpy(o, PyDelta_Check(o) ? "timedelta64" : "datetime64");
        }
        if (PyTime_Check(o)) {
            int32_t ms = ((PyDateTime_TIME_GET_HOUR(o) * 60 + PyDateTime_TIME_GET_MINUTE(o)) * 60 +
                          PyDateTime_TIME_GET_SECOND(o)) * 1000 + PyDateTime_TIME_GET_MICROSECOND(o) / 1000;
            return qp_temporal_i(-QP_TIME, ms);
        }
    } else {
        PyErr_Clear();
    }
    if (is_pandas(o, "DataFrame")) return dataframe_to_q(o);
    if (is_pandas(o, "Series")) return series_to_q(o, NULL);
    if (is_symbols(o)) return categorical_to_q(o);
    if (is_pandas(o, "Index")) {
        PyObject *a = PyObject_CallMethod(o, "to_numpy", NULL);
        qp_value *v = a ? to_q(a, depth) : qp__py_failed("Index");
        Py_XDECREF(a);
        return v;
    }
    PyObject *mods = PyImport_GetModuleDict();
    PyObject *uuid = mods ? PyDict_GetItemString(mods, "uuid") : NULL;
    PyObject *ucls = uuid ? PyObject_GetAttrString(uuid, "UUID") : NULL;
    if (ucls && PyObject_IsInstance(o, ucls) > 0) {
        Py_DECREF(ucls);
        PyObject *b = PyObject_GetAttrString(o, "bytes");
        if (!b || !PyBytes_Check(b) || PyBytes_GET_SIZE(b) != 16) {
            Py_XDECREF(b);
            return qp__py_failed("UUID");
        }
        qp_value *v = qp_guid((const uint8_t *)PyBytes_AS_STRING(b));
        Py_DECREF(b);
        return v;
    }
    Py_XDECREF(ucls);
    PyErr_Clear();
    return cannot(o, "");
}

qp_value *qp_py_to_q(PyObject *o)
{
    assert(PyGILState_Check());   /* py.h: conversions need the GIL */
    if (!o) return qp_error("qpeach: no Python object");
    return to_q(o, 0);
}
