/* kdbwrite_rows.c - a splayed table written a batch of rows at a time, as
 * a CSV import parses them (qp_kdb_import_csv): the bytes qp_kdb_write
 * writes for the whole table, without ever holding it.
 *
 * qp__kw_begin writes the table with no rows into its temporary folder,
 * under the lock and the journal, as for any write; each batch is then
 * appended to the column files, the counts in their headers are set at
 * the end, and qp__kw_end commits, or rolls everything back, as for any
 * write. A kill half way is rolled back by the guard or the next writer.
 *
 * Symbols: a batch's symbol column (symbols, or an enumeration over the
 * batch's own names, as qp_csv_scan gives it) is enumerated against db/sym
 * as it comes, each distinct name of a batch looked up once. New names
 * must land in sym in the order qp_kdb_write appends them: column by
 * column, each in row order. Batches add them batch by batch instead: the
 * same order for one symbol column, since a batch's domain lists its names
 * in the order its rows have them (qp_csv_sink). With several, each column
 * notes the new names in the order it first has them, and at the end, when
 * the two orders differ, the indices already written are renumbered in
 * place.
 *
 * Memory rules: per column an fd (NAME# also a 64 KiB buffer), the
 * indices of one batch, and per symbol column two bits and at most an
 * int64 per new name.
 */
#include "kdbwrite_int.h"
#include "core/fileio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096

enum { SIMPLE, ENUMERATED, NESTED };

typedef struct colw {
    int kind;
    int fd;                /* the column file (NESTED: NAME), appended to */
    qp__kw_out *items;     /* NESTED: NAME#, appended to */
    uint64_t off;          /* NESTED: bytes of NAME#'s data so far */
    int sym;               /* ENUMERATED: which one (0, 1, ...) */
    int64_t *order;        /* ENUMERATED: new names (index - nold), in the
                            * order this column first has them */
    int64_t norder, caporder;
} colw;

typedef struct rows {
    qp__kw_plan p;
    qp_value *t0;          /* the columns, no rows */
    char dir[PATH_MAX];    /* the temporary folder */
    colw *c;
    int64_t n;             /* rows written */
    int64_t *buf;          /* a batch's indices or entries */
    int64_t bufcap;
    int nsym;              /* ENUMERATED columns */
    uint8_t *seen;         /* per ENUMERATED column, a bit per new name:
                            * met in it */
    int64_t seencap;       /* bytes of seen per column */
} rows;

static const char *name_of(const rows *w, int c) { return qp_S(qp_table_names(w->t0))[c]; }

/* A failed write of column c's file: err names it. */
static int io_fail(const rows *w, int c, int rc, char *err, size_t errlen)
{
    return qp__kerr(err, errlen, rc, "%s/%s: %s", w->dir, name_of(w, c), qp_strerror(rc));
}

/* Opens a file of the temporary folder at its end (not O_APPEND: Linux
 * appends a pwrite there too, and the header's count is set by pwrite). */
static int open_append(const rows *w, const char *name, int *fd, char *err, size_t errlen)
{
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", w->dir, name);
    *fd = open(path, O_RDWR | O_CLOEXEC);
    if (*fd >= 0 && lseek(*fd, 0, SEEK_END) >= 0) return 0;
    return qp__kerr(err, errlen, -errno, "%s: %s", path, strerror(errno));
}

/* Opens every column file qp__kw_begin wrote. 0 or a negative code. */
static int open_columns(rows *w, char *err, size_t errlen)
{
    int ncol = w->p.ncol, rc = 0;
    if (!(w->c = calloc((size_t)ncol, sizeof *w->c)))
        return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
    for (int c = 0; c < ncol; c++) w->c[c].fd = -1;
    for (int c = 0; c < ncol && !rc; c++) {
        colw *cw = &w->c[c];
        int t = qp_K(qp_table_columns(w->t0))[c]->type;
        cw->kind = t == QP_LIST ? NESTED : t == QP_SYMBOL || t == QP_ENUM ? ENUMERATED : SIMPLE;
        if (cw->kind == ENUMERATED) cw->sym = w->nsym++;
        rc = open_append(w, name_of(w, c), &cw->fd, err, errlen);
        if (rc || cw->kind != NESTED) continue;
        char hname[256];
        snprintf(hname, sizeof hname, "%s#", name_of(w, c));
        if (!(cw->items = malloc(sizeof *cw->items)))
            return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
        *cw->items = (qp__kw_out){ .fd = -1 };
        rc = open_append(w, hname, &cw->items->fd, err, errlen);
    }
    return rc;
}

