/* test_py.c - embedded Python: every q <-> Python mapping both ways (nulls,
 * infinities, epochs), zero-copy views, and the function registry (import,
 * def from source and dill, calls, keyword arguments, exceptions, timeout).
 * Checks on the Python side are Python expressions over the converted `x`. */
#include "py_check.h"
#include "qpeach/kdb.h"

#include "cunit_run.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- q -> Python: atoms ---- */

static void test_atoms_to_py(void)
{
    CU_ASSERT(q2py(qp_long(10), 0, "type(x) is int and x == 10"));
    CU_ASSERT(q2py(qp_long(QP_NULL_J), 0, "x == -9223372036854775808"));
    CU_ASSERT(q2py(qp_long(QP_INF_J), 0, "x == 9223372036854775807"));
    CU_ASSERT(q2py(qp_float(1.5), 0, "type(x) is float and x == 1.5"));
    CU_ASSERT(q2py(qp_float(QP_NULL_F), 0, "math.isnan(x)"));
    CU_ASSERT(q2py(qp_float(-QP_INF_F), 0, "x == -math.inf"));
    CU_ASSERT(q2py(qp_bool(true), 0, "x is True"));
    CU_ASSERT(q2py(qp_byte(200), 0, "type(x) is np.uint8 and x == 200"));
    CU_ASSERT(q2py(qp_short(-7), 0, "type(x) is np.int16 and x == -7"));
    CU_ASSERT(q2py(qp_int(QP_NULL_I), 0, "type(x) is np.int32 and x == -2**31"));
    CU_ASSERT(q2py(qp_real(2.5f), 0, "type(x) is np.float32 and x == 2.5"));
    CU_ASSERT(q2py(qp_real(QP_NULL_E), 0, "type(x) is np.float32 and np.isnan(x)"));
    CU_ASSERT(q2py(qp_char('a'), 0, "x == 'a'"));
    CU_ASSERT(q2py(qp_symbol("ibm"), 0, "x == 'ibm'"));
    CU_ASSERT(q2py(qp_symbol(""), 0, "x == ''"));
    CU_ASSERT(q2py(qp_identity(), 0, "x is None"));
    uint8_t u[16];
    for (int i = 0; i < 16; i++) u[i] = (uint8_t)i;
    CU_ASSERT(q2py(qp_guid(u), 0, "x == uuid.UUID(bytes=bytes(range(16)))"));
}

static void test_temporal_atoms_to_py(void)
{
    CU_ASSERT(q2py(qp_temporal_j(-QP_TIMESTAMP, 0), 0, "x == np.datetime64('2000-01-01T00:00:00', 'ns')"));
    CU_ASSERT(q2py(qp_temporal_j(-QP_TIMESTAMP, 1), 0, "x == np.datetime64('2000-01-01T00:00:00.000000001')"));
    CU_ASSERT(q2py(qp_temporal_j(-QP_TIMESTAMP, QP_NULL_J), 0, "np.isnat(x)"));
    CU_ASSERT(q2py(qp_temporal_j(-QP_TIMESTAMP, QP_INF_J), 0, "x.astype('i8') == 2**63-1"));
    CU_ASSERT(q2py(qp_temporal_j(-QP_TIMESPAN, 1500), 0, "x == np.timedelta64(1500, 'ns')"));
    CU_ASSERT(q2py(qp_temporal_j(-QP_TIMESPAN, QP_NULL_J), 0, "np.isnat(x)"));
    CU_ASSERT(q2py(qp_temporal_i(-QP_DATE, 0), 0, "x == np.datetime64('2000-01-01') and x.dtype == 'M8[D]'"));
    CU_ASSERT(q2py(qp_temporal_i(-QP_DATE, -10957), 0, "x == np.datetime64('1970-01-01')"));
    CU_ASSERT(q2py(qp_temporal_i(-QP_DATE, QP_NULL_I), 0, "np.isnat(x)"));
    CU_ASSERT(q2py(qp_temporal_i(-QP_MONTH, 13), 0, "x == np.datetime64('2001-02')"));
    CU_ASSERT(q2py(qp_temporal_i(-QP_MINUTE, 61), 0, "x == np.timedelta64(61, 'm')"));
    CU_ASSERT(q2py(qp_temporal_i(-QP_SECOND, 3601), 0, "x == np.timedelta64(3601, 's')"));
    CU_ASSERT(q2py(qp_temporal_i(-QP_TIME, 1234), 0, "x == np.timedelta64(1234, 'ms')"));
    CU_ASSERT(q2py(qp_temporal_i(-QP_TIME, QP_NULL_I), 0, "np.isnat(x)"));
    qp_value *dt = qp_atom(-QP_DATETIME);
    dt->f = 1.5;
    CU_ASSERT(q2py(dt, 0, "x == np.datetime64('2000-01-02T12:00:00.000')"));
}

/* ---- q -> Python: vectors, zero-copy ---- */

