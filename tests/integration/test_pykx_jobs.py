"""`qpeach run` driving servers with PyKX's own messages ([workers]
protocol = pykx), and our client's session(..., protocol='pykx').

No q + PyKX is available here: the servers are real `qpeach serve`
processes, which answer PyKX's exact texts (../shared/PYKX_WIRE.md, tested
byte for byte in test_pykx.py) the way q + pykx.q does: the function gets
its table as a pandas DataFrame, a raised exception comes back as
repr(exc). Each job runs twice, over the same two servers, once per
protocol, and the outputs must be the same bytes."""
import os
import sys

import numpy as np

import harness
from harness import Server, free_port, tmpdir

# Under a sanitizer build the client extension loads only with the ASan
# runtime first: start this module again that way.
harness.asan_client_reexec()

import test_pykx  # noqa: E402  (after the re-exec: it has the same one)
from test_db import orders_db  # noqa: E402
from test_run import run, write  # noqa: E402

# Works under both protocols: qpeach hands the function its table type,
# PyKX a DataFrame; both take a DataFrame back as a table. _col is a
# module-level helper: protocol = pykx sends the whole module.
VW = '''import numpy as np
import pandas as pd


def _col(t, name, dtype=None):
    return np.asarray(t[name], dtype=dtype)


def parts(t):
    names, inv = np.unique(_col(t, 'sym').astype(str), return_inverse=True)
    price, size = _col(t, 'price', float), _col(t, 'size', float)
    return pd.DataFrame({'sym': names,
                         'pv': np.bincount(inv, weights=price * size, minlength=len(names)),
                         'size': np.bincount(inv, weights=size, minlength=len(names))})


def finish(t):
    sym = _col(t, 'sym').astype(str)
    order = np.argsort(sym, kind='stable')
    pv, size = _col(t, 'pv', float)[order], _col(t, 'size', float)[order]
    return pd.DataFrame({'sym': sym[order], 'vwap': pv / size, 'size': size})


def kind(t):
    return pd.DataFrame({'kind': [type(t).__name__], 'n': [len(_col(t, 'sym'))]})


def count(t):
    first = list(t.columns)[0] if hasattr(t, 'columns') else list(t.keys())[0]
    return pd.DataFrame({'first': [str(first)], 'n': [len(np.asarray(t[first]))]})


def boom(t):
    return 1 / 0
'''

_servers = {}


def servers(db=None):
    """Two `qpeach serve` processes (with --db db when given), shared."""
    key = db or "plain"
    got = _servers.get(key)
    if not got or not all(s.alive() for s in got):
        args = ("--db", db) if db else ()
        got = _servers[key] = [Server(*args), Server(*args)]
    return got


def teardown_module():
    for ss in _servers.values():
        for s in ss:
            s.stop()


def trades(d, n=3000):
    rng = np.random.default_rng(7)
    with open(os.path.join(d, "t.csv"), "w") as f:
        f.write("sym,price,size\n")
        for i in range(n):
            f.write(f"{'abcdefg'[rng.integers(7)]},{rng.uniform(10, 20):.3f},"
                    f"{rng.integers(1, 100)}\n")


def job(d, name, protocol, inp, part, merge, addrs, fn="vw.py:parts"):
    write(d, "vw.py", VW)
    return write(d, name, f"[job]\nfunction = {fn}\nlibraries = np=numpy\n[input]\n{inp}"
                 f"[partition]\n{part}[workers]\nservers = {', '.join(addrs)}\n"
                 f"protocol = {protocol}\n[merge]\n{merge}[output]\npath = {name}.csv\n")


def both(d, inp, part, merge, addrs, fn="vw.py:parts"):
    """Runs the job over .qp and over PyKX's messages; the two outputs."""
    out = {}
    for proto in ("qpeach", "pykx"):
        p = job(d, f"{proto}.ini", proto, inp, part, merge, addrs, fn)
        r = run(p)
        assert r.returncode == 0, (proto, r.stderr)
        with open(os.path.join(d, f"{proto}.ini.csv"), "rb") as f:
            out[proto] = f.read()
    return out


VWAP = "how = sum-by-key\nkey = sym\nreducer = vw.py:finish\n"


def test_by_rows_sum_by_key_and_reducer_same_bytes():
    d = tmpdir()
    trades(d)
    out = both(d, "table = trade\nfile = t.csv\ntypes = SFJ\n", "by = rows\npieces = 7\n", VWAP,
               [s.addr for s in servers()])
    assert out["pykx"] == out["qpeach"], out
    assert out["pykx"].startswith(b"sym,vwap,size\na,"), out["pykx"]
    assert out["pykx"].count(b"\n") == 8, out["pykx"]       # header + 7 syms


