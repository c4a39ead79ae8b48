"""PyKX's remote-function API on qpeach workers, and fan-out.

    session = session(host='localhost', port=5050, username='user',
                      password='password', libraries={'np': 'numpy'})

    @function(session)
    def f(x, y=1):
        return np.sum(x) * y

A decorated function is shipped once per connection (dill bytes when dill
is installed, else its source text), registered on the server under a name
made of its SHA-256 id, and called by that name afterwards (`.qp.call`, or
`.qp.callk` with keyword arguments). Libraries are imported on the server
(`.qp.import`) when given, so a missing one fails at once, naming it and its
alias. pandas=True registers it with the server's pandas option: table
arguments arrive as DataFrames.

Globals are read at call time, as a local call reads them: with dill, the
data globals the function and its helpers name (not modules, functions or
classes, which are shipped once) go with a call whenever their values
differ from what the server holds (a hash is checked on every call; an
identical immutable value costs no pickling).

Timeouts: a call that runs past ``timeout`` raises TimeoutError and is never
sent again. Its reply would still arrive on the connection, so the session
closes it; the next call opens a new one (repr: "reconnects on next call").

Reconnection follows PyKX's ``reconnection_attempts``: -1 (the default)
never reconnects and a lost connection raises ConnectionError; N > 0 tries
up to N times, waiting 0.5 s and doubling; 0 tries without limit. After a
reconnect the libraries are imported again, every function is registered
again when next called, and the call that found the connection lost is
sent once more.

Fan-out (fanout, map) is the C scheduler's, as `qpeach run` runs a job
file: the function is shipped the same way but defined by the scheduler on
every worker (qp_run_opts.fn_code), and this module only makes the job, a
dict the scheduler reads as it reads a job file (see sched.py); it has no
partitioning or merging of its own.
"""
import hashlib
import inspect
import os
import pickle
import shutil
import tempfile
import textwrap
import threading
import time
import types
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _pykx_client
from .errors import ArgList, CharVector, KwDict, QError

try:
    import dill as _dill
except ImportError:           # dill is optional: source text then
    _dill = None

__all__ = ["session", "function", "fanout", "map", "Session", "RemoteFunction"]

_ext = None


def _extension():
    """The C extension, imported on first use: `import qpeach` (q.py) must
    work on a worker before or without the extension being built."""
    global _ext
    if _ext is None:
        from . import _qpeach
        _qpeach._set_types(QError, CharVector, ArgList, KwDict)
        _ext = _qpeach
    return _ext


def _check(name, value, types_, what):
    if isinstance(value, bool) and bool not in types_:
        raise TypeError(f"{name} must be {what}, got bool")
    if not isinstance(value, types_):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")


# ---- shipping functions --------------------------------------------------

def _globals_used(code):
    """Global names a code object (and the code nested in it) refers to."""
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _globals_used(c)
    return names


# What a global may hold and still be code rather than data: shipped once
# with the function (by reference, or by value for helpers), never per call.
_CODE_LIKE = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
              types.MethodType, type)
# Values that cannot change in place: when every live global still holds the
# very same object, the call needs no pickling to know nothing changed.
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), frozenset)


def _by_value(fn, memo, live):
    """A copy of fn that dill pickles by value (its module set to
    __main__), with the plain functions of the same module that it uses
    (helpers) copied the same way, so the server needs none of the
    client's modules. Modules stay references (imported on the server).
    The names of the data globals (not modules, functions or classes) the
    copies use go into live: their values travel again at call time."""
    if fn in memo:
        return memo[fn]
    g = {"__builtins__": fn.__globals__.get("__builtins__", __builtins__)}
    cp = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    cp.__kwdefaults__ = fn.__kwdefaults__
    cp.__qualname__ = fn.__qualname__
    cp.__module__ = "__main__"
    cp.__doc__ = fn.__doc__
    memo[fn] = cp
    for name in _globals_used(fn.__code__):
        if name not in fn.__globals__:
            continue        # a library imported on the server, or a builtin
        v = fn.__globals__[name]
        if isinstance(v, types.FunctionType) and v.__module__ == fn.__module__:
            v = _by_value(v, memo, live)
        elif not isinstance(v, _CODE_LIKE):
            live.add(name)
        g[name] = v
    # Closure cells may hold helpers too.
    return cp


def _make_entry(st):
    """What is registered on the server for a function shipped with dill:
    a wrapper that runs on the server, so everything it uses must be in
    st (a dict) or builtins. At its first call it binds the function and
    its helpers to the namespace the server gave it (libraries included),
    as one module's functions share their module. A call may carry the
    client's current data globals: __qpeach_gh__ (their hash) alone when
    the server should have them (LookupError 'qpeach-globals-stale' if
    not), with __qpeach_gv__ (dill bytes) to set them; __qpeach_only__
    sets them and calls nothing (before a .qp.apply, which has no kwargs)."""
    def entry(*args, **kwargs):
        g = globals()
        f = st.get("bound")
        if f is None:
            import types as T
            bound = {}
            for cp in st["fns"]:
                nf = T.FunctionType(cp.__code__, g, cp.__name__, cp.__defaults__, cp.__closure__)
                nf.__kwdefaults__ = cp.__kwdefaults__
                bound[id(cp)] = nf
            for cp in st["fns"]:
                for n, v in cp.__globals__.items():
                    if n == "__builtins__":
                        continue
                    if id(v) in bound:
                        g[n] = bound[id(v)]
                    elif n in st["live"]:
                        g[n] = v
                    else:
                        g.setdefault(n, v)      # a library of the server wins
            f = st["bound"] = bound[id(st["fns"][0])]
        if "__qpeach_gh__" in kwargs:
            h = kwargs.pop("__qpeach_gh__")
            blob = kwargs.pop("__qpeach_gv__", None)
            only = kwargs.pop("__qpeach_only__", False)
            if blob is not None:
                import dill
                g.update(dill.loads(bytes(blob)))
                st["h"] = h
            elif h != st["h"]:
                raise LookupError("qpeach-globals-stale: the server holds other values "
                                  "of the function's globals")
            if only:
                return None
        items = st.get("items")
        if items is not None:       # map(): the task's row names its item
            return f(items[int(args[0]["i"][0])])
        return f(*args, **kwargs)

    return entry


