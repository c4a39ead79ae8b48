/* db.c - a kdb+ database mounted in the server (`qpeach serve --db`): its
 * tables are globals, resolved lazily.
 *
 * Mounting reads nothing but the table names qp_kdb_open already listed;
 * no column file is opened until a table is asked for, and then only what
 * the call needs: .qp.count reads one column header per partition,
 * .qp.meta the `.d` and one partition's headers, .qp.partitions nothing,
 * .qp.distinct one partition at a time,
 * .qp.select the partitions, columns and rows asked for (qp_kdb_select),
 * .qp.get / a bare name / qtable() map the table (a partitioned one is
 * concatenated, which copies), and .qp.apply one partition or the rows it
 * needs (qp_server_db_part, qp_kdb_rows). Nothing is cached here: mapped columns cost a
 * few system calls to map again, and a cached concatenation would hold a
 * whole partitioned table in memory for good.
 *
 * What was written since the mount is seen: every call about a db table
 * first asks qp_kdb_reload whether the root, par.txt or a domain changed
 * (a stat of each) and, when one did, mounts the db again (a new
 * snapshot: calls already running finish on the one they started with).
 * .qp.reload[] mounts it again whatever changed (a table added to an
 * existing partition shows nowhere else). A db that can no longer be
 * mounted fails the calls about its tables with the reason.
 *
 * Db tables come before globals, and no global may take a db table's
 * name (.qp.set, .qp.load and --load refuse it: qp_server_name_taken), so
 * every client sees the db's table under its name. A table that appears
 * on disk under a global's name hides that global.
 *
 * Threads: the table names are copied into the server at each mount
 * (under gmu), so the event loop answers "is this a db table?" without
 * the disk; every built-in that may read files or look at the disk
 * (.qp.get, .qp.count, .qp.meta, .qp.partitions, .qp.distinct,
 * .qp.select, .qp.tables, .qp.set, .qp.reload, and a bare name, which becomes a
 * .qp.get) is moved to the secondary threads, so a slow disk never stalls
 * the loop. dbmu serialises reloads; a call holds its own reference to
 * the snapshot it reads.
 *
 * A table that cannot be read (a file missing or corrupt, an enumeration
 * beyond its domain) is the reader's error value, which names the file and
 * column: the call fails with it and the server goes on serving.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpeach/kdb.h"
#include "server_int.h"

/* The db table a .qp.* argument (`t or "t") names, with a reference to
 * the db holding it (*db; qp_kdb_close it); NULL when it names none
 * (*err set when the db could not be mounted again). */
static const char *db_name(qp_server *s, const qp_value *x, qp_kdb **db, qp_value **err)
{
    const char *sym = qp_name_of(x);
    *db = sym ? qp_server_db_table(s, sym, err) : NULL;
    if (!sym) *err = NULL;
    return *db ? sym : NULL;
}

static qp_value *fn_db_count(qp_server *s, qp_value *args, void *data)
{
    qp_kdb *db;
    qp_value *e = NULL;
    const char *t = db_name(s, qp_K(args)[0], &db, &e);
    if (!t) return e ? e : qp__fn_count(s, args, data);
    char err[1024];
    int64_t n = 0;
    int rc = qp_kdb_count(db, t, &n, err, sizeof err);
    qp_kdb_close(db);
    return rc ? qp_error("%s", err) : qp_long(n);
}

static qp_value *fn_db_meta(qp_server *s, qp_value *args, void *data)
{
    qp_kdb *db;
    qp_value *e = NULL;
    const char *t = db_name(s, qp_K(args)[0], &db, &e);
    if (!t) return e ? e : qp__fn_meta(s, args, data);
    qp_value *r = qp_kdb_meta(db, t);
    qp_kdb_close(db);
    return r;
}

/* .qp.partitions t on a db server: a db table's partitions (dates,
 * months, or longs for year and int partitions; an empty long vector for
 * a splayed or flat one), else the resident tables' answer. */
static qp_value *fn_db_partitions(qp_server *s, qp_value *args, void *data)
{
    qp_kdb *db = NULL;
    qp_value *e = NULL;
    const qp_value *x = qp_K(args)[0];
    const char *t = x->type == -QP_SYMBOL || x->type == QP_CHAR ? db_name(s, x, &db, &e) : NULL;
    if (e) return e;
    if (!t) return qp__fn_partitions(s, args, data);
    qp_value *r = qp_kdb_partitions(db, t);
    qp_kdb_close(db);
    return r;
}

/* .qp.distinct on a db table: qp_kdb_distinct (a partitioned one's
 * partition column from the folder names, another column partition by
 * partition). */
static qp_value *fn_db_distinct(qp_server *s, qp_value *args, void *data)
{
    qp_kdb *db;
    qp_value *e = NULL;
    const char *t = db_name(s, qp_K(args)[0], &db, &e);
    const char *col = qp_name_of(qp_K(args)[1]);
    if (e) return e;
    qp_value *r = t && col ? qp_kdb_distinct(db, t, col) : qp__fn_distinct(s, args, data);
    qp_kdb_close(db);
    return r ? r : qp_error("wsfull");
}

