"""Property test (issue 22): random tables of every q type a CSV can carry,
nulls, infinities, extremes, -0.0, NaN and floats such as 1234.56 included,
go CSV -> `qpeach db import` (partitioned by date, and splayed) -> `qpeach
run` (a Python function on `qpeach serve --db` workers) -> a merge -> every
output format (CSV iso, CSV q, msgpack, .qipc, stdout) and back: read with
pandas, python3-msgpack and tests/integration/qipc.py (no code of ours), each
value is compared with what this file computes from the generated source,
by the conversions README.md and jobs/README.md document. A step may instead
fail loudly (exit non-zero, with a message); exit 0 with another value fails.

Each round draws its own table (0 to 200 rows) from seed
QPEACH_PROPERTY_SEED + round (default 22, so `make test` is reproducible;
QPEACH_PROPERTY_ROUNDS rounds, default 12, about 15 s); a failure names the
seed, and `QPEACH_PROPERTY_SEED=N QPEACH_PROPERTY_ROUNDS=1` runs that round
alone. Every round runs, against one `qpeach serve --db`, each job once per
output format: the splayed table by rows, by a random column, counted and
summed by key; the partitioned one by partition, by rows, by a random
column, merged none (a list: CSV refuses it), summed by key, and sum/min/max
of each date's first rows; and small tables of chars and of datetimes and
timestamps at numpy's and q's edges by rows.

The tests after it each pin down one bug the property test found.
"""
import csv
import datetime
import io
import math
import os
import random
import shutil
import struct
import subprocess
import uuid

import numpy as np

import qipc
from harness import QPEACH, Server, qpeach, tmpdir

SEED = int(os.environ.get("QPEACH_PROPERTY_SEED", "22"))
ROUNDS = int(os.environ.get("QPEACH_PROPERTY_ROUNDS", "12"))

# ---- q's numbers (kdb+'s documented sentinels and epoch, not our code's)

NULL = {"h": -2**15, "i": -2**31, "j": -2**63}
INF = {"h": 2**15 - 1, "i": 2**31 - 1, "j": 2**63 - 1}
I64MAX = 2**63 - 1
DAY_NS = 86400 * 10**9
EPOCH_DAYS = 10957                      # 2000.01.01 - 1970.01.01
EPOCH_NS = EPOCH_DAYS * DAY_NS
ORD2000 = datetime.date(2000, 1, 1).toordinal()
WIDTH = {"m": "i", "d": "i", "u": "i", "v": "i", "t": "i", "p": "j", "n": "j", "z": "j"}


def qnull(t):
    return NULL[WIDTH.get(t, t)]


def qinf(t):
    return INF[WIDTH.get(t, t)]


# ---- text forms of q values, as a CSV carries them

def ymd(days):
    return datetime.date.fromordinal(ORD2000 + days)


def date_text(days, sep="."):
    d = ymd(days)
    return f"{d.year:04d}{sep}{d.month:02d}{sep}{d.day:02d}"


def clock_text(ns, digits):
    """hh:mm:ss[.f...] of ns (>= 0) with `digits` fraction digits (the
    ones beyond are zero in ns)."""
    s, f = divmod(ns, 10**9)
    text = f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
    return text + (f".{f // 10**(9 - digits):0{digits}d}" if digits else "")


def month_text(mon, sep="."):
    y, m = divmod(mon, 12)
    return f"{y + 2000:04d}{sep}{m + 1:02d}"


# ---- the source: random columns of every type

SPECIAL_F = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 1234.56, -123.25, 9999.99,
             -100.01, 0.1, 0.30000000000000004, 1.7976931348623157e308, -1.7976931348623157e308,
             5e-324, 2.2250738585072014e-308, 1e300, -1e-300, 3217000.0, 2024.0301, 1e16,
             2.0**53 + 2]
SPECIAL_E = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 1234.56, -123.25, 9999.99,
             -999.5, 3.4028234663852886e38, -3.4028234663852886e38, 1.401298464324817e-45,
             1.1754943508222875e-38, 0.1, 16777217.0]
SYMS = ["", "a", "A", "b", "ab", "with,comma", 'quo"te', " lead", "trail ", "1234.56",
        "2024.03.01", "0N", "0W", "NA", "null", "nan", "true", "\u00fcn\u00ef", "\u65e5\u672c",
        "x y", "a\nb", "-0.0", "ZZ"]
CHARS = [chr(k) for k in range(0x20, 0x7f)]


class Col:
    """A generated column: q type letter t ('*' strings), q values (q's
    own numbers: days or ns since 2000, sentinels for nulls and
    infinities; floats; str; guid bytes) and the CSV text of each."""

    def __init__(self, name, t, vals, texts):
        self.name, self.t, self.vals, self.texts = name, t, vals, texts


def pick(rng, special, draw, p=0.35):
    return rng.choice(special) if rng.random() < p else draw()


def gen_int(rng, t):
    """(value, text) of a short/int/long: nulls, infinities, extremes."""
    lim = qinf(t)
    v = pick(rng, [qnull(t), lim, -lim, 0, -1, 1, lim - 1, -lim + 1, 1234, -123]
             + ([2**53 + 1, -(2**53 + 1)] if t == "j" else []),
             lambda: rng.randint(-lim, lim) if rng.random() < 0.5 else rng.randint(-999, 999))
    if v == qnull(t):
        return v, rng.choice(["", "0N", "0n"])
    if abs(v) == lim and rng.random() < 0.5:
        return v, "0W" if v > 0 else "-0W"
    return v, str(v)


