/* src/py/pdcol.c - pandas' missing values and q char columns, both ways.
 *
 * q -> pandas (QP_PY_PANDAS: DataFrame columns), as PyKX's .pd() does:
 *   - a short, int or long column holding q's null becomes pandas'
 *     nullable Int16/Int32/Int64 (<NA> there); without a null it stays a
 *     plain numpy column, so only columns that need it pay for a mask;
 *   - the null symbol of a symbol column becomes pandas' missing value
 *     (NaN in a column of str; code -1 in a Categorical), as pandas reads
 *     an empty CSV field;
 *   - q char columns (one-char str objects, fromq.c) are named in
 *     df.attrs, so that the same DataFrame (or a filter of it, which keeps
 *     attrs) goes back as char columns: a str column is otherwise a symbol
 *     column, and a column of one-letter tickers must stay one.
 * pandas/numpy -> q:
 *   - nullable integer, float and string columns: q's nulls where pandas
 *     has <NA> (a boolean <NA> is an error: q booleans have no null);
 *   - numpy masked arrays: q's nulls where masked (PyKX's rule).
 *
 * The work is done by a few lines of Python, compiled once per
 * interpreter at the first use (the worker and the client both use this
 * file); C checks first whether a column needs them, so a column without
 * nulls costs one pass over its items and no Python call.
 */
#include "py_int.h"

#include <string.h>

static const char helper_src[] =
    "import numpy as np\n"
    "CHARS = 'qpeach_char_columns'\n"
    "WIDE = {('i', 1): 'i2', ('i', 2): 'i2', ('i', 4): 'i4', ('i', 8): 'i8',\n"
    "        ('u', 2): 'i4', ('u', 4): 'i8', ('u', 8): 'i8'}\n"
    "def ints(v):\n"
    "    import pandas as pd\n"
    "    return pd.arrays.IntegerArray(v, v == np.iinfo(v.dtype).min)\n"
    "def sym_nulls(col):\n"
    "    if hasattr(col, 'categories'):\n"
    "        return col.remove_categories(['']) if '' in col.categories else col\n"
    "    col[col == ''] = np.nan\n"
    "    return col\n"
    "def mark_chars(df, names):\n"
    "    df.attrs[CHARS] = list(names)\n"
    "def char_columns(df):\n"
    "    a = getattr(df, 'attrs', None)\n"
    "    return list(a.get(CHARS, ())) if isinstance(a, dict) else []\n"
    "def no_null(m, what):\n"
    "    i = int(np.flatnonzero(m)[0])\n"
    "    raise ValueError('row %d: a missing %s (q has no %s null)' % (i, what, what))\n"
    "def unmask(a):\n"
    "    m, d = np.ma.getmaskarray(a), np.ma.getdata(a)\n"
    "    if not m.any():\n"
    "        return d\n"
    "    k = d.dtype.kind\n"
    "    if k in 'iu':\n"
    "        w = WIDE.get((k, d.dtype.itemsize))\n"
    "        if w is None:\n"
    "            no_null(m, 'byte')\n"
    "        out = d.astype(w)\n"
    "        out[m] = np.iinfo(w).min\n"
    "    elif k in 'fMm':\n"
    "        out = d.copy()\n"
    "        out[m] = np.nan if k == 'f' else 'NaT'\n"
    "    elif k == 'b':\n"
    "        no_null(m, 'boolean')\n"
    "    else:\n"
    "        out = d.astype(object)\n"
    "        out[m] = None\n"
    "    return out\n"
    "def values(s):\n"
    "    import pandas as pd\n"
    "    dt = s.dtype\n"
    "    if isinstance(dt, pd.api.extensions.ExtensionDtype):\n"
    "        nd = getattr(dt, 'numpy_dtype', None)\n"
    "        if nd is not None and nd.kind in 'iufb':\n"
    "            m = s.isna().to_numpy()\n"
    "            d = s.to_numpy(dtype=nd, na_value=nd.type(0))\n"
    "            return unmask(np.ma.masked_array(d, mask=m)) if m.any() else d\n"
    "        if isinstance(dt, pd.StringDtype):\n"
    "            return s.to_numpy(dtype=object, na_value=None)\n"
    "    return s.to_numpy()\n";

static PyObject *helpers;     /* dict: the functions above, once compiled */

/* Helper function name (borrowed), compiling the helpers at the first
 * use. NULL with an exception set. */
static PyObject *helper(const char *name)
{
    if (!helpers && !(helpers = qp__helpers_run(helper_src))) return NULL;
    PyObject *f = PyDict_GetItemString(helpers, name);
    if (!f) PyErr_Format(PyExc_RuntimeError, "qpeach: no pandas helper %s", name);
    return f;
}

static PyObject *call1(const char *name, PyObject *a)
{
    PyObject *f = helper(name);
    return f ? PyObject_CallOneArg(f, a) : NULL;
}

void qp__pd_fini(void)
{
    Py_CLEAR(helpers);
}

/* Whether integer vector x holds q's null of its width. */
static bool has_int_null(const qp_value *x)
{
    int64_t n = x->v.n;
    switch (x->type) {
    case QP_SHORT:
        for (int64_t i = 0; i < n; i++) if (qp_H(x)[i] == QP_NULL_H) return true;
        return false;
    case QP_INT:
        for (int64_t i = 0; i < n; i++) if (qp_I(x)[i] == QP_NULL_I) return true;
        return false;
    default:
        for (int64_t i = 0; i < n; i++) if (qp_J(x)[i] == QP_NULL_J) return true;
        return false;
    }
}

PyObject *qp__pd_ints(const qp_value *x)
{
    PyObject *a = qp_py_from_q(x, 0);
    if (!a || !has_int_null(x)) return a;
    PyObject *r = call1("ints", a);
    Py_DECREF(a);
    return r;
}

/* Whether symbol or enumeration vector x holds the null symbol. */
static bool has_sym_null(const qp_value *x)
{
    const char *empty = qp_sym_intern("", 0);
    if (x->type == QP_SYMBOL) {
        for (int64_t i = 0; i < x->v.n; i++) {
            const char *s = qp_S(x)[i];
            if (!s || s == empty) return true;
        }
        return false;
    }
    for (int64_t i = 0; i < x->v.n; i++) {
        int64_t k = qp_J(x)[i];
        const char *s = k == QP_NULL_J ? NULL : qp_S(x->v.dom)[k];
        if (!s || s == empty) return true;
    }
    return false;
}

PyObject *qp__helpers_run(const char *src)
{
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    PyDict_SetItemString(d, "__builtins__", PyEval_GetBuiltins());
    PyObject *r = PyRun_String(src, Py_file_input, d, d);
    if (!r) { Py_DECREF(d); return NULL; }
    Py_DECREF(r);
    return d;
}

PyObject *qp__pd_sym_nulls(const qp_value *x, PyObject *cat)
{
    if (!cat || !has_sym_null(x)) return cat;
    PyObject *r = call1("sym_nulls", cat);
    Py_DECREF(cat);
    return r;
}

int qp__pd_mark_chars(PyObject *df, const qp_value *names)
{
    PyObject *f = helper("mark_chars");
    PyObject *l = f ? qp_py_from_q(names, 0) : NULL;
    PyObject *r = l ? PyObject_CallFunctionObjArgs(f, df, l, NULL) : NULL;
    Py_XDECREF(l);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

PyObject *qp__pd_char_columns(PyObject *df)
{
    return call1("char_columns", df);
}

PyObject *qp__pd_values(PyObject *s)
{
    return call1("values", s);
}

PyObject *qp__pd_unmask(PyObject *a)
{
    return call1("unmask", a);
}
