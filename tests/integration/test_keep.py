"""[workers] keep: local workers kept between runs (issue 21.1), with real
`qpeach run`, `qpeach serve` and `qpeach workers` processes.

Every test has a workers folder of its own (QPEACH_WORKERS_DIR), finds the
kept workers in /proc by their sockets there, and stops them at its end.
Results are checked against pandas on the data the db or CSV holds; the
databases are made by `qpeach db import` in a temporary folder."""
import os
import shutil
import signal
import stat
import subprocess
import time

import numpy as np
import pandas as pd

from harness import QPEACH, Server, cmdline, qpeach, tmpdir, wait_for
from qipc import Conn, Identity, QError, Sym, Vec

# One row per task: the worker's pid, the rows, the sum of price * size,
# and how many calls this module has seen (module state: a run must start
# from a fresh module, so on each worker it counts 1, 2, ...); `leak` is 1
# when the global `leak` (set on a worker before this run) is seen.
FN = """import os
import numpy as np
calls = []
def part(t):
    calls.append(1)
    try:
        qget('leak')
        leak = 1
    except KeyError:
        leak = 0
    price = np.asarray(t['price'], dtype=float)
    size = np.asarray(t['size'], dtype=float)
    return {'pid': np.array([os.getpid()]), 'n': np.array([len(price)]),
            'pv': np.array([float((price * size).sum())]), 'calls': np.array([len(calls)]),
            'leak': np.array([leak])}
"""


def frame(seed, rows=2000, syms="ABCD"):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"sym": rng.choice(list(syms), rows),
                         "price": np.round(rng.uniform(1, 100, rows), 2),
                         "size": rng.integers(1, 1000, rows)})


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def import_db(d, db, df, table="trade", partition=None):
    src = os.path.join(d, f"{table}-{len(os.listdir(d))}.csv")
    df.to_csv(src, index=False)
    args = ["db", "import", src, db, table, "--types", "DSFJ" if partition else "SFJ"]
    r = qpeach(*(args + (["--partition", "date"] if partition else [])))
    assert r.returncode == 0, r.stderr


class Kept:
    """A test's workers folder, its environment, and its jobs."""

    def __init__(self):
        self.d = tmpdir()
        self.wdir = os.path.join(self.d, "kept")
        self.env = dict(os.environ, QPEACH_WORKERS_DIR=self.wdir)
        write(os.path.join(self.d, "fn.py"), FN)

    def job(self, inp, name="j", keep="10m", local=2, extra="", part="by = rows\npieces = 6\n"):
        return write(os.path.join(self.d, name + ".ini"),
                     f"[job]\nname = {name}\nfunction = fn.py:part\nlibraries = np=numpy\n"
                     f"[input]\n{inp}[partition]\n{part}[workers]\nlocal = {local}\n"
                     f"keep = {keep}\n{extra}[output]\npath = out/{name}.csv\n")

    def run(self, job, check=True):
        r = qpeach("run", job, env=self.env, timeout=120)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    def result(self, name="j"):
        return pd.read_csv(os.path.join(self.d, "out", name + ".csv"))

    def pids(self):
        """The kept workers alive now: `qpeach serve` with a socket here."""
        mark = ("unix:" + self.wdir + "/").encode()
        return {int(p) for p in os.listdir("/proc")
                if p.isdigit() and b"serve" in cmdline(int(p)) and mark in cmdline(int(p))}

    def stop(self):
        r = qpeach("workers", "stop", env=self.env)
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: not self.pids(), 20), self.pids()
        return r

    def splayed(self, seed=1):
        """A splayed trade table made by `qpeach db import`, and its rows."""
        self.db = os.path.join(self.d, "db")
        df = frame(seed)
        import_db(self.d, self.db, df)
        return df

    def db_job(self, **kw):
        return self.job(f"db = {self.db}\ntable = trade\n", **kw)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def check_sums(got, df):
    """The tasks' rows and sums against pandas on the same rows."""
    assert int(got["n"].sum()) == len(df), (got, len(df))
    want = float((df["price"] * df["size"]).sum())
    assert abs(float(got["pv"].sum()) - want) <= 1e-9 * abs(want), (got["pv"].sum(), want)


