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
        qp__symcat_sweep();   /* codes of tables dropped since the last call */
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
 * part: (start; end) rows, a view of the table; or (column; value), the
 * rows where column = value, gathered (an enumerated column compares its
 * symbols; `c`v is (`c;`v) as q collapses it). A db table is served by
 * qp_server_db_part first. */

static qp_value *gather(const qp_value *col, const int64_t *idx, int64_t m)
{
    if (col->type == QP_ENUM) {   /* the indices, over the same domain */
        qp_value *j = qp_vector(QP_LONG, m);
        if (!j) return NULL;
        for (int64_t i = 0; i < m; i++) qp_J(j)[i] = qp_J(col)[idx[i]];
        qp_value *e = qp_enum_borrow(m, qp_J(j), j->v.owner, qp_ref(col->v.dom));
        qp_unref(j);
        return e;
    }
    qp_value *v = qp_vector(col->type, m);
    if (!v) return NULL;
    if (col->type == QP_LIST) {
        for (int64_t i = 0; i < m; i++) qp_K(v)[i] = qp_ref(qp_K(col)[idx[i]]);
        return v;
    }
    size_t w = qp_type_width(col->type);
    const char *src = col->v.data;
    char *dst = v->v.data;
    /* memcpy of a constant width is one load and one store a row (and
     * safe unaligned); of a variable width, a call */
#define GATHER(W) for (int64_t i = 0; i < m; i++) memcpy(dst + i * W, src + idx[i] * W, W)
    switch (w) {
    case 8: GATHER(8); break;
    case 4: GATHER(4); break;
    case 2: GATHER(2); break;
    case 1: GATHER(1); break;
    default: GATHER((int64_t)w);
    }
#undef GATHER
    return v;
}

/* Is item i of col equal to atom a (already of the column's item type),
 * as q's = says (-0.0 is 0.0, every NaN the null: the equality
 * .qp.distinct planned the partitions with)? */
static bool item_eq(const qp_value *col, int64_t i, const qp_value *a)
{
    size_t w = qp_type_width(col->type);
    const void *p = (const char *)col->v.data + (size_t)i * w;
    const void *q = col->type == QP_GUID ? (const void *)a->u : (const void *)&a->g;
    return qp_item_eq(col->type, p, q);
}

/* The atom v as an atom of the column's item type, or NULL. */
static qp_value *as_item(const qp_value *col, const qp_value *v)
{
    if (v->type == -col->type) return qp_ref((qp_value *)v);
    if (col->type == QP_SYMBOL && v->type == QP_CHAR)
        return qp_symbol(qp_sym_intern(v->v.data, (size_t)v->v.n));
    int64_t j;
    if (v->type == -QP_LONG) j = v->j;
    else if (v->type == -QP_INT) j = v->i;
    else if (v->type == -QP_SHORT) j = v->h;
    else return NULL;
    switch (col->type) {
    case QP_SHORT: return qp_short((int16_t)j);
    case QP_INT: return qp_int((int32_t)j);
    case QP_LONG: return qp_long(j);
    case QP_FLOAT: return qp_float((double)j);
    case QP_REAL: return qp_real((float)j);
    default: return NULL;
    }
}

/* The rows of enumeration col that stand for symbol s, into idx; their
 * count, or -1 when out of memory. Which indices mean s is worked out once
 * per name of the domain (slot nd: the null, the empty symbol), so each
 * row costs one byte looked up in a table the size of the domain. idx
 * has room for every row. */
static int64_t enum_rows(const qp_value *col, const char *s, int64_t *idx)
{
    const qp_value *dom = col->v.dom;
    int64_t nd = dom->v.n, m = 0;
    uint8_t *hit = malloc((size_t)nd + 1);
    if (!hit) return -1;
    for (int64_t k = 0; k < nd; k++) hit[k] = qp_S(dom)[k] == s;
    hit[nd] = s == qp_sym_intern("", 0);
    const int64_t *x = qp_J(col);
    for (int64_t i = 0; i < col->v.n; i++) {    /* no branch on the data */
        idx[m] = i;
        m += hit[x[i] == QP_NULL_J ? nd : x[i]];
    }
    free(hit);
    return m;
}

