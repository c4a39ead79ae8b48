"""Embedded Python in a real `qpeach serve`: .qp.import/def/call/callk,
exceptions, timeouts, every conversion over the wire, .qp.apply on a 1M-row
table checked against numpy, .qp.load/--load, and .qp.peach with threads
(-s N) and with worker processes (-s -N).

The client is the pure-Python tests/integration/qipc.py, which shares no
code with qpeach. Types it does not decode (date, month, minute, ...) are
checked from the raw response bytes (raw_call below)."""
import os
import signal
import struct

import numpy as np

import harness
from harness import Server, children, tmpdir, wait_for
from qipc import Conn, Identity, QError, Sym, Table, Vec

DEF = Sym(".qp.def")
CALL = Sym(".qp.call")


def call(c, name, *args):
    return c.call([CALL, Sym(name), list(args)])


def define(c, name, src):
    r = c.call([DEF, Sym(name), src])
    assert isinstance(r, str) and len(r) == 64, r
    return r


def expect_error(fn, *texts):
    try:
        r = fn()
    except QError as e:
        for t in texts:
            assert t in str(e), f"{t!r} not in error {str(e)!r}"
        return str(e)
    raise AssertionError(f"no error (wanted {texts}), got {r!r}")


def raw_call(c, x):
    """(type, attribute-less first item or atom bytes) of the raw response."""
    c.send(x, 1)
    h = c._exact(8)
    n = struct.unpack("<I", h[4:8])[0]
    body = c._exact(n - 8)
    t = struct.unpack_from("<b", body, 0)[0]
    return t, body


W = {12: "q", 13: "i", 14: "i", 15: "d", 16: "q", 17: "i", 18: "i", 19: "i"}


def raw_vector(c, x):
    t, body = raw_call(c, x)
    assert t > 0, (t, body[1:80])
    n = struct.unpack_from("<i", body, 2)[0]
    return t, list(struct.unpack_from("<%d%s" % (n, W[t]), body, 6))


# ------------------------------------------------------------ functions

def test_walkthrough_zero_one_two_args():
    with Server() as s, Conn(port=s.port) as c:
        define(c, "zero_arg_function", "@kx.remote.function(session)\ndef zero_arg_function():\n    return 10\n")
        define(c, "single_arg_function",
               "@kx.remote.function(session)\ndef single_arg_function(x):\n    return x + 10\n")
        define(c, "multi_arg_function",
               "@kx.remote.function(session)\n@another\ndef multi_arg_function(x, y):\n    return x + y\n")
        assert call(c, "zero_arg_function") == 10
        assert call(c, "single_arg_function", 10) == 20
        assert call(c, "multi_arg_function", 10, 20) == 30
        # the q-expression form, as a q client would type it
        assert c.call(".qp.call[`multi_arg_function;(10;20)]") == 30
        # keyword arguments
        define(c, "kw", "def kw(a, b=1, *, c=0):\n    return a * 100 + b * 10 + c\n")
        assert c.call([Sym(".qp.callk"), Sym("kw"), [1], {"b": 2, "c": 3}]) == 123
        # redefining replaces
        define(c, "zero_arg_function", "def zero_arg_function():\n    return 11\n")
        assert call(c, "zero_arg_function") == 11
        expect_error(lambda: call(c, "missing"), "missing", ".qp.def")


def test_libraries_present_missing_and_in_body():
    with Server() as s, Conn(port=s.port) as c:
        define(c, "mean", "def mean(x):\n    return float(np.mean(x))\n")
        expect_error(lambda: call(c, "mean", Vec("f", [1.0, 2.0])), "NameError", "np")
        assert c.call([Sym(".qp.import"), {"np": Sym("numpy"), "pd": "pandas"}]) == Vec("s", ["np", "pd"])
        assert call(c, "mean", Vec("f", [1.0, 2.0])) == 1.5
        expect_error(lambda: c.call([Sym(".qp.import"), {"zz": Sym("no_such_module_xyz")}]),
                     "no_such_module_xyz", "'zz'")
        define(c, "body", "def body(n):\n    import math, json\n    return math.factorial(n) + len(json.dumps([]))\n")
        assert call(c, "body", 5) == 122


def test_exceptions_carry_type_message_traceback():
    with Server() as s, Conn(port=s.port) as c:
        define(c, "boom", "def helper(d):\n    return d['missing']\n\ndef boom():\n    return helper({})\n")
        e = expect_error(lambda: call(c, "boom"), "KeyError", "'missing'", "in helper", "return d['missing']")
        assert e.startswith("KeyError"), e
        expect_error(lambda: c.call([DEF, Sym("bad"), "def bad(:\n"]), "SyntaxError")
        define(c, "unconv", "def unconv():\n    return 1+2j\n")
        expect_error(lambda: call(c, "unconv"), "complex")
        # the server is still fine
        define(c, "ok", "def ok():\n    return 1\n")
        assert call(c, "ok") == 1


