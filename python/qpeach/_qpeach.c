/* _qpeach.c - the Python client's C extension: the module, its C codec
 * (dumps, loads) and the Python -> q conversion of call arguments. The
 * client connection is _qpeach_conn.c's, the scheduler _qpeach_run.c's;
 * _qpeach_int.h holds what they share and the memory rules.
 */
#include "_qpeach_int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "qpeach/ipc.h"
#include "qpeach/job.h"
#include "qpeach/py.h"
#include "qpeach/pykx.h"
#include "qpeach/sched.h"
#include "qpeach/version.h"

/* ---- Module state: exception types and marker classes set from Python. */

static PyObject *QErrorType;    /* qpeach.errors.QError */
static PyObject *CharVecType;   /* str subclass sent as a q char vector */
static PyObject *ArgListType;   /* list subclass sent as a general list */
static PyObject *KwDictType;    /* dict subclass sent as a symbol-keyed dict */

/* Raises the Python exception for a transport/codec failure code. */
PyObject *qp__ext_raise_code(int code, const char *msg)
{
    PyObject *t = PyExc_ConnectionError;
    if (code == QP_EAUTH) t = PyExc_PermissionError;
    else if (code == QP_ETIMEOUT) t = PyExc_TimeoutError;
    else if (code == QP_EADDR || code == QP_EARG) t = PyExc_ValueError;
    else if (code == QP_ENOMEM) return PyErr_NoMemory();
    else if (code == -ECONNREFUSED) t = PyExc_ConnectionRefusedError;
    PyErr_Format(t, "%s", msg && *msg ? msg : qp_strerror(code));
    return NULL;
}

/* A C string as str, bytes that are not UTF-8 (a text cut at its
 * buffer's size) replaced. New reference, NULL with an exception. */
PyObject *qp__ext_text_to_py(const char *s)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* A q error value (-128) as a QError(text, remote_type, remote_message,
 * remote_traceback): a Python exception's text read once, in C
 * (qp_remote_error_parse). */
static PyObject *raise_qerror(const qp_value *e)
{
    const char *text = e->s ? e->s : "q error";
    if (!QErrorType) {
        PyErr_SetString(PyExc_RuntimeError, text);
        return NULL;
    }
    qp_remote_error *re = PyMem_Malloc(sizeof *re);
    if (!re) return PyErr_NoMemory();
    qp_remote_error_parse(text, re);
    PyObject *a[4] = { qp__ext_text_to_py(text), qp__ext_text_to_py(re->type), qp__ext_text_to_py(re->message),
                       qp__ext_text_to_py(re->traceback) };
    PyMem_Free(re);
    PyObject *x = a[0] && a[1] && a[2] && a[3]
                ? PyObject_CallFunctionObjArgs(QErrorType, a[0], a[1], a[2], a[3], NULL) : NULL;
    for (int i = 0; i < 4; i++) Py_XDECREF(a[i]);
    if (x) {
        PyErr_SetObject(QErrorType, x);
        Py_DECREF(x);
    }
    return NULL;
}

static qp_value *arg_to_q(PyObject *o);

static bool is_marker(PyObject *o, PyObject *type)
{
    return type && PyObject_TypeCheck(o, (PyTypeObject *)type);
}

/* A general list of arg_to_q(item) for every item of a sequence: never
 * collapsed into a vector, so each item stays one argument. */
static qp_value *seq_to_list(PyObject *seq)
{
    PyObject *fast = PySequence_Fast(seq, "expected a sequence");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    qp_value *l = qp_vector(QP_LIST, n);
    if (!l) { PyErr_NoMemory(); goto fail; }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!(qp_K(l)[i] = arg_to_q(PySequence_Fast_GET_ITEM(fast, i)))) goto fail;
    }
    Py_DECREF(fast);
    return l;
fail:
    qp_unref(l);    /* unfilled items are NULL: skipped */
    Py_DECREF(fast);
    return NULL;
}

/* A q dict with a symbol vector of keys (str keys only) and a general list
 * of values (keyword arguments, library aliases). */