def fresh_module(got):
    """Each worker's module counted its calls from 1 in this run."""
    for pid, calls in got.groupby("pid")["calls"]:
        assert sorted(calls) == list(range(1, len(calls) + 1)), (pid, list(calls))


def test_kept_worker_reused_same_pid_and_reset():
    with Kept() as k:
        df = k.splayed()
        job = k.db_job()
        r = k.run(job)
        first = k.result()
        check_sums(first, df)
        pids = set(first["pid"])
        assert len(pids) == 2 and k.pids() == pids, (pids, k.pids(), r.stderr)
        assert "0 of 2 local workers reused, 2 started" in r.stderr, r.stderr
        # a global left on a kept worker (a .qp.set) must not reach the next run
        sets = os.listdir(k.wdir)
        assert len(sets) == 1, sets
        socks = [s for s in os.listdir(os.path.join(k.wdir, sets[0])) if s.endswith(".sock")]
        assert len(socks) == 2, socks
        for s in socks:
            c = Conn(unix=os.path.join(k.wdir, sets[0], s))
            assert c.call([Sym(".qp.set"), Sym("leak"), 42]) == "leak"
            c.close()
        r = k.run(job)
        second = k.result()
        check_sums(second, df)
        assert set(second["pid"]) == pids, (set(second["pid"]), pids)
        assert "2 of 2 local workers reused" in r.stderr, r.stderr
        assert list(second["leak"]) == [0] * len(second), second
        fresh_module(second)


def test_changed_function_is_shipped_again():
    with Kept() as k:
        df = k.splayed()
        job = k.db_job()
        k.run(job)
        pids = set(k.result()["pid"])
        # the same name, other code: the sums of size instead of price * size
        write(os.path.join(k.d, "fn.py"), FN.replace("(price * size).sum()", "size.sum()"))
        k.run(job)
        got = k.result()
        assert set(got["pid"]) == pids, (set(got["pid"]), pids)
        assert float(got["pv"].sum()) == float(df["size"].sum()), (got["pv"].sum(), df["size"].sum())


def test_killed_kept_worker_is_replaced():
    with Kept() as k:
        df = k.splayed()
        job = k.db_job()
        k.run(job)
        pids = sorted(set(k.result()["pid"]))
        os.kill(pids[0], signal.SIGKILL)
        assert wait_for(lambda: pids[0] not in k.pids(), 10)
        r = k.run(job)
        got = k.result()
        check_sums(got, df)
        now = set(got["pid"])
        assert len(now) == 2 and pids[1] in now and pids[0] not in now, (now, pids)
        assert "1 of 2 local workers reused" in r.stderr, r.stderr
        assert k.pids() == now


def test_kept_workers_hold_none_of_their_callers_files():
    """A kept worker lives on after the process that ran the job (a Python
    session, a shell): it keeps none of that process's files open (here a
    lock file the caller handed down, which would stay locked)."""
    with Kept() as k:
        k.splayed()
        held = os.path.join(k.d, "held.lock")
        fd = os.open(held, os.O_RDWR | os.O_CREAT)
        p = subprocess.run([QPEACH, "run", k.db_job()], env=k.env,
                           pass_fds=(fd,), capture_output=True, text=True, timeout=120)
        os.close(fd)
        assert p.returncode == 0, p.stderr
        pids = k.pids()
        assert len(pids) == 2
        for pid in pids:
            fds = os.listdir(f"/proc/{pid}/fd")
            targets = [os.readlink(f"/proc/{pid}/fd/{f}") for f in fds if os.path.exists(f"/proc/{pid}/fd/{f}")]
            assert held not in targets, (pid, targets)


def test_hung_kept_worker_is_stopped_and_replaced():
    with Kept() as k:
        df = k.splayed()
        job = k.db_job(extra="connect_timeout = 1s\n")
        k.run(job)
        pids = sorted(set(k.result()["pid"]))
        os.kill(pids[0], signal.SIGSTOP)          # its socket still takes connections
        r = k.run(job)
        got = k.result()
        check_sums(got, df)
        assert pids[0] not in set(got["pid"]) and pids[1] in set(got["pid"]), (got, pids)
        assert wait_for(lambda: pids[0] not in k.pids(), 20)    # stopped, not left behind
        assert "1 of 2 local workers reused" in r.stderr, r.stderr


