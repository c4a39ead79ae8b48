"""qpeach run with real processes: job files, plans, local workers, merges,
faults (kill -9 of a worker and of the scheduler), resume, the lock.

Results are checked against numpy on the same generated data. Tests that
need the embedded Python worker skip when this build has none.
"""
import fcntl
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

from qipc import Conn, Sym
from harness import (QPEACH, ROOT, Server, children, free_port, qpeach, self_signed_cert, tmpdir,
                     wait_for)

GEN = os.path.join(ROOT, "scripts", "gen_trades.py")
JOBS = os.path.join(ROOT, "jobs")
def gen(d, rows=40000, days=0):
    args = [sys.executable if os.path.exists("/usr/bin/python3") is False else "/usr/bin/python3",
            GEN, "--rows", str(rows)]
    if days:
        args += ["--days", str(days), "--dir", os.path.join(d, "daily")]
    else:
        args += ["--out", os.path.join(d, "trades.csv")]
    subprocess.run(args, check=True)


def load_csv(path):
    a = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
    return a["sym"].astype(str), a["price"].astype(float), a["size"].astype(float)


def vwap_numpy(paths):
    sym, px, sz = [np.concatenate(x) for x in zip(*[load_csv(p) for p in paths])]
    names = np.unique(sym)
    return {s: (float((px[sym == s] * sz[sym == s]).sum() / sz[sym == s].sum()),
                float(sz[sym == s].sum())) for s in names}


def read_vwap(path):
    a = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
    # sizes are a long column: their totals are longs, as q's sum gives them
    assert a["size"].dtype.kind == "i", (a["size"].dtype, open(path).read(300))
    return {str(s): (float(v), float(z)) for s, v, z in zip(a["sym"], a["vwap"], a["size"])}


def same(got, want):
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for k in want:
        assert abs(got[k][0] - want[k][0]) < 1e-9 * abs(want[k][0]), (k, got[k], want[k])
        assert got[k][1] == want[k][1], (k, got[k], want[k])


