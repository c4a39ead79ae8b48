"""Sessions: PyKX's ``kx.remote.session`` and ``@kx.remote.function`` on
qpeach workers (see remote.py for the rules a session keeps), the
questions a PyKX user asks a server every day (tables, count, meta,
partitions, get, call, set), and calls that run at the same time.

A session holds up to ``max_connections`` connections to its server:
a call takes an idle one, or opens another while there are fewer, or
waits for one to come back. Calls from several threads (``f.submit``,
``await f.acall``) so run side by side, each on a connection of its own;
sequential calls reuse one connection. What a server holds for a
connection (the functions defined over it, the globals sent) is kept per
connection.
"""
import concurrent.futures
import datetime
import threading
import time
import types
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

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


class _Conn:
    """One connection of a session and what the server holds for it: the
    names defined over it, and the hash of each function's globals sent."""
    __slots__ = ("conn", "registered", "gsent")

    def __init__(self, conn):
        self.conn = conn
        self.registered = set()
        self.gsent = {}


def _partition_value(p):
    """A partition as q names it, for .qp.select: a datetime.date (or
    '2024.01.02' / '2024-01-02') is a date, numpy datetime64[M] (or
    '2024.01') a month, an int a year or int partition."""
    if isinstance(p, bool):
        raise TypeError("partition must be a date, a month or an int, got bool")
    if isinstance(p, (datetime.date, np.datetime64, int, np.integer)):
        return p
    if isinstance(p, str):
        s = p.replace(".", "-")
        try:
            if s.count("-") == 2:
                return datetime.date.fromisoformat(s)
            if s.count("-") == 1:
                return np.datetime64(s, "M")
            return int(s)
        except ValueError:
            pass
        raise ValueError(f"partition {p!r}: not a date (2024.01.02), month (2024.01) or number")
    raise TypeError(f"partition must be a date, a month, an int or their text, "
                    f"got {type(p).__name__}")


def _rows_value(rows):
    """rows as .qp.select takes them: (start, end) longs, end exclusive;
    None for the end: to the last row."""
    if isinstance(rows, range):
        if rows.step != 1:
            raise ValueError("rows: a range of step 1")
        rows = (rows.start, rows.stop)
    elif isinstance(rows, slice):
        if rows.step not in (None, 1):
            raise ValueError("rows: a slice of step 1")
        rows = (rows.start or 0, rows.stop)
    if not isinstance(rows, (tuple, list)) or len(rows) != 2:
        raise TypeError("rows must be (start, end), a range or a slice")
    a, b = rows
    b = np.iinfo(np.int64).max if b is None else b
    for v in (a, b):
        _check("rows", v, (int, np.integer), "(start, end) ints")
    if a < 0 or b < a:
        raise ValueError(f"rows ({a}, {b}): start must be >= 0 and not after end")
    return np.array([a, b], dtype=np.int64)


