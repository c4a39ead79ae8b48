"""Python fan-out on the C scheduler: `qpeach.run`, `kx.remote.fanout` and
`kx.remote.map` against real `qpeach serve` workers (local ones the
scheduler starts, and running servers). The merged bytes must equal what
`qpeach run` writes for the same job, for every [merge] how; a worker
killed with SIGKILL mid-run must not change the answer."""
import os
import signal
import sys

import numpy as np

import harness
from harness import Server

ROOT = harness.ROOT
PYDIR = os.path.join(ROOT, "python")

# Under a sanitizer build the extension loads only with the ASan runtime
# first: start this module again that way.
harness.asan_client_reexec()

sys.path.insert(0, PYDIR)
os.environ["QPEACH_BIN"] = os.path.join(harness.BUILD, "qpeach")
import qpeach as kx                     # noqa: E402

# The functions of the jobs, as a module file for `qpeach run` and as
# Python functions (from the same text) for fanout.
MODULE = '''
import numpy as np

def rows2(t):
    return {"sym": t["sym"], "z": t["x"] * 2}

def ysum(t):
    return float(t["y"].sum())

def ymin(t):
    return float(t["y"].min())

def ymax(t):
    return float(t["y"].max())

def nrows(t):
    return np.arange(len(t["x"]))

def bysym(t):
    syms, inv = np.unique(t["sym"], return_inverse=True)
    return {"sym": syms, "y": np.bincount(inv, weights=t["y"]), "n": np.bincount(inv)}

def finish(parts):
    return float(sum(parts))
'''
FNS = {}
exec(compile(MODULE, "fanout_fns.py", "exec"), FNS)

N = 2000


def _data():
    rng = np.random.default_rng(7)
    return {"sym": rng.choice(np.array(["AA", "BB", "CC", "DD"], dtype=object), N),
            "x": rng.integers(0, 1000, N).astype(np.int64),
            "y": np.round(rng.uniform(0, 100, N), 3)}


def _write_inputs(d):
    t = _data()
    with open(os.path.join(d, "data.csv"), "w") as f:
        f.write("sym,x,y\n")
        for s, x, y in zip(t["sym"], t["x"], t["y"]):
            f.write(f"{s},{x},{y!r}\n")
    with open(os.path.join(d, "fns.py"), "w") as f:
        f.write(MODULE)
    return t


def _job(d, name, fn, how, by="rows", key=None, reducer=None):
    part = "by = rows\npieces = 5\n" if by == "rows" else f"by = column\ncolumn = {by}\n"
    merge = f"how = {how}\n" + (f"key = {key}\n" if key else "") + \
        (f"reducer = fns.py:{reducer}\n" if reducer else "")
    path = os.path.join(d, name + ".ini")
    with open(path, "w") as f:
        f.write(f"[job]\nfunction = fns.py:{fn}\n[input]\ntable = t\nfile = data.csv\n"
                f"types = SJF\n[partition]\n{part}[workers]\nlocal = 2\n[merge]\n{merge}"
                f"[output]\npath = {name}.qipc\n")
    return path


CASES = [  # (name, function, how, by, key, reducer)
    ("concat", "rows2", "concat", "rows", None, None),
    ("sum", "ysum", "sum", "rows", None, None),
    ("min", "ymin", "min", "sym", None, None),
    ("max", "ymax", "max", "rows", None, None),
    ("count", "nrows", "count", "rows", None, None),
    ("sumbykey", "bysym", "sum-by-key", "rows", "sym", None),
    ("none", "ysum", "none", "sym", None, None),
    ("python", "ysum", "python", "rows", None, "finish"),
]


