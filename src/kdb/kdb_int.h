/* kdb_int.h - shared by the kdb+ reader's files (kdbzip.c, kdbfile.c,
 * kdbdb.c); not a public header. Layouts: ../shared/KDB_FORMAT.md.
 *
 * Memory rules: as value.h. Buffers returned through qp_buf ** are new
 * references; values are new references (or error values, -128, naming
 * the file). Nothing here reads past the length it is given. */
#ifndef QPEACH_KDB_INT_H
#define QPEACH_KDB_INT_H

#include "qpeach/kdb.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The int64 at p, which need not be aligned (headers and items are
 * little-endian, as this machine). */
static inline int64_t qp__krd64(const uint8_t *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Formats err (when given) and returns code: how the reader and the
 * writer report a failure with its reason. */
int qp__kerr(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The kinds of file q writes (KDB_FORMAT.md "File kinds"). */
enum {
    KF_FLAT = 1,    /* ff 01 + IPC body */
    KF_VEC,         /* fe 20 (or fd 20) simple vector */
    KF_ENUM,        /* fd 20 enumeration: int64 indices */
    KF_ANYMAP,      /* fd 20 type 77: offsets into name# */
    KF_OLDENUM,     /* pre-3.6 fe + domain name: int32 indices */
    KF_NESTED,      /* pre-3.6 fe 20 type 77+t: int64 ends into name# */
};

typedef struct qp__khead {
    int kind;          /* KF_* */
    int type;          /* VEC: 1..19; NESTED: the items' type; ENUM,
                        * OLDENUM: 20; ANYMAP: 0; FLAT: the body's type */
    int attr;          /* enum qp_attr */
    int64_t n;         /* items, after the zero-count rule (FLAT: -1) */
    size_t data;       /* offset of the first item */
    size_t width;      /* bytes per item in this file */
    char dom[128];     /* enumerations: the domain's name */
} qp__khead;

/* On-disk attribute byte to qp's (4, g#, is QP_ATTR_GROUPED); -1: none. */
int qp__kdb_attr(int a);

/* Header of an uncompressed file of len bytes whose first have bytes are
 * at p. Returns 0, or a negative code with a message in err. */
int qp__kdb_head(const uint8_t *p, size_t have, size_t len, qp__khead *h, char *err,
                 size_t errlen);

/* True when p (len bytes) starts with "kxzipped" (or its encrypted form). */
bool qp__kdb_zipped(const uint8_t *p, size_t len);
/* Decompresses a kxzipped file into a new buffer of its whole uncompressed
 * length; only the blocks covering [0, upto) are filled (SIZE_MAX: all).
 * Every size is checked against len first. Returns 0 or a negative code
 * with a message in err (the algorithm by number when not supported). */
int qp__kdb_unzip(const uint8_t *p, size_t len, size_t upto, qp_buf **out, char *err,
                  size_t errlen);

/* What decoding a column needs from outside the file: its enumeration
 * domain, and the companion file name# of nested and anymap columns. */
typedef struct qp__kdb_env {
    /* The domain named name: a symbol vector (new reference), or an error
     * value naming what is wrong. */
    qp_value *(*domain)(void *data, const char *name);
    /* The (uncompressed) bytes of the companion file with this suffix
     * ("#"): 0 and a new buffer reference, or a negative code and err. */
    int (*companion)(void *data, const char *suffix, qp_buf **out, char *err, size_t errlen);
    void *data;
    unsigned flags;    /* QP_KDB_ENUMS, QP__KDB_UNCHECKED */
} qp__kdb_env;

/* env flag, kdbtab.c's alone: enumerations come back as type 20 whose
 * indices are NOT yet checked against their domain (nor paged in).
 * kdbtab.c keeps such a table to itself and hands out only the rows it
 * has checked (qp__kdb_populate, then qp_enum_check). */
enum { QP__KDB_UNCHECKED = 1u << 8 };

/* Asks the kernel to map the pages under [p, p + len) of a file mapping
 * in one call, instead of a fault per page, before a pass reads them all
 * (Linux 5.14; a no-op before). */
void qp__kdb_populate(const void *p, size_t len);

/* Decodes one whole file held in buf (mapped, read or fuzzer bytes; may be
 * kxzipped). path names it in errors. New reference or error value. */
qp_value *qp__kdb_decode(qp_buf *buf, const char *path, const qp__kdb_env *env);

/* The enumeration h describes in buf (KF_ENUM, or KF_OLDENUM: int32
 * indices, widened), its domain from env, checked against it unless
 * env->flags has QP__KDB_UNCHECKED. New reference or error value. */
qp_value *qp__kdb_enum(qp_buf *buf, const qp__khead *h, const char *path,
                       const qp__kdb_env *env);

/* A symbol domain (or .d) file: `ff 01` + symbol list, names read to the
 * end of the file whatever the count says. New reference or error. */
qp_value *qp__kdb_syms(const uint8_t *p, size_t len, const char *path);

/* The type of the first item of the anymap column at path (header h,
 * kdbnest.c): a vector's (1..19) or an atom's (negative), 0 when it has no
 * rows or the item is of a format not known. Reads the column's first
 * entry and that item's header in path#, nothing more (what q's meta
 * looks at). Returns 0 or a negative code with err naming the file. */
int qp__kdb_anymap_first(const char *path, const qp__khead *h, int *type, char *err,
                         size_t errlen);

/* True when the file at path starts as a column file q writes (fe 20,
 * fd 20, a pre-3.6 enumeration fe + name, or kxzipped): what makes a
 * folder without .d a splayed table. */
bool qp__kdb_sniff(const char *path);

/* Maps path read-only: 0 and a new buffer (an empty one for an empty
 * file), or a negative code with err naming the file. */
int qp__kdb_map(const char *path, qp_buf **out, char *err, size_t errlen);
/* The uncompressed bytes of path: its mapping, or when kxzipped the
 * decompressed copy. Same returns as qp__kdb_map. */
int qp__kdb_bytes(const char *path, qp_buf **out, char *err, size_t errlen);
/* The header of the file at path (decompressing only its first block when
 * kxzipped). Returns 0 or a negative code with err naming the file. */
int qp__kdb_peek(const char *path, qp__khead *h, char *err, size_t errlen);

/* A file of a db: decodes path with domains from domdir (a folder), or
 * from cache/the db via env. Used by kdbdb.c. */
qp_value *qp__kdb_load(const char *path, const qp__kdb_env *env);

/* The domain file name in folder dir (symbol vector, new reference), an
 * error value when it cannot be read, or NULL when dir has no such file or
 * it is not a symbol list (a column named `sym`, say). */
qp_value *qp__kdb_domain_in(const char *dir, const char *name);

/* ---- Databases (kdbdb.c: opening and listing; kdbtab.c: tables) ---- */

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

enum { PK_NONE = 0, PK_DATE, PK_MONTH, PK_YEAR, PK_INT };   /* partition kinds */
enum { KT_SPLAY = 1, KT_FLAT, KT_PART };                      /* table kinds */

typedef struct qp__kpart {
    int64_t v;             /* days (date) or months since 2000, or the number */
    char *dir;             /* its folder: segment/name */
} qp__kpart;

typedef struct qp__ktable {
    const char *name;      /* interned */
    int kind;              /* KT_* */
    char *path;            /* splayed folder or flat file (NULL: partitioned) */
    int64_t *parts;        /* partitioned: indexes into db->parts, ascending */
    int64_t nparts, cap;
    qp_value *raw;         /* splayed and flat: the table as mapped, its
                            * enumerations unchecked (QP__KDB_UNCHECKED) */
    qp_value *mapped[2];   /* ... and once checked whole, without and with
                            * QP_KDB_ENUMS (db->lock guards all three) */
    char *clash;           /* a root splay or flat file of the same name as
                            * this partitioned table: refused (NULL: none) */
    _Atomic int64_t *rows; /* partitioned: rows of each of its partitions,
                            * -1 until one is mapped (kdbrows.c; made
                            * under db->lock) */
} qp__ktable;

/* What a file or folder looked like when listed (or a domain when read):
 * a change in any field means the db changed under it (kdbstamp.c). */
typedef struct qp__kstamp {
    bool present;
    dev_t dev;
    ino_t ino;
    nlink_t nlink;         /* a folder's: changes with its subfolders */
    off_t size;
    struct timespec mtime;
} qp__kstamp;

typedef struct qp__kdom {
    char name[128];
    qp_value *v;           /* the domain (one reference) */
    qp__kstamp st;         /* its file when read */
} qp__kdom;

/* A folder listed and left out (qp_kdb_skipped). */
typedef struct qp__kskip {
    char *dir;
    int reason;            /* QP_KDB_SKIP_* */
    int kind;              /* OTHER_KIND: the partition kind its name is */
    int err;               /* UNOPENED: why it could not be opened (errno) */
} qp__kskip;

/* A partition folder that cannot be read (qp_kdb_unreadable). */
typedef struct qp__kbad {
    char *dir;
    int err;               /* errno */
} qp__kbad;

/* Immutable after qp_kdb_open but for the domain cache and the tables'
 * mapped values, which lock guards, and refs. */
struct qp_kdb {
    atomic_int refs;       /* qp_kdb_ref / qp_kdb_close */
    pthread_mutex_t lock;
    char *path;            /* as given, without trailing slashes */
    char *domdir;          /* where domain files live */
    int pkind;             /* PK_* */
    qp__kpart *parts;      /* ascending by v */
    int64_t nparts;
    qp__ktable *tables;    /* ascending by name */
    int ntables;
    qp__kdom *doms;        /* loaded domains */
    int ndoms, capdoms;
    char **watch;          /* root, sym, par.txt, segments: what a change
                            * shows in, stamped before listing (kdbstamp.c) */
    qp__kstamp *stamps;
    int nwatch;
    qp__kskip *skipped;    /* folders listed and left out, with why */
    int64_t nskipped;
    qp__kbad *bad;         /* partition folders that cannot be read: every
                            * partitioned table is refused (which of its
                            * rows are there is not known) */
    int64_t nbad;
};

/* The table named name, or NULL. */
qp__ktable *qp__kdb_find(qp_kdb *db, const char *name);
/* The error for a table that db does not list: that name's entry at the
 * root could not be opened (with its cause), or there is no such table.
 * New reference. */
qp_value *qp__kdb_no_table(const qp_kdb *db, const char *table);
/* The error that refuses table t (a name in two places), or NULL. */
qp_value *qp__kdb_refused(const qp_kdb *db, const qp__ktable *t);
/* The error for enumeration domain name missing at the db root root, for
 * the file at path (column: its column, or NULL when not known). */
qp_value *qp__kdb_nodomain(const char *root, const char *path, const char *column,
                           const char *name);
/* True when db's root has a domain file of that name. */
bool qp__kdb_has_domain(const qp_kdb *db, const char *name);
/* "a/b", malloc'd (NULL on OOM). */
char *qp__kdb_join(const char *a, const char *b);
/* The decoding environment of column file path of db (domains from db). */
typedef struct qp__colenv {
    qp_kdb *db;
    const char *path;
    const char *column;    /* its column's name, or NULL (a flat table) */
} qp__colenv;
void qp__kdb_colenv(qp__colenv *ce, qp__kdb_env *env, qp_kdb *db, const char *path,
                    const char *column, unsigned flags);
/* Column names of the splayed folder dir: its .d, or its files in name
 * order when it has none. New reference (symbol vector) or error value. */
qp_value *qp__kdb_columns(const char *dir);
/* The partition column's name for a kind: "date", "month", "year", "int". */
const char *qp__kdb_pcol(int pkind);
/* Partition i (an index into t->parts) of partitioned table t: its
 * columns want (a symbol vector: only their files are opened; NULL: all)
 * and, when pcol, the virtual partition column first. New reference or
 * error value (kdbtab.c). */
qp_value *qp__kdb_part(qp_kdb *db, const qp__ktable *t, int64_t i, const qp_value *want, bool pcol,
                       unsigned flags);
/* Rows of partition i (an index into t->parts) of partitioned table t,
 * from one column's header. 0, or a negative code with err (kdbtab.c). */
int qp__kdb_part_count(qp_kdb *db, const qp__ktable *t, int64_t i, int64_t *n, char *err,
                       size_t errlen);
/* Rows [a, b) of partitioned table t (b capped at its count), columns as
 * qp__kdb_part's: only the partitions the rows touch are mapped. New
 * reference or error value (kdbrows.c). */
qp_value *qp__kdb_rows_of(qp_kdb *db, qp__ktable *t, int64_t a, int64_t b, const qp_value *want,
                          bool pcol, unsigned flags);

/* kdbstamp.c: stamps what path looks like now (absent: present false). */
void qp__kdb_stamp(const char *path, qp__kstamp *st);
bool qp__kdb_stamp_same(const qp__kstamp *a, const qp__kstamp *b);
/* Adds path to what db watches, stamped now. 0 or QP_ENOMEM. */
int qp__kdb_watch(qp_kdb *db, char *path);   /* steals path */

/* kdbflat.c: a flat table file (ff 01 98) whose body holds pre-3.6
 * enumerations (type 20+k, KDB_FORMAT.md layout 6): the table, its
 * enumerations resolved through env like a column file's. Returns NULL
 * when the body holds none (the IPC decoder reads it). */
qp_value *qp__kdb_flat_enums(qp_buf *buf, const char *path, const qp__kdb_env *env);

#endif
