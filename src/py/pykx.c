/* src/py/pykx.c - PyKX's remote functions, answered by `qpeach serve`
 * (../shared/PYKX_WIRE.md). src/server/pykxwire.c recognises the q texts an
 * unmodified PyKX client sends; this file does what q with pykx.q does
 * with them:
 *
 *   .qp.pykx.libraries[alias; library]   exec("import library as alias")
 *   .qp.pykx.call[code; name; args; n]   define the function from its
 *                                        source, call it, send its result
 *
 * Namespace: as with pykx.q, everything lives in the interpreter's one
 * __main__ module, shared by every connection of the server: an alias one
 * client imports is seen by every client's functions, and two clients
 * defining the same function name replace each other's definition. It is
 * not the namespace of .qp.def functions (py.c), which keep their own.
 *
 * Compile once: pykx.q exec's the source on every call. Here the SHA-256
 * of the source keys a cache of (code object, function it defined). A
 * call whose source is cached and whose function is still __main__.<name>
 * calls it directly; when something else took the name since, the cached
 * code object runs again (no recompile). bench/bench_pykx.py measures it.
 *
 * Conversions: PyKX's "default" conversion on the way in and PyKX's toq on
 * the way out (PYKX_WIRE.md). Where they differ from qpeach's own
 * (fromq.c, toq.c): long and float atoms arrive as numpy.int64 and
 * numpy.float64, char atoms as bytes, char vectors as S1 arrays, integer
 * vectors holding nulls as masked arrays, tables as DataFrames (symbol
 * columns as str objects, integer columns holding nulls as nullable
 * Int16/32/64, keyed tables indexed by their keys); results
 * that are bytes go back as char vectors, and dicts as dictionaries (never
 * tables). Numeric vectors still view the q memory read-only, as in qpeach.
 *
 * Errors: the text PyKX's client shows is repr(exception), no traceback.
 */
#include "py_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Distinct sources kept compiled; past this the oldest goes. A client
 * sending ever-new sources costs at most this many code objects. */
#define PYKX_CACHE_MAX 1024

static PyObject *cache;         /* dict: sha256 -> [code object, function or None] */
static PyObject *masked_equal;  /* numpy.ma.masked_equal, imported at first use */

/* `import pykx` for code on a worker without PyKX. The finder is last on
 * sys.meta_path, so an installed PyKX is always found first; only when
 * every other finder has failed does it hand out qpeach's stand-in. Kept
 * here rather than in the package so that installing it imports nothing:
 * qpeach itself is imported only when a function imports pykx. */
static const char finder_src[] =
    "import sys\n"
    "class QpeachPykxFinder:\n"
    "    '''import pykx without PyKX installed: qpeach's stand-in (qpeach/_pykx.py)'''\n"
    "    @classmethod\n"
    "    def find_spec(cls, name, path=None, target=None):\n"
    "        if name != 'pykx':\n"
    "            return None\n"
    "        try:\n"
    "            from qpeach import _pykx\n"
    "        except ImportError:\n"
    "            return None\n"
    "        return _pykx.spec()\n"
    "    @classmethod\n"
    "    def invalidate_caches(cls):\n"
    "        pass\n"
    "if not any(getattr(f, '__name__', '') == 'QpeachPykxFinder' for f in sys.meta_path):\n"
    "    sys.meta_path.append(QpeachPykxFinder)\n";

/* ---- setup ---- */

static PyObject *main_dict(void)   /* borrowed; NULL with an exception */
{
    PyObject *m = PyImport_AddModule("__main__");
    return m ? PyModule_GetDict(m) : NULL;
}

int qp__pykx_init(void)
{
    if (!cache && !(cache = PyDict_New())) return -1;
    PyObject *g = PyDict_New();
    if (!g) return -1;
    PyObject *r = NULL;
    if (PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins()) == 0)
        r = PyRun_String(finder_src, Py_file_input, g, g);
    Py_DECREF(g);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

void qp__pykx_fini(void)
{
    Py_CLEAR(cache);
    Py_CLEAR(masked_equal);
}

int qp__pykx_main_set(const char *name, PyObject *o)
{
    PyObject *ns = main_dict();
    return ns ? PyDict_SetItemString(ns, name, o) : -1;
}

