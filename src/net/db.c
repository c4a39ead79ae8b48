/* db.c - a kdb+ database mounted in the server (`qpeach serve --db`): its
 * tables are globals, resolved lazily.
 *
 * Mounting reads nothing but the table names qp_kdb_open already listed;
 * no column file is opened until a table is asked for, and then only what
 * the call needs: .qp.count reads one column header per partition,
 * .qp.meta the `.d` and one partition's headers, .qp.partitions nothing,
 * .qp.distinct one partition at a time,
 * .qp.get / a bare name / qtable() map the table (a partitioned one is
 * concatenated, which copies), and .qp.apply one partition or the rows it
 * needs (src/py/dbpart.c). Nothing is cached here: mapped columns cost a
 * few system calls to map again, and a cached concatenation would hold a
 * whole partitioned table in memory for good.
 *
 * A global of the same name (.qp.set, --load) hides a db table.
 *
 * Threads: the table names are copied into the server at mount, so the
 * event loop answers "is this a db table?" without the qp_kdb's mutex;
 * every built-in that may read files (.qp.get, .qp.count, .qp.meta,
 * .qp.partitions, and a bare name, which becomes a .qp.get) is moved to
 * the secondary threads, so a slow disk never stalls the loop.
 *
 * A table that cannot be read (a file missing or corrupt, an enumeration
 * beyond its domain) is the reader's error value, which names the file and
 * column: the call fails with it and the server goes on serving.
 */
#include <stdlib.h>
#include <string.h>

#include "qpeach/kdb.h"
#include "qpeach/sched.h"
#include "srv.h"

bool qp__db_has(const qp_server *s, const char *sym)
{
    const qp_value *n = s->dbnames;
    if (!n) return false;
    for (int64_t i = 0; i < n->v.n; i++)
        if (qp_S(n)[i] == sym) return true;
    return false;
}

qp_kdb *qp_server_db(const qp_server *s) { return s->db; }

qp_value *qp__db_table(qp_server *s, const char *sym)
{
    return qp_kdb_table(s->db, sym, QP_KDB_ENUMS);
}

/* A db table's name from a .qp.* argument (`t or "t"), or NULL when the
 * argument names no db table or a global hides it. */
static const char *db_name(qp_server *s, const qp_value *x)
{
    const char *sym = qp_name_of(x);
    if (!sym || !qp__db_has(s, sym)) return NULL;
    qp_value *g = qp__global_get(s, sym);
    qp_unref(g);
    return g ? NULL : sym;
}

bool qp_server_is_db_table(qp_server *s, const char *name)
{
    const char *sym = qp_sym_intern(name, strlen(name));
    return sym && db_name(s, &(qp_value){ .type = -QP_SYMBOL, .s = sym }) != NULL;
}

static qp_value *fn_db_count(qp_server *s, qp_value *args, void *data)
{
    const char *t = db_name(s, qp_K(args)[0]);
    if (!t) return qp__fn_count(s, args, data);
    char err[512];
    int64_t n = 0;
    if (qp_kdb_count(s->db, t, &n, err, sizeof err)) return qp_error("%s", err);
    return qp_long(n);
}

static qp_value *fn_db_meta(qp_server *s, qp_value *args, void *data)
{
    const char *t = db_name(s, qp_K(args)[0]);
    return t ? qp_kdb_meta(s->db, t) : qp__fn_meta(s, args, data);
}

/* .qp.partitions t: the partitions of db table t (dates, months, or longs
 * for year and int partitions); an empty long vector for a splayed or
 * flat db table and for a resident table; q's 'name error otherwise. */
qp_value *qp__fn_partitions(qp_server *s, qp_value *args, void *data)
{
    (void)data;
    const qp_value *x = qp_K(args)[0];
    if (x->type != -QP_SYMBOL && x->type != QP_CHAR)
        return qp_error("type: .qp.partitions takes a table name (symbol or string)");
    const char *t = db_name(s, x);
    if (t) return qp_kdb_partitions(s->db, t);
    const char *sym = qp_name_of(x);
    qp_value *g = sym ? qp_server_get(s, sym) : NULL;
    if (!g) return qp_error("%s", sym ? sym : "wsfull");
    bool table = g->type == QP_TABLE || qp_is_keyed_table(g);
    qp_unref(g);
    if (!table) return qp_error("type: .qp.partitions takes a table name; %s is not a table", sym);
    return qp_vector(QP_LONG, 0);
}

/* Distinct values of column col over every partition of db table t, one
 * partition mapped at a time (a whole partitioned table would be a copy). */
static qp_value *parts_distinct(qp_kdb *db, const char *t, const char *col)
{
    qp_value *parts = qp_kdb_partitions(db, t);
    if (!parts || qp_is_error(parts)) return parts;
    int64_t n = qp_count(parts);
    qp_value *each = qp_vector(QP_LIST, n), *r = NULL;
    for (int64_t i = 0; each && i < n; i++) {
        qp_value *tp = qp_kdb_table_part(db, t, i, QP_KDB_ENUMS);
        const qp_value *c = tp && !qp_is_error(tp) ? qp_table_column(tp, col) : NULL;
        qp_K(each)[i] = c ? qp_distinct_sorted(c)
                          : tp && qp_is_error(tp) ? qp_ref(tp) : qp_error("%s: no such column", col);
        qp_unref(tp);
        if (!qp_K(each)[i] || qp_is_error(qp_K(each)[i])) {
            r = qp_ref(qp_K(each)[i]);
            goto done;
        }
    }
    qp_value *all = each ? qp_concat(qp_K(each), n) : NULL;
    r = all ? qp_distinct_sorted(all) : NULL;
    qp_unref(all);
done:
    qp_unref(each);
    qp_unref(parts);
    return r;
}

/* .qp.distinct on a partitioned db table: its partition column from the
 * folder names, another column partition by partition. */
static qp_value *fn_db_distinct(qp_server *s, qp_value *args, void *data)
{
    const char *t = db_name(s, qp_K(args)[0]);
    const char *pcol = t ? qp_kdb_part_column(s->db, t) : NULL;
    const char *col = qp_name_of(qp_K(args)[1]);
    if (!pcol || !col) return qp__fn_distinct(s, args, data);
    if (strcmp(col, pcol) == 0) return qp_kdb_partitions(s->db, t);
    qp_value *r = parts_distinct(s->db, t, col);
    return r ? r : qp_error("wsfull");
}

int qp_server_mount(qp_server *s, qp_kdb *db)
{
    if (!s || !db || s->db) return QP_EARG;
    qp_value *names = qp_kdb_tables(db);
    if (!names) return QP_ENOMEM;
    if (names->type != QP_SYMBOL) { qp_unref(names); return QP_EARG; }
    /* The built-ins that may now read files leave the loop; count and meta
     * keep the resident-table code for names that are not db tables. */
    int rc;
    if ((rc = qp_server_def(s, ".qp.count", 1, QP_EXEC_POOL, fn_db_count, NULL)) ||
        (rc = qp_server_def(s, ".qp.meta", 1, QP_EXEC_POOL, fn_db_meta, NULL)) ||
        (rc = qp_server_def(s, ".qp.get", 1, QP_EXEC_POOL, qp__fn_get, NULL)) ||
        (rc = qp_server_def(s, ".qp.partitions", 1, QP_EXEC_POOL, qp__fn_partitions, NULL)) ||
        (rc = qp_server_def(s, ".qp.distinct", 2, QP_EXEC_POOL, fn_db_distinct, NULL))) {
        qp_unref(names);
        return rc;
    }
    s->db = db;
    s->dbnames = names;
    return 0;
}
