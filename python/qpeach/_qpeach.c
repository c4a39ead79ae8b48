/* _qpeach.c - the Python client's C extension: the C codec, the client
 * connection (include/qpeach/conn.h) and the scheduler (include/qpeach/
 * sched.h: qpeach.run, fanout and map run qp_run) for Python.
 *
 * The q <-> Python conversion is not written here: it is the embedded
 * worker's (include/qpeach/py.h, src/py/fromq.c and toq.c), linked from libqpeach.a,
 * so the client and the worker map values the same way.
 *
 * Memory rules: value.h's and py.h's. Every qp_value made here is unref'd
 * on the one `goto fail`/exit path of the function that made it. Python
 * objects follow CPython's rules ("new reference" / "borrowed").
 *
 * Threads: a Connection may be shared by Python threads; a per-connection
 * lock serializes them (a qp_conn is used by one thread at a time). The GIL
 * is released while waiting for that lock and while on the network, so
 * calls on different connections (fan-out threads) overlap. Python values
 * are converted with the GIL held, before sending and after receiving.
 * run() releases the GIL for the whole of qp_run; its progress callback
 * takes it again (PyGILState) on the scheduler's thread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qpeach/conn.h"
#include "qpeach/ipc.h"
#include "qpeach/job.h"
#include "qpeach/py.h"
#include "qpeach/pykx.h"
#include "qpeach/sched.h"
#include "qpeach/value.h"
#include "qpeach/version.h"

/* ---- Module state: exception types and marker classes set from Python. */

static PyObject *QErrorType;    /* qpeach.errors.QError */
static PyObject *CharVecType;   /* str subclass sent as a q char vector */
static PyObject *ArgListType;   /* list subclass sent as a general list */
static PyObject *KwDictType;    /* dict subclass sent as a symbol-keyed dict */

/* Raises the Python exception for a transport/codec failure code. */
static PyObject *raise_code(int code, const char *msg)
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

static PyObject *text_to_py(const char *s);

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
    PyObject *a[4] = { text_to_py(text), text_to_py(re->type), text_to_py(re->message),
                       text_to_py(re->traceback) };
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
static qp_value *build_call(const char *fn, PyObject *args, Py_ssize_t first)
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
static PyObject *result_to_py(const qp_value *x, int flags)
{
    if (qp_is_error(x)) return raise_qerror(x);
    return qp_py_from_q(x, flags);
}

/* ---- Connection ------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    qp_conn *c;                 /* NULL once closed */
    PyThread_type_lock lock;    /* one thread on the connection at a time */
    int timeout_ms;             /* per call; 0: none */
    char addr[256];
} ConnObject;

/* Takes the connection's lock, releasing the GIL while blocked. */
static void conn_lock(ConnObject *self)
{
    if (!PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

static int conn_check(ConnObject *self)
{
    if (!self->c) {
        PyErr_Format(PyExc_RuntimeError, "connection to %s is closed", self->addr);
        return -1;
    }
    return 0;
}

static int Conn_init(ConnObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"addr", "user", "password", "timeout_ms",
                             "connect_timeout_ms", "tls", "large", "tls_no_verify",
                             "tls_ca", NULL};
    const char *addr, *user = NULL, *password = NULL, *tls_ca = NULL;
    int timeout_ms = 0, connect_ms = 0, tls = 0, large = 1, no_verify = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|zziipppz", kwlist, &addr, &user,
                                     &password, &timeout_ms, &connect_ms, &tls,
                                     &large, &no_verify, &tls_ca))
        return -1;
    if (self->c) { qp_conn_close(self->c); self->c = NULL; }
    if (!self->lock && !(self->lock = PyThread_allocate_lock())) {
        PyErr_NoMemory();
        return -1;
    }
    snprintf(self->addr, sizeof self->addr, "%s", addr);
    self->timeout_ms = timeout_ms;
    qp_conn_opts o = {
        .user = user, .password = password, .connect_timeout_ms = connect_ms,
        .timeout_ms = timeout_ms, .tls = tls, .tls_ca = tls_ca,
        .tls_no_verify = no_verify, .no_large = !large,
    };
    char err[256] = "";
    qp_conn *c = NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = qp_conn_open(addr, &o, &c, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (r < 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "cannot connect to %s: %s", addr,
                 *err ? err : qp_strerror(r));
        raise_code(r, msg);
        return -1;
    }
    self->c = c;
    return 0;
}

