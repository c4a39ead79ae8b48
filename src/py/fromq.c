/* src/py/fromq.c - q values to Python objects.
 *
 * The mapping (q -> Python), atoms first:
 *   bool -> bool           guid -> uuid.UUID        byte -> numpy.uint8
 *   short -> numpy.int16   int -> numpy.int32       long -> int
 *   real -> numpy.float32  float -> float           char -> str (1 char)
 *   symbol -> str          (::) -> None
 *   timestamp -> datetime64[ns]   month -> datetime64[M]   date -> datetime64[D]
 *   datetime -> datetime64[ms]    timespan -> timedelta64[ns]
 *   minute -> timedelta64[m]      second -> timedelta64[s]  time -> timedelta64[ms]
 * Short, int, byte and real keep their width as numpy scalars so that a
 * value sent back arrives with its q type.
 *
 * Vectors: bool, byte, short, int, long, real, float and timespan become
 * numpy arrays that view the q items (no copy; read-only; a capsule holding
 * a q reference is the array's base), as does a char column of a table
 * (dtype S1, one item per row, as PyKX's .np()); a char vector that is not
 * a column is one str. The other temporal types need the
 * epoch shift (q counts from 2000.01.01, numpy from 1970.01.01) or a wider
 * item, so they are copied. Symbols become object arrays of str (one str
 * object per distinct symbol, cached for the life of the interpreter, since
 * symbols are interned for the life of the process) or, with
 * QP_PY_CATEGORICAL, a pandas Categorical (codes + names; symcat.c, which
 * also caches the codes of resident columns). Enumerations (type 20: the
 * symbol columns of a kdb+ database on disk) become the same: str object
 * arrays, or Categoricals whose codes view the mapped int64 indices and
 * whose categories are the domain (symcat.c). Strings (char
 * vectors) become str (UTF-8, undecodable bytes kept as surrogates), guid
 * vectors object arrays of UUID, general lists lists, dicts dicts, tables a
 * dict of column arrays (or with QP_PY_PANDAS a DataFrame, whose symbol
 * columns are str, or Categoricals with QP_PY_CATEGORICAL), keyed tables one dict of key and value columns
 * (or a DataFrame indexed by the keys). A table's general-list column (a
 * string column, say) is an object array of its items, so every column is
 * an array; strings come back as symbols (toq.c).
 *
 * Nulls and infinities: float and real nulls are NaN and infinities inf.
 * Integer nulls and infinities stay the sentinel integers (0Nj is
 * -9223372036854775808, 0Wj 9223372036854775807), as in q. Temporal nulls
 * are NaT, +-infinity the largest/smallest datetime64 (int64 max, min+1:
 * pandas' Timestamp.max/min in ns), and the epoch shift is not applied to
 * them. A value beyond its numpy type (a timestamp after 2262.04.11, which
 * q holds to 2292) raises OverflowError naming the column and row, never
 * wraps.
 *
 * DataFrame columns (QP_PY_PANDAS) follow pandas' rules instead (pdcol.c):
 * integer nulls are <NA> (nullable Int16/32/64), the null symbol NaN, char
 * columns one-char str objects, and every temporal column datetime64[ns] or
 * timedelta64[ns], as pandas holds them (a date beyond 2262 fails, as
 * above).
 */
#include "py_int.h"
#include "qpeach/table.h"
#include "core/ptrmap_int.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- cached dtypes and classes ---- */

enum { D_TS, D_MONTH, D_DATE, D_DT, D_SPAN, D_MIN, D_SEC, D_TIME, D_S1, D_N };
static const char *const descr_spec[D_N] = {
    "M8[ns]", "M8[M]", "M8[D]", "M8[ms]", "m8[ns]", "m8[m]", "m8[s]", "m8[ms]", "S1",
};
static PyArray_Descr *descrs[D_N];
static PyObject *uuid_cls;         /* uuid.UUID, imported lazily */
static PyObject *pandas_mod;       /* pandas, imported lazily */
static PyObject *char_strs[256];   /* one-char str of each byte, made lazily */

/* ---- symbol -> str cache (a qp__ptrmap) ----
 * Symbols are interned and never freed, so a str made for one can be kept
 * and shared: a 10M-row column of a few thousand distinct symbols costs a
 * few thousand str objects and 10M pointer lookups. */
