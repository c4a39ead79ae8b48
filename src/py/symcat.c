/* src/py/symcat.c - symbol vectors as pandas Categoricals, and the codes
 * cache of server-resident symbol columns.
 *
 * A Categorical is codes plus a CategoricalDtype over the distinct symbols
 * in order of first appearance. The codes are made in the integer width
 * pandas itself would pick for that many categories (int8 below 127, int16
 * below 32767, else int32: pandas' coerce_indexer_dtype), so pandas keeps
 * our array as it is; the Categorical is made with _simple_new (no
 * validation pass, no copy), or from_codes where a pandas lacks it.
 *
 * The cache. `.qp.apply` over rows of a resident table and qtable(name,
 * rows, categorical=True) convert slices of the same symbol column on every
 * task; building codes costs a hash lookup per row plus a fresh array (page
 * faults). Those callers prime the cache with the whole column first
 * (qp__symcat_prime_table), and a slice's Categorical is then a read-only
 * view codes[off:off+n] of the column's codes with the column's dtype: no
 * per-row work and no allocation proportional to the slice.
 *
 * Key: the buffer holding the column's items (x->v.owner), the start and the
 * count. A vector matches an entry when it has the same buffer and lies
 * inside that range, as every qp_slice of the column does (slices are
 * views). The entry holds a reference to the buffer, which by value.h makes
 * the items read-only to everyone and keeps the buffer's address from being
 * reused, so the codes can never go stale: a replaced (or appended-to)
 * global has its items in another buffer, hence another entry.
 * Release: an entry is dropped when the cache holds its buffer's only
 * reference (the table was dropped or replaced and nothing else views it).
 * That is checked at every prime and every `.qp` call (qp__symcat_sweep), so
 * a dropped table's symbols and codes linger at most until the next `.qp`
 * call. Categoricals already handed out keep their codes alive through
 * numpy's base reference, whatever happens to the entry.
 *
 * A slice's categories are the whole column's, as slicing a pandas
 * Categorical keeps every category: some may not occur in the slice.
 *
 * Threads: every function here needs the GIL, and the GIL is the cache's
 * lock: conversion always runs with it held (the main thread, or a peach
 * thread that took it), and nothing here releases it mid-update. The sweep
 * reads the buffer's atomic count; a count of 1 that is the cache's own
 * cannot rise, since no value holds the buffer any more.
 *
 * Memory: codes are 1, 2 or 4 bytes per row (10 MB to 40 MB for 10M rows),
 * plus the buffer of the column itself, which the entry keeps as long as
 * the table lives anyway.
 *
 * Enumerations (type 20, symbol columns of kdb+ databases on disk) need no
 * codes built: their int64 indices into the domain are the codes. Their
 * Categorical's codes are a read-only view of the indices (a mapped column
 * file, usually), and the categories are the domain in its own order, made
 * once per domain and kept in a second cache (doms, keyed by the domain
 * value, held by one reference and swept like the codes). Without
 * categoricals, an enum becomes an object array filled from the domain's
 * str objects (one lookup per domain item, made once; one pointer copy per
 * row). Null indices (0Nj) mean the null symbol, which the symbol
 * conversion makes the category "" (not NaN): the codes are then copied
 * with 0Nj replaced by the index of `` in the domain. A domain without ``
 * (when a null occurs) or with a name twice (q never writes one; pandas
 * refuses repeated categories) falls back to resolving the symbols and
 * building codes as for a symbol vector: a copy, correct, slower.
 */
#include "py_int.h"
#include "core/ptrmap_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    qp_buf *owner;                 /* the column's buffer: one reference */
    const char *const *data;       /* first item of the column */
    int64_t n;                     /* items in the column */
    PyObject *codes;               /* read-only ndarray of n codes */
    PyObject *dtype;               /* pandas CategoricalDtype */
} entry;

static entry *ents;
static size_t nents, capents;
static PyObject *simple_new;      /* pandas.Categorical._simple_new, or NULL */
static PyObject *cat_cls;         /* pandas.Categorical */
static PyObject *dtype_cls;       /* pandas.CategoricalDtype */
static PyObject *index_cls;       /* pandas.Index */

static void doms_sweep(void);   /* enumerations' domain cache, below */
static void doms_fini(void);

