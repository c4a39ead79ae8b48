"""Asking a `qpeach serve --db` what it holds from a Session (issue 20.1):
tables, count, meta, partitions, get (a partition, some columns, a row
range; reading only what is asked), call and set, checked against pandas
on the CSVs the db was imported from; and the README's example, run as
written."""
import datetime
import os

import numpy as np

import harness
from clientdb import DAYS, client, db_server, frame, run_block, trades_db

kx = client()

_db = {}


def fixture():
    """(db, CSV paths, server), made once for this module."""
    if not _db:
        d = harness.tmpdir()
        db, paths = trades_db(d)
        _db.update(db=db, paths=paths, server=db_server(db))
    return _db["db"], _db["paths"], _db["server"]


def teardown_module():
    if _db:
        _db["server"].stop()


def session():
    return kx.remote.session(port=fixture()[2].port)


def same(got, want, cols):
    """got (a DataFrame) equals pandas' want on cols, nulls alike."""
    assert list(got.columns) == cols, (list(got.columns), cols)
    assert len(got) == len(want), (len(got), len(want))
    for c in cols:
        g, w = got[c].reset_index(drop=True), want[c].reset_index(drop=True)
        assert g.isna().tolist() == w.isna().tolist(), c
        assert g[g.notna()].tolist() == w[w.notna()].tolist(), (c, g.tolist(), w.tolist())


def test_tables_count_meta_partitions():
    db, paths, _ = fixture()
    df = frame(paths)
    s = session()
    assert s.tables() == ["trade"], s.tables()
    assert s.count("trade") == len(df), (s.count("trade"), len(df))
    m = s.meta("trade")
    assert list(m.index) == ["date", "sym", "price", "size"], m
    assert m["t"].tolist() == ["d", "s", "f", "j"], m
    assert m.loc["sym", "a"] == "p" and m.loc["price", "a"] == "", m      # db import gives p#
    days = s.partitions("trade")
    assert days == sorted({d.date() for d in df["date"]}), days
    assert all(type(d) is datetime.date for d in days), days
    s.set("plain", {"x": np.arange(3)})
    assert s.partitions("plain") == [] and s.tables() == ["plain", "trade"], s.tables()
    s.close()


def test_get_a_partition_columns_and_rows_against_pandas():
    db, paths, _ = fixture()
    df = frame(paths)
    s = session()
    same(s.get("trade"), df, ["date", "sym", "price", "size"])
    day = datetime.date(2024, 1, 4)
    want = df[df["date"] == "2024-01-04"]
    for p in (day, "2024.01.04", "2024-01-04", np.datetime64("2024-01-04")):
        same(s.get("trade", partition=p, columns=["size", "sym"]), want, ["size", "sym"])
    # the partition column may be asked for, alone or among others
    same(s.get("trade", columns="date"), df, ["date"])
    same(s.get("trade", partition=day, columns=["price", "date"]), want, ["price", "date"])
    # rows of the table across partitions, and of one partition
    same(s.get("trade", rows=(5, 17)), df.iloc[5:17], ["date", "sym", "price", "size"])
    same(s.get("trade", rows=range(20, 200)), df.iloc[20:], ["date", "sym", "price", "size"])
    same(s.get("trade", partition=day, rows=(2, None), columns=["price"]),
         want.iloc[2:], ["price"])
    # a dict of numpy arrays, and Categoricals when asked
    d = s.get("trade", partition=day, pandas=False)
    assert list(d) == ["date", "sym", "price", "size"] and d["price"].dtype == np.float64, d
    assert np.array_equal(d["size"], want["size"].to_numpy()), d["size"]
    assert s.get("trade", columns="sym")["sym"].dtype == object
    cat = s.get("trade", columns="sym", categorical=True)["sym"]
    assert str(cat.dtype) == "category" and cat.isna().sum() == df["sym"].isna().sum(), cat
    s.close()