static qp__ptrmap symtab;

/* Borrowed str for symbol s (cache owns it); NULL with exception set. */
PyObject *qp__sym_str(const char *s)
{
    if (!s) s = "";
    qp__ptrslot *e = qp__ptrmap_find(&symtab, s);
    if (e) return e->v.p;
    PyObject *v = PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
    if (!v) return NULL;
    if (!(e = qp__ptrmap_add(&symtab, s))) {
        Py_DECREF(v);
        return PyErr_NoMemory();
    }
    e->v.p = v;
    return v;
}

int qp__conv_init(void)
{
    for (int i = 0; i < D_N; i++) {
        if (descrs[i]) continue;
        PyObject *spec = PyUnicode_FromString(descr_spec[i]);
        if (!spec) return -1;
        int ok = PyArray_DescrConverter(spec, &descrs[i]);
        Py_DECREF(spec);
        if (!ok) return -1;
    }
    return 0;
}

void qp__conv_fini(void)
{
    qp__symcat_fini();
    qp__pd_fini();
    for (int i = 0; i < 256; i++) Py_CLEAR(char_strs[i]);
    for (int i = 0; i < D_N; i++) Py_CLEAR(descrs[i]);
    for (size_t i = 0; i < symtab.cap; i++) Py_XDECREF((PyObject *)symtab.slots[i].v.p);
    qp__ptrmap_free(&symtab);
    Py_CLEAR(uuid_cls);
    Py_CLEAR(pandas_mod);
}

static PyObject *get_uuid_cls(void)
{
    if (!uuid_cls) {
        PyObject *m = PyImport_ImportModule("uuid");
        if (!m) return NULL;
        uuid_cls = PyObject_GetAttrString(m, "UUID");
        Py_DECREF(m);
    }
    return uuid_cls;
}

PyObject *qp__pandas(void)
{
    if (!pandas_mod) pandas_mod = PyImport_ImportModule("pandas");
    return pandas_mod;
}

/* ---- temporal values: q -> numpy int64 ---- */

#define DAY_NS (86400LL * 1000000000LL)

/* Days since 1970.01.01 of the first day of q month m (months since 2000.01). */
static int64_t month_days(int32_t m)
{
    int64_t y = m >= 0 ? m / 12 : -((-(int64_t)m + 11) / 12);
    return qp_days_from_ymd(2000 + y, (int)(m - y * 12) + 1, 1) + QP_EPOCH_DAYS;
}

/* Item p of temporal type t as numpy's int64 in its unit, or with ns in
 * ns for every type (pandas' unit): q's null NaT, +-infinity int64 max and
 * min+1 (no epoch shift for those). False when the value does not fit, or
 * would read as NaT or an infinity. */
static inline __attribute__((always_inline)) bool temporal_value(int t, const void *p, bool ns, int64_t *out)
{
    __int128 r;
    if (t == QP_DATETIME) {
        double f = *(const double *)p;
        if (isnan(f) || isinf(f)) {
            *out = isnan(f) ? QP_NULL_J : f > 0 ? QP_INF_J : -QP_INF_J;
            return true;
        }
        double ms = (f + QP_EPOCH_DAYS) * 86400000.0;
        if (!(fabs(ms) < 9e18)) return false;
        r = (__int128)llround(ms) * (ns ? 1000000 : 1);
    } else if (t == QP_TIMESTAMP || t == QP_TIMESPAN) {
        int64_t v = *(const int64_t *)p;
        if (v == QP_NULL_J || v == QP_INF_J || v == -QP_INF_J) { *out = v; return true; }
        r = (__int128)v + (t == QP_TIMESTAMP ? QP_EPOCH_NANOS : 0);
    } else {
        int32_t v = *(const int32_t *)p;
        if (v == QP_NULL_I || v == QP_INF_I || v == -QP_INF_I) {
            *out = v == QP_NULL_I ? QP_NULL_J : v > 0 ? QP_INF_J : -QP_INF_J;
            return true;
        }
        switch (t) {
        case QP_MONTH: r = ns ? (__int128)month_days(v) * DAY_NS : (__int128)v + 360; break;
        case QP_DATE: r = ((__int128)v + QP_EPOCH_DAYS) * (ns ? DAY_NS : 1); break;
        case QP_MINUTE: r = (__int128)v * (ns ? 60000000000LL : 1); break;
        case QP_SECOND: r = (__int128)v * (ns ? 1000000000LL : 1); break;
        default: r = (__int128)v * (ns ? 1000000LL : 1); break;   /* time */
        }
    }
    if (r <= -QP_INF_J || r >= QP_INF_J) return false;
    *out = (int64_t)r;
    return true;
}

