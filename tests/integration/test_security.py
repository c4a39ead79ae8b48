"""Security of `qpeach serve` / `qpeach passwd` / `qpeach call`, checked
against real processes and, where it can be, independently of our code
(Python's hashlib recomputes the stored PBKDF2 hashes; Python's ssl and the
openssl CLI make the certificates).
"""
import hashlib
import os
import re
import socket
import stat
import subprocess

import harness
from harness import ROOT, Server, children, passwd, qpeach, self_signed_cert, tmpdir
from qipc import Conn, Sym


# ------------------------------------------------------------------ passwords

def test_passwords_only_as_salted_slow_hashes():
    d = tmpdir()
    path = os.path.join(d, "passwd")
    same = "correct horse battery staple"
    for u in ["alice", "bob", "carol"]:
        passwd(path, u, same)                      # one password, three users
    raw = open(path, "rb").read()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert same.encode() not in raw and b"horse" not in raw
    entries = {}
    for line in raw.decode().splitlines():
        user, rest = line.split(":", 1)
        scheme, iters, salt, h = rest.split("$")
        assert scheme == "pbkdf2-sha256", scheme
        assert int(iters) >= 100000, iters         # slow: OWASP-range PBKDF2
        assert re.fullmatch(r"[0-9a-f]{32}", salt) and re.fullmatch(r"[0-9a-f]{64}", h)
        # an independent check that this really is PBKDF2-HMAC-SHA256 of the
        # password under this salt, and not something merely shaped like it
        want = hashlib.pbkdf2_hmac("sha256", same.encode(), bytes.fromhex(salt), int(iters))
        assert want.hex() == h, user
        entries[user] = (salt, h)
    assert len({s for s, _ in entries.values()}) == 3, "salts repeat across users"
    assert len({h for _, h in entries.values()}) == 3, "equal passwords give equal hashes"
    # setting the same password again gives a fresh salt
    passwd(path, "alice", same)
    salt2 = open(path).read().splitlines()[0].split("$")[2]
    assert salt2 != entries["alice"][0]


def test_constant_time_comparison_in_source():
    """Code review, kept honest: the stored hash and the login cache are
    compared with OpenSSL's CRYPTO_memcmp, and auth.c compares nothing
    secret with memcmp/strcmp (user names are not secret; unknown users
    cost a dummy PBKDF2 so timing does not tell which exist)."""
    src = open(os.path.join(ROOT, "src", "net", "auth.c")).read()
    assert src.count("CRYPTO_memcmp(") >= 2
    assert not re.search(r"(?<!CRYPTO_)memcmp\(", src)
    for m in re.finditer(r"str(n)?cmp\(([^)]*)\)", src):
        assert "hash" not in m.group(2) and "password" not in m.group(2), m.group(0)
    assert "dummy" in src


# ------------------------------------------------------------------ logins

def _still_open(s):
    """The server has not closed s: a non-blocking read would block."""
    s.settimeout(None)                             # else Python polls first, blocking
    try:
        return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except ConnectionError:
        return False


def test_failed_logins_logged_and_slowed():
    d = tmpdir()
    path = os.path.join(d, "passwd")
    passwd(path, "alice", "s3cret")
    with Server("-u", path, "-s", "1") as srv:
        with Conn(port=srv.port, user="alice", password="s3cret") as good:
            for n, (user, pw) in enumerate([("alice", "wrong"), ("mallory", "s3cret")]):
                s = socket.create_connection(("127.0.0.1", srv.port), 10)
                s.sendall(f"{user}:{pw}".encode() + b"\x03\x00")
                line = f"failed login for user '{user}'"
                assert harness.wait_for(lambda: any(line in l for l in srv.log), 20), srv.log
                # The verdict is in (logged) but the connection is held open:
                # the client waits for its refusal (the delay), while others
                # are served meanwhile.
                assert _still_open(s), "a failed login was answered at once"
                assert good.call([Sym(".qp.echo"), n]) == n
                s.settimeout(20)
                assert s.recv(1) == b""                    # then refused: closed
                s.close()
        log = "".join(srv.log)
        assert "s3cret" not in log and "wrong" not in log     # no passwords in logs


