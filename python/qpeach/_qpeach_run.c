/* _qpeach_run.c - the scheduler for Python (include/qpeach/sched.h):
 * qpeach.run, fanout and map run qp_run through run() here. Memory and
 * thread rules: _qpeach_int.h.
 */
#include "_qpeach_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qpeach/ipc.h"
#include "qpeach/job.h"
#include "qpeach/py.h"
#include "qpeach/sched.h"

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
    if (r < 0) return qp__ext_raise_code(r, qp_strerror(r));
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
    if (r) qp__ext_raise_code(r, err);
    else rc = 0;
done:
    PyMem_Free(kv);
    Py_DECREF(strs);
    return rc;
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
        PyObject *v = qp__ext_text_to_py(texts[i].s);
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
        if (rc) return qp__ext_raise_code(rc, err);
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

PyMethodDef qp__ext_run_methods[] = {
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
    {NULL, NULL, 0, NULL},
};