/* Descriptor slot of temporal type t (12..19): its own unit, or ns. */
static int temporal_slot(int t, bool ns)
{
    switch (t) {
    case QP_TIMESTAMP: return D_TS;
    case QP_MONTH: return ns ? D_TS : D_MONTH;
    case QP_DATE: return ns ? D_TS : D_DATE;
    case QP_DATETIME: return ns ? D_TS : D_DT;
    case QP_TIMESPAN: return D_SPAN;
    case QP_MINUTE: return ns ? D_SPAN : D_MIN;
    case QP_SECOND: return ns ? D_SPAN : D_SEC;
    default: return ns ? D_SPAN : D_TIME;
    }
}

/* Raises OverflowError for item p (of type t) of a value that does not fit
 * the numpy type of slot: at row i of column col, at item i of a vector
 * (col NULL), or an atom (i < 0). Returns NULL. */
static PyObject *beyond(const char *col, int64_t i, int t, const void *p, int slot)
{
    qp_value *a = qp_atom(-t);
    if (a) memcpy(&a->g, p, qp_type_width(t));
    char *txt = a ? qp_format(a, 0) : NULL;
    qp_unref(a);
    if (txt) txt[strcspn(txt, "\n")] = 0;
    PyObject *dn = PyObject_Str((PyObject *)descrs[slot]);    /* "datetime64[ns]" */
    const char *np_name = dn ? PyUnicode_AsUTF8(dn) : NULL;
    if (!np_name) { PyErr_Clear(); np_name = descr_spec[slot]; }
    const char *range = slot == D_TS ? " (1677.09.21D00:12:43.145224194 to 2262.04.11D23:47:16.854775806)"
                      : slot == D_SPAN ? " (-106751D23:47:16.854775806 to 106751D23:47:16.854775806)" : "";
    if (col)
        PyErr_Format(PyExc_OverflowError, "qpeach: column %s, row %lld: %s %s is beyond numpy's %s%s",
                     col, (long long)i, qp_type_name(t), txt ? txt : "?", np_name, range);
    else if (i >= 0)
        PyErr_Format(PyExc_OverflowError, "qpeach: item %lld: %s %s is beyond numpy's %s%s",
                     (long long)i, qp_type_name(t), txt ? txt : "?", np_name, range);
    else
        PyErr_Format(PyExc_OverflowError, "qpeach: %s %s is beyond numpy's %s%s",
                     qp_type_name(t), txt ? txt : "?", np_name, range);
    free(txt);
    Py_XDECREF(dn);
    return NULL;
}

/* ---- atoms ---- */

static PyObject *np_scalar(int npy, const void *p)
{
    PyArray_Descr *d = PyArray_DescrFromType(npy);
    if (!d) return NULL;
    PyObject *r = PyArray_Scalar((void *)p, d, NULL);
    Py_DECREF(d);
    return r;
}

