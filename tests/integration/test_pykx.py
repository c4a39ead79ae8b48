"""An unmodified PyKX client against a real `qpeach serve`: the exact bytes
PyKX puts on the wire for kx.remote.session, session.libraries and
@kx.remote.function (../shared/PYKX_WIRE.md), sent over a raw socket, and
every reply checked. PyKX itself cannot be installed here (no PyPI), so
PyKXSession below sends what PyKX 3.1.9's remote.py sends, message for
message, encoded by tests/integration/qipc.py (which shares no code with
qpeach). Also: the pykx stand-in on workers without PyKX, that it never
shadows a real PyKX, login with `user:password`, and the README's PyKX
walkthrough through qpeach's own client with only the import changed."""
import hashlib
import inspect
import os
import socket
import struct
import sys

import numpy as np

import harness
from harness import Server
from qipc import Dict, Identity, QError, Sym, Table, Vec, decode, encode

PYDIR = os.path.join(harness.ROOT, "python")

# Under a sanitizer build the client extension loads only with the ASan
# runtime first (as in test_client.py): start this module again that way.
harness.asan_client_reexec()

# ---- the texts, byte for byte (PYKX_WIRE.md) -------------------------------

Q0 = "`pykx in key `"
Q1_3X = '@[system"l ",;"pykx.q";{\'"Failed to load PyKX with error: ",x}]'
Q1_4X = '@[system"l ",;"pykx.q";{\'"Failed to load KDB-X Python with error: ",x}]'
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

SHA = {   # sha256 of each text; PYKX_WIRE.md gives the first and last 8 digits
    "Q0": "86418d9cb55b364403da9e6e686e73f5f5f3396137b2eab36bf84f5f3e1685ea",
    "Q1": "5479e79bfc29b7865a1d4b2a259b38240dccfe289a1689aabfd87f7b0d30193e",
    "Q2": "96b7ed3b2567e961cdc3e5d39da4c546c4bbc3d11e1d7007e422bf8532ab82bf",
    "Q3": "63b621ef6cfc79daf0c963c545295bccb9eb6618b3c4e16ba9d94b51c563776c",
}

# q's output for the seed's dependent_function(0, 10, 10):
# 4 mavg 0 1.111111 2.222222 ... 10 (as printed by q, 7 significant digits)
MAVG = [0, 0.5555556, 1.111111, 1.666667, 2.777778, 3.888889, 5, 6.111111, 7.222222, 8.333333]


class PyKXSession:
    """What PyKX's kx.remote.session puts on the socket: the handshake
    `user:password` + capability 6 + NUL, then sync messages only, every
    one checked to come back as a response (type 2)."""

    def __init__(self, port, user="", password="", connect=True):
        self.s = socket.create_connection(("127.0.0.1", port), 30)
        cred = f"{user}:{password}" if user or password else ":"
        self.s.sendall(cred.encode() + b"\x06\x00")
        b = self.s.recv(1)
        if not b:
            self.s.close()
            raise PermissionError("Authentication error")   # what PyKX raises
        assert b[0] in (3, 6), b
        if connect:                      # kx.remote.session's first message
            assert self.ask(Q0) is True

    def raw(self, msg):
        """Sends the whole message msg (header included); returns the whole
        response (header included)."""
        self.s.sendall(msg)
        h = self._exact(8)
        assert h[0] == 1 and h[1] == 2 and h[2] == 0, h    # little-endian response, plain
        n = struct.unpack("<I", h[4:8])[0]
        return h + self._exact(n - 8)

    def ask(self, x):
        v = decode(self.raw(encode(x, 1)))
        if isinstance(v, QError):
            raise v
        return v

    def libraries(self, libs):
        for alias, library in libs.items():
            assert self.ask([Q2, Sym(alias), Sym(library)]) == Identity()

    def call(self, src, name, args, typed=None):
        """PyKX's decorated call: (Q3; source; name; args; count). args as
        an unlicensed client sends them (a general list), or typed="j"/"f"
        for the typed vector a licensed client sends when all args are
        atoms of one type."""
        framed = Vec(typed, list(args)) if typed else list(args)
        return self.ask([Q3, src, Sym(name), framed, len(args)])

    def _exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            b = self.s.recv(n - len(buf))
            if not b:
                raise ConnectionError("connection closed")
            buf += b
        return bytes(buf)

    def close(self):
        self.s.close()


