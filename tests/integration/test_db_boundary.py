"""What a mounted kdb+ database leaves out, it says (issue 18 follow-ups):
a partition folder that cannot be opened fails its partitioned tables
naming the folder and the cause; partition folders of a kind that lost
the vote (a month folder in a date-partitioned db) are noted by `db info`
and in the server's log at mount, and ignored as q ignores them; plans and
log lines print partition and column values as q prints them; `db info`
shows the type q's meta shows for every column kind our writer writes;
and `.qp.reload[]` reaches `-s -N` worker processes.

Every database is made by `qpeach db import` in a temporary folder;
expected values come from pandas on the CSV files imported, and expected
q text from Python's own date and time arithmetic."""
import datetime
import os
import shutil
import subprocess

import numpy as np
import pandas as pd

from harness import QPEACH, Server, qpeach, tmpdir
from qipc import Conn, Sym, Vec
from test_db import expect_error
from test_db_mount import call, days, import_df, trades
from test_run import run, write


def as_other_user():
    """preexec_fn: when root (who may open any folder), become nobody so
    that a folder's permissions apply."""
    if os.getuid() == 0:
        os.setgid(65534)
        os.setuid(65534)



def info_unreadable(db, path, mode):
    """`qpeach db info DB` as another user while path is mode 0; path gets
    mode back afterwards. The finished process."""
    os.chmod(path, 0)
    try:
        return subprocess.run([QPEACH, "db", "info", db], capture_output=True, text=True,
                              timeout=60, preexec_fn=as_other_user)
    finally:
        os.chmod(path, mode)

def part_db(d, dates=("2024.01.02", "2024.01.03", "2024.01.04")):
    """A date-partitioned trade and a splayed ref; the frames imported."""
    db = os.path.join(d, "db")
    frames = [trades(20 + i, day, 30 + 10 * i) for i, day in enumerate(dates)]
    for f in frames:
        import_df(d, db, "trade", f)
    ref = pd.DataFrame({"id": [1, 2, 3], "px": [1.5, 2.5, 3.5]})
    import_df(d, db, "ref", ref, partition=False, types="JF")
    return db, frames, ref


# ---- a partition folder that cannot be opened ----

def test_unreadable_partition_folder_fails_its_tables():
    d = tmpdir()
    db, frames, ref = part_db(d)
    gone = os.path.join(db, "2024.01.05")
    os.symlink(os.path.join(d, "unmounted-disk", "2024.01.05"), gone)   # a disk not mounted
    r = qpeach("db", "info", db)
    assert r.returncode == 1, (r.returncode, r.stdout)
    line = [l for l in r.stdout.splitlines() if l.startswith("table trade:")]
    assert line and "cannot be read" in line[0] and gone in line[0], r.stdout
    assert "No such file or directory" in line[0], line
    assert "table ref: 3 rows, splayed, 2 columns" in r.stdout, r.stdout
    with Server("--db", db) as s, Conn(port=s.port) as c:
        assert any(gone in l and "No such file or directory" in l for l in s.log), s.log
        for fn in (".qp.get", ".qp.count", ".qp.meta", ".qp.partitions"):
            expect_error(lambda: call(c, fn, Sym("trade")), gone, "No such file or directory")
        expect_error(lambda: c.call("trade"), gone)
        assert call(c, ".qp.count", Sym("ref")) == 3          # the others are served
        assert call(c, ".qp.get", Sym("ref")).cols["px"].items == ref["px"].tolist()
        # the disk comes back: the running server sees the partition
        shutil.copytree(os.path.join(db, "2024.01.04"), os.path.join(d, "unmounted-disk", "2024.01.05"))
        assert call(c, ".qp.partitions", Sym("trade")) == Vec("d", [days(x) for x in (
            "2024.01.02", "2024.01.03", "2024.01.04", "2024.01.05")])
        assert call(c, ".qp.count", Sym("trade")) == sum(len(f) for f in frames) + len(frames[2])
        shutil.rmtree(os.path.join(d, "unmounted-disk"))
    write(d, "n.py", "import numpy as np\ndef n(t):\n    return {'n': np.array([len(t['price'])])}\n")
    ini = write(d, "j.ini", f"[job]\nname = j\nfunction = n.py:n\n[input]\ndb = {db}\ntable = trade\n"
                "[partition]\nby = partition\n[workers]\nlocal = 1\n[output]\npath = o.csv\n")
    r = run(ini)
    assert r.returncode != 0 and gone in r.stderr, (r.returncode, r.stderr)
    assert not os.path.exists(os.path.join(d, "o.csv"))
    # a partition folder this user may not open (root may open anything:
    # the check runs as nobody then)
    os.unlink(gone)
    os.chmod(d, 0o755)
    locked = os.path.join(db, "2024.01.03")
    r = info_unreadable(db, locked, 0o755)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    line = [l for l in r.stdout.splitlines() if l.startswith("table trade:")]
    assert line and locked in line[0] and "Permission denied" in line[0], r.stdout
    # all partitions unreadable: nothing to serve, and the cause is said
    only = os.path.join(d, "only")
    import_df(d, only, "trade", frames[0])
    shutil.rmtree(os.path.join(only, "2024.01.02"))
    os.symlink(os.path.join(d, "unmounted-disk", "x"), os.path.join(only, "2024.01.02"))
    r = qpeach("db", "info", only)
    assert r.returncode == 2 and os.path.join(only, "2024.01.02") in r.stderr, r.stderr
    assert "No such file or directory" in r.stderr, r.stderr
    shutil.rmtree(d)


