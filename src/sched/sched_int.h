/* sched_int.h - internals shared by run.c and workers.c. */
#ifndef QPEACH_SCHED_INT_H
#define QPEACH_SCHED_INT_H

#include "qpeach/conn.h"
#include "qpeach/ipc.h"
#include "qpeach/sched.h"
#include "qpeach/topo.h"

#include <sys/types.h>

#define QP__MAX_WINDOW 64

/* One request in flight on a connection, in send order. */
typedef struct qp__flight {
    int64_t task;          /* task index */
    bool final;            /* the message whose response is the result */
    int attempt;           /* the task's send count when sent: stale answers are dropped */
    int64_t sent_ms;
} qp__flight;

typedef struct qp__worker {
    int id;
    char addr[300];        /* what we connect to */
    bool local;            /* a process we started */
    bool pykx;             /* a q + PyKX server: PyKX's messages (pykxmsg.c) */
    pid_t pid;             /* local: its pid (0 when not running) */
    char log[300];         /* local: the file its stderr goes to */
    int restarts;
    qp_conn *c;            /* NULL when down */
    qp__flight fl[QP__MAX_WINDOW * 2];
    int nfl, flhead;       /* ring of requests in flight */
    int tasks_in;          /* tasks in flight (file tasks send two messages) */
    int64_t head_start_ms; /* when the oldest request started running */
    bool dead_for_good;    /* unreachable server or too many restarts */
    int64_t done;          /* tasks finished here */
    int64_t last_done_us;  /* when its last task finished (0: none yet) */
    double gap_us;         /* moving average of the time between finished
                            * tasks: how long a task takes here */
} qp__worker;

/* ---- workers.c ---- */
/* Starts local worker i: `qpeach serve -p unix:SOCK -s T [--db PATH]`
 * (the job's threads and db), pinned to place (NULL: not pinned), dying
 * with us (PR_SET_PDEATHSIG). */
int qp__worker_spawn(qp__worker *w, const char *self, const char *dir, const qp_job *job,
                     const qp_topo *topo, const qp_place *place, char *err, size_t errlen);
/* Connects (waiting up to wait_ms for a local worker to come up). */
int qp__worker_connect(qp__worker *w, const qp_job *job, int wait_ms, char *err, size_t errlen);
/* Every connection but keep's (NULL: none) closed and its local process
 * sent SIGKILL, not reaped (qp__workers_stop reaps). */
void qp__workers_kill(qp__worker *ws, int n, const qp__worker *keep);
/* The end of a run: every connection closed, every local worker killed
 * (SIGKILL, all at once) and reaped. */
void qp__workers_stop(qp__worker *ws, int n);
/* Drops the connection; a local process is killed and reaped. */
void qp__worker_down(qp__worker *w, bool kill_process);
/* The setup calls every worker gets (imports, function definitions, the
 * input load), as a list of messages (new references). o may be NULL; its
 * fn_code (reducer_code), when set, is the function's (reducer's) code:
 * no module file is read. */
int qp__setup_msgs(const qp_job *job, const qp_run_opts *o, const char *input_path, qp_value ***msgs, int *n,
                   char *err, size_t errlen);
/* The setup messages of qpeach workers and of PyKX servers. */
typedef struct qp__setup {
    qp_value **msgs;       /* qpeach workers' (owned) */
    int n;
    qp_value **pykx;       /* PyKX servers' (owned) */
    int npykx;
} qp__setup;
/* Sends the setup messages to every connected worker (each its kind's),
 * then reads every answer: workers that answer an error are dropped, with
 * the reason in errs[i]. Returns how many are ready. */
int qp__setup_all(qp__worker *ws, int nw, const qp__setup *s, int timeout_ms, char (*errs)[512]);

/* ---- pykxmsg.c ---- */
/* PyKX's session check on a new connection: 0 when it answers 1b, else
 * a negative code with err saying what it answered. */
int qp__pykx_check_session(qp_conn *c, int timeout_ms, char *err, size_t errlen);
/* PyKX's libraries lambda, one message per [job] libraries entry (new
 * references in a malloc'd array; none: NULL, 0). 0 or QP_ENOMEM. */
int qp__pykx_setup_msgs(const qp_job *job, qp_value ***msgs, int *n);
/* PyKX's call lambda applied to (source; `name; enlist arg; 1): steals
 * arg. New reference, NULL on OOM. */
qp_value *qp__pykx_call_msg(const char *source, const char *name, qp_value *arg);
/* A general list (`name; args...): steals the args. */
qp_value *qp__call(const char *name, int nargs, ...);
/* The Python module file, read once and checked to define function name
 * at its top level: 0 and a new buffer (its text, NUL-terminated), or a
 * negative code with err naming the file and why (the read's cause, or
 * "no top-level function 'NAME'"). */
int qp__py_module(const char *file, const char *name, qp_buf **out, char *err, size_t errlen);

int64_t qp__ms(void);

#endif
