"""Small tasks in batches (issue 21.2): several tasks in one message to a
worker (.qp.applyeach, .qp.calleach), a window of them in flight, and every
task still answering for itself: results and their order as one message
per task gives them, the one failing task named (never its batch), its
neighbours' results kept and journaled, retries and resume per task.

Real `qpeach serve` and `qpeach run` processes; the client for the
built-ins is the pure-Python qipc.py. Results are checked against the same
computation done here (numpy, or a plain loop)."""
import os
import re
import signal
import subprocess
import time

import numpy as np

from harness import QPEACH, Server, children, qpeach, tmpdir, wait_for
from qipc import Conn, QError, Sym, Table, Vec, decode

DEF = Sym(".qp.def")
APPLY = Sym(".qp.apply")
APPLYEACH = Sym(".qp.applyeach")
CALLEACH = Sym(".qp.calleach")


def define(c, name, src):
    r = c.call([DEF, Sym(name), src])
    assert isinstance(r, str) and len(r) == 64, r


def call_error(c, msg):
    try:
        r = c.call(msg)
    except QError as e:
        return str(e)
    raise AssertionError(f"no error, got {r!r}")


# ------------------------------------------------------------ the built-ins

def table(n=1000, seed=3):
    rng = np.random.default_rng(seed)
    syms = np.array(["ibm", "msft", "aapl"])[rng.integers(0, 3, n)]
    px = np.round(rng.uniform(1, 100, n), 2)
    return syms, px, Table({"sym": Vec("s", syms.tolist()), "px": Vec("f", px.tolist())})


FNS = """def tot(t):
    if len(t['px']) and t['px'][0] == BAD:
        raise ValueError('bad part starting at %r' % float(t['px'][0]))
    return [len(t['px']), float(t['px'].sum())]
"""


def test_applyeach_answers_each_part_as_apply_does():
    syms, px, t = table()
    with Server() as s, Conn(port=s.port, timeout=60) as c:
        c.call([Sym(".qp.set"), Sym("t"), t])
        define(c, "tot", FNS.replace("BAD", repr(float(px[500]))))
        parts = [Vec("j", [0, 100]), [Sym("sym"), Sym("msft")], Vec("j", [500, 510]),
                 Vec("j", [100, 100]), [Sym("sym"), Sym("ibm")], Vec("j", [990, 1000])]
        ok, res = c.call([APPLYEACH, Sym("tot"), Sym("t"), parts])
        assert ok == Vec("b", [True, True, False, True, True, True]), ok
        for i, p in enumerate(parts):
            if i == 2:
                # the failing part's own error, as .qp.apply gives it
                assert "ValueError" in res[i] and "bad part starting at" in res[i], res[i]
                assert res[i] == call_error(c, [APPLY, Sym("tot"), Sym("t"), p])
                continue
            assert res[i] == c.call([APPLY, Sym("tot"), Sym("t"), p]), (i, res[i])
        # against numpy: rows and (column; value) parts
        assert res[0] == Vec("f", [100.0, float(px[:100].sum())]) or \
            (res[0][0] == 100 and abs(res[0][1] - px[:100].sum()) < 1e-9)
        m = syms == "msft"
        assert res[1][0] == int(m.sum()) and abs(res[1][1] - px[m].sum()) < 1e-9, res[1]
        # row bounds as one long vector of (start; end) pairs: the same answers
        flat = c.call([APPLYEACH, Sym("tot"), Sym("t"), Vec("j", [0, 100, 500, 510, 990, 1000])])
        assert flat[0] == Vec("b", [True, False, True]), flat
        assert flat[1][0] == res[0] and flat[1][2] == res[5] and flat[1][1] == res[2]
        # what is wrong with the call as a whole is an error of the call
        assert "parts" in call_error(c, [APPLYEACH, Sym("tot"), Sym("t"), Vec("j", [0, 1, 2])])
        ok, res = c.call([APPLYEACH, Sym("tot"), Sym("nope"), [Vec("j", [0, 1])]])
        assert ok == Vec("b", [False]) and "no table 'nope'" in res[0], (ok, res)
        assert c.call([APPLYEACH, Sym("tot"), Sym("t"), []]) == [Vec("b", []), []]


def test_calleach_answers_each_item_as_call_does():
    with Server() as s, Conn(port=s.port, timeout=60) as c:
        define(c, "f", "def f(x):\n    if x == 3:\n        raise KeyError('three')\n    return x * x\n")
        ok, res = c.call([CALLEACH, Sym("f"), Vec("j", list(range(6)))])
        assert ok == Vec("b", [True, True, True, False, True, True]), ok
        assert [res[i] for i in (0, 1, 2, 4, 5)] == [0, 1, 4, 16, 25], res
        assert res[3] == call_error(c, [Sym(".qp.call"), Sym("f"), [3]]) and "KeyError" in res[3]
        define(c, "sq", "def sq(x):\n    return x * x\n")
        ok, res = c.call([CALLEACH, Sym("sq"), [Vec("f", [1.5, 2.0]), 2]])
        assert ok == Vec("b", [True, True]) and res[0] == Vec("f", [2.25, 4.0]) and res[1] == 4, res
        assert "no function 'g'" in call_error(c, [CALLEACH, Sym("g"), Vec("j", [1])])


