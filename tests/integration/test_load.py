"""Load against one real `qpeach serve`: many concurrent clients, each
making sync calls of `.qp.echo` with a unique long (client * 10^6 + call),
over raw asyncio sockets (the q IPC bytes are built here by hand). Every
response must arrive and carry its own request's value; the server's
resident memory (VmRSS) after the run must equal that before it within a
stated margin.

Scale: QPEACH_LOAD_CLIENTS (default 256) x QPEACH_LOAD_CALLS (default
1000). On 2 cores the default run takes about 30-60 s.
"""
import asyncio
import os
import resource
import struct
import time

from harness import Server, rss_kb
from qipc import Conn, Sym

CLIENTS = int(os.environ.get("QPEACH_LOAD_CLIENTS", "256"))
CALLS = int(os.environ.get("QPEACH_LOAD_CALLS", "1000"))
# Allowed VmRSS growth across the run. The server holds no per-call state
# once a client has gone; what may remain is allocator slack (glibc keeps
# freed chunks in its arenas), which the warm-up round has already paid.
RSS_MARGIN_KB = 8 << 10
# Under ASan (make asan) freed memory sits in a quarantine (256 MB by
# default) before reuse: the server runs with a 4 MB one and the margin
# allows for it and for ASan's own allocator caches.
ASAN = "asan" in os.environ.get("QPEACH_BUILD", "")
SERVER_ENV = None
if ASAN:
    RSS_MARGIN_KB += 24 << 10
    SERVER_ENV = dict(os.environ, ASAN_OPTIONS="quarantine_size_mb=4:" + os.environ.get("ASAN_OPTIONS", ""))

PREFIX = b"\x00\x00" + struct.pack("<i", 2) + b"\xf5.qp.echo\x00\xf9"
REQ_LEN = 8 + len(PREFIX) + 8
RESP_HDR = struct.pack("<BBBBI", 1, 2, 0, 0, 17)


def request(v):
    """(`.qp.echo; v) as a sync message, v a long."""
    return struct.pack("<BBBBI", 1, 1, 0, 0, REQ_LEN) + PREFIX + struct.pack("<q", v)


async def client(port, k, calls, bad):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"load\x03\x00")
        cap = await r.readexactly(1)
        if cap != b"\x03":
            bad.append((k, "cap", cap))
            return 0
        done = 0
        for i in range(calls):
            v = k * 1_000_000 + i
            w.write(request(v))
            resp = await r.readexactly(17)
            if resp[:8] != RESP_HDR or resp[8] != 0xF9 or struct.unpack("<q", resp[9:])[0] != v:
                bad.append((k, i, resp.hex()))
                return done
            done += 1
        return done
    finally:
        w.close()
        try:
            await w.wait_closed()
        except ConnectionError:
            pass


async def run_clients(port, nclients, calls):
    bad = []
    done = await asyncio.gather(*(client(port, k, calls, bad) for k in range(nclients)),
                                return_exceptions=True)
    errors = [d for d in done if isinstance(d, BaseException)]
    return sum(d for d in done if isinstance(d, int)), errors, bad


def test_concurrent_clients_every_response_matched_and_memory_flat():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < CLIENTS + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, CLIENTS + 256), hard))
    with Server("-s", "2", env=SERVER_ENV) as srv:
        pid = srv.proc.pid
        # warm-up: the same shape, small, so the allocator has its arenas
        total, errors, bad = asyncio.run(run_clients(srv.port, CLIENTS, 10))
        assert not errors and not bad and total == CLIENTS * 10, (errors[:3], bad[:3])
        time.sleep(0.5)
        before = rss_kb(pid)
        t0 = time.time()
        total, errors, bad = asyncio.run(run_clients(srv.port, CLIENTS, CALLS))
        secs = time.time() - t0
        assert not errors, errors[:3]
        assert not bad, bad[:3]
        assert total == CLIENTS * CALLS, total
        time.sleep(0.5)
        after = rss_kb(pid)
        print(f"load: {CLIENTS} clients x {CALLS} calls = {total} calls in {secs:.1f}s "
              f"({total / secs:.0f}/s); VmRSS before {before} kB, after {after} kB "
              f"({after - before:+d} kB, margin {RSS_MARGIN_KB} kB)")
        assert after - before <= RSS_MARGIN_KB, (before, after)
        with Conn(port=srv.port) as c:                     # and it still answers
            assert c.call([Sym(".qp.echo"), 7]) == 7
        assert srv.alive()


# ------------------------------------------------------------------ fan-out

def test_fanout_1000_partitions_over_4_local_workers():
    """`qpeach run`: VWAP by sym over 200,000 rows cut into 1,000 row
    ranges on 4 local workers (each task a real .qp.apply round trip with
    a Python call); the merged answer equals numpy's on the same data."""
    import subprocess
    import numpy as np
    from harness import ROOT, qpeach, tmpdir
    d = tmpdir()
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_trades.py"),
                    "--rows", "200000", "--out", os.path.join(d, "trades.csv")], check=True)
    with open(os.path.join(ROOT, "jobs", "vwap.py")) as f, open(os.path.join(d, "vwap.py"), "w") as g:
        g.write(f.read())
    with open(os.path.join(d, "fan.ini"), "w") as f:
        f.write("[job]\nname = fan\nfunction = vwap.py:vwap_parts\nlibraries = np=numpy\n"
                "[input]\ntable = trade\nfile = trades.csv\ntypes = SFJ\n"
                "[partition]\nby = rows\npieces = 1000\n"
                "[workers]\nlocal = 4\n"
                "[merge]\nhow = sum-by-key\nkey = sym\nreducer = vwap.py:finish\n"
                "[output]\npath = out/fan.csv\n")
    t0 = time.time()
    r = qpeach("run", os.path.join(d, "fan.ini"), timeout=600)
    secs = time.time() - t0
    assert r.returncode == 0, r.stderr
    a = np.genfromtxt(os.path.join(d, "trades.csv"), delimiter=",", names=True, dtype=None, encoding="utf-8")
    sym, px, sz = a["sym"].astype(str), a["price"].astype(float), a["size"].astype(float)
    got = np.genfromtxt(os.path.join(d, "out", "fan.csv"), delimiter=",", names=True, dtype=None,
                        encoding="utf-8")
    assert sorted(got["sym"].astype(str)) == sorted(np.unique(sym))
    for s_, v, z in zip(got["sym"].astype(str), got["vwap"], got["size"]):
        m = sym == s_
        assert z == sz[m].sum(), (s_, z)
        assert abs(v - (px[m] * sz[m]).sum() / sz[m].sum()) < 1e-9 * v, (s_, v)
    print(f"fan-out: 1000 partitions over 4 local workers in {secs:.1f}s")
