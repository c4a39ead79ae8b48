/* qpeach/job.h - job files: the INI file `qpeach run JOB` reads.
 *
 * Every key is documented in jobs/README.md. Parsing is strict: an unknown
 * section or key, a key before any section, a repeated key, or a value that
 * does not parse is an error naming the file, the line and the key, e.g.
 *   vwap.ini:7: [partition] pieces: not a positive integer: 'x'
 * Paths in the file are relative to the job file's folder and are stored
 * absolute.
 *
 * Memory rules: a qp_job owns every string in it; qp_job_free() frees them
 * all (NULL-safe). Strings are NULL when the key was not given.
 */
#ifndef QPEACH_JOB_H
#define QPEACH_JOB_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "qpeach/value.h"

enum qp_part_by { QP_PART_ROWS = 0, QP_PART_COLUMN = 1, QP_PART_FILE = 2,
                  QP_PART_PARTITION = 3 /* one task per kdb+ partition */ };

enum qp_merge_how {
    QP_MERGE_CONCAT = 0, QP_MERGE_SUM, QP_MERGE_MIN, QP_MERGE_MAX,
    QP_MERGE_COUNT, QP_MERGE_SUM_BY_KEY, QP_MERGE_PYTHON, QP_MERGE_NONE,
};
/* Or'd into a how for qp_merge: [merge] missing = zero (sum-by-key counts
 * the value columns a partial lacks as zero instead of failing). */
#define QP_MERGE_MISSING_ZERO 0x100

/* A Python function named as "file.py:name" in the job file. */
typedef struct qp_job_fn {
    char *file;            /* absolute path of the module file */
    char *name;            /* function name inside it */
} qp_job_fn;

typedef struct qp_job {
    char *path;            /* the job file, absolute (NULL for a job made
                            * from pairs) */
    char *dir;             /* its folder (pairs: the folder given), absolute */
    char *base;            /* its file name, for messages ("vwap.ini"; pairs:
                            * the name given) */
    uint8_t sha[32];       /* SHA-256 of what it was read from: the file's
                            * bytes, or the pairs as job file lines */

    /* [job] */
    char *name;            /* default: the job file's name without .ini */
    qp_job_fn function;    /* required */
    int nlibs;             /* libraries: alias=module pairs */
    char **lib_alias;
    char **lib_module;
    bool categorical;      /* symbols = categorical: the function gets symbol
                            * columns as pandas Categoricals (codes + names),
                            * not arrays of str */
    bool codes;            /* symbols = codes: enumerated (kdb+) symbol
                            * columns as SymbolCodes (codes + names, no
                            * pandas); others as with categorical */

    /* [input] */
    char *table;           /* resident table name (or the name file loads as) */
    char *file;            /* CSV or q IPC file the workers load */
    char *files;           /* glob pattern: one partition per file */
    char *csv_types;       /* optional q type string for CSV input ("SFJ") */
    char *db;              /* kdb+ database the workers mount (local
                            * workers: serve --db), absolute */

    /* [partition] */
    int part_by;           /* enum qp_part_by */
    char *column;          /* for by = column */
    int pieces;            /* for by = rows; 0: 4 per worker slot */
    char *partitions;      /* for by = partition: "A..B" or "A,B,C" (kdb+
                            * partition values as their folders are named);
                            * NULL: all */
    bool missing_skip;     /* missing = skip: a listed partition that no
                            * worker holds is skipped (and logged), not an
                            * error */

    /* [workers] */
    int local;             /* local worker processes */
    int nservers;          /* running servers, "host:port" etc. */
    char **servers;
    int threads;           /* secondary threads per local worker (-s) */
    char *user;            /* credentials user (NULL: anonymous) */
    char *password;
    int window;            /* tasks in flight per connection; 0: auto (2,
                            * up to 16 while tasks take under 2 ms) */
    int batch;             /* tasks per message to a worker; 0: auto (1,
                            * more while tasks take under 2 ms) */
    int connect_timeout_ms;
    bool tls;              /* TLS to the servers (local workers: unix sockets) */
    char *tls_ca;          /* CA file that verifies the servers; NULL: system store */
    int64_t keep_ms;       /* keep: local workers outlive the run by this
                            * long, for the next run of the same worker
                            * settings (0: they end with the run) */
    bool pykx;             /* protocol = pykx: the servers get PyKX's own
                            * messages (q + pykx.q), with each task's data
                            * in the call; local workers still speak qpeach */

    /* [merge] */
    int merge;             /* enum qp_merge_how */
    qp_job_fn reducer;     /* python: over the partials; else on the merged result */
    int nkeys;             /* sum-by-key over a plain table: key columns */
    char **keys;
    bool missing_zero;     /* missing = zero: sum-by-key partials' missing
                            * value columns count as zero */

    /* [output] */
    char *output;          /* absolute path, or "-" for stdout */
    bool q_text;           /* format = q: CSV dates as q prints them */

    /* [run] */
    int retries;           /* extra attempts per task (a lost or timed-out
                            * worker; a function's error too when
                            * retry_errors is set) */
    bool retry_errors;     /* retry tasks whose function raised */
    int64_t task_timeout_ms; /* 0: none */
    char *state;           /* folder for journal, lock, converted input;
                            * default: .qpeach/ beside the job file */
} qp_job;

