/* src/py/dbpart.c - the parts of a mounted kdb+ database's table that
 * `.qp.apply` and qtable(name, rows) ask for, reading only those.
 *
 *   (`date; 2022.06.17)   on a partitioned table, where the column is its
 *                         partition column: qp_kdb_table_at, that one
 *                         partition (no other partition's files opened),
 *                         the virtual column first.
 *   (start; end)          rows across the partitions in order: each
 *                         partition the range touches is mapped and
 *                         sliced (views); one partition's rows are returned
 *                         as they are, rows spanning several are
 *                         concatenated (a copy of those rows only). Of a
 *                         splayed or flat table: qp_kdb_table_rows, views
 *                         whose enumerations are checked over those rows.
 *
 * Anything else (another column's value) is left to the caller, which
 * reads the table whole (mapped) as for a resident one.
 *
 * Row counts per partition are learnt as partitions are first mapped and
 * kept, per table, with a reference to the db snapshot they were learnt
 * from (a qp_kdb does not change; a db mounted again after a change on
 * disk is a new snapshot, which starts afresh), so later ranges map only
 * the partitions they overlap. Only the main (Python) thread calls in
 * here: no lock.
 */
#include "py_int.h"

#include <stdlib.h>
#include <string.h>

#include "qpeach/kdb.h"

typedef struct counts {
    qp_kdb *db;                    /* a reference: its address is not reused */
    const char *table;             /* interned */
    int64_t nparts;
    int64_t *n;                    /* rows per partition; -1: not known yet */
} counts;

static counts *cache;
static size_t ncache;

/* The counts of table in db: kept, started, or restarted when the table's
 * were learnt from an older snapshot. */
static counts *counts_of(qp_kdb *db, const char *table, int64_t nparts)
{
    counts *c = NULL;
    for (size_t i = 0; i < ncache && !c; i++)
        if (cache[i].table == table) c = &cache[i];
    if (c && c->db == db) return c;
    if (!c) {
        counts *nc = realloc(cache, (ncache + 1) * sizeof *nc);
        if (!nc) return NULL;
        cache = nc;
        c = &cache[ncache++];
        *c = (counts){ .table = table };
    }
    int64_t *n = malloc((size_t)(nparts ? nparts : 1) * sizeof *n);
    if (!n) return NULL;
    for (int64_t i = 0; i < nparts; i++) n[i] = -1;
    qp_kdb_close(c->db);
    free(c->n);
    *c = (counts){ .db = qp_kdb_ref(db), .table = table, .nparts = nparts, .n = n };
    return c;
}

/* ---- rows across partitions (qp_table_concat) ---- */

typedef struct pieces {
    qp_value **t;
    int64_t n, cap;
} pieces;

static int pieces_add(pieces *p, qp_value *t)   /* steals t */
{
    if (!t) return QP_ENOMEM;
    if (p->n == p->cap) {
        int64_t cap = p->cap ? 2 * p->cap : 8;
        qp_value **n = realloc(p->t, (size_t)cap * sizeof *n);
        if (!n) { qp_unref(t); return QP_ENOMEM; }
        p->t = n;
        p->cap = cap;
    }
    p->t[p->n++] = t;
    return 0;
}

/* Rows [a, b) of partitioned table `table` (0 <= a <= b <= its count). */
static qp_value *rows(qp_kdb *db, const char *table, int64_t a, int64_t b)
{
    if (a == b) {   /* no rows: the columns of the first partition */
        qp_value *tp = qp_kdb_table_part(db, table, 0, QP_KDB_ENUMS);
        if (!tp || qp_is_error(tp)) return tp;
        qp_value *r = qp_table_slice(tp, 0, 0);
        qp_unref(tp);
        return r;
    }
    qp_value *parts = qp_kdb_partitions(db, table);
    if (!parts || qp_is_error(parts)) return parts;
    counts *cn = counts_of(db, table, qp_count(parts));
    qp_unref(parts);
    if (!cn) return NULL;
    pieces p = {0};
    qp_value *r = NULL;
    int64_t off = 0;
    for (int64_t i = 0; i < cn->nparts && off < b; i++) {
        qp_value *tp = NULL;
        if (cn->n[i] < 0) {   /* first visit: learn its count */
            tp = qp_kdb_table_part(db, table, i, QP_KDB_ENUMS);
            if (!tp || qp_is_error(tp)) { r = tp; goto done; }
            cn->n[i] = qp_count(tp);
        }
        int64_t n = cn->n[i];
        if (off + n > a) {    /* overlaps [a, b), since off < b */
            if (!tp) tp = qp_kdb_table_part(db, table, i, QP_KDB_ENUMS);
            if (!tp || qp_is_error(tp)) { r = tp; goto done; }
            int64_t lo = a > off ? a - off : 0, hi = b - off < n ? b - off : n;
            if (pieces_add(&p, qp_table_slice(tp, lo, hi - lo))) { qp_unref(tp); goto done; }
        }
        qp_unref(tp);
        off += n;
    }
    r = p.n ? qp_table_concat(p.t, p.n) : qp_error("rows %lld..%lld of %s not found",
                                                (long long)a, (long long)b, table);
done:
    for (int64_t i = 0; i < p.n; i++) qp_unref(p.t[i]);
    free(p.t);
    return r;
}

qp_value *qp__db_rows(qp_kdb *db, const char *table, int64_t a, int64_t b)
{
    if (!qp_kdb_part_column(db, table)) return qp_kdb_table_rows(db, table, a, b, QP_KDB_ENUMS);
    char err[512];
    int64_t total = 0;
    if (qp_kdb_count(db, table, &total, err, sizeof err)) return qp_error("%s", err);
    if (a < 0 || b < a || a > total)
        return qp_error("rows %lld..%lld outside 0..%lld of %s", (long long)a, (long long)b,
                        (long long)total, table);
    if (b > total) b = total;
    return rows(db, table, a, b);
}

int qp__db_part(qp_server *s, const char *name, const qp_value *part, qp_value **out)
{
    *out = NULL;
    qp_value *err = NULL;
    qp_kdb *db = qp_server_db_table(s, name, &err);
    if (!db) {
        *out = err;                  /* the db could not be mounted again */
        return err != NULL;
    }
    const char *pcol = qp_kdb_part_column(db, name);
    const char *col = part->type == QP_LIST && part->v.n == 2 ? qp_name_of(qp_K(part)[0]) : NULL;
    int r = 1;
    if ((part->type == QP_LONG || part->type == QP_INT) && part->v.n == 2) {
        int64_t a = part->type == QP_LONG ? qp_J(part)[0] : qp_I(part)[0];
        int64_t b = part->type == QP_LONG ? qp_J(part)[1] : qp_I(part)[1];
        *out = qp__db_rows(db, name, a, b);
    } else if (pcol && col && strcmp(col, pcol) == 0) {
        *out = qp_kdb_table_at(db, name, qp_K(part)[1], QP_KDB_ENUMS);
    } else {
        r = 0;
    }
    qp_kdb_close(db);
    return r;
}

void qp__db_fini(void)
{
    for (size_t i = 0; i < ncache; i++) {
        free(cache[i].n);
        qp_kdb_close(cache[i].db);
    }
    free(cache);
    cache = NULL;
    ncache = 0;
}
