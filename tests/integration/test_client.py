"""The Python client (python/qpeach) against real `qpeach serve` workers
with a password file: the extension's codec and connection, PyKX's
remote-function walkthrough, every error path of the session and the
decorator, reconnection, and fan-out over two servers checked against
numpy."""
import os
import subprocess
import sys
import threading

import numpy as np

import harness
from harness import Server

ROOT = harness.ROOT
PYDIR = os.path.join(ROOT, "python")

# Under a sanitizer build the extension is in $(BUILD)/python/qpeach and
# loads only with the ASan runtime first: start this module again that way.
harness.asan_client_reexec()

sys.path.insert(0, PYDIR)
import qpeach as kx                     # noqa: E402
from qpeach import remote               # noqa: E402

USER, PASSWORD = "user", "password"
_servers = {}


def _passwd_file():
    return harness.passwd_file(harness.tmpdir(), {USER: PASSWORD})


def server(name="a"):
    """A shared server per name, with a password file; the worker's Python
    gets this package on its path (PYTHONPATH) for `import qpeach`."""
    s = _servers.get(name)
    if s is None or not s.alive():
        env = dict(os.environ, PYTHONPATH=PYDIR)
        s = Server("-u", _passwd_file(), env=env)
        _servers[name] = s
    return s


def teardown_module():
    for s in _servers.values():
        s.stop()


def ext():
    return remote._extension()


def connect(s, **kw):
    return ext().Connection(s.addr, user=USER, password=PASSWORD, **kw)


def open_session(s, **kw):
    return kx.remote.session(host="127.0.0.1", port=s.port, username=USER,
                             password=PASSWORD, **kw)


def worker_path(sess):
    """Puts python/ on the worker's sys.path, so its Python can `import
    qpeach`. The worker runs an isolated interpreter that ignores
    PYTHONPATH; until `qpeach serve` adds the package's directory itself
    (asked of the py helper), the test does it through a remote function."""
    @kx.remote.function(sess)
    def add_path(p):
        import sys
        if p not in sys.path:
            sys.path.insert(0, p)
        return len(sys.path)

    add_path(PYDIR)


# ---- extension: codec and connection ------------------------------------

def test_codec_roundtrip_local():
    X = ext()
    cases = [10, -3, 1.5, True, "sym", None, np.arange(5), np.array([1.5, np.nan]),
             np.array([1, 2], dtype=np.int32), np.array(["a", "bc"], dtype=object),
             np.array(["2024-01-02T03:04:05.000000006"], dtype="datetime64[ns]"),
             np.array([1, 2], dtype="timedelta64[ns]"), [1, "a", 2.5]]
    for v in cases:
        got = X.loads(X.dumps(v))
        if isinstance(v, np.ndarray):
            assert got.dtype == v.dtype, (v, got)
            assert np.array_equal(got, v, equal_nan=v.dtype.kind == "f"), (v, got)
        elif isinstance(v, list):
            assert list(got) == v, (v, got)
        else:
            assert got == v, (v, got)
    t = {"sym": np.array(["a", "b"], dtype=object), "px": np.array([1.0, 2.0])}
    got = X.loads(X.dumps(t))
    assert list(got) == ["sym", "px"] and np.array_equal(got["px"], t["px"])
    try:
        X.loads(b"\x01\x00\x00\x00\x10\x00\x00\x00")
    except ValueError:
        pass
    else:
        raise AssertionError("a truncated message must raise ValueError")


def test_echo_roundtrip_server():
    c = connect(server())
    try:
        for v in [42, 2.5, "abc", np.arange(1000), np.array([np.nan, np.inf, -1.0]),
                  np.array([np.iinfo(np.int64).min, 0], dtype=np.int64),
                  np.array(["2000-01-01", "1970-01-01", "NaT"], dtype="datetime64[D]"),
                  {"a": np.arange(3), "b": np.array(["x", "y", "z"], dtype=object)}]:
            got = c.call(".qp.echo", v)
            if isinstance(v, dict):
                assert all(np.array_equal(got[k], v[k]) for k in v), got
            elif isinstance(v, np.ndarray):
                assert got.dtype == v.dtype and np.array_equal(got, v, equal_nan=True), (v, got)
            else:
                assert got == v, (v, got)
    finally:
        c.close()
    try:
        c.call(".qp.echo", 1)
    except RuntimeError:
        pass
    else:
        raise AssertionError("a closed connection must raise RuntimeError")


