"""Bad input to a real `qpeach serve`: each case gets a clear error where the
protocol allows one (a q error response, or for a broken stream an error
response followed by a close), the server stays up, and a well-behaved
client calling it at the same time (the Bystander) sees every answer.

Raw sockets and the independent pure-Python client tests/integration/qipc.py
only; nothing here shares code with the server.
"""
import os
import resource
import socket
import struct
import threading
import time

import harness
from harness import Server, rss_kb
from qipc import Conn, QError, Sym, Vec, decode, encode


# ------------------------------------------------------------------ helpers

class Bystander:
    """A well-behaved client echoing unique values in a loop on its own
    thread for the length of a `with` block. On exit it checks that every
    answer came and matched, and that it made progress."""

    def __init__(self, port, min_calls=20):
        self.port, self.min_calls = port, min_calls
        self.calls, self.errors = 0, []
        self.stop = threading.Event()

    def _run(self):
        try:
            with Conn(port=self.port, timeout=30) as c:
                i = 0
                while not self.stop.is_set() or self.calls < self.min_calls:
                    v = [i, Sym(f"b{i}")]
                    r = c.call([Sym(".qp.echo"), v])
                    if r != v:
                        self.errors.append((i, r))
                        return
                    i += 1
                    self.calls = i
        except Exception as e:                     # noqa: BLE001 - reported on exit
            self.errors.append(repr(e))

    def __enter__(self):
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(60)
        if exc[0] is None:
            assert not self.t.is_alive(), "bystander stuck"
            assert not self.errors, f"bystander saw {self.errors[:3]}"
            assert self.calls >= self.min_calls, self.calls


def header(n, msgtype=1, compressed=0, little=1, hi=0):
    """An 8-byte q IPC header for a message of n bytes in all."""
    return bytes([little, msgtype, compressed, hi]) + struct.pack("<I" if little else ">I", n)


def msg(body, msgtype=1):
    return header(8 + len(body), msgtype) + body


def handshake(port, cred=b"", cap=3):
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(20)
    s.sendall(cred + bytes([cap]) + b"\0")
    assert len(s.recv(1)) == 1
    return s


def recv_exact(s, n):
    b = bytearray()
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            raise ConnectionError("closed")
        b += k
    return bytes(b)


def recv_msg(s):
    h = recv_exact(s, 8)
    n = struct.unpack("<I", h[4:])[0]
    return h[1], decode(h + recv_exact(s, n - 8))


def recv_raw(s):
    """(msgtype, body bytes) of one message, without decoding it."""
    h = recv_exact(s, 8)
    assert h[0] == 1 and h[2] == 0, h
    n = struct.unpack("<I", h[4:])[0]
    return h[1], recv_exact(s, n - 8)


def send_some(s, pending):
    """Non-blocking send of what it can of pending (a bytearray)."""
    try:
        k = s.send(pending)
        del pending[:k]
    except BlockingIOError:
        time.sleep(0.01)


