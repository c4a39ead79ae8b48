/* qpeach/sched.h - the scheduler: partition plans, dispatch over many
 * connections, merging partial results, writing the output, and the whole
 * `qpeach run` of a job.
 *
 * Memory rules: see value.h. Plans own their parts (and the values and
 * strings in them); qp_partplan_free is NULL-safe. Merge functions borrow
 * the partials and return a new reference (a q error value (-128) when the
 * partials cannot be merged, NULL only on OOM).
 */
#ifndef QPEACH_SCHED_H
#define QPEACH_SCHED_H

#include "qpeach/job.h"
#include "qpeach/value.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- Partition plans ---- */

typedef struct qp_part {
    int kind;              /* enum qp_part_by */
    int64_t start, end;    /* rows [start, end) for QP_PART_ROWS */
    qp_value *value;       /* the column's value (an atom) for QP_PART_COLUMN */
    char *file;            /* the file for QP_PART_FILE */
    int64_t rows;          /* rows in the partition, -1 when not known */
} qp_part;

typedef struct qp_partplan {
    int64_t n;             /* partitions (tasks) */
    qp_part *parts;
    char *column;          /* the column for QP_PART_COLUMN */
} qp_partplan;

/* Rows [0, count) into `pieces` nearly equal ranges (empty ones dropped;
 * a zero-row table gives one empty range). */
int qp_partplan_rows(int64_t count, int pieces, qp_partplan **out);
/* One partition per distinct value of a column: values is a vector of the
 * column's items (borrowed; duplicates allowed), sorted into a fixed order
 * so every run plans the same. */
int qp_partplan_column(const char *column, const qp_value *values, qp_partplan **out);
/* One partition per file matching a glob pattern, in sorted order.
 * Returns QP_EARG when nothing matches. */
int qp_partplan_files(const char *pattern, qp_partplan **out);
void qp_partplan_free(qp_partplan *p);

/* The `part` argument of `.qp.apply[fn; table; part]` for partition i:
 * rows as a long vector (start; end), a column as (`column; value).
 * Returns a new reference. */
qp_value *qp_part_descriptor(const qp_partplan *p, int64_t i);
/* The whole plan as a q value (a list of descriptors; files as strings):
 * its IPC bytes identify the plan in the journal. New reference. */
qp_value *qp_partplan_value(const qp_partplan *p);
/* "rows 0-1250000", "sym=`IBM", "trades/2024.01.02.csv" (malloc'd). */
char *qp_part_describe(const qp_partplan *p, int64_t i);

/* ---- Merging ---- */

/* Merges the partials (borrowed, in partition order) as the job says:
 * concat, sum, min, max, count, sum-by-key (dicts, keyed tables, or plain
 * tables with key columns named in keys). Tables' columns are matched by
 * name, in the first partial's order; sum-by-key partials whose value
 * columns differ in names fail the merge naming both sets, unless how has
 * QP_MERGE_MISSING_ZERO. QP_MERGE_PYTHON and QP_MERGE_NONE return the
 * partials as a general list. */
qp_value *qp_merge(int how, qp_value *const *parts, int64_t n, char *const *keys, int nkeys);

/* ---- Output ---- */

/* Writes x to path by its extension: .csv (a table, header row; each
 * column's text chosen by its type, as pandas reads it back, or q's own
 * text with q_text), .msgpack, .qipc (q IPC bytes), or "-": the same CSV,
 * whole, to out (flushed). Files are written to a temporary name
 * beside path, fsync'd and renamed, so a reader never sees half a result.
 * Returns 0 or a negative code with err set. */
int qp_output_write(const qp_value *x, const char *path, bool q_text, FILE *out, char *err,
                    size_t errlen);
/* x as msgpack: atoms as scalars, vectors and lists as arrays, dicts as
 * maps, tables as a map of column name to array; nulls nil; timestamps,
 * datetimes, dates and months as msgpack's timestamp extension (type -1;
 * a date or month at midnight UTC of its first day), timespans, minutes,
 * seconds and times as counts of their unit; temporal infinities as
 * numpy's int64 extremes (jobs/README.md, [output] path). Returns 0, QP_ETYPE or
 * QP_ENOMEM; *out is malloc'd. */
int qp_msgpack_encode(const qp_value *x, uint8_t **out, size_t *len);

/* ---- Kept workers ([workers] keep) ---- */

/* One kept local worker: a `qpeach serve` process of this user with its
 * socket in the workers folder ($QPEACH_WORKERS_DIR, else
 * /tmp/qpeach-workers-UID), as /proc shows it, with what its set's info
 * says (src/sched/kept.c). */
typedef struct qp_kept_info {
    int pid;
    int slot;              /* the worker's index in its set */
    char set[64];          /* the set's folder in the workers folder */
    char cores[64];        /* "core 0", "cores 2,3", "unpinned"; "?" unknown */
    int64_t idle_ms;       /* since its last run ended; -1 while a run uses it */
    int64_t keep_ms;       /* it exits when idle this long */
    char job[1024];        /* STATE/NAME of the job that ran on it last */
    char holds[2048];      /* db, input, libraries, functions (with the
                            * start of their code's SHA-256) */
} qp_kept_info;

/* Every kept worker of this user: *out malloc'd, *n of them (0 and
 * NULL when none). 0, or a negative code with err (a workers folder
 * that is not private, QP_ENOMEM). */