static void Conn_dealloc(ConnObject *self)
{
    qp_conn_close(self->c);
    if (self->lock) PyThread_free_lock(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A failed send, receive or call: the code and text qp_conn keeps (conn.h)
 * pick the exception. Timeouts raise TimeoutError, a lost peer
 * ConnectionError (or its subclasses for a reset or a broken pipe), which
 * is what the session's timeout and reconnect logic look for; a failure
 * that left the stream intact (a value the encoder refused) ValueError.
 * A broken connection stays broken (`broken` is then True). Lock held. */
static PyObject *conn_error(ConnObject *self)
{
    int code = qp_conn_err(self->c);
    const char *why = qp_conn_errstr(self->c);
    char msg[400];
    if (code == QP_ENOMEM) return PyErr_NoMemory();
    if (!*why) why = qp_strerror(code);
    PyObject *t = PyExc_ConnectionError;
    if (!qp_conn_broken(self->c)) {
        t = PyExc_ValueError;
        snprintf(msg, sizeof msg, "cannot send to %s: %s", self->addr, why);
    } else if (code == QP_ETIMEOUT) {
        t = PyExc_TimeoutError;
        snprintf(msg, sizeof msg, "call to %s timed out (%s); this connection is now unusable",
                 self->addr, why);
    } else {
        if (code == -ECONNRESET) t = PyExc_ConnectionResetError;
        else if (code == -EPIPE) t = PyExc_BrokenPipeError;
        snprintf(msg, sizeof msg, "connection to %s lost: %s", self->addr, why);
    }
    PyErr_SetString(t, msg);
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Closes the connection of a call the caller gave up on (Ctrl-C): its
 * answer would be taken for the next call's, and a qpeach server cancels
 * a call whose client closed its connection. Lock and GIL held. */
static void conn_abandon(ConnObject *self)
{
    qp_conn *c = self->c;
    self->c = NULL;
    Py_BEGIN_ALLOW_THREADS
    qp_conn_close(c);
    Py_END_ALLOW_THREADS
}

/* Waits for the answer to the sync message just sent, the GIL released,
 * waking every 100 ms and at a signal to run Python's signal handlers, so
 * that Ctrl-C raises KeyboardInterrupt now, not when the answer comes (the
 * connection is then closed: conn_abandon). A sync request from the
 * server is answered with an error, as qp_conn_call does. The result (new
 * reference), or NULL with a Python exception set. Lock and GIL held. */
static qp_value *wait_answer(ConnObject *self)
{
    qp_conn *c = self->c;
    int64_t deadline = self->timeout_ms > 0 ? now_ms() + self->timeout_ms : -1;
    for (;;) {
        if (!qp_conn_pending(c)) {
            int64_t left = deadline < 0 ? 100 : deadline - now_ms();
            struct pollfd p = { .fd = qp_conn_fd(c), .events = POLLIN };
            int r;
            Py_BEGIN_ALLOW_THREADS
            r = left > 0 ? poll(&p, 1, left < 100 ? (int)left : 100) : 0;
            Py_END_ALLOW_THREADS
            if (r < 0 && errno != EINTR) r = 1;          /* the receive says why */
            if (r <= 0 && PyErr_CheckSignals() < 0) {
                conn_abandon(self);
                return NULL;
            }
            if (r <= 0 && (deadline < 0 || now_ms() < deadline)) continue;
        }
        qp_value *v = NULL;
        int t = QP_MSG_RESPONSE, rc;
        int left = deadline < 0 ? -1 : (int)(deadline - now_ms() > 1 ? deadline - now_ms() : 1);
        Py_BEGIN_ALLOW_THREADS
        rc = qp_conn_recv(c, &v, &t, left);
        Py_END_ALLOW_THREADS
        if (rc) return conn_error(self), NULL;
        if (t == QP_MSG_RESPONSE) return v;
        qp_unref(v);
        if (t == QP_MSG_SYNC) {
            qp_value *e = qp_error("qpeach client: requests not served");
            if (!e) return PyErr_NoMemory(), NULL;
            Py_BEGIN_ALLOW_THREADS
            rc = qp_conn_send(c, e, QP_MSG_RESPONSE);
            Py_END_ALLOW_THREADS
            qp_unref(e);
            if (rc) return conn_error(self), NULL;
        }
    }
}

/* call(fn, *args, pandas=False, categorical=False): sync fn[args...]; fn
 * None sends args[0] as the whole message (a char vector expression,
 * say). Ctrl-C while waiting raises KeyboardInterrupt and closes the
 * connection (wait_answer). */
static PyObject *Conn_call(ConnObject *self, PyObject *args, PyObject *kw)
{
    int flags = 0;
    if (kw) {
        PyObject *p = PyDict_GetItemString(kw, "pandas");
        PyObject *cat = PyDict_GetItemString(kw, "categorical");
        if (p && PyObject_IsTrue(p)) flags |= QP_PY_PANDAS;
        if (cat && PyObject_IsTrue(cat)) flags |= QP_PY_CATEGORICAL;
        if (PyDict_Size(kw) > (p ? 1 : 0) + (cat ? 1 : 0)) {
            PyErr_SetString(PyExc_TypeError, "call() takes only the keywords 'pandas' and "
                            "'categorical'");
            return NULL;
        }
    }
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError, "call() needs a function name");
        return NULL;
    }
    PyObject *fn = PyTuple_GET_ITEM(args, 0);
    const char *name = NULL;
    if (fn != Py_None) {
        if (!PyUnicode_Check(fn)) {
            PyErr_SetString(PyExc_TypeError, "function name must be a str or None");
            return NULL;
        }
        if (!(name = PyUnicode_AsUTF8(fn))) return NULL;
    }
    if (conn_check(self) < 0) return NULL;
    qp_value *msg = build_call(name, args, 1);
    if (!msg) return NULL;
    conn_lock(self);
    PyObject *out = NULL;
    if (!self->c) {
        conn_check(self);
    } else {
        int rc;
        qp_conn *c = self->c;
        Py_BEGIN_ALLOW_THREADS
        rc = qp_conn_send(c, msg, QP_MSG_SYNC);
        Py_END_ALLOW_THREADS
        qp_value *res = rc ? (conn_error(self), NULL) : wait_answer(self);
        if (res) {
            out = result_to_py(res, flags);
            qp_unref(res);
        }
    }
    PyThread_release_lock(self->lock);
    qp_unref(msg);
    return out;
}

/* send(fn, *args, sync=False): sends without waiting (responses to sync
 * messages are read with recv(), in order). */
static PyObject *Conn_send(ConnObject *self, PyObject *args, PyObject *kw)
{
    int sync = 0;
    if (kw) {
        PyObject *p = PyDict_GetItemString(kw, "sync");
        sync = p && PyObject_IsTrue(p);
        if (PyDict_Size(kw) > (p ? 1 : 0)) {
            PyErr_SetString(PyExc_TypeError, "send() takes only the keyword 'sync'");
            return NULL;
        }
    }
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError, "send() needs a function name");
        return NULL;
    }
    PyObject *fn = PyTuple_GET_ITEM(args, 0);
    const char *name = NULL;
    if (fn != Py_None && !(name = PyUnicode_AsUTF8(fn))) return NULL;
    if (conn_check(self) < 0) return NULL;
    qp_value *msg = build_call(name, args, 1);
    if (!msg) return NULL;
    conn_lock(self);
    int r = QP_ECLOSED;
    if (self->c) {
        qp_conn *c = self->c;
        Py_BEGIN_ALLOW_THREADS
        r = qp_conn_send(c, msg, sync ? QP_MSG_SYNC : QP_MSG_ASYNC);
        Py_END_ALLOW_THREADS
        if (r < 0) conn_error(self);
    } else {
        conn_check(self);
    }
    PyThread_release_lock(self->lock);
    qp_unref(msg);
    if (r < 0) return NULL;
    Py_RETURN_NONE;
}

