"""`qpeach serve` against real clients: the pure-Python qipc client (which
shares no code with ours) and our C client through `qpeach call`."""
import os
import signal
import socket
import ssl
import stat
import subprocess
import threading

import harness
from harness import Server as _Server, passwd_file, qpeach, self_signed_cert, tmpdir
from qipc import Conn, Identity, QError, Sym, Table, Vec


class Server(_Server):
    """harness.Server that also checks, on a clean exit, that the server
    stopped cleanly and printed no sanitizer report (make asan). Leak
    reports are ours only when a frame is in our code: the embedded Python
    interpreter never frees everything at exit, and those reports (whose
    stacks end in libpython/numpy) are left to an LSan suppression."""

    def __exit__(self, exc_type, *exc):
        rc = self.stop(timeout=60)
        if exc_type is None:
            check_sanitizer_log("".join(self.log), rc)


def check_sanitizer_log(log, rc):
    assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log[-3000:]
    leaks = "ERROR: LeakSanitizer" in log
    if leaks:
        ours = [l for l in log.splitlines() if " in qp_" in l or "/src/net/" in l or "/src/core/" in l]
        assert not ours, "leak in our code:\n" + "\n".join(ours[:20])
    assert rc == 0 or (leaks and rc == 1), f"qpeach serve exited {rc}: {log[-2000:]}"


def expect_qerror(fn, text):
    try:
        fn()
    except QError as e:
        assert text in str(e), f"error {str(e)!r} does not contain {text!r}"
        return str(e)
    raise AssertionError(f"no q error (wanted {text!r})")


# ------------------------------------------------------------ values and calls

def test_echo_round_trips_common_types():
    values = [42, -7, 1.5, float("-inf"), True, Sym("abc"), Sym(""), "hello", "",
              b"\x00\x01\xff", Vec("j", [1, 2, -(2**63)]), Vec("f", [1.5, float("nan")]),
              Vec("i", [1, -2]), Vec("h", [3]), Vec("e", [0.5]), Vec("b", [True, False]),
              Vec("s", ["a", "bc", ""]), Vec("p", [0, 10**15]), Vec("n", [5]),
              [1, Sym("a"), "str", [2.5, []]], [], {"a": 1, "b": "x"},
              Table({"sym": Vec("s", ["a", "b"]), "px": Vec("f", [1.0, 2.0])}), Identity()]
    with Server("-s", "2") as s, Conn(port=s.port) as c:
        for v in values:
            assert c.call([Sym(".qp.echo"), v]) == v, v
            assert c.call([".qp.echo", v]) == v, v       # name as a char vector


def test_char_vector_expressions():
    with Server() as s, Conn(port=s.port) as c:
        assert c.call(".qp.echo 42") == 42
        assert c.call(".qp.echo[1 2 3]") == Vec("j", [1, 2, 3])
        assert c.call('.qp.echo "a b;c"') == "a b;c"
        assert c.call(".qp.echo (1;`a;\"xy\";(::))") == [1, Sym("a"), "xy", Identity()]
        assert c.call(".qp.echo `a`b`c") == Vec("s", ["a", "b", "c"])
        assert c.call(".qp.echo 1.5 2") == Vec("f", [1.5, 2.0])
        assert c.call(".qp.echo 1 2 3h") == Vec("h", [1, 2, 3])
        assert c.call(".qp.echo 0Nj") == -(2**63)
        assert c.call(".qp.echo 101b") == Vec("b", [True, False, True])
        assert c.call(".qp.ping[]") is True
        assert c.call(".qp.set[`x;10 20]") == Sym("x")
        assert c.call("x") == Vec("j", [10, 20])
        assert c.call("  x ") == Vec("j", [10, 20])
        assert c.call(".qp.get `x") == Vec("j", [10, 20])
        assert c.call(Sym("x")) == Vec("j", [10, 20])                 # `x evaluates x
        assert c.call(Vec("s", [".qp.get", "x"])) == Vec("j", [10, 20])   # `.qp.get`x
        assert c.call("") == Identity()


