/* src/py/select.c - the rows of a table that a `.qp.apply` part selects:
 * (start; end) rows, a view; or (column; value), the rows where column =
 * value as q's = says, gathered.
 *
 * (column; value) goes through the column's group index (core/group.c),
 * built at the first such part and kept while the column lives: a job of
 * `by = column` then costs one pass over the column per worker instead of
 * one per part, and each part gathers only its own rows. The cache holds
 * one reference to each indexed column (so its items stay as they are)
 * and is swept like symcat.c's: an entry whose column only it holds is
 * dropped at the next `.qp` call. It holds at most GROUP_BUDGET bytes of
 * indexes (8 per row), the least recently used dropped first.
 *
 * A partitioned db table is selected partition by partition (as q's
 * `select from t where c = v` does): each partition is mapped once per db
 * snapshot and kept with its index, and a part is its rows of each
 * partition, concatenated. That equals the rows of the whole table
 * concatenated (what .qp.apply read before), with the same types; when a
 * partition cannot be selected from, the whole table is read as before,
 * so the error is the one it gives.
 *
 * Threads: .qp.apply runs on the main thread only, which owns these
 * caches.
 */
#include "py_int.h"
#include "core/group_int.h"

#include <stdlib.h>
#include <string.h>

#include "qpeach/kdb.h"

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

/* ---- the group index cache ---- */

#define GROUP_ENTRIES 64
#define GROUP_BUDGET ((size_t)1 << 30)

typedef struct gentry {
    qp_value *col;         /* the column: one reference */
    qp__group *g;
    size_t bytes;
    uint64_t used;         /* the tick of its last use */
} gentry;

static gentry ents[GROUP_ENTRIES];
static int nents;
static size_t held;        /* bytes of every index */
static uint64_t ticks;

static void drop(int i)
{
    held -= ents[i].bytes;
    qp__group_free(ents[i].g);
    qp_unref(ents[i].col);
    ents[i] = ents[--nents];
}

void qp__select_sweep(void)
{
    for (int i = nents; i-- > 0;)
        if (atomic_load(&ents[i].col->refs) == 1) drop(i);
}

/* The least recently used entry other than keep, or -1. */
static int oldest(int keep)
{
    int o = -1;
    for (int i = 0; i < nents; i++)
        if (i != keep && (o < 0 || ents[i].used < ents[o].used)) o = i;
    return o;
}

/* col's index (borrowed from the cache), built at its first use. NULL
 * with *rc QP_ETYPE (no index for such a column) or QP_ENOMEM. */
static const qp__group *index_of(const qp_value *col, int *rc)
{
    for (int i = 0; i < nents; i++)
        if (ents[i].col == col) {
            ents[i].used = ++ticks;
            return ents[i].g;
        }
    qp__group *g;
    if ((*rc = qp__group_build(col, &g)) != 0) return NULL;
    if (nents == GROUP_ENTRIES) drop(oldest(-1));
    int at = nents++;
    ents[at] = (gentry){ .col = qp_ref((qp_value *)col), .g = g, .bytes = qp__group_bytes(g),
                         .used = ++ticks };
    held += ents[at].bytes;
    for (int o; held > GROUP_BUDGET && (o = oldest(at)) >= 0;) {
        drop(o);
        if (at == nents) at = o;     /* drop moved the last entry into o */
    }
    return ents[at].g;
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
    int rc = 0;
    const qp__group *g = index_of(col, &rc);
    const int64_t *idx = NULL;
    int64_t m = g ? qp__group_rows(g, a, &idx) : 0;
    qp_unref(a);
    if (!g) return rc == QP_ENOMEM ? NULL : qp_error("qp.apply: column '%s' of type %s cannot be "
                                                     "grouped", colname, qp_type_name(col->type));
    const qp_value *names = qp_table_names(t), *cols = qp_table_columns(t);
    qp_value *out = qp_vector(QP_LIST, cols->v.n);
    for (int64_t c = 0; out && c < cols->v.n; c++) {
        qp_K(out)[c] = gather(qp_K(cols)[c], idx, m);
        if (!qp_K(out)[c]) { qp_unref(out); out = NULL; }
    }
    return out ? qp_table(qp_dict(qp_ref((qp_value *)names), out)) : NULL;
}

qp_value *qp__select(const qp_value *t, const qp_value *part)
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


/* ---- partitioned db tables ---- */

/* The partitions of the one db table selected from last: each mapped
 * once per snapshot of the db. */
static struct {
    qp_kdb *db;            /* the snapshot (a reference) */
    const char *table;     /* interned */
    qp_value **parts;      /* each partition's table (new references) */
    int64_t n;
} pc;

static void parts_drop(void)
{
    for (int64_t i = 0; i < pc.n; i++) qp_unref(pc.parts[i]);
    free(pc.parts);
    qp_kdb_close(pc.db);
    memset(&pc, 0, sizeof pc);
}

/* Maps table's partitions of db into pc, unless they are there. 0, or -1
 * (a partition that does not read, no partitions, or OOM: the caller
 * reads the whole table instead). */
static int parts_map(qp_kdb *db, const char *table)
{
    if (pc.db == db && pc.table == table) return 0;
    parts_drop();
    qp_value *ps = qp_kdb_partitions(db, table);
    if (!ps || qp_is_error(ps) || ps->v.n == 0) { qp_unref(ps); return -1; }
    int64_t n = ps->v.n;
    qp_unref(ps);
    qp_value **parts = calloc((size_t)n, sizeof *parts);
    for (int64_t i = 0; parts && i < n; i++) {
        parts[i] = qp_kdb_table_part(db, table, i, QP_KDB_ENUMS);
        if (!parts[i] || qp_is_error(parts[i])) {
            for (int64_t k = 0; k <= i; k++) qp_unref(parts[k]);
            free(parts);
            return -1;
        }
    }
    if (!parts) return -1;
    pc.db = qp_kdb_ref(db);
    pc.table = table;
    pc.parts = parts;
    pc.n = n;
    return 0;
}

qp_value *qp__select_parted(qp_kdb *db, const char *table, const char *col, const qp_value *val)
{
    qp_value **sel = NULL, *r = NULL;
    int64_t n = 0;
    if (parts_map(db, table) == 0 && (sel = calloc((size_t)pc.n, sizeof *sel)) != NULL) {
        bool all = true;
        for (n = 0; all && n < pc.n; n++) {
            sel[n] = rows_where(pc.parts[n], col, val);
            all = sel[n] && !qp_is_error(sel[n]);
        }
        if (all) r = qp_table_concat(sel, n);
        while (n-- > 0) qp_unref(sel[n]);
        free(sel);
    }
    if (r && !qp_is_error(r)) return r;
    qp_unref(r);
    /* as before: the whole table, its error, its rows */
    qp_value *t = qp_kdb_table(db, table, QP_KDB_ENUMS);
    if (!t || qp_is_error(t)) return t;
    r = rows_where(t, col, val);
    qp_unref(t);
    return r;
}

void qp__select_fini(void)
{
    parts_drop();
    while (nents) drop(nents - 1);
}

