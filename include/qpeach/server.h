/* qpeach/server.h - the worker server: an epoll event loop that speaks kdb+
 * IPC to many clients, checks each handshake, and dispatches calls to a
 * table of named functions (the `.qp` namespace).
 *
 * Threads: the loop thread owns sockets and never parses or runs user code.
 * A function runs where it was registered to run: on the loop (trivial,
 * non-blocking functions only), on the pool of secondary threads (-s N), or
 * on the one "main" thread (where embedded Python lives: it holds the GIL
 * and never touches a socket). Results are posted back to the loop through
 * a wake-up fd. One message per connection is in progress at a time, so a
 * client sees responses in order, as with q.
 *
 * Memory rules: see value.h. A function callback gets its arguments
 * borrowed and returns a new reference (a q error is a value of type -128,
 * never NULL; NULL means out of memory and becomes the error 'wsfull').
 */
#ifndef QPEACH_SERVER_H
#define QPEACH_SERVER_H

#include "qpeach/value.h"

typedef struct qp_server qp_server;

/* Where a registered function runs. */
enum qp_exec {
    QP_EXEC_LOOP = 0,      /* on the loop thread: must not block */
    QP_EXEC_POOL = 1,      /* on any secondary thread (or main if -s 0) */
    QP_EXEC_MAIN = 2,      /* on the single main thread (Python) */
};

/* args: a general list of the call's arguments (borrowed; `f[]` and
 * `f[::]` pass one (::) argument, as q does). Returns a new reference. */
typedef qp_value *(*qp_fn_cb)(qp_server *s, qp_value *args, void *data);
/* Runs once on a thread as it starts (pinning, interpreter setup). index is
 * -1 for the main thread, 0..N-1 for secondary threads. */
typedef void (*qp_thread_start_cb)(int index, void *data);

typedef struct qp_server_opts {
    const char *listen;        /* "PORT", "HOST:PORT", "unix:/path", "@/path" */
    int secondary;             /* secondary threads (q's -s N, N >= 0) */
    const char *passwd_file;   /* -u FILE: salted hashes; NULL: no auth */
    const char *tls_cert;      /* PEM; with tls_key enables TLS on TCP */
    const char *tls_key;
    bool insecure;             /* allow non-loopback without passwd_file */
    int handshake_ms;          /* close a client that has not finished its
                                * TLS + q handshake by then (0: 30000) */
    uint64_t max_msg;          /* longest message a client may send, bytes
                                * (0: the machine's physical memory) */
    qp_thread_start_cb on_thread_start;
    void *thread_data;
} qp_server_opts;

/* Creates a server with the built-in `.qp` functions (echo, ping, info,
 * set, get, tables, count, meta, partitions) and binds its listener. Returns 0 and *out
 * or a negative code with a message in err. */
int qp_server_new(const qp_server_opts *opts, qp_server **out, char *err, size_t errlen);
void qp_server_free(qp_server *s);            /* NULL-safe; stops threads */

/* Registers (or replaces) a function callable as `name[args]` by clients.
 * nargs: exact argument count, or -1 for any. Call before qp_server_run. */
int qp_server_def(qp_server *s, const char *name, int nargs, int exec,
                  qp_fn_cb fn, void *data);

/* Runs the loop until qp_server_stop (from any thread or a signal handler)
 * or a fatal error. Returns 0 or a negative code. */
int qp_server_run(qp_server *s);
void qp_server_stop(qp_server *s);            /* async-signal-safe */

/* Runs fn(item, data) for i in [0, n) across the secondary threads (and
 * the caller), returning when all are done: the building block of peach.
 * Callable from any server thread. */
void qp_server_parallel(qp_server *s, int64_t n,
                        void (*fn)(int64_t i, void *data), void *data);
int qp_server_secondary(const qp_server *s);  /* secondary thread count */

