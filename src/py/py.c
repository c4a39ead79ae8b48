/* src/py/py.c - the embedded interpreter: start-up on the main thread, the
 * registry of functions (.qp.import / .qp.def / .qp.call), Python
 * exceptions as q errors, and the per-call timeout.
 *
 * Namespaces: every function gets its own globals dict, seeded with the
 * imported libraries (and kept in step by later imports), so two functions
 * never share module-level names by accident; redefining a name replaces
 * the function and its namespace.
 *
 * Timeout: a timer thread watches the call in progress. When it runs past
 * its deadline the timer trips a Python signal handler for SIGUSR2
 * (PyErr_SetInterruptEx, for pure-Python loops) and sends SIGUSR2 to the
 * main thread (so a blocking call such as time.sleep returns EINTR and
 * runs the handler). The handler raises qpeach.Timeout, a BaseException
 * (an `except Exception:` in user code does not swallow it), and the timer
 * fires again every 100 ms until the call returns. C code that never
 * checks for signals cannot be interrupted; the server survives the rest.
 *
 * Cancellation takes the same road: when the client of the running call
 * leaves (qp_server_cancelled), the loop's on_cancel callback has the timer
 * interrupt the main thread at once and every 100 ms after, and the
 * handler raises qpeach.Cancelled (a Timeout) instead.
 */
#define QP_PY_IMPORT_ARRAY
#include "py_int.h"

#include <errno.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QP_TIMEOUT_SIGNAL SIGUSR2

static bool ready;
static PyObject *helpers;      /* dict: the helper functions below */
static PyObject *libs;         /* dict alias -> module */
static PyObject *funcs;        /* dict name -> (function, namespace, flags, id, opt flags):
                                * id and opt flags let `reuse` see an identical definition */
static PyObject *timeout_exc;  /* qpeach.Timeout */
static PyObject *cancel_exc;   /* qpeach.Cancelled, a Timeout */

/* Helpers easier to write in Python than in C; none is on the call path.
 * format_exc's text is part of the .qp contract (docs/ARCHITECTURE.md,
 * "Error rules"): qp_remote_error_parse (sched/qpmsg.c) reads it. */
