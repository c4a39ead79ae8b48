"""Fan-out over a kdb+ db from Python (issue 20.3), resumed across
processes (20.4), and a function's module importing the modules beside
it (20.5), against real `qpeach serve --db` processes over dbs made by
`qpeach db import`; sums checked against pandas on the source CSVs, the
README's example run as written."""
import json
import os
import re
import shutil
import sys
import textwrap

import numpy as np

import harness
from clientdb import DAYS, client, PYDIR, db_server, frame, python, readme_block, run_block, trades_db

kx = client()


def day_sums(t):
    """A partition's day, rows, price sum and size sum."""
    import numpy as np
    return {"day": np.asarray(t["date"][:1]).astype("datetime64[D]").astype(str),
            "n": np.array([len(t["price"])]), "px": np.array([float(np.sum(t["price"]))]),
            "size": np.array([int(np.sum(t["size"]))])}


def pandas_sums(paths, days=None):
    df = frame(paths)
    g = df.groupby(df["date"].dt.strftime("%Y-%m-%d")).agg(
        n=("size", "size"), px=("price", "sum"), size=("size", "sum"))
    out = {d: (int(r["n"]), float(r["px"]), int(r["size"])) for d, r in g.iterrows()}
    return {d: out[d] for d in days} if days else out


def as_sums(t):
    return {str(d): (int(n), float(p), int(s)) for d, n, p, s in
            zip(t["day"], t["n"], t["px"], t["size"])}


def close(a, b):
    assert a.keys() == b.keys(), (a, b)
    for k in a:
        assert a[k][0] == b[k][0] and abs(a[k][1] - b[k][1]) < 1e-9 and a[k][2] == b[k][2], (k, a, b)


# ---- 20.3: fan-out over a db ---------------------------------------------

def test_fanout_over_a_db_on_local_workers():
    d = harness.tmpdir()
    db, paths = trades_db(d)
    got = kx.remote.fanout(day_sums, table="trade", db=db, by="partition", local=2, progress=False)
    close(as_sums(got), pandas_sums(paths))
    pick = ["2024-01-03", "2024-01-08"]
    import datetime
    got = kx.remote.fanout(day_sums, table="trade", db=db, by="partition", local=2, progress=False,
                           partitions=[datetime.date(2024, 1, 3), "2024.01.08"])
    close(as_sums(got), pandas_sums(paths, pick))
    got = kx.remote.fanout(day_sums, table="trade", db=db, by="partition", local=1, progress=False,
                           partitions="2024.01.03..2024.01.05")
    close(as_sums(got), pandas_sums(paths, ["2024-01-03", "2024-01-04", "2024-01-05"]))


def _ran_file(d):
    return os.path.join(d, "ran.txt")


def marking(path):
    """A function that notes each partition it runs in path."""
    def f(t):
        import numpy as np
        with open(path, "a") as out:
            out.write(str(np.asarray(t["date"][:1]).astype("datetime64[D]")[0]) + "\n")
        return {"n": np.array([len(t["price"])])}
    return f


def test_partitions_filter_over_sessions_and_a_missing_one_fails_first():
    """Two servers, each holding its own days: partitions= picks days of
    both, each run where it is held; a day no server holds (or, with
    local workers, the db lacks) fails the run before any task runs."""
    d = harness.tmpdir()
    a, pa = trades_db(d, DAYS[:3], name="a")
    b, pb = trades_db(d, DAYS[3:], name="b")
    db, _ = trades_db(harness.tmpdir(), DAYS)
    with db_server(a) as sa, db_server(b) as sb:
        ss = [kx.remote.session(port=sa.port), kx.remote.session(port=sb.port)]
        pick = ["2024-01-02", "2024-01-05"]
        got = kx.remote.fanout(day_sums, ss, table="trade", by="partition", progress=False,
                               partitions=["2024.01.02", "2024.01.05"])
        close(as_sums(got), pandas_sums(pa + pb, pick))
        ran = _ran_file(d)
        for kw in (dict(sessions=ss, partitions=["2024.01.02", "2024.01.09"]),
                   dict(local=1, db=db, partitions=["2024.01.02", "2024.01.09"])):
            try:
                kx.remote.fanout(marking(ran), table="trade", by="partition", progress=False, **kw)
            except kx.RunError as e:
                assert e.code == 2 and "2024.01.09" in str(e) and e.task is None, (kw, str(e))
            else:
                raise AssertionError(f"a partition no worker holds must fail the run ({kw})")
            assert not os.path.exists(ran), "a task ran before the missing partition was found"
        try:
            kx.remote.fanout(day_sums, ss, table="trade", by="rows", partitions=["2024.01.02"])
        except ValueError as e:
            assert "by='partition'" in str(e), str(e)
        else:
            raise AssertionError("partitions= without by='partition' must fail")
        for s in ss:
            s.close()


