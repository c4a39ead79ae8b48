/* builtins.c - the built-in `.qp` functions that need no Python (the
 * names they look up, functions, globals and db tables, are globals.c's):
 *
 *   .qp.echo x         x unchanged
 *   .qp.ping[]         1b (a liveness check that costs nothing)
 *   .qp.info[]         `version`pid`python`threads`cores`tables!(...);
 *                      python is the string in the global `.qp.python`,
 *                      which the Python module sets when it starts, and ""
 *                      until then; threads is -s (negative: -s -N worker
 *                      processes), as q's \s; cores are the indices of the
 *                      cores this server may use (its binding: --pin,
 *                      taskset, `qpeach run`), numbered as `qpeach topo`
 *                      numbers them
 *   .qp.set[name;v]    defines the global name (symbol or string); returns name
 *                      (with -s -N the py module replaces it with one that
 *                      also forwards the value to its worker processes; with
 *                      a db, db.c with one that refuses a db table's name)
 *   .qp.get name       the global's value, or q's error 'name
 *   .qp.tables[]       names of globals that are tables (symbol vector)
 *   .qp.count t        rows of table t (a name, or a value)
 *   .qp.meta t         q's meta: a table c,t,f,a keyed by c
 *   .qp.partitions t   the partitions of a db table (db.c), an empty long
 *                      vector for other tables
 *   .qp.select[t;p;c;r] table t (a name): partition p (a db's; :: for
 *                      all), columns c (symbols; :: for all), rows r
 *                      ((a;b): rows a..b-1 of the partition or table;
 *                      :: for all); db.c reads only those from a db
 *   .qp.distinct[t;c]  the distinct values of column c of table t (a name,
 *                      or a value), sorted (symbols by bytes): what a
 *                      scheduler plans `by = column` from; runs on the pool,
 *                      as it may read and scan a whole db table
 *   .qp.reset[]        drops every global but qpeach's own (.qp.*): the
 *                      names dropped; a mounted db stays (the py module
 *                      replaces it with one that also forgets its
 *                      functions: what a kept worker gets between runs)
 *
 * With a mounted database its tables are globals too, ahead of the ones
 * set here (which may not take their names): qp_server_get reads them
 * from the db when asked for, and db.c replaces the built-ins that may
 * read files with ones that answer for db tables from the db.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qpeach/table.h"
#include "qpeach/topo.h"
#include "qpeach/version.h"
#include "server_int.h"

/* ====================================================================
 * Built-ins
 * ==================================================================== */

static qp_value *arg0(qp_value *args) { return qp_K(args)[0]; }

static qp_value *fn_echo(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)data;
    return qp_ref(arg0(args));
}

static qp_value *fn_ping(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)args; (void)data;
    return qp_bool(true);
}

/* The machine's topology, read once (hwloc takes milliseconds, and this
 * runs on the loop); read-only afterwards, so threads share it. */
static qp_topo *info_topo;
static pthread_once_t info_once = PTHREAD_ONCE_INIT;
static void info_topo_load(void)
{
    if (qp_topo_load(NULL, &info_topo)) info_topo = NULL;
}

/* The cores this process is bound to now (a long vector of core
 * indices); every online CPU when hwloc cannot tell. */
static qp_value *usable_cores(void)
{
    pthread_once(&info_once, info_topo_load);
    qp_place pl = { 0 };
    bool known = info_topo && qp_topo_bound_cores(info_topo, &pl) == 0 && pl.ncores > 0;
    long n = known ? pl.ncores : sysconf(_SC_NPROCESSORS_ONLN);
    qp_value *v = qp_vector(QP_LONG, n > 0 ? n : 0);
    for (long i = 0; v && i < n; i++) qp_J(v)[i] = known ? pl.cores[i] : i;
    if (info_topo) qp_place_clear(&pl);
    return v;
}

