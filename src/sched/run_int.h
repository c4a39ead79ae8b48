/* run_int.h - the state of one `qpeach run`, shared by the files that make
 * it up: run.c (lifecycle: lock, workers, journal, merge, output, cleanup),
 * prepare.c (input conversion, job identity, partition planning),
 * dispatch.c (the poll loop: windows, responses, retries, lost workers)
 * and runlog.c (log lines, JSON events, the progress bar, the dry-run plan).
 * Not a public header.
 *
 * Memory rules: see value.h. A run owns everything it points to except job
 * and o; run.c frees it all on every exit path.
 */
#ifndef QPEACH_RUN_INT_H
#define QPEACH_RUN_INT_H

#include "qpeach/journal.h"
#include "sched_int.h"

#include <signal.h>
#include <stdio.h>

/* Task states. */
enum { T_QUEUED, T_RUNNING, T_DONE };

typedef struct task {
    int state;             /* T_QUEUED, T_RUNNING or T_DONE */
    int attempts;          /* failed attempts so far */
    int last_worker;       /* where it last failed (-1: none) */
    bool attempt_failed;   /* a non-final message of this attempt failed */
    int sends;             /* attempts sent so far */
    bool solo;             /* was in a batch that was lost or timed out:
                            * goes alone, so a fault is its own */
    qp_value *result;      /* the partial result once done (owned) */
} task;

typedef struct run {
    const qp_job *job;     /* borrowed */
    const qp_run_opts *o;  /* borrowed */
    FILE *log;             /* where events go */
    int mode;              /* enum qp_run_log, resolved */
    qp_topo *topo;         /* machine topology (local workers only) */
    qp_plan *place;        /* where each local worker is pinned */
    qp__worker *ws;        /* every worker, local ones first */
    int nw;                /* their count */
    char tmpdir[256];      /* private folder of the local workers' sockets */
    char *input_path;      /* what workers load (NULL: resident table) */
    qp_value *input;       /* the input table when the scheduler read it */
    qp_partplan *plan;     /* the partitions, one task each */
    task *t;               /* plan->n tasks */
    int64_t ndone, nfailed_attempts, rows_done, rows_total;
    int64_t t0, last_draw; /* start of the run; last progress bar draw */
    int64_t cb_done;       /* ndone + 1 at the last progress_cb (0: none) */
    qp_journal *journal;   /* finished tasks, for --resume */
    int64_t next_fresh;    /* no never-tried task before this one */
    bool **holds;          /* by = partition: holds[w][i], worker w holds
                            * task i's partition; NULL (or holds[w] NULL):
                            * every worker holds every task */
    int64_t *retry;        /* tasks waiting for another attempt */
    int64_t nretry;
    qp__setup setup;       /* setup calls every (re)started worker gets */
    bool kept;             /* [workers] keep: the local workers are a kept
                            * set, in tmpdir (kept.c), whose lock we hold */
    int kept_lock;         /* ... that lock's fd */
    char kept_key[65];     /* ... the key of the worker settings */
    char kept_db[65];      /* ... the db as this run found it (kept.c's
                            * db_identity; "" when none) */
    const qp__proto *sproto; /* how [workers] servers are talked to (local
                            * workers speak qpeach) */
    struct qp_kdb *db;     /* [input] db opened here (qp__open_db): checked
                            * before workers start, planned from for a dry
                            * run or protocol = pykx, stat'd for the journal */
    char *pykx_fn;         /* protocol = pykx: the function's module as sent */
    char *pykx_reducer;    /* ... and the reducer's (NULL: none) */
    qp_run_error error;    /* why the job failed: the first failure */
    bool badjob;           /* the failure is the job file's: exit 2 */
    bool cb_stop;          /* the progress callback asked to stop */
} run;

/* ---- runlog.c ---- */
/* A log event: a text line for people, or one JSON object with event +
 * message (--log-json). Quiet mode keeps only "error". */
