/* src/py/qpfns.c - the `.qp` functions that run Python, registered into a
 * qp_server: import, def, call, callk, apply, load, peach, timeout,
 * pykx.libraries and pykx.call (PyKX's remote functions: pykx.c); with
 * worker processes also set, and reload when a db is mounted.
 *
 * All run on the server's main thread (QP_EXEC_MAIN), where Python lives.
 * With worker processes (-s -N), every call that changes what a worker
 * knows (import, def, load, set, timeout) is applied here first and then
 * sent to each worker, so the workers stay copies of this server. For
 * .qp.set that means replacing the server's built-in (src/server/builtins.c,
 * run on the event loop) with fn_set below, on this thread: it stores
 * the global the same way (qp_server_set) and forwards it. Servers
 * without worker processes keep the built-in.
 *
 * Peach, threads mode (-s N): items are handed to the secondary threads
 * (and this one) through qp_server_parallel; each item takes the GIL for
 * its conversion and call, so Python bytecode runs one item at a time
 * while numpy kernels that release the GIL (ufuncs, reductions, sorting on
 * large arrays) overlap across threads. bench/bench_py.py measures both.
 * Peach, processes mode (-s -N): see procs.c.
 *
 * Tables of a mounted kdb+ database (serve --db) are globals like the
 * others (qp_server_get reads them when asked for). .qp.apply and
 * qtable(name, rows) read only the partition or the rows asked for of a
 * partitioned one (qp_server_db_part, qp_kdb_rows); their symbol columns are enumerations
 * (type 20), which convert to Categoricals without building codes.
 */
#include "py_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpeach/kdb.h"
#include "qpeach/table.h"

/* The one server Python serves (see qp_py_register): qget and qtable,
 * called from Python without a server at hand, read its globals. */
static qp_server *server;
static qp_py_opts opts;

/* ---- helpers ---- */

static qp_value *arg(const qp_value *args, int i)   /* borrowed */
{
    return qp_K(args)[i];
}

static int nargs(const qp_value *args)
{
    if (args->type != QP_LIST) return 1;
    if (args->v.n == 1) {   /* f[] arrives as one (::) */
        const qp_value *a = qp_K(args)[0];
        if (a->type == QP_UNARY && a->v.n == 1 && ((uint8_t *)a->v.data)[0] == 0) return 0;
    }
    return (int)args->v.n;
}

static const char *sym_arg(const qp_value *x)
{
    if (x->type == -QP_SYMBOL) return x->s;
    if (x->type == QP_CHAR) return qp_sym_intern(x->v.data, (size_t)x->v.n);
    return NULL;
}

/* qtable(name, rows=None, pandas=False, categorical=False): a table
 * resident in this server as Python sees a table argument (zero-copy
 * column views), rows (start, end) only when given. In every function's
 * namespace, so a function run by peach can reach the table in place. */
static PyObject *py_qtable(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kws[] = {"name", "rows", "pandas", "categorical", NULL};
    const char *name;
    PyObject *rows = Py_None;
    int pandas = 0, cat = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|Opp", kws, &name, &rows, &pandas, &cat)) return NULL;
    long long a = 0, b = 0;
    if (rows != Py_None) {
        if (!PyArg_ParseTuple(rows, "LL", &a, &b)) return NULL;
        if (a < 0 || b < a) return PyErr_Format(PyExc_IndexError, "qtable: bad rows");
    }
    qp_value *t = NULL;
    /* rows of a db table: only the partitions they touch, or of a splayed
     * one views whose symbols are checked over those rows only */
    qp_value *dberr = NULL;
    qp_kdb *db = rows != Py_None ? qp_server_db_table(server, name, &dberr) : NULL;
    bool db_rows = db != NULL;
    t = dberr ? dberr : db ? qp_kdb_rows(db, name, a, b, QP_KDB_ENUMS) : qp_server_get(server, name);
    qp_kdb_close(db);
    if (t && qp_is_error(t)) {   /* a db table that cannot be read, or bad rows */
        PyErr_Format(PyExc_RuntimeError, "qtable: %s: %s", name, t->s);
        qp_unref(t);
        return NULL;
    }
    if (!t || t->type != QP_TABLE) {
        qp_unref(t);
        return PyErr_Format(PyExc_KeyError, "qtable: no table '%s' on this server", name);
    }
    /* Categoricals of a resident table: codes built once per column and
     * viewed by every call (symcat.c), whatever rows are asked for. */
    if ((pandas || cat) && qp__symcat_prime_table(t) < 0) { qp_unref(t); return NULL; }
    if (rows != Py_None && !db_rows) {
        qp_value *p = qp_table_slice(t, a, b - a);
        qp_unref(t);
        if (!p) return PyErr_NoMemory();
        t = p;
    }
    PyObject *r = qp_py_from_q(t, (pandas ? QP_PY_PANDAS : 0) | (cat ? QP_PY_CATEGORICAL : 0));
    qp_unref(t);
    return r;
}

