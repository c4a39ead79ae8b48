/* globals.c - the server's names: its registered functions, its globals
 * (.qp.set values, --load and .qp.load tables) and the tables of a
 * mounted db, which come first. Below the built-ins (builtins.c) and the
 * db adapter (db.c), which both look names up here.
 *
 * Threads: the function registry is fixed once the server runs; globals
 * are under gmu; the db snapshot is replaced under dbmu (a reload), and
 * its table names are copied under gmu too, so the loop answers "is this
 * a db table?" without the disk (qp__db_has).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qpeach/kdb.h"
#include "server_int.h"

/* ====================================================================
 * Registry
 * ==================================================================== */

int qp_server_def(qp_server *s, const char *name, int nargs, int exec, qp_fn_cb fn, void *data)
{
    if (!name || !*name || !fn || exec < QP_EXEC_LOOP || exec > QP_EXEC_MAIN) return QP_EARG;
    const char *sym = qp_sym_intern(name, strlen(name));
    if (!sym) return QP_ENOMEM;
    qp__fn *f = (qp__fn *)qp__fn_find(s, sym);
    if (!f) {
        if (s->nfns == s->capfns) {
            int cap = s->capfns ? 2 * s->capfns : 16;
            qp__fn *m = realloc(s->fns, (size_t)cap * sizeof *m);
            if (!m) return QP_ENOMEM;
            s->fns = m;
            s->capfns = cap;
        }
        f = &s->fns[s->nfns++];
    }
    *f = (qp__fn){ sym, nargs, exec, fn, data };
    return 0;
}

const qp__fn *qp__fn_find(const qp_server *s, const char *name)
{
    /* symbols are interned: pointer equality is name equality */
    for (int i = 0; i < s->nfns; i++)
        if (s->fns[i].name == name) return &s->fns[i];
    return NULL;
}

/* ====================================================================
 * Globals (a small array under a mutex: there are few, and lookups are
 * dwarfed by the calls that use them)
 * ==================================================================== */

static int gfind(const qp_server *s, const char *sym)
{
    for (int i = 0; i < s->ng; i++)
        if (s->gnames[i] == sym) return i;
    return -1;
}

qp_value *qp__global_get(qp_server *s, const char *sym)
{
    pthread_mutex_lock(&s->gmu);
    int i = gfind(s, sym);
    qp_value *v = i >= 0 ? qp_ref(s->gvals[i]) : NULL;
    pthread_mutex_unlock(&s->gmu);
    return v;
}

qp_value *qp_server_get(qp_server *s, const char *name)
{
    const char *sym = qp_sym_intern(name, strlen(name));
    if (!sym) return NULL;
    qp_value *v = s->mounted ? qp__db_table(s, sym) : NULL;   /* db tables first */
    return v ? v : qp__global_get(s, sym);
}

/* Makes room for one more global; call with gmu held. */
static int ggrow(qp_server *s)
{
    if (s->ng < s->capg) return 0;
    int cap = s->capg ? 2 * s->capg : 16;
    const char **n = realloc(s->gnames, (size_t)cap * sizeof *n);
    if (!n) return QP_ENOMEM;
    s->gnames = n;
    qp_value **v = realloc(s->gvals, (size_t)cap * sizeof *v);
    if (!v) return QP_ENOMEM;
    s->gvals = v;
    s->capg = cap;
    return 0;
}

int qp_server_set(qp_server *s, const char *name, qp_value *value)
{
    const char *sym = qp_sym_intern(name, strlen(name));
    if (!sym || !value) { qp_unref(value); return QP_ENOMEM; }
    if (qp__db_has(s, sym)) { qp_unref(value); return -EEXIST; }   /* a db table's name */
    qp_value *old = NULL;
    int rc = 0;
    pthread_mutex_lock(&s->gmu);
    int i = gfind(s, sym);
    if (i >= 0) {
        old = s->gvals[i];
        s->gvals[i] = value;
    } else if ((rc = ggrow(s))) {
        old = value;
    } else {
        s->gnames[s->ng] = sym;
        s->gvals[s->ng++] = value;
    }
    pthread_mutex_unlock(&s->gmu);
    qp_unref(old);   /* outside the lock: freeing a big value takes time */
    return rc;
}

