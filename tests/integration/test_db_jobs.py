"""`qpeach run` on kdb+ databases: [input] db + table, [partition] by =
partition (one task per kdb+ partition, `partitions =` selecting some),
by = rows on a partitioned table, servers that each hold their own
partitions (a task goes only to a server holding it), and a CSV input
converted once into a splayed table that the workers map.

Every db here is made by `qpeach db import` in a temporary folder: one
shaped as egor7's q-written db (test_db.egor_db: the same tables and
values, fixtures/kdb/README.md), and days of generated trades, checked
against the CSVs they were imported from (pandas for the sums)."""
import csv
import os
import re
import shutil
import struct
import subprocess

import pandas as pd

import harness
from harness import QPEACH, Server, qpeach, tmpdir
from qipc import Conn, Sym, Table, Vec, encode
from test_db import APPLY, define, egor_db, expect_error
from test_db_import import ASAN_SLACK, big_trades
from test_run import run, write

COUNT = ("import os\nimport numpy as np\n"
         "def rows(t):\n"
         "    first = next(iter(t))\n"
         "    return {'part': np.asarray(t[first][:1]).astype(str), 'n': np.array([len(t[first])]),\n"
         "            'pid': np.array([os.getpid()]), 'first': np.array([first])}\n")


def job(d, inp, part, workers, merge="concat", out="out/o.csv"):
    write(d, "count.py", COUNT)
    return write(d, "j.ini", f"[job]\nname = j\nfunction = count.py:rows\n[input]\n{inp}"
                 f"[partition]\n{part}[workers]\n{workers}[merge]\nhow = {merge}\n"
                 f"[output]\npath = {out}\n")