static PyMethodDef qtable_def = {"qtable", (PyCFunction)(void (*)(void))py_qtable,
                                 METH_VARARGS | METH_KEYWORDS, "A server-resident table."};

/* qget(name): any global of this server (.qp.set, .qp.load, --load) as
 * Python sees an argument of that value; KeyError when there is none.
 * With -s -N the workers hold copies (.qp.set and .qp.load are forwarded),
 * so a function run by peach reads what the client set. */
static PyObject *py_qget(PyObject *self, PyObject *args)
{
    (void)self;
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    qp_value *v = qp_server_get(server, name);
    if (!v) return PyErr_Format(PyExc_KeyError, "qget: no global '%s' on this server", name);
    PyObject *r = qp_py_from_q(v, 0);
    qp_unref(v);
    return r;
}

static PyMethodDef qget_def = {"qget", py_qget, METH_VARARGS, "A server global."};

static void python_started(void)
{
    if (opts.timeout_ms) qp_py_set_timeout(opts.timeout_ms);
    PyMethodDef *defs[] = {&qtable_def, &qget_def};
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        /* in every .qp.def function's namespace, and in __main__, where
         * PyKX clients' functions live (pykx.c) */
        PyObject *f = PyCFunction_New(defs[i], NULL);
        if (!f || qp__lib_set(defs[i]->ml_name, f) < 0 ||
            qp__pykx_main_set(defs[i]->ml_name, f) < 0) {
            /* functions calling it fail with a NameError: say why here */
            qp_value *e = qp_py_error();
            fprintf(stderr, "qpeach serve: %s() is not available to functions: %s\n",
                    defs[i]->ml_name, e ? e->s : "out of memory");
            qp_unref(e);
        }
        Py_XDECREF(f);
    }
    /* `import pykx` without PyKX: qpeach's stand-in (a failure here only
     * means `import pykx` fails as it would anyway) */
    if (qp__pykx_init() < 0) {
        qp_value *e = qp_py_error();
        fprintf(stderr, "qpeach serve: the pykx stand-in is not available: %s\n", e ? e->s : "?");
        qp_unref(e);
    }
}

static qp_value *need_python(void)
{
    if (qp_py_ready()) {
        qp__symcat_sweep();   /* codes and indexes of tables dropped since the last call */
        qp__select_sweep();
        return NULL;
    }
    char err[512];
    if (qp_py_init(err, sizeof err) != 0) return qp_error("%s", err);
    python_started();
    return NULL;
}

/* Forwards `name args...` to the worker processes after a local success;
 * replay: a restarted worker is given it too. */
static qp_value *forward_to(qp_value *result, const char *fn, const qp_value *args, bool replay)
{
    if (!result || qp_is_error(result) || qp__procs_count() == 0) return result;
    int64_t n = args->v.n;
    qp_value *msg = qp_vector(QP_LIST, n + 1);
    if (!msg) { qp_unref(result); return NULL; }
    qp_K(msg)[0] = qp_symbol(fn);
    for (int64_t i = 0; i < n; i++) qp_K(msg)[i + 1] = qp_ref(qp_K(args)[i]);
    qp_value *e = qp__procs_broadcast(msg, replay);
    qp_unref(msg);
    if (e) { qp_unref(result); return e; }
    return result;
}