def test_client_conversions_at_the_data_boundary():
    """The client converts with the worker's rules: a char column one char
    per row, q's nulls as pandas' missing values with pandas=True (as
    pandas reads the CSV), a timestamp beyond numpy's ns range and a Python
    datetime beyond q's an error naming the column and row."""
    import datetime
    import pandas as pd
    d = harness.tmpdir()
    csv, db = os.path.join(d, "t.csv"), os.path.join(d, "db")
    with open(csv, "w") as f:
        f.write("side,size,sym\nB,100,a\nS,,\nB,300,b\n")
    with open(os.path.join(d, "big.csv"), "w") as f:
        f.write("ts\n2020.01.01D00:00:00\n2280.01.01D00:00:00\n")
    for name, path, types in (("t", csv, "CJS"), ("big", os.path.join(d, "big.csv"), "P")):
        r = harness.qpeach("db", "import", path, db, name, "--types", types)
        assert r.returncode == 0, r.stderr
    want = pd.read_csv(csv, dtype={"side": str})
    with Server("--db", db) as s:
        c = ext().Connection(s.addr)
        try:
            t = c.call(".qp.get", "t")
            assert t["side"].dtype == "S1" and [v.decode() for v in t["side"]] == want["side"].tolist(), t
            assert t["size"].tolist() == [100, np.iinfo(np.int64).min, 300], t    # numpy: q's values
            df = c.call(".qp.get", "t", pandas=True)
            assert df["side"].tolist() == want["side"].tolist(), df
            assert str(df["size"].dtype) == "Int64", df.dtypes
            assert df["size"].isna().tolist() == want["size"].isna().tolist(), df
            assert df["size"].sum() == want["size"].sum(), df
            assert df["sym"].isna().tolist() == want["sym"].isna().tolist(), df
            try:
                c.call(".qp.get", "big")
            except OverflowError as e:
                assert "column ts, row 1" in str(e) and "2280.01.01" in str(e), str(e)
            else:
                raise AssertionError("a 2280 timestamp must not wrap into datetime64[ns]")
            try:
                c.call(".qp.echo", {"ts": np.array(["2020-01-01", "2300-01-01"], "M8[s]")})
            except TypeError as e:
                assert "column ts, row 1" in str(e) and "2300-01-01" in str(e), str(e)
            else:
                raise AssertionError("datetime64[s] 2300 is beyond q's timestamps")
            try:
                c.call(".qp.echo", datetime.datetime(1650, 1, 1))
            except TypeError as e:
                assert "1650-01-01" in str(e), str(e)
            else:
                raise AssertionError("1650 is before q's first timestamp")
            # and a DataFrame goes back with q's nulls and its char column
            back = c.call(".qp.echo", df)
            assert back["side"].dtype == "S1" and back["size"].tolist() == t["size"].tolist(), back
        finally:
            c.close()


def test_q_error_raises_qerror():
    c = connect(server())
    try:
        c.call(".qp.no_such_function", 1)
    except kx.QError as e:
        assert e.message
    else:
        raise AssertionError("expected QError")
    finally:
        c.close()


def test_auth_rejected():
    s = server()
    for user, pw in ((USER, "wrong"), ("nobody", PASSWORD)):
        try:
            ext().Connection(s.addr, user=user, password=pw)
        except (PermissionError, ConnectionError):
            continue
        raise AssertionError("bad credentials must be refused")


def test_gil_released_while_waiting():
    # One thread blocks in recv() on a quiet connection; if the GIL were
    # held there, this thread could not run a single loop until it ends.
    c = connect(server())
    started = threading.Event()
    out = []

    def blocked():
        started.set()
        try:
            c.recv(timeout_ms=800)
        except Exception as e:        # TimeoutError expected
            out.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    started.wait()
    n = 0
    while t.is_alive():
        n += 1
    t.join()
    c.close()
    assert out and isinstance(out[0], TimeoutError), out
    assert n > 10000, f"main thread ran only {n} loops while the other waited"


def test_async_send_and_pipelined_recv():
    c = connect(server())
    try:
        c.send(".qp.echo", 1, sync=True)
        c.send(".qp.echo", 2, sync=True)
        assert c.recv()[0] == 1 and c.recv()[0] == 2
    finally:
        c.close()


