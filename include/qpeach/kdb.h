/* qpeach/kdb.h - kdb+ databases on disk: read in place (mapped), written
 * q-compatibly. Byte layouts: q's own (src/kdb/kdbfile.c reads them,
 * kdbwrite.c writes them).
 *
 * Memory rules (value.h's words):
 *   - Loaders return a new reference: the value, or an error value (-128)
 *     whose text names the file (and column) and what is wrong. They never
 *     read past the end of a mapping.
 *   - The numeric vectors of an uncompressed column file are views on one
 *     read-only mmap of the file (qp_buf_map): nothing is copied, and a
 *     value keeps its mapping alive after the qp_kdb is closed. Compressed
 *     files are decompressed once into memory. Pre-3.6 int32 enumerations
 *     are widened into a new int64 buffer (the one copy the reader makes).
 *   - Enumerated symbol columns come back as type 20 (QP_ENUM) viewing the
 *     mapped indices, with the domain (`sym`, or any other domain file at
 *     the root) shared by every column of the db, when flags has
 *     QP_KDB_ENUMS; otherwise as symbol vectors (qp_enum_resolve: one
 *     pointer per row, no string interned per row).
 *   - A qp_kdb is safe to use from several threads (one mutex inside).
 *     It is reference counted: qp_kdb_close drops one reference, and the
 *     last must not race with other calls on it. Its listing never
 *     changes; qp_kdb_reload makes a new qp_kdb when the disk changed.
 */
#ifndef QPEACH_KDB_H
#define QPEACH_KDB_H

#include "qpeach/table.h"
#include "qpeach/value.h"

enum { QP_KDB_ENUMS = 1 };   /* flags: keep enumerations as type 20 */

/* ---- Files ---- */

/* Loads one file q wrote: `ff 01` flat value (a table, a `sym` domain, a
 * `.d`), `fe 20` vector (zero-count rule), `fd 20` enumeration or anymap
 * page, pre-3.6 `fe` + name enumeration, pre-3.6 nested (77+t with
 * `name#`), any of them inside `kxzipped` (algorithms 0, 1, 2; 3/4/5
 * snappy/lz4hc/zstd and encrypted files are refused by name).
 * Enumerations resolve against the domain files of root, the db root the
 * file belongs to (the folder holding `sym` and par.txt), as qp_kdb_open
 * reads them: never the file's own folder or one above root. NULL root:
 * the file belongs to no db, and an enumeration in it is refused naming
 * its domain. */
qp_value *qp_kdb_load_file(const char *path, const char *root, unsigned flags);

/* ---- Databases ---- */

typedef struct qp_kdb qp_kdb;

/* Mounts the database at path: a partitioned root (date, month, year or
 * int partition folders, optionally par.txt segments), a root of splayed
 * folders and flat table files, or one splayed table folder (its table is
 * named after the folder, and its root is the folder above it). A table
 * is a folder with `.d` or column files (a folder with neither is left
 * out: qp_kdb_skipped), or a flat table file. Partition folders of a kind
 * that lost to another (a month folder in a date-partitioned root) are
 * left out as q leaves them (qp_kdb_skipped); one of the winning kind that
 * cannot be read refuses the partitioned tables (qp_kdb_unreadable).
 * Enumeration domains are the
 * root's files (the root holding par.txt), never a folder above it.
 * Reads folder listings, par.txt and the first bytes of files without
 * `.d` beside them: no column is mapped and no domain opened until a
 * table is asked for. A path holding no table is refused ("PATH: no kdb+
 * tables found ..."). Returns 0 or a negative code, with a message in
 * err. The qp_kdb is a snapshot of that listing: see qp_kdb_reload. */
int qp_kdb_open(const char *path, qp_kdb **out, char *err, size_t errlen);
/* Drops a reference (the one qp_kdb_open gave, or qp_kdb_ref's); the last
 * frees the db. NULL-safe. Values read from it keep their mappings. */