def test_dill_bytes():
    import dill
    with Server() as s, Conn(port=s.port) as c:
        scale = 3
        fn = lambda x: x * scale  # noqa: E731 (a closure over a local)
        r = c.call([DEF, Sym("dl"), dill.dumps(fn, recurse=True)])
        assert len(r) == 64
        assert call(c, "dl", 5) == 15


# ------------------------------------------------------------ conversions

def test_conversions_over_the_wire():
    with Server() as s, Conn(port=s.port) as c:
        define(c, "ident", "def ident(x):\n    return x\n")
        define(c, "kind", "def kind(x):\n    import numpy\n"
                          "    d = getattr(x, 'dtype', None)\n"
                          "    return type(x).__name__ + ('/' + str(d) if d is not None else '')\n")
        nan, inf = float("nan"), float("inf")
        same = [10, -(2**63), 2**63 - 1, 1.5, nan, -inf, True, Sym("ibm"), Sym(""), b"\x00\xff",
                Vec("b", [True, False]), Vec("h", [-32768, 32767, 1]),
                Vec("i", [-2**31, 2**31 - 1, 5]), Vec("j", [-(2**63), 2**63 - 1, 7]),
                Vec("e", [0.5, nan, inf]), Vec("f", [1.5, nan, -inf]), Vec("s", ["a", "", "a"]),
                Vec("p", [0, -(2**63), 2**63 - 1, 1]), Vec("n", [5, -(2**63)]),
                [1, Sym("a"), Vec("f", [2.5])], {"a": 1, "b": Sym("x")}, Identity(), [],
                Table({"sym": Vec("s", ["a", "b"]), "px": Vec("f", [1.0, 2.0]), "n": Vec("j", [1, 2])})]
        for v in same:
            got = call(c, "ident", v)
            assert got == v or (isinstance(v, float) and got != got), (v, got)
        # what Python sees
        kinds = [(10, "int"), (1.5, "float"), (True, "bool"), (Sym("s"), "str"), ("chars", "str"),
                 (b"ab", "ndarray/uint8"), (Vec("j", [1]), "ndarray/int64"), (Vec("i", [1]), "ndarray/int32"),
                 (Vec("h", [1]), "ndarray/int16"), (Vec("e", [1.0]), "ndarray/float32"),
                 (Vec("b", [True]), "ndarray/bool"), (Vec("s", ["a"]), "ndarray/object"),
                 (Vec("p", [0]), "ndarray/datetime64[ns]"), (Vec("n", [0]), "ndarray/timedelta64[ns]"),
                 (Identity(), "NoneType")]
        for v, k in kinds:
            assert call(c, "kind", v) == k, (v, call(c, "kind", v), k)
        assert call(c, "kind", [1, 2]) == "list"
        assert call(c, "kind", {"a": 1}) == "dict"
        assert call(c, "kind", Table({"a": Vec("j", [1])})) == "dict"
        # epochs: q's 2000.01.01 is numpy's 2000-01-01
        define(c, "iso", "def iso(x):\n    return str(x[0])\n")
        assert call(c, "iso", Vec("p", [86400 * 10**9])) == "2000-01-02T00:00:00.000000000"
        # char vector -> str -> symbol; str -> symbol
        assert call(c, "ident", "hello") == Sym("hello")
        # results: Python -> q, the types checked on the raw bytes
        define(c, "make", "def make(k):\n    import numpy as np, pandas as pd, datetime\n    return {\n"
               "      'date': np.array(['2000-01-02', 'NaT'], 'M8[D]'),\n"
               "      'month': np.array(['2000-03'], 'M8[M]'),\n"
               "      'ts': np.array(['1970-01-01T00:00:00', 'NaT'], 'M8[ns]'),\n"
               "      'tsus': np.array(['2000-01-01T00:00:01'], 'M8[us]'),\n"
               "      'span': np.array([1500, 'NaT'], 'm8[ns]'),\n"
               "      'minute': np.array([61], 'm8[m]'),\n"
               "      'second': np.array([61], 'm8[s]'),\n"
               "      'time': np.array([61], 'm8[ms]'),\n"
               "      'pydt': [datetime.datetime(2000, 1, 1, 0, 0, 1)],\n"
               "    }[k]\n")
        ns = 10**9
        assert raw_vector(c, [CALL, Sym("make"), [Sym("date")]]) == (14, [1, -2**31])
        assert raw_vector(c, [CALL, Sym("make"), [Sym("month")]]) == (13, [2])
        assert raw_vector(c, [CALL, Sym("make"), [Sym("ts")]]) == (12, [-10957 * 86400 * ns, -2**63])
        assert raw_vector(c, [CALL, Sym("make"), [Sym("tsus")]]) == (12, [ns])
        assert raw_vector(c, [CALL, Sym("make"), [Sym("span")]]) == (16, [1500, -2**63])
        assert raw_vector(c, [CALL, Sym("make"), [Sym("minute")]]) == (17, [61])
        assert raw_vector(c, [CALL, Sym("make"), [Sym("second")]]) == (18, [61])
        assert raw_vector(c, [CALL, Sym("make"), [Sym("time")]]) == (19, [61])
        assert raw_vector(c, [CALL, Sym("make"), [Sym("pydt")]]) == (12, [ns])
        # other results
        define(c, "res", "def res(k):\n    import numpy as np, pandas as pd\n    return {\n"
               "      'none': None, 'bytes': b'ab', 'list': [1, 2, 3], 'mixed': [1, 'a'],\n"
               "      'strs': np.array(['x', 'y'], dtype=object), 'i32': np.int32(7),\n"
               "      'table': {'a': np.arange(3), 'b': np.ones(3)},\n"
               "      'dict': {'a': [1, 2], 'b': 3},\n"
               "      'frame': pd.DataFrame({'s': ['x', 'y'], 'v': [1.5, 2.5]}),\n"
               "      'keyed': pd.DataFrame({'s': ['x', 'y'], 'v': [1.5, 2.5]}).set_index('s'),\n"
               "      'cat': pd.Series(['a', 'b', 'a'], dtype='category'),\n"
               "    }[k]\n")
        assert call(c, "res", Sym("none")) == Identity()
        assert call(c, "res", Sym("bytes")) == b"ab"
        assert call(c, "res", Sym("list")) == Vec("j", [1, 2, 3])
        assert call(c, "res", Sym("mixed")) == [1, Sym("a")]
        assert call(c, "res", Sym("strs")) == Vec("s", ["x", "y"])
        assert call(c, "res", Sym("i32")) == 7
        assert raw_call(c, [CALL, Sym("res"), [Sym("i32")]])[0] == -6
        assert call(c, "res", Sym("table")) == Table({"a": Vec("j", [0, 1, 2]), "b": Vec("f", [1.0, 1.0, 1.0])})
        assert call(c, "res", Sym("dict")) == {"a": Vec("j", [1, 2]), "b": 3}
        assert call(c, "res", Sym("frame")) == Table({"s": Vec("s", ["x", "y"]), "v": Vec("f", [1.5, 2.5])})
        k = call(c, "res", Sym("keyed"))
        assert k.keys == Table({"s": Vec("s", ["x", "y"])}) and k.values == Table({"v": Vec("f", [1.5, 2.5])}), k
        assert call(c, "res", Sym("cat")) == Vec("s", ["a", "b", "a"])