def rows_of(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_one_task_per_partition_of_a_db():
    d = tmpdir()
    db = os.path.join(d, "db")
    paths = import_days(d, db, DAYS)
    p = job(d, f"db = {db}\ntable = trade\n", "by = partition\n", "local = 2\n")
    r = run(p)
    assert r.returncode == 0, r.stderr
    got = rows_of(os.path.join(d, "out", "o.csv"))
    want = [len(rows_of(path)) for path in paths]
    assert [g["first"] for g in got] == ["date"] * len(got), got      # the virtual column first
    assert [int(g["n"]) for g in got] == want, (got, want)
    assert [g["part"] for g in got] == [day.replace(".", "-") for day in DAYS], got
    assert len(got) == r.stderr.count("done on worker"), r.stderr
    r = run("--dry-run", p)                     # planned from the db itself
    assert r.returncode == 0, r.stderr
    assert f"partitions: {len(got)} by partition" in r.stdout and "0: date=2024.01.02" in r.stdout, r.stdout


def test_partitions_selects_some():
    d, EGOR = tmpdir(), egor_db()
    p = job(d, f"db = {EGOR}\ntable = t\n", "by = partition\npartitions = 2015.01.02\n", "local = 1\n")
    r = run(p)
    assert r.returncode == 0, r.stderr
    got = rows_of(os.path.join(d, "out", "o.csv"))
    assert [(g["part"], g["n"]) for g in got] == [("2015-01-02", "2")], got
    p = job(d, f"db = {EGOR}\ntable = t\n", "by = partition\npartitions = 2015.01..2015.02\n",
            "local = 1\n")
    r = run(p)
    assert r.returncode == 2 and "partitioned by date" in r.stderr, r.stderr
    p = job(d, f"db = {EGOR}\ntable = t\n", "by = partition\npartitions = 2016.01.01\n", "local = 1\n")
    r = run(p)
    assert r.returncode == 2 and "has no partition 2016.01.01" in r.stderr, r.stderr
    p = job(d, f"db = {EGOR}\ntable = t\n", "by = partition\npartitions = 2016.01.01..2016.12.31\n",
            "local = 1\n")
    r = run(p)
    assert r.returncode == 1 and "selects none of its partitions" in r.stderr, r.stderr
    p = job(d, f"db = {EGOR}\ntable = tref\n", "by = partition\n", "local = 1\n")
    r = run(p)
    assert r.returncode == 1 and "no partitions" in r.stderr, r.stderr


def test_rows_across_partitions_of_a_db():
    d, EGOR = tmpdir(), egor_db()
    p = job(d, f"db = {EGOR}\ntable = q\n", "by = rows\npieces = 3\n", "local = 2\n", merge="concat")
    r = run(p)
    assert r.returncode == 0, r.stderr
    got = rows_of(os.path.join(d, "out", "o.csv"))
    assert sum(int(g["n"]) for g in got) == 4, got           # 2 rows in each of 2 dates


def test_by_column_on_a_db_table():
    """by = column on a partitioned db table: one task per distinct value,
    planned by the worker from the mapped partitions (.qp.distinct)."""
    d, EGOR = tmpdir(), egor_db()
    p = job(d, f"db = {EGOR}\ntable = t\n", "by = column\ncolumn = sym\n", "local = 2\n")
    r = run(p)
    assert r.returncode == 0, r.stderr
    got = rows_of(os.path.join(d, "out", "o.csv"))
    assert [int(g["n"]) for g in got] == [2, 2] and len(got) == r.stderr.count("done on worker"), got
    assert "sym=`ibm" in r.stderr and "sym=`msft" in r.stderr, r.stderr
    p = job(d, f"db = {EGOR}\ntable = t\n", "by = column\ncolumn = nope\n", "local = 1\n")
    r = run(p)
    assert r.returncode == 2 and "column = nope: t has no such column (it has: date, ti, sym, p)" in r.stderr, r.stderr


def link_db(egor, root, parts):
    """A db root holding some of egor's partitions (symlinks: nothing copied)."""
    os.makedirs(root)
    os.symlink(os.path.join(egor, "sym"), os.path.join(root, "sym"))
    for p in parts:
        os.symlink(os.path.join(egor, p), os.path.join(root, p))
    return root


def test_servers_get_only_partitions_they_hold():
    d, egor = tmpdir(), egor_db()
    a = link_db(egor, os.path.join(d, "a"), ["2015.01.01"])
    b = link_db(egor, os.path.join(d, "b"), ["2015.01.02"])
    with Server("--db", a) as sa, Server("--db", b) as sb:
        p = job(d, "table = t\n", "by = partition\n", f"servers = {sa.addr}, {sb.addr}\n")
        r = run(p)
        assert r.returncode == 0, r.stderr
        got = {g["part"]: int(g["pid"]) for g in rows_of(os.path.join(d, "out", "o.csv"))}
        assert got == {"2015-01-01": sa.proc.pid, "2015-01-02": sb.proc.pid}, (got, r.stderr)
        # A server that is down holds partitions nobody can list: the run
        # fails instead of leaving them out.
        sb.stop()
        r = run(p)
        assert r.returncode == 1, r.stderr
        assert f"{sb.addr} is unusable, so the partitions it holds are unknown" in r.stderr, r.stderr


def test_csv_input_becomes_a_splayed_table_the_workers_map():
    d = tmpdir()
    write(d, "t.csv", "sym,price,size\n" + "".join(f"S{i % 3},{i}.5,{i}\n" for i in range(300)))
    write(d, "m.py", "import numpy as np\ndef f(t):\n"
          "    s = t['sym']\n"
          "    return {'n': np.array([len(s)]), 'cat': np.array([hasattr(s, 'codes')])}\n")
    p = write(d, "m.ini", "[job]\nname = m\nfunction = m.py:f\nsymbols = categorical\n"
              "[input]\ntable = trade\nfile = t.csv\ntypes = SFJ\n[partition]\npieces = 3\n"
              "[workers]\nlocal = 2\n[merge]\nhow = concat\n[output]\npath = out/o.csv\n")
    r = run(p)
    assert r.returncode == 0, r.stderr
    m = re.search(r"into (\S+)", r.stderr)
    assert m and os.path.isfile(os.path.join(m.group(1), ".d")), r.stderr
    assert os.path.isfile(os.path.join(os.path.dirname(m.group(1)), "sym")), r.stderr
    got = rows_of(os.path.join(d, "out", "o.csv"))
    assert sum(int(g["n"]) for g in got) == 300 and {g["cat"] for g in got} == {"true"}, got
    r = run(p)                                   # reused: not parsed again
    assert r.returncode == 0 and "parsed" not in r.stderr, r.stderr


def test_ipc_file_input_becomes_a_splayed_table_too():
    """A q IPC file input (-8! bytes) is read once into a splayed table the
    workers map, like a CSV, and reused while the file is unchanged."""
    d = tmpdir()
    n = 3000
    t = Table({"sym": Vec("s", [f"S{i % 3}" for i in range(n)]),
               "price": Vec("f", [i + 0.5 for i in range(n)]), "size": Vec("j", list(range(n)))})
    with open(os.path.join(d, "t.qipc"), "wb") as f:
        f.write(encode(t))
    write(d, "m.py", "import numpy as np\ndef f(t):\n"
          "    return {'n': np.array([len(t['size'])]), 'sum': np.array([int(t['size'].sum())]),\n"
          "            'codes': np.array([hasattr(t['sym'], 'codes')])}\n")
    p = write(d, "m.ini", "[job]\nname = m\nfunction = m.py:f\nsymbols = codes\n"
              "[input]\ntable = trade\nfile = t.qipc\n[partition]\npieces = 3\n"
              "[workers]\nlocal = 2\n[merge]\nhow = concat\n[output]\npath = out/o.csv\n")
    r = run(p)
    assert r.returncode == 0, r.stderr
    m = re.search(r"read \S+ once \(3000 rows.*into (\S+)", r.stderr)
    assert m and os.path.isfile(os.path.join(m.group(1), ".d")), r.stderr
    got = rows_of(os.path.join(d, "out", "o.csv"))
    assert sum(int(g["n"]) for g in got) == n and sum(int(g["sum"]) for g in got) == n * (n - 1) // 2
    assert {g["codes"] for g in got} == {"true"}, got          # symbols enumerated in the copy
    r = run(p)                                   # reused: not read again
    assert r.returncode == 0 and "once" not in r.stderr, r.stderr
    with open(os.path.join(d, "t.qipc"), "wb") as f:       # changed: read again
        f.write(encode(Table({"sym": Vec("s", ["a"]), "price": Vec("f", [1.0]), "size": Vec("j", [7])})))
    r = run(p)
    assert r.returncode == 0 and "read" in r.stderr and "once (1 rows" in r.stderr, r.stderr
    assert sum(int(g["sum"]) for g in rows_of(os.path.join(d, "out", "o.csv"))) == 7


# Waits, in every task, until the test lets it go (the file go in folder
# HERE), after saying it started; then sums what a VWAP needs.
HELD = """import os, time
import numpy as np
def f(t):
    here = HERE
    open(os.path.join(here, 'started'), 'w').close()
    while not os.path.exists(os.path.join(here, 'go')):
        time.sleep(0.01)
    px, sz = np.asarray(t['price']), np.asarray(t['size'])
    return np.array([float((px * sz).sum()), float(sz.sum()), float(len(sz))])
"""


def ipc_table(path, sym, price, size):
    """A q IPC file (-8! bytes) of the table sym, price, size (numpy)."""
    def vec(t, n, data):
        return struct.pack("<bbi", t, 0, n) + data
    n = len(size)
    body = (bytes([98, 0, 99]) + vec(11, 3, b"sym\0price\0size\0") + struct.pack("<bbi", 0, 0, 3)
            + vec(11, n, ("\0".join(sym.tolist()) + "\0").encode()) + vec(9, n, price.tobytes())
            + vec(7, n, size.tobytes()))
    with open(path, "wb") as f:
        f.write(struct.pack("<bbbbI", 1, 0, 0, 0, 8 + len(body)) + body)


def scheduler_while_tasks_run(d, ini):
    """Runs the job, each task held until the scheduler's VmRSS and VmHWM
    (KB) are read: (rss, hwm, the run's result)."""
    for f in ("started", "go"):
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))
    p = subprocess.Popen([QPEACH, "run", ini], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert harness.wait_for(lambda: os.path.exists(os.path.join(d, "started")) or p.poll() is not None,
                                timeout=300, interval=0.01)
        assert p.poll() is None, p.communicate()[1]
        with open(f"/proc/{p.pid}/status") as f:
            st = {l.split(":")[0]: int(l.split()[1]) for l in f if l.startswith(("VmRSS", "VmHWM"))}
    finally:
        write(d, "go", "")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return st["VmRSS"] * 1024, st["VmHWM"] * 1024, rows_of(os.path.join(d, "out", "o.csv"))


def test_a_converted_input_is_not_held_by_the_scheduler():
    """A CSV or q IPC file input becomes the splayed copy the workers map
    without the scheduler keeping the table: while the tasks run it holds
    none of it (it held the whole table for the run), and a CSV is written
    as it is parsed, so the table is never in its memory at all. The sums
    are numpy's on the same rows."""
    d = tmpdir()
    try:
        src = big_trades(os.path.join(d, "t.csv"), 4)
        t = pd.read_csv(src, dtype={"sym": str})
        ipc_table(os.path.join(d, "t.qipc"), t["sym"].to_numpy(), t["price"].to_numpy(), t["size"].to_numpy())
        want = [float((t["price"] * t["size"]).sum()), float(t["size"].sum()), float(len(t))]
        table = len(t) * 24                          # the copy: sym indices, price, size
        write(d, "held.py", HELD.replace("HERE", repr(d)))
        for name in ("t.csv", "t.qipc"):
            ini = write(d, "h.ini", f"[job]\nfunction = held.py:f\n[input]\ntable = trade\nfile = {name}\n"
                        "[partition]\npieces = 2\n[workers]\nlocal = 1\n[merge]\nhow = sum\n"
                        "[output]\npath = out/o.csv\n")
            rss, hwm, got = scheduler_while_tasks_run(d, ini)
            assert rss < table / 4 + ASAN_SLACK, (name, rss, table)
            if name.endswith(".csv"):
                assert hwm < table / 2 + ASAN_SLACK, (name, hwm, table)
            sums = [float(g["x"]) for g in got]
            assert sums[1:] == want[1:] and abs(sums[0] - want[0]) <= 1e-9 * want[0], (sums, want)
    finally:
        shutil.rmtree(d)


def test_symbols_as_codes_view_the_mapped_indices_without_pandas():
    d = tmpdir()
    db = os.path.join(d, "db")
    paths = import_days(d, db, DAYS)
    write(d, "c.py", "import sys\nimport numpy as np\ndef f(t):\n"
          "    s = t['sym']\n"
          "    assert type(s).__name__ == 'SymbolCodes', type(s)\n"
          "    assert s.codes.dtype == np.int64 and not s.codes.flags.writeable, s.codes.flags\n"
          "    assert not s.codes.flags.owndata and len(s) == len(t['date'])\n"
          "    names = np.asarray(s)\n"
          "    assert all(names[i] == s.categories[s.codes[i]] for i in range(0, len(s), 97))\n"
          "    return {'sym': np.unique(names), 'pandas': np.array(['pandas' in sys.modules] * len(np.unique(names)))}\n")
    p = write(d, "c.ini", f"[job]\nname = c\nfunction = c.py:f\nsymbols = codes\n[input]\ndb = {db}\n"
              "table = trade\n[partition]\nby = partition\n[workers]\nlocal = 1\n[merge]\nhow = concat\n"
              "[output]\npath = out/c.csv\n")
    r = run(p)
    assert r.returncode == 0, r.stderr
    got = rows_of(os.path.join(d, "out", "c.csv"))
    want = sorted(s for path in paths for s in {row["sym"] for row in rows_of(path)})
    assert sorted(g["sym"] for g in got) == want, (got[:3], want[:3])
    assert {g["pandas"] for g in got} == {"false"}, "pandas was imported"


def test_a_server_lost_mid_run_fails_its_partitions_loudly_then_resumes():
    """Servers hold different partitions. When one dies mid-run, its
    partitions cannot go elsewhere: the run fails saying so (exit 1, no
    output), keeps the journal, and once the server is back the next run
    does only what is left."""
    import signal
    import subprocess
    from harness import QPEACH, wait_for
    d, egor = tmpdir(), egor_db()
    a = link_db(egor, os.path.join(d, "a"), ["2015.01.01"])
    b = link_db(egor, os.path.join(d, "b"), ["2015.01.02"])
    write(d, "slow.py", "import os, time\nimport numpy as np\ndef f(t):\n"
          f"    open(os.path.join({d!r}, 'started.%d' % os.getpid()), 'w').close()\n"
          "    time.sleep(1.5)\n"
          "    return {'part': np.asarray(t['date'][:1]).astype(str), 'n': np.array([len(t['date'])])}\n")
    with Server("--db", a) as sa:
        sb = Server("--db", b)
        try:
            p = write(d, "j.ini", "[job]\nname = j\nfunction = slow.py:f\n[input]\ntable = t\n"
                      f"[partition]\nby = partition\n[workers]\nservers = {sa.addr}, {sb.addr}\n"
                      "[merge]\nhow = concat\n[output]\npath = out/o.csv\n[run]\nretries = 1\n")
            proc = subprocess.Popen([QPEACH, "run", p], stderr=subprocess.PIPE, text=True)
            started = lambda: len([f for f in os.listdir(d) if f.startswith("started.")]) == 2
            assert wait_for(started, 60), "the two tasks never started"
            sb.proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=60)
        finally:
            sb.stop()
        assert proc.returncode == 1, (proc.returncode, err)
        assert "no live worker holds their partitions" in err, err
        assert not os.path.exists(os.path.join(d, "out", "o.csv"))
        with Server("--db", b, port=int(sb.addr.rsplit(":", 1)[1])) as sb2:
            r = run(p)
            assert r.returncode == 0, r.stderr
            assert "resuming: 1 of 2 tasks already done" in r.stderr, r.stderr
            assert r.stderr.count("done on worker") == 1, r.stderr
            got = {g["part"]: int(g["n"]) for g in rows_of(os.path.join(d, "out", "o.csv"))}
            assert got == {"2015-01-01": 2, "2015-01-02": 2}, got
            assert sb2.alive()