void qp_kdb_close(qp_kdb *db);
qp_kdb *qp_kdb_ref(qp_kdb *db);       /* a new reference to db */
const char *qp_kdb_path(const qp_kdb *db);   /* borrowed */
/* Why a folder was left out (qp_kdb_skipped). */
enum {
    QP_KDB_SKIP_NOT_TABLE = 1,  /* neither .d nor column files: an empty
                                 * folder, one holding only a .q script,
                                 * TorQ's int folders inside a partition */
    QP_KDB_SKIP_OTHER_KIND,     /* named as a partition of a kind that lost
                                 * (a month folder in a date-partitioned
                                 * db): q ignores it too */
    QP_KDB_SKIP_UNOPENED,       /* could not be opened (a broken link, no
                                 * permission) and holds no known table */
};
/* The i-th folder (0-based) that was listed where a table or a partition
 * could be but was left out, or NULL past the last. Borrowed. *reason
 * (when given) is a QP_KDB_SKIP_*; why (when given, whylen bytes) gets the
 * words for it ("not a table (neither .d nor column files)", "named as a
 * month partition, but this db is partitioned by date: not one of its
 * partitions (q ignores it too)", "cannot be opened (Permission denied)"). */
const char *qp_kdb_skipped(const qp_kdb *db, int64_t i, int *reason, char *why, size_t whylen);
/* The i-th partition folder (0-based) of the winning kind that cannot be
 * read (a broken link to a disk not mounted, no permission), its cause
 * (errno) in *err; NULL past the last. Borrowed. While there is one, every
 * partitioned table is refused (its reads, counts, meta and partitions
 * fail naming the folder and the cause): which of its rows are there is
 * not known. A db whose only partitions are such folders fails to open. */
const char *qp_kdb_unreadable(const qp_kdb *db, int64_t i, int *err);
/* Mounts *db's path again when force, or when what its listing depends
 * on changed since it was opened: the root folder, par.txt and its segment
 * folders (a partition or table added or removed there), or a domain
 * file (sym grown). Checking costs a stat of each. A table added to an
 * existing partition, or files rewritten inside a table folder, change
 * none of them: force finds those. On a new mount *db is replaced and the
 * old reference dropped (callers holding their own references keep the
 * old snapshot). Returns 1 when replaced, 0 when unchanged, or a negative
 * code with err (*db kept). Not thread-safe on one *db: callers lock. */
int qp_kdb_reload(qp_kdb **db, bool force, char *err, size_t errlen);

/* The partition a folder name stands for: a date (2015.01.07), a month
 * (2015.01) or a number (a year, 2015, or an int partition). Returns the
 * type of qp_kdb_partitions' vector for it (QP_DATE, QP_MONTH or QP_LONG)
 * with its value in *v (days or months since 2000.01.01, the number), or
 * 0 when name is none of those. */
int qp_kdb_part_name(const char *name, int64_t *v);

/* Table names, sorted (a symbol vector). New reference. */
qp_value *qp_kdb_tables(qp_kdb *db);
/* True when the db has a table of that name, or an entry of that name at
 * its root that could not be opened (it may be a table: reading it then
 * fails with the cause, so no global or "no such table" stands in for it). */
bool qp_kdb_has(qp_kdb *db, const char *table);
/* The virtual partition column of a partitioned table ("date", "month",
 * "year" or "int"), or NULL for splayed and flat tables. Borrowed. */
const char *qp_kdb_part_column(qp_kdb *db, const char *table);
/* The partitions whose folder holds the table, ascending: a date (14), month (13)
 * or long (7; for year and int partitions) vector. An empty long vector
 * for splayed and flat tables. New reference, or an error value. */
qp_value *qp_kdb_partitions(qp_kdb *db, const char *table);
/* Where table's files are: its splayed folder or flat file, or for a
 * partitioned table its folder in partition part (an index into
 * qp_kdb_partitions; par.txt segments resolved). malloc'd; NULL when there
 * is no such table or partition, or on OOM. */
char *qp_kdb_table_dir(qp_kdb *db, const char *table, int64_t part);
/* Columns of the table as q's meta shows them (c, t, f, a), the virtual
 * partition column first. Reads the `.d` and the headers of one
 * partition's columns only. New reference, or an error value. */
