"""`pip install ./python` as the README says, offline: a venv made with
Debian's python3 (--system-site-packages, for numpy), pip without build
isolation and without an index, the extension built against the
repository's build/libqpeach.a. The installed package (not python/ on
PYTHONPATH) then calls a real `qpeach serve`."""
import os
import subprocess
import sys

import harness
from harness import Server

ROOT = harness.ROOT
PY = "/usr/bin/python3"

PROG = r"""
import sys, numpy as np
import qpeach as kx
assert 'site-packages' in kx.__file__, kx.__file__
sess = kx.remote.session(port=int(sys.argv[1]))

@kx.remote.function(sess)
def f(x):
    return int(np.sum(x)) + 1

print(f(np.arange(5)), kx.q.msum(2, np.arange(4)).tolist(), repr(sess))
sess.close()
"""


def test_pip_install_offline_in_venv():
    if not os.path.exists(os.path.join(ROOT, "build", "libqpeach.a")):
        raise harness.Skip("build/libqpeach.a is missing: run make")
    d = harness.tmpdir()
    venv = os.path.join(d, "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QPEACH_EXT_DIR",
                                                            "LD_PRELOAD", "PIP_INDEX_URL")}
    env["QPEACH_BUILD"] = "build"     # the plain library, even in a sanitizer run
    r = subprocess.run([PY, "-m", "venv", "--system-site-packages", venv],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--no-build-isolation",
                        "--no-index", os.path.join(ROOT, "python")],
                       capture_output=True, text=True, timeout=600, env=env, cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    s = Server()
    try:
        r = subprocess.run([os.path.join(venv, "bin", "python"), "-c", PROG, str(s.port)],
                           capture_output=True, text=True, timeout=120, env=env, cwd=d)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split(None, 1)[0] == "11", r.stdout
        assert "[0, 1, 3, 5]" in r.stdout and " open>" in r.stdout, r.stdout
    finally:
        s.stop()
    # Type hints ship with it (PEP 561).
    site = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                           "import qpeach, os; print(os.path.dirname(qpeach.__file__))"],
                          capture_output=True, text=True, env=env, cwd=d).stdout.strip()
    assert os.path.exists(os.path.join(site, "py.typed")), site