class Session:
    """Connections to a qpeach (or q) server running Python functions.
    Use ``session(...)`` to make one (PyKX's spelling).

    A call that runs past ``timeout`` raises TimeoutError and is never sent
    again; its reply would arrive late on the connection, so the session
    closes it and the next call opens a new one (repr says so meanwhile).
    Ctrl-C while a call waits raises KeyboardInterrupt at once and closes
    that connection, so the server cancels the call."""

    def __init__(self, host: str = "localhost", port: Optional[int] = None,
                 libraries: Optional[Dict[str, Union[str, types.ModuleType]]] = None, *,
                 username: str = "", password: str = "", timeout: float = 0.0,
                 large_messages: bool = True, tls: bool = False, unix: bool = False,
                 reconnection_attempts: int = -1, protocol: str = "qpeach",
                 max_connections: int = 4) -> None:
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
        _check("max_connections", max_connections, (int,), "an int")
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self.address = _address(host, port, unix)
        self.host, self.port = host, port
        self._opts = dict(user=username or None, password=password or None,
                          timeout_ms=int(timeout * 1000), connect_timeout_ms=int(timeout * 1000),
                          tls=tls, large=large_messages)
        self.reconnection_attempts = reconnection_attempts
        self.max_connections = max_connections
        self._libs = {}             # alias -> module name, imported on the server
        self._cv = threading.Condition()
        self._idle = []             # _Conn ready for a call (the last used last)
        self._nconn = 0             # connections open or being opened
        self._closed = False
        self._dropped = None        # why the last connection was closed (a timeout)
        self._lost = None           # a lost connection, when it must not reconnect
        self._pool = None           # the executor of submit(), made on first use
        self._idle.append(self._connect_once())
        self._nconn = 1
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
            self._with_conn(lambda c: _pykx_client.libraries(c.conn, clean))
        else:
            self._call(".qp.import", KwDict(clean))
        self._libs.update(clean)

    def close(self) -> None:
        """Closes the connections; later use raises RuntimeError."""
        with self._cv:
            self._closed = True
            idle, self._idle = self._idle, []
            self._nconn -= len(idle)
            self._cv.notify_all()
        for c in idle:
            c.conn.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

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
        if self._lost is not None:
            return "broken"
        if not self._nconn and self._dropped:
            return "reconnects on next call"
        return "open"

    def __repr__(self) -> str:
        why = f" ({self._dropped})" if not self._nconn and self._dropped else ""
        return f"<qpeach session {self.address} {self.state}{why}>"

    # -- asking the server what it holds (.qp built-ins) --
    def tables(self) -> List[str]:
        """The tables the server holds (`.qp.tables[]`): its globals that
        are tables, then its db's, as q's tables[]."""
        return [str(t) for t in self._call(".qp.tables", None)]

    def count(self, table: str) -> int:
        """Rows of a table (`.qp.count`): a db table's from its column
        headers, nothing read."""
        _check("table", table, (str,), "a table name")
        return int(self._call(".qp.count", table))

    def meta(self, table: str) -> Any:
        """q's meta of a table (`.qp.meta`) as a DataFrame indexed by `c`
        (the column name) with columns `t` (q's type char), `f` (foreign
        keys) and `a` (attributes), as PyKX's conn('meta t').pd()."""
        _check("table", table, (str,), "a table name")
        m = self._call(".qp.meta", table, pandas=True)
        return m.fillna({"f": "", "a": ""})     # q's empty symbol: none, not missing

    def partitions(self, table: str) -> List[Any]:
        """A db table's partitions (`.qp.partitions`), ascending: dates as
        datetime.date, months as numpy.datetime64[M], years and int
        partitions as int; [] for a table that is not partitioned."""
        _check("table", table, (str,), "a table name")
        v = self._call(".qp.partitions", table)
        if v.dtype.kind == "M" and np.datetime_data(v.dtype)[0] == "D":
            return [d.item() for d in v]
        if v.dtype.kind == "M":
            return list(v)
        return [int(x) for x in v]

    def get(self, table: str, partition: Any = None, columns: Union[None, str, Sequence[str]] = None,
            rows: Union[None, Tuple[int, Optional[int]], range, slice] = None, pandas: bool = True,
            categorical: bool = False) -> Any:
        """A table, reading only what is asked (`.qp.select`): one
        partition of a db table (a date, month or int, or its text as q
        names it: '2024.01.02'; None: all), some columns (names, in that
        order; the partition column is one; None: all), a row range
        (start, end) of the partition or of the table (end exclusive, None:
        to the end; a range or slice too). A DataFrame (symbols as str,
        Categoricals with categorical=True), or with pandas=False a dict of
        numpy arrays."""
        _check("table", table, (str,), "a table name")
        for name, v in (("pandas", pandas), ("categorical", categorical)):
            _check(name, v, (bool,), "a bool")
        if isinstance(columns, str):
            columns = [columns]
        if columns is not None:
            columns = list(columns)
            if not columns or not all(isinstance(c, str) for c in columns):
                raise TypeError("columns must be a column name or a non-empty list of names")
            columns = np.array(columns, dtype=object)
        part = None if partition is None else _partition_value(partition)
        rows = None if rows is None else _rows_value(rows)
        return self._call(".qp.select", table, part, columns, rows, pandas=pandas,
                          categorical=categorical)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Calls a `.qp` built-in (`s.call('.qp.count', 'trade')`) or a
        function registered on the server by name (a job file's, a
        `.qp.def`'s: `.qp.call`, or `.qp.callk` with keyword arguments)."""
        _check("name", name, (str,), "a function name")
        if name.startswith(".qp."):
            if kwargs:
                raise TypeError(f"{name} takes no keyword arguments")
            return self._call(name, *(args or (None,)))
        if kwargs:
            return self._call(".qp.callk", name, ArgList(args), KwDict(kwargs))
        return self._call(".qp.call", name, ArgList(args))

    def set(self, name: str, value: Any) -> None:
        """Sets a global on the server (`.qp.set`): a table set so is one
        `get`, `count` and fan-outs can name. A db table's name is refused."""
        _check("name", name, (str,), "a name")
        self._call(".qp.set", name, value)

    # -- plumbing: the connections --
    def _check_open(self):
        if self._closed:
            raise RuntimeError(f"session to {self.address} is closed")

    def _connect_once(self):
        conn = _extension().Connection(self.address, **self._opts)
        try:
            if self.protocol == "pykx":
                _pykx_client.check_session(conn)
                _pykx_client.libraries(conn, self._libs)
            elif self._libs:
                conn.call(".qp.import", KwDict(self._libs))
        except BaseException:
            conn.close()
            raise
        return _Conn(conn)

    def _reconnect(self, cause, tries):
        """PyKX's loop: up to tries (0: no limit), 0.5 s apart and
        doubling. A new connection, or the last error when all fail."""
        total, delay = tries, 0.5
        while True:
            try:
                return self._connect_once()
            except (ConnectionError, TimeoutError, OSError) as e:
                tries -= 1
                if tries == 0:
                    raise ConnectionError(
                        f"could not reconnect to {self.address} within "
                        f"{total} attempts: {e}") from cause
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _acquire(self, cause):
        """An idle connection, or a new one while fewer than
        max_connections are open (waiting for one to come back
        otherwise). cause: the failure that took the last one (a new
        connection then follows reconnection_attempts)."""
        stale = []
        with self._cv:
            if cause is not None:           # the others went the same way
                stale, self._idle = self._idle, []
                self._nconn -= len(stale)
            while True:
                self._check_open()
                if self._lost is not None:
                    raise ConnectionError(self._lost)
                if self._idle:
                    return self._idle.pop()
                if self._nconn < self.max_connections:
                    self._nconn += 1
                    break
                self._cv.wait()
            dropped = self._dropped
        for c in stale:
            c.conn.close()
        try:
            if cause is not None:
                c = self._reconnect(cause, self.reconnection_attempts)
            elif dropped:
                c = self._reconnect(TimeoutError(dropped), max(self.reconnection_attempts, 1)
                                    if self.reconnection_attempts else 0)
            else:
                c = self._connect_once()
        except BaseException:
            self._release(None)
            raise
        self._dropped = None
        return c

    def _release(self, c, drop=False):
        """Gives c back (or closes it when drop, or when it is closed or
        broken: a Ctrl-C or a timeout left an answer on its way)."""
        if c is not None and (drop or c.conn.closed or c.conn.broken):
            c.conn.close()
            c = None
        with self._cv:
            if c is None or self._closed:
                self._nconn -= 1
            else:
                self._idle.append(c)
            self._cv.notify()
        if c is not None and self._closed:
            c.conn.close()

    def _with_conn(self, op):
        """op(c) on a connection of the pool, with the session's rules: a
        timeout closes that connection and raises, never re-sending (the
        next call opens a new one: one try, or the reconnection attempts);
        a lost connection reconnects and runs op once more when
        reconnection_attempts allows it."""
        cause = None
        for attempt in (0, 1):
            c = self._acquire(cause)
            try:
                r = op(c)
            except TimeoutError as e:
                self._dropped = f"last call timed out: {e}"
                self._release(c, drop=True)
                raise
            except ConnectionError as e:
                self._release(c, drop=True)
                if self.reconnection_attempts == -1:
                    self._lost = str(e)
                if attempt or self.reconnection_attempts == -1:
                    raise
                cause = e
                continue
            except BaseException:
                self._release(c)
                raise
            self._release(c)
            return r

    def _call(self, fn, *args, pandas=False, categorical=False):
        """fn[args] on the server with the session's rules."""
        return self._with_conn(lambda c: c.conn.call(fn, *args, pandas=pandas,
                                                     categorical=categorical))

    @property
    def _conn(self):
        """A connection's extension object (bench/bench_client.py)."""
        return self._idle[-1].conn if self._idle else None

    @property
    def _registered(self):
        """The names defined over the open idle connections."""
        return set().union(*(c.registered for c in self._idle))

    def _executor(self):
        with self._cv:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.max_connections, thread_name_prefix=f"qpeach {self.address}")
            return self._pool

    # -- functions --
    def _ensure(self, c, shipped, pandas, categorical=False):
        """Registers shipped over connection c if not yet there, with the
        modules from its folder that it imports; `reuse` keeps a server's
        definition that another connection made of the same code."""
        name = shipped.name_for(pandas) + ("_cat" if categorical else "")
        if name not in c.registered:
            opts = {"reuse": True}
            if pandas:
                opts["pandas"] = True
            if categorical:
                opts["categorical"] = True
            if shipped.modules:
                opts["modules"] = KwDict({k: CharVector(v) for k, v in shipped.modules.items()})
            sid = c.conn.call(".qp.def", name, shipped.code, KwDict(opts))
            if isinstance(sid, str) and sid and sid != shipped.id:
                # The server hashes what it received: a mismatch means the
                # code was altered on the way.
                raise QError(f"function id mismatch: sent {shipped.id}, server {sid}")
            c.registered.add(name)
            c.gsent.pop(name, None)
        return name

    def _send_call(self, c, shipped, name, args, kwargs, pandas, apply, categorical=False):
        def call(*a):
            return c.conn.call(*a, pandas=pandas, categorical=categorical)
        live = shipped.globals_now()
        if live is None:
            if apply is not None:
                return call(".qp.apply", name, apply[0], apply[1])
            if kwargs:
                return call(".qp.callk", name, ArgList(args), KwDict(kwargs))
            return call(".qp.call", name, ArgList(args))
        h, blob = live
        kw = dict(kwargs or {})
        kw["__qpeach_gh__"] = CharVector(h)
        if apply is not None:
            kw["__qpeach_only__"] = True
        if c.gsent.get(name) != h:
            kw["__qpeach_gv__"] = blob
        try:
            r = call(".qp.callk", name, ArgList(() if apply else args), KwDict(kw))
        except QError as e:
            if _STALE not in str(e) or "__qpeach_gv__" in kw:
                raise
            # Another client set other values there since: send ours.
            kw["__qpeach_gv__"] = blob
            r = call(".qp.callk", name, ArgList(() if apply else args), KwDict(kw))
        c.gsent[name] = h
        if apply is not None:
            return call(".qp.apply", name, apply[0], apply[1])
        return r

    def _run(self, shipped, args, kwargs, pandas=False, apply=None, categorical=False):
        """Calls a shipped function (registering it first when needed) with
        the current values of its data globals; apply=(table, part) runs it
        with `.qp.apply` on a resident table."""
        if self.protocol == "pykx":
            if apply is not None:
                raise ValueError("protocol='pykx' has no resident tables: pass the data")
            return self._with_conn(
                lambda c: _pykx_client.call(c.conn, shipped.fn, args, kwargs, pandas))

        def op(c):
            name = self._ensure(c, shipped, pandas, categorical)
            return self._send_call(c, shipped, name, args, kwargs, pandas, apply, categorical)
        return self._with_conn(op)