static qp_value *fn_info(qp_server *s, qp_value *args, void *data)
{
    (void)args; (void)data;
    static const char *const keys[] = { "version", "pid", "python", "threads", "cores", "tables" };
    qp_value *k = qp_vector(QP_SYMBOL, 6);
    qp_value *py = qp_server_get(s, ".qp.python");
    if (!py) py = qp_string("", 0);
    qp_value *v = qp_list(6, qp_cstring(QPEACH_VERSION), qp_long(getpid()), py,
                          qp_long(s->opts.secondary), usable_cores(),
                          qp_server_tables(s));
    if (!k || !v) goto oom;
    for (int i = 0; i < 6; i++) {
        if (!qp_K(v)[i]) goto oom;
        if (!(qp_S(k)[i] = qp_sym_intern(keys[i], strlen(keys[i])))) goto oom;
    }
    return qp_dict(k, v);
oom:
    qp_unref(k);
    qp_unref(v);
    return NULL;
}

qp_value *qp__fn_set(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    const char *name = qp_name_of(qp_K(args)[0]);
    if (!name || !*name) return qp_error("type: .qp.set takes a name (symbol or string) and a value");
    if (qp_server_set(s, name, qp_ref(qp_K(args)[1]))) return NULL;
    return qp_symbol(name);
}

qp_value *qp__fn_get(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    const char *name = qp_name_of(arg0(args));
    if (!name) return qp_error("type: .qp.get takes a name (symbol or string)");
    qp_value *v = qp_server_get(s, name);
    return v ? v : qp_error("%s", name);
}

static qp_value *fn_tables(qp_server *s, qp_value *args, void *data)
{
    (void)args; (void)data;
    return qp_server_tables(s);
}

/* The table a .qp.count / .qp.meta argument means: a global's name or
 * the value itself. New reference, or an error value. */
static qp_value *table_arg(qp_server *s, qp_value *x, const char *fn)
{
    if (x->type == -QP_SYMBOL || x->type == QP_CHAR) {
        const char *name = qp_name_of(x);
        qp_value *v = name ? qp_server_get(s, name) : NULL;
        if (!v) return qp_error("%s", name ? name : "wsfull");
        return v;
    }
    if (!qp__is_table(x)) return qp_error("type: %s takes a table or its name", fn);
    return qp_ref(x);
}

qp_value *qp__fn_count(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    qp_value *t = arg0(args);
    if (t->type == -QP_SYMBOL || t->type == QP_CHAR) {
        t = table_arg(s, t, ".qp.count");
        if (t->type == QP_ERROR) return t;
    } else {
        qp_ref(t);
    }
    qp_value *r = qp_long(qp_count(t));
    qp_unref(t);
    return r;
}

static char type_char(const qp_value *col)
{
    static const char tc[] = " bg xhijefcspmdznuvt";
    if (col->type >= 1 && col->type <= 19) return tc[col->type];
    if (col->type == QP_ENUM) return 's';   /* q's meta shows enums as s */
    if (col->type != QP_LIST || col->v.n == 0) return ' ';
    /* a list of vectors of one type is q's "C", "J", ... */
    int t = qp_K(col)[0]->type;
    if (t < 1 || t > 19) return ' ';
    for (int64_t i = 1; i < col->v.n; i++)
        if (qp_K(col)[i]->type != t) return ' ';
    return (char)(tc[t] - 'a' + 'A');
}

qp_value *qp__fn_meta(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    qp_value *t = table_arg(s, arg0(args), ".qp.meta");
    if (t->type == QP_ERROR) return t;
    if (!qp__is_table(t)) {                       /* a global that is not a table */
        qp_unref(t);
        return qp_error("type: .qp.meta takes a table or its name");
    }
    /* a keyed table's meta lists the key columns, then the others */
    const qp_value *parts[2] = { t, NULL };
    if (t->type == QP_DICT) { parts[0] = qp_dict_keys(t); parts[1] = qp_dict_values(t); }
    int64_t n = 0;
    for (int p = 0; p < 2 && parts[p]; p++) n += qp_table_names(parts[p])->v.n;
    qp_value *c = qp_vector(QP_SYMBOL, n), *ty = qp_vector(QP_CHAR, n);
    qp_value *f = qp_vector(QP_SYMBOL, n), *a = qp_vector(QP_SYMBOL, n);
    qp_value *r = NULL;
    const char *empty = qp_sym_intern("", 0);
    static const char *const attrs[] = { "", "s", "u", "p", "", "g" };
    if (!c || !ty || !f || !a || !empty) goto done;
    int64_t i = 0;
    for (int p = 0; p < 2 && parts[p]; p++) {
        qp_value *names = qp_table_names(parts[p]), *cols = qp_table_columns(parts[p]);
        for (int64_t k = 0; k < names->v.n; k++, i++) {
            qp_value *col = qp_K(cols)[k];
            qp_S(c)[i] = qp_S(names)[k];
            qp_C(ty)[i] = type_char(col);
            qp_S(f)[i] = empty;
            const char *at = col->attr < 6 ? attrs[col->attr] : "";
            if (!(qp_S(a)[i] = qp_sym_intern(at, strlen(at)))) goto done;
        }
    }
    r = qp_meta_table(c, ty, f, a);
    c = ty = f = a = NULL;
done:
    qp_unref(c); qp_unref(ty); qp_unref(f); qp_unref(a);
    qp_unref(t);
    return r;
}