static const char helper_src[] =
    "import ast, linecache, sys, textwrap, traceback, types\n"
    "class SymbolCodes:\n"
    "    # A kdb+ enumerated symbol column as it is stored (symbols = codes):\n"
    "    # codes, a read-only int64 array viewing the column's indices, into\n"
    "    # categories, the enumeration's domain as an array of str.\n"
    "    # np.asarray() gives the strs; no pandas is imported.\n"
    "    __slots__ = ('codes', 'categories')\n"
    "    def __init__(self, codes, categories):\n"
    "        self.codes, self.categories = codes, categories\n"
    "    def __len__(self):\n"
    "        return len(self.codes)\n"
    "    def __getitem__(self, i):\n"
    "        c = self.codes[i]\n"
    "        return self.categories[c] if c.ndim == 0 else SymbolCodes(c, self.categories)\n"
    "    def __array__(self, dtype=None):\n"
    "        c = self.codes\n"
    "        a = self.categories[c]\n"
    "        if len(c) and c.min() < 0:\n"
    "            a = a.copy()\n"
    "            a[c < 0] = ''\n"
    "        return a if dtype is None else a.astype(dtype)\n"
    "    def __repr__(self):\n"
    "        return 'SymbolCodes(%d rows, %d names)' % (len(self.codes), len(self.categories))\n"
    "compiled = {}\n"
    "def compile_source(name, src, ns):\n"
    "    # the code objects of the last 64 definitions: a kept worker's next\n"
    "    # run defines the same code again (.qp.reset[]), in a new namespace\n"
    "    key = (name, src)\n"
    "    hit = compiled.pop(key, None)\n"
    "    if hit is None:\n"
    "        src = textwrap.dedent(src)\n"
    "        fn = '<qpeach:%s>' % name\n"
    "        tree = ast.parse(src, fn)\n"
    "        defs = []\n"
    "        for node in tree.body:\n"
    "            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):\n"
    "                node.decorator_list = []\n"
    "                if not isinstance(node, ast.ClassDef):\n"
    "                    defs.append(node.name)\n"
    "        hit = (compile(tree, fn, 'exec'), defs, fn, src)\n"
    "    compiled[key] = hit\n"
    "    if len(compiled) > 64:\n"
    "        del compiled[next(iter(compiled))]\n"
    "    code, defs, fn, src = hit\n"
    "    linecache.cache[fn] = (len(src), None, src.splitlines(True), fn)\n"
    "    exec(code, ns)\n"
    "    f = ns.get(name)\n"
    "    if not callable(f) and defs:\n"
    "        f = ns[defs[-1]]\n"
    "    if not callable(f):\n"
    "        raise NameError('qpeach: the code for %r defines no function' % name)\n"
    "    return f\n"
    "def load_dill(name, data, ns):\n"
    "    import dill\n"
    "    f = dill.loads(data)\n"
    "    if isinstance(f, types.FunctionType):\n"
    "        g = f.__globals__\n"
    "        if g is not sys.modules['__main__'].__dict__:\n"
    "            for k, v in g.items():\n"
    "                ns.setdefault(k, v)\n"
    "        nf = types.FunctionType(f.__code__, ns, f.__name__, f.__defaults__, f.__closure__)\n"
    "        nf.__kwdefaults__ = f.__kwdefaults__\n"
    "        nf.__annotations__ = dict(f.__annotations__)\n"
    "        nf.__dict__.update(f.__dict__)\n"
    "        f = nf\n"
    "    if not callable(f):\n"
    "        raise TypeError('qpeach: dill bytes for %r hold a %s, not a function' % (name, type(f).__name__))\n"
    "    return f\n"
    "def wants_pandas(f):\n"
    "    ann = getattr(f, '__annotations__', None) or {}\n"
    "    for k, a in ann.items():\n"
    "        s = a if isinstance(a, str) else getattr(a, '__name__', '')\n"
    "        if k != 'return' and 'DataFrame' in s:\n"
    "            return True\n"
    "    return False\n"
    "def format_exc(t, v, tb):\n"
    "    while tb is not None and tb.tb_frame.f_code.co_filename == '<qpeach entry>':\n"
    "        tb = tb.tb_next    # the client's wrapper of the user's function\n"
    "    head = ''.join(traceback.format_exception_only(t, v)).strip()\n"
    "    frames = ''.join(traceback.format_tb(tb, limit=-3)) if tb and not issubclass(t, SyntaxError) else ''\n"
    "    return head + ('\\nTraceback (last frames):\\n' + frames.rstrip() if frames else '')\n";

/* ---- timeout ---- */

static pthread_t main_thread;
static pthread_t timer_thread;
static bool timer_started;
static pthread_mutex_t tm_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tm_cv = PTHREAD_COND_INITIALIZER;
static int tm_ms;                      /* the timeout; 0: none */
static int64_t tm_deadline;            /* ns, CLOCK_MONOTONIC; 0: no call armed */
static uint64_t tm_seq;                /* call being watched */
static atomic_uint_fast64_t tm_fired;  /* call that ran out of time */
static atomic_uint_fast64_t tm_active; /* call in progress (0: none) */
static bool tm_stop;
static const char *tm_name;            /* function of the call in progress */
static int64_t tm_kick;                /* ns: interrupt a cancelled call then; 0: none */
static qp_server *tm_server;           /* whose calls are cancelled (qp__cancel_init) */

static bool cancelled(void) { return tm_server && qp_server_cancelled(tm_server); }

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Trips the Python-level handler and wakes the main thread from a
 * blocking call (EINTR). */