def remote_function(session, typed=None):
    """PyKX's @kx.remote.function(session): the source (decorator line
    first, as inspect/dill give it), the name, the args and their count."""
    def deco(fn):
        src = inspect.getsource(fn)

        def call(*args):
            return session.call(src, fn.__name__, args, typed)
        call.src = src
        return call
    return deco


def src(body, name="f"):
    """A function's source as PyKX sends it from a script: decorator first."""
    return f"@kx.remote.function(session)\ndef {name}{body}"


def expect_error(fn, text):
    try:
        r = fn()
    except QError as e:
        assert str(e) == text, f"error {str(e)!r}, wanted {text!r}"
        return
    raise AssertionError(f"no error (wanted {text!r}), got {r!r}")


_servers = {}


def server():
    s = _servers.get("plain")
    if s is None or not s.alive():
        s = _servers["plain"] = Server()
    return s


def teardown_module():
    for s in _servers.values():
        s.stop()


# ---- the messages ------------------------------------------------------------

def test_texts_are_pykx_s_bytes():
    for name, text in (("Q0", Q0), ("Q1", Q1_3X), ("Q2", Q2), ("Q3", Q3)):
        assert hashlib.sha256(text.encode()).hexdigest() == SHA[name], name
    assert (len(Q0), len(Q1_3X), len(Q1_4X), len(Q2), len(Q3)) == (14, 63, 71, 367, 399)


def test_session_check_and_load_bytes():
    c = PyKXSession(server().port, connect=False)
    # Q0 as PyKX frames it: sync, little-endian, char vector of 14 bytes
    msg = encode(Q0, 1)
    assert msg == b"\x01\x01\x00\x00\x1c\x00\x00\x00\x0a\x00\x0e\x00\x00\x00" + Q0.encode()
    assert c.raw(msg) == b"\x01\x02\x00\x00\x0a\x00\x00\x00\xff\x01"        # 1b
    for q1 in (Q1_3X, Q1_4X):                                                # -> (::)
        assert c.raw(encode(q1, 1)) == b"\x01\x02\x00\x00\x0a\x00\x00\x00\x65\x00"
    # the same texts re-indented still match; a look-alike does not
    assert c.ask("  `pykx  in key ` \n") is True
    expect_error(lambda: c.ask("`pykx in key `.q"),
                 "qpeach: unsupported expression: `pykx in key `.q (q operators and keywords "
                 "are not evaluated; qpeach evaluates literals, global names and f[x;y] / f x "
                 "calls of its functions with literal arguments)")
    c.close()


def test_calls_zero_one_multi_args_both_framings():
    c = PyKXSession(server().port)
    zero = src("():\n    return 10\n", "zero_arg_function")
    one = src("(x):\n    return x+10\n", "single_arg_function")
    multi = src("(x, y):\n    return x+y\n", "multi_arg_function")
    assert c.call(zero, "zero_arg_function", []) == 10
    # `enlist ::` with a count of 1 is also "no arguments"
    assert c.ask([Q3, zero, Sym("zero_arg_function"), [Identity()], 1]) == 10
    for typed in (None, "j"):                         # general list, then `,10` / `10 20`
        assert c.call(one, "single_arg_function", [10], typed) == 20
        assert c.call(multi, "multi_arg_function", [10, 20], typed) == 30
    assert c.call(multi, "multi_arg_function", [1.5, 2.0], "f") == 3.5
    # the reply is a long atom, as q + pykx.q sends int64 results
    r = c.raw(encode([Q3, one, Sym("single_arg_function"), [10], 1], 1))
    assert r[8:] == b"\xf9" + struct.pack("<q", 20), r
    c.close()


def test_seed_walkthrough_as_pykx_sends_it():
    session = PyKXSession(server().port)

    @remote_function(session)
    def zero_arg_function():
        return 10

    @remote_function(session)
    def single_arg_function(x):
        return x+10

    @remote_function(session)
    def multi_arg_function(x, y):
        return x+y

    assert zero_arg_function() == 10
    assert single_arg_function(10) == 20
    assert multi_arg_function(10, 20) == 30

    session.libraries({'np': 'numpy', 'kx': 'pykx'})

    @remote_function(session)
    def dependent_function(x, y, z):
        return kx.q.mavg(4, np.linspace(x, y, z))  # noqa: F821 (kx: on the server)

    got = dependent_function(0, 10, 10)
    assert isinstance(got, Vec) and got.t == "f", got
    assert np.allclose(got.items, MAVG, atol=1e-6), got
    # a licensed client's framing of the same call: `0 10 10`
    again = session.call(dependent_function.src, "dependent_function", [0, 10, 10], "j")
    assert again == got, again
    session.close()


