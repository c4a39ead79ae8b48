/* py_int.h - internals shared by the files of src/py. Include first:
 * Python.h must come before any system header. */
#ifndef QPEACH_PY_INT_H
#define QPEACH_PY_INT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL qp__numpy_api
#ifndef QP_PY_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "qpeach/py.h"
#include "qpeach/server.h"

/* Deepest nesting converted either way (a list holding itself must end). */
#define QP_PY_MAX_DEPTH 100

/* fromq.c: set up / drop the cached numpy dtypes and the symbol cache
 * (qp__conv_fini also drops symcat.c's caches). 0 or -1
 * with an exception set. */
int qp__conv_init(void);
void qp__conv_fini(void);
/* toq.c: the general list lst as a vector when every item is an atom of one type
 * (as q collapses `(1;2;3)`), else lst itself. Steals lst; new reference. */
qp_value *qp__collapse(qp_value *lst);
/* toq.c: the pending Python exception as a q error "qpeach: what: ...",
 * clearing it. New reference. */
qp_value *qp__py_failed(const char *what);
/* toqtime.c: 1-d datetime64/timedelta64 array a as a q temporal vector
 * (borrowed a; new reference or an error value). col names where a value
 * q cannot hold is, for the error: column col (rows), NULL (items of a
 * vector), or qp__atom_pos (a 0-d array's one item, no position). */
qp_value *qp__temporal_to_q(PyArrayObject *a, const char *col);
extern const char qp__atom_pos[];
/* fromq.c: the cached str of symbol s (borrowed; the cache owns it), and
 * the pandas module (borrowed; imported at the first call). NULL with an
 * exception set. */
PyObject *qp__sym_str(const char *s);
PyObject *qp__pandas(void);

/* symcat.c: symbol vectors as pandas Categoricals, and the codes cache of
 * resident symbol columns (GIL held for all; see the file's comment).
 * x -> Categorical: a view of cached codes when x lies inside a primed
 * column, else codes built for x. New reference, NULL with an exception. */
PyObject *qp__sym_categorical(const qp_value *x);
/* Builds and caches the codes of symbol column col (borrowed; the cache
 * takes a reference to its buffer), unless cached; other types are
 * skipped. 0, or -1 with an exception set. */
int qp__symcat_prime(const qp_value *col);
/* qp__symcat_prime on every column of table t (borrowed). */
int qp__symcat_prime_table(const qp_value *t);
/* Drops the entries whose buffer only the cache still references; returns
 * the number of entries left. */
size_t qp__symcat_sweep(void);
/* select.c: the rows of table t (borrowed) that a .qp.apply part selects:
 * (start; end) rows, a view; or (column; value), gathered through the
 * column's group index (built at the first such part, kept while the
 * column lives). New reference, an error value, or NULL on OOM. Main
 * thread only. */
qp_value *qp__select(const qp_value *t, const qp_value *part);
/* The rows where col = val of db's partitioned table (interned name),
 * partition by partition, equal to those of the whole table; as
 * qp__select. */
qp_value *qp__select_parted(struct qp_kdb *db, const char *table, const char *col,
                            const qp_value *val);
/* Drops the indexes of columns only the cache still holds; frees them
 * all (fini). */
void qp__select_sweep(void);
void qp__select_fini(void);
/* The whole cached codes array of the column col lies in (borrowed), or
 * NULL when none: lets tests check that slices share it. */
PyObject *qp__symcat_codes(const qp_value *col);
/* An enumeration (type 20) x as a Categorical whose codes view x's int64
 * indices (read-only, no copy) over the domain's names, made once per
 * domain; copied codes only for nulls or a domain with repeated names.
 * New reference, NULL with an exception. */
PyObject *qp__enum_categorical(const qp_value *x);
/* A read-only numpy array over vector x's items, whose base holds a
 * reference to x (so its buffer or mapping outlives the array); d is
 * stolen. New reference. */
PyObject *qp__view_vector(const qp_value *x, PyArray_Descr *d);
/* Enum x as SymbolCodes(codes, categories): codes a read-only view of the
 * indices (a copy, with nulls as the index of ``, when 0Nj occurs), the
 * categories the domain's strs, made once per domain. New reference. */
PyObject *qp__enum_codes(const qp_value *x);
/* Takes the SymbolCodes class (py.c's helpers define it). 0 or -1. */
int qp__symcat_codes_class(PyObject *cls);
/* Whether o is a SymbolCodes (what a function got for symbols = codes). */
bool qp__is_symbol_codes(PyObject *o);
/* x as an object array of str, filled from the domain's str objects.
 * New reference, NULL with an exception. */
PyObject *qp__enum_objects(const qp_value *x);
/* Drops every entry (qp__conv_fini). */
void qp__symcat_fini(void);

/* pymods.c: modules shipped with a function (.qp.def's `modules`). */
/* Makes the modules of dict mods (names -> source) importable. 0, or -1
 * with a Python exception. */
int qp__modules_add(const qp_value *mods);
/* What `reuse` compares for code shipped with mods: id (the code's
 * SHA-256) when mods is NULL, else the SHA-256 of the code's and the
 * modules' bytes (a changed ohlc.py is a new definition). New reference. */
