/* test_pyconv.c - q <-> Python at the data boundary: char columns (one
 * item per row, and back), values beyond the other side's range (an error
 * naming column and row, never a wrapped value), infinities in every unit,
 * and pandas' missing values for q's nulls both ways. Expected values are
 * computed by numpy and pandas in the check expressions. */
#include "py_check.h"

#include "cunit_run.h"
#include <math.h>
#include <string.h>

/* One-column table name:col (col stolen). */
static qp_value *table1(const char *name, qp_value *col)
{
    return qp_table(qp_dict(syms(1, name), qp_list(1, col)));
}

/* Column name of table v (NULL when v is no table or has none). */
static const qp_value *column(const qp_value *v, const char *name)
{
    return v && v->type == QP_TABLE ? qp_table_column(v, name) : NULL;
}

/* Whether column name of table v is of type t, with the n chars s when
 * it is a char column. */
static bool column_is(const qp_value *v, const char *name, int t, const char *s, int64_t n)
{
    const qp_value *c = column(v, name);
    return c && c->type == t && (t != QP_CHAR || (c->v.n == n && !memcmp(c->v.data, s, (size_t)n)));
}

/* q -> Python must fail with an exception whose text holds a and b; drops x. */
static bool q2py_fails(qp_value *x, int flags, const char *a, const char *b)
{
    PyObject *o = qp_py_from_q(x, flags);
    qp_unref(x);
    if (o) {
        Py_DECREF(o);
        fprintf(stderr, "\n  no error (wanted '%s', '%s')\n", a, b);
        return false;
    }
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyObject *s = v ? PyObject_Str(v) : NULL;
    const char *m = s ? PyUnicode_AsUTF8(s) : "";
    bool ok = m && strstr(m, a) && strstr(m, b);
    if (!ok) fprintf(stderr, "\n  error '%s' lacks '%s' or '%s'\n", m ? m : "?", a, b);
    Py_XDECREF(s);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    PyErr_Clear();
    return ok;
}

/* Python -> q must give an error value holding a and b. */
static bool py2q_fails(const char *expr, const char *a, const char *b)
{
    qp_value *v = py2q(expr);
    bool ok = v && qp_is_error(v) && strstr(v->s, a) && strstr(v->s, b);
    if (!ok) fprintf(stderr, "\n  %s: wanted an error with '%s', '%s', got %s\n", expr, a, b,
                     v && qp_is_error(v) ? v->s : "a value");
    qp_unref(v);
    return ok;
}

/* The value of the Python expression expr, an int. */
static int64_t py_int(const char *expr)
{
    PyObject *o = PyRun_String(expr, Py_eval_input, g, g);
    int64_t r = o ? PyLong_AsLongLong(o) : 0;
    if (!o || PyErr_Occurred()) PyErr_Print();
    Py_XDECREF(o);
    return r;
}

/* Whether q -> Python (flags) -> q gives q back; drops q. */
static bool round_trips(qp_value *q, int flags)
{
    PyObject *o = qp_py_from_q(q, flags);
    qp_value *back = o ? qp_py_to_q(o) : NULL;
    bool eq = back && qp_equal(q, back);
    if (!eq) fprintf(stderr, "\n  round trip (flags %d) differs: %s\n", flags,
                     back && qp_is_error(back) ? back->s : "values");
    Py_XDECREF(o);
    qp_unref(back);
    qp_unref(q);
    return eq;
}

/* ---- char columns ---- */

