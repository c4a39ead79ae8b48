"""PyKX's own messages, for ``session(..., protocol='pykx')``: what an
unmodified PyKX client sends for kx.remote.session, session.libraries and
@kx.remote.function (../shared/PYKX_WIRE.md, Q0, Q2 and Q3 there), so our
client can drive a q process with pykx.q loaded (or `qpeach serve`, which
answers the same texts).

The texts are byte for byte PyKX 3.1.9's (their SHA-256 is checked by
tests/integration/test_pykx.py against the same constants; the C side keeps
its copy in src/net/pykxwire.c). What differs from protocol='qpeach':

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

Q0 = "`pykx in key `"
Q2 = ("\n                {[alias;library]\n"
      "                  alias:string alias;\n"
      "                  library:string library;\n"
      "                  @[.pykx.pyexec;\n"
      '                    "import ",library," as ",alias;\n'
      "                    {'\"Failed to load library '\",x,\n"
      "                      \"' with alias '\",y,\"' with error: \",z}[library;alias]\n"
      "                    ]}\n"
      "                ")
Q3 = ("\n" + " " * 43 + "{[code;func_name;args;lenargs]\n"
      + " " * 45 + '.pykx.pyexec trim "\n" sv 1_"\n" vs code;\n'
      + " " * 45 + "func:.pykx.get[func_name;<];\n"
      + " " * 45 + "$[lenargs;func . args;func[]]\n"
      + " " * 45 + "}\n"
      + " " * 43)


def check_session(conn):
    """PyKX's session check on a new connection: q with pykx.q answers 1b."""
    r = conn.call(None, CharVector(Q0))
    if r is not True:
        raise QError(f"{conn.addr}: PyKX session check (`pykx in key `) answered {r!r}, "
                     "not 1b: is pykx.q loaded on the server?")


def libraries(conn, libs):
    """PyKX's libraries lambda, once per alias (PyKX's order)."""
    for alias, mod in libs.items():
        conn.call(None, ArgList([CharVector(Q2), alias, mod]))


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
    msg = ArgList([CharVector(Q3), CharVector(source(fn)), fn.__name__,
                   ArgList(args), len(args)])
    return conn.call(None, msg, pandas=pandas)
