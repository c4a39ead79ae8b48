"""The values a job writes are right: every q type a Python function can
return, at its edges (nulls, infinities, extremes, negative values, floats
such as 1234.56 that look like dates), through every output format (CSV
iso, CSV q, msgpack, q IPC, stdout), read back with pandas, the stock
python3-msgpack reader and tests/integration/qipc.py (no code of ours) and
compared with numpy/pandas on the source data. Merges that combine columns
match them by name; grouping by a float column uses q's equality.

The output conventions checked here are the ones README.md and
jobs/README.md describe ([output] path, format).
"""
import datetime
import io
import os
import subprocess
import uuid

import numpy as np

import qipc
from harness import QPEACH, tmpdir
from test_run import run, write

I64 = np.iinfo(np.int64)

# The function's module: source() is the table every output must carry.
# The test runs the same text to get the source it compares against.
SOURCE = '''
import uuid
import numpy as np

I64 = np.iinfo(np.int64)


def _t(unit, vals):
    return np.array([np.datetime64(v, unit) for v in vals], dtype=f"M8[{unit}]")


def _raw(kind, unit, vals):
    return np.array(vals, dtype="int64").view(f"{kind}8[{unit}]")


def source():
    big, small, nat = I64.max, I64.min + 1, I64.min
    return {
        "b": np.array([True, False, True, True, False, False, True, False]),
        "g": np.array([uuid.UUID(int=0), uuid.UUID(int=1),
                       uuid.UUID("12345678-9abc-def0-1234-56789abcdef0"),
                       uuid.UUID(int=2**128 - 1)] + [uuid.UUID(int=k << 64) for k in range(4)],
                      dtype=object),
        "x": np.array([0, 1, 9, 10, 16, 99, 255, 128], dtype=np.uint8),
        "h": np.array([-32768, 32767, -32767, 0, -5, 1234, 9999, -1], dtype=np.int16),
        "i": np.array([-2**31, 2**31 - 1, -2**31 + 1, 0, -5, 123456, 1234, -999], dtype=np.int32),
        "j": np.array([I64.min, I64.max, I64.min + 1, 0, -5, 2**53 + 1, 1234, -123],
                      dtype=np.int64),
        "e": np.array([np.nan, np.inf, -np.inf, 3.4028235e38, 1.4e-45, -0.0, 1234.56, -123.25],
                      dtype=np.float32),
        "f": np.array([np.nan, np.inf, -np.inf, 1.7976931348623157e308, 5e-324, -0.0, 1234.56,
                       -123.25]),
        "f2": np.array([0.1, 0.30000000000000004, -1e300, 1000.5, 9999.99, -100.01, -999.999,
                        2024.0301]),
        "s": np.array(["", "a", "with,comma", 'quo"te', " lead", "1234.56", "2024.03.01",
                       "\\u00fcn\\u00ef"], dtype=object),
        "p": np.concatenate([_raw("M", "ns", [nat, big, small]),
                             _t("ns", ["2024-03-01T09:30:00.000000001",
                                       "1999-12-31T23:59:59.999999999", "1970-01-01",
                                       "1708-01-01T00:00:00.000000007",
                                       "2261-12-31T23:59:59.999999999"])]),
        "m": np.concatenate([_raw("M", "M", [nat]),
                             _t("M", ["2024-03", "1999-12", "1970-01", "2000-01", "1708-01",
                                      "2261-12", "1969-12"])]),
        "d": np.concatenate([_raw("M", "D", [nat]),
                             _t("D", ["2024-03-01", "1999-12-31", "1970-01-01", "2000-01-01",
                                      "1708-01-01", "2261-12-31", "1969-12-31"])]),
        "dwide": _t("D", ["0001-01-01", "9999-12-31", "1066-10-14", "2300-01-01"] * 2),
        "n": _raw("m", "ns", [nat, big, small, 93784000000001, -1500000000, 0, -93784000000001, 1]),
        "u": _raw("m", "m", [nat, 570, -1, 1439, 0, 2000, -2000, 59]),
        "v": _raw("m", "s", [nat, 34200, -1, 86399, 0, 200000, -200000, 59]),
        "t": _raw("m", "ms", [nat, 34200123, -1, 86399999, 0, 200000000, -200000000, 999]),
        # infinities of the temporal types no pandas value can hold
        "dinf": _raw("M", "D", [big, small] * 4),
        "minf": _raw("M", "M", [big, small] * 4),
        "uinf": _raw("m", "m", [big, small] * 4),
        "vinf": _raw("m", "s", [big, small] * 4),
        "tinf": _raw("m", "ms", [big, small] * 4),
    }


def f(part):
    return source()


def rows(t):
    return t
'''
NS = {}
exec(compile(SOURCE, "types_src.py", "exec"), NS)
SRC = NS["source"]()
INF_TEMPORAL = ["dinf", "minf", "uinf", "vinf", "tinf"]


