/* kdbrows.c - what a task asks of a db table, reading only that:
 *
 *   qp_kdb_rows       rows [a, b): of a splayed or flat table views of its
 *                     mapping (qp_kdb_table_rows); of a partitioned one
 *                     each partition the range touches is mapped and
 *                     sliced (views), one partition's rows returned as
 *                     they are, rows spanning several concatenated (a
 *                     copy of those rows only).
 *   qp_kdb_distinct   a column's distinct values: a partitioned table's
 *                     partition column from the folder names, another
 *                     column one partition mapped at a time (a whole
 *                     partitioned table would be a copy).
 *
 * Row counts per partition are learnt from a column header the first time
 * a range passes a partition (no partition before the rows is mapped) and
 * kept with the table in the db snapshot (a qp_kdb never changes; a db
 * mounted again after a change on disk is a new snapshot, which starts
 * afresh), so later ranges map only the partitions they overlap. Threads
 * may race to learn a count: they store the same number.
 */
#include "kdb_int.h"

#include <stdlib.h>
#include <string.h>

/* The row counts of partitioned table t, made at the first use: -1 for
 * each partition not mapped yet. NULL on OOM. */
static _Atomic int64_t *counts_of(qp_kdb *db, qp__ktable *t)
{
    pthread_mutex_lock(&db->lock);
    if (!t->rows && (t->rows = malloc((size_t)(t->nparts ? t->nparts : 1) * sizeof *t->rows)))
        for (int64_t i = 0; i < t->nparts; i++) atomic_init(&t->rows[i], -1);
    _Atomic int64_t *n = t->rows;
    pthread_mutex_unlock(&db->lock);
    return n;
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

/* Rows [a, b) of partitioned table t (0 <= a < b <= its count): columns
 * want (NULL: all) and pcol as qp__kdb_part's. */
static qp_value *part_rows(qp_kdb *db, qp__ktable *t, int64_t a, int64_t b, const qp_value *want,
                           bool pcol, unsigned flags)
{
    _Atomic int64_t *cn = counts_of(db, t);
    if (!cn) return NULL;
    pieces p = {0};
    qp_value *r = NULL;
    int64_t off = 0;
    for (int64_t i = 0; i < t->nparts && off < b; i++) {
        qp_value *tp = NULL;
        int64_t n = atomic_load_explicit(&cn[i], memory_order_relaxed);
        if (n < 0) {   /* first visit: learn its count from a header */
            char err[512];
            if (qp__kdb_part_count(db, t, i, &n, err, sizeof err)) {
                r = qp_error("%s", err);
                goto done;
            }
            atomic_store_explicit(&cn[i], n, memory_order_relaxed);
        }
        if (off + n > a) {    /* overlaps [a, b), since off < b */
            if (!tp) tp = qp__kdb_part(db, t, i, want, pcol, flags);
            if (!tp || qp_is_error(tp)) { r = tp; goto done; }
            int64_t lo = a > off ? a - off : 0, hi = b - off < n ? b - off : n;
            if (pieces_add(&p, qp_table_slice(tp, lo, hi - lo))) { qp_unref(tp); goto done; }
        }
        qp_unref(tp);
        off += n;
    }
    r = p.n ? qp_table_concat(p.t, p.n) : qp_error("rows %lld..%lld of %s not found",
                                                (long long)a, (long long)b, t->name);
done:
    for (int64_t i = 0; i < p.n; i++) qp_unref(p.t[i]);
    free(p.t);
    return r;
}

qp_value *qp__kdb_rows_of(qp_kdb *db, qp__ktable *t, int64_t a, int64_t b, const qp_value *want,
                          bool pcol, unsigned flags)
{
    char err[512];
    int64_t total = 0;
    if (qp_kdb_count(db, t->name, &total, err, sizeof err)) return qp_error("%s", err);
    if (a < 0 || b < a || a > total)
        return qp_error("rows %lld..%lld outside 0..%lld of %s", (long long)a, (long long)b,
                        (long long)total, t->name);
    if (b > total) b = total;
    if (a == b) {   /* no rows: the columns of the first partition */
        qp_value *tp = t->nparts ? qp__kdb_part(db, t, 0, want, pcol, flags)
                                 : qp_error("table %s has no partitions", t->name);
        if (!tp || qp_is_error(tp)) return tp;
        qp_value *r = qp_table_slice(tp, 0, 0);
        qp_unref(tp);
        return r;
    }
    return part_rows(db, t, a, b, want, pcol, flags);
}

qp_value *qp_kdb_rows(qp_kdb *db, const char *table, int64_t a, int64_t b, unsigned flags)
{
    if (!qp_kdb_part_column(db, table)) return qp_kdb_table_rows(db, table, a, b, flags);
    return qp__kdb_rows_of(db, qp__kdb_find(db, table), a, b, NULL, true, flags);
}

/* ---- distinct values ---- */

/* Distinct values of column col over every partition of table t, one
 * partition mapped at a time. */
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

qp_value *qp_kdb_distinct(qp_kdb *db, const char *table, const char *col)
{
    const char *pcol = qp_kdb_part_column(db, table);
    if (pcol && strcmp(col, pcol) == 0) return qp_kdb_partitions(db, table);
    if (pcol) return parts_distinct(db, table, col);
    qp_value *t = qp_kdb_table(db, table, QP_KDB_ENUMS);
    if (!t || qp_is_error(t)) return t;
    const qp_value *c = qp_table_column(t, col);
    qp_value *r = c ? qp_distinct_sorted(c) : qp_error("%s: no such column", col);
    qp_unref(t);
    return r;
}
