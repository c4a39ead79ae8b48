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
'''


def reg_db(d, csv_text, types, name="s"):
    with open(os.path.join(d, "r.csv"), "w") as f:
        f.write(csv_text)
    with open(os.path.join(d, "fns.py"), "w") as f:
        f.write(REG_FNS)
    r = qpeach("db", "import", os.path.join(d, "r.csv"), os.path.join(d, "db"), name,
               "--types", types)
    assert r.returncode == 0, r.stderr


def reg_run(d, fn, body, out="out.qipc"):
    ini = os.path.join(d, "r.ini")
    with open(ini, "w") as f:
        f.write(f"[job]\nfunction = fns.py:{fn}\n{body}[workers]\nlocal = 1\n"
                f"[output]\npath = {out}\n")
    r = subprocess.run([QPEACH, "run", "--quiet", ini], capture_output=True, text=True, timeout=120)
    if r.returncode:
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
