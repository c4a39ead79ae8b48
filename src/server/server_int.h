/* server_int.h - the worker server's insides, shared by the files of
 * src/server (listed below, in their order) and its unit tests. Not a
 * public header.
 *
 * Memory rules: see value.h. A work item owns everything it points to; the
 * thread that holds a work item (by having popped it from a queue) is the
 * only one touching it.
 */
#ifndef QPEACH_SERVER_INT_H
#define QPEACH_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "qpeach/auth.h"
#include "qpeach/ipc.h"
#include "qpeach/kdb.h"
#include "qpeach/server.h"
#include "net/net_int.h"

/* Messages (and results) up to this size are decoded, run (when the
 * function is a loop one) and encoded on the loop thread itself: a thread
 * hop costs more than the work, and the echo latency target is 1.3x a bare
 * TCP round trip. Larger ones go to the pool so the loop never stalls. */
#define QP__SMALL_MSG (64 * 1024)

/* A registered function. */
typedef struct qp__fn {
    const char *name;      /* interned */
    int nargs;             /* exact count, -1 any */
    int exec;              /* enum qp_exec */
    qp_fn_cb fn;
    void *data;
} qp__fn;

enum qp__work_kind {
    QP__WORK_MSG = 0,      /* a client message: decode, call, encode */
    QP__WORK_AUTH = 1,     /* a handshake to verify against the passwd file */
    QP__WORK_TASK = 2,     /* a qp_server_parallel helper */
};

/* Where a work item stands when qp__work_run returns. */
enum qp__work_status { QP__WORK_DONE = 0, QP__WORK_MOVED = 1 };

typedef struct qp__work qp__work;
struct qp__work {
    qp__work *next;        /* queue link */
    int kind;              /* enum qp__work_kind */
    int fd;                /* the connection it came from ... */
    uint64_t cid;          /* ... and that connection's id (fds are reused) */
    int msgtype;           /* of the request */
    bool local;            /* peer on this machine: no compression */
    qp_buf *msg;           /* the request, until decoded */
    const qp__fn *fn;      /* resolved function, NULL before / for globals */
    qp_value *args;        /* its arguments (general list) */
    qp_value *result;      /* result, until encoded */
    uint8_t *out;          /* encoded response (malloc'd), NULL for async */
    size_t outlen;
    char *cred;            /* AUTH: "user:password" (wiped before free) */
    bool auth_ok;          /* AUTH: verdict */
    void (*task)(void *);  /* TASK */
    void *task_data;
    char what[80];         /* what was called, for logging async errors */
    /* Cancellation (qp_server_cancelled): set by the loop when a sync
     * call's client has gone; seq: the main thread's run number for it
     * (0 until it starts there). Read and written across threads. */
    atomic_bool cancelled;
    atomic_uint_fast64_t seq;
};

/* An intrusive FIFO with one mutex + condvar. */
typedef struct qp__workq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qp__work *head, *tail;
    int64_t len;
} qp__workq;

typedef struct qp__sconn qp__sconn;   /* server-side connection (server.c) */

struct qp_server {
    qp_server_opts opts;
    char address[300];     /* what we bound, for the ready line */
    int lfd;               /* listening socket */
    int epfd;              /* epoll */
    int evfd;              /* eventfd: finished work items and stop requests */
    bool unix_sock;        /* listening on a unix socket */
    char unix_path[108];   /* socket file to remove at exit ("" if none) */
    ino_t unix_ino;        /* ... its inode: another server may have bound
                            * the name since (a kept worker started again
                            * in its slot), and its file is not ours */
    SSL_CTX *tls;          /* server TLS context, NULL for plain */
    qp_auth *auth;         /* password file, NULL: everyone is let in */
    atomic_bool stopping;  /* set by qp_server_stop */

    qp__sconn **conns;     /* by fd */
    int nconns;            /* slots in conns */
    uint64_t next_cid;
    /* Idleness (qp_server_idle_ms, read from any thread): clients
     * connected now, and when the last one left (or the server began). */
    atomic_int nclients;
    atomic_int_fast64_t idle_since_ms;
    /* Timers, each a FIFO because every entry in one has the same delay:
     * failed logins waiting to be closed, and handshakes that must finish
     * in time (a client that connects and says nothing holds no slot). */
    struct qp__deny *denied, *denied_tail;
    struct qp__deny *hs_timers, *hs_timers_tail;
    int64_t accept_paused_until;   /* out of fds: accept again after this */
    qp_ipc_limits rlim;    /* per-connection reader limits */

    qp__fn *fns;           /* registered functions (fixed once running) */
    int nfns, capfns;

    bool mounted;          /* a db is mounted (set once, before running) */
    pthread_mutex_t dbmu;  /* db: a reload replaces it */
    qp_kdb *db;            /* --db: mounted database (owned), or NULL */
    qp_value *dbnames;     /* its table names (symbol vector) as last
                            * listed: set under dbmu and gmu, read under
                            * either (the loop reads them under gmu) */

    pthread_mutex_t gmu;   /* globals */
    const char **gnames;   /* interned */
    qp_value **gvals;
    int ng, capg;

    qp__workq pool;        /* secondary threads (or the one internal helper with -s 0) */
    qp__workq mainq;       /* for the main (Python) thread */
    qp__workq done;        /* finished work items for the loop */
    pthread_t *threads;    /* main thread first, then secondaries */
    int nthreads;          /* started so far */
    int nready;            /* threads past on_thread_start (under done.mu) */
    pthread_cond_t ready_cv;  /* signalled as nready grows */
    bool threads_stop;     /* under each queue's mutex: threads exit */
    /* How a thread advances a work item it popped: dispatch.c's qp__work_run,
     * set by server.c (the pool knows threads and queues, not messages). */
    int (*run)(qp_server *s, qp__work *j, int where);
    /* Cancellation: the main thread numbers each call it runs (main_seq),
     * main_run is the one running (0: none), cancel_seq the last one whose
     * client left; on_cancel is told when that is the running one. */
    atomic_uint_fast64_t main_seq, main_run, cancel_seq;
    void (*on_cancel)(void *data);
    void *on_cancel_data;
};