/* recv(timeout_ms=-1, pandas=False) -> (value, msgtype). A q error in a
 * response raises QError. */
static PyObject *Conn_recv(ConnObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout_ms", "pandas", NULL};
    int timeout_ms = -1, pandas = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|ip", kwlist, &timeout_ms, &pandas))
        return NULL;
    if (conn_check(self) < 0) return NULL;
    conn_lock(self);
    PyObject *out = NULL;
    if (self->c) {
        qp_value *v = NULL;
        int mt = 0, r;
        qp_conn *c = self->c;
        Py_BEGIN_ALLOW_THREADS
        r = qp_conn_recv(c, &v, &mt, timeout_ms);
        Py_END_ALLOW_THREADS
        if (r < 0) {
            conn_error(self);
        } else {
            PyObject *py = result_to_py(v, pandas ? QP_PY_PANDAS : 0);
            if (py) out = Py_BuildValue("(Ni)", py, mt);
            qp_unref(v);
        }
    } else {
        conn_check(self);
    }
    PyThread_release_lock(self->lock);
    return out;
}

static PyObject *Conn_close(ConnObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->lock) conn_lock(self);
    qp_conn *c = self->c;
    self->c = NULL;
    if (self->lock) PyThread_release_lock(self->lock);
    Py_BEGIN_ALLOW_THREADS
    qp_conn_close(c);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *Conn_fileno(ConnObject *self, PyObject *Py_UNUSED(ignored))
{
    if (conn_check(self) < 0) return NULL;
    return PyLong_FromLong(qp_conn_fd(self->c));
}