static int grow_buf(rows *w, int64_t n)
{
    if (n <= w->bufcap) return 0;
    int64_t *b = realloc(w->buf, (size_t)n * sizeof *b);
    if (!b) return QP_ENOMEM;
    w->buf = b;
    w->bufcap = n;
    return 0;
}

/* Room in the seen bits for every new name so far. 0 or QP_ENOMEM. */
static int grow_seen(rows *w)
{
    int64_t need = (w->p.sym.n - w->p.sym.nold + 7) / 8;
    if (need <= w->seencap) return 0;
    int64_t cap = need * 2 > 4096 ? need * 2 : 4096;
    uint8_t *s = calloc((size_t)(cap * w->nsym), 1);
    if (!s) return QP_ENOMEM;
    for (int k = 0; w->seen && k < w->nsym; k++)
        memcpy(s + k * cap, w->seen + k * w->seencap, (size_t)w->seencap);
    free(w->seen);
    w->seen = s;
    w->seencap = cap;
    return 0;
}

/* Notes the new names of column c among idx[0..n) it has not had before. */
static int note_new(rows *w, int c, const int64_t *idx, int64_t n)
{
    colw *cw = &w->c[c];
    int64_t nold = w->p.sym.nold;
    uint8_t *seen = w->seen + cw->sym * w->seencap;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = idx[i] - nold;
        if (v < 0 || seen[v >> 3] & 1 << (v & 7)) continue;
        seen[v >> 3] |= (uint8_t)(1 << (v & 7));
        if (cw->norder == cw->caporder) {
            int64_t cap = cw->caporder ? cw->caporder * 2 : 256;
            int64_t *o = realloc(cw->order, (size_t)cap * sizeof *o);
            if (!o) return QP_ENOMEM;
            cw->order = o;
            cw->caporder = cap;
        }
        cw->order[cw->norder++] = v;
    }
    return 0;
}

/* Column c of a batch (symbols or an enumeration) as indices into sym, in
 * w->buf. 0 or QP_ENOMEM. */