def test_large_tables_split_into_small_tasks_checked_as_read():
    """by = rows without pieces: no task over 524,288 rows. A splayed
    table's symbol indices are checked over each task's rows: a bad one
    fails its task (naming column and row) and so the run, while rows
    without it still read, on a server too."""
    d = tmpdir()
    n, bad = 2_200_000, 2_000_000
    write(d, "t.csv", "sym,x\n" + "".join(f"S{i % 5},{i}\n" for i in range(n)))
    db = os.path.join(d, "db")
    r = qpeach("db", "import", os.path.join(d, "t.csv"), db, "t", "--types", "SJ", timeout=120)
    assert r.returncode == 0, r.stderr
    p = job(d, f"db = {db}\ntable = t\n", "by = rows\n", "local = 1\n")
    r = run("--dry-run", p)                      # ceil(n / 2^19), over 4 per worker
    assert r.returncode == 0 and "partitions: 5 by rows" in r.stdout, r.stdout
    r = run(p)
    assert r.returncode == 0, r.stderr
    got = [int(g["n"]) for g in rows_of(os.path.join(d, "out", "o.csv"))]
    assert sum(got) == n and len(got) == 5 and max(got) <= 1 << 19, got
    p2 = job(d, f"db = {db}\ntable = t\n", "by = rows\npieces = 2\n", "local = 1\n")
    r = run("--dry-run", p2)
    assert r.returncode == 0 and "partitions: 2 by rows" in r.stdout, r.stdout
    with open(os.path.join(db, "t", "sym"), "r+b") as f:     # fd 20: indices from byte 4096
        f.seek(4096 + 8 * bad)
        f.write((99).to_bytes(8, "little"))
    r = run(p)
    assert r.returncode == 1, r.stderr
    assert "t/sym: enum: index 99 at row 2000000 is beyond the domain of 5 names" in r.stderr, r.stderr
    with Server("--db", db) as s, Conn(port=s.port, timeout=60) as c:
        define(c, "nrows", "def nrows(t):\n    return len(t['x'])\n")
        assert c.call([APPLY, Sym("nrows"), Sym("t"), Vec("j", [0, bad])]) == bad
        expect_error(lambda: c.call([APPLY, Sym("nrows"), Sym("t"), Vec("j", [bad, n])]),
                     "at row 2000000")
        expect_error(lambda: c.call([Sym(".qp.get"), Sym("t")]), "at row 2000000")
        assert c.call([APPLY, Sym("nrows"), Sym("t"), Vec("j", [bad + 1, n])]) == n - bad - 1