def types_job(d, path, fmt=None, name="types"):
    write(d, "types_src.py", SOURCE)
    write(d, "one.csv", "a\n1\n")
    return write(d, name + ".ini",
                 "[job]\nfunction = types_src.py:f\n[input]\ntable = t\nfile = one.csv\n"
                 "[partition]\npieces = 1\n[workers]\nlocal = 1\n"
                 f"[output]\npath = {path}\n" + (f"format = {fmt}\n" if fmt else ""))


def run_ok(path, *args):
    r = run(*args, path)
    assert r.returncode == 0, r.stderr
    return r


def nulls(col):
    """The rows of a source column that are q nulls."""
    a = SRC[col]
    if a.dtype.kind in "Mm":
        return np.isnat(a)
    if a.dtype.kind == "f":
        return np.isnan(a)
    if a.dtype.kind == "i":
        return a == np.iinfo(a.dtype).min
    return np.zeros(len(a), bool)


def same_floats(got, want):
    got, want = np.asarray(got, dtype=want.dtype), np.asarray(want)
    ok = (got == want) | (np.isnan(got) & np.isnan(want))
    assert ok.all() and (np.signbit(got) == np.signbit(want)).all(), (got, want)


def same_instants(got, want):
    """datetime64 values equal to the nanosecond, NaT to NaT."""
    return (np.asarray(got).astype("M8[ns]").view("int64") ==
            want.astype("M8[ns]").view("int64")).all()


def read_csv(path, dates=()):
    import pandas as pd
    # Exactly: blanks are the only nulls, floats to the last bit.
    # (pandas 1.5 reads a nullable Int64 column through float64: the
    # integers are read as text and made ints here.)
    df = pd.read_csv(path, keep_default_na=False, na_values=[""], float_precision="round_trip",
                     dtype={c: str for c in "hij"}, parse_dates=list(dates))
    for c in "hij":
        df[c] = pd.array([pd.NA if pd.isna(v) else int(v) for v in df[c]], dtype="Int64")
    return df


def check_iso_csv(df):
    import pandas as pd
    assert df["b"].dtype == bool and (df["b"].values == SRC["b"]).all(), df["b"]
    assert [uuid.UUID(g) for g in df["g"]] == list(SRC["g"]), df["g"]
    assert (df["x"].values == SRC["x"]).all(), df["x"]
    for c in "hij":
        want = pd.array(np.where(nulls(c), 0, SRC[c]), dtype="Int64")
        want[nulls(c)] = pd.NA
        assert df[c].equals(pd.Series(want, name=c)), (c, df[c].tolist(), want)
    for c in ("e", "f", "f2"):
        assert df[c].dtype == np.float64, (c, df[c].dtype, df[c].tolist())
        same_floats(df[c].values, SRC[c])
    syms = ["" if pd.isna(s) else s for s in df["s"]]
    assert syms == list(SRC["s"]), syms
    for c in "pd":         # parse_dates: datetime64[ns], NaT for the blanks
        assert df[c].dtype == "datetime64[ns]", (c, df[c].dtype, df[c].tolist())
        assert same_instants(df[c], SRC[c]), (c, df[c].tolist(), SRC[c])
    assert same_instants(pd.to_datetime(df["m"], format="%Y-%m"), SRC["m"]), df["m"]
    assert [datetime.date.fromisoformat(s) for s in df["dwide"]] == \
        list(SRC["dwide"].astype(object)), df["dwide"]
    for c in "nuvt":       # durations and times of day: pd.to_timedelta
        got = pd.to_timedelta(df[c]).values.view("int64")
        want = SRC[c].astype("m8[ns]").view("int64")
        assert (got == want).all(), (c, df[c].tolist(), SRC[c])
    for c in INF_TEMPORAL:  # no pandas value: q's text
        assert df[c].tolist() == ["0W", "-0W"] * 4, (c, df[c].tolist())


