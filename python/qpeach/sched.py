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

A dict job goes to the scheduler as it is (qp_job_from_pairs): the same
keys, checks and errors as a job file's, named "job" instead of a file
and line; relative paths in it are taken from the current folder (as a
job file's are from its folder). The merged value comes back as a Python
value; a job with [output] path also writes that file, and "-" (the
default) prints nothing.
"""
import os
import shutil
import sys
import tempfile
import threading
from typing import Any, Callable, Dict, Optional, Union

from .errors import FanoutError, QError, RunError

__all__ = ["run"]

# qp_run owns the process's SIGINT/SIGTERM handlers and its stop flag while
# it runs: two runs in one process (two Python threads) take turns.
_one_run = threading.Lock()


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


class _Line:
    """A progress line on stderr, for progress=True without tqdm."""

    def __init__(self):
        self.last = None

    def __call__(self, done, total, failed):
        if (done, total, failed) != self.last:
            self.last = (done, total, failed)
            sys.stderr.write(f"\rqpeach: {done}/{total} tasks, {failed} failed")
            sys.stderr.flush()

    def close(self):
        if self.last is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _progress(progress):
    """The callback qp_run calls: the user's; a tqdm bar when tqdm is
    installed and stderr is a TTY (progress=None), or whatever stderr is
    (True; a progress line when tqdm is not installed); or none (False)."""
    if progress is False:
        return None, None
    if callable(progress):
        return progress, None
    if progress is not None and progress is not True:
        raise TypeError("progress must be a callable(done, total, failed), True, None or False")
    if progress is None and not sys.stderr.isatty():
        return None, None
    try:
        from tqdm import tqdm
    except ImportError:
        if progress is None:
            return None, None
        line = _Line()
        return line, line
    bar = tqdm(total=0, unit="task", file=sys.stderr)

    def cb(done, total, failed):
        bar.total = total
        bar.n = done
        bar.set_postfix(failed=failed, refresh=False)
        bar.refresh()
    return cb, bar


def _raise(code, error):
    """The exception for a failed run, from the scheduler's qp_run_error
    (a dict, see _qpeach.run): FanoutError when a task failed for good,
    RunError otherwise; the worker's error, when there is one, as a QError
    cause."""
    if code == 4:
        raise KeyboardInterrupt(error["message"])
    cls = FanoutError if error["task"] is not None else RunError
    err = cls(code, error["message"], error)
    if error["cause"]:
        # The traceback is the run error's text (its message holds the
        # cause): the cause says its first line, so that a traceback shows
        # the remote frames once.
        raise err from QError(error["cause"].partition("\n")[0], error["remote_type"],
                              error["remote_message"], error["remote_traceback"])
    raise err


def run(job: Union[str, os.PathLike, Dict[str, Dict[str, Any]]], *,
        progress: Union[None, bool, Callable[[int, int, int], Any]] = None,
        log: bool = False, resume: bool = True, jobs: int = 0, raw: bool = False,
        pandas: bool = False, code: Union[None, bytes, str] = None,
        reducer: Union[None, bytes, str] = None, code_id: Optional[str] = None,
        reducer_id: Optional[str] = None,
        on_event: Optional[Callable[[str, str], Any]] = None) -> Any:
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
    code_id, reducer_id   their identity for the journal (instead of the
              code's bytes, which dill makes differ between processes)
    on_event  callable(event, message) called with every event the run
              says ("resume", "journal", "task", ...), whatever log is

    A failed task raises FanoutError (.task, .partition, .worker,
    .remote_type, .remote_message, .remote_traceback), with the worker's
    error (QError) as its cause; anything else that stops the run raises
    RunError with its exit code and reason (and the same attributes, task
    and partition None); SIGINT raises KeyboardInterrupt
    (the journal is kept). The GIL is released while the scheduler runs;
    runs from several threads of one process take turns.
    """
    from ._ext import extension
    ext = extension()
    tmp = None
    try:
        if isinstance(job, dict):
            # its journal and lock in a folder of its own, gone after the
            # run, unless [run] state names one
            job = {s: dict(k) if isinstance(k, dict) else k for s, k in job.items()}
            sec = job.setdefault("run", {})
            if isinstance(sec, dict) and sec.get("state") is None:
                tmp = tempfile.mkdtemp(prefix="qpeach-job-")
                sec["state"] = os.path.join(tmp, "state")
        else:
            job = os.fspath(job)
        cb, bar = _progress(progress)
        try:
            with _one_run:
                rc, value, error = ext.run(job, code=code, pandas=pandas, qpeach=_binary(),
                                         progress=cb, raw=raw, log=log, resume=resume,
                                         jobs=jobs, reducer=reducer, code_id=code_id,
                                         reducer_id=reducer_id, on_event=on_event)
        finally:
            if bar is not None:
                bar.close()
        if rc != 0:
            _raise(rc, error)
        return value
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