def test_readme_fanout_db_example():
    d = harness.tmpdir()
    db, paths = trades_db(d)
    df = frame(paths)
    want = {day: float((g["price"] * g["size"]).sum() / g["size"].sum())
            for day, g in df.groupby(df["date"].dt.strftime("%Y-%m-%d"))}
    old = os.getcwd()
    os.chdir(d)
    try:
        with db_server(db) as srv:
            ns = run_block("client-fanout-db", [("db='hdb'", f"db={db!r}"),
                                                ("port=5050", f"port={srv.port}")])
            ns["s"].close()
    finally:
        os.chdir(old)
    for key, days in (("two", ["2024-01-03", "2024-01-05"]), ("alldays", sorted(want))):
        t = ns[key]
        got = {str(x): float(v) for x, v in zip(t["date"], t["vwap"])}
        assert sorted(got) == days, (key, got)
        assert all(abs(got[k] - want[k]) < 1e-9 for k in days), (key, got, want)


# ---- 20.4: resume across processes ---------------------------------------

SCRIPT = '''
import json, os, sys
import numpy as np
import qpeach as kx

DB, LOG, STATE = sys.argv[1:4]
K = float(os.environ.get("QP_TEST_K", "1"))
STOP = os.path.join(os.path.dirname(LOG), "stop")

def day_sum(t):
    day = str(np.asarray(t["date"][:1]).astype("datetime64[D]")[0])
    if os.path.exists(STOP) and day >= "2024-01-04":
        raise RuntimeError("stopped at " + day)
    with open(LOG, "a") as f:
        f.write(day + "\\n")
    return {"day": np.array([day]), "px": np.array([K * float(np.sum(t["price"]))])}

try:
    r = kx.remote.fanout(day_sum, table="trade", db=DB, by="partition", local=1,
                         journal=STATE, progress=False)
except kx.FanoutError as e:
    print("stopped:", e.partition, file=sys.stderr)
    sys.exit(3)
print(json.dumps({str(d): float(p) for d, p in zip(r["day"], r["px"])}))
'''


def _lines(path):
    try:
        with open(path) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def test_a_stopped_script_resumes_in_a_new_process():
    d = harness.tmpdir()
    db, paths = trades_db(d)
    want = {k: v[1] for k, v in pandas_sums(paths).items()}
    script, log, state = os.path.join(d, "job.py"), os.path.join(d, "ran.log"), \
        os.path.join(d, "state")
    with open(script, "w") as f:
        f.write(SCRIPT)
    stop = os.path.join(d, "stop")

    def run(seed, k="1", code=None):
        if code:
            with open(script, "w") as f:
                f.write(code)
        return python(script, db, log, state, env={"PYTHONHASHSEED": str(seed), "QP_TEST_K": k})

    open(stop, "w").close()
    r = run(1)
    assert r.returncode == 3 and "stopped: date=2024.01.04" in r.stderr, r.stderr
    assert _lines(log) == ["2024-01-02", "2024-01-03"], _lines(log)
    os.remove(stop)
    r = run(2)                      # another process, another hash seed
    assert r.returncode == 0, r.stderr
    assert "resuming: 2 of 5 tasks already done" in r.stderr, r.stderr
    assert _lines(log)[2:] == ["2024-01-04", "2024-01-05", "2024-01-08"], _lines(log)
    got = json.loads(r.stdout)
    assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-9 for k in want), got
    # Stopped again, then a changed global: it starts over and says so.
    open(log, "w").close()
    open(stop, "w").close()
    assert run(3).returncode == 3
    os.remove(stop)
    r = run(4, k="2")
    assert r.returncode == 0 and "the function's global K changed" in r.stderr, r.stderr
    assert "starting over" in r.stderr, r.stderr
    assert "resuming" not in r.stderr and len(_lines(log)) == 2 + 5, (r.stderr, _lines(log))
    got = json.loads(r.stdout)
    assert all(abs(got[k] - 2 * want[k]) < 1e-9 for k in want), got
    # Stopped again, then changed code: it says so too.
    open(log, "w").close()
    open(stop, "w").close()
    assert run(5, k="2").returncode == 3
    os.remove(stop)
    r = run(6, k="2", code=SCRIPT.replace("K * float(np.sum(", "K * 1.0 * float(np.sum("))
    assert r.returncode == 0 and "the function's code changed" in r.stderr, r.stderr
    assert "starting over" in r.stderr and "global" not in r.stderr, r.stderr