/* Item of vector type t (1..19) at p as a Python scalar. New reference. */
static PyObject *item_to_py(int t, const void *p)
{
    switch (t) {
    case QP_BOOL: return PyBool_FromLong(*(const uint8_t *)p);
    case QP_GUID: {
        PyObject *cls = get_uuid_cls();
        if (!cls) return NULL;
        PyObject *b = PyBytes_FromStringAndSize(p, 16);
        if (!b) return NULL;
        PyObject *kw = Py_BuildValue("{s:N}", "bytes", b);
        if (!kw) return NULL;
        PyObject *noargs = PyTuple_New(0);
        PyObject *r = noargs ? PyObject_Call(cls, noargs, kw) : NULL;
        Py_XDECREF(noargs);
        Py_DECREF(kw);
        return r;
    }
    case QP_BYTE: return np_scalar(NPY_UINT8, p);
    case QP_SHORT: return np_scalar(NPY_INT16, p);
    case QP_INT: return np_scalar(NPY_INT32, p);
    case QP_LONG: return PyLong_FromLongLong(*(const int64_t *)p);
    case QP_REAL: return np_scalar(NPY_FLOAT32, p);
    case QP_FLOAT: return PyFloat_FromDouble(*(const double *)p);
    case QP_CHAR: return PyUnicode_DecodeUTF8(p, 1, "surrogateescape");
    case QP_SYMBOL: {
        PyObject *s = qp__sym_str(*(const char *const *)p);
        Py_XINCREF(s);
        return s;
    }
    default:
        if (t >= QP_TIMESTAMP && t <= QP_TIME) {
            int64_t v;
            if (!temporal_value(t, p, false, &v)) return beyond(NULL, -1, t, p, temporal_slot(t, false));
            return PyArray_Scalar(&v, descrs[temporal_slot(t, false)], NULL);
        }
        return PyErr_Format(PyExc_TypeError, "qpeach: cannot convert q type %d to Python", t);
    }
}

/* ---- vectors ---- */

static void capsule_free(PyObject *c)
{
    qp_unref(PyCapsule_GetPointer(c, "qpeach.value"));
}

