"""qpeach as a contender, on the same table and functions as peers.py.

  qpeach-threads  one `qpeach serve -s 2`; `.qp.peach[fn; parts]` with the
                  partitions sent in that one call: the server converts
                  each to numpy without copying and runs them on its
                  secondary threads (Python's GIL: numpy kernels overlap,
                  pure-Python code does not)
  qpeach-procs    one `qpeach serve -s -2`: `.qp.peach` hands the
                  partitions out to 2 worker processes of its own
  qpeach-fanout   2 `qpeach serve` workers, the table resident on each
                  (`.qp.set`, not timed, as pool-fork's fork is not), the
                  Python client's kx.remote.fanout(table='trade', pieces=P)
                  sending only row bounds (`.qp.apply`)
  qpeach-run      `qpeach run JOB` with `local = 2` workers on the table
                  written once as a q IPC file (the scheduler's own path)

A contender whose server side is missing (an older build) raises
NotAvailable with the reason; run_one.py reports it as "not available".
"""
import os
import subprocess
import sys
import tempfile

import common as c

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness                       # noqa: E402  (starts real `qpeach serve`)
import qpeach as kx                  # noqa: E402
from qpeach.errors import CharVector, QError   # noqa: E402


class NotAvailable(Exception):
    pass


def _env():
    return dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))


def _define(sess):
    """Imports numpy/pandas and defines every bench function on a session."""
    try:
        sess._call(".qp.import", {"np": "numpy", "pd": "pandas"})
        for name in ("vwap_part", "rolling_part", "cpu_part", "nop"):
            sess._call(".qp.def", name, CharVector(c.FUNCS_SRC + f"\n{name}\n"))
    except QError as e:
        raise NotAvailable(f"the server runs no Python functions ({str(e).splitlines()[0]})")


def _need_peach(sess):
    try:
        sess._call(".qp.peach", "nop", kx.errors.ArgList([1, 2]))
    except QError as e:
        raise NotAvailable(f".qp.peach missing ({str(e).splitlines()[0]})")


class QpeachThreads:
    name = "qpeach-threads"
    serve_args = ("-s", "2")

    def setup(self, t):
        try:
            self.servers = [harness.Server(*self.serve_args, env=_env())]
        except RuntimeError as e:      # e.g. an older serve refusing `-s -2`
            raise NotAvailable(str(e).strip().splitlines()[-1])
        self.sess = kx.remote.session(port=self.servers[0].port)
        _define(self.sess)
        _need_peach(self.sess)
        self.t = t
        self.n = len(t["sym"])

    def run(self, w):
        parts = kx.errors.ArgList([c.part(self.t, a, b) for a, b in c.bounds(self.n)])
        r = self.sess._call(".qp.peach", c.FUNC_NAMES[w], parts)
        return c.merge(list(r))

    def overhead(self, n):
        import numpy as np
        return list(self.sess._call(".qp.peach", "nop", np.arange(n, dtype=np.int64)))

    def pids(self):
        return [s.proc.pid for s in self.servers]

    def close(self):
        for s in getattr(self, "servers", []):
            s.stop()


class QpeachProcs(QpeachThreads):
    name = "qpeach-procs"
    serve_args = ("-s", "-2")


class QpeachThreadsResident(QpeachThreads):
    """.qp.peach over row bounds only: the table is resident on the server
    (`.qp.load` of a q IPC file, forwarded to -s -N workers) and each item
    reads its rows in place with qtable(name, (start, end))."""
    name = "qpeach-threads-res"

    def setup(self, t):
        super().setup(t)
        from qpeach import _qpeach
        self.d = tempfile.mkdtemp(prefix="qpeach-bench-res-")
        path = os.path.join(self.d, "trade.qipc")
        with open(path, "wb") as f:
            f.write(_qpeach.dumps(t))
        src = c.FUNCS_SRC + "".join(
            f"\n\ndef res_{w}(rows):\n    return {fn}(qtable('trade', (int(rows[0]), int(rows[1]))))\n"
            for w, fn in c.FUNC_NAMES.items())
        try:
            self.sess._call(".qp.load", "trade", CharVector(path))
            for w in c.FUNC_NAMES:
                self.sess._call(".qp.def", f"res_{w}", CharVector(src + f"\nres_{w}\n"))
            self.sess._call(".qp.peach", "res_vwap", kx.errors.ArgList([[0, 10]]))
        except QError as e:
            raise NotAvailable(f"resident peach: {str(e).splitlines()[0]}")

    def run(self, w):
        import numpy as np
        items = kx.errors.ArgList([np.array([a, b], dtype=np.int64) for a, b in c.bounds(self.n)])
        return c.merge(list(self.sess._call(".qp.peach", f"res_{w}", items)))

    def close(self):
        super().close()
        import shutil
        if getattr(self, "d", None):
            shutil.rmtree(self.d, ignore_errors=True)


