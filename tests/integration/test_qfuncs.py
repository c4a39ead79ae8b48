"""qpeach.q against the q reference: every expected value below is the
output printed on the page cited next to it (code.kx.com/q/ref/...).
No server needed: these are the numpy functions a worker runs."""
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

from qpeach import q  # noqa: E402

NJ = np.iinfo(np.int64).min        # 0N (long null)
WJ = np.iinfo(np.int64).max        # 0W
nan = np.nan


def J(*xs):
    return np.array(xs, dtype=np.int64)


def same(got, want, tol=5e-7):
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != {want.shape}: {got} vs {want}")
    if want.dtype.kind == "f" or got.dtype.kind == "f":
        g, w = got.astype(float), want.astype(float)
        with np.errstate(invalid="ignore"):
            ok = (np.isnan(g) & np.isnan(w)) | (g == w) | (np.abs(g - w) <= tol * np.maximum(1, np.abs(w)))
        if not ok.all():
            raise AssertionError(f"{got} != {want}")
    elif not np.array_equal(got, want):
        raise AssertionError(f"{got} != {want}")


def test_pykx_walkthrough_value():
    # issue 5: kx.q.mavg(4, np.linspace(x, y, z)) with 0, 10, 10
    same(q.mavg(4, np.linspace(0, 10, 10))[:5], [0, 0.5555556, 1.111111, 1.666667, 2.777778])


def test_mavg():
    # https://code.kx.com/q/ref/avg/#mavg
    same(q.mavg(2, [1, 2, 3, 5, 7, 10]), [1, 1.5, 2.5, 4, 6, 8.5])
    same(q.mavg(5, [1, 2, 3, 5, 7, 10]), [1, 1.5, 2, 2.75, 3.6, 5.4])
    same(q.mavg(5, J(NJ, 2, NJ, 5, 7, NJ)), [nan, 2, 2, 3.5, 4.666667, 4.666667])
    same(q.mavg(0, [2, 3]), [nan, nan])
    # float nulls behave as long nulls
    same(q.mavg(5, [nan, 2, nan, 5, 7, nan]), [nan, 2, 2, 3.5, 4.666667, 4.666667])


def test_msum():
    # https://code.kx.com/q/ref/sum/#msum
    same(q.msum(3, J(1, 2, 3, 5, 7, 11)), J(1, 3, 6, 10, 15, 23))
    same(q.msum(3, J(NJ, 2, 3, 5, NJ, 11)), J(0, 2, 5, 10, 8, 16))


def test_mcount():
    # https://code.kx.com/q/ref/count/#mcount
    same(q.mcount(3, J(0, 1, 2, 3, 4, 5)), J(1, 2, 3, 3, 3, 3))
    same(q.mcount(3, J(NJ, 1, 2, 3, NJ, 5)), J(0, 1, 2, 3, 2, 2))


def test_mdev():
    # https://code.kx.com/q/ref/dev/#mdev
    same(q.mdev(2, [1, 2, 3, 5, 7, 10]), [0, 0.5, 0.5, 1, 1, 1.5])
    same(q.mdev(5, [1, 2, 3, 5, 7, 10]), [0, 0.5, 0.8164966, 1.47902, 2.154066, 2.87054], tol=2e-6)
    same(q.mdev(5, J(NJ, 2, NJ, 5, 7, NJ)), [nan, 0, 0, 1.5, 2.054805, 2.054805], tol=2e-6)


def test_mmax_mmin():
    # https://code.kx.com/q/ref/max/#mmax
    same(q.mmax(3, J(2, 7, 1, 3, 5, 2, 8)), J(2, 7, 7, 7, 5, 5, 8))
    same(q.mmax(3, J(NJ, -3, -2, NJ, 1, 0)), J(-WJ, -3, -2, -2, 1, 1))
    # https://code.kx.com/q/ref/min/#mmin
    same(q.mmin(3, J(NJ, -3, -2, 1, -WJ, 0)), J(NJ, NJ, NJ, -3, -WJ, -WJ))
    same(q.mmin(3, J(NJ, -3, -2, 1, NJ, -WJ)), J(NJ, NJ, NJ, -3, NJ, NJ))
    same(q.mmin(3, [nan, -3, -2, 1, nan, -np.inf]), [nan, nan, nan, -3, nan, nan])