# ---- the session's API and its errors -----------------------------------

def test_session_argument_types():
    s = server()
    bad = [dict(host=5, port=s.port), dict(port="5050"), dict(port=True),
           dict(port=s.port, libraries=["numpy"]), dict(port=s.port, username=1),
           dict(port=s.port, timeout="1"), dict(port=s.port, tls="yes"),
           dict(port=s.port, reconnection_attempts=1.5), dict()]
    for kw in bad:
        try:
            kx.remote.session(**kw)
        except TypeError as e:
            assert str(e)
            continue
        raise AssertionError(f"session({kw}) must raise TypeError")
    sess = open_session(s)
    try:
        for arg in (5, "x", None):
            try:
                kx.remote.function(arg)
            except TypeError:
                continue
            raise AssertionError("function(non-session) must raise TypeError")
        try:
            kx.remote.function(sess)(42)
        except TypeError:
            pass
        else:
            raise AssertionError("decorating a non-function must raise TypeError")
        try:
            sess.libraries({"np": 3})
        except TypeError:
            pass
        else:
            raise AssertionError("a library given as an int must raise TypeError")
    finally:
        sess.close()


def test_closed_session_raises():
    with open_session(server()) as sess:
        @kx.remote.function(sess)
        def f():
            return 1
    for call in (f, lambda: sess.libraries({"np": "numpy"})):
        try:
            call()
        except RuntimeError:
            continue
        raise AssertionError("a closed session must raise RuntimeError")


def test_walkthrough():
    # PyKX's remote-function walkthrough, unchanged but for the import.
    sess = kx.remote.session(host="localhost", port=server().port, username=USER,
                             password=PASSWORD)

    @kx.remote.function(sess)
    def zero_arg_function():
        return 10

    @kx.remote.function(sess)
    def single_arg_function(x):
        return x + 10

    @kx.remote.function(sess)
    def multi_arg_function(x, y):
        return x + y

    assert zero_arg_function() == 10
    assert single_arg_function(10) == 20
    assert multi_arg_function(10, 20) == 30

    worker_path(sess)
    sess.libraries({"np": "numpy", "kx": "qpeach"})

    @kx.remote.function(sess)
    def dependent_function(x, y, z):
        return kx.q.mavg(4, np.linspace(x, y, z))

    got = dependent_function(0, 10, 10)
    want = [0, 0.5555556, 1.111111, 1.666667, 2.777778]
    assert np.allclose(got[:5], want, atol=1e-6), got
    assert np.allclose(got, kx.q.mavg(4, np.linspace(0, 10, 10)))
    sess.close()


def test_libraries_in_constructor_and_body():
    probe = open_session(server())
    worker_path(probe)
    probe.close()
    sess = open_session(server(), libraries={"np": np, "kx": "qpeach"})

    @kx.remote.function(sess)
    def with_libs(n):
        return kx.q.msum(2, np.arange(n))

    assert list(with_libs(4)) == [0, 1, 3, 5]

    @kx.remote.function(sess)
    def imports_inside(n):
        import numpy
        import qpeach
        return qpeach.q.til(n).sum() + int(numpy.int64(1))

    assert imports_inside(5) == 11
    sess.close()


def test_missing_library_named():
    sess = open_session(server())
    try:
        sess.libraries({"nope": "qpeach_no_such_module"})
    except kx.QError as e:
        assert "qpeach_no_such_module" in str(e) and "nope" in str(e), str(e)
    else:
        raise AssertionError("a missing library must raise QError")
    try:
        open_session(server(), libraries={"zz": "qpeach_missing_too"})
    except kx.QError as e:
        assert "qpeach_missing_too" in str(e) and "zz" in str(e), str(e)
    else:
        raise AssertionError("a missing library must fail the constructor")
    sess.close()


def helper_scale(x):
    return x * SCALE


SCALE = 3


def test_kwargs_closures_helpers_and_ids():
    sess = open_session(server())
    offset = 100

    @kx.remote.function(sess)
    def closure(x, *, bump=0):
        return helper_scale(x) + offset + bump

    assert closure(2) == 106
    assert closure(2, bump=1) == 107
    assert len(closure.id) == 64
    assert closure.shipped.name in sess._registered
    # Shipped once: the second call sends no .qp.def (the id stays known).
    n = len(sess._registered)
    closure(1)
    assert len(sess._registered) == n
    sess.close()