int qp_kept_list(qp_kept_info **out, int *n, char *err, size_t errlen);
/* Stops every kept worker of this user (SIGTERM, SIGKILL after 5 s) and
 * removes its set, but for sets a run holds now: those are asked to stop
 * (that run stops them at its end). *stopped: processes stopped; *busy:
 * sets left to their runs. 0, or a negative code with err. */
int qp_kept_stop(int *stopped, int *busy, char *err, size_t errlen);

/* ---- Running a job ---- */

/* Exit codes of `qpeach run`, documented in its --help and jobs/README.md. */
enum qp_run_exit {
    QP_RUN_OK = 0,             /* the output was written */
    QP_RUN_FAILED = 1,         /* a task failed for good, or no worker was usable */
    QP_RUN_BADJOB = 2,         /* bad job file or command line */
    QP_RUN_LOCKED = 3,         /* another run of this job holds the lock */
    QP_RUN_INTERRUPTED = 4,    /* SIGINT/SIGTERM: stopped, journal kept */
};

enum qp_run_log { QP_LOG_AUTO = 0, QP_LOG_BAR, QP_LOG_LINES, QP_LOG_JSON, QP_LOG_QUIET };

/* ---- Why a run failed ---- */

/* A Python exception as a worker sent it, in parts. Every field is
 * NUL-terminated; "" when not known; a longer text is cut at the size. */
typedef struct qp_remote_error {
    char type[128];        /* "ZeroDivisionError", "mymod.MyError"; "" when the
                            * text was not a Python exception's */
    char message[1024];    /* what str(exception) says (the whole text when
                            * there is no type) */
    char traceback[4096];  /* its last frames, as traceback.format_tb prints
                            * them ("" when none came) */
} qp_remote_error;

/* Reads the one text a qpeach worker makes of a Python exception (the
 * .qp contract, docs/ARCHITECTURE.md "Error rules"):
 *   Type: message
 *   Traceback (last frames):
 *     File "<qpeach:f>", line 3, in f
 *       ...
 * "Type" alone when the message is empty; a SyntaxError's location lines
 * come before its "Type: message" line. Type is a dotted name whose last
 * part starts with a capital (a class: qpeach's own server errors start
 * lowercase, "timeout: ...", "qp.apply: ..."); any other text has no type
 * and is all message. text may be NULL ("" then). */
void qp_remote_error_parse(const char *text, qp_remote_error *out);

/* The first failure of a run, set once: later failures are logged, never
 * put in its place, so the cause is what the caller sees. */
typedef struct qp_run_error {
    int code;              /* enum qp_run_exit: 0 while the run has not failed */
    int64_t task;          /* the task that failed for good; -1: the run
                            * failed for another reason */
    int attempts;          /* that task's failed attempts */
    char partition[256];   /* its partition ("rows 5-6", "sym=`IBM", a file) */
    char worker[300];      /* the worker of its last attempt, or the one the
                            * reducer failed on ("" when none) */
    char cause[4096];      /* what that worker said, or why the attempt
                            * failed ("timed out after 500 ms", a lost
                            * connection) */
    qp_remote_error remote; /* cause read as a Python exception (its type ""
                            * when it was not one) */
    char message[2048];    /* the whole reason, as logged */
} qp_run_error;

typedef struct qp_run_opts {
    bool resume;           /* keep the journal's finished tasks when it
                            * matches the job (the CLI's default; false:
                            * --fresh) */
    bool dry_run;          /* print the plan and stop */
    bool show;             /* --show: q's console view of the result (its
                            * first rows) to out, instead of output "-"
                            * (a file output is still written) */
    int log;               /* enum qp_run_log */
    bool quiet;            /* --quiet: say nothing but the error, in the
                            * log's format (text, or JSON with QP_LOG_JSON) */
    int jobs;              /* -j N: overrides [workers] local when > 0 */
    const char *self;      /* path of the qpeach binary (to start workers) */
    FILE *out;             /* where "-" output and the plan go (stdout) */
    FILE *log_to;          /* progress and log lines (stderr) */

    /* For a caller that holds the function and wants the value back (the
     * Python client, python/qpeach/_qpeach.c); all zero for the CLI. */
    const qp_value *fn_code; /* borrowed: the code .qp.def gets for [job]
                            * function (dill bytes or source text) instead
                            * of its module file, which need not exist */
    const qp_value *reducer_code; /* the same for [merge] reducer */
    const char *fn_id;     /* the function's identity for the journal, in
                            * place of fn_code's bytes (dill pickles the same
                            * function to other bytes in another process):
                            * any text, hashed; NULL: the code's bytes */
    const char *reducer_id; /* the same for the reducer */
    bool fn_pandas;        /* define the function with the pandas option */
    qp_value **merged;     /* non-NULL: on QP_RUN_OK, *merged is the merged
                            * value (new reference); output "-" is then not
                            * printed (a path is still written) */
    /* Called as tasks finish (at most once per change, and at the end);
     * a nonzero return stops the run as SIGINT would. */
    int (*progress_cb)(int64_t done, int64_t total, int64_t failed, void *data);
    void *progress_data;
    qp_run_error *error;   /* non-NULL: filled with why the run failed
                            * (error->code 0 when it did not) */
    /* Called with every event the run says (its name: "resume",
     * "journal", "task", ...; its text), whatever the log mode, on the
     * run's thread. */
    void (*event_cb)(const char *event, const char *message, void *data);
    void *event_data;
} qp_run_opts;

/* Runs a loaded job to the end. Returns an enum qp_run_exit code. */
int qp_run(const qp_job *job, const qp_run_opts *opts);

#endif
