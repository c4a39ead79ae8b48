"""Shared fixtures for integration tests: real `qpeach serve` processes.

Server(...) starts build/qpeach serve on a free loopback port (or a unix
socket), waits for its ready line on stderr, and stops it (SIGTERM, then
SIGKILL) on stop() or when used as a context manager. Nothing here mocks
our own parts.

netns_peer() gives a test a peer that is not on loopback without sending
anything beyond this machine: a network namespace of its own, joined to the
host by a veth pair on a private /30. The other helpers (rss_kb, children,
self_signed_cert, passwd, passwd_file) are shared by several test files.
"""
import contextlib
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("QPEACH_BUILD", "build"))
QPEACH = os.path.join(BUILD, "qpeach")


class Skip(Exception):
    """Raised by a test that cannot run here; counted as skipped. Only for
    what this machine lacks (a second core, network namespaces), never to
    hide a failure of our own code."""


class NoFixtures(Skip):
    """The q-written kdb+ fixtures are not beside this clone: the test did
    not run. tests/run.py counts these in one line (tests/README.md)."""


# q-written databases for conformance tests, read in place: $QPEACH_FIXTURES,
# or ../shared/fixtures/kdb beside the repository.
FIXTURES = os.environ.get("QPEACH_FIXTURES") or os.path.join(
    os.path.dirname(ROOT), "shared", "fixtures", "kdb")


def fixture(*parts):
    """The path of a fixture under FIXTURES. Raises NoFixtures when the
    fixtures are absent; a fixture missing from a present set is a failure
    (a broken set must not pass as skipped)."""
    if os.environ.get("QPEACH_FIXTURES") and not os.path.isdir(FIXTURES):
        raise AssertionError(f"QPEACH_FIXTURES={FIXTURES}: no such folder")
    if not os.path.isdir(FIXTURES):
        raise NoFixtures("no kdb+ fixtures beside this clone")
    path = os.path.join(FIXTURES, *parts)
    assert os.path.exists(path), f"fixture {path} missing from {FIXTURES}"
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qpeach(*args, input=None, timeout=60, check=False, env=None):
    """Runs the qpeach binary; returns CompletedProcess (text)."""
    return subprocess.run([QPEACH, *map(str, args)], input=input, capture_output=True,
                          text=True, timeout=timeout, check=check, env=env)


def tmpdir():
    return tempfile.mkdtemp(prefix="qpeach-test-")


class Server:
    """A real `qpeach serve` child. args are extra serve arguments."""

    def __init__(self, *args, port=None, unix=None, ready_timeout=30, env=None):
        self.port = port if port is not None else (None if unix else free_port())
        self.unix = unix
        listen = f"unix:{unix}" if unix else str(self.port)
        self.argv = [QPEACH, "serve", "-p", listen, *map(str, args)]
        self.log = []
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.log.append(line)
                if "listening on" in line:
                    ready.set()
            ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        if not ready.wait(ready_timeout) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("qpeach serve did not start: " + "".join(self.log))

    @property
    def addr(self):
        return f"unix:{self.unix}" if self.unix else f"127.0.0.1:{self.port}"

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._pump.join(2)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def wait_for(pred, timeout=10, interval=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(interval)
    return False


# ------------------------------------------------------------ processes

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def cmdline(pid):
    """A process's command line (NUL-separated bytes), b"" once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def asan_client_reexec():
    """Under a sanitizer build the client extension is in
    $(BUILD)/python/qpeach and loads only with the ASan runtime first: the
    calling test module is started again that way (once)."""
    d = os.path.join(BUILD, "python", "qpeach")
    if not os.path.isdir(d) or "libasan" in os.environ.get("LD_PRELOAD", ""):
        return
    lib = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True,
                         text=True).stdout.strip()
    env = dict(os.environ, LD_PRELOAD=lib, QPEACH_EXT_DIR=d,
               ASAN_OPTIONS="detect_leaks=0:" + os.environ.get("ASAN_OPTIONS", ""))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def children(pid):
    """Child pids of pid, from every thread: /proc/PID/task/TID/children
    lists only what thread TID forked (a `qpeach serve -s -N` restarts its
    workers from its Python thread, not its first one)."""
    kids = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass    # a thread that just ended
    return kids


# ------------------------------------------------------------ credentials

def self_signed_cert(d, name="server", cn="localhost", san="IP:127.0.0.1,DNS:localhost"):
    """A fresh self-signed certificate and key (openssl CLI, not our code) in
    d as NAME.pem / NAME.key; returns (cert, key)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", f"/CN={cn}", "-addext", f"subjectAltName={san}"],
                   check=True, capture_output=True)
    return cert, key