def session(host: str = "localhost", port: Optional[int] = None,
            libraries: Optional[Dict[str, Union[str, types.ModuleType]]] = None, *,
            username: str = "", password: str = "", timeout: float = 0.0,
            large_messages: bool = True, tls: bool = False, unix: bool = False,
            reconnection_attempts: int = -1, protocol: str = "qpeach",
            max_connections: int = 4) -> Session:
    """Opens a session: PyKX's ``kx.remote.session``. host may be a unix
    socket, 'unix:/path' (or '@/path'), with no port. timeout (seconds, 0:
    none) bounds the connect and every call: a late call raises
    TimeoutError, is not re-sent, and the next call uses a new connection.
    max_connections bounds the connections that calls running at the same
    time open (submit, acall). protocol='pykx' sends PyKX's own messages,
    for q + pykx.q servers (_pykx_client.py says what changes). See
    Session."""
    return Session(host, port, libraries, username=username, password=password,
                   timeout=timeout, large_messages=large_messages, tls=tls, unix=unix,
                   reconnection_attempts=reconnection_attempts, protocol=protocol,
                   max_connections=max_connections)


class RemoteFunction:
    """A Python function that runs on a session's server when called. Each
    call sends the current values of the module globals the function (and
    its helpers) reads, when they changed since the server got them.
    ``submit`` runs it in the background (a concurrent.futures.Future),
    ``await acall(...)`` from asyncio; calls at the same time take
    connections of their own (up to the session's max_connections)."""

    def __init__(self, session: Session, fn: Callable, pandas: bool = False,
                 categorical: bool = False) -> None:
        self.session = session
        self.shipped = _Shipped(fn)
        self.pandas = pandas
        self.categorical = categorical
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def id(self) -> str:
        return self.shipped.id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.session._run(self.shipped, args, kwargs, pandas=self.pandas,
                                 categorical=self.categorical)

    def submit(self, *args: Any, **kwargs: Any) -> "concurrent.futures.Future[Any]":
        """Starts the call on a thread of the session's and returns its
        Future (the result, or the exception the call raised)."""
        return self.session._executor().submit(self, *args, **kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """The call, awaited: ``await f.acall(x)``. Calls gathered at once
        run side by side (on two servers, or over two connections)."""
        import asyncio
        return await asyncio.wrap_future(self.submit(*args, **kwargs))

    def __repr__(self) -> str:
        return f"<remote function {self.__name__} on {self.session.address}>"


def function(session: Session, *, pandas: bool = False,
             categorical: bool = False) -> Callable[[Callable], RemoteFunction]:
    """Decorator: ``@function(session)`` makes the function run on the
    session's server. pandas=True returns tables as DataFrames and hands
    table arguments to the function as DataFrames; their symbol columns
    are str, or pandas Categoricals with categorical=True."""
    if not isinstance(session, Session):
        raise TypeError(f"function() expects a qpeach session, got {type(session).__name__}")
    _check("pandas", pandas, (bool,), "a bool")
    _check("categorical", categorical, (bool,), "a bool")

    def decorate(fn):
        if not isinstance(fn, types.FunctionType):
            raise TypeError(f"@function decorates a Python function, got {type(fn).__name__}")
        return RemoteFunction(session, fn, pandas, categorical)
    return decorate
