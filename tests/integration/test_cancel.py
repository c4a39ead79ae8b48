"""A call whose caller gave up is stopped on the server: a call past the
client's timeout, a task past `qpeach run`'s task_timeout, a run or a
fan-out stopped by Ctrl-C. The server sees the connection that asked for
the call close and raises qpeach.Cancelled in the Python thread running it
(a blocking sleep and a pure-Python loop alike); with -s -N the worker
processes running peach items are told the same way. The next call, on
any connection, runs at once: each test shows it by a call with a 1 s
timeout (5 s for -s -N, whose workers reconnect) that succeeds, where
before the server went on with the abandoned call for 30 s.

The functions log how they ended to a file, so the tests see that the
call was interrupted (Cancelled), not merely its answer dropped."""
import inspect
import os
import signal
import subprocess
import textwrap

import harness
from harness import Server, qpeach
import test_client as tc
from test_client import PYDIR, kx, open_session
from test_client_session import _lines


def teardown_module():
    tc.teardown_module()


def sleepy(secs, path):
    import time
    with open(path, "a") as f:
        f.write("started\n")
    try:
        time.sleep(secs)
    except BaseException as e:
        with open(path, "a") as f:
            f.write(type(e).__name__ + "\n")
        raise
    with open(path, "a") as f:
        f.write("done\n")
    return secs


def nap(item):
    """sleepy for .qp.peach, whose items are one argument each."""
    secs, path = item
    return sleepy(secs, path)


def stubborn(path):
    """Swallows the first two interruptions; the third ends it."""
    n = 0
    for attempt in range(3):
        try:
            with open(path, "a") as f:
                f.write("started\n")
            while True:
                n += 1
        except BaseException as e:
            with open(path, "a") as f:
                f.write(type(e).__name__ + "\n")
            if attempt == 2:
                raise
    return n


def quick(x):
    return x


def _log():
    return os.path.join(harness.tmpdir(), "calls.txt")


def _server(*args):
    """A server of this test alone, its Python started and sleepy,
    stubborn and quick defined by a call with no timeout (a loaded
    machine may take a second to start Python)."""
    s = Server("-u", tc._passwd_file(), *args, env=dict(os.environ, PYTHONPATH=PYDIR))
    c = tc.connect(s)
    for fn in (sleepy, stubborn, quick):
        c.call(".qp.def", fn.__name__, kx.errors.CharVector(inspect.getsource(fn)))
    # nap calls sleepy: one module for both
    c.call(".qp.def", "nap", kx.errors.CharVector(inspect.getsource(sleepy) + inspect.getsource(nap)))
    c.close()
    return s


def _free_now(s, timeout=1.0):
    """A Python call on a new connection answers within timeout seconds."""
    c = tc.connect(s, timeout_ms=int(timeout * 1000))
    try:
        assert c.call(".qp.call", "quick", kx.errors.ArgList([7])) == 7
    finally:
        c.close()


def _expect_timeout(fn):
    try:
        fn()
    except TimeoutError as e:
        assert "timed out" in str(e), str(e)
    else:
        raise AssertionError("the call should have timed out")


def test_timed_out_call_is_cancelled():
    s = _server()
    try:
        log = _log()
        sess = open_session(s, timeout=1)
        remote = kx.remote.function(sess)(sleepy)
        assert remote(0, os.devnull) == 0                # registered: only the next call is cut
        _expect_timeout(lambda: remote(3, log))
        # a new session, with the same 1 s timeout: answered at once
        other = open_session(s, timeout=1)
        assert kx.remote.function(other)(sleepy)(0.1, os.devnull) == 0.1
        assert remote(0.1, os.devnull) == 0.1            # and the first session, reconnected
        assert harness.wait_for(lambda: "Cancelled" in _lines(log), timeout=10), _lines(log)
        assert _lines(log) == ["started", "Cancelled"], _lines(log)
        other.close()
        sess.close()
        assert any("cancelled" in ln for ln in s.log), "".join(s.log)
    finally:
        s.stop()


def test_cancelled_loop_and_a_function_that_swallows_it():
    s = _server()
    try:
        log = _log()
        c = tc.connect(s, timeout_ms=1000)
        _expect_timeout(lambda: c.call(".qp.call", "stubborn", kx.errors.ArgList([log])))
        c.close()
        # every swallowed Cancelled is followed by another until it ends
        assert harness.wait_for(lambda: _lines(log).count("Cancelled") == 3, timeout=10), _lines(log)
        _free_now(s)
        assert _lines(log) == ["started", "Cancelled"] * 3, _lines(log)
    finally:
        s.stop()


def test_queued_call_of_a_gone_client_never_runs():
    # A call waiting behind another on the Python thread is dropped when
    # its client leaves: it never starts.
    s = _server()
    try:
        first, second = _log(), _log()
        a = tc.connect(s, timeout_ms=2500)
        b = tc.connect(s, timeout_ms=500)
        a.send(".qp.call", "sleepy", kx.errors.ArgList([1.5, first]), sync=True)
        assert harness.wait_for(lambda: _lines(first) == ["started"], timeout=10)
        _expect_timeout(lambda: b.call(".qp.call", "sleepy", kx.errors.ArgList([0, second])))
        b.close()
        assert a.recv()[0] == 1.5                       # the first one finishes as asked
        a.close()
        _free_now(s)
        assert _lines(first) == ["started", "done"] and _lines(second) == [], (_lines(first), _lines(second))
    finally:
        s.stop()


