"""Futures and asyncio (issue 20.7) and Ctrl-C on a plain remote call
(the left-over of 20.6), against real `qpeach serve --db` processes over
dbs made by `qpeach db import`.

Overlap is asserted from what the servers saw, never from a wall clock
here: each call records when it started and ended on its server (one
machine, one clock), and two calls overlapped when each started before
the other ended. Connections are counted from the kernel's socket table
(/proc/net/tcp), not from the session's own books."""
import asyncio
import os
import signal
import subprocess
import time

import harness
from clientdb import client, PYDIR, db_server, frame, run_block, trades_db

kx = client()

_fix = {}


def fixture():
    """Two db servers over the same db, and its CSVs."""
    if not _fix:
        db, paths = trades_db(harness.tmpdir())
        _fix.update(db=db, paths=paths, a=db_server(db), b=db_server(db))
    return _fix


def teardown_module():
    for k in ("a", "b"):
        if k in _fix:
            _fix[k].stop()


def span(secs):
    """(start, end) of a call that sleeps secs, by the server's clock,
    with the server's pid."""
    import os
    import time
    t0 = time.time()
    time.sleep(secs)
    return [t0, time.time(), float(os.getpid())]


def overlapped(x, y):
    return x[0] < y[1] and y[0] < x[1]


def test_gather_of_two_calls_on_two_servers_overlaps():
    f = fixture()
    sa, sb = kx.remote.session(port=f["a"].port), kx.remote.session(port=f["b"].port)
    fa, fb = kx.remote.function(sa)(span), kx.remote.function(sb)(span)
    fa(0), fb(0)                # defined: only the calls below are timed by the servers

    async def both():
        return await asyncio.gather(fa.acall(0.5), fb.acall(0.5))

    x, y = asyncio.run(both())
    assert x[2] != y[2], "the two calls ran on one server"
    assert overlapped(x, y), f"the calls did not overlap on the servers: {x} {y}"
    # one after the other they do not: the test can tell
    x, y = fa(0.2), fb(0.2)
    assert not overlapped(x, y), (x, y)
    sa.close()
    sb.close()


def _server_conns(port):
    """Established TCP connections the kernel holds on the server's side
    of port (its local address)."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


def test_submit_futures_bounded_by_max_connections():
    f = fixture()
    port = f["a"].port
    base = _server_conns(port)
    s = kx.remote.session(port=port, max_connections=2)
    g = kx.remote.function(s)(span)
    g(0)
    futs = [g.submit(0.3) for _ in range(5)]
    peak = 0
    while not all(x.done() for x in futs):
        peak = max(peak, _server_conns(port) - base)
        time.sleep(0.02)
    got = [x.result() for x in futs]
    assert len(got) == 5 and peak == 2, (peak, got)
    # a call's exception comes back through its future
    def inverse(x):
        return 1 / x

    bad = kx.remote.function(s)(inverse).submit(0)
    assert isinstance(bad.exception(), kx.QError) and "ZeroDivisionError" in str(bad.exception())
    s.close()


def test_afanout_and_amap_equal_fanout_and_map():
    f = fixture()
    df = frame(f["paths"])
    s = kx.remote.session(port=f["a"].port)

    def rows(t):
        return len(t["price"])

    async def go():
        return await asyncio.gather(
            kx.remote.afanout(rows, [s], table="trade", by="partition", merge="sum",
                              progress=False),
            kx.remote.amap(lambda x: x * x, range(6), [s], progress=False))

    total, squares = asyncio.run(go())
    assert total == len(df) and squares == [x * x for x in range(6)], (total, squares)
    s.close()


def test_readme_async_example():
    f = fixture()
    df = frame(f["paths"])

    def vwap(day):
        g = df[df["date"] == day]
        return float((g["price"] * g["size"]).sum() / g["size"].sum())

    ns = run_block("client-async", [("port=5050", f"port={f['a'].port}"),
                                    ("port=5051", f"port={f['b'].port}")])
    assert abs(ns["x"] - vwap("2024-01-03")) < 1e-9 and abs(ns["y"] - ns["x"]) < 1e-12, ns["x"]
    assert abs(ns["z"] - vwap("2024-01-04")) < 1e-9, ns["z"]
    ns["a"].close()
    ns["b"].close()


# ---- Ctrl-C on a plain remote call ----------------------------------------

CTRL_C = '''
import os, sys, time
import qpeach as kx
port, mark = int(sys.argv[1]), sys.argv[2]
s = kx.remote.session(port=port)

@kx.remote.function(s)
def sleepy(path, secs):
    import time, qpeach
    with open(path, "a") as f:
        f.write("start\\n")
    try:
        time.sleep(secs)
    except qpeach.Cancelled:
        with open(path, "a") as f:
            f.write("cancelled\\n")
        raise
    with open(path, "a") as f:
        f.write("end\\n")
    return secs

sleepy(os.devnull, 0)
print("calling", flush=True)
try:
    sleepy(mark, 30)
    print("answered")
except KeyboardInterrupt:
    print("interrupted", s.state)
print("next", sleepy(os.devnull, 0.1), s.state)
'''


def _wait_lines(path, want, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path) as f:
                got = f.read().split()
        except FileNotFoundError:
            got = []
        if got == want:
            return got
        time.sleep(0.05)
    return got


def test_ctrl_c_interrupts_a_remote_call_and_the_server_cancels_it():
    """SIGINT to a script waiting on sleepy(30): KeyboardInterrupt now (the
    call did not end on the server: it was cancelled because the client
    closed its connection), and the session's next call works."""
    f = fixture()
    d = harness.tmpdir()
    script, mark = os.path.join(d, "c.py"), os.path.join(d, "mark")
    with open(script, "w") as fh:
        fh.write(CTRL_C)
    env = dict(os.environ, PYTHONPATH=PYDIR)
    asan = os.path.join(harness.BUILD, "python", "qpeach")
    if os.path.isdir(asan):         # as clientdb.python does
        lib = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
        env.update(LD_PRELOAD=lib, QPEACH_EXT_DIR=asan, ASAN_OPTIONS="detect_leaks=0")
    p = subprocess.Popen(["/usr/bin/python3", script, str(f["a"].port), mark], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "calling"
        assert _wait_lines(mark, ["start"]) == ["start"], "the call never started"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("interrupted"), out
    assert lines[-1] == "next 0.1 open", out
    assert _wait_lines(mark, ["start", "cancelled"]) == ["start", "cancelled"], \
        "the server ran the call to its end: the client did not give up on it"

