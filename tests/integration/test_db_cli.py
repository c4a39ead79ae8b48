"""`qpeach db import` and `qpeach db info` as a user runs them: CSV files in,
kdb+ files out, checked by this file's own small parser of the q file
layouts (nothing shared with the C reader) and against q-written fixtures;
bad input exits non-zero with a clear message and writes nothing."""
import os
import shutil
import struct

import harness
from harness import qpeach, tmpdir



def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def symlist(path):
    """Names of an `ff 01` symbol list (.d or sym): NUL-ended, to the end."""
    b = read(path)
    assert b[:3] == b"\xff\x01\x0b", path
    return [s.decode() for s in b[8:].split(b"\0")[:-1]]


def column(path, fmt):
    """Items of a `fe 20` vector (count stored) or `fd 20` enumeration."""
    b = read(path)
    if b[:2] == b"\xfd\x20":
        assert b[16:20] == b"sym\0"
        n, = struct.unpack_from("<q", b, 4088)
        return list(struct.unpack_from("<%dq" % n, b, 4096)), b[4083]
    assert b[:2] == b"\xfe\x20"
    n, = struct.unpack_from("<q", b, 8)
    return list(struct.unpack_from("<%d%s" % (n, fmt), b, 16)), b[3]


TRADES = """date,sym,price,size
2015.01.02,ibm,101.5,100
2015.01.01,msft,33,200
2015.01.01,ibm,101,300
2015.01.02,aapl,1.5,400
2015.01.02,ibm,102,500
"""


def import_tref(d):
    write(f"{d}/tref.csv", "c1,c2\n1,1.1\n2,2.2\n3,3.3\n")
    r = qpeach("db", "import", f"{d}/tref.csv", f"{d}/db", "tref", "--types", "JF")
    assert r.returncode == 0, r.stderr
    assert "wrote 3 rows, 2 columns of tref" in r.stdout and "(splayed)" in r.stdout, r.stdout


def test_import_splayed_bytes_equal_q():
    q = harness.fixture("egor7", "db", "tref")
    d = tmpdir()
    try:
        import_tref(d)
        for f in (".d", "c1", "c2"):     # the bytes q wrote for the same table
            assert read(f"{d}/db/tref/{f}") == read(f"{q}/{f}"), f
    finally:
        shutil.rmtree(d)


def test_import_splayed_and_info():
    d = tmpdir()
    try:
        import_tref(d)
        r = qpeach("db", "info", f"{d}/db")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert "table tref: 3 rows, splayed, 2 columns" in lines, r.stdout
        assert [l.split() for l in lines[-2:]] == [["c1", "j"], ["c2", "f"]], r.stdout
    finally:
        shutil.rmtree(d)


def test_import_partitioned():
    d = tmpdir()
    try:
        write(f"{d}/t.csv", TRADES)
        r = qpeach("db", "import", f"{d}/t.csv", f"{d}/db", "trade", "--partition", "date")
        assert r.returncode == 0, r.stderr
        assert "wrote 5 rows, 3 columns of trade" in r.stdout, r.stdout
        assert "2 partitions 2015.01.01..2015.01.02" in r.stdout, r.stdout
        assert sorted(os.listdir(f"{d}/db")) == ["2015.01.01", "2015.01.02", "sym"]
        sym = symlist(f"{d}/db/sym")
        assert sym == ["msft", "ibm", "aapl"]   # first partition first, row order
        p = f"{d}/db/2015.01.02/trade"
        assert symlist(f"{p}/.d") == ["sym", "price", "size"]   # p# column first
        idx, attr = column(f"{p}/sym", "q")
        assert [sym[i] for i in idx] == ["aapl", "ibm", "ibm"] and attr == 3
        assert column(f"{p}/price", "d") == ([1.5, 101.5, 102.0], 0)
        assert column(f"{p}/size", "q") == ([400, 100, 500], 0)   # stable within ibm
        r = qpeach("db", "info", f"{d}/db")
        assert r.returncode == 0, r.stderr
        assert ("table trade: 5 rows, partitioned by date, 2 partitions "
                "2015.01.01..2015.01.02, 4 columns") in r.stdout, r.stdout
        meta = [l.split() for l in r.stdout.splitlines() if l.startswith("  ")]
        assert meta == [["date", "d"], ["sym", "s", "p"], ["price", "f"], ["size", "j"]], r.stdout
        # again, without p#: rows in file order; then a second table shares sym
        r = qpeach("db", "import", f"{d}/t.csv", f"{d}/db", "trade", "--partition", "date",
                   "--no-parted")
        assert r.returncode == 0, r.stderr
        assert symlist(f"{p}/.d") == ["sym", "price", "size"]
        idx, attr = column(f"{p}/sym", "q")
        assert [sym[i] for i in idx] == ["ibm", "aapl", "ibm"] and attr == 0
        write(f"{d}/s.csv", "name,n\nibm,1\nnew,2\n")
        r = qpeach("db", "import", f"{d}/s.csv", f"{d}/db", "names")
        assert r.returncode == 0, r.stderr
        assert symlist(f"{d}/db/sym") == ["msft", "ibm", "aapl", "new"]
        assert column(f"{d}/db/names/name", "q") == ([1, 3], 0)
        r = qpeach("db", "info", f"{d}/db")
        assert "table names: 2 rows, splayed, 2 columns" in r.stdout, r.stdout
        assert not [f for f in os.listdir(f"{d}/db") if f.startswith(".")]   # no temporaries
    finally:
        shutil.rmtree(d)