static void interrupt_main(void)
{
    PyErr_SetInterruptEx(QP_TIMEOUT_SIGNAL);   /* async-signal-safe, no GIL */
    pthread_kill(main_thread, QP_TIMEOUT_SIGNAL);
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&tm_mu);
    while (!tm_stop) {
        int64_t next = tm_deadline && (!tm_kick || tm_deadline < tm_kick) ? tm_deadline : tm_kick;
        if (!next) {
            pthread_cond_wait(&tm_cv, &tm_mu);
            continue;
        }
        int64_t now = now_ns();
        if (tm_kick && now >= tm_kick) {     /* again until it returns */
            tm_kick = cancelled() ? now + 100000000 : 0;
            if (tm_kick) interrupt_main();
        }
        if (tm_deadline && now >= tm_deadline) {
            atomic_store(&tm_fired, tm_seq);
            interrupt_main();
            tm_deadline = now + 100000000;             /* again until it returns */
        }
        if (now >= next) continue;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t wait = next - now;
        until.tv_sec += wait / 1000000000;
        until.tv_nsec += wait % 1000000000;
        if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
        pthread_cond_timedwait(&tm_cv, &tm_mu, &until);
    }
    pthread_mutex_unlock(&tm_mu);
    return NULL;
}

/* Arms the timer for a call on the main thread; returns its sequence. */
static uint64_t timeout_begin(const char *name)
{
    pthread_mutex_lock(&tm_mu);
    uint64_t seq = ++tm_seq;
    tm_name = name;
    atomic_store(&tm_active, seq);
    if (tm_ms > 0 && pthread_equal(pthread_self(), main_thread)) {
        tm_deadline = now_ns() + (int64_t)tm_ms * 1000000;
        pthread_cond_signal(&tm_cv);
    }
    pthread_mutex_unlock(&tm_mu);
    return seq;
}

static void timeout_end(void)
{
    pthread_mutex_lock(&tm_mu);
    tm_deadline = 0;
    tm_kick = 0;
    atomic_store(&tm_active, 0);
    pthread_mutex_unlock(&tm_mu);
}

int qp_py_set_timeout(int ms)
{
    pthread_mutex_lock(&tm_mu);
    int old = tm_ms;
    tm_ms = ms < 0 ? 0 : ms;
    pthread_mutex_unlock(&tm_mu);
    return old;
}

/* The loop's on_cancel: the running call's client left. The Python call
 * in progress, if any, is interrupted now (one that starts later sees
 * cancelled() first: qp__call_timed). */
static void cancel_wake(void *data)
{
    (void)data;
    pthread_mutex_lock(&tm_mu);
    if (atomic_load(&tm_active)) {
        tm_kick = now_ns();
        pthread_cond_signal(&tm_cv);
    }
    pthread_mutex_unlock(&tm_mu);
}

void qp__cancel_init(qp_server *s)
{
    tm_server = s;
    if (s) qp_server_on_cancel(s, cancel_wake, NULL);
}

static PyObject *raise_cancelled(void)
{
    PyErr_SetString(cancel_exc, "call cancelled: its client closed the connection (it timed out "
                    "or was interrupted)");
    return NULL;
}

/* The Python-level SIGUSR2 handler: raises only for the call that was
 * cancelled or ran out of time, so a late signal never hits the next one. */
