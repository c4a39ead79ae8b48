#!/usr/bin/env python3
"""bench_pykx.py - what PyKX's framing costs on `qpeach serve`, as ratios
measured in one run against one server over one connection.

PyKX's @kx.remote.function sends the function's whole source and the call
lambda with every call (../shared/PYKX_WIRE.md, Q3); qpeach's own client
defines the function once (.qp.def) and then sends only its name and the
arguments (.qp.call). The calls, each a one-argument `x + 10` on a long:

  pykx       Q3 with the same source every time (what PyKX sends): the
             server hashes it (SHA-256), finds it compiled and the function
             defined, and calls it.
  pykx-cold  Q3 with a source made distinct each time (a trailing comment),
             so every call parses, compiles and execs it: what q + pykx.q
             does on every call, and what the cache saves.
  qp.call    .qp.call[`f; enlist 10] after one .qp.def.

Printed: median latency of each (microseconds, over N round trips after a
warm-up, interleaved in rounds so drift hits all alike) and the ratios
pykx / qp.call and pykx-cold / pykx. The client is the pure-Python
tests/integration/qipc.py for all three, so its own cost is the same in
each. No figure is asserted; read the ratios, not the absolute times.

Usage: /usr/bin/python3 bench/bench_pykx.py [--quick]   (needs `make`)
"""
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "python"))

from harness import Server        # noqa: E402
from qipc import Conn, Sym        # noqa: E402
from qpeach._pykx_client import Q3   # PyKX's call lambda, byte for byte (PYKX_WIRE.md)  # noqa: E402

QUICK = "--quick" in sys.argv
N = 1000 if QUICK else 5000
ROUNDS = 10

# the source as dill/inspect give it: decorator line first
SRC = ("@kx.remote.function(session)\n"
       "def single_arg_function(x):\n"
       "    return x+10\n")
NAME = Sym("single_arg_function")


def timed(c, msg, want):
    t0 = time.perf_counter_ns()
    r = c.call(msg)
    dt = time.perf_counter_ns() - t0
    if r != want:
        raise SystemExit(f"bench_pykx: wrong answer {r!r}, wanted {want!r}")
    return dt


def main():
    with Server() as s:
        c = Conn(port=s.port, cap=6)
        c.call([Sym(".qp.def"), NAME, SRC.split("\n", 1)[1]])
        qp_msg = [Sym(".qp.call"), NAME, [10]]
        pykx_msg = [Q3, SRC, NAME, [10], 1]
        for _ in range(200):                           # warm-up: Python started, caches hot
            c.call(qp_msg)
            c.call(pykx_msg)
        t = {"pykx": [], "pykx-cold": [], "qp.call": []}
        k = 0
        per = N // ROUNDS
        for _ in range(ROUNDS):
            for _ in range(per):
                t["qp.call"].append(timed(c, qp_msg, 20))
            for _ in range(per):
                t["pykx"].append(timed(c, pykx_msg, 20))
            for _ in range(per):
                k += 1
                cold = [Q3, SRC + f"# call {k}\n", NAME, [10], 1]
                t["pykx-cold"].append(timed(c, cold, 20))
    med = {name: statistics.median(v) / 1000 for name, v in t.items()}
    print(f"bench_pykx: one-argument call, {per * ROUNDS} round trips each, medians")
    for name in ("qp.call", "pykx", "pykx-cold"):
        print(f"  {name:10s} {med[name]:8.1f} us")
    print(f"  ratio pykx / qp.call        {med['pykx'] / med['qp.call']:.2f}")
    print(f"  ratio pykx-cold / pykx      {med['pykx-cold'] / med['pykx']:.2f}"
          "   (compiling every call, as pykx.q does, against once per source)")


if __name__ == "__main__":
    main()