def test_csv_iso_every_type_reads_back_as_the_source():
    """[output] format = iso (the default): each column by its type, never
    by the look of its text: 1234.56 and -123.25 stay floats (they became
    1234-56 and -123-25), nulls are blank, float infinities inf, timestamps
    and dates ISO 8601, durations ISO 8601 durations pandas reads, bytes
    decimal."""
    d = tmpdir()
    run_ok(types_job(d, "out/o.csv"))
    check_iso_csv(read_csv(os.path.join(d, "out", "o.csv"), dates="pd"))


def test_csv_q_format_every_type():
    """format = q: q's own text per type (what q's 0: writes): floats in
    full, nulls blank, infinities 0w/0W, bytes hex, dates 2024.03.01."""
    import pandas as pd
    d = tmpdir()
    run_ok(types_job(d, "out/q.csv", "q"))
    df = pd.read_csv(os.path.join(d, "out", "q.csv"), keep_default_na=False, na_values=[""],
                     float_precision="round_trip", dtype=str)
    for c in ("e", "f", "f2"):
        fin = np.isfinite(SRC[c])
        same_floats(df[c][fin].astype(float).values, SRC[c][fin])
        assert df[c][np.isnan(SRC[c])].isna().all(), df[c]
    for c, inf in (("e", "0W"), ("f", "0w")):
        assert df[c][1:3].tolist() == [inf, "-" + inf], df[c]
    assert [int(x, 16) for x in df["x"]] == SRC["x"].tolist(), df["x"]
    assert df["b"].tolist() == [str(int(b)) for b in SRC["b"]], df["b"]
    assert same_instants(pd.to_datetime(df["d"], format="%Y.%m.%d"), SRC["d"]), df["d"]
    p = pd.to_datetime(df["p"][3:], format="%Y.%m.%dD%H:%M:%S.%f")
    assert same_instants(p, SRC["p"][3:]), df["p"]
    assert df["p"][1:3].tolist() == ["0W", "-0W"] and df["j"][1:3].tolist() == ["0W", "-0W"]
    assert df["h"][1:3].tolist() == ["0W", "-0W"] and pd.isna(df["h"][0]), df["h"]


def _ts_nanos(t):
    return None if t is None else t.to_unix_nano()


def test_msgpack_every_type_one_convention():
    """One convention for every temporal type: timestamps, datetimes,
    dates and months as msgpack's timestamp extension (dates and months at
    midnight UTC of their first day), durations and times of day as counts
    of their unit; nulls nil; temporal infinities numpy's int64 extremes
    (pandas' Timestamp.max/min as timestamps). Read with python3-msgpack
    and compared with pandas/numpy on the source."""
    import msgpack
    d = tmpdir()
    run_ok(types_job(d, "out/o.msgpack"))
    with open(os.path.join(d, "out", "o.msgpack"), "rb") as f:
        m = msgpack.unpackb(f.read(), timestamp=0)
    assert m["b"] == SRC["b"].tolist()
    assert [uuid.UUID(bytes=b) for b in m["g"]] == list(SRC["g"]), m["g"]
    assert m["x"] == SRC["x"].tolist()
    for c in "hij":        # nulls nil, infinities the integers numpy holds
        want = [None if n else int(v) for v, n in zip(SRC[c], nulls(c))]
        assert m[c] == want, (c, m[c], want)
    for c in ("e", "f", "f2"):
        same_floats(np.array(m[c], dtype=float), SRC[c])
    assert m["s"] == list(SRC["s"])
    for c in ("p", "m", "d", "dwide", "dinf", "minf"):
        assert all(isinstance(t, msgpack.Timestamp) or t is None for t in m[c]), (c, m[c])
        got = [_ts_nanos(t) for t in m[c]]
        want = []
        for v, raw in zip(SRC[c], SRC[c].view("int64")):
            if np.isnat(v):
                want.append(None)
            elif raw in (I64.max, I64.min + 1):     # an infinity: numpy's extremes, in ns
                want.append(int(raw))
            elif v.dtype == np.dtype("M8[ns]"):
                want.append(int(raw))
            else:                                   # midnight UTC of its (first) day
                want.append(int(v.astype("M8[D]").astype("int64")) * 86400 * 10**9)
        assert got == want, (c, got, want)
    for c in ("n", "u", "v", "t", "uinf", "vinf", "tinf"):   # counts of their own unit
        want = [None if np.isnat(v) else int(r) for v, r in zip(SRC[c], SRC[c].view("int64"))]
        assert m[c] == want, (c, m[c], want)