def test_unreadable_table_folder_in_a_partition_is_not_missing_rows():
    """A table folder of one partition linked to a disk that is gone: its
    rows there are unknown, never 0 rows of the other partitions' columns."""
    d = tmpdir()
    db, frames, _ = part_db(d)
    t = os.path.join(db, "2024.01.03", "trade")
    shutil.rmtree(t)
    os.symlink(os.path.join(d, "unmounted-disk", "trade"), t)
    r = qpeach("db", "info", db)
    assert r.returncode == 1 and "table trade: cannot be read" in r.stdout, r.stdout
    assert t in r.stdout, r.stdout
    with Server("--db", db) as s, Conn(port=s.port) as c:
        for fn in (".qp.get", ".qp.count"):
            expect_error(lambda: call(c, fn, Sym("trade")), t)
    shutil.rmtree(d)


# ---- partition folders of a kind that lost the vote ----

def test_unreadable_root_tables_are_named_with_their_cause():
    """A splayed table's folder linked to a disk that is gone, and a flat
    table file this user may not read: each is noted by `db info` with its
    cause, and asking for it by name says why it cannot be read, never that
    there is no such table (or, worse, nothing at all)."""
    d = tmpdir()
    db, frames, ref = part_db(d)
    gone = os.path.join(db, "quote")
    os.symlink(os.path.join(d, "unmounted-disk", "quote"), gone)
    r = qpeach("db", "info", db)
    assert gone in r.stdout and "No such file or directory" in r.stdout, r.stdout
    with Server("--db", db) as s, Conn(port=s.port) as c:
        for fn in (".qp.get", ".qp.count", ".qp.meta"):
            expect_error(lambda: call(c, fn, Sym("quote")), "table quote cannot be read", gone,
                         "No such file or directory")
        expect_error(lambda: call(c, ".qp.get", Sym("nosuch")), "nosuch")   # as q: 'nosuch
        assert call(c, ".qp.count", Sym("ref")) == 3
    write(d, "n.py", "import numpy as np\ndef n(t):\n    return {'n': np.array([len(t['px'])])}\n")
    ini = write(d, "j.ini", f"[job]\nname = j\nfunction = n.py:n\n[input]\ndb = {db}\ntable = quote\n"
                "[workers]\nlocal = 1\n[output]\npath = o.csv\n")
    r = run(ini)
    assert r.returncode != 0 and gone in r.stderr and "No such file" in r.stderr, (r.returncode, r.stderr)
    # a flat table file (q's `:db/t set t, one file) nobody else may read
    os.unlink(gone)
    flat = os.path.join(db, "flat")
    with open(flat, "wb") as f:      # our writer makes splayed tables only: the bytes are built here
        f.write(FLAT_TABLE)
    os.chmod(d, 0o755)
    r = info_unreadable(db, flat, 0o644)
    assert flat in r.stdout and "Permission denied" in r.stdout, (r.stdout, r.stderr)
    r = qpeach("db", "info", db)                         # readable again: a table
    assert "table flat: 3 rows" in r.stdout, r.stdout
    shutil.rmtree(d)


# ([] a: 1 2 3) in a flat file: ff 01, then the table's IPC body
# (98 0 99, a symbol vector of names, a list of one long vector).
FLAT_TABLE = (b"\xff\x01" + bytes([98, 0, 99, 11, 0]) + (1).to_bytes(4, "little") + b"a\0"
              + bytes([0, 0]) + (1).to_bytes(4, "little")
              + bytes([7, 0]) + (3).to_bytes(4, "little")
              + b"".join(v.to_bytes(8, "little") for v in (1, 2, 3)))


