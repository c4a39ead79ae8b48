/* kdbwrite_int.h - internals of the kdb+ writer shared by kdbwrite.c (the
 * plan, column files, folders) and kdbwrite_sym.c (the sym domain, q's p#
 * index, dates). Not installed; memory rules as in kdbwrite.c. */
#ifndef QPEACH_KDBWRITE_INT_H
#define QPEACH_KDBWRITE_INT_H

#include "kdb_int.h"      /* qp__kerr */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Buffered output to one file, with a sticky error. */
typedef struct qp__kw_out {
    int fd;                /* the file being written, -1 when none */
    int rc;                /* first error (-errno), sticky */
    size_t used;           /* bytes waiting in buf */
    uint8_t buf[1 << 16];
} qp__kw_out;
void qp__kw_put(qp__kw_out *o, const void *p, size_t n);


/* The symbol of row r of a symbol (11) or enumeration (20) column ("" for
 * null). Borrowed. */
const char *qp__kw_symat(const qp_value *x, int64_t r);


/* The enumeration domain: db/sym as it is plus the names to append. */
typedef struct qp__kw_sym {
    qp_buf *file;          /* the existing db/sym, read whole, or NULL */
    const char **names;    /* every name in domain order: into file, or
                            * borrowed from the table being written */
    int64_t n, cap;        /* names, allocated */
    int64_t nold;          /* names that came from the file */
    int64_t *slots;        /* hash of names: index + 1, 0 empty */
    size_t mask;           /* slots - 1 (a power of two less one) */
} qp__kw_sym;

/* Reads db/sym when present (NUL-ended names to the end of the file, the
 * header count being advisory). 0 or a negative code with err naming it. */
int qp__kw_sym_load(qp__kw_sym *s, const char *db, char *err, size_t errlen);
/* Index of name, appended when new (name must outlive s). -1 on OOM. */
int64_t qp__kw_sym_add(qp__kw_sym *s, const char *name);
/* Index of name (its first occurrence), or -1. */
int64_t qp__kw_sym_find(const qp__kw_sym *s, const char *name);
/* True when names were appended. */
bool qp__kw_sym_new(const qp__kw_sym *s);
/* Writes the whole new sym file: the old bytes (or a fresh `ff 01`
 * header with count 0, as q's `?` leaves it), then the new names. */
void qp__kw_sym_write(const qp__kw_sym *s, qp__kw_out *o);
void qp__kw_sym_free(qp__kw_sym *s);

/* ---- A write (kdbwrite.c) ---- */

/* A table folder written: DIR/.NAME.qpeach-new, to be DIR/NAME. */
typedef struct qp__kw_move {
    char dir[16];          /* its folder under db: a date, or "." */
} qp__kw_move;

/* A write under way, from qp__kw_begin to qp__kw_end. */
typedef struct qp__kw_plan {
    const char *db, *name;
    const qp_value *t;
    int64_t n;             /* rows */
    int ncol;
    int pcol;              /* partition column, -1: splayed */
    int parted;            /* p# column, -1: none */
    bool syms;             /* some stored column is enumerated */
    int64_t *perm;         /* row order (grouped by partition, parted
                            * sorted), or NULL: rows in table order */
    int64_t np;            /* partitions (1 when splayed) */
    int64_t *pstart;       /* np + 1 starts into perm */
    qp__kw_sym sym;        /* the domain */
    qp__kw_move *moves;    /* one per table folder */
    int64_t nmoves;
    bool symnew;           /* db/.sym.qpeach-new written */
    int jfd;               /* the journal, or -1 */
    qp__kw_out *o;
    qp_kdb_lock *own;      /* the lock taken for this write, or NULL */
    qp_kdb_lock *lk;       /* the caller's, or NULL */
} qp__kw_plan;

/* Checks table t, takes db's lock (opts->lock, or one of its own), reads
 * db/sym and writes t's rows into each table folder's temporary folder
 * (DIR/.NAME.qpeach-new), each step noted in db's journal. 0 or a
 * negative code with err; qp__kw_end finishes either way. */
int qp__kw_begin(qp__kw_plan *p, const char *db, const char *name, const qp_value *t,
                 const qp_kdb_write_opts *opts, char *err, size_t errlen);
/* rc 0: writes the new sym and puts every folder in place; otherwise, or
 * when that fails, rolls back what the journal says was done. Then
 * releases what qp__kw_begin took. Returns rc, or the commit's failure. */
int qp__kw_end(qp__kw_plan *p, int rc, char *err, size_t errlen);

/* One row of a nested column: its bytes into NAME#'s data at *off
 * (advanced), its entry for NAME into *ent. */
void qp__kw_nest_item(qp__kw_out *o, const qp_value *it, uint64_t *off, uint64_t *ent);
/* Flushes the buffered bytes (the sticky error in o->rc). */
void qp__kw_flush(qp__kw_out *o);

/* ---- One writer at a time, and roll back (kdbwrite_lock.c) ---- */
#define QP__KW_LOCK ".qpeach.lock"        /* at the db root, while a write runs */
#define QP__KW_JOURNAL ".qpeach.journal"  /* ditto: what the write changed */
#define QP__KW_NEW ".qpeach-new"          /* DIR/.NAME.qpeach-new: written, not placed */
#define QP__KW_OLD ".qpeach-old"          /* DIR/.NAME.qpeach-old: replaced, kept */

/* db/dir/name, or db/dir/.name+suffix when suffix is given; dir "." is
 * the root. */
void qp__kw_path(char *buf, size_t cap, const char *db, const char *dir, const char *name,
                 const char *suffix);
/* Creates (empties) db's journal for writing. 0 or a negative code. */
int qp__kw_jopen(const char *db, int *fd, char *err, size_t errlen);
/* Appends one line to the journal. 0 or a negative code with err. */
int qp__kw_jot(int fd, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Rolls back (or, after `done`, finishes) the write db's journal records,
 * then removes the journal. 0 when there was none or it was handled. */
int qp__kw_recover(const char *db, char *err, size_t errlen);
/* Marks a write under lk committed (the db folder it made stays). */
void qp__kw_committed(qp_kdb_lock *lk);

/* The runs of a p# column: distinct values in order and where each starts. */
typedef struct qp__kw_runs {
    int64_t *val, *start;
    int64_t n, cap;
} qp__kw_runs;
/* Notes value v at row i (rows in order). 0 or QP_ENOMEM. */
int qp__kw_runs_add(qp__kw_runs *r, int64_t v, int64_t i);
/* True when q's index for these runs is known byte for byte (see
 * kdbwrite_sym.c: hash tables up to 16384 slots, i.e. <= 8192 runs). */
bool qp__kw_parted_ok(const qp__kw_runs *r);
/* Writes q's p# index for a column of n rows after its data. 0 or QP_ENOMEM. */
int qp__kw_parted_index(const qp__kw_runs *r, int64_t n, qp__kw_out *o);
void qp__kw_runs_free(qp__kw_runs *r);

#endif
