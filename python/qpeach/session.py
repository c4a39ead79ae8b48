"""Sessions: PyKX's ``kx.remote.session`` and ``@kx.remote.function`` on
qpeach workers (see remote.py for the rules a session keeps)."""
import threading
import time
import types
from typing import Any, Callable, Dict, Optional, Union

from . import _pykx_client
from ._ext import check as _check, extension as _extension
from .errors import ArgList, CharVector, KwDict, QError
from .shipping import _STALE, _Shipped

def _address(host, port, unix):
    """The C connection's address for session(host, port, unix): a unix
    socket path given as host ('unix:/path' or '@/path', as `qpeach call`
    takes it) needs no port."""
    if host.startswith("unix:") or host.startswith("@"):
        if port not in (None, 0):
            raise ValueError(f"host {host!r} is a unix socket: give no port (got {port})")
        if len(host) <= (1 if host.startswith("@") else 5):
            raise ValueError(f"host {host!r}: the unix socket path is missing")
        return host
    if port is None:
        raise TypeError("session() needs port= (an int), or host='unix:/path/to/socket'")
    _check("port", port, (int,), "an int")
    return f"unix://{port}" if unix else f"{host}:{port}"


class Session:
    """A connection to a qpeach (or q) server running Python functions.
    Use ``session(...)`` to make one (PyKX's spelling).

    A call that runs past ``timeout`` raises TimeoutError and is never sent
    again; its reply would arrive late on the connection, so the session
    closes it and the next call opens a new one (repr says so meanwhile)."""

    def __init__(self, host: str = "localhost", port: Optional[int] = None,
                 libraries: Optional[Dict[str, Union[str, types.ModuleType]]] = None, *,
                 username: str = "", password: str = "", timeout: float = 0.0,
                 large_messages: bool = True, tls: bool = False, unix: bool = False,
                 reconnection_attempts: int = -1, protocol: str = "qpeach") -> None:
        _check("host", host, (str,), "a str")
        if protocol not in ("qpeach", "pykx"):
            raise ValueError(f"protocol must be 'qpeach' or 'pykx', got {protocol!r}")
        self.protocol = protocol    # 'pykx': PyKX's own messages (_pykx_client.py)
        if port is not None:
            _check("port", port, (int,), "an int")
        if libraries is not None:
            _check("libraries", libraries, (dict,), "a dict alias -> module")
        _check("username", username, (str,), "a str")
        _check("password", password, (str,), "a str")
        _check("timeout", timeout, (int, float), "a number of seconds")
        if timeout < 0:
            raise ValueError("timeout must be >= 0")
        for name, v in (("large_messages", large_messages), ("tls", tls), ("unix", unix)):
            _check(name, v, (bool,), "a bool")
        _check("reconnection_attempts", reconnection_attempts, (int,), "an int")
        if reconnection_attempts < -1:
            raise ValueError("reconnection_attempts must be -1 (never), 0 (no limit) or > 0")
        self.address = _address(host, port, unix)
        self.host, self.port = host, port
        self._opts = dict(user=username or None, password=password or None,
                          timeout_ms=int(timeout * 1000), connect_timeout_ms=int(timeout * 1000),
                          tls=tls, large=large_messages)
        self.reconnection_attempts = reconnection_attempts
        self._libs = {}             # alias -> module name, imported on the server
        self._registered = set()    # names defined over the current connection
        self._gsent = {}            # name -> hash of the globals the server holds
        self._lock = threading.RLock()
        self._closed = False
        self._dropped = None        # why the connection was closed (a timeout)
        self._conn = _extension().Connection(self.address, **self._opts)
        if protocol == "pykx":
            _pykx_client.check_session(self._conn)
        if libraries is not None:
            self.libraries(libraries)

    # -- PyKX's API --
    def libraries(self, libs: Dict[str, Union[str, types.ModuleType]]) -> None:
        """Imports libraries on the server: a dict alias -> module name or
        module object ({'np': 'numpy'} is `import numpy as np`). A module
        the server lacks raises QError naming it and its alias."""
        _check("libraries", libs, (dict,), "a dict alias -> module")
        clean = {}
        for alias, mod in libs.items():
            _check("library alias", alias, (str,), "a str")
            if isinstance(mod, types.ModuleType):
                mod = mod.__name__
            if not isinstance(mod, str):
                raise TypeError(f"library {alias!r} must be a module name or a module, "
                                f"got {type(mod).__name__}")
            clean[alias] = mod
        if not clean:
            return
        if self.protocol == "pykx":
            self._with_conn(lambda c: _pykx_client.libraries(c, clean))
        else:
            self._call(".qp.import", KwDict(clean))
        self._libs.update(clean)

    def close(self) -> None:
        """Closes the connection; later use raises RuntimeError."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def state(self) -> str:
        """'open'; 'reconnects on next call' after a timeout closed the
        connection; 'broken' when the connection was lost (the next call
        reconnects if reconnection_attempts allows, else raises); 'closed'."""
        if self._closed:
            return "closed"
        if self._conn is None:
            return "reconnects on next call"
        if self._conn.broken:
            return "broken"
        return "open"

    def __repr__(self) -> str:
        why = f" ({self._dropped})" if self._conn is None and self._dropped else ""
        return f"<qpeach session {self.address} {self.state}{why}>"

    # -- plumbing --
    def _check_open(self):
        if self._closed:
            raise RuntimeError(f"session to {self.address} is closed")

    def _connect_once(self):
        conn = _extension().Connection(self.address, **self._opts)
        if self.protocol == "pykx":
            _pykx_client.check_session(conn)
            _pykx_client.libraries(conn, self._libs)
        elif self._libs:
            conn.call(".qp.import", KwDict(self._libs))
        return conn

    def _reconnect(self, cause, tries=None):
        """PyKX's loop: up to reconnection_attempts tries (0: no limit),
        0.5 s apart and doubling. Raises the last error when all fail."""
        tries = self.reconnection_attempts if tries is None else tries
        total = tries
        delay = 0.5
        while True:
            try:
                conn = self._connect_once()
                break
            except (ConnectionError, TimeoutError, OSError) as e:
                tries -= 1
                if tries == 0:
                    raise ConnectionError(
                        f"could not reconnect to {self.address} within "
                        f"{total} attempts: {e}") from cause
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        old, self._conn = self._conn, conn
        if old is not None:
            old.close()
        self._dropped = None
        self._registered.clear()
        self._gsent.clear()

    def _with_conn(self, op):
        """op(conn) under the lock, with the session's rules: after a
        timeout closed the connection, a new one first (one try, or the
        reconnection attempts); a timeout closes the connection and raises,
        never re-sending; a lost connection reconnects and runs op once more
        when reconnection_attempts allows it."""
        with self._lock:
            self._check_open()
            for attempt in (0, 1):
                if self._conn is None:
                    self._reconnect(TimeoutError(self._dropped),
                                    tries=max(self.reconnection_attempts, 1)
                                    if self.reconnection_attempts else 0)
                try:
                    return op(self._conn)
                except TimeoutError as e:
                    # The reply may still come: a fresh connection next time
                    # cannot take it for another call's.
                    self._conn.close()
                    self._conn = None
                    self._dropped = f"last call timed out: {e}"
                    raise
                except ConnectionError as e:
                    if attempt or self.reconnection_attempts == -1:
                        raise
                    self._reconnect(e)

    def _call(self, fn, *args, pandas=False):
        """fn[args] on the server with the session's rules."""
        return self._with_conn(lambda c: c.call(fn, *args, pandas=pandas))

    def _ensure(self, conn, shipped, pandas):
        """Registers shipped on the current connection if not yet there."""
        name = shipped.name_for(pandas)
        if name not in self._registered:
            if pandas:
                sid = conn.call(".qp.def", name, shipped.code, KwDict({"pandas": True}))
            else:
                sid = conn.call(".qp.def", name, shipped.code)
            if isinstance(sid, str) and sid and sid != shipped.id:
                # The server hashes what it received: a mismatch means the
                # code was altered on the way.
                raise QError(f"function id mismatch: sent {shipped.id}, server {sid}")
            self._registered.add(name)
            self._gsent.pop(name, None)
        return name

    def _send_call(self, conn, shipped, name, args, kwargs, pandas, apply):
        live = shipped.globals_now()
        if live is None:
            if apply is not None:
                return conn.call(".qp.apply", name, apply[0], apply[1], pandas=pandas)
            if kwargs:
                return conn.call(".qp.callk", name, ArgList(args), KwDict(kwargs), pandas=pandas)
            return conn.call(".qp.call", name, ArgList(args), pandas=pandas)
        h, blob = live
        kw = dict(kwargs or {})
        kw["__qpeach_gh__"] = CharVector(h)
        if apply is not None:
            kw["__qpeach_only__"] = True
        if self._gsent.get(name) != h:
            kw["__qpeach_gv__"] = blob
        try:
            r = conn.call(".qp.callk", name, ArgList(() if apply else args), KwDict(kw),
                          pandas=pandas)
        except QError as e:
            if _STALE not in str(e) or "__qpeach_gv__" in kw:
                raise
            # Another client set other values there since: send ours.
            kw["__qpeach_gv__"] = blob
            r = conn.call(".qp.callk", name, ArgList(() if apply else args), KwDict(kw),
                          pandas=pandas)
        self._gsent[name] = h
        if apply is not None:
            return conn.call(".qp.apply", name, apply[0], apply[1], pandas=pandas)
        return r

    def _run(self, shipped, args, kwargs, pandas=False, apply=None):
        """Calls a shipped function (registering it first when needed) with
        the current values of its data globals; apply=(table, part) runs it
        with `.qp.apply` on a resident table."""
        if self.protocol == "pykx":
            if apply is not None:
                raise ValueError("protocol='pykx' has no resident tables: pass the data")
            return self._with_conn(
                lambda c: _pykx_client.call(c, shipped.fn, args, kwargs, pandas))

        def op(conn):
            name = self._ensure(conn, shipped, pandas)
            return self._send_call(conn, shipped, name, args, kwargs, pandas, apply)
        return self._with_conn(op)


