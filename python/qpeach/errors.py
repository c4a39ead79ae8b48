"""Exceptions of the qpeach client, and the marker types the extension
knows (so a str can travel as a q char vector, a list as a general list of
arguments, a dict as a symbol-keyed q dict)."""


class QError(Exception):
    """A q error from the server. ``message`` is its text's first line.
    For an exception raised by a remote Python function, ``remote_type``
    is its type ('ZeroDivisionError'), ``remote_message`` its message and
    ``remote_traceback`` the last frames of its traceback, read by the
    extension (qp_remote_error_parse); ``remote_type`` is '' for any
    other error, whose whole text is then ``remote_message``."""

    def __init__(self, text="", remote_type="", remote_message=None, remote_traceback=""):
        super().__init__(text)
        self.message = str(text).partition("\n")[0]
        self.remote_type = remote_type
        self.remote_message = str(text) if remote_message is None else remote_message
        self.remote_traceback = remote_traceback


try:
    # Inside a qpeach worker: the class the server raises when a call runs
    # past its timeout (.qp.timeout / serve --timeout), so a function can
    # `except qpeach.Timeout:` to clean up.
    from _qpeach_worker import Timeout
except ImportError:
    class Timeout(BaseException):
        """A call ran past the server's timeout (raised inside functions
        running on a qpeach worker; a BaseException, so `except Exception`
        does not swallow it)."""


try:
    # Inside a qpeach worker: what the server raises in a call whose client
    # closed its connection (a client timeout, Ctrl-C, a stopped run).
    from _qpeach_worker import Cancelled
except ImportError:
    class Cancelled(Timeout):
        """The client of a call closed its connection: the call stops
        (raised inside functions running on a qpeach worker; a Timeout, so
        `except qpeach.Timeout:` cleans up after both)."""


class RunError(Exception):
    """A scheduler run (qpeach.run, fanout, map) that failed, with the
    first failure's parts as the scheduler kept them (qp_run_error):

    code              `qpeach run`'s exit code (1 failed, 2 bad job, 3 locked)
    task              the task that failed for good (None: the run failed
                      for another reason), ``partition`` its rows, group or
                      file ('rows 5-6'), ``attempts`` its failed attempts
    worker            the worker it last failed on (or the reducer's), '' if none
    remote_type       the Python exception the worker raised
                      ('ZeroDivisionError'; '' when the failure was not one:
                      a lost or timed-out worker), with ``remote_message``
                      and ``remote_traceback`` (its last frames)

    str(e) is the reason as `qpeach run` logs it."""

    def __init__(self, code, why, error=None):
        super().__init__(why)
        e = error or {}
        self.code = code
        self.task = e.get("task")
        self.partition = e.get("partition") if self.task is not None else None
        self.attempts = e.get("attempts", 0)
        self.worker = e.get("worker", "")
        self.remote_type = e.get("remote_type", "")
        self.remote_message = e.get("remote_message", "")
        self.remote_traceback = e.get("remote_traceback", "")


class FanoutError(RunError):
    """A task (a partition of a fan-out) failed for good: a RunError whose
    ``task`` and ``partition`` are set. ``__cause__`` is the worker's error
    as a QError (or why the attempt failed: 'timed out after 500 ms')."""


class CharVector(str):
    """A str sent as a q char vector (a plain str is sent as a symbol)."""


class ArgList(list):
    """A list sent as a q general list, item by item (never collapsed into
    a vector), as `.qp.call` expects its arguments."""


class KwDict(dict):
    """A dict sent as a q dict: symbol keys, a general list of values."""