qp_value *qp_kdb_meta(qp_kdb *db, const char *table);
/* Row count (all partitions; reads one `.d` and then one column header
 * per partition).
 * Returns 0 or a negative code, with a message in err. */
int qp_kdb_count(qp_kdb *db, const char *table, int64_t *n, char *err, size_t errlen);
/* One partition (index into qp_kdb_partitions) of a partitioned table, the
 * virtual column first; no other partition's files are opened. A table
 * missing from that partition comes back with 0 rows and the columns of
 * the others. New reference, or an error value naming the file. */
qp_value *qp_kdb_table_part(qp_kdb *db, const char *table, int64_t part, unsigned flags);
/* The partition whose value is v (a date/month/long atom), as above; an
 * error value when the table has no such partition. */
qp_value *qp_kdb_table_at(qp_kdb *db, const char *table, const qp_value *v, unsigned flags);
/* The whole table: a splayed or flat table as it is on disk (mapped, read
 * once and kept by the db: later calls return the same value, as q maps a
 * db until it is loaded again); a partitioned one as every partition
 * concatenated (a copy, made on every call, when there are two or more). New reference, or an error
 * value. */
qp_value *qp_kdb_table(qp_kdb *db, const char *table, unsigned flags);
/* Rows [a, b) of a splayed or flat table (b is capped at its count): views
 * of the same mapping, the enumerated columns' indices checked over those
 * rows only, so that workers given parts of one large table each read
 * their own part of its symbol columns and no more. New reference, or an
 * error value: rows outside the table, a partitioned table (read it by
 * partition), or a bad index (naming its file, column and row). */
qp_value *qp_kdb_table_rows(qp_kdb *db, const char *table, int64_t a, int64_t b, unsigned flags);

/* Rows [a, b) of any table (b capped at its count): of a splayed or flat
 * one as qp_kdb_table_rows; of a partitioned one, only the partitions
 * the rows touch are mapped (their row counts, learnt at the first
 * mapping, are kept with the db), one partition's rows as views, rows
 * spanning several concatenated (a copy of those rows). New reference, or
 * an error value (rows outside the table, a file that cannot be read). */
qp_value *qp_kdb_rows(qp_kdb *db, const char *table, int64_t a, int64_t b, unsigned flags);
/* What qp_kdb_select reads of a table; zeroed (b = -1): all of it. */
typedef struct qp_kdb_sel {
    const qp_value *part;  /* a partition's value (a date, month or long
                            * atom): that partition alone; NULL: all */
    const qp_value *cols;  /* column names (a symbol vector; the partition
                            * column may be one), in the order wanted;
                            * NULL: every column */
    int64_t a, b;          /* rows [a, b) of the partition, or of the table
                            * when no partition is given; b < 0: to the end
                            * (b is capped at the count) */
} qp_kdb_sel;
/* Table `table` as sel asks, reading only that: the partitions asked for
 * (one, or those the rows touch), and of each only the column files asked
 * for (with no file column asked for, the first, for the row count); a
 * splayed or flat table's mapping with only the rows asked for checked.
 * Borrowed sel. New reference, or an error value: a column the table
 * lacks (listing its columns), a partition it lacks, a partition of a
 * table that is not partitioned, rows outside it. */
qp_value *qp_kdb_select(qp_kdb *db, const char *table, const qp_kdb_sel *sel, unsigned flags);
/* The distinct values of column col of table, sorted (qp_distinct_sorted;
 * enumerations kept): a partitioned table's partition column from its
 * partitions' names, another column one partition mapped at a time. New
 * reference, or an error value ("COL: no such column", a file that
 * cannot be read). */
qp_value *qp_kdb_distinct(qp_kdb *db, const char *table, const char *col);

/* ---- Writing (q 4.x bytes) ---- */

/* The writer's lock of a database folder: one qp_kdb_write (or `qpeach db
 * import`) at a time, from reading db/sym to the commit. */
typedef struct qp_kdb_lock qp_kdb_lock;
enum { QP_KDB_GUARD = 1 };   /* qp_kdb_lock flags */