def test_qipc_every_type_is_q_exactly():
    """.qipc: the q value itself, decoded by tests/integration/qipc.py; each
    number is the source's in q's units and epoch (2000.01.01), nulls and
    infinities q's own."""
    d = tmpdir()
    run_ok(types_job(d, "out/o.qipc"))
    with open(os.path.join(d, "out", "o.qipc"), "rb") as f:
        t = qipc.decode(f.read())
    cols = t.cols
    shift = {"p": 946684800 * 10**9, "d": 10957, "dwide": 10957, "m": 360, "dinf": 10957,
             "minf": 360}
    null32, inf32 = -2**31, 2**31 - 1
    for c in ("p", "m", "d", "dwide", "n", "u", "v", "t") + tuple(INF_TEMPORAL):
        raw = SRC[c].view("int64")
        wide = c in ("p", "n")
        want = []
        for r in raw:
            if r == I64.min:
                want.append(I64.min if wide else null32)
            elif r in (I64.max, I64.min + 1):
                want.append(int(np.sign(r)) * (I64.max if wide else inf32))
            else:
                want.append(int(r) - shift.get(c, 0))
        assert cols[c].items == want, (c, cols[c].items, want)
    assert cols["j"].items == SRC["j"].tolist() and cols["h"].items == SRC["h"].tolist()
    same_floats(np.array(cols["e"].items, dtype=np.float32), SRC["e"])
    same_floats(np.array(cols["f"].items), SRC["f"])
    assert cols["s"].items == list(SRC["s"]) and cols["x"] == SRC["x"].tobytes()
    assert [uuid.UUID(bytes=g) for g in cols["g"].items] == list(SRC["g"])