/* The pending exception as PyKX shows it: repr(exc). Clears it. */
static qp_value *repr_error(void)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (!t) return qp_error("python: unknown error");
    PyErr_NormalizeException(&t, &v, &tb);
    PyObject *r = v ? PyObject_Repr(v) : NULL;
    const char *s = r ? PyUnicode_AsUTF8(r) : NULL;
    qp_value *e;
    if (s) {
        e = qp_error("%s", s);
    } else {   /* repr itself failed: the type's name at least */
        PyErr_Clear();
        e = qp_error("%s", ((PyTypeObject *)t)->tp_name);
    }
    Py_XDECREF(r);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return e;
}

/* ---- Q2: libraries ---- */

qp_value *qp__pykx_libraries(const qp_value *alias, const qp_value *library)
{
    const char *a = qp_name_of(alias), *l = qp_name_of(library);
    if (!a || !l)
        return qp_error("type: PyKX's libraries call takes an alias and a library "
                        "(symbols or strings), not %s and %s",
                        qp_type_name(alias->type), qp_type_name(library->type));
    PyObject *ns = main_dict();
    if (!ns) return repr_error();
    /* the same statement pykx.q builds, so `import a.b as c`, and the
     * errors of a bad alias, behave as there */
    char *src = NULL;
    if (asprintf(&src, "import %s as %s", l, a) < 0) return NULL;
    PyObject *r = PyRun_String(src, Py_file_input, ns, ns);
    free(src);
    if (r) {
        Py_DECREF(r);
        return qp_identity();
    }
    qp_value *e = repr_error();
    qp_value *out = e ? qp_error("Failed to load library '%s' with alias '%s' with error: %s",
                                 l, a, e->s) : NULL;
    qp_unref(e);
    return out;
}

/* ---- Q3: define (once per distinct source) ---- */

/* What pykx.q runs: the source without its first line (the decorator),
 * leading and trailing spaces trimmed (q's trim: spaces only), compiled
 * once. New reference, or NULL with an exception. */
static PyObject *compile_source(const qp_value *code, const char *fname)
{
    const char *p = code->v.data;
    size_t n = (size_t)code->v.n;
    const char *nl = memchr(p, '\n', n);
    size_t a = nl ? (size_t)(nl + 1 - p) : n, b = n;
    while (a < b && p[a] == ' ') a++;
    while (b > a && p[b - 1] == ' ') b--;
    char *src = malloc(b - a + 1);
    if (!src) return PyErr_NoMemory();
    memcpy(src, p + a, b - a);
    src[b - a] = 0;
    char file[256];
    snprintf(file, sizeof file, "<pykx:%s>", fname);
    PyObject *co = NULL;
    if (strlen(src) != b - a)   /* what exec() says of a NUL byte */
        PyErr_SetString(PyExc_SyntaxError, "source code string cannot contain null bytes");
    else
        co = Py_CompileStringExFlags(src, file, Py_file_input, NULL, -1);
    free(src);
    return co;
}

/* The cache entry of code: [code object, function or None]. Borrowed (the
 * cache holds it), or NULL with an exception. */
static PyObject *cache_entry(const qp_value *code, const char *fname)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(code->v.data, (size_t)code->v.n, md, &len, EVP_sha256(), NULL)) {
        PyErr_SetString(PyExc_RuntimeError, "qpeach: sha256 failed");
        return NULL;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)md, (Py_ssize_t)len);
    if (!key) return NULL;
    PyObject *e = PyDict_GetItemWithError(cache, key);
    if (e || PyErr_Occurred()) {
        Py_DECREF(key);
        return e;
    }
    PyObject *co = compile_source(code, fname);
    e = co ? PyList_New(2) : NULL;
    if (!e) goto fail;
    PyList_SET_ITEM(e, 0, co);   /* steals co */
    co = NULL;
    Py_INCREF(Py_None);
    PyList_SET_ITEM(e, 1, Py_None);
    if (PyDict_GET_SIZE(cache) >= PYKX_CACHE_MAX) {
        Py_ssize_t pos = 0;    /* dicts keep insertion order: the oldest first */
        PyObject *k0, *v0;
        if (PyDict_Next(cache, &pos, &k0, &v0) && PyDict_DelItem(cache, k0) < 0) goto fail;
    }
    if (PyDict_SetItem(cache, key, e) < 0) goto fail;
    Py_DECREF(e);              /* the cache keeps it */
    Py_DECREF(key);
    return e;
fail:
    Py_XDECREF(co);
    Py_XDECREF(e);
    Py_DECREF(key);
    return NULL;
}

/* __main__.<fname> as defined by code: new reference, or NULL with an
 * exception (a compile error, the code's own, or no such name). */
