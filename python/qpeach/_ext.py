"""The C extension, imported on first use, and the argument checks every
module of the client shares. `import qpeach` (q.py) must work on a worker
before or without the extension being built, so nothing imports it at
module level."""

from .errors import ArgList, CharVector, KwDict, QError

_ext = None


def extension():
    """The C extension (qpeach._qpeach), imported on first use."""
    global _ext
    if _ext is None:
        from . import _qpeach
        _qpeach._set_types(QError, CharVector, ArgList, KwDict)
        _ext = _qpeach
    return _ext


def check(name, value, types_, what):
    """TypeError unless value is one of types_ (a bool is not an int here)."""
    if isinstance(value, bool) and bool not in types_:
        raise TypeError(f"{name} must be {what}, got bool")
    if not isinstance(value, types_):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