PyObject *qp__view_vector(const qp_value *x, PyArray_Descr *d)
{
    npy_intp n = (npy_intp)x->v.n;
    if (n == 0)
        return PyArray_NewFromDescr(&PyArray_Type, d, 1, &n, NULL, NULL, 0, NULL);
    PyObject *a = PyArray_NewFromDescr(&PyArray_Type, d, 1, &n, NULL, x->v.data,
                                       NPY_ARRAY_C_CONTIGUOUS, NULL);
    if (!a) return NULL;
    qp_value *keep = qp_ref((qp_value *)x);
    PyObject *cap = PyCapsule_New(keep, "qpeach.value", capsule_free);
    if (!cap) {
        qp_unref(keep);
        Py_DECREF(a);
        return NULL;
    }
    if (PyArray_SetBaseObject((PyArrayObject *)a, cap) < 0) {  /* steals cap */
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

static PyObject *new_array(PyArray_Descr *d, npy_intp n)   /* steals d */
{
    return PyArray_NewFromDescr(&PyArray_Type, d, 1, &n, NULL, NULL, 0, NULL);
}

/* The n items at p of temporal type t into o (temporal_value): the index
 * of the first that does not fit, or -1. One loop per type (and ns), the
 * conversion inlined into it: a 10M-item date column is ~10 ms. */
static inline __attribute__((always_inline)) int64_t convert_all(int t, bool ns, const char *p, int64_t n,
                                                                  int64_t *o)
{
#define LOOP(T, W)                                                              \
    for (int64_t i = 0; i < n; i++)                                             \
        if (!temporal_value(T, p + i * (W), ns, &o[i])) return i;               \
    return -1
    switch (t) {
    case QP_TIMESTAMP: LOOP(QP_TIMESTAMP, 8);
    case QP_DATETIME: LOOP(QP_DATETIME, 8);
    case QP_MONTH: LOOP(QP_MONTH, 4);
    case QP_DATE: LOOP(QP_DATE, 4);
    case QP_MINUTE: LOOP(QP_MINUTE, 4);
    case QP_SECOND: LOOP(QP_SECOND, 4);
    default: LOOP(QP_TIME, 4);
    }
#undef LOOP
}

/* Temporal vector x as datetime64/timedelta64 in its own unit, or with ns
 * in ns (pandas'); a value that does not fit raises naming its row of
 * column col (or its item, col NULL). A timespan is a view (same items,
 * same null); the others need a shift or a wider item, so are copied. */
static PyObject *temporal_vector(const qp_value *x, bool ns, const char *col)
{
    int t = x->type, slot = temporal_slot(t, ns);
    PyArray_Descr *d = descrs[slot];
    Py_INCREF(d);
    if (t == QP_TIMESPAN) return qp__view_vector(x, d);
    PyObject *a = new_array(d, (npy_intp)x->v.n);
    if (!a) return NULL;
    int64_t bad = ns ? convert_all(t, true, x->v.data, x->v.n, PyArray_DATA((PyArrayObject *)a))
                     : convert_all(t, false, x->v.data, x->v.n, PyArray_DATA((PyArrayObject *)a));
    if (bad < 0) return a;
    Py_DECREF(a);
    return beyond(col, bad, t, (const char *)x->v.data + bad * (int64_t)qp_type_width(t), slot);
}

/* Char column x: an S1 array viewing its bytes (numpy), or one-char str
 * objects (pandas: what read_csv gives for such a column). */
static PyObject *char_column(const qp_value *x, bool objects)
{
    if (!objects) {
        Py_INCREF(descrs[D_S1]);
        return qp__view_vector(x, descrs[D_S1]);
    }
    PyObject *a = new_array(PyArray_DescrFromType(NPY_OBJECT), (npy_intp)x->v.n);
    if (!a) return NULL;
    PyObject **o = PyArray_DATA((PyArrayObject *)a);
    const uint8_t *c = x->v.data;
    for (int64_t i = 0; i < x->v.n; i++) {
        PyObject **s = &char_strs[c[i]];
        if (!*s && !(*s = PyUnicode_DecodeUTF8((const char *)&c[i], 1, "surrogateescape"))) {
            Py_DECREF(a);
            return NULL;
        }
        Py_INCREF(*s);
        o[i] = *s;
    }
    return a;
}

static PyObject *symbol_objects(const qp_value *x)
{
    PyArray_Descr *d = PyArray_DescrFromType(NPY_OBJECT);
    PyObject *a = new_array(d, (npy_intp)x->v.n);
    if (!a) return NULL;
    PyObject **o = PyArray_DATA((PyArrayObject *)a);
    const char *const *s = qp_S(x);
    const char *last = NULL;
    PyObject *lastv = NULL;
    for (int64_t i = 0; i < x->v.n; i++) {
        if (s[i] != last || !lastv) {
            lastv = qp__sym_str(s[i]);
            if (!lastv) { Py_DECREF(a); return NULL; }
            last = s[i];
        }
        Py_INCREF(lastv);
        o[i] = lastv;
    }
    return a;
}

static PyObject *guid_objects(const qp_value *x)
{
    PyObject *l = PyList_New((Py_ssize_t)x->v.n);
    if (!l) return NULL;
    for (int64_t i = 0; i < x->v.n; i++) {
        PyObject *u = item_to_py(QP_GUID, qp_U(x) + 16 * i);
        if (!u) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, (Py_ssize_t)i, u);
    }
    PyArray_Descr *d = PyArray_DescrFromType(NPY_OBJECT);
    PyObject *a = PyArray_FromAny(l, d, 1, 1, 0, NULL);
    Py_DECREF(l);
    return a;
}

static PyObject *vector_to_py(const qp_value *x, int flags)
{
    int npy = -1;
    switch (x->type) {
    case QP_BOOL: npy = NPY_BOOL; break;
    case QP_BYTE: npy = NPY_UINT8; break;
    case QP_SHORT: npy = NPY_INT16; break;
    case QP_INT: npy = NPY_INT32; break;
    case QP_LONG: npy = NPY_INT64; break;
    case QP_REAL: npy = NPY_FLOAT32; break;
    case QP_FLOAT: npy = NPY_FLOAT64; break;
    case QP_CHAR:
        return PyUnicode_DecodeUTF8(x->v.data, (Py_ssize_t)x->v.n, "surrogateescape");
    case QP_SYMBOL:
        return (flags & (QP_PY_CATEGORICAL | QP_PY_CODES)) ? qp__sym_categorical(x) : symbol_objects(x);
    case QP_GUID:
        return guid_objects(x);
    default:
        return temporal_vector(x, false, NULL);
    }
    return qp__view_vector(x, PyArray_DescrFromType(npy));
}

/* ---- containers ---- */

static PyObject *from_q(const qp_value *x, int flags, int depth);

/* Item i of a list-like value (vector or general list). */
static PyObject *elem_to_py(const qp_value *x, int64_t i, int flags, int depth)
{
    if (x->type == QP_LIST) return from_q(qp_K(x)[i], flags, depth);
    if (x->type == QP_ENUM) {
        int64_t k = qp_J(x)[i];
        PyObject *s = qp__sym_str(k == QP_NULL_J ? "" : qp_S(x->v.dom)[k]);
        Py_XINCREF(s);
        return s;
    }
    size_t w = x->type == QP_GUID ? 16 : qp_type_width(x->type);
    return item_to_py(x->type, (const char *)x->v.data + (size_t)i * w);
}

static PyObject *list_to_py(const qp_value *x, int flags, int depth)
{
    PyObject *l = PyList_New((Py_ssize_t)x->v.n);
    if (!l) return NULL;
    for (int64_t i = 0; i < x->v.n; i++) {
        PyObject *v = from_q(qp_K(x)[i], flags, depth);
        if (!v) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, (Py_ssize_t)i, v);
    }
    return l;
}