def test_raising_function_and_bad_source():
    c = PyKXSession(server().port)
    # x is a numpy.int64, as with PyKX: numpy's x/0 is inf, not an exception
    assert c.call(src("(x):\n    return x/0\n"), "f", [1]) == float("inf")
    expect_error(lambda: c.call(src("(x):\n    return int(x)/0\n"), "f", [1]),
                 "ZeroDivisionError('division by zero')")
    expect_error(lambda: c.call(src("(x):\n    return 1/0\n"), "f", [1.5]),
                 "ZeroDivisionError('division by zero')")
    expect_error(lambda: c.call(src("():\n    raise ValueError('bad', 3)\n"), "f", []),
                 "ValueError('bad', 3)")
    expect_error(lambda: c.call(src("():\n    return undefined_name\n"), "f", []),
                 "NameError(\"name 'undefined_name' is not defined\")")
    # a function the source does not define, and a source that does not parse
    expect_error(lambda: c.call(src("():\n    return 1\n"), "other", []),
                 "NameError(\"name 'other' is not defined\")")
    try:
        c.call(src("(:\n    return 1\n"), "f", [])
        raise AssertionError("a syntax error must fail the call")
    except QError as e:
        assert str(e).startswith("SyntaxError("), e
    assert c.call(src("():\n    return 1\n"), "f", []) == 1     # still serving
    c.close()


def test_server_timeout_applies_to_pykx_calls():
    c = PyKXSession(server().port)
    assert c.ask([Sym(".qp.timeout"), 200]) == 0
    try:
        for body in ("():\n    import time\n    time.sleep(30)\n", "():\n    while True:\n        pass\n"):
            expect_error(lambda: c.call(src(body, "slow"), "slow", []),
                         "Timeout('call exceeded the timeout of 200 ms')")
        assert c.call(src("():\n    return 3\n"), "f", []) == 3
    finally:
        c.ask([Sym(".qp.timeout"), 0])
    c.close()


def test_libraries_and_missing_library():
    c = PyKXSession(server().port)
    c.libraries({'np': 'numpy', 'pd': 'pandas'})
    assert c.call(src("(n):\n    return int(np.arange(n).sum()) + len(pd.DataFrame({'a': [1]}))\n"),
                  "f", [4]) == 7
    expect_error(lambda: c.ask([Q2, Sym("nx"), Sym("no_such_module_x")]),
                 "Failed to load library 'no_such_module_x' with alias 'nx' with error: "
                 "ModuleNotFoundError(\"No module named 'no_such_module_x'\")")
    # a dotted library, as `import a.b as c` takes it
    c.libraries({'la': 'numpy.linalg'})
    assert c.call(src("():\n    return float(la.norm(np.array([3.0, 4.0])))\n"), "f", []) == 5.0
    c.close()


