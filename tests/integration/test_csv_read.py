"""The CSV reader never gives a wrong answer silently (issue 22, items 6, 7,
9, 10, 11), through every way a CSV comes in: `qpeach db import`, `serve
--load`, `.qp.load`, a job's `files =`, and (for duplicate columns) a
DataFrame sent by the Python client. Values are compared with pandas
reading the same file."""
import io
import os
import shutil
import sys

import numpy as np
import pandas as pd

import harness
from harness import Server, qpeach, tmpdir
from qipc import Conn, QError, Sym

harness.asan_client_reexec()
sys.path.insert(0, os.path.join(harness.ROOT, "python"))
from qpeach import remote               # noqa: E402

EPOCH = np.datetime64("2000-01-01", "D")


def write(path, text, newline=None):
    with open(path, "w", newline=newline) as f:
        f.write(text)
    return path


def loaded(path, types=None):
    """The table `.qp.load` makes of path on a real server: {column: items}
    and the meta type chars."""
    with Server() as s, Conn(port=s.port) as c:
        args = [Sym(".qp.load"), Sym("t"), path] + ([types] if types else [])
        assert c.call(args) == "t"
        meta = c.call(".qp.meta `t").values.cols["t"]
        return {k: v.items for k, v in c.call(".qp.get `t").cols.items()}, meta


def load_error(path, types=None):
    with Server() as s, Conn(port=s.port) as c:
        try:
            c.call([Sym(".qp.load"), Sym("t"), path] + ([types] if types else []))
        except QError as e:
            return str(e)
    raise AssertionError(f".qp.load accepted {path}")


# ---------------------------------------------------------------- 22.6

def test_duplicate_column_names_fail_naming_the_column():
    d = tmpdir()
    try:
        src = write(f"{d}/dup.csv", "a,a,b\n1,2,3\n4,5,6\n")
        want = f"{src}: column a appears twice in the header (fields 1 and 2)"
        assert want in load_error(src)
        r = qpeach("serve", "-p", "0", "--load", f"t={src}", timeout=30)
        assert r.returncode != 0 and want in r.stderr, (r.returncode, r.stderr)
        r = qpeach("db", "import", src, f"{d}/db", "t")
        assert r.returncode == 1 and want in r.stderr and not os.path.exists(f"{d}/db"), r.stderr
        os.makedirs(f"{d}/daily")
        write(f"{d}/daily/x.csv", "a,b\n1,2\n")
        shutil.copy(src, f"{d}/daily/y.csv")
        write(f"{d}/rows.py", "def rows(t):\n    return len(t['b'])\n")
        job = write(f"{d}/j.ini", "[job]\nname = j\nfunction = rows.py:rows\n[input]\nfiles = daily/*.csv\n"
                                  "[workers]\nlocal = 1\n[merge]\nhow = sum\n[output]\npath = out.csv\n")
        r = qpeach("run", "--quiet", job, timeout=120)
        assert r.returncode in (1, 2), (r.returncode, r.stdout)
        assert "y.csv: column a appears twice in the header" in r.stderr, r.stderr
        # a DataFrame with a repeated column, from the Python client
        df = pd.read_csv(src, header=None, skiprows=1, names=["a", "x", "b"]).rename(columns={"x": "a"})
        assert list(df.columns) == ["a", "a", "b"]
        X = remote._extension()
        try:
            X.dumps(df)
            raise AssertionError("a DataFrame with column a twice was sent")
        except TypeError as e:
            assert "DataFrame column a appears twice" in str(e), e
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------- 22.7

def test_an_all_empty_column_is_float_null():
    d = tmpdir()
    try:
        src = write(f"{d}/e.csv", "k,size,px\n" + "".join(f"{i},,{i}.5\n" for i in range(3000)))
        want = pd.read_csv(src)
        cols, meta = loaded(src)
        assert meta == "jff" and want["size"].dtype == np.float64, meta
        assert np.isnan(np.array(cols["size"])).all() and want["size"].isna().all()
        r = qpeach("db", "import", src, f"{d}/db", "t")
        assert r.returncode == 0, r.stderr
        meta = [l.split() for l in qpeach("db", "info", f"{d}/db").stdout.splitlines() if l.startswith("  ")]
        assert meta == [["k", "j"], ["size", "f"], ["px", "f"]], meta
        # what a function computes over it: numpy's nansum, as pandas'
        with Server("--db", f"{d}/db") as s, Conn(port=s.port) as c:
            size = np.array(c.call(".qp.get `t").cols["size"].items)
        assert np.nansum(size) == want["size"].sum() == 0.0
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------- 22.9