class QpeachProcsResident(QpeachThreadsResident):
    name = "qpeach-procs-res"
    serve_args = ("-s", "-2")


class QpeachFanout(QpeachThreads):
    name = "qpeach-fanout"

    def setup(self, t):
        self.servers = [harness.Server(env=_env()) for _ in range(2)]
        self.sessions = [kx.remote.session(port=s.port) for s in self.servers]
        for s in self.sessions:
            _define(s)
            s._call(".qp.set", "trade", t)        # resident, like a loaded table
        self.n = len(t["sym"])
        self.fns = {}
        for w, fname in c.FUNC_NAMES.items():
            self.fns[w] = c._ns[fname]
        self.fns["nop1"] = c.nop

    def run(self, w):
        r = kx.remote.fanout(self.fns[w], self.sessions, table="trade", pieces=c.PIECES,
                             merge=c.merge)
        return r

    def overhead(self, n):
        """n partitions of one row each of a resident table ids (i = 0..n-1):
        one `.qp.apply` round trip per task, returning i like nop(i)."""
        import numpy as np
        if getattr(self, "ids", None) != n:     # the warm-up call, untimed
            for s in self.sessions:
                s._call(".qp.set", "ids", {"i": np.arange(n, dtype=np.int64)})
            self.ids = n

        def one(t):
            return int(t["i"][0])
        got = kx.remote.fanout(one, self.sessions, table="ids", pieces=n, merge="concat")
        return list(got)


class QpeachRun:
    """`qpeach run JOB`, local = 2 workers, the table as a q IPC file that
    each worker loads; times the whole job (worker start, load, tasks,
    merge, output), so it carries costs the other contenders' setup hides."""
    name = "qpeach-run"

    def setup(self, t):
        r = subprocess.run([harness.QPEACH, "run"], capture_output=True, text=True)
        if "unknown" in (r.stdout + r.stderr).lower() and "usage" not in (r.stdout + r.stderr).lower():
            raise NotAvailable("`qpeach run` is not in this build")
        from qpeach import _qpeach
        self.loads = _qpeach.loads
        self.d = tempfile.mkdtemp(prefix="qpeach-bench-run-")
        with open(os.path.join(self.d, "trade.qipc"), "wb") as f:
            f.write(_qpeach.dumps(t))
        with open(os.path.join(self.d, "funcs.py"), "w") as f:
            f.write(c.FUNCS_SRC + "\n\ndef one(t):\n    return int(t['i'][0])\n")
        self.procs = []

    def _job(self, fn, table, fname, pieces, how):
        p = os.path.join(self.d, f"{fn}-{pieces}.ini")
        with open(p, "w") as f:
            f.write(f"[job]\nfunction = funcs.py:{fn}\nlibraries = np=numpy, pd=pandas\n"
                    f"[input]\ntable = {table}\nfile = {fname}\n"
                    f"[partition]\nby = rows\npieces = {pieces}\n[workers]\nlocal = 2\n"
                    f"[merge]\nhow = {how}\n[output]\npath = out-{fn}.qipc\n")
        r = subprocess.run([harness.QPEACH, "run", "--quiet", p], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"qpeach run {fn}: exit {r.returncode}: {r.stderr[-400:]}")
        with open(os.path.join(self.d, f"out-{fn}.qipc"), "rb") as f:
            return self.loads(f.read())

    def run(self, w):
        return self._job(c.FUNC_NAMES[w], "trade", "trade.qipc", c.PIECES, "sum")

    def overhead(self, n):
        import numpy as np
        from qpeach import _qpeach
        ids = os.path.join(self.d, "ids.qipc")
        if not os.path.exists(ids):
            with open(ids, "wb") as f:
                f.write(_qpeach.dumps({"i": np.arange(n, dtype=np.int64)}))
        return list(self._job("one", "ids", "ids.qipc", n, "concat"))

    def pids(self):
        return []

    def close(self):
        import shutil
        if getattr(self, "d", None):
            shutil.rmtree(self.d, ignore_errors=True)


RUNNERS = {r.name: r for r in (QpeachThreads, QpeachProcs, QpeachThreadsResident,
                                QpeachProcsResident, QpeachFanout, QpeachRun)}