static PyObject *on_timeout_signal(PyObject *self, PyObject *args)
{
    (void)self; (void)args;
    uint64_t active = atomic_load(&tm_active);
    if (active && cancelled()) return raise_cancelled();
    if (active && atomic_load(&tm_fired) == active) {
        PyErr_Format(timeout_exc, "call exceeded the timeout of %d ms", tm_ms);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef timeout_def = {"qpeach_timeout", on_timeout_signal, METH_VARARGS, NULL};

static int install_timeout(void)
{
    PyObject *h = PyCFunction_New(&timeout_def, NULL);
    PyObject *sig = h ? PyImport_ImportModule("signal") : NULL;
    PyObject *r = sig ? PyObject_CallMethod(sig, "signal", "iO", QP_TIMEOUT_SIGNAL, h) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(sig);
    Py_XDECREF(h);
    if (!r) return -1;
    main_thread = pthread_self();
    if (!timer_started) {
        if (pthread_create(&timer_thread, NULL, timer_main, NULL) != 0) return -1;
        timer_started = true;
    }
    return 0;
}

/* ---- lifecycle ---- */

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer: CPython and numpy keep memory to the end of the process
 * by design (no Py_Finalize in the server, and even that frees only part of
 * it). Leaks whose stack is inside them are theirs; ours still show. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libpython3.11\nleak:_multiarray_umath\nleak:_umath_linalg\n"
           "leak:numpy/random\nleak:_pickle\n";
}
#endif

static int fail_msg(char *err, size_t errlen, const char *what)
{
    if (PyErr_Occurred()) {
        qp_value *e = qp_py_error();
        snprintf(err, errlen, "python: %s: %s", what, e ? e->s : "?");
        qp_unref(e);
    } else {
        snprintf(err, errlen, "python: %s", what);
    }
    return QP_EPYTHON;
}

/* sys.path additions, isolated mode ignoring PYTHONPATH: the entries of
 * QPEACH_PYTHONPATH, then the qpeach package shipped beside the binary
 * (python/ in the source tree: build/qpeach or build/asan/qpeach), so that
 * libraries={'kx': 'qpeach'} works on the server as pykx does. */
static int add_paths(void)
{
    PyObject *path = PySys_GetObject("path");   /* borrowed */
    if (!path) return -1;
    const char *env = getenv("QPEACH_PYTHONPATH");
    if (env && *env) {
        char *dup = strdup(env), *save = NULL;
        int pos = 0;
        for (char *d = dup ? strtok_r(dup, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
            PyObject *u = PyUnicode_DecodeFSDefault(d);
            if (!u || PyList_Insert(path, pos++, u) < 0) { Py_XDECREF(u); free(dup); return -1; }
            Py_DECREF(u);
        }
        free(dup);
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 64);
    if (n <= 0) return 0;
    exe[n] = 0;
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) break;
        *slash = 0;
        char cand[4200];
        snprintf(cand, sizeof cand, "%s/python/qpeach/__init__.py", exe);
        if (access(cand, R_OK) == 0) {
            snprintf(cand, sizeof cand, "%s/python", exe);
            PyObject *u = PyUnicode_DecodeFSDefault(cand);
            int rc = u ? PyList_Append(path, u) : -1;
            Py_XDECREF(u);
            return rc;
        }
    }
    return 0;
}

/* A task's numpy temporaries (a few arrays of 10 MB for 1.25M rows) are
 * freed at its end and allocated again by the next task. glibc gives freed
 * heap back to the kernel once its top exceeds the trim threshold (by
 * default twice the largest block freed, so about one task's worth), and
 * each task then paid ~1,700 page faults: a quarter of a VWAP task's time
 * (bench/bench_sched.py (a)). Keep up to 64 MB of free heap per arena
 * instead, and blocks up to 32 MB (glibc's own dynamic ceiling) on the
 * heap; only what a task's peak already needed is retained. A user's own
 * malloc settings (environment) win. */