static qp_value *forward(qp_value *result, const char *fn, const qp_value *args)
{
    return forward_to(result, fn, args, true);
}

/* ---- .qp.import / .qp.def / .qp.call / .qp.callk ---- */

static qp_value *fn_import(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)data;
    qp_value *e = need_python();
    if (e) return e;
    return forward(qp_py_import(arg(args, 0)), ".qp.import", args);
}

static qp_value *fn_def(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)data;
    int n = nargs(args);
    if (n != 2 && n != 3) return qp_error("qp.def: takes [name; code] or [name; code; opts]");
    qp_value *e = need_python();
    if (e) return e;
    const char *name = sym_arg(arg(args, 0));
    if (!name) return qp_error("qp.def: the name must be a symbol or string");
    return forward(qp_py_def(name, arg(args, 1), n == 3 ? arg(args, 2) : NULL), ".qp.def", args);
}

static qp_value *fn_call(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)data;
    int n = nargs(args);
    if (n < 1 || n > 2) return qp_error("qp.call: takes [name] or [name; args]");
    qp_value *e = need_python();
    if (e) return e;
    const char *name = sym_arg(arg(args, 0));
    if (!name) return qp_error("qp.call: the name must be a symbol or string");
    return qp_py_call(name, n == 2 ? arg(args, 1) : NULL, NULL);
}

static qp_value *fn_callk(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)data;
    qp_value *e = need_python();
    if (e) return e;
    const char *name = sym_arg(arg(args, 0));
    if (!name) return qp_error("qp.callk: the name must be a symbol or string");
    return qp_py_call(name, arg(args, 1), arg(args, 2));
}

static qp_value *fn_timeout(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)data;
    const qp_value *x = arg(args, 0);
    int old;
    if (x->type == QP_UNARY) return qp_long(opts.timeout_ms);   /* .qp.timeout[] reads it */
    if (x->type != -QP_LONG && x->type != -QP_INT)
        return qp_error("qp.timeout: takes milliseconds (a long; 0: none)");
    int64_t ms = x->type == -QP_LONG ? x->j : x->i;
    if (ms < 0 || ms > 86400000) return qp_error("qp.timeout: 0..86400000 ms");
    opts.timeout_ms = (int)ms;
    old = qp_py_set_timeout((int)ms);
    return forward(qp_long(old), ".qp.timeout", args);
}

/* ---- PyKX's remote functions (pykx.c; dispatch maps PyKX's lambdas here) ---- */

static qp_value *fn_pykx_libraries(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)data;
    qp_value *e = need_python();
    if (e) return e;
    return qp__pykx_libraries(arg(args, 0), arg(args, 1));
}

static qp_value *fn_pykx_call(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)data;
    qp_value *e = need_python();
    if (e) return e;
    return qp__pykx_call(arg(args, 0), arg(args, 1), arg(args, 2), arg(args, 3));
}

/* ---- .qp.load ---- */

static qp_value *load_table(const char *name, const char *path, const char *types)
{
    qp_csv_opts co = { .types = types };
    qp_value *t = qp_table_load(path, &co);
    if (!t) return NULL;
    if (qp_is_error(t)) {
        qp_value *e = qp_error("qp.load: %s: %s", path, t->s);
        qp_unref(t);
        return e;
    }
    if (qp_server_set(server, name, t) < 0) return NULL;   /* steals t */
    return qp_symbol(name);
}

static qp_value *fn_load(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)data;
    int n = nargs(args);
    const char *name = n >= 2 ? sym_arg(arg(args, 0)) : NULL;
    const char *path = n >= 2 ? sym_arg(arg(args, 1)) : NULL;
    const char *types = n == 3 ? sym_arg(arg(args, 2)) : NULL;
    if (!name || !path || (n == 3 && !types) || n > 3)
        return qp_error("qp.load: takes [name; path] or [name; path; types] (symbols or "
                        "strings; types: q type letters of a CSV's columns, e.g. \"SFJ\")");
    if (*path == ':') path++;   /* q's file symbol `:path */
    qp_value *e = qp_server_name_taken(server, name, "qp.load");
    return e ? e : forward(load_table(name, path, types), ".qp.load", args);
}

