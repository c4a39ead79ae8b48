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
 * a q reference is the array's base). The other temporal types need the
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
 * columns are categoricals), keyed tables one dict of key and value columns
 * (or a DataFrame indexed by the keys). A table's general-list column (a
 * string column, say) is an object array of its items, so every column is
 * an array; strings come back as symbols (toq.c).
 *
 * Nulls and infinities: float and real nulls are NaN and infinities inf.
 * Integer nulls and infinities stay the sentinel integers (0Nj is
 * -9223372036854775808, 0Wj 9223372036854775807), as in q. Temporal nulls
 * are NaT, +-infinity the largest/smallest datetime64 (int64 max, min+1),
 * and the epoch shift is not applied to them.
 */
#include "pyint.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- cached dtypes and classes ---- */

enum { D_TS, D_MONTH, D_DATE, D_DT, D_SPAN, D_MIN, D_SEC, D_TIME, D_N };
static const char *const descr_spec[D_N] = {
    "M8[ns]", "M8[M]", "M8[D]", "M8[ms]", "m8[ns]", "m8[m]", "m8[s]", "m8[ms]",
};
static PyArray_Descr *descrs[D_N];
static PyObject *uuid_cls;         /* uuid.UUID, imported lazily */
static PyObject *pandas_mod;       /* pandas, imported lazily */

/* ---- symbol -> str cache: pointer-keyed open addressing ----
 * Symbols are interned and never freed, so a str made for one can be kept
 * and shared: a 10M-row column of a few thousand distinct symbols costs a
 * few thousand str objects and 10M pointer lookups. */
typedef struct { const char *k; PyObject *v; } symslot;
static symslot *symtab;
static size_t symcap, symused;

static inline size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return (size_t)x;
}

static int symtab_grow(void)
{
    size_t ncap = symcap ? symcap * 2 : 1024;
    symslot *n = calloc(ncap, sizeof *n);
    if (!n) return -1;
    for (size_t i = 0; i < symcap; i++) {
        if (!symtab[i].k) continue;
        size_t h = ptr_hash(symtab[i].k) & (ncap - 1);
        while (n[h].k) h = (h + 1) & (ncap - 1);
        n[h] = symtab[i];
    }
    free(symtab);
    symtab = n;
    symcap = ncap;
    return 0;
}

