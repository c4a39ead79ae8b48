"""A small pure-Python kdb+ IPC client, for tests only.

It shares no code with qpeach (no import of our C code), so when it and our
server agree, they agree with the kdb+ wire format as documented, not with
each other's bugs. Covers the common types: atoms and vectors of bool,
guid (16 bytes), byte, short, int, long, real, float, char, symbol, timestamp
(and the other temporal types as q's raw numbers); general
lists; dicts; tables; errors; (::). Uncompressed messages only (we talk to
loopback, where q does not compress).

Python values:
  bool/int/float/str/bytes  -> q atoms / char vector (str) / byte vector (bytes)
  Sym("a")                  -> symbol atom;  Vec("j", [1, 2]) -> typed vector
  list                      -> general list; dict (str keys) -> symbol!list dict
  Table({"a": Vec(...)})    -> table;         QError raised for -128
"""
import socket
import struct

# q type code -> (struct format char, python conversion) for vectors
# (month, date, minute, second, time as their int32 counts; datetime as its
# float days: q's own numbers since 2000.01.01, unconverted)
VEC = {1: "?", 4: "B", 5: "h", 6: "i", 7: "q", 8: "f", 9: "d", 12: "q", 13: "i", 14: "i",
       15: "d", 16: "q", 17: "i", 18: "i", 19: "i"}
CHAR = {"b": 1, "g": 2, "x": 4, "h": 5, "i": 6, "j": 7, "e": 8, "f": 9, "c": 10, "s": 11, "p": 12,
        "m": 13, "d": 14, "z": 15, "n": 16, "u": 17, "v": 18, "t": 19}


class QError(Exception):
    pass


class Sym(str):
    """A q symbol atom."""


class Vec:
    """A typed q vector: t is a q type char ("j", "f", "s", ...)."""

    def __init__(self, t, items):
        self.t = t
        self.items = list(items)

    def __eq__(self, o):
        return isinstance(o, Vec) and o.t == self.t and _eq_items(o.items, self.items)

    def __repr__(self):
        return f"Vec({self.t!r}, {self.items!r})"


class Atom:
    """A typed q atom: t is a q type char ("d" with days since 2000.01.01)."""

    def __init__(self, t, v):
        self.t, self.v = t, v


class Table:
    def __init__(self, cols):
        self.cols = dict(cols)

    def __eq__(self, o):
        return isinstance(o, Table) and o.cols == self.cols

    def __repr__(self):
        return f"Table({self.cols!r})"


class Identity:
    def __eq__(self, o):
        return isinstance(o, Identity)

    def __repr__(self):
        return "(::)"


class Dict:
    """A dict with non-symbol keys (or any keys): keys, values as q values."""

    def __init__(self, keys, values):
        self.keys, self.values = keys, values

    def __eq__(self, o):
        return isinstance(o, Dict) and o.keys == self.keys and o.values == self.values

    def __repr__(self):
        return f"Dict({self.keys!r}, {self.values!r})"


def _eq_items(a, b):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, float) and isinstance(y, float) and x != x and y != y:
            continue
        if x != y:
            return False
    return True


# ---------------------------------------------------------------- encoding

def _enc(x, out):
    if isinstance(x, QError):
        out += b"\x80" + str(x).encode() + b"\0"
    elif isinstance(x, Identity):
        out += b"\x65\x00"
    elif isinstance(x, bool):
        out += struct.pack("<bB", -1, x)
    elif isinstance(x, Sym):
        out += b"\xf5" + x.encode() + b"\0"
    elif isinstance(x, Atom):
        out += struct.pack("<b" + VEC[CHAR[x.t]], -CHAR[x.t], x.v)
    elif isinstance(x, int):
        out += struct.pack("<bq", -7, x)
    elif isinstance(x, float):
        out += struct.pack("<bd", -9, x)
    elif isinstance(x, str):
        b = x.encode()
        out += struct.pack("<bBi", 10, 0, len(b)) + b
    elif isinstance(x, bytes):
        out += struct.pack("<bBi", 4, 0, len(x)) + x
    elif isinstance(x, Vec):
        t = CHAR[x.t]
        out += struct.pack("<bBi", t, 0, len(x.items))
        if t == 11:
            for s in x.items:
                out += s.encode() + b"\0"
        elif t == 10:
            out += "".join(x.items).encode()
        else:
            out += struct.pack("<%d%s" % (len(x.items), VEC[t]), *x.items)
    elif isinstance(x, list):
        out += struct.pack("<bBi", 0, 0, len(x))
        for i in x:
            _enc(i, out)
    elif isinstance(x, Table):
        out += b"\x62\x00"
        _enc(dict(x.cols), out)
    elif isinstance(x, Dict):
        out += b"\x63"
        _enc(x.keys, out)
        _enc(x.values, out)
    elif isinstance(x, dict):
        out += b"\x63"
        _enc(Vec("s", list(x.keys())), out)
        _enc(list(x.values()), out)
    else:
        raise TypeError(f"qipc: cannot encode {type(x).__name__}")