# ---- 20.5: modules beside the function's module --------------------------

OHLC = '''
import numpy as np
from rounding import cents

def ohlc(t):
    px = np.asarray(t["price"])
    return {"o": np.array([cents(px[0])]), "h": np.array([cents(px.max())]),
            "l": np.array([cents(px.min())]), "c": np.array([cents(px[-1])]),
            "tag": np.array([TAG])}

TAG = "v1"
'''
ROUNDING = "def cents(x):\n    return round(float(x), 2)\n"
SLOW = '''
import numpy as np
from ohlc import ohlc

def bars(t):
    return ohlc(t)
'''


def _modules(d):
    os.makedirs(d, exist_ok=True)
    for name, text in (("ohlc.py", OHLC), ("rounding.py", ROUNDING), ("slow.py", SLOW)):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)


def _want_bars(paths):
    df = frame(paths)
    out = []
    for _, g in df.groupby("date", sort=True):
        px = g["price"].to_numpy()
        out.append((round(px[0], 2), round(px.max(), 2), round(px.min(), 2), round(px[-1], 2)))
    return out


def _bars(t, tag="v1"):
    assert list(t["tag"]) == [tag] * len(t["tag"]), t["tag"]
    return [tuple(float(t[k][i]) for k in "ohlc") for i in range(len(t["o"]))]


def test_job_file_module_imports_modules_beside_it():
    """slow.py's `from ohlc import ohlc` (and ohlc's own `from rounding
    import cents`) works on local workers and on a `qpeach serve` started
    in another folder, which gets the modules shipped; a changed ohlc.py
    is a new definition there."""
    d = harness.tmpdir()
    db, paths = trades_db(d)
    mods = os.path.join(d, "code")
    _modules(mods)
    want = _want_bars(paths)
    out = os.path.join(d, "o.qipc")

    def job(workers):
        p = os.path.join(d, "j.ini")
        with open(p, "w") as f:
            f.write(f"[job]\nfunction = {mods}/slow.py:bars\n[input]\ndb = {db}\ntable = trade\n"
                    f"[partition]\nby = partition\n[workers]\n{workers}[output]\npath = {out}\n")
        r = harness.qpeach("run", "--fresh", p, timeout=300)
        assert r.returncode == 0, r.stderr
        with open(out, "rb") as f:
            return kx.remote._extension().loads(f.read())

    assert _bars(job("local = 2\n")) == want
    elsewhere = harness.tmpdir()
    srv = harness.Server("--db", db, env=dict(os.environ, QPEACH_PYTHONPATH=PYDIR))
    try:
        assert os.getcwd() != mods
        assert _bars(job(f"servers = {srv.addr}\n")) == want
        with open(os.path.join(mods, "ohlc.py"), "w") as f:
            f.write(OHLC.replace('TAG = "v1"', 'TAG = "v2"'))
        assert _bars(job(f"servers = {srv.addr}\n"), "v2") == want
    finally:
        srv.stop()
        shutil.rmtree(elsewhere, ignore_errors=True)


SIBLINGS = '''
import os, sys
import qpeach as kx
sys.path.insert(0, sys.argv[1])
from slow import bars
db, port = sys.argv[2], int(sys.argv[3])
print(repr(kx.remote.fanout(bars, table="trade", db=db, by="partition", local=2,
                            progress=False)))
s = kx.remote.session(port=port)
print(repr(kx.remote.fanout(bars, [s], table="trade", by="partition", progress=False)))
print(repr(kx.remote.function(s)(bars)(s.get("trade", partition="2024.01.03", pandas=False))))
'''


