/* bench_py.c - the q -> Python bridge in one process, as ratios measured in
 * the same run:
 *   1. a 100M-float vector to numpy: the zero-copy view (qp_py_from_q) vs a
 *      copy of the same items (numpy's array copy). The view is constant
 *      time; the copy is linear.
 *   2. a 10M-row symbol column (1000 distinct) to Python: object array of
 *      str and pandas Categorical (codes + names), against the 100M copy.
 *
 * Usage: build/bench/bench_py [--quick]   (--quick: 10M floats, 1M symbols)
 */
#include "py/py_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    int64_t nf = quick ? 10000000 : 100000000, ns = quick ? 1000000 : 10000000;
    char err[256];
    if (qp_py_init(err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }

    qp_value *f = qp_vector(QP_FLOAT, nf);
    for (int64_t i = 0; i < nf; i++) qp_F(f)[i] = (double)i;
    int reps = 1000;
    double t0 = now();
    for (int r = 0; r < reps; r++) {
        PyObject *a = qp_py_from_q(f, 0);
        Py_DECREF(a);
    }
    double view = (now() - t0) / reps;
    PyObject *a = qp_py_from_q(f, 0);
    t0 = now();
    PyObject *c = PyArray_NewCopy((PyArrayObject *)a, NPY_CORDER);
    double copy = now() - t0;
    Py_XDECREF(c);
    Py_DECREF(a);
    printf("numpy view of %lld floats: %.2f us; copy: %.1f ms; copy/view = %.0fx\n",
           (long long)nf, view * 1e6, copy * 1e3, copy / view);

    qp_value *s = qp_vector(QP_SYMBOL, ns);
    const char *names[1000];
    for (int i = 0; i < 1000; i++) {
        char b[16];
        int n = snprintf(b, sizeof b, "s%03d", i);
        names[i] = qp_sym_intern(b, (size_t)n);
    }
    for (int64_t i = 0; i < ns; i++) qp_S(s)[i] = names[(i * 7919) % 1000];
    PyObject *warm = PyImport_ImportModule("pandas");   /* import time is not conversion */
    Py_XDECREF(warm);
    t0 = now();
    PyObject *o = qp_py_from_q(s, 0);
    double obj = now() - t0;
    Py_XDECREF(o);
    t0 = now();
    o = qp_py_from_q(s, QP_PY_CATEGORICAL);
    double cat = now() - t0;
    if (!o) PyErr_Print();
    Py_XDECREF(o);
    printf("%lld-row symbol column: object array %.1f ms, Categorical %.1f ms\n",
           (long long)ns, obj * 1e3, cat * 1e3);
    qp_unref(s);
    qp_unref(f);
    qp_py_fini();
    return 0;
}