# ---- a job's input checked before it runs: dbs made by `qpeach db import` ----

DAYS = ["2024.01.02", "2024.01.03", "2024.01.04"]


def day_rows(day, seed):
    """Rows of one day: a few syms, prices and sizes that differ by seed."""
    return [(day, "AB"[i % 2], round(1.25 + seed * 10 + i * 0.5, 2), 10 * (i + seed + 1))
            for i in range(4 + seed % 3)]


def import_days(d, db, days, seed=0):
    """Imports each day from a CSV of its own (kept, so that pandas reads
    the same source); returns the CSV paths."""
    paths = []
    for k, day in enumerate(days):
        p = os.path.join(d, f"{day}-{seed}.csv")
        with open(p, "w") as f:
            f.write("date,sym,price,size\n")
            f.writelines(f"{a},{b},{c},{e}\n" for a, b, c, e in day_rows(day, seed + k))
        r = qpeach("db", "import", p, db, "trade", "--partition", "date", "--types", "DSFJ")
        assert r.returncode == 0, r.stderr
        paths.append(p)
    return paths


def pandas_sums(paths):
    """Per day: rows, sum of price, sum of size, from the source CSVs."""
    import pandas as pd
    df = pd.concat([pd.read_csv(p) for p in paths])
    g = df.groupby("date").agg(n=("size", "size"), px=("price", "sum"), size=("size", "sum"))
    return {day.replace(".", "-"): (int(r["n"]), float(r["px"]), int(r["size"])) for day, r in g.iterrows()}