static void tune_malloc(void)
{
    if (getenv("GLIBC_TUNABLES") || getenv("MALLOC_TRIM_THRESHOLD_") ||
        getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TOP_PAD_"))
        return;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

int qp_py_conv_init(void)
{
    if (_import_array() < 0) return -1;       /* sets ImportError */
    if (qp__conv_init() < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ImportError, "qpeach: numpy dtype setup failed");
        return -1;
    }
    return 0;
}

int qp_py_init(char *err, size_t errlen)
{
    if (ready) return 0;
    tune_malloc();
    PyConfig c;
    /* Isolated: PYTHONPATH/PYTHONHOME from a pyenv shell are ignored, and
     * Debian's interpreter finds its own prefix from its program name. */
    PyConfig_InitIsolatedConfig(&c);
    c.site_import = 1;
    char *argv[] = {"qpeach", NULL};
    PyStatus st = PyConfig_SetBytesString(&c, &c.program_name, "/usr/bin/python3");
    if (!PyStatus_Exception(st)) st = PyConfig_SetBytesArgv(&c, 1, argv);
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_Exception(st)) {
        snprintf(err, errlen, "python: cannot start: %s", st.err_msg ? st.err_msg : "?");
        return QP_EPYTHON;
    }
    if (add_paths() < 0) return fail_msg(err, errlen, "sys.path");
    if (_import_array() < 0) return fail_msg(err, errlen, "cannot import numpy");
    if (qp__conv_init() < 0) return fail_msg(err, errlen, "numpy dtypes");
    helpers = PyDict_New();
    libs = PyDict_New();
    funcs = PyDict_New();
    if (!helpers || !libs || !funcs) return fail_msg(err, errlen, "out of memory");
    PyDict_SetItemString(helpers, "__builtins__", PyEval_GetBuiltins());
    PyObject *r = PyRun_String(helper_src, Py_file_input, helpers, helpers);
    if (!r) return fail_msg(err, errlen, "helpers");
    Py_DECREF(r);
    timeout_exc = PyErr_NewExceptionWithDoc("qpeach.Timeout",
        "A call ran past the server's timeout.", PyExc_BaseException, NULL);
    if (!timeout_exc) return fail_msg(err, errlen, "Timeout class");
    cancel_exc = PyErr_NewExceptionWithDoc("qpeach.Cancelled",
        "The client of a call closed its connection (a timeout, Ctrl-C): the call stops.",
        timeout_exc, NULL);
    if (!cancel_exc) return fail_msg(err, errlen, "Cancelled class");
    /* `import qpeach` in a function finds these classes as qpeach.Timeout
     * and qpeach.Cancelled (python/qpeach/errors.py imports them from here
     * when they exist). */
    PyObject *wm = PyImport_AddModule("_qpeach_worker");     /* borrowed */
    if (!wm || PyModule_AddObjectRef(wm, "Timeout", timeout_exc) < 0 ||
        PyModule_AddObjectRef(wm, "Cancelled", cancel_exc) < 0)
        return fail_msg(err, errlen, "_qpeach_worker module");
    PyObject *codes_cls = PyDict_GetItemString(helpers, "SymbolCodes");    /* borrowed */
    if (!codes_cls || PyModule_AddObjectRef(wm, "SymbolCodes", codes_cls) < 0
        || qp__symcat_codes_class(codes_cls) < 0)
        return fail_msg(err, errlen, "SymbolCodes class");
    if (install_timeout() < 0) return fail_msg(err, errlen, "timeout handler");
    ready = true;
    return 0;
}

bool qp_py_ready(void) { return ready; }

void qp_py_fini(void)
{
    if (!ready) return;
    pthread_mutex_lock(&tm_mu);
    tm_stop = true;
    pthread_cond_signal(&tm_cv);
    pthread_mutex_unlock(&tm_mu);
    if (timer_started) pthread_join(timer_thread, NULL);
    timer_started = false;
    tm_stop = false;
    Py_CLEAR(helpers);
    Py_CLEAR(libs);
    Py_CLEAR(funcs);
    Py_CLEAR(timeout_exc);
    Py_CLEAR(cancel_exc);
    qp__pykx_fini();
    qp__select_fini();
    qp__modules_fini();
    qp__conv_fini();
    Py_FinalizeEx();
    ready = false;
}

/* ---- exceptions ---- */

qp_value *qp_py_error(void)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (!t) return qp_error("python: unknown error");
    PyErr_NormalizeException(&t, &v, &tb);
    qp_value *e = NULL;
    if (cancel_exc && PyErr_GivenExceptionMatches(t, cancel_exc)) {
        e = qp_error("cancelled: %s: its client closed the connection", tm_name ? tm_name : "?");
        goto done;
    }
    if (timeout_exc && PyErr_GivenExceptionMatches(t, timeout_exc)) {
        e = qp_error("timeout: %s: call exceeded the timeout of %d ms", tm_name ? tm_name : "?", tm_ms);
        goto done;
    }
    PyObject *fmt = helpers ? PyDict_GetItemString(helpers, "format_exc") : NULL;
    PyObject *s = fmt ? PyObject_CallFunctionObjArgs(fmt, t, v ? v : Py_None, tb ? tb : Py_None, NULL) : NULL;
    const char *text = s && PyUnicode_Check(s) ? PyUnicode_AsUTF8(s) : NULL;
    if (text) {
        e = qp_error("%s", text);
    } else {   /* formatting failed: the type name at least */
        PyErr_Clear();
        e = qp_error("%s", ((PyTypeObject *)t)->tp_name);
    }
    Py_XDECREF(s);
