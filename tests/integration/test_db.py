"""`qpeach serve --db PATH`: the tables as globals (.qp.tables, .qp.count,
.qp.meta, .qp.get, a bare name, .qp.partitions), .qp.apply of Python
functions on one partition and on row ranges across partitions, symbol
columns reaching Python as Categoricals over the mapped indices, a table
that cannot be read failing alone, and -s -N workers mounting the db.

These run on databases `qpeach db import` makes in temporary folders: one
shaped as egor7's q-written db (the same tables and values, from
fixtures/kdb/README.md), and tables of generated rows. The conformance tests
at the end serve the q-written fixture databases (../shared/fixtures/kdb,
or $QPEACH_FIXTURES; read in place, never copied) and compare with ours or
with the CSV files published with them (dolphindb, ssshahani), which their
projects assert equal to the tables; without the fixtures they do not run."""
import csv
import datetime
import os
import re

from harness import FIXTURES as FIX, Server, fixture, qpeach, tmpdir
from qipc import Atom, Conn, Dict, Identity, QError, Sym, Table, Vec

EGOR = os.path.join(FIX, "egor7", "db")
DOLPHIN = os.path.join(FIX, "dolphindb", "kdb", "test", "data", "kdb_sample")
DOLPHIN_CSV = os.path.join(FIX, "dolphindb", "kdb", "test", "data", "csv_sample")
SSS = os.path.join(FIX, "ssshahani")
DEF = Sym(".qp.def")
APPLY = Sym(".qp.apply")


def need(path):
    """Raises NoFixtures without the fixtures; fails if path is missing from them."""
    fixture(os.path.relpath(path, FIX))


def import_table(root, name, text, types, *extra):
    """`qpeach db import` of CSV text into db root as table name."""
    path = os.path.join(os.path.dirname(root), f"{os.path.basename(root)}.{name}.csv")
    with open(path, "w") as f:
        f.write(text)
    r = qpeach("db", "import", path, root, name, "--types", types, *extra, timeout=120)
    assert r.returncode == 0, r.stderr


# egor7's db as its q script wrote it (fixtures/kdb/README.md): t and q
# saved per date with `set`, so no p# (--no-parted keeps their column order)
BY_DATE = ("--partition", "date", "--no-parted")
EGOR_TABLES = {
    "tref": ("c1,c2\n1,1.1\n2,2.2\n3,3.3\n", "JF", ()),
    "cust": ("sym,name\nibm,oracle\nmsft,microsoft\ngoog,google\n", "SS", ()),
    "t": ("date,ti,sym,p\n2015.01.01,09:30:00,ibm,101\n2015.01.01,09:31:00,msft,33\n"
          "2015.01.02,09:30:00,ibm,101.5\n2015.01.02,09:31:00,msft,33.5\n", "DVSF", BY_DATE),
    "q": ("date,ti,sym,b,a\n2015.01.01,09:30:00,ibm,100.75,101.25\n"
          "2015.01.01,09:31:00,msft,32.75,33.25\n2015.01.02,09:30:00,ibm,101.25,101.75\n"
          "2015.01.02,09:30:00,msft,33.25,33.75\n", "DVSFF", BY_DATE),
}


def egor_db():
    """A db of egor7's tables and values made by `qpeach db import` in a
    fresh temporary folder; its root."""
    root = os.path.join(tmpdir(), "db")
    for name, (text, types, extra) in EGOR_TABLES.items():
        import_table(root, name, text, types, *extra)
    return root


def gen_rows(n, seed, syms=("AA", "BB", "CC", "DD", "EE")):
    """n rows of (code, qty, px) from a small fixed generator."""
    import random
    rng = random.Random(seed)
    return [(rng.choice(syms) + str(rng.randint(0, 9)), rng.randint(1, 1000),
             round(rng.uniform(1, 100), 2)) for _ in range(n)]


def orders_db(root, tables=("ORD",), n=5000, date="2022.12.05"):
    """Tables of n generated rows (date, code, qty, px) in one date
    partition of root, file order kept; returns {table: rows}."""
    out = {}
    for k, name in enumerate(tables):
        rows = gen_rows(n, k)
        import_table(root, name, "date,code,qty,px\n"
                     + "".join(f"{date},{c},{q},{p}\n" for c, q, p in rows), "DSJF", *BY_DATE)
        out[name] = rows
    return out