def csv_sums(path):
    got = {}
    for g in rows_of(path):
        n, px, size = got.get(g["day"], (0, 0.0, 0))
        got[g["day"]] = (n + int(g["n"]), px + float(g["px"]), size + int(g["size"]))
    return got


# Sums per day of what a task gets; raises at a day whose stop file exists
# (a run stopped there, its journal kept).
SUMS = ("import os\nimport numpy as np\n"
        "def f(t):\n"
        "    days = np.asarray(t['date']).astype('datetime64[D]').astype(str)\n"
        "    u = np.unique(days)\n"
        "    for day in u:\n"
        "        if os.path.exists(os.path.join(DIR, 'stop.' + day)):\n"
        "            raise RuntimeError('stopped at ' + day)\n"
        "    return {'day': u, 'n': np.array([int((days == x).sum()) for x in u]),\n"
        "            'px': np.array([float(t['price'][days == x].sum()) for x in u]),\n"
        "            'size': np.array([int(t['size'][days == x].sum()) for x in u])}\n")


def sums_job(d, db, part, workers="local = 1\nwindow = 1\n", table="trade"):
    write(d, "s.py", f"DIR = {d!r}\n" + SUMS)
    return write(d, "s.ini", f"[job]\nname = s\nfunction = s.py:f\n[input]\ndb = {db}\ntable = {table}\n"
                 f"[partition]\n{part}[workers]\n{workers}[merge]\nhow = concat\n"
                 "[output]\npath = out/s.csv\n")