static PyObject *defined(const qp_value *code, const char *fname)
{
    PyObject *ns = main_dict();
    PyObject *e = ns ? cache_entry(code, fname) : NULL;
    if (!e) return NULL;
    Py_INCREF(e);              /* the code run below could not drop it, but be sure */
    PyObject *f = PyList_GET_ITEM(e, 1);
    PyObject *cur = PyDict_GetItemString(ns, fname);
    if (f == Py_None || cur != f) {
        PyObject *r = PyEval_EvalCode(PyList_GET_ITEM(e, 0), ns, ns);
        if (!r) goto fail;
        Py_DECREF(r);
        if (!(cur = PyDict_GetItemString(ns, fname))) {
            PyErr_Format(PyExc_NameError, "name '%s' is not defined", fname);
            goto fail;
        }
        Py_INCREF(cur);
        if (PyList_SetItem(e, 1, cur) < 0) goto fail;   /* steals cur */
    }
    Py_INCREF(cur);
    Py_DECREF(e);
    return cur;
fail:
    Py_DECREF(e);
    return NULL;
}

/* ---- q -> Python, PyKX's default conversion ---- */

static PyObject *from_q(const qp_value *x, int depth);

static PyObject *scalar(int npy, const void *p)
{
    PyArray_Descr *d = PyArray_DescrFromType(npy);
    PyObject *r = d ? PyArray_Scalar((void *)p, d, NULL) : NULL;
    Py_XDECREF(d);
    return r;
}

static PyObject *char_array(const qp_value *x)   /* dtype S1, a copy */
{
    npy_intp n = (npy_intp)x->v.n;
    PyObject *a = PyArray_New(&PyArray_Type, 1, &n, NPY_STRING, NULL, NULL, 1, 0, NULL);
    if (a && n) memcpy(PyArray_DATA((PyArrayObject *)a), x->v.data, (size_t)n);
    return a;
}

/* q's null of an integer vector, or 0 when x is of another type or holds
 * none (0 is never a null). */
static int64_t int_null(const qp_value *x)
{
    int64_t n = x->v.n;
    switch (x->type) {
    case QP_SHORT:
        for (int64_t i = 0; i < n; i++) if (qp_H(x)[i] == QP_NULL_H) return QP_NULL_H;
        return 0;
    case QP_INT:
        for (int64_t i = 0; i < n; i++) if (qp_I(x)[i] == QP_NULL_I) return QP_NULL_I;
        return 0;
    case QP_LONG:
        for (int64_t i = 0; i < n; i++) if (qp_J(x)[i] == QP_NULL_J) return QP_NULL_J;
        return 0;
    default:
        return 0;
    }
}

/* x's items as numpy.ma.masked_equal(items, null). */
static PyObject *masked(const qp_value *x, int64_t null)
{
    if (!masked_equal) {
        PyObject *ma = PyImport_ImportModule("numpy.ma");
        masked_equal = ma ? PyObject_GetAttrString(ma, "masked_equal") : NULL;
        Py_XDECREF(ma);
        if (!masked_equal) return NULL;
    }
    PyObject *a = qp_py_from_q(x, 0);
    PyObject *nv = a ? PyLong_FromLongLong(null) : NULL;
    PyObject *r = nv ? PyObject_CallFunctionObjArgs(masked_equal, a, nv, NULL) : NULL;
    Py_XDECREF(nv);
    Py_XDECREF(a);
    return r;
}

static PyObject *vector(const qp_value *x)
{
    if (x->type == QP_CHAR) return char_array(x);
    int64_t null = int_null(x);
    return null ? masked(x, null) : qp_py_from_q(x, 0);
}

static PyObject *atom(const qp_value *x)
{
    switch (x->type) {
    case -QP_LONG: return scalar(NPY_INT64, &x->j);
    case -QP_FLOAT: return scalar(NPY_FLOAT64, &x->f);
    case -QP_CHAR: return PyBytes_FromStringAndSize(&x->c, 1);
    default: return qp_py_from_q(x, 0);   /* the others are PyKX's already */
    }
}

/* Columns of table t into d (name -> array); char columns as S1 arrays,
 * integer columns holding nulls as pandas' nullable integers (.pd()). */