static qp_value *dict_to_symdict(PyObject *d)
{
    qp_value *keys = NULL, *vals = NULL;
    PyObject *items = PyDict_Items(d);
    if (!items) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(items);
    if (!(keys = qp_vector(QP_SYMBOL, n)) || !(vals = qp_vector(QP_LIST, n))) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *kv = PyList_GET_ITEM(items, i);
        PyObject *k = PyTuple_GET_ITEM(kv, 0);
        if (!PyUnicode_Check(k)) {
            PyErr_Format(PyExc_TypeError, "dict keys must be str, got %s",
                         Py_TYPE(k)->tp_name);
            goto fail;
        }
        Py_ssize_t len;
        const char *ks = PyUnicode_AsUTF8AndSize(k, &len);
        if (!ks) goto fail;
        if (!(qp_S(keys)[i] = qp_sym_intern(ks, (size_t)len))) { PyErr_NoMemory(); goto fail; }
        if (!(qp_K(vals)[i] = arg_to_q(PyTuple_GET_ITEM(kv, 1)))) goto fail;
    }
    Py_DECREF(items);
    qp_value *out = qp_dict(keys, vals);
    if (!out) PyErr_NoMemory();
    return out;
fail:
    qp_unref(keys);
    qp_unref(vals);
    Py_DECREF(items);
    return NULL;
}

/* Python -> q for one argument. The marker types (qpeach.errors) pick a q
 * shape the generic mapping would not: CharVector -> char vector, ArgList
 * -> general list, KwDict -> symbol-keyed dict; everything else goes
 * through py.h. Returns a new reference, or NULL with an exception set. */
static qp_value *arg_to_q(PyObject *o)
{
    if (is_marker(o, CharVecType)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (!s) return NULL;
        qp_value *v = qp_string(s, (size_t)n);
        if (!v) PyErr_NoMemory();
        return v;
    }
    if (is_marker(o, ArgListType)) return seq_to_list(o);
    if (is_marker(o, KwDictType)) return dict_to_symdict(o);
    qp_value *v = qp_py_to_q(o);
    if (!v) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    if (qp_is_error(v)) {
        PyErr_Format(PyExc_TypeError, "cannot send to q: %s", v->s ? v->s : "?");
        qp_unref(v);
        return NULL;
    }
    return v;
}

/* The message for fn[args...]: a general list (`fn; arg1; ...) as q
 * clients send a call. fn NULL: the single argument is sent as is.
 * Returns a new reference or NULL with a Python exception set. */
qp_value *qp__ext_build_call(const char *fn, PyObject *args, Py_ssize_t first)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args) - first;
    if (!fn) {
        if (n != 1) {
            PyErr_SetString(PyExc_TypeError, "expected exactly one value to send");
            return NULL;
        }
        return arg_to_q(PyTuple_GET_ITEM(args, first));
    }
    qp_value *msg = qp_vector(QP_LIST, 1 + n);
    if (!msg) { PyErr_NoMemory(); return NULL; }
    qp_value **k = qp_K(msg);
    if (!(k[0] = qp_symbol(fn))) { PyErr_NoMemory(); goto fail; }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!(k[1 + i] = arg_to_q(PyTuple_GET_ITEM(args, first + i)))) goto fail;
    }
    return msg;
fail:
    /* Items not yet filled are NULL; qp_unref skips them. */
    qp_unref(msg);
    return NULL;
}

/* q -> Python for a result: a q error raises QError. Borrowed x. */
PyObject *qp__ext_result_to_py(const qp_value *x, int flags)
{
    if (qp_is_error(x)) return raise_qerror(x);
    return qp_py_from_q(x, flags);
}

/* ---- Codec functions --------------------------------------------------- */

/* dumps(obj) -> bytes: a whole IPC message (header + body), as -8!. */
static PyObject *mod_dumps(PyObject *Py_UNUSED(m), PyObject *o)
{
    qp_value *v = arg_to_q(o);
    if (!v) return NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = qp_ipc_encode(v, QP_MSG_ASYNC, &buf, &len);
    qp_unref(v);
    if (r < 0) return qp__ext_raise_code(r, qp_strerror(r));
    PyObject *b = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)len);
    free(buf);
    return b;
}

/* loads(bytes, pandas=False) -> obj: decodes a whole IPC message
 * (compressed ones too). A malformed message raises ValueError. */
