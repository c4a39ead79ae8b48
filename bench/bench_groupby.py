#!/usr/bin/python3
"""bench_groupby.py - `by = column` over a partitioned kdb+ db (issue 21.3):
the whole `qpeach run` (2 local workers, one task per sym: worker start,
planning, every task, merge, output) against a pandas groupby of the same
rows in this process, measured in this same run.

  db        ROWS rows over 5 dates, NSYM syms (`qpeach db import
            --partition date`)
  qpeach    a job: by = column, column = sym; each task's function gives
            its sym's row count and VWAP; merge concat; the whole process
            timed
  baseline  the same rows as a DataFrame (read once, not timed), then
            groupby('sym') computing the same count and VWAP

The counts must be equal and the VWAPs equal to 1e-9 relative (exit 1 if
not). Ratio: pandas' time / qpeach's (< 1: pandas is faster; qpeach's
time includes starting its two worker processes).

usage: /usr/bin/python3 bench/bench_groupby.py [--rows N] [--syms K] [--reps R] [--json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QP = os.path.join(ROOT, os.environ.get("QPEACH_BUILD", "build"), "qpeach")
sys.path.insert(0, os.path.join(ROOT, "python"))

DATES = ["2024.01.02", "2024.01.03", "2024.01.04", "2024.01.05", "2024.01.08"]

FN = """import numpy as np
def vwap(t):
    p, z = np.asarray(t['price']), np.asarray(t['size'])
    return {'n': np.array([len(p)]), 'vwap': np.array([float((p * z).sum() / z.sum())])}
"""

JOB = """[job]
function = {d}/fn.py:vwap
libraries = np=numpy
[input]
db = {d}/db
table = trade
[partition]
by = column
column = sym
[workers]
local = 2
[merge]
how = concat
[output]
path = {d}/out.qipc
"""


def make(d, rows, nsym, seed=21):
    """The CSV of the rows, imported as the db; the same rows as a DataFrame."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    syms = np.array([f"S{i:03d}" for i in range(nsym)])
    per = rows // len(DATES)
    frames = [pd.DataFrame({"date": dt, "sym": syms[rng.integers(0, nsym, per)],
                            "price": np.round(rng.uniform(10, 200, per), 2),
                            "size": rng.integers(1, 1000, per)}) for dt in DATES]
    df = pd.concat(frames, ignore_index=True)
    csv = os.path.join(d, "t.csv")
    df.to_csv(csv, index=False)
    subprocess.run([QP, "db", "import", csv, os.path.join(d, "db"), "trade", "--types", "DSFJ",
                    "--partition", "date"], check=True, stdout=subprocess.DEVNULL)
    os.remove(csv)
    with open(os.path.join(d, "fn.py"), "w") as f:
        f.write(FN)
    with open(os.path.join(d, "job.ini"), "w") as f:
        f.write(JOB.format(d=d))
    return df


def run_qpeach(d):
    t = time.perf_counter()
    subprocess.run([QP, "run", "--quiet", "--fresh", os.path.join(d, "job.ini")], check=True)
    el = time.perf_counter() - t
    from qpeach import _qpeach
    with open(os.path.join(d, "out.qipc"), "rb") as f:
        out = _qpeach.loads(f.read())
    return el, np.asarray(out["n"]), np.asarray(out["vwap"])


def run_pandas(df):
    t = time.perf_counter()
    g = df.assign(pv=df["price"] * df["size"]).groupby("sym", sort=True).agg(
        n=("size", "size"), pv=("pv", "sum"), v=("size", "sum"))
    vw = (g["pv"] / g["v"]).to_numpy()
    return time.perf_counter() - t, g["n"].to_numpy(), vw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--syms", type=int, default=300)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qpeach-bench-groupby-") as d:
        df = make(d, a.rows, a.syms)
        run_qpeach(d)                           # warm: the page cache, the first mount
        qs, ps = [], []
        for _ in range(a.reps):                 # alternately: the machine's load moves
            tq, n, vw = run_qpeach(d)
            tp, pn, pvw = run_pandas(df)
            if not np.array_equal(n, pn) or not np.allclose(vw, pvw, rtol=1e-9, atol=0):
                sys.exit("qpeach's counts or VWAPs differ from pandas' groupby")
            qs.append(tq)
            ps.append(tp)
    q, p = statistics.median(qs), statistics.median(ps)
    print(f"by = column, {a.rows} rows over {len(DATES)} dates, {a.syms} syms, 2 local workers, "
          f"medians of {a.reps}, results equal (1e-9):")
    print(f"  qpeach run (whole job) {q:.3f}s (best {min(qs):.3f}s) vs pandas groupby {p:.4f}s: "
          f"ratio pandas/qpeach {p / q:.3f}")
    if a.json:
        print(json.dumps({"rows": a.rows, "syms": a.syms, "dates": len(DATES), "reps": a.reps,
                          "qpeach_s": qs, "pandas_s": ps}))


if __name__ == "__main__":
    main()