def closed_soon(s, timeout=20):
    """True when the server closes s (reading and discarding any bytes)."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def error_then_close(s, text):
    """The server answers the broken message with a q error naming the
    problem, then closes the connection."""
    t, v = recv_msg(s)
    assert t == 2 and isinstance(v, QError) and text in str(v), (t, v)
    assert closed_soon(s), "server kept a broken stream open"


# Under ASan (make asan) freed memory waits in a quarantine (256 MB by
# default) before reuse, which reads as growth: memory tests give the
# server a 4 MB one and allow for ASan's caches.
ASAN = "asan" in os.environ.get("QPEACH_BUILD", "")
ASAN_ENV = dict(os.environ, ASAN_OPTIONS="quarantine_size_mb=4:" + os.environ.get("ASAN_OPTIONS", "")) \
    if ASAN else None
ASAN_SLACK_KB = (24 << 10) if ASAN else 0


# ------------------------------------------------------------------ framing

def test_truncated_header_and_body():
    with Server("-s", "1") as srv, Bystander(srv.port):
        for cut in range(1, 8):                    # part of a header, then EOF
            s = handshake(srv.port)
            s.sendall(msg(b"\xf9" + struct.pack("<q", 7))[:cut])
            s.shutdown(socket.SHUT_WR)
            assert closed_soon(s)
            s.close()
        s = handshake(srv.port)                    # half a body, then EOF
        m = encode([Sym(".qp.echo"), "x" * 1000])
        s.sendall(m[:len(m) // 2])
        s.shutdown(socket.SHUT_WR)
        assert closed_soon(s)
        s.close()
        # a whole message whose body ends early: the decoder says so
        s = handshake(srv.port)
        s.sendall(msg(bytes([10, 0]) + struct.pack("<i", 100) + b"abc"))
        t, v = recv_msg(s)
        assert isinstance(v, QError) and "truncated" in str(v), v
        s.sendall(encode([Sym(".qp.echo"), 5]))    # and the stream goes on
        assert recv_msg(s) == (2, 5)
        s.close()
        # a symbol without its terminating NUL, a list short of items
        for body in [b"\xf5abc", bytes([0, 0]) + struct.pack("<i", 3) + b"\xf9" + bytes(8)]:
            s = handshake(srv.port)
            s.sendall(msg(body))
            t, v = recv_msg(s)
            assert isinstance(v, QError) and "truncated" in str(v), v
            s.close()
        # a header whose length is shorter than a header
        s = handshake(srv.port)
        s.sendall(header(4))
        error_then_close(s, "header")
        s.close()
    assert srv.proc.returncode == 0


def test_length_larger_than_data_or_memory():
    with Server("-s", "1", env=ASAN_ENV) as srv, Bystander(srv.port):
        pid = srv.proc.pid
        before = rss_kb(pid)
        # 100 MB announced, 20 bytes sent: the server waits for the rest
        # without committing memory for it, and lets go when the client does
        held = []
        for _ in range(20):
            s = handshake(srv.port)
            s.sendall(header(100 << 20) + b"\x0a\x00" + struct.pack("<i", 1000) + b"x" * 12)
            held.append(s)
        time.sleep(0.3)
        assert rss_kb(pid) - before < 200 << 10, (before, rss_kb(pid))
        for s in held:
            s.close()
        # about 1 TiB (the 40-bit length of capability 6): more than memory
        s = handshake(srv.port, cap=6)
        s.sendall(header(0xffffffff, hi=0xff) + b"\x0a\x00")
        t, v = recv_msg(s)
        assert t == 2 and isinstance(v, QError), v
        assert "bytes" in str(v) and ("limit" in str(v) or "memory" in str(v)), v
        assert closed_soon(s)
        s.close()
        # a vector whose count is far beyond the bytes of its message
        for count in [10**9, 2**31 - 1, -5]:
            s = handshake(srv.port)
            s.sendall(msg(bytes([9, 0]) + struct.pack("<i", count) + bytes(16)))
            t, v = recv_msg(s)
            assert isinstance(v, QError), v
            s.close()
    assert srv.proc.returncode == 0


def test_deep_nesting():
    with Server() as srv, Bystander(srv.port):
        depth = 100000
        body = (b"\x00\x00" + struct.pack("<i", 1)) * depth + b"\xf9" + struct.pack("<q", 1)
        s = handshake(srv.port)
        s.sendall(msg(body))
        t, v = recv_msg(s)
        assert isinstance(v, QError) and "nested" in str(v), v
        # dicts nested in dicts
        body = b"\x63\x0b\x00" + struct.pack("<i", 1) + b"k\0"
        s.sendall(msg(body * 5000 + b"\xf9" + bytes(8)))
        t, v = recv_msg(s)
        assert isinstance(v, QError), v
        # a deeply parenthesised q expression
        s.sendall(encode(".qp.echo " + "(" * 5000 + "1" + ")" * 5000))
        t, v = recv_msg(s)
        assert isinstance(v, QError) and "unsupported expression" in str(v), v
        # moderate nesting is fine
        x = 1
        for _ in range(50):
            x = [x, 2]
        s.sendall(encode([Sym(".qp.echo"), x]))
        assert recv_msg(s) == (2, x)
        s.close()


def test_unknown_types():
    with Server() as srv, Bystander(srv.port):
        s = handshake(srv.port)
        for t in [20, 50, 76, 77, 97, 113, 120, -20, -50, -99, -127]:
            s.sendall(msg(struct.pack("<b", t) + bytes(16)))
            mt, v = recv_msg(s)
            assert isinstance(v, QError) and "type" in str(v), (t, v)
        # inside a call's arguments
        s.sendall(msg(b"\x00\x00" + struct.pack("<i", 2) + b"\xf5.qp.echo\0" + b"\x4d" + bytes(8)))
        mt, v = recv_msg(s)
        assert isinstance(v, QError) and "unknown type" in str(v), v
        s.sendall(encode([Sym(".qp.echo"), 3]))
        assert recv_msg(s) == (2, 3)
        s.close()


def test_corrupt_compressed_data():
    with Server() as srv, Bystander(srv.port):
        rnd = __import__("random").Random(8)
        for k in range(20):
            s = handshake(srv.port)
            stream = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200)))
            ulen = rnd.choice([20, 1000, 1 << 20, 0xffffffff])
            body = struct.pack("<I", ulen) + stream
            s.sendall(header(8 + len(body), compressed=1) + body)
            try:
                t, v = recv_msg(s)
            except ConnectionError:
                raise AssertionError(f"case {k}: closed without an error")
            assert t == 2 and isinstance(v, QError) and "compress" in str(v), (k, v)
            assert closed_soon(s)
            s.close()
        # an unknown compression flag
        s = handshake(srv.port)
        s.sendall(header(20, compressed=2) + bytes(12))
        error_then_close(s, "compress")
        s.close()


def test_garbage_handshake():
    with Server() as srv, Bystander(srv.port):
        rnd = __import__("random").Random(3)
        for n in [1, 100, 1023, 1024, 5000]:       # no NUL: the server gives up at 1024
            s = socket.create_connection(("127.0.0.1", srv.port), 10)
            s.sendall(bytes(rnd.randrange(1, 256) for _ in range(n)))
            if n >= 1024:
                assert closed_soon(s)
            s.close()
        # garbage that happens to end in NUL is a (user-only) handshake in q's
        # rules: without -u anyone is let in, and what follows must be messages
        s = socket.create_connection(("127.0.0.1", srv.port), 10)
        s.sendall(bytes(rnd.randrange(1, 256) for _ in range(300)) + b"\0")
        s.settimeout(10)
        assert len(s.recv(1)) == 1
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        error_then_close(s, "header")
        s.close()
    d = harness.tmpdir()
    pw = harness.passwd_file(d, {"alice": "pw"})
    with Server("-u", pw, "-s", "1") as srv:
        with Conn(port=srv.port, user="alice", password="pw") as good:
            for junk in [b"\xff\xfe\xfd\0", b"\0", b":\0", b"alice\0", b"alice:" + b"p" * 900 + b"\0"]:
                s = socket.create_connection(("127.0.0.1", srv.port), 10)
                s.sendall(junk)
                assert closed_soon(s), junk
                s.close()
                assert good.call([Sym(".qp.echo"), 1]) == 1


# ------------------------------------------------------------------ slow and greedy clients

def test_slowloris_does_not_block_others_and_times_out():
    with Server("-s", "1", "--handshake-timeout", "1500") as srv:
        # a handshake that trickles in is closed at its deadline ...
        slow = socket.create_connection(("127.0.0.1", srv.port), 10)
        t0 = time.time()
        with Bystander(srv.port, min_calls=50) as b:
            closed = False
            for ch in b"alice:secret":
                try:
                    slow.sendall(bytes([ch]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.25)
                if closed_soon(slow, timeout=0.01):
                    closed = True
                    break
            assert closed, "a handshake sent one byte at a time was never timed out"
        assert b.calls >= 50
        assert harness.wait_for(lambda: any("handshake" in l and "timed out" in l for l in srv.log))
        slow.close()
        # ... while a logged-in client may send a message as slowly as it likes
        s = handshake(srv.port)
        with Bystander(srv.port, min_calls=50):
            m = encode([Sym(".qp.echo"), "slow"])
            for i in range(len(m)):
                s.sendall(m[i:i + 1])
                time.sleep(0.05)
            assert recv_msg(s) == (2, "slow")
        s.close()
        assert time.time() - t0 > 1.5


def test_client_that_never_reads_keeps_memory_bounded():
    with Server("-s", "1", env=ASAN_ENV) as srv, Bystander(srv.port, min_calls=200):
        with Conn(port=srv.port) as c:
            c.call([Sym(".qp.set"), Sym("big"), b"\x01" * (4 << 20)])
        pid = srv.proc.pid
        before = rss_kb(pid)
        hog = handshake(srv.port)
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.setblocking(False)
        pending = bytearray(encode("big") * 1000)  # 12 bytes in, 4 MB out: 4 GB asked
        end = time.time() + 5
        while time.time() < end and pending:
            send_some(hog, pending)
        time.sleep(0.5)
        grown = rss_kb(pid) - before
        # the server stops reading past 16 MB unsent per connection
        assert grown < (64 << 10) + ASAN_SLACK_KB, f"server grew by {grown} kB for a client that never reads"
        # a pipeline of small calls that are never read: the same bound
        hog2 = handshake(srv.port)
        hog2.setblocking(False)
        pending = bytearray(encode([Sym(".qp.echo"), "y" * 1000]) * 100000)   # 100 MB
        end = time.time() + 3
        while time.time() < end and pending:
            send_some(hog2, pending)
        grown = rss_kb(pid) - before
        assert grown < (96 << 10) + ASAN_SLACK_KB, f"server grew by {grown} kB"
        hog.close()
        hog2.close()
    assert srv.proc.returncode == 0


class nofile:
    """Lowers this process's soft RLIMIT_NOFILE for the span of the block,
    so a server started inside inherits it."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.n, self.old[1]))

    def __exit__(self, *e):
        resource.setrlimit(resource.RLIMIT_NOFILE, self.old)