def test_peach_on_worker_processes_is_cancelled():
    s = _server("-s", "-2")
    try:
        log = _log()
        c = tc.connect(s, timeout_ms=1500)
        items = [[30, log], [30, log]]
        _expect_timeout(lambda: c.call(".qp.peach", "nap", items))
        c.close()
        assert harness.wait_for(lambda: _lines(log).count("Cancelled") == 2, timeout=10), _lines(log)
        # the workers are free too: a peach of quick calls answers
        c = tc.connect(s, timeout_ms=5000)
        assert list(c.call(".qp.peach", "quick", [1, 2, 3])) == [1, 2, 3]
        c.close()
        assert "done" not in _lines(log), _lines(log)
    finally:
        s.stop()


def test_peach_on_threads_starts_no_more_items():
    # -s 2: the item on the Python thread is interrupted; those on the
    # secondary threads run to their end (documented), and no item starts
    # after the client left.
    s = _server("-s", "2")
    try:
        log = _log()
        c = tc.connect(s, timeout_ms=500)
        _expect_timeout(lambda: c.call(".qp.peach", "nap", [[1.0, log]] * 8))
        c.close()
        _free_now(s, timeout=5)
        got = _lines(log)
        assert 1 <= got.count("started") <= 3 and got.count("Cancelled") >= 1, got
        assert got.count("started") == got.count("Cancelled") + got.count("done"), got
    finally:
        s.stop()


SLOW_JOB_FN = textwrap.dedent("""\
    import time

    LOG = {log!r}


    def slow(t):
        with open(LOG, 'a') as f:
            f.write('started\\n')
        try:
            time.sleep(30)
        except BaseException as e:
            with open(LOG, 'a') as f:
                f.write(type(e).__name__ + '\\n')
            raise
        return 0
    """)


def _slow_job(s, log, run_extra=""):
    d = harness.tmpdir()
    with open(os.path.join(d, "slow.py"), "w") as f:
        f.write(SLOW_JOB_FN.format(log=log))
    job = os.path.join(d, "slow.ini")
    with open(job, "w") as f:
        f.write(f"[job]\nfunction = slow.py:slow\n[input]\ntable = trade\n"
                f"[partition]\nby = rows\npieces = 2\n[workers]\nservers = {s.addr}\n"
                f"user = {tc.USER}:{tc.PASSWORD}\n[run]\nretries = 0\n{run_extra}"
                f"[output]\npath = {d}/out.csv\n")
    return job


def _trade_server():
    d = harness.tmpdir()
    with open(os.path.join(d, "trade.csv"), "w") as f:
        f.write("sym,px\n" + "".join(f"s{i % 3},{i}.5\n" for i in range(20)))
    return _server("--load", f"trade={d}/trade.csv")


def test_task_past_task_timeout_is_cancelled():
    s = _trade_server()
    try:
        log = _log()
        r = qpeach("run", _slow_job(s, log, "task_timeout = 1s\n"), timeout=60)
        assert r.returncode == 1 and "timed out" in r.stderr, (r.returncode, r.stderr)
        _free_now(s)
        assert harness.wait_for(lambda: "Cancelled" in _lines(log), timeout=10), _lines(log)
        assert _lines(log) == ["started", "Cancelled"], _lines(log)
    finally:
        s.stop()


def test_interrupted_run_cancels_its_task():
    s = _trade_server()
    try:
        log = _log()
        p = subprocess.Popen([harness.QPEACH, "run", _slow_job(s, log)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        assert harness.wait_for(lambda: _lines(log) == ["started"], timeout=30), _lines(log)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 4 and "interrupted" in err, (p.returncode, err)
        _free_now(s)
        assert harness.wait_for(lambda: "Cancelled" in _lines(log), timeout=10), _lines(log)
        assert _lines(log) == ["started", "Cancelled"], _lines(log)
    finally:
        s.stop()


FANOUT_SCRIPT = textwrap.dedent("""\
    import sys
    sys.path.insert(0, {pydir!r})
    import qpeach as kx
    s = kx.remote.session(host='127.0.0.1', port={port}, username={user!r}, password={pw!r})

    def slow(t):
        import time
        with open({log!r}, 'a') as f:
            f.write('started\\n')
        try:
            time.sleep(30)
        except BaseException as e:
            with open({log!r}, 'a') as f:
                f.write(type(e).__name__ + '\\n')
            raise
        return 0

    try:
        kx.remote.fanout(slow, [s], table='trade', pieces=2, retries=0, progress=False)
    except KeyboardInterrupt:
        print('interrupted')
        sys.exit(4)
    """)


def test_ctrl_c_in_a_fanout_cancels_its_task():
    s = _trade_server()
    try:
        log = _log()
        script = FANOUT_SCRIPT.format(pydir=PYDIR, port=s.port, user=tc.USER, pw=tc.PASSWORD, log=log)
        p = subprocess.Popen(["/usr/bin/python3", "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=PYDIR))
        assert harness.wait_for(lambda: _lines(log) == ["started"], timeout=60), (_lines(log), p.poll())
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 4 and "interrupted" in out, (p.returncode, out, err)
        _free_now(s)
        assert harness.wait_for(lambda: "Cancelled" in _lines(log), timeout=10), _lines(log)
        assert _lines(log) == ["started", "Cancelled"], _lines(log)
    finally:
        s.stop()
