/* qpeach/table.h - tables in and out of text: the CSV loader, q IPC files
 * (`-8!`/`set` bytes), and q-console formatting of any value.
 *
 * Memory rules: see value.h. Loaders return a new reference: the table, or
 * an error value (-128) saying what is wrong and where (file, line, column).
 * Formatting returns a malloc'd NUL-terminated string the caller frees.
 */
#ifndef QPEACH_TABLE_H
#define QPEACH_TABLE_H

#include "qpeach/value.h"

#include <stdio.h>

/* The columns of a table that a CSV is loaded into (an import appending
 * to a db table): every column of the file must be one of them, every one
 * of them in the file, each parsed as the type the table holds. */
typedef struct qp_csv_schema {
    const char *of;        /* what holds them, for errors: "table trade" */
    int n;
    const char *const *names;
    const char *types;     /* one q type char per name ('*' a string) */
} qp_csv_schema;

typedef struct qp_csv_opts {
    const char *types;     /* q type chars per column ("SFJ", " " skips a
                            * column), or NULL to infer from the data */
    char delim;            /* 0: ',' */
    int threads;           /* parser threads; 0: the online cores */
    const qp_csv_schema *schema;   /* or NULL; borrowed for the call */
} qp_csv_opts;

/* Loads a CSV file with a header line as a table. opts may be NULL.
 * Without types (or a schema) each column's type is inferred from its
 * first 1000 values: a later value of another type is an error, never a
 * silent change of type (see csv.c). A header naming a column twice is
 * an error. */
qp_value *qp_csv_load(const char *path, const qp_csv_opts *opts);

/* Where qp_csv_scan hands the rows. Both calls get a table borrowed for
 * the call only (keep nothing of it), and return 0 to go on or a negative
 * code to stop the scan. */
typedef struct qp_csv_sink {
    /* Once, before any rows: a table of no rows with the file's columns,
     * of their types (symbol columns as symbols). */
    int (*begin)(void *arg, const qp_value *empty);
    /* The next rows, in file order, one call at a time (from any of the
     * parser threads): the same columns, symbol columns as enumerations
     * (type 20) over the batch's own domain, each distinct name once, in
     * the order the batch first has it. */
    int (*rows)(void *arg, const qp_value *batch);
    void *arg;
} qp_csv_sink;

/* Reads a CSV as qp_csv_load does (the same types, values and errors) but
 * hands its rows to sink a batch at a time, as they are parsed: memory
 * holds a batch (a few MB of the file) per parser thread, never the whole
 * table. Returns 0 when every row was handed over; else a negative code:
 * the file at fault (*error an error value naming file, line, column and
 * value, a new reference), or the code a sink call stopped the scan with,
 * or QP_ENOMEM (*error NULL for both). */
int qp_csv_scan(const char *path, const qp_csv_opts *opts, const qp_csv_sink *sink,
                qp_value **error);
/* Writes a table as CSV with a header row, values as q prints them
 * (2024.03.01D09:30:00.000000000). Returns 0 or a negative code. */
int qp_csv_write(const qp_value *table, const char *path);
/* Same; iso: each column's text chosen by its type so that pandas reads
 * back the values ([output] format = iso in jobs/README.md: ISO 8601
 * dates, timestamps and durations, true/false, inf, nulls blank). */
int qp_csv_write_iso(const qp_value *table, const char *path, bool iso);
/* The same CSV text to an open stream (flushed, not closed): a table or a
 * keyed table, else QP_ETYPE. Returns 0 or a negative code. */
int qp_csv_fwrite(const qp_value *table, FILE *f, bool iso);
/* Loads a q IPC file: the bytes of -8! (with header) or of `set`. */
qp_value *qp_ipcfile_load(const char *path);
/* Writes x as a q IPC file (-8! bytes). Returns 0 or a negative code. */
int qp_ipcfile_write(const qp_value *x, const char *path);

/* q's meta of a table, (+`c!,c)!(+`t`f`a!(t;f;a)): c the column names, t
 * their type chars, f foreign keys, a attributes (symbol vectors of one
 * length, t a char vector). Steals all four (even on failure). New
 * reference; NULL on OOM. */
qp_value *qp_meta_table(qp_value *c, qp_value *t, qp_value *f, qp_value *a);

/* x as the q console shows it (console width cols, 0: 80; rows beyond the
 * console height elided with ".." as q does). malloc'd; NULL on OOM. */
char *qp_format(const qp_value *x, int cols);
/* The first line of x as the q console shows it, into buf (n bytes,
 * NUL-terminated, cut short when full; "?" on OOM): an atom in a message
 * reads as q writes it ("2024.01.02", "`IBM", "0D00:00:01.500000000"). */
void qp_format_line(const qp_value *x, char *buf, size_t n);

#endif