def test_bad_input():
    d = tmpdir()
    try:
        write(f"{d}/t.csv", TRADES)
        cases = [
            (["db", "import", f"{d}/none.csv", f"{d}/db", "t"], 1, "none.csv"),
            (["db", "import", f"{d}/t.csv", f"{d}/db", "t", "--types", "DSFQ"], 1, "unknown type char 'Q'"),
            (["db", "import", f"{d}/t.csv", f"{d}/db", "t", "--types", "DS"], 1, "2 types given for 4 columns"),
            (["db", "import", f"{d}/t.csv", f"{d}/db", "t", "--partition", "sym"], 1,
             "partition column sym is symbol, not date"),
            (["db", "import", f"{d}/t.csv", f"{d}/db", "t", "--partition", "nope"], 1, "no column nope"),
            (["db", "import", f"{d}/t.csv", f"{d}/db", "t/x"], 1, "bad table name"),
            (["db", "import", f"{d}/t.csv", f"{d}/db"], 2, "import wants CSV DB TABLE"),
            (["db", "import", f"{d}/t.csv", f"{d}/db", "t", "--bogus"], 2, "unknown or incomplete option --bogus"),
            (["db", "frob"], 2, "unknown subcommand frob"),
            (["db", "info", f"{d}/none"], 1, "none"),
        ]
        for args, rc, msg in cases:
            r = qpeach(*args)
            assert r.returncode == rc, (args, r.returncode, r.stderr)
            assert msg in r.stderr, (args, r.stderr)
        assert not os.path.exists(f"{d}/db")   # nothing written by any of them
        r = qpeach("db", "--help")
        assert r.returncode == 0 and "qpeach db import CSV DB TABLE" in r.stdout
    finally:
        shutil.rmtree(d)


def test_import_strings():
    d = tmpdir()
    try:
        write(f"{d}/s.csv", 'id,note\n1,hello\n2,"a, quoted one"\n3,\n')
        r = qpeach("db", "import", f"{d}/s.csv", f"{d}/db", "notes", "--types", "J*")
        assert r.returncode == 0, r.stderr
        assert symlist(f"{d}/db/notes/.d") == ["id", "note"]
        col, data = read(f"{d}/db/notes/note"), read(f"{d}/db/notes/note#")
        assert col[4080:4084] == b"\xfd\x01\x4d\x00" and data[4080:4084] == b"\xfd\x00\x04\x00"
        items = []
        for (e,) in struct.iter_unpack("<Q", col[4096:]):
            at = 4096 + (e & ((1 << 56) - 1))
            assert e >> 56 == 1 and data[at] == 0x89
            items.append(data[at + 2:at + 2 + data[at + 1]].decode())
        assert items == ["hello", "a, quoted one", ""]
        r = qpeach("db", "info", f"{d}/db")
        assert "table notes: 3 rows, splayed, 2 columns" in r.stdout, r.stdout
    finally:
        shutil.rmtree(d)


def test_info_q_written_db():
    r = qpeach("db", "info", harness.fixture("egor7", "db"))
    assert r.returncode == 0, r.stderr
    for line in ("table cust: 3 rows, splayed, 2 columns",
                 "table t: 4 rows, partitioned by date, 2 partitions 2015.01.01..2015.01.02, 4 columns",
                 "table tref: 3 rows, splayed, 2 columns"):
        assert line in r.stdout.splitlines(), r.stdout


def test_round_trip_import_info_serve_get_equals_the_csv():
    """import a CSV -> `qpeach db info` -> a server mounting the db answers
    `.qp.get` with the CSV's values (partitioned and splayed)."""
    import csv
    import datetime
    from harness import Server
    from qipc import Conn
    d = tmpdir()
    rows = [("2024.01.0%d" % (1 + i % 3), "S%d" % (i % 4), 1.5 * i, i * 7) for i in range(60)]
    src = os.path.join(d, "t.csv")
    write(src, "date,sym,price,size\n" + "".join("%s,%s,%r,%d\n" % r for r in rows))
    db = os.path.join(d, "db")
    r = qpeach("db", "import", src, db, "trade", "--partition", "date", "--types", "DSFJ", "--no-parted")
    assert r.returncode == 0, r.stderr
    r = qpeach("db", "import", src, db, "flat", "--types", "DSFJ")
    assert r.returncode == 0, r.stderr
    info = qpeach("db", "info", db)
    assert info.returncode == 0, info.stderr
    assert "table trade: 60 rows, partitioned by date, 3 partitions 2024.01.01..2024.01.03" in info.stdout, info.stdout
    assert "table flat: 60 rows" in info.stdout, info.stdout
    epoch = datetime.date(2000, 1, 1)
    days = lambda s: (datetime.date(*map(int, s.split("."))) - epoch).days
    with Server("--db", db) as s, Conn(port=s.port) as c:
        for name in ("trade", "flat"):
            t = c.call(".qp.get `" + name).cols
            if name == "trade":                 # partitions in date order
                assert t["date"].items == sorted(t["date"].items), t["date"]
            got = sorted(zip([days(x) if isinstance(x, str) else x for x in t["date"].items],
                             t["sym"].items, t["price"].items, t["size"].items))
            want = sorted((days(a), b, p, z) for a, b, p, z in rows)
            assert got == want, (name, got[:3], want[:3])
