"""Property test (issue 22) and what it found: values through CSV -> db ->
Python -> merge -> output formats, checked against the source.
"""
import os
import subprocess

import qipc
from harness import QPEACH, qpeach, tmpdir


# ---- what the property test found, one test each

REG_FNS = '''
import numpy as np

def ident(t):
    return t

def checked(t):
    """The table as the function gets it: a dict of numpy arrays."""
    bad = {k: type(v).__name__ for k, v in t.items() if not isinstance(v, np.ndarray)}
    if bad:
        raise TypeError(f"columns that are not numpy arrays: {bad}")
    return t

def firsts(t):
    return np.asarray(t["j"][:1])

def kj(t):
    return {"k": t["k"], "j": t["j"], "f": t["f"]}

def one_column(t):
    return {"k": t["k"]}

def floats(t):
    return np.array([1.5, np.nan, 2.5])
'''


def reg_db(d, csv_text, types, name="s"):
    with open(os.path.join(d, "r.csv"), "w") as f:
        f.write(csv_text)
    with open(os.path.join(d, "fns.py"), "w") as f:
        f.write(REG_FNS)
    r = qpeach("db", "import", os.path.join(d, "r.csv"), os.path.join(d, "db"), name,
               "--types", types)
    assert r.returncode == 0, r.stderr


def reg_run(d, fn, body, out="out.qipc", fmt=None):
    ini = os.path.join(d, "r.ini")
    with open(ini, "w") as f:
        f.write(f"[job]\nfunction = fns.py:{fn}\n{body}[workers]\nlocal = 1\n"
                f"[output]\npath = {out}\n" + (f"format = {fmt}\n" if fmt else ""))
    r = subprocess.run([QPEACH, "run", "--quiet", ini], capture_output=True, text=True, timeout=120)
    if r.returncode or not out.endswith(".qipc"):
        return r, None
    with open(os.path.join(d, out), "rb") as f:
        return r, qipc.decode(f.read())


def test_string_columns_reach_python_as_arrays_and_keep_the_table():
    """A string column (q's nested char vectors, `*` in --types) reaches a
    function as a numpy object array of str, like every other column, so
    returning the table returns a table (strings as symbols). It came as a
    Python list: the function's dict was no table, and the partials were
    concatenated into a general list of dicts with exit 0."""
    d = tmpdir()
    reg_db(d, 'k,str,f\na,"x,y",1.5\nb,,-0.0\na,hello,2\n', "S*F")
    r, v = reg_run(d, "checked", "[input]\ndb = db\ntable = s\n[partition]\npieces = 2\n")
    assert r.returncode == 0, r.stderr
    assert v == qipc.Table({"k": qipc.Vec("s", ["a", "b", "a"]),
                            "str": qipc.Vec("s", ["x,y", "", "hello"]),
                            "f": qipc.Vec("f", [1.5, -0.0, 2.0])}), v


def test_symbols_categorical_and_codes_go_back_as_symbol_columns():
    """With [job] symbols = categorical (pandas Categorical columns) or
    codes (SymbolCodes), a function returning the table it got returns a
    table: Categorical columns made a dict and a general list of partials
    with exit 0, SymbolCodes failed to convert."""
    d = tmpdir()
    reg_db(d, "k,j\nb,1\na,2\nb,3\n", "SJ")
    for mode in ("categorical", "codes"):
        r, v = reg_run(d, "ident", f"symbols = {mode}\n[input]\ndb = db\ntable = s\n"
                       "[partition]\npieces = 2\n")
        assert r.returncode == 0, (mode, r.stderr)
        assert v == qipc.Table({"k": qipc.Vec("s", ["b", "a", "b"]),
                                "j": qipc.Vec("j", [1, 2, 3])}), (mode, v)


def test_an_empty_table_comes_back_an_empty_table():
    """A table of no rows through a function that returns it: an empty
    table with its columns' types (the symbol column was an empty general
    list, the result a list holding a dict, with exit 0)."""
    d = tmpdir()
    reg_db(d, "k,f,str\n", "SF*")
    r, v = reg_run(d, "ident", "[input]\ndb = db\ntable = s\n")
    assert r.returncode == 0, r.stderr
    assert v == qipc.Table({"k": qipc.Vec("s", []), "f": qipc.Vec("f", []),
                            "str": qipc.Vec("s", [])}), v


def test_long_sums_beyond_q_longs_fail_loudly():
    """sum and sum-by-key of long columns: a sum beyond q's longs (past 0W,
    or onto -0W - 1, the null) fails the run naming the column (and the
    key) instead of wrapping around with exit 0; one that only passes 0W
    on the way and ends inside is exact."""
    d = tmpdir()
    big = 2**63 - 1
    reg_db(d, f"k,j,f\na,{big},1\nb,5,2\na,1,3\nb,-3,4\nc,{big},5\nc,-5,6\nc,1,7\n", "SJF")
    part = "[input]\ndb = db\ntable = s\n[partition]\nby = column\ncolumn = k\n"
    r, _ = reg_run(d, "kj", part + "[merge]\nhow = sum-by-key\nkey = k\n")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "column j" in r.stderr and "`a" in r.stderr and "long" in r.stderr, r.stderr
    r, _ = reg_run(d, "firsts", part + "[merge]\nhow = sum\n")       # 0W + 5 + 0W
    assert r.returncode == 1 and "sum" in r.stderr and "long" in r.stderr, r.stderr
    # c alone: 0W - 5 + 1 passes nothing; b: 5 - 3
    reg_db(d, f"k,j,f\nc,{big},1\nc,1,2\nc,-5,3\nb,5,4\nb,-3,5\n", "SJF")
    r, v = reg_run(d, "kj", part + "[merge]\nhow = sum-by-key\nkey = k\n")
    assert r.returncode == 0, r.stderr
    assert v == qipc.Table({"k": qipc.Vec("s", ["b", "c"]), "j": qipc.Vec("j", [2, big - 4]),
                            "f": qipc.Vec("f", [9.0, 6.0])}), v


def test_one_column_csv_keeps_its_null_rows():
    """A result of one column (a vector, or a table of one column) with
    nulls, written as CSV: a null row is `""`, not a blank line, which
    pandas' read_csv (and most readers) skip, so the rows read back are
    the rows written (3 came back as 2)."""
    import pandas as pd
    d = tmpdir()
    reg_db(d, "k,j\na,1\n,2\nb,3\n", "SJ")
    for fn, want in (("floats", [1.5, None, 2.5]), ("one_column", ["a", None, "b"])):
        for fmt in ("iso", "q"):
            r, _ = reg_run(d, fn, "[input]\ndb = db\ntable = s\n[partition]\npieces = 1\n",
                           out="o.csv", fmt=fmt)
            assert r.returncode == 0, r.stderr
            got = pd.read_csv(os.path.join(d, "o.csv"), keep_default_na=False, na_values=[""])
            col = got.iloc[:, 0].tolist()
            assert [None if pd.isna(x) else x for x in col] == want, (fn, fmt, col)