static void test_char_columns(void)
{
    qp_value *t = table1("side", qp_cstring("BSB"));
    /* numpy: S1 items viewing the column's bytes, read-only */
    PyObject *o = qp_py_from_q(t, 0);
    bind("addr", PyLong_FromVoidPtr(column(t, "side")->v.data));
    CU_ASSERT(check(o, "x['side'].dtype == 'S1' and x['side'].tolist() == [b'B', b'S', b'B'] and "
                       "x['side'].__array_interface__['data'][0] == addr and not x['side'].flags.writeable"));
    Py_XDECREF(o);
    /* pandas: what read_csv gives for the same column, marked in attrs */
    CU_ASSERT(q2py(qp_ref(t), QP_PY_PANDAS,
                   "x['side'].tolist() == ['B', 'S', 'B'] and x['side'].dtype == object and "
                   "x.attrs['qpeach_char_columns'] == ['side']"));
    /* a char vector that is not a column is one str */
    CU_ASSERT(q2py(qp_cstring("BSB"), QP_PY_PANDAS, "x == 'BSB'"));
    /* back: the same table, from numpy, from pandas, and a filter of it */
    CU_ASSERT(round_trips(qp_ref(t), 0));
    CU_ASSERT(round_trips(qp_ref(t), QP_PY_PANDAS));
    PyObject *df = qp_py_from_q(t, QP_PY_PANDAS);
    bind("df", df);
    qp_value *v = py2q("df[df['side'] == 'B']");
    CU_ASSERT(column_is(v, "side", QP_CHAR, "BB", 2));
    qp_unref(v);
    /* a marked column changed to longer strings, or with None, and an
     * unmarked one-char str column */
    v = py2q("df.assign(side=df['side'] + 'x')");
    CU_ASSERT(column_is(v, "side", QP_SYMBOL, NULL, 0));
    qp_unref(v);
    v = py2q("df.assign(side=[None, 'S', 'B'])");
    CU_ASSERT(column_is(v, "side", QP_CHAR, " SB", 3));
    qp_unref(v);
    v = py2q("pd.DataFrame({'side': ['B', 'S']})");
    CU_ASSERT(column_is(v, "side", QP_SYMBOL, NULL, 0));
    qp_unref(v);
    PyDict_DelItemString(g, "df");
    qp_unref(t);
    /* S1 arrays and one-byte bytes objects are chars; str items (one-letter
     * tickers too) and wider bytes are symbols */
    const struct { const char *expr; int type; } cases[] = {
        {"np.array([b'a', b'b'], 'S1')", QP_CHAR}, {"np.array([b'a', b'b'], dtype=object)", QP_CHAR},
        {"pd.Series(np.array([b'a', b'b'], 'S1'))", QP_CHAR}, {"np.array(['A', 'F', 'T'])", QP_SYMBOL},
        {"np.array(['A', 'F'], dtype=object)", QP_SYMBOL}, {"np.array([b'ab', b'c'])", QP_SYMBOL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qp_value *c = py2q(cases[i].expr);
        if (!c || c->type != cases[i].type) fprintf(stderr, "\n  for %s\n", cases[i].expr);
        CU_ASSERT(c && c->type == cases[i].type);
        qp_unref(c);
    }
    v = py2q("np.bytes_(b'z')");
    CU_ASSERT(v && v->type == -QP_CHAR && v->c == 'z');
    qp_unref(v);
}

/* ---- temporal ranges, q -> Python ---- */

static void test_timestamps_beyond_numpy(void)
{
    /* 2280.01.01 is a q timestamp, beyond datetime64[ns] (to 2262.04.11) */
    int64_t y2280 = py_int("int((np.datetime64('2280-01-01', 's') - np.datetime64('2000-01-01', 's'))"
                           ".astype('i8')) * 10**9");
    qp_value *p = qp_vector(QP_TIMESTAMP, 2);
    qp_J(p)[0] = 0;
    qp_J(p)[1] = y2280;
    CU_ASSERT(q2py_fails(qp_ref(p), 0, "item 1: timestamp 2280.01.01D00:00:00.000000000",
                         "beyond numpy's datetime64[ns]"));
    CU_ASSERT(q2py_fails(table1("ts", qp_ref(p)), 0, "column ts, row 1", "2280.01.01"));
    CU_ASSERT(q2py_fails(table1("ts", qp_ref(p)), QP_PY_PANDAS, "column ts, row 1", "2280.01.01"));
    CU_ASSERT(q2py_fails(qp_item(p, 1), 0, "qpeach: timestamp 2280.01.01", "beyond"));
    qp_unref(p);
    /* the last nanosecond numpy holds converts; the next would read as 0W */
    p = qp_vector(QP_TIMESTAMP, 3);
    qp_J(p)[0] = QP_INF_J - QP_EPOCH_NANOS - 1;
    qp_J(p)[1] = QP_INF_J;
    qp_J(p)[2] = -QP_INF_J;
    CU_ASSERT(q2py(qp_ref(p), 0, "x.view('i8').tolist() == [2**63 - 2, 2**63 - 1, -2**63 + 1] and "
                                 "x[0] == np.datetime64(2**63 - 2, 'ns')"));
    CU_ASSERT(round_trips(qp_ref(p), 0));
    qp_J(p)[0]++;
    CU_ASSERT(q2py_fails(p, 0, "item 0", "2262.04.11D23:47:16.854775807"));
}

/* pandas holds every temporal column in ns: q's other units are converted
 * (infinities to pandas' Timestamp/Timedelta max and min, values beyond
 * them an error), with numpy's own conversion as the reference. */
static void test_pandas_temporal_units(void)
{
    qp_value *d = qp_vector(QP_DATE, 4);
    qp_I(d)[0] = 8826; qp_I(d)[1] = QP_INF_I; qp_I(d)[2] = -QP_INF_I; qp_I(d)[3] = QP_NULL_I;
    CU_ASSERT(q2py(table1("d", qp_ref(d)), QP_PY_PANDAS,
                   "x['d'].dtype == 'M8[ns]' and x['d'][0] == pd.Timestamp('2024-03-01') and "
                   "x['d'][1] == pd.Timestamp.max and x['d'][2] == pd.Timestamp.min and pd.isna(x['d'][3])"));
    qp_I(d)[0] = py_int("int((np.datetime64('2300-01-01') - np.datetime64('2000-01-01')).astype('i8'))");
    CU_ASSERT(q2py_fails(table1("d", qp_ref(d)), QP_PY_PANDAS, "column d, row 0", "date 2300.01.01"));
    CU_ASSERT(q2py(table1("d", d), 0, "x['d'].dtype == 'M8[D]' and x['d'][0] == np.datetime64('2300-01-01')"));
    qp_value *m = qp_vector(QP_MONTH, 3);
    qp_I(m)[0] = 290; qp_I(m)[1] = -1; qp_I(m)[2] = -13;
    CU_ASSERT(q2py(table1("m", m), QP_PY_PANDAS,
                   "x['m'].tolist() == [pd.Timestamp(np.datetime64('2000-01', 'M') + k) for k in (290, -1, -13)]"));
    qp_value *u = qp_vector(QP_MINUTE, 3);
    qp_I(u)[0] = 90; qp_I(u)[1] = QP_INF_I; qp_I(u)[2] = QP_NULL_I;
    CU_ASSERT(q2py(table1("u", u), QP_PY_PANDAS,
                   "x['u'].dtype == 'm8[ns]' and x['u'][0] == pd.Timedelta(minutes=90) and "
                   "x['u'][1] == pd.Timedelta.max and pd.isna(x['u'][2])"));
    qp_value *s = qp_vector(QP_SECOND, 1), *t = qp_vector(QP_TIME, 1), *z = qp_vector(QP_DATETIME, 2);
    qp_I(s)[0] = 61; qp_I(t)[0] = 61;
    qp_F(z)[0] = 0.25; qp_F(z)[1] = -QP_INF_F;
    CU_ASSERT(q2py(table1("s", s), QP_PY_PANDAS, "x['s'][0] == np.timedelta64(61, 's')"));
    CU_ASSERT(q2py(table1("t", t), QP_PY_PANDAS, "x['t'][0] == np.timedelta64(61, 'ms')"));
    CU_ASSERT(q2py(table1("z", z), QP_PY_PANDAS,
                   "x['z'][0] == pd.Timestamp('2000-01-01T06:00') and x['z'][1] == pd.Timestamp.min"));
}

/* ---- temporal ranges, Python -> q ---- */

static void test_temporals_beyond_q(void)
{
    /* every unit, exactly: the q value against numpy's own arithmetic */
    const char *units[] = {"Y", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "10s"};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        char expr[128], want[256];
        snprintf(expr, sizeof expr, "np.array(['2024-03-04T05:06:07'], 'M8[ns]').astype('M8[%s]')", units[i]);
        snprintf(want, sizeof want, "int((%s.astype('M8[ns]') - np.datetime64('2000-01-01', 'ns'))"
                                    ".astype('i8')[0])", expr);
        qp_value *v = py2q(expr);
        bool ok = v && (v->type == QP_TIMESTAMP || v->type == QP_DATE) &&
                  (v->type == QP_DATE ? qp_I(v)[0] * 86400000000000LL : qp_J(v)[0]) == py_int(want);
        if (!ok) fprintf(stderr, "\n  unit %s\n", units[i]);
        CU_ASSERT(ok);
        qp_unref(v);
    }
    /* beyond q's timestamps (1707..2292): 2300 in s, 1650 in us, 1700 in ns, years */
    CU_ASSERT(py2q_fails("np.array(['2020-01-01', '2300-01-01'], 'M8[s]')", "item 1: datetime64[s] 2300-01-01",
                         "q's timestamp range"));
    CU_ASSERT(py2q_fails("{'ts': np.array(['2020-01-01', '2300-01-01'], 'M8[s]')}", "column ts, row 1",
                         "2300-01-01"));
    CU_ASSERT(py2q_fails("pd.DataFrame({'ts': pd.to_datetime(['2020-01-01', '1700-01-01'])})", "column ts, row 1",
                         "1700-01-01"));
    CU_ASSERT(py2q_fails("datetime.datetime(1650, 1, 1)", "qpeach: datetime64[us] 1650-01-01", "range"));
    CU_ASSERT(py2q_fails("[datetime.datetime(2020, 1, 1), datetime.datetime(1650, 1, 1)]", "item 1", "1650"));
    CU_ASSERT(py2q_fails("np.array(['1700-01-01'], 'M8[ns]')", "item 0", "1700-01-01"));
    CU_ASSERT(py2q_fails("np.array(['2300'], 'M8[Y]')", "item 0", "2300"));
    CU_ASSERT(py2q_fails("datetime.timedelta(days=200000)", "timedelta64[us]", "q's timespan range"));
    CU_ASSERT(py2q_fails("np.array([1, 200000], 'm8[D]')", "item 1", "200000 days"));
    /* 2280 in seconds is a q timestamp, though not a datetime64[ns] */
    qp_value *v = py2q("np.array(['2280-01-01'], 'M8[s]')");
    CU_ASSERT(v && v->type == QP_TIMESTAMP &&
              qp_J(v)[0] == py_int("int((np.datetime64('2280-01-01', 's') - np.datetime64('2000-01-01', 's'))"
                                   ".astype('i8')) * 10**9"));
    qp_unref(v);
    /* NaT and int64 max / min+1 are q's null and infinities in any unit */
    const char *inf[] = {"'M8[ms]'", "'M8[us]'", "'M8[h]'", "'m8[us]'", "'m8[D]'", "'m8[ps]'"};
    for (size_t i = 0; i < sizeof inf / sizeof inf[0]; i++) {
        char expr[128];
        snprintf(expr, sizeof expr, "np.array([2**63 - 1, -2**63 + 1, -2**63]).view(%s)", inf[i]);
        v = py2q(expr);
        bool ok = v && (v->type == QP_TIMESTAMP || v->type == QP_TIMESPAN) && qp_J(v)[0] == QP_INF_J &&
                  qp_J(v)[1] == -QP_INF_J && qp_J(v)[2] == QP_NULL_J;
        if (!ok) fprintf(stderr, "\n  infinities of %s\n", expr);
        CU_ASSERT(ok);
        qp_unref(v);
    }
    /* q datetimes (z): infinities and null survive the round trip, as
     * timestamps (datetime64[ms] goes back as a timestamp) */
    qp_value *z = qp_vector(QP_DATETIME, 4);
    qp_F(z)[0] = QP_INF_F; qp_F(z)[1] = -QP_INF_F; qp_F(z)[2] = QP_NULL_F; qp_F(z)[3] = 0.5;
    PyObject *o = qp_py_from_q(z, 0);
    v = o ? qp_py_to_q(o) : NULL;
    CU_ASSERT(v && v->type == QP_TIMESTAMP && qp_J(v)[0] == QP_INF_J && qp_J(v)[1] == -QP_INF_J &&
              qp_J(v)[2] == QP_NULL_J && qp_J(v)[3] == 43200000000000LL);
    qp_unref(v);
    Py_XDECREF(o);
    qp_unref(z);
}

