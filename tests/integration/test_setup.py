"""The README's two commands on a machine that lacks packages.

`make demo` and `make test` must work on the first run: pkg-config flags
are read when a recipe first needs them (after `deps` installed what was
missing), and a package pkg-config cannot find stops the build naming it
and its Debian package, instead of compiling without flags.
"""
import os
import subprocess

from harness import ROOT, tmpdir


def make(*args, env_extra):
    env = dict(os.environ, **env_extra)
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    return subprocess.run(["make", "--no-print-directory", "-C", ROOT, "BUILD=" + tmpdir(), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_missing_packages_are_named_before_compiling():
    empty = tmpdir()                      # pkg-config finds nothing here
    for target in ("all", "demo", "test"):
        r = make("-n", target, env_extra={"PKG_CONFIG_LIBDIR": empty, "PKG_CONFIG_PATH": ""})
        assert r.returncode != 0, (target, r.stdout[-2000:])
        assert "pkg-config cannot find: hwloc msgpack openssl cunit inih python3-embed" in r.stderr, \
            (target, r.stderr)
        assert "libhwloc-dev" in r.stderr and "libinih-dev" in r.stderr and "python3-dev" in r.stderr
        assert " -c src/" not in r.stdout, (target, "compiled without flags")


def test_parsing_the_makefile_runs_no_pkg_config_on_targets_that_install():
    """`make -n deps` must not need any package: it is what installs them."""
    empty = tmpdir()
    r = make("-n", "deps", env_extra={"PKG_CONFIG_LIBDIR": empty, "PKG_CONFIG_PATH": ""})
    assert r.returncode == 0, r.stderr
    assert "scripts/deps.sh" in r.stdout and "cannot find" not in r.stderr


def test_make_test_builds_and_runs_the_fuzzers():
    """`make test` asks deps for clang + libFuzzer, and `check` builds every
    tests/fuzz/fuzz_*.c in build/fuzz from the Makefile's lists, then runs
    each for a few seconds (scripts/fuzz.sh --smoke)."""
    r = make("-n", "test", env_extra={})
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert "sh scripts/deps.sh fuzz" in out, out[:2000]
    assert "FUZZ=1 fuzz-bins" in out and "CC=clang" in out, out[-3000:]
    assert "sh scripts/fuzz.sh --smoke build/fuzz 3" in out, out[-3000:]
    # unit tests, the smoke, then the integration runner, whose
    # "N passed, N failed" is the run's last line (CI reads it)
    assert out.index("scripts/run-unit.sh") < out.index("fuzz.sh --smoke") < out.index("tests/run.py")