def qdate(y, m, d):
    """q's count of days since 2000.01.01."""
    return (datetime.date(y, m, d) - datetime.date(2000, 1, 1)).days


def expect_error(fn, *texts):
    try:
        r = fn()
    except QError as e:
        for t in texts:
            assert t in str(e), f"{t!r} not in error {str(e)!r}"
        return str(e)
    raise AssertionError(f"no error (wanted {texts}), got {r!r}")


def items(x):
    """A q vector's items (a Python list comes back as a typed vector when
    its items share a type), or x itself."""
    return x.items if isinstance(x, Vec) else x


def apply(c, fn, t, part):
    """.qp.apply[fn; t; part] with each item of a list result unwrapped."""
    r = c.call([APPLY, Sym(fn), Sym(t), part])
    return [items(x) for x in r] if isinstance(r, list) else items(r)


def define(c, name, src, opts=None):
    r = c.call([DEF, Sym(name), src] + ([opts] if opts else []))
    assert isinstance(r, str) and len(r) == 64, r
    return r


def meta(c, t):
    """.qp.meta t as [(c, t, a)]."""
    m = c.call([Sym(".qp.meta"), Sym(t)])
    assert isinstance(m, Dict), m
    cols = m.keys.cols["c"].items
    types = m.values.cols["t"]
    attrs = m.values.cols["a"].items
    return list(zip(cols, types, attrs))


def test_help_and_bad_db():
    r = qpeach("serve", "--help")
    assert r.returncode == 0 and "--db PATH" in r.stdout, r.stdout
    r = qpeach("serve", "-p", "0", "--db", "/nonexistent/qpeach-db")
    assert r.returncode == 2 and "/nonexistent/qpeach-db" in r.stderr, (r.returncode, r.stderr)
    egor = egor_db()
    r = qpeach("serve", "-p", "0", "--db", egor, "--db", egor)
    assert r.returncode == 2 and "--db" in r.stderr, r.stderr


# (the sample tables of egor7/db, exactly as its q script wrote them)
SYM_T1 = ["ibm", "msft"]


def test_egor7_tables_count_get():
    with Server("--db", egor_db()) as s, Conn(port=s.port) as c:
        assert c.call([Sym(".qp.tables"), Identity()]) == Vec("s", ["cust", "q", "t", "tref"])
        counts = {t: c.call([Sym(".qp.count"), Sym(t)]) for t in ["cust", "q", "t", "tref"]}
        assert counts == {"cust": 3, "q": 4, "t": 4, "tref": 3}, counts
        tref = c.call([Sym(".qp.get"), Sym("tref")])
        assert tref == Table({"c1": Vec("j", [1, 2, 3]), "c2": Vec("f", [1.1, 2.2, 3.3])}), tref
        assert c.call("tref") == tref                     # a bare name
        cust = c.call("cust")
        assert cust.cols["sym"] == Vec("s", ["ibm", "msft", "goog"]), cust
        assert cust.cols["name"] == Vec("s", ["oracle", "microsoft", "google"]), cust
        t = c.call(Sym("t"))
        d1, d2 = qdate(2015, 1, 1), qdate(2015, 1, 2)
        assert list(t.cols) == ["date", "ti", "sym", "p"], list(t.cols)
        assert t.cols["date"] == Vec("d", [d1, d1, d2, d2]), t.cols["date"]
        assert t.cols["ti"].t == "v" and t.cols["ti"].items[:2] == [34200, 34260], t.cols["ti"]
        assert t.cols["sym"].items[:2] == SYM_T1 and t.cols["p"].items == [101.0, 33.0, 101.5, 33.5], t
        q = c.call(Sym("q"))
        assert q.cols["b"].items == [100.75, 32.75, 101.25, 33.25], q
        assert q.cols["a"].items == [101.25, 33.25, 101.75, 33.75], q
        # .qp.info lists them; no global may take a db table's name
        assert "tref" in c.call([Sym(".qp.info"), Identity()])["tables"].items
        expect_error(lambda: c.call([Sym(".qp.set"), Sym("tref"), 42]), "tref is a db table")
        assert c.call("tref") == tref
        assert "tref" in c.call([Sym(".qp.tables"), Identity()]).items
        expect_error(lambda: c.call("nope"), "nope")
        assert s.alive()