def test_pandas_when_asked():
    with Server() as s, Conn(port=s.port) as c:
        t = Table({"sym": Vec("s", ["a", "b", "a"]), "px": Vec("f", [1.0, 2.0, 3.0])})
        define(c, "by_ann", "def by_ann(t: 'pd.DataFrame'):\n    return type(t).__name__ + str(t['sym'].dtype)\n")
        # symbols as str, as PyKX's .pd() gives them; Categoricals when asked
        assert call(c, "by_ann", t) == Sym("DataFrameobject")
        c.call([DEF, Sym("by_cat"), "def by_cat(t):\n    return type(t).__name__ + str(t['sym'].dtype)\n",
                {"pandas": True, "categorical": True}])
        assert call(c, "by_cat", t) == Sym("DataFramecategory")
        c.call([DEF, Sym("by_opt"), "def by_opt(t):\n    return t.groupby('sym', observed=True)['px'].sum()"
                ".reset_index()\n", {"pandas": True}])
        assert call(c, "by_opt", t) == Table({"sym": Vec("s", ["a", "b"]), "px": Vec("f", [4.0, 2.0])})


# ------------------------------------------------------------ the data boundary
# Databases made by `qpeach db import` in a temp folder, served with
# `qpeach serve --db`; what a function sees is compared with pandas reading
# the same CSV.

def _db(text, types, table="t"):
    """(csv path, db path): text written as a CSV and imported as table."""
    d = tmpdir()
    csv, db = os.path.join(d, table + ".csv"), os.path.join(d, "db")
    with open(csv, "w") as f:
        f.write(text)
    r = harness.qpeach("db", "import", csv, db, table, "--types", types)
    assert r.returncode == 0, r.stderr
    return csv, db


CHARFN = """
import numpy as np
def cols():
    t = qtable('t')
    s = t['side']
    return [str(s.dtype), [c.decode() for c in s.tolist()], len(s) == len(t['x'])]
def pdcols():
    df = qtable('t', pandas=True)
    return [str(df['side'].dtype), list(df['side'])]
def whole():
    return qtable('t')
def whole_pd():
    df = qtable('t', pandas=True)
    return df[df['x'] > 1]
def part(t):
    return {'side': t['side'], 'n': np.arange(len(t['side']))}
"""