def test_remote_exception_has_traceback():
    sess = open_session(server())

    @kx.remote.function(sess)
    def boom(x):
        def inner(y):
            raise ValueError(f"bad value {y}")
        return inner(x)

    try:
        boom(7)
    except kx.QError as e:
        assert "ValueError" in str(e) and "bad value 7" in str(e), str(e)
        assert "inner" in e.remote_traceback, e.remote_traceback
    else:
        raise AssertionError("a remote exception must raise QError")
    sess.close()


def _restart(s):
    port, argv = s.port, s.argv
    s.stop()
    return Server(*argv[4:], port=port, env=dict(os.environ, PYTHONPATH=PYDIR))


def test_reconnect():
    ext()
    s = Server("-u", _passwd_file(), env=dict(os.environ, PYTHONPATH=PYDIR))
    try:
        # -1 (PyKX's default): a lost connection raises, no retry.
        never = open_session(s)
        assert never._call(".qp.echo", 1) == 1
        s = _restart(s)
        try:
            never._call(".qp.echo", 1)
        except ConnectionError:
            pass
        else:
            raise AssertionError("reconnection_attempts=-1 must not reconnect")
        never.close()

        # N > 0: the next call reconnects transparently.
        sess = open_session(s, reconnection_attempts=5)
        assert sess._call(".qp.echo", 2) == 2
        s = _restart(s)
        assert sess._call(".qp.echo", 3) == 3

        # A server that stays down: N attempts, then ConnectionError.
        port = s.port
        s.stop()
        sess.reconnection_attempts = 2
        try:
            sess._call(".qp.echo", 4)
        except ConnectionError as e:
            assert "2 attempts" in str(e), str(e)
        else:
            raise AssertionError("a dead server must raise after the attempts")
        s = Server(*s.argv[4:], port=port, env=dict(os.environ, PYTHONPATH=PYDIR))

        # Functions and libraries come back after a reconnect.
        sess = open_session(s, reconnection_attempts=5)
        sess.libraries({"np": "numpy"})

        @kx.remote.function(sess)
        def total(n):
            return int(np.arange(n).sum())

        assert total(4) == 6
        s = _restart(s)
        assert total(5) == 10          # reconnected, re-imported, re-registered
        sess.close()
    finally:
        s.stop()


# ---- fan-out --------------------------------------------------------------

def _trades(n=20000, seed=1):
    rng = np.random.default_rng(seed)
    return {"sym": rng.choice(np.array(["AAA", "BBB", "CCC", "DDD"], dtype=object), n),
            "price": rng.uniform(10, 20, n), "size": rng.integers(1, 1000, n)}


def test_fanout_two_servers():
    a, b = open_session(server("a")), open_session(server("b"))
    t = _trades()

    def notional(tbl):
        return float((tbl["price"] * tbl["size"]).sum())

    def vwap(tbl):
        return float((tbl["price"] * tbl["size"]).sum() / tbl["size"].sum())

    got = kx.remote.fanout(notional, [a, b], table=t, pieces=7, merge="sum")
    assert np.isclose(got, (t["price"] * t["size"]).sum()), got
    got = kx.remote.fanout(vwap, [a, b], table=t, by="sym")
    syms = np.unique(t["sym"])
    want = [np.average(t["price"][t["sym"] == s], weights=t["size"][t["sym"] == s]) for s in syms]
    assert np.allclose(got, want), (got, want)

    def scaled(tbl):
        return {"v": tbl["price"] * 2}

    got = kx.remote.fanout(scaled, [a, b], table=t, pieces=5)
    assert np.allclose(got["v"], t["price"] * 2)
    assert kx.remote.fanout(lambda tbl: float(tbl["price"].max()), [a, b], table=t,
                            merge="max") == t["price"].max()
    a.close()
    b.close()