def session(host: str = "localhost", port: Optional[int] = None,
            libraries: Optional[Dict[str, Union[str, types.ModuleType]]] = None, *,
            username: str = "", password: str = "", timeout: float = 0.0,
            large_messages: bool = True, tls: bool = False, unix: bool = False,
            reconnection_attempts: int = -1, protocol: str = "qpeach") -> Session:
    """Opens a session: PyKX's ``kx.remote.session``. host may be a unix
    socket, 'unix:/path' (or '@/path'), with no port. timeout (seconds, 0:
    none) bounds the connect and every call: a late call raises
    TimeoutError, is not re-sent, and the next call uses a new connection.
    protocol='pykx' sends PyKX's own messages, for q + pykx.q servers
    (_pykx_client.py says what changes). See Session."""
    return Session(host, port, libraries, username=username, password=password,
                   timeout=timeout, large_messages=large_messages, tls=tls, unix=unix,
                   reconnection_attempts=reconnection_attempts, protocol=protocol)


class RemoteFunction:
    """A Python function that runs on a session's server when called. Each
    call sends the current values of the module globals the function (and
    its helpers) reads, when they changed since the server got them."""

    def __init__(self, session: Session, fn: Callable, pandas: bool = False) -> None:
        self.session = session
        self.shipped = _Shipped(fn)
        self.pandas = pandas
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def id(self) -> str:
        return self.shipped.id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.session._run(self.shipped, args, kwargs, pandas=self.pandas)

    def __repr__(self) -> str:
        return f"<remote function {self.__name__} on {self.session.address}>"


def function(session: Session, *, pandas: bool = False) -> Callable[[Callable], RemoteFunction]:
    """Decorator: ``@function(session)`` makes the function run on the
    session's server. pandas=True returns tables as DataFrames and hands
    table arguments to the function as DataFrames."""
    if not isinstance(session, Session):
        raise TypeError(f"function() expects a qpeach session, got {type(session).__name__}")
    _check("pandas", pandas, (bool,), "a bool")

    def decorate(fn):
        if not isinstance(fn, types.FunctionType):
            raise TypeError(f"@function decorates a Python function, got {type(fn).__name__}")
        return RemoteFunction(session, fn, pandas)
    return decorate