def test_fanout_bytes_equal_qpeach_run_for_every_how():
    d = harness.tmpdir()
    t = _write_inputs(d)
    for name, fn, how, by, key, reducer in CASES:
        path = _job(d, name, fn, how, by, key, reducer)
        r = harness.qpeach("run", path, timeout=300)
        assert r.returncode == 0, (name, r.stderr)
        with open(os.path.join(d, name + ".qipc"), "rb") as f:
            cli = f.read()
        os.unlink(os.path.join(d, name + ".qipc"))
        # The same job file through the extension: the value comes back
        # (and [output] path is written again, byte for byte).
        got = kx.run(path, raw=True, progress=False)
        assert got == cli, name
        with open(os.path.join(d, name + ".qipc"), "rb") as f:
            assert f.read() == cli, name
        # fanout with the function defined here, on a table held here (a
        # callable merge is how = python: the reducer runs on a worker).
        merge = FNS[reducer] if how == "python" else how
        got = kx.remote.fanout(FNS[fn], local=2, table=t, by=by, merge=merge, key=key,
                               pieces=5 if by == "rows" else None, raw=True, progress=False)
        assert got == cli, (name, kx.remote._extension().loads(got),
                            kx.remote._extension().loads(cli))


def test_run_dict_job_and_value():
    # A dict job: paths from the current folder; the value as Python.
    d = harness.tmpdir()
    t = _write_inputs(d)
    cwd = os.getcwd()
    os.chdir(d)
    try:
        got = kx.run({"job": {"function": "fns.py:bysym"},
                      "input": {"table": "t", "file": "data.csv", "types": "SJF"},
                      "partition": {"by": "rows", "pieces": 3},
                      "workers": {"local": 2},
                      "merge": {"how": "sum-by-key", "key": "sym"}}, progress=False)
    finally:
        os.chdir(cwd)
    for s, y, n in zip(got["sym"], got["y"], got["n"]):
        m = t["sym"] == s
        assert n == m.sum() and np.isclose(y, t["y"][m].sum()), (s, y, n)
    assert sorted(got["sym"]) == ["AA", "BB", "CC", "DD"]
    try:
        kx.run({"job": {"function": "nofile.py:f"}, "input": {"table": "t"},
                "workers": {"local": 1}, "partition": {"by": "nope"}}, progress=False)
    except ValueError as e:
        assert "[partition] by" in str(e), str(e)
    else:
        raise AssertionError("a bad job must raise ValueError naming the key")


def _job_error(job):
    try:
        kx.run(job, progress=False)
    except ValueError as e:
        return str(e)
    raise AssertionError(f"a bad job must raise ValueError: {job}")


def test_dict_job_errors_are_the_job_file_s():
    """A dict job is checked by the job file's code (no job file is
    written): every error is the one the same keys in a job file give,
    named "job" instead of the file and line."""
    d = harness.tmpdir()
    base = {"job": {"function": "f.py:f"}, "input": {"table": "t"}, "workers": {"local": 1}}
    bad = [
        {"partition": {"pieces": "x"}},                   # a value
        {"partition": {"by": "nope"}},
        {"job": {"function": "f.py:f", "colour": "red"}}, # a key
        {"colours": {"red": 1}},                          # a section
        {"partition": {"by": "column"}},                  # across keys
        {"partition": {"by": "file", "pieces": 2}},
        {"workers": {"local": 1, "tls": "maybe"}},
        {"merge": {"how": "median"}},
        {"job": {"function": "f.py:not-a-name"}},
        {"run": {"task_timeout": "soon"}},
    ]
    for extra in bad:
        job = {s: dict(k) for s, k in base.items()}
        for sec, keys in extra.items():
            job.setdefault(sec, {}).update(keys)
        lines = []
        for sec, keys in job.items():
            lines.append(f"[{sec}]")
            lines += [f"{k} = {v}" for k, v in keys.items()]
        path = os.path.join(d, "same.ini")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        from_file, from_dict = _job_error(path), _job_error(job)
        where, _, text = from_file.partition(": ")
        assert where.startswith("same.ini"), from_file
        assert from_dict == "job: " + text, (from_dict, from_file)
    # lists and dicts are spelled as a job file spells them
    job = {"job": {"function": "f.py:f", "libraries": {"1np": "numpy", "pd": "pandas"}},
           "input": {"table": "t"}, "workers": {"local": 1}}
    assert _job_error(job) == ("job: [job] libraries: expected alias=module, comma separated: "
                               "'1np=numpy, pd=pandas'"), _job_error(job)
    job = {"job": {"function": "f.py:f"}, "input": {"table": "t"},
           "workers": {"servers": ["h:1", "nohost"], "tls": True}}
    assert _job_error(job) == ("job: [workers] servers: not an address (host:port, "
                               "unix:/path): 'nohost'"), _job_error(job)


