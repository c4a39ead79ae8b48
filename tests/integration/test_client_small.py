"""The small ones of issue 20 (20.8), each against real `qpeach serve
--db` / `qpeach run` processes over a db made by `qpeach db import`:
progress=True, symbols as str unless asked, one traceback starting at
the user's function, "item N" for map, a progress callback's exception
raised as itself, --log-json fields and --quiet, one version, and
kx.q(...) saying that qpeach evaluates no q; the README's example run as
written."""
import json
import os
import traceback

import harness
from clientdb import client, db_server, frame, python, run_block, trades_db

kx = client()

_fix = {}


def fixture():
    if not _fix:
        d = harness.tmpdir()
        db, paths = trades_db(d)
        _fix.update(d=d, db=db, paths=paths, srv=db_server(db))
    return _fix


def teardown_module():
    if "srv" in _fix:
        _fix["srv"].stop()


def session():
    return kx.remote.session(port=fixture()["srv"].port)


PROGRESS = '''
import sys
import qpeach as kx

def rows(t):
    return len(t["price"])

print(kx.remote.fanout(rows, table="trade", db=sys.argv[1], by="partition", local=1,
                       merge="sum", progress=True))
'''


def test_progress_true_shows_a_bar_whatever_stderr_is():
    f = fixture()
    script = os.path.join(f["d"], "p.py")
    with open(script, "w") as out:
        out.write(PROGRESS)
    r = python(script, f["db"])         # stderr a pipe, not a TTY
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == len(frame(f["paths"])), r.stdout
    assert "5/5" in r.stderr, r.stderr


def test_symbols_are_str_unless_categorical():
    f = fixture()
    s = session()

    def kinds(t):
        return str(t["sym"].dtype)

    day = s.get("trade", partition="2024.01.03", pandas=False)
    assert kx.remote.function(s, pandas=True)(kinds)(day) == "object"
    assert kx.remote.function(s, pandas=True, categorical=True)(kinds)(day) == "category"

    def echo(t):
        return t

    assert str(kx.remote.function(s, pandas=True)(echo)(day)["sym"].dtype) == "object"
    got = kx.remote.fanout(echo, [s], table="trade", by="partition", pandas=True, progress=False)
    df = frame(f["paths"])
    assert str(got["sym"].dtype) == "object", got.dtypes
    assert got["sym"].isna().tolist() == df["sym"].isna().tolist()
    assert got["sym"].dropna().tolist() == df["sym"].dropna().tolist()
    got = kx.remote.fanout(kinds, [s], table="trade", by="partition", pandas=True,
                           symbols="categorical", merge="none", progress=False)
    assert list(got) == ["category"] * 5, got
    s.close()


def boom(t):
    import numpy as np
    if str(np.asarray(t["date"][:1]).astype("datetime64[D]")[0]) == "2024-01-04":
        raise KeyError("no such day")
    return len(t["price"])


def test_one_traceback_starting_at_the_users_function():
    s = session()
    here = os.path.abspath(__file__)
    try:
        kx.remote.function(s)(boom)(s.get("trade", partition="2024.01.04", pandas=False))
    except kx.QError as e:
        frames = [ln for ln in e.remote_traceback.splitlines() if ln.strip().startswith("File ")]
        assert frames and here in frames[0] and ", in boom" in frames[0], e.remote_traceback
        assert "qpeach" not in e.remote_traceback.replace(here, ""), e.remote_traceback
    else:
        raise AssertionError("boom must raise")
    try:
        kx.remote.fanout(boom, [s], table="trade", by="partition", progress=False)
    except kx.FanoutError as e:
        text = "".join(traceback.format_exception(e))
        assert text.count("Traceback (last frames)") == 1, text
        assert str(e).count(", in boom") == 1 and "<qpeach entry>" not in text, str(e)
        assert e.remote_type == "KeyError" and ", in boom" in e.remote_traceback, e.remote_traceback
        assert str(e.__cause__) == "KeyError: 'no such day'", str(e.__cause__)
    else:
        raise AssertionError("the fanout must fail")
    s.close()


def test_map_names_the_item():
    s = session()

    def inverse(x):
        return 1 / x

    try:
        kx.remote.map(inverse, [1, 2, 4, 0, 5], [s], progress=False)
    except kx.FanoutError as e:
        assert str(e).startswith("item 3 failed on "), str(e)
        assert e.partition == "item 3" and e.task == 3, (e.partition, e.task)
        assert "ZeroDivisionError" in str(e) and "rows 3-4" not in str(e), str(e)
    else:
        raise AssertionError("map must fail at item 3")
    s.close()