/* ---- pandas' missing values ---- */

static void test_pandas_nulls_to_py(void)
{
    qp_value *j = qp_vector(QP_LONG, 3), *h = qp_vector(QP_SHORT, 3), *i = qp_vector(QP_INT, 3);
    qp_J(j)[0] = 5; qp_J(j)[1] = QP_NULL_J; qp_J(j)[2] = QP_INF_J;
    qp_H(h)[0] = QP_NULL_H; qp_H(h)[1] = 3; qp_H(h)[2] = 4;
    qp_I(i)[0] = 7; qp_I(i)[1] = 8; qp_I(i)[2] = 9;
    qp_value *t = qp_table(qp_dict(syms(4, "j", "h", "i", "s"), qp_list(4, j, h, i, syms(3, "a", "", "b"))));
    CU_ASSERT_FATAL(t && t->type == QP_TABLE);
    /* q's infinities stay the integers' extremes, as in PyKX */
    CU_ASSERT(q2py(qp_ref(t), QP_PY_PANDAS,
                   "x['j'].dtype == 'Int64' and x['j'].isna().tolist() == [False, True, False] and "
                   "x['j'][2] == 2**63 - 1 and x['j'][:2].sum() == 5 and "
                   "x['h'].dtype == 'Int16' and x['h'].isna().tolist() == [True, False, False] and "
                   "x['i'].dtype == 'int32' and x['s'].isna().tolist() == [False, True, False]"));
    /* the numpy path keeps q's values; a Categorical without pandas keeps `` */
    CU_ASSERT(q2py(qp_ref(t), 0, "x['j'].tolist() == [5, -2**63, 2**63 - 1] and x['s'].tolist() == ['a', '', 'b']"));
    CU_ASSERT(q2py(qp_ref(t), QP_PY_CATEGORICAL, "list(x['s']) == ['a', '', 'b']"));
    /* back from pandas: q's nulls again */
    CU_ASSERT(round_trips(t, QP_PY_PANDAS));
    /* an enumeration's null (0Nj, or the domain's ``) is NaN too */
    qp_value *dom = syms(3, "a", "", "c");
    int64_t idx[] = {0, QP_NULL_J, 1, 2};
    qp_value *e = table1("s", enumv(4, idx, dom));
    CU_ASSERT(q2py(qp_ref(e), QP_PY_PANDAS, "x['s'].isna().tolist() == [False, True, True, False] and "
                                            "x['s'].dropna().tolist() == ['a', 'c']"));
    CU_ASSERT(q2py(e, QP_PY_PANDAS | QP_PY_CATEGORICAL,
                   "x['s'].isna().tolist() == [False, True, True, False] and "
                   "list(x['s'].cat.categories) == ['a', 'c']"));
}