def test_errors_are_q_errors():
    with Server() as s, Conn(port=s.port) as c:
        msg = expect_qerror(lambda: c.call("1+1"), "qpeach: unsupported expression: 1+1")
        assert "qpeach evaluates literals, global names and f[x;y] / f x calls" in msg
        expect_qerror(lambda: c.call("select from t"), "unsupported expression: select from t")
        expect_qerror(lambda: c.call("nope[1]"), "unknown function: nope")
        expect_qerror(lambda: c.call([Sym(".qp.nope"), 1]), "unknown function: .qp.nope")
        expect_qerror(lambda: c.call(".qp.echo[1;2]"), "rank: .qp.echo")
        expect_qerror(lambda: c.call([Sym(".qp.set"), 1]), "rank: .qp.set")
        assert str(expect_qerror(lambda: c.call("undefinedname"), "undefinedname")) == "undefinedname"
        expect_qerror(lambda: c.call(".qp.get `nothere"), "nothere")
        expect_qerror(lambda: c.call(42), "unsupported message")
        # the connection survives errors
        assert c.call(".qp.echo 1") == 1


# What a kdb+ user types first. Each is answered by a one-line q error that
# says what the server evaluates and, where one exists, the .qp call to use.
Q_HABITS = [
    ("til 10", "q operators and keywords are not evaluated"),
    ("1+1", "q operators and keywords are not evaluated"),
    ("x-1", "q operators and keywords are not evaluated"),
    ("sum 1 2 3", "q operators and keywords are not evaluated"),
    ("{x*2} 3", "q operators and keywords are not evaluated"),
    ("\\t 1", "q operators and keywords are not evaluated"),
    ("`a in `a`b", "q operators and keywords are not evaluated"),
    ("count trade", "try .qp.count`trade"),
    ("count[`trade]", "try .qp.count`trade"),
    ("meta trade", "try .qp.meta`trade"),
    ("cols trade", "try .qp.meta`trade"),
    ("tables[]", "try .qp.tables[]"),
    ("tables", "try .qp.tables[]"),
    ("select from trade", "try .qp.get`trade, or a Python function on it via .qp.apply"),
    ("select sym from trade where px>1", "try .qp.get`trade"),
    ("exec px from trade", "try .qp.get`trade"),
    ("update px:2*px from trade", "try .qp.get`trade"),
    ("delete from trade where px>1", "try .qp.get`trade"),
]


def test_q_expressions_answered_with_what_is_supported():
    d = tmpdir()
    csv = os.path.join(d, "trade.csv")
    with open(csv, "w") as f:
        f.write("sym,px\na,1.5\nb,2.5\n")
    with Server("--load", f"trade={csv}") as s, Conn(port=s.port) as c:
        for text, hint in Q_HABITS:
            msg = expect_qerror(lambda: c.call(text), f"qpeach: unsupported expression: {text} (")
            assert hint in msg, (text, msg)
            assert "qpeach evaluates literals, global names and f[x;y] / f x calls" in msg, msg
            assert "\n" not in msg and len(msg) < 300, msg
            # the hint it gives works
            if "try .qp.count`trade" in msg:
                assert c.call(".qp.count`trade") == 2
            if "try .qp.tables[]" in msg:
                assert c.call(".qp.tables[]") == Vec("s", ["trade"])
        assert c.call(".qp.meta`trade")                       # what meta t / cols t point to
        assert c.call(".qp.get`trade") == c.call("trade")     # what select/exec point to
        # a malformed call that is not q: what is wrong with its argument
        msg = expect_qerror(lambda: c.call(".qp.echo 1 2.5x"),
                            'unsupported expression: .qp.echo 1 2.5x (bad number at "2.5x"; qpeach evaluates')
        msg = expect_qerror(lambda: c.call(".qp.echo \"a+b"), '(unterminated string at ""a+b"; qpeach evaluates literals')
        # an unknown function that is not a q keyword: as before
        assert str(expect_qerror(lambda: c.call("nope[1]"), "")) == "qpeach: unknown function: nope"
        # the same q words sent as (`f; args) lists and symbols
        msg = expect_qerror(lambda: c.call([Sym("count"), Sym("trade")]), "qpeach: unknown function: count (")
        assert "try .qp.count`trade" in msg
        msg = expect_qerror(lambda: c.call(Vec("s", ["meta", "trade"])), "unknown function: meta (")
        assert "try .qp.meta`trade" in msg
        msg = expect_qerror(lambda: c.call([Sym("til"), 10]), "unknown function: til (q operators")
        msg = expect_qerror(lambda: c.call(Sym("tables")), "unknown function: tables (try .qp.tables[]")
        # what is supported still works: literals evaluate to themselves
        assert c.call("42") == 42
        assert c.call(" 1 2 3h ") == Vec("h", [1, 2, 3])
        assert c.call("`a`b") == Vec("s", ["a", "b"])
        assert c.call('"hi"') == "hi"
        assert c.call("(1;`a;\"xy\")") == [1, Sym("a"), "xy"]
        assert c.call("-1.5") == -1.5
        # names of globals and calls of its functions
        assert c.call(".qp.count `trade") == 2
        assert c.call(".qp.count[`trade]") == 2
        assert c.call("trade") == c.call(".qp.get`trade")
        assert str(expect_qerror(lambda: c.call("undefinedname"), "")) == "undefinedname"


