"""How a Python function travels to a server: by value with dill (its
same-module helpers copied along, modules and other code by reference),
or as its source text; and the data globals it reads, sent again at call
time when their values changed.

A decorated function is registered on the server under a name made of its
SHA-256 id, and called by that name afterwards (`.qp.call`, or
`.qp.callk` with keyword arguments). Globals are read at call time, as a
local call reads them: with dill, the data globals the function and its
helpers name (not modules, functions or classes, which are shipped once)
go with a call whenever their values differ from what the server holds (a
hash is checked on every call; an identical immutable value costs no
pickling).

Modules beside the function's module that it imports (`from ohlc import
ohlc` in slow.py) go with it: their source, found by the scheduler's own
reading of the imports (qp_job_modules), in `.qp.def`'s `modules` option;
the server makes them importable and compiles each once.
"""
import hashlib
import inspect
import os
import pickle
import textwrap
import types
import warnings

from . import identity
from ._ext import extension as _extension
from .errors import CharVector

try:
    import dill as _dill
except ImportError:           # dill is optional: source text then
    _dill = None

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

_PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None)})


def _plain(items):
    """Whether items (a list, or None) hold only plain scalars, or tuples
    and lists of them: what the C pickler writes without naming a class
    (one of the client's __main__ would not load on a server)."""
    if items is None:
        return False
    kinds = {type(x) for x in items}
    if kinds <= _PLAIN:
        return True
    if not kinds <= _PLAIN | {tuple, list}:
        return False
    inner = set()
    for x in items:
        if type(x) in (tuple, list):
            inner.update(type(y) for y in x)
    return inner <= _PLAIN


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
    for name in sorted(_globals_used(fn.__code__)):    # the same bytes in any process
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
        if items is None and st.get("items_pickle") is not None:
            import pickle as P
            items = st["items"] = P.loads(st.pop("items_pickle"))
        if items is not None:       # map(): the task's row names its item
            return f(items[int(args[0]["i"][0])])
        return f(*args, **kwargs)

    return entry


_STALE = "qpeach-globals-stale"

# What dill raises for an object it cannot pickle: only these fall back to
# shipping the source text (anything else is a bug to see).
_UNPICKLABLE = (pickle.PicklingError, TypeError, AttributeError, RecursionError)


def _module_file(fn):
    """The file fn's module was read from, or None (a notebook, stdin)."""
    f = fn.__code__.co_filename
    return os.path.abspath(f) if f and not f.startswith("<") and os.path.isfile(f) else None


class _Shipped:
    """What travels to a server for one Python function: its code (dill
    bytes or source text), id (SHA-256 hex of those bytes), the modules
    from its folder it imports (modules: name -> source), its identity by
    content (parts, identity.py) and the name it is registered under; with
    dill, also the names of the data globals it uses, whose current values
    go with a call when they changed."""

    def __init__(self, fn, items=None):
        if not callable(fn) or not isinstance(fn, types.FunctionType):
            raise TypeError(f"remote function must be a Python function, "
                            f"got {type(fn).__name__}")
        self.fn = fn
        self.code = None
        self.live = ()          # data globals re-sent when changed (dill only)
        self._last = None       # (values, hash, blob) of the last look
        self.file = _module_file(fn)
        self.modules = _extension().sibling_modules(self.file) if self.file else {}
        self._memo = {fn: fn}   # the function and its helpers (dill: their copies)
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
        g = fn.__globals__
        self.parts = identity.function_parts(
            list(self._memo), {n: g[n] for n in self.live if n in g}, self.modules, items)
        self.identity = identity.of_parts(self.parts)
        # Registered as name_<identity prefix>: readable in server logs,
        # the same in every process for the same content, and for source
        # text the server finds the def by name.
        self.name = f"{fn.__name__}_{self.identity[:16]}"

    def _dill_code(self, fn, items):
        """(dill bytes, None) of what is registered for fn, or (None, why)
        when dill cannot pickle something it holds (a lock, a generator,
        an open file among its globals or closure)."""
        live, memo = set(), {}
        cp = _by_value(fn, memo, live)
        self.live = tuple(sorted(live))
        self._memo = dict(memo)
        try:
            now = self.globals_now()
        except _UNPICKLABLE as e:
            return None, f"{type(e).__name__}: {e}"
        # map()'s items: plain values go by the C pickler (dill's pickler
        # runs Python code per item, most of a small item's cost)
        blob = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL) if _plain(items) else None
        st = {"fns": [cp] + [c for c in memo.values() if c is not cp],
              "live": self.live, "h": now[0] if now else None,
              "items": None if blob is not None else items, "items_pickle": blob}
        entry = _make_entry(st)
        # Its frames are left out of a remote traceback, which then starts
        # at the user's function (py.c's format_exc skips this file name).
        code = entry.__code__.replace(co_filename="<qpeach entry>")
        ep = types.FunctionType(code, {"__builtins__": __builtins__},
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