/* ---- .qp.set (with worker processes) ---- */

static qp_value *fn_set(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    const qp_value *x = arg(args, 0);
    const char *name = x->type == -QP_CHAR ? qp_sym_intern(&x->c, 1) : sym_arg(x);
    if (!name || !*name) return qp_error("type: .qp.set takes a name (symbol or string) and a value");
    qp_value *e = qp_server_name_taken(s, name, ".qp.set");
    if (e) return e;
    if (qp_server_set(s, name, qp_ref(arg(args, 1)))) return NULL;
    return forward(qp_symbol(name), ".qp.set", args);
}

/* ---- .qp.reset ----
 * The server's globals dropped (qp_server_reset), every function and its
 * module state forgotten, the timeout the server started with: what a
 * kept worker ([workers] keep) gets before the next run's setup, so that
 * nothing one run defined reaches the next. Imported modules stay (a
 * process cannot unload them). Worker processes (-s -N) get it too, and
 * their history keeps only the imports (procs.c). */

static int base_timeout_ms;     /* --timeout, as the server started */

static qp_value *fn_reset(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    qp_value *names = qp_server_reset(s);
    if (!names) return NULL;
    qp_py_forget();
    opts.timeout_ms = base_timeout_ms;
    if (qp_py_ready()) qp_py_set_timeout(base_timeout_ms);
    return forward(names, ".qp.reset", args);
}

/* ---- .qp.reload (with worker processes and a db) ----
 * The db mounted again here, then in each worker: their own mounts notice
 * a changed root or sym, but not a table added to an existing partition,
 * which only a forced reload finds. Not replayed: a restarted worker
 * mounts the db as it is then. */

static qp_value *fn_reload(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    return forward_to(qp_server_reload(s), ".qp.reload", args, false);
}

/* ---- .qp.apply ----
 * part: (start; end) rows, or (column; value) rows (qp__select). A db
 * table is served by qp_server_db_part first, and a partitioned one by
 * (column; value) partition by partition (qp__select_parted). */

static qp_value *apply_call(const char *fn, qp_value *p);

/* (column; value) rows of a partitioned db table that qp_server_db_part
 * left (column is not the partition column): selected partition by
 * partition. NULL when name is no such table or part no such part. */
static qp_value *db_rows_where(qp_server *s, const char *name, const qp_value *part)
{
    qp_value *err = NULL, *val = NULL, *r = NULL;
    qp_kdb *db = qp_server_db_table(s, name, &err);
    const char *col;
    if (db && qp_kdb_part_column(db, name)) {
        int rc = qp_server_part_column(part, &col, &val);
        r = rc < 0 ? qp_error("wsfull") : rc ? qp__select_parted(db, name, col, val) : NULL;
        qp_unref(val);
    }
    qp_kdb_close(db);
    qp_unref(err);           /* qp_server_db_part said it already */
    return r;
}

/* fn on one part of tv (a table's name, or a table): fn's result, or an
 * error value saying why not. New reference; NULL on OOM. */