/* Cancellation. A sync call whose client closes its connection (a client
 * timeout, a stopped scheduler) is cancelled: if it has not started, it
 * never does; if it runs on the main thread, qp_server_cancelled(s) turns
 * true (from any thread) until it returns, and the callback set here is
 * called once, on the loop thread, so that the code running it can stop
 * (py.c raises qpeach.Cancelled in the Python thread). A function that
 * never asks runs to its end: the server only stops listening for it. The
 * callback must not block; set it before qp_server_run. */
void qp_server_on_cancel(qp_server *s, void (*fn)(void *data), void *data);
bool qp_server_cancelled(qp_server *s);

/* Server-side globals (`.qp.set`, `.qp.get`, tables). Thread-safe. */
/* Returns a new reference, or NULL when name is not defined; for a table
 * of the mounted db that cannot be read, an error value (-128) naming the
 * file and column. A partitioned db table is read whole (concatenated). */
qp_value *qp_server_get(qp_server *s, const char *name);
/* Defines or replaces name; steals value. Returns 0, QP_ENOMEM, or
 * -EEXIST when name is a table of the mounted db (check first with
 * qp_server_name_taken, which says so in words). */
int qp_server_set(qp_server *s, const char *name, qp_value *value);
/* Names of globals that are tables, then the mounted db's tables, as a
 * symbol vector (new reference). */
qp_value *qp_server_tables(qp_server *s);
/* Mounts a kdb+ database (qpeach/kdb.h): its tables become globals, read
 * from db when asked for (.qp.get, a bare name, .qp.count and .qp.meta
 * from headers, .qp.partitions, qtable() in Python), never at mount, and
 * ahead of any global: no global may take a db table's name. Each call
 * about a db table first looks whether the db changed on disk and mounts
 * it again if so (qp_kdb_reload); .qp.reload[] forces that. Moves those
 * built-ins off the event loop. The server takes db (closes it when
 * freed; keeps it on failure). One db per server; call before
 * qp_server_run. Returns 0 or a negative code. */
typedef struct qp_kdb qp_kdb;
int qp_server_mount(qp_server *s, qp_kdb *db);
/* When name is a table of the mounted db as it is now on disk (mounted
 * again first if it changed): a new reference to that db (qp_kdb_close
 * it). NULL when it is not (or no db is mounted), and then *err is NULL,
 * or an error value (new reference) when the db could not be mounted
 * again and name was one of its tables. */
qp_kdb *qp_server_db_table(qp_server *s, const char *name, qp_value **err);
/* Mounts the db again whatever changed (what .qp.reload[] does): its
 * tables as a symbol vector, or an error value (no db mounted, or it can
 * no longer be mounted). New reference. */
qp_value *qp_server_reload(qp_server *s);
/* An error value (new reference) saying that name is a db table, which a
 * global (.qp.set, .qp.load, --load: by) may not replace or hide; NULL
 * when name is free. */
qp_value *qp_server_name_taken(qp_server *s, const char *name, const char *by);
/* A .qp.apply part that is (column; value): a two-item list whose first
 * item names the column (a symbol or string), or the two-symbol vector
 * `c`v, which is what q makes of (`c;`v). Returns 1 with *col (interned)
 * and *value (a new reference) set, 0 when part is something else (both
 * NULL), QP_ENOMEM. */
int qp_server_part_column(const qp_value *part, const char **col, qp_value **value);
/* The part of db table name that a .qp.apply descriptor asks for, read
 * alone: (start; end) rows (qp_kdb_rows: only the partitions they touch),
 * or on a partitioned table (partition column; value), that partition.
 * When name is a db table and part is one of those, sets *out (new
 * reference: the table, an error value, or NULL on OOM) and returns 1;
 * otherwise 0, and the caller reads the table whole. */
int qp_server_db_part(qp_server *s, const char *name, const qp_value *part, qp_value **out);
/* Actual address bound (the port chosen for "0"), e.g. "127.0.0.1:5050". */
const char *qp_server_address(const qp_server *s);

#endif