def test_more_clients_than_file_descriptors():
    """With RLIMIT_NOFILE at 64, 3 x 64 clients connect at once. Those the
    server has no descriptor for wait in the listen backlog (it pauses
    accepting rather than spin on the listener); an existing client is
    served all along; as clients leave, the waiting ones are served: all
    192 get their handshake answer and an echo in the end."""
    limit = 64
    with nofile(limit):
        srv = Server("-s", "1")
    with srv:
        good = Conn(port=srv.port)
        waiting = []
        for _ in range(3 * limit):
            s = socket.create_connection(("127.0.0.1", srv.port), 10)
            s.sendall(b"u\3\0")
            waiting.append(s)
        served = 0
        rounds = 0
        while waiting and rounds < 200:
            rounds += 1
            still = []
            for s in waiting:
                s.settimeout(0.02 if still or rounds > 1 else 2)
                try:
                    b = s.recv(1)
                except socket.timeout:
                    still.append(s)
                    continue
                assert b == b"\3", b                 # answered, never dropped
                s.settimeout(10)
                s.sendall(encode([Sym(".qp.echo"), served]))
                assert recv_msg(s) == (2, served)
                s.close()                           # frees a descriptor
                served += 1
            waiting = still
            assert good.call([Sym(".qp.echo"), rounds]) == rounds
        assert not waiting, f"{len(waiting)} clients never served"
        assert served == 3 * limit
        assert any("Too many open files" in l for l in srv.log)
        good.close()
        assert srv.alive()


