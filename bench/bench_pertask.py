#!/usr/bin/python3
"""bench_pertask.py - what one small task costs (issue 21.2), each against
multiprocessing's Pool measured in this same run.

  map       kx.remote.map(nop, range(N), local=2): the cost per item
            beyond start-up, (median time of N items - median time of 10
            items) / (N - 10), the two run alternately REPS times each
  run       `qpeach run` of a job of N one-row tasks (by = rows, pieces =
            N; local = 2; each returns its rows' ids, concatenated), the
            same way against the job of 10 tasks over the same input
  peach     .qp.peach of nop over N items on one `qpeach serve -s -2`
            (started and warmed once): time / N
  baseline  Pool(2).map(nop, range(N), chunksize=1) on a started, warm
            pool: time / N (the per-item cost of a pool, as map's is
            beyond start-up)

Every result is checked equal to [nop(x) for x in range(N)] (the run's
to the ids 0..N-1 in order; exit 1 if not). Ratios: Pool's cost per item / this one's (> 1: cheaper than Pool).

usage: /usr/bin/python3 bench/bench_pertask.py [--n N] [--reps R] [--json]
"""
import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, os.environ.get("QPEACH_BUILD", "build"))
QP = os.path.join(BUILD, "qpeach")
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("QPEACH_BIN", QP)

import harness                          # noqa: E402  (a real `qpeach serve`)
import qpeach as kx                     # noqa: E402
from qpeach import _qpeach              # noqa: E402
from qpeach.errors import CharVector    # noqa: E402


def nop(x):
    return x


def timed(f):
    t = time.perf_counter()
    r = f()
    return time.perf_counter() - t, r


def check(what, got, n):
    if list(got) != list(range(n)):
        sys.exit(f"{what}: results differ from [nop(x) for x in range({n})]")


def beyond_startup(run, n, reps, want=lambda k: k):
    """(median of n items, median of 10, cost per item beyond start-up);
    run(k)'s result must be range(want(k))."""
    big, small = [], []
    for _ in range(reps):
        t, got = timed(lambda: run(n))
        check(f"{n} items", got, want(n))
        big.append(t)
        t, got = timed(lambda: run(10))
        check("10 items", got, want(10))
        small.append(t)
    b, s = statistics.median(big), statistics.median(small)
    return b, s, (b - s) / (n - 10)


def bench_map(n, reps):
    return beyond_startup(lambda k: kx.remote.map(nop, range(k), local=2, progress=False), n, reps)


def bench_run(n, reps, d):
    with open(os.path.join(d, "ids.qipc"), "wb") as f:
        f.write(_qpeach.dumps({"i": np.arange(n, dtype=np.int64)}))
    with open(os.path.join(d, "one.py"), "w") as f:
        f.write("def one(t):\n    return t['i']\n")
    for k in (10, n):
        with open(os.path.join(d, f"j{k}.ini"), "w") as f:
            f.write(f"[job]\nfunction = one.py:one\n[input]\ntable = ids\nfile = ids.qipc\n"
                    f"[partition]\nby = rows\npieces = {k}\n[workers]\nlocal = 2\n"
                    f"[merge]\nhow = concat\n[output]\npath = out{k}.qipc\n")

    def run(k):
        subprocess.run([QP, "run", "--quiet", "--fresh", os.path.join(d, f"j{k}.ini")], check=True)
        with open(os.path.join(d, f"out{k}.qipc"), "rb") as f:
            return _qpeach.loads(f.read()).tolist()

    run(10)                               # the input's one conversion, untimed
    return beyond_startup(run, n, reps, want=lambda k: n)   # every task's ids, in order


def bench_peach(n, reps):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    with harness.Server("-s", "-2", env=env, ready_timeout=120) as srv:
        s = kx.remote.session(port=srv.port)
        s._call(".qp.def", "nop", CharVector("def nop(x):\n    return x\n"))
        items = np.arange(n, dtype=np.int64)
        s._call(".qp.peach", "nop", items)            # warm: the processes have Python
        ts = []
        for _ in range(reps):
            t, got = timed(lambda: s._call(".qp.peach", "nop", items))
            check("peach", got, n)
            ts.append(t)
        s.close()
    return statistics.median(ts) / n


def bench_pool(n, reps):
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(nop, range(100), chunksize=1)        # warm
        ts = []
        for _ in range(reps):
            t, got = timed(lambda: pool.map(nop, range(n), chunksize=1))
            check("Pool", got, n)
            ts.append(t)
    return statistics.median(ts) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    n = a.n
    with tempfile.TemporaryDirectory(prefix="qpeach-bench-pertask-") as d:
        pool = bench_pool(n, a.reps)
        mb, ms, m = bench_map(n, a.reps)
        rb, rs, r = bench_run(n, a.reps, d)
        p = bench_peach(n, a.reps)
        pool2 = bench_pool(n, a.reps)       # again after: the machine's load moves
    pool = statistics.median([pool, pool2])
    us = 1e6
    print(f"{n} no-op items, 2 workers, medians of {a.reps}; baseline Pool(2).map chunksize=1: "
          f"{pool * us:.2f} us per item")
    print(f"  kx.remote.map   {m * us:6.2f} us per item beyond start-up ({mb:.3f}s for {n}, "
          f"{ms:.3f}s for 10): Pool / map {pool / m:.2f}x")
    print(f"  qpeach run      {r * us:6.2f} us per task beyond start-up ({rb:.3f}s for {n}, "
          f"{rs:.3f}s for 10): Pool / run {pool / r:.2f}x")
    print(f"  .qp.peach -s -2 {p * us:6.2f} us per item: Pool / peach {pool / p:.2f}x")
    if a.json:
        print(json.dumps({"n": n, "reps": a.reps, "pool_us": pool * us, "map_us": m * us,
                          "map_n_s": mb, "map_10_s": ms, "run_us": r * us, "run_n_s": rb,
                          "run_10_s": rs, "peach_us": p * us}))


if __name__ == "__main__":
    main()