def test_get_errors_name_what_is_wrong():
    s = session()
    cases = [(dict(columns=["zz"]), "trade has no column zz (its columns: date, sym, price, size)"),
             (dict(partition="2024.01.07"), "no partition 2024.01.07 (date) for table trade"),
             (dict(partition=5), "a date partition value must be a date, not a long"),
             (dict(partition="2024.01.03", rows=(20, 30)), "rows 20..30 outside 0..11"),
             (dict(rows=(500, 600)), "rows 500..600 outside 0..")]
    for kw, want in cases:
        try:
            s.get("trade", **kw)
        except kx.QError as e:
            assert want in str(e), (kw, str(e))
        else:
            raise AssertionError(f"get(trade, {kw}) must fail with {want}")
    for kw, exc in [(dict(columns=[]), TypeError), (dict(rows=(3, 1)), ValueError),
                    (dict(partition="yesterday"), ValueError), (dict(partition=True), TypeError)]:
        try:
            s.get("trade", **kw)
        except exc:
            pass
        else:
            raise AssertionError(f"get(trade, {kw}) must raise {exc.__name__}")
    s.set("r", {"x": np.arange(4)})
    try:
        s.get("r", partition="2024.01.02")
    except kx.QError as e:
        assert "r is not a partitioned db table" in str(e), str(e)
    else:
        raise AssertionError("a partition of a resident table must fail")
    s.close()


def test_get_opens_only_the_files_asked_for():
    """A partition whose `size` file is gone: what does not read it works
    (other partitions, other columns, rows of other partitions); what
    does fails naming the file. So get opens only what it is asked for."""
    d = harness.tmpdir()
    db, paths = trades_db(d, DAYS[:4])
    gone = os.path.join(db, "2024.01.04", "trade", "size")
    os.rename(gone, gone + ".away")
    df = frame(paths)
    with db_server(db) as srv:
        s = kx.remote.session(port=srv.port)
        same(s.get("trade", partition="2024.01.03"), df[df["date"] == "2024-01-03"],
             ["date", "sym", "price", "size"])
        same(s.get("trade", columns=["sym", "price"]), df, ["sym", "price"])
        n = int((df["date"] < "2024-01-04").sum())
        same(s.get("trade", rows=(0, n)), df.iloc[:n], ["date", "sym", "price", "size"])
        m = int((df["date"] < "2024-01-05").sum())     # rows past the day: its size unread
        same(s.get("trade", rows=(m, None)), df.iloc[m:], ["date", "sym", "price", "size"])
        for kw in (dict(), dict(partition="2024.01.04"), dict(columns="size")):
            try:
                s.get("trade", **kw)
            except kx.QError as e:
                assert "2024.01.04/trade/size" in str(e), (kw, str(e))
            else:
                raise AssertionError(f"get(trade, {kw}) reads the missing file: it must fail")
        s.close()


def test_call_and_set():
    s = session()
    s.set("limits", {"sym": np.array(["AAPL", "IBM"], dtype=object), "cap": np.array([1.5, 2.5])})
    assert s.call(".qp.count", "limits") == 2
    assert "limits" in list(s.call(".qp.tables")) and "limits" in s.tables()
    s.call(".qp.def", "scaled", kx.errors.CharVector(
        "def scaled(x, by=2):\n    return x * by\n"))
    assert s.call("scaled", 21) == 42
    assert s.call("scaled", 21, by=3) == 63
    try:
        s.set("trade", 1)
    except kx.QError as e:
        assert "trade" in str(e), str(e)
    else:
        raise AssertionError("set must refuse a db table's name")
    s.close()


def test_readme_query_example():
    db, paths, srv = fixture()
    df = frame(paths)
    ns = run_block("client-query", [("port=5050", f"port={srv.port}")])
    assert ns["n"] == len(df)
    assert ns["m"].loc["sym", "t"] == "s" and ns["m"].loc["sym", "a"] == "p"
    assert ns["days"] == sorted({d.date() for d in df["date"]})
    same(ns["day"], df[df["date"] == "2024-01-03"], ["sym", "price"])
    first = ns["first"]
    assert np.array_equal(first["price"], df["price"].to_numpy()[:10]), first
    assert ns["capped"]["cap"].tolist() == [1e6, 2e6]
    ns["s"].close()