def test_stdout_is_the_whole_output_in_csv():
    """[output] path = - (the default) writes the whole result to stdout in
    the output format, CSV: `qpeach run job.ini > out.csv` keeps every row
    (it printed q's console view: about 20 rows, then ..). --show prints
    the console's short view instead."""
    import pandas as pd
    d = tmpdir()
    n = 5000
    rng = np.random.default_rng(3)
    src = pd.DataFrame({"sym": rng.choice(["A", "B", "C"], n), "price": np.round(rng.uniform(1000, 9999, n), 2),
                        "size": rng.integers(1, 500, n)})
    src.to_csv(os.path.join(d, "t.csv"), index=False)
    write(d, "types_src.py", SOURCE)
    p = write(d, "j.ini", "[job]\nfunction = types_src.py:rows\n[input]\ntable = t\nfile = t.csv\n"
              "[partition]\npieces = 3\n[workers]\nlocal = 2\n")
    with open(os.path.join(d, "out.csv"), "w") as out:
        r = subprocess.run([QPEACH, "run", "--quiet", p], stdout=out, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(os.path.join(d, "out.csv"), float_precision="round_trip")
    assert len(got) == len(src), (len(got), len(src))
    assert got.equals(src), (got.head(), src.head())
    # the same bytes as a .csv output of the same job
    r = run_ok(types_job(d, "out/o.csv"))
    r2 = run_ok(types_job(d, "-", name="types2"), "--quiet")
    with open(os.path.join(d, "out", "o.csv")) as f:
        assert r2.stdout == f.read()
    # --show: q's console view, short
    r = run_ok(p, "--quiet", "--show")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["sym", "price", "size"] and lines[-1] == "..", r.stdout[-300:]
    assert len(lines) < 40, len(lines)
    # a file output with --show: the file whole, the view on stdout
    p2 = write(d, "j2.ini", open(p).read() + "[output]\npath = out/all.csv\n")
    r = run_ok(p2, "--quiet", "--show")
    assert r.stdout.splitlines()[-1] == ".." and \
        pd.read_csv(os.path.join(d, "out", "all.csv"), float_precision="round_trip").equals(src)


# ---- merges that combine columns: by name ----

MERGE_FNS = '''
import numpy as np
import pandas as pd


def xy_any_order(t):
    """{sym, x, y} on even days, {sym, y, x} on odd ones."""
    syms, inv = np.unique(t["sym"], return_inverse=True)
    x, y = np.bincount(inv, weights=t["x"]), np.bincount(inv, weights=t["y"])
    if int(t["day"][0]) % 2:
        return {"sym": syms, "y": y, "x": x}
    return {"sym": syms, "x": x, "y": y}


def renamed(t):
    """y is called zzz on day 3."""
    r = xy_any_order(t)
    if int(t["day"][0]) == 3:
        r["zzz"] = r.pop("y")
    return r


def pivot(t):
    """size by sym and side: a DataFrame keyed by sym, one column per side
    that trades that day (B on some days, S on others)."""
    df = pd.DataFrame({"sym": t["sym"], "side": t["side"], "size": t["size"]})
    return df.pivot_table(index="sym", columns="side", values="size", aggfunc="sum")


def rows(t):
    return {k: t[k] for k in (["b", "a"] if int(t["day"][0]) % 2 else ["a", "b"])}
'''


def merge_data(d, n=3000):
    import pandas as pd
    rng = np.random.default_rng(11)
    day = rng.integers(1, 5, n)
    side = np.where(day <= 2, "B", "S")        # days 1-2 buy only, 3-4 sell only
    df = pd.DataFrame({"day": day, "sym": rng.choice(["AA", "BB", "CC", "DD"], n), "side": side,
                       "x": rng.integers(0, 1000, n), "y": rng.integers(0, 10, n) * 1000,
                       "size": rng.integers(1, 100, n), "a": rng.integers(0, 50, n),
                       "b": np.round(rng.uniform(0, 1, n), 3)})
    df.to_csv(os.path.join(d, "m.csv"), index=False)
    write(d, "mfns.py", MERGE_FNS)
    return df


def merge_job(d, fn, how, extra="", out="out/m.csv", key="sym"):
    return write(d, f"{fn}.ini", f"[job]\nfunction = mfns.py:{fn}\nlibraries = pd=pandas\n"
                 "[input]\ntable = m\nfile = m.csv\n[partition]\nby = column\ncolumn = day\n"
                 f"[workers]\nlocal = 2\n[merge]\nhow = {how}\n"
                 + (f"key = {key}\n" if key and how == "sum-by-key" else "") + extra
                 + f"[output]\npath = {out}\n")


def test_sum_by_key_adds_columns_by_name():
    """A partial {sym, y, x} adds its x to the x sums (it was added to y, by
    position); compared with pandas' groupby over the whole data."""
    import pandas as pd
    d = tmpdir()
    df = merge_data(d)
    run_ok(merge_job(d, "xy_any_order", "sum-by-key"))
    got = pd.read_csv(os.path.join(d, "out", "m.csv")).set_index("sym").sort_index()
    want = df.groupby("sym")[["x", "y"]].sum().astype(float)
    assert list(got.columns) == ["y", "x"], got.columns    # the first partial's (day 1) order
    assert got[["x", "y"]].equals(want), (got, want)


def test_sum_by_key_refuses_other_value_columns_or_counts_them_zero():
    """Partials whose value columns differ in name fail the run naming both
    sets; [merge] missing = zero counts a partial's missing columns as zero
    (a pivot_table per day with B on some days, S on others), compared with
    pandas' pivot_table over the whole data."""
    import pandas as pd
    d = tmpdir()
    df = merge_data(d)
    r = run(merge_job(d, "renamed", "sum-by-key"))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "(x, zzz) where partial 1 has (y, x)" in r.stderr, r.stderr
    assert "missing = zero" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(d, "out", "m.csv"))
    # pivot tables: keyed by sym, B or S columns
    r = run(merge_job(d, "pivot", "sum-by-key", key=None))
    assert r.returncode == 1 and "B" in r.stderr and "S" in r.stderr, r.stderr
    run_ok(merge_job(d, "pivot", "sum-by-key", "missing = zero\n", key=None))
    got = pd.read_csv(os.path.join(d, "out", "m.csv")).set_index("sym").sort_index()
    want = df.pivot_table(index="sym", columns="side", values="size", aggfunc="sum", fill_value=0)
    want.columns = list(want.columns)
    assert got.equals(want), (got, want)
    r = run(merge_job(d, "pivot", "sum-by-key", "missing = nope\n", key=None))
    assert r.returncode == 2 and "[merge] missing" in r.stderr, r.stderr