def test_arguments_arrive_as_pykx_s_default_conversion():
    c = PyKXSession(server().port)
    show = src("(*xs):\n    import numpy\n    out = []\n    for x in xs:\n"
               "        t = type(x)\n"
               "        d = str(getattr(x, 'dtype', ''))\n"
               "        out.append(t.__module__.split('.')[0] + '.' + t.__name__ + ':' + d)\n"
               "    return out\n", "show")
    table = Table({"sym": Vec("s", ["a", "b"]), "px": Vec("f", [1.0, 2.0])})
    keyed = Dict(Table({"sym": Vec("s", ["a", "b"])}), Table({"px": Vec("f", [1.0, 2.0])}))
    args = [10, 1.5, Sym("a"), True, Vec("j", [1, 2]), Vec("f", [1.0]), Vec("s", ["x", "y"]),
            "ab", Vec("j", [1, -2**63]), table, keyed, [1, Sym("b")], {"k": 1}, Identity()]
    got = c.call(show, "show", args)
    want = ["numpy.int64:int64", "numpy.float64:float64", "builtins.str:", "builtins.bool:",
            "numpy.ndarray:int64", "numpy.ndarray:float64", "numpy.ndarray:object",
            "numpy.ndarray:|S1", "numpy.MaskedArray:int64", "pandas.DataFrame:",
            "pandas.DataFrame:", "builtins.list:", "builtins.dict:", "builtins.NoneType:"]
    assert got == Vec("s", want), got
    # what is inside them
    look = src("(t, k, l, d, m, s):\n"
               "    return [list(t.columns), str(t['sym'].dtype), list(k.index.names),"
               " float(k.loc['b', 'px']), type(l[0]).__name__, type(d['k']).__name__,"
               " int(m.mask.sum()), bytes(s.tobytes())]\n", "look")
    got = c.call(look, "look", [table, keyed, [1, Sym("b")], {"k": 1}, Vec("j", [1, -2**63]), "ab"])
    assert got == [Vec("s", ["sym", "px"]), Sym("object"), Vec("s", ["sym"]), 2.0, Sym("int64"),
                   Sym("int64"), 1, "ab"], got
    c.close()


def test_frames_hold_integer_nulls_and_chars_as_pykx_pd():
    """A table argument is PyKX's .pd(): an integer column holding q's null
    is pandas' nullable Int64 (<NA> there, as pandas reads an empty CSV
    field), a char column one bytes item per row; returned, the frame is
    the same q table again (nulls and chars included)."""
    import pandas as pd
    c = PyKXSession(server().port)
    t = Table({"n": Vec("j", [1, -2**63, 3]), "side": "BSB"})
    look = src("(t):\n    return [str(t['n'].dtype), t['n'].isna().tolist(), int(t['n'].sum()),"
               " [v.decode() for v in t['side']]]\n", "look")
    want = pd.Series([1, None, 3], dtype="Int64")
    assert c.call(look, "look", [t]) == [Sym("Int64"), Vec("b", want.isna().tolist()), int(want.sum()),
                                         Vec("s", ["B", "S", "B"])]
    back = src("(t):\n    return t\n", "back")
    assert c.call(back, "back", [t]) == t
    c.close()


def test_results_go_back_as_pykx_s_toq():
    c = PyKXSession(server().port)
    ret = src("(i):\n    import numpy, pandas\n    return [\n"
              "        7, 2.5, 'sym', b'chars', None, [1, 2, 3], ['a', 'b'],\n"
              "        numpy.array([1.5, 2.5]), {'a': 1, 'b': 2},\n"
              "        pandas.DataFrame({'x': [1, 2], 'y': ['p', 'q']})][int(i)]\n", "ret")
    want = [7, 2.5, Sym("sym"), "chars", Identity(), Vec("j", [1, 2, 3]), Vec("s", ["a", "b"]),
            Vec("f", [1.5, 2.5]), Dict(Vec("s", ["a", "b"]), Vec("j", [1, 2])),
            Table({"x": Vec("j", [1, 2]), "y": Vec("s", ["p", "q"])})]
    for i, w in enumerate(want):
        got = c.call(ret, "ret", [i])
        assert got == w, (i, got, w)
    c.close()


def test_one_namespace_shared_by_connections():
    a, b = PyKXSession(server().port), PyKXSession(server().port)
    a.libraries({'npx': 'numpy'})
    # b sees a's alias and a's globals, as every client of one q process does
    a.call(src("(v):\n    global shared_value\n    shared_value = v\n    return v\n", "put"),
           "put", [41])
    assert b.call(src("():\n    return int(npx.int64(shared_value) + 1)\n", "get"), "get", []) == 42
    # the server's globals and tables, as .qp.def functions read them
    assert a.ask([Sym(".qp.set"), Sym("g"), Table({"v": Vec("j", [1, 2, 3])})]) == Sym("g")
    assert b.call(src("():\n    return [int(qget('g')['v'].sum()), len(qtable('g', (1, 3)))]\n",
                      "reads"), "reads", []) == Vec("j", [6, 1])
    a.close()
    b.close()