qp_value *qp__def_key(const qp_value *code, const qp_value *mods, qp_value *id);
void qp__modules_fini(void);
/* The SHA-256 of n bytes at p as 64 hex characters (py.c; what .qp.def
 * answers). New reference, or an error value. */
qp_value *qp__sha256_hex(const void *p, size_t n);

/* Python source run in a dict of its own (builtins in it): the helpers a
 * file writes in Python, compiled once. New reference, NULL with a Python
 * exception (pdcol.c). */
PyObject *qp__helpers_run(const char *src);

/* pdcol.c: pandas' missing values and char columns, both ways (GIL
 * held; pandas imported at the first use). Each returns a new reference,
 * or NULL with an exception set. */
/* Short, int or long vector x holding a q null as a pandas nullable
 * Int16/Int32/Int64 array (<NA> there; the values view x); x itself (as
 * a numpy array) when it holds none. */
PyObject *qp__pd_ints(const qp_value *x);
/* cat (stolen), the str array or Categorical of symbol or enumeration
 * column x, with the null symbol as pandas' missing value (NaN, or code
 * -1) when x holds one. */
PyObject *qp__pd_sym_nulls(const qp_value *x, PyObject *cat);
/* Marks df's columns that were q char columns (names, a symbol vector,
 * borrowed) in df.attrs, so they go back as char columns. 0 or -1. */
int qp__pd_mark_chars(PyObject *df, const qp_value *names);
/* The names of df's columns marked as char columns: a list (empty when
 * none). */
PyObject *qp__pd_char_columns(PyObject *df);
/* The values of Series s as a numpy array with q's nulls where pandas has
 * missing values (nullable integers, floats and strings); an error for
 * <NA> in a boolean (q booleans have no null). */
PyObject *qp__pd_values(PyObject *s);
/* numpy masked array a with q's nulls where masked (a plain array). */
PyObject *qp__pd_unmask(PyObject *a);
/* Drops the helpers (qp__conv_fini). */
void qp__pd_fini(void);

/* py.c: the registry of functions. */
/* Sets alias to o (borrowed) in the shared namespace and every function's. */
int qp__lib_set(const char *alias, PyObject *o);
/* The QP_PY_* flags the function registered as name was defined with:
 * 0, or QP_EARG when there is none. */
int qp__func_flags(const char *name, int *flags);
/* Calls the function registered as name with args and kwargs (borrowed)
 * under the timeout and converts the result to q. New reference: the
 * result, or an error value (no such function, or the Python exception). */
qp_value *qp__call_obj(const char *name, PyObject *args, PyObject *kwargs);
/* f(*args, **kwargs) under the per-call timeout when on the main thread;
 * name (interned: it must outlive the call) is what a timeout reports.
 * Returns a new reference, or NULL with the exception set. */
PyObject *qp__call_timed(const char *name, PyObject *f, PyObject *args, PyObject *kwargs);

/* pykx.c: PyKX's remote functions (PYKX_WIRE.md). Each returns a new
 * reference: the result, or the error text PyKX's client shows. */
/* Q2: `import library as alias` in the shared __main__ namespace. */
qp_value *qp__pykx_libraries(const qp_value *alias, const qp_value *library);
/* Q3: defines the function of code (compiled once per distinct source)
 * and calls it with args (PyKX's framing: general list or typed vector,
 * none when n is 0). */
qp_value *qp__pykx_call(const qp_value *code, const qp_value *name, const qp_value *args,
                        const qp_value *n);
/* At Python start: `import pykx` falls back to qpeach's stand-in module
 * (python/qpeach/_pykx.py) when no real PyKX is installed. 0 or -1. */
int qp__pykx_init(void);
/* Drops the compiled sources (qp_py_fini, before the interpreter goes). */
void qp__pykx_fini(void);
/* Sets name to o (borrowed) in __main__, where PyKX functions live. */
int qp__pykx_main_set(const char *name, PyObject *o);

/* procs.c: worker processes for -s -N. */
int qp__procs_start(const qp_py_opts *o, char *err, size_t errlen);
int qp__procs_count(void);
/* Sends msg (borrowed) to every worker; returns the first error (new
 * reference) or NULL when all succeeded. replay: keep msg in the history
 * a restarted worker is given (not for what a new process has anyway). */
qp_value *qp__procs_broadcast(const qp_value *msg, bool replay);
/* Runs `.qp.call[fn; enlist item]` for every item of items across the
 * workers, handing items out as each finishes. When the call is cancelled
 * (qp_server_cancelled(s)) no more items go out, and the connections to
 * the workers running one are closed: each worker cancels it itself, as
 * any server does when its client leaves. New reference. */
qp_value *qp__procs_peach(qp_server *s, const char *fn, const qp_value *items);
void qp__procs_stop(void);
/* Worker side: exit when the parent's pipe closes. */
int qp__procs_watch_parent(int fd, qp_server *s);
/* py.c: calls of server s (NULL: none) become cancellable: its on_cancel
 * interrupts the Python call that runs for a client that left. */
void qp__cancel_init(qp_server *s);

#endif