static int pandas_init(void)
{
    if (cat_cls) return 0;
    PyObject *pd = qp__pandas();
    if (!pd) return -1;
    cat_cls = PyObject_GetAttrString(pd, "Categorical");
    dtype_cls = cat_cls ? PyObject_GetAttrString(pd, "CategoricalDtype") : NULL;
    index_cls = dtype_cls ? PyObject_GetAttrString(pd, "Index") : NULL;
    if (!index_cls) {
        Py_CLEAR(cat_cls);
        Py_CLEAR(dtype_cls);
        return -1;
    }
    /* NDArrayBacked._simple_new(codes, dtype): pandas 1.x and 2.x. */
    simple_new = PyObject_GetAttrString(cat_cls, "_simple_new");
    if (!simple_new) PyErr_Clear();
    return 0;
}

/* ---- building codes ---- */

static int narrow_type(Py_ssize_t k)   /* pandas' coerce_indexer_dtype */
{
    return k < 127 ? NPY_INT8 : k < 32767 ? NPY_INT16 : NPY_INT32;
}

/* Codes (new read-only ndarray, *codes) and dtype (new CategoricalDtype,
 * *dtype) of n symbols at s: one pointer lookup per row (symbols are
 * interned), runs of one symbol looked up once. 0, or -1 with an exception. */
static int build(const char *const *s, int64_t n, PyObject **codes, PyObject **dtype)
{
    *codes = *dtype = NULL;
    const char *empty = qp_sym_intern("", 0);   /* a NULL item is `` too */
    npy_intp dn = (npy_intp)n;
    PyObject *c32 = PyArray_SimpleNew(1, &dn, NPY_INT32);
    PyObject *cats = PyList_New(0), *idx = NULL, *nar = NULL;
    qp__ptrmap tab = {0};           /* symbol -> its code */
    int rc = -1;
    if (!c32 || !cats) goto done;
    int32_t *c = PyArray_DATA((PyArrayObject *)c32);
    const char *last = NULL;
    int32_t lastc = -1;
    for (int64_t i = 0; i < n; i++) {
        const char *k = s[i] ? s[i] : empty;
        if (k == last) { c[i] = lastc; continue; }
        qp__ptrslot *e = qp__ptrmap_find(&tab, k);
        if (!e) {
            PyObject *v = qp__sym_str(k);
            if (!v || PyList_Append(cats, v) < 0) goto done;
            if (!(e = qp__ptrmap_add(&tab, k))) { PyErr_NoMemory(); goto done; }
            e->v.i = (int64_t)tab.used - 1;
        }
        c[i] = lastc = (int32_t)e->v.i;
        last = k;
    }
    int t = narrow_type((Py_ssize_t)tab.used);
    if (t == NPY_INT32) {
        nar = c32;
        c32 = NULL;
    } else {
        nar = PyArray_SimpleNew(1, &dn, t);
        if (!nar) goto done;
        if (t == NPY_INT8) {
            int8_t *o = PyArray_DATA((PyArrayObject *)nar);
            for (int64_t i = 0; i < n; i++) o[i] = (int8_t)c[i];
        } else {
            int16_t *o = PyArray_DATA((PyArrayObject *)nar);
            for (int64_t i = 0; i < n; i++) o[i] = (int16_t)c[i];
        }
    }
    /* Read-only: the codes are shared by every Categorical made from them. */
    PyArray_CLEARFLAGS((PyArrayObject *)nar, NPY_ARRAY_WRITEABLE);
    idx = PyObject_CallFunction(index_cls, "Os", cats, "object");
    *dtype = idx ? PyObject_CallFunction(dtype_cls, "OO", idx, Py_False) : NULL;
    if (!*dtype) goto done;
    *codes = nar;
    nar = NULL;
    rc = 0;
done:
    qp__ptrmap_free(&tab);
    Py_XDECREF(c32);
    Py_XDECREF(nar);
    Py_XDECREF(cats);
    Py_XDECREF(idx);
    return rc;
}

/* Categorical over codes (stolen) and dtype (borrowed). New reference. */
static PyObject *categorical(PyObject *codes, PyObject *dtype)
{
    PyObject *r;
    if (simple_new) {
        r = PyObject_CallFunctionObjArgs(simple_new, codes, dtype, NULL);
    } else {
        PyObject *kw = Py_BuildValue("{s:O}", "dtype", dtype);
        PyObject *f = PyObject_GetAttrString(cat_cls, "from_codes");
        PyObject *a = PyTuple_Pack(1, codes);
        r = kw && f && a ? PyObject_Call(f, a, kw) : NULL;
        Py_XDECREF(kw);
        Py_XDECREF(f);
        Py_XDECREF(a);
    }
    Py_DECREF(codes);
    return r;
}