def test_compiled_once_per_source():
    c, d = PyKXSession(server().port), PyKXSession(server().port)
    # the function defined from one source is kept between calls (its
    # default list grows); pykx.q would define it afresh every time
    counter = src("(acc=[]):\n    acc.append(1)\n    return len(acc)\n", "counter")
    assert [c.call(counter, "counter", []) for _ in range(3)] == [1, 2, 3]
    assert d.call(counter, "counter", []) == 4          # same source, same function
    # another source for the name replaces it; the first source again
    # defines its function again from the compiled code (a fresh default)
    other = src("():\n    return -1\n", "counter")
    assert d.call(other, "counter", []) == -1
    assert c.call(counter, "counter", []) == 1
    # an edit is a new source
    edited = counter.replace("len(acc)", "len(acc) * 100")
    assert c.call(edited, "counter", []) == 100
    c.close()
    d.close()


def test_more_sources_than_the_cache_holds():
    # 1,024 sources are kept compiled; older ones are compiled again when sent
    c = PyKXSession(server().port)
    first = src("():\n    return 0\n", "many")
    for k in range(1100):
        assert c.call(src(f"():\n    return {k}\n", "many"), "many", []) == k
    assert c.call(first, "many", []) == 0
    c.close()


def test_login_with_user_password():
    d = harness.tmpdir()
    pw = harness.passwd_file(d, {"user": "password"})
    with Server("-u", pw) as s:
        c = PyKXSession(s.port, "user", "password")
        c.libraries({'np': 'numpy'})
        assert c.call(src("(x):\n    return x+10\n"), "f", [10]) == 20
        c.close()
        for user, password in (("user", "wrong"), ("", ""), ("nobody", "password")):
            try:
                PyKXSession(s.port, user, password)
                raise AssertionError(f"{user}:{password} must be refused")
            except (PermissionError, ConnectionError):
                pass


# ---- the pykx stand-in --------------------------------------------------------

def test_import_pykx_in_body_without_pykx():
    c = PyKXSession(server().port)
    body = src("(n):\n    import pykx as kx\n    return [bool(kx.__qpeach__), "
               "int(kx.q.til(n).sum()), float(kx.q.avg([1.0, 2.0, 6.0]))]\n", "f")
    assert c.call(body, "f", [4]) == [True, 6, 3.0]
    missing = src("():\n    import pykx as kx\n    return kx.q.xasc(1)\n", "g")
    try:
        c.call(missing, "g", [])
        raise AssertionError("kx.q.xasc must raise")
    except QError as e:
        t = str(e)
        assert t.startswith("AttributeError(\"kx.q.xasc: qpeach's pykx stand-in"), t
        assert "'xasc'" in t and "mavg" in t and "PyKX clients" in t, t
    evalq = src("():\n    import pykx as kx\n    return kx.q('til 3')\n", "h")
    try:
        c.call(evalq, "h", [])
        raise AssertionError("kx.q('...') must raise")
    except QError as e:
        assert str(e).startswith("NotImplementedError(\"kx.q('...') evaluates q code"), e
    c.close()


def test_real_pykx_is_not_shadowed():
    d = harness.tmpdir()
    os.makedirs(os.path.join(d, "pykx"))
    with open(os.path.join(d, "pykx", "__init__.py"), "w") as f:
        f.write("WHO = 'the installed pykx'\n")
    env = dict(os.environ, QPEACH_PYTHONPATH=d)
    with Server(env=env) as s:
        c = PyKXSession(s.port)
        c.libraries({'kx': 'pykx'})
        assert c.call(src("():\n    return kx.WHO\n"), "f", []) == Sym("the installed pykx")
        c.close()


def test_readme_walkthrough_through_qpeach_client():
    # README "PyKX clients": PyKX's walkthrough, only the import changed
    sys.path.insert(0, PYDIR)
    import qpeach as kx
    session = kx.remote.session(host='localhost', port=server().port)

    @kx.remote.function(session)
    def zero_arg_function():
        return 10

    @kx.remote.function(session)
    def single_arg_function(x):
        return x+10

    @kx.remote.function(session)
    def multi_arg_function(x, y):
        return x+y

    assert zero_arg_function() == 10
    assert single_arg_function(10) == 20
    assert multi_arg_function(10, 20) == 30

    session.libraries({'np': 'numpy', 'kx': 'pykx'})

    @kx.remote.function(session)
    def dependent_function(x, y, z):
        return kx.q.mavg(4, np.linspace(x, y, z))

    got = dependent_function(0, 10, 10)
    assert np.allclose(got, MAVG, atol=1e-6), got
    session.close()
