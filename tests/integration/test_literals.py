"""q literals as a qpeach server reads them: in the text of a call
(`qpeach call ADDR '.qp.echo 2024.01.02'`, a kdb+ client's h "...") and in
the ARGs of `qpeach call`. Every temporal form, its null and infinities,
vectors and general lists arrive as the value q gives them: the type code
read off the wire by tests/integration/qipc.py (no code shared with
qpeach) and the number computed here with Python's datetime (days, months,
nanoseconds... since 2000.01.01). A part spec written as call text works on
a db made by `qpeach db import`: the README's
.qp.apply[`cnt;`trade;(`date;2024.01.02)], and (`sym;`AC), which q makes a
symbol vector."""
import csv
import datetime as dt
import math
import os
import shlex
import struct

from harness import ROOT, Server, qpeach, tmpdir
from qipc import Conn, Sym, decode, encode

EPOCH = dt.datetime(2000, 1, 1)
NULL_I, INF_I = -2**31, 2**31 - 1
NULL_J, INF_J = -2**63, 2**63 - 1


def days(y, m, d):
    return (dt.date(y, m, d) - EPOCH.date()).days


def ns(t):
    """Nanoseconds in a timedelta (exact: no float on the way)."""
    return (t // dt.timedelta(microseconds=1)) * 1000


def stamp(*a, extra_ns=0):
    return ns(dt.datetime(*a) - EPOCH) + extra_ns


# (text, q type code of the atom or vector, the value q gives it)
ATOMS = [
    ("2024.01.02", -14, days(2024, 1, 2)),
    ("1999.12.31", -14, days(1999, 12, 31)),
    ("2024.02.29", -14, days(2024, 2, 29)),
    ("2024.01m", -13, (2024 - 2000) * 12),
    ("1999.12m", -13, (1999 - 2000) * 12 + 11),
    ("2024.01.02D09:30:00.000000000", -12, stamp(2024, 1, 2, 9, 30)),
    ("2024.01.02D09:30:00.123456789", -12, stamp(2024, 1, 2, 9, 30, extra_ns=123456789)),
    ("2024.01.02D09:30", -12, stamp(2024, 1, 2, 9, 30)),
    ("2024.01.02D", -12, stamp(2024, 1, 2)),
    ("0D00:00:01.5", -16, ns(dt.timedelta(seconds=1.5))),
    ("-0D00:00:01", -16, -ns(dt.timedelta(seconds=1))),
    ("2D03:04:05.000000006", -16, ns(dt.timedelta(days=2, hours=3, minutes=4, seconds=5)) + 6),
    ("00:00:01.500000000", -16, ns(dt.timedelta(seconds=1.5))),
    ("09:30:00.000", -19, dt.timedelta(hours=9, minutes=30) // dt.timedelta(milliseconds=1)),
    ("09:30:00.5", -19, dt.timedelta(hours=9, minutes=30, milliseconds=500) // dt.timedelta(milliseconds=1)),
    ("09:30", -17, dt.timedelta(hours=9, minutes=30) // dt.timedelta(minutes=1)),
    ("09:30:00", -18, dt.timedelta(hours=9, minutes=30) // dt.timedelta(seconds=1)),
    ("0Nd", -14, NULL_I), ("0Wd", -14, INF_I), ("-0Wd", -14, -INF_I),
    ("0Nm", -13, NULL_I), ("0Wm", -13, INF_I),
    ("0Np", -12, NULL_J), ("0Wp", -12, INF_J), ("-0Wp", -12, -INF_J),
    ("0Nn", -16, NULL_J), ("0Wn", -16, INF_J),
    ("0Nu", -17, NULL_I), ("0Wu", -17, INF_I),
    ("0Nv", -18, NULL_I), ("0Wv", -18, INF_I),
    ("0Nt", -19, NULL_I), ("0Wt", -19, INF_I), ("-0Wt", -19, -INF_I),
]
DATETIMES = [
    ("2024.01.02T09:30:00.000", (dt.datetime(2024, 1, 2, 9, 30) - EPOCH) / dt.timedelta(days=1)),
    ("2024.01.02T", float(days(2024, 1, 2))),
    ("0Nz", math.nan), ("0Wz", math.inf), ("-0Wz", -math.inf),
]
VECTORS = [
    ("2024.01.02 2024.01.03 0N", 14, [days(2024, 1, 2), days(2024, 1, 3), NULL_I]),
    ("0Nd 2024.01.02 0W", 14, [NULL_I, days(2024, 1, 2), INF_I]),
    ("2024.01 2024.02m", 13, [288, 289]),
    ("2024.01.02D09:30 0Wp", 12, [stamp(2024, 1, 2, 9, 30), INF_J]),
    ("0D00:00:01 00:00:00.000000001", 16, [ns(dt.timedelta(seconds=1)), 1]),
    ("09:30 10:00 -0W", 17, [570, 600, -INF_I]),
    ("09:30:00 0N", 18, [34200, NULL_I]),
    ("09:30:00.001 0Nt", 19, [34200001, NULL_I]),
    ("(2024.01.02;2024.01.03)", 14, [days(2024, 1, 2), days(2024, 1, 3)]),
]


def raw_call(c, text):
    """The response to char message text: (type code, decoded value)."""
    c.send(text)
    head = c._exact(8)
    n, = struct.unpack("<i", head[4:8])
    msg = head + c._exact(n - 8)
    return struct.unpack_from("<b", msg, 8)[0], decode(msg)


def check(t, v, want_t, want):
    assert t == want_t, (t, want_t)
    if isinstance(want, float) and math.isnan(want):
        assert math.isnan(v), v
    elif isinstance(want, float):
        assert v == want or math.isclose(v, want, rel_tol=0, abs_tol=1e-9), (v, want)
    elif want_t > 0:
        assert v.items == want, (v.items, want)
    else:
        assert v == want, (v, want)


def cases():
    for text, t, want in ATOMS:
        yield text, t, want
    for text, want in DATETIMES:
        yield text, -15, want
    for text, t, want in VECTORS:
        yield text, t, want


def test_temporal_literals_in_call_text():
    with Server("-s", "0") as s, Conn(port=s.port) as c:
        for text, want_t, want in cases():
            t, v = raw_call(c, f".qp.echo {text}")
            check(t, v, want_t, want)
            t, v = raw_call(c, text)                       # a literal alone: itself
            check(t, v, want_t, want)
        # a general list keeps each item's type
        t, v = raw_call(c, ".qp.echo (`date;2024.01.02;09:30;0D00:00:01)")
        assert t == 0 and v == [Sym("date"), days(2024, 1, 2), 570, ns(dt.timedelta(seconds=1))], v
        # what q prints for a value is the literal that makes it
        for text in ("2024.01.02", "2024.01m", "2024.01.02D09:30:00.000000000", "0D00:00:01.500000000",
                     "09:30:00.000", "09:30", "09:30:00", "2024.01.02T09:30:00.000", "0Nd", "0Wp",
                     "2024.01.02 2024.01.03"):
            r = qpeach("call", s.addr, f".qp.echo {text}")
            assert r.returncode == 0 and r.stdout.strip() == text, (text, r.stdout, r.stderr)


def test_temporal_literals_as_call_arguments():
    with Server("-s", "0") as s, Conn(port=s.port) as c:
        for k, (text, want_t, want) in enumerate(cases()):
            r = qpeach("call", s.addr, ".qp.set", f"`x{k}", text)
            assert r.returncode == 0, (text, r.stderr)
            t, v = raw_call(c, f"x{k}")
            check(t, v, want_t, want)


def test_bad_temporal_literals_say_why():
    with Server("-s", "0") as s:
        # as an ARG: refused on the client, naming the argument
        r = qpeach("call", s.addr, ".qp.echo", "2024.02.30")
        assert r.returncode == 2 and "argument 1 (2024.02.30): bad date" in r.stderr, r.stderr
        r = qpeach("call", s.addr, ".qp.echo", "2024.01.02 09:30")
        assert r.returncode == 2 and "mixed types" in r.stderr, r.stderr
        # in call text: the server's error keeps the cause
        r = qpeach("call", s.addr, ".qp.echo[1;09:60]")
        assert r.returncode == 1 and "bad minute" in r.stderr, r.stderr
        assert s.alive()


TRADES = [
    ("2024.01.02", "AC", 10.5, 100), ("2024.01.02", "BD", 20.0, 200), ("2024.01.02", "AC", 11.0, 300),
    ("2024.01.03", "AC", 10.0, 400), ("2024.01.03", "EF", 30.5, 500),
    ("2024.01.04", "BD", 21.5, 600), ("2024.01.04", "AC", 12.5, 700), ("2024.01.04", "AC", 12.0, 800),
]

def imported_db():
    d = tmpdir()
    with open(os.path.join(d, "t.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "sym", "price", "size"])
        w.writerows(TRADES)
    r = qpeach("db", "import", os.path.join(d, "t.csv"), os.path.join(d, "db"), "trade",
               "--partition", "date", "--types", "DSFJ")
    assert r.returncode == 0, r.stderr
    return os.path.join(d, "db")


def readme_calls():
    """The README's `qpeach call :5050 ...` lines that define and use cnt,
    as argument lists (the address left out)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        lines = [ln.split("#")[0] for ln in f if ln.startswith("qpeach call :5050") and "cnt" in ln]
    calls = [shlex.split(ln)[3:] for ln in lines]
    assert len(calls) == 3 and calls[0][0] == ".qp.def", calls
    return calls


def test_part_specs_in_call_text_on_an_imported_db():
    with Server("-s", "0", "--db", imported_db()) as s:
        by_date = lambda d: sum(1 for row in TRADES if row[0] == d)
        by_sym = lambda y: sum(1 for row in TRADES if row[1] == y)
        # the README's example, as written there
        define, on_date, on_sym = readme_calls()
        r = qpeach("call", s.addr, *define)
        assert r.returncode == 0 and len(r.stdout.strip()) == 66, (r.stdout, r.stderr)   # "<sha256>"
        r = qpeach("call", s.addr, *on_date)
        assert on_date == [".qp.apply[`cnt;`trade;(`date;2024.01.02)]"], on_date
        assert r.returncode == 0 and r.stdout.strip() == str(by_date("2024.01.02")), (r.stdout, r.stderr)
        r = qpeach("call", s.addr, *on_sym)
        assert r.returncode == 0 and r.stdout.strip() == str(by_sym("AC")), (r.stdout, r.stderr)
        r = qpeach("call", s.addr, ".qp.apply", "`cnt", "`trade", "(`date;2024.01.04)")
        assert r.returncode == 0 and r.stdout.strip() == str(by_date("2024.01.04")), (r.stdout, r.stderr)
        # (`sym;`AC) is the symbol vector `sym`AC in q: still (column; value)
        for part in ("(`sym;`AC)", "`sym`AC"):
            r = qpeach("call", s.addr, f".qp.apply[`cnt;`trade;{part}]")
            assert r.returncode == 0 and r.stdout.strip() == str(by_sym("AC")), (part, r.stdout, r.stderr)
            r = qpeach("call", s.addr, ".qp.apply", "`cnt", "`trade", part)
            assert r.returncode == 0 and r.stdout.strip() == str(by_sym("AC")), (part, r.stdout, r.stderr)
        # a date the db does not hold: an error that names it, not 0 rows
        r = qpeach("call", s.addr, ".qp.apply[`cnt;`trade;(`date;2024.01.05)]")
        assert r.returncode == 1 and "2024.01.05" in r.stderr, (r.stdout, r.stderr)
        # its partitions print as the literals that name them
        r = qpeach("call", s.addr, ".qp.partitions`trade")
        assert r.stdout.split() == sorted({row[0] for row in TRADES}), r.stdout