def write(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def job(d, name="j.ini", **sections):
    """A job file from {section: {key: value}}; vwap.py copied beside it."""
    with open(os.path.join(JOBS, "vwap.py")) as f:
        write(d, "vwap.py", f.read())
    text = ""
    for sec, kv in sections.items():
        text += f"[{sec}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items())
    return write(d, name, text)


def vwap_job(d, by="rows", merge="sum-by-key", local=2, extra_run=None, symbols=None, **kw):
    inp = {"table": "trade", "file": "trades.csv", "types": "SFJ"}
    part = {"by": by}
    if by == "column":
        part["column"] = "sym"
    if by == "file":
        inp = {"files": "daily/*.csv"}
    m = {"how": merge, "reducer": "vwap.py:finish"}
    if merge == "sum-by-key":
        m["key"] = "sym"
    run = {"retries": 2}
    run.update(extra_run or {})
    jb = {"name": "vwap", "function": "vwap.py:vwap_parts", "libraries": "np=numpy"}
    if symbols:
        jb["symbols"] = symbols
    return job(d, job=jb, input=inp,
               partition=part, workers={"local": local}, merge=m,
               output={"path": kw.get("out", "out/vwap.csv")}, run=run)


def run(*args, timeout=120):
    return qpeach("run", *args, timeout=timeout)


# ---- no Python needed ----

def test_bad_job_files_name_file_line_key():
    d = tmpdir()
    cases = [
        ("[job]\nfunction = f.py:g\n[partition]\npieces = x\n",
         "bad.ini:4: [partition] pieces: not a positive integer: 'x'"),
        ("[job]\nfunctoin = f.py:g\n", "bad.ini:2: [job] functoin: unknown key"),
        ("[jobs]\n", "bad.ini:1: unknown section [jobs]"),
        ("[input]\ntable = t\n", "bad.ini: [job] function: required"),
        ("[merge]\nhow = avg\n", "bad.ini:2: [merge] how: expected concat"),
        ("[workers]\ntls = maybe\n", "bad.ini:2: [workers] tls: expected true or false"),
        ("[job]\nfunction = f.py:g\n[input]\ntable = t\n[workers]\nservers = h:1\ntls_ca = ca.pem\n",
         "bad.ini: [workers] tls_ca needs tls = true"),
        ("[job]\nfunction = f.py:g\n[input]\ntable = t\n[workers]\nlocal = 1\ntls = true\n",
         "bad.ini: [workers] tls is for servers"),
    ]
    for text, want in cases:
        p = write(d, "bad.ini", text)
        r = run(p)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert want in r.stderr, (want, r.stderr)
    r = run(os.path.join(d, "missing.ini"))
    assert r.returncode == 2 and "cannot read job file" in r.stderr, r.stderr
    r = run()
    assert r.returncode == 2
    r = run("--help")
    assert r.returncode == 0 and "Exit status" in r.stdout


def test_unreadable_function_file_names_its_cause():
    # the module is read once, and a read that fails says why (a folder
    # read as a file used to look like a module without the function)
    d = tmpdir()
    os.mkdir(os.path.join(d, "fn.py"))
    write(d, "in.csv", "a,b\n1,2\n")
    p = write(d, "j.ini", "[job]\nfunction = fn.py:f\n[input]\nfile = in.csv\n"
                          "[workers]\nlocal = 1\n")
    r = run(p)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "fn.py: Is a directory" in r.stderr, r.stderr


def test_dry_run_prints_plan_and_cores():
    d = tmpdir()
    gen(d, rows=1000)
    p = vwap_job(d)
    r = run("--dry-run", p)
    assert r.returncode == 0, r.stderr
    assert "partitions: 8 by rows" in r.stdout, r.stdout
    assert "0: rows 0-125" in r.stdout and "worker 1:" in r.stdout and "PUs" in r.stdout, r.stdout
    assert not os.path.exists(os.path.join(d, "out", "vwap.csv"))
    r = run("--dry-run", "-j", "1", p)
    assert "partitions: 4 by rows" in r.stdout and "worker 1:" not in r.stdout, r.stdout


def test_unreachable_server():
    d = tmpdir()
    port = free_port()
    p = job(d, job={"function": "vwap.py:vwap_parts"}, input={"table": "trade"},
            workers={"servers": f"127.0.0.1:{port}", "connect_timeout": "2s"})
    r = run(p)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"127.0.0.1:{port}" in r.stderr and "no worker is usable" in r.stderr, r.stderr


def test_second_run_exits_at_once_while_lock_held():
    d = tmpdir()
    gen(d, rows=1000)
    p = vwap_job(d)
    os.makedirs(os.path.join(d, ".qpeach"), exist_ok=True)
    with open(os.path.join(d, ".qpeach", "vwap.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("4242\n")
        f.flush()
        t = time.time()
        r = run(p)
        took = time.time() - t
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "holds the lock" in r.stderr and "pid 4242" in r.stderr, r.stderr
    assert took < 10


def test_topo_prints_machine_and_plan():
    r = qpeach("topo", "--plan", "2x1")
    assert r.returncode == 0 and "machine:" in r.stdout and "worker 1:" in r.stdout, r.stdout
    r = qpeach("topo", "--synthetic", "node:2 core:4 pu:2", "--plan", "2x2")
    assert "2 NUMA nodes, 8 cores, 16 PUs" in r.stdout, r.stdout
    assert "worker 0: node 0" in r.stdout and "worker 1: node 1" in r.stdout, r.stdout


# ---- with the Python worker ----

def test_rows_sum_by_key_then_reducer_equals_numpy():
    d = tmpdir()
    gen(d)
    r = run(vwap_job(d))
    assert r.returncode == 0, r.stderr
    same(read_vwap(os.path.join(d, "out", "vwap.csv")), vwap_numpy([os.path.join(d, "trades.csv")]))
    assert "parsed" in r.stderr and "vwap.input-" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(d, ".qpeach", "vwap.journal"))


def test_categorical_symbols_equal_numpy():
    """symbols = categorical: the function gets codes + names; by rows and
    by column, the same VWAP as numpy; window auto with short tasks."""
    d = tmpdir()
    gen(d)
    r = run(vwap_job(d, symbols="categorical", extra_run={}))
    assert r.returncode == 0, r.stderr
    want = vwap_numpy([os.path.join(d, "trades.csv")])
    same(read_vwap(os.path.join(d, "out", "vwap.csv")), want)
    r = run(vwap_job(d, by="column", merge="concat", symbols="categorical", out="out/c.csv"))
    assert r.returncode == 0, r.stderr
    same(read_vwap(os.path.join(d, "out", "c.csv")), want)
    p = write(d, "bad.ini", "[job]\nsymbols = enum\n")
    r = run(p)
    assert r.returncode == 2 and "bad.ini:2: [job] symbols: expected str, categorical or codes" in r.stderr, r.stderr


def test_servers_over_tls_equal_numpy():
    """Running servers that hold the table, reached over TLS with the
    certificate checked against tls_ca: the same VWAP as numpy; without
    the CA the servers are unusable and the error says why."""
    d = tmpdir()
    gen(d)
    cert, key = self_signed_cert(d)
    csv = os.path.join(d, "trades.csv")
    with Server("--tls-cert", cert, "--tls-key", key, "--load", f"trade={csv}") as a, \
         Server("--tls-cert", cert, "--tls-key", key, "--load", f"trade={csv}") as b:
        servers = f"127.0.0.1:{a.port}, 127.0.0.1:{b.port}"
        m = {"how": "sum-by-key", "key": "sym", "reducer": "vwap.py:finish"}
        p = job(d, job={"name": "tls", "function": "vwap.py:vwap_parts", "libraries": "np=numpy"},
                input={"table": "trade"}, partition={"by": "rows", "pieces": 12},
                workers={"servers": servers, "tls": "true", "tls_ca": "server.pem"},
                merge=m, output={"path": "out/tls.csv"})
        r = run("--log-json", p)
        assert r.returncode == 0, r.stderr
        same(read_vwap(os.path.join(d, "out", "tls.csv")), vwap_numpy([csv]))
        on = {line.split('"message":"')[1].split(" done on worker ")[1].split(" ")[0]
              for line in r.stderr.splitlines() if '"event":"task"' in line}
        assert on == {"0", "1"}, r.stderr
        p = job(d, name="plain.ini", job={"function": "vwap.py:vwap_parts"}, input={"table": "trade"},
                workers={"servers": servers, "tls": "true", "connect_timeout": "5s"},
                merge=m, output={"path": "out/plain.csv"})
        r = run(p)
        assert r.returncode == 1 and "certificate" in r.stderr, r.stderr


COUNTING = """import builtins
builtins.qp_test_execs = getattr(builtins, "qp_test_execs", 0) + 1
EXEC = builtins.qp_test_execs          # which run of this module defined f


def f(t):
    return EXEC
"""


def test_resident_server_keeps_same_function_between_runs():
    """A running server that already holds the job's function from the
    same code and options is not made to run the module again (its module
    state shows it); changed code, changed options, or a plain .qp.def
    from another client do run it again."""
    d = tmpdir()
    gen(d, rows=1000)
    csv = os.path.join(d, "trades.csv")
    mod = write(d, "count.py", COUNTING)
    with Server("--load", f"trade={csv}") as s:
        def job_output(symbols="str"):
            p = job(d, job={"name": "count", "function": "count.py:f", "symbols": symbols},
                    input={"table": "trade"}, partition={"by": "rows", "pieces": 3},
                    workers={"servers": s.addr}, merge={"how": "max"}, output={"path": "-"})
            r = run("--quiet", p)
            assert r.returncode == 0, r.stderr
            return r.stdout.split()[-1]            # stdout: the result as CSV, "x\n1\n"
        assert job_output() == "1"
        assert job_output() == "1"                 # kept: the module did not run again
        write(d, "count.py", COUNTING + "# changed\n")
        assert job_output() == "2"                 # new code: defined again
        assert job_output() == "2"
        assert job_output("categorical") == "3"    # other options: defined again
        assert job_output("categorical") == "3"
        # .qp.def without reuse always runs the code: the job then keeps that.
        with open(mod) as f:
            code = f.read()
        with Conn(port=s.port) as c:
            c.call([Sym(".qp.def"), Sym("f"), code, {"categorical": True}])
        assert job_output("categorical") == "4"


def test_column_partitions_concat_equals_numpy():
    d = tmpdir()
    gen(d)
    r = run(vwap_job(d, by="column", merge="concat"))
    assert r.returncode == 0, r.stderr
    same(read_vwap(os.path.join(d, "out", "vwap.csv")), vwap_numpy([os.path.join(d, "trades.csv")]))
    assert "16 tasks (column)" in r.stderr, r.stderr


def test_file_partitions_equal_numpy():
    d = tmpdir()
    gen(d, rows=30000, days=3)
    r = run(vwap_job(d, by="file"))
    assert r.returncode == 0, r.stderr
    files = sorted(os.path.join(d, "daily", f) for f in os.listdir(os.path.join(d, "daily")))
    same(read_vwap(os.path.join(d, "out", "vwap.csv")), vwap_numpy(files))
    assert "3 tasks (file)" in r.stderr, r.stderr


def test_scalar_merges_sum_min_max_count():
    d = tmpdir()
    gen(d, rows=5000)
    write(d, "agg.py", "import numpy as np\n"
          "def total(t):\n    return float(np.asarray(t['size']).sum())\n"
          "def top(t):\n    return float(np.asarray(t['price']).max())\n"
          "def low(t):\n    return float(np.asarray(t['price']).min())\n"
          "def rows(t):\n    return np.asarray(t['size'])\n")
    _, px, sz = load_csv(os.path.join(d, "trades.csv"))
    want = {"sum": sz.sum(), "max": px.max(), "min": px.min(), "count": len(sz)}
    fn = {"sum": "total", "max": "top", "min": "low", "count": "rows"}
    for how, w in want.items():
        p = write(d, f"{how}.ini", f"[job]\nfunction = agg.py:{fn[how]}\n[input]\ntable = trade\n"
                  f"file = trades.csv\ntypes = SFJ\n[partition]\npieces = 7\n[workers]\nlocal = 2\n"
                  f"[merge]\nhow = {how}\n[output]\npath = out/{how}.qipc\n")
        r = run(p)
        assert r.returncode == 0, (how, r.stderr)
        r = qpeach("run", "--quiet", p)
        assert r.returncode == 0 and r.stderr == "", (how, r.stderr)
        # The .qipc output is q IPC bytes: decode the atom.
        b = open(os.path.join(d, "out", f"{how}.qipc"), "rb").read()
        t = b[8]
        got = np.frombuffer(b[9:17], "<f8" if t == 0xf7 else "<i8")[0]
        assert abs(got - w) < 1e-6, (how, got, w)


def test_python_merge_and_stdout_and_json_log():
    d = tmpdir()
    gen(d, rows=5000)
    write(d, "agg.py", "import numpy as np\n"
          "def total(t):\n    return int(np.asarray(t['size']).sum())\n"
          "def combine(parts):\n    return int(sum(parts)) * 2\n")
    p = write(d, "py.ini", "[job]\nfunction = agg.py:total\n[input]\ntable = trade\n"
              "file = trades.csv\ntypes = SFJ\n[workers]\nlocal = 2\n"
              "[merge]\nhow = python\nreducer = agg.py:combine\n[output]\npath = -\n")
    r = qpeach("run", "--log-json", p)
    assert r.returncode == 0, r.stderr
    _, _, sz = load_csv(os.path.join(d, "trades.csv"))
    assert r.stdout == f"x\n{int(sz.sum()) * 2}\n", r.stdout   # the result as CSV
    import json
    events = [json.loads(l)["event"] for l in r.stderr.splitlines()]
    assert events.count("task") == 8 and events[-1] == "done", events


def test_failing_task_names_partition_and_python_error():
    d = tmpdir()
    gen(d, rows=1000)
    write(d, "bad.py", "def f(t):\n    raise ValueError('no good partition')\n")
    p = write(d, "bad.ini", "[job]\nfunction = bad.py:f\n[input]\ntable = trade\nfile = trades.csv\n"
              "[partition]\npieces = 2\n[workers]\nlocal = 2\n[run]\nretries = 1\n")
    r = run(p)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert re.search(r"task \d \(rows (0-500|500-1000)\) failed on unix:", r.stderr), r.stderr
    assert "ValueError" in r.stderr and "no good partition" in r.stderr, r.stderr


def slow_job(d, tasks=24, out="out/slow.csv"):
    gen(d, rows=24000)
    write(d, "slow.py", "import time\nimport numpy as np\n"
          "def f(t):\n    time.sleep(0.15)\n"
          "    return {'sym': np.unique(np.asarray(t['sym']).astype(str))[:1], 'n': np.array([len(t['size'])])}\n")
    return write(d, "slow.ini", f"[job]\nfunction = slow.py:f\n[input]\ntable = trade\nfile = trades.csv\n"
                 f"types = SFJ\n[partition]\npieces = {tasks}\n[workers]\nlocal = 2\n[merge]\nhow = concat\n"
                 f"[output]\npath = {out}\n[run]\nretries = 3\n")


def test_kill_worker_mid_job_still_correct():
    d = tmpdir()
    p = slow_job(d)
    proc = subprocess.Popen([QPEACH, "run", p], stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: len(children(proc.pid)) == 2, 30)
    time.sleep(1.0)
    victim = children(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "lost worker" in err and "restarted" in err, err
    a = np.genfromtxt(os.path.join(d, "out", "slow.csv"), delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert len(a) == 24 and int(a["n"].sum()) == 24000, a


def test_kill_scheduler_then_resume_gives_identical_bytes():
    d = tmpdir()
    p = slow_job(d, out="out/slow.qipc")
    r = run(p)
    assert r.returncode == 0, r.stderr
    want = open(os.path.join(d, "out", "slow.qipc"), "rb").read()
    os.unlink(os.path.join(d, "out", "slow.qipc"))
    proc = subprocess.Popen([QPEACH, "run", p], stderr=subprocess.DEVNULL)
    jpath = os.path.join(d, ".qpeach", "slow.journal")
    assert wait_for(lambda: os.path.exists(jpath) and os.path.getsize(jpath) > 1500, 60)
    kids = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # No worker outlives the scheduler (parent-death signal).
    assert wait_for(lambda: not any(os.path.exists(f"/proc/{k}") and
                                    open(f"/proc/{k}/stat").read().split()[2] != "Z" for k in kids), 10), kids
    assert not os.path.exists(os.path.join(d, "out", "slow.qipc"))
    r = run(p)                                  # resuming is the default
    assert r.returncode == 0, r.stderr
    assert "resuming:" in r.stderr and "already done" in r.stderr, r.stderr
    assert open(os.path.join(d, "out", "slow.qipc"), "rb").read() == want


def test_sigterm_stops_cleanly_with_journal_kept():
    d = tmpdir()
    p = slow_job(d)
    proc = subprocess.Popen([QPEACH, "run", p], stderr=subprocess.PIPE, text=True)
    jpath = os.path.join(d, ".qpeach", "slow.journal")
    assert wait_for(lambda: os.path.exists(jpath) and os.path.getsize(jpath) > 1000, 60)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 4, (proc.returncode, err)
    assert "interrupted" in err and os.path.exists(jpath), err
    # A changed input invalidates the journal, with the reason.
    with open(os.path.join(d, "trades.csv"), "a") as f:
        f.write("IBM,1.0,1\n")
    r = run("--resume", p)
    assert r.returncode == 0, r.stderr
    assert "cannot be resumed (input changed" in r.stderr, r.stderr