def test_egor7_meta_partitions():
    with Server("--db", egor_db()) as s, Conn(port=s.port) as c:
        m = meta(c, "t")
        assert [x[0] for x in m] == ["date", "ti", "sym", "p"], m
        assert "".join(x[1] for x in m) == "dvsf", m
        assert [x[0] for x in meta(c, "tref")] == ["c1", "c2"]
        assert "".join(x[1] for x in meta(c, "tref")) == "jf"
        parts = c.call([Sym(".qp.partitions"), Sym("t")])
        assert parts == Vec("d", [qdate(2015, 1, 1), qdate(2015, 1, 2)]), parts
        assert c.call([Sym(".qp.partitions"), Sym("tref")]) == Vec("j", [])
        expect_error(lambda: c.call([Sym(".qp.partitions"), Sym("nope")]), "nope")
        c.call([Sym(".qp.set"), Sym("r"), Table({"a": Vec("j", [1])})])
        assert c.call([Sym(".qp.partitions"), Sym("r")]) == Vec("j", [])   # resident: none



def test_distinct_values_of_a_column():
    """.qp.distinct[t; c], what a scheduler plans by = column from: sorted,
    a partitioned db table's partition by partition, and from a splayed
    one's, a resident one's; errors name the column."""
    with Server("--db", egor_db()) as s, Conn(port=s.port) as c:
        dist = lambda t, col: c.call([Sym(".qp.distinct"), Sym(t), Sym(col)])
        assert dist("t", "sym") == Vec("s", ["ibm", "msft"])
        assert dist("t", "date") == Vec("d", [qdate(2015, 1, 1), qdate(2015, 1, 2)])
        assert dist("t", "p") == Vec("f", [33.0, 33.5, 101.0, 101.5])
        assert dist("cust", "name") == Vec("s", ["google", "microsoft", "oracle"])
        c.call([Sym(".qp.set"), Sym("r"), Table({"a": Vec("j", [3, 1, 3, 2])})])
        assert dist("r", "a") == Vec("j", [1, 2, 3])
        expect_error(lambda: dist("t", "nope"), "nope: no such column")
        expect_error(lambda: dist("cust", "nope"), "nope: no such column")
        expect_error(lambda: dist("nosuch", "a"), "nosuch")
        expect_error(lambda: c.call([Sym(".qp.distinct"), Sym("r"), 1]), "type")
        assert s.alive()


ROWS = """
def rows(t):
    return [int(len(t['date'])), list(t)[0], [str(d) for d in t['date']],
            [float(x) for x in t['p']], [str(x) for x in t['sym']]]
"""


MAPS = """
import re
def maps(t):
    # the db's files mapped into this process while fn runs
    seen = set()
    with open('/proc/self/maps') as f:
        for line in f:
            m = re.search(ROOT + r'/(.*)$', line.strip())
            if m:
                seen.add(m.group(1))
    return [sorted(seen), bool(t['p'].flags.owndata), int(len(t['p']))]
"""


def test_egor7_apply_maps_one_partition():
    """One partition (by date, or rows inside it): only its files are
    mapped, and its columns are views of them (no copy)."""
    egor = egor_db()
    with Server("--db", egor) as s, Conn(port=s.port) as c:
        define(c, "maps", f"ROOT = {re.escape(os.path.realpath(egor))!r}\n" + MAPS)
        for part in ([Sym("date"), Atom("d", qdate(2015, 1, 2))], Vec("j", [2, 4])):
            seen, owndata, n = apply(c, "maps", "t", part)
            seen = items(seen) if not isinstance(seen, str) else [seen]
            assert n == 2 and owndata is False, (part, seen, owndata, n)
            assert "2015.01.02/t/p" in seen, seen
            assert not [p for p in seen if p.startswith("2015.01.01")], seen
        # rows across both partitions are a copy of those rows: no file
        # stays mapped
        seen, owndata, n = apply(c, "maps", "t", Vec("j", [1, 3]))
        assert n == 2 and seen == [], (seen, owndata)