def test_char_column_one_item_per_row():
    """A q char column (type C) is one char per row: an S1 array (a view,
    as PyKX's .np()), a pandas column of one-char strings, and back a C
    column; a bare char vector stays a str."""
    import pandas as pd
    csv, db = _db("side,x\nB,1\nS,2\nB,3\n", "CJ")
    want = pd.read_csv(csv, dtype={"side": str})
    with Server("--db", db) as s, Conn(port=s.port) as c:
        for f in ("cols", "pdcols", "whole", "whole_pd", "part"):
            define(c, f, CHARFN)
        assert call(c, "cols") == [Sym("|S1"), Vec("s", want["side"].tolist()), True]
        assert call(c, "pdcols") == [Sym("object"), Vec("s", want["side"].tolist())]
        assert call(c, "whole") == Table({"side": "".join(want["side"]), "x": Vec("j", want["x"].tolist())})
        rest = want[want["x"] > 1]
        assert call(c, "whole_pd") == Table({"side": "".join(rest["side"]), "x": Vec("j", rest["x"].tolist())})
        # a partition of the table, as a job's function gets it
        got = c.call([Sym(".qp.apply"), Sym("part"), Sym("t"), Vec("j", [1, 3])])
        assert got == Table({"side": "".join(want["side"][1:3]), "n": Vec("j", [0, 1])}), got
        define(c, "kind", "def kind(x):\n    return type(x).__name__\n")
        assert call(c, "kind", "BSB") == Sym("str")       # not a column: one str


TSFN = """
import numpy as np
def ts():
    return qtable('t')['ts'].astype('i8').tolist()
def ts_pd():
    df = qtable('t', pandas=True)
    return [str(df['ts'].dtype), [str(v) for v in df['ts']]]
def whole():
    return qtable('t')
def whole_pd():
    return qtable('t', pandas=True)
def first(t):
    return str(t['ts'][0])
"""


def test_timestamps_beyond_numpy_fail_naming_column_and_row():
    """q timestamps run to 2292, numpy's datetime64[ns] to 2262: a stored
    2280.01.01 must not wrap to 1695; the conversion fails naming the
    column and the row. q's infinities are numpy's (and pandas') largest and
    smallest datetime64[ns], and go back as infinities."""
    big = np.datetime64("2280-01-01", "s")
    assert big.astype("M8[ns]").astype("M8[s]") != big     # numpy cannot hold it in ns
    csv, db = _db("ts,x\n2020.01.01D00:00:00,1\n2280.01.01D00:00:00,2\n", "PJ")
    with Server("--db", db) as s, Conn(port=s.port) as c:
        for f in ("ts", "ts_pd", "first"):
            define(c, f, TSFN)
        for f in ("ts", "ts_pd"):
            e = expect_error(lambda: call(c, f), "column ts", "row 1", "2280.01.01")
            assert "1695" not in e, e
        # rows that fit still convert (a partition of row 0 only)
        got = c.call([Sym(".qp.apply"), Sym("first"), Sym("t"), Vec("j", [0, 1])])
        assert got == Sym(str(np.datetime64("2020-01-01T00:00:00", "ns"))), got
    top = np.iinfo(np.int64).max
    csv, db = _db("ts,x\n0W,1\n-0W,2\n,3\n2262.04.11D23:47:16.854775806,4\n"
                  "1707.09.23D00:00:00,5\n", "PJ")
    with Server("--db", db) as s, Conn(port=s.port) as c:
        for f in ("ts", "ts_pd", "whole", "whole_pd"):
            define(c, f, TSFN)
        edge = [np.datetime64(top - 1, "ns"), np.datetime64("1707-09-23T00:00:00", "ns")]
        assert call(c, "ts") == Vec("j", [top, -top, -top - 1] + [int(v.astype("i8")) for v in edge])
        import pandas as pd
        got = call(c, "ts_pd")
        assert got == ["datetime64[ns]", Vec("s", [str(pd.Timestamp.max), str(pd.Timestamp.min), "NaT"]
                                                  + [str(pd.Timestamp(v)) for v in edge])], got
        q = [top, -top, -top - 1] + [int(v.astype("i8")) - 946684800 * 10**9 for v in edge]
        for f in ("whole", "whole_pd"):
            assert call(c, f).cols["ts"] == Vec("p", q), f


