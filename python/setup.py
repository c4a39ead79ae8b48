"""Builds qpeach._qpeach for `pip install ./python` (pyproject.toml holds
the metadata): the same compile and link as python/Makefile.inc, against
the repository's libqpeach.a, which `make` must have built first.

QPEACH_BUILD picks another build directory (relative to the repository
root, as for the tests), e.g. QPEACH_BUILD=build/asan."""
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, os.environ.get("QPEACH_BUILD", "build"))
LIB = os.path.join(BUILD, "libqpeach.a")
PKGS = ["openssl", "hwloc", "msgpack", "inih"]


def pkg_libs():
    """The link flags of libqpeach.a's dependencies, from pkg-config."""
    if not shutil.which("pkg-config"):
        sys.exit("qpeach: pkg-config is missing (run scripts/deps.sh)")
    r = subprocess.run(["pkg-config", "--libs", *PKGS], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"qpeach: pkg-config cannot find {' '.join(PKGS)}: {r.stderr.strip()} "
                 f"(run scripts/deps.sh)")
    return r.stdout.split()


if not os.path.exists(LIB) and not {"egg_info", "dist_info", "sdist"} & set(sys.argv):
    sys.exit(f"qpeach: {LIB} is missing: run `make` in {ROOT} first")

ext = Extension(
    "qpeach._qpeach",
    sources=["qpeach/_qpeach.c", "qpeach/_qpeach_conn.c", "qpeach/_qpeach_run.c"],
    depends=["qpeach/_qpeach_int.h"],
    include_dirs=[os.path.join(ROOT, "include")],
    extra_compile_args=["-std=c11", "-D_GNU_SOURCE", "-pthread", "-fvisibility=hidden"],
    # As python/Makefile.inc: libqpeach's symbols stay private to the
    # extension and bind to its own copy (no clash inside `qpeach serve`).
    extra_objects=[LIB],
    extra_link_args=["-Wl,--exclude-libs,ALL", "-Wl,-Bsymbolic"]
    + (pkg_libs() if os.path.exists(LIB) else []) + ["-lpthread", "-lm"],
)

with open(os.path.join(ROOT, "include", "qpeach", "version.h")) as f:
    VERSION = re.search(r'#define QPEACH_VERSION "([^"]+)"', f.read()).group(1)

setup(version=VERSION, ext_modules=[ext])