def test_workers_lists_and_stop_leaves_no_process():
    with Kept() as k:
        k.splayed()
        db = k.db
        r = qpeach("workers", env=k.env)
        assert r.returncode == 0 and "no kept workers" in r.stdout, (r.stdout, r.stderr)
        k.run(k.db_job())
        pids = k.pids()
        assert len(pids) == 2, pids
        r = qpeach("workers", env=k.env)
        assert r.returncode == 0, r.stderr
        for pid in pids:
            line = next(l for l in r.stdout.splitlines() if l.startswith(str(pid)))
            assert "core" in line and "10m00s" in line, r.stdout
        assert r.stdout.count(f"holds: db {db}; libraries np=numpy; functions part (") == 2, r.stdout
        # every folder a kept worker lives in is this user's alone
        assert stat.S_IMODE(os.stat(k.wdir).st_mode) == 0o700
        for s in os.listdir(k.wdir):
            assert stat.S_IMODE(os.stat(os.path.join(k.wdir, s)).st_mode) == 0o700
        r = k.stop()
        assert "stopped 2 kept workers" in r.stdout, r.stdout
        assert os.listdir(k.wdir) == [], os.listdir(k.wdir)
        r = qpeach("workers", env=k.env)
        assert "no kept workers" in r.stdout, r.stdout


def test_workers_folder_open_to_others_is_refused():
    with Kept() as k:
        k.splayed()
        os.mkdir(k.wdir, 0o755)
        os.chmod(k.wdir, 0o755)
        try:
            r = k.run(k.db_job(), check=False)
            assert r.returncode == 1, r.stderr
            assert f"the workers folder {k.wdir} is not a private folder of this user" in r.stderr, \
                r.stderr
            assert not k.pids()
        finally:
            os.chmod(k.wdir, 0o700)


def test_idle_kept_worker_exits_on_its_own():
    with Kept() as k:
        k.splayed()
        k.run(k.db_job(keep="3s"))
        pids = set(k.result()["pid"])
        assert k.pids() == pids, (k.pids(), pids)       # the run has ended, they have not
        assert wait_for(lambda: not k.pids(), 30), k.pids()


def test_kept_workers_outlive_the_run_then_a_sigkilled_scheduler():
    with Kept() as k:
        k.splayed()
        write(os.path.join(k.d, "slow.py"), "import time\nimport numpy as np\n"
              "def part(t):\n    time.sleep(30)\n    return {'n': np.array([1])}\n")
        job = k.db_job(keep="5s")
        write(job, open(job).read().replace("fn.py:part", "slow.py:part"))
        p = subprocess.Popen([QPEACH, "run", job], env=k.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda: len(k.pids()) == 2, 30), k.pids()
        pids = k.pids()
        p.send_signal(signal.SIGKILL)
        p.wait()
        time.sleep(0.3)
        assert k.pids() == pids          # not killed with their scheduler
        assert wait_for(lambda: not k.pids(), 60), k.pids()   # but gone once idle


def test_state_folder_removed_kept_workers_exit():
    with Kept() as k:
        k.splayed()
        k.run(k.db_job())
        assert len(k.pids()) == 2
        shutil.rmtree(os.path.join(k.d, ".qpeach"))
        assert wait_for(lambda: not k.pids(), 30), k.pids()


def test_other_worker_settings_do_not_reuse():
    with Kept() as k:
        df = k.splayed()
        a = k.db_job(name="a")
        k.run(a)
        pa = set(k.result("a")["pid"])
        # another job with other threads, or one local worker: other workers
        b = k.db_job(name="b", extra="threads = 1\n")
        k.run(b)
        pb = set(k.result("b")["pid"])
        c = k.db_job(name="c", local=1)
        k.run(c)
        pc = set(k.result("c")["pid"])
        assert not pa & pb and not pa & pc and not pb & pc, (pa, pb, pc)
        check_sums(k.result("b"), df)
        check_sums(k.result("c"), df)
        # a's own workers are still there for a
        k.run(a)
        assert set(k.result("a")["pid"]) == pa
        # a job whose settings change gets new workers, and its old ones go
        write(a, open(a).read().replace("libraries = np=numpy", "libraries = np=numpy, m=math"))
        k.run(a)
        pa2 = set(k.result("a")["pid"])
        assert not pa2 & pa, (pa2, pa)
        assert wait_for(lambda: not pa & k.pids(), 20), (pa, k.pids())
        assert pb | pc | pa2 == k.pids(), (pb, pc, pa2, k.pids())


