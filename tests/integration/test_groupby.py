"""`by = column` through a group index (issue 21.3): each worker maps a
partitioned db's partitions once and indexes the column once per
partition, and each task gathers its group's rows from that index, instead
of reading (and concatenating) the whole table and scanning it per group.
The groups must be what pandas' groupby makes of the same rows, in the
same row order, with q's equality for float keys (-0.0 is 0.0, every NaN
the one null). Databases are made by our own writer (`qpeach db import`)."""
import os
import re
import shutil
import subprocess

import numpy as np

from harness import QPEACH, Skip, qpeach, tmpdir
from qipc import decode

DATES = ["2024.01.02", "2024.01.03", "2024.01.05"]


def make_db(d, rows=30000, nsym=40, seed=11):
    """A date-partitioned trade table (and the same rows as a DataFrame)."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    syms = np.array([f"S{i:02d}" for i in range(nsym)])
    per = rows // len(DATES)
    frames = []
    for dt in DATES:
        frames.append(pd.DataFrame({
            "date": dt, "sym": syms[rng.integers(0, nsym, per)],
            "x": rng.choice(["-0", "0", "", "1.5", "-2.25"], per),
            "price": np.round(rng.uniform(1, 100, per), 2),
            "size": rng.integers(1, 1000, per)}))
    df = pd.concat(frames, ignore_index=True)
    csv = os.path.join(d, "t.csv")
    df.to_csv(csv, index=False)
    r = qpeach("db", "import", csv, os.path.join(d, "db"), "trade", "--types", "DSFFJ",
               "--partition", "date", timeout=120)
    assert r.returncode == 0, r.stderr
    df["x"] = pd.to_numeric(df["x"].replace("", np.nan))
    # as the import wrote them: each date's rows sorted by sym (stable), as
    # .Q.dpft does for its p# column
    return df.sort_values(["date", "sym"], kind="stable").reset_index(drop=True)


FN = """import numpy as np
def g(t):
    p, z = np.asarray(t['price']), np.asarray(t['size'])
    # the rows' order counts: a weighted sum over their positions
    return {'n': np.array([len(p)]), 'px': np.array([p.sum()]),
            'ord': np.array([int((z * np.arange(len(z))).sum())])}
"""


def job(d, column, out):
    with open(os.path.join(d, "g.py"), "w") as f:
        f.write(FN)
    p = os.path.join(d, f"{column}.ini")
    with open(p, "w") as f:
        f.write(f"[job]\nfunction = g.py:g\nlibraries = np=numpy\n[input]\ndb = db\ntable = trade\n"
                f"[partition]\nby = column\ncolumn = {column}\n[workers]\nlocal = 2\n"
                f"[merge]\nhow = concat\n[output]\npath = {out}\n")
    return p


def read(path):
    with open(path, "rb") as f:
        t = decode(f.read())
    return {k: np.array(v.items) for k, v in t.cols.items()}


def want_groups(df, column):
    """pandas' groups of column in q's order (sorted, the null first; a
    float column's -0.0 is 0.0 for pandas' == too)."""
    v = df[column]
    if v.dtype.kind == "f":
        keys = ([np.nan] if v.isna().any() else []) + sorted(set(v.dropna().tolist()))
    else:
        keys = sorted(set(v.tolist()))
    n, px, ord_ = [], [], []
    for k in keys:
        rows = df[v.isna()] if isinstance(k, float) and np.isnan(k) else df[v == k]
        z = rows["size"].to_numpy()
        n.append(len(rows))
        px.append(rows["price"].sum())
        ord_.append(int((z * np.arange(len(z))).sum()))
    return np.array(n), np.array(px), np.array(ord_)


def check(got, want):
    n, px, ord_ = want
    assert np.array_equal(got["n"], n), (got["n"], n)
    assert np.allclose(got["px"], px, rtol=1e-12), (got["px"], px)
    assert np.array_equal(got["ord"], ord_), (got["ord"], ord_)


def test_by_column_over_a_partitioned_db_equals_pandas_groupby():
    d = tmpdir()
    df = make_db(d)
    for column in ("sym", "x"):      # an enumeration; floats with -0.0 and nulls
        r = qpeach("run", job(d, column, f"out/{column}.qipc"), timeout=180)
        assert r.returncode == 0, r.stderr
        check(read(os.path.join(d, "out", f"{column}.qipc")), want_groups(df, column))


def strace_works():
    if not shutil.which("strace"):
        return False
    r = subprocess.run(["strace", "-f", "-o", "/dev/null", "true"], capture_output=True)
    return r.returncode == 0


def test_each_worker_maps_each_partition_once():
    """The files of the partitions are opened once per worker for the
    whole job (they were opened once per task: every partition for every
    group), counted from the system calls of the run."""
    if not strace_works():
        raise Skip("strace cannot trace here")
    d = tmpdir()
    df = make_db(d)
    log = os.path.join(d, "trace")
    p = job(d, "sym", "out/sym.qipc")
    # (LeakSanitizer cannot run under ptrace: a sanitizer build leaves it out)
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat", "-o", log, QPEACH, "run", p],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    with open(log) as f:
        opens = [ln for ln in f if re.search(r'/trade/price"', ln) and "= -1" not in ln]
    # the tasks: each of two workers maps each partition once; the plan and
    # the checks before it (the distinct syms, one partition's metadata)
    # read each partition at most twice more. It was once per task and
    # partition (125 here).
    assert len(opens) <= 4 * len(DATES), (len(opens), opens)
    check(read(os.path.join(d, "out", "sym.qipc")), want_groups(df, "sym"))
