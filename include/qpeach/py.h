/* qpeach/py.h - embedded CPython 3.11 (Debian's) with numpy: q <-> Python
 * conversion, the registry of Python functions, and the `.qp` functions that
 * run them inside `qpeach serve` (import, def, call, callk, apply, load,
 * peach, timeout).
 *
 * Memory rules (value.h's, in CPython's words on both sides of the bridge):
 *   - "Returns a new reference" means a new qp_value reference (qp_unref it)
 *     or a new PyObject reference (Py_DECREF it), as the return type says.
 *     "Borrowed" arguments change no count on either side.
 *   - q -> Python: a numpy array made from a q vector without copying holds
 *     a reference to that qp_value in a capsule that is the array's base, so
 *     the q items live as long as the array (and any view of it). Such arrays
 *     are read-only: the items may be shared with the server's tables and
 *     with other threads. Python never owns q memory otherwise.
 *   - Python -> q: results are always copied into q-owned memory, so a q
 *     value never holds a PyObject and may be freed on any thread without
 *     the GIL.
 *   - q errors travel as values of type -128: a failed conversion to q
 *     returns an error value naming the Python type; a failed conversion to
 *     Python returns NULL with a Python exception set.
 *
 * Threads: Python is initialized on the server's main thread (the thread
 * that runs QP_EXEC_MAIN callbacks), which holds the GIL between calls.
 * Every function below that takes or returns a PyObject needs the GIL.
 * Secondary threads run Python only inside `.qp.peach` (threads mode),
 * taking the GIL in turn while the main thread waits with it released.
 */
#ifndef QPEACH_PY_H
#define QPEACH_PY_H

#include "qpeach/value.h"

struct _object;                /* PyObject, without including Python.h */
typedef struct qp_server qp_server;

/* ---- Lifecycle (main thread) ---- */

/* Starts the interpreter (isolated config, Debian's /usr/bin/python3
 * prefix, so a pyenv python on PATH does not matter) and imports numpy.
 * Idempotent. Returns 0, or QP_EPYTHON with a message in err. The calling
 * thread becomes Python's main thread and keeps the GIL. */
int qp_py_init(char *err, size_t errlen);
/* True once qp_py_init succeeded. */
bool qp_py_ready(void);
/* Finalizes the interpreter (tests; the server just exits). */
void qp_py_fini(void);
/* For a Python that is already running (the Python client's extension
 * module): sets up what the conversions need, numpy's C API and its dtype
 * caches, which qp_py_init does in a server. GIL held; 0, or -1 with a
 * Python exception set. */
int qp_py_conv_init(void);

/* ---- Conversion (GIL held) ---- */

enum qp_py_flags {
    QP_PY_PANDAS = 1,          /* tables -> pandas DataFrame (keyed: index) */
    QP_PY_CATEGORICAL = 2,     /* symbol vectors -> pandas Categorical */
    QP_PY_CODES = 4,           /* enumerations (type 20) -> SymbolCodes:
                                * codes viewing the indices + the domain as
                                * a str array; no pandas (other symbol
                                * vectors as with QP_PY_CATEGORICAL) */
};

/* q -> Python. x borrowed. Returns a new reference, or NULL with a Python
 * exception set. Mapping (see src/py/fromq.c for the full table): atoms to
 * Python/numpy scalars, numeric vectors to numpy arrays viewing the q items
 * (no copy), temporal vectors shifted to numpy's 1970 epoch (a copy; a
 * timespan vector is a view), symbols to object arrays of str (or a
 * Categorical), strings to str, lists to list, dicts to dict, tables to a
 * dict of arrays (or a DataFrame). */
struct _object *qp_py_from_q(const qp_value *x, int flags);
/* Python -> q. o borrowed. Returns a new reference: the value, or an error
 * value (-128) naming the Python type that could not be converted. NULL
 * only on out-of-memory. Mapping: see src/py/toq.c. */
