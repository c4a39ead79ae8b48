"""The Python client's session rules against real `qpeach serve` workers:
errors keep their cause (the connection's code and text become the right
Python exception), a call past its timeout raises TimeoutError, is never
sent again and leaves a session that reconnects, pandas=True hands
DataFrames to the function, a function sees the client's globals as they
are at call time, and unix socket paths as host.

The servers, the password and the helpers are test_client.py's (imported:
its sanitizer re-exec applies here too)."""
import os
import time

import numpy as np

import harness
from harness import Server
import test_client as tc
from test_client import PYDIR, USER, PASSWORD, kx, open_session

X = tc.ext()


def teardown_module():
    tc.teardown_module()


def _own_server(*args):
    """A server of this test alone (stopped by the caller): timeouts and
    restarts must not disturb the shared ones. Its Python is started here,
    with no timeout (on a loaded machine that alone can take a second),
    and `slow` defined: the timeouts below then cut only what they test."""
    s = Server("-u", tc._passwd_file(), *args, env=dict(os.environ, PYTHONPATH=PYDIR))
    c = tc.connect(s)
    c.call(".qp.def", "slow", kx.errors.CharVector(SLOW_SRC))
    c.close()
    return s


def _lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


SLOW_SRC = ("def slow(path, secs):\n"
            "    import time\n"
            "    time.sleep(secs)\n"
            "    with open(path, 'a') as f:\n"
            "        f.write('ran\\n')\n"
            "    return 7\n")


# ---- A: the connection's error code picks the exception ------------------

def test_connection_errors_keep_their_cause():
    s = _own_server()
    try:
        c = tc.connect(s, timeout_ms=400)
        assert c.error == (0, "") and not c.broken
        out = os.path.join(harness.tmpdir(), "ran.txt")
        t0 = time.monotonic()
        try:
            c.call(".qp.call", "slow", kx.errors.ArgList([out, 3.0]))
        except TimeoutError as e:
            assert "timed out" in str(e) and s.addr in str(e), str(e)
        else:
            raise AssertionError("a call past timeout_ms must raise TimeoutError")
        assert time.monotonic() - t0 < 2.9, "the timeout did not cut the wait"
        assert c.broken and c.error[0] == X.ETIMEOUT and "timed out" in c.error[1], c.error
        # Broken stays broken, with the same cause, without waiting again.
        try:
            c.call(".qp.echo", 1)
        except TimeoutError:
            pass
        else:
            raise AssertionError("a timed-out connection must stay failed")
        c.close()

        # The server goes away: ConnectionError, code ECLOSED (or a reset).
        c = tc.connect(s)
        assert c.call(".qp.echo", 3) == 3
        s.stop()
        try:
            c.call(".qp.echo", 4)
        except ConnectionError as e:
            assert "lost" in str(e), str(e)
        else:
            raise AssertionError("a dead server must raise ConnectionError")
        assert c.broken and c.error[0] in (X.ECLOSED, -104, -32), c.error
        assert c.error[1], "the text of the failure must stay on the connection"
        c.close()
    finally:
        s.stop()


# ---- B: timeouts ---------------------------------------------------------

def _timeout_once(s, attempts):
    """A session with timeout=1.5 calls a function that takes 4 s and
    appends a line to a file as it starts and as it ends: TimeoutError,
    the session says it is not open, the function started exactly once
    (never re-sent) and never ended (the server cancelled it when the
    session closed the connection: test_cancel.py), and the next call
    works on a new connection."""
    out = os.path.join(harness.tmpdir(), "ran.txt")
    sess = open_session(s, timeout=1.5, reconnection_attempts=attempts)

    @kx.remote.function(sess)
    def slow_append(path, secs):
        import time
        with open(path, "a") as f:
            f.write("start\n")
        time.sleep(secs)
        with open(path, "a") as f:
            f.write("ran\n")
        return 7

    assert slow_append(os.devnull, 0) == 7      # registered: only the call below is cut
    assert "open" in repr(sess)
    try:
        slow_append(out, 4.0)
    except TimeoutError as e:
        assert "timed out" in str(e), str(e)
    else:
        raise AssertionError("a call past the session's timeout must raise TimeoutError")
    assert " open" not in repr(sess) and "timed out" in repr(sess), repr(sess)
    assert sess.state == "reconnects on next call", sess.state
    assert _lines(out) == ["start"], _lines(out)
    time.sleep(1.0)     # a re-sent call would have started again by now
    assert _lines(out) == ["start"], _lines(out)
    # The next call reconnects transparently (and registers again).
    assert sess._call(".qp.echo", 5) == 5
    assert repr(sess).endswith(" open>"), repr(sess)
    assert slow_append(out, 0) == 7
    assert _lines(out) == ["start", "start", "ran"], _lines(out)
    sess.close()


def test_timeout_not_resent_then_reconnects():
    s = _own_server()
    try:
        _timeout_once(s, 2)         # with reconnection: still never re-sent
        _timeout_once(s, -1)        # PyKX's default: the next call reconnects too
    finally:
        s.stop()


def test_timeout_then_server_gone():
    # After a timeout, a server that is gone: the next call says so
    # (ConnectionError), and the session stays honest about its state.
    s = _own_server()
    sess = open_session(s, timeout=1.5)
    try:
        out = os.path.join(harness.tmpdir(), "ran.txt")
        try:
            sess._call(".qp.call", "slow", kx.errors.ArgList([out, 4.0]))
        except TimeoutError:
            pass
        else:
            raise AssertionError("expected TimeoutError")
    finally:
        s.stop()
    try:
        sess._call(".qp.echo", 1)
    except ConnectionError as e:
        assert "reconnect" in str(e), str(e)
    else:
        raise AssertionError("a call to a stopped server must raise ConnectionError")
    assert "open" not in repr(sess), repr(sess)
    sess.close()
    assert "closed" in repr(sess)