static int enumerate(rows *w, int c, const qp_value *x)
{
    int64_t n = x->v.n;
    int64_t nd = x->type == QP_ENUM ? x->v.dom->v.n : 0;
    if (grow_buf(w, n + nd + 1)) return QP_ENOMEM;
    int64_t *idx = w->buf, *map = w->buf + n;
    if (x->type == QP_ENUM) {
        /* the domain's names once each; an index not in it is the null */
        for (int64_t j = 0; j < nd; j++)
            if ((map[j] = qp__kw_sym_add(&w->p.sym, qp_S(x->v.dom)[j])) < 0) return QP_ENOMEM;
        for (int64_t i = 0; i < n; i++) {
            int64_t k = qp_J(x)[i];
            if (k == QP_NULL_J && (map[nd] = qp__kw_sym_add(&w->p.sym, "")) < 0) return QP_ENOMEM;
            idx[i] = map[k == QP_NULL_J ? nd : k];
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            if ((idx[i] = qp__kw_sym_add(&w->p.sym, qp__kw_symat(x, i))) < 0) return QP_ENOMEM;
    }
    if (w->nsym < 2) return 0;        /* one column: batches add names in its order */
    if (grow_seen(w)) return QP_ENOMEM;
    return note_new(w, c, idx, n);
}

/* The rows of nested column c to NAME# and their entries to NAME. */
static int append_nested(rows *w, int c, const qp_value *x, char *err, size_t errlen)
{
    colw *cw = &w->c[c];
    if (grow_buf(w, x->v.n)) return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
    for (int64_t i = 0; i < x->v.n; i++) {
        const qp_value *it = qp_K(x)[i];
        if (it->type < 1 || it->type > 19 || it->type == QP_SYMBOL || it->type == 3)
            return qp__kerr(err, errlen, QP_ETYPE, "column %s: row %lld is a %s; a general list "
                            "column is written only when every row is a vector", name_of(w, c),
                            (long long)(w->n + i), qp_type_name(it->type));
        qp__kw_nest_item(cw->items, it, &cw->off, (uint64_t *)&w->buf[i]);
    }
    int rc = cw->items->rc ? cw->items->rc : qp__write_all(cw->fd, w->buf, (size_t)x->v.n * 8);
    return rc ? io_fail(w, c, rc, err, errlen) : 0;
}

/* Appends the rows of batch t (w->t0's columns and types). */
static int add_rows(rows *w, const qp_value *t, char *err, size_t errlen)
{
    const qp_value *cols = qp_table_columns(t), *want = qp_table_columns(w->t0);
    if (t->type != QP_TABLE || cols->v.n != w->p.ncol)
        return qp__kerr(err, errlen, QP_EARG, "a batch of rows with other columns");
    for (int c = 0; c < w->p.ncol; c++) {
        const qp_value *x = qp_K(cols)[c];
        colw *cw = &w->c[c];
        int rc, t0 = qp_K(want)[c]->type;
        if (x->type != t0 && !(cw->kind == ENUMERATED && (x->type == QP_SYMBOL || x->type == QP_ENUM)))
            return qp__kerr(err, errlen, QP_ETYPE, "column %s: a batch of %s, not %s", name_of(w, c),
                            qp_type_name(x->type), qp_type_name(t0));
        if (cw->kind == NESTED) {
            if ((rc = append_nested(w, c, x, err, errlen))) return rc;
            continue;
        }
        if (cw->kind == ENUMERATED && (rc = enumerate(w, c, x)))
            return qp__kerr(err, errlen, rc, "out of memory");
        const void *data = cw->kind == ENUMERATED ? (const void *)w->buf : x->v.data;
        size_t bytes = (size_t)x->v.n * (cw->kind == ENUMERATED ? 8 : qp_type_width(x->type));
        if ((rc = qp__write_all(cw->fd, data, bytes))) return io_fail(w, c, rc, err, errlen);
    }
    w->n += qp_count(t);
    return 0;
}

/* New names' places in sym as qp_kdb_write gives them (column by column,
 * each in the order it first has them): perm[v] for the v-th new name as
 * added. Returns whether that differs from the order they were added in. */
static bool final_order(const rows *w, int64_t *perm)
{
    int64_t nnew = w->p.sym.n - w->p.sym.nold, next = 0;
    for (int64_t v = 0; v < nnew; v++) perm[v] = -1;
    for (int c = 0; c < w->p.ncol; c++)
        for (int64_t k = 0; k < w->c[c].norder; k++)
            if (perm[w->c[c].order[k]] < 0) perm[w->c[c].order[k]] = next++;
    bool moved = false;
    for (int64_t v = 0; v < nnew; v++) moved |= perm[v] != v;
    return moved;
}

/* Renumbers the indices column c's file holds, through perm. */
static int renumber(const rows *w, int c, const int64_t *perm)
{
    int64_t nold = w->p.sym.nold, block[8192];
    for (int64_t at = 0; at < w->n; at += 8192) {
        size_t k = (size_t)(w->n - at < 8192 ? w->n - at : 8192);
        off_t pos = PAGE + (off_t)at * 8;
        if (pread(w->c[c].fd, block, k * 8, pos) != (ssize_t)(k * 8)) return QP_EIO;
        for (size_t i = 0; i < k; i++)
            if (block[i] >= nold) block[i] = nold + perm[block[i] - nold];
        if (pwrite(w->c[c].fd, block, k * 8, pos) != (ssize_t)(k * 8)) return -errno;
    }
    return 0;
}

/* New names in qp_kdb_write's order, in sym and in the files. */
static int reorder(rows *w, char *err, size_t errlen)
{
    qp__kw_sym *s = &w->p.sym;
    int64_t nnew = s->n - s->nold;
    int64_t *perm = malloc((size_t)(nnew ? nnew : 1) * sizeof *perm);
    const char **names = malloc((size_t)(nnew ? nnew : 1) * sizeof *names);
    int rc = perm && names ? 0 : qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
    if (!rc && final_order(w, perm)) {
        for (int64_t v = 0; v < nnew; v++) names[perm[v]] = s->names[s->nold + v];
        memcpy(s->names + s->nold, names, (size_t)nnew * sizeof *names);   /* sym's slots are
                                                                               * not used again */
        for (int c = 0; c < w->p.ncol && !rc; c++)
            if (w->c[c].kind == ENUMERATED && (rc = renumber(w, c, perm)))
                rc = io_fail(w, c, rc, err, errlen);
    }
    free(perm);
    free(names);
    return rc;
}

/* Each file's count (the header's), NAME#'s last bytes, the sym order. */
static int finish_columns(rows *w, char *err, size_t errlen)
{
    for (int c = 0; c < w->p.ncol; c++) {
        colw *cw = &w->c[c];
        off_t at = cw->kind == SIMPLE ? 8 : PAGE - 8;
        int rc = 0;
        if (cw->kind == NESTED) {
            qp__kw_flush(cw->items);
            rc = cw->items->rc;
        }
        if (!rc && pwrite(cw->fd, &w->n, 8, at) != 8) rc = -errno;
        if (rc) return io_fail(w, c, rc, err, errlen);
    }
    return w->nsym > 1 ? reorder(w, err, errlen) : 0;
}

static void close_columns(rows *w)
{
    for (int c = 0; w->c && c < w->p.ncol; c++) {
        if (w->c[c].fd >= 0) close(w->c[c].fd);
        if (w->c[c].items && w->c[c].items->fd >= 0) close(w->c[c].items->fd);
        free(w->c[c].items);
        free(w->c[c].order);
    }
    free(w->c);
    w->c = NULL;
}

/* ---- qp_kdb_import_csv ---- */

typedef struct import {
    rows w;
    bool begun;
    const char *db, *name;
    const qp_kdb_write_opts *opts;
    char *err;
    size_t errlen;
} import;

static int import_begin(void *arg, const qp_value *empty)
{
    import *im = arg;
    rows *w = &im->w;
    im->begun = true;
    w->t0 = qp_ref((qp_value *)empty);
    int rc = qp__kw_begin(&w->p, im->db, im->name, empty, im->opts, im->err, im->errlen);
    if (rc) return rc;
    qp__kw_path(w->dir, sizeof w->dir, im->db, ".", im->name, QP__KW_NEW);
    return open_columns(w, im->err, im->errlen);
}

static int import_rows(void *arg, const qp_value *batch)
{
    import *im = arg;
    return add_rows(&im->w, batch, im->err, im->errlen);
}

int qp_kdb_import_csv(const char *csv, const qp_csv_opts *copts, const char *db, const char *name,
                      const qp_kdb_write_opts *opts, qp_kdb_import *st, char *err, size_t errlen)
{
    qp_kdb_import none;
    if (!st) st = &none;
    *st = (qp_kdb_import){0};
    if (err && errlen) err[0] = 0;
    if (opts && (opts->partition || (opts->parted && *opts->parted)))
        return qp__kerr(err, errlen, QP_EARG, "a partitioned or p# table is not imported a batch "
                        "at a time: its rows are reordered");
    import im = { .db = db, .name = name, .opts = opts, .err = err, .errlen = errlen };
    qp_csv_sink sink = { import_begin, import_rows, &im };
    qp_value *bad = NULL;
    int rc = qp_csv_scan(csv, copts, &sink, &bad);
    if (bad) {
        qp__kerr(err, errlen, rc, "%s", bad->s);
        st->csv_fault = true;
        qp_unref(bad);
    } else if (rc && err && errlen && !err[0]) {
        qp__kerr(err, errlen, rc, "%s", qp_strerror(rc));
    }
    if (!rc && (rc = finish_columns(&im.w, err, errlen)) == 0) {
        st->rows = im.w.n;
        st->cols = im.w.p.ncol;
    }
    close_columns(&im.w);
    if (im.begun) rc = qp__kw_end(&im.w.p, rc, err, errlen);
    qp_unref(im.w.t0);
    free(im.w.buf);
    free(im.w.seen);
    return rc;
}
