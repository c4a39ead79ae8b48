#!/usr/bin/python3
"""Scheduler benchmarks, ratios against baselines measured in the same run.

1. Per-task overhead: a job of N tasks of an empty function over a tiny
   resident table, 2 local workers; the marginal cost per task is
   (time(N) - time(100)) / (N - 100), so worker start-up cancels out.
2. VWAP by sym over ROWS resident rows: `qpeach run` with 2 local pinned
   workers (8 row partitions, sum-by-key merge) vs multiprocessing.Pool(2)
   with the table inherited by fork, same numpy code per partition. Both
   timings include only the computation on data already in memory for the
   Pool, and the whole job (worker start, binary input load, tasks, merge)
   for qpeach, so the ratio is conservative for qpeach.

  bench/bench_sched.py [BUILD] [--rows 10000000] [--tasks 10000]
"""
import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "jobs"))
import vwap as V  # noqa: E402

T = None


def part(r):
    a, b = r
    return V.vwap_parts({k: v[a:b] for k, v in T.items()})


def run_job(qp, path):
    t = time.perf_counter()
    r = subprocess.run([qp, "run", "--quiet", path], capture_output=True, text=True)
    if r.returncode:
        sys.exit("qpeach run failed: " + r.stderr)
    return time.perf_counter() - t


def main():
    global T
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--tasks", type=int, default=10_000)
    a = ap.parse_args()
    qp = os.path.join(ROOT, a.build, "qpeach")
    d = tempfile.mkdtemp(prefix="qpeach-bench-")
    with open(os.path.join(ROOT, "jobs", "vwap.py")) as f:
        open(os.path.join(d, "vwap.py"), "w").write(f.read())
    open(os.path.join(d, "empty.py"), "w").write("def f(t):\n    return 0\n")

    # 1. per-task overhead
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_trades.py"),
                    "--rows", str(a.tasks), "--out", os.path.join(d, "tiny.csv")], check=True)
    times = {}
    for n in (100, a.tasks):
        p = os.path.join(d, f"empty{n}.ini")
        open(p, "w").write(f"[job]\nfunction = empty.py:f\n[input]\ntable = t\nfile = tiny.csv\n"
                           f"[partition]\npieces = {n}\n[workers]\nlocal = 2\n[merge]\nhow = sum\n"
                           f"[output]\npath = out/e{n}.qipc\n")
        run_job(qp, p)                      # warm: converts the CSV once
        times[n] = min(run_job(qp, p) for _ in range(2))
    per = (times[a.tasks] - times[100]) / (a.tasks - 100)
    print(f"per-task overhead: {per * 1e6:.1f} us/task "
          f"({a.tasks} tasks {times[a.tasks]:.2f}s, 100 tasks {times[100]:.2f}s; goal <= 50 us)")

    # 2. VWAP over resident rows
    csv = os.path.join(d, "trades.csv")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_trades.py"),
                    "--rows", str(a.rows), "--out", csv], check=True)
    p = os.path.join(d, "vwap.ini")
    open(p, "w").write("[job]\nfunction = vwap.py:vwap_parts\n[input]\ntable = trade\nfile = trades.csv\n"
                       "types = SFJ\n[partition]\npieces = 8\n[workers]\nlocal = 2\n"
                       "[merge]\nhow = sum-by-key\nkey = sym\nreducer = vwap.py:finish\n"
                       "[output]\npath = out/vwap.csv\n")
    run_job(qp, p)                          # converts the CSV to q IPC once
    tq = min(run_job(qp, p) for _ in range(2))

    import pandas as pd
    df = pd.read_csv(csv, dtype={"sym": str})
    T = {"sym": df["sym"].to_numpy().astype(str), "price": df["price"].to_numpy(),
         "size": df["size"].to_numpy()}
    edges = np.linspace(0, a.rows, 9).astype(int)
    ranges = list(zip(edges[:-1], edges[1:]))
    best = None
    for _ in range(2):
        t = time.perf_counter()
        with mp.get_context("fork").Pool(2) as pool:
            parts = pool.map(part, ranges)
        names = np.unique(np.concatenate([x["sym"] for x in parts]))
        pv = {s: 0.0 for s in names}
        sz = dict(pv)
        for x in parts:
            for s, a1, b1 in zip(x["sym"], x["pv"], x["size"]):
                pv[s] += a1
                sz[s] += b1
        V.finish({"sym": names, "pv": np.array([pv[s] for s in names]),
                  "size": np.array([sz[s] for s in names])})
        el = time.perf_counter() - t
        best = el if best is None else min(best, el)
    print(f"VWAP {a.rows} rows, 2 workers: qpeach run {tq:.2f}s (whole job) vs "
          f"multiprocessing.Pool(2) fork {best:.2f}s (compute only): ratio {best / tq:.2f}x")


if __name__ == "__main__":
    main()