done:
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return e;
}

/* ---- import ---- */

int qp__lib_set(const char *alias, PyObject *o)
{
    if (!libs) return -1;
    int rc = PyDict_SetItemString(libs, alias, o);
    Py_ssize_t pos = 0;
    PyObject *k, *entry;
    while (rc == 0 && PyDict_Next(funcs, &pos, &k, &entry))
        rc = PyDict_SetItemString(PyTuple_GET_ITEM(entry, 1), alias, o);
    return rc;
}

static qp_value *import_one(const char *alias, const char *mod)
{
    PyObject *m = PyImport_ImportModule(mod);
    if (!m) {
        qp_value *e = qp_py_error();
        qp_value *r = qp_error("qp.import: cannot import module '%s' (alias '%s'): %s", mod, alias,
                               e ? e->s : "?");
        qp_unref(e);
        return r;
    }
    int rc = qp__lib_set(alias, m);
    Py_DECREF(m);
    return rc < 0 ? qp_py_error() : NULL;
}

qp_value *qp_py_import(const qp_value *x)
{
    if (!ready) return qp_error("qp.import: python is not running");
    const qp_value *keys = x, *vals = x;
    if (qp_is_dict(x)) { keys = qp_dict_keys(x); vals = qp_dict_values(x); }
    int64_t n = keys->type == -QP_SYMBOL ? 1 : qp_count(keys);
    if ((keys->type != QP_SYMBOL && keys->type != QP_LIST && keys->type != -QP_SYMBOL) ||
        (vals->type != QP_SYMBOL && vals->type != QP_LIST && vals->type != -QP_SYMBOL) ||
        qp_count(vals) != n)
        return qp_error("qp.import: expects a dict alias -> module name (symbols or strings)");
    qp_value *aliases = qp_vector(QP_SYMBOL, n);
    if (!aliases) return NULL;
    for (int64_t i = 0; i < n; i++) {
        qp_value *k = keys->type == -QP_SYMBOL ? qp_ref((qp_value *)keys) : qp_item(keys, i);
        qp_value *v = vals->type == -QP_SYMBOL ? qp_ref((qp_value *)vals) : qp_item(vals, i);
        const char *a = k ? qp_name_of(k) : NULL, *m = v ? qp_name_of(v) : NULL;
        qp_unref(k);
        qp_unref(v);
        if (!a || !m || !*a || !*m) {
            qp_unref(aliases);
            return qp_error("qp.import: alias and module must be symbols or strings");
        }
        qp_value *e = import_one(a, m);
        if (e) { qp_unref(aliases); return e; }
        qp_S(aliases)[i] = a;
    }
    return aliases;
}

/* ---- def ---- */

static PyObject *lookup(const char *name)   /* borrowed entry or NULL */
{
    return funcs ? PyDict_GetItemString(funcs, name) : NULL;
}


qp_value *qp__sha256_hex(const void *p, size_t n)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(p, n, md, &len, EVP_sha256(), NULL)) return qp_error("qp.def: sha256 failed");
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return qp_string(hex, 2 * len);
}

/* The value of option key (a new reference), or NULL when not given. */
static qp_value *opt_item(const qp_value *opts, const char *key)
{
    if (!opts || !qp_is_dict(opts) || qp_dict_keys(opts)->type != QP_SYMBOL) return NULL;
    const qp_value *k = qp_dict_keys(opts), *v = qp_dict_values(opts);
    const char *s = qp_sym_intern(key, strlen(key));
    for (int64_t i = 0; i < k->v.n; i++)
        if (qp_S(k)[i] == s) return qp_item(v, i);
    return NULL;
}