def test_fanout_survives_kill_9_of_a_local_worker():
    t = {"x": np.arange(400, dtype=np.int64)}

    def slow_sum(tbl):
        import time
        time.sleep(0.05)
        return int(tbl["x"].sum())

    me = os.getpid()
    killed = []
    seen = []

    def progress(done, total, failed):
        seen.append((done, total, failed))
        if done >= 5 and not killed:
            kids = [p for p in harness.children(me) if _is_worker(p)]
            assert kids, "no local worker process found"
            os.kill(kids[0], signal.SIGKILL)
            killed.append(kids[0])

    got = kx.remote.fanout(slow_sum, local=2, table=t, pieces=40, merge="sum",
                           progress=progress)
    assert killed, "the worker was never killed"
    assert got == int(t["x"].sum()), got
    assert seen[-1][0] == seen[-1][1] == 40, seen[-1]
    assert seen[-1][2] >= 1, "the killed worker's tasks were not retried"
    dones = [s[0] for s in seen]
    assert dones == sorted(dones), "progress went backwards"


def _is_worker(pid):
    return b"serve" in harness.cmdline(pid)


def test_map_over_a_list():
    words = ["alpha", "be", "gamma", "", "delta"] * 3

    def shout(w):
        return w.upper() + "!" * len(w)

    assert kx.remote.map(shout, words, local=2, progress=False) == [shout(w) for w in words]
    assert kx.remote.map(shout, [], local=2) == []


def test_fanout_error_names_partition_and_python_error():
    t = {"x": np.arange(10, dtype=np.int64)}

    def fails_on_seven(tbl):
        if 7 in list(tbl["x"]):
            raise KeyError("seven is missing")
        return 0

    try:
        kx.remote.fanout(fails_on_seven, local=2, table=t, pieces=10, progress=False)
    except kx.FanoutError as e:
        # the parts, as the scheduler kept them (qp_run_error)
        assert e.task == 7 and e.partition == "rows 7-8", (e.task, e.partition)
        assert e.worker.startswith("unix:") and e.worker.endswith(".sock"), e.worker
        assert e.remote_type == "KeyError", e.remote_type
        assert e.remote_message == "'seven is missing'", e.remote_message
        assert "in fails_on_seven" in e.remote_traceback, e.remote_traceback
        assert 'raise KeyError("seven is missing")' in e.remote_traceback, e.remote_traceback
        assert e.code == 1 and e.attempts == 1 and isinstance(e, kx.RunError)
        assert "KeyError" in str(e) and "seven is missing" in str(e), str(e)
        assert isinstance(e.__cause__, kx.QError)
        assert e.__cause__.remote_type == "KeyError", e.__cause__.remote_type
    else:
        raise AssertionError("a raising function must raise FanoutError")


def test_reducer_error_names_its_worker_and_exception():
    """A reducer that raises: a RunError (no task failed) with the worker
    it ran on and its exception in parts."""
    def one(tbl):
        return 1

    def bad_reduce(parts):
        return {}["no such key"]

    try:
        kx.remote.fanout(one, local=2, table={"x": np.arange(4)}, pieces=2, merge=bad_reduce,
                         progress=False)
    except kx.RunError as e:
        assert not isinstance(e, kx.FanoutError) and e.task is None and e.partition is None
        assert e.worker.startswith("unix:"), e.worker
        assert e.remote_type == "KeyError" and e.remote_message == "'no such key'", \
            (e.remote_type, e.remote_message)
        assert "bad_reduce" in e.remote_traceback, e.remote_traceback
        assert str(e).startswith("merge: reducer "), str(e)
        assert isinstance(e.__cause__, kx.QError)
    else:
        raise AssertionError("a raising reducer must raise RunError")