def test_by_column_same_bytes():
    d = tmpdir()
    trades(d)
    out = both(d, "table = trade\nfile = t.csv\ntypes = SFJ\n", "by = column\ncolumn = sym\n",
               VWAP, [s.addr for s in servers()])
    assert out["pykx"] == out["qpeach"], out


def test_by_file_same_bytes():
    d = tmpdir()
    trades(d, 500)
    os.makedirs(os.path.join(d, "in"))
    with open(os.path.join(d, "t.csv")) as f:
        lines = f.readlines()
    for k in range(3):                      # three files, 1/3 of the rows each
        with open(os.path.join(d, "in", f"p{k}.csv"), "w") as f:
            f.writelines([lines[0]] + lines[1 + k::3])
    out = both(d, "files = in/*.csv\ntypes = SFJ\n", "by = file\n", VWAP,
               [s.addr for s in servers()])
    assert out["pykx"] == out["qpeach"], out


def test_the_function_gets_pykx_s_dataframe():
    # The same job, but the function says what it was given: proof that the
    # servers ran PyKX's call (pandas.DataFrame), not .qp.apply.
    d = tmpdir()
    trades(d, 100)
    p = job(d, "k.ini", "pykx", "table = trade\nfile = t.csv\ntypes = SFJ\n",
            "by = rows\npieces = 4\n", "how = concat\n", [s.addr for s in servers()],
            fn="vw.py:kind")
    r = run(p)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(d, "k.ini.csv")) as f:
        assert f.read() == "kind,n\n" + "DataFrame,25\n" * 4


_daily = []


def daily():
    """A db (made once by `qpeach db import`) whose table Daily spans 3
    dates."""
    if not _daily:
        root = os.path.join(tmpdir(), "db")
        for k, day in enumerate(("2022.06.16", "2022.06.17", "2022.06.20")):
            orders_db(root, ("Daily",), n=200 + k, date=day)
        _daily.append(root)
    return _daily[0]


def test_db_by_partition_and_rows_same_bytes():
    db = daily()
    addrs = [s.addr for s in servers(db)]      # .qp needs the db there
    d = tmpdir()
    for part, merge in (("by = partition\n", "how = concat\n"),
                        ("by = rows\npieces = 3\n", "how = sum-by-key\nkey = first\n")):
        out = both(d, f"db = {db}\ntable = Daily\n", part, merge, addrs, fn="vw.py:count")
        assert out["pykx"] == out["qpeach"], (part, out)
        assert out["pykx"].startswith(b"first,n\ndate,"), out
        if "partition" in part:                 # each date's rows, in date order
            assert out["pykx"] == b"first,n\ndate,200\ndate,201\ndate,202\n", out


def test_pykx_job_over_servers_without_the_db():
    # a q server selects nothing: the rows travel, so servers need no db
    d = tmpdir()
    p = job(d, "p.ini", "pykx", f"db = {daily()}\ntable = Daily\n", "by = partition\n",
            "how = concat\n", [s.addr for s in servers()], fn="vw.py:count")
    r = run(p)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(d, "p.ini.csv")) as f:
        assert f.read().startswith("first,n\ndate,"), r.stderr


def test_raising_function_names_the_partition():
    d = tmpdir()
    trades(d, 100)
    p = job(d, "b.ini", "pykx", "table = trade\nfile = t.csv\ntypes = SFJ\n",
            "by = rows\npieces = 2\n", "how = concat\n", [servers()[0].addr], fn="vw.py:boom")
    r = run(p)
    assert r.returncode == 1, r.stderr
    assert "(rows 0-50) failed on " in r.stderr, r.stderr
    assert "ZeroDivisionError('division by zero')" in r.stderr, r.stderr
    # the same job from Python: PyKX's repr(exception) read by the PyKX
    # protocol into the error's parts
    sys.path.insert(0, os.path.join(harness.ROOT, "python"))
    import qpeach as kx
    try:
        kx.run(p, progress=False)
    except kx.FanoutError as e:
        assert (e.task, e.partition, e.worker) == (0, "rows 0-50", servers()[0].addr), \
            (e.task, e.partition, e.worker)
        assert (e.remote_type, e.remote_message, e.remote_traceback) == \
            ("ZeroDivisionError", "division by zero", ""), (e.remote_type, e.remote_message)
    else:
        raise AssertionError("a raising function must raise FanoutError")


def test_a_lost_server_leaves_the_job_to_the_other():
    d = tmpdir()
    trades(d, 300)
    dead = f"127.0.0.1:{free_port()}"
    out = both(d, "table = trade\nfile = t.csv\ntypes = SFJ\n", "by = rows\npieces = 3\n", VWAP,
               [servers()[0].addr, dead])
    assert out["pykx"] == out["qpeach"], out


