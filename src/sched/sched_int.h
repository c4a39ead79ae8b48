/* sched_int.h - internals shared by run.c and workers.c. */
#ifndef QPEACH_SCHED_INT_H
#define QPEACH_SCHED_INT_H

#include "qpeach/conn.h"
#include "qpeach/ipc.h"
#include "qpeach/sched.h"
#include "qpeach/topo.h"

#include <signal.h>
#include <sys/types.h>

/* The signal that asked the run to stop (SIGINT/SIGTERM), 0 while none
 * (run.c's handler sets it; the waits of a run look at it). */
extern volatile sig_atomic_t qp__stop_signal;

#define QP__MAX_WINDOW 64     /* the most tasks in flight a job's window sets */
#define QP__MAX_BATCH 64      /* the most tasks in one message */
/* Tasks in flight per connection at most: an automatic window holds two
 * full batches. */
#define QP__MAX_INFLIGHT (2 * QP__MAX_BATCH)

/* One task of a request in flight on a connection, in send order: a
 * message of one task is one entry, a batch one entry per task, next to
 * each other. */
typedef struct qp__flight {
    int64_t task;          /* task index */
    bool final;            /* the message whose response is the result */
    int attempt;           /* the task's send count when sent: stale answers are dropped */
    int batch;             /* tasks in the message (1: a message of its own) */
    int64_t sent_ms;
} qp__flight;

struct run;
typedef struct qp__worker qp__worker;

/* Messages (new references, in a malloc'd array). */
typedef struct qp__msgs {
    qp_value **m;
    int n;
} qp__msgs;

/* How the scheduler talks to one kind of worker: qpeach's .qp calls
 * (qpmsg.c) or PyKX's own messages to q + pykx.q (pykxmsg.c). Connecting,
 * setup, dispatch and the reducer go through a worker's table and never
 * ask which kind it is, as hiredis puts TLS behind read/write/close. */
typedef struct qp__proto {
    int id;                /* index of its setup messages in qp__setup.of */
    const char *name;      /* as [workers] protocol names it */
    /* The scheduler holds the input and each call carries its partition
     * (a q server selects nothing for us); else workers hold the table and
     * a call names rows of it. */
    bool holds_input;
    /* After the connection opens: 0, or a negative code with err. */
    int (*connect)(qp_conn *c, int timeout_ms, char *err, size_t errlen);
    /* Before any worker starts: what the run needs for this kind, and the
     * setup messages each of its workers gets (into *setup). 0, or an exit
     * code with the run's error set. */
    int (*prepare)(struct run *r, qp__msgs *setup);
    /* A setup answer that is an error (text) to setup message msg, said
     * into err. */
    void (*setup_error)(const qp_value *msg, const char *text, char *err, size_t errlen);
    /* Task i's messages, in sending order, into m[0..*n) (at most 2): the
     * last one's answer is the task's result. 0, or -1 with the run's
     * error set. */
    int (*task)(struct run *r, int64_t i, qp_value *m[2], int *n);
    /* Tasks ids[0..n) in one message (*m), whose answer is (ok; r): a
     * boolean per task and per task its result, or where ok is false the
     * text of its error. Only for tasks of one message each. 0, or -1 with
     * the run's error set. NULL: this kind takes one task per message. */
    int (*batch)(struct run *r, const int64_t *ids, int n, qp_value **m);
    /* The reducer's call over v (steals v). New reference, NULL on OOM. */
    qp_value *(*reduce)(struct run *r, qp_value *v);
    /* A result that is a q error: its text as the remote exception. */
    void (*remote_error)(const char *text, qp_remote_error *out);
} qp__proto;

enum { QP__NPROTO = 2 };
extern const qp__proto qp__proto_qpeach;   /* qpmsg.c */
extern const qp__proto qp__proto_pykx;     /* pykxmsg.c */

struct qp__worker {
    int id;
    char addr[300];        /* what we connect to */
    bool local;            /* a process we started */
    const qp__proto *proto; /* how to talk to it */
    pid_t pid;             /* local: its pid (0 when not running) */
    bool kept;             /* local, [workers] keep: not our child, it
                            * outlives the run (see kept.c) */
    bool reused;           /* kept: found running when the run began (it
                            * gets .qp.reset[] before the setup) */
    int pidfd;             /* kept: a pidfd of pid (-1: none), to signal
                            * and wait for a process that is not our child */
    char log[300];         /* local: the file its stderr goes to */
    int restarts;
    char pin_error[256];   /* local: why it could not be bound to its
                            * cores ("" when it was, or was not asked to) */
    qp_conn *c;            /* NULL when down */
    /* ring of requests in flight: a window of two-message tasks, or of
     * batches */
    qp__flight fl[QP__MAX_INFLIGHT > 2 * QP__MAX_WINDOW ? QP__MAX_INFLIGHT : 2 * QP__MAX_WINDOW];
    int nfl, flhead;
    bool nobatch;          /* refused a batch: one task per message */
    int tasks_in;          /* tasks in flight (file tasks send two messages) */
    int64_t head_start_ms; /* when the oldest request started running */
    bool dead_for_good;    /* unreachable server or too many restarts */
    int64_t done;          /* tasks finished here */
    int64_t last_done_us;  /* when its last task finished (0: none yet) */
    double gap_us;         /* moving average of the time between finished
                            * tasks: how long a task takes here */
};