_STALE = "qpeach-globals-stale"

# What dill raises for an object it cannot pickle: only these fall back to
# shipping the source text (anything else is a bug to see).
_UNPICKLABLE = (pickle.PicklingError, TypeError, AttributeError, RecursionError)


class _Shipped:
    """What travels to a server for one Python function: its code (dill
    bytes or source text), id (SHA-256 hex of those bytes) and the name it
    is registered under; with dill, also the names of the data globals it
    uses, whose current values go with a call when they changed."""

    def __init__(self, fn, items=None):
        if not callable(fn) or not isinstance(fn, types.FunctionType):
            raise TypeError(f"remote function must be a Python function, "
                            f"got {type(fn).__name__}")
        self.fn = fn
        self.code = None
        self.live = ()          # data globals re-sent when changed (dill only)
        self._last = None       # (values, hash, blob) of the last look
        why = None
        if _dill is not None:
            self.code, why = self._dill_code(fn, items)
            if self.code is None:
                self.live, self._last = (), None
        if self.code is None and items is not None:
            raise TypeError(f"map() could not pickle {fn.__name__} or its items with dill"
                            + (f": {why}" if why else " (dill is not installed)"))
        if self.code is None:
            try:
                src = textwrap.dedent(inspect.getsource(fn))
            except (OSError, TypeError) as e:
                raise TypeError(f"cannot ship {fn.__name__}: "
                                + (f"dill cannot pickle it ({why})" if why else "no dill")
                                + f" and no source ({e})")
            if why:
                warnings.warn(f"qpeach: dill cannot pickle {fn.__name__} ({why}): it is shipped "
                              f"as its source text instead, so it runs without its closure "
                              f"and the data globals it reads", RuntimeWarning, stacklevel=3)
            self.code = CharVector(src)
        raw = self.code.encode() if isinstance(self.code, str) else self.code
        self.id = hashlib.sha256(raw).hexdigest()
        # Registered as name_<id prefix>: readable in server logs, unique by
        # content, and for source text the server finds the def by name.
        self.name = f"{fn.__name__}_{self.id[:16]}"

    def _dill_code(self, fn, items):
        """(dill bytes, None) of what is registered for fn, or (None, why)
        when dill cannot pickle something it holds (a lock, a generator,
        an open file among its globals or closure)."""
        live, memo = set(), {}
        cp = _by_value(fn, memo, live)
        self.live = tuple(sorted(live))
        try:
            now = self.globals_now()
        except _UNPICKLABLE as e:
            return None, f"{type(e).__name__}: {e}"
        st = {"fns": [cp] + [c for c in memo.values() if c is not cp],
              "live": frozenset(self.live), "h": now[0] if now else None, "items": items}
        entry = _make_entry(st)
        ep = types.FunctionType(entry.__code__, {"__builtins__": __builtins__},
                                fn.__name__, None, entry.__closure__)
        ep.__module__ = "__main__"
        ep.__qualname__ = fn.__qualname__
        ep.__doc__ = fn.__doc__
        # The server reads DataFrame annotations (pandas arguments).
        ep.__annotations__ = dict(getattr(fn, "__annotations__", {}) or {})
        try:
            return _dill.dumps(ep, recurse=True), None
        except _UNPICKLABLE as e:
            return None, f"{type(e).__name__}: {e}"

    def name_for(self, pandas):
        """The registered name: pandas functions are defined apart (the
        server converts their arguments to DataFrames)."""
        return self.name + ("_pd" if pandas else "")

    def globals_now(self):
        """(hash, dill bytes) of the current values of the data globals
        the function uses, or None when it uses none. Pickles only when
        some value is not the very object of the last look or may have
        changed in place (anything but an immutable scalar)."""
        if not self.live:
            return None
        g = self.fn.__globals__
        miss = _Shipped
        vals = tuple(g.get(n, miss) for n in self.live)
        last = self._last
        if last is not None and all(a is b and (type(a) in _IMMUTABLE or a is miss)
                                    for a, b in zip(vals, last[0])):
            return last[1], last[2]
        blob = _dill.dumps({n: v for n, v in zip(self.live, vals) if v is not miss},
                           recurse=True)
        h = hashlib.sha256(blob).hexdigest()
        self._last = (vals, h, blob)
        return h, blob


# ---- the session ---------------------------------------------------------

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


# ---- fan-out: the C scheduler (qpeach.run) ---------------------------------

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
