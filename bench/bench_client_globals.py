#!/usr/bin/env python3
"""Per-call cost of sending a remote function's globals at call time.

Starts a `qpeach serve` (build/qpeach), then times N calls of three
functions: one that reads no data global (the plain path), one that reads
an int global that does not change (an identity check, no pickling) and
one whose global changes at every call (pickled, hashed and sent again).
Prints microseconds per call (median of 5 runs); no assertions.

    PYTHONPATH=python /usr/bin/python3 bench/bench_client_globals.py
"""
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness                     # noqa: E402
import qpeach as kx                # noqa: E402

N = int(os.environ.get("N", "2000"))
K = 21


def none():
    return 1


def reads_k():
    return K


def per_call(fn, change):
    global K
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(N):
            if change:
                K = i
            fn()
        runs.append((time.perf_counter() - t0) / N * 1e6)
    return statistics.median(runs)


def main():
    s = harness.Server()
    try:
        sess = kx.remote.session(port=s.port)
        f0, f1 = kx.remote.function(sess)(none), kx.remote.function(sess)(reads_k)
        f0(), f1()
        sh = f1.shipped
        t0 = time.perf_counter()
        for _ in range(N):
            sh.globals_now()
        look = (time.perf_counter() - t0) / N * 1e6
        print(f"no data globals          {per_call(f0, False):8.1f} us/call")
        print(f"int global, unchanged    {per_call(f1, False):8.1f} us/call"
              f"   (the look itself: {look:.2f} us)")
        print(f"int global, changed      {per_call(f1, True):8.1f} us/call")
        sess.close()
    finally:
        s.stop()


if __name__ == "__main__":
    main()