/* .qp.partitions t of a resident table: an empty long vector (it has
 * none); q's 'name error for no such global. db.c answers for db tables. */
qp_value *qp__fn_partitions(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    const qp_value *x = qp_K(args)[0];
    if (x->type != -QP_SYMBOL && x->type != QP_CHAR)
        return qp_error("type: .qp.partitions takes a table name (symbol or string)");
    const char *sym = qp_name_of(x);
    qp_value *g = sym ? qp_server_get(s, sym) : NULL;
    if (!g) return qp_error("%s", sym ? sym : "wsfull");
    bool table = qp__is_table(g);
    qp_unref(g);
    if (!table) return qp_error("type: .qp.partitions takes a table name; %s is not a table", sym);
    return qp_vector(QP_LONG, 0);
}

qp_value *qp__fn_distinct(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    const char *col = qp_name_of(qp_K(args)[1]);
    if (!col) return qp_error("type: .qp.distinct takes a table (or its name) and a column name");
    qp_value *t = table_arg(s, arg0(args), ".qp.distinct");
    if (t->type == QP_ERROR) return t;
    qp_value *c = NULL, *r;
    if (t->type == QP_TABLE) c = qp_table_column(t, col);
    else if (qp_is_keyed_table(t)) {
        c = qp_table_column(qp_dict_keys(t), col);
        if (!c) c = qp_table_column(qp_dict_values(t), col);
    }
    if (c) r = qp_distinct_sorted(c);
    else r = qp_error(qp__is_table(t) ? "%s: no such column" : "type: .qp.distinct takes a table", col);
    qp_unref(t);
    return r ? r : qp_error("wsfull");
}

/* cols as a symbol vector: a symbol, symbols, or a list of symbols and
 * strings. New reference, or NULL when it is none of those. */
static qp_value *col_names(const qp_value *x)
{
    if (x->type == -QP_SYMBOL) return qp_symbol(x->s);
    if (x->type == QP_SYMBOL) return qp_ref((qp_value *)x);
    if (x->type != QP_LIST) return NULL;
    qp_value *v = qp_vector(QP_SYMBOL, x->v.n);
    for (int64_t i = 0; v && i < x->v.n; i++) {
        const qp_value *it = qp_K(x)[i];
        const char *s = it->type == -QP_SYMBOL || it->type == QP_CHAR ? qp_name_of(it) : NULL;
        if (!s) { qp_unref(v); return NULL; }
        qp_S(v)[i] = s;
    }
    return v;
}

static bool is_all(const qp_value *x)     /* (::), q's "nothing given" */
{
    return x->type == QP_UNARY && x->v.n == 1 && ((const uint8_t *)x->v.data)[0] == 0;
}