# ---- C: pandas=True ------------------------------------------------------

def test_pandas_function_gets_dataframes():
    import pandas as pd
    a, b = open_session(tc.server("a")), open_session(tc.server("b"))
    t = {"x": np.arange(10, dtype=np.int64), "y": np.linspace(0, 1, 10)}

    @kx.remote.function(a, pandas=True)
    def describe(tbl):
        return f"{type(tbl).__name__}:{','.join(map(str, tbl.columns))}:{len(tbl)}"

    @kx.remote.function(a, pandas=True)
    def doubled(tbl):
        return tbl.assign(x=tbl["x"] * 2)

    @kx.remote.function(a)
    def plain(tbl):
        return type(tbl).__name__

    assert describe(t) == "DataFrame:x,y:10", describe(t)
    assert describe(pd.DataFrame(t)) == "DataFrame:x,y:10"
    got = doubled(t)
    assert isinstance(got, pd.DataFrame) and list(got["x"]) == list(t["x"] * 2), got
    # The same code without pandas=True still gets a dict: defined apart.
    assert plain(t) == "dict", plain(t)

    def kind(tbl):
        return type(tbl).__name__

    got = kx.remote.fanout(kind, [a, b], table=t, pieces=4, pandas=True)
    assert list(got) == ["DataFrame"] * 4, got
    got = kx.remote.fanout(kind, [a, b], table=t, pieces=2)
    assert list(got) == ["dict"] * 2, got
    # A resident table: each partition arrives as a DataFrame in place.
    path = os.path.join(harness.tmpdir(), "t.csv")
    with open(path, "w") as f:
        f.write("x,y\n" + "".join(f"{i},{i / 2}\n" for i in range(10)))
    for s in (a, b):
        s._call(".qp.load", "pd_fan", path)
    got = kx.remote.fanout(describe, [a, b], table="pd_fan", pieces=2)
    assert list(got) == ["DataFrame:x,y:5"] * 2, got
    a.close()
    b.close()


# ---- D: globals at call time ----------------------------------------------

K = 21
ARR = np.arange(3)
FACTOR = 2


def _times_factor(x):
    return x * FACTOR


def test_globals_read_at_call_time():
    global K, FACTOR
    K, FACTOR = 21, 2
    sess = open_session(tc.server())

    def f():
        return K * 2

    def g():
        return int(ARR.sum()) + _times_factor(K)

    rf, rg = kx.remote.function(sess)(f), kx.remote.function(sess)(g)
    assert rf() == f() == 42
    K = 50
    assert rf() == f() == 100, rf()
    assert rg() == g() == 3 + 100
    ARR[0] = 10                  # changed in place: seen too
    FACTOR = 3                   # a helper's global
    assert rg() == g() == 13 + 150, rg()
    K = 21
    assert rf() == 42 and rg() == 13 + 63

    # Another session defines the same function again (fresh values on
    # the server): the first session's next call finds that out and sends
    # its values again.
    other = open_session(tc.server())
    K = 21
    assert kx.remote.function(other)(f)() == 42
    K = 60
    assert kx.remote.function(other)(f)() == 120
    K = 21
    assert rf() == 42            # sess believed 21 was there: stale, re-sent
    K = 7
    assert rf() == 14

    # Fan-out on a resident table (.qp.apply, no keyword arguments): the
    # values are set before the partitions run.
    path = os.path.join(harness.tmpdir(), "k.csv")
    with open(path, "w") as f:
        f.write("x\n" + "".join(f"{i}\n" for i in range(8)))
    sess._call(".qp.load", "k_fan", path)

    def scaled_sum(tbl):
        return int(tbl["x"].sum()) * K

    assert kx.remote.fanout(scaled_sum, [sess], table="k_fan", pieces=2, merge="sum") == 28 * 7
    K = 3
    assert kx.remote.fanout(scaled_sum, [sess], table="k_fan", pieces=2, merge="sum") == 28 * 3
    ARR[0] = 0
    other.close()
    sess.close()


# ---- E: unix sockets -------------------------------------------------------

def test_unix_socket_host():
    path = os.path.join(harness.tmpdir(), "qp.sock")
    s = Server("-u", tc._passwd_file(), unix=path, env=dict(os.environ, PYTHONPATH=PYDIR))
    try:
        for host in (f"unix:{path}", f"@{path}"):
            sess = kx.remote.session(host=host, username=USER, password=PASSWORD)
            assert sess.address == host and sess._call(".qp.echo", 9) == 9

            @kx.remote.function(sess)
            def add(x, y):
                return x + y

            assert add(2, 3) == 5
            sess.close()
        # What `qpeach call` takes, the same way.
        r = harness.qpeach("call", "-u", f"{USER}:{PASSWORD}", f"unix:{path}", ".qp.echo", "4")
        assert r.returncode == 0 and r.stdout.strip() == "4", (r.returncode, r.stdout, r.stderr)
        for bad in (dict(host=f"unix:{path}", port=5050), dict(host="unix:")):
            try:
                kx.remote.session(username=USER, password=PASSWORD, **bad)
            except ValueError:
                continue
            raise AssertionError(f"session({bad}) must raise ValueError")
    finally:
        s.stop()