/* Borrowed str for symbol s (cache owns it); NULL with exception set. */
PyObject *qp__sym_str(const char *s)
{
    if (!s) s = "";
    if (symcap) {
        size_t h = ptr_hash(s) & (symcap - 1);
        while (symtab[h].k) {
            if (symtab[h].k == s) return symtab[h].v;
            h = (h + 1) & (symcap - 1);
        }
    }
    if ((symused + 1) * 2 > symcap && symtab_grow() < 0) return PyErr_NoMemory();
    PyObject *v = PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
    if (!v) return NULL;
    size_t h = ptr_hash(s) & (symcap - 1);
    while (symtab[h].k) h = (h + 1) & (symcap - 1);
    symtab[h].k = s;
    symtab[h].v = v;
    symused++;
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
    qp__db_fini();
    for (int i = 0; i < D_N; i++) Py_CLEAR(descrs[i]);
    for (size_t i = 0; i < symcap; i++) Py_XDECREF(symtab[i].v);
    free(symtab);
    symtab = NULL;
    symcap = symused = 0;
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

/* q's 0N/0W/-0W of a 64-bit temporal kept as NaT / int64 max / min+1. */
static inline int64_t shift_j(int64_t v, int64_t by)
{
    if (v == QP_NULL_J || v == QP_INF_J || v == -QP_INF_J) return v;
    return (int64_t)((uint64_t)v + (uint64_t)by);    /* wraps, never UB */
}

static inline int64_t shift_i(int32_t v, int64_t by)
{
    if (v == QP_NULL_I) return QP_NULL_J;
    if (v == QP_INF_I) return QP_INF_J;
    if (v == -QP_INF_I) return -QP_INF_J;
    return (int64_t)v + by;
}

static inline int64_t datetime_ms(double f)
{
    if (isnan(f)) return QP_NULL_J;
    if (isinf(f)) return f > 0 ? QP_INF_J : -QP_INF_J;
    return llround((f + QP_EPOCH_DAYS) * 86400000.0);
}

/* Descriptor slot and int64 value of temporal item p of type t (12..19). */
static int temporal_slot(int t)
{
    switch (t) {
    case QP_TIMESTAMP: return D_TS;
    case QP_MONTH: return D_MONTH;
    case QP_DATE: return D_DATE;
    case QP_DATETIME: return D_DT;
    case QP_TIMESPAN: return D_SPAN;
    case QP_MINUTE: return D_MIN;
    case QP_SECOND: return D_SEC;
    default: return D_TIME;
    }
}

static int64_t temporal_value(int t, const void *p)
{
    switch (t) {
    case QP_TIMESTAMP: return shift_j(*(const int64_t *)p, QP_EPOCH_NANOS);
    case QP_TIMESPAN: return *(const int64_t *)p;
    case QP_MONTH: return shift_i(*(const int32_t *)p, 360);
    case QP_DATE: return shift_i(*(const int32_t *)p, QP_EPOCH_DAYS);
    case QP_DATETIME: return datetime_ms(*(const double *)p);
    default: return shift_i(*(const int32_t *)p, 0);
    }
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
            int64_t v = temporal_value(t, p);
            return PyArray_Scalar(&v, descrs[temporal_slot(t)], NULL);
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

static PyObject *temporal_vector(const qp_value *x)
{
    PyArray_Descr *d = descrs[temporal_slot(x->type)];
    Py_INCREF(d);
    PyObject *a = new_array(d, (npy_intp)x->v.n);
    if (!a) return NULL;
    int64_t *o = PyArray_DATA((PyArrayObject *)a);
    int64_t n = x->v.n;
    /* One tight loop per type: a 10M-item date column is ~10 ms. */
    switch (x->type) {
    case QP_TIMESTAMP: {
        const int64_t *s = qp_J(x);
        for (int64_t i = 0; i < n; i++) o[i] = shift_j(s[i], QP_EPOCH_NANOS);
        break;
    }
    case QP_DATETIME: {
        const double *s = qp_F(x);
        for (int64_t i = 0; i < n; i++) o[i] = datetime_ms(s[i]);
        break;
    }
    default: {   /* 32-bit items: month, date, minute, second, time */
        const int32_t *s = qp_I(x);
        int64_t by = x->type == QP_MONTH ? 360 : x->type == QP_DATE ? QP_EPOCH_DAYS : 0;
        for (int64_t i = 0; i < n; i++) o[i] = shift_i(s[i], by);
        break;
    }
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
    case QP_TIMESPAN:
        Py_INCREF(descrs[D_SPAN]);      /* same layout, same null (NaT) */
        return qp__view_vector(x, descrs[D_SPAN]);
    case QP_CHAR:
        return PyUnicode_DecodeUTF8(x->v.data, (Py_ssize_t)x->v.n, "surrogateescape");
    case QP_SYMBOL:
        return (flags & (QP_PY_CATEGORICAL | QP_PY_CODES)) ? qp__sym_categorical(x) : symbol_objects(x);
    case QP_GUID:
        return guid_objects(x);
    default:
        return temporal_vector(x);
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

/* Columns of table t added to dict d (name -> array). */
static int columns_into(PyObject *d, const qp_value *t, int flags, int depth)
{
    const qp_value *names = qp_table_names(t), *cols = qp_table_columns(t);
    for (int64_t i = 0; i < names->v.n; i++) {
        const qp_value *x = qp_K(cols)[i];
        PyObject *c = x->type == QP_LIST ? object_column(x, flags, depth) : from_q(x, flags, depth);
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

static PyObject *table_to_py(const qp_value *t, const qp_value *keys, int flags, int depth)
{
    /* DataFrames get categorical symbol columns: pandas keeps them as
     * codes + names, which is what a 10M-row symbol column needs. */
    int cflags = (flags & QP_PY_PANDAS) ? flags | QP_PY_CATEGORICAL : flags;
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    if ((keys && columns_into(d, keys, cflags, depth) < 0) ||
        columns_into(d, t, cflags, depth) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    if (!(flags & QP_PY_PANDAS)) return d;
    PyObject *df = dataframe(d);
    Py_DECREF(d);
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
