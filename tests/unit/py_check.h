/* py_check.h - checks of q <-> Python conversions for the CUnit suites
 * of src/py (test_py.c, test_pyconv.c): a q value converted, then a Python
 * expression over the result `x` that must be true. The interpreter is
 * started by suite_init, with numpy, pandas and the stdlib modules the
 * expressions use bound in their globals. Header-only: every function is
 * static (inline: a suite need not use them all). */
#ifndef QPEACH_TESTS_PY_CHECK_H
#define QPEACH_TESTS_PY_CHECK_H

#include "py/py_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static PyObject *g;   /* globals for check expressions: np, pd, x, ... */

/* Evaluates expr with x bound to o (borrowed); true when truthy. */
static inline bool check(PyObject *o, const char *expr)
{
    if (!o) {
        PyErr_Print();
        return false;
    }
    PyDict_SetItemString(g, "x", o);
    PyObject *r = PyRun_String(expr, Py_eval_input, g, g);
    bool ok = r && PyObject_IsTrue(r) == 1;
    if (!ok) {
        if (PyErr_Occurred()) PyErr_Print();
        PyObject *rep = PyObject_Repr(o);
        fprintf(stderr, "\n  check failed: %s\n  x = %s\n", expr, rep ? PyUnicode_AsUTF8(rep) : "?");
        Py_XDECREF(rep);
    }
    Py_XDECREF(r);
    return ok;
}

/* q -> Python, then check; drops x. */
static inline bool q2py(qp_value *x, int flags, const char *expr)
{
    PyObject *o = qp_py_from_q(x, flags);
    bool ok = check(o, expr);
    Py_XDECREF(o);
    qp_unref(x);
    return ok;
}

/* Python expression -> q value (new reference). */
static inline qp_value *py2q(const char *expr)
{
    PyObject *o = PyRun_String(expr, Py_eval_input, g, g);
    if (!o) {
        PyErr_Print();
        return qp_error("eval failed: %s", expr);
    }
    qp_value *v = qp_py_to_q(o);
    Py_DECREF(o);
    if (v && qp_is_error(v)) fprintf(stderr, "\n  %s -> error: %s\n", expr, v->s);
    return v;
}

static int suite_init(void)
{
    char err[256];
    if (qp_py_init(err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    g = PyDict_New();
    PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins());
    PyObject *r = PyRun_String("import numpy as np, pandas as pd, datetime, uuid, dill, hashlib, math",
                               Py_file_input, g, g);
    if (!r) { PyErr_Print(); return 1; }
    Py_DECREF(r);
    return 0;
}

static int suite_fini(void)
{
    Py_CLEAR(g);
    qp_py_fini();
    return 0;
}

/* A symbol vector of the n C strings that follow. */
static inline qp_value *syms(int n, ...)
{
    va_list ap;
    va_start(ap, n);
    qp_value *v = qp_vector(QP_SYMBOL, n);
    for (int i = 0; i < n; i++) {
        const char *s = va_arg(ap, const char *);
        qp_S(v)[i] = qp_sym_intern(s, strlen(s));
    }
    va_end(ap);
    return v;
}

/* Binds name in the check globals to o (stolen; NULL, a failed
 * conversion: its exception printed, name bound to None). */
static inline void bind(const char *name, PyObject *o)
{
    if (!o) PyErr_Print();
    PyDict_SetItemString(g, name, o ? o : Py_None);
    Py_XDECREF(o);
}

/* An enum over the symbols dom[0..k) (one domain value, passed back in
 * *domv when asked) of the n indices idx, in a buffer of its own. */
static inline qp_value *enumv(int n, const int64_t *idx, qp_value *dom)
{
    qp_buf *b = qp_buf_new((size_t)(n ? n : 1) * 8);
    memcpy(b->data, idx, (size_t)n * 8);
    qp_value *e = qp_enum_borrow(n, (int64_t *)b->data, b, dom);
    qp_buf_unref(b);
    return e;
}

#endif