def test_python_temporals_beyond_q_fail_naming_column_and_row():
    """Python -> q: datetime64[s] 2300 (beyond q's 2292) must not become
    1715, datetime(1650, 1, 1) not 2234, a 200,000-day timedelta not a
    negative timespan: each fails naming column (or item) and row. 2280 in
    seconds is a q timestamp. q datetime infinities come back infinite."""
    with Server() as s, Conn(port=s.port) as c:
        define(c, "out", "def out(k):\n    import numpy as np, datetime\n    return {\n"
               "      's2300': {'ts': np.array(['2020-01-01', '2300-01-01'], 'M8[s]'), 'x': np.arange(2)},\n"
               "      'py1650': [datetime.datetime(2020, 1, 1), datetime.datetime(1650, 1, 1)],\n"
               "      'td': {'span': np.array([1, 200000], 'm8[D]')},\n"
               "      'pytd': datetime.timedelta(days=200000),\n"
               "      's2280': np.array(['2280-01-01'], 'M8[s]'),\n"
               "      'ns1700': np.array(['2020-01-01', '1700-01-01'], 'M8[ns]'),\n"
               "    }[k]\n")
        e = expect_error(lambda: call(c, "out", Sym("s2300")), "column ts", "row 1", "2300-01-01")
        assert "1715" not in e, e
        e = expect_error(lambda: call(c, "out", Sym("py1650")), "item 1", "1650-01-01")
        assert "2234" not in e, e
        expect_error(lambda: call(c, "out", Sym("td")), "column span", "row 1", "200000")
        expect_error(lambda: call(c, "out", Sym("pytd")), "timespan")
        expect_error(lambda: call(c, "out", Sym("ns1700")), "item 1", "1700-01-01")
        want = int((np.datetime64("2280-01-01", "s") - np.datetime64("2000-01-01", "s")).astype("i8")) * 10**9
        assert call(c, "out", Sym("s2280")) == Vec("p", [want])
        # datetime (z) infinities and null: numpy's extremes and NaT, then
        # q's timestamp infinities and null (datetime64[ms] is a timestamp)
        define(c, "ident", "def ident(x):\n    return x\n")
        inf = float("inf")
        top = np.iinfo(np.int64).max
        assert call(c, "ident", Vec("z", [inf, -inf, float("nan")])) == Vec("p", [top, -top, -top - 1])


NULLFN = """
import numpy as np
def pdnulls():
    df = qtable('t', pandas=True)
    return [str(df['size'].dtype), df['size'].isna().tolist(), int(df['size'].sum()),
            df['sym'].isna().tolist(), df['ts'].isna().tolist(), float(df['price'].sum())]
def npnulls():
    t = qtable('t')
    return [t['size'].tolist(), t['sym'].tolist()]
def whole_pd():
    return qtable('t', pandas=True)
"""


def test_pandas_nulls_are_missing_values():
    """With pandas, q's integer, temporal and symbol nulls are pandas'
    missing values (nullable Int64, NaT, NaN), as pandas reads the same
    CSV; the numpy path keeps q's values; a DataFrame goes back with q's
    nulls."""
    import pandas as pd
    text = ("sym,price,size,ts\nA,10.5,100,2024.01.02D09:30:00\n,11.0,,2024.01.02D09:31:00\n"
            "B,,300,\nA,12.0,50,2024.01.02D09:33:00\n")
    csv, db = _db(text, "SFJP")
    want = pd.read_csv(csv)
    with Server("--db", db) as s, Conn(port=s.port) as c:
        for f in ("pdnulls", "npnulls", "whole_pd"):
            define(c, f, NULLFN)
        got = call(c, "pdnulls")
        assert got[0] == Sym("Int64"), got
        assert got[1] == Vec("b", want["size"].isna().tolist()), got
        assert got[2] == int(want["size"].sum()), got
        assert got[3] == Vec("b", want["sym"].isna().tolist()), got
        assert got[4] == Vec("b", want["ts"].isna().tolist()), got
        assert abs(got[5] - want["price"].sum()) < 1e-9, got
        lo = np.iinfo(np.int64).min
        sizes = [lo if v != v else int(v) for v in want["size"]]
        assert call(c, "npnulls") == [Vec("j", sizes), Vec("s", want["sym"].fillna("").tolist())]
        back = call(c, "whole_pd").cols
        assert back["size"] == Vec("j", sizes) and back["sym"] == Vec("s", want["sym"].fillna("").tolist())
        assert back["ts"].items[2] == lo, back


# ------------------------------------------------------------ tables

def test_apply_on_1m_rows_against_numpy():
    n = 1_000_000
    rng = np.random.default_rng(7)
    syms = np.array(["ibm", "msft", "aapl", "goog"])[rng.integers(0, 4, n)]
    px = np.round(rng.uniform(10, 200, n), 2)
    sz = rng.integers(1, 1000, n)
    t = Table({"sym": Vec("s", syms.tolist()), "price": Vec("f", px.tolist()), "size": Vec("j", sz.tolist())})
    with Server(ready_timeout=60) as s, Conn(port=s.port, timeout=120) as c:
        c.call([Sym(".qp.set"), Sym("trade"), t])
        define(c, "vwap", "def vwap(t):\n    p, z = t['price'], t['size']\n"
                          "    return [float((p * z).sum() / z.sum()), int(len(p)), bool(p.flags.writeable)]\n")
        got = c.call([Sym(".qp.apply"), Sym("vwap"), Sym("trade"), Vec("j", [250_000, 750_000])])
        sl = slice(250_000, 750_000)
        want = float((px[sl] * sz[sl]).sum() / sz[sl].sum())
        assert got[1] == 500_000 and abs(got[0] - want) < 1e-9 * want and got[2] is False, (got, want)
        got = c.call([Sym(".qp.apply"), Sym("vwap"), Sym("trade"), [Sym("sym"), Sym("ibm")]])
        m = syms == "ibm"
        want = float((px[m] * sz[m]).sum() / sz[m].sum())
        assert got[1] == int(m.sum()) and abs(got[0] - want) < 1e-9 * want, (got, want)
        expect_error(lambda: c.call([Sym(".qp.apply"), Sym("vwap"), Sym("nope"), Vec("j", [0, 1])]), "nope")
        expect_error(lambda: c.call([Sym(".qp.apply"), Sym("vwap"), Sym("trade"), [Sym("zz"), Sym("a")]]), "zz")