def test_partition_folders_of_another_kind_are_noted():
    d = tmpdir()
    db, frames, _ = part_db(d)
    month = os.path.join(db, "2024.03")           # a month folder beside dates
    shutil.copytree(os.path.join(db, "2024.01.02"), month)
    year = os.path.join(db, "2015")               # a year (or int) folder
    shutil.copytree(os.path.join(db, "2024.01.02"), year)
    r = qpeach("db", "info", db)
    assert r.returncode == 0, (r.stdout, r.stderr)
    want = sum(len(f) for f in frames)            # q ignores them: so do we
    assert f"table trade: {want} rows, partitioned by date, 3 partitions" in r.stdout, r.stdout
    notes = [l for l in r.stdout.splitlines() if l.startswith("note: ")]
    assert any(month in n and "month" in n and "date" in n for n in notes), r.stdout
    assert any(year in n and "date" in n for n in notes), r.stdout
    with Server("--db", db) as s, Conn(port=s.port) as c:
        assert call(c, ".qp.partitions", Sym("trade")) == Vec("d", [days(f["date"][0]) for f in frames])
        assert call(c, ".qp.count", Sym("trade")) == want
        log = "".join(s.log)
        assert month in log and year in log, log
    shutil.rmtree(d)


# ---- values as q prints them, in plans and log lines ----

def q_month(y, m):
    return f"{y:04d}.{m:02d}m"


def test_month_partitions_print_as_q_prints_them():
    d = tmpdir()
    db, frames, _ = part_db(d, ("2024.01.02", "2024.03.05"))
    os.rename(os.path.join(db, "2024.01.02"), os.path.join(db, "2024.01"))   # a month db
    os.rename(os.path.join(db, "2024.03.05"), os.path.join(db, "2024.03"))
    write(d, "n.py", "import numpy as np\ndef n(t):\n    return {'n': np.array([len(t['price'])])}\n")
    ini = write(d, "j.ini", f"[job]\nname = j\nfunction = n.py:n\n[input]\ndb = {db}\ntable = trade\n"
                "[partition]\nby = partition\n[workers]\nlocal = 1\n[output]\npath = o.csv\n")
    r = run("--dry-run", ini)
    assert r.returncode == 0, r.stderr
    for m in (q_month(2024, 1), q_month(2024, 3)):
        assert f"month={m}" in r.stdout, r.stdout
    r = run(ini)
    assert r.returncode == 0, r.stderr
    assert f"(month={q_month(2024, 3)})" in r.stderr, r.stderr
    got = pd.read_csv(os.path.join(d, "o.csv"))["n"].tolist()
    assert got == [len(f) for f in frames], got
    shutil.rmtree(d)


def q_clock(ns, frac):
    s, f = divmod(ns, 10**9)
    text = f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
    return text + (f".{f // 10**(9 - frac):0{frac}d}" if frac else "")


