#!/usr/bin/python3
"""CSV import speed and memory (issue 21.4): `qpeach db import` of a trades
CSV (scripts/gen_trades.py: sym, price, size) as a splayed table with
`--types SFJ`, against pandas.read_csv of the same file with the same
dtypes (sym a category, price float64, size int64), in this one run.

  bench_import.py [--rows N] [--reps R] [--json]

Each rep runs the import (a fresh db) and then pandas, each in a process of
its own started from a small launcher that times it from fork to exit and
takes its peak RSS from wait4 (so process start-up counts for both; pandas
is timed inside its process, its import of pandas excluded). The file is in
the page cache for all of them. Reported: medians, the import's GB/s (the
CSV's bytes / its time), the median of each rep's pandas/qpeach ratio, and
the import's peak RSS against the CSV's size. The table written is checked
equal to pandas' frame (sym names, prices, sizes; exit 1 if not). Nothing
here asserts a speed.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QP = os.path.join(ROOT, os.environ.get("QPEACH_BUILD", "build"), "qpeach")
PY = "/usr/bin/python3"

# Runs argv; prints seconds from fork to exit, peak RSS (KB), exit code.
LAUNCH = """import os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
print(time.perf_counter() - t, ru.ru_maxrss, os.waitstatus_to_exitcode(status), file=sys.stderr)
"""

# pandas.read_csv, timed inside; then (untimed) checks the db against it.
PANDAS = """import sys, time
import numpy as np
import pandas as pd
src, db = sys.argv[1], sys.argv[2]
t = time.perf_counter()
df = pd.read_csv(src, dtype={"sym": "category", "price": "float64", "size": "int64"})
dt = time.perf_counter() - t
if db != "-":
    with open(db + "/sym", "rb") as f:
        names = np.array(f.read()[8:].split(b"\\0")[:-1]).astype(str)
    sym = names[np.fromfile(db + "/trade/sym", dtype=np.int64, offset=4096)]
    px = np.fromfile(db + "/trade/price", dtype=np.float64, offset=16)
    sz = np.fromfile(db + "/trade/size", dtype=np.int64, offset=16)
    same = (len(sz) == len(df) and (sym == df["sym"].astype(str).to_numpy()).all()
            and (px == df["price"].to_numpy()).all() and (sz == df["size"].to_numpy()).all())
    print("same" if same else "DIFFERENT")
print(dt)
"""


def launch(argv):
    """(seconds, peak RSS bytes, stdout) of argv run from the launcher."""
    r = subprocess.run([PY, "-c", LAUNCH] + argv, capture_output=True, text=True, timeout=1800)
    secs, kb, code = r.stderr.strip().splitlines()[-1].split()
    if int(code):
        sys.exit(f"{argv[0]} failed ({code}): {r.stderr[-2000:]}")
    return float(secs), int(kb) * 1024, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="qpeach-bench-import-")
    try:
        src = os.path.join(d, "trades.csv")
        subprocess.run([PY, os.path.join(ROOT, "scripts", "gen_trades.py"), "--rows", str(a.rows),
                        "--out", src], check=True, stdout=subprocess.DEVNULL)
        size = os.path.getsize(src)
        with open(src, "rb") as f:                      # into the page cache
            while f.read(1 << 24):
                pass
        tq, tp, peaks, same = [], [], [], True
        for k in range(a.reps + 1):                     # the first: warm-up, not counted
            db = os.path.join(d, f"db{k}")
            t, peak, _ = launch([QP, "db", "import", src, db, "trade", "--types", "SFJ"])
            _, _, out = launch([PY, "-c", PANDAS, src, db if k == a.reps else "-"])
            lines = out.split()
            if k == a.reps:
                same = lines[0] == "same"
            shutil.rmtree(db)
            if k:
                tq.append(t)
                tp.append(float(lines[-1]))
                peaks.append(peak)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    mq, mp = statistics.median(tq), statistics.median(tp)
    ratio = statistics.median(p / q for p, q in zip(tp, tq))
    peak = max(peaks)
    print(f"CSV import, {a.rows:,} rows, {size / 1e6:.0f} MB, {os.cpu_count()} cores, median of {a.reps}:\n"
          f"  qpeach db import --types SFJ: {mq:.3f} s = {size / mq / 1e9:.2f} GB/s "
          f"(runs: {' '.join(f'{t:.3f}' for t in tq)}); peak RSS {peak / 2**20:.0f} MB = "
          f"{peak / size:.2f}x the CSV\n"
          f"  pandas.read_csv, same dtypes: {mp:.3f} s (runs: {' '.join(f'{t:.3f}' for t in tp)})\n"
          f"  pandas / qpeach = {ratio:.2f}x, the median of the runs' ratios (> 1: qpeach faster)\n"
          f"  results equal: {'yes' if same else 'NO'}")
    if a.json:
        print(json.dumps({"rows": a.rows, "csv_bytes": size, "qpeach_s": tq, "pandas_s": tp,
                          "ratio": ratio, "peak_bytes": peak, "same": same}))
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