static qp_value *apply_part(qp_server *s, const char *fn, const qp_value *tv, const qp_value *part)
{
    qp_value *t = NULL, *p = NULL;
    /* a db table: one partition, or the rows asked for, read alone */
    if (tv->type == -QP_SYMBOL && qp_server_db_part(s, tv->s, part, &p)) {
        if (p && qp_is_error(p)) {
            qp_value *e = qp_error("qp.apply: %s: %s", tv->s, p->s);
            qp_unref(p);
            return e;
        }
        return p ? apply_call(fn, p) : NULL;
    }
    if (tv->type == -QP_SYMBOL && (p = db_rows_where(s, tv->s, part)) != NULL)
        return qp_is_error(p) ? p : apply_call(fn, p);
    if (tv->type == -QP_SYMBOL) {
        t = qp_server_get(s, tv->s);
        if (!t) return qp_error("qp.apply: no table '%s'", tv->s);
        if (qp_is_error(t)) return t;   /* a db table that cannot be read */
    } else {
        t = qp_ref((qp_value *)tv);
    }
    if (t->type != QP_TABLE) {
        qp_unref(t);
        return qp_error("qp.apply: '%s' is not a table", tv->type == -QP_SYMBOL ? tv->s : "argument");
    }
    /* Rows of a resident table as Categoricals: every task views the
     * column's codes, built at the first (symcat.c). Rows by (column;
     * value) are gathered copies, which no cache can serve. */
    int flags = 0;
    if (tv->type == -QP_SYMBOL && (part->type == QP_LONG || part->type == QP_INT) &&
        qp__func_flags(fn, &flags) == 0 && (flags & (QP_PY_PANDAS | QP_PY_CATEGORICAL)) &&
        qp__symcat_prime_table(t) < 0) {
        qp_unref(t);
        return qp_py_error();
    }
    p = qp__select(t, part);
    qp_unref(t);
    if (!p || qp_is_error(p)) return p;
    return apply_call(fn, p);
}

static qp_value *fn_apply(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    qp_value *e = need_python();
    if (e) return e;
    const char *fn = sym_arg(arg(args, 0));
    if (!fn) return qp_error("qp.apply: the function name must be a symbol or string");
    return apply_part(s, fn, arg(args, 1), arg(args, 2));
}

/* Calls fn with the one table p (stolen). */
static qp_value *apply_call(const char *fn, qp_value *p)
{
    qp_value *one = qp_list(1, p);
    qp_value *r = one ? qp_py_call(fn, one, NULL) : NULL;
    qp_unref(one);
    return r;
}

/* ---- .qp.peach ---- */

typedef struct peach {
    const char *fn;
    const qp_value *items;
    qp_value **out;
    int flags;
} peach;

static void peach_item(int64_t i, void *data)
{
    peach *p = data;
    if (qp_server_cancelled(server)) {   /* its client left: start no more items */
        p->out[i] = qp_error("cancelled: qp.peach: its client closed the connection");
        return;
    }
    PyGILState_STATE st = PyGILState_Ensure();
    qp_value *it = qp_item(p->items, i);
    PyObject *a = it ? qp_py_from_q(it, p->flags) : NULL;
    PyObject *t = a ? PyTuple_Pack(1, a) : NULL;
    p->out[i] = t ? qp__call_obj(p->fn, t, NULL) : qp_py_error();
    Py_XDECREF(t);
    Py_XDECREF(a);
    qp_unref(it);
    PyGILState_Release(st);
}

static qp_value *fn_peach(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    qp_value *e = need_python();
    if (e) return e;
    const char *fn = sym_arg(arg(args, 0));
    const qp_value *items = arg(args, 1);
    if (!fn) return qp_error("qp.peach: the function name must be a symbol or string");
    if (items->type != QP_LIST && !qp_is_vector(items))
        return qp_error("qp.peach: takes [name; list]");
    if (qp__procs_count() > 0) return qp__procs_peach(s, fn, items);
    peach p = {.fn = fn, .items = items};
    if (qp__func_flags(fn, &p.flags) < 0)
        return qp_error("qp.peach: no function '%s' (define it with .qp.def)", fn);
    int64_t n = items->v.n;
    qp_value *out = qp_vector(QP_LIST, n);
    if (!out) return NULL;
    p.out = qp_K(out);
    if (qp_server_secondary(s) > 0 && n > 1) {
        PyThreadState *ts = PyEval_SaveThread();   /* the items take the GIL in turn */
        qp_server_parallel(s, n, peach_item, &p);
        PyEval_RestoreThread(ts);
    } else {
        for (int64_t i = 0; i < n; i++) peach_item(i, &p);
    }
    for (int64_t i = 0; i < n; i++) {   /* q's peach signals the first error */
        if (!p.out[i] || qp_is_error(p.out[i])) {
            qp_value *err = p.out[i] ? qp_ref(p.out[i]) : NULL;
            qp_unref(out);
            return err;
        }
    }
    return qp__collapse(out);
}