def test_fanout_error_names_partition():
    a, b = open_session(server("a")), open_session(server("b"))
    t = {"x": np.arange(10)}

    def fails_on_five(tbl):
        if 5 in list(tbl["x"]):
            raise ZeroDivisionError("five")
        return 0

    try:
        kx.remote.fanout(fails_on_five, [a, b], table=t, pieces=10)
    except kx.FanoutError as e:
        # the parts, from the scheduler's error (not parsed from its text)
        assert e.task == 5 and e.partition == "rows 5-6", (e.task, e.partition)
        assert e.worker in (a.address, b.address), (e.worker, a.address, b.address)
        assert e.remote_type == "ZeroDivisionError" and e.remote_message == "five", \
            (e.remote_type, e.remote_message)
        assert "fails_on_five" in e.remote_traceback, e.remote_traceback
        assert e.attempts == 1 and e.code == 1 and "five" in str(e), str(e)
        assert isinstance(e.__cause__, kx.QError)
        assert e.__cause__.remote_type == "ZeroDivisionError", e.__cause__.remote_type
    else:
        raise AssertionError("a failed partition must raise FanoutError")
    a.close()
    b.close()


_NUMBERS = (n for n in range(10 ** 9))       # a generator: dill cannot pickle it


def _uses_a_generator(x):
    return x + next(_NUMBERS)


def test_shipping_falls_back_to_source_only_when_dill_cannot_and_says_so():
    """A function whose global dill cannot pickle (a generator) is shipped as
    its source text, with a RuntimeWarning naming it and dill's reason (it
    used to change silently); one dill can pickle is shipped as dill bytes
    without a warning, and map(), which needs dill, names the reason."""
    import warnings
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        sh = remote._Shipped(_uses_a_generator)
    assert isinstance(sh.code, str), type(sh.code)
    assert "def _uses_a_generator(x):" in sh.code, sh.code
    msgs = [str(w.message) for w in got if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1, msgs
    assert msgs[0].startswith("qpeach: dill cannot pickle _uses_a_generator (TypeError: "), msgs
    assert "'generator'" in msgs[0] and "source text" in msgs[0], msgs

    def plain(x):
        return x + 1
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        sh = remote._Shipped(plain)
    assert isinstance(sh.code, bytes), type(sh.code)
    assert not got, [str(w.message) for w in got]
    try:
        remote._Shipped(_uses_a_generator, items=[1, 2])
    except TypeError as e:
        assert "map() could not pickle _uses_a_generator" in str(e), str(e)
        assert "'generator'" in str(e), str(e)
    else:
        raise AssertionError("map() cannot ship what dill cannot pickle")


def test_shipping_by_value():
    # What .qp.def receives: dill bytes that load and run in a Python that
    # has none of this test's modules (closure, helper and global copied by
    # value), and an id that is the SHA-256 of those bytes.
    import hashlib
    base = 5

    def shipped(x, *, k=1):
        return helper_scale(x) * k + base

    sh = remote._Shipped(shipped)
    assert isinstance(sh.code, bytes), "dill is installed: code must be dill bytes"
    assert sh.id == hashlib.sha256(sh.code).hexdigest()
    prog = ("import sys, dill; f = dill.loads(sys.stdin.buffer.read()); "
            "print(f(2), f(2, k=10))")
    out = subprocess.run(["/usr/bin/python3", "-I", "-c", prog], input=sh.code,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.split() == [b"11", b"65"], out.stdout


def test_fanout_resident_table():
    # The table lives on each worker (.qp.load); only row bounds travel and
    # each worker runs the function on its rows in place (.qp.apply).
    a, b = open_session(server("a")), open_session(server("b"))
    t = _trades(5000, seed=3)
    path = os.path.join(harness.tmpdir(), "trade.csv")
    with open(path, "w") as f:
        f.write("sym,price,size\n")
        for s_, p, z in zip(t["sym"], t["price"], t["size"]):
            f.write(f"{s_},{p!r},{z}\n")
    for s in (a, b):
        s._call(".qp.load", "trade_fan", path)

    def notional(tbl):
        return float((tbl["price"] * tbl["size"]).sum())

    got = kx.remote.fanout(notional, [a, b], table="trade_fan", pieces=6, merge="sum")
    assert np.isclose(got, (t["price"] * t["size"]).sum()), got
    rows = kx.remote.fanout(lambda tbl: len(tbl["size"]), [a, b], table="trade_fan",
                            pieces=4, merge="sum")
    assert rows == 5000, rows
    a.close()
    b.close()