static bool opt_flag(const qp_value *opts, const char *key)
{
    qp_value *it = opt_item(opts, key);
    bool on = it && ((it->type == -QP_BOOL && it->g) || (it->type == -QP_LONG && it->j) ||
                     (it->type == -QP_INT && it->i));
    qp_unref(it);
    return on;
}

qp_value *qp_py_def(const char *name, const qp_value *code, const qp_value *opts)
{
    if (!ready) return qp_error("qp.def: python is not running");
    if (!name || !*name) return qp_error("qp.def: the name must be a symbol or string");
    if (code->type != QP_CHAR && code->type != QP_BYTE)
        return qp_error("qp.def: code must be source text (string) or dill bytes (byte vector), not %s",
                        qp_type_name(code->type));
    qp_value *id = qp__sha256_hex(code->v.data, (size_t)code->v.n);
    if (!id || qp_is_error(id)) return id;
    int optflags = (opt_flag(opts, "pandas") ? QP_PY_PANDAS : 0) |
                   (opt_flag(opts, "categorical") ? QP_PY_CATEGORICAL : 0) |
                   (opt_flag(opts, "codes") ? QP_PY_CODES : 0);
    qp_value *mods = opt_item(opts, "modules"), *key = qp__def_key(code, mods, id);
    if (opt_flag(opts, "reuse")) {
        /* The same name from the same code, modules and options is kept
         * as it is, module state included: a scheduler re-sending its job's
         * function to a resident server pays a hash, not a compile and a
         * module run. Later .qp.import aliases reach it anyway (lib_set). */
        PyObject *old = lookup(name);
        if (old && PyTuple_GET_SIZE(old) == 5 &&
            PyLong_AsLong(PyTuple_GET_ITEM(old, 4)) == optflags &&
            PyBytes_GET_SIZE(PyTuple_GET_ITEM(old, 3)) == key->v.n &&
            !memcmp(PyBytes_AS_STRING(PyTuple_GET_ITEM(old, 3)), key->v.data, (size_t)key->v.n)) {
            qp_unref(mods);
            qp_unref(key);
            return id;
        }
    }
    PyObject *ns = PyDict_Copy(libs), *f = NULL, *entry = NULL;
    PyObject *src = NULL, *pname = PyUnicode_FromString(name);
    if (!ns || !pname || (mods && qp__modules_add(mods) < 0)) goto fail;
    if (PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0 ||
        PyDict_SetItemString(ns, "__name__", pname) < 0)
        goto fail;
    if (code->type == QP_CHAR) {
        src = PyUnicode_DecodeUTF8(code->v.data, (Py_ssize_t)code->v.n, "surrogateescape");
        f = src ? PyObject_CallFunctionObjArgs(PyDict_GetItemString(helpers, "compile_source"),
                                               pname, src, ns, NULL) : NULL;
    } else {
        src = PyBytes_FromStringAndSize(code->v.data, (Py_ssize_t)code->v.n);
        f = src ? PyObject_CallFunctionObjArgs(PyDict_GetItemString(helpers, "load_dill"),
                                               pname, src, ns, NULL) : NULL;
    }
    if (!f) goto fail;
    PyObject *wp = PyObject_CallFunctionObjArgs(PyDict_GetItemString(helpers, "wants_pandas"), f, NULL);
    if (!wp) goto fail;
    int flags = (PyObject_IsTrue(wp) == 1 ? QP_PY_PANDAS : 0) | optflags;
    Py_DECREF(wp);
    entry = Py_BuildValue("(OOiy#i)", f, ns, flags, (const char *)key->v.data,
                          (Py_ssize_t)key->v.n, optflags);
    if (!entry || PyDict_SetItem(funcs, pname, entry) < 0) goto fail;
    qp_unref(mods);
    qp_unref(key);
    Py_DECREF(entry);
    Py_DECREF(f);
    Py_DECREF(src);
    Py_DECREF(ns);
    Py_DECREF(pname);
    return id;
fail:;
    qp_value *e = qp_py_error();
    qp_value *r = qp_error("qp.def: %s: %s", name, e ? e->s : "?");
    qp_unref(e);
    qp_unref(id);
    qp_unref(mods);
    qp_unref(key);
    Py_XDECREF(entry);
    Py_XDECREF(f);
    Py_XDECREF(src);
    Py_XDECREF(ns);
    Py_XDECREF(pname);
    return r;
}