/* ---- .qp.applyeach / .qp.calleach ----
 * A batch in one message: fn over each part (each item) in order, on this
 * thread, as one .qp.apply (.qp.call with one argument) each would run
 * them; a scheduler's small tasks then pay one round trip, one wake-up of
 * this thread and one response for many. An item that fails stops none
 * of the others, and the answer says item by item which failed and why:
 * (ok; r), r[i] fn's result where ok[i], else the error's text. */

typedef qp_value *(*each_fn)(int64_t i, void *data);

static qp_value *each(int64_t n, each_fn one, void *data)
{
    qp_value *ok = qp_vector(QP_BOOL, n), *r = qp_vector(QP_LIST, n);
    int64_t i = 0;
    for (; ok && r && i < n; i++) {
        qp_value *v = qp_server_cancelled(server)   /* its client left: run no more */
                          ? qp_error("cancelled: its client closed the connection")
                          : one(i, data);
        qp_value *text = v && qp_is_error(v) ? qp_cstring(v->s) : NULL;
        if (!v || (qp_is_error(v) && !text)) { qp_unref(v); break; }
        qp_G(ok)[i] = !text;
        qp_K(r)[i] = text ? text : v;
        if (text) qp_unref(v);
    }
    if (ok && r && i == n) return qp_list(2, ok, r);
    for (int64_t k = i; r && k < n; k++) qp_K(r)[k] = qp_identity();
    qp_unref(ok);
    qp_unref(r);
    return NULL;
}

typedef struct applyeach { qp_server *s; const char *fn; const qp_value *tv, *parts; } applyeach;

static qp_value *applyeach_one(int64_t i, void *data)
{
    applyeach *a = data;
    if (a->parts->type == QP_LIST) return apply_part(a->s, a->fn, a->tv, qp_K(a->parts)[i]);
    qp_value *part = qp_slice(a->parts, 2 * i, 2);
    qp_value *r = part ? apply_part(a->s, a->fn, a->tv, part) : NULL;
    qp_unref(part);
    return r;
}

static qp_value *fn_applyeach(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    qp_value *e = need_python();
    if (e) return e;
    applyeach a = {.s = s, .fn = sym_arg(arg(args, 0)), .tv = arg(args, 1), .parts = arg(args, 2)};
    if (!a.fn) return qp_error("qp.applyeach: the function name must be a symbol or string");
    const qp_value *ps = a.parts;
    if (ps->type != QP_LIST && !(ps->type == QP_LONG && ps->v.n % 2 == 0))
        return qp_error("qp.applyeach: parts are a list of parts (as .qp.apply takes them) or a "
                        "long vector of (start; end) row pairs");
    return each(ps->type == QP_LIST ? ps->v.n : ps->v.n / 2, applyeach_one, &a);
}

typedef struct calleach { const char *fn; const qp_value *items; int flags; } calleach;

static qp_value *calleach_one(int64_t i, void *data)
{
    calleach *c = data;
    qp_value *it = qp_item(c->items, i);
    PyObject *a = it ? qp_py_from_q(it, c->flags) : NULL;
    PyObject *t = a ? PyTuple_Pack(1, a) : NULL;
    qp_value *r = t ? qp__call_obj(c->fn, t, NULL) : it ? qp_py_error() : NULL;
    Py_XDECREF(t);
    Py_XDECREF(a);
    qp_unref(it);
    return r;
}

static qp_value *fn_calleach(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)data;
    qp_value *e = need_python();
    if (e) return e;
    calleach c = {.fn = sym_arg(arg(args, 0)), .items = arg(args, 1)};
    if (!c.fn) return qp_error("qp.calleach: the function name must be a symbol or string");
    if (c.items->type != QP_LIST && !qp_is_vector(c.items))
        return qp_error("qp.calleach: takes [name; list]");
    if (qp__func_flags(c.fn, &c.flags) < 0)
        return qp_error("qp.calleach: no function '%s' (define it with .qp.def)", c.fn);
    return each(c.items->v.n, calleach_one, &c);
}

