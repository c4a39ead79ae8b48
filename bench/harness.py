#!/usr/bin/python3
"""bench/harness.py - qpeach side by side with what users would pick instead.

    /usr/bin/python3 bench/harness.py --quick     # make bench-quick (< 3 min, 2 cores)
    /usr/bin/python3 bench/harness.py             # make bench (full: long)

Every figure is a ratio against a baseline measured in this same invocation
on the same data, and every contender's result is checked equal to the
baseline's (a difference fails the run: exit 1). Noisy machines: runs are
repeated and medians (latency: p50/p99) reported. Nothing here asserts a
speed.

Sections (each reuses the bench that already measures it):
  codec     build/bench/bench_codec (qpeach vs memcpy, C) and
            bench/nodeq_codec.js (node-q on the same values; its bytes are
            checked equal to qpeach's encoder's)
  latency   build/bench/bench_latency: bare TCP and unix ping-pong floors,
            memcpy, `.qp.echo` in-process; then against a real `qpeach
            serve` with Python: `.qp.echo` and a zero-argument function
            from C, and from the Python client (bench_client.latency)
  overhead  10,000 tasks of an empty function (workloads/run_one.py)
  pertask   what a small task costs beyond start-up: kx.remote.map and
            `qpeach run` of 10,000 no-op items, .qp.peach on -s -2, each
            against Pool(2).map(chunksize=1) (bench_pertask.py)
  groupby   `by = column` over a 1M-row, 5-date, 300-sym db, the whole
            `qpeach run`, against a pandas groupby (bench_groupby.py)
  workloads VWAP by sym, pandas group-by rolling mean, CPU-bound pure Python
            by every contender in workloads/ (run_one.py, one process each)
  csv       `qpeach db import` of a trades CSV vs pandas.read_csv of it
            (bench_import.py): time, GB/s, peak RSS / the CSV's bytes
  input     a job's q IPC file or CSV input converted to the splayed copy
            its workers map (bench_input.py): the whole run's peak RSS /
            the table's bytes, at 100M rows (10M with --quick)
  growth    time and peak memory per row as rows grow

Output (bench/results/): <mode>-<stamp>.csv (every figure plus machine
info), <mode>.md (the tables), <mode>-*.png (bench/plot.py).
"""
import argparse
import csv
import datetime
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, os.environ.get("QPEACH_BUILD", "build"))
PY = "/usr/bin/python3"
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, os.path.join(HERE, "workloads"))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import common  # noqa: E402

CONTENDERS = ["numpy", "pool-fork", "pool-ship", "dask-procs", "dask-threads",
              "qpeach-threads", "qpeach-procs", "qpeach-threads-res", "qpeach-procs-res",
              "qpeach-fanout", "qpeach-run"]
LABEL = {
    "numpy": "numpy, 1 process",
    "pool-fork": "Pool(2), table inherited by fork",
    "pool-ship": "Pool(2), partitions shipped",
    "dask-procs": "Dask processes (2)",
    "dask-threads": "Dask threads (2)",
    "qpeach-threads": "qpeach -s 2 (threads), .qp.peach, parts shipped",
    "qpeach-procs": "qpeach -s -2 (processes), .qp.peach, parts shipped",
    "qpeach-threads-res": "qpeach -s 2 (threads), .qp.peach, table resident",
    "qpeach-procs-res": "qpeach -s -2 (processes), .qp.peach, table resident",
    "qpeach-fanout": "qpeach fanout, 2 workers, resident table",
    "qpeach-run": "qpeach run, local = 2",
}
OVERHEAD_LABEL = dict(LABEL, **{
    "numpy": "plain loop, 1 process (reference)",
    "pool-fork": "Pool(2).map, chunksize=1",
    "pool-ship": "Pool(2).map, default chunksize",
    "qpeach-fanout": "qpeach fanout, 2 workers (1 round trip/task)",
    "qpeach-run": "qpeach run, local = 2 (whole job incl. worker start)",
})
# The per-task overhead has no resident table to read: one peach per mode.
OVERHEAD_CONTENDERS = [c for c in CONTENDERS if not c.endswith("-res")]

rows_out = []          # every figure: dicts with the CSV columns below
failures = []
FIELDS = ["section", "case", "contender", "metric", "value", "unit", "baseline",
          "ratio", "ratio_meaning", "status", "note"]