CALLBACK = '''
import sys, time
import qpeach as kx

def slow(t):
    import time
    time.sleep(0.2)
    return len(t["price"])

def cb(done, total, failed):
    if done >= 1:
        raise ValueError("stop here")

try:
    kx.remote.fanout(slow, table="trade", db=sys.argv[1], by="partition", local=1,
                     merge="sum", progress=cb, log=True)
except ValueError as e:
    print("raised", type(e).__name__, e)
'''


def test_progress_callback_exception_is_raised_as_itself():
    f = fixture()
    script = os.path.join(f["d"], "cb.py")
    with open(script, "w") as out:
        out.write(CALLBACK)
    r = python(script, f["db"])
    assert r.returncode == 0 and r.stdout.strip() == "raised ValueError stop here", \
        (r.stdout, r.stderr)
    assert "stopped by the progress callback" in r.stderr, r.stderr
    assert "interrupted by signal" not in r.stderr, r.stderr


FN = '''
import numpy as np
def f(t):
    if FAIL:
        raise ValueError("failing on purpose")
    return {"n": np.array([len(t["price"])])}
'''


def _job(d, db, fail):
    with open(os.path.join(d, "fn.py"), "w") as out:
        out.write(f"FAIL = {fail}\n" + FN)
    p = os.path.join(d, "j.ini")
    with open(p, "w") as out:
        out.write(f"[job]\nfunction = fn.py:f\n[input]\ndb = {db}\ntable = trade\n"
                  f"[partition]\nby = partition\n[workers]\nlocal = 1\n"
                  f"[output]\npath = out.csv\n")
    return p


def test_log_json_fields_and_quiet():
    f = fixture()
    d = harness.tmpdir()
    p = _job(d, f["db"], False)
    r = harness.qpeach("run", "--fresh", "--log-json", p, timeout=300)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stderr.splitlines()]
    tasks = [e for e in events if e["event"] == "task"]
    df = frame(f["paths"])
    sizes = df.groupby(df["date"].dt.strftime("%Y.%m.%d")).size()
    assert len(tasks) == 5, events
    for e in tasks:
        assert {"event", "task", "partition", "worker", "ms", "rows", "message"} <= set(e), e
        assert e["worker"] == 0 and isinstance(e["ms"], int) and e["ms"] >= 0, e
        day = e["partition"].split("=")[1]
        assert e["partition"] == f"date={day}" and e["rows"] in (None, int(sizes[day])), e
    assert sorted(e["task"] for e in tasks) == list(range(5)), tasks
    for args in (["--quiet", "--log-json"], ["--log-json", "--quiet"], ["--quiet"]):
        r = harness.qpeach("run", "--fresh", *args, p, timeout=300)
        assert r.returncode == 0 and r.stderr == "", (args, r.stderr)
    p = _job(d, f["db"], True)
    r = harness.qpeach("run", "--fresh", "--quiet", "--log-json", p, timeout=300)
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    e = json.loads(lines[0])
    assert e["event"] == "error" and "failing on purpose" in e["message"], e
    r = harness.qpeach("run", "--fresh", "--quiet", p, timeout=300)
    assert r.returncode == 1 and len(r.stderr.splitlines()) >= 1, r.stderr
    assert r.stderr.startswith("qpeach run j: ") and "failing on purpose" in r.stderr, r.stderr
    assert "done on worker" not in r.stderr and "tasks (" not in r.stderr, r.stderr


def test_one_version():
    r = harness.qpeach("--version")
    assert r.returncode == 0 and r.stdout == f"qpeach {kx.__version__}\n", r.stdout
    s = session()
    info = s.call(".qp.info")
    assert info["version"] == kx.__version__, info
    s.close()


def test_kx_q_says_qpeach_evaluates_no_q():
    try:
        kx.q("til 10")
    except NotImplementedError as e:
        assert "qpeach evaluates no q" in str(e) and "kx.q.NAME" in str(e), str(e)
        assert "session.tables()" in str(e) and "til" in str(e), str(e)
    else:
        raise AssertionError("kx.q('til 10') must raise")
    assert list(kx.q.til(3)) == [0, 1, 2]


def test_readme_small_example():
    f = fixture()
    df = frame(f["paths"])
    ns = run_block("client-small", [("port=5050", f"port={f['srv'].port}")])
    assert ns["version"] == harness.qpeach("--version").stdout.split()[1]
    assert str(ns["syms"].dtype) == "object" and str(ns["cats"].dtype) == "category"
    assert ns["syms"].dropna().tolist() == df["sym"].dropna().tolist()
    assert ns["failed"] == "item 2" and "evaluates no q" in ns["why"]
    ns["s"].close()