/* Takes db's lock: flock(2) on db/.qpeach.lock (db is made if missing, not
 * its parents), the file holding this pid. Waits up to wait seconds while
 * another process holds it (0: tries once); then fails with QP_ETIMEOUT,
 * *holder (when given) its pid. A write whose process died half way (its
 * journal, db/.qpeach.journal, left behind) is rolled back first.
 * QP_KDB_GUARD also forks a guard process that, should this process die
 * before qp_kdb_lock_release (kill -9 included), rolls its write back and
 * releases the lock; use it only while the process has one thread.
 * Returns 0 and *out (free with qp_kdb_lock_release), or a negative code with
 * err. */
int qp_kdb_lock_take(const char *db, double wait, unsigned flags, qp_kdb_lock **out, long *holder,
                char *err, size_t errlen);
/* Releases the lock and removes its file; a db folder qp_kdb_lock made is
 * removed again unless a write under the lock committed. NULL-safe. */
void qp_kdb_lock_release(qp_kdb_lock *lk);

typedef struct qp_kdb_write_opts {
    const char *partition;  /* column of dates to partition by, or NULL:
                             * one splayed table */
    const char *parted;     /* symbol column to give p# (sorted by it within
                             * each partition, stable, and listed first in
                             * .d, as q's .Q.dpft does); NULL: the first
                             * symbol column when partitioning; "": none,
                             * rows in table order (as q's `set`) */
    qp_kdb_lock *lock;      /* db's lock, held by the caller; NULL: taken
                             * for the call (waiting up to a minute) */
} qp_kdb_write_opts;

/* Writes table t into database folder db as table name: splayed at
 * db/name/, or one splayed folder per date at db/DATE/name/ (the partition
 * column is not stored). Columns: simple vectors, symbols (or type 20),
 * enumerated against db/sym, appending new names (as .Q.en does), and
 * general lists of simple vectors (e.g. strings) as q's anymap name +
 * name#; `.d` lists the columns. Bytes as q 4.x writes them (see
 * src/kdb/kdbwrite.c for what is checked against q-written files). Under
 * db's lock (opts->lock, or taken for the call), each table folder is
 * written whole in a temporary folder, then db/sym is replaced, then the
 * folders are renamed into place, every step noted in db's journal first,
 * so a reader never sees half a table; a failure rolls every step back
 * and leaves db as it was, byte for byte. db is made if missing (not its
 * parents). An existing table folder is replaced. Folders and files
 * follow the umask. opts may be NULL. Returns 0 or a negative code, with a
 * message in err naming the file or column. */
int qp_kdb_write(const char *db, const char *name, const qp_value *t,
                 const qp_kdb_write_opts *opts, char *err, size_t errlen);

/* What qp_kdb_import_csv did. */
typedef struct qp_kdb_import {
    int64_t rows;           /* rows written */
    int cols;               /* columns written */
    bool csv_fault;         /* the failure is the CSV's: err is the loader's
                             * text (file:line: column, value) */
} qp_kdb_import;

/* Imports CSV file csv (parsed as qp_csv_load does with copts) into db as
 * splayed table name, writing each batch of rows as it is parsed
 * (qp_csv_scan): memory holds a few MB per parser thread, never the
 * table. The bytes written, the types and the errors are those of
 * qp_kdb_write(db, name, qp_csv_load(csv, copts), opts), under the same
 * lock, journal and rollback; a partition or p# column is refused (their
 * rows are reordered, so the whole table must be read first). *st (may
 * be NULL) says what was done. Returns 0 or a negative code with err. */
int qp_kdb_import_csv(const char *csv, const qp_csv_opts *copts, const char *db, const char *name,
                      const qp_kdb_write_opts *opts, qp_kdb_import *st, char *err, size_t errlen);

/* Removes folder dir and everything in it (links are removed, not
 * followed): a db, or a table folder qp_kdb_write made. 0 or -errno. */
int qp_kdb_remove(const char *dir);

/* ---- Tables from files ---- */

/* Loads by kind: a .csv name with the CSV loader (opts), a folder as a
 * kdb+ splayed table (mapped, enumerations as type 20), anything else as
 * a q IPC file. New reference or an error value naming the file. */
qp_value *qp_table_load(const char *path, const qp_csv_opts *opts);

#endif