# ------------------------------------------------------------------ calls

def test_unknown_functions_wrong_arity_and_types():
    cases = [
        (".qp.nosuch[1]", "unknown function"),
        ([Sym("nosuch"), 1], "unknown function"),
        ([Sym(""), 1], "unknown function"),
        ("nosuch", "nosuch"),                      # an undefined global: q's 'name
        ([Sym(".qp.echo"), 1, 2], "rank"),
        (".qp.echo[1;2;3]", "rank"),
        ([Sym(".qp.set"), 1, 2], "type"),
        ([Sym(".qp.get"), 3.5], "type"),
        ([Sym(".qp.meta"), 42], "type"),
        ([Sym(".qp.meta"), Sym("nosuchtable")], "nosuchtable"),
        # found by fuzz_server: .qp.meta of a global that is not a table
        # read it as one (a NULL dereference that killed the server)
        ([Sym(".qp.meta"), Sym("notatable")], "type"),
        (".qp.meta `notatable", "type"),
        ([1, 2, 3], "unsupported"),
        (7, "unsupported"),
        (".qp.echo[1;", "unsupported expression"),
        ("1+1", "unsupported expression"),
        (".qp.echo \"unterminated", "unsupported expression"),
        (".qp.echo 1 2.5x", "unsupported expression"),
    ]
    with Server("-s", "1") as srv, Bystander(srv.port):
        with Conn(port=srv.port) as c:
            c.call([Sym(".qp.set"), Sym("notatable"), [Vec("j", [1, 2]), 3.5]])
            for x, text in cases:
                c.send(x)
                t, v = c.recv()
                assert t == 2 and isinstance(v, QError) and text in str(v), (x, v)
            # async calls of the same: no answer, a log line, the stream goes on
            c.send([Sym(".qp.nosuch"), 1], msgtype=0)
            assert c.call([Sym(".qp.echo"), 9]) == 9
            # a response message sent to the server is ignored
            c.send(5, msgtype=2)
            assert c.call([Sym(".qp.echo"), 10]) == 10
        assert harness.wait_for(lambda: any("async .qp.nosuch" in l for l in srv.log))


def test_random_messages_never_kill_the_server():
    """Framed random bodies and random mutations of good messages: each gets
    an answer or a close, and the server and the bystander carry on."""
    rnd = __import__("random").Random(int(os.environ.get("QPEACH_SEED", "1")))
    good = [encode([Sym(".qp.echo"), [1, Sym("a"), "bc", 2.5]]), encode(".qp.echo 1 2 3"),
            encode([Sym(".qp.set"), Sym("x"), [b"ab", 3]])]
    with Server("-s", "2") as srv, Bystander(srv.port):
        for k in range(300):
            m = bytearray(rnd.choice(good))
            if k % 2:
                body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
                m = bytearray(msg(body))
            else:
                for _ in range(rnd.randrange(1, 4)):
                    m[rnd.randrange(8, len(m))] = rnd.randrange(256)
            s = handshake(srv.port)
            s.sendall(bytes(m))
            try:
                t, body = recv_raw(s)
                assert t == 2
            except (ConnectionError, socket.timeout) as e:
                raise AssertionError(f"case {k}: {bytes(m).hex()}: {e!r}")
            s.close()
        assert srv.alive()