def test_egor7_apply_rows_across_partitions():
    d1, d2 = "2015-01-01", "2015-01-02"
    with Server("--db", egor_db()) as s, Conn(port=s.port) as c:
        define(c, "rows", ROWS)
        # rows 1..3 span both partitions: the last of one, the first of the next
        r = apply(c, "rows", "t", Vec("j", [1, 3]))
        assert r[0] == 2 and r[1] == "date" and r[2] == [d1, d2] and r[3] == [33.0, 101.5], r
        assert r[4] == ["msft", "ibm"], r
        r = apply(c, "rows", "t", Vec("j", [2, 4]))     # inside one
        assert r[0] == 2 and r[2] == [d2, d2] and r[3] == [101.5, 33.5], r
        r = apply(c, "rows", "t", Vec("j", [0, 4]))
        assert r[0] == 4 and r[3] == [101.0, 33.0, 101.5, 33.5], r
        r = apply(c, "rows", "t", Vec("j", [3, 3]))     # none
        assert r[0] == 0 and r[1] == "date", r
        expect_error(lambda: apply(c, "rows", "t", Vec("j", [5, 6])), "outside")
        # one partition by its date, and rows where a symbol column is a value
        r = apply(c, "rows", "t", [Sym("date"), Atom("d", qdate(2015, 1, 2))])
        assert r[0] == 2 and r[1] == "date" and r[2] == [d2, d2] and r[3] == [101.5, 33.5], r
        r = apply(c, "rows", "t", [Sym("sym"), Sym("msft")])
        assert r[0] == 2 and r[3] == [33.0, 33.5] and r[4] == ["msft", "msft"], r
        expect_error(lambda: apply(c, "rows", "t", [Sym("date"), Atom("d", qdate(2016, 1, 1))]))
        # splayed tables: rows, and rows where an enumerated column is a value
        define(c, "cols", "def cols(t):\n    return {k: list(map(str, v)) for k, v in t.items()}\n")
        r = c.call([APPLY, Sym("cols"), Sym("tref"), Vec("j", [1, 3])])
        assert r == {"c1": Vec("s", ["2", "3"]), "c2": Vec("s", ["2.2", "3.3"])}, r
        r = c.call([APPLY, Sym("cols"), Sym("cust"), [Sym("sym"), Sym("msft")]])
        assert r == {"sym": Vec("s", ["msft"]), "name": Vec("s", ["microsoft"])}, r
        assert s.alive()


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


CATCHK = """
import numpy as np
import pandas as pd

def catchk(t):
    c = t['code']
    assert isinstance(c, pd.Categorical), type(c)
    codes = c.codes
    assert codes.dtype == np.int64, codes.dtype
    assert not codes.flags.writeable and not codes.flags.owndata
    # the codes view our array of the mapped indices, whose base is the
    # capsule holding the q value (and so the file mapping): no copy
    b = codes.base
    while isinstance(b, np.ndarray):
        assert not b.flags.owndata
        b = b.base
    assert type(b).__name__ == 'PyCapsule', type(b)
    return [int(len(c)), list(t)[0], [str(x) for x in c], int(len(c.categories))]
"""

OBJCHK = """
import numpy as np

def objchk(t):
    c = t['code']
    assert c.dtype == object, c.dtype
    return [str(x) for x in c]
"""


def check_ord(c, codes, header):
    """ORD's code column of date 2022.12.05 through the server: the table's
    count and meta, then the codes as Categoricals and as str."""
    tables = c.call([Sym(".qp.tables"), Identity()]).items
    assert "ORD" in tables, tables
    assert c.call([Sym(".qp.count"), Sym("ORD")]) == len(codes)
    m = meta(c, "ORD")
    assert [x[0] for x in m] == ["date"] + header and m[0][1] == "d", m
    assert c.call([Sym(".qp.partitions"), Sym("ORD")]).items[0] == qdate(2022, 12, 5)
    define(c, "catchk", CATCHK, {"categorical": True})
    define(c, "objchk", OBJCHK)
    part = [Sym("date"), Atom("d", qdate(2022, 12, 5))]
    r = apply(c, "catchk", "ORD", part)
    assert r[0] == len(codes) and r[1] == "date", r[:2]
    assert r[2] == codes, (r[2][:5], codes[:5])
    assert apply(c, "objchk", "ORD", part) == codes
    return r