static void test_pandas_nulls_to_q(void)
{
    const struct { const char *expr; int type; int64_t null_at_1; } cases[] = {
        {"pd.Series([1, None, 3], dtype='Int64')", QP_LONG, QP_NULL_J},
        {"pd.Series([1, None, 3], dtype='Int8')", QP_SHORT, QP_NULL_H},
        {"pd.Series([1, None, 3], dtype='Int32')", QP_INT, QP_NULL_I},
        {"pd.Series([1, None, 3], dtype='UInt16')", QP_INT, QP_NULL_I},
        {"pd.Series([1, None, 3], dtype='UInt32')", QP_LONG, QP_NULL_J},
        {"np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])", QP_LONG, QP_NULL_J},
        {"np.ma.masked_array(np.array([1, 2, 3], 'i1'), mask=[0, 1, 0])", QP_SHORT, QP_NULL_H},
        {"np.ma.masked_array(np.array(['2020-01-01'] * 3, 'M8[ns]'), mask=[0, 1, 0])", QP_TIMESTAMP, QP_NULL_J},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qp_value *v = py2q(cases[c].expr);
        int64_t got = !v || v->type != cases[c].type ? 0 : v->type == QP_SHORT ? qp_H(v)[1]
                    : v->type == QP_INT ? qp_I(v)[1] : qp_J(v)[1];
        bool ok = v && v->type == cases[c].type && got == cases[c].null_at_1 && v->v.n == 3;
        if (!ok) fprintf(stderr, "\n  for %s\n", cases[c].expr);
        CU_ASSERT(ok);
        qp_unref(v);
    }
    qp_value *v = py2q("pd.Series([1.5, None], dtype='Float64')");
    CU_ASSERT(v && v->type == QP_FLOAT && qp_F(v)[0] == 1.5 && isnan(qp_F(v)[1]));
    qp_unref(v);
    v = py2q("np.ma.masked_array([1.5, 2.5], mask=[1, 0])");
    CU_ASSERT(v && v->type == QP_FLOAT && isnan(qp_F(v)[0]) && qp_F(v)[1] == 2.5);
    qp_unref(v);
    /* str columns: None, NaN and pd.NA are the null symbol */
    const char *strs[] = {"np.array(['a', None, np.nan], dtype=object)", "pd.Series(['a', None, pd.NA], dtype='string')",
                          "np.ma.masked_array(np.array(['a', 'b', 'c'], dtype=object), mask=[0, 1, 1])"};
    for (size_t c = 0; c < sizeof strs / sizeof strs[0]; c++) {
        v = py2q(strs[c]);
        bool ok = v && v->type == QP_SYMBOL && v->v.n == 3 && !strcmp(qp_S(v)[0], "a") &&
                  !strcmp(qp_S(v)[1], "") && !strcmp(qp_S(v)[2], "");
        if (!ok) fprintf(stderr, "\n  for %s\n", strs[c]);
        CU_ASSERT(ok);
        qp_unref(v);
    }
    /* q's booleans and bytes have no null: a missing one is an error */
    CU_ASSERT(py2q_fails("pd.DataFrame({'f': pd.array([True, None], dtype='boolean')})", "column f, row 1",
                         "no boolean null"));
    CU_ASSERT(py2q_fails("np.ma.masked_array([True, False], mask=[0, 1])", "row 1", "boolean"));
    CU_ASSERT(py2q_fails("pd.Series([1, None], dtype='UInt8')", "row 1", "no byte null"));
    /* without missing values nothing changes */
    v = py2q("pd.Series([1, 2], dtype='Int64')");
    CU_ASSERT(v && v->type == QP_LONG && qp_J(v)[1] == 2);
    qp_unref(v);
    v = py2q("pd.Series([True, False], dtype='boolean')");
    CU_ASSERT(v && v->type == QP_BOOL);
    qp_unref(v);
}

int main(void)
{
    static const qp_test tests[] = {
        {"char columns", test_char_columns},
        {"timestamps beyond numpy", test_timestamps_beyond_numpy},
        {"pandas temporal units", test_pandas_temporal_units},
        {"temporals beyond q", test_temporals_beyond_q},
        {"pandas nulls to python", test_pandas_nulls_to_py},
        {"pandas nulls to q", test_pandas_nulls_to_q},
    };
    return qp_test_run("pyconv", suite_init, suite_fini, tests, QP_NTESTS(tests));
}