CATFN = """
import numpy as np
def by_sym(t):
    s = t['sym']
    codes = np.asarray(s.codes)
    names = [str(c) for c in s.categories]
    pv = np.bincount(codes, weights=t['price'] * t['size'], minlength=len(names))
    sz = np.bincount(codes, weights=t['size'], minlength=len(names))
    return {'sym': names, 'pv': pv, 'size': sz, 'base': base(s, t['i'][0] if len(codes) else 0)}
def base(s, first):
    # address of row 0 of the codes this slice views: one value for every
    # slice of one column when they share its codes
    c = s.codes
    return int(c.__array_interface__['data'][0] - int(first) * c.itemsize)
def resident(a, b):
    return by_sym(qtable('trade', (a, b), categorical=True))
def frame(t):
    g = t.groupby('sym', observed=True)['size'].sum()
    return {'sym': [str(k) for k in g.index], 'size': g.to_numpy().astype(float)}
"""


def _want(syms, px, sz, a, b):
    out = {}
    for k in np.unique(syms[a:b]):
        m = syms[a:b] == k
        out[str(k)] = (float((px[a:b][m] * sz[a:b][m]).sum()), float(sz[a:b][m].sum()))
    return out


def _v(x):
    return x.items if isinstance(x, Vec) else x


def _got(r):
    return {str(k): (float(p), float(z)) for k, p, z in zip(_v(r["sym"]), _v(r["pv"]), _v(r["size"])) if z}


def _table(rng, n, names):
    syms = np.array(names)[rng.integers(0, len(names), n)]
    px = np.round(rng.uniform(10, 200, n), 2)
    sz = rng.integers(1, 1000, n)
    t = Table({"sym": Vec("s", syms.tolist()), "price": Vec("f", px.tolist()),
               "size": Vec("j", sz.tolist()), "i": Vec("j", list(range(n)))})
    return t, syms, px, sz


def _close(got, want):
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for k, (p, z) in want.items():
        assert abs(got[k][0] - p) <= 1e-9 * p and got[k][1] == z, (k, got[k], (p, z))


def test_apply_categorical_resident_against_numpy():
    """.qp.apply with categorical over a resident table: every slice views
    one codes array per column (same base for every task and for qtable),
    sums by sym equal numpy's; a replaced global gets its own codes."""
    n = 200_000
    rng = np.random.default_rng(11)
    t, syms, px, sz = _table(rng, n, ["ibm", "msft", "aapl", "goog", ""])
    with Server(ready_timeout=60) as s, Conn(port=s.port, timeout=120) as c:
        c.call([Sym(".qp.set"), Sym("trade"), t])
        c.call([DEF, Sym("by_sym"), CATFN, {"categorical": True}])
        define(c, "resident", CATFN)
        bases = set()
        for a, b in ((0, 50_000), (50_000, 120_000), (120_000, n), (7, 7)):
            r = c.call([Sym(".qp.apply"), Sym("by_sym"), Sym("trade"), Vec("j", [a, b])])
            _close(_got(r), _want(syms, px, sz, a, b))
            if b > a:
                bases.add(r["base"])
        r = call(c, "resident", 1000, 3000)
        _close(_got(r), _want(syms, px, sz, 1000, 3000))
        bases.add(r["base"])
        assert len(bases) == 1, bases
        # pandas mode over the same resident table: the null symbol is
        # pandas' missing value, which groupby leaves out, as pandas does
        c.call([DEF, Sym("frame"), CATFN, {"pandas": True}])
        r = c.call([Sym(".qp.apply"), Sym("frame"), Sym("trade"), Vec("j", [10, 90_000])])
        want = _want(syms, px, sz, 10, 90_000)
        assert dict(zip(map(str, _v(r["sym"])), _v(r["size"]))) == {k: v[1] for k, v in want.items() if k}, r
        # replace the global: new symbols, same shape; nothing stale served
        t2, syms2, px2, sz2 = _table(rng, n, ["x%d" % i for i in range(300)])
        c.call([Sym(".qp.set"), Sym("trade"), t2])
        for a, b in ((0, 50_000), (150_000, n)):
            r = c.call([Sym(".qp.apply"), Sym("by_sym"), Sym("trade"), Vec("j", [a, b])])
            _close(_got(r), _want(syms2, px2, sz2, a, b))