def test_partition_symbols_as_categoricals_view_the_mapped_indices():
    """A partition's symbol column reaches Python as a Categorical whose
    codes view the mapped enumeration (no copy), by date, by rows and
    through qtable()."""
    root = os.path.join(tmpdir(), "db")
    codes = [r[0] for r in orders_db(root)["ORD"]]
    with Server("--db", root, ready_timeout=60) as s, Conn(port=s.port, timeout=120) as c:
        r = check_ord(c, codes, ["code", "qty", "px"])
        # the same through rows of the db table, and through qtable()
        r3 = apply(c, "catchk", "ORD", Vec("j", [100, 300]))
        assert r3[0] == 200 and r3[2] == r[2][100:300], r3[:2]
        define(c, "qt", "def qt(a, b):\n    return catchk(qtable('ORD', (a, b), categorical=True))[0]\n"
                        + CATCHK)
        assert c.call([Sym(".qp.call"), Sym("qt"), Vec("j", [10, 20])]) == 10
        assert s.alive()


NROWS = """
def nrows(t):
    return [int(len(t['date'])), list(t)[0], str(t['date'][0]), str(t['date'][-1])]
"""


def test_apply_one_partition():
    root = os.path.join(tmpdir(), "db")
    for k, day in enumerate(("2022.06.16", "2022.06.17", "2022.06.20")):
        orders_db(root, ("Daily",), n=100 + k, date=day)
    with Server("--db", root, ready_timeout=60) as s, Conn(port=s.port, timeout=120) as c:
        define(c, "nrows", NROWS)
        r = apply(c, "nrows", "Daily", [Sym("date"), Atom("d", qdate(2022, 6, 17))])
        assert r == [101, "date", "2022-06-17", "2022-06-17"], r
        # a partition the table is not in
        expect_error(lambda: c.call([APPLY, Sym("nrows"), Sym("Daily"),
                                     [Sym("date"), Atom("d", qdate(2021, 1, 1))]]))
        assert c.call([Sym(".qp.ping"), Identity()]) is True


def test_a_table_that_cannot_be_read_fails_alone():
    """A table with an enumeration index beyond `sym (as torq-air's q-written
    flights has) fails every whole read naming the column, and rows that
    hold it; the server goes on serving."""
    root = os.path.join(tmpdir(), "db")
    n = len(orders_db(root, ("flights",), n=50)["flights"])
    path = os.path.join(root, "2022.12.05", "flights", "code")
    with open(path, "r+b") as f:             # item 7 (the items end the file)
        f.seek(os.path.getsize(path) - 8 * (n - 7))
        f.write((10**6).to_bytes(8, "little"))
    with Server("--db", root) as s, Conn(port=s.port, timeout=60) as c:
        assert "flights" in c.call([Sym(".qp.tables"), Identity()]).items
        expect_error(lambda: c.call([Sym(".qp.get"), Sym("flights")]), "code", "beyond")
        expect_error(lambda: c.call("flights"), "code")
        define(c, "n", "def n(t):\n    return len(t)\n")
        expect_error(lambda: c.call([APPLY, Sym("n"), Sym("flights"), Vec("j", [5, 10])]), "code")
        define(c, "qt", "def qt():\n    return qtable('flights')\n")
        expect_error(lambda: c.call([Sym(".qp.call"), Sym("qt")]), "code")
        assert c.call([Sym(".qp.ping"), Identity()]) is True and s.alive()
        assert c.call([Sym(".qp.echo"), 7]) == 7


PEACH = """
import os
def cnt(name):
    t = qtable(name)
    return [int(len(t['date'])), os.getpid()]
"""


