"""Fan-out (fanout, map) on the C scheduler, as `qpeach run` runs a job
file: the function is shipped as for a session but defined by the
scheduler on every worker (qp_run_opts.fn_code); this module only makes
the job, a dict the scheduler reads as it reads a job file (see sched.py),
and has no partitioning or merging of its own.

With a journal folder, a fan-out run again after it was stopped resumes
in a new process too: the job names the function by its identity by
content (identity.py), which the journal is keyed by, and the folder
keeps the parts of that identity, so a run that cannot resume says which
part changed ("the function's global K changed: starting over").
"""
import datetime
import hashlib
import json
import os
import shutil
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from . import identity
from ._ext import check as _check, extension as _extension
from .errors import FanoutError
from .session import RemoteFunction, Session
from .shipping import _Shipped, _dill

_fan_seq = [0]


def _fn_name(shipped, pandas=False):
    """The name a shipped function is defined under by the scheduler, as
    the scheduler's rule for a job's function names makes it."""
    return _extension().fn_name(shipped.name_for(pandas))


def _fn_spec(shipped, pandas=False):
    """[job] function for a shipped function: its module's file (whose
    folder local workers get on sys.path, and whose imports of the modules
    beside it go along), or a name of no file for a function that has none
    (a notebook's), and its name by identity (the code itself is given)."""
    name = _fn_name(shipped, pandas)
    return f"{shipped.file or name + '.py'}:{name}"


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
    tt = o["task_timeout"]
    return {"job": {"name": "fanout", "function": _fn_spec(shipped, pandas),
                    "libraries": libs or None, "symbols": o.get("symbols")},
            "input": {"table": table_name, "file": input_file, "db": o.get("db")},
            "partition": part,
            "workers": {"local": o["local"] or None,
                        "servers": [s.address for s in sessions] or None,
                        "user": (f"{user}:{password}" if password else user) if user else None,
                        "tls": tls or None, "threads": o["threads"] or None},
            "merge": {"how": how, "key": key, "missing": o.get("missing"),
                      "reducer": _fn_spec(reducer) if reducer else None},
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


def _partitions_spec(partitions):
    """[partition] partitions from a list of partitions (datetime.date,
    numpy datetime64 days or months, ints, or their text as q names
    them), or a range as text ('2024.01.02..2024.01.05')."""
    if isinstance(partitions, str):
        return partitions
    out = []
    for p in partitions:
        if isinstance(p, bool):
            raise TypeError("partitions: a partition is a date, a month or an int, not a bool")
        if isinstance(p, np.datetime64):
            unit = np.datetime_data(p.dtype)[0]
            if unit == "M":
                out.append(str(p).replace("-", "."))
                continue
            p = p.astype("datetime64[D]").item()
        if isinstance(p, datetime.date):
            out.append(p.strftime("%Y.%m.%d"))
        elif isinstance(p, (int, np.integer)):
            out.append(str(int(p)))
        elif isinstance(p, str):
            out.append(p)
        else:
            raise TypeError(f"partitions: {p!r} is not a date, a month, an int or their text")
    if not out:
        raise ValueError("partitions: the list is empty")
    return ", ".join(out)


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
           missing: str = "fail", db: Optional[str] = None,
           partitions: Union[None, str, Sequence[Any]] = None, symbols: str = "str") -> Any:
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
              bounds: `.qp.apply`), or of a table of db.
    db        a kdb+ database folder ([input] db): local workers mount it
              (`qpeach serve --db`); sessions must hold it (or their own
              partitions of it) already.
    by        'rows': ``pieces`` row ranges (default: 4 per worker); a
              column name: one partition per distinct value, in sorted
              order; 'partition': one per kdb+ partition of a db table.
    partitions  for by='partition': the partitions to run (dates, months,
              ints, or their text as q names them, or a range
              '2024.01.02..2024.01.05'), over local workers and sessions
              alike; one that no worker holds fails the run before any
              task (RunError, code 2).
    merge     a [merge] how: 'concat', 'sum', 'min', 'max', 'count',
              'sum-by-key' (with key= for plain tables), 'none' (the list
              of partials); or a callable: how = python, the reducer given
              that list in partition order, run on a worker.
    reducer   a function run on a worker over the merged value (as a job
              file's [merge] reducer with another how).
    missing   'fail' or 'zero', as [merge] missing: 'sum-by-key' partials
              whose value columns differ in names fail the run, or count
              a partial's missing columns as zero.
    symbols   how fn gets symbol columns, as [job] symbols: 'str',
              'categorical' (pandas Categoricals) or 'codes'.
    retries, retry_errors, task_timeout (seconds), threads: as [run] and
              [workers] in a job file. progress: callable(done, total,
              failed); None for a tqdm bar on a TTY, True for one always
              (a line on stderr without tqdm), False for none.
    journal   a folder for the run's journal and lock ([run] state): a
              fan-out that failed or was interrupted, run again the same
              way (in this process or another), redoes only the partitions
              not finished and says so ("resuming: 2 of 5 tasks already
              done"); a changed function starts over, saying which part
              of it changed.
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
    if partitions is not None:
        if by != "partition":
            raise ValueError("partitions= is for by='partition'")
        part["partitions"] = _partitions_spec(partitions)
    o = _options(local, threads, retries, retry_errors, task_timeout, libraries, progress,
                 log, journal)
    if missing not in ("fail", "zero"):
        raise ValueError(f"missing must be 'fail' or 'zero', got {missing!r}")
    o["missing"] = None if missing == "fail" else missing     # the job file's default
    if symbols not in ("str", "categorical", "codes"):
        raise ValueError(f"symbols must be 'str', 'categorical' or 'codes', got {symbols!r}")
    o["symbols"] = None if symbols == "str" else symbols
    if db is not None:
        if not isinstance(table, str):
            raise TypeError("db= needs table= the name of one of its tables")
        o["db"] = os.path.abspath(os.fspath(db))
    # Shipped now, so the globals it reads are the ones of this call.
    red = None
    if reducer is not None:
        red = _Shipped(reducer.__wrapped__ if isinstance(reducer, RemoteFunction) else reducer)
    return _fan(_Shipped(base), red, sessions, table, part, merge, pandas, key, raw, o)


def _identity_file(journal):
    return os.path.join(journal, "fanout.identity.json")


def _check_identity(journal, job, shipped, reducer, say):
    """Compares the identity of this fan-out with the one its journal
    folder was last run with, says what changed (the journal then starts
    over), and keeps this one. The job's options (workers, partitions,
    merge, ...) are a part too."""
    opts = {s: {k: v for k, v in keys.items() if k not in ("function", "reducer")}
            for s, keys in job.items() if s != "input"}
    now = {"function": shipped.parts, "reducer": reducer.parts if reducer else None,
           "input": identity.digest(json.dumps(job["input"], sort_keys=True, default=str)),
           "options": identity.digest(json.dumps(opts, sort_keys=True, default=str))}
    path = _identity_file(journal)
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = None
    said = False
    if old is not None and old != now:
        what = []
        for k, word in (("function", "the function"), ("reducer", "the reducer")):
            if old.get(k) != now[k]:
                diff = identity.changed(old.get(k) or {}, now[k] or {})
                what.append(f"{word}'s {diff}" if diff else word)
        if old.get("input") != now["input"]:
            what.append("the input (the table, or its name or db)")
        if old.get("options") != now["options"]:
            what.append("the fan-out's options (workers, partitions, merge, ...)")
        say(f"{' and '.join(what)} changed since the journal in {journal} was written: "
            f"starting over")
        said = True
    os.makedirs(journal, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(now, f, sort_keys=True)
    os.replace(path + ".tmp", path)
    return said


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
        on_event = None
        if o["journal"]:
            def say(msg):
                print(f"qpeach fanout: {msg}", file=sys.stderr, flush=True)
            said = _check_identity(o["journal"], job, shipped, reducer, say)

            def on_event(event, msg):
                # what the scheduler says of the journal, unless the log
                # says it anyway (or the reason was said above)
                if not o["log"] and (event == "resume" or (event == "journal" and not said)):
                    say(msg)
        return run(job, progress=o["progress"], log=o["log"], resume=bool(o["journal"]),
                   raw=raw, pandas=pandas, code=shipped.code,
                   reducer=reducer.code if reducer else None, code_id=shipped.identity,
                   reducer_id=reducer.identity if reducer else None, on_event=on_event)
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
    so they should be small; the options are fanout's. An item that fails
    for good raises FanoutError naming it: "item 3 failed on ...", its
    .partition "item 3"."""
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
    try:
        return list(_fan(_Shipped(base, items=items), None, sessions, table, part, "none", False,
                         None, False, o))
    except FanoutError as e:
        _as_item(e)
        raise


def _as_item(e):
    """A map() task's FanoutError named by its item (task i is item i):
    "item 3 failed on W: ..." instead of "task 3 (rows 3-4) failed"."""
    msg = str(e)
    head = f"task {e.task} ({e.partition})"
    if msg.startswith(head):
        msg = f"item {e.task}" + msg[len(head):]
    e.args = (msg,)
    e.partition = f"item {e.task}"
