"""A job's CSV output, in its default `format = iso`, is another job's
CSV input: what the writer writes, the reader's type inference reads back
as the same values (ISO months as months, ISO 8601 durations as
timespans, hh:mm:ss as seconds, hh:mm:ss.fff as times), through real
`qpeach run` processes. Values are checked against pandas reading the
first job's output."""
import os
import shutil

import numpy as np
import pandas as pd

from harness import tmpdir
from test_run import run, write

IDENT = "def ident(t):\n    return t\n"

# What the second job's function saw of each column, one row per task: its
# numpy dtype, and the sum of its non-null values as integers of that
# dtype's unit (months since 1970, ns, s, ms, days) or the sum of the
# numbers.
SUMMARY = """import numpy as np
def summary(t):
    out = {}
    for c, v in t.items():
        a = np.asarray(v)
        if a.dtype.kind in 'mM':
            s = sum(int(x) for x in a[~np.isnat(a)].astype('int64'))
        elif a.dtype.kind in 'if':
            s = sum(int(x) for x in a)
        else:
            s = len(a)
        out[c + '_dtype'] = np.array([str(a.dtype)])
        out[c + '_sum'] = np.array([str(s)])       # beyond int64: text
    return out
"""


def source(n, seed):
    """q text for n rows of every temporal type a job can write (about one
    in ten blank: null), and the q types of its columns."""
    rng = np.random.default_rng(seed)
    blank = lambda: rng.random() < 0.1

    def col(make):
        return ["" if blank() else make() for _ in range(n)]

    def clock(s, frac=None):
        sign = "-" if s < 0 else ""
        s = abs(s)
        text = f"{sign}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
        return text if frac is None else f"{text}.{frac:03d}"

    def span():
        ns = int(rng.integers(-3 * 86400 * 10**9, 3 * 86400 * 10**9))
        s = abs(ns) // 10**9
        return f"{'-' if ns < 0 else ''}{s // 86400}D{clock(s % 86400)}.{abs(ns) % 10**9:09d}"

    cols = {
        "m": ("m", col(lambda: f"{rng.integers(1990, 2030)}.{rng.integers(1, 13):02d}")),
        "n": ("n", col(span)),
        "u": ("u", col(lambda: clock(int(rng.integers(0, 1440)) * 60)[:5])),
        "v": ("v", col(lambda: clock(int(rng.integers(-3600, 86400))))),
        "t": ("t", col(lambda: clock(int(rng.integers(0, 86400)), int(rng.integers(0, 1000))))),
        "d": ("d", col(lambda: f"{rng.integers(1990, 2030)}.{rng.integers(1, 13):02d}."
                              f"{rng.integers(1, 29):02d}")),
        "p": ("p", col(lambda: f"{rng.integers(1990, 2030)}.{rng.integers(1, 13):02d}."
                              f"{rng.integers(1, 29):02d}D" + clock(int(rng.integers(0, 86400)))
                              + f".{int(rng.integers(0, 10**9)):09d}")),
        "x": ("j", [str(int(v)) for v in rng.integers(-10**6, 10**6, n)]),
    }
    return cols


def expected_sums(path):
    """pandas on the first job's output: each column's non-null values as
    integers of the unit numpy gives the q type."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    val = lambda c: df[c][df[c] != ""]
    months = pd.to_datetime(val("m"), format="%Y-%m")
    total = lambda xs: sum(int(x) for x in xs)
    return {
        "m": total((months.dt.year - 1970) * 12 + months.dt.month - 1),
        "n": total(pd.to_timedelta(val("n")).astype("int64")),
        "u": total(pd.to_timedelta(val("u")).astype("int64") // 10**9),   # seconds
        "v": total(pd.to_timedelta(val("v")).astype("int64") // 10**9),
        "t": total(pd.to_timedelta(val("t")).astype("int64") // 10**6),
        "d": total(pd.to_datetime(val("d")).astype("int64") // (86400 * 10**9)),
        "p": total(pd.to_datetime(val("p")).astype("int64")),
        "x": total(val("x").astype("int64")),
    }


WANT_DTYPES = {   # what a column of each written type is read back as
    "m": "datetime64[M]", "n": "timedelta64[ns]",
    "u": "timedelta64[s]",        # a minute written 09:30:00 reads as that second
    "v": "timedelta64[s]", "t": "timedelta64[ms]", "d": "datetime64[D]",
    "p": "datetime64[ns]", "x": "int64",
}


def job(d, name, fn, src, types=None):
    write(d, f"{name}.py", fn)
    return write(d, f"{name}.ini", f"[job]\nname = {name}\nfunction = {name}.py:"
                 f"{'ident' if fn is IDENT else 'summary'}\n[input]\nfile = {src}\n"
                 + (f"types = {types}\n" if types else "")
                 + "[workers]\nlocal = 2\n[output]\n"
                 f"path = {name}.csv\n")


def test_csv_output_reads_back_as_csv_input():
    d = tmpdir()
    cols = source(400, 41)
    src = write(d, "src.csv", ",".join(cols) + "\n" + "".join(
        ",".join(v[i] for _, v in cols.values()) + "\n" for i in range(400)))
    types = "".join(t for t, _ in cols.values())
    r = run(job(d, "first", IDENT, src, types))
    assert r.returncode == 0, r.stderr
    out1 = os.path.join(d, "first.csv")
    r = run(job(d, "second", IDENT, out1))                       # types inferred
    assert r.returncode == 0, r.stderr
    with open(out1) as a, open(os.path.join(d, "second.csv")) as b:
        first, second = a.read(), b.read()
    assert first == second, (first[:300], second[:300])
    r = run(job(d, "seen", SUMMARY, out1))
    assert r.returncode == 0, r.stderr
    seen = pd.read_csv(os.path.join(d, "seen.csv"), dtype=str)
    want = expected_sums(out1)
    for c in cols:
        assert set(seen[c + "_dtype"]) == {WANT_DTYPES[c]}, (c, set(seen[c + "_dtype"]), WANT_DTYPES[c])
        got = sum(int(x) for x in seen[c + "_sum"])
        assert got == want[c], (c, got, want[c])
    shutil.rmtree(d)