static void test_vectors_zero_copy(void)
{
    static const struct { int t; const char *dtype; } cases[] = {
        {QP_BOOL, "bool"}, {QP_BYTE, "uint8"}, {QP_SHORT, "int16"}, {QP_INT, "int32"},
        {QP_LONG, "int64"}, {QP_REAL, "float32"}, {QP_FLOAT, "float64"},
        {QP_TIMESPAN, "timedelta64[ns]"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qp_value *v = qp_vector(cases[c].t, 1000);
        memset(v->v.data, 1, 1000 * qp_type_width(cases[c].t));
        PyObject *a = qp_py_from_q(v, 0);
        CU_ASSERT_FATAL(a && PyArray_Check(a));
        CU_ASSERT_PTR_EQUAL(PyArray_DATA((PyArrayObject *)a), v->v.data);
        CU_ASSERT_EQUAL(PyArray_DIM((PyArrayObject *)a, 0), 1000);
        CU_ASSERT(!PyArray_ISWRITEABLE((PyArrayObject *)a));
        char expr[96];
        snprintf(expr, sizeof expr, "x.dtype == np.dtype('%s')", cases[c].dtype);
        CU_ASSERT(check(a, expr));
        /* the array keeps the q value alive through its base capsule */
        CU_ASSERT_EQUAL(atomic_load(&v->refs), 2);
        PyObject *view = PyObject_GetItem(a, PySlice_New(NULL, NULL, NULL));
        Py_DECREF(a);
        PyDict_DelItemString(g, "x");
        CU_ASSERT_EQUAL(atomic_load(&v->refs), 2);   /* the view still holds it */
        Py_XDECREF(view);
        CU_ASSERT_EQUAL(atomic_load(&v->refs), 1);
        qp_unref(v);
    }
    /* items written in q are what Python sees */
    qp_value *f = qp_vector(QP_FLOAT, 4);
    qp_F(f)[0] = 1.5; qp_F(f)[1] = QP_NULL_F; qp_F(f)[2] = QP_INF_F; qp_F(f)[3] = -QP_INF_F;
    CU_ASSERT(q2py(f, 0, "x[0] == 1.5 and np.isnan(x[1]) and x[2] == np.inf and x[3] == -np.inf"));
    qp_value *j = qp_vector(QP_LONG, 3);
    qp_J(j)[0] = QP_NULL_J; qp_J(j)[1] = QP_INF_J; qp_J(j)[2] = 5;
    CU_ASSERT(q2py(j, 0, "x.tolist() == [-2**63, 2**63-1, 5]"));
    CU_ASSERT(q2py(qp_vector(QP_LONG, 0), 0, "x.dtype == np.int64 and len(x) == 0"));
}

static void test_temporal_vectors_to_py(void)
{
    qp_value *p = qp_vector(QP_TIMESTAMP, 3);
    qp_J(p)[0] = 0; qp_J(p)[1] = QP_NULL_J; qp_J(p)[2] = -QP_EPOCH_NANOS;
    CU_ASSERT(q2py(p, 0, "x.dtype == 'M8[ns]' and x[0] == np.datetime64('2000-01-01') and np.isnat(x[1])"
                         " and x[2] == np.datetime64('1970-01-01')"));
    qp_value *d = qp_vector(QP_DATE, 3);
    qp_I(d)[0] = 1; qp_I(d)[1] = QP_NULL_I; qp_I(d)[2] = QP_INF_I;
    CU_ASSERT(q2py(d, 0, "x.dtype == 'M8[D]' and x[0] == np.datetime64('2000-01-02') and np.isnat(x[1])"
                         " and x.view('i8')[2] == 2**63-1"));
    qp_value *m = qp_vector(QP_MONTH, 2);
    qp_I(m)[0] = 0; qp_I(m)[1] = -1;
    CU_ASSERT(q2py(m, 0, "x.dtype == 'M8[M]' and x.tolist() == [datetime.date(2000,1,1), datetime.date(1999,12,1)]"));
    qp_value *t = qp_vector(QP_TIME, 2);
    qp_I(t)[0] = 1000; qp_I(t)[1] = QP_NULL_I;
    CU_ASSERT(q2py(t, 0, "x.dtype == 'm8[ms]' and x[0] == np.timedelta64(1, 's') and np.isnat(x[1])"));
    qp_value *u = qp_vector(QP_MINUTE, 1);
    qp_I(u)[0] = 90;
    CU_ASSERT(q2py(u, 0, "x.dtype == 'm8[m]' and x[0] == np.timedelta64(90, 'm')"));
    qp_value *s = qp_vector(QP_SECOND, 1);
    qp_I(s)[0] = 90;
    CU_ASSERT(q2py(s, 0, "x.dtype == 'm8[s]' and x[0] == np.timedelta64(90, 's')"));
    qp_value *z = qp_vector(QP_DATETIME, 2);
    qp_F(z)[0] = 0.25; qp_F(z)[1] = QP_NULL_F;
    CU_ASSERT(q2py(z, 0, "x.dtype == 'M8[ms]' and x[0] == np.datetime64('2000-01-01T06:00') and np.isnat(x[1])"));
}

static void test_symbols_strings_lists(void)
{
    CU_ASSERT(q2py(syms(4, "a", "bb", "a", ""), 0,
                   "x.dtype == object and x.tolist() == ['a', 'bb', 'a', ''] and x[0] is x[2]"));
    CU_ASSERT(q2py(syms(4, "a", "bb", "a", ""), QP_PY_CATEGORICAL,
                   "isinstance(x, pd.Categorical) and list(x) == ['a', 'bb', 'a', ''] and x.codes.tolist() == [0, 1, 0, 2]"));
    CU_ASSERT(q2py(qp_cstring("hello"), 0, "x == 'hello'"));
    CU_ASSERT(q2py(qp_string("a\xff", 2), 0, "x.encode('utf-8', 'surrogateescape') == b'a\\xff'"));
    CU_ASSERT(q2py(qp_list(3, qp_long(1), qp_cstring("ab"), qp_list(1, qp_float(2.0))), 0,
                   "x == [1, 'ab', [2.0]]"));
    CU_ASSERT(q2py(qp_vector(QP_LIST, 0), 0, "x == []"));
    qp_value *vals = qp_vector(QP_LONG, 2);
    qp_J(vals)[0] = 1; qp_J(vals)[1] = 2;
    CU_ASSERT(q2py(qp_dict(syms(2, "a", "b"), vals), 0, "x == {'a': 1, 'b': 2}"));
    CU_ASSERT(q2py(qp_dict(syms(2, "a", "b"), qp_list(2, qp_cstring("s"), qp_symbol("t"))), 0,
                   "x == {'a': 's', 'b': 't'}"));
}

static qp_value *trade(int n)
{
    qp_value *sym = qp_vector(QP_SYMBOL, n), *px = qp_vector(QP_FLOAT, n), *sz = qp_vector(QP_LONG, n);
    for (int i = 0; i < n; i++) {
        qp_S(sym)[i] = qp_sym_intern(i % 2 ? "ibm" : "msft", i % 2 ? 3 : 4);
        qp_F(px)[i] = 100 + i;
        qp_J(sz)[i] = 10 * (i + 1);
    }
    return qp_table(qp_dict(syms(3, "sym", "price", "size"), qp_list(3, sym, px, sz)));
}

static void test_tables_to_py(void)
{
    qp_value *t = trade(4);
    PyObject *o = qp_py_from_q(t, 0);
    CU_ASSERT(check(o, "list(x) == ['sym', 'price', 'size'] and x['size'].tolist() == [10, 20, 30, 40]"
                       " and x['sym'].tolist() == ['msft', 'ibm', 'msft', 'ibm']"));
    /* columns are views of the table's vectors */
    PyObject *px = o ? PyDict_GetItemString(o, "price") : NULL;
    CU_ASSERT(px && PyArray_DATA((PyArrayObject *)px) == qp_table_column(t, "price")->v.data);
    Py_XDECREF(o);
    /* a DataFrame's symbols are str, as PyKX's; Categoricals when asked */
    CU_ASSERT(q2py(qp_ref(t), QP_PY_PANDAS,
                   "isinstance(x, pd.DataFrame) and x.shape == (4, 3) and x['sym'].dtype == object"
                   " and x['sym'].tolist() == ['msft', 'ibm', 'msft', 'ibm'] and x['price'].sum() == 406"));
    CU_ASSERT(q2py(qp_ref(t), QP_PY_PANDAS | QP_PY_CATEGORICAL,
                   "isinstance(x, pd.DataFrame) and x.shape == (4, 3) and x['sym'].dtype == 'category'"
                   " and x['price'].sum() == 406"));
    /* keyed table: key columns first (dict) or the index (DataFrame) */
    qp_value *k = qp_table(qp_dict(syms(1, "sym"), qp_list(1, syms(2, "a", "b"))));
    qp_value *vv = qp_vector(QP_LONG, 2);
    qp_J(vv)[0] = 1; qp_J(vv)[1] = 2;
    qp_value *v = qp_table(qp_dict(syms(1, "n"), qp_list(1, vv)));
    qp_value *kt = qp_dict(k, v);
    CU_ASSERT(q2py(qp_ref(kt), 0, "list(x) == ['sym', 'n'] and x['n'].tolist() == [1, 2]"));
    CU_ASSERT(q2py(kt, QP_PY_PANDAS, "list(x.index) == ['a', 'b'] and x.index.name == 'sym' and list(x['n']) == [1, 2]"));
    qp_unref(t);
}

/* ---- symbol codes cache (src/py/symcat.c) ---- */

/* A table of n rows whose sym column cycles through k distinct symbols. */
static qp_value *symtab(int n, int k, const char *prefix)
{
    qp_value *sym = qp_vector(QP_SYMBOL, n), *i = qp_vector(QP_LONG, n);
    for (int r = 0; r < n; r++) {
        char b[32];
        int len = snprintf(b, sizeof b, "%s%d", prefix, r % k);
        qp_S(sym)[r] = qp_sym_intern(b, (size_t)len);
        qp_J(i)[r] = r;
    }
    return qp_table(qp_dict(syms(2, "sym", "i"), qp_list(2, sym, i)));
}

static void test_symcat_slices_share_codes(void)
{
    size_t before = qp__symcat_sweep();
    qp_value *t = trade(1000);
    qp_value *col = qp_table_column(t, "sym");
    CU_ASSERT(qp__symcat_codes(col) == NULL);
    CU_ASSERT(qp__symcat_prime_table(t) == 0);
    CU_ASSERT(atomic_load(&col->v.owner->refs) == 2);   /* the column's and the cache's */
    PyObject *whole = qp__symcat_codes(col);
    CU_ASSERT_FATAL(whole != NULL);
    CU_ASSERT(qp__symcat_prime_table(t) == 0);           /* built once */
    CU_ASSERT(qp__symcat_codes(col) == whole && atomic_load(&col->v.owner->refs) == 2);
    CU_ASSERT(qp__symcat_sweep() == before + 1);
    Py_INCREF(whole);
    bind("whole", whole);
    CU_ASSERT(check(whole, "x.dtype == np.int8 and len(x) == 1000 and not x.flags.writeable"));

    /* two slices of the column: views of the one codes array, right values */
    qp_value *s1 = qp_table_slice(t, 10, 100), *s2 = qp_table_slice(t, 500, 300);
    CU_ASSERT(qp__symcat_codes(qp_table_column(s1, "sym")) == whole);
    Py_ssize_t refs0 = Py_REFCNT(whole);
    PyObject *c1 = qp_py_from_q(qp_table_column(s1, "sym"), QP_PY_CATEGORICAL);
    PyObject *c2 = qp_py_from_q(s2, QP_PY_PANDAS | QP_PY_CATEGORICAL);
    CU_ASSERT(Py_REFCNT(whole) == refs0 + 2);           /* each view's base is the codes */
    bind("c1", c1);
    bind("c2", c2);
    const char *addr = "x.codes.__array_interface__['data'][0]";
    char expr[512];
    snprintf(expr, sizeof expr, "isinstance(x, pd.Categorical) and %s == whole.__array_interface__"
             "['data'][0] + 10 and not x.codes.flags.writeable and list(x) == "
             "['ibm' if i %% 2 else 'msft' for i in range(10, 110)]", addr);
    CU_ASSERT(check(c1, expr));
    CU_ASSERT(check(c2, "isinstance(x, pd.DataFrame) and x['sym'].dtype == 'category' and "
                        "np.shares_memory(x['sym'].cat.codes.to_numpy(), whole) and "
                        "list(x['sym']) == ['ibm' if i % 2 else 'msft' for i in range(500, 800)]"));
    /* an empty slice at the end, and the whole column */
    qp_value *e = qp_table_slice(t, 1000, 0);
    CU_ASSERT(q2py(qp_ref(qp_table_column(e, "sym")), QP_PY_CATEGORICAL,
                   "isinstance(x, pd.Categorical) and len(x) == 0 and list(x.categories) == ['msft', 'ibm']"));
    CU_ASSERT(q2py(qp_ref(col), QP_PY_CATEGORICAL, "x.codes.tolist() == whole.tolist() and x[999] == 'ibm'"));
    qp_unref(e);

    /* an equal column in another buffer is not served the cached codes */
    qp_value *other = syms(2, "msft", "ibm");
    CU_ASSERT(qp__symcat_codes(other) == NULL);
    CU_ASSERT(q2py(other, QP_PY_CATEGORICAL, "list(x) == ['msft', 'ibm'] and not np.shares_memory(x.codes, whole)"));

    /* drop the table: the entry goes at the next sweep, while the
     * Categoricals handed out keep their codes */
    qp_unref(s1);
    qp_unref(s2);
    CU_ASSERT(qp__symcat_sweep() == before + 1);        /* the table is alive */
    qp_unref(t);
    CU_ASSERT(qp__symcat_sweep() == before);
    CU_ASSERT(check(c1, "list(x[:3]) == ['msft', 'ibm', 'msft'] and x.codes.base is not None"));
    PyDict_DelItemString(g, "c1");
    PyDict_DelItemString(g, "c2");
    PyDict_DelItemString(g, "whole");
}

static void test_symcat_replaced_not_stale(void)
{
    size_t before = qp__symcat_sweep();
    qp_value *a = symtab(300, 3, "a");
    CU_ASSERT(qp__symcat_prime_table(a) == 0);
    qp_value *sa = qp_table_slice(a, 100, 50);
    CU_ASSERT(q2py(qp_ref(qp_table_column(sa, "sym")), QP_PY_CATEGORICAL,
                   "list(x) == ['a%d' % (i % 3) for i in range(100, 150)]"));
    qp_unref(sa);
    /* "replace the global": drop a without a sweep (the cache holds a's
     * buffer, so b cannot land at its address), then b, same shape */
    qp_unref(a);
    qp_value *b = symtab(300, 200, "b");
    CU_ASSERT(qp__symcat_prime_table(b) == 0);          /* sweeps a */
    CU_ASSERT(qp__symcat_sweep() == before + 1);
    qp_value *sb = qp_table_slice(b, 100, 50);
    CU_ASSERT(q2py(qp_ref(qp_table_column(sb, "sym")), QP_PY_CATEGORICAL,
                   "x.codes.dtype == np.int16 and len(x.categories) == 200 and "
                   "list(x) == ['b%d' % (i % 200) for i in range(100, 150)]"));
    qp_unref(sb);
    qp_unref(b);
    CU_ASSERT(qp__symcat_sweep() == before);
    /* null symbols (NULL items of a fresh vector) are one category '' */
    qp_value *z = qp_vector(QP_SYMBOL, 3);
    qp_S(z)[1] = qp_sym_intern("a", 1);
    CU_ASSERT(q2py(z, QP_PY_CATEGORICAL, "list(x) == ['', 'a', ''] and list(x.categories) == ['', 'a']"));
    /* more categories than int16 holds: int32 codes */
    qp_value *w = symtab(40000, 40000, "w");
    CU_ASSERT(q2py(qp_ref(qp_table_column(w, "sym")), QP_PY_CATEGORICAL,
                   "x.codes.dtype == np.int32 and x[39999] == 'w39999'"));
    qp_unref(w);
}

/* ---- Python -> q ---- */

static bool is_atom(qp_value *v, int type)
{
    bool ok = v && v->type == type;
    if (!ok) fprintf(stderr, "\n  type %d, wanted %d (%s)\n", v ? v->type : 0, type,
                     v && qp_is_error(v) ? v->s : "");
    return ok;
}

/* ---- enumerations (type 20, src/py/symcat.c) ---- */

static void test_enum_to_py(void)
{
    qp_value *dom = syms(4, "a", "bb", "", "c");
    int64_t idx[] = {3, 0, 1, 0, 1, 3};
    qp_value *e = enumv(6, idx, qp_ref(dom));
    CU_ASSERT_FATAL(e && e->type == QP_ENUM);
    /* categorical: the codes ARE the enum's indices (same address), the
     * categories the domain in its order */
    PyObject *c = qp_py_from_q(e, QP_PY_CATEGORICAL);
    bind("addr", PyLong_FromVoidPtr(e->v.data));
    CU_ASSERT(check(c, "isinstance(x, pd.Categorical) and list(x) == ['c', 'a', 'bb', 'a', 'bb', 'c'] and "
                       "list(x.categories) == ['a', 'bb', '', 'c'] and x.codes.dtype == np.int64 and "
                       "x.codes.__array_interface__['data'][0] == addr and not x.codes.flags.writeable and "
                       "not x.codes.flags.owndata and type(x.codes.base.base).__name__ == 'PyCapsule' and "
                       "x.value_counts()['bb'] == 2"));
    /* a slice views the same indices; a second column of the domain shares
     * its dtype (categories made once per domain) */
    qp_value *sl = qp_slice(e, 2, 3);
    PyObject *c2 = qp_py_from_q(sl, QP_PY_CATEGORICAL);
    bind("c", c);
    CU_ASSERT(check(c2, "list(x) == ['bb', 'a', 'bb'] and x.dtype is c.dtype and "
                        "x.codes.__array_interface__['data'][0] == addr + 16"));
    Py_XDECREF(c2);
    qp_unref(sl);
    /* the Categorical outlives the enum and its buffer (capsule reference) */
    qp_unref(e);
    CU_ASSERT(check(c, "list(x[:2]) == ['c', 'a'] and x.codes.base is not None"));
    PyDict_DelItemString(g, "c");
    /* objects: one str per domain name, shared by the rows */
    CU_ASSERT(q2py(enumv(6, idx, qp_ref(dom)), 0,
                   "x.dtype == object and x.tolist() == ['c', 'a', 'bb', 'a', 'bb', 'c'] and x[0] is x[5]"));
    /* nulls: 0Nj is the null symbol ``, as for symbol vectors; the codes
     * are a copy then (the domain's `` index), the view otherwise */
    int64_t nidx[] = {0, QP_NULL_J, 2, 1};
    CU_ASSERT(q2py(enumv(4, nidx, qp_ref(dom)), QP_PY_CATEGORICAL,
                   "list(x) == ['a', '', '', 'bb'] and x.codes.tolist() == [0, 2, 2, 1] and "
                   "x.codes.base.base is None"));
    CU_ASSERT(q2py(enumv(4, nidx, qp_ref(dom)), 0, "x.tolist() == ['a', '', '', 'bb']"));
    /* no `` in the domain, or a name twice: resolved and coded afresh */
    CU_ASSERT(q2py(enumv(4, nidx, syms(3, "a", "bb", "z")), QP_PY_CATEGORICAL,
                   "isinstance(x, pd.Categorical) and list(x) == ['a', '', 'z', 'bb']"));
    CU_ASSERT(q2py(enumv(4, idx, syms(4, "a", "b", "a", "d")), QP_PY_CATEGORICAL,
                   "list(x) == ['d', 'a', 'b', 'a'] and sorted(x.categories) == ['a', 'b', 'd']"));
    /* in a table: DataFrame columns are str, or Categoricals when asked;
     * dict columns str */
    qp_value *t = qp_table(qp_dict(syms(2, "s", "n"), qp_list(2, enumv(2, idx, qp_ref(dom)), qp_vector(QP_LONG, 2))));
    CU_ASSERT(q2py(qp_ref(t), QP_PY_PANDAS, "x['s'].dtype == object and list(x['s']) == ['c', 'a']"));
    CU_ASSERT(q2py(qp_ref(t), QP_PY_PANDAS | QP_PY_CATEGORICAL,
                   "x['s'].dtype == 'category' and list(x['s']) == ['c', 'a'] and "
                                            "x.groupby('s', observed=True)['n'].count().to_dict() == {'a': 1, 'c': 1}"));
    CU_ASSERT(q2py(t, 0, "x['s'].tolist() == ['c', 'a']"));
    CU_ASSERT(q2py(qp_dict(enumv(2, idx, qp_ref(dom)), qp_vector(QP_LONG, 2)), 0, "x == {'c': 0, 'a': 0}"));
    CU_ASSERT(q2py(enumv(0, idx, qp_ref(dom)), QP_PY_CATEGORICAL, "len(x) == 0 and len(x.categories) == 4"));
    qp_unref(dom);
    PyDict_DelItemString(g, "addr");
}

/* A db's symbol column, written by our writer and mapped back: the
 * Categorical's codes are the mapped file. */
static void test_enum_mapped_file(void)
{
    char dir[] = "/tmp/qp_py_db_XXXXXX", err[256] = "";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    qp_value *src = qp_table(qp_dict(syms(2, "sym", "name"),
                                     qp_list(2, syms(3, "ibm", "msft", "goog"),
                                             syms(3, "oracle", "microsoft", "google"))));
    int rc = qp_kdb_write(dir, "cust", src, NULL, err, sizeof err);
    qp_unref(src);
    if (rc) fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    qp_kdb *db = NULL;
    if (qp_kdb_open(dir, &db, err, sizeof err)) fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *t = qp_kdb_table(db, "cust", QP_KDB_ENUMS);
    qp_kdb_close(db);   /* the table keeps its mappings */
    qp_value *col = t ? qp_table_column(t, "sym") : NULL;
    CU_ASSERT_FATAL(col && col->type == QP_ENUM && col->v.owner->maplen > 0);
    bind("addr", PyLong_FromVoidPtr(col->v.data));
    CU_ASSERT(q2py(t, QP_PY_PANDAS | QP_PY_CATEGORICAL, "list(x['sym']) == ['ibm', 'msft', 'goog'] and "
                                    "x['sym'].cat.codes.to_numpy().__array_interface__['data'][0] == addr and "
                                    "list(x['name']) == ['oracle', 'microsoft', 'google']"));
    PyDict_DelItemString(g, "addr");
    CU_ASSERT_EQUAL(qp_test_rmtree(dir), 0);
}

static void test_scalars_to_q(void)
{
    qp_value *v;
    v = py2q("10"); CU_ASSERT(is_atom(v, -QP_LONG) && v->j == 10); qp_unref(v);
    v = py2q("-2**63"); CU_ASSERT(is_atom(v, -QP_LONG) && v->j == QP_NULL_J); qp_unref(v);
    v = py2q("2**70"); CU_ASSERT(v && qp_is_error(v) && strstr(v->s, "int")); qp_unref(v);
    v = py2q("1.5"); CU_ASSERT(is_atom(v, -QP_FLOAT) && v->f == 1.5); qp_unref(v);
    v = py2q("float('nan')"); CU_ASSERT(is_atom(v, -QP_FLOAT) && isnan(v->f)); qp_unref(v);
    v = py2q("True"); CU_ASSERT(is_atom(v, -QP_BOOL) && v->g == 1); qp_unref(v);
    v = py2q("'ibm'"); CU_ASSERT(is_atom(v, -QP_SYMBOL) && v->s == qp_sym_intern("ibm", 3)); qp_unref(v);
    v = py2q("b'ab\\x00'"); CU_ASSERT(is_atom(v, QP_BYTE) && v->v.n == 3 && qp_G(v)[1] == 'b'); qp_unref(v);
    v = py2q("None"); CU_ASSERT(is_atom(v, QP_UNARY) && v->v.n == 1); qp_unref(v);
    v = py2q("np.int32(5)"); CU_ASSERT(is_atom(v, -QP_INT) && v->i == 5); qp_unref(v);
    v = py2q("np.int16(-5)"); CU_ASSERT(is_atom(v, -QP_SHORT) && v->h == -5); qp_unref(v);
    v = py2q("np.uint8(250)"); CU_ASSERT(is_atom(v, -QP_BYTE) && v->g == 250); qp_unref(v);
    v = py2q("np.int64(7)"); CU_ASSERT(is_atom(v, -QP_LONG) && v->j == 7); qp_unref(v);
    v = py2q("np.float32(0.5)"); CU_ASSERT(is_atom(v, -QP_REAL) && v->e == 0.5f); qp_unref(v);
    v = py2q("np.float64(0.5)"); CU_ASSERT(is_atom(v, -QP_FLOAT) && v->f == 0.5); qp_unref(v);
    v = py2q("np.bool_(True)"); CU_ASSERT(is_atom(v, -QP_BOOL) && v->g == 1); qp_unref(v);
    v = py2q("np.str_('x')"); CU_ASSERT(is_atom(v, -QP_SYMBOL) && !strcmp(v->s, "x")); qp_unref(v);
    v = py2q("np.datetime64('2000-01-01T00:00:01', 'ns')");
    CU_ASSERT(is_atom(v, -QP_TIMESTAMP) && v->j == 1000000000); qp_unref(v);
    v = py2q("np.datetime64('NaT', 'ns')"); CU_ASSERT(is_atom(v, -QP_TIMESTAMP) && v->j == QP_NULL_J); qp_unref(v);
    v = py2q("np.datetime64('1970-01-01')"); CU_ASSERT(is_atom(v, -QP_DATE) && v->i == -QP_EPOCH_DAYS); qp_unref(v);
    v = py2q("np.timedelta64(5, 's')"); CU_ASSERT(is_atom(v, -QP_SECOND) && v->i == 5); qp_unref(v);
    v = py2q("np.timedelta64(5, 'us')"); CU_ASSERT(is_atom(v, -QP_TIMESPAN) && v->j == 5000); qp_unref(v);
    v = py2q("datetime.datetime(2000, 1, 2)");
    CU_ASSERT(is_atom(v, -QP_TIMESTAMP) && v->j == 86400LL * 1000000000); qp_unref(v);
    v = py2q("datetime.date(2000, 1, 3)"); CU_ASSERT(is_atom(v, -QP_DATE) && v->i == 2); qp_unref(v);
    v = py2q("datetime.timedelta(seconds=1)"); CU_ASSERT(is_atom(v, -QP_TIMESPAN) && v->j == 1000000000); qp_unref(v);
    v = py2q("datetime.time(1, 0, 0, 5000)"); CU_ASSERT(is_atom(v, -QP_TIME) && v->i == 3600005); qp_unref(v);
    v = py2q("pd.Timestamp('2000-01-01 00:00:00.000000007')"); CU_ASSERT(is_atom(v, -QP_TIMESTAMP) && v->j == 7); qp_unref(v);
    v = py2q("uuid.UUID(bytes=bytes(range(16)))"); CU_ASSERT(is_atom(v, -QP_GUID) && v->u[15] == 15); qp_unref(v);
    v = py2q("1+2j"); CU_ASSERT(v && qp_is_error(v) && strstr(v->s, "complex")); qp_unref(v);
    v = py2q("object()"); CU_ASSERT(v && qp_is_error(v) && strstr(v->s, "object")); qp_unref(v);
    v = py2q("np.zeros(2, dtype=complex)"); CU_ASSERT(v && qp_is_error(v) && strstr(v->s, "dtype")); qp_unref(v);
}

static void test_arrays_to_q(void)
{
    static const struct { const char *expr; int type; } cases[] = {
        {"np.array([True, False])", QP_BOOL}, {"np.array([1, 2], 'u1')", QP_BYTE},
        {"np.array([1, -2], 'i1')", QP_SHORT}, {"np.array([1, 2], 'i2')", QP_SHORT},
        {"np.array([1, 2], 'u2')", QP_INT}, {"np.array([1, 2], 'i4')", QP_INT},
        {"np.array([1, 2], 'u4')", QP_LONG}, {"np.array([1, 2], 'i8')", QP_LONG},
        {"np.array([1, 2], 'f2')", QP_REAL}, {"np.array([1, 2], 'f4')", QP_REAL},
        {"np.array([1, 2], 'f8')", QP_FLOAT}, {"np.arange(10)[::2]", QP_LONG},
        {"np.array([1, 2], '>i8')", QP_LONG},
        {"np.array(['2000-01-01T00:00:01'], 'M8[s]')", QP_TIMESTAMP},
        {"np.array(['2000-01-01'], 'M8[D]')", QP_DATE}, {"np.array(['2000-02'], 'M8[M]')", QP_MONTH},
        {"np.array([1], 'm8[m]')", QP_MINUTE}, {"np.array([1], 'm8[s]')", QP_SECOND},
        {"np.array([1], 'm8[ms]')", QP_TIME}, {"np.array([2**40], 'm8[ms]')", QP_TIMESPAN},
        {"np.array([1], 'm8[ns]')", QP_TIMESPAN}, {"np.array(['a', 'bc'])", QP_SYMBOL},
        {"np.array([b'a', b'bc'])", QP_SYMBOL}, {"np.array(['a', 'b'], dtype=object)", QP_SYMBOL},
        {"np.array([1, 2], dtype=object)", QP_LONG}, {"np.array([1, 'a'], dtype=object)", QP_LIST},
        {"np.zeros((2, 3))", QP_LIST}, {"[1, 2, 3]", QP_LONG}, {"(1.0, 2.0)", QP_FLOAT},
        {"['a', 'b']", QP_SYMBOL}, {"[1, 'a']", QP_LIST}, {"[]", QP_LIST}, {"[[1], [2]]", QP_LIST},
        {"[np.int32(1), np.int32(2)]", QP_INT}, {"[None, None]", QP_LIST},
        {"pd.Series([1.5, 2.5])", QP_FLOAT}, {"pd.Categorical(['a', 'b', 'a'])", QP_SYMBOL},
        {"[uuid.UUID(int=1), uuid.UUID(int=2)]", QP_GUID},
        {"{'a': np.arange(3), 'b': np.ones(3)}", QP_TABLE}, {"{'a': 1, 'b': 2}", QP_DICT},
        {"{'a': np.arange(3), 'b': np.ones(2)}", QP_DICT}, {"{}", QP_DICT},
        {"pd.DataFrame({'a': [1, 2], 's': ['x', 'y']})", QP_TABLE},
        {"pd.DataFrame({'a': [1, 2], 's': ['x', 'y']}).set_index('s')", QP_DICT},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qp_value *v = py2q(cases[c].expr);
        if (!is_atom(v, cases[c].type)) fprintf(stderr, "  for %s\n", cases[c].expr);
        CU_ASSERT(v && v->type == cases[c].type);
        qp_unref(v);
    }
    qp_value *v = py2q("np.array(['2000-01-01T00:00:01', 'NaT'], 'M8[ns]')");
    CU_ASSERT(v && v->type == QP_TIMESTAMP && qp_J(v)[0] == 1000000000 && qp_J(v)[1] == QP_NULL_J);
    qp_unref(v);
    v = py2q("np.array(['1970-01-01', 'NaT'], 'M8[D]')");
    CU_ASSERT(v && v->type == QP_DATE && qp_I(v)[0] == -QP_EPOCH_DAYS && qp_I(v)[1] == QP_NULL_I);
    qp_unref(v);
    v = py2q("np.array([1, -2], '>i8')");
    CU_ASSERT(v && v->type == QP_LONG && qp_J(v)[1] == -2);
    qp_unref(v);
    v = py2q("pd.Categorical(['b', None, 'b'])");
    CU_ASSERT(v && v->type == QP_SYMBOL && !strcmp(qp_S(v)[0], "b") && !strcmp(qp_S(v)[1], ""));
    qp_unref(v);
    v = py2q("pd.DataFrame({'a': [1, 2], 's': ['x', 'y']}).set_index('s')");
    CU_ASSERT(v && qp_is_keyed_table(v));
    qp_unref(v);
}

/* Every vector type with its nulls and infinities: q -> Python -> q. */
static void test_round_trip(void)
{
    for (int t = 1; t <= 19; t++) {
        if (t == 3 || t == QP_CHAR || t == QP_DATETIME) continue;   /* not round-trip types */
        qp_value *v = qp_vector(t, 5);
        for (int i = 0; i < 5; i++) {
            void *p = (char *)v->v.data + i * (t == QP_GUID ? 16 : qp_type_width(t));
            int64_t j = i == 0 ? QP_NULL_J : i == 1 ? QP_INF_J : i == 2 ? -QP_INF_J : i * 7 - 20;
            int32_t n = i == 0 ? QP_NULL_I : i == 1 ? QP_INF_I : i == 2 ? -QP_INF_I : i * 7 - 20;
            int16_t h = i == 0 ? QP_NULL_H : i == 1 ? QP_INF_H : i == 2 ? -QP_INF_H : (int16_t)(i * 7 - 20);
            double f = i == 0 ? QP_NULL_F : i == 1 ? QP_INF_F : i == 2 ? -QP_INF_F : i * 1.25;
            float e = (float)f;
            switch (t) {
            case QP_BOOL: *(uint8_t *)p = i & 1; break;
            case QP_GUID: memset(p, i * 17, 16); break;
            case QP_BYTE: *(uint8_t *)p = (uint8_t)(i * 60); break;
            case QP_SHORT: *(int16_t *)p = h; break;
            case QP_REAL: *(float *)p = e; break;
            case QP_FLOAT: *(double *)p = f; break;
            case QP_SYMBOL: qp_S(v)[i] = qp_sym_intern("abcde" + i, 5 - i); break;
            case QP_LONG: case QP_TIMESTAMP: case QP_TIMESPAN: *(int64_t *)p = j; break;
            default: *(int32_t *)p = n; break;
            }
        }
        PyObject *o = qp_py_from_q(v, 0);
        qp_value *back = o ? qp_py_to_q(o) : NULL;
        bool eq = back && qp_equal(v, back);
        if (!eq) fprintf(stderr, "\n  round trip of %s failed (%s)\n", qp_type_name(t),
                         back && qp_is_error(back) ? back->s : "differs");
        CU_ASSERT(eq);
        /* atoms too: each item alone */
        for (int i = 0; o && i < 5; i++) {
            qp_value *a = qp_item(v, i);
            PyObject *ao = qp_py_from_q(a, 0);
            qp_value *ab = ao ? qp_py_to_q(ao) : NULL;
            bool aeq = ab && qp_equal(a, ab);
            if (!aeq) fprintf(stderr, "\n  atom round trip of %s item %d failed (%s)\n", qp_type_name(t), i,
                              ab && qp_is_error(ab) ? ab->s : "differs");
            CU_ASSERT(aeq);
            qp_unref(a); qp_unref(ab); Py_XDECREF(ao);
        }
        Py_XDECREF(o);
        qp_unref(back);
        qp_unref(v);
    }
    /* containers */
    qp_value *t = trade(6);
    PyObject *o = qp_py_from_q(t, 0);
    qp_value *back = qp_py_to_q(o);
    CU_ASSERT(back && qp_equal(t, back));
    qp_unref(back);
    Py_XDECREF(o);
    o = qp_py_from_q(t, QP_PY_PANDAS);
    back = qp_py_to_q(o);
    CU_ASSERT(back && qp_equal(t, back));
    qp_unref(back);
    Py_XDECREF(o);
    qp_unref(t);
    qp_value *l = qp_list(3, qp_long(1), qp_symbol("a"), qp_list(2, qp_float(1), qp_identity()));
    o = qp_py_from_q(l, 0);
    back = qp_py_to_q(o);
    CU_ASSERT(back && qp_equal(l, back));
    qp_unref(back);
    Py_XDECREF(o);
    qp_unref(l);
}

/* ---- functions ---- */

static qp_value *call0(const char *name) { return qp_py_call(name, NULL, NULL); }

static bool is_long(qp_value *v, int64_t j)
{
    bool ok = v && v->type == -QP_LONG && v->j == j;
    if (!ok) fprintf(stderr, "\n  wanted %lld, got type %d %s\n", (long long)j, v ? v->type : 0,
                     v && qp_is_error(v) ? v->s : "");
    qp_unref(v);
    return ok;
}

static qp_value *def(const char *name, const char *src)
{
    qp_value *code = qp_cstring(src);
    qp_value *id = qp_py_def(name, code, NULL);
    qp_unref(code);
    if (id && qp_is_error(id)) fprintf(stderr, "\n  def %s: %s\n", name, id->s);
    return id;
}

static void test_walkthrough(void)
{
    /* PyKX's remote-function walkthrough: zero, one and two arguments */
    qp_unref(def("zero_arg", "@kx.remote.function(session)\ndef zero_arg():\n    return 10\n"));
    qp_unref(def("single_arg", "@kx.remote.function(session)\ndef single_arg(x):\n    return x + 10\n"));
    qp_unref(def("multi_arg", "@kx.remote.function(session)\ndef multi_arg(x, y):\n    return x + y\n"));
    CU_ASSERT(is_long(call0("zero_arg"), 10));
    qp_value *a = qp_list(1, qp_long(10));
    CU_ASSERT(is_long(qp_py_call("single_arg", a, NULL), 20));
    qp_unref(a);
    a = qp_vector(QP_LONG, 2);
    qp_J(a)[0] = 10; qp_J(a)[1] = 20;
    CU_ASSERT(is_long(qp_py_call("multi_arg", a, NULL), 30));
    qp_unref(a);
    a = qp_long(5);   /* an atom is one argument */
    CU_ASSERT(is_long(qp_py_call("single_arg", a, NULL), 15));
    qp_unref(a);
    a = qp_vector(QP_LIST, 0);   /* () is no argument */
    CU_ASSERT(is_long(qp_py_call("zero_arg", a, NULL), 10));
    qp_unref(a);
}

static void test_def_forms(void)
{
    /* the id is the SHA-256 of the code */
    const char *src = "def f():\n    return 1\n";
    qp_value *id = def("f", src);
    PyObject *h = PyRun_String("hashlib.sha256(b'def f():\\n    return 1\\n').hexdigest()", Py_eval_input, g, g);
    CU_ASSERT(id && id->type == QP_CHAR && id->v.n == 64 && h &&
              !memcmp(id->v.data, PyUnicode_AsUTF8(h), 64));
    Py_XDECREF(h);
    qp_unref(id);
    /* many decorators, multi-line ones, indented source, helper functions */
    qp_unref(def("g", "    @a.b(1,\n       2)\n    @c\n    @d()\n    def g(x, y=2):\n        return helper(x) * y\n"
                      "    def helper(v):\n        return v + 1\n"));
    qp_value *a = qp_list(1, qp_long(4));
    CU_ASSERT(is_long(qp_py_call("g", a, NULL), 10));   /* name found even though helper is last */
    /* keyword arguments */
    qp_value *kw = qp_dict(syms(1, "y"), qp_list(1, qp_long(3)));
    CU_ASSERT(is_long(qp_py_call("g", a, kw), 15));
    qp_unref(kw);
    /* redefining replaces */
    qp_unref(def("g", "def g(x):\n    return -x\n"));
    CU_ASSERT(is_long(qp_py_call("g", a, NULL), -4));
    qp_unref(a);
    /* own namespaces: a global set by one function is not seen by another */
    qp_unref(def("setter", "def setter():\n    global shared\n    shared = 1\n    return shared\n"));
    qp_unref(def("getter", "def getter():\n    return globals().get('shared', 0)\n"));
    CU_ASSERT(is_long(call0("setter"), 1));
    CU_ASSERT(is_long(call0("getter"), 0));
    /* imports inside the body */
    qp_unref(def("body_import", "def body_import():\n    import json\n    return len(json.dumps([1]))\n"));
    CU_ASSERT(is_long(call0("body_import"), 3));
    /* dill bytes */
    PyObject *b = PyRun_String("dill.dumps(lambda x, k=1: x * 2 + k)", Py_eval_input, g, g);
    CU_ASSERT_FATAL(b != NULL);
    qp_value *code = qp_py_to_q(b);
    Py_DECREF(b);
    id = qp_py_def("dl", code, NULL);
    CU_ASSERT(id && id->type == QP_CHAR);
    qp_unref(id);
    qp_unref(code);
    a = qp_list(1, qp_long(4));
    CU_ASSERT(is_long(qp_py_call("dl", a, NULL), 9));
    qp_unref(a);
    /* errors: bad code, unknown function, wrong type of code */
    id = def("bad", "def bad(:\n");
    CU_ASSERT(id && qp_is_error(id) && strstr(id->s, "SyntaxError"));
    qp_unref(id);
    qp_value *e = call0("nope");
    CU_ASSERT(e && qp_is_error(e) && strstr(e->s, "nope"));
    qp_unref(e);
    qp_value *n = qp_long(1);
    e = qp_py_def("x", n, NULL);
    CU_ASSERT(e && qp_is_error(e));
    qp_unref(e);
    qp_unref(n);
}

static void test_imports(void)
{
    qp_unref(def("uses_np", "def uses_np():\n    return int(np.arange(5).sum())\n"));
    qp_value *e = call0("uses_np");
    CU_ASSERT(e && qp_is_error(e) && strstr(e->s, "NameError"));
    qp_unref(e);
    qp_value *libs = qp_dict(syms(2, "np", "pd"), syms(2, "numpy", "pandas"));
    qp_value *r = qp_py_import(libs);
    CU_ASSERT(r && r->type == QP_SYMBOL && r->v.n == 2);
    qp_unref(r);
    qp_unref(libs);
    CU_ASSERT(is_long(call0("uses_np"), 10));   /* imports reach existing functions */
    qp_unref(def("uses_np2", "def uses_np2():\n    return int(np.ones(3).sum())\n"));
    CU_ASSERT(is_long(call0("uses_np2"), 3));   /* and new ones */
    libs = qp_dict(syms(1, "nx"), qp_list(1, qp_cstring("numpy_nonexistent")));
    r = qp_py_import(libs);
    CU_ASSERT(r && qp_is_error(r) && strstr(r->s, "numpy_nonexistent") && strstr(r->s, "'nx'"));
    qp_unref(r);
    qp_unref(libs);
}

static void test_exceptions(void)
{
    qp_unref(def("boom", "def inner(x):\n    return 1 / x\n\ndef boom():\n    return inner(0)\n"));
    qp_value *e = call0("boom");
    CU_ASSERT(e && qp_is_error(e));
    if (e && qp_is_error(e)) {
        CU_ASSERT(strncmp(e->s, "ZeroDivisionError: division by zero", 35) == 0);
        CU_ASSERT(strstr(e->s, "in inner") != NULL);
        CU_ASSERT(strstr(e->s, "return 1 / x") != NULL);   /* source lines shown */
    }
    qp_unref(e);
    qp_unref(def("badret", "def badret():\n    return object()\n"));
    e = call0("badret");
    CU_ASSERT(e && qp_is_error(e) && strstr(e->s, "object"));
    qp_unref(e);
}

static void test_pandas_annotation(void)
{
    qp_unref(def("frame", "def frame(t: 'pd.DataFrame'):\n    import pandas\n"
                          "    assert isinstance(t, pandas.DataFrame)\n    return t[t['size'] > 15]\n"));
    qp_value *a = qp_list(1, trade(4));
    qp_value *r = qp_py_call("frame", a, NULL);
    CU_ASSERT(r && r->type == QP_TABLE && qp_count(r) == 3);
    if (r && qp_is_error(r)) fprintf(stderr, "\n  %s\n", r->s);
    qp_unref(r);
    qp_unref(a);
}

static void test_timeout(void)
{
    qp_py_set_timeout(200);
    qp_unref(def("spin", "def spin():\n    while True:\n        pass\n"));
    qp_unref(def("sleepy", "def sleepy():\n    import time\n    time.sleep(30)\n"));
    qp_unref(def("stubborn", "def stubborn():\n    n = 0\n    while True:\n        try:\n"
                             "            while True:\n                n += 1\n"
                             "        except Exception:\n            pass\n"));
    const char *names[] = {"spin", "sleepy", "stubborn"};
    for (int i = 0; i < 3; i++) {
        qp_value *e = call0(names[i]);
        CU_ASSERT(e && qp_is_error(e) && strstr(e->s, "timeout"));
        if (e && !qp_is_error(e)) fprintf(stderr, "\n  %s returned\n", names[i]);
        qp_unref(e);
    }
    CU_ASSERT(is_long(call0("zero_arg"), 10));   /* the next call is unaffected */
    qp_py_set_timeout(0);
}

/* One server per process: a second server's register fails with a clear
 * error until the first one's registration ends. */
static void test_register_one_server(void)
{
    char err[512] = "";
    qp_server_opts o = { .listen = "0" };
    qp_server *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_server_new(&o, &a, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(qp_server_new(&o, &b, err, sizeof err), 0);
    CU_ASSERT_EQUAL(qp_py_register(a, NULL, err, sizeof err), 0);
    CU_ASSERT_EQUAL(qp_py_register(a, NULL, err, sizeof err), 0);     /* the same one again */
    err[0] = '\0';
    CU_ASSERT_EQUAL(qp_py_register(b, NULL, err, sizeof err), QP_EARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "another server"));
    qp_py_shutdown();
    CU_ASSERT_EQUAL(qp_py_register(b, NULL, err, sizeof err), 0);
    qp_py_shutdown();
    qp_server_free(a);
    qp_server_free(b);
}

int main(void)
{
    static const qp_test tests[] = {
        {"atoms to python", test_atoms_to_py},
        {"temporal atoms to python", test_temporal_atoms_to_py},
        {"vectors zero-copy", test_vectors_zero_copy},
        {"temporal vectors", test_temporal_vectors_to_py},
        {"symbols strings lists dicts", test_symbols_strings_lists},
        {"tables to python", test_tables_to_py},
        {"symbol codes shared by slices", test_symcat_slices_share_codes},
        {"symbol codes of a replaced table", test_symcat_replaced_not_stale},
        {"enumerations to python", test_enum_to_py},
        {"enumerations of a mapped file", test_enum_mapped_file},
        {"scalars to q", test_scalars_to_q},
        {"arrays to q", test_arrays_to_q},
        {"round trip", test_round_trip},
        {"walkthrough", test_walkthrough},
        {"def forms", test_def_forms},
        {"imports", test_imports},
        {"exceptions", test_exceptions},
        {"pandas annotation", test_pandas_annotation},
        {"timeout", test_timeout},
        {"one server registers Python", test_register_one_server},
    };
    return qp_test_run("py", suite_init, suite_fini, tests, QP_NTESTS(tests));
}