/* A general-list column (strings, nested vectors) as a 1-d object array
 * of its items: every column of a table is a numpy array, so a function
 * returning the dict it got returns a table (a list column made it a
 * plain dict). */
static PyObject *object_column(const qp_value *x, int flags, int depth)
{
    PyObject *a = new_array(PyArray_DescrFromType(NPY_OBJECT), (npy_intp)x->v.n);
    if (!a) return NULL;
    PyObject **o = PyArray_DATA((PyArrayObject *)a);    /* NULL items: numpy's None */
    for (int64_t i = 0; i < x->v.n; i++)
        if (!(o[i] = from_q(qp_K(x)[i], flags, depth))) { Py_DECREF(a); return NULL; }
    return a;
}

/* Column name of a table: one item per row, so a char column is an array
 * of chars (not one str); range errors name the column; with pandas,
 * pandas' missing values and units (pdcol.c). */
static PyObject *column_to_py(const qp_value *x, int flags, int depth, const char *name)
{
    bool pd = flags & QP_PY_PANDAS;
    if (x->type == QP_LIST) return object_column(x, flags, depth);
    if (x->type == QP_CHAR) return char_column(x, pd);
    if (x->type >= QP_TIMESTAMP && x->type <= QP_TIME) return temporal_vector(x, pd, name);
    if (pd && (x->type == QP_SHORT || x->type == QP_INT || x->type == QP_LONG)) return qp__pd_ints(x);
    PyObject *r = from_q(x, flags, depth);
    return pd && (x->type == QP_SYMBOL || x->type == QP_ENUM) ? qp__pd_sym_nulls(x, r) : r;
}

/* Columns of table t added to dict d (name -> array). */
static int columns_into(PyObject *d, const qp_value *t, int flags, int depth)
{
    const qp_value *names = qp_table_names(t), *cols = qp_table_columns(t);
    for (int64_t i = 0; i < names->v.n; i++) {
        PyObject *c = column_to_py(qp_K(cols)[i], flags, depth, qp_S(names)[i]);
        if (!c) return -1;
        int rc = PyDict_SetItem(d, qp__sym_str(qp_S(names)[i]), c);
        Py_DECREF(c);
        if (rc < 0) return -1;
    }
    return 0;
}

static PyObject *dataframe(PyObject *cols)
{
    PyObject *pd = qp__pandas();
    if (!pd) return NULL;
    PyObject *cls = PyObject_GetAttrString(pd, "DataFrame");
    if (!cls) return NULL;
    PyObject *args = PyTuple_Pack(1, cols);
    PyObject *kw = Py_BuildValue("{s:O}", "copy", Py_False);
    PyObject *r = args && kw ? PyObject_Call(cls, args, kw) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_DECREF(cls);
    return r;
}

/* Names df's char columns (of table t) in its attrs (pdcol.c). 0 or -1. */
static int mark_chars(PyObject *df, const qp_value *t)
{
    const qp_value *names = qp_table_names(t), *cols = qp_table_columns(t);
    qp_value *chars = qp_vector(QP_SYMBOL, 0);
    for (int64_t i = 0; chars && i < names->v.n; i++)
        if (qp_K(cols)[i]->type == QP_CHAR && qp_vec_append(chars, &qp_S(names)[i]) < 0) {
            qp_unref(chars);
            chars = NULL;
        }
    int rc = !chars ? (PyErr_NoMemory(), -1) : chars->v.n ? qp__pd_mark_chars(df, chars) : 0;
    qp_unref(chars);
    return rc;
}