def test_missing_library_is_pykx_s_error():
    d = tmpdir()
    trades(d, 10)
    write(d, "vw.py", VW)
    p = write(d, "m.ini", "[job]\nfunction = vw.py:parts\nlibraries = nx=no_such_module_x\n"
              f"[input]\nfile = t.csv\n[workers]\nservers = {servers()[0].addr}\n"
              "protocol = pykx\n[output]\npath = m.csv\n")
    r = run(p)
    assert r.returncode == 1, r.stderr
    assert ("libraries: Failed to load library 'no_such_module_x' with alias 'nx' with error: "
            "ModuleNotFoundError(\"No module named 'no_such_module_x'\")") in r.stderr, r.stderr


def test_job_file_checks():
    d = tmpdir()
    write(d, "vw.py", VW)
    for body, want in (
        ("[workers]\nlocal = 2\nprotocol = pykx\n",
         "[workers] protocol = pykx is for servers"),
        ("[workers]\nservers = h:1\nprotocol = q\n",
         "[workers] protocol: expected qpeach or pykx"),
        ("[workers]\nservers = h:1\nprotocol = pykx\n[input]\ntable = t\n",
         "protocol = pykx needs the input here"),
    ):
        text = "[job]\nfunction = vw.py:parts\n" + body
        if "[input]" not in body:
            text += "[input]\nfile = t.csv\n"
        r = run(write(d, "c.ini", text))
        assert r.returncode == 2 and want in r.stderr, (body, r.stderr)


MAVG = test_pykx.MAVG


def test_client_walkthrough_with_protocol_pykx():
    sys.path.insert(0, os.path.join(harness.ROOT, "python"))
    import qpeach as kx
    session = kx.remote.session(host='localhost', port=servers()[0].port, protocol='pykx')

    @kx.remote.function(session)
    def zero_arg_function():
        return 10

    @kx.remote.function(session)
    def single_arg_function(x):
        return x+10

    @kx.remote.function(session)
    def multi_arg_function(x, y):
        return x+y

    assert zero_arg_function() == 10
    assert single_arg_function(10) == 20
    assert multi_arg_function(10, 20) == 30

    session.libraries({'np': 'numpy', 'kx': 'pykx'})

    @kx.remote.function(session)
    def dependent_function(x, y, z):
        return kx.q.mavg(4, np.linspace(x, y, z))

    got = dependent_function(0, 10, 10)
    assert np.allclose(got, MAVG, atol=1e-6), got

    @kx.remote.function(session)
    def raises(x):
        return int(x) / 0     # x is a numpy.int64 (PyKX's conversion): no raise

    try:
        raises(1)
        raise AssertionError("no error")
    except kx.QError as e:
        assert str(e) == "ZeroDivisionError('division by zero')", str(e)
    try:
        single_arg_function(x=1)
        raise AssertionError("no error")
    except TypeError as e:
        assert "positional arguments only" in str(e), str(e)
    try:
        kx.remote.fanout(single_arg_function, [session], {'x': np.arange(4)})
        raise AssertionError("no error")
    except ValueError as e:
        assert "[workers] protocol = pykx" in str(e), str(e)
    try:
        session.libraries({'nx': 'no_such_module_x'})
        raise AssertionError("no error")
    except kx.QError as e:
        assert "Failed to load library 'no_such_module_x' with alias 'nx'" in str(e), str(e)
    session.close()


def test_client_texts_are_the_servers():
    # one copy of each text per language: the client's match the bytes
    # test_pykx.py checks against PyKX's hashes
    sys.path.insert(0, os.path.join(harness.ROOT, "python"))
    from qpeach import _pykx_client as c
    t = test_pykx
    assert (c.Q0, c.Q2, c.Q3) == (t.Q0, t.Q2, t.Q3)


def test_client_texts_come_from_the_library():
    # one copy in the whole project (include/qpeach/pykx.h): the Python
    # client takes the texts from the extension and holds none of its own
    sys.path.insert(0, os.path.join(harness.ROOT, "python"))
    from qpeach import _pykx_client as c, _qpeach
    t = test_pykx
    assert (_qpeach.PYKX_Q0, _qpeach.PYKX_Q2, _qpeach.PYKX_Q3) == (t.Q0, t.Q2, t.Q3)
    with open(c.__file__, encoding="utf-8") as f:
        src = f.read()
    for piece in ("pykx in key", "{[alias;library]", "{[code;func_name;args;lenargs]"):
        assert piece not in src, f"_pykx_client.py holds a copy of a PyKX text ({piece!r})"