def test_qpeach_call_q_expressions():
    d = tmpdir()
    csv = os.path.join(d, "trade.csv")
    with open(csv, "w") as f:
        f.write("sym,px\na,1.5\nb,2.5\n")
    with Server("--load", f"trade={csv}") as s:
        for text, hint in Q_HABITS[:4] + Q_HABITS[7:14]:
            r = qpeach("call", s.addr, text)
            assert r.returncode == 1 and r.stdout == "", (text, r)
            line = r.stderr.rstrip("\n")
            assert "\n" not in line and line.startswith(f"'qpeach: unsupported expression: {text} ("), r.stderr
            assert hint in line, (text, line)
        # EXPR ARG...: the list ("count"; `trade)
        r = qpeach("call", s.addr, "count", "`trade")
        assert r.returncode == 1 and r.stderr.startswith("'qpeach: unknown function: count (try .qp.count`trade;"), r
        assert qpeach("call", s.addr, ".qp.count", "`trade").stdout == "2\n"
        assert qpeach("call", s.addr, ".qp.count`trade").stdout == "2\n"
        assert qpeach("call", s.addr, ".qp.tables[]").stdout == ",`trade\n"
        assert qpeach("call", s.addr, "1 2 3").stdout == "1 2 3\n"
        assert qpeach("call", s.addr, "`a`b").stdout == "`a`b\n"
    h = qpeach("call", "--help")
    assert h.returncode == 0
    for text in ("not a q interpreter", "a literal", "a global's name", "f[x;y]", ".qp.count`t",
                 ".qp.meta`t", ".qp.tables[]", ".qp.get`t", ".qp.apply", "not evaluated"):
        assert text in h.stdout, text


def test_builtin_info_tables_count_meta():
    with Server("-s", "3") as s, Conn(port=s.port) as c:
        t = Table({"sym": Vec("s", ["a", "b", "c"]), "px": Vec("f", [1.0, 2.0, 3.0]),
                   "n": Vec("j", [1, 2, 3]), "s": ["ab", "cd", "e"]})
        c.call([Sym(".qp.set"), Sym("trade"), t])
        c.call([Sym(".qp.set"), Sym("notatable"), 5])
        info = c.call(".qp.info[]")
        assert list(info) == ["version", "pid", "python", "threads", "cores", "tables"]
        assert info["pid"] == s.proc.pid and info["threads"] == 3
        assert info["cores"].t == "j" and sorted(info["cores"].items) == sorted(os.sched_getaffinity(0)), info
        # The embedded interpreter is Debian's python3, whatever is on PATH.
        debian = subprocess.run(["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"],
                                capture_output=True, text=True, check=True).stdout.strip()
        assert info["python"] == debian, info["python"]
        assert info["tables"] == Vec("s", ["trade"])
        assert c.call(".qp.tables[]") == Vec("s", ["trade"])
        assert c.call(".qp.count `trade") == 3
        assert c.call([Sym(".qp.count"), t]) == 3
        m = c.call(".qp.meta `trade")                  # keyed table: (+c) ! (+t f a)
        assert m.keys == Table({"c": Vec("s", ["sym", "px", "n", "s"])})
        assert m.values == Table({"t": "sfjC", "f": Vec("s", [""] * 4), "a": Vec("s", [""] * 4)})
        expect_qerror(lambda: c.call(".qp.meta `nosuch"), "nosuch")
        expect_qerror(lambda: c.call([Sym(".qp.meta"), 5]), "type")


def test_capability_negotiation():
    with Server() as s:
        for cap, want in [(3, 3), (5, 5), (6, 6), (7, 6), (1, 1), (None, 0)]:
            with Conn(port=s.port, cap=cap) as c:
                assert c.cap == want, (cap, c.cap)
                assert c.call(".qp.echo 1") == 1


