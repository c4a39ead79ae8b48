"""qpeach.run: the C scheduler (`qpeach run`, include/qpeach/sched.h) from
Python. The plan, the dispatch over many connections, retries on another
worker, task timeouts, pinned local workers, the journal and every [merge]
how are the C ones: nothing here partitions or merges.

    import qpeach
    value = qpeach.run("jobs/vwap.ini")          # a job file, or
    value = qpeach.run({"job": {"function": "vwap.py:vwap_parts"},
                        "input": {"file": "trades.csv", "table": "trade"},
                        "workers": {"local": 4},
                        "merge": {"how": "sum-by-key", "key": "sym"}})

A dict job is written to a temporary job file; relative paths in it are
taken from the current folder (as a job file's are from its folder). The
merged value comes back as a Python value; a job with [output] path also
writes that file, and "-" (the default) prints nothing.
"""
import os
import re
import shutil
import sys
import tempfile
import threading
from typing import Any, Callable, Dict, Union

from .errors import FanoutError, QError, RunError

__all__ = ["run"]

# qp_run owns the process's SIGINT/SIGTERM handlers and its stop flag while
# it runs: two runs in one process (two Python threads) take turns.
_one_run = threading.Lock()

# Keys whose values are paths (relative to the job file's folder).
_PATH_KEYS = {("job", "function"), ("merge", "reducer"), ("input", "file"),
              ("input", "files"), ("input", "db"), ("output", "path"),
              ("run", "state"), ("workers", "tls_ca")}


def _binary():
    """The qpeach binary local workers run: $QPEACH_BIN, the build folder
    of a source tree this package sits in, or qpeach on PATH."""
    env = os.environ.get("QPEACH_BIN")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for b in (os.environ.get("QPEACH_BUILD", "build"), "build"):
        p = os.path.join(root, b, "qpeach")
        if os.access(p, os.X_OK):
            return p
    return shutil.which("qpeach")


def _value(section, key, v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):                  # libraries: alias -> module
        return ", ".join(f"{a}={m}" for a, m in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    v = str(v)
    if (section, key) in _PATH_KEYS and v != "-":
        head, sep, name = v.rpartition(":") if key in ("function", "reducer") else (v, "", "")
        if not head:
            head, sep, name = v, "", ""
        v = os.path.abspath(head) + sep + name
    if "\n" in v:
        raise ValueError(f"[{section}] {key}: a value must be one line")
    return v


def job_text(job: Dict[str, Dict[str, Any]]) -> str:
    """A dict of sections -> {key: value} as job file text."""
    lines = []
    for section, keys in job.items():
        if not isinstance(keys, dict):
            raise TypeError(f"job section {section!r} must be a dict of keys, "
                            f"got {type(keys).__name__}")
        lines.append(f"[{section}]")
        for k, v in keys.items():
            if v is None:
                continue
            lines.append(f"{k} = {_value(section, k, v)}")
    return "\n".join(lines) + "\n"


def _progress(progress):
    """The callback qp_run calls: the user's, a tqdm bar when tqdm is
    installed and stderr is a TTY (progress=None), or none (False)."""
    if progress is False:
        return None, None
    if callable(progress):
        return progress, None
    if progress is not None:
        raise TypeError("progress must be a callable(done, total, failed), None or False")
    if not sys.stderr.isatty():
        return None, None
    try:
        from tqdm import tqdm
    except ImportError:
        return None, None
    bar = tqdm(total=0, unit="task", file=sys.stderr)

    def cb(done, total, failed):
        bar.total = total
        bar.n = done
        bar.set_postfix(failed=failed, refresh=False)
        bar.refresh()
    return cb, bar


# "task 5 (rows 5-6) failed on host:port: why" or
# "task 5 (rows 5-6) failed after 3 attempts: why" (src/sched/dispatch.c)
_TASK_FAILED = re.compile(r"task (\d+) \((.*?)\) failed (?:on (\S+)|after (\d+) attempts?): (.*)\Z",
                          re.S)


def _raise(code, why):
    m = _TASK_FAILED.match(why)
    if m:
        cause = QError(m.group(5))
        err = FanoutError(int(m.group(1)), m.group(2), m.group(3), cause,
                          int(m.group(4)) if m.group(4) else None)
        raise err from cause
    if code == 4:
        raise KeyboardInterrupt(why)
    raise RunError(code, why)


def run(job: Union[str, os.PathLike, Dict[str, Dict[str, Any]]], *,
        progress: Union[None, bool, Callable[[int, int, int], Any]] = None,
        log: bool = False, resume: bool = True, jobs: int = 0, raw: bool = False,
        pandas: bool = False, code: Union[None, bytes, str] = None,
        reducer: Union[None, bytes, str] = None) -> Any:
    """Runs a job as `qpeach run` does and returns the merged value.

    job       a job file path, or a dict of sections -> {key: value}
    progress  callable(done, total, failed) called as tasks finish; None: a
              tqdm bar when tqdm is installed and stderr is a TTY; False: none
    log       write the run's log lines (retries, lost workers) to stderr
    resume    keep a matching journal's finished tasks (False: --fresh)
    jobs      local worker processes, overriding [workers] local when > 0
    raw       return the merged value's q IPC bytes (what a .qipc output holds)
    pandas    tables as DataFrames (for the result, and with code for the function)
    code      the function's code (dill bytes or source text) for [job]
              function's name, instead of its module file (what fanout uses)
    reducer   the same for [merge] reducer

    A failed task raises FanoutError naming the partition, with the worker's
    error (QError) as its cause; anything else that stops the run raises
    RunError with its exit code and reason; SIGINT raises KeyboardInterrupt
    (the journal is kept). The GIL is released while the scheduler runs;
    runs from several threads of one process take turns.
    """
    from .remote import _extension
    ext = _extension()
    tmp = None
    try:
        if isinstance(job, dict):
            job = {s: dict(k) if isinstance(k, dict) else k for s, k in job.items()}
            tmp = tempfile.mkdtemp(prefix="qpeach-job-")
            job.setdefault("run", {}).setdefault("state", os.path.join(tmp, "state"))
            path = os.path.join(tmp, "job.ini")
            with open(path, "w") as f:
                f.write(job_text(job))
        else:
            path = os.fspath(job)
        cb, bar = _progress(progress)
        try:
            with _one_run:
                rc, value, why = ext.run(path, code=code, pandas=pandas, qpeach=_binary(),
                                         progress=cb, raw=raw, log=log, resume=resume,
                                         jobs=jobs, reducer=reducer)
        finally:
            if bar is not None:
                bar.close()
        if rc != 0:
            _raise(rc, why)
        return value
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