def test_cr_only_line_ends_read_as_lines():
    d = tmpdir()
    try:
        rows = "".join(f"S{i % 7},{i}.25,{i}\r" for i in range(2500))
        for name, text in (("cr", "sym,price,size\r" + rows),
                           ("crlf", ("sym,price,size\r" + rows).replace("\r", "\r\n")),
                           ("mixed", "sym,price,size\n" + rows.replace("\r", "\n", 1000))):
            src = write(f"{d}/{name}.csv", text, newline="")
            want = pd.read_csv(src, dtype={"sym": str})
            assert len(want) == 2500, (name, len(want))
            cols, meta = loaded(src)
            assert meta == "sfj", (name, meta)
            assert cols["sym"] == list(want["sym"]) and np.array_equal(cols["price"], want["price"]), name
            assert cols["size"] == list(want["size"]), name
        src = f"{d}/cr.csv"
        r = qpeach("db", "import", src, f"{d}/db", "t")
        assert r.returncode == 0 and "wrote 2500 rows" in r.stdout, (r.stdout, r.stderr)
        # a bad value names its line in a CR-only file too
        write(src, "a,b\r1,2\r3,x\r", newline="")
        assert f"{src}:3: column b: 'x' is not a long" in load_error(src)
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------- 22.10

def test_a_blank_boolean_is_an_error_unless_the_type_is_given():
    d = tmpdir()
    try:
        src = write(f"{d}/b.csv", "n,ok\n1,true\n2,\n3,false\n")
        msg = f"{src}:3: column ok: a blank in a boolean column: q has no boolean null"
        assert msg in load_error(src)
        r = qpeach("db", "import", src, f"{d}/db", "t")
        assert r.returncode == 1 and msg in r.stderr, r.stderr
        # the same after the sample
        src = write(f"{d}/c.csv", "n,ok\n" + "".join(f"{i},{'true' if i % 2 else 'false'}\n" for i in range(2000)) + "9,\n")
        assert f"{src}:2002: column ok: a blank in a boolean column" in load_error(src)
        # given the type, a blank is false (0b), as q's 0: reads it
        src = write(f"{d}/b.csv", "n,ok\n1,true\n2,\n3,false\n")
        cols, meta = loaded(src, "JB")
        assert meta == "jb" and cols["ok"] == [True, False, False], cols
        want = pd.read_csv(src)["ok"]
        assert list(want[want.notna()]) == [c for c, w in zip(cols["ok"], want) if w == w]
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------- 22.11

def test_integers_beyond_int64_are_ids_not_rounded_floats():
    d = tmpdir()
    try:
        ids = ["12345678901234567890", "12345678901234567891", "99999999999999999999", "-9223372036854775809"]
        src = write(f"{d}/ids.csv", "id,v\n" + "".join(f"{x},{i}\n" for i, x in enumerate(ids)))
        want = pd.read_csv(src, dtype={"id": str})
        cols, meta = loaded(src)
        assert meta == "sj", meta
        assert cols["id"] == list(want["id"]) and len(set(cols["id"])) == 4, cols
        r = qpeach("db", "import", src, f"{d}/db", "t")
        assert r.returncode == 0, r.stderr
        with Server("--db", f"{d}/db") as s, Conn(port=s.port) as c:
            assert c.call(".qp.get `t").cols["id"].items == list(want["id"])
        # a long column meeting one: an error naming it, never a rounded float
        src = write(f"{d}/n.csv", "id\n" + "".join(f"{i}\n" for i in range(1500)) + ids[0] + "\n")
        assert f"{src}:1502: column id: '{ids[0]}' is not a long" in load_error(src)
        # given as floats, they are floats (asked for)
        cols, meta = loaded(f"{d}/ids.csv", "FJ")
        assert meta == "fj" and cols["id"][0] == float(ids[0])
    finally:
        shutil.rmtree(d)