/* Reads and checks a job file. Returns 0 and *out, or QP_EARG (bad file,
 * message in err), -errno (cannot read), or QP_ENOMEM. */
int qp_job_load(const char *path, qp_job **out, char *err, size_t errlen);
/* A job from n (section, key, value) triples, kv[3*i], kv[3*i+1] and
 * kv[3*i+2] (borrowed), as a job file's lines would give them, in that
 * order: read and checked by the same code, with the same errors, named
 * by name instead of the file and line:
 *   job: [partition] pieces: not a positive integer: 'x'
 * A value is trimmed as a file's is, and must be one line. Relative
 * paths are taken from dir (absolute); [job] name defaults to name.
 * Returns as qp_job_load (QP_EARG with err for a bad job). */
int qp_job_from_pairs(const char *name, const char *dir, const char *const *kv, int n,
                      qp_job **out, char *err, size_t errlen);
void qp_job_free(qp_job *job);               /* NULL-safe */

/* Duration "60s", "500ms", "2m", "1h" or plain seconds; 0, or QP_EARG for
 * anything else (negative, unknown unit, over 1e15 ms). */
int qp_job_parse_duration(const char *s, int64_t *ms);
/* A duration for people: "850ms", "4.2s", "3m07s", "2h05m". */
void qp_job_duration_text(int64_t ms, char *buf, size_t n);
/* [partition] partitions: spec is "A..B" (inclusive) or "A,B,C", each a
 * partition as its folder is named: a date 2022.06.17, a month 2022.06 or
 * an integer (year and int partitions). With in NULL, checks the syntax.
 * Otherwise sets *in to whether the partition value (q's: a date or month
 * as days/months since 2000.01.01, type QP_DATE/QP_MONTH; an integer as
 * QP_LONG) is selected. Returns 0, QP_EARG (syntax) or QP_ETYPE (the spec
 * names a kind of partition other than type). */
int qp_job_partitions_parse(const char *spec, int type, int64_t value, bool *in);
/* Item i (from 0) of a list spec "A,B,C": its type and value as above,
 * and its text as the spec spells it in name. 0, or QP_EARG past the last
 * item, on a bad item, or for a range. */
int qp_job_partitions_named(const char *spec, int64_t i, int *type, int64_t *v, char name[32]);

/* Names as the job file spells them (static strings; "?" out of range). */
const char *qp_job_part_name(int by);
const char *qp_job_merge_name(int how);
/* name as [job] function and [merge] reducer accept a function's name:
 * every byte but an ASCII letter, digit or _ becomes _ ("f-1" -> "f_1").
 * malloc'd; NULL on OOM. */
char *qp_job_fn_name(const char *name);

/* Where state files go: <state>/<name>.<suffix>, malloc'd (NULL on OOM). */
char *qp_job_state_path(const qp_job *job, const char *suffix);

/* The modules the Python module file imports from its own folder, and
 * theirs in turn (src/sched/modules.c says how imports are read): a dict
 * of module names (a symbol vector, in name order) to their source (char
 * vectors), empty when there are none. What `.qp.def`'s `modules` option
 * ships with a function. 0 and *out (a new reference), or a negative code
 * with err naming the file (one that cannot be read; over 64 modules or
 * 16 MB). */
int qp_job_modules(const char *file, qp_value **out, char *err, size_t errlen);

#endif