/* The files, each using only those listed before it (no circles):
 *   pool.c      threads and their queues; runs work through s->run
 *   pykxwire.c  PyKX's q texts recognised
 *   globals.c   the function registry, globals, the mounted db's names
 *   builtins.c  the .qp built-ins that need no Python
 *   db.c        the built-ins of a mounted db (over builtins.c's)
 *   dispatch.c  a message -> its call -> the response
 *   server.c    the event loop, connections, logins; starts the pool
 *               with dispatch.c's qp__work_run as s->run */

/* ---- pool.c ---- */
void qp__workq_push(qp__workq *q, qp__work *j);
/* Takes every work item in q at once (the loop drains `done` this way). */
qp__work *qp__workq_take_all(qp__workq *q);
/* Starts the main thread and the secondaries, which run the work items they
 * pop through s->run (set first), and waits until each has run
 * on_thread_start; stops and joins them. */
int qp__threads_start(qp_server *s, char *err, size_t errlen);
void qp__threads_stop(qp_server *s);
/* Hands a work item to the thread kind that must run it next (pool, or main). */
void qp__work_post(qp_server *s, qp__work *j, int exec);
void qp__work_free(qp__work *j);

/* ---- pykxwire.c ---- */
/* What a PyKX client's q text is (qpeach/pykx.h): */
enum qp__pykx_text {
    QP__PYKX_NONE = 0,     /* not one of PyKX's texts */
    QP__PYKX_SESSION,      /* Q0, the session check: answered 1b */
    QP__PYKX_LOAD,         /* Q1, load pykx.q: answered (::) */
    QP__PYKX_LIBRARIES,    /* Q2's lambda: call QP__PYKX_LIBRARIES_FN */
    QP__PYKX_CALL,         /* Q3's lambda: call QP__PYKX_CALL_FN */
};
/* The functions (registered by the py module) that answer Q2 and Q3. */
#define QP__PYKX_LIBRARIES_FN ".qp.pykx.libraries"
#define QP__PYKX_CALL_FN ".qp.pykx.call"
/* Classifies the q text s (n bytes, whitespace ignored); never evaluates. */
int qp__pykx_text(const char *s, size_t n);

/* ---- globals.c ---- */
const qp__fn *qp__fn_find(const qp_server *s, const char *name);
/* The .qp.reset built-in: qp_server_reset's names. */
qp_value *qp__fn_reset(qp_server *s, qp_value *args, void *data);
void qp__globals_free(qp_server *s);
/* A global set in this server (not a db table): new reference or NULL. */
qp_value *qp__global_get(qp_server *s, const char *sym);
static inline bool qp__is_table(const qp_value *v)
{
    return v->type == QP_TABLE || qp_is_keyed_table(v);
}
/* True when sym (interned) was a table of the mounted db when it was last
 * listed (takes gmu; never looks at the disk). */
bool qp__db_has(qp_server *s, const char *sym);
/* The db as it is now (mounted again when it changed on disk, or when
 * force): a new reference, or NULL and *err saying why it could not be
 * mounted again. */
qp_kdb *qp__db_now(qp_server *s, bool force, qp_value **err);
/* Db table sym as it is now on disk (qp_kdb_table, enums kept): a new
 * reference, an error value naming the file and column (or why the db
 * could not be mounted again), or NULL when sym is not a db table. */
qp_value *qp__db_table(qp_server *s, const char *sym);

/* ---- builtins.c ---- */
int qp__builtins_register(qp_server *s);
/* The built-ins db.c wraps (args as qp_fn_cb gets them). */
qp_value *qp__fn_get(qp_server *s, qp_value *args, void *data);
qp_value *qp__fn_set(qp_server *s, qp_value *args, void *data);
qp_value *qp__fn_count(qp_server *s, qp_value *args, void *data);
qp_value *qp__fn_meta(qp_server *s, qp_value *args, void *data);
qp_value *qp__fn_partitions(qp_server *s, qp_value *args, void *data);
qp_value *qp__fn_distinct(qp_server *s, qp_value *args, void *data);
qp_value *qp__fn_select(qp_server *s, qp_value *args, void *data);
/* .qp.select's arguments [t; part; cols; rows] as a selection (sel's
 * pointers borrow args, but sel->cols, when a symbol vector had to be
 * made, is *cols: qp_unref it). NULL, or an error value saying what is
 * wrong with which argument. */
qp_value *qp__select_args(const qp_value *args, qp_kdb_sel *sel, qp_value **cols);

/* ---- dispatch.c ---- */
/* Cancels work item j, whose sync client has gone (loop thread): it will
 * not start, or on_cancel is told that it runs on the main thread.
 * Returns false when there was nothing to cancel (async, done already). */
bool qp__work_cancel(qp_server *s, qp__work *j);
/* Advances a work item as far as it can on the calling thread (where: the
 * enum qp_exec kind of this thread). DONE: the response is encoded (or
 * none is due); MOVED: the work item went to another thread's queue. */
int qp__work_run(qp_server *s, qp__work *j, int where);
/* Copies client-supplied text into dst (cap > 0 bytes, NUL-terminated,
 * truncated) for a one-line log: bytes outside printable ASCII become \xHH,
 * so a client cannot forge log lines or break a log reader's decoding. */
void qp__log_text(char *dst, size_t cap, const char *src);

#endif
