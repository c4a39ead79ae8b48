"""Fan-out (fanout, map) on the C scheduler, as `qpeach run` runs a job
file: the function is shipped as for a session but defined by the
scheduler on every worker (qp_run_opts.fn_code); this module only makes
the job, a dict the scheduler reads as it reads a job file (see sched.py),
and has no partitioning or merging of its own."""
import hashlib
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from ._ext import check as _check, extension as _extension
from .session import RemoteFunction, Session
from .shipping import _Shipped, _dill

_fan_seq = [0]


def _fn_name(shipped, pandas=False):
    """The name a shipped function is defined under by the scheduler, as
    the scheduler's rule for a job's function names makes it."""
    return _extension().fn_name(shipped.name_for(pandas))


def _fan_job(shipped, reducer, sessions, table_name, input_file, part, how, pandas, key, o):
    """The job (a dict of sections) a fan-out runs: every key means what it
    means in a job file (jobs/README.md)."""
    libs = {}
    for s in sessions:
        libs.update(s._libs)
    libs.update(o["libraries"] or {})
    creds = {(s._opts["user"], s._opts["password"], s._opts["tls"]) for s in sessions}
    if len(creds) > 1:
        raise ValueError("fanout: the sessions must share username, password and tls "
                         "(one scheduler connects to all of them)")
    user, password, tls = creds.pop() if creds else (None, None, False)
    name = _fn_name(shipped, pandas)
    rname = _fn_name(reducer) if reducer else None
    tt = o["task_timeout"]
    return {"job": {"name": "fanout", "function": f"{name}.py:{name}",
                    "libraries": libs or None},
            "input": {"table": table_name, "file": input_file},
            "partition": part,
            "workers": {"local": o["local"] or None,
                        "servers": [s.address for s in sessions] or None,
                        "user": (f"{user}:{password}" if password else user) if user else None,
                        "tls": tls or None, "threads": o["threads"] or None},
            "merge": {"how": how, "key": key, "missing": o.get("missing"),
                      "reducer": f"{rname}.py:{rname}" if rname else None},
            "run": {"retries": o["retries"], "retry_errors": o["retry_errors"] or None,
                    "task_timeout": f"{int(tt * 1000)}ms" if tt else None,
                    "state": o["journal"]}}


def _resident(sessions, local, table, journal, ext):
    """Where the workers find a table held here: set on every session
    (.qp.set), or, with local workers, written once to a q IPC file they
    load (servers given with local workers must then see this machine's
    files). With a journal folder the name is the table's SHA-256 and the
    file is kept there, so a later run of the same fan-out matches the
    journal and resumes. Returns (name, file or None, undo)."""
    if isinstance(table, dict):
        table = {str(k): np.asarray(v) for k, v in table.items()}
        if len({len(v) for v in table.values()}) > 1:
            raise ValueError("table columns differ in length")
    elif not (hasattr(table, "columns") and hasattr(table, "to_numpy")):
        raise TypeError(f"table must be a dict of arrays, a DataFrame or the name of a "
                        f"table on the servers, got {type(table).__name__}")
    data = ext.dumps(table) if local or journal else None
    if journal:
        name = "qp_fanout_" + hashlib.sha256(data).hexdigest()[:24]
    else:
        _fan_seq[0] += 1
        name = f"qp_fanout_{os.getpid()}_{_fan_seq[0]}"
    if local:
        d = journal or tempfile.mkdtemp(prefix="qpeach-fanout-")
        path = os.path.join(d, name + ".qipc")
        if not os.path.exists(path):
            os.makedirs(d, exist_ok=True)
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(path + ".tmp", path)
        if journal:
            return name, path, None
        return name, path, lambda: shutil.rmtree(d, ignore_errors=True)
    for s in sessions:
        s._call(".qp.set", name, table)

    def undo():
        for s in sessions:
            try:
                s._call(".qp.set", name, None)
            except Exception:       # the run's own error matters more
                pass
    return name, None, undo


def _options(local, threads, retries, retry_errors, task_timeout, libraries, progress, log,
             journal):
    _check("local", local, (int,), "an int")
    _check("retries", retries, (int,), "an int")
    if task_timeout is not None:
        _check("task_timeout", task_timeout, (int, float), "a number of seconds")
    if journal is not None:
        journal = os.path.abspath(os.fspath(journal))
    return dict(local=local, threads=threads, retries=retries, retry_errors=retry_errors,
                task_timeout=task_timeout, libraries=libraries, progress=progress, log=log,
                journal=journal)