def test_a_named_partition_nobody_holds_fails_the_run_before_any_task():
    d = tmpdir()
    db = os.path.join(d, "db")
    paths = import_days(d, db, DAYS)
    want = pandas_sums(paths)
    out = os.path.join(d, "out", "s.csv")
    p = sums_job(d, db, "by = partition\npartitions = 2024.01.02, 2024.01.06\n")
    for args in ([p], ["--dry-run", p]):
        r = run(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert "2024.01.06" in r.stderr and "2024.01.02, 2024.01.06" in r.stderr, r.stderr
        assert "missing = skip" in r.stderr and "done on worker" not in r.stderr, r.stderr
    assert not os.path.exists(out)
    # Two servers holding a day each: a day neither holds fails the same way.
    a, b = os.path.join(d, "a"), os.path.join(d, "b")
    import_days(d, a, DAYS[:1])
    import_days(d, b, DAYS[1:2], seed=1)
    with Server("--db", a) as sa, Server("--db", b) as sb:
        ps = sums_job(d, db, "by = partition\npartitions = 2024.01.02, 2024.01.03, 2024.01.04\n",
                      workers=f"servers = {sa.addr}, {sb.addr}\n")
        r = run(ps)
        assert r.returncode == 2 and "2024.01.04" in r.stderr and "done on worker" not in r.stderr, r.stderr
    # Opting in to skipping: the log lists what was skipped.
    p = sums_job(d, db, "by = partition\npartitions = 2024.01.02, 2024.01.06, 2024.01.07\nmissing = skip\n")
    r = run(p)
    assert r.returncode == 0, r.stderr
    assert "skipped 2 partitions of trade not found on any worker: 2024.01.06, 2024.01.07" in r.stderr, r.stderr
    assert csv_sums(out) == {"2024-01-02": want["2024-01-02"]}, (csv_sums(out), want)
    # A range takes what exists and says how many it found.
    p = sums_job(d, db, "by = partition\npartitions = 2023.12.30..2024.01.06\n")
    r = run(p)
    assert r.returncode == 0, r.stderr
    assert "partitions = 2023.12.30..2024.01.06: 3 partitions of trade found" in r.stderr, r.stderr
    assert csv_sums(out) == want, (csv_sums(out), want)
    r = run(sums_job(d, db, "by = partition\npartitions = 2024.01.02..2024.01.03\nmissing = skip\n"))
    assert r.returncode == 2 and "missing is only for a list of partitions" in r.stderr, r.stderr


def test_a_bad_db_or_table_fails_before_workers_start_naming_the_cause():
    d = tmpdir()
    db = os.path.join(d, "db")
    import_days(d, db, DAYS[:1])
    r = qpeach("db", "import", os.path.join(d, "2024.01.02-0.csv"), db, "quote", "--types", "DSFJ")
    assert r.returncode == 0, r.stderr
    os.makedirs(os.path.join(d, "notadb"))
    write(d, "notadb/a.txt", "hello\n")
    write(d, "afile", "hello\n")
    cases = [(os.path.join(d, "nodb"), "trade", "No such file or directory"),
             (os.path.join(d, "afile"), "trade", "not a folder"),
             (os.path.join(d, "notadb"), "trade", os.path.join(d, "notadb")),
             (db, "trades", "no table trades (its tables: quote, trade)")]
    for path, table, cause in cases:
        p = sums_job(d, path, "by = rows\n", workers="local = 3\n", table=table)
        for args in ([p], ["--dry-run", p]):
            r = run(*args)
            assert r.returncode == 2, (path, args, r.returncode, r.stderr)
            assert cause in r.stderr and "[input] db" in r.stderr, (path, args, r.stderr)
            assert "before listening" not in r.stderr and "unusable" not in r.stderr, r.stderr


def stop_at(d, day, on=True):
    p = os.path.join(d, "stop." + day.replace(".", "-"))
    if on:
        open(p, "w").close()
    elif os.path.exists(p):
        os.unlink(p)


def test_resume_runs_again_a_partition_imported_since():
    """A run stopped after 2 of 3 days; one of the 2 finished days is
    imported again with new values; a plain re-run gives what --fresh gives
    and what pandas gives on the final CSVs: the re-imported day runs again,
    the other finished one is resumed."""
    d = tmpdir()
    db = os.path.join(d, "db")
    paths = import_days(d, db, DAYS)
    out = os.path.join(d, "out", "s.csv")
    p = sums_job(d, db, "by = partition\n")
    stop_at(d, DAYS[2])
    r = run(p)
    assert r.returncode == 1 and "stopped at 2024-01-04" in r.stderr, r.stderr
    assert r.stderr.count("done on worker") == 2, r.stderr
    paths[0] = import_days(d, db, DAYS[:1], seed=5)[0]         # same syms, new values
    stop_at(d, DAYS[2], on=False)
    r = run(p)
    assert r.returncode == 0, r.stderr
    assert "resuming: 1 of 3 tasks already done" in r.stderr, r.stderr
    assert "date=2024.01.02" in r.stderr and "changed since" in r.stderr, r.stderr
    assert r.stderr.count("done on worker") == 2, r.stderr
    got = open(out).read()
    assert csv_sums(out) == pandas_sums(paths), (csv_sums(out), pandas_sums(paths))
    r = run("--fresh", p)
    assert r.returncode == 0 and r.stderr.count("done on worker") == 3, r.stderr
    assert open(out).read() == got
    # by = rows reads across days: any re-imported day starts it over.
    p = sums_job(d, db, "by = rows\npieces = 3\n")
    stop_at(d, DAYS[2])
    r = run(p)
    assert r.returncode == 1 and "stopped at 2024-01-04" in r.stderr, r.stderr
    paths[1] = import_days(d, db, DAYS[1:2], seed=7)[0]
    stop_at(d, DAYS[2], on=False)
    r = run(p)
    assert r.returncode == 0 and "cannot be resumed (input changed)" in r.stderr, r.stderr
    assert csv_sums(out) == pandas_sums(paths), (csv_sums(out), pandas_sums(paths))