/* .qp.select of a db table: qp_kdb_select, which opens only the
 * partitions and column files asked for; else the resident tables'. */
static qp_value *fn_db_select(qp_server *s, qp_value *args, void *data)
{
    qp_kdb *db = NULL;
    qp_value *e = NULL, *cols = NULL;
    const qp_value *x = qp_K(args)[0];
    const char *t = x->type == -QP_SYMBOL || x->type == QP_CHAR ? db_name(s, x, &db, &e) : NULL;
    if (e) return e;
    if (!t) return qp__fn_select(s, args, data);
    qp_kdb_sel sel;
    qp_value *r = qp__select_args(args, &sel, &cols);
    if (!r) r = qp_kdb_select(db, t, &sel, QP_KDB_ENUMS);
    qp_unref(cols);
    qp_kdb_close(db);
    return r;
}

int qp_server_part_column(const qp_value *part, const char **col, qp_value **value)
{
    *col = NULL;
    *value = NULL;
    if (part->type == QP_LIST && part->v.n == 2 && (*col = qp_name_of(qp_K(part)[0]))) {
        *value = qp_ref(qp_K(part)[1]);
        return 1;
    }
    if (part->type != QP_SYMBOL || part->v.n != 2) return 0;
    if (!(*value = qp_symbol(qp_S(part)[1]))) return QP_ENOMEM;
    *col = qp_S(part)[0];
    return 1;
}

int qp_server_db_part(qp_server *s, const char *name, const qp_value *part, qp_value **out)
{
    *out = NULL;
    qp_value *err = NULL;
    qp_kdb *db = qp_server_db_table(s, name, &err);
    if (!db) {
        *out = err;                  /* the db could not be mounted again */
        return err != NULL;
    }
    const char *pcol = qp_kdb_part_column(db, name), *col;
    qp_value *val;
    int r = qp_server_part_column(part, &col, &val);
    if (r < 0) {
        r = 1;                       /* *out NULL: out of memory */
    } else if ((part->type == QP_LONG || part->type == QP_INT) && part->v.n == 2) {
        int64_t a = part->type == QP_LONG ? qp_J(part)[0] : qp_I(part)[0];
        int64_t b = part->type == QP_LONG ? qp_J(part)[1] : qp_I(part)[1];
        *out = qp_kdb_rows(db, name, a, b, QP_KDB_ENUMS);
        r = 1;
    } else {
        r = pcol && col && strcmp(col, pcol) == 0;
        if (r) *out = qp_kdb_table_at(db, name, val, QP_KDB_ENUMS);
    }
    qp_unref(val);
    qp_kdb_close(db);
    return r;
}

/* .qp.tables[], after a look at the disk. */
static qp_value *fn_db_tables(qp_server *s, qp_value *args, void *data)
{
    (void)args; (void)data;
    qp_value *e = NULL;
    qp_kdb *db = qp__db_now(s, false, &e);
    qp_kdb_close(db);
    return e ? e : qp_server_tables(s);
}

qp_value *qp_server_reload(qp_server *s)
{
    if (!s->mounted) return qp_error(".qp.reload: no database is mounted (serve --db)");
    qp_value *e = NULL;
    qp_kdb *db = qp__db_now(s, true, &e);
    qp_value *r = db ? qp_kdb_tables(db) : e;
    qp_kdb_close(db);
    return r;
}

/* .qp.reload[]: mounts the db again, whatever changed; its tables. */
static qp_value *fn_db_reload(qp_server *s, qp_value *args, void *data)
{
    (void)args; (void)data;
    return qp_server_reload(s);
}

/* .qp.set on a db server: the name checked against the db as it is now
 * (off the loop: that looks at the disk). */
static qp_value *fn_db_set(qp_server *s, qp_value *args, void *data)
{
    const char *name = qp_name_of(qp_K(args)[0]);
    qp_value *e = name ? qp_server_name_taken(s, name, ".qp.set") : NULL;
    return e ? e : qp__fn_set(s, args, data);
}

int qp_server_mount(qp_server *s, qp_kdb *db)
{
    if (!s || !db || s->db) return QP_EARG;
    qp_value *names = qp_kdb_tables(db);
    if (!names) return QP_ENOMEM;
    /* The built-ins that may now read files leave the loop; count and meta
     * keep the resident-table code for names that are not db tables. */
    static const struct { const char *name; int nargs; qp_fn_cb fn; } fns[] = {
        { ".qp.count", 1, fn_db_count }, { ".qp.meta", 1, fn_db_meta },
        { ".qp.get", 1, qp__fn_get }, { ".qp.partitions", 1, fn_db_partitions },
        { ".qp.distinct", 2, fn_db_distinct }, { ".qp.tables", 1, fn_db_tables },
        { ".qp.reload", 1, fn_db_reload }, { ".qp.set", 2, fn_db_set },
        { ".qp.select", 4, fn_db_select },
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        int rc = qp_server_def(s, fns[i].name, fns[i].nargs, QP_EXEC_POOL, fns[i].fn, NULL);
        if (rc) {
            qp_unref(names);
            return rc;
        }
    }
    s->db = db;
    s->dbnames = names;
    s->mounted = true;
    return 0;
}