def test_load_and_serve_load():
    d = tmpdir()
    path = os.path.join(d, "t.csv")
    with open(path, "w") as f:
        f.write("sym,px,n\nibm,1.5,1\nmsft,2.5,2\nibm,3.5,3\n")
    with Server("--load", f"t={path}") as s, Conn(port=s.port) as c:
        define(c, "total", "def total(t):\n    return float(t['px'].sum())\n")
        assert c.call([Sym(".qp.apply"), Sym("total"), Sym("t"), [Sym("sym"), Sym("ibm")]]) == 5.0
        define(c, "resident", "def resident(a, b):\n    t = qtable('t', (a, b))\n    return float(t['px'].sum())\n")
        assert call(c, "resident", 1, 3) == 6.0
        assert c.call([Sym(".qp.load"), Sym("u"), path]) == Sym("u")
        assert c.call([Sym(".qp.apply"), Sym("total"), Sym("u"), Vec("j", [0, 2])]) == 4.0
        expect_error(lambda: c.call([Sym(".qp.load"), Sym("v"), os.path.join(d, "missing.csv")]), "missing.csv")


# ------------------------------------------------------------ peach

def test_peach_threads():
    with Server("-s", "2") as s, Conn(port=s.port) as c:
        define(c, "sq", "def sq(x):\n    import numpy\n    return int(numpy.int64(x) ** 2)\n")
        items = list(range(50))
        assert c.call([Sym(".qp.peach"), Sym("sq"), Vec("j", items)]) == Vec("j", [i * i for i in items])
        define(c, "shape", "def shape(x):\n    return [len(x), float(x.sum())]\n")
        got = c.call([Sym(".qp.peach"), Sym("shape"), [Vec("f", [1.0, 2.0]), Vec("f", [3.0])]])
        assert got == [[2, 3.0], [1, 3.0]], got
        define(c, "bad", "def bad(x):\n    if x == 3:\n        raise ValueError('three')\n    return x\n")
        expect_error(lambda: c.call([Sym(".qp.peach"), Sym("bad"), Vec("j", [1, 2, 3, 4])]), "ValueError", "three")
        assert c.call([Sym(".qp.peach"), Sym("sq"), Vec("j", [])]) == []


def test_peach_processes_and_children_die_with_parent():
    s = Server("-s", "-2", ready_timeout=60)
    try:
        with Conn(port=s.port, timeout=60) as c:
            assert c.call([Sym(".qp.import"), {"np": Sym("numpy")}]) == Vec("s", ["np"])
            define(c, "work", "def work(x):\n    import os\n    return [int(np.int64(x) * 2), os.getpid()]\n")
            got = c.call([Sym(".qp.peach"), Sym("work"), Vec("j", list(range(40)))])
            # each [x*2, pid] collapses to a long vector, as in q
            assert [g.items[0] for g in got] == [2 * i for i in range(40)], got
            pids = {g.items[1] for g in got}
            assert s.proc.pid not in pids and 1 <= len(pids) <= 2, pids
            expect_error(lambda: c.call([Sym(".qp.peach"), Sym("nope"), Vec("j", [1])]), "nope")
    finally:
        os.kill(s.proc.pid, signal.SIGKILL)
        s.stop()

    def gone():
        return all(not os.path.exists(f"/proc/{p}") or
                   open(f"/proc/{p}/stat").read().split()[2] == "Z" for p in pids)
    assert wait_for(gone, timeout=10), pids


def process_children(pid):
    """Every live (not zombie) child of pid, from all its threads."""
    kids = children(pid)
    return sorted(k for k in kids if os.path.exists(f"/proc/{k}") and
                  open(f"/proc/{k}/stat").read().split()[2] != "Z")


def n_workers(s, n):
    assert wait_for(lambda: len(process_children(s.proc.pid)) == n, timeout=60), process_children(s.proc.pid)
    return process_children(s.proc.pid)


PEACH = Sym(".qp.peach")

KILLER = """def killer(x):
    import os
    if x == 7 and not os.path.exists(MARKER):
        open(MARKER, 'w').close()
        os.kill(os.getpid(), 9)
    if x == 11 and not os.path.exists(MARKER + '2'):
        open(MARKER + '2', 'w').close()
        os._exit(3)
    return [int(np.int64(x) * 3 + len(qtable('t')['px'])), os.getpid()]
"""


def test_peach_processes_restart_a_dead_worker_and_requeue_its_item():
    d = tmpdir()
    csv = os.path.join(d, "t.csv")
    with open(csv, "w") as f:
        f.write("sym,px\nibm,1.5\nmsft,2.5\n")
    marker = os.path.join(d, "died")
    with Server("-s", "-2", "--load", f"t={csv}", ready_timeout=60) as s, \
            Conn(port=s.port, timeout=120) as c:
        assert c.call([Sym(".qp.import"), {"np": Sym("numpy")}]) == Vec("s", ["np"])
        define(c, "killer", KILLER.replace("MARKER", repr(marker)))
        first = n_workers(s, 2)
        got = c.call([PEACH, Sym("killer"), Vec("j", list(range(30)))])
        # item 7 killed one worker (SIGKILL), item 11 one (exit 3): both ran again
        assert os.path.exists(marker) and os.path.exists(marker + "2")
        assert [g.items[0] for g in got] == [3 * i + 2 for i in range(30)], got
        after = n_workers(s, 2)
        assert len(set(after) - set(first)) >= 1, (first, after)
        # the restarted workers have the table, numpy and the function, and
        # pid-for-pid the results came from live workers of this server
        got = c.call([PEACH, Sym("killer"), Vec("j", list(range(40)))])
        assert [g.items[0] for g in got] == [3 * i + 2 for i in range(40)], got
        assert {g.items[1] for g in got} <= set(after), (got, after)
        assert n_workers(s, 2) == after