static int columns_into(PyObject *d, const qp_value *t)
{
    const qp_value *names = qp_table_names(t), *cols = qp_table_columns(t);
    for (int64_t i = 0; i < names->v.n; i++) {
        const qp_value *c = qp_K(cols)[i];
        bool ints = c->type == QP_SHORT || c->type == QP_INT || c->type == QP_LONG;
        PyObject *v = c->type == QP_CHAR ? char_array(c) : ints ? qp__pd_ints(c) : qp_py_from_q(c, 0);
        if (!v) return -1;
        int rc = PyDict_SetItemString(d, qp_S(names)[i], v);
        Py_DECREF(v);
        if (rc < 0) return -1;
    }
    return 0;
}

/* A table as a DataFrame; a keyed one indexed by its key columns. */
static PyObject *frame(const qp_value *x)
{
    bool keyed = x->type != QP_TABLE;
    const qp_value *keys = keyed ? qp_dict_keys(x) : NULL;
    PyObject *pd = qp__pandas(), *d = PyDict_New(), *df = NULL, *idx = NULL, *r = NULL;
    if (!pd || !d) goto done;
    if ((keys && columns_into(d, keys) < 0) || columns_into(d, keyed ? qp_dict_values(x) : x) < 0)
        goto done;
    if (!(df = PyObject_CallMethod(pd, "DataFrame", "O", d)) || !keyed) {
        r = df;
        df = NULL;
        goto done;
    }
    const qp_value *kn = qp_table_names(keys);
    if (!(idx = PyList_New((Py_ssize_t)kn->v.n))) goto done;
    for (int64_t i = 0; i < kn->v.n; i++) {
        PyObject *s = PyUnicode_FromString(qp_S(kn)[i]);
        if (!s) goto done;
        PyList_SET_ITEM(idx, (Py_ssize_t)i, s);
    }
    r = PyObject_CallMethod(df, "set_index", "O", idx);
done:
    Py_XDECREF(idx);
    Py_XDECREF(df);
    Py_XDECREF(d);
    return r;
}

/* Item i of a vector or general list, converted. */
static PyObject *item(const qp_value *x, int64_t i, int depth)
{
    if (x->type == QP_LIST) return from_q(qp_K(x)[i], depth);
    qp_value *it = qp_item(x, i);
    if (!it) return PyErr_NoMemory();
    PyObject *r = from_q(it, depth);
    qp_unref(it);
    return r;
}

static PyObject *dict(const qp_value *x, int depth)
{
    const qp_value *k = qp_dict_keys(x), *v = qp_dict_values(x);
    int64_t n = qp_count(k);
    if ((k->type != QP_LIST && !qp_is_vector(k)) || (v->type != QP_LIST && !qp_is_vector(v)) ||
        qp_count(v) != n)
        return qp_py_from_q(x, 0);   /* its error names the shape */
    PyObject *d = PyDict_New();
    for (int64_t i = 0; d && i < n; i++) {
        PyObject *key = item(k, i, depth), *val = key ? item(v, i, depth) : NULL;
        int rc = val ? PyDict_SetItem(d, key, val) : -1;
        Py_XDECREF(key);
        Py_XDECREF(val);
        if (rc < 0) Py_CLEAR(d);
    }
    return d;
}

static PyObject *from_q(const qp_value *x, int depth)
{
    if (++depth > QP_PY_MAX_DEPTH)
        return PyErr_Format(PyExc_RecursionError, "qpeach: q value nested deeper than %d",
                            QP_PY_MAX_DEPTH);
    if (qp_is_atom(x)) return atom(x);
    if (qp_is_vector(x)) return vector(x);
    if (x->type == QP_TABLE || qp_is_keyed_table(x)) return frame(x);
    if (qp_is_dict(x)) return dict(x, depth);
    if (x->type != QP_LIST) return qp_py_from_q(x, 0);   /* (::), enums, errors */
    PyObject *l = PyList_New((Py_ssize_t)x->v.n);
    for (int64_t i = 0; l && i < x->v.n; i++) {
        PyObject *v = from_q(qp_K(x)[i], depth);
        if (!v) Py_CLEAR(l);
        else PyList_SET_ITEM(l, (Py_ssize_t)i, v);
    }
    return l;
}

static bool is_identity(const qp_value *x)
{
    return x->type == QP_UNARY && x->v.n == 1 && ((const uint8_t *)x->v.data)[0] == 0;
}