def test_async_messages_keep_order_and_log_errors():
    with Server() as s, Conn(port=s.port) as c:
        for i in range(100):
            c.send([Sym(".qp.set"), Sym("counter"), i], msgtype=0)
        c.send("nosuchfn[1]", msgtype=0)               # no answer; logged
        assert c.call("counter") == 99                 # async ones ran first, in order
        assert harness.wait_for(lambda: any("async nosuchfn" in l for l in s.log))


def test_pipelined_sync_calls_answer_in_order():
    with Server("-s", "2") as s, Conn(port=s.port) as c:
        big = bytes(range(256)) * 1024                 # 256 KB: goes through the pool
        for i in range(50):
            c.send([Sym(".qp.echo"), big if i % 5 == 0 else i])
        for i in range(50):
            t, v = c.recv()
            assert t == 2 and v == (big if i % 5 == 0 else i)


def test_large_vector_round_trip():
    with Server("-s", "2") as s, Conn(port=s.port, timeout=120) as c:
        data = os.urandom(50 * 1024 * 1024)
        assert c.call([Sym(".qp.echo"), data]) == data
        c.call([Sym(".qp.set"), Sym("blob"), data])
        assert c.call("blob") == data
    with Server("-s", "0") as s, Conn(port=s.port, timeout=120) as c:   # main thread path
        data = os.urandom(3 * 1024 * 1024)
        assert c.call([Sym(".qp.echo"), data]) == data


