"""What the Python client's tests of issue 20 share: a date-partitioned
trades db made by `qpeach db import` in a temporary folder, from CSVs kept
beside it (so pandas reads the same source), the Python of this package
(PYTHONPATH=python, Debian's /usr/bin/python3) for scripts run in a
process of their own, and the README's code blocks, run as written (a
block follows a `<!-- test: NAME -->` line), so the docs cannot drift
from what the tests check."""
import os
import re
import subprocess
import sys

import harness

ROOT = harness.ROOT
PYDIR = os.path.join(ROOT, "python")
DAYS = ["2024.01.02", "2024.01.03", "2024.01.04", "2024.01.05", "2024.01.08"]
SYMS = ["AAPL", "IBM", "MSFT"]


def day_rows(day, k):
    """Rows of day number k: syms, prices and sizes that differ by day;
    one row in seven has the null sym (an empty field)."""
    n = 8 + 3 * k
    return [(day, "" if (i + k) % 7 == 6 else SYMS[(i * 5 + k) % 3],
             round(100 + k * 3.25 + i * 0.5, 2), 10 * (i + 1) + k) for i in range(n)]


def trades_db(d, days=DAYS, name="hdb"):
    """d/hdb: table trade partitioned by date (one `qpeach db import` per
    day). Returns (db, the CSV paths in day order)."""
    db, paths = os.path.join(d, name), []
    for k, day in enumerate(days):
        p = os.path.join(d, f"trade-{day}.csv")
        with open(p, "w") as f:
            f.write("date,sym,price,size\n")
            f.writelines(f"{a},{b},{c},{e}\n" for a, b, c, e in day_rows(day, k))
        r = harness.qpeach("db", "import", p, db, "trade", "--partition", "date",
                           "--types", "DSFJ")
        assert r.returncode == 0, r.stderr
        paths.append(p)
    return db, paths


def frame(paths):
    """The CSVs as pandas reads them: date as datetime64, the empty sym as
    NaN, in the db's order (date, then sym: the import sorts a partition
    by its p# column, stably)."""
    import pandas as pd
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    df["date"] = pd.to_datetime(df["date"], format="%Y.%m.%d")
    key = df["sym"].fillna("")
    return df.assign(_k=key).sort_values(["date", "_k"], kind="stable").drop(columns="_k") \
             .reset_index(drop=True)


def db_server(db, *args):
    """A `qpeach serve --db db` whose Python finds this package."""
    env = dict(os.environ, QPEACH_PYTHONPATH=PYDIR)
    return harness.Server("--db", db, *args, env=env)


def python(script, *args, env=None, timeout=300, cwd=None):
    """Runs a Python script file in a process of its own (Debian's python,
    this package on its path; under a sanitizer build the extension from
    there, with the ASan runtime). CompletedProcess (text)."""
    e = dict(os.environ, PYTHONPATH=PYDIR, QPEACH_BIN=harness.QPEACH)
    asan = os.path.join(harness.BUILD, "python", "qpeach")
    if os.path.isdir(asan):
        lib = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
        e.update(LD_PRELOAD=lib, QPEACH_EXT_DIR=asan,
                 ASAN_OPTIONS="detect_leaks=0:" + os.environ.get("ASAN_OPTIONS", ""))
    e.update(env or {})
    return subprocess.run(["/usr/bin/python3", script, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=e, cwd=cwd)


def client():
    """The qpeach package, for a test module: under a sanitizer build the
    module is started again with the ASan runtime first
    (harness.asan_client_reexec), this package goes on sys.path, and
    local workers run this build's qpeach."""
    harness.asan_client_reexec()
    if PYDIR not in sys.path:
        sys.path.insert(0, PYDIR)
    os.environ["QPEACH_BIN"] = harness.QPEACH
    import qpeach
    return qpeach


def readme_block(name):
    """The code of the README block after `<!-- test: name -->`."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(r"<!-- test: " + re.escape(name) + r" -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README.md has no block marked <!-- test: {name} -->"
    return m.group(1)


def run_block(name, subs, ns=None):
    """Runs the README block as written, each (text, replacement) of subs
    replaced first (the example's port 5050 by the test server's, 'hdb'
    by the test db's path); returns its namespace."""
    code = readme_block(name)
    for a, b in subs:
        assert a in code, f"README block {name} no longer says {a!r}"
        code = code.replace(a, b)
    ns = dict(ns or {})
    ns.setdefault("__name__", f"readme_{name.replace('-', '_')}")
    if PYDIR not in sys.path:
        sys.path.insert(0, PYDIR)
    exec(compile(code, f"README.md <!-- test: {name} -->", "exec"), ns)
    return ns
