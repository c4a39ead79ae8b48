/* _qpeach_conn.c - the extension's kdb+ IPC client connection
 * (qpeach._qpeach.Connection over include/qpeach/conn.h). Memory and
 * thread rules: _qpeach_int.h.
 */
#include "_qpeach_int.h"
#include <pythread.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <time.h>

#include "qpeach/conn.h"
#include "qpeach/py.h"

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
        qp__ext_raise_code(r, msg);
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
    qp_value *msg = qp__ext_build_call(name, args, 1);
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
            out = qp__ext_result_to_py(res, flags);
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
    qp_value *msg = qp__ext_build_call(name, args, 1);
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
            PyObject *py = qp__ext_result_to_py(v, pandas ? QP_PY_PANDAS : 0);
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

PyTypeObject qp__ext_conn_type = {
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