def test_concurrent_clients():
    nthreads, ncalls = 50, 100
    errors = []
    with Server("-s", "2") as s:
        def client(k):
            try:
                with Conn(port=s.port, timeout=60) as c:
                    for i in range(ncalls):
                        v = [k, i, Sym(f"t{k}"), "x" * (i % 7)]
                        r = c.call([Sym(".qp.echo"), v])
                        if r != v:
                            errors.append((k, i, r))
                            return
            except Exception as e:                      # noqa: BLE001 - reported below
                errors.append((k, repr(e)))
        ts = [threading.Thread(target=client, args=(k,)) for k in range(nthreads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert not errors, errors[:3]
        assert s.alive()


def test_client_that_never_reads_does_not_block_others():
    with Server("-s", "2") as s:
        hog = Conn(port=s.port)
        hog.call([Sym(".qp.set"), Sym("big"), b"\x01" * (8 << 20)])
        hog.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for _ in range(40):                            # 320 MB of answers it never reads
            hog.send("big")
        with Conn(port=s.port, timeout=20) as c:
            for i in range(200):
                assert c.call([Sym(".qp.echo"), i]) == i
        hog.close()
        with Conn(port=s.port, timeout=20) as c:       # and the server got over it
            assert c.call(".qp.ping[]") is True


def test_malformed_message_gets_an_error_then_close_and_server_lives():
    """A well-framed message that does not decode gets an error and the
    connection goes on; a broken stream gets one error response saying why,
    then the connection closes. The server serves the next client."""
    def error_then_close(c, why):
        t, v = c.recv()
        assert t == 2 and isinstance(v, QError) and why in str(v) and "closing" in str(v), v
        assert c.s.recv(1) == b"", "the connection stays open after a broken stream"

    with Server() as s:
        with Conn(port=s.port) as c:
            # a char vector claiming a billion items in a tiny message
            body = bytes([10, 0]) + (10**9).to_bytes(4, "little")
            c.s.sendall(bytes([1, 1, 0, 0]) + (8 + len(body)).to_bytes(4, "little") + body)
            t, v = c.recv()
            assert t == 2 and isinstance(v, QError) and "truncated" in str(v), v
            assert c.call(".qp.echo 8") == 8
        with Conn(port=s.port) as c:
            c.s.sendall(b"\x01\x01\x00\x00\x04\x00\x00\x00")   # length < header
            error_then_close(c, "bad message header")
        with Conn(port=s.port) as c:
            assert c.call(".qp.echo 7") == 7


# Runs in the peer's network namespace: asks for `zeros` and prints the
# client's own address and the response's header, which the test checks.
_NS_CLIENT = """
import sys
sys.path.insert(0, sys.argv[1])
from qipc import Conn
with Conn(host=sys.argv[2], port=int(sys.argv[3])) as c:
    c.send("zeros")
    h = c._exact(8)
    c._exact(int.from_bytes(h[4:8], "little") - 8)
    print(c.s.getsockname()[0], h.hex())
"""


def test_compression_to_non_local_peers():
    """q compresses large messages to peers on other machines only; our
    server sees a client in another network namespace (its peer address is
    not loopback) as not local, as q would, and a loopback one as local."""
    with harness.netns_peer() as peer:
        ip, port = peer.host_ip, harness.free_port()
        with Server("--insecure", port=f"{ip}:{port}"):
            lo = socket.socket()                       # loopback: from 127.0.0.1 to ip
            lo.settimeout(30)
            lo.bind(("127.0.0.1", 0))
            lo.connect((ip, port))
            with Conn(sock=lo) as c:                   # set a compressible global
                c.call([Sym(".qp.set"), Sym("zeros"), bytes(1 << 20)])
                c.send("zeros")
                h = c._exact(8)
                assert h[2] == 0                       # local peer: never compressed
                c._exact(int.from_bytes(h[4:8], "little") - 8)
            r = peer.run(["/usr/bin/python3", "-c", _NS_CLIENT, os.path.dirname(os.path.abspath(__file__)),
                          ip, port], capture_output=True, text=True)
            assert r.returncode == 0, r
            src, hx = r.stdout.split()
            assert src == peer.peer_ip, r                  # really not loopback
            h = bytes.fromhex(hx)
            n = int.from_bytes(h[4:8], "little")
            assert h[2] == 1 and n < (1 << 19), (h, n)   # compressed, well under half
            # our C client: decompresses responses, compresses its large requests
            r = peer.run([harness.QPEACH, "call", f"{ip}:{port}", ".qp.count", "0x" + "00" * 60000],
                         capture_output=True, text=True)
            assert r.returncode == 0 and r.stdout.strip() == "60000", r
            r = peer.run([harness.QPEACH, "call", f"{ip}:{port}", "zeros"], capture_output=True, text=True)
            assert r.returncode == 0 and r.stdout.startswith("0x0000"), r


# ------------------------------------------------------------ auth

def test_passwd_file_format_and_mode():
    d = tmpdir()
    path = passwd_file(d, {"alice": "s3cret", "bob": "pw2"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = open(path).read().splitlines()
    assert [l.split(":")[0] for l in lines] == ["alice", "bob"]
    scheme, iters, salt, h = lines[0].split(":", 1)[1].split("$")
    assert scheme == "pbkdf2-sha256" and int(iters) >= 100000 and len(salt) == 32 and len(h) == 64
    assert "s3cret" not in open(path).read()
    r = qpeach("passwd", path, "alice", input="new\n")
    assert r.returncode == 0
    lines2 = open(path).read().splitlines()
    assert len(lines2) == 2 and lines2[1] == lines[1] and lines2[0] != lines[0]
    assert qpeach("passwd", path, "a:b", input="x\n").returncode != 0
    assert qpeach("passwd", path, "carol", input="").returncode != 0
    assert qpeach("passwd", "--help").returncode == 0


def test_auth_accepts_and_rejects():
    d = tmpdir()
    path = passwd_file(d, {"alice": "s3cret", "bob": "hunter2"})
    with Server("-u", path) as s:
        with Conn(port=s.port, user="alice", password="s3cret") as c:
            assert c.call(".qp.echo 1") == 1
        with Conn(port=s.port, user="bob", password="hunter2") as c:
            assert c.call(".qp.echo 2") == 2
        for user, pw in [("alice", "wrong"), ("mallory", "s3cret"), ("alice", ""), ("", "")]:
            try:
                Conn(port=s.port, user=user, password=pw).close()
                raise AssertionError(f"{user}:{pw} was let in")
            except PermissionError:
                pass
        assert harness.wait_for(lambda: any("failed login for user 'mallory'" in l for l in s.log))
        assert not any("s3cret" in l or "wrong" in l for l in s.log)   # no passwords in logs
        # our C client: the same answers, and its error text
        r = qpeach("call", "-u", "alice:s3cret", s.addr, ".qp.echo 5")
        assert r.returncode == 0 and r.stdout.strip() == "5", r
        r = qpeach("call", "-u", "alice:nope", s.addr, ".qp.echo 5")
        assert r.returncode == 2 and "access denied" in r.stderr, r
        r = qpeach("call", s.addr, ".qp.echo 5")
        assert r.returncode == 2 and "access denied" in r.stderr, r
        # -u @FILE keeps the password off the command line
        cred = os.path.join(d, "alice.cred")
        with open(cred, "w") as f:
            f.write("alice:s3cret\n")
        r = qpeach("call", "-u", "@" + cred, s.addr, ".qp.echo 6")
        assert r.returncode == 0 and r.stdout.strip() == "6", r
        r = qpeach("call", "-u", "@" + cred + ".missing", s.addr, ".qp.echo 6")
        assert r.returncode == 2 and "cannot read credentials file" in r.stderr, r


def test_failed_login_does_not_stall_others():
    d = tmpdir()
    path = passwd_file(d, {"alice": "pw"})
    with Server("-u", path, "-s", "2") as s:
        bad = []

        def brute():
            for _ in range(4):
                try:
                    Conn(port=s.port, user="alice", password="guess").close()
                except PermissionError:
                    bad.append(1)
        t = threading.Thread(target=brute)
        t.start()
        with Conn(port=s.port, user="alice", password="pw") as c:
            for i in range(100):
                assert c.call([Sym(".qp.echo"), i]) == i
        t.join(30)
        assert len(bad) == 4


def test_refuses_wide_listen_without_passwords():
    port = harness.free_port()
    r = qpeach("serve", "-p", f"0.0.0.0:{port}", timeout=120)
    assert r.returncode != 0 and "without a password file" in r.stderr and "--insecure" in r.stderr
    with Server("--insecure", port=f"0.0.0.0:{port}") as s:
        assert "listening on 0.0.0.0:" in "".join(s.log)
        with Conn(port=port) as c:
            assert c.call(".qp.ping[]") is True


# ------------------------------------------------------------ unix, TLS

def test_unix_socket():
    d = tmpdir()
    path = os.path.join(d, "kx.sock")
    with Server(unix=path) as s:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with Conn(unix=path) as c:
            assert c.call(".qp.echo `unix") == Sym("unix")
        r = qpeach("call", f"unix:{path}", ".qp.echo 1 2")
        assert r.returncode == 0 and r.stdout.strip() == "1 2", r
        r = qpeach("call", f"@{path}", ".qp.ping[]")
        assert r.stdout.strip() == "1b", r
    assert not os.path.exists(path)                    # removed at exit
    port = harness.free_port()                         # q's unix://PORT: abstract /tmp/kx.PORT
    with Server(port=f"unix://{port}") as s:
        r = qpeach("call", f"unix://{port}", ".qp.echo `abstract")
        assert r.returncode == 0 and r.stdout.strip() == "`abstract", r
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(f"\0/tmp/kx.{port}")
        with Conn(sock=sock) as c:
            assert c.call(".qp.ping[]") is True


def test_client_timeouts():
    """A peer that accepts but never answers: the handshake, then a call,
    run into our client's timeouts instead of hanging."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    port = lst.getsockname()[1]
    held = []

    def accept_and_hold(answer):
        c, _ = lst.accept()
        held.append(c)
        if answer:
            c.recv(100)
            c.sendall(b"\x03")                        # handshake done, then silence
    t = threading.Thread(target=accept_and_hold, args=(False,))
    t.start()
    r = qpeach("call", "--timeout", "300", f"127.0.0.1:{port}", ".qp.ping[]")
    assert r.returncode == 2 and "timed out" in r.stderr, r
    t.join()
    t = threading.Thread(target=accept_and_hold, args=(True,))
    t.start()
    r = qpeach("call", "--timeout", "300", f"127.0.0.1:{port}", ".qp.ping[]")
    assert r.returncode == 2 and "timed out" in r.stderr, r
    t.join()
    for c in held:
        c.close()
    lst.close()


def test_tls():
    d = tmpdir()
    cert, key = self_signed_cert(d, "server")
    other, _ = self_signed_cert(d, "other")
    pw = passwd_file(d, {"alice": "s3cret"})
    with Server("-u", pw, "--tls-cert", cert, "--tls-key", key) as s:
        ok = qpeach("call", "-u", "alice:s3cret", "--tls-ca", cert, s.addr, ".qp.echo `tls")
        assert ok.returncode == 0 and ok.stdout.strip() == "`tls", ok
        byname = qpeach("call", "-u", "alice:s3cret", "--tls-ca", cert, f"localhost:{s.port}", ".qp.ping[]")
        assert byname.returncode == 0, byname
        wrong = qpeach("call", "-u", "alice:s3cret", "--tls-ca", other, s.addr, ".qp.ping[]")
        assert wrong.returncode == 2 and "certificate verify failed" in wrong.stderr, wrong
        system = qpeach("call", "-u", "alice:s3cret", "--tls", s.addr, ".qp.ping[]")
        assert system.returncode == 2 and "certificate" in system.stderr, system
        nover = qpeach("call", "-u", "alice:s3cret", "--tls-no-verify", s.addr, ".qp.ping[]")
        assert nover.returncode == 0, nover
        bad = qpeach("call", "-u", "alice:nope", "--tls-ca", cert, s.addr, ".qp.ping[]")
        assert bad.returncode == 2 and "access denied" in bad.stderr, bad
        plain = qpeach("call", "-u", "alice:s3cret", "--timeout", "3000", s.addr, ".qp.ping[]")
        assert plain.returncode == 2, plain
        # Python's ssl module as an independent TLS client
        ctx = ssl.create_default_context(cafile=cert)
        raw = socket.create_connection(("127.0.0.1", s.port), 10)
        with ctx.wrap_socket(raw, server_hostname="localhost") as ts:
            c = Conn(sock=ts, user="alice", password="s3cret")
            data = os.urandom(5 << 20)
            assert c.call([Sym(".qp.echo"), data]) == data
            assert c.call(".qp.echo 1 2 3") == Vec("j", [1, 2, 3])
    r = qpeach("serve", "-p", "0", "--tls-cert", cert, timeout=120)
    assert r.returncode != 0 and "--tls-key" in r.stderr


# ------------------------------------------------------------ the CLI

def test_qpeach_call_output_and_exit_codes():
    d = tmpdir()
    csv = os.path.join(d, "trade.csv")
    with open(csv, "w") as f:
        f.write("sym,px\na,1.5\nb,2.5\n")
    with Server("--load", f"trade={csv}") as s:
        def call(*a):
            return qpeach("call", s.addr, *a)
        assert call(".qp.echo 42").stdout == "42\n"
        assert call(".qp.echo 1 2 3").stdout == "1 2 3\n"
        assert call(".qp.echo `a`b").stdout == "`a`b\n"
        assert call(".qp.echo", '"hi"').stdout == '"hi"\n'
        assert call(".qp.echo", "1.5").stdout == "1.5\n"
        assert call(".qp.echo", "-3").stdout == "-3\n"                  # not an option
        assert call(".qp.set", "`v", "(1;`a)").stdout == "`v\n"
        assert call("v").stdout == "1\n`a\n"                  # q shows a list item per line
        assert call(".qp.echo", "`a`b!1 2").returncode == 2      # not a literal we parse
        t = call(".qp.meta `trade")
        assert t.returncode == 0 and t.stdout.splitlines()[:3] == ["c  | t f a", "---| -----", "sym| s    "], t
        e = call("1+1")
        assert e.returncode == 1 and e.stderr.startswith("'qpeach: unsupported expression: 1+1 (q operators")
        e = call(".qp.echo", "1+")
        assert e.returncode == 2 and "argument 1" in e.stderr
    r = qpeach("serve", "-p", "0", "--load", f"t={d}/missing.csv", timeout=120)
    assert r.returncode == 1 and "missing.csv" in r.stderr, r
    port = harness.free_port()
    r = qpeach("call", f"127.0.0.1:{port}", ".qp.ping[]")
    assert r.returncode == 2 and "qpeach call" in r.stderr
    assert qpeach("call", "--help").returncode == 0
    assert qpeach("serve", "--help").returncode == 0
    assert qpeach("help", "call").returncode == 0


def test_port_zero_prints_the_port_and_signals_stop_cleanly():
    for sig in (signal.SIGTERM, signal.SIGINT):
        p = subprocess.Popen([harness.QPEACH, "serve", "-p", "0"], stderr=subprocess.PIPE, text=True)
        line = p.stderr.readline()
        while line and "listening on" not in line:        # other modules may log first
            line = p.stderr.readline()
        assert line.startswith("qpeach serve: listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        with Conn(port=port) as c:
            assert c.call(".qp.ping[]") is True
        p.send_signal(sig)
        _, rest = p.communicate(timeout=120)            # reads stderr: no pipe stall
        check_sanitizer_log(rest, p.returncode)


def test_usage_errors_exit_2():
    for args in (["-p", "nonsense"], ["-p", "99999999"], ["-p", "0", "--pin", "zz"], ["--nosuch"]):
        r = qpeach("serve", *args, timeout=20)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.strip(), args