/* ---- the cache ---- */

static entry *find(const qp_value *x)
{
    const char *const *p = (const char *const *)x->v.data;
    for (size_t i = 0; i < nents; i++) {
        entry *e = &ents[i];
        if (e->owner == x->v.owner && p >= e->data && x->v.n <= e->n - (p - e->data))
            return e;
    }
    return NULL;
}

static void drop(size_t i)
{
    Py_XDECREF(ents[i].codes);
    Py_XDECREF(ents[i].dtype);
    qp_buf_unref(ents[i].owner);
    ents[i] = ents[--nents];
}

size_t qp__symcat_sweep(void)
{
    assert(PyGILState_Check());   /* the GIL guards the cache */
    doms_sweep();
    for (size_t i = 0; i < nents;) {
        if (atomic_load(&ents[i].owner->refs) == 1) drop(i);
        else i++;
    }
    return nents;
}

int qp__symcat_prime(const qp_value *col)
{
    assert(PyGILState_Check());   /* the GIL guards the cache */
    if (col->type != QP_SYMBOL || !col->v.owner) return 0;
    if (pandas_init() < 0) return -1;
    qp__symcat_sweep();
    if (find(col)) return 0;
    if (nents == capents) {
        size_t ncap = capents ? capents * 2 : 8;
        entry *ne = realloc(ents, ncap * sizeof *ne);
        if (!ne) { PyErr_NoMemory(); return -1; }
        ents = ne;
        capents = ncap;
    }
    entry e = {.owner = col->v.owner, .data = (const char *const *)col->v.data, .n = col->v.n};
    if (build(e.data, e.n, &e.codes, &e.dtype) < 0) return -1;
    qp_buf_ref(e.owner);
    ents[nents++] = e;
    return 0;
}

int qp__symcat_prime_table(const qp_value *t)
{
    if (t->type != QP_TABLE) return 0;
    const qp_value *cols = qp_table_columns(t);
    if (cols->type != QP_LIST) return 0;
    for (int64_t i = 0; i < cols->v.n; i++)
        if (qp__symcat_prime(qp_K(cols)[i]) < 0) return -1;
    return 0;
}

PyObject *qp__symcat_codes(const qp_value *col)
{
    entry *e = col->type == QP_SYMBOL ? find(col) : NULL;
    return e ? e->codes : NULL;
}

PyObject *qp__sym_categorical(const qp_value *x)
{
    assert(PyGILState_Check());   /* the GIL guards the cache */
    if (pandas_init() < 0) return NULL;
    entry *e = x->v.owner ? find(x) : NULL;
    if (!e) {
        PyObject *codes, *dtype;
        if (build(qp_S(x), x->v.n, &codes, &dtype) < 0) return NULL;
        PyObject *r = categorical(codes, dtype);
        Py_DECREF(dtype);
        return r;
    }
    /* codes[off:off+n] of the column's codes: a view, base = the codes */
    PyArrayObject *all = (PyArrayObject *)e->codes;
    PyArray_Descr *d = PyArray_DESCR(all);
    npy_intp n = (npy_intp)x->v.n, off = (const char *const *)x->v.data - e->data;
    Py_INCREF(d);
    PyObject *v = PyArray_NewFromDescr(&PyArray_Type, d, 1, &n, NULL,
                                       (char *)PyArray_DATA(all) + off * PyArray_ITEMSIZE(all),
                                       NPY_ARRAY_C_CONTIGUOUS, NULL);   /* read-only */
    if (!v) return NULL;
    Py_INCREF(e->codes);
    if (PyArray_SetBaseObject((PyArrayObject *)v, e->codes) < 0) {   /* steals */
        Py_DECREF(v);
        return NULL;
    }
    return categorical(v, e->dtype);
}


/* ---- enumerations (type 20) ---- */

