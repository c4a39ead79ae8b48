"""Shared fixtures for integration tests: real `qpeach serve` processes.

Server(...) starts build/qpeach serve on a free loopback port (or a unix
socket), waits for its ready line on stderr, and stops it (SIGTERM, then
SIGKILL) on stop() or when used as a context manager. Nothing here mocks
our own parts.
"""
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("QPEACH_BUILD", "build"))
QPEACH = os.path.join(BUILD, "qpeach")


class Skip(Exception):
    """Raised by a test that cannot run here; counted as skipped."""


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
