#!/usr/bin/env python3
"""bench_client.py - the Python client's costs, as ratios measured in one run.

  1. call latency: a decorated zero-argument function (after its first call,
     so it is registered) vs a bare `.qp.echo` round trip, both from Python
     over the C extension, p50 and p99 of N calls. Ratio = function / echo:
     the price of running Python on the worker per call.
  2. fan-out: VWAP by sym of a T-row trade table over 2 local workers
     (kx.remote.fanout, partitions by sym) vs the same numpy code in this
     process. Ratio = numpy / fan-out (> 1: the fan-out is faster). On a
     2-core machine shared with other work, and with the table shipped with
     each call, expect well under 1: this measures the overhead honestly.
  3. overlap: 2 sessions calling a function that sleeps 50 ms, 8 calls via
     fanout vs the same 8 calls on one session in a row. Ratio ~2 shows the
     GIL is released while waiting on the network.

Usage: PYTHONPATH=python /usr/bin/python3 bench/bench_client.py [--quick]
Needs build/qpeach and the extension (`make`).
"""
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness                          # noqa: E402
import qpeach as kx                     # noqa: E402

QUICK = "--quick" in sys.argv
N_CALLS = 300 if QUICK else 3000
T_ROWS = 200_000 if QUICK else 2_000_000


def pct(xs, p):
    return float(np.percentile(np.asarray(xs) * 1e6, p))


def has_python(sess):
    try:
        sess._call(".qp.def", "bench_probe",
                   kx.errors.CharVector("def bench_probe():\n    return 1\n"))
        return True
    except kx.QError:
        return False


def latency(sess):
    """Prints p50/p99 and returns the samples in seconds: {"echo": [...],
    "function": [...] (absent without Python on the worker)}; bench/harness.py
    calls this for its Python-client latency rows."""
    conn = sess._conn
    echo = []
    for _ in range(N_CALLS // 10):
        conn.call(".qp.echo", 0)                 # warm up
    for _ in range(N_CALLS):
        t0 = time.perf_counter()
        conn.call(".qp.echo", 0)
        echo.append(time.perf_counter() - t0)
    print(f"echo      p50 {pct(echo, 50):8.1f} us  p99 {pct(echo, 99):8.1f} us")
    if not has_python(sess):
        print("function  skipped: the worker has no Python functions (.qp.def)")
        return {"echo": echo}

    @kx.remote.function(sess)
    def zero_arg_function():
        return 10

    zero_arg_function()                          # ships and registers it
    fn = []
    for _ in range(N_CALLS):
        t0 = time.perf_counter()
        zero_arg_function()
        fn.append(time.perf_counter() - t0)
    print(f"function  p50 {pct(fn, 50):8.1f} us  p99 {pct(fn, 99):8.1f} us")
    print(f"ratio function/echo p50 {pct(fn, 50) / pct(echo, 50):.2f}")
    return {"echo": echo, "function": fn}


def trades(n, seed=7):
    rng = np.random.default_rng(seed)
    syms = np.array([f"S{i:03d}" for i in range(100)], dtype=object)
    return {"sym": rng.choice(syms, n), "price": rng.uniform(10, 200, n),
            "size": rng.integers(1, 10_000, n)}


def vwap(t):
    return float((t["price"] * t["size"]).sum() / t["size"].sum())


def fan(sessions):
    if not all(has_python(s) for s in sessions):
        print("fanout    skipped: the worker has no Python functions (.qp.def)")
        return
    t = trades(T_ROWS)
    # The same numpy code in one process, on the same partitions (grouped
    # by sym, in sorted order, as the scheduler plans by = column).
    base = 1e30
    for _ in range(1 if QUICK else 3):
        t0 = time.perf_counter()
        order = np.argsort(t["sym"], kind="stable")
        sk = t["sym"][order]
        cut = np.flatnonzero(sk[1:] != sk[:-1]) + 1
        local = [vwap({c: v[idx] for c, v in t.items()}) for idx in np.split(order, cut)]
        base = min(base, time.perf_counter() - t0)
    kx.remote.fanout(vwap, sessions, table={c: v[:1000] for c, v in t.items()}, by="sym")
    best = 1e30
    for _ in range(1 if QUICK else 3):
        t0 = time.perf_counter()
        got = kx.remote.fanout(vwap, sessions, table=t, by="sym")
        best = min(best, time.perf_counter() - t0)
    assert np.allclose(got, local)
    print(f"vwap by sym, {T_ROWS} rows: numpy in-process {base * 1e3:.1f} ms, "
          f"fanout over {len(sessions)} workers {best * 1e3:.1f} ms, "
          f"ratio numpy/fanout {base / best:.2f}")

    def sleepy(tbl):
        import time as _t
        _t.sleep(0.05)
        return len(tbl["x"])

    small = {"x": np.arange(8)}
    t0 = time.perf_counter()
    kx.remote.fanout(sleepy, sessions[:1], table=small, pieces=8, merge="sum")
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    kx.remote.fanout(sleepy, sessions, table=small, pieces=8, merge="sum")
    two = time.perf_counter() - t0
    print(f"overlap: 8 x 50 ms calls, 1 session {one * 1e3:.0f} ms, "
          f"{len(sessions)} sessions {two * 1e3:.0f} ms, ratio {one / two:.2f}")


def main():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    with harness.Server(env=env) as a, harness.Server(env=env) as b:
        sa = kx.remote.session(port=a.port)
        sb = kx.remote.session(port=b.port)
        print(f"== bench_client ({'quick' if QUICK else 'full'}): {N_CALLS} calls")
        latency(sa)
        fan([sa, sb])
        sa.close()
        sb.close()


if __name__ == "__main__":
    main()