/* ---- workers.c ---- */
/* Starts local worker i: `qpeach serve -p unix:SOCK -s T [--db PATH]`
 * (the job's threads and db), pinned to place (NULL: not pinned), dying
 * with us (PR_SET_PDEATHSIG). A binding that fails leaves the worker
 * running unpinned, the cause in w->pin_error. A kept worker (w->kept)
 * instead outlives us: started by a child that exits at once (so it is
 * init's to reap, never a zombie of ours), in a session of its own, with
 * --idle-exit [workers] keep, and --watch the state folder and dir. */
int qp__worker_spawn(qp__worker *w, const char *self, const char *dir, const qp_job *job,
                     const qp_topo *topo, const qp_place *place, char *err, size_t errlen);
/* The folder of job's function file, which local workers put first on
 * their sys.path: its length in *fn (the file's text), or -1 when the
 * file names no folder. */
int qp__fn_dir(const qp_job *job, const char **fn);
/* "core 3" or "cores 2,3": a place's cores for messages. */
void qp__cores_text(const qp_place *pl, char *buf, size_t n);
/* Connects (waiting up to wait_ms for a local worker to come up). */
int qp__worker_connect(qp__worker *w, const qp_job *job, int wait_ms, char *err, size_t errlen);
/* Every connection but keep's (NULL: none) closed and its local process
 * sent SIGKILL, not reaped (qp__workers_stop reaps); kept workers are
 * only disconnected. */
void qp__workers_kill(qp__worker *ws, int n, const qp__worker *keep);
/* The end of a run: every connection closed, every local worker killed
 * (SIGKILL, all at once) and reaped; kept workers are only disconnected. */
void qp__workers_stop(qp__worker *ws, int n);
/* Drops the connection; with kill_process a local process (kept ones
 * too: it hung or failed) is killed and reaped. */
void qp__worker_down(qp__worker *w, bool kill_process);
/* How long a worker's setup may take: [run] task_timeout when set (the
 * module's import and the input load are work like a task's), else 10
 * minutes. */
int qp__setup_timeout_ms(const qp_job *job);
/* The setup messages each kind of worker gets (its table's id), and what
 * a kept worker found running gets before them (.qp.reset[], and the db's
 * .qp.reload[]). */
typedef struct qp__setup {
    qp__msgs of[QP__NPROTO];
    qp__msgs reuse;
} qp__setup;
/* Sends the setup messages to every connected worker (its kind's), then
 * reads every answer, all within timeout_ms. A worker that answers an
 * error, is lost or runs past the timeout is dropped (a local one killed),
 * with the reason in errs[i] and in codes[i] (when not NULL) QP_EARG for
 * an error it answered (the job's: it would answer it again), or the
 * transport's code (QP_ETIMEOUT, QP_ECLOSED, ...: another process may do);
 * 0 for a ready one. Returns how many are ready. */
int qp__setup_all(qp__worker *ws, int nw, const qp__setup *s, int timeout_ms, char (*errs)[512],
                  int *codes);

/* ---- qpmsg.c ---- */
/* The modules function fn's module imports from its folder, as .qp.def's
 * `modules` option sends them (qp_job_modules), or NULL when none; given:
 * the caller gave the code, and the module file need not exist. 0, or a
 * negative code with err. */
int qp__fn_modules(const qp_job_fn *fn, bool given, qp_value **out, char *err, size_t errlen);
/* The length of the Python class name (dotted, its last part capitalised)
 * at s, before end; 0 when s does not start with one. */
size_t qp__type_len(const char *s, const char *end);

/* ---- pykxmsg.c ---- */
/* PyKX's call lambda applied to (source; `name; enlist arg; 1): steals
 * arg. New reference, NULL on OOM. */
qp_value *qp__pykx_call_msg(const char *source, const char *name, qp_value *arg);

/* ---- workers.c ---- */
/* A general list (`name; args...): steals the args. */
qp_value *qp__call(const char *name, int nargs, ...);
/* The Python module file, read once and checked to define function name
 * at its top level: 0 and a new buffer (its text, NUL-terminated), or a
 * negative code with err naming the file and why (the read's cause, or
 * "no top-level function 'NAME'"). */
int qp__py_module(const char *file, const char *name, qp_buf **out, char *err, size_t errlen);

int64_t qp__ms(void);

/* ---- kept.c: processes that are not our children ---- */
/* A pidfd of pid, or -1 (gone, or no pidfd on this kernel). */
int qp__pidfd_open(pid_t pid);
/* Whether the process ended within ms (0: is it gone now). */
bool qp__pidfd_wait(int pidfd, int ms);
/* SIGTERM, then SIGKILL after ms; waits for the end. Closes nothing. */
void qp__pidfd_stop(int pidfd, int ms);

#endif