def test_running():
    # https://code.kx.com/q/ref/sum/#sums
    same(q.sums(J(2, 3, 5, 7)), J(2, 5, 10, 17))
    same(q.sums(J(2, 3, NJ, 7)), J(2, 5, 5, 12))
    # https://code.kx.com/q/ref/prd/#prds
    same(q.prds(J(2, 3, 5, 7)), J(2, 6, 30, 210))
    same(q.prds(J(2, 3, NJ, 7)), J(2, 6, 6, 42))
    # https://code.kx.com/q/ref/max/#maxs
    same(q.maxs(J(2, 5, 7, 1, 3)), J(2, 5, 7, 7, 7))
    same(q.maxs(J(NJ, 5, NJ, 1, 3)), J(-WJ, 5, 5, 5, 5))
    # https://code.kx.com/q/ref/min/#mins
    same(q.mins(J(2, 5, 7, 1, 3)), J(2, 2, 2, 1, 1))
    same(q.mins(J(NJ, 5, NJ, 1, 3)), J(WJ, 5, 5, 1, 1))


def test_deltas_ratios():
    # https://code.kx.com/q/ref/deltas/
    same(q.deltas(J(1, 4, 9, 16)), J(1, 3, 5, 7))
    # https://code.kx.com/q/ref/ratios/ (first predecessor is 1)
    same(q.ratios([2000, 2005, 2007, 2012, 2020]), [2000, 1.0025, 1.000998, 1.002491, 1.003976])
    # table example on the same page: column a 10 21 3
    same(q.ratios([10, 21, 3]), [10, 2.1, 0.1428571])


def test_aggregates():
    # https://code.kx.com/q/ref/avg/#avg
    same(q.avg([1, 2, 3]), 2.0)
    same(q.avg([1, nan, 2, 3]), 2.0)
    same(q.avg([1.0, np.inf]), np.inf)
    same(q.avg([-np.inf, np.inf]), nan)
    same(q.avg(np.array([1, 0, 1], dtype=bool)), 0.6666667)
    # https://code.kx.com/q/ref/dev/
    same(q.dev([10, 343, 232, 55]), 134.3484, tol=1e-6)
    # https://code.kx.com/q/ref/var/  (var is dev squared)
    same(q.var([10, 343, 232, 55]), 134.34842760523847 ** 2)
    same(q.var([2, 3, 5, 7]), 3.6875)
    # https://code.kx.com/q/ref/med/
    same(q.med([10, 34, 23, 123, 5, 56]), 28.5)
    same(q.med([1, 2, 3]), 2.0)


def test_weighted():
    # https://code.kx.com/q/ref/avg/#wavg
    same(q.wavg([2, 3, 4], [1, 2, 4]), 2.666667)
    same(q.wavg(J(2, NJ, 4, 5), J(1, 2, NJ, 8)), 6.0)
    # https://code.kx.com/q/ref/sum/#wsum
    same(q.wsum([2, 3, 4], [1, 2, 4]), 24)
    same(q.wsum(2, [1, 2, 4]), 14)
    # a DataFrame column holding q's nulls (pandas' nullable Int64): the same
    import pandas as pd
    same(q.wavg(pd.Series([2, None, 4, 5], dtype="Int64"), pd.Series([1, 2, None, 8], dtype="Int64")), 6.0)
    same(q.msum(2, pd.Series([1, None, 3], dtype="Int64")), J(1, 1, 3))


def test_xbar_til():
    # https://code.kx.com/q/ref/xbar/
    same(q.xbar(3, q.til(16)), J(0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 9, 9, 12, 12, 12, 15))
    mins = np.array(["2020-01-01T11:00"], dtype="datetime64[m]") + np.array([0, 2, 3, 5, 7, 11, 13])
    want = np.array(["2020-01-01T11:00"], dtype="datetime64[m]") + np.array([0, 0, 0, 5, 5, 10, 10])
    same(q.xbar(np.timedelta64(5, "m"), mins).astype(np.int64), want.astype(np.int64))
    # https://code.kx.com/q/ref/til/
    same(q.til(5), J(0, 1, 2, 3, 4))
    same(q.til(0), J())


def test_types_rejected():
    for bad in (lambda: q.mavg(2.5, [1, 2]), lambda: q.til("3"), lambda: q.avg(["a", "b"])):
        try:
            bad()
        except TypeError:
            continue
        raise AssertionError("expected TypeError")