def passwd(path, user, pw):
    """`qpeach passwd PATH USER` with pw on stdin; must succeed."""
    r = qpeach("passwd", path, user, input=pw + "\n")
    assert r.returncode == 0, r.stderr


def passwd_file(d, users):
    """d/passwd holding users ({name: password}); returns its path."""
    path = os.path.join(d, "passwd")
    for u, p in users.items():
        passwd(path, u, p)
    return path


# ------------------------------------------------------------ a non-loopback peer

# Private /30 blocks for veth pairs come from here; a run picks one from its
# pid, so parallel runs (other pids) do not clash, and skips blocks in use.
NETNS_NET = ipaddress.ip_network("10.213.0.0/16")
NETNS_PREFIX = "qpeach-"
_netns_seq = [0]


def _ip(*args, check=True):
    r = subprocess.run(["ip", *map(str, args)], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(map(str, args))}: {r.stderr.strip()}")
    return r


class NetnsPeer:
    """A network namespace joined to the host by a veth pair: the host side
    has host_ip, the namespace side peer_ip (one /30). A server bound to
    host_ip sees clients started with run()/popen() as coming from peer_ip,
    a non-loopback address, and no packet leaves this machine."""

    def __init__(self, name, host_if, peer_if, host_ip, peer_ip):
        self.name, self.host_if, self.peer_if = name, host_if, peer_if
        self.host_ip, self.peer_ip = host_ip, peer_ip

    def argv(self, argv):
        return ["ip", "netns", "exec", self.name, *map(str, argv)]

    def run(self, argv, **kw):
        """subprocess.run of argv inside the namespace (timeout 60 s unless given)."""
        kw.setdefault("timeout", 60)
        return subprocess.run(self.argv(argv), **kw)

    def popen(self, argv, **kw):
        return subprocess.Popen(self.argv(argv), **kw)


def _sweep_stale_netns():
    """Namespaces left by runs that were killed (the runner's timeout sends
    SIGKILL, so their finally never ran): their pid is gone. Deleting the
    namespace deletes its veth end and so the pair."""
    r = _ip("netns", "list", check=False)
    for line in r.stdout.splitlines():
        m = re.match(re.escape(NETNS_PREFIX) + r"(\d+)-\d+\b", line)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _ip("netns", "del", line.split()[0], check=False)


def _free_block(pid):
    blocks = NETNS_NET.num_addresses // 4
    for k in range(blocks):
        net = ipaddress.ip_network(f"{NETNS_NET.network_address + ((pid + k) % blocks) * 4}/30")
        if not _ip("-4", "-o", "addr", "show", "to", net, check=False).stdout.strip():
            return net
    raise RuntimeError(f"no free /30 in {NETNS_NET}")


@contextlib.contextmanager
def netns_peer():
    """Yields a NetnsPeer; always deletes the namespace and the veth pair.
    Raises Skip when namespaces cannot be made here (not root, no iproute2)."""
    pid = os.getpid()
    _netns_seq[0] += 1
    seq = _netns_seq[0]
    name = f"{NETNS_PREFIX}{pid}-{seq}"
    host_if, peer_if = f"qph{pid}x{seq}", f"qpn{pid}x{seq}"      # <= 15 chars
    try:
        _sweep_stale_netns()
        r = _ip("netns", "add", name, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise Skip(f"no network namespaces here: {e}")
    if r.returncode != 0:
        raise Skip(f"no network namespaces here: ip netns add: {r.stderr.strip()}")
    try:
        net = _free_block(pid)
        host_ip, peer_ip = str(net.network_address + 1), str(net.network_address + 2)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", name)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{peer_ip}/30", "dev", peer_if)
        _ip("-n", name, "link", "set", peer_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield NetnsPeer(name, host_if, peer_if, host_ip, peer_ip)
    finally:
        _ip("link", "del", host_if, check=False)      # takes its peer end with it
        _ip("netns", "del", name, check=False)