def test_two_failing_partitions_report_one_whole():
    """Two partitions raise different exceptions: the error reports one of
    them whole (its task, partition and exception agree), the first the
    scheduler saw."""
    def two_fail(tbl):
        x = int(tbl["x"][0])
        if x == 2:
            raise ValueError("two")
        if x == 5:
            raise LookupError("five")
        return 0

    try:
        kx.remote.fanout(two_fail, local=2, table={"x": np.arange(8)}, pieces=8,
                         progress=False)
    except kx.FanoutError as e:
        want = {2: ("ValueError", "two"), 5: ("LookupError", "five")}
        assert e.task in want, e.task
        assert (e.remote_type, e.remote_message) == want[e.task], (e.task, e.remote_type)
        assert e.partition == f"rows {e.task}-{e.task + 1}", e.partition
        assert f"task {e.task} (" in str(e), str(e)
    else:
        raise AssertionError("raising partitions must raise FanoutError")


def test_fanout_on_servers_sum_by_key_and_progress_stop():
    t = _data()
    env = dict(os.environ, PYTHONPATH=PYDIR)
    with Server(env=env) as a, Server(env=env) as b:
        sa = kx.remote.session(port=a.port)
        sb = kx.remote.session(port=b.port)
        calls = []
        got = kx.remote.fanout(FNS["bysym"], [sa, sb], table=t, pieces=6, merge="sum-by-key",
                               key="sym", progress=lambda *a: calls.append(a))
        for s, y in zip(got["sym"], got["y"]):
            assert np.isclose(y, t["y"][t["sym"] == s].sum()), s
        assert calls and calls[-1][:2] == (6, 6), calls
        assert kx.remote.map(lambda v: v * 3, [5, "ab", 2.5], [sa, sb],
                             progress=False) == [15, "ababab", 7.5]
        # A callback that raises stops the run; its exception comes out.
        def stop(done, total, failed):
            raise RuntimeError("enough")
        try:
            kx.remote.fanout(FNS["ysum"], [sa, sb], table=t, pieces=6, merge="sum",
                             progress=stop)
        except RuntimeError as e:
            assert "enough" in str(e)
        else:
            raise AssertionError("the callback's exception must surface")
        # The table set for the run is gone again (set to ::).
        assert sa._call(".qp.tables") is None or not any(
            str(n).startswith("qp_fanout_") for n in sa._call(".qp.tables"))
        sa.close()
        sb.close()


def test_gil_released_while_the_scheduler_runs():
    # Another Python thread keeps running during the run: the scheduler
    # holds no GIL (and with progress=False never takes it).
    import threading
    import time
    stamps, stop = [], threading.Event()

    def ticker():
        while not stop.is_set():
            stamps.append(time.monotonic())
            time.sleep(0.002)

    def nap(tbl):
        import time
        time.sleep(0.1)
        return 1

    th = threading.Thread(target=ticker)
    th.start()
    t0 = time.monotonic()
    got = kx.remote.fanout(nap, local=2, table={"x": np.arange(8)}, pieces=8, merge="sum",
                           progress=False)
    t1 = time.monotonic()
    stop.set()
    th.join()
    assert got == 8, got
    # The tasks alone take 0.4 s on two workers; the ticker ran inside it.
    during = [s for s in stamps if t0 + 0.1 < s < t1 - 0.1]
    assert len(during) > 10, (len(during), t1 - t0)