qp_value *qp_server_reset(qp_server *s)
{
    pthread_mutex_lock(&s->gmu);
    int n = s->ng, kept = 0, gone = 0;
    qp_value *names = qp_vector(QP_SYMBOL, n);
    qp_value **drop = malloc((size_t)(n ? n : 1) * sizeof *drop);
    for (int i = 0; names && drop && i < n; i++) {
        if (!strncmp(s->gnames[i], ".qp.", 4)) {
            s->gnames[kept] = s->gnames[i];
            s->gvals[kept++] = s->gvals[i];
        } else {
            qp_S(names)[gone] = s->gnames[i];
            drop[gone++] = s->gvals[i];
        }
    }
    if (names && drop) s->ng = kept;
    pthread_mutex_unlock(&s->gmu);
    if (!names || !drop) { qp_unref(names); free(drop); return NULL; }
    names->v.n = gone;
    for (int i = 0; i < gone; i++) qp_unref(drop[i]);   /* outside the lock: big values */
    free(drop);
    return names;
}

qp_value *qp__fn_reset(qp_server *s, qp_value *args, void *data)
{
    (void)args, (void)data;
    return qp_server_reset(s);
}

qp_value *qp_server_tables(qp_server *s)
{
    qp_value *r = qp_vector(QP_SYMBOL, 0);
    pthread_mutex_lock(&s->gmu);
    const qp_value *db = s->dbnames;
    for (int i = 0; r && i < s->ng; i++) {
        bool hidden = false;        /* by a db table that appeared since it was set */
        for (int64_t k = 0; db && !hidden && k < db->v.n; k++) hidden = qp_S(db)[k] == s->gnames[i];
        if (!hidden && qp__is_table(s->gvals[i]) && qp_vec_append(r, &s->gnames[i])) {
            qp_unref(r);
            r = NULL;
        }
    }
    for (int64_t i = 0; r && db && i < db->v.n; i++)     /* then the db's */
        if (qp_vec_append(r, &qp_S(db)[i])) { qp_unref(r); r = NULL; }
    pthread_mutex_unlock(&s->gmu);
    return r;
}

void qp__globals_free(qp_server *s)
{
    for (int i = 0; i < s->ng; i++) qp_unref(s->gvals[i]);
    free(s->gnames);
    free(s->gvals);
    s->gnames = NULL;
    s->gvals = NULL;
    s->ng = s->capg = 0;
    qp_unref(s->dbnames);
    s->dbnames = NULL;
    qp_kdb_close(s->db);
    s->db = NULL;
}

/* ====================================================================
 * The mounted db's tables
 * ==================================================================== */

bool qp__db_has(qp_server *s, const char *sym)
{
    bool yes = false;
    pthread_mutex_lock(&s->gmu);
    const qp_value *n = s->dbnames;
    for (int64_t i = 0; n && !yes && i < n->v.n; i++) yes = qp_S(n)[i] == sym;
    pthread_mutex_unlock(&s->gmu);
    return yes;
}

qp_kdb *qp__db_now(qp_server *s, bool force, qp_value **err)
{
    char msg[1024];
    qp_value *names = NULL;
    pthread_mutex_lock(&s->dbmu);
    int rc = qp_kdb_reload(&s->db, force, msg, sizeof msg);
    if (rc == 1 && (names = qp_kdb_tables(s->db))) {
        pthread_mutex_lock(&s->gmu);
        qp_value *old = s->dbnames;
        s->dbnames = names;
        pthread_mutex_unlock(&s->gmu);
        names = old;
    }
    qp_kdb *db = rc < 0 ? NULL : qp_kdb_ref(s->db);
    pthread_mutex_unlock(&s->dbmu);
    qp_unref(names);
    if (!db) *err = qp_error("%s", msg);
    return db;
}

qp_kdb *qp_server_db_table(qp_server *s, const char *name, qp_value **err)
{
    *err = NULL;
    const char *sym = s->mounted && name && *name != '.' ? qp_sym_intern(name, strlen(name)) : NULL;
    if (!sym) return NULL;
    qp_kdb *db = qp__db_now(s, false, err);
    if (!db) {          /* a name it held fails; any other may be a global */
        if (!qp__db_has(s, sym)) { qp_unref(*err); *err = NULL; }
        return NULL;
    }
    if (qp_kdb_has(db, sym)) return db;
    qp_kdb_close(db);
    return NULL;
}

qp_value *qp__db_table(qp_server *s, const char *sym)
{
    qp_value *err = NULL;
    qp_kdb *db = qp_server_db_table(s, sym, &err);
    qp_value *t = db ? qp_kdb_table(db, sym, QP_KDB_ENUMS) : err;
    qp_kdb_close(db);
    return t;
}

qp_value *qp_server_name_taken(qp_server *s, const char *name, const char *by)
{
    qp_value *err = NULL;
    qp_kdb *db = qp_server_db_table(s, name, &err);
    if (!db) return err;
    qp_value *e = qp_error("%s: %s is a db table (of %s): a global cannot replace or hide it; "
                           "choose another name", by, name, qp_kdb_path(db));
    qp_kdb_close(db);
    return e;
}