def fanout(fn: Callable, sessions: Sequence[Session] = (), table: Any = None, by: str = "rows",
           pieces: Optional[int] = None, merge: Union[str, Callable[[List[Any]], Any]] = "concat",
           pandas: bool = False, *, key: Union[None, str, Sequence[str]] = None,
           reducer: Optional[Callable] = None, local: int = 0,
           threads: int = 0, retries: int = 2, retry_errors: bool = False,
           task_timeout: Optional[float] = None,
           libraries: Optional[Dict[str, str]] = None,
           progress: Union[None, bool, Callable[[int, int, int], Any]] = None,
           log: bool = False, journal: Optional[str] = None, raw: bool = False,
           missing: str = "fail") -> Any:
    """Runs fn over the partitions of a table on several workers at once
    and merges the results: `qpeach run` (the C scheduler, one meaning of
    every merge) with a function defined here.

    fn        a remote function (its session is ignored) or a plain Python
              function; it gets one partition of the table.
    sessions  running servers to use; local=N also starts N worker
              processes pinned to cores (as [workers] local). Tasks go out
              from one queue, a few in flight per worker, so faster
              workers take more; a lost worker's tasks go to another.
    table     a dict of arrays or a DataFrame held here (set on every
              server once, or written once for local workers), or the name
              of a table resident on every server (nothing is sent but the
              bounds: `.qp.apply`).
    by        'rows': ``pieces`` row ranges (default: 4 per worker); a
              column name: one partition per distinct value, in sorted
              order; 'partition': one per kdb+ partition of a db table.
    merge     a [merge] how: 'concat', 'sum', 'min', 'max', 'count',
              'sum-by-key' (with key= for plain tables), 'none' (the list
              of partials); or a callable: how = python, the reducer given
              that list in partition order, run on a worker.
    reducer   a function run on a worker over the merged value (as a job
              file's [merge] reducer with another how).
    missing   'fail' or 'zero', as [merge] missing: 'sum-by-key' partials
              whose value columns differ in names fail the run, or count
              a partial's missing columns as zero.
    retries, retry_errors, task_timeout (seconds), threads: as [run] and
              [workers] in a job file. progress: callable(done, total,
              failed), None for a tqdm bar on a TTY, False for none.
    journal   a folder for the run's journal and lock ([run] state): a
              fan-out that failed or was interrupted, run again the same
              way, redoes only the partitions not finished.
    raw       return the merged value's q IPC bytes (a .qipc output's).

    A partition that fails for good raises FanoutError naming it (index,
    rows or group value, worker) with the worker's QError as its cause.
    """
    base = fn.__wrapped__ if isinstance(fn, RemoteFunction) else fn
    if isinstance(fn, RemoteFunction):
        pandas = pandas or fn.pandas
    if callable(merge):
        if reducer is not None:
            raise ValueError("give the reducer as merge= or reducer=, not both")
        merge, reducer = "python", merge
    # the scheduler's [merge] how names; python is a callable here
    hows = [h for h in _extension().MERGE_HOWS if h != "python"]
    if merge not in hows and not (merge == "python" and reducer):
        raise ValueError(f"merge must be one of {', '.join(hows)} or a callable, got {merge!r}")
    if pieces is not None:
        _check("pieces", pieces, (int,), "an int")
        if pieces < 1:
            raise ValueError("pieces must be >= 1")
    _check("by", by, (str,), "'rows', 'partition' or a column name")
    part = ({"by": "rows", "pieces": pieces} if by == "rows" else
            {"by": "partition"} if by == "partition" else {"by": "column", "column": by})
    o = _options(local, threads, retries, retry_errors, task_timeout, libraries, progress,
                 log, journal)
    if missing not in ("fail", "zero"):
        raise ValueError(f"missing must be 'fail' or 'zero', got {missing!r}")
    o["missing"] = None if missing == "fail" else missing     # the job file's default
    # Shipped now, so the globals it reads are the ones of this call.
    red = None
    if reducer is not None:
        red = _Shipped(reducer.__wrapped__ if isinstance(reducer, RemoteFunction) else reducer)
    return _fan(_Shipped(base), red, sessions, table, part, merge, pandas, key, raw, o)


def _fan(shipped, reducer, sessions, table, part, how, pandas, key, raw, o):
    from .sched import run
    sessions = list(sessions)
    if not all(isinstance(s, Session) for s in sessions):
        raise TypeError("sessions must be a list of qpeach sessions")
    if any(s.protocol == "pykx" for s in sessions):
        raise ValueError("fan-out over protocol='pykx' sessions is not supported: use a job "
                         "file with [workers] protocol = pykx (the data then goes with the calls)")
    if not sessions and o["local"] < 1:
        raise TypeError("fan-out needs sessions or local=N worker processes")
    undo = None
    if isinstance(table, str):
        tname, tfile = table, None
    else:
        tname, tfile, undo = _resident(sessions, o["local"], table, o["journal"], _extension())
    try:
        job = _fan_job(shipped, reducer, sessions, tname, tfile, part, how, pandas, key, o)
        return run(job, progress=o["progress"], log=o["log"], resume=bool(o["journal"]),
                   raw=raw, pandas=pandas, code=shipped.code,
                   reducer=reducer.code if reducer else None)
    finally:
        if undo:
            undo()


def map(fn: Callable, iterable: Any, sessions: Sequence[Session] = (), *, local: int = 0,
        threads: int = 0, retries: int = 2, retry_errors: bool = False,
        task_timeout: Optional[float] = None, libraries: Optional[Dict[str, str]] = None,
        progress: Union[None, bool, Callable[[int, int, int], Any]] = None,
        log: bool = False, journal: Optional[str] = None) -> List[Any]:
    """[fn(x) for x in iterable], one task per item on the scheduler's
    workers (sessions and/or local=N), in order: what Pool.map and
    client.map users reach for. The items travel with the function (dill),
    so they should be small; the options are fanout's."""
    items = list(iterable)
    o = _options(local, threads, retries, retry_errors, task_timeout, libraries, progress,
                 log, journal)
    if not items:
        return []
    base = fn.__wrapped__ if isinstance(fn, RemoteFunction) else fn
    if _dill is None:
        raise TypeError("map() ships its items with dill, which is not installed")
    table = {"i": np.arange(len(items), dtype=np.int64)}
    part = {"by": "rows", "pieces": len(items)}
    return list(_fan(_Shipped(base, items=items), None, sessions, table, part, "none", False,
                     None, False, o))
