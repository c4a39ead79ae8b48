#!/usr/bin/env python3
"""bench_py.py - embedded Python in `qpeach serve`, as ratios in one run.

  1. latency: `.qp.call` of a zero-argument Python function vs `.qp.echo`,
     same client (the pure-Python tests/integration/qipc.py), same server.
     Ratio = call / echo: what running Python costs per call.
  2. VWAP by sym over a resident T-row table (loaded with --load from a q
     IPC file): the same numpy code (a) in this process on numpy arrays,
     (b) in one server call (.qp.call on the whole table via qtable), and
     (c) via .qp.peach over 4 row ranges on `-s -2` worker processes.
     Ratios = (a) / (b) and (a) / (c): > 1 means faster than plain numpy.
  3. overlap in threads mode (-s 2 vs -s 0): .qp.peach of 4 items of numpy
     work that releases the GIL (np.sort of 2M floats) and of pure-Python
     work (a loop). Ratio = time at -s 0 / time at -s 2 (2 cores: <= 2).

Usage: /usr/bin/python3 bench/bench_py.py [--quick]   (needs `make`)
"""
import os
import struct
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import Server        # noqa: E402
from qipc import Conn, Sym, Vec   # noqa: E402

QUICK = "--quick" in sys.argv
T = 1_000_000 if QUICK else 10_000_000
NCALL = 500 if QUICK else 3000

VWAP_SRC = """
def vwap_part(rows):
    t = qtable('trade', (int(rows[0]), int(rows[1])), categorical=True)
    codes, p, z = t['sym'].codes, t['price'], t['size']
    k = len(t['sym'].categories)
    pv = np.bincount(codes, weights=p * z, minlength=k)
    v = np.bincount(codes, weights=z, minlength=k)
    return {'sym': np.asarray(t['sym'].categories, dtype=object), 'pv': pv, 'v': v}
"""


def best(f, n=3):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = f()
        out.append(time.perf_counter() - t0)
    return min(out), r


def write_ipc(path, codes, names, price, size):
    """The table as q's -8! bytes (header + body), little-endian."""
    n = len(codes)
    tmpl = np.frombuffer(b"".join(s.encode() + b"\0" for s in names), np.uint8).reshape(len(names), -1)
    body = bytearray(b"\x62\x00\x63")
    body += struct.pack("<bBi", 11, 0, 3) + b"sym\0price\0size\0"
    body += struct.pack("<bBi", 0, 0, 3)
    body += struct.pack("<bBi", 11, 0, n) + tmpl[codes].tobytes()
    body += struct.pack("<bBi", 9, 0, n) + price.astype("<f8").tobytes()
    body += struct.pack("<bBi", 7, 0, n) + size.astype("<i8").tobytes()
    with open(path, "wb") as f:
        f.write(struct.pack("<BBBBI", 1, 0, 0, 0, 8 + len(body)) + body)


def merge(parts):
    acc = {}
    for p in parts:
        for s, pv, v in zip(p.cols["sym"].items, p.cols["pv"].items, p.cols["v"].items):
            a = acc.setdefault(s, [0.0, 0.0])
            a[0] += pv
            a[1] += v
    return {s: a[0] / a[1] for s, a in acc.items()}


def latency():
    with Server() as s, Conn(port=s.port) as c:
        c.call([Sym(".qp.def"), Sym("z"), "def z():\n    return 10\n"])
        c.call([Sym(".qp.call"), Sym("z"), []])
        te, _ = best(lambda: [c.call([Sym(".qp.echo"), 10]) for _ in range(NCALL)])
        tc, _ = best(lambda: [c.call([Sym(".qp.call"), Sym("z"), []]) for _ in range(NCALL)])
        print(f"latency: .qp.echo {te / NCALL * 1e6:.1f} us, .qp.call zero-arg {tc / NCALL * 1e6:.1f} us,"
              f" call/echo = {tc / te:.2f}")


def vwap():
    rng = np.random.default_rng(1)
    names = [f"s{i:03d}" for i in range(100)]
    codes = rng.integers(0, 100, T)
    price = np.round(rng.uniform(10, 200, T), 2)
    size = rng.integers(1, 1000, T)
    d = tempfile.mkdtemp(prefix="qpeach-bench-")
    path = os.path.join(d, "trade.qipc")
    write_ipc(path, codes, names, price, size)

    def local():
        pv = np.bincount(codes, weights=price * size, minlength=100)
        v = np.bincount(codes, weights=size, minlength=100)
        return {names[i]: pv[i] / v[i] for i in range(100)}
    tl, want = best(local)

    def check(got):
        assert set(got) == set(want) and all(abs(got[k] - want[k]) < 1e-9 * want[k] for k in want)

    for mode in (["-s", "-2"],):
        with Server(*mode, "--load", f"trade={path}", ready_timeout=120) as s, \
                Conn(port=s.port, timeout=300) as c:
            c.call([Sym(".qp.import"), {"np": Sym("numpy")}])
            c.call([Sym(".qp.def"), Sym("vwap_part"), VWAP_SRC])
            bounds = np.linspace(0, T, 5).astype(np.int64)
            items = [Vec("j", [int(bounds[i]), int(bounds[i + 1])]) for i in range(4)]
            c.call([Sym(".qp.peach"), Sym("vwap_part"), items])          # warm the workers
            t1, r1 = best(lambda: merge([c.call([Sym(".qp.call"), Sym("vwap_part"), [Vec("j", [0, T])]])]))
            tp, rp = best(lambda: merge(c.call([Sym(".qp.peach"), Sym("vwap_part"), items])))
            check(r1)
            check(rp)
    os.remove(path)
    os.rmdir(d)
    print(f"vwap by sym, {T} rows: numpy here {tl * 1e3:.1f} ms, one server call {t1 * 1e3:.1f} ms,"
          f" peach on -s -2 {tp * 1e3:.1f} ms; numpy/one-call = {tl / t1:.2f}, numpy/peach = {tl / tp:.2f},"
          f" one-call/peach = {t1 / tp:.2f}")


def overlap():
    srcs = {"numpy": "def work(i):\n    import numpy\n    a = numpy.random.default_rng(int(i)).random(2_000_000)\n"
                     "    a.sort()\n    return float(a[0])\n",
            "python": "def work(i):\n    s = 0\n    for k in range(1_500_000):\n        s += k\n    return s\n"}
    times = {}
    for threads in ("0", "2"):
        with Server("-s", threads) as s, Conn(port=s.port, timeout=300) as c:
            for kind, src in srcs.items():
                c.call([Sym(".qp.def"), Sym("work"), src])
                times[kind, threads], _ = best(
                    lambda: c.call([Sym(".qp.peach"), Sym("work"), Vec("j", [1, 2, 3, 4])]), 2)
    for kind in srcs:
        print(f"peach threads, {kind} work: -s 0 {times[kind, '0'] * 1e3:.0f} ms, -s 2 {times[kind, '2'] * 1e3:.0f} ms,"
              f" ratio = {times[kind, '0'] / times[kind, '2']:.2f}")


if __name__ == "__main__":
    latency()
    overlap()
    vwap()
