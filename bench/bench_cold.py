#!/usr/bin/python3
"""Cold job from a kdb+ database: `qpeach run` (2 local workers, VWAP by
sym over a splayed trade table, whole process timed) against one numpy
process doing the same VWAP on the same columns stored as .npy files and
read with mmap_mode='r' (symbols as int codes + names). Both run in this
one invocation, alternately, with the page cache warm; medians.

Also the memory the workers hold: the total PSS (/proc/PID/smaps_rollup)
of both workers at its peak during a run, against the table's own bytes.
Mapped columns are shared page cache, so PSS splits them between the
processes mapping them instead of counting them twice.

Warm (kept workers, [workers] keep = 10m): the same job with `symbols =
codes` and with `symbols = categorical`, run once to start the kept workers,
then R more times, each after a numpy run (the speed ratio as above); and
the first run with keep, against the same job without keep, alternately
after `qpeach workers stop` (is the first run any slower than today's?).

  bench_cold.py [--rows N] [--reps R] [--json] [--save] [--no-warm]

Prints the ratios (speed: the median of the ratios of each numpy run and
the qpeach run after it); with --json a last line of JSON for the harness;
with --save also writes the text to bench/results/cold.txt.
Every VWAP is checked equal to numpy's (relative 1e-9); exit 1 if not.
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QP = os.path.join(ROOT, os.environ.get("QPEACH_BUILD", "build"), "qpeach")
PY = "/usr/bin/python3"

NUMPY_SCRIPT = """import json, sys
import numpy as np
d = sys.argv[1]
px = np.load(d + '/price.npy', mmap_mode='r')
sz = np.load(d + '/size.npy', mmap_mode='r')
code = np.load(d + '/sym.npy', mmap_mode='r')
names = np.load(d + '/names.npy')
w = sz.astype(float)
pv = np.bincount(code, weights=px * w, minlength=len(names))
vol = np.bincount(code, weights=w, minlength=len(names))
print(json.dumps({str(n): p / v for n, p, v in zip(names, pv, vol) if v}))
"""

JOB = """[job]
name = {name}
function = {root}/jobs/vwap.py:vwap_parts
libraries = np=numpy
symbols = {symbols}
[input]
db = {db}
table = trade
[partition]
by = rows
[workers]
local = 2
{keep}[merge]
how = sum-by-key
key = sym
reducer = {root}/jobs/vwap.py:finish
[output]
path = {out}
"""


def prepare(d, rows):
    """The trade table as a kdb+ db (qpeach db import) and as .npy files."""
    csv_path = os.path.join(d, "trades.csv")
    subprocess.run([PY, os.path.join(ROOT, "scripts", "gen_trades.py"), "--rows", str(rows),
                    "--out", csv_path], check=True)
    db = os.path.join(d, "db")
    subprocess.run([QP, "db", "import", csv_path, db, "trade", "--types", "SFJ"], check=True,
                   stdout=subprocess.DEVNULL)
    npy = os.path.join(d, "npy")
    os.makedirs(npy)
    import pandas as pd                   # its C parser: 10M rows in seconds
    t = pd.read_csv(csv_path, dtype={"sym": "category", "price": "float64", "size": "int64"})
    np.save(os.path.join(npy, "price.npy"), t["price"].to_numpy())
    np.save(os.path.join(npy, "size.npy"), t["size"].to_numpy())
    np.save(os.path.join(npy, "sym.npy"), t["sym"].cat.codes.to_numpy().astype(np.int64))
    np.save(os.path.join(npy, "names.npy"), np.asarray(t["sym"].cat.categories).astype(str))
    with open(os.path.join(d, "numpy_vwap.py"), "w") as f:
        f.write(NUMPY_SCRIPT)
    out = os.path.join(d, "out", "vwap.csv")
    job = write_job(d, "vwap", db)
    os.remove(csv_path)
    table_bytes = sum(os.path.getsize(os.path.join(db, "trade", c)) for c in ("sym", "price", "size"))
    return db, npy, job, out, table_bytes


def write_job(d, name, db, symbols="codes", keep=None):
    """A VWAP job over the db; output out/NAME.csv."""
    job = os.path.join(d, name + ".ini")
    with open(job, "w") as f:
        f.write(JOB.format(name=name, root=ROOT, db=db, symbols=symbols,
                           out=os.path.join(d, "out", name + ".csv"),
                           keep=f"keep = {keep}\n" if keep else ""))
    return job


def timed(argv, env=None):
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"{argv[0]} failed ({r.returncode}): {r.stderr[-2000:]}")
    return time.perf_counter() - t, r.stdout


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def peak_worker_pss(job):
    """Runs the job once, sampling its workers' total PSS every 5 ms."""
    p = subprocess.Popen([QP, "run", "--quiet", job], stdout=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        peak = max(peak, sum(pss_kb(c) for c in children(p.pid)))
        time.sleep(0.005)
    if p.returncode:
        sys.exit(f"qpeach run failed ({p.returncode})")
    return peak * 1024


def read_vwap(path):
    with open(path) as f:
        return {r["sym"]: float(r["vwap"]) for r in csv.DictReader(f)}


def equal(want, got):
    return sorted(want) == sorted(got) and all(abs(got[k] - want[k]) <= 1e-9 * abs(want[k])
                                               for k in want)


def paired(tn, tq):
    """Each numpy run is paired with the qpeach run right after it: the
    median of the pairs' ratios is not moved by the machine's speed
    drifting during the runs, as a ratio of the two medians can be."""
    return statistics.median(n / q for n, q in zip(tn, tq))


def warm(d, db, npy_argv, reps, want):
    """Kept workers: per symbols mode, the first run (it starts them),
    then reps runs each after a numpy run; then the first run with keep
    against the same job without, alternately, each keep run after
    `qpeach workers stop`. Every result checked against numpy's."""
    env = dict(os.environ, QPEACH_WORKERS_DIR=os.path.join(d, "kept"))
    stop = [QP, "workers", "stop"]
    w, same = {}, True
    try:
        for symbols in ("codes", "categorical"):
            job = write_job(d, "warm_" + symbols, db, symbols, keep="10m")
            argv = [QP, "run", "--quiet", job]
            first = timed(argv, env)[0]
            tn, tw = [], []
            for _ in range(reps):
                tn.append(timed(npy_argv)[0])
                tw.append(timed(argv, env)[0])
            same = same and equal(want, read_vwap(os.path.join(d, "out", f"warm_{symbols}.csv")))
            w[symbols] = {"first_s": first, "numpy_s": tn, "warm_s": tw, "ratio": paired(tn, tw)}
            timed(stop, env)
        keep = [QP, "run", "--quiet", write_job(d, "first_keep", db, keep="10m")]
        plain = [QP, "run", "--quiet", write_job(d, "first_plain", db)]
        tk, tp = [], []
        for _ in range(reps):
            timed(stop, env)
            tk.append(timed(keep, env)[0])
            tp.append(timed(plain, env)[0])
        same = same and equal(want, read_vwap(os.path.join(d, "out", "first_keep.csv")))
        w["first"] = {"keep_s": tk, "plain_s": tp, "ratio": paired(tp, tk)}
    finally:
        timed(stop, env)
    return w, same


def warm_text(w, reps):
    t = (f"warm: the same job with [workers] keep = 10m, 2 kept local workers, median of {reps} "
         f"runs after the first:\n")
    for symbols in ("codes", "categorical"):
        x = w[symbols]
        t += (f"  symbols = {symbols + ':':<12} first run {x['first_s']:.3f} s, then "
              f"{statistics.median(x['warm_s']):.3f} s (runs: {' '.join(f'{v:.3f}' for v in x['warm_s'])}); "
              f"numpy {statistics.median(x['numpy_s']):.3f} s\n"
              f"    speed ratio numpy/qpeach warm = {x['ratio']:.2f}x, the median of the "
              f"{reps} runs' ratios\n")
    f = w["first"]
    t += (f"  first run with keep {statistics.median(f['keep_s']):.3f} s (runs: "
          f"{' '.join(f'{v:.3f}' for v in f['keep_s'])}), without keep "
          f"{statistics.median(f['plain_s']):.3f} s (runs: {' '.join(f'{v:.3f}' for v in f['plain_s'])})\n"
          f"    ratio without/with = {f['ratio']:.2f}x, the median of the {reps} pairs' ratios "
          f"(>= 1: the first kept run no slower)\n")
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--no-warm", action="store_true")
    a = ap.parse_args()
    w = None
    d = tempfile.mkdtemp(prefix="qpeach-bench-cold-")
    try:
        db, npy, job, out, table_bytes = prepare(d, a.rows)
        npy_argv = [PY, os.path.join(d, "numpy_vwap.py"), npy]
        qp_argv = [QP, "run", "--quiet", job]
        timed(npy_argv), timed(qp_argv)                     # page cache warm
        tn, tq = [], []
        for _ in range(a.reps):
            t, res = timed(npy_argv)
            tn.append(t)
            tq.append(timed(qp_argv)[0])
        want = json.loads(res)
        same = equal(want, read_vwap(out))
        pss = max(peak_worker_pss(job) for _ in range(3))
        if not a.no_warm:
            w, wsame = warm(d, db, npy_argv, a.reps, want)
            same = same and wsame
    finally:
        shutil.rmtree(d, ignore_errors=True)
    mn, mq = statistics.median(tn), statistics.median(tq)
    ratio = paired(tn, tq)
    text = (f"cold VWAP, {a.rows:,} rows from a kdb+ db, page cache warm, median of {a.reps}:\n"
            f"  numpy, 1 process on mmap'd .npy: {mn:.3f} s  (runs: {' '.join(f'{t:.3f}' for t in tn)})\n"
            f"  qpeach run, local = 2:           {mq:.3f} s  (runs: {' '.join(f'{t:.3f}' for t in tq)})\n"
            f"  speed ratio numpy/qpeach = {ratio:.2f}x, the median of the {a.reps} runs' "
            f"ratios (> 1: qpeach faster)\n"
            f"  workers' total peak PSS {pss / 2**20:.0f} MB, table {table_bytes / 2**20:.0f} MB: "
            f"{pss / table_bytes:.2f}x the table's bytes\n"
            + (warm_text(w, a.reps) if w else "") +
            f"  results equal: {'yes' if same else 'NO'}\n")
    print(text, end="")
    if a.save:
        with open(os.path.join(HERE, "results", "cold.txt"), "w") as f:
            f.write(f"`{' '.join(sys.argv)}` on {os.cpu_count()} cores, "
                    f"{time.strftime('%Y-%m-%d %H:%M')}\n" + text)
    if a.json:
        print(json.dumps({"rows": a.rows, "numpy_s": tn, "qpeach_s": tq, "ratio": ratio, "pss_bytes": pss,
                          "table_bytes": table_bytes, "same": same, "warm": w}))
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