def emit(section, case, contender, metric, value, unit="", baseline="", ratio="",
         meaning="", status="ok", note=""):
    rows_out.append(dict(section=section, case=case, contender=contender, metric=metric,
                         value=value, unit=unit, baseline=baseline, ratio=ratio,
                         ratio_meaning=meaning, status=status, note=note))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def install_nodeq():
    """node-q from npm into bench/node_modules, once (before machine() reads
    its version)."""
    if not os.path.isdir(os.path.join(HERE, "node_modules", "node-q")):
        sh(["npm", "install", "--no-audit", "--no-fund", "--no-save", "node-q"], cwd=HERE, timeout=300)


def machine():
    info = {}
    info["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    info["cores"] = os.cpu_count()
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    info["cpu"] = model
    info["kernel"] = platform.release()
    with open("/proc/meminfo") as f:
        info["mem_total_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    info["load_avg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["python"] = platform.python_version()
    for mod in ("numpy", "pandas", "dask"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = "missing"
    info["cc"] = sh(["cc", "--version"]).stdout.splitlines()[0] if sh(["which", "cc"]).returncode == 0 else ""
    info["node"] = sh(["node", "--version"]).stdout.strip() if sh(["which", "node"]).returncode == 0 else "missing"
    try:
        with open(os.path.join(HERE, "node_modules", "node-q", "package.json")) as f:
            info["node-q"] = json.load(f)["version"]
    except OSError:
        info["node-q"] = "missing"
    info["qpeach_commit"] = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.strip()
    return info


# ---- codec ----

def codec(quick):
    log("== codec")
    r = sh([os.path.join(BUILD, "bench", "bench_codec")] + (["--quick"] if quick else []))
    if r.returncode:
        failures.append("bench_codec failed: " + r.stderr[-300:])
        return
    qp = {}
    for line in r.stdout.splitlines():
        if line.startswith("CSV,codec,"):
            _, _, value, op, t, nbytes, tm = line.split(",")
            qp[(value, op)] = (float(t), float(nbytes), float(tm))
    pick = {  # the figures that match what node-q does (a fresh message / a copy)
        ("float", "encode"): "qp_ipc_encode (fresh malloc)",
        ("float", "decode"): "decode misplaced (copy)",
        ("float", "decode zero-copy"): "decode placed (zero-copy)",
        ("long", "encode"): "qp_ipc_encode (fresh malloc)",
        ("long", "decode"): "decode misplaced (copy)",
        ("long", "decode zero-copy"): "decode placed (zero-copy)",
        ("symbol", "encode"): "encode_body",
        ("symbol", "decode"): "decode",
        ("table", "encode"): "encode",
        ("table", "decode"): "decode",
    }
    n = (10 << 20) // 8 if quick else (100 << 20) // 8
    s = 100_000 if quick else 1_000_000
    # The same values through qpeach's encoder (the C codec via the Python
    # extension) give the bytes node-q must produce.
    import numpy as np
    from qpeach import _qpeach
    want = {
        "float": _qpeach.dumps(np.arange(n) * 0.25),
        "long": _qpeach.dumps(np.arange(n, dtype=np.int64) * 7),
        "symbol": _qpeach.dumps(np.array([f"sym{i % 1000:04d}" for i in range(s)], dtype=object)),
    }
    table = _qpeach.dumps({"sym": np.array(["IBM" if i % 2 else "MSFT" for i in range(10)], dtype=object),
                           "price": 100.0 + np.arange(10), "size": 10 * np.arange(10, dtype=np.int64)})
    nq = {}
    with tempfile.NamedTemporaryFile(suffix=".qipc") as tf:
        tf.write(table)
        tf.flush()
        r = sh(["node", os.path.join(HERE, "nodeq_codec.js"), str(n), str(s), tf.name], timeout=900)
    if r.returncode:
        note = (r.stderr.strip().splitlines() or ["node-q not installed"])[-1]
        log("node-q: not available:", note)
    for line in r.stdout.splitlines():
        if line.startswith("CSV,nodeq,"):
            _, _, value, op, t, nbytes, tm, digest = line.split(",")
            nq[(value, op)] = (float(t), float(nbytes), float(tm))
            if value in want and digest != hashlib.sha256(want[value][8:]).hexdigest():
                failures.append(f"codec: node-q's {value} bytes differ from qpeach's")
    for (value, op), name in pick.items():
        if (value, name) not in qp:
            continue
        t, nbytes, tm = qp[(value, name)]
        emit("codec", value, "qpeach", op, t, "s", tm, tm / t, "memcpy time / codec time (1 = memcpy speed)",
             note=f"{nbytes / t / 1e9:.2f} GB/s; {name}")
        base_op = op.replace(" zero-copy", "")
        if op.endswith("zero-copy"):
            continue
        if (value, base_op) in nq:
            tn, nb, tmn = nq[(value, base_op)]
            emit("codec", value, "node-q", op, tn, "s", tmn, tmn / tn,
                 "memcpy time / codec time (node's Buffer.copy)", note=f"{nb / tn / 1e9:.3f} GB/s")
            emit("codec", value, "qpeach vs node-q", op, t, "s", tn, (tn / nb) / (t / nbytes),
                 "node-q time per byte / qpeach time per byte (>1: qpeach faster)")
        else:
            emit("codec", value, "node-q", op, "", "", "", "", "", "not available",
                 "node-q cannot serialize tables" if value == "table" else "node-q did not run")


# ---- latency ----

def _latency_lines(out, section_case_prefix=""):
    got = {}
    for line in out.splitlines():
        if line.startswith("CSV,latency,"):
            f = line.split(",")
            case, who, p50, p99 = ",".join(f[2:-4]), f[-4], f[-3], f[-2]
            got[(case, who)] = (float(p50), float(p99))
    return got


def latency(quick):
    log("== latency")
    rounds = 2000 if quick else 20000
    runs = 2 if quick else 5
    binp = os.path.join(BUILD, "bench", "bench_latency")
    samples = {}
    for _ in range(runs):
        r = sh([binp, str(rounds)])
        if r.returncode:
            failures.append("bench_latency failed: " + r.stderr[-300:])
            return
        for k, v in _latency_lines(r.stdout).items():
            samples.setdefault(k, []).append(v)
    # Against a real `qpeach serve` with Python, from C and from Python.
    import harness
    import qpeach as kx
    import bench_client
    from qpeach.errors import CharVector
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    with harness.Server(env=env) as srv:
        sess = kx.remote.session(port=srv.port)
        has_fn = True
        try:
            sess._call(".qp.def", "zero", CharVector("def zero():\n    return 10\n"))
        except kx.QError:
            has_fn = False
        for _ in range(runs):
            r = sh([binp, str(rounds), "--server", srv.addr] + (["--fn", "zero"] if has_fn else []))
            if r.returncode:
                failures.append("bench_latency --server failed: " + r.stderr[-300:])
                break
            for k, v in _latency_lines(r.stdout).items():
                samples.setdefault(k, []).append(v)
        bench_client.N_CALLS = rounds
        for _ in range(runs):
            got = bench_client.latency(sess) or {}
            for who, xs in got.items():
                xs = sorted(xs)
                key = ("qpeach serve (a long atom) tcp",
                       "Python client .qp.echo" if who == "echo" else "Python client decorated zero-arg fn")
                samples.setdefault(key, []).append((xs[len(xs) // 2] * 1e6, xs[len(xs) * 99 // 100] * 1e6))
        sess.close()
    for (case, who), vals in sorted(samples.items()):
        floor_who = "bare unix ping-pong" if case.endswith("unix") else "bare TCP ping-pong"
        fl = samples.get((case, floor_who))
        p50 = statistics.median(v[0] for v in vals)
        p99 = statistics.median(v[1] for v in vals)
        f50 = statistics.median(v[0] for v in fl) if fl else ""
        f99 = statistics.median(v[1] for v in fl) if fl else ""
        emit("latency", case, who, "p50", p50, "us", f50, p50 / f50 if fl else "",
             f"p50 / {floor_who} p50 (1 = the floor)", note=f"median of {len(vals)} runs")
        emit("latency", case, who, "p99", p99, "us", f99, p99 / f99 if fl else "",
             f"p99 / {floor_who} p99")


# ---- overhead, workloads, growth ----

def run_one(contender, workload, rows, reps):
    r = sh([PY, os.path.join(HERE, "workloads", "run_one.py"), contender, workload, str(rows), str(reps)],
           timeout=3600)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"status": "failed", "reason": (r.stderr.strip().splitlines() or ["no output"])[-1]}


def overhead(quick):
    log("== per-task overhead (10,000 tasks)")
    n = 10_000
    reps = 2 if quick else 5
    res = {c: run_one(c, "overhead", n, reps) for c in OVERHEAD_CONTENDERS}
    base = res["pool-fork"]
    bt = statistics.median(base["times"]) if base.get("status") == "ok" else None
    for c, r in res.items():
        if r.get("status") != "ok":
            emit("overhead", "10000 empty tasks", OVERHEAD_LABEL[c], "us/task", "", "", "", "", "",
                 "not available" if r.get("status") == "not available" else "failed", r.get("reason", ""))
            if r.get("status") == "failed":
                failures.append(f"overhead {c}: {r.get('reason')}")
            continue
        if r["result"] != base.get("result"):
            failures.append(f"overhead {c}: result {r['result']} differs from Pool's {base.get('result')}")
        t = statistics.median(r["times"])
        emit("overhead", "10000 empty tasks", OVERHEAD_LABEL[c], "us/task", t / n * 1e6, "us",
             bt / n * 1e6, bt / t, "Pool chunksize=1 time / this time (>1: faster)",
             note=f"median of {len(r['times'])}")


def workloads(quick):
    sizes = [1_000_000] if quick else [1_000_000, 10_000_000]
    with open("/proc/meminfo") as f:
        avail_kb = next(int(l.split()[1]) for l in f if l.startswith("MemAvailable"))
    big = 100_000_000
    # 100M rows are 2 GB; shipping contenders hold ~4 copies at once.
    if not quick and avail_kb * 1024 > 5 * 20 * big:
        sizes.append(big)
    reps = 2 if quick else 5
    for rows in sizes:
        for w in common.WORKLOADS:
            if rows >= big and w != "vwap":
                emit("workload", f"{w} {rows // 1_000_000}M", "all", "median s", "", "", "", "", "",
                     "skipped", "100M rows: vwap only (the others take minutes per run)")
                continue
            r_reps = reps if rows < 10_000_000 else 3
            log(f"== {w}, {rows:,} rows")
            res = {}
            for c in CONTENDERS:
                res[c] = run_one(c, w, rows, r_reps)
                log(f"   {c}: {res[c].get('status')} "
                    f"{statistics.median(res[c]['times']) if res[c].get('times') else ''}")
            base = res["numpy"]
            bt = statistics.median(base["times"])
            for c, r in res.items():
                case = f"{w} {rows // 1_000_000}M"
                if r.get("status") != "ok":
                    emit("workload", case, LABEL[c], "median s", "", "", "", "", "",
                         "not available" if r.get("status") == "not available" else "failed",
                         r.get("reason", ""))
                    if r.get("status") == "failed":
                        failures.append(f"{case} {c}: {r.get('reason')}")
                    continue
                if not common.same(r["result"], base["result"]):
                    failures.append(f"{case}: {c}'s result differs from numpy's")
                    emit("workload", case, LABEL[c], "median s", "", "", "", "", "", "RESULT DIFFERS")
                    continue
                t = statistics.median(r["times"])
                emit("workload", case, LABEL[c], "median s", t, "s", bt, bt / t,
                     "numpy 1-process time / this time (>1: faster)",
                     note=f"median of {len(r['times'])}; peak {r['peak_kb'] / 1024:.0f} MB")
                emit("growth", w, LABEL[c], "ns/row", t / rows * 1e9, "ns", rows, "", "", note=str(rows))
                emit("growth", w, LABEL[c], "peak bytes/row", r["peak_kb"] * 1024 / rows, "B",
                     r["data_bytes"] / rows, r["peak_kb"] * 1024 / r["data_bytes"],
                     "peak RSS (all processes) / the table's own bytes", note=str(rows))


def bench_json(section, differs, script, *args, timeout=3600):
    """Runs bench/SCRIPT ARGS --json: its last line, parsed; None (the
    failure noted) when there is none. A result not "same" as its
    baseline's is noted as the failure `differs` (None: the script checks
    its own results and fails without JSON)."""
    r = sh([PY, os.path.join(HERE, script), *args, "--json"], timeout=timeout)
    try:
        j = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        failures.append(f"{section}: " + (r.stderr.strip().splitlines() or ["no output"])[-1])
        return None
    if differs and not j["same"]:
        failures.append(f"{section}: {differs}")
    return j


def cold(quick):
    """A cold job from a kdb+ db vs numpy on mmap'd .npy, then the same job
    warm, on kept workers ([workers] keep), and its first run (bench_cold.py)."""
    rows = 1_000_000 if quick else 10_000_000
    log(f"== cold job from a kdb+ db, {rows:,} rows")
    j = bench_json("cold", "qpeach's VWAP differs from numpy's", "bench_cold.py", "--rows", str(rows),
                   "--reps", "3" if quick else "9")
    if not j:
        return
    case = f"vwap {rows // 1_000_000}M from a db"
    mn, mq = statistics.median(j["numpy_s"]), statistics.median(j["qpeach_s"])
    emit("cold", case, "qpeach run, local = 2", "median s", mq, "s", mn, j["ratio"],
         "numpy on mmap'd .npy, 1 process / this time (>1: faster), median of paired runs' ratios",
         note=f"median of {len(j['qpeach_s'])}")
    emit("cold", case, "workers' peak PSS", "bytes", j["pss_bytes"], "B", j["table_bytes"],
         j["pss_bytes"] / j["table_bytes"], "PSS of both workers / the table's bytes")
    w = j.get("warm")
    for symbols in ("codes", "categorical") if w else ():
        x = w[symbols]
        emit("cold", case, f"warm, kept workers, symbols = {symbols}", "median s",
             statistics.median(x["warm_s"]), "s", statistics.median(x["numpy_s"]), x["ratio"],
             "numpy on mmap'd .npy / this time, median of paired runs' ratios (target >= 2)",
             note=f"runs after the first ({x['first_s']:.3f} s), median of {len(x['warm_s'])}")
    if w:
        f = w["first"]
        emit("cold", case, "first run with keep", "median s", statistics.median(f["keep_s"]), "s",
             statistics.median(f["plain_s"]), f["ratio"],
             "the same job without keep / this time (>= 1: no slower)",
             note=f"after qpeach workers stop, median of {len(f['keep_s'])}")


def pertask(quick):
    """What a small task costs beyond start-up (bench_pertask.py)."""
    log("== per-task cost (map, run, peach vs Pool)")
    j = bench_json("pertask", None, "bench_pertask.py", "--n", "10000", "--reps", "3" if quick else "7")
    if not j:
        return
    case = f"{j['n']} no-op items"
    pool = j["pool_us"]
    meaning = "Pool(2).map chunksize=1, per item / this, per item (>1: cheaper)"
    emit("pertask", case, "Pool(2).map, chunksize=1 (baseline)", "us/item", pool, "us", pool, 1.0,
         meaning, note=f"median of {j['reps']}, started pool")
    for key, who, note in (
            ("map_us", "kx.remote.map, local = 2", f"beyond start-up: {j['map_n_s']:.3f}s for "
             f"{j['n']} items, {j['map_10_s']:.3f}s for 10"),
            ("run_us", "qpeach run, local = 2", f"beyond start-up: {j['run_n_s']:.3f}s for "
             f"{j['n']} tasks, {j['run_10_s']:.3f}s for 10"),
            ("peach_us", ".qp.peach, qpeach serve -s -2", "a started server")):
        emit("pertask", case, who, "us/item", j[key], "us", pool, pool / j[key] if j[key] > 0 else "",
             meaning, note=note)


def groupby(quick):
    """`by = column` over a partitioned db vs pandas (bench_groupby.py)."""
    rows, syms = (200_000, 100) if quick else (1_000_000, 300)
    log(f"== by = column, {rows:,} rows, {syms} syms")
    j = bench_json("groupby", None, "bench_groupby.py", "--rows", str(rows), "--syms", str(syms),
                   "--reps", "3" if quick else "7")
    if not j:
        return
    q, p = statistics.median(j["qpeach_s"]), statistics.median(j["pandas_s"])
    case = f"{rows // 1000}k rows, {j['dates']} dates, {syms} syms"
    meaning = "pandas groupby time / this time (<1: pandas faster)"
    emit("groupby", case, "pandas groupby, 1 process (baseline)", "median s", p, "s", p, 1.0, meaning,
         note=f"median of {j['reps']}; the rows in memory")
    emit("groupby", case, "qpeach run, by = column, local = 2 (whole job)", "median s", q, "s", p,
         p / q, meaning, note=f"median of {j['reps']}, best {min(j['qpeach_s']):.3f}s; "
                              "worker start included")


def csv_import(quick):
    """`qpeach db import` of a trades CSV vs pandas.read_csv (bench_import.py)."""
    rows = 3_000_000 if quick else 10_000_000
    log(f"== CSV import, {rows:,} rows")
    j = bench_json("csv", "the imported table differs from pandas' frame", "bench_import.py", "--rows",
                   str(rows), "--reps", "3" if quick else "5")
    if not j:
        return
    case = f"{rows // 1_000_000}M rows, {j['csv_bytes'] / 1e6:.0f} MB"
    mq, mp = statistics.median(j["qpeach_s"]), statistics.median(j["pandas_s"])
    emit("csv", case, "qpeach db import --types SFJ", "median s", mq, "s", mp, j["ratio"],
         "pandas read_csv time / this time (>1: faster), median of paired runs' ratios",
         note=f"{j['csv_bytes'] / mq / 1e9:.2f} GB/s; median of {len(j['qpeach_s'])}")
    emit("csv", case, "pandas read_csv, same dtypes", "median s", mp, "s", mp, 1.0, "",
         note=f"{j['csv_bytes'] / mp / 1e9:.2f} GB/s; median of {len(j['pandas_s'])}")
    emit("csv", case, "qpeach db import: peak RSS", "bytes", j["peak_bytes"], "B", j["csv_bytes"],
         j["peak_bytes"] / j["csv_bytes"], "peak RSS / the CSV's bytes")


def input_memory(quick):
    """A job's q IPC file or CSV input converted to a splayed copy: the
    whole run's peak memory against the table's bytes (bench_input.py)."""
    with open("/proc/meminfo") as f:
        avail = next(int(l.split()[1]) for l in f if l.startswith("MemAvailable")) * 1024
    rows = 10_000_000 if quick or avail < 12 * 2**30 else 100_000_000
    for kind in ("ipc", "csv"):
        log(f"== {kind} input, {rows:,} rows")
        j = bench_json(f"input {kind}", "the VWAP differs from numpy's", "bench_input.py", "--rows",
                       str(rows), "--kind", kind, timeout=7200)
        if not j:
            continue
        case = f"{'q IPC file' if kind == 'ipc' else 'CSV'} input, {rows // 1_000_000}M rows"
        tb = j["table_bytes"]
        for name, (rss, pss, sched, secs) in (("first run (converts)", j["first"]),
                                              ("second run (maps the copy)", j["second"])):
            emit("input", case, name, "peak RSS", rss, "B", tb, rss / tb,
                 "peak of the run's summed RSS (scheduler + workers) / the table's bytes",
                 note=f"{secs:.2f} s; PSS {pss / tb:.2f}x; scheduler alone {sched / tb:.2f}x")


def growth(quick):
    """Extra sizes for the cost-growth curves (the workload sizes add theirs)."""
    sizes = [300_000, 3_000_000] if quick else [100_000, 300_000, 3_000_000, 30_000_000]
    for rows in sizes:
        log(f"== growth, vwap, {rows:,} rows")
        base = None
        for c in ("numpy", "pool-fork", "qpeach-threads-res", "qpeach-fanout"):
            r = run_one(c, "vwap", rows, 2 if quick else 3)
            if r.get("status") != "ok":
                continue
            if base is None:
                base = r
            elif not common.same(r["result"], base["result"]):
                failures.append(f"growth vwap {rows}: {c}'s result differs from numpy's")
                continue
            t = statistics.median(r["times"])
            emit("growth", "vwap", LABEL[c], "ns/row", t / rows * 1e9, "ns", rows, "", "", note=str(rows))
            emit("growth", "vwap", LABEL[c], "peak bytes/row", r["peak_kb"] * 1024 / rows, "B",
                 r["data_bytes"] / rows, r["peak_kb"] * 1024 / r["data_bytes"],
                 "peak RSS (all processes) / the table's own bytes", note=str(rows))


# ---- output ----

def fmt(x, nd=2):
    if x == "" or x is None:
        return ""
    if isinstance(x, float):
        if abs(x) >= 100:
            return f"{x:.0f}"
        if abs(x) >= 1:
            return f"{x:.{nd}f}"
        return f"{x:.3g}"
    return str(x)


def markdown(info, mode, cmd, csv_name):
    L = [f"## qpeach benchmarks ({mode})", "",
         f"`{cmd}` on {info['cores']} cores ({info['cpu']}), Linux {info['kernel']}, "
         f"Python {info['python']}, numpy {info['numpy']}, pandas {info['pandas']}, "
         f"dask {info['dask']}, node {info['node']}, node-q {info['node-q']}; "
         f"qpeach {info['qpeach_commit']}, {info['date']}, load average {info['load_avg']}. "
         f"Every ratio is against a baseline measured in the same run on the same data; "
         f"results were checked equal. Raw figures: `bench/results/{csv_name}`."
         + (f" Sections measured in this run: {info['rerun']} (earlier runs: their CSV holds their "
            f"machine line)." if info.get("rerun") else ""), ""]

    def table(section, head, row):
        rs = [r for r in rows_out if r["section"] == section]
        if not rs:
            return
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "---|" * len(head))
        for r in rs:
            x = row(r)
            if x:
                L.append("| " + " | ".join(x) + " |")
        L.append("")

    L += ["### Workloads (time; ratio = numpy in one process / contender, > 1 is faster)", ""]
    table("workload", ["workload", "contender", "median", "× numpy", "note"],
          lambda r: [r["case"], r["contender"], fmt(r["value"]) + (" s" if r["value"] != "" else ""),
                     fmt(r["ratio"]) if r["status"] == "ok" else r["status"], r["note"]])
    L += ["### Cold job from a kdb+ db (ratio = numpy on mmap'd .npy in one process / qpeach run; "
          "PSS of both workers / the table's bytes)", ""]
    table("cold", ["case", "measure", "value", "ratio", "note"],
          lambda r: [r["case"], r["contender"], fmt(r["value"]) + " " + r["unit"], fmt(r["ratio"]), r["note"]])
    L += ["### CSV import (ratio = pandas read_csv of the same file, same dtypes / qpeach; "
          "peak RSS / the CSV's bytes)", ""]
    table("csv", ["case", "measure", "value", "ratio", "note"],
          lambda r: [r["case"], r["contender"], fmt(r["value"]) + " " + r["unit"], fmt(r["ratio"]), r["note"]])
    L += ["### A job's file input converted to a splayed copy (ratio = the whole run's peak RSS, "
          "scheduler + workers, / the table's bytes)", ""]
    table("input", ["case", "run", "peak RSS", "× table", "note"],
          lambda r: [r["case"], r["contender"], f"{r['value'] / 2**20:.0f} MB", fmt(r["ratio"]), r["note"]])
    L += ["### Per-task overhead, 10,000 empty tasks (ratio = Pool chunksize=1 / contender)", ""]
    table("overhead", ["contender", "µs per task", "× Pool", "note"],
          lambda r: [r["contender"], fmt(r["value"]), fmt(r["ratio"]) if r["status"] == "ok" else r["status"],
                     r["note"]])
    L += ["### Per-task cost of small tasks (ratio = Pool(2).map chunksize=1 per item / "
          "contender's; > 1 is cheaper)", ""]
    table("pertask", ["case", "contender", "µs per item", "× Pool", "note"],
          lambda r: [r["case"], r["contender"], fmt(r["value"]), fmt(r["ratio"]), r["note"]])
    L += ["### by = column over a partitioned db (ratio = pandas groupby / contender; whole run)", ""]
    table("groupby", ["case", "contender", "median", "× pandas", "note"],
          lambda r: [r["case"], r["contender"], fmt(r["value"]) + " s", fmt(r["ratio"]), r["note"]])
    L += ["### Call latency (ratio = contender / bare socket ping-pong of the same bytes)", ""]
    table("latency", ["case", "path", "p50 µs", "p99 µs", "p50 × floor", "p99 × floor"],
          lambda r: None)
    lat = [r for r in rows_out if r["section"] == "latency"]
    L.pop()  # the empty table's trailing line
    by = {}
    for r in lat:
        by.setdefault((r["case"], r["contender"]), {})[r["metric"]] = r
    for (case, who), m in by.items():
        L.append(f"| {case} | {who} | {fmt(m['p50']['value'])} | {fmt(m['p99']['value'])} | "
                 f"{fmt(m['p50']['ratio'])} | {fmt(m['p99']['ratio'])} |")
    L.append("")
    L += ["### Codec throughput (ratio = memcpy of the same bytes / codec, 1 = memcpy speed)", ""]
    table("codec", ["value", "codec", "operation", "× memcpy / vs node-q", "note"],
          lambda r: [r["case"], r["contender"], r["metric"],
                     fmt(r["ratio"]) if r["status"] == "ok" else r["status"], r["note"]])
    L += ["### Cost growth (vwap; peak = RSS of every process of the contender / the table's bytes)", ""]
    g = {}
    for r in rows_out:
        if r["section"] == "growth" and r["case"] == "vwap":
            g.setdefault((r["contender"], int(r["note"])), {})[r["metric"]] = r
    L.append("| contender | rows | ns/row | peak bytes/row | peak / data |")
    L.append("|---|---|---|---|---|")
    for (who, n), m in sorted(g.items()):
        L.append(f"| {who} | {n:,} | {fmt(m['ns/row']['value'])} | {fmt(m['peak bytes/row']['value'])} | "
                 f"{fmt(m['peak bytes/row']['ratio'])} |")
    L.append("")
    if failures:
        L += ["### FAILURES", ""] + [f"- {f}" for f in failures] + [""]
    return "\n".join(L)


ALL_SECTIONS = "codec,latency,overhead,pertask,groupby,workloads,cold,csv,input,growth"


def earlier_rows(mode, rerun):
    """With --only: the figures of the other sections, from the run whose
    CSV the current <mode>.md names (none if there is none). Returns the
    rows and, per section kept, the CSV it was measured in (that run's
    own, or the one it kept it from)."""
    try:
        with open(os.path.join(RESULTS, f"{mode}.md")) as f:
            name = re.search(r"Raw figures: `bench/results/([^`]+)`", f.read()).group(1)
        with open(os.path.join(RESULTS, name), newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, AttributeError):
        return [], {}
    was = next((r["value"] for r in rows if r["section"] == "machine" and r["case"] == "sources"), "")
    was = dict(x.split("=", 1) for x in was.split(";") if "=" in x)
    rows = [r for r in rows if r["section"] not in rerun + ["machine", "failure"]]
    for r in rows:
        for k in ("value", "baseline", "ratio"):
            try:
                r[k] = float(r[k])
            except ValueError:
                pass
    return rows, {r["section"]: was.get(r["section"], name) for r in rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="comma list of sections (" + ALL_SECTIONS + "); the others' "
                    "figures are kept from the run the current results name")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args()
    mode = "quick" if a.quick else "full"
    cmd = "make bench-quick" if a.quick else "make bench"
    sections = (a.only or ALL_SECTIONS).split(",")
    if "codec" in sections:
        install_nodeq()
    info = machine()
    log("machine:", json.dumps(info))
    for s in sections:
        {"codec": codec, "latency": latency, "overhead": overhead, "pertask": pertask,
         "groupby": groupby, "workloads": workloads, "cold": cold, "csv": csv_import,
         "input": input_memory, "growth": growth}[s](a.quick)
    if a.only:
        kept, sources = earlier_rows(mode, sections)
        rows_out.extend(kept)
        if kept:
            info["sources"] = ";".join(f"{k}={v}" for k, v in sources.items())
            by_file = {}
            for k, v in sources.items():
                by_file.setdefault(v, []).append(k)
            info["rerun"] = (f"{', '.join(sections)}; " +
                             "; ".join(f"{', '.join(ks)} from `{v}`" for v, ks in by_file.items()))
    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    csv_name = f"{mode}-{stamp}.csv"
    with open(os.path.join(RESULTS, csv_name), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for k, v in info.items():
            w.writerow(dict(section="machine", case=k, value=v))
        for r in rows_out:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        for x in failures:
            w.writerow(dict(section="failure", note=x, status="failed"))
    md = markdown(info, mode, cmd, csv_name)
    with open(os.path.join(RESULTS, f"{mode}.md"), "w") as f:
        f.write(md)
    print(md)
    if not a.no_plots:
        r = sh([PY, os.path.join(HERE, "plot.py"), os.path.join(RESULTS, csv_name), mode])
        if r.returncode:
            log("plot.py failed:", r.stderr[-500:])
    if failures:
        log("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