# ------------------------------------------------------------ qpeach run

def write(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def ids_job(d, n=600, pieces=600, fn="f.py:one", batch="8", run_extra="", out="out/r.qipc",
            local=2, src=None):
    """A table of n ids (a CSV), one task per `pieces` row range."""
    write(d, "ids.csv", "i\n" + "".join(f"{i}\n" for i in range(n)))
    write(d, "f.py", src or "import os\nimport numpy as np\n"
          "def one(t):\n    return {'i': t['i'], 'sq': t['i'] * t['i']}\n")
    return write(d, "j.ini", f"[job]\nfunction = {fn}\nlibraries = np=numpy\n"
                 f"[input]\ntable = ids\nfile = ids.csv\ntypes = J\n[partition]\nby = rows\npieces = {pieces}\n"
                 f"[workers]\nlocal = {local}\nbatch = {batch}\n[merge]\nhow = concat\n"
                 f"[output]\npath = {out}\n[run]\n{run_extra}")


def read_qipc(path):
    """The output table's columns as numpy arrays."""
    with open(path, "rb") as f:
        t = decode(f.read())
    return {k: np.array(v.items) for k, v in t.cols.items()}


def test_run_sends_small_tasks_in_batches_results_in_order():
    d = tmpdir()
    p = ids_job(d)
    r = qpeach("run", "--log-json", p, timeout=120)
    assert r.returncode == 0, r.stderr
    got = read_qipc(os.path.join(d, "out", "r.qipc"))
    i = np.arange(600)
    assert np.array_equal(got["i"], i) and np.array_equal(got["sq"], i * i)
    # the tasks went 8 to a message, and each was still logged as its own
    done = re.findall(r'task (\d+) \(rows \d+-\d+\) done on worker \d in \d+ ms(, one of a batch of (\d+))?',
                      r.stderr)
    assert sorted(int(t) for t, _, _ in done) == list(range(600)), r.stderr[-2000:]
    assert sum(1 for _, _, b in done if b == "8") >= 500, r.stderr[-2000:]
    # batch = 1: one message per task, the same bytes out
    want = open(os.path.join(d, "out", "r.qipc"), "rb").read()
    p = ids_job(d, batch="1", out="out/r1.qipc")
    r = qpeach("run", "--fresh", "--log-json", p, timeout=120)
    assert r.returncode == 0 and "batch of" not in r.stderr, r.stderr[-2000:]
    assert open(os.path.join(d, "out", "r1.qipc"), "rb").read() == want


def test_a_failing_task_in_a_batch_is_named_and_its_neighbours_journaled():
    d = tmpdir()
    flag = os.path.join(d, "fail")
    open(flag, "w").close()
    src = ("import os\nimport numpy as np\n"
           f"def one(t):\n    if int(t['i'][0]) == 203 and os.path.exists({flag!r}):\n"
           "        raise ZeroDivisionError('task of row 203')\n"
           "    return {'i': t['i'], 'sq': t['i'] * t['i']}\n")
    p = ids_job(d, n=400, pieces=400, src=src)
    r = qpeach("run", p, timeout=120)
    assert r.returncode == 1, r.stderr
    # the task, not its batch: index, rows, the Python error
    assert re.search(r"task 203 \(rows 203-204\) failed on unix:\S+: ZeroDivisionError: task of row 203",
                     r.stderr), r.stderr
    os.unlink(flag)
    r = qpeach("run", p, timeout=120)
    assert r.returncode == 0, r.stderr
    m = re.search(r"resuming: (\d+) of 400 tasks already done", r.stderr)
    # at least the 7 others of task 203's batch were journaled with it
    assert m and int(m.group(1)) >= 7, r.stderr
    got = read_qipc(os.path.join(d, "out", "r.qipc"))
    i = np.arange(400)
    assert np.array_equal(got["i"], i) and np.array_equal(got["sq"], i * i)


def test_retry_errors_retries_only_the_failed_task_of_a_batch():
    d = tmpdir()
    flag = os.path.join(d, "once")
    src = ("import os\nimport numpy as np\n"
           f"def one(t):\n    if int(t['i'][0]) == 57 and not os.path.exists({flag!r}):\n"
           f"        open({flag!r}, 'w').close()\n        raise OSError('flaky')\n"
           "    return {'i': t['i'], 'sq': t['i'] * t['i']}\n")
    p = ids_job(d, n=200, pieces=200, src=src, run_extra="retry_errors = true\n")
    r = qpeach("run", p, timeout=120)
    assert r.returncode == 0, r.stderr
    retries = re.findall(r"task (\d+) \(rows \d+-\d+\) failed on \S+, retrying", r.stderr)
    assert retries == ["57"], r.stderr
    got = read_qipc(os.path.join(d, "out", "r.qipc"))
    assert np.array_equal(got["sq"], np.arange(200) ** 2)


KILLER = ("import os\nimport numpy as np\n"
          "def one(t):\n    if int(t['i'][0]) == VICTIM and ONCE:\n"
          "        os.kill(os.getpid(), 9)\n"
          "    return {'i': t['i'], 'sq': t['i'] * t['i']}\n")


def test_a_task_that_kills_its_worker_in_a_batch_is_found_and_named():
    d = tmpdir()
    # always kills: the batch is lost, its tasks go again one per message,
    # and the task that kills is the one named
    p = ids_job(d, n=300, pieces=300, src=KILLER.replace("VICTIM", "150").replace("ONCE", "True"),
                run_extra="retries = 1\n")
    r = qpeach("run", p, timeout=180)
    assert r.returncode == 1, r.stderr
    assert re.search(r"task 150 \(rows 150-151\) failed after 2 attempts", r.stderr), r.stderr
    assert not re.search(r"task (?!150\b)\d+ \(rows [\d-]+\) failed", r.stderr), r.stderr
    # kills once: the run recovers with every result, in order
    d = tmpdir()
    flag = os.path.join(d, "died")
    once = f"not os.path.exists({flag!r}) and not open({flag!r}, 'w').close()"
    p = ids_job(d, n=300, pieces=300, src=KILLER.replace("VICTIM", "150").replace("ONCE", once))
    r = qpeach("run", p, timeout=180)
    assert r.returncode == 0 and "lost worker" in r.stderr, r.stderr
    got = read_qipc(os.path.join(d, "out", "r.qipc"))
    assert np.array_equal(got["i"], np.arange(300)) and np.array_equal(got["sq"], np.arange(300) ** 2)


def test_a_hung_task_in_a_batch_times_out_under_its_own_name():
    d = tmpdir()
    src = ("import time\nimport numpy as np\n"
           "def one(t):\n    if int(t['i'][0]) == 90:\n        time.sleep(60)\n"
           "    return {'i': t['i']}\n")
    p = ids_job(d, n=160, pieces=160, src=src, run_extra="retries = 0\ntask_timeout = 1500ms\n")
    r = qpeach("run", p, timeout=180)
    assert r.returncode == 1, r.stderr
    assert re.search(r"task 90 \(rows 90-91\) failed after 1 attempt: timed out after 1500 ms", r.stderr), \
        r.stderr


def test_kill9_of_the_scheduler_mid_batch_then_resume_gives_the_same_bytes():
    d = tmpdir()
    src = ("import time\nimport numpy as np\n"
           "def one(t):\n    time.sleep(0.004)\n    return {'i': t['i'], 'sq': t['i'] * t['i']}\n")
    p = ids_job(d, n=1200, pieces=1200, src=src, batch="16")
    r = qpeach("run", p, timeout=180)
    assert r.returncode == 0, r.stderr
    want = open(os.path.join(d, "out", "r.qipc"), "rb").read()
    os.unlink(os.path.join(d, "out", "r.qipc"))
    proc = subprocess.Popen([QPEACH, "run", "--fresh", p], stderr=subprocess.DEVNULL)
    jpath = os.path.join(d, ".qpeach", "j.journal")
    assert wait_for(lambda: os.path.exists(jpath) and os.path.getsize(jpath) > 0, 60)
    head = os.path.getsize(jpath)          # the header (the plan): no record yet
    assert wait_for(lambda: os.path.getsize(jpath) > head + 20000, 60)
    kids = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_for(lambda: not any(os.path.exists(f"/proc/{k}") and
                                    open(f"/proc/{k}/stat").read().split()[2] != "Z" for k in kids), 10)
    r = qpeach("run", p, timeout=180)
    assert r.returncode == 0, r.stderr
    m = re.search(r"resuming: (\d+) of 1200 tasks already done", r.stderr)
    assert m and 0 < int(m.group(1)) < 1200, r.stderr
    assert open(os.path.join(d, "out", "r.qipc"), "rb").read() == want


def test_batch_must_be_auto_or_a_count():
    d = tmpdir()
    p = ids_job(d, batch="lots")
    r = qpeach("run", p, timeout=60)
    assert r.returncode == 2 and "[workers] batch: not a positive integer or auto" in r.stderr, r.stderr
