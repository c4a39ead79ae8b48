"""Exceptions of the qpeach client, and the marker types the extension
knows (so a str can travel as a q char vector, a list as a general list of
arguments, a dict as a symbol-keyed q dict)."""


class QError(Exception):
    """A q error from the server. For an exception raised by a remote
    Python function the text is "Type: message" followed by the last frames
    of the remote traceback: ``message`` holds the first line and
    ``remote_traceback`` the rest ('' when the server sent none)."""

    def __init__(self, text=""):
        super().__init__(text)
        first, _, rest = str(text).partition("\n")
        self.message = first
        self.remote_traceback = rest


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


class FanoutError(Exception):
    """A partition of a fan-out failed. ``partition`` is its index,
    ``description`` says which rows or group, ``address`` the server (None
    when it failed on several: lost or timed out ``attempts`` times), and
    ``__cause__`` the original error."""

    def __init__(self, partition, description, address, cause, attempts=None):
        where = f"on {address}" if address else f"after {attempts} attempts"
        super().__init__(f"partition {partition} ({description}) failed {where}: "
                         f"{type(cause).__name__}: {cause}")
        self.partition = partition
        self.description = description
        self.address = address
        self.attempts = attempts


class RunError(Exception):
    """A scheduler run (qpeach.run, fanout, map) that stopped for another
    reason than a failed task: ``code`` is `qpeach run`'s exit code (1
    failed, 2 bad job, 3 locked), the message its reason."""

    def __init__(self, code, why):
        super().__init__(why)
        self.code = code


class CharVector(str):
    """A str sent as a q char vector (a plain str is sent as a symbol)."""


class ArgList(list):
    """A list sent as a q general list, item by item (never collapsed into
    a vector), as `.qp.call` expects its arguments."""


class KwDict(dict):
    """A dict sent as a q dict: symbol keys, a general list of values."""