def test_workers_mount_the_db():
    root = os.path.join(tmpdir(), "db")
    orders_db(root, ("ORD", "TRANSACTION"))
    with Server("-s", "-2", "--db", root, ready_timeout=60) as s, Conn(port=s.port, timeout=120) as c:
        define(c, "cnt", PEACH)
        pid = c.call([Sym(".qp.info"), Identity()])["pid"]
        r = c.call([Sym(".qp.peach"), Sym("cnt"), Vec("s", ["ORD", "TRANSACTION", "ORD", "TRANSACTION"])])
        r = [items(x) for x in r]
        assert [x[0] for x in r] == [5000, 5000, 5000, 5000], r
        assert all(x[1] != pid for x in r), (pid, r)           # ran in the workers


# ---- conformance: the q-written fixture databases (not run without them)

def test_q_written_egor7_serves_as_our_own():
    """egor7's q-written db answers as the same tables written by `qpeach
    db import`: tables, counts, meta, partitions and every table's values."""
    need(EGOR)
    with Server("--db", EGOR) as q, Server("--db", egor_db()) as o, \
            Conn(port=q.port) as cq, Conn(port=o.port) as co:
        tables = [Sym(".qp.tables"), Identity()]
        assert cq.call(tables) == co.call(tables) == Vec("s", ["cust", "q", "t", "tref"])
        for t in EGOR_TABLES:
            for f in (".qp.count", ".qp.partitions", ".qp.get"):
                assert cq.call([Sym(f), Sym(t)]) == co.call([Sym(f), Sym(t)]), (t, f)
            assert meta(cq, t) == meta(co, t), t


def test_dolphindb_ord_other_domain_equals_its_csv():
    """dolphindb's ORD, enumerated against sym_ORD (not sym), through the
    server as Categoricals and as str equals its published Orders.csv."""
    need(DOLPHIN)
    orders = read_csv(os.path.join(DOLPHIN_CSV, "Orders.csv"))
    with Server("--db", DOLPHIN, ready_timeout=60) as s, Conn(port=s.port, timeout=120) as c:
        assert {"Daily", "Syms", "ORD", "TRANSACTION"} <= set(c.call([Sym(".qp.tables"),
                                                                      Identity()]).items)
        check_ord(c, [o["code"] for o in orders], list(orders[0]))
        assert s.alive()


def test_ssshahani_daily_and_partitions():
    need(SSS)
    rows = read_csv(os.path.join(SSS, "data", "raw", "all_daily.csv"))
    rows.sort(key=lambda r: (r["sym"], r["date"]))
    with Server("--db", os.path.join(SSS, "db"), ready_timeout=60) as s, Conn(port=s.port, timeout=120) as c:
        tables = c.call([Sym(".qp.tables"), Identity()]).items
        assert {"daily", "trades", "quotes"} <= set(tables), tables
        assert c.call([Sym(".qp.count"), Sym("daily")]) == 15020
        d = c.call(Sym("daily"))
        assert d.cols["sym"].items[:3] == [r["sym"] for r in rows[:3]], d.cols["sym"].items[:3]
        assert d.cols["sym"].items == [r["sym"] for r in rows]
        assert [round(x, 4) for x in d.cols["close"].items[:50]] == [round(float(r["close"]), 4) for r in rows[:50]]
        parts = c.call([Sym(".qp.partitions"), Sym("trades")])
        assert parts == Vec("d", [qdate(2025, 9, 4), qdate(2025, 9, 5)]), parts
        n = c.call([Sym(".qp.count"), Sym("trades")])
        define(c, "nrows", NROWS)
        a = apply(c, "nrows", "trades", [Sym("date"), Atom("d", qdate(2025, 9, 4))])
        b = apply(c, "nrows", "trades", [Sym("date"), Atom("d", qdate(2025, 9, 5))])
        assert a[0] + b[0] == n and a[2] == "2025-09-04" and b[2] == "2025-09-05", (a, b, n)
        whole = apply(c, "nrows", "trades", Vec("j", [0, n]))
        assert whole == [n, "date", "2025-09-04", "2025-09-05"], whole