def test_task_timeout_retries_then_names_the_partition():
    def stuck_on_three(tbl):
        import time
        if 3 in list(tbl["x"]):
            time.sleep(30)
        return 0

    try:
        kx.remote.fanout(stuck_on_three, local=2, table={"x": np.arange(6)}, pieces=6,
                         task_timeout=0.5, retries=1, progress=False)
    except kx.FanoutError as e:
        assert e.task == 3 and e.partition == "rows 3-4", str(e)
        assert e.attempts == 2 and "after 2 attempts" in str(e), str(e)
        assert e.worker.startswith("unix:") and e.remote_type == "", (e.worker, e.remote_type)
        assert "timed out" in str(e.__cause__), str(e.__cause__)
    else:
        raise AssertionError("a task past task_timeout must fail after its retries")


def test_fanout_journal_resumes_only_unfinished_partitions():
    d = harness.tmpdir()
    flag = os.path.join(d, "broken")
    calls = os.path.join(d, "calls")
    open(flag, "w").close()
    t = {"x": np.arange(10, dtype=np.int64)}
    # The paths are literals in the code, so both runs ship the same
    # function (same code: the journal matches).
    src = (f"def part_sum(tbl):\n"
           f"    import os\n"
           f"    with open({calls!r}, 'a') as f:\n"
           f"        f.write('%d\\n' % tbl['x'][0])\n"
           f"    if tbl['x'][0] == 7 and os.path.exists({flag!r}):\n"
           f"        raise RuntimeError('not yet')\n"
           f"    return int(tbl['x'].sum())\n")
    ns = {}
    exec(compile(src, "journal_fn.py", "exec"), ns)
    state = os.path.join(d, "state")
    try:
        kx.remote.fanout(ns["part_sum"], local=2, table=t, pieces=10, merge="sum",
                         journal=state, progress=False)
    except kx.FanoutError as e:
        assert e.task == 7, str(e)
    else:
        raise AssertionError("partition 7 must fail while the flag exists")
    with open(calls) as f:
        first = [int(x) for x in f.read().split()]
    os.unlink(flag)
    os.unlink(calls)
    got = kx.remote.fanout(ns["part_sum"], local=2, table=t, pieces=10, merge="sum",
                           journal=state, progress=False)
    assert got == 45, got
    with open(calls) as f:
        second = sorted(int(x) for x in f.read().split())
    done_before = set(range(10)) - set(second)
    assert 7 in second and done_before, (first, second)
    assert done_before <= set(first), (first, second)


def test_fanout_by_float_column_groups_as_q():
    """A DataFrame grouped by a float column holding NaNs of different sign
    bits (np.nan, 0/0, log(-1), inf*0) and 0.0 / -0.0: every NaN is the one
    float null and -0.0 is 0.0, as q's = says, for the partitions (planned
    by distinct) and the rows each selects: every row is processed (it was
    4 of 6 with the NaNs). sum-by-key keyed by that column: one NaN key,
    one 0.0 key. Both compared with pandas' groupby(dropna=False)."""
    import pandas as pd
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.array([np.nan, 0.0, np.float64(0.0) / np.float64(0.0), -0.0,
                      np.log(np.float64(-1.0)), np.float64(np.inf) * 0.0, 1.5, -0.0])
    assert len(set(x[np.isnan(x)].view(np.uint64).tolist())) >= 2, "the NaNs must differ"
    df = pd.DataFrame({"x": x, "v": np.arange(1, len(x) + 1, dtype=np.int64)})
    want = df.groupby("x", dropna=False)["v"].agg(["size", "sum"])

    def count(t):
        return len(t["x"])

    got = kx.remote.fanout(count, local=2, table=df, by="x", merge="concat", progress=False)
    assert sum(got) == len(df), (list(got), len(df))
    # q sorts the null first, pandas last
    assert list(got) == [want["size"].iloc[-1]] + want["size"].iloc[:-1].tolist(), (got, want)

    def keyed(t):
        return {"x": np.asarray(t["x"]), "n": np.ones(len(t["x"]), dtype=np.int64),
                "v": np.asarray(t["v"])}

    got = kx.remote.fanout(keyed, local=2, table=df, pieces=3, merge="sum-by-key", key="x",
                           progress=False)
    got = pd.DataFrame(got).set_index("x")
    assert len(got) == len(want), (got, want)
    for k, row in want.iterrows():
        g = got.loc[[k]] if not np.isnan(k) else got[np.isnan(got.index.values)]
        assert len(g) == 1 and g["n"].iloc[0] == row["size"] and g["v"].iloc[0] == row["sum"], \
            (k, g, row)


