/* src/py/toqtime.c - numpy datetime64/timedelta64 arrays to q temporals.
 *
 * datetime64[D] -> date, [M] -> month; timedelta64[m] -> minute, [s] ->
 * second, [ms] -> time (each when the values fit q's 32 bits); everything
 * else -> timestamp or timespan (ns). Values are converted in exact integer
 * arithmetic from their own unit (numpy's own cast to ns wraps: a
 * datetime64[s] 2300 became 1715, a datetime(1650, 1, 1) 2234), so a
 * datetime64[s] 2280 is a q timestamp although not a datetime64[ns], and a
 * value q cannot hold (a timestamp outside 1707.09.22..2292.04.10, a
 * timespan beyond 106751 days) is an error naming it and where it is. NaT
 * is q's null and int64 max / min+1, in any unit, q's infinities (the
 * values fromq.c makes of them).
 */
#include "py_int.h"

static PyArray_DatetimeMetaData *dt_meta(PyArrayObject *a)
{
    return &((PyArray_DatetimeDTypeMetaData *)PyArray_DESCR(a)->c_metadata)->meta;
}

static int dt_unit(PyArrayObject *a)
{
    PyArray_DatetimeMetaData *m = dt_meta(a);
    return m->num == 1 ? (int)m->base : -1;
}

/* int64 items of a temporal array, cast to the unit of spec ("M8[ns]"...). */
static PyArrayObject *temporal_cast(PyArrayObject *a, const char *spec)
{
    PyObject *s = PyUnicode_FromString(spec);
    PyArray_Descr *d = NULL;
    int ok = s && PyArray_DescrConverter(s, &d);
    Py_XDECREF(s);
    if (!ok) return NULL;
    return (PyArrayObject *)PyArray_FromAny((PyObject *)a, d, 1, 1,
                                            NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST, NULL);
}

/* -> 32-bit q temporal; false when the value does not fit. */
static inline bool unshift_i(int64_t v, int64_t by, int32_t *out)
{
    if (v == QP_NULL_J) { *out = QP_NULL_I; return true; }
    if (v == QP_INF_J) { *out = QP_INF_I; return true; }
    if (v == -QP_INF_J) { *out = -QP_INF_I; return true; }
    v -= by;
    if (v <= -QP_INF_I || v >= QP_INF_I) return false;
    *out = (int32_t)v;
    return true;
}

/* Nanoseconds per item of a's unit as mul / div (div > 1 for units finer
 * than ns); false for calendar units (years, months) and generic ones. */
static bool unit_ns(PyArrayObject *a, int64_t *mul, int64_t *div)
{
    static const int64_t per[] = {
        [NPY_FR_W] = 7 * 86400000000000LL, [NPY_FR_D] = 86400000000000LL, [NPY_FR_h] = 3600000000000LL,
        [NPY_FR_m] = 60000000000LL, [NPY_FR_s] = 1000000000LL, [NPY_FR_ms] = 1000000LL,
        [NPY_FR_us] = 1000LL, [NPY_FR_ns] = 1, [NPY_FR_ps] = -1000LL, [NPY_FR_fs] = -1000000LL,
        [NPY_FR_as] = -1000000000LL,
    };
    PyArray_DatetimeMetaData *m = dt_meta(a);
    if ((int)m->base < NPY_FR_W || (int)m->base > NPY_FR_as) return false;
    int64_t p = per[m->base];
    *mul = p > 0 ? p : 1;
    *div = p > 0 ? 1 : -p;
    return !__builtin_mul_overflow(*mul, (int64_t)m->num, mul);
}

const char qp__atom_pos[] = "an atom";

/* Error for item i of temporal array a, beyond q's type what: at row i of
 * column col, item i of a vector (col NULL), or an atom (qp__atom_pos). */
static qp_value *beyond_q(PyArrayObject *a, npy_intp i, const char *col, const char *what)
{
    PyObject *it = PySequence_GetItem((PyObject *)a, i);
    PyObject *txt = it ? PyObject_Str(it) : NULL, *dt = PyObject_Str((PyObject *)PyArray_DESCR(a));
    const char *t = txt ? PyUnicode_AsUTF8(txt) : NULL, *d = dt ? PyUnicode_AsUTF8(dt) : NULL;
    PyErr_Clear();
    qp_value *e = col == qp__atom_pos ? qp_error("qpeach: %s %s is beyond %s", d ? d : "?", t ? t : "?", what)
                : col ? qp_error("qpeach: column %s, row %ld: %s %s is beyond %s", col, (long)i,
                                 d ? d : "?", t ? t : "?", what)
                      : qp_error("qpeach: item %ld: %s %s is beyond %s", (long)i, d ? d : "?", t ? t : "?", what);
    Py_XDECREF(it);
    Py_XDECREF(txt);
    Py_XDECREF(dt);
    return e;
}