static PyObject *mod_loads(PyObject *Py_UNUSED(m), PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"data", "pandas", NULL};
    Py_buffer in;
    int pandas = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|p", kwlist, &in, &pandas)) return NULL;
    PyObject *out = NULL;
    qp_buf *b = NULL;
    qp_value *v = NULL;
    const uint8_t *p = in.buf;
    qp_ipc_header h;
    if (in.len < QP_IPC_HEADER || qp_ipc_header_parse(p, &h) < 0 ||
        h.len != (uint64_t)in.len) {
        PyErr_SetString(PyExc_ValueError, "not a whole kdb+ IPC message");
        goto done;
    }
    if (h.compressed) {
        int r = qp_ipc_decompress(p, (size_t)in.len, NULL, &b);
        if (r < 0) {
            PyErr_Format(PyExc_ValueError, "cannot decompress: %s", qp_strerror(r));
            goto done;
        }
    } else {
        if (!(b = qp_buf_new((size_t)in.len))) { PyErr_NoMemory(); goto done; }
        memcpy(b->data, p, (size_t)in.len);
    }
    if (!(v = qp_ipc_decode(b, NULL))) { PyErr_NoMemory(); goto done; }
    if (qp_is_error(v)) {
        /* A malformed message and an encoded q error both decode to -128;
         * either way the caller gets the text. */
        PyErr_Format(PyExc_ValueError, "%s", v->s ? v->s : "bad message");
        goto done;
    }
    out = qp_py_from_q(v, pandas ? QP_PY_PANDAS : 0);
done:
    qp_unref(v);
    qp_buf_unref(b);
    PyBuffer_Release(&in);
    return out;
}

/* _set_types(QError, CharVector, ArgList, KwDict): the Python classes the
 * extension uses (qpeach.errors). */
static PyObject *mod_set_types(PyObject *Py_UNUSED(m), PyObject *args)
{
    PyObject *qe, *cv, *al, *kd;
    if (!PyArg_ParseTuple(args, "OOOO", &qe, &cv, &al, &kd)) return NULL;
    if (!PyType_Check(qe) || !PyType_Check(cv) || !PyType_Check(al) || !PyType_Check(kd)) {
        PyErr_SetString(PyExc_TypeError, "_set_types expects four classes");
        return NULL;
    }
    Py_XSETREF(QErrorType, Py_NewRef(qe));
    Py_XSETREF(CharVecType, Py_NewRef(cv));
    Py_XSETREF(ArgListType, Py_NewRef(al));
    Py_XSETREF(KwDictType, Py_NewRef(kd));
    Py_RETURN_NONE;
}

static PyMethodDef mod_methods[] = {
    {"dumps", mod_dumps, METH_O, "dumps(obj) -> bytes: a kdb+ IPC message."},
    {"loads", (PyCFunction)(void (*)(void))mod_loads, METH_VARARGS | METH_KEYWORDS,
     "loads(data, pandas=False) -> obj: decode a kdb+ IPC message."},
    {"_set_types", mod_set_types, METH_VARARGS, "internal"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, "_qpeach",
    "qpeach's C codec and kdb+ IPC connection (see the qpeach package).",
    -1, mod_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__qpeach(void)
{
    if (qp_py_conv_init() < 0) return NULL;
    if (PyType_Ready(&qp__ext_conn_type) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Connection", (PyObject *)&qp__ext_conn_type) < 0
        || PyModule_AddFunctions(m, qp__ext_run_methods) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddStringConstant(m, "VERSION", QPEACH_VERSION);
    PyModule_AddIntConstant(m, "MSG_ASYNC", QP_MSG_ASYNC);
    PyModule_AddIntConstant(m, "MSG_SYNC", QP_MSG_SYNC);
    PyModule_AddIntConstant(m, "MSG_RESPONSE", QP_MSG_RESPONSE);
    /* [merge] how, as job files spell them: the names fanout takes */
    PyObject *hows = PyTuple_New(QP_MERGE_NONE + 1);
    for (int i = 0; hows && i <= QP_MERGE_NONE; i++)
        PyTuple_SET_ITEM(hows, i, PyUnicode_FromString(qp_job_merge_name(i)));
    if (!hows || PyModule_AddObject(m, "MERGE_HOWS", hows) < 0) {
        Py_XDECREF(hows);
        Py_DECREF(m);
        return NULL;
    }
    /* PyKX's texts for session(..., protocol='pykx'): their one copy is
     * the library's (qpeach/pykx.h). */
    PyModule_AddStringConstant(m, "PYKX_Q0", qp_pykx_q0);
    PyModule_AddStringConstant(m, "PYKX_Q2", qp_pykx_q2);
    PyModule_AddStringConstant(m, "PYKX_Q3", qp_pykx_q3);
    /* The codes Connection.error reports: EAUTH, ETIMEOUT, ECLOSED, ... */
#define QP__ERR_CONST(name, code, text) PyModule_AddIntConstant(m, "E" #name, code);
    QP_ERRORS(QP__ERR_CONST)
#undef QP__ERR_CONST
    return m;
}
