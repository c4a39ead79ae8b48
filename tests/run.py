#!/usr/bin/env python3
"""Integration and interop test runner.

Runs every tests/integration/test_*.py and tests/interop/test_*.py (or the
files given), each module in its own process with a hard timeout, calls its
functions named test_* in file order, and ends with the line
`N passed, N failed, N skipped` that CI reads. A test passes when it
returns; it fails when it raises. A test may raise harness.Skip to be
counted as skipped (what this machine lacks); harness.NoFixtures, a Skip, is
a conformance test that needs the q-written fixtures absent from this clone:
those are also counted in one line of their own (tests/README.md).
Exit status: 0 when nothing failed and something passed.
"""
import glob
import json
import os
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_TIMEOUT = int(os.environ.get("QPEACH_TEST_TIMEOUT", "300"))


def run_module(path):
    """Child side: run one module's tests, print a JSON summary last."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    sys.path.insert(0, os.path.dirname(path))
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        os.path.splitext(os.path.basename(path))[0], path)
    mod = importlib.util.module_from_spec(spec)
    results = {"passed": [], "failed": [], "skipped": [], "notrun": []}
    try:
        spec.loader.exec_module(mod)
    except Exception:
        traceback.print_exc()
        results["failed"].append(path + " (import)")
        print("@@RESULT " + json.dumps(results), flush=True)
        return
    names = [n for n in vars(mod) if n.startswith("test_") and callable(getattr(mod, n))]
    only = os.environ.get("QPEACH_TEST_ONLY")
    for name in names:
        if only and only not in name:
            continue
        t0 = time.time()
        try:
            getattr(mod, name)()
            results["passed"].append(name)
            print(f"PASS {name} ({time.time() - t0:.2f}s)", flush=True)
        except Exception as e:
            kinds = [k.__name__ for k in type(e).__mro__]
            if "Skip" in kinds:
                results["skipped"].append(name)
                if "NoFixtures" in kinds:
                    results["notrun"].append(name)
                print(f"SKIP {name}: {e}", flush=True)
                continue
            results["failed"].append(name)
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    teardown = getattr(mod, "teardown_module", None)
    if teardown:
        teardown()
    print("@@RESULT " + json.dumps(results), flush=True)


def main(argv):
    if len(argv) > 2 and argv[1] == "--module":
        run_module(argv[2])
        return 0
    files = argv[1:] or sorted(glob.glob(os.path.join(ROOT, "tests/integration/test_*.py"))
                               + glob.glob(os.path.join(ROOT, "tests/interop/test_*.py")))
    passed = failed = skipped = notrun = 0
    for path in files:
        rel = os.path.relpath(path, ROOT)
        print(f"== {rel}", flush=True)
        try:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--module", path],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=MODULE_TIMEOUT, cwd=ROOT, text=True,
                                 errors="replace").stdout
        except subprocess.TimeoutExpired as e:
            sys.stdout.write((e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or ""))
            print(f"FAIL {rel}: timed out after {MODULE_TIMEOUT}s")
            failed += 1
            continue
        result = None
        for line in out.splitlines():
            if line.startswith("@@RESULT "):
                result = json.loads(line[9:])
            else:
                print("  " + line)
        if result is None:
            print(f"FAIL {rel}: the module crashed")
            failed += 1
            continue
        passed += len(result["passed"])
        failed += len(result["failed"])
        skipped += len(result["skipped"])
        notrun += len(result["notrun"])
    if notrun:
        print(f"kdb+ conformance against q-written databases: {notrun} integration tests "
              "not run (no fixtures; see tests/README.md)")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