def float_text(rng, v, real):
    if v != v:
        return rng.choice(["", "0n", "0N", "nan", "NaN"])
    if math.isinf(v):
        return rng.choice(["inf", "0w", "0W", "Infinity"] if v > 0 else ["-inf", "-0w", "-0W"])
    if real:
        return rng.choice([str(np.float32(v)), repr(float(np.float32(v)))])
    return rng.choice([repr(v), "%.17g" % v, "%.17e" % v])


def gen_float(rng, real):
    def draw():
        if rng.random() < 0.5:
            return rng.uniform(-1e4, 1e4)
        bits = rng.getrandbits(32 if real else 64)
        x = struct.unpack("<f" if real else "<d", bits.to_bytes(4 if real else 8, "little"))[0]
        return x if math.isfinite(x) else 1.5
    v = pick(rng, SPECIAL_E if real else SPECIAL_F, draw)
    text = float_text(rng, v, real)
    # the value is what the text means (a blank, 0n, nan: the null)
    if text.lower() in ("", "0n", "nan"):
        return float("nan"), text
    if text.lower() in ("inf", "0w", "infinity"):
        return float("inf"), text
    if text.lower() in ("-inf", "-0w"):
        return float("-inf"), text
    return (float(np.float32(float(text))) if real else float(text)), text


def gen_col(rng, name, t, n, wide=False):
    vals, texts = [], []
    for _ in range(n):
        v, s = gen_value(rng, t, wide)
        vals.append(v)
        texts.append(s)
    return Col(name, t, vals, texts)


def gen_value(rng, t, wide):
    if t == "b":
        s = rng.choice(["1", "0", "true", "false", "t", "f", "yes", "no", "TRUE", "Y", "N", ""])
        return s.lower() in ("1", "true", "t", "yes", "y"), s
    if t == "g":
        if rng.random() < 0.2:
            return bytes(16), rng.choice(["", "00000000-0000-0000-0000-000000000000"])
        u = uuid.UUID(int=rng.getrandbits(128))
        return u.bytes, rng.choice([str(u), str(u).upper()])
    if t == "x":
        v = pick(rng, [0, 255, 16, 9, 10, 128], lambda: rng.randint(0, 255))
        return v, rng.choice(["%x" % v, "%02x" % v, "0x%02X" % v])
    if t in "hij":
        return gen_int(rng, t)
    if t in "ef":
        return gen_float(rng, t == "e")
    if t == "c":
        v = rng.choice(CHARS)
        return v, ("" if v == " " and rng.random() < 0.5 else v)
    if t in "s*":
        v = pick(rng, SYMS,
                 lambda: "".join(rng.choice("abcxyz,. ") for _ in range(rng.randint(1, 6))))
        return v, v
    return gen_temporal(rng, t, wide)


# q's timestamp range as a CSV carries it, and the part of it numpy's
# datetime64[ns] holds (the rest cannot reach a Python function unchanged)
P_LO = -I64MAX + 2 * DAY_NS
P_HI_NUMPY = I64MAX - EPOCH_NS - 1
P_HI = I64MAX - 1