static PyObject *table_to_py(const qp_value *t, const qp_value *keys, int flags, int depth)
{
    /* A DataFrame's symbol columns are str, as PyKX's .pd() gives them;
     * Categoricals (codes + names, what a 10M-row symbol column wants)
     * only when asked for (QP_PY_CATEGORICAL). */
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    if ((keys && columns_into(d, keys, flags, depth) < 0) ||
        columns_into(d, t, flags, depth) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    if (!(flags & QP_PY_PANDAS)) return d;
    PyObject *df = dataframe(d);
    Py_DECREF(d);
    if (df && mark_chars(df, t) < 0) Py_CLEAR(df);
    if (!df || !keys) return df;
    PyObject *idx = from_q(qp_table_names(keys), 0, depth);
    PyObject *lst = idx ? PySequence_List(idx) : NULL;
    PyObject *r = lst ? PyObject_CallMethod(df, "set_index", "O", lst) : NULL;
    Py_XDECREF(idx);
    Py_XDECREF(lst);
    Py_DECREF(df);
    return r;
}

static PyObject *dict_to_py(const qp_value *x, int flags, int depth)
{
    const qp_value *k = qp_dict_keys(x), *v = qp_dict_values(x);
    if (k->type == QP_TABLE && v->type == QP_TABLE) return table_to_py(v, k, flags, depth);
    int64_t n = qp_count(k);
    if ((k->type != QP_LIST && k->type != QP_ENUM && !qp_is_vector(k)) ||
        (v->type != QP_LIST && v->type != QP_ENUM && !qp_is_vector(v)) ||
        qp_count(v) != n)
        return PyErr_Format(PyExc_TypeError, "qpeach: cannot convert a q dict of %s!%s to Python",
                            qp_type_name(k->type), qp_type_name(v->type));
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int64_t i = 0; i < n; i++) {
        PyObject *key = elem_to_py(k, i, flags, depth);
        PyObject *val = key ? elem_to_py(v, i, flags, depth) : NULL;
        int rc = val ? PyDict_SetItem(d, key, val) : -1;
        Py_XDECREF(key);
        Py_XDECREF(val);
        if (rc < 0) { Py_DECREF(d); return NULL; }
    }
    return d;
}

static bool is_identity(const qp_value *x)
{
    return x->type == QP_UNARY && x->v.n == 1 && ((const uint8_t *)x->v.data)[0] == 0;
}

static PyObject *from_q(const qp_value *x, int flags, int depth)
{
    if (++depth > QP_PY_MAX_DEPTH)
        return PyErr_Format(PyExc_RecursionError, "qpeach: q value nested deeper than %d",
                            QP_PY_MAX_DEPTH);
    if (x->type < 0 && x->type != QP_ERROR) {
        if (x->type == -QP_GUID) return item_to_py(QP_GUID, x->u);
        return item_to_py(-x->type, &x->g);   /* every atom field starts the union */
    }
    if (qp_is_vector(x)) return vector_to_py(x, flags);
    if (x->type == QP_ENUM)
        return (flags & QP_PY_CODES) ? qp__enum_codes(x)
             : (flags & QP_PY_CATEGORICAL) ? qp__enum_categorical(x) : qp__enum_objects(x);
    switch (x->type) {
    case QP_LIST: return list_to_py(x, flags, depth);
    case QP_DICT: case QP_SORTED_DICT: return dict_to_py(x, flags, depth);
    case QP_TABLE: return table_to_py(x, NULL, flags, depth);
    default: break;
    }
    if (is_identity(x)) Py_RETURN_NONE;
    if (x->type == QP_ERROR)
        return PyErr_Format(PyExc_TypeError, "qpeach: q error '%s cannot be passed to Python", x->s);
    return PyErr_Format(PyExc_TypeError, "qpeach: cannot convert a q %s (type %d) to Python",
                        qp_type_name(x->type), x->type);
}

PyObject *qp_py_from_q(const qp_value *x, int flags)
{
    assert(PyGILState_Check());   /* py.h: conversions need the GIL */
    if (!x) return PyErr_Format(PyExc_ValueError, "qpeach: no value");
    return from_q(x, flags, 0);
}