def test_login_log_lines_cannot_be_forged():
    """A user name is client text: control bytes and non-ASCII are escaped,
    so a newline cannot start a forged log line (and the log stays valid
    text for whatever reads it)."""
    d = tmpdir()
    path = os.path.join(d, "passwd")
    passwd(path, "alice", "s3cret")
    with Server("-u", path) as srv:
        evil = b"x\nqpeach serve- forged line\xff\x1b[2J"
        s = socket.create_connection(("127.0.0.1", srv.port), 10)
        s.sendall(evil + b":pw\x03\x00")
        s.settimeout(20)
        assert s.recv(1) == b""
        s.close()
        assert harness.wait_for(lambda: any("failed login" in l for l in srv.log), 20)
        lines = [l for l in srv.log if "failed login" in l]
        assert len(lines) == 1 and "x\\x0aqpeach serve- forged" in lines[0], lines
        assert "\\xff\\x1b[2J" in lines[0], lines
        assert not any(l.startswith("qpeach serve- forged") for l in srv.log)


# ------------------------------------------------------------------ listening

def test_no_listening_beyond_loopback_without_passwords():
    # the host side of a veth pair into a namespace of the test's own is a
    # real non-loopback address of this machine that leads nowhere else
    with harness.netns_peer() as peer:
        for addr in ["0.0.0.0:{p}", "*:{p}", "{ip}:{p}"]:
            a = addr.format(p=harness.free_port(), ip=peer.host_ip)
            r = qpeach("serve", "-p", a, timeout=10)
            assert r.returncode == 2, (a, r)          # a usage error
            assert "refusing to listen" in r.stderr and "without a password file" in r.stderr, r.stderr
            assert "-u FILE" in r.stderr and "--insecure" in r.stderr, r.stderr
    # loopback needs no passwords; beyond it, -u or --insecure will do
    for a in ["127.0.0.1:{p}", "localhost:{p}", "{p}"]:
        with Server(port=a.format(p=harness.free_port())) as s:
            assert s.alive()
    d = tmpdir()
    path = os.path.join(d, "passwd")
    passwd(path, "alice", "pw")
    port = harness.free_port()
    with Server("-u", path, port=f"0.0.0.0:{port}") as s:
        with Conn(port=port, user="alice", password="pw") as c:
            assert c.call([Sym(".qp.echo"), 1]) == 1
    with Server("--insecure", port=f"0.0.0.0:{harness.free_port()}") as s:
        assert "listening on 0.0.0.0:" in "".join(s.log)


# ------------------------------------------------------------------ TLS

def test_tls_client_verifies_the_certificate():
    d = tmpdir()
    cert, key = self_signed_cert(d, "server")
    other, _ = self_signed_cert(d, "other")
    elsewhere, ekey = self_signed_cert(d, "elsewhere", cn="db.example", san="DNS:db.example")
    pw = os.path.join(d, "passwd")
    passwd(pw, "alice", "s3cret")
    with Server("-u", pw, "--tls-cert", cert, "--tls-key", key) as srv:
        ok = qpeach("call", "-u", "alice:s3cret", "--tls-ca", cert, srv.addr, ".qp.echo 1")
        assert ok.returncode == 0 and ok.stdout.strip() == "1", ok
        # a certificate from another issuer
        r = qpeach("call", "-u", "alice:s3cret", "--tls-ca", other, srv.addr, ".qp.echo 1")
        assert r.returncode == 2 and "certificate verify failed" in r.stderr, r
        # the system store does not know a self-signed certificate
        r = qpeach("call", "-u", "alice:s3cret", "--tls", srv.addr, ".qp.echo 1")
        assert r.returncode == 2 and "certificate" in r.stderr, r
        assert not any("s3cret" in l for l in srv.log)
    # a trusted certificate for another name
    with Server("-u", pw, "--tls-cert", elsewhere, "--tls-key", ekey) as srv:
        r = qpeach("call", "-u", "alice:s3cret", "--tls-ca", elsewhere, srv.addr, ".qp.echo 1")
        assert r.returncode == 2 and "certificate" in r.stderr, r
        r = qpeach("call", "-u", "alice:s3cret", "--tls-ca", elsewhere, f"localhost:{srv.port}", ".qp.echo 1")
        assert r.returncode == 2 and "certificate" in r.stderr, r


