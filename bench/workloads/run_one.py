#!/usr/bin/python3
"""One contender on one workload at one size, in a process of its own (so
its peak memory is its own). Prints one JSON line:

  {"contender", "workload", "rows", "status": "ok" | "not available",
   "reason", "times": [s...], "result": [...], "data_bytes",
   "peak_kb": peak RSS of this process + its pool/worker processes
              (or of the qpeach servers, by VmHWM)}

usage: run_one.py CONTENDER WORKLOAD ROWS REPS
       WORKLOAD is vwap, rolling, cpu, or overhead (ROWS = task count)
Setup (starting pools and servers, loading the table) is not timed; one
warm-up run precedes REPS timed runs.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as c                   # noqa: E402
import peers                         # noqa: E402

RUNNERS = dict(peers.RUNNERS)
try:
    import qpeach_peers              # noqa: E402
    RUNNERS.update(qpeach_peers.RUNNERS)
    NotAvailable = qpeach_peers.NotAvailable
except ImportError as e:            # no extension built: qpeach contenders are missing
    _why = str(e)

    class NotAvailable(Exception):
        pass

    class _Missing:
        def __init__(self):
            raise NotAvailable(f"the qpeach Python client does not import: {_why}")
    for n in ("qpeach-threads", "qpeach-procs", "qpeach-fanout", "qpeach-run"):
        RUNNERS[n] = _Missing


def main():
    name, workload, rows, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    out = {"contender": name, "workload": workload, "rows": rows, "status": "ok"}
    runner = None
    try:
        runner = RUNNERS[name]()
        if workload == "overhead":
            t = c.make_table(c.NSYM * c.PIECES * 10)
            runner.setup(t)
            out["data_bytes"] = 0
            fn = lambda: runner.overhead(rows)   # noqa: E731
        else:
            t = c.make_table(rows)
            out["data_bytes"] = c.data_bytes(t)
            runner.setup(t)
            fn = lambda: runner.run(workload)     # noqa: E731
        got = fn()                                 # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            got = fn()
            times.append(time.perf_counter() - t0)
        if workload == "overhead":
            out["result"] = [len(got), int(sum(int(x) for x in got))]
        else:
            out["result"] = c.final(workload, got)
        out["times"] = times
        server_kb = sum(c.tree_hwm_kb(p) for p in runner.pids()) if name.startswith("qpeach") else 0
        runner.close()
        runner = None
        out["peak_kb"] = c.peak_kb_self() + max(c.peak_kb_children(), 0) + server_kb
        out["peak_kb_self"] = c.peak_kb_self()
    except NotAvailable as e:
        out.update(status="not available", reason=str(e))
    finally:
        if runner is not None:
            try:
                runner.close()
            except Exception:
                pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