qp_value *qp_py_to_q(struct _object *o);
/* The current Python exception as a q error value ("Type: message" then
 * the last frames of the traceback), clearing it. New reference. */
qp_value *qp_py_error(void);

/* ---- Functions (GIL held; the q-level operations behind `.qp.*`) ---- */

/* libs: dict alias -> module name (symbols or strings), or a symbol
 * vector/atom (alias = module). Imports each module into the namespace
 * shared by every function. Returns a new reference: the aliases, or an
 * error naming the missing module and its alias. */
qp_value *qp_py_import(const qp_value *libs);
/* Defines (or replaces) function name from code: source text (char
 * vector; decorators stripped) or dill bytes (byte vector). opts: NULL or a
 * dict with symbol keys (`pandas`, `categorical`, `codes`: booleans; `reuse`: when
 * name is already defined from the same code with the same pandas and
 * categorical options, keep that definition, module state included,
 * instead of running the code again). Returns a new reference: the SHA-256
 * of the code as a 64-char hex string. */
qp_value *qp_py_def(const char *name, const qp_value *code, const qp_value *opts);
/* Calls function name. args: a list of arguments (general list or vector:
 * each item is one argument, as q's `.`), an atom (one argument), (::) or
 * an empty list (none). kwargs: NULL or a dict with symbol keys. Runs under
 * the current timeout. Returns a new reference (result or error). */
qp_value *qp_py_call(const char *name, const qp_value *args, const qp_value *kwargs);
/* Per-call timeout in milliseconds (0: none); returns the previous one. */
int qp_py_set_timeout(int ms);
/* Forgets every function qp_py_def defined, with its namespace (its
 * module state): the next qp_py_def of a name runs its code again, in a
 * new namespace. Imported libraries and their aliases stay, as does
 * everything in sys.modules. No-op before Python starts. */
void qp_py_forget(void);

/* ---- The `.qp` functions in a server ---- */

typedef struct qp_py_opts {
    int timeout_ms;            /* default per-call timeout; 0: none */
    int procs;                 /* q's -s -N: worker processes to start */
    const char *const *loads;  /* "NAME=FILE": the --load tables the caller
                                * loaded, loaded again by each worker */
    int nloads;
    const char *db;            /* --db PATH: the database the caller
                                * mounted, mounted by each worker too */
    const char *exe;           /* qpeach binary for the workers; NULL: self */
    int parent_fd;             /* in a worker: read end of the parent's pipe
                                * (EOF: the parent died, exit); -1: none */
} qp_py_opts;

/* Starts the worker processes (o->procs > 0) and
 * registers .qp.import, .qp.def, .qp.call, .qp.callk, .qp.apply, .qp.load,
 * .qp.peach, .qp.timeout, and with worker processes a .qp.set that also
 * forwards the global to them (over the server's built-in) and, with
 * o->db, a .qp.reload[] that mounts the db again in each of them too. Worker
 * processes that die are restarted with all of that replayed (procs.c).
 * Inside Python functions, qtable(name, ...) and qget(name) read the
 * server's tables and globals. Python itself starts on the server's main
 * thread at the first of these calls (or at that thread's start with
 * QPEACH_PY_EAGER=1 when on_thread_start is qp_py_thread_start_cb). o may
 * be NULL. Returns 0, or a negative code with a message in err.
 * One server per process: the interpreter, the registry of functions and
 * the -s -N workers are process-wide, so registering a second server
 * fails with QP_EARG (and says so in err) until qp_py_shutdown; the same
 * server may register again. */
int qp_py_register(qp_server *s, const qp_py_opts *o, char *err, size_t errlen);
/* A qp_server_opts.on_thread_start: starts Python on the main thread
 * (index -1) when QPEACH_PY_EAGER=1; does nothing elsewhere. */
void qp_py_thread_start_cb(int index, void *data);
/* Stops the worker processes (called at exit too) and ends the server's
 * registration (the interpreter and its functions stay). */
void qp_py_shutdown(void);

#endif