qp_value *qp__select_args(const qp_value *args, qp_kdb_sel *sel, qp_value **cols)
{
    const qp_value *p = qp_K(args)[1], *c = qp_K(args)[2], *r = qp_K(args)[3];
    *sel = (qp_kdb_sel){ .a = 0, .b = -1 };
    *cols = NULL;
    if (!is_all(p)) {
        if (p->type != -QP_DATE && p->type != -QP_MONTH && p->type != -QP_LONG &&
            p->type != -QP_INT && p->type != -QP_SHORT)
            return qp_error("type: .qp.select: the partition must be a date, month or number "
                            "(:: for all), not a %s", qp_type_name(p->type));
        sel->part = p;
    }
    if (!is_all(c)) {
        if (!(*cols = col_names(c)) || !(*cols)->v.n) {
            qp_unref(*cols);
            *cols = NULL;
            return qp_error("type: .qp.select: the columns must be symbols, at least one "
                            "(:: for all), not a %s", qp_type_name(c->type));
        }
        sel->cols = *cols;
    }
    if (!is_all(r)) {
        if ((r->type != QP_LONG && r->type != QP_INT) || r->v.n != 2)
            return qp_error("type: .qp.select: the rows must be two numbers (start; end) "
                            "(:: for all), not a %s", qp_type_name(r->type));
        sel->a = r->type == QP_LONG ? qp_J(r)[0] : qp_I(r)[0];
        sel->b = r->type == QP_LONG ? qp_J(r)[1] : qp_I(r)[1];
        if (sel->a < 0 || sel->b < sel->a)
            return qp_error(".qp.select: rows %lld..%lld: the start must be at least 0 and not "
                            "after the end", (long long)sel->a, (long long)sel->b);
    }
    return NULL;
}

/* .qp.select of a resident table (a global): its columns and rows, views
 * of it; it has no partitions. */
qp_value *qp__fn_select(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    qp_kdb_sel sel;
    qp_value *cols, *e = qp__select_args(args, &sel, &cols), *t = NULL, *r = NULL;
    const char *name = qp_name_of(arg0(args));
    if (!e && (arg0(args)->type != -QP_SYMBOL && arg0(args)->type != QP_CHAR))
        e = qp_error("type: .qp.select takes a table name (symbol or string)");
    if (!e && sel.part)
        e = qp_error(".qp.select: %s is not a partitioned db table: it has no partitions", name);
    if (!e && (t = table_arg(s, arg0(args), ".qp.select"))->type != QP_TABLE)
        e = t->type == QP_ERROR ? qp_ref(t) : qp_error("type: .qp.select: %s is not a table", name);
    if (e) goto done;
    r = sel.cols ? qp_table_pick(t, sel.cols, name) : qp_ref(t);
    int64_t n = r && !qp_is_error(r) ? qp_count(r) : 0;
    if (r && !qp_is_error(r) && (sel.a || sel.b >= 0)) {
        int64_t b = sel.b < 0 || sel.b > n ? n : sel.b;
        qp_value *x = sel.a > n ? qp_error("rows %lld..%lld outside 0..%lld of %s",
                                           (long long)sel.a, (long long)sel.b, (long long)n, name)
                                : qp_table_slice(r, sel.a, b - sel.a);
        qp_unref(r);
        r = x;
    }
done:
    qp_unref(t);
    qp_unref(cols);
    return e ? e : r ? r : qp_error("wsfull");
}

int qp__builtins_register(qp_server *s)
{
    static const struct { const char *name; int nargs; qp_fn_cb fn; } b[] = {
        { ".qp.echo", 1, fn_echo },   { ".qp.ping", 1, fn_ping },
        { ".qp.info", 1, fn_info },   { ".qp.set", 2, qp__fn_set },
        { ".qp.get", 1, qp__fn_get }, { ".qp.tables", 1, fn_tables },
        { ".qp.count", 1, qp__fn_count }, { ".qp.meta", 1, qp__fn_meta },
        { ".qp.partitions", 1, qp__fn_partitions }, { ".qp.select", 4, qp__fn_select },
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        /* all cheap and non-blocking: they run on the loop */
        int rc = qp_server_def(s, b[i].name, b[i].nargs, QP_EXEC_LOOP, b[i].fn, NULL);
        if (rc) return rc;
    }
    /* off the loop: both may read a whole column or free a big table */
    int rc = qp_server_def(s, ".qp.distinct", 2, QP_EXEC_POOL, qp__fn_distinct, NULL);
    return rc ? rc : qp_server_def(s, ".qp.reset", 1, QP_EXEC_POOL, qp__fn_reset, NULL);
}