static qp_value *rows_where(const qp_value *t, const char *colname, const qp_value *val)
{
    const qp_value *col = qp_table_column(t, colname);
    if (!col) return qp_error("qp.apply: no column '%s'", colname);
    if (!qp_is_vector(col) && col->type != QP_ENUM) return qp_error("qp.apply: column '%s' is not a simple vector", colname);
    /* an enumeration (a db's symbol column) matches as its symbols */
    qp_value *sv = col->type == QP_ENUM ? qp_vector(QP_SYMBOL, 0) : NULL;
    qp_value *a = as_item(sv ? sv : col, val);
    qp_unref(sv);
    if (!a) return qp_error("qp.apply: a %s value cannot match column '%s' of type %s",
                            qp_type_name(val->type), colname, qp_type_name(col->type));
    int64_t n = col->v.n, m = 0;
    int64_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!idx) { qp_unref(a); return NULL; }
    if (col->type == QP_SYMBOL) {   /* interned: pointer comparison */
        const char *s = a->s;
        for (int64_t i = 0; i < n; i++) if (qp_S(col)[i] == s) idx[m++] = i;
    } else if (col->type == QP_ENUM) {
        m = enum_rows(col, a->s, idx);
    } else {
        for (int64_t i = 0; i < n; i++) if (item_eq(col, i, a)) idx[m++] = i;
    }
    qp_unref(a);
    if (m < 0) { free(idx); return NULL; }
    const qp_value *names = qp_table_names(t), *cols = qp_table_columns(t);
    qp_value *out = qp_vector(QP_LIST, cols->v.n);
    for (int64_t c = 0; out && c < cols->v.n; c++) {
        qp_K(out)[c] = gather(qp_K(cols)[c], idx, m);
        if (!qp_K(out)[c]) { qp_unref(out); out = NULL; }
    }
    free(idx);
    return out ? qp_table(qp_dict(qp_ref((qp_value *)names), out)) : NULL;
}

static qp_value *partition(const qp_value *t, const qp_value *part)
{
    if (part->type == QP_LONG || part->type == QP_INT) {
        if (part->v.n != 2) return qp_error("qp.apply: rows are (start; end)");
        int64_t a = part->type == QP_LONG ? qp_J(part)[0] : qp_I(part)[0];
        int64_t b = part->type == QP_LONG ? qp_J(part)[1] : qp_I(part)[1];
        int64_t n = qp_count(t);
        if (a < 0 || b < a || a > n) return qp_error("qp.apply: rows %lld..%lld outside 0..%lld",
                                                     (long long)a, (long long)b, (long long)n);
        return qp_table_slice(t, a, b - a);    /* views: no copy */
    }
    const char *col;
    qp_value *val;
    int rc = qp_server_part_column(part, &col, &val);
    if (rc < 0) return NULL;
    if (rc) {
        qp_value *r = rows_where(t, col, val);
        qp_unref(val);
        return r;
    }
    return qp_error("qp.apply: part is (start; end) rows or (column; value)");
}

static qp_value *apply_call(const char *fn, qp_value *p);

static qp_value *fn_apply(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    qp_value *e = need_python();
    if (e) return e;
    const char *fn = sym_arg(arg(args, 0));
    if (!fn) return qp_error("qp.apply: the function name must be a symbol or string");
    const qp_value *tv = arg(args, 1), *part = arg(args, 2);
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
    p = partition(t, part);
    qp_unref(t);
    if (!p || qp_is_error(p)) return p;
    return apply_call(fn, p);
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
        {".qp.peach", 2, fn_peach}, {".qp.timeout", 1, fn_timeout},
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