typedef struct domain {
    qp_value *dom;                 /* the domain (symbol vector): one reference */
    PyObject **strs;               /* its items as str (borrowed from fromq.c's
                                    * symbol cache, which outlives this one) */
    int64_t empty;                 /* index of `` in dom, -1 when absent */
    bool dup;                      /* some name occurs twice */
    PyObject *dtype;               /* CategoricalDtype over dom, NULL until asked */
    PyObject *cats;                /* dom's strs as a numpy object array, NULL
                                    * until asked (SymbolCodes) */
} domain;

static PyObject *codes_cls;        /* py.c's SymbolCodes */

static domain *doms;
static size_t ndoms, capdoms;

static void dom_drop(size_t i)
{
    free(doms[i].strs);
    Py_XDECREF(doms[i].dtype);
    Py_XDECREF(doms[i].cats);
    qp_unref(doms[i].dom);
    doms[i] = doms[--ndoms];
}

static void doms_sweep(void)
{
    for (size_t i = 0; i < ndoms;) {
        if (atomic_load(&doms[i].dom->refs) == 1) dom_drop(i);
        else i++;
    }
}

static void doms_fini(void)
{
    while (ndoms) dom_drop(ndoms - 1);
    free(doms);
    doms = NULL;
    capdoms = 0;
}

/* Fills d's strs, empty and dup: one str lookup and one pointer-set probe
 * per domain item. 0, or -1 with an exception set. */
static int dom_scan(domain *d)
{
    int64_t n = d->dom->v.n;
    const char *empty = qp_sym_intern("", 0);
    qp__ptrmap seen = {0};
    int rc = -1;
    d->strs = malloc((size_t)(n ? n : 1) * sizeof *d->strs);
    if (!d->strs) {
        PyErr_NoMemory();
        goto done;
    }
    d->empty = -1;
    for (int64_t i = 0; i < n; i++) {
        const char *k = qp_S(d->dom)[i] ? qp_S(d->dom)[i] : empty;
        if (!(d->strs[i] = qp__sym_str(k))) goto done;
        if (k == empty && d->empty < 0) d->empty = i;
        if (qp__ptrmap_find(&seen, k)) d->dup = true;
        else if (!qp__ptrmap_add(&seen, k)) {
            PyErr_NoMemory();
            goto done;
        }
    }
    rc = 0;
done:
    qp__ptrmap_free(&seen);
    return rc;
}

/* The cache entry of x's domain, made at the first use (borrowed), or
 * NULL with an exception set. */
static domain *dom_get(const qp_value *x)
{
    qp_value *dv = x->v.dom;
    if (!dv || dv->type != QP_SYMBOL)
        return PyErr_Format(PyExc_TypeError, "qpeach: an enumeration without a symbol domain"), NULL;
    for (size_t i = 0; i < ndoms; i++)
        if (doms[i].dom == dv) return &doms[i];
    if (ndoms == capdoms) {
        size_t ncap = capdoms ? capdoms * 2 : 4;
        domain *nd = realloc(doms, ncap * sizeof *nd);
        if (!nd) return PyErr_NoMemory(), NULL;
        doms = nd;
        capdoms = ncap;
    }
    domain d = {.dom = dv};
    if (dom_scan(&d) < 0) { free(d.strs); return NULL; }
    qp_ref(dv);
    doms[ndoms] = d;
    return &doms[ndoms++];
}

PyObject *qp__enum_objects(const qp_value *x)
{
    domain *d = dom_get(x);
    if (!d) return NULL;
    PyObject *empty = qp__sym_str("");
    npy_intp n = (npy_intp)x->v.n;
    PyObject *a = empty ? PyArray_SimpleNew(1, &n, NPY_OBJECT) : NULL;
    if (!a) return NULL;
    PyObject **o = PyArray_DATA((PyArrayObject *)a);
    const int64_t *idx = qp_J(x);
    for (npy_intp i = 0; i < n; i++) {
        PyObject *v = idx[i] == QP_NULL_J ? empty : d->strs[idx[i]];
        Py_INCREF(v);
        o[i] = v;
    }
    return a;
}

/* Read-only int64 array viewing x's indices (and keeping x, so the
 * mapping, alive). New reference. */
static PyObject *index_view(const qp_value *x)
{
    return qp__view_vector(x, PyArray_DescrFromType(NPY_INT64));
}