def test_two_runs_at_once_never_share_a_worker():
    with Kept() as k:
        df = k.splayed()
        write(os.path.join(k.d, "slow.py"), FN.replace("calls.append(1)", "calls.append(1)\n"
                                                          "    import time; time.sleep(0.5)"))
        jobs = []
        for name in ("x", "y"):
            j = k.db_job(name=name)
            write(j, open(j).read().replace("fn.py:part", "slow.py:part"))
            jobs.append(j)
        procs = [subprocess.Popen([QPEACH, "run", j], env=k.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for j in jobs]
        errs = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errs
        px, py = set(k.result("x")["pid"]), set(k.result("y")["pid"])
        assert len(px) == 2 and len(py) == 2 and not px & py, (px, py, errs)
        check_sums(k.result("x"), df)
        check_sums(k.result("y"), df)
        k.run(jobs[0])                   # later: one of the two sets again
        assert set(k.result("x")["pid"]) in (px, py)


def test_db_written_since_is_seen_by_kept_workers():
    """A kept worker's mounted db is mounted again before each run: a
    splayed table imported again, and a table added to a partition that
    was there already (which a mounted db notices only when told: neither
    its root nor sym changes), are read as they are now, compared with
    pandas on the new rows."""
    with Kept() as k:
        k.splayed()
        db = k.db
        job = k.db_job()
        k.run(job)
        pids = set(k.result()["pid"])
        df2 = frame(2, rows=3000)
        import_db(k.d, db, df2)
        k.run(job)
        check_sums(k.result(), df2)
        assert set(k.result()["pid"]) == pids
        # partitioned: quote on two dates, trade on the first, then the second
        pdb = os.path.join(k.d, "pdb")
        days = ["2024-01-02", "2024-01-03"]
        q = frame(3, rows=50)
        for day in days:
            import_db(k.d, pdb, q.assign(date=day)[["date", "sym", "price", "size"]], "quote", True)
        t1 = frame(4).assign(date=days[0])[["date", "sym", "price", "size"]]
        import_db(k.d, pdb, t1, "trade", True)
        pj = k.job(f"db = {pdb}\ntable = trade\n", name="p", part="by = partition\n")
        k.run(pj)
        check_sums(k.result("p"), t1)
        pids = set(k.result("p")["pid"])
        # the second date's trade table arrives as q writes one into a
        # partition that exists: in that folder alone (made beside, with
        # the same sym, then renamed in), the root and sym untouched
        side = os.path.join(k.d, "side")
        os.makedirs(side)
        shutil.copy(os.path.join(pdb, "sym"), os.path.join(side, "sym"))
        t2 = frame(5).assign(date=days[1])[["date", "sym", "price", "size"]]
        import_db(k.d, side, t2, "trade", True)
        with open(os.path.join(side, "sym"), "rb") as a, open(os.path.join(pdb, "sym"), "rb") as b:
            assert a.read() == b.read()          # no new names: the codes mean the same
        before = os.stat(pdb).st_mtime_ns
        os.rename(os.path.join(side, "2024.01.03", "trade"), os.path.join(pdb, "2024.01.03", "trade"))
        assert os.stat(pdb).st_mtime_ns == before
        k.run(pj)
        got = k.result("p")
        assert len(got) == 2 and set(got["pid"]) <= pids, (got, pids)
        check_sums(got, pd.concat([t1, t2]))


def test_changed_csv_input_is_not_served_from_the_old_copy():
    with Kept() as k:
        src = os.path.join(k.d, "in.csv")
        df = frame(6)
        df.to_csv(src, index=False)
        job = k.job("file = in.csv\ntable = trade\ntypes = SFJ\n")
        k.run(job)
        check_sums(k.result(), df)
        pids = set(k.result()["pid"])
        df2 = frame(7, rows=2500)
        df2.to_csv(src, index=False)
        k.run(job)
        check_sums(k.result(), df2)
        # another input is other workers; the old ones, this job's, go
        assert not set(k.result()["pid"]) & pids
        assert wait_for(lambda: not pids & k.pids(), 20), (pids, k.pids())


# ---- what `qpeach serve` gives kept workers ----

def counts(*results):
    """The counts of f's results: (pid; count) long vectors."""
    return [r.items[1] for r in results]


def fresh(results):
    """Each process's counts are 1, 2, ... as its module ran them."""
    by = {}
    for r in results:
        by.setdefault(r.items[0], []).append(r.items[1])
    return all(sorted(v) == list(range(1, len(v) + 1)) for v in by.values())


def test_serve_reset_drops_globals_functions_and_module_state():
    """.qp.reset[]: every global but .qp.*, every function with its module
    state; imports stay. With -s -N its worker processes forget too."""
    for procs in ([], ["-s", "-2"]):
        with Server(*procs) as s:
            c = Conn(port=s.port)
            c.call([Sym(".qp.import"), {"np": Sym("numpy")}])
            c.call([Sym(".qp.set"), Sym("x"), 1])
            src = ("import os\nn = []\ndef f(x):\n    n.append(x)\n    try:\n"
                   "        qget('x')\n        seen = 1\n    except KeyError:\n        seen = 0\n"
                   "    return np.array([os.getpid(), len(n), seen])\n")
            # reuse: a definition from the same code is kept as it is
            # (module state included) unless the reset forgot it
            define = [Sym(".qp.def"), Sym("f"), src, {"reuse": True}]
            c.call(define)
            assert counts(c.call([Sym(".qp.call"), Sym("f"), [7]])) == [1]
            assert counts(c.call([Sym(".qp.call"), Sym("f"), [7]])) == [2]
            peach = [Sym(".qp.peach"), Sym("f"), Vec("j", [1, 2, 3, 4])]
            if procs:            # each worker process's module counts on, and sees x
                got = c.call(peach) + c.call(peach)
                assert fresh(got) and [r.items[2] for r in got] == [1] * 8, got
            assert c.call([Sym(".qp.reset"), Identity()]) == Vec("s", ["x"])
            assert c.call([Sym(".qp.info"), Identity()])["python"] != ""   # .qp.* stays
            for call in ([Sym(".qp.get"), Sym("x")], [Sym(".qp.call"), Sym("f"), [7]],
                         [Sym(".qp.peach"), Sym("f"), Vec("j", [1, 2])]):
                try:
                    c.call(call)
                    raise AssertionError(f"{call} answered after .qp.reset[]")
                except QError:
                    pass
            # defined again, the module runs again: its state starts over,
            # and np (imported before the reset) is still there
            c.call(define)
            assert counts(c.call([Sym(".qp.call"), Sym("f"), [7]])) == [1]
            if procs:            # and theirs start over, without x
                got = c.call(peach)
                assert fresh(got) and [r.items[2] for r in got] == [0] * 4, got
            c.close()


def test_serve_idle_exit_waits_for_its_clients_and_watch_exits():
    d = tmpdir()
    with Server("--idle-exit", "300") as s:
        c = Conn(port=s.port)
        time.sleep(1)                        # past its idle time, with a client
        assert s.alive(), "".join(s.log)
        c.close()
        assert wait_for(lambda: not s.alive(), 20), "".join(s.log)
        assert s.proc.returncode == 0
        assert any("no client for" in line and "--idle-exit 300" in line for line in s.log), s.log
    watched = os.path.join(d, "state")
    os.mkdir(watched)
    with Server("--watch", watched, "--watch", d) as s:
        c = Conn(port=s.port)
        shutil.rmtree(watched)
        assert wait_for(lambda: not s.alive(), 20), "".join(s.log)
        assert any(f"{watched} is gone" in line for line in s.log), s.log


def test_serve_leaves_a_socket_name_bound_since_by_another():
    """A kept worker started again in its slot binds the socket's name
    while the one it replaces may still be ending: that one's exit must
    not remove the new one's socket."""
    d = tmpdir()
    path = os.path.join(d, "w0.sock")
    old = Server(unix=path)
    try:
        os.unlink(path)
        with Server(unix=path) as new:
            old.stop()
            assert os.path.exists(path)
            c = Conn(unix=path)
            assert c.call([Sym(".qp.ping"), Identity()]) is True
            c.close()
            assert new.alive()
    finally:
        old.stop()
