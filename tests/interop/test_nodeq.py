"""Interop: node-q (npm) against a real `qpeach serve` with a password file.

Installs node-q into tests/interop/node_modules on first use (npm install
--no-audit --no-fund node-q); skips when node/npm are missing or the
install fails (no network)."""
import os
import shutil
import subprocess

import harness
from harness import Server, qpeach, tmpdir

HERE = os.path.dirname(os.path.abspath(__file__))


def _node_q():
    if not shutil.which("node") or not shutil.which("npm"):
        raise harness.Skip("node/npm not installed")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "node-q")):
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "node-q"],
                           cwd=HERE, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise harness.Skip("npm install node-q failed: " + r.stderr[-300:])


def test_nodeq_echo_and_globals():
    _node_q()
    d = tmpdir()
    pw = os.path.join(d, "passwd")
    assert qpeach("passwd", pw, "jsuser", input="js-secret\n").returncode == 0
    with Server("-u", pw, "-s", "1") as s:
        r = subprocess.run(["node", os.path.join(HERE, "nodeq_echo.js"), str(s.port), "jsuser", "js-secret"],
                           cwd=HERE, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
        # and node-q's connect fails on a wrong password
        r = subprocess.run(["node", os.path.join(HERE, "nodeq_echo.js"), str(s.port), "jsuser", "bad"],
                           cwd=HERE, capture_output=True, text=True, timeout=120)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "failed login for user 'jsuser'" in "".join(s.log)
