"""What a shipped function is, by content: the digests that name it on a
server and key a fan-out's journal, equal in every process that runs the
same code with the same values.

A function's identity is made of parts, each a SHA-256 of a canonical
form of its content, never of an object's id, of pickle bytes (dill
writes a set's items in hash order, which PYTHONHASHSEED changes) or of
line numbers (a comment added above a function changes nothing it does):

  code      the code objects of the function and of the same-module
            helpers shipped with it: bytecode, constants, names, argument
            layout
  defaults  their default argument values
  closure   the values in their closure cells
  globals   each data global they read (name -> digest)
  modules   each module shipped from the function's folder (name ->
            digest of its source)
  items     map()'s items

`changed(old, new)` says which parts differ, in words, so a run that
starts over can say why.
"""
import hashlib
import types

import numpy as np

try:
    import dill as _dill
except ImportError:           # dill is optional
    _dill = None


def _feed(h, v, depth=0):
    """Feeds a canonical form of v to hash h: equal values give equal
    bytes in any process."""
    if depth > 200:
        raise ValueError("qpeach: a value nested too deeply to identify")
    t = type(v)
    h.update(t.__module__.encode() + b"." + t.__qualname__.encode() + b"\0")
    if v is None or isinstance(v, (bool, int, float, complex)):
        h.update(repr(v).encode())
    elif isinstance(v, str):
        h.update(v.encode("utf-8", "surrogatepass"))
    elif isinstance(v, (bytes, bytearray, memoryview)):
        h.update(bytes(v))
    elif isinstance(v, (list, tuple)):
        h.update(str(len(v)).encode())
        for x in v:
            _feed(h, x, depth + 1)
    elif isinstance(v, (set, frozenset)):
        for d in sorted(digest(x) for x in v):      # not hash order
            h.update(d.encode())
    elif isinstance(v, dict):
        h.update(str(len(v)).encode())
        for k, x in v.items():                     # insertion order is content
            _feed(h, k, depth + 1)
            _feed(h, x, depth + 1)
    elif isinstance(v, np.ndarray):
        h.update(v.dtype.str.encode() + repr(v.shape).encode())
        if v.dtype.hasobject:
            _feed(h, v.ravel().tolist(), depth + 1)
        else:
            h.update(np.ascontiguousarray(v).tobytes())
    elif isinstance(v, types.CodeType):
        _feed_code(h, v, depth)
    elif isinstance(v, (types.FunctionType, type, types.ModuleType, types.BuiltinFunctionType)):
        h.update(f"{getattr(v, '__module__', '')}.{getattr(v, '__qualname__', v.__name__)}".encode())
    elif _dill is not None:
        h.update(_dill.dumps(v, recurse=True))
    else:
        h.update(repr(v).encode())


def _feed_code(h, co, depth):
    """A code object without its file name and line numbers."""
    for part in (co.co_name, co.co_argcount, co.co_posonlyargcount, co.co_kwonlyargcount,
                 co.co_flags, co.co_code, co.co_names, co.co_varnames, co.co_freevars,
                 co.co_cellvars):
        _feed(h, part, depth + 1)
    _feed(h, co.co_consts, depth + 1)


def digest(v):
    """The SHA-256 (hex) of v's canonical form."""
    h = hashlib.sha256()
    _feed(h, v)
    return h.hexdigest()


def function_parts(fns, values, modules, items=None):
    """The parts of a shipped function's identity: fns the function and
    its helpers (functions), values its data globals ({name: value}),
    modules the modules shipped with it ({name: source}), items map()'s."""
    fns = sorted(fns, key=lambda f: f.__qualname__)
    parts = {
        "code": digest([f.__code__ for f in fns]),
        "defaults": digest([(f.__defaults__, f.__kwdefaults__) for f in fns]),
        "closure": digest([[c.cell_contents for c in f.__closure__ or ()] for f in fns]),
        "globals": {n: digest(v) for n, v in sorted(values.items())},
        "modules": {n: digest(s) for n, s in sorted(modules.items())},
    }
    if items is not None:
        parts["items"] = digest(items)
    return parts


def of_parts(parts):
    """One digest of every part."""
    return digest(sorted((k, sorted(v.items()) if isinstance(v, dict) else v)
                         for k, v in parts.items()))


_WORDS = {"code": "code", "defaults": "default arguments", "closure": "closure values",
          "items": "items"}


def changed(old, new):
    """What differs between two identities' parts, in words ('' when
    nothing): "code", "globals K, T", "module ohlc", ..."""
    said = []
    for k in ("code", "defaults", "closure", "items"):
        if old.get(k) != new.get(k):
            said.append(_WORDS[k])
    for k, word in (("globals", "global"), ("modules", "module")):
        a, b = old.get(k) or {}, new.get(k) or {}
        names = sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))
        if names:
            said.append(f"{word}{'s' if len(names) > 1 else ''} {', '.join(names)}")
    return ", ".join(said)
