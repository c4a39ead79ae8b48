"""PyKX's own messages, for ``session(..., protocol='pykx')``: what an
unmodified PyKX client sends for kx.remote.session, session.libraries and
@kx.remote.function (the texts Q0, Q2 and Q3), so our client can drive a
q process with pykx.q loaded (or `qpeach serve`, which answers the same
texts).

The texts are byte for byte PyKX 3.1.9's; their one copy is the C
library's (include/qpeach/pykx.h), read from the extension, and
tests/integration/test_pykx.py checks their SHA-256. What differs from
protocol='qpeach':

- the function's source goes with every call (q caches nothing) and is
  exec'd in the server's one ``__main__``: the function must be defined
  at the top level of its source, and its module globals are not sent
  (no dill; helpers it calls must be imported in its body or be given as
  libraries);
- arguments are positional only (PyKX's call lambda spreads a list);
- arguments and results convert as PyKX does on the server (tables arrive
  as DataFrames).
"""
import inspect
import textwrap

from .errors import ArgList, CharVector, QError


def _text(name):
    """PyKX's text Q0, Q2 or Q3 from the C extension, which holds the one
    copy (include/qpeach/pykx.h); imported on first use, as remote.py does,
    so ``import qpeach`` needs no extension."""
    from . import _qpeach
    return getattr(_qpeach, "PYKX_" + name)


def __getattr__(name):
    """Q0, Q2 and Q3 as module attributes (PEP 562)."""
    if name in ("Q0", "Q2", "Q3"):
        return _text(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_session(conn):
    """PyKX's session check on a new connection: q with pykx.q answers 1b."""
    q0 = _text("Q0")
    r = conn.call(None, CharVector(q0))
    if r is not True:
        raise QError(f"{conn.addr}: PyKX session check ({q0}) answered {r!r}, "
                     "not 1b: is pykx.q loaded on the server?")


def libraries(conn, libs):
    """PyKX's libraries lambda, once per alias (PyKX's order)."""
    for alias, mod in libs.items():
        conn.call(None, ArgList([CharVector(_text("Q2")), alias, mod]))


def source(fn):
    """The source as PyKX sends it: its first line is dropped by the
    server (PyKX's decorator line), so an undecorated function gets a
    comment line in its place."""
    src = textwrap.dedent(inspect.getsource(fn))
    if not src.lstrip().startswith("@"):
        src = "# sent by qpeach (protocol='pykx'): the server drops this line\n" + src
    return src


def call(conn, fn, args, kwargs, pandas=False):
    """fn(*args) on the server through PyKX's call lambda: (Q3; source;
    `name; args as a general list; count)."""
    if kwargs:
        raise TypeError(f"{fn.__name__}: protocol='pykx' passes positional arguments only "
                        f"(PyKX's call lambda spreads a list), got {sorted(kwargs)}")
    msg = ArgList([CharVector(_text("Q3")), CharVector(source(fn)), fn.__name__,
                   ArgList(args), len(args)])
    return conn.call(None, msg, pandas=pandas)