def test_concat_takes_columns_by_name_in_any_order():
    """concat of {a, b} and {b, a} partials: the first partial's column
    order, each column's values its own (it failed: different columns)."""
    import pandas as pd
    d = tmpdir()
    df = merge_data(d)
    run_ok(merge_job(d, "rows", "concat"))
    got = pd.read_csv(os.path.join(d, "out", "m.csv"), float_precision="round_trip")
    want = pd.concat([df[df.day == k][["a", "b"]] for k in sorted(df.day.unique())],
                     ignore_index=True)
    assert list(got.columns) == ["b", "a"], got.columns    # the first partial's (day 1) order
    assert got[["a", "b"]].equals(want), (got, want)


# ---- grouping by a float column: q's equality ----

GROUP_FNS = '''
import numpy as np


def count(t):
    return len(t["x"])


def keyed(t):
    return {"x": np.asarray(t["x"]), "n": np.ones(len(t["x"]), dtype=np.int64),
            "v": np.asarray(t["v"])}
'''


def group_data(d):
    import pandas as pd
    x = [0.0, -0.0, 1.5, 0.0, -0.0, 2.5, 1.5, -0.0]
    df = pd.DataFrame({"x": x, "v": np.arange(1, len(x) + 1) * 10})
    # "-0.0" written as text: pandas' to_csv keeps the sign
    df.to_csv(os.path.join(d, "g.csv"), index=False)
    assert "-0.0" in open(os.path.join(d, "g.csv")).read()
    write(d, "gfns.py", GROUP_FNS)
    return df


def group_job(d, fn, how, inp, part, name):
    return write(d, f"{name}.ini", f"[job]\nfunction = gfns.py:{fn}\n[input]\n{inp}"
                 f"[partition]\n{part}[workers]\nlocal = 2\n[merge]\nhow = {how}\n"
                 + ("key = x\n" if how == "sum-by-key" else "")
                 + f"[output]\npath = out/{name}.csv\n")


def test_by_float_column_processes_every_row():
    """x = 0.0, -0.0, 1.5 by x: -0.0 is 0.0 (q's =), so its rows are
    processed in the 0.0 group (rows holding -0.0 were left out: 5 of 8);
    the same from a kdb+ db (.qp.distinct on the server)."""
    import pandas as pd
    d = tmpdir()
    df = group_data(d)
    r = qpeach_db_import(d)
    for name, inp in (("file", "table = g\nfile = g.csv\n"), ("db", "db = db\ntable = g\n")):
        run_ok(group_job(d, "count", "concat", inp, "by = column\ncolumn = x\n", name))
        got = pd.read_csv(os.path.join(d, "out", f"{name}.csv"))["x"]
        want = df.groupby("x").size()          # pandas: -0.0 == 0.0 too
        assert got.tolist() == want.tolist(), (name, got.tolist(), want.tolist())
        assert got.sum() == len(df), (name, got.sum(), len(df))


def qpeach_db_import(d):
    from harness import qpeach
    r = qpeach("db", "import", os.path.join(d, "g.csv"), os.path.join(d, "db"), "g",
               "--types", "FJ")
    assert r.returncode == 0, r.stderr
    return r


def test_sum_by_key_float_keys_are_one_group_for_zero():
    """sum-by-key keyed by a float column: 0.0 and -0.0 are one key (they
    were two groups), compared with pandas' groupby."""
    import pandas as pd
    d = tmpdir()
    df = group_data(d)
    run_ok(group_job(d, "keyed", "sum-by-key", "table = g\nfile = g.csv\n", "pieces = 3\n", "k"))
    got = pd.read_csv(os.path.join(d, "out", "k.csv")).set_index("x").sort_index()
    want = df.assign(n=1).groupby("x")[["n", "v"]].sum().sort_index()
    assert got["n"].tolist() == want["n"].tolist() and got["v"].tolist() == want["v"].tolist(), \
        (got, want)
    assert not np.signbit(got.index.values).any(), got.index     # the key is 0.0


def test_output_files_follow_the_umask():
    """Every output format's file is created 0666 less the umask, as q's
    files are (a group-writable umask gives group-writable output)."""
    d = tmpdir()
    for mask in (0o002, 0o022, 0o077):
        for ext in ("csv", "msgpack", "qipc"):
            out = os.path.join(d, "out", f"o{mask:o}.{ext}")
            old = os.umask(mask)
            try:
                run_ok(types_job(d, out, name=f"m{mask:o}{ext}"))
            finally:
                os.umask(old)
            mode = os.stat(out).st_mode & 0o777
            assert mode == 0o666 & ~mask, (ext, oct(mask), oct(mode))
