#!/usr/bin/python3
"""bench_client_async.py - what the README says of the client's concurrent
calls and Ctrl-C, measured:

  overlap  two remote calls of 0.5 s on two `qpeach serve` processes,
           gathered with asyncio (f.acall), against the same two one after
           the other; RUNS runs each, wall time of each
  ctrl-c   a script blocked in a remote call of 30 s gets SIGINT: the time
           from the signal (sent by this process) to the script's
           `except KeyboardInterrupt` (both read CLOCK_MONOTONIC); RUNS tries
  cancel   a call of a function that sleeps (or spins) for 30 s times out at
           0.3 s, so its session closes the connection and the server
           cancels the call: the time from that TimeoutError to another
           session's answer from the same server; 2 x RUNS tries

No assertion; --save appends the report to bench/results/client_async.txt.

usage: /usr/bin/python3 bench/bench_client_async.py [--runs N] [--save]
"""
import argparse
import asyncio
import datetime
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness                     # noqa: E402
import qpeach as kx                # noqa: E402

CHILD = """import sys, time
sys.path.insert(0, {python!r})
import qpeach as kx
s = kx.remote.session(port={port})

@kx.remote.function(s)
def sleepy(x):
    import time
    time.sleep(x)
    return x

sleepy(0)
print("ready", flush=True)
try:
    sleepy(30)
except KeyboardInterrupt:
    print(time.monotonic(), flush=True)
"""


def sleepy(x):
    import time
    time.sleep(x)
    return x


def overlap(pa, pb, runs):
    a, b = kx.remote.session(port=pa), kx.remote.session(port=pb)
    fa, fb = kx.remote.function(a)(sleepy), kx.remote.function(b)(sleepy)
    fa(0), fb(0)

    async def both():
        return await asyncio.gather(fa.acall(0.5), fb.acall(0.5))

    gathered, serial = [], []
    for _ in range(runs):
        t0 = time.monotonic()
        assert asyncio.run(both()) == [0.5, 0.5]
        gathered.append(time.monotonic() - t0)
        t0 = time.monotonic()
        assert fa(0.5) == 0.5 and fb(0.5) == 0.5
        serial.append(time.monotonic() - t0)
    a.close(), b.close()
    return gathered, serial


def ctrl_c(port, runs):
    code = CHILD.format(python=os.path.join(ROOT, "python"), port=port)
    lags = []
    for _ in range(runs):
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.3)                 # well inside sleepy(30)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
        lags.append(float(out.split()[-1]) - t0)
    return lags


def spin(x):
    while True:
        x += 1


def cancel(port, runs):
    """Seconds from a timed-out call's TimeoutError (its connection closed)
    to another session's answer, for a sleeping and a spinning function."""
    b = kx.remote.session(port=port)
    quick = kx.remote.function(b)(sleepy)
    quick(0)
    out = {}
    for name, fn, arg in (("sleeping", sleepy, 30), ("spinning", spin, 0)):
        a = kx.remote.session(port=port, timeout=0.3)
        f = kx.remote.function(a)(fn)
        lags = []
        for _ in range(runs):
            try:
                f(arg)
            except TimeoutError:
                t0 = time.monotonic()
            assert quick(0) == 0
            lags.append(time.monotonic() - t0)
        a.close()
        out[name] = lags
    b.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--save", action="store_true")
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    with harness.Server(env=env) as s1, harness.Server(env=env) as s2:
        gathered, serial = overlap(s1.port, s2.port, a.runs)
        lags = ctrl_c(s1.port, a.runs)
        cut = cancel(s2.port, 2 * a.runs)
    fmt = lambda xs, k=1, u="s": " ".join(f"{x * k:.{3 if u == 's' else 1}f}" for x in xs) + f" {u}"
    report = (f"`bench/bench_client_async.py --runs {a.runs}` on {os.cpu_count()} cores, "
              f"{datetime.datetime.now():%Y-%m-%d %H:%M}\n"
              f"two 0.5 s calls on two servers, gathered (acall): {fmt(gathered)}\n"
              f"the same two, one after the other:               {fmt(serial)}\n"
              f"Ctrl-C to KeyboardInterrupt in a blocked call:  {fmt(lags, 1000, 'ms')}\n"
              + "".join(f"a {k} call timed out, to another client's answer: {fmt(v, 1000, 'ms')}\n"
                        for k, v in cut.items()))
    print(report, end="")
    if a.save:
        with open(os.path.join(ROOT, "bench", "results", "client_async.txt"), "a") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