void qp_py_forget(void)
{
    if (ready) PyDict_Clear(funcs);
}

/* ---- call ---- */

int qp__func_flags(const char *name, int *flags)
{
    PyObject *e = lookup(name);
    if (!e) return QP_EARG;
    *flags = (int)PyLong_AsLong(PyTuple_GET_ITEM(e, 2));
    return 0;
}

PyObject *qp__call_timed(const char *name, PyObject *f, PyObject *args, PyObject *kwargs)
{
    bool on_main = pthread_equal(pthread_self(), main_thread);
    if (on_main) timeout_begin(name);
    if (on_main && cancelled()) {   /* cancelled before it started: cancel_wake found no call */
        timeout_end();
        return raise_cancelled();
    }
    PyObject *r = PyObject_Call(f, args, kwargs);
    if (on_main) timeout_end();
    return r;
}

qp_value *qp__call_obj(const char *name, PyObject *args, PyObject *kwargs)
{
    PyObject *e = lookup(name);
    if (!e) return qp_error("qp.call: no function '%s' (define it with .qp.def)", name);
    PyObject *f = PyTuple_GET_ITEM(e, 0);
    Py_INCREF(f);
    PyObject *r = qp__call_timed(name, f, args, kwargs);
    Py_DECREF(f);
    if (!r) return qp_py_error();
    qp_value *v = qp_py_to_q(r);
    Py_DECREF(r);
    return v;
}

/* Arguments of a call as a tuple: q's `.` semantics (items of a list or
 * vector are the arguments; (::) and () are none; an atom is one). */
static PyObject *args_tuple(const qp_value *args, int flags)
{
    if (!args || (args->type == QP_UNARY && args->v.n == 1 && ((uint8_t *)args->v.data)[0] == 0))
        return PyTuple_New(0);
    if (args->type != QP_LIST && !qp_is_vector(args)) {
        PyObject *a = qp_py_from_q(args, flags);
        PyObject *t = a ? PyTuple_Pack(1, a) : NULL;
        Py_XDECREF(a);
        return t;
    }
    PyObject *t = PyTuple_New((Py_ssize_t)args->v.n);
    for (int64_t i = 0; t && i < args->v.n; i++) {
        PyObject *a;
        if (args->type == QP_LIST) {
            a = qp_py_from_q(qp_K(args)[i], flags);
        } else {
            qp_value *it = qp_item(args, i);
            a = it ? qp_py_from_q(it, flags) : PyErr_NoMemory();
            qp_unref(it);
        }
        if (!a) { Py_CLEAR(t); break; }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, a);
    }
    return t;
}

static PyObject *kwargs_dict(const qp_value *kw, int flags)
{
    if (!kw) return NULL;
    if (!qp_is_dict(kw) || qp_dict_keys(kw)->type != QP_SYMBOL) {
        PyErr_SetString(PyExc_TypeError, "qpeach: keyword arguments must be a dict with symbol keys");
        return NULL;
    }
    return qp_py_from_q(kw, flags);
}

qp_value *qp_py_call(const char *name, const qp_value *args, const qp_value *kwargs)
{
    if (!ready) return qp_error("qp.call: python is not running");
    int flags = 0;
    if (qp__func_flags(name, &flags) < 0)
        return qp_error("qp.call: no function '%s' (define it with .qp.def)", name);
    PyObject *t = args_tuple(args, flags);
    PyObject *kw = t && kwargs ? kwargs_dict(kwargs, flags) : NULL;
    if (!t || (kwargs && !kw)) {
        Py_XDECREF(t);
        qp_value *e = qp_py_error();
        qp_value *r = qp_error("qp.call: %s: arguments: %s", name, e ? e->s : "?");
        qp_unref(e);
        return r;
    }
    qp_value *r = qp__call_obj(name, t, kw);
    Py_DECREF(t);
    Py_XDECREF(kw);
    return r;
}