def test_tls_server_refuses_plain_and_garbage():
    d = tmpdir()
    cert, key = self_signed_cert(d, "server")
    pw = os.path.join(d, "passwd")
    passwd(pw, "alice", "s3cret")
    with Server("-u", pw, "--tls-cert", cert, "--tls-key", key) as srv:
        for junk in [b"alice:s3cret\x03\x00", os.urandom(600), b"\x16\x03\x01\xff\xff" + os.urandom(40)]:
            s = socket.create_connection(("127.0.0.1", srv.port), 10)
            s.sendall(junk)
            s.settimeout(20)
            try:
                data = s.recv(100)
                assert data != b"\x03", "plain q handshake accepted on a TLS port"
            except ConnectionError:
                pass
            s.close()
        ok = qpeach("call", "-u", "alice:s3cret", "--tls-ca", cert, srv.addr, ".qp.ping[]")
        assert ok.returncode == 0, ok
        # A plain client (anonymous login: 2 bytes, too short for a TLS
        # record) is answered at once, not after a handshake timeout.
        s = socket.create_connection(("127.0.0.1", srv.port), 10)
        s.sendall(b"\x03\x00")
        s.settimeout(3)
        try:
            assert s.recv(100) == b"", "plain client on a TLS port answered"
        except ConnectionResetError:
            pass                                   # closed with bytes unread: a reset
        except socket.timeout:
            raise AssertionError("plain client on a TLS port left waiting")
        s.close()
        plain = qpeach("call", "--timeout", "20000", srv.addr, ".qp.ping[]", timeout=5)
        assert plain.returncode != 0 and "TLS" in plain.stderr, plain


# ------------------------------------------------------------------ unix sockets

def test_unix_socket_owner_only_even_with_umask_0():
    d = tmpdir()
    os.chmod(d, 0o755)
    for form in ["unix:{}", "@{}"]:
        path = os.path.join(d, f"kx{len(form)}.sock")
        old = os.umask(0)                          # the child inherits it
        try:
            srv = Server(port=form.format(path))
        finally:
            os.umask(old)
        with srv:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            parent = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
            assert mode & 0o077 == 0 or parent & 0o077 == 0, (oct(mode), oct(parent))
            assert mode == 0o600, oct(mode)
            with Conn(unix=path) as c:
                assert c.call([Sym(".qp.echo"), 3]) == 3


def test_run_local_worker_sockets_are_private():
    """`qpeach run` starts its local workers on unix sockets: those live in
    a folder only the user can enter, and the sockets are owner-only."""
    d = tmpdir()
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_trades.py"),
                    "--rows", "4000", "--out", os.path.join(d, "t.csv")], check=True)
    with open(os.path.join(d, "f.py"), "w") as f:
        f.write("import time\ndef f(t):\n    time.sleep(0.2)\n    return len(t['size'])\n")
    with open(os.path.join(d, "j.ini"), "w") as f:
        f.write("[job]\nfunction = f.py:f\n[input]\ntable = t\nfile = t.csv\n[partition]\npieces = 20\n"
                "[workers]\nlocal = 2\n[merge]\nhow = sum\n[output]\npath = -\n")
    old = os.umask(0)
    try:
        proc = subprocess.Popen([harness.QPEACH, "run", os.path.join(d, "j.ini")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        os.umask(old)
    seen = []

    def sockets():
        for k in children(proc.pid):
            try:
                argv = open(f"/proc/{k}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            for a in argv:
                a = a.decode()
                if a.startswith("unix:") or a.startswith("@/"):
                    seen.append(a.split(":", 1)[1] if a.startswith("unix:") else a[1:])
        return len(seen) >= 2 and all(os.path.exists(p) for p in seen)
    assert harness.wait_for(sockets, 60), seen
    for p in seen:
        mode = stat.S_IMODE(os.stat(p).st_mode)
        parent = stat.S_IMODE(os.stat(os.path.dirname(p)).st_mode)
        assert parent & 0o077 == 0, (p, oct(parent))
        assert mode & 0o077 == 0, (p, oct(mode))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out == "x\n4000\n", out                    # the result as CSV on stdout