static PyObject *Conn_get_closed(ConnObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->c == NULL);
}

static PyObject *Conn_get_broken(ConnObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->c && qp_conn_broken(self->c));
}

static PyObject *Conn_get_error(ConnObject *self, void *Py_UNUSED(closure))
{
    if (conn_check(self) < 0) return NULL;
    return Py_BuildValue("(is)", qp_conn_err(self->c), qp_conn_errstr(self->c));
}

static PyObject *Conn_get_capability(ConnObject *self, void *Py_UNUSED(closure))
{
    if (conn_check(self) < 0) return NULL;
    return PyLong_FromLong(qp_conn_capability(self->c));
}

static PyObject *Conn_get_addr(ConnObject *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(self->addr);
}

static PyMethodDef Conn_methods[] = {
    {"call", (PyCFunction)(void (*)(void))Conn_call, METH_VARARGS | METH_KEYWORDS,
     "call(fn, *args, pandas=False): sync call of fn[args...] (fn None: send "
     "args[0] as the message); returns the result, raises QError for a q error."},
    {"send", (PyCFunction)(void (*)(void))Conn_send, METH_VARARGS | METH_KEYWORDS,
     "send(fn, *args, sync=False): send without waiting."},
    {"recv", (PyCFunction)(void (*)(void))Conn_recv, METH_VARARGS | METH_KEYWORDS,
     "recv(timeout_ms=-1, pandas=False) -> (value, msgtype)."},
    {"close", (PyCFunction)Conn_close, METH_NOARGS, "Close the connection."},
    {"fileno", (PyCFunction)Conn_fileno, METH_NOARGS, "The socket's fd."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Conn_getset[] = {
    {"closed", (getter)Conn_get_closed, NULL, "True once closed", NULL},
    {"broken", (getter)Conn_get_broken, NULL,
     "True once a transport failure or a timeout made the connection unusable", NULL},
    {"error", (getter)Conn_get_error, NULL,
     "(code, text) of the last failure: a QP_E* code (0: none) and why", NULL},
    {"capability", (getter)Conn_get_capability, NULL, "capability byte accepted", NULL},
    {"addr", (getter)Conn_get_addr, NULL, "address connected to", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "qpeach._qpeach.Connection",
    .tp_basicsize = sizeof(ConnObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Connection(addr, user=None, password=None, timeout_ms=0, "
              "connect_timeout_ms=0, tls=False, large=True, tls_no_verify=False, "
              "tls_ca=None): a kdb+ IPC client connection (qp_conn).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Conn_init,
    .tp_dealloc = (destructor)Conn_dealloc,
    .tp_methods = Conn_methods,
    .tp_getset = Conn_getset,
};

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
    if (r < 0) return raise_code(r, qp_strerror(r));
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

/* ---- The scheduler (include/qpeach/sched.h) ---------------------------- */

static PyObject *mod_fn_name(PyObject *Py_UNUSED(m), PyObject *arg)
{
    const char *s = PyUnicode_AsUTF8(arg);
    if (!s) return NULL;
    char *n = qp_job_fn_name(s);
    if (!n) return PyErr_NoMemory();
    PyObject *out = PyUnicode_FromString(n);
    free(n);
    return out;
}

/* The progress callback's state: the Python callable, and the exception it
 * raised (which stops the run and is raised again once it has ended). */
typedef struct {
    PyObject *cb;
    PyObject *on_event;         /* on_event(event, message) or None */
    PyObject *et, *ev, *etb;
} progress_ctx;

/* Called by qp_run on the scheduler's thread, which holds no GIL. */
static int progress_cb(int64_t done, int64_t total, int64_t failed, void *data)
{
    progress_ctx *p = data;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = 0;
    PyObject *r = PyObject_CallFunction(p->cb, "LLL", (long long)done, (long long)total,
                                        (long long)failed);
    if (!r) {
        if (!p->et) PyErr_Fetch(&p->et, &p->ev, &p->etb);
        else PyErr_Clear();
        stop = 1;
    }
    Py_XDECREF(r);
    PyGILState_Release(g);
    return stop;
}

/* Called by qp_run with each event it says (qp_run_opts.event_cb): the
 * on_event callable's exception, like the progress callback's, is raised
 * once the run has ended. */
static void event_cb(const char *event, const char *message, void *data)
{
    progress_ctx *p = data;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = p->et ? NULL : PyObject_CallFunction(p->on_event, "ss", event, message);
    if (!r && !p->et && PyErr_Occurred()) PyErr_Fetch(&p->et, &p->ev, &p->etb);
    Py_XDECREF(r);
    PyGILState_Release(g);
}

/* The function's code as .qp.def takes it: bytes -> byte vector (dill),
 * str -> char vector (source). New reference, NULL with an exception. */
static qp_value *code_to_q(PyObject *code)
{
    qp_value *v = NULL;
    if (PyBytes_Check(code)) {
        Py_ssize_t n = PyBytes_GET_SIZE(code);
        if ((v = qp_vector(QP_BYTE, n))) memcpy(qp_G(v), PyBytes_AS_STRING(code), (size_t)n);
    } else if (PyUnicode_Check(code)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(code, &n);
        if (!s) return NULL;
        v = qp_string(s, (size_t)n);
    } else {
        PyErr_SetString(PyExc_TypeError, "code must be bytes (dill) or str (source)");
        return NULL;
    }
    if (!v) PyErr_NoMemory();
    return v;
}

/* The merged value for Python: IPC bytes (raw), or converted. */
static PyObject *merged_to_py(const qp_value *v, int raw, int flags)
{
    if (!raw) return qp_py_from_q(v, flags);
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = qp_ipc_encode(v, QP_MSG_ASYNC, &buf, &len);
    if (r < 0) return raise_code(r, qp_strerror(r));
    PyObject *b = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)len);
    free(buf);
    return b;
}

/* A value of a job dict as a job file spells it: True -> "true", a list
 * -> "a, b", a dict (libraries) -> "np=numpy, pd=pandas", anything else
 * str(v). New reference, NULL with an exception. */
static PyObject *job_value(PyObject *v)
{
    if (PyBool_Check(v)) return PyUnicode_FromString(v == Py_True ? "true" : "false");
    PyObject *items = NULL, *strs = PyList_New(0), *sep = NULL, *out = NULL;
    if (!strs) return NULL;
    if (PyDict_Check(v)) {
        PyObject *k, *x;
        Py_ssize_t pos = 0;
        while (PyDict_Next(v, &pos, &k, &x)) {
            PyObject *one = PyUnicode_FromFormat("%S=%S", k, x);
            if (!one || PyList_Append(strs, one) < 0) { Py_XDECREF(one); goto done; }
            Py_DECREF(one);
        }
    } else if (PyList_Check(v) || PyTuple_Check(v)) {
        if (!(items = PySequence_Fast(v, "a list"))) goto done;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(items); i++) {
            PyObject *one = PyObject_Str(PySequence_Fast_GET_ITEM(items, i));
            if (!one || PyList_Append(strs, one) < 0) { Py_XDECREF(one); goto done; }
            Py_DECREF(one);
        }
    } else {
        out = PyObject_Str(v);
        goto done;
    }
    if ((sep = PyUnicode_FromString(", "))) out = PyUnicode_Join(sep, strs);
done:
    Py_XDECREF(items);
    Py_XDECREF(sep);
    Py_DECREF(strs);
    return out;
}

/* A job from a dict of sections -> {key: value} (qp_job_from_pairs, so
 * the job file's checks and errors, named "job"; relative paths from the
 * current folder). None values are left out. 0, or -1 with an exception
 * (ValueError: the job's error). */
static int job_from_dict(PyObject *d, qp_job **out)
{
    PyObject *strs = PyList_New(0), *sec, *keys, *k, *v;
    const char **kv = NULL;
    int rc = -1;
    Py_ssize_t pos = 0;
    if (!strs) return -1;
    while (PyDict_Next(d, &pos, &sec, &keys)) {
        if (!PyUnicode_Check(sec) || !PyDict_Check(keys)) {
            PyErr_Format(PyExc_TypeError, "job section %R must be a str naming a dict of keys, "
                         "got %s", sec, Py_TYPE(keys)->tp_name);
            goto done;
        }
        Py_ssize_t kpos = 0;
        while (PyDict_Next(keys, &kpos, &k, &v)) {
            if (v == Py_None) continue;
            PyObject *val = job_value(v), *key = PyObject_Str(k);
            bool ok = val && key && !PyList_Append(strs, sec) && !PyList_Append(strs, key)
                      && !PyList_Append(strs, val);
            Py_XDECREF(val);
            Py_XDECREF(key);
            if (!ok) goto done;
        }
    }
    Py_ssize_t n = PyList_GET_SIZE(strs);
    if (!(kv = PyMem_Calloc((size_t)n + 1, sizeof *kv))) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(kv[i] = PyUnicode_AsUTF8(PyList_GET_ITEM(strs, i)))) goto done;
    char dir[4096], err[2048] = "";
    if (!getcwd(dir, sizeof dir)) { PyErr_SetFromErrno(PyExc_OSError); goto done; }
    int r = qp_job_from_pairs("job", dir, kv, (int)(n / 3), out, err, sizeof err);
    if (r) raise_code(r, err);
    else rc = 0;
done:
    PyMem_Free(kv);
    Py_DECREF(strs);
    return rc;
}

/* A C string as str, bytes that are not UTF-8 (a text cut at its
 * buffer's size) replaced. New reference, NULL with an exception. */
static PyObject *text_to_py(const char *s)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* Why a run failed, as a dict of qp_run_error's fields (sched.h): code,
 * message, task (None: not a task's failure), attempts, partition,
 * worker, cause, remote_type, remote_message, remote_traceback. New
 * reference, NULL with an exception. */
static PyObject *run_error_to_py(const qp_run_error *e)
{
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    const struct { const char *key; const char *s; } texts[] = {
        {"message", e->message}, {"partition", e->partition}, {"worker", e->worker},
        {"cause", e->cause}, {"remote_type", e->remote.type},
        {"remote_message", e->remote.message}, {"remote_traceback", e->remote.traceback},
    };
    PyObject *task = e->task >= 0 ? PyLong_FromLongLong(e->task) : Py_NewRef(Py_None);
    int bad = !task || PyDict_SetItemString(d, "task", task) < 0;
    Py_XDECREF(task);
    PyObject *code = PyLong_FromLong(e->code), *att = PyLong_FromLong(e->attempts);
    bad = bad || !code || !att || PyDict_SetItemString(d, "code", code) < 0
          || PyDict_SetItemString(d, "attempts", att) < 0;
    Py_XDECREF(code);
    Py_XDECREF(att);
    for (size_t i = 0; !bad && i < sizeof texts / sizeof *texts; i++) {
        PyObject *v = text_to_py(texts[i].s);
        bad = !v || PyDict_SetItemString(d, texts[i].key, v) < 0;
        Py_XDECREF(v);
    }
    if (bad) Py_CLEAR(d);
    return d;
}

/* run(job, code=None, pandas=False, qpeach=None, progress=None, raw=False,
 *     log=False, resume=True, jobs=0, reducer=None) -> (exit code, value or
 * None, None or why): qp_run of the job file at path job, or of a job dict
 * (job_from_dict), the GIL released while it runs. code (reducer) replaces
 * [job] function's ([merge] reducer's) module file (see
 * qp_run_opts.fn_code), code_id (reducer_id) its identity for the journal
 * (qp_run_opts.fn_id); qpeach is the binary that local workers run;
 * progress(done, total, failed) is called as tasks finish, on_event(event,
 * message) with every event the run says; log=True writes the run's log
 * lines to stderr. */
static PyObject *mod_run(PyObject *Py_UNUSED(m), PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"job", "code", "pandas", "qpeach", "progress", "raw", "log",
                             "resume", "jobs", "reducer", "code_id", "reducer_id", "on_event",
                             NULL};
    const char *self = NULL, *code_id = NULL, *red_id = NULL;
    PyObject *spec, *code = Py_None, *rcode = Py_None, *progress = Py_None, *out = NULL;
    PyObject *on_event = Py_None;
    int pandas = 0, raw = 0, log = 0, resume = 1, jobs = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OpzOpppiOzzO", kwlist, &spec, &code, &pandas,
                                     &self, &progress, &raw, &log, &resume, &jobs, &rcode,
                                     &code_id, &red_id, &on_event))
        return NULL;
    char err[2048] = "";
    qp_run_error error;
    qp_job *job = NULL;
    qp_value *fn = NULL, *red = NULL, *merged = NULL;
    progress_ctx ctx = { .cb = progress, .on_event = on_event };
    FILE *sink = NULL;
    if (PyDict_Check(spec)) {
        if (job_from_dict(spec, &job)) return NULL;
    } else {
        PyObject *path = NULL;
        if (!PyUnicode_FSConverter(spec, &path)) return NULL;
        int rc = qp_job_load(PyBytes_AS_STRING(path), &job, err, sizeof err);
        Py_DECREF(path);
        if (rc) return raise_code(rc, err);
    }
    int rc;
    if (code != Py_None && !(fn = code_to_q(code))) goto done;
    if (rcode != Py_None && !(red = code_to_q(rcode))) goto done;
    if (!log && !(sink = fopen("/dev/null", "w"))) { PyErr_SetFromErrno(PyExc_OSError); goto done; }
    qp_run_opts o = {
        .resume = resume, .log = log ? QP_LOG_LINES : QP_LOG_QUIET, .jobs = jobs,
        .self = self, .out = stdout, .log_to = log ? stderr : sink, .fn_code = fn,
        .reducer_code = red,
        .fn_pandas = pandas, .merged = &merged, .error = &error,
        .progress_cb = progress != Py_None ? progress_cb : NULL, .progress_data = &ctx,
        .fn_id = code_id, .reducer_id = red_id,
        .event_cb = on_event != Py_None ? event_cb : NULL, .event_data = &ctx,
    };
    Py_BEGIN_ALLOW_THREADS
    rc = qp_run(job, &o);
    Py_END_ALLOW_THREADS
    if (ctx.et) {                       /* the callback's own exception wins */
        PyErr_Restore(ctx.et, ctx.ev, ctx.etb);
        goto done;
    }
    PyObject *value = Py_None, *why = rc == QP_RUN_OK ? Py_NewRef(Py_None) : run_error_to_py(&error);
    if (!why) goto done;
    if (merged && !(value = merged_to_py(merged, raw, pandas ? QP_PY_PANDAS : 0))) {
        Py_DECREF(why);
        goto done;
    }
    if (!merged) Py_INCREF(value);
    out = Py_BuildValue("(iNN)", rc, value, why);