/* ---- registration ---- */

void qp_py_thread_start_cb(int index, void *data)
{
    (void)data;
    /* Python starts at the first .qp call that needs it (need_python, on
     * this same main thread): a server that never runs Python pays nothing
     * for it, not even numpy's import. QPEACH_PY_EAGER=1 starts it here. */
    const char *eager = getenv("QPEACH_PY_EAGER");
    if (index != -1 || qp_py_ready() || !eager || strcmp(eager, "1") != 0) return;
    qp_value *e = need_python();
    if (e) fprintf(stderr, "qpeach serve: %s\n", e->s);
    qp_unref(e);
}

void qp_py_shutdown(void)
{
    qp__procs_stop();
    qp__cancel_init(NULL);
    server = NULL;   /* another server may register now */
}

int qp_py_register(qp_server *s, const qp_py_opts *o, char *err, size_t errlen)
{
    static const struct { const char *name; int nargs; qp_fn_cb fn; } fns[] = {
        {".qp.import", 1, fn_import}, {".qp.def", -1, fn_def}, {".qp.call", -1, fn_call},
        {".qp.callk", 3, fn_callk}, {".qp.apply", 3, fn_apply}, {".qp.load", -1, fn_load},
        {".qp.peach", 2, fn_peach}, {".qp.timeout", 1, fn_timeout}, {".qp.reset", 1, fn_reset},
        {".qp.applyeach", 3, fn_applyeach}, {".qp.calleach", 2, fn_calleach},
        /* the names src/server/server_int.h gives PyKX's lambdas */
        {".qp.pykx.libraries", 2, fn_pykx_libraries}, {".qp.pykx.call", 4, fn_pykx_call},
    };
    int rc0;
    if (server && server != s) {
        snprintf(err, errlen, "Python is registered with another server of this process already "
                 "(one per process: the interpreter, its functions and the -s -N workers "
                 "are shared); call qp_py_shutdown first");
        return QP_EARG;
    }
    server = s;
    qp__cancel_init(s);
    if (o) opts = *o;
    else opts.parent_fd = -1;
    base_timeout_ms = opts.timeout_ms;
    /* .qp.info reports this; Py_GetVersion needs no running interpreter
     * (Python itself starts at the first call that needs it). */
    const char *ver = Py_GetVersion();
    qp_server_set(s, ".qp.python", qp_string(ver, strcspn(ver, " ")));
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        int rc = qp_server_def(s, fns[i].name, fns[i].nargs, QP_EXEC_MAIN, fns[i].fn, NULL);
        if (rc < 0) {
            snprintf(err, errlen, "cannot register %s: %s", fns[i].name, qp_strerror(rc));
            return rc;
        }
    }
    if (opts.procs > 0 && (rc0 = qp_server_def(s, ".qp.set", 2, QP_EXEC_MAIN, fn_set, NULL)) < 0) {
        snprintf(err, errlen, "cannot register .qp.set: %s", qp_strerror(rc0));
        return rc0;
    }
    if (opts.procs > 0 && opts.db &&
        (rc0 = qp_server_def(s, ".qp.reload", 1, QP_EXEC_MAIN, fn_reload, NULL)) < 0) {
        snprintf(err, errlen, "cannot register .qp.reload: %s", qp_strerror(rc0));
        return rc0;
    }
    if (opts.parent_fd >= 0 && qp__procs_watch_parent(opts.parent_fd, s) < 0) {
        snprintf(err, errlen, "cannot watch the parent process");
        return QP_EIO;
    }
    int rc = opts.procs > 0 ? qp__procs_start(&opts, err, errlen) : 0;
    opts.loads = NULL;   /* the caller's array; not needed after start-up */
    opts.nloads = 0;
    return rc;
}
