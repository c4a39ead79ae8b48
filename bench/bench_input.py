#!/usr/bin/python3
"""Memory of a job's file input (issue 21.6): `qpeach run` over a q IPC file
or a CSV, which the scheduler converts once into a kdb+ splayed table that
its workers map, against the table's own bytes.

  bench_input.py [--rows N] [--kind ipc|csv] [--json]

The table is the workloads' trade table (bench/workloads/common.py: 100 syms,
price, size), made in a process of its own that exits before the runs: as a
q IPC file (-8! bytes; sym as int codes, 20 bytes a row) or as a CSV (sym as
names "s00".."s99", a symbol column). The job is VWAP by sym over `by =
rows` with `local = 2`, as the workloads' `qpeach run` contender runs it.

Measured: the whole run's peak memory, sampled every 10 ms as the sum over
qpeach run and all its descendants (the workers) of VmRSS (a mapped page
two processes touch counts twice) and of Pss (/proc/PID/smaps_rollup: a
shared page split between them); the scheduler's own peak RSS (its
VmHWM, last seen); the run's wall time. Each is taken for the first run (which
converts the input) and a second one (which maps the copy the first made).
The baseline is the table's bytes: the column files of that copy (what
the workers map). The VWAP is checked equal (relative 1e-9) to numpy's on
the same rows; exit 1 if not. Nothing here asserts a figure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QP = os.path.join(ROOT, os.environ.get("QPEACH_BUILD", "build"), "qpeach")
PY = "/usr/bin/python3"

# Writes the table (in a process of its own) and the VWAP numpy finds on it.
MAKE = r"""
import json, os, sys
sys.path[:0] = [sys.argv[4], sys.argv[5]]
import numpy as np
import common as c
rows, kind, d = int(sys.argv[1]), sys.argv[2], sys.argv[3]
t = c.make_table(rows)
pv = np.bincount(t["sym"], weights=t["price"] * t["size"], minlength=c.NSYM)
v = np.bincount(t["sym"], weights=t["size"].astype(float), minlength=c.NSYM)
with open(os.path.join(d, "want.json"), "w") as f:
    json.dump({"s%02d" % k: pv[k] / v[k] for k in range(c.NSYM) if v[k]}, f)
if kind == "ipc":
    from qpeach import _qpeach
    with open(os.path.join(d, "trade.qipc"), "wb") as f:
        f.write(_qpeach.dumps(t))
else:
    names = np.array(["s%02d" % k for k in range(c.NSYM)])
    step = 1_000_000
    with open(os.path.join(d, "trade.csv"), "w") as f:
        f.write("sym,price,size\n")
        for a in range(0, rows, step):
            b = min(rows, a + step)
            cols = [names[t["sym"][a:b]], np.char.mod("%.2f", t["price"][a:b]),
                    t["size"][a:b].astype(str)]
            f.write("\n".join(np.char.add(np.char.add(np.char.add(cols[0], ","),
                                                      np.char.add(cols[1], ",")), cols[2]).tolist()))
            f.write("\n")
"""

FUNCS = '''
import numpy as np


def vwap_codes(t):
    """Per sym: price * size and size summed, as a table (sum-by-key merges it)."""
    s = t["sym"]
    if hasattr(s, "codes"):                 # a CSV input's symbols, as codes
        names, s = np.asarray(s.categories).astype(str), np.asarray(s.codes)
    else:                                   # the IPC input's int codes
        names = np.array(["s%02d" % k for k in range(100)])
    z = t["size"]
    pv = np.bincount(s, weights=t["price"] * z, minlength=len(names))
    v = np.bincount(s, weights=z, minlength=len(names))
    keep = v > 0
    return {"sym": names[keep], "pv": pv[keep], "v": v[keep]}
'''

JOB = """[job]
function = {d}/funcs.py:vwap_codes
libraries = np=numpy
symbols = codes
[input]
table = trade
file = {d}/{file}
[partition]
by = rows
[workers]
local = 2
[merge]
how = sum-by-key
key = sym
[output]
path = {d}/out.csv
"""


def tree(pid):
    """pid and all its descendants, from /proc (every thread's children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def field_kb(path, name):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run(job):
    """One `qpeach run`, sampled: (peak RSS sum, peak PSS sum, scheduler's
    peak RSS, seconds), bytes."""
    t0 = time.perf_counter()
    p = subprocess.Popen([QP, "run", "--quiet", job], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rss = pss = hwm = 0
    while True:
        pids = tree(p.pid)
        hwm = max(hwm, field_kb(f"/proc/{p.pid}/status", "VmHWM:"))
        rss = max(rss, sum(field_kb(f"/proc/{q}/status", "VmRSS:") for q in pids))
        pss = max(pss, sum(field_kb(f"/proc/{q}/smaps_rollup", "Pss:") for q in pids))
        got, status, _ = os.wait4(p.pid, os.WNOHANG)
        if got:
            break
        time.sleep(0.01)
    secs = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code:
        sys.exit(f"qpeach run failed ({code}): {err[-2000:]}")
    return rss * 1024, pss * 1024, hwm * 1024, secs


def copy_bytes(d):
    """The column files of the splayed copy the run made of its input."""
    state = os.path.join(d, ".qpeach")
    total = 0
    for top, _, files in os.walk(state):
        if os.path.basename(top) == "trade":
            total += sum(os.path.getsize(os.path.join(top, f)) for f in files if not f.startswith("."))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--kind", choices=("ipc", "csv"), default="ipc")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="qpeach-bench-input-")
    try:
        subprocess.run([PY, "-c", MAKE, str(a.rows), a.kind, d, os.path.join(HERE, "workloads"),
                        os.path.join(ROOT, "python")], check=True)
        with open(os.path.join(d, "funcs.py"), "w") as f:
            f.write(FUNCS)
        job = os.path.join(d, "job.ini")
        fname = "trade.qipc" if a.kind == "ipc" else "trade.csv"
        with open(job, "w") as f:
            f.write(JOB.format(d=d, file=fname))
        file_bytes = os.path.getsize(os.path.join(d, fname))
        first = run(job)
        second = run(job)
        table = copy_bytes(d)
        with open(os.path.join(d, "want.json")) as f:
            want = json.load(f)
        got = {}
        with open(os.path.join(d, "out.csv")) as f:
            next(f)
            for line in f:
                s, pv, v = line.strip().split(",")
                got[s] = float(pv) / float(v)
        same = sorted(got) == sorted(want) and all(abs(got[k] - want[k]) <= 1e-9 * abs(want[k])
                                                   for k in want)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    mb = 2 ** 20
    print(f"{a.kind} input, {a.rows:,} rows: file {file_bytes / mb:.0f} MB, table (the splayed "
          f"copy's columns) {table / mb:.0f} MB")
    for name, (rss, pss, sched, secs) in (("first run (converts)", first), ("second run (maps)", second)):
        print(f"  {name}: {secs:.2f} s; peak of all processes RSS {rss / mb:.0f} MB = "
              f"{rss / table:.2f}x the table, PSS {pss / mb:.0f} MB = {pss / table:.2f}x; "
              f"scheduler's own peak RSS {sched / mb:.0f} MB")
    print(f"  results equal: {'yes' if same else 'NO'}")
    if a.json:
        print(json.dumps({"rows": a.rows, "kind": a.kind, "file_bytes": file_bytes, "table_bytes": table,
                          "first": first, "second": second, "same": same}))
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