def test_temporal_column_values_print_as_q_prints_them():
    """by = column over each temporal type: the task's log line shows the
    value as q's console does."""
    d = tmpdir()
    ts = datetime.datetime(2024, 1, 2, 9, 30, 0)
    ns = (9 * 3600 + 30 * 60) * 10**9 + 123456789
    span = datetime.timedelta(days=1, seconds=1, microseconds=500000)
    span_ns = span // datetime.timedelta(microseconds=1) * 1000
    q = {   # column: (type letter, CSV text, as q prints the value)
        "m": ("m", "2024-03", q_month(2024, 3)),
        "u": ("u", "09:30", q_clock(ns, 0)[:5]),
        "v": ("v", "09:30:00", q_clock(ns // 10**9 * 10**9, 0)),
        "t": ("t", "09:30:00.123", q_clock(ns // 10**6 * 10**6, 3)),
        "n": ("n", f"{span.days}D{q_clock(span_ns % (86400 * 10**9), 9)}",
              f"{span.days}D{q_clock(span_ns % (86400 * 10**9), 9)}"),
        "p": ("p", f"{ts:%Y.%m.%d}D{q_clock(ns, 9)}", f"{ts:%Y.%m.%d}D{q_clock(ns, 9)}"),
        "z": ("z", f"{ts:%Y.%m.%d}T{q_clock(ns // 10**6 * 10**6, 3)}",
              f"{ts:%Y.%m.%d}T{q_clock(ns // 10**6 * 10**6, 3)}"),
    }
    cols = list(q)
    src = write(d, "t.csv", ",".join(cols + ["x"]) + "\n" + ",".join(q[c][1] for c in cols) + ",1\n")
    types = "".join(q[c][0] for c in cols) + "j"
    write(d, "n.py", "import numpy as np\ndef n(t):\n    return {'n': np.array([len(t['x'])])}\n")
    for c in cols:
        ini = write(d, f"{c}.ini", f"[job]\nname = {c}\nfunction = n.py:n\n[input]\nfile = {src}\n"
                    f"types = {types}\n[partition]\nby = column\ncolumn = {c}\n[workers]\nlocal = 1\n"
                    f"[output]\npath = out-{c}.csv\n")
        r = run(ini)
        assert r.returncode == 0, r.stderr
        assert f"({c}={q[c][2]})" in r.stderr, (c, q[c][2], r.stderr)
    shutil.rmtree(d)


# ---- db info: the type q's meta shows ----

def test_db_info_types_are_q_meta_types():
    """Every column kind `qpeach db import` writes shows as q's meta shows
    it: simple columns their type letter, symbols `s`, strings (q 4.x's
    nested anymap files) `C`, for a splayed and a partitioned table."""
    d = tmpdir()
    df = pd.DataFrame({
        "date": ["2024.01.02", "2024.01.02"], "b": ["true", "false"],
        "g": ["8c680a01-5a49-5aab-5a65-d4bfddb6a661"] * 2, "x": ["0a", "ff"], "h": [1, 2],
        "i": [3, 4], "j": [5, 6], "e": [1.5, 2.5], "f": [3.5, 4.5], "c": ["x", "y"],
        "s": ["ibm", "msft"], "p": ["2024.01.02D09:30:00.000000001"] * 2, "m": ["2024.03"] * 2,
        "d": ["2024.01.02"] * 2, "z": ["2024.01.02T09:30:00.000"] * 2, "n": ["0D00:00:01.5"] * 2,
        "u": ["09:30"] * 2, "v": ["09:30:01"] * 2, "t": ["09:30:00.123"] * 2,
        "str": ["hello", ""]})
    letters = "dbgxhijefcspmdznuvt*"
    # what q's meta shows: the type letter of a simple column, C for a
    # column of strings
    want = {c: ("C" if t == "*" else t) for c, t in zip(df.columns, letters)}
    db = os.path.join(d, "db")
    import_df(d, db, "all", df.drop(columns=["date"]), partition=False, types=letters[1:])
    import_df(d, db, "parts", df, types=letters)
    r = qpeach("db", "info", db)
    assert r.returncode == 0, r.stderr
    shown = {}
    table = None
    for line in r.stdout.splitlines():
        if line.startswith("table "):
            table = line.split()[1].rstrip(":")
        elif line.startswith("  "):
            name, rest = line[2:18].strip(), line[19:]
            shown[(table, name)] = rest[:1]
    for table in ("all", "parts"):
        for c, t in want.items():
            if table == "all" and c == "date":
                continue
            assert shown.get((table, c)) == t, (table, c, shown.get((table, c)), t, r.stdout)
    with Server("--db", db) as s, Conn(port=s.port) as c:
        m = call(c, ".qp.meta", Sym("all"))
        assert "".join(m.values.cols["t"]) == "".join(want[k] for k in df.columns[1:])
    shutil.rmtree(d)


# ---- .qp.reload[] reaches -s -N worker processes ----

def test_reload_reaches_worker_processes():
    """A table added to an existing partition shows nowhere a server
    watches: .qp.reload[] on a server with -s -N workers makes each worker
    process mount the db again too, so peach items that read the new table
    on a worker see it."""
    d = tmpdir()
    db = os.path.join(d, "db")
    import_df(d, db, "trade", trades(30, "2024.01.02", 40))
    quote = pd.DataFrame({"date": "2024.01.02", "bid": np.round(np.random.default_rng(31).uniform(1, 9, 25), 3),
                          "qty": np.arange(25)})
    other = os.path.join(d, "other")
    import_df(d, other, "quote", quote, types="DFJ")   # no symbols: no sym to share
    code = ("def qsum(i):\n"
            "    t = qtable('quote')\n"
            "    return float(t['bid'].sum()) + 1000 * len(t['qty'])\n")
    with Server("--db", db, "-s", "-2") as s, Conn(port=s.port) as c:
        assert call(c, ".qp.set", Sym("x"), 1) == "x"          # both workers up, db mounted
        c.call([Sym(".qp.def"), Sym("qsum"), code])
        os.rename(os.path.join(other, "2024.01.02", "quote"), os.path.join(db, "2024.01.02", "quote"))
        assert call(c, ".qp.reload") == Vec("s", ["quote", "trade"])
        got = c.call([Sym(".qp.peach"), Sym("qsum"), Vec("j", list(range(8)))])
        got = got.items if isinstance(got, Vec) else got
        want = float(quote["bid"].sum()) + 1000 * len(quote)
        assert len(got) == 8 and all(abs(g - want) < 1e-9 for g in got), (got, want)
    shutil.rmtree(d)
