"""Reading a kdb+ database never gives a wrong answer or leaves things out
silently (issue 18, "Reading a database"): a running `qpeach serve --db`
sees what `qpeach db import` wrote since it started (and `.qp.reload[]`
forces it), folders that are not tables are not tables, enumeration
domains come from the db root however the path is spelt, one name is one
table, a folder that is not a database is refused at start, pre-3.6 flat
tables with enumerations are read, and a global cannot hide a db table.

Every database here is made by `qpeach db import` in a temporary folder
(or, for the pre-3.6 flat table, built byte by byte from layout 6 of
../shared/KDB_FORMAT.md); expected values are computed with pandas from
the CSV files imported."""
import datetime
import os
import shutil
import struct
import subprocess

import numpy as np
import pandas as pd

from harness import QPEACH, Server, qpeach, tmpdir
from qipc import Conn, Identity, QError, Sym, Vec
from test_db import expect_error, qdate
from test_run import run, write

NOT_A_DB = "no kdb+ tables found (a db root holds sym and date folders or splayed tables)"


def trades(seed, date, n, syms=("ibm", "msft", "aapl")):
    """n random trades of one date, as a DataFrame (the CSV's values)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"date": date, "sym": rng.choice(list(syms), n),
                         "price": np.round(rng.uniform(10, 200, n), 2),
                         "size": rng.integers(1, 1000, n)})


def import_df(d, db, table, df, partition=True, types="DSFJ"):
    """Writes df as a CSV and imports it with `qpeach db import`."""
    src = os.path.join(d, f"{table}-{len(os.listdir(d))}.csv")
    df.to_csv(src, index=False)
    args = ["db", "import", src, db, table, "--types", types]
    r = qpeach(*(args + (["--partition", "date"] if partition else [])))
    assert r.returncode == 0, r.stderr
    return src


def call(c, fn, *args):
    return c.call([Sym(fn), *(args or [Identity()])])


def days(s):
    return (datetime.date(*map(int, s.split("."))) - datetime.date(2000, 1, 1)).days


# ---- 18.7: running servers see what was written since they started ----

STATS = ("import numpy as np\n"
         "def stats(t):\n"
         "    return {'date': np.asarray(t['date'][:1]).astype(str), 'n': np.array([len(t['price'])]),\n"
         "            'notional': np.array([float((t['price'] * t['size']).sum())])}\n")


def job_over(d, addr):
    write(d, "stats.py", STATS)
    return write(d, "j.ini", "[job]\nname = j\nfunction = stats.py:stats\n[input]\ntable = trade\n"
                 f"[partition]\nby = partition\n[workers]\nservers = {addr}\n"
                 "[merge]\nhow = concat\n[output]\npath = out/o.csv\n")


def job_result(d, ini):
    r = run(ini)
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(os.path.join(d, "out", "o.csv"))
    return {row.date: (int(row.n), float(row.notional)) for row in got.itertuples()}


def expected(frames):
    df = pd.concat(frames)
    df["notional"] = df["price"] * df["size"]
    g = df.groupby("date").agg(n=("price", "size"), notional=("notional", "sum"))
    return {k.replace(".", "-"): (int(v.n), float(v.notional)) for k, v in g.iterrows()}


def same_stats(got, want):
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for k, (n, x) in want.items():
        assert got[k][0] == n and abs(got[k][1] - x) <= 1e-9 * abs(x), (k, got[k], want[k])


def test_running_server_sees_new_and_removed_partitions():
    d = tmpdir()
    db = os.path.join(d, "db")
    day1, day2 = trades(1, "2024.01.02", 500), trades(2, "2024.01.03", 700, ("ibm", "nvda", "tsla"))
    import_df(d, db, "trade", day1)
    with Server("--db", db) as s, Conn(port=s.port) as c:
        assert call(c, ".qp.partitions", Sym("trade")) == Vec("d", [days("2024.01.02")])
        ini = job_over(d, s.addr)
        same_stats(job_result(d, ini), expected([day1]))
        import_df(d, db, "trade", day2)           # a new date, new symbols (sym grows)
        assert call(c, ".qp.partitions", Sym("trade")) == Vec("d", [days("2024.01.02"), days("2024.01.03")])
        assert call(c, ".qp.count", Sym("trade")) == 1200
        same_stats(job_result(d, ini), expected([day1, day2]))
        t = call(c, ".qp.get", Sym("trade"))
        assert sorted(set(t.cols["sym"].items)) == ["aapl", "ibm", "msft", "nvda", "tsla"]
        shutil.rmtree(os.path.join(db, "2024.01.02"))   # a removed partition goes too
        assert call(c, ".qp.partitions", Sym("trade")) == Vec("d", [days("2024.01.03")])
        same_stats(job_result(d, ini), expected([day2]))
        assert s.alive()
    shutil.rmtree(d)


def test_sym_grown_in_place_is_seen():
    """q's .Q.en appends to sym in place (the root's folder listing does not
    change): a server that read sym before must read the new names."""
    d = tmpdir()
    db = os.path.join(d, "db")
    import_df(d, db, "trade", trades(3, "2024.01.02", 50))
    with Server("--db", db) as s, Conn(port=s.port) as c:
        before = call(c, ".qp.get", Sym("trade")).cols["sym"].items   # sym read and kept
        with open(os.path.join(db, "sym"), "rb") as f:
            n = f.read()[8:].count(b"\0")
        with open(os.path.join(db, "sym"), "ab") as f:                # as .Q.en appends
            f.write(b"zzzz\0")
        with open(os.path.join(db, "2024.01.02", "trade", "sym"), "r+b") as f:
            f.seek(4096)                                              # row 0's index
            f.write(struct.pack("<q", n))
        after = call(c, ".qp.get", Sym("trade")).cols["sym"].items
        assert after == ["zzzz"] + before[1:], (after[:3], before[:3])
    shutil.rmtree(d)


def test_reload_forces_a_new_look():
    """A table added to an existing partition changes neither the root nor
    sym: .qp.reload[] makes the server look again."""
    d = tmpdir()
    db = os.path.join(d, "db")
    import_df(d, db, "trade", trades(4, "2024.01.02", 40))
    with Server("--db", db) as s, Conn(port=s.port) as c:
        assert call(c, ".qp.tables") == Vec("s", ["trade"])
        quote = trades(5, "2024.01.02", 30, ("ibm",))
        import_df(d, db, "quote", quote)
        assert call(c, ".qp.reload") == Vec("s", ["quote", "trade"])
        assert call(c, ".qp.tables") == Vec("s", ["quote", "trade"])
        assert call(c, ".qp.count", Sym("quote")) == 30
        got = call(c, ".qp.get", Sym("quote")).cols
        assert sorted(got["price"].items) == sorted(quote["price"].tolist())
    shutil.rmtree(d)


# ---- 18.8: only tables are tables ----

def test_folders_that_are_not_tables():
    d = tmpdir()
    db = os.path.join(d, "db")
    frames = [trades(6, "2024.01.02", 60), trades(7, "2024.01.03", 80)]
    for f in frames:
        import_df(d, db, "trade", f)
    os.mkdir(os.path.join(db, "empty"))
    os.mkdir(os.path.join(db, "scripts"))
    write(os.path.join(db, "scripts"), "load.q", "\\l .\n")
    for i in range(14):                               # TorQ's write-down leftovers
        os.makedirs(os.path.join(db, "2024.01.02", str(i), "trade"))
    os.mkdir(os.path.join(db, "2024.01.03", "junk"))
    write(os.path.join(db, "2024.01.03"), "notes.q", "/ nothing\n")
    os.mkdir(os.path.join(db, "2024.01.03", "qscript"))
    write(os.path.join(db, "2024.01.03", "qscript"), "x.q", "1+1\n")
    with Server("--db", db) as s, Conn(port=s.port) as c:
        assert call(c, ".qp.tables") == Vec("s", ["trade"])
        assert call(c, ".qp.count", Sym("trade")) == 140
        expect_error(lambda: c.call("junk"), "junk")
        expect_error(lambda: c.call("empty"), "empty")
    r = qpeach("db", "info", db)
    assert r.returncode == 0, r.stderr
    tables = [l for l in r.stdout.splitlines() if l.startswith("table ")]
    assert tables == ["table trade: 140 rows, partitioned by date, 2 partitions "
                      "2024.01.02..2024.01.03, 4 columns"], r.stdout
    notes = [l for l in r.stdout.splitlines() if l.startswith("note: ")]
    for folder in ("empty", "scripts", "2024.01.02/0", "2024.01.02/13", "2024.01.03/junk",
                   "2024.01.03/qscript"):
        assert any(f"{db}/{folder}:" in n and "not a table" in n for n in notes), (folder, r.stdout)
    shutil.rmtree(d)


# ---- 18.9: domains come from the db root ----

def test_domains_from_the_db_root_however_the_path_is_spelt():
    d = tmpdir()
    db = os.path.join(d, "db")
    import_df(d, db, "trade", trades(8, "2024.01.02", 20))
    ref = pd.DataFrame({"sym": ["ibm", "msft"], "name": ["IBM Corp", "Microsoft"]})
    import_df(d, db, "ref", ref, partition=False, types="SS")
    here = os.getcwd()
    os.chdir(db)
    try:
        errors = set()
        for path in ("2024.01.02", "./2024.01.02", os.path.join(db, "2024.01.02")):
            with Server("--db", path) as s, Conn(port=s.port) as c:
                e = expect_error(lambda: call(c, ".qp.get", Sym("trade")), "column sym", "`sym")
                errors.add(e.replace(path, "PATH"))
            r = qpeach("db", "info", path)
            assert r.returncode == 1 and "table trade: cannot be read" in r.stdout, (path, r.stdout)
            assert "column sym" in r.stdout and "`sym" in r.stdout, r.stdout
        assert len(errors) == 1, errors                 # one answer, however spelt
        for path in ("ref", "./ref", os.path.join(db, "ref")):   # one splayed table: its root is above
            with Server("--db", path) as s, Conn(port=s.port) as c:
                got = call(c, ".qp.get", Sym("ref")).cols
                assert got["name"].items == ["IBM Corp", "Microsoft"], (path, got)
    finally:
        os.chdir(here)
        shutil.rmtree(d)


# ---- 18.10: one name, one table ----

def test_a_splayed_and_a_partitioned_table_of_one_name_are_refused():
    d = tmpdir()
    db = os.path.join(d, "db")
    import_df(d, db, "trade", trades(9, "2024.01.02", 20))
    import_df(d, db, "quote", trades(10, "2024.01.02", 20))
    # db import refuses to make this; q (or a copy) does not: bring a splayed
    # quote made in another db to the root
    import_df(d, os.path.join(d, "other"), "quote", trades(11, "2024.01.05", 7), partition=False)
    os.rename(os.path.join(d, "other", "quote"), os.path.join(db, "quote"))
    with Server("--db", db) as s, Conn(port=s.port) as c:
        for fn in (".qp.get", ".qp.count", ".qp.meta", ".qp.partitions"):
            expect_error(lambda: call(c, fn, Sym("quote")), f"{db}/quote", f"{db}/2024.01.02/quote")
        expect_error(lambda: c.call("quote"), f"{db}/quote")
        assert call(c, ".qp.count", Sym("trade")) == 20          # the others are served
    r = qpeach("db", "info", db)
    assert r.returncode == 1, r.stdout
    assert "table quote: cannot be read" in r.stdout and f"{db}/2024.01.02/quote" in r.stdout, r.stdout
    shutil.rmtree(d)


# ---- 18.11: not a database ----

def test_not_a_database_is_refused_at_start():
    d = tmpdir()
    text = os.path.join(d, "text")
    os.mkdir(text)
    write(text, "a.txt", "hello\n")
    write(text, "b.csv", "x,y\n1,2\n")
    os.mkdir(os.path.join(d, "empty"))
    for path in ("/etc", text, os.path.join(d, "empty")):
        r = subprocess.run([QPEACH, "serve", "-p", "0", "--db", path], capture_output=True,
                           text=True, timeout=30)
        lines = r.stderr.splitlines()
        assert r.returncode == 2 and len(lines) == 1, (path, r.returncode, r.stderr)
        assert lines[0].endswith(f"{path}: {NOT_A_DB}"), lines
        r = qpeach("db", "info", path)
        assert r.returncode == 2 and r.stdout == "", (path, r.returncode, r.stdout)
        assert r.stderr.splitlines() == [f"qpeach db info: {path}: {NOT_A_DB}"], r.stderr
    for args in (["serve", "-p", "0", "--db", "/etc/passwd"], ["db", "info", "/etc/passwd"]):
        r = qpeach(*args)
        assert r.returncode == 2 and "/etc/passwd: not a folder" in r.stderr, r.stderr
        assert "qp_" not in r.stderr, r.stderr              # no C function named
    shutil.rmtree(d)


# ---- 18.12: pre-3.6 flat tables with enumerations ----

def sym_file(names):
    return b"\xff\x01\x0b\x00" + struct.pack("<i", len(names)) + b"".join(n.encode() + b"\0" for n in names)


def old_flat_table(domain, idx, price, note):
    """A table as q before 3.6 `set` it to one file (KDB_FORMAT.md, layout
    6): ff 01, then the IPC body of a table whose sym column is an
    enumeration: 0x14+1, the domain name NUL-ended, attr 3 (p#, no index),
    an int32 count, int32 indices."""
    n = len(idx)
    names = [b"sym", b"price", b"note"]
    b = b"\xff\x01" + b"\x62\x00\x63"
    b += b"\x0b\x00" + struct.pack("<i", 3) + b"".join(x + b"\0" for x in names)
    b += b"\x00\x00" + struct.pack("<i", 3)
    b += b"\x15" + domain.encode() + b"\0" + b"\x03" + struct.pack("<i%di" % n, n, *idx)
    b += b"\x09\x00" + struct.pack("<i%dd" % n, n, *price)
    b += b"\x00\x00" + struct.pack("<i", n)
    b += b"".join(b"\x0a\x00" + struct.pack("<i", len(s)) + s.encode() for s in note)
    return b


def test_pre36_flat_table_with_enumerations():
    d = tmpdir()
    db = os.path.join(d, "db")
    os.mkdir(db)
    names = ["", "ibm", "msft", "goog"]
    rng = np.random.default_rng(12)
    idx = sorted(rng.integers(1, 4, 300).tolist())          # p#: grouped
    price = np.round(rng.uniform(1, 100, 300), 3).tolist()
    note = ["n%d" % i for i in range(300)]
    with open(os.path.join(db, "sym"), "wb") as f:
        f.write(sym_file(names))
    with open(os.path.join(db, "quote"), "wb") as f:
        f.write(old_flat_table("sym", idx, price, note))
    with open(os.path.join(db, "bad"), "wb") as f:                 # an index beyond the domain
        f.write(old_flat_table("sym", [1, 9], [1.0, 2.0], ["a", "b"]))
    with open(os.path.join(db, "other"), "wb") as f:               # a domain the root lacks
        f.write(old_flat_table("sym2", [1], [1.0], ["a"]))
    with Server("--db", db) as s, Conn(port=s.port) as c:
        t = call(c, ".qp.get", Sym("quote")).cols
        assert t["sym"].items == [names[i] for i in idx]
        assert t["price"].items == price
        assert t["note"] == note
        assert call(c, ".qp.count", Sym("quote")) == 300
        assert "".join(call(c, ".qp.meta", Sym("quote")).values.cols["t"]) == "sfC"
        expect_error(lambda: call(c, ".qp.get", Sym("bad")), f"{db}/bad", "index 9")
        expect_error(lambda: call(c, ".qp.get", Sym("other")), f"{db}/other", "`sym2")
    r = qpeach("db", "info", db)
    assert "table quote: 300 rows, flat, 3 columns" in r.stdout, r.stdout
    shutil.rmtree(d)


# ---- 18.16: globals cannot hide a db table ----

def test_a_global_cannot_hide_a_db_table():
    d = tmpdir()
    db = os.path.join(d, "db")
    day = trades(13, "2024.01.02", 25)
    src = import_df(d, db, "trade", day)
    for procs in ([], ["-s", "-2"]):
        with Server("--db", db, *procs) as s, Conn(port=s.port) as c:
            for v in (42, Identity()):
                expect_error(lambda: call(c, ".qp.set", Sym("trade"), v), "trade", "db table")
            expect_error(lambda: call(c, ".qp.load", Sym("trade"), src), "trade", "db table")
            assert call(c, ".qp.count", Sym("trade")) == 25
            t = c.call("trade").cols                   # (rows sorted by sym: p#)
            assert sorted(zip(t["sym"].items, t["size"].items)) == sorted(zip(day["sym"], day["size"]))
            assert "trade" in call(c, ".qp.tables").items
            assert call(c, ".qp.set", Sym("other"), 42) == "other"     # other names still set
    r = qpeach("serve", "-p", "0", "--db", db, "--load", f"trade={src}")
    assert r.returncode == 2 and "trade" in r.stderr and "db table" in r.stderr, r.stderr
    shutil.rmtree(d)