done:
    if (sink) fclose(sink);
    qp_unref(merged);
    qp_unref(fn);
    qp_unref(red);
    qp_job_free(job);
    return out;
}

/* sibling_modules(path) -> {name: source}: the modules the Python module
 * file at path imports from its folder (qp_job_modules), what goes with a
 * function in .qp.def's modules option. OSError/ValueError on a file
 * that cannot be read or too many. */
static PyObject *mod_sibling_modules(PyObject *Py_UNUSED(m), PyObject *arg)
{
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path)) return NULL;
    char err[1024] = "";
    qp_value *d = NULL;
    int rc = qp_job_modules(PyBytes_AS_STRING(path), &d, err, sizeof err);
    Py_DECREF(path);
    if (rc) {
        PyErr_SetString(rc == QP_ENOMEM ? PyExc_MemoryError
                        : rc == QP_EARG ? PyExc_ValueError : PyExc_OSError, err);
        return NULL;
    }
    PyObject *out = qp_py_from_q(d, 0);
    qp_unref(d);
    return out;
}

static PyMethodDef mod_methods[] = {
    {"dumps", mod_dumps, METH_O, "dumps(obj) -> bytes: a kdb+ IPC message."},
    {"loads", (PyCFunction)(void (*)(void))mod_loads, METH_VARARGS | METH_KEYWORDS,
     "loads(data, pandas=False) -> obj: decode a kdb+ IPC message."},
    {"run", (PyCFunction)(void (*)(void))mod_run, METH_VARARGS | METH_KEYWORDS,
     "run(job, code=None, pandas=False, qpeach=None, progress=None, raw=False, log=False, "
     "resume=True, jobs=0, reducer=None, code_id=None, reducer_id=None, on_event=None) -> "
     "(exit code, merged value or None, None or why it "
     "failed: a dict of qp_run_error's fields): "
     "the scheduler (qp_run) on a job file or a dict of sections; see qpeach.run."},
    {"sibling_modules", mod_sibling_modules, METH_O,
     "sibling_modules(path) -> {module name: source}: the modules the module file at path "
     "imports from its folder (what goes with a function to a server)."},
    {"fn_name", mod_fn_name, METH_O,
     "fn_name(name) -> name as a job's function name may spell it (qp_job_fn_name)."},
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
    if (PyType_Ready(&ConnType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Connection", (PyObject *)&ConnType) < 0) {
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