def encode(x, msgtype=1):
    body = bytearray()
    _enc(x, body)
    return struct.pack("<BBBBI", 1, msgtype, 0, 0, 8 + len(body)) + bytes(body)


# ---------------------------------------------------------------- decoding

class _Dec:
    def __init__(self, b, little):
        self.b, self.p, self.e = b, 0, "<" if little else ">"

    def take(self, fmt):
        v = struct.unpack_from(self.e + fmt, self.b, self.p)
        self.p += struct.calcsize(self.e + fmt)
        return v

    def cstr(self):
        z = self.b.index(b"\0", self.p)
        s = self.b[self.p:z].decode()
        self.p = z + 1
        return s

    def value(self):
        (t,) = self.take("b")
        if t == -128:
            return QError(self.cstr())
        if t == -11:
            return Sym(self.cstr())
        if t == -1:
            return bool(self.take("B")[0])
        if t == -10:
            return self.take("c")[0].decode("latin-1")
        if t < 0 and -t in VEC:
            return self.take(VEC[-t])[0]
        if t == -2:
            self.p += 16
            return ("guid", self.b[self.p - 16:self.p])
        if t in (0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19):
            self.take("B")                     # attribute
            (n,) = self.take("i")
            if t == 0:
                return [self.value() for _ in range(n)]
            if t == 10:
                s = self.b[self.p:self.p + n].decode("latin-1")
                self.p += n
                return s
            if t == 11:
                return Vec("s", [self.cstr() for _ in range(n)])
            if t == 4:
                s = bytes(self.b[self.p:self.p + n])
                self.p += n
                return s
            if t == 2:
                items = [bytes(self.b[self.p + 16 * k:self.p + 16 * k + 16]) for k in range(n)]
                self.p += 16 * n
                return Vec("g", items)
            f = VEC[t]
            items = list(self.take("%d%s" % (n, f)))
            tc = [k for k, v in CHAR.items() if v == t][0]
            return Vec(tc, items)
        if t == 98:
            self.take("B")
            d = self.value()
            return Table(d)
        if t in (99, 127):
            k = self.value()
            v = self.value()
            if isinstance(k, Vec) and k.t == "s" and isinstance(v, list) and not isinstance(k, Table):
                return dict(zip(k.items, v))
            return Dict(k, v)
        if t == 101:
            self.take("B")
            return Identity()
        raise ValueError(f"qipc: cannot decode type {t}")


def decode(msg):
    """Decodes a whole message (header included)."""
    little = msg[0] == 1
    if msg[2]:
        raise ValueError("qipc: compressed messages not supported")
    return _Dec(memoryview(msg)[8:].tobytes(), little).value()


# ---------------------------------------------------------------- connection

class Conn:
    def __init__(self, host="127.0.0.1", port=None, user="", password="", unix=None,
                 timeout=30, cap=3, sock=None):
        if sock is not None:
            self.s = sock
        elif unix:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(timeout)
            self.s.connect(unix)
        else:
            self.s = socket.create_connection((host, port), timeout)
        self.s.settimeout(timeout)
        cred = user + (":" + password if password else "")
        # cap None: an old client that sends no capability byte
        self.s.sendall(cred.encode() + (bytes([cap]) if cap is not None else b"") + b"\0")
        b = self.s.recv(1)
        if not b:
            self.s.close()
            raise PermissionError("access denied")
        self.cap = b[0]

    def send(self, x, msgtype=1):
        self.s.sendall(encode(x, msgtype))

    def _exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            b = self.s.recv(min(n - len(buf), 1 << 20))
            if not b:
                raise ConnectionError("connection closed")
            buf += b
        return bytes(buf)

    def recv(self):
        """Returns (msgtype, value); a q error comes back as a QError value."""
        h = self._exact(8)
        n = struct.unpack("<I" if h[0] == 1 else ">I", h[4:8])[0]
        return h[1], decode(h + self._exact(n - 8))

    def call(self, x):
        self.send(x, 1)
        t, v = self.recv()
        if isinstance(v, QError):
            raise v
        return v

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *e):
        self.close()