/* The arguments of `$[lenargs; func . args; func[]]` as a tuple. */
static PyObject *call_args(const qp_value *args, const qp_value *n)
{
    int64_t cnt;
    switch (n->type) {
    case -QP_LONG: cnt = n->j; break;
    case -QP_INT: cnt = n->i; break;
    case -QP_SHORT: cnt = n->h; break;
    case -QP_BOOL: cnt = n->g; break;
    default:
        return PyErr_Format(PyExc_TypeError, "qpeach: the argument count must be an integer "
                            "atom, not a %s", qp_type_name(n->type));
    }
    /* func[] for no arguments; `enlist ::` is one (::), which q passes as none */
    if (cnt == 0 || is_identity(args) ||
        (args->type == QP_LIST && args->v.n == 1 && is_identity(qp_K(args)[0])))
        return PyTuple_New(0);
    if (args->type != QP_LIST && !qp_is_vector(args)) {   /* an atom: one argument */
        PyObject *a = from_q(args, 0);
        PyObject *t = a ? PyTuple_Pack(1, a) : NULL;
        Py_XDECREF(a);
        return t;
    }
    PyObject *t = PyTuple_New((Py_ssize_t)args->v.n);
    for (int64_t i = 0; t && i < args->v.n; i++) {
        PyObject *a = item(args, i, 0);
        if (!a) Py_CLEAR(t);
        else PyTuple_SET_ITEM(t, (Py_ssize_t)i, a);
    }
    return t;
}

/* ---- Python -> q, PyKX's toq ---- */

static qp_value *to_q(PyObject *o, int depth);

/* Items of a sequence as a general list, collapsed as q collapses
 * (1;2;3); an error value from any item is returned instead. */
static qp_value *items_to_q(PyObject *seq, int depth)
{
    PyObject *f = PySequence_Fast(seq, "");
    if (!f) return repr_error();
    Py_ssize_t n = PySequence_Fast_GET_SIZE(f);
    qp_value *l = qp_vector(QP_LIST, n);
    for (Py_ssize_t i = 0; l && i < n; i++) {
        qp_value *v = to_q(PySequence_Fast_GET_ITEM(f, i), depth);
        if (!v || qp_is_error(v)) {
            qp_unref(l);
            l = v;
            break;
        }
        qp_K(l)[i] = v;
    }
    Py_DECREF(f);
    return l && !qp_is_error(l) ? qp__collapse(l) : l;
}

static qp_value *dict_to_q(PyObject *o, int depth)
{
    PyObject *k = PyDict_Keys(o), *v = PyDict_Values(o);
    qp_value *kq = k ? items_to_q(k, depth) : NULL, *vq = v ? items_to_q(v, depth) : NULL;
    Py_XDECREF(k);
    Py_XDECREF(v);
    if (!kq || !vq || qp_is_error(kq) || qp_is_error(vq)) {
        qp_value *e = kq && qp_is_error(kq) ? qp_ref(kq) : vq && qp_is_error(vq) ? qp_ref(vq)
                      : PyErr_Occurred() ? repr_error() : NULL;
        qp_unref(kq);
        qp_unref(vq);
        return e;
    }
    return qp_dict(kq, vq);
}

static qp_value *to_q(PyObject *o, int depth)
{
    if (++depth > QP_PY_MAX_DEPTH) return qp_error("qpeach: result nested deeper than %d",
                                                   QP_PY_MAX_DEPTH);
    if (PyBytes_Check(o)) return qp_string(PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
    if (PyByteArray_Check(o))
        return qp_string(PyByteArray_AS_STRING(o), (size_t)PyByteArray_GET_SIZE(o));
    if (PyList_Check(o) || PyTuple_Check(o)) return items_to_q(o, depth);
    if (PyDict_Check(o)) return dict_to_q(o, depth);
    return qp_py_to_q(o);
}

/* ---- Q3: call ---- */

qp_value *qp__pykx_call(const qp_value *code, const qp_value *name, const qp_value *args,
                        const qp_value *n)
{
    const char *fname = qp_name_of(name);
    if (code->type != QP_CHAR)
        return qp_error("type: PyKX's call takes the function's source as a string, not %s",
                        qp_type_name(code->type));
    if (!fname || !*fname)
        return qp_error("type: PyKX's call takes the function's name as a symbol, not %s",
                        qp_type_name(name->type));
    PyObject *f = defined(code, fname);
    PyObject *t = f ? call_args(args, n) : NULL;
    PyObject *r = t ? qp__call_timed(fname, f, t, NULL) : NULL;
    Py_XDECREF(t);
    Py_XDECREF(f);
    if (!r) return repr_error();
    qp_value *v = to_q(r, 0);
    Py_DECREF(r);
    return v;
}
