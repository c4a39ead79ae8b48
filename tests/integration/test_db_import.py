"""`qpeach db import` never gives a wrong answer silently (issue 18, items
2-6): an inferred type never changes under a bad value, a failed or killed
import leaves the db byte for byte as it was, an append keeps the table's
schema, files and folders follow the umask, and two imports at once both
land. Values are read back through a real `qpeach serve --db` and compared
with pandas reading the same CSVs."""
import fcntl
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd

import harness
from harness import QPEACH, Server, qpeach, tmpdir
from qipc import Conn

EPOCH = np.datetime64("2000-01-01", "D")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def snapshot(db):
    """Every entry under db (hidden ones too): its mode and, for a file, its bytes."""
    snap = {}
    for top, dirs, files in os.walk(db):
        for n in dirs + files:
            p = os.path.join(top, n)
            st = os.lstat(p)
            body = None
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    body = f.read()
            snap[os.path.relpath(p, db)] = (st.st_mode, body)
    return snap


def wait_unlocked(db):
    """Returns once no import holds db's lock (or none ever made one)."""
    try:
        fd = os.open(os.path.join(db, ".qpeach.lock"), os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def trades_csv(path, date, n, syms, price=lambda i: "%d.%02d" % (10 + i % 90, i % 100), seed=0):
    """n trade rows of one date: sym drawn from syms, price text from price(i)."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(syms), n)
    size = rng.integers(1, 10_000, n)
    with open(path, "w") as f:
        f.write("date,sym,price,size\n")
        f.writelines("%s,%s,%s,%d\n" % (date, syms[pick[i]], price(i), size[i]) for i in range(n))
    return path


def served(db, table):
    """The whole table as a server mounting db gives it: a DataFrame, dates
    as datetime64[D], symbols as str."""
    with Server("--db", db) as s, Conn(port=s.port, timeout=120) as c:
        t = c.call(".qp.get `" + table).cols
    df = pd.DataFrame({k: v.items for k, v in t.items()})
    if "date" in df:
        df["date"] = EPOCH + df["date"].to_numpy().astype("timedelta64[D]")
    return df


def from_csv(*paths):
    """pandas' reading of the CSVs: the independent answer."""
    df = pd.concat([pd.read_csv(p, dtype={"sym": str}, keep_default_na=False, na_values=[""])
                    for p in paths], ignore_index=True)
    if "date" in df:
        df["date"] = pd.to_datetime(df["date"], format="%Y.%m.%d").to_numpy().astype("datetime64[D]")
    return df


def same_rows(got, want, cols):
    """Equal as multisets of rows (partitions come back sorted by sym)."""
    g = got[cols].sort_values(cols, kind="stable").reset_index(drop=True)
    w = want[cols].sort_values(cols, kind="stable").reset_index(drop=True)
    assert len(g) == len(w), (len(g), len(w))
    for c in cols:
        assert (g[c].to_numpy() == w[c].to_numpy()).all(), (c, g[c].head(), w[c].head())


# ---------------------------------------------------------------- 18.2

def test_bad_value_in_an_inferred_column_fails_naming_line_column_value():
    d = tmpdir()
    try:
        lines = ["%d.25" % i for i in range(1000)]
        lines[498] = "notanumber"                       # file line 500
        src = write(f"{d}/p.csv", "id,price\n" + "".join("%d,%s\n" % (i, p) for i, p in enumerate(lines)))
        r = qpeach("db", "import", src, f"{d}/db", "t")
        assert r.returncode == 1, (r.returncode, r.stdout)
        assert (f"{src}:500: column price: 'notanumber' is not a float (inferred from the first "
                "1000 rows; give --types to choose)") in r.stderr, r.stderr
        assert not os.path.exists(f"{d}/db"), os.listdir(d)   # no sym, nothing
        # after the sample too: 1000 longs then a float, or a date
        for bad, want in (("2.5", "'2.5' is not a long"), ("2024.01.02", "'2024.01.02' is not a long")):
            src = write(f"{d}/q.csv", "n\n" + "".join("%d\n" % i for i in range(3000)) + bad + "\n")
            r = qpeach("db", "import", src, f"{d}/db", "t")
            assert r.returncode == 1 and f"{src}:3002: column n: {want}" in r.stderr, r.stderr
            assert "inferred from the first 1000 rows" in r.stderr, r.stderr
        # a column of words stays a symbol column; a given type parses as asked
        src = write(f"{d}/w.csv", "w,n\nabc,1\nxyz,2.5\n")
        r = qpeach("db", "import", src, f"{d}/db", "w", "--types", "SF")
        assert r.returncode == 0, r.stderr
        got = served(f"{d}/db", "w")
        want = pd.read_csv(src)
        assert list(got["w"]) == list(want["w"]) and np.array_equal(got["n"], want["n"].astype(float))
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------- 18.3

def test_failed_import_into_an_existing_db_changes_nothing():
    d = tmpdir()
    try:
        db = f"{d}/db"
        for k, day in enumerate(("2024.01.02", "2024.01.03")):
            src = trades_csv(f"{d}/day{k}.csv", day, 500, ["S%d" % i for i in range(20 * k, 20 * k + 30)], seed=k)
            r = qpeach("db", "import", src, db, "trade", "--partition", "date")
            assert r.returncode == 0, r.stderr
        before = snapshot(db)
        new = ["N%d" % i for i in range(100)]           # symbols sym does not have
        # a bad value on the last line, inferred types and given ones
        src = trades_csv(f"{d}/bad.csv", "2024.01.04", 3000, new, price=lambda i: "x" if i == 2999 else "%d.5" % i)
        for types in ((), ("--types", "DSFJ")):
            r = qpeach("db", "import", src, db, "trade", "--partition", "date", *types)
            assert r.returncode == 1, (types, r.stdout)
            assert (f"{src}:3001: column price: 'x' is a symbol, not a float (as table trade "
                    "holds it)") in r.stderr, r.stderr
            assert snapshot(db) == before, types
        # a full disk: writes fail (a file size limit, as ENOSPC would)
        src = trades_csv(f"{d}/big.csv", "2024.01.05", 200_000, new)

        def small_files():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))
        p = subprocess.run([QPEACH, "db", "import", src, db, "trade", "--partition", "date"],
                           capture_output=True, text=True, preexec_fn=small_files, timeout=120)
        assert p.returncode == 1 and "File too large" in p.stderr, (p.returncode, p.stderr)
        assert snapshot(db) == before
    finally:
        shutil.rmtree(d)