def test_fanout_and_session_functions_ship_sibling_modules():
    """A function imported from slow.py, fanned out on local workers and
    on a `qpeach serve` session, and called as a remote function: ohlc.py
    and rounding.py go with it."""
    d = harness.tmpdir()
    db, paths = trades_db(d)
    mods = os.path.join(d, "code")
    _modules(mods)
    script = os.path.join(d, "s.py")
    with open(script, "w") as f:
        f.write(SIBLINGS)
    want = _want_bars(paths)
    with db_server(db) as srv:
        r = python(script, mods, db, srv.port, cwd=harness.tmpdir())
    assert r.returncode == 0, r.stderr
    got = [eval(line, {"array": np.array, "dtype": np.dtype}) for line in r.stdout.splitlines()]
    assert _bars(got[0]) == want and _bars(got[1]) == want, got
    assert _bars(got[2]) == [want[1]], got[2]


def test_what_is_shipped_is_the_imports_beside_the_module():
    """sibling_modules: the imports of slow.py that are files beside it,
    and theirs; not a package, not itself, not the standard library."""
    d = harness.tmpdir()
    _modules(d)
    os.makedirs(os.path.join(d, "pkg"))
    with open(os.path.join(d, "pkg", "__init__.py"), "w") as f:
        f.write("")
    with open(os.path.join(d, "slow.py"), "a") as f:
        f.write(textwrap.dedent('''
            import json, pkg, slow
            try:
                import rounding as r2, missing_one
            except ImportError:
                pass
            '''))
    got = kx.remote._extension().sibling_modules(os.path.join(d, "slow.py"))
    assert sorted(got) == ["ohlc", "rounding"], sorted(got)
    assert got["ohlc"] == OHLC and got["rounding"] == ROUNDING


def test_readme_siblings_example():
    d = harness.tmpdir()
    db, paths = trades_db(d)
    code = os.path.join(d, "code")
    os.makedirs(code)
    for name in ("ohlc", "slow"):
        with open(os.path.join(code, name + ".py"), "w") as f:
            f.write(readme_block(f"client-siblings-{name}"))
    df = frame(paths)
    want = {str(day.date()): (g["price"].iloc[0], g["price"].max(), g["price"].min(),
                              g["price"].iloc[-1]) for day, g in df.groupby("date")}
    sys.path.insert(0, code)
    try:
        with db_server(db) as srv:
            ns = run_block("client-siblings", [("port=5050", f"port={srv.port}"),
                                               ("db='hdb'", f"db={db!r}")])
            ns["s"].close()
    finally:
        sys.path.remove(code)
        for m in ("slow", "ohlc"):
            sys.modules.pop(m, None)

    def days(t):
        return {str(x): (float(o), float(h), float(lo), float(c))
                for x, o, h, lo, c in zip(t["date"], t["o"], t["h"], t["l"], t["c"])}

    assert days(ns["day"]) == {"2024-01-03": want["2024-01-03"]}, ns["day"]
    assert days(ns["every"]) == want and days(ns["local"]) == want, (ns["every"], want)


def test_readme_resume_example():
    d = harness.tmpdir()
    db, paths = trades_db(d)
    df = frame(paths)
    want = {str(day.date()): float((g["price"] * g["size"]).sum()) for day, g in df.groupby("date")}
    script = os.path.join(d, "nightly.py")
    code = readme_block("client-resume")
    # one local worker: the first run fails at the third day, after the two
    # before it; the days after it that were sent with it (in its batch or
    # window) may have finished too, and are journaled
    for a, b in (("db='hdb'", f"db={db!r}"), ("local=2", "local=1")):
        assert a in code, a
        code = code.replace(a, b)
    with open(script, "w") as f:
        f.write(code)
    gone = os.path.join(db, "2024.01.04", "trade", "size")
    os.rename(gone, gone + ".away")
    r = python(script, env={"PYTHONHASHSEED": "11"}, cwd=d)
    assert r.returncode != 0 and "FanoutError" in r.stderr and "2024.01.04" in r.stderr, r.stderr
    os.rename(gone + ".away", gone)
    r = python(script, env={"PYTHONHASHSEED": "12"}, cwd=d)
    assert r.returncode == 0, r.stderr
    m = re.search(r"qpeach fanout: resuming: (\d) of 5 tasks already done", r.stderr)
    assert m and 2 <= int(m.group(1)) <= 4, r.stderr
    out = eval(r.stdout, {"array": np.array})
    got = {str(x): float(v) for x, v in zip(out["date"], out["notional"])}
    assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-6 for k in want), got