/* A datetime64/timedelta64 array as q timestamps/timespans, in exact
 * integer arithmetic from its own unit: NaT is q's null, int64 max and
 * min+1 (any unit) its infinities, and a value q cannot hold is an error
 * naming it (numpy's own cast to ns would wrap: 2300 became 1715). */
static qp_value *nanos_to_q(PyArrayObject *a, const char *col)
{
    bool dt = PyArray_DESCR(a)->kind == 'M';
    int64_t mul, div;
    PyArrayObject *c = NULL;
    if (!unit_ns(a, &mul, &div)) {
        if (!dt) return qp_error("qpeach: cannot convert a timedelta64 of calendar unit to q");
        if (!(c = temporal_cast(a, "M8[D]"))) return qp__py_failed("temporal cast");   /* years, months */
        mul = 86400000000000LL, div = 1;
    } else {
        PyArray_Descr *d = PyArray_DescrNewByteorder(PyArray_DESCR(a), NPY_NATIVE);
        c = d ? (PyArrayObject *)PyArray_FromAny((PyObject *)a, d, 1, 1, NPY_ARRAY_CARRAY_RO, NULL) : NULL;
        if (!c) return qp__py_failed("temporal array");
    }
    npy_intp n = PyArray_DIM(c, 0);
    const int64_t *s = PyArray_DATA(c);
    qp_value *v = qp_vector(dt ? QP_TIMESTAMP : QP_TIMESPAN, n);
    for (npy_intp i = 0; v && i < n; i++) {
        int64_t x = s[i];
        if (x == QP_NULL_J || x == QP_INF_J || x == -QP_INF_J) { qp_J(v)[i] = x; continue; }
        __int128 r = (__int128)x * mul;
        if (div > 1) r = r / div - (r % div < 0);          /* floor */
        if (dt) r -= QP_EPOCH_NANOS;
        if (r <= -QP_INF_J || r >= QP_INF_J) {
            qp_unref(v);
            v = beyond_q(a, i, col, dt ? "q's timestamp range (1707.09.22D00:12:43.145224194 to "
                                         "2292.04.10D23:47:16.854775806)"
                                       : "q's timespan range (-106751D23:47:16.854775806 to "
                                         "106751D23:47:16.854775806)");
            break;
        }
        qp_J(v)[i] = (int64_t)r;
    }
    Py_DECREF(c);
    return v;
}

qp_value *qp__temporal_to_q(PyArrayObject *a, const char *col)
{
    bool dt = PyArray_DESCR(a)->kind == 'M';
    int unit = dt_unit(a);
    int qt32 = 0;
    int64_t by = 0;
    const char *spec = NULL;
    if (dt && unit == NPY_FR_D) { qt32 = QP_DATE; by = QP_EPOCH_DAYS; spec = "M8[D]"; }
    else if (dt && unit == NPY_FR_M) { qt32 = QP_MONTH; by = 360; spec = "M8[M]"; }
    else if (!dt && unit == NPY_FR_m) { qt32 = QP_MINUTE; spec = "m8[m]"; }
    else if (!dt && unit == NPY_FR_s) { qt32 = QP_SECOND; spec = "m8[s]"; }
    else if (!dt && unit == NPY_FR_ms) { qt32 = QP_TIME; spec = "m8[ms]"; }
    if (qt32) {
        PyArrayObject *c = temporal_cast(a, spec);
        if (!c) return qp__py_failed("temporal cast");
        npy_intp n = PyArray_DIM(c, 0);
        const int64_t *s = PyArray_DATA(c);
        qp_value *v = qp_vector(qt32, n);
        bool fits = true;
        for (npy_intp i = 0; v && i < n && fits; i++) fits = unshift_i(s[i], by, &qp_I(v)[i]);
        Py_DECREF(c);
        if (!v || fits) return v;
        qp_unref(v);    /* too wide for 32 bits: a timestamp or timespan */
    }
    return nanos_to_q(a, col);
}