def test_fanout_sum_by_key_missing_columns():
    """sum-by-key over partials whose value columns differ in names (a
    pivot per partition: column B where only buys traded, S where only
    sells): the run fails naming both sets; with missing='zero' the missing
    ones count as zero, as pandas' pivot_table over the whole data with
    fill_value=0."""
    import pandas as pd
    rng = np.random.default_rng(5)
    n = 400
    df = pd.DataFrame({"sym": rng.choice(["AA", "BB", "CC"], n), "size": rng.integers(1, 9, n)})
    df["side"] = np.where(np.arange(n) < n // 2, "B", "S")

    def pivot(t):
        import pandas as pd
        d = pd.DataFrame({"sym": t["sym"], "side": t["side"], "size": t["size"]})
        return d.pivot_table(index="sym", columns="side", values="size", aggfunc="sum")

    try:
        kx.remote.fanout(pivot, local=2, table=df, pieces=2, merge="sum-by-key", progress=False)
    except kx.RunError as e:
        assert "(S) where partial 1 has (B)" in str(e), str(e)
    else:
        raise AssertionError("partials with other value columns must fail the run")
    got = kx.remote.fanout(pivot, local=2, table=df, pieces=2, merge="sum-by-key",
                           missing="zero", progress=False)
    got = pd.DataFrame(got).set_index("sym").sort_index()
    want = df.pivot_table(index="sym", columns="side", values="size", aggfunc="sum", fill_value=0)
    want.columns = list(want.columns)
    assert got.equals(want), (got, want)


# ---- the data boundary: char columns and nulls, against pandas

def _import(d, text, types):
    csv, db = os.path.join(d, "t.csv"), os.path.join(d, "db")
    with open(csv, "w") as f:
        f.write(text)
    r = harness.qpeach("db", "import", csv, db, "t", "--types", types)
    assert r.returncode == 0, r.stderr
    return csv, db


def test_fanout_partitions_get_char_columns_per_row():
    """A q char column reaches each partition one char per row (not one
    str for the column), with and without pandas, and comes back a char
    column: compared with pandas reading the same CSV."""
    import pandas as pd
    d = harness.tmpdir()
    csv, db = _import(d, "side,x\nB,1\nS,2\nB,3\nS,4\nS,5\n", "CJ")
    want = pd.read_csv(csv, dtype={"side": str})
    env = dict(os.environ, PYTHONPATH=PYDIR)
    with Server("--db", db, env=env) as s:
        sess = kx.remote.session(host="127.0.0.1", port=s.port)

        def sides(t):
            assert t["side"].dtype == "S1" and len(t["side"]) == len(t["x"])
            return {"side": t["side"], "x": t["x"]}

        got = kx.remote.fanout(sides, [sess], table="t", by="rows", pieces=2, merge="concat",
                               progress=False)
        assert got["side"].dtype == "S1", got
        assert [c.decode() for c in got["side"]] == want["side"].tolist(), got

        def sides_pd(df):
            return df[["side", "x"]]

        got = kx.remote.fanout(sides_pd, [sess], table="t", by="rows", pieces=2, merge="concat",
                               pandas=True, progress=False)
        assert got["side"].tolist() == want["side"].tolist() and got["x"].tolist() == want["x"].tolist(), got
        raw = kx.remote.fanout(sides_pd, [sess], table="t", by="rows", pieces=2, merge="concat",
                               pandas=True, raw=True, progress=False)
        # the q column: a char vector (type 10, 5 items), not symbols
        assert b"\x0a\x00\x05\x00\x00\x00" + "".join(want["side"]).encode() in raw, raw
        sess.close()


def test_vwap_example_skips_nulls_as_pandas_does():
    """jobs/vwap.py over a CSV with one empty size (and an empty price and
    sym): VWAP 10.5 and size 100 for A, as pandas gives, not 13 and
    -9.2e18 (q's long null taken as a number)."""
    import pandas as pd
    d = harness.tmpdir()
    with open(os.path.join(d, "trades.csv"), "w") as f:
        f.write("sym,price,size\nA,10,50\nA,11,50\nA,13,\nB,20,10\nB,,5\n,30,7\nB,21,30\n")
    df = pd.read_csv(os.path.join(d, "trades.csv"))
    ok = df.dropna(subset=["price", "size"])
    want = ((ok.price * ok["size"]).groupby(ok.sym).sum() / ok["size"].groupby(ok.sym).sum())
    vol = ok["size"].groupby(ok.sym).sum()
    assert abs(want["A"] - 10.5) < 1e-12 and vol["A"] == 100     # the numbers
    vwap = os.path.join(ROOT, "jobs", "vwap.py")
    for symbols in ("codes", "str", "categorical"):
        job = os.path.join(d, f"vwap_{symbols}.ini")
        with open(job, "w") as f:
            f.write(f"[job]\nfunction = {vwap}:vwap_parts\nsymbols = {symbols}\n"
                    f"[input]\ntable = trade\nfile = trades.csv\ntypes = SFJ\n"
                    f"[partition]\nby = rows\npieces = 3\n[workers]\nlocal = 2\n"
                    f"[merge]\nhow = sum-by-key\nkey = sym\nreducer = {vwap}:finish\n"
                    f"[output]\npath = vwap_{symbols}.csv\n")
        r = harness.qpeach("run", job, timeout=120)
        assert r.returncode == 0, (symbols, r.stderr)
        got = pd.read_csv(os.path.join(d, f"vwap_{symbols}.csv")).set_index("sym")
        assert sorted(got.index) == sorted(want.index), (symbols, got)
        for s in want.index:
            assert abs(got.loc[s, "vwap"] - want[s]) < 1e-9 and got.loc[s, "size"] == vol[s], (symbols, got)


def test_timestamp_infinities_survive_a_python_function():
    """0W/-0W/0N timestamps of a job's input reach the function as numpy's
    largest and smallest datetime64[ns] and NaT, and go back to q (here the
    .qipc output) as q's infinities and null, with the finite value exact:
    checked on the output's bytes against numpy's arithmetic."""
    import struct
    d = harness.tmpdir()
    with open(os.path.join(d, "in.csv"), "w") as f:
        f.write("ts,x\n2020.01.01D00:00:00.5,1\n0W,2\n-0W,3\n,4\n")
    top = 2**63 - 1
    with open(os.path.join(d, "f.py"), "w") as f:
        f.write("import numpy as np\ndef ident(t):\n"
                f"    want = {{1: np.datetime64('2020-01-01T00:00:00.5', 'ns'), 2: np.datetime64({top}, 'ns'),\n"
                f"            3: np.datetime64({-top}, 'ns')}}.get(int(t['x'][0]), np.datetime64('NaT'))\n"
                "    assert t['ts'][0] == want or (np.isnat(want) and np.isnat(t['ts'][0])), t\n"
                "    return t\n")
    q = [int((np.datetime64("2020-01-01T00:00:00.5", "ns") - np.datetime64("2000-01-01", "ns")).astype("i8")),
         top, -top, -top - 1]
    job = os.path.join(d, "j.ini")
    with open(job, "w") as f:
        f.write("[job]\nfunction = f.py:ident\n[input]\nfile = in.csv\ntypes = PJ\n"
                "[partition]\nby = rows\npieces = 4\n[workers]\nlocal = 1\n[output]\npath = out.qipc\n")
    r = harness.qpeach("run", job, timeout=120)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(d, "out.qipc"), "rb") as f:
        data = f.read()
    i = data.index(b"\x0c\x00\x04\x00\x00\x00")      # the ts column: a timestamp vector of 4
    assert list(struct.unpack_from("<4q", data, i + 6)) == q, data