def test_kill_9_mid_import_changes_nothing():
    """A large import killed while it writes: once its process is gone the
    db, sym and every .d are as before (nothing to clean up by hand)."""
    d = tmpdir()
    try:
        db = f"{d}/db"
        src = trades_csv(f"{d}/day0.csv", "2024.01.02", 1000, ["S%d" % i for i in range(50)])
        assert qpeach("db", "import", src, db, "trade", "--partition", "date").returncode == 0
        before = snapshot(db)
        # 40 dates, 2M rows, each date's folder written in turn
        n = 2_000_000
        rng = np.random.default_rng(1)
        dates = np.array(["2024.02.%02d" % (1 + i % 28) if i < 28 else "2024.03.%02d" % (i - 27)
                          for i in range(40)])
        syms = np.array(["K%d" % i for i in range(5000)])
        big = pd.DataFrame({"date": dates[rng.integers(0, 40, n)], "sym": syms[rng.integers(0, 5000, n)],
                            "price": rng.integers(100, 100_000, n) / 100, "size": rng.integers(1, 1000, n)})
        big.to_csv(f"{d}/big.csv", index=False)
        p = subprocess.Popen([QPEACH, "db", "import", f"{d}/big.csv", db, "trade", "--partition", "date"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # kill it while it writes: some of the 40 date folders made, not all
        while p.poll() is None and len([n for n in snapshot_names(db) - set(before)
                                        if n.startswith("2024.0") and "/" not in n]) < 5:
            time.sleep(0.002)
        kids = harness.children(p.pid)
        p.kill()
        p.wait()
        assert p.returncode == -signal.SIGKILL, "the import finished before it could be killed"
        for k in kids:                                   # whatever it left to clean up
            while b"qpeach" in harness.cmdline(k):
                time.sleep(0.01)
        wait_unlocked(db)
        assert snapshot(db) == before, sorted(set(snapshot(db)) ^ set(before))
        # and the db still takes the same import whole
        r = qpeach("db", "import", f"{d}/big.csv", db, "trade", "--partition", "date", timeout=300)
        assert r.returncode == 0, r.stderr
        assert "41 partitions" in qpeach("db", "info", db).stdout
    finally:
        shutil.rmtree(d)


def test_kill_at_each_commit_step_rolls_back_or_forward():
    """strace kills the import at its k-th rename (the commit: sym, a date
    folder moved aside, new folders placed) for every k, and at its first
    rmdir (after the commit, dropping the replaced folder): the db is then
    as before, or, once the commit is done, as a whole import leaves it."""
    if not shutil.which("strace"):
        raise harness.Skip("strace is not installed")
    d = tmpdir()
    try:
        a = write(f"{d}/a.csv", "date,sym,price,size\n2015.01.02,ibm,101.5,100\n2015.01.01,msft,33,200\n")
        b = write(f"{d}/b.csv", "date,sym,price,size\n2015.01.02,new1,1.5,1\n2015.01.03,new2,2.5,2\n")
        assert qpeach("db", "import", a, f"{d}/base", "trade", "--partition", "date").returncode == 0
        shutil.copytree(f"{d}/base", f"{d}/ref")
        assert qpeach("db", "import", b, f"{d}/ref", "trade", "--partition", "date").returncode == 0
        base, ref = snapshot(f"{d}/base"), snapshot(f"{d}/ref")
        assert base != ref
        cases = [("rename", k) for k in range(1, 10)] + [("link", 1), ("rmdir", 1)]
        killed = set()
        # LeakSanitizer cannot run under ptrace (a sanitizer build's exit)
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:" + os.environ.get("ASAN_OPTIONS", ""))
        for call, k in cases:
            db = f"{d}/db"
            shutil.rmtree(db, ignore_errors=True)
            shutil.copytree(f"{d}/base", db)
            p = subprocess.run(["strace", "-qq", "-o", "/dev/null", "-e", f"trace={call}",
                                "-e", f"inject={call}:signal=KILL:when={k}",
                                QPEACH, "db", "import", b, db, "trade", "--partition", "date"],
                               capture_output=True, text=True, timeout=60, env=env)
            wait_unlocked(db)                   # the guard has rolled back
            if p.returncode == 0:               # fewer calls than k: it finished
                assert snapshot(db) == ref, (call, k)
                continue
            assert p.returncode == -signal.SIGKILL, (call, k, p.returncode, p.stderr)
            killed.add((call, k))
            want = ref if call == "rmdir" else base
            assert snapshot(db) == want, (call, k, sorted(set(snapshot(db)) ^ set(want)))
        # sym, the replaced folder moved aside, two folders placed; link; rmdir
        assert {("rename", k) for k in range(1, 5)} | {("link", 1), ("rmdir", 1)} <= killed, killed
    finally:
        shutil.rmtree(d)


def snapshot_names(db):
    names = set()
    for top, dirs, files in os.walk(db):
        names.update(os.path.relpath(os.path.join(top, n), db) for n in dirs + files)
    return names


# ---------------------------------------------------------------- 18.4

def test_append_keeps_the_table_schema():
    d = tmpdir()
    try:
        db = f"{d}/db"
        a = write(f"{d}/a.csv", "date,sym,price,size\n2024.01.02,ibm,101.5,100\n2024.01.02,msft,33.25,200\n")
        assert qpeach("db", "import", a, db, "trade", "--partition", "date").returncode == 0
        # a day of integer prices, columns in another order
        b = write(f"{d}/b.csv", "sym,date,size,price\nibm,2024.01.03,300,102\naapl,2024.01.03,400,7\n")
        r = qpeach("db", "import", b, db, "trade", "--partition", "date")
        assert r.returncode == 0, r.stderr
        info = qpeach("db", "info", db).stdout
        meta = [l.split() for l in info.splitlines() if l.startswith("  ")]
        assert meta == [["date", "d"], ["sym", "s", "p"], ["price", "f"], ["size", "j"]], info
        got, want = served(db, "trade"), from_csv(a, b)
        assert got["price"].dtype == np.float64
        same_rows(got, want, ["date", "sym", "price", "size"])
        # what cannot be parsed as the table holds it fails, naming column and types
        cases = [
            ("date,sym,price\n2024.01.04,ibm,1.5\n", "column size (long in table trade) is not in"),
            ("date,sym,price,size,venue\n2024.01.04,ibm,1.5,1,X\n", "column venue is not in table trade"),
            ("date,sym,price,size\n2024.01.04,ibm,abc,1\n", "column price: 'abc' is a symbol, not a float (as table trade holds it)"),
        ]
        before = snapshot(db)
        for text, msg in cases:
            r = qpeach("db", "import", write(f"{d}/c.csv", text), db, "trade", "--partition", "date")
            assert r.returncode == 1 and msg in r.stderr, (text, r.stderr)
        r = qpeach("db", "import", b, db, "trade", "--partition", "date", "--types", "SDJJ")
        assert r.returncode == 1 and "column price: given as long, but table trade holds it as float" in r.stderr, r.stderr
        # one name, one table: not splayed beside partitioned, nor the reverse
        r = qpeach("db", "import", a, db, "trade")
        assert r.returncode == 1 and "table trade is partitioned by date in" in r.stderr, r.stderr
        assert snapshot(db) == before
        assert qpeach("db", "import", a, db, "ref").returncode == 0
        r = qpeach("db", "import", a, db, "ref", "--partition", "date")
        assert r.returncode == 1 and "table ref is a splayed table in" in r.stderr, r.stderr
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------- 18.5

def test_files_and_folders_follow_the_umask():
    d = tmpdir()
    try:
        src = write(f"{d}/t.csv", "date,sym,price,note\n2024.01.02,ibm,1.5,hi\n2024.01.03,msft,2.5,yo\n")
        for mask in (0o022, 0o002, 0o077):
            db = f"{d}/db{mask:o}"
            for args in (("trade", "--partition", "date"), ("ref",)):
                p = subprocess.run([QPEACH, "db", "import", src, db, *args, "--types", "DSF*"],
                                   capture_output=True, text=True, preexec_fn=lambda: os.umask(mask))
                assert p.returncode == 0, p.stderr
            modes = {}
            for top, dirs, files in os.walk(db):
                for n in dirs + files:
                    st = os.lstat(os.path.join(top, n))
                    modes[os.path.relpath(os.path.join(top, n), db)] = (st.st_mode & 0o777, os.path.isdir(os.path.join(top, n)))
            assert "2024.01.02/trade/note#" in modes and "ref/.d" in modes and "sym" in modes, modes
            for rel, (mode, isdir) in modes.items():
                assert mode == (0o777 if isdir else 0o666) & ~mask, (oct(mask), rel, oct(mode))
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------- 18.6

def test_two_imports_at_once_both_land():
    d = tmpdir()
    try:
        db = f"{d}/db"
        n = int(os.environ.get("QPEACH_IMPORT_ROWS", "2000000"))
        src = [trades_csv(f"{d}/d{k}.csv", "2024.01.0%d" % (2 + k), n,
                          ["K%d_%d" % (k, i) for i in range(5000)], seed=k) for k in (0, 1)]
        ps = [subprocess.Popen([QPEACH, "db", "import", s, db, "trade", "--partition", "date"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in src]
        outs = [p.communicate(timeout=280) for p in ps]
        for p, (out, err) in zip(ps, outs):
            assert p.returncode == 0, err
        got, want = served(db, "trade"), from_csv(*src)
        same_rows(got, want, ["date", "sym", "price", "size"])
        assert not [f for f in os.listdir(db) if f.startswith(".")], os.listdir(db)
    finally:
        shutil.rmtree(d)


def test_a_held_lock_makes_the_second_import_wait_or_fail_naming_the_holder():
    d = tmpdir()
    try:
        db = f"{d}/db"
        big = trades_csv(f"{d}/big.csv", "2024.01.02", 300_000, ["A", "B"])
        small = write(f"{d}/s.csv", "date,sym,price,size\n2024.01.03,C,1.5,1\n")
        first = subprocess.Popen([QPEACH, "db", "import", big, db, "trade", "--partition", "date"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lock = os.path.join(db, ".qpeach.lock")

        def holds():
            try:
                with open(lock) as f:
                    return f.read().strip() == str(first.pid)
            except OSError:
                return False
        assert harness.wait_for(holds, timeout=60, interval=0.001), "the first import never held the lock"
        os.kill(first.pid, signal.SIGSTOP)               # held for as long as this test likes
        try:
            r = qpeach("db", "import", small, db, "trade", "--partition", "date", "--wait", "0")
            assert r.returncode == 1, r.stdout
            assert f"held by pid {first.pid}" in r.stderr, r.stderr
            second = subprocess.Popen([QPEACH, "db", "import", small, db, "trade", "--partition", "date",
                                       "--wait", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            note = second.stderr.readline()             # said at once, then it waits
            assert f"waiting for pid {first.pid}" in note, note
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert first.wait(120) == 0, first.stderr.read()
        assert second.wait(120) == 0, second.stderr.read()
        got = served(db, "trade")
        same_rows(got, from_csv(big, small), ["date", "sym", "price", "size"])
    finally:
        shutil.rmtree(d)



def test_imports_started_together_name_a_real_holder():
    """Two imports started at the same moment: the one that waits names the
    holder's pid (the holder writes it just after taking the lock; it read
    'pid 0' when it looked in between)."""
    d = tmpdir()
    try:
        a = trades_csv(f"{d}/a.csv", "2024.01.02", 20_000, ["A", "B"])
        b = trades_csv(f"{d}/b.csv", "2024.01.03", 20_000, ["C", "D"])
        for i in range(8):
            db = f"{d}/db{i}"
            ps = [subprocess.Popen([QPEACH, "db", "import", f, db, "trade", "--partition", "date"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for f in (a, b)]
            outs = [p.communicate(timeout=120) for p in ps]
            assert [p.returncode for p in ps] == [0, 0], outs
            pids = {str(p.pid) for p in ps}
            for _, err in outs:
                for m in re.findall(r"waiting for pid (\d+)", err):
                    assert m in pids, (m, pids, err)
            same_rows(served(db, "trade"), from_csv(a, b), ["date", "sym", "price", "size"])
    finally:
        shutil.rmtree(d)

# ---------------------------------------------------------------- 21.4

def splayed(db, table):
    """A splayed table read straight from its files with numpy (not our
    reader): a DataFrame, symbols as str."""
    def data(name, offset, dtype):
        return np.fromfile(os.path.join(db, table, name), dtype=dtype, offset=offset)
    with open(os.path.join(db, "sym"), "rb") as f:
        names = np.array(f.read()[8:].split(b"\0")[:-1]).astype(str)
    with open(os.path.join(db, table, ".d"), "rb") as f:
        cols = [c.decode() for c in f.read()[8:].split(b"\0")[:-1]]
    out = {}
    for c in cols:
        with open(os.path.join(db, table, c), "rb") as f:
            head = f.read(16)
        if head[:2] == b"\xfd\x20":                    # enumerated against sym
            out[c] = names[data(c, 4096, np.int64)]
        else:
            out[c] = data(c, 16, {7: np.int64, 9: np.float64}[head[2]])
    return pd.DataFrame(out)


def big_trades(path, copies, rows=1_000_000, seed=5):
    """copies x rows trade lines (sym, price, size): one block of rows
    formatted by numpy and written copies times."""
    rng = np.random.default_rng(seed)
    syms = np.array(["S%03d" % i for i in range(300)])[rng.integers(0, 300, rows)]
    cents = rng.integers(100, 1_000_000, rows)
    px = np.char.add(np.char.add((cents // 100).astype(str), "."), np.char.zfill((cents % 100).astype(str), 2))
    line = np.char.add(np.char.add(np.char.add(syms, ","), np.char.add(px, ",")),
                       rng.integers(1, 100_000, rows).astype(str))
    block = "\n".join(line.tolist()) + "\n"
    with open(path, "w") as f:
        f.write("sym,price,size\n")
        for _ in range(copies):
            f.write(block)
    return path


# A sanitizer build's own memory (shadow, allocator caches) on top.
ASAN_SLACK = (64 << 20) if "asan" in os.environ.get("QPEACH_BUILD", "") else 0


# Runs argv and prints its wait4 peak RSS (KB) and exit code: from a small
# process, since a child forked (or vforked) by this one starts with this
# process's peak counted as its own.
PEAK = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
print(ru.ru_maxrss, os.waitstatus_to_exitcode(status), file=sys.stderr)
"""


def peak_rss(argv):
    """Runs argv to its end: (its peak RSS in bytes, exit code, stdout,
    stderr)."""
    r = subprocess.run([sys.executable, "-c", PEAK] + argv, capture_output=True, text=True,
                       timeout=600)
    kb, code = r.stderr.strip().splitlines()[-1].split()
    return int(kb) * 1024, int(code), r.stdout, r.stderr


def test_a_splayed_import_holds_a_few_batches_not_the_table():
    """The rows of a splayed import are written as they are parsed: the
    import's peak RSS stays far below the CSV's size (it held the table,
    2.5x the CSV, when it parsed everything before writing), and the
    table is the CSV as pandas reads it."""
    d = tmpdir()
    try:
        src = big_trades(f"{d}/t.csv", 4)
        size = os.path.getsize(src)
        peak, code, out, err = peak_rss([QPEACH, "db", "import", src, f"{d}/db", "trade", "--types", "SFJ"])
        assert code == 0, err
        assert "wrote 4000000 rows, 3 columns of trade" in out, out
        assert peak <= 1.5 * size + ASAN_SLACK, (peak, size)
        got = splayed(f"{d}/db", "trade")
        want = pd.read_csv(src, dtype={"sym": str})
        for c in ("sym", "price", "size"):
            assert (got[c].to_numpy() == want[c].to_numpy()).all(), c
    finally:
        shutil.rmtree(d)


def test_kill_9_mid_splayed_import_changes_nothing():
    """A splayed import killed while its rows are being written (its
    columns half written in the temporary folder): once it is gone the db
    is byte for byte as before, and the same import then lands whole."""
    d = tmpdir()
    try:
        db = f"{d}/db"
        small = write(f"{d}/s.csv", "sym,price,size\nS001,1.5,1\nZZZ,2.5,2\n")
        assert qpeach("db", "import", small, db, "trade").returncode == 0
        before = snapshot(db)
        src = big_trades(f"{d}/t.csv", 3)
        p = subprocess.Popen([QPEACH, "db", "import", src, db, "trade"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        price = f"{db}/.trade.qpeach-new/price"

        def half_written():
            try:
                return os.path.getsize(price) > 1 << 20
            except OSError:
                return False
        while p.poll() is None and not half_written():
            time.sleep(0.001)
        kids = harness.children(p.pid)
        p.kill()
        p.wait()
        assert p.returncode == -signal.SIGKILL, "the import finished before it could be killed"
        for k in kids:                                   # the guard, rolling back
            while b"qpeach" in harness.cmdline(k):
                time.sleep(0.01)
        wait_unlocked(db)
        assert snapshot(db) == before, sorted(set(snapshot(db)) ^ set(before))
        r = qpeach("db", "import", src, db, "trade", timeout=300)
        assert r.returncode == 0, r.stderr
        got, want = splayed(db, "trade"), pd.read_csv(src, dtype={"sym": str})
        assert len(got) == len(want) and (got["sym"].to_numpy() == want["sym"].to_numpy()).all()
    finally:
        shutil.rmtree(d)