/* Copy of x's indices with 0Nj replaced by the index of `` (e). */
static PyObject *index_copy(const qp_value *x, int64_t e)
{
    npy_intp n = (npy_intp)x->v.n;
    PyObject *a = PyArray_SimpleNew(1, &n, NPY_INT64);
    if (!a) return NULL;
    int64_t *o = PyArray_DATA((PyArrayObject *)a);
    const int64_t *idx = qp_J(x);
    for (npy_intp i = 0; i < n; i++) o[i] = idx[i] == QP_NULL_J ? e : idx[i];
    PyArray_CLEARFLAGS((PyArrayObject *)a, NPY_ARRAY_WRITEABLE);
    return a;
}

/* The domain's strs as a read-only object array, made once (borrowed). */
static PyObject *dom_cats(domain *d)
{
    if (d->cats) return d->cats;
    npy_intp n = (npy_intp)d->dom->v.n;
    PyObject *cats = PyArray_SimpleNew(1, &n, NPY_OBJECT);
    if (!cats) return NULL;
    PyObject **o = PyArray_DATA((PyArrayObject *)cats);
    for (npy_intp i = 0; i < n; i++) { Py_INCREF(d->strs[i]); o[i] = d->strs[i]; }
    PyArray_CLEARFLAGS((PyArrayObject *)cats, NPY_ARRAY_WRITEABLE);
    return d->cats = cats;
}

static PyObject *dom_dtype(domain *d)
{
    if (d->dtype) return d->dtype;
    PyObject *cats = dom_cats(d);
    if (!cats) return NULL;
    PyObject *idx = PyObject_CallFunction(index_cls, "Os", cats, "object");
    d->dtype = idx ? PyObject_CallFunction(dtype_cls, "OO", idx, Py_False) : NULL;
    Py_XDECREF(idx);
    return d->dtype;
}

/* Resolves x to symbols and builds codes from them (the slow, safe way). */
static PyObject *enum_fallback(const qp_value *x)
{
    qp_value *s = qp_enum_resolve(x);
    if (!s) return PyErr_NoMemory();
    PyObject *r = s->type == QP_SYMBOL ? qp__sym_categorical(s)
                                       : PyErr_Format(PyExc_TypeError, "qpeach: cannot resolve an enumeration");
    qp_unref(s);
    return r;
}

/* Whether any of n indices is 0Nj (the null symbol). */
static bool has_null(const int64_t *idx, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (idx[i] == QP_NULL_J) return true;
    return false;
}

PyObject *qp__enum_categorical(const qp_value *x)
{
    assert(PyGILState_Check());   /* the GIL guards the cache */
    if (pandas_init() < 0) return NULL;
    domain *d = dom_get(x);
    if (!d) return NULL;
    bool null = has_null(qp_J(x), x->v.n);
    if (d->dup || (null && d->empty < 0)) return enum_fallback(x);
    PyObject *dtype = dom_dtype(d);
    if (!dtype) return NULL;
    PyObject *codes = null ? index_copy(x, d->empty) : index_view(x);
    return codes ? categorical(codes, dtype) : NULL;
}

int qp__symcat_codes_class(PyObject *cls)
{
    Py_INCREF(cls);
    Py_XSETREF(codes_cls, cls);
    return 0;
}

bool qp__is_symbol_codes(PyObject *o)
{
    int r = codes_cls ? PyObject_IsInstance(o, codes_cls) : 0;
    if (r < 0) PyErr_Clear();
    return r > 0;
}

PyObject *qp__enum_codes(const qp_value *x)
{
    domain *d = dom_get(x);
    if (!d) return NULL;
    if (!codes_cls) return PyErr_Format(PyExc_RuntimeError, "qpeach: no SymbolCodes class");
    bool null = has_null(qp_J(x), x->v.n);
    PyObject *cats = dom_cats(d);
    PyObject *codes = !cats ? NULL : null ? index_copy(x, d->empty) : index_view(x);
    PyObject *r = codes ? PyObject_CallFunctionObjArgs(codes_cls, codes, cats, NULL) : NULL;
    Py_XDECREF(codes);
    return r;
}

void qp__symcat_fini(void)
{
    doms_fini();
    Py_CLEAR(codes_cls);
    while (nents) drop(nents - 1);
    free(ents);
    ents = NULL;
    capents = 0;
    Py_CLEAR(simple_new);
    Py_CLEAR(cat_cls);
    Py_CLEAR(dtype_cls);
    Py_CLEAR(index_cls);
}
