/* _qpeach_int.h - internals of the Python client's C extension, shared by
 * its files: _qpeach.c (module, codec, Python -> q arguments),
 * _qpeach_conn.c (the Connection type, include/qpeach/conn.h) and
 * _qpeach_run.c (the scheduler, include/qpeach/sched.h). Not a public
 * header: the extension's only export is PyInit__qpeach.
 *
 * The q <-> Python conversion is not written here: it is the embedded
 * worker's (include/qpeach/py.h, src/py/fromq.c and toq.c), linked from libqpeach.a,
 * so the client and the worker map values the same way.
 *
 * Memory rules: value.h's and py.h's. Every qp_value made here is unref'd
 * on the one `goto fail`/exit path of the function that made it. Python
 * objects follow CPython's rules ("new reference" / "borrowed").
 *
 * Threads: a Connection may be shared by Python threads; a per-connection
 * lock serializes them (a qp_conn is used by one thread at a time). The GIL
 * is released while waiting for that lock and while on the network, so
 * calls on different connections (fan-out threads) overlap. Python values
 * are converted with the GIL held, before sending and after receiving.
 * run() releases the GIL for the whole of qp_run; its progress callback
 * takes it again (PyGILState) on the scheduler's thread.
 */
#ifndef QPEACH_PYEXT_INT_H
#define QPEACH_PYEXT_INT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "qpeach/value.h"

/* ---- _qpeach.c: shared helpers; the GIL held ---- */

/* Raises the Python exception for a transport/codec failure code (msg its
 * text; qp_strerror(code) when NULL or empty). Returns NULL. */
PyObject *qp__ext_raise_code(int code, const char *msg);
/* A C string as str (bytes not UTF-8 replaced). New reference, NULL with
 * an exception. */
PyObject *qp__ext_text_to_py(const char *s);
/* The message for fn[args[first:]...] (fn NULL: args[first] alone). New
 * reference, NULL with an exception. */
qp_value *qp__ext_build_call(const char *fn, PyObject *args, Py_ssize_t first);
/* q -> Python for a result (x borrowed); a q error raises QError. New
 * reference, NULL with an exception. */
PyObject *qp__ext_result_to_py(const qp_value *x, int flags);

/* ---- _qpeach_conn.c ---- */

/* qpeach._qpeach.Connection; PyInit__qpeach readies it. */
extern PyTypeObject qp__ext_conn_type;

/* ---- _qpeach_run.c ---- */

/* run, sibling_modules, fn_name: added to the module by PyInit__qpeach
 * (PyModule_AddFunctions). */
extern PyMethodDef qp__ext_run_methods[];

#endif