def test_peach_processes_give_up_on_an_item_that_always_kills():
    with Server("-s", "-2", ready_timeout=60) as s, Conn(port=s.port, timeout=120) as c:
        define(c, "doom", "def doom(x):\n    import os\n    if x == 4:\n        os.kill(os.getpid(), 9)\n"
                          "    return x\n")
        expect_error(lambda: c.call([PEACH, Sym("doom"), Vec("j", list(range(10)))]),
                     "item 4", "killed its worker process 3 times", "killed by signal 9")
        n_workers(s, 2)
        assert c.call([PEACH, Sym("doom"), Vec("j", [1, 2, 3])]) == Vec("j", [1, 2, 3])


def test_peach_processes_see_qp_set_globals():
    with Server("-s", "-2", ready_timeout=60) as s, Conn(port=s.port, timeout=120) as c:
        assert c.call([Sym(".qp.set"), Sym("k"), 42]) == Sym("k")
        define(c, "rd", "def rd(x):\n    return qget('k') + x\n")
        define(c, "where", "def where(x):\n    import os\n    return os.getpid()\n")
        assert c.call([PEACH, Sym("rd"), Vec("j", [1, 2, 3])]) == Vec("j", [43, 44, 45])
        assert c.call([Sym(".qp.set"), "k", 50]) == Sym("k")     # a string name, a new value
        assert c.call([Sym(".qp.get"), Sym("k")]) == 50
        assert c.call([PEACH, Sym("rd"), Vec("j", [1, 2])]) == Vec("j", [51, 52])
        assert c.call([Sym(".qp.set"), Sym("v"), Vec("f", [1.5, 2.5])]) == Sym("v")
        define(c, "vs", "def vs(x):\n    return float(qget('v').sum()) * x\n")
        assert c.call([PEACH, Sym("vs"), Vec("j", [1, 2])]) == Vec("f", [4.0, 8.0])
        define(c, "miss", "def miss(x):\n    return qget('nope')\n")
        expect_error(lambda: c.call([PEACH, Sym("miss"), Vec("j", [1])]), "KeyError", "nope")
        # a worker killed between calls comes back with the latest k
        kids = n_workers(s, 2)
        os.kill(kids[0], signal.SIGKILL)
        assert wait_for(lambda: kids[0] not in process_children(s.proc.pid), timeout=10)
        got = c.call([PEACH, Sym("rd"), Vec("j", list(range(20)))])
        assert got == Vec("j", [50 + i for i in range(20)]), got
        assert len(n_workers(s, 2)) == 2
        assert set(c.call([PEACH, Sym("where"), Vec("j", list(range(20)))]).items) <= set(n_workers(s, 2))
    with Server() as s, Conn(port=s.port) as c:     # no workers: the built-in, and qget
        assert c.call([Sym(".qp.set"), Sym("k"), 7]) == Sym("k")
        define(c, "rd", "def rd(x):\n    return qget('k') + x\n")
        assert call(c, "rd", 1) == 8


# ------------------------------------------------------------ timeout

def test_timeout_cuts_off_a_runaway_call():
    with Server("--timeout", "300") as s, Conn(port=s.port) as c:
        define(c, "spin", "def spin():\n    while True:\n        pass\n")
        define(c, "nap", "def nap():\n    import time\n    time.sleep(60)\n")
        define(c, "sly", "def sly():\n    while True:\n        try:\n            while True:\n                pass\n"
                         "        except Exception:\n            pass\n")
        for f in ("spin", "nap", "sly"):
            expect_error(lambda: call(c, f), "timeout", f)
        # The README's `except qpeach.Timeout:` works inside a function.
        mark = os.path.join(tmpdir(), "cleaned")
        define(c, "tidy", "import qpeach\ndef tidy():\n    try:\n        while True:\n            pass\n"
                          f"    except qpeach.Timeout:\n        open({mark!r}, 'w').close()\n        raise\n")
        expect_error(lambda: call(c, "tidy"), "timeout", "tidy")
        assert os.path.exists(mark)
        define(c, "ok", "def ok():\n    return 1\n")
        assert call(c, "ok") == 1
        assert c.call([Sym(".qp.timeout"), 0]) == 300
        assert c.call([Sym(".qp.timeout"), Identity()]) == 0