void qp__say(run *r, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* What a task's event is about, as fields of its JSON object. */
typedef struct qp__ev {
    int64_t task;
    const char *partition; /* as qp_part_describe says it */
    int worker;            /* its index */
    int64_t ms;            /* time on the worker (-1: not known) */
    int64_t rows;          /* rows of its partition (-1: not known) */
} qp__ev;
/* qp__say with a task's fields (ev). */
void qp__say_ev(run *r, const char *event, const qp__ev *ev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A binding to cores that failed (who: "worker 1", "the scheduler"),
 * said with the cores and the cause: the run goes on unpinned. */
void qp__say_unpinned(run *r, const char *who, const qp_place *pl, const char *why);
/* Redraws the progress bar (TTY mode; at most every 100 ms unless force). */
void qp__draw_bar(run *r, bool force);
/* Erases the bar so a log line can take its place. */
void qp__clear_bar(run *r);
/* The --dry-run plan: function, input, partitions, workers and cores. */
void qp__print_plan(run *r, FILE *f);

/* ---- runlog.c ---- */
/* Says why the run failed: the first call sets r->error's message (and
 * code QP_RUN_FAILED); later ones are ignored, so the first failure, the
 * cause, is the one the run reports. */
void qp__fail(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Puts context before the message of the failure already set ("merge: ",
 * "reducer f: "), keeping the cause; nothing when none is set. */
void qp__fail_context(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether the run has failed (r->error is set). */
bool qp__failed(const run *r);
/* Worker w answered text (a q error) where a result was due: w and the
 * text, read as a remote exception by w's protocol, go into r->error,
 * unless a failure is set already. The message is the caller's (qp__fail,
 * after this). */
void qp__fail_remote(run *r, const qp__worker *w, const char *text);

/* ---- prepare.c ---- */
/* mkdir -p (errors surface later, when files are created there). */
void qp__mkdir_p(const char *path);
/* Sets r->input_path (and r->input when need_table): a CSV is converted
 * once into a kdb+ splayed table in the state folder, named by the CSV's path,
 * size, mtime and the job's types; a parse error always fails the run.
 * 0 or QP_RUN_FAILED. */
int qp__prepare_input(run *r, bool need_table);
/* [partition] column must name a column of the input: checked before
 * any task runs. 0, QP_RUN_BADJOB (r->error names the columns there
 * are) or QP_RUN_FAILED. */
int qp__check_columns(run *r);
/* [merge] key (sum-by-key over tables) names columns of the function's
 * result, not of the input, so it is checked on the first result that
 * arrives rather than after the last. 0 or QP_RUN_BADJOB. */
int qp__check_key(run *r, const qp_value *result, int64_t task);
/* What must be unchanged for a journal to be resumed: job file, code,
 * input. 0 or a negative code. */
int qp__job_ids(run *r, qp_journal_id ids[3]);
/* The same call on worker w (which must be connected). */
qp_value *qp__call_on(run *r, qp__worker *w, qp_value *msg);
/* One sync call on a ready worker; steals msg. Syncs the journal (when
 * open) while the worker computes. New reference, or NULL with r->error
 * set. */
qp_value *qp__call_one(run *r, qp_value *msg);
/* --dry-run of a job on a db: the plan from the db itself (by rows or by
 * partition), opened here. 0 or QP_RUN_FAILED with r->error. */
int qp__plan_db(run *r, int slots);
/* One line per file of folder path (or for path itself when it is a
 * file), in name order, into m: name, inode, size and modification time,
 * which tell a replaced or rewritten file from an unchanged one. */
void qp__describe_files(FILE *m, const char *path);
/* Opens [input] db here as r->db, once (later calls: 0 at once). 0 or a
 * negative code with err naming the path and the cause. */
int qp__open_db(run *r, char *err, size_t errlen);
/* [input] db, before any worker starts (local workers would mount it and
 * exit before listening, with nothing but their status to say why): it
 * opens here, holds the table, and the table's metadata reads. Else the
 * run fails naming the cause (a missing path, a file, the tables there
 * are), exit 2. 0 or QP_RUN_FAILED. */
int qp__check_db(run *r);
/* Each task's identity for the journal: by = partition over a db that
 * opens here, its partition's files of the table (a partition only
 * servers hold: zeros). *out is malloc'd, plan->n of them, or NULL when
 * tasks have no identity of their own. 0 or QP_RUN_FAILED (OOM). */
int qp__task_ids(run *r, uint8_t (**out)[32]);
/* Fills r->plan (and rows_total). 0 or QP_RUN_FAILED with r->error. */
int qp__make_plan(run *r, int slots);

/* The first connected worker (NULL: none). */
qp__worker *qp__first_ready(run *r);

/* ---- run.c ---- */
/* Opens r->journal at jpath (NULL: the path could not be made) for the
 * plan encoded in (pb, pl), with each task's identity in tids (NULL:
 * none; else r->plan->n of them); enc is what encoding the plan returned.
 * 0, or QP_RUN_FAILED with r->error naming the cause. */
int qp__journal_begin(run *r, const char *jpath, int enc, const uint8_t *pb, size_t pl,
                      const qp_journal_id ids[3], const uint8_t (*tids)[32]);

/* ---- kept.c ---- */
/* [workers] keep: takes a set of kept workers for these settings (its
 * folder becomes r->tmpdir, its lock is held until qp__kept_close) and
 * makes r->setup.reuse; stops the sets of this job's earlier settings.
 * 0; 1 when the workers are not kept after all (every set of these
 * settings in use, no pidfd: said); -1 with r->error (a workers folder
 * that is not private, ...). */
int qp__kept_open(run *r, int local);
/* Connects local worker w to the kept worker running in its slot (w's
 * addr, log, pid and pidfd set; reused), when one answers there; else
 * whatever holds the socket's name is stopped and false returned (start
 * one). */
bool qp__kept_adopt(run *r, qp__worker *w);
/* Writes the set's info (`qpeach workers`): the key, the job, what the
 * workers hold, their pids and cores; when that is what it says already,
 * only its time is set to now, and only with touch. */
void qp__kept_note(run *r, bool touch);
/* The end of the run, after the connections closed: the info written
 * (its time starts the idle clock `qpeach workers` shows) and the lock
 * let go; or, when `qpeach workers stop` asked during the run, the
 * workers stopped and the set removed. */
void qp__kept_close(run *r);

/* ---- dispatch.c ---- */
/* Starts local worker wi again (at most 5 times in a run), connects and
 * sets it up; says so. 0, or -1 (logged; the worker stays down, and for
 * good once it has used its restarts or is not local). */
int qp__restart_worker(run *r, int wi);
/* Runs every task not yet done. QP_RUN_OK (the last records may not be
 * fsync'd yet: the caller syncs before writing the output),
 * QP_RUN_INTERRUPTED, or QP_RUN_FAILED with r->error set. */
int qp__dispatch(run *r);

#endif
