#!/usr/bin/env python3
"""bench_pykx_run.py - what `[workers] protocol = pykx` costs a `qpeach run`
job, as a ratio against the same job over qpeach's own calls, measured in
one run against the same two running `qpeach serve` processes.

The job: VWAP parts by sym over a CSV of R rows (sum-by-key, then a
reducer), by rows in 8 pieces, the function returning a DataFrame (the one
form that is a table under both protocols).

  qpeach  the servers load the parsed input once at setup (.qp.load, a
          mapped splayed table) and each task names its row range.
  pykx    the scheduler holds the input; each task carries its rows and the
          function's module (PyKX's call lambda), and the server converts
          the rows to a DataFrame (PyKX's default conversion).

Printed: median wall time of each over N runs (interleaved), and the ratio
pykx / qpeach. Both outputs are compared, and a difference fails (exit 1).
No figure is asserted; read the ratio, not the absolute times.

Usage: /usr/bin/python3 bench/bench_pykx_run.py [--quick]   (needs `make`)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import QPEACH, Server        # noqa: E402
from test_pykx_jobs import VW              # noqa: E402

QUICK = "--quick" in sys.argv
ROWS = 200_000 if QUICK else 1_000_000
RUNS = 3 if QUICK else 7


def main():
    d = tempfile.mkdtemp(prefix="qpeach-bench-pykx-")
    rng = np.random.default_rng(1)
    syms = np.array(list("abcdefghij"))[rng.integers(0, 10, ROWS)]
    price = np.round(rng.uniform(10, 20, ROWS), 3)
    size = rng.integers(1, 100, ROWS)
    with open(os.path.join(d, "t.csv"), "w") as f:
        f.write("sym,price,size\n")
        f.writelines(f"{s},{p},{z}\n" for s, p, z in zip(syms, price, size))
    with open(os.path.join(d, "vw.py"), "w") as f:
        f.write(VW)
    servers = [Server(), Server()]
    try:
        times = {"qpeach": [], "pykx": []}
        for proto in times:
            with open(os.path.join(d, f"{proto}.ini"), "w") as f:
                f.write(f"[job]\nfunction = vw.py:parts\n[input]\ntable = trade\nfile = t.csv\n"
                        f"types = SFJ\n[partition]\nby = rows\npieces = 8\n[workers]\n"
                        f"servers = {', '.join(s.addr for s in servers)}\nprotocol = {proto}\n"
                        f"[merge]\nhow = sum-by-key\nkey = sym\nreducer = vw.py:finish\n"
                        f"[output]\npath = {proto}.csv\n")
        for k in range(RUNS + 1):                   # the first round warms up
            for proto in times:
                t0 = time.perf_counter()
                subprocess.run([QPEACH, "run", "-q", "--fresh", f"{proto}.ini"], cwd=d, check=True)
                if k:
                    times[proto].append(time.perf_counter() - t0)
        outs = [open(os.path.join(d, f"{p}.csv"), "rb").read() for p in times]
        if outs[0] != outs[1]:
            print("outputs differ", file=sys.stderr)
            return 1
        med = {p: statistics.median(t) for p, t in times.items()}
        print(f"VWAP job, {ROWS} rows, 8 tasks, 2 servers, median of {RUNS}: "
              f"qpeach {med['qpeach'] * 1000:.0f} ms, pykx {med['pykx'] * 1000:.0f} ms, "
              f"pykx/qpeach {med['pykx'] / med['qpeach']:.2f}x")
        return 0
    finally:
        for s in servers:
            s.stop()


if __name__ == "__main__":
    sys.exit(main())