def gen_temporal(rng, t, wide):
    special = rng.random()
    if special < 0.12:
        return qnull(t), rng.choice(["", "0N"])
    if special < 0.24 and (t != "z" or wide):
        sign = rng.choice([1, -1])
        if t == "z":
            return sign * math.inf, "0W" if sign > 0 else "-0W"
        return sign * qinf(t), "0W" if sign > 0 else "-0W"
    if t == "p":
        lo, hi = (P_HI_NUMPY + 1, P_HI) if wide else (P_LO, P_HI_NUMPY)
        v = rng.choice([lo, hi, 0, -1, rng.randint(lo, hi), rng.randint(lo, hi)])
        v = rng.randint(lo, hi) if v == -1 and wide else v
        days, ns = divmod(v, DAY_NS)
        if ns % 10**6 == 0 and rng.random() < 0.3:
            return v, f"{date_text(days, '-')}T{clock_text(ns, 3)}"
        return v, f"{date_text(days)}D{clock_text(ns, 9)}"
    if t == "z":
        # ms precision; inside the timestamp range numpy holds (1709..2261),
        # or for a wide table anywhere a CSV carries one (q's timestamps:
        # the reader parses datetimes as timestamps, 1707..2292)
        lo, hi = ((P_LO // 10**6 + 1, P_HI // 10**6) if wide
                  else (-105000 * 86400000, 95000 * 86400000))
        ms = rng.choice([lo, hi, rng.randint(lo, hi)]) if wide else rng.randint(lo, hi)
        days, rem = divmod(ms, 86400000)
        return ms, f"{date_text(days)}T{clock_text(rem * 10**6, 3)}"
    if t == "m":
        v = rng.choice([-1999 * 12, 7999 * 12 + 11, 0, rng.randint(-1999 * 12, 7999 * 12 + 11)])
        return v, month_text(v, rng.choice(".-"))
    if t == "d":
        v = rng.choice([-730119, 2921939, 0, -10957, 1520, rng.randint(-730119, 2921939)])
        return v, date_text(v, rng.choice(".-/"))
    if t == "n":
        v = rng.choice([0, 1, -1, I64MAX - 1, -(I64MAX - 1), rng.randint(-(I64MAX - 1), I64MAX - 1),
                        rng.randint(-10**15, 10**15)])
        a = abs(v)
        days, ns = divmod(a, DAY_NS)
        text = f"{days}D{clock_text(ns, 9)}" if days or rng.random() < 0.5 else clock_text(ns, 9)
        return v, ("-" if v < 0 else "") + text
    if t == "u":
        v = rng.choice([0, 5999, 570, rng.randint(0, 5999)])
        h, m = divmod(v, 60)
        return v, (f"{h}:{m:02d}" if h < 10 and rng.random() < 0.3 else f"{h:02d}:{m:02d}")
    if t == "v":
        v = rng.choice([0, 359999, 34200, rng.randint(0, 359999)])
        return v, clock_text(v * 10**9, 0)
    assert t == "t"
    v = rng.choice([0, 359999999, 34200123, rng.randint(0, 359999999)])
    return v, clock_text(v * 10**6, 3 if v % 1000 or rng.random() < 0.5 else 0)


# columns of the main table, with their `--types` letter ('*': strings);
# `date` is the partition column
MAIN = [("date", "d"), ("b", "b"), ("g", "g"), ("x", "x"), ("h", "h"), ("i", "i"), ("j", "j"),
        ("e", "e"), ("f", "f"), ("s", "s"), ("p", "p"), ("m", "m"), ("d", "d"), ("z", "z"),
        ("n", "n"), ("u", "u"), ("v", "v"), ("t", "t"), ("str", "*")]
# a second table of what cannot reach Python unchanged: chars, timestamps
# beyond numpy's datetime64[ns], datetimes beyond q's timestamps or infinite
WIDE = [("date", "d"), ("wc", "c"), ("wp", "p"), ("wz", "z")]
PART_DATES = [-730119, 2921939, -10957, 0, 8826, 8766, 8767, 60, -1, 1520]


def gen_table(rng, spec, nrows, wide=False):
    dates = rng.sample(PART_DATES, rng.randint(1, 3))
    cols = []
    for name, t in spec:
        if name == "date":
            vals = [rng.choice(dates) for _ in range(nrows)]
            cols.append(Col(name, "d", vals, [date_text(v) for v in vals]))
        else:
            cols.append(gen_col(rng, name, t, nrows, wide))
    return cols


def write_csv(path, cols):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([c.name for c in cols])
        for r in range(len(cols[0].vals)):
            w.writerow([c.texts[r] for c in cols])


def types_arg(cols):
    return "".join(c.t.upper() if c.t != "*" else "*" for c in cols)


# ---- what each step makes of the source (README, jobs/README)

class Tab:
    """Expected (or read back) value: ordered {name: (q type, [values])};
    shape "table", or "vector" / "atom" held as one column x (as the CSV
    output writes them)."""

    def __init__(self, cols, shape="table"):
        self.cols, self.shape = cols, shape

    def rows(self):
        return len(next(iter(self.cols.values()))[1]) if self.cols else 0

    def take(self, idx):
        return Tab({k: (t, [v[i] for i in idx]) for k, (t, v) in self.cols.items()}, self.shape)

    def types(self):
        return {k: t for k, (t, _) in self.cols.items()}


def through_python(c):
    """(type, values) of column c after a Python function returns it as it
    got it: a datetime (float days) is a datetime64[ms] and comes back a
    timestamp; strings come back symbols (an object array of str); every
    other type comes back as itself."""
    if c.t == "z":
        return "p", [qnull("p") if v == qnull("p") else
                     (qinf("p") if v > 0 else -qinf("p")) if isinstance(v, float) and math.isinf(v)
                     else v * 10**6 for v in c.vals]
    if c.t == "*":
        return "s", list(c.vals)
    return c.t, list(c.vals)


def splayed(cols):
    return Tab({c.name: through_python(c) for c in cols})


def empty_objects(tab):
    """An empty table through Python: an empty object array (a guid
    column's) goes back as a symbol column, as nothing in it says what it
    held (src/py/toq.c)."""
    if tab.rows():
        return tab
    return Tab({k: ("s" if t == "g" else t, v) for k, (t, v) in tab.cols.items()}, tab.shape)


def partitioned(cols):
    """The partitioned table as a task gets it: the virtual date column
    first, the p# column (the first symbol column) next, rows by date then
    (stable) by that column's bytes, as .Q.dpft writes them."""
    by = {c.name: c for c in cols}
    parted = next(c.name for c in cols if c.t == "s")
    order = sorted(range(len(cols[0].vals)),
                   key=lambda r: (by["date"].vals[r], by[parted].vals[r].encode(), r))
    names = ["date", parted] + [c.name for c in cols if c.name not in ("date", parted)]
    return Tab({k: through_python(by[k]) for k in names}).take(order)


FNULL = ("float null",)     # every NaN, as a key


def qkey(t, v):
    """A value as q's = compares it: -0.0 is 0.0, every NaN one null."""
    if t in "ef":
        return FNULL if v != v else (0.0 if v == 0 else v)
    return v


def q_sort_key(t, v):
    if t in "ef":
        return (0, 0.0) if v != v else (1, v)
    if t == "s":
        return v.encode()
    return v


def by_column(tab, col):
    """Rows grouped by the distinct values of col (q's =), sorted as q
    sorts (nulls first), each group's rows in table order."""
    t, vals = tab.cols[col]
    groups = {}
    for r, v in enumerate(vals):
        groups.setdefault(qkey(t, v), []).append(r)
    firsts = sorted(groups, key=lambda k: q_sort_key(t, float("nan") if k is FNULL else k))
    return tab.take([r for k in firsts for r in groups[k]]), [groups[k] for k in firsts]


# ---- reading each output format back to q values

MORE = object()


def plain_cell(t, s, true):
    """q value of a cell both CSV formats write alike (guids, chars,
    symbols, blanks: nulls) or a boolean (true: its text for 1b); MORE for
    the others."""
    if t == "b":
        assert s in (true, {"true": "false", "1": "0"}[true]), s
        return s == true
    if t == "g":
        return bytes(16) if s is None else uuid.UUID(s).bytes
    if t in "cs":
        return "" if s is None else s
    if s is None:
        return float("nan") if t in "ef" else qnull(t)
    return MORE


def iso_cell(t, s):
    """q value of one CSV cell, format = iso (jobs/README, Output formats),
    s None for a blank. Timestamps and durations through pandas."""
    import pandas as pd
    v = plain_cell(t, s, "true")
    if v is not MORE:
        return v
    if t in "xhij":
        return int(s)
    if t in "ef":
        assert s in ("inf", "-inf") or "." in s or "e" in s, f"float text {s!r} reads as an integer"
        return float(np.float32(float(s))) if t == "e" else float(s)
    if s in ("0W", "-0W") and t in "mduvt":
        return qinf(t) if s == "0W" else -qinf(t)
    if t == "p":        # pandas' Timestamp.max/min are the infinities
        date, clock = s.split("T")
        v = iso_cell("d", date) * DAY_NS + clock_ns(clock)
        if -I64MAX <= v + EPOCH_NS <= I64MAX:       # what pandas holds: it reads the same
            assert pd.Timestamp(s).value == v + EPOCH_NS, s
        return {I64MAX - EPOCH_NS: qinf("p"), -I64MAX - EPOCH_NS: -qinf("p")}.get(v, v)
    if t == "d":
        return datetime.date.fromisoformat(s).toordinal() - ORD2000
    if t == "m":
        y, m = s.split("-")
        return (int(y) - 2000) * 12 + int(m) - 1
    ns = pd.to_timedelta(s).value
    if t == "n":
        return ns
    unit = {"u": 60 * 10**9, "v": 10**9, "t": 10**6}[t]
    assert ns % unit == 0, (t, s)
    return ns // unit


def q_cell(t, s):
    """q value of one CSV cell, format = q: q's own text."""
    v = plain_cell(t, s, "1")
    if v is not MORE:
        return v
    if t == "x":
        assert len(s) == 2, s
        return int(s, 16)
    if t in "ef":
        inf = {"e": "0W", "f": "0w"}[t]
        if s in (inf, "-" + inf):
            return math.inf if s == inf else -math.inf
        assert "." not in s or not s.endswith(".0"), s
        return float(np.float32(float(s))) if t == "e" else float(s)
    if s in ("0W", "-0W"):
        return qinf(t) if s == "0W" else -qinf(t)
    if t in "hij":
        return int(s)
    if t == "d":
        y, m, d = map(int, s.split("."))
        return datetime.date(y, m, d).toordinal() - ORD2000
    if t == "m":
        y, m = map(int, s.split("."))
        return (y - 2000) * 12 + m - 1
    if t == "p":
        date, clock = s.split("D")
        return q_cell("d", date) * DAY_NS + clock_ns(clock)
    if t == "n":
        neg = s.startswith("-")
        days, clock = s.lstrip("-").split("D")
        v = int(days) * DAY_NS + clock_ns(clock)
        return -v if neg else v
    assert not s.startswith("-"), s
    ns = clock_ns(s if t != "u" else s + ":00")
    return ns // {"u": 60 * 10**9, "v": 10**9, "t": 10**6}[t]


def clock_ns(s):
    hms, _, frac = s.partition(".")
    h, m, sec = map(int, hms.split(":"))
    return ((h * 60 + m) * 60 + sec) * 10**9 + (int(frac.ljust(9, "0")) if frac else 0)


def read_csv(path_or_text, types, fmt):
    """Every column as text (blanks None) through pandas, each cell to its
    q value by the column's q type."""
    import pandas as pd
    src = io.StringIO(path_or_text) if "\n" in path_or_text else path_or_text
    df = pd.read_csv(src, dtype=str, keep_default_na=False, na_values=[""])
    cell = iso_cell if fmt == "iso" else q_cell
    out = {}
    for name in df.columns:
        t = types[name]
        out[name] = (t, [cell(t, None if pd.isna(s) else s) for s in df[name]])
    return Tab(out)


def read_msgpack_table(m, types):
    out = {}
    for name, vals in m.items():
        t = types[name]
        out[name] = (t, [mp_cell(t, v) for v in vals])
    return Tab(out)


def mp_cell(t, v):
    """q value of a msgpack item: the timestamp extension for p m d z (ns
    since 1970; infinities numpy's int64 extremes), counts of their unit for
    n u v t (infinities the int64 extremes too), nil for nulls."""
    import msgpack
    if t in "bcsx":
        return "" if t == "s" and v is None else v
    if t == "g":
        assert isinstance(v, bytes) and len(v) == 16, v
        return v
    if t in "ef":
        return float("nan") if v is None else (float(np.float32(v)) if t == "e" else float(v))
    if v is None:
        return qnull(t)
    if t in "hij":
        return v
    if t in "pmdz":
        assert isinstance(v, msgpack.Timestamp), (t, v)
        ns = v.to_unix_nano()
        if ns in (I64MAX, -I64MAX):
            return qinf(t) if ns > 0 else -qinf(t)
        if t == "p":
            return ns - EPOCH_NS
        days, rest = divmod(ns, DAY_NS)
        assert rest == 0, (t, v)
        if t == "d":
            return days - EPOCH_DAYS
        d = datetime.date.fromordinal(datetime.date(1970, 1, 1).toordinal() + days)
        assert d.day == 1, (t, d)
        return (d.year - 2000) * 12 + d.month - 1
    if t == "n" or v not in (I64MAX, -I64MAX):
        return v
    return qinf(t) if v > 0 else -qinf(t)


def qipc_column(v):
    """(type letter, items) of a decoded q vector."""
    if isinstance(v, qipc.Vec):
        return v.t, list(v.items)
    if isinstance(v, str):
        return "c", list(v)
    if isinstance(v, bytes):
        return "x", list(v)
    return "list", v


def read_qipc_table(v):
    assert isinstance(v, qipc.Table), f"not a table: {v!r}"[:300]
    return Tab({k: qipc_column(c) for k, c in v.cols.items()})


# ---- comparing

def same_value(t, a, b):
    if t in "ef":
        if a != a or b != b:
            return a != a and b != b
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b and type(a) is type(b) or (t in "bx" and a == b)


def same_table(got, want, what):
    assert list(got.cols) == list(want.cols), \
        f"{what}: columns {list(got.cols)} != {list(want.cols)}"
    for name, (t, vals) in want.cols.items():
        gt, gv = got.cols[name]
        assert gt == t, f"{what}: column {name} has type {gt}, not {t}"
        assert len(gv) == len(vals), f"{what}: column {name} has {len(gv)} rows, not {len(vals)}"
        for r, (a, b) in enumerate(zip(gv, vals)):
            assert same_value(t, a, b), f"{what}: column {name} row {r}: got {a!r}, want {b!r}"
    return sum(len(v) for _, v in want.cols.values())


# ---- jobs

FNS = '''
import numpy as np

def ident(t):
    return t

def keyed(t):
    return {k: t[k] for k in KEYS + VALUES}

def first_rows(t):
    return np.asarray(t[COLUMN][:K])
'''

FORMATS = [("iso", "out.csv"), ("q", "out.csv"), ("msgpack", "out.msgpack"),
           ("qipc", "out.qipc"), ("stdout", "-")]


class Round:
    """One round's jobs, all against one `qpeach serve --db` worker."""

    def __init__(self, d, server, symbols):
        self.d, self.server, self.symbols = d, server, symbols
        self.values = self.outputs = self.errors = self.njobs = 0

    def job(self, fn, table, part, merge="concat", key=None):
        """Runs one job once per output format; returns {format:
        (returncode, stderr, stdout text or output path)}."""
        self.njobs += 1
        results = {}
        for fmt, out in FORMATS:
            name = f"j{self.njobs}{fmt}"
            path = "-" if out == "-" else os.path.join(self.d, name + os.path.splitext(out)[1])
            ini = os.path.join(self.d, name + ".ini")
            with open(ini, "w") as f:
                f.write(f"[job]\nfunction = fns.py:{fn}\nsymbols = {self.symbols}\n"
                        f"[input]\ndb = db\ntable = {table}\n[partition]\n{part}"
                        f"[workers]\nservers = {self.server.addr}\n[merge]\nhow = {merge}\n"
                        + (f"key = {', '.join(key)}\n" if key else "")
                        + f"[output]\npath = {path}\n" + ("format = q\n" if fmt == "q" else ""))
            r = subprocess.run([QPEACH, "run", "--quiet", ini], capture_output=True, text=True,
                               timeout=120)
            results[fmt] = (r.returncode, r.stderr, r.stdout if path == "-" else path)
        return results

    def check(self, what, results, want, maybe=None):
        """Each format's output equals want (a Tab, or a list of Tabs for
        merge none), or the run failed loudly (exit 1 or 2, the message
        holding the cause): where want is Loud, for a list written as CSV
        (no table shape), and where maybe (the text its message holds)
        allows it. Exit 0 with another value fails."""
        iso_text = None
        for fmt, (rc, err, out) in results.items():
            where = f"{what}, {fmt}"
            must = want if isinstance(want, Loud) else \
                Loud("CSV") if isinstance(want, list) and fmt in ("iso", "q", "stdout") else None
            if must or rc != 0:
                assert rc != 0, f"{where}: exit 0 where the run had to fail ({must.text})"
                cause = must.text if must else maybe
                assert cause and rc in (1, 2) and cause in err, \
                    f"{where}: exit {rc} (a failure must say {cause!r}): {err.strip()[-3000:]}"
                self.errors += 1
                continue
            try:
                got = read_output(fmt, out, want)
            except AssertionError as e:
                raise AssertionError(f"{where}: {e}") from None
            if fmt == "iso":
                with open(out) as f:
                    iso_text = f.read()
            if fmt == "stdout" and iso_text is not None:
                assert out == iso_text, f"{where}: stdout differs from the .csv output"
            if isinstance(want, list):
                assert isinstance(got, list) and len(got) == len(want), \
                    f"{where}: {len(got)} partials, not {len(want)}"
                for k, (g, w) in enumerate(zip(got, want)):
                    self.values += same_table(g, w, f"{where}, partial {k}")
            else:
                self.values += same_table(got, want, where)
            self.outputs += 1


def read_output(fmt, out, want):
    """The output read back as q values (a Tab, or a list of Tabs)."""
    like = (want[0] if want else Tab({})) if isinstance(want, list) else want
    types = like.types()
    if fmt in ("iso", "q", "stdout"):
        if fmt != "stdout":
            with open(out) as f:
                out = f.read()
        return read_csv(out, types, "q" if fmt == "q" else "iso")
    with open(out, "rb") as f:
        data = f.read()
    if fmt == "msgpack":
        import msgpack
        m = msgpack.unpackb(data, timestamp=0, strict_map_key=False)
        if isinstance(want, list):
            assert isinstance(m, list), f"msgpack: not a list: {m!r}"[:300]
            return [read_msgpack_table(x, types) for x in m]
        if like.shape == "table":
            assert isinstance(m, dict), f"msgpack: not a map: {m!r}"[:300]
            return read_msgpack_table(m, types)
        t = types["x"]
        return Tab({"x": (t, [mp_cell(t, v) for v in (m if like.shape == "vector" else [m])])},
                   like.shape)
    v = qipc.decode(data)
    if isinstance(want, list):
        assert isinstance(v, list), f"qipc: not a list: {v!r}"[:300]
        return [read_qipc_table(x) for x in v]
    if like.shape == "table":
        return read_qipc_table(v)
    if like.shape == "vector":
        return Tab({"x": qipc_column(v)}, "vector")
    assert isinstance(v, (int, float)) and not isinstance(v, bool), f"qipc: not a number: {v!r}"
    return Tab({"x": (types["x"], [v])}, "atom")


# ---- merges, computed here

class Loud:
    """A run that must fail, its message holding text."""

    def __init__(self, text):
        self.text = text


BEYOND_LONGS = Loud("beyond q's longs")


def q_range_ok(v):
    """A long sum q can hold: not beyond 0W, not the null."""
    return -I64MAX <= v <= I64MAX


def sum_by_key(tab, keys, values):
    """[merge] how = sum-by-key over tab's rows in order: keys equal as q's
    = says (in first-seen order, -0.0 as 0.0, NaN the null), nulls skipped,
    integer columns summed as long, real and float as float (in row order,
    as doubles). A long sum beyond q's longs fails the run."""
    sums, first = {}, []
    for r in range(tab.rows()):
        k = tuple(qkey(tab.cols[c][0], tab.cols[c][1][r]) for c in keys)
        if k not in sums:
            sums[k] = [0.0 if tab.cols[c][0] in "ef" else 0 for c in values]
            first.append(k)
        acc = sums[k]
        for i, c in enumerate(values):
            t, v = tab.cols[c][0], tab.cols[c][1][r]
            if t in "ef":
                acc[i] += v if v == v else 0.0
            elif t not in "hij" or v != qnull(t):
                acc[i] += int(v)
    if any(not q_range_ok(x) for k in first for x in sums[k] if isinstance(x, int)):
        return BEYOND_LONGS
    cols = {}
    for j, c in enumerate(keys):
        t = tab.cols[c][0]
        cols[c] = (t, [float("nan") if k[j] is FNULL else k[j] for k in first])
    for i, c in enumerate(values):
        cols[c] = ("f" if tab.cols[c][0] in "ef" else "j", [sums[k][i] for k in first])
    return Tab(cols)


def arith(op, t, parts):
    """[merge] how = sum / min / max of equal-length vectors (parts), item
    by item: nulls skipped; sum widens to long or float; min and max keep
    the type, the first of equal values, the null when all are null."""
    out = []
    for k in range(len(parts[0])):
        xs = [p[k] for p in parts]
        if t in "ef":
            xs = [x for x in xs if x == x]
        elif t in "hij":
            xs = [x for x in xs if x != qnull(t)]
        if op == "sum":
            acc = 0.0 if t in "ef" else 0
            for x in xs:
                acc += x if t in "ef" else int(x)
            if t not in "ef" and not q_range_ok(acc):
                return BEYOND_LONGS
            out.append(acc)
        elif not xs:
            out.append(float("nan") if t in "ef" else qnull(t))
        else:
            best = xs[0]
            for x in xs[1:]:
                if (x < best) if op == "min" else (x > best):
                    best = x
            out.append(best)
    rt = ("f" if t in "ef" else "j") if op == "sum" else t
    return Tab({"x": (rt, out)}, "vector")


NUMERIC = ["b", "x", "h", "i", "j", "e", "f"]
BY_COLUMN = ["s", "f", "e", "j", "h", "i", "b", "x", "g", "date", "p", "m", "d", "n", "u", "v",
             "t", "z"]
KEYS = [["s"], ["f"], ["e"], ["s", "h"], ["b"], ["date"], ["g"], ["x", "b"], ["p"]]


def run_round(seed):
    """One random table through every job and format; returns (rows,
    Round)."""
    rng = random.Random(f"qpeach property {seed}")     # hashed: nearby seeds differ
    d = tmpdir()
    try:
        nrows = rng.choice([0, 1, 2, 3, rng.randint(4, 20), rng.randint(4, 20),
                            rng.randint(21, 200)])
        cols = gen_table(rng, MAIN, nrows)
        wide = make_db(rng, d, cols)
        with Server("--db", os.path.join(d, "db")) as srv:
            R = Round(d, srv, rng.choice(["str", "categorical", "codes"]))
            splayed_jobs(rng, R, cols)
            if nrows:
                partitioned_jobs(rng, R, cols)
            for name, wcols in wide.items():
                R.check(f"{name}, by rows", R.job("ident", name, "by = rows\n"), wide_want(wcols))
        return nrows, R
    finally:
        shutil.rmtree(d, ignore_errors=True)


def import_csv(d, name, cols, *extra):
    path = os.path.join(d, name + ".csv")
    write_csv(path, cols)
    return qpeach("db", "import", path, os.path.join(d, "db"), name, "--types", types_arg(cols),
                  *extra)


def make_db(rng, d, cols):
    """d/db: the table splayed (s) and partitioned by date (t), and a small
    splayed table per WIDE column; returns {name: columns} of those."""
    r = import_csv(d, "s", cols)
    assert r.returncode == 0, r.stderr
    r = import_csv(d, "t", cols, "--partition", "date")
    if not cols[0].vals:        # q writes no partition for no rows: a loud refusal
        assert r.returncode == 1 and "no rows" in r.stderr, (r.returncode, r.stderr)
    else:
        assert r.returncode == 0, r.stderr
    wide = {}
    for name, t in WIDE[1:]:
        wide[name] = gen_table(rng, [WIDE[0], (name, t)], rng.randint(1, 6), wide=True)
        r = import_csv(d, name, wide[name])
        assert r.returncode == 0, r.stderr
    return wide


def wide_want(cols):
    """What a WIDE table comes back as: chars and datetimes (as
    timestamps) as they were; timestamps beyond numpy's datetime64[ns]
    cannot reach Python: the run fails naming the column (README)."""
    c = cols[1]
    if c.t == "p" and any(P_HI_NUMPY < v <= P_HI for v in c.vals):
        return Loud(f"column {c.name}")
    return splayed(cols)


def write_fns(R, keys, values, column, k):
    with open(os.path.join(R.d, "fns.py"), "w") as f:
        f.write(f"KEYS = {keys!r}\nVALUES = {values!r}\nCOLUMN = {column!r}\nK = {k}\n" + FNS)


def splayed_jobs(rng, R, cols):
    """The splayed table by rows, by a column, counted, summed by key."""
    keys = rng.choice(KEYS)
    values = [c for c in NUMERIC if c not in keys and (c != "j" or rng.random() < 0.5)]
    write_fns(R, keys, values, None, 0)
    tab = empty_objects(splayed(cols))
    rows = f"by = rows\npieces = {rng.randint(1, 5)}\n"
    R.check("splayed, by rows", R.job("ident", "s", rows), tab)
    by = rng.choice(BY_COLUMN)
    want = by_column(tab, by)[0] if tab.rows() else []      # no value, no task: an empty list
    R.check(f"splayed, by column {by}", R.job("ident", "s", f"by = column\ncolumn = {by}\n"), want)
    R.check("splayed, count", R.job("ident", "s", rows, "count"),
            Tab({"x": ("j", [tab.rows()])}, "atom"))
    R.check(f"splayed, sum-by-key {keys} of {values}",
            R.job("keyed", "s", rows, "sum-by-key", keys), sum_by_key(tab, keys, values))


def partitioned_jobs(rng, R, cols):
    """The partitioned table by partition, by rows, by a column, merged
    none, summed by key, and sum/min/max of each date's first rows."""
    keys = rng.choice(KEYS)
    values = [c for c in NUMERIC if c not in keys and (c != "j" or rng.random() < 0.5)]
    tab = partitioned(cols)
    _, groups = by_column(tab, "date")
    k = min(len(g) for g in groups)
    column, op = rng.choice(NUMERIC), rng.choice(["sum", "min", "max"])
    write_fns(R, keys, values, column, k)
    R.check("partitioned, by partition", R.job("ident", "t", "by = partition\n"), tab)
    R.check("partitioned, by rows",
            R.job("ident", "t", f"by = rows\npieces = {rng.randint(1, 5)}\n"), tab)
    by = rng.choice(BY_COLUMN)
    R.check(f"partitioned, by column {by}", R.job("ident", "t", f"by = column\ncolumn = {by}\n"),
            by_column(tab, by)[0])
    R.check("partitioned, merge none", R.job("ident", "t", "by = partition\n", "none"),
            [tab.take(g) for g in groups])
    R.check(f"partitioned, sum-by-key {keys} of {values}",
            R.job("keyed", "t", "by = partition\n", "sum-by-key", keys),
            sum_by_key(tab, keys, values))
    t, v = tab.cols[column]
    R.check(f"partitioned, {op} of the first {k} {column} of each date",
            R.job("first_rows", "t", "by = partition\n", op),
            arith(op, t, [[v[r] for r in g[:k]] for g in groups]))


def test_random_tables_through_every_merge_and_format():
    """Random tables of every type through import, jobs, merges and every
    output format: each value equal to the source's by the documented
    conversions, or a loud failure where one is due."""
    total = {"values": 0, "outputs": 0, "errors": 0}
    for k in range(ROUNDS):
        seed = SEED + k
        try:
            nrows, R = run_round(seed)
        except Exception as e:
            raise AssertionError(f"property round {k} (seed {seed}; rerun alone with QPEACH_"
                                 f"PROPERTY_SEED={seed} QPEACH_PROPERTY_ROUNDS=1): {e}") from e
        print(f"seed {seed}: {nrows} rows, symbols = {R.symbols}: {R.values} values in "
              f"{R.outputs} outputs equal, {R.errors} loud errors", flush=True)
        for key in total:
            total[key] += getattr(R, key)
    # something was compared: a run that fails everything loudly passes nothing
    assert total["outputs"] > 10 * ROUNDS, total


# ---- what the property test found, one test each

REG_FNS = '''
import numpy as np

def ident(t):
    return t

def checked(t):
    """The table as the function gets it: a dict of numpy arrays."""
    bad = {k: type(v).__name__ for k, v in t.items() if not isinstance(v, np.ndarray)}
    if bad:
        raise TypeError(f"columns that are not numpy arrays: {bad}")
    return t

def firsts(t):
    return np.asarray(t["j"][:1])

def kj(t):
    return {"k": t["k"], "j": t["j"], "f": t["f"]}

def one_column(t):
    return {"k": t["k"]}

def floats(t):
    return np.array([1.5, np.nan, 2.5])
'''


def reg_db(d, csv_text, types, name="s"):
    with open(os.path.join(d, "r.csv"), "w") as f:
        f.write(csv_text)
    with open(os.path.join(d, "fns.py"), "w") as f:
        f.write(REG_FNS)
    r = qpeach("db", "import", os.path.join(d, "r.csv"), os.path.join(d, "db"), name,
               "--types", types)
    assert r.returncode == 0, r.stderr


def reg_run(d, fn, body, out="out.qipc", fmt=None):
    ini = os.path.join(d, "r.ini")
    with open(ini, "w") as f:
        f.write(f"[job]\nfunction = fns.py:{fn}\n{body}[workers]\nlocal = 1\n"
                f"[output]\npath = {out}\n" + (f"format = {fmt}\n" if fmt else ""))
    r = subprocess.run([QPEACH, "run", "--quiet", ini], capture_output=True, text=True, timeout=120)
    if r.returncode or not out.endswith(".qipc"):
        return r, None
    with open(os.path.join(d, out), "rb") as f:
        return r, qipc.decode(f.read())


def test_string_columns_reach_python_as_arrays_and_keep_the_table():
    """A string column (q's nested char vectors, `*` in --types) reaches a
    function as a numpy object array of str, like every other column, so
    returning the table returns a table (strings as symbols). It came as a
    Python list: the function's dict was no table, and the partials were
    concatenated into a general list of dicts with exit 0."""
    d = tmpdir()
    reg_db(d, 'k,str,f\na,"x,y",1.5\nb,,-0.0\na,hello,2\n', "S*F")
    r, v = reg_run(d, "checked", "[input]\ndb = db\ntable = s\n[partition]\npieces = 2\n")
    assert r.returncode == 0, r.stderr
    assert v == qipc.Table({"k": qipc.Vec("s", ["a", "b", "a"]),
                            "str": qipc.Vec("s", ["x,y", "", "hello"]),
                            "f": qipc.Vec("f", [1.5, -0.0, 2.0])}), v


def test_symbols_categorical_and_codes_go_back_as_symbol_columns():
    """With [job] symbols = categorical (pandas Categorical columns) or
    codes (SymbolCodes), a function returning the table it got returns a
    table: Categorical columns made a dict and a general list of partials
    with exit 0, SymbolCodes failed to convert."""
    d = tmpdir()
    reg_db(d, "k,j\nb,1\na,2\nb,3\n", "SJ")
    for mode in ("categorical", "codes"):
        r, v = reg_run(d, "ident", f"symbols = {mode}\n[input]\ndb = db\ntable = s\n"
                       "[partition]\npieces = 2\n")
        assert r.returncode == 0, (mode, r.stderr)
        assert v == qipc.Table({"k": qipc.Vec("s", ["b", "a", "b"]),
                                "j": qipc.Vec("j", [1, 2, 3])}), (mode, v)


def test_an_empty_table_comes_back_an_empty_table():
    """A table of no rows through a function that returns it: an empty
    table with its columns' types (the symbol column was an empty general
    list, the result a list holding a dict, with exit 0)."""
    d = tmpdir()
    reg_db(d, "k,f,str\n", "SF*")
    r, v = reg_run(d, "ident", "[input]\ndb = db\ntable = s\n")
    assert r.returncode == 0, r.stderr
    assert v == qipc.Table({"k": qipc.Vec("s", []), "f": qipc.Vec("f", []),
                            "str": qipc.Vec("s", [])}), v


def test_long_sums_beyond_q_longs_fail_loudly():
    """sum and sum-by-key of long columns: a sum beyond q's longs (past 0W,
    or onto -0W - 1, the null) fails the run naming the column (and the
    key) instead of wrapping around with exit 0; one that only passes 0W
    on the way and ends inside is exact."""
    d = tmpdir()
    big = 2**63 - 1
    reg_db(d, f"k,j,f\na,{big},1\nb,5,2\na,1,3\nb,-3,4\nc,{big},5\nc,-5,6\nc,1,7\n", "SJF")
    part = "[input]\ndb = db\ntable = s\n[partition]\nby = column\ncolumn = k\n"
    r, _ = reg_run(d, "kj", part + "[merge]\nhow = sum-by-key\nkey = k\n")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "column j" in r.stderr and "`a" in r.stderr and "long" in r.stderr, r.stderr
    r, _ = reg_run(d, "firsts", part + "[merge]\nhow = sum\n")       # 0W + 5 + 0W
    assert r.returncode == 1 and "sum" in r.stderr and "long" in r.stderr, r.stderr
    # c alone: 0W - 5 + 1 passes nothing; b: 5 - 3
    reg_db(d, f"k,j,f\nc,{big},1\nc,1,2\nc,-5,3\nb,5,4\nb,-3,5\n", "SJF")
    r, v = reg_run(d, "kj", part + "[merge]\nhow = sum-by-key\nkey = k\n")
    assert r.returncode == 0, r.stderr
    assert v == qipc.Table({"k": qipc.Vec("s", ["b", "c"]), "j": qipc.Vec("j", [2, big - 4]),
                            "f": qipc.Vec("f", [9.0, 6.0])}), v


def test_one_column_csv_keeps_its_null_rows():
    """A result of one column (a vector, or a table of one column) with
    nulls, written as CSV: a null row is `""`, not a blank line, which
    pandas' read_csv (and most readers) skip, so the rows read back are
    the rows written (3 came back as 2)."""
    import pandas as pd
    d = tmpdir()
    reg_db(d, "k,j\na,1\n,2\nb,3\n", "SJ")
    for fn, want in (("floats", [1.5, None, 2.5]), ("one_column", ["a", None, "b"])):
        for fmt in ("iso", "q"):
            r, _ = reg_run(d, fn, "[input]\ndb = db\ntable = s\n[partition]\npieces = 1\n",
                           out="o.csv", fmt=fmt)
            assert r.returncode == 0, r.stderr
            got = pd.read_csv(os.path.join(d, "o.csv"), keep_default_na=False, na_values=[""])
            col = got.iloc[:, 0].tolist()
            assert [None if pd.isna(x) else x for x in col] == want, (fn, fmt, col)
