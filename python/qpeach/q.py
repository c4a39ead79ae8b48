"""q's analytic functions in numpy: ``qpeach.q``.

Code written for PyKX's ``kx.q.mavg(4, x)`` runs unchanged on a qpeach
worker (or anywhere numpy is): same names, same argument order (the window
or weights first, as in q's ``x mavg y``), and q's rules for windows and
nulls, as the q reference (code.kx.com/q/ref/) documents them.

Nulls, as qpeach maps q's vectors to numpy:
  - float arrays: NaN is null (q's 0n); +-inf are q's 0w / -0w.
  - integer arrays: the dtype's minimum is null (0N, 0Nh, 0Ni), its maximum
    is 0W and minus the maximum is -0W, exactly q's bit patterns.
  - bool and byte arrays have no nulls.
Python lists are accepted (None is a null); results are numpy arrays, or
numpy scalars for aggregates.

Where q's documentation is silent (null arithmetic in ``deltas`` on
integers), a null in an operand gives a null result, as q does for floats.
"""
from typing import Any, Union

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

__all__ = ["mavg", "msum", "mmin", "mmax", "mdev", "mcount", "wavg", "wsum",
           "xbar", "deltas", "ratios", "sums", "prds", "maxs", "mins", "avg",
           "dev", "var", "med", "til"]

# q's epoch (2000.01.01) in numpy's (1970.01.01): xbar on timestamps counts
# from q's epoch, which matters for bars that do not divide a day.
_QEPOCH = np.datetime64("2000-01-01T00:00:00", "ns")


# ---- helpers -------------------------------------------------------------

def _vec(x):
    """x as a 1-d numpy array; a list with None becomes float with NaN, a
    pandas nullable column (a DataFrame column holding q's nulls) its numpy
    dtype with <NA> as q's null."""
    if isinstance(x, np.ndarray):
        a = x
    elif hasattr(x, "to_numpy"):             # pandas Series / Index
        nd = getattr(x.dtype, "numpy_dtype", None)
        if nd is not None and nd.kind in "if" and x.hasnans:
            a = x.to_numpy(dtype=nd, na_value=np.nan if nd.kind == "f" else np.iinfo(nd).min)
        else:
            a = x.to_numpy()
    else:
        a = np.asarray(x)
        if a.dtype == object:
            a = np.array([np.nan if v is None else v for v in a.ravel()], dtype=float)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise TypeError(f"expected a vector, got an array of shape {a.shape}")
    if a.dtype.kind not in "biufmM":
        raise TypeError(f"'type: expected a numeric vector, got dtype {a.dtype}")
    return a


def _isint(a):
    return a.dtype.kind in "iu" and a.dtype != np.uint8


def _nulls(a):
    """Boolean mask of q nulls in a."""
    k = a.dtype.kind
    if k == "f":
        return np.isnan(a)
    if k in "mM":
        return np.isnat(a)
    if k == "i":
        return a == np.iinfo(a.dtype).min
    return np.zeros(a.shape, dtype=bool)


def _inf(a, sign):
    """q's 0W (sign > 0) or -0W for a's type."""
    if a.dtype.kind == "f":
        return a.dtype.type(np.inf if sign > 0 else -np.inf)
    info = np.iinfo(a.dtype)
    return a.dtype.type(info.max if sign > 0 else -info.max)


def _fill(a, value):
    """Copy of a with nulls replaced by value."""
    m = _nulls(a)
    if not m.any():
        return a
    out = a.copy()
    out[m] = value
    return out


def _window(n):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"window must be an int atom, got {type(n).__name__}")
    return int(n)


def _moving_sum(a, n):
    """Sums of the last n items (fewer at the start); a has no nulls."""
    c = np.cumsum(a)
    out = c.copy()
    if n < len(a):
        out[n:] = c[n:] - c[:-n]
    return out


def _moving_reduce(a, n, pad, fn):
    """fn (np.max / np.min) over windows of n items, padded at the start."""
    if len(a) == 0:
        return a.copy()
    p = np.concatenate([np.full(n - 1, pad, dtype=a.dtype), a])
    return fn(sliding_window_view(p, n), axis=1)


# ---- running and moving --------------------------------------------------

def til(n: int) -> np.ndarray:
    """``til n``: 0 1 ... n-1 as int64."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"til expects an int, got {type(n).__name__}")
    return np.arange(int(n), dtype=np.int64)


def sums(x: ArrayLike) -> np.ndarray:
    """Running totals; nulls count as zero (``sums 2 3 0N 7`` is 2 5 5 12)."""
    a = _vec(x)
    if a.dtype == bool:
        a = a.astype(np.int64)
    return np.cumsum(_fill(a, 0), dtype=a.dtype if a.dtype.kind in "if" else None)


def prds(x: ArrayLike) -> np.ndarray:
    """Running products; nulls count as one (``prds 2 3 0N 7`` is 2 6 6 42)."""
    a = _vec(x)
    if a.dtype == bool:
        a = a.astype(np.int64)
    return np.cumprod(_fill(a, 1), dtype=a.dtype if a.dtype.kind in "if" else None)


def maxs(x: ArrayLike) -> np.ndarray:
    """Running maximums; nulls ignored, initial nulls give -0W."""
    a = _vec(x)
    if a.dtype.kind not in "if" or a.dtype == np.uint8:
        return np.maximum.accumulate(a)
    return np.maximum.accumulate(_fill(a, _inf(a, -1)))


def mins(x: ArrayLike) -> np.ndarray:
    """Running minimums; nulls ignored, initial nulls give 0W."""
    a = _vec(x)
    if a.dtype.kind not in "if" or a.dtype == np.uint8:
        return np.minimum.accumulate(a)
    return np.minimum.accumulate(_fill(a, _inf(a, 1)))


def deltas(x: ArrayLike) -> np.ndarray:
    """Differences of adjacent items, the first item less 0."""
    a = _vec(x)
    if a.dtype == bool:
        a = a.astype(np.int64)
    out = np.empty_like(a)
    if len(a) == 0:
        return out
    out[0] = a[0]
    out[1:] = a[1:] - a[:-1]
    if _isint(a):
        m = _nulls(a)
        if m.any():
            null = np.iinfo(a.dtype).min
            out[m] = null
            out[1:][m[:-1]] = null
    return out


def ratios(x: ArrayLike) -> np.ndarray:
    """Ratios of adjacent items, the first over 1; a float vector."""
    a = _vec(x)
    f = a.astype(np.float64)
    if _isint(a):
        f[_nulls(a)] = np.nan
    out = np.empty_like(f)
    if len(f):
        out[0] = f[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[1:] = f[1:] / f[:-1]
    return out


def mcount(n: int, x: ArrayLike) -> np.ndarray:
    """Moving counts of the non-null items in windows of n."""
    n = _window(n)
    a = _vec(x)
    ok = (~_nulls(a)).astype(np.int64)
    if n <= 0:
        return np.zeros(len(a), dtype=np.int64)
    return _moving_sum(ok, n)


def msum(n: int, x: ArrayLike) -> np.ndarray:
    """Moving sums over windows of n; nulls count as zero."""
    n = _window(n)
    a = _vec(x)
    if a.dtype == bool:
        a = a.astype(np.int64)
    a = _fill(a, 0)
    if n <= 0:
        return np.zeros_like(a)
    return _moving_sum(a, n)


def mavg(n: int, x: ArrayLike) -> np.ndarray:
    """Moving averages over windows of n, ignoring nulls: q's
    ``msum[n; 0^x] % mcount[n; x]``. ``5 mavg 0N 2 0N 5 7 0N`` is
    0n 2 2 3.5 4.666667 4.666667; ``0 mavg 2 3`` is 0n 0n."""
    n = _window(n)
    a = _vec(x)
    if n <= 0:
        return np.full(len(a), np.nan)
    s = _moving_sum(_fill(a, 0).astype(np.float64), n)
    c = mcount(n, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        return s / c


def mdev(n: int, x: ArrayLike) -> np.ndarray:
    """Moving (population) standard deviations over windows of n, nulls
    ignored: sqrt of mavg of squares less the squared mavg."""
    n = _window(n)
    a = _vec(x)
    m = _nulls(a)
    f = a.astype(np.float64)
    f[m] = np.nan
    if n <= 0:
        return np.full(len(f), np.nan)
    # Shift by the mean first: variance does not change, and the moving sums
    # of squares keep their precision on large values.
    if (~m).any():
        f = f - np.nanmean(f)
    z = np.where(m, 0.0, f)
    c = _moving_sum((~m).astype(np.float64), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = _moving_sum(z, n) / c
        v = _moving_sum(z * z, n) / c - mu * mu
    return np.sqrt(np.maximum(v, 0.0, where=~np.isnan(v), out=v))


def mmax(n: int, x: ArrayLike) -> np.ndarray:
    """Moving maximums over windows of n; nulls count as -0W, so a window
    of nulls gives -0W and later nulls take the preceding maximum."""
    n = _window(n)
    a = _vec(x)
    if n <= 0:
        return a.copy()
    if a.dtype.kind in "if" and a.dtype != np.uint8:
        lo = _inf(a, -1)
        return _moving_reduce(_fill(a, lo), n, lo, np.max)
    lo = np.iinfo(a.dtype).min if a.dtype.kind in "iu" else False
    return _moving_reduce(a, n, lo, np.max)


def mmin(n: int, x: ArrayLike) -> np.ndarray:
    """Moving minimums over windows of n; a null is the minimum value, so
    any window holding a null gives null."""
    n = _window(n)
    a = _vec(x)
    if n <= 0:
        return a.copy()
    if a.dtype.kind == "f":
        nul = _nulls(a)
        out = _moving_reduce(_fill(a, np.inf), n, np.inf, np.min)
        hit = _moving_sum(nul.astype(np.int64), n) > 0
        out[hit] = np.nan
        return out
    # Integer nulls are the dtype minimum already: a plain minimum is q's.
    hi = np.iinfo(a.dtype).max if a.dtype.kind in "iu" else True
    return _moving_reduce(a, n, hi, np.min)


# ---- aggregates ----------------------------------------------------------

def _valid_float(x):
    a = _vec(x)
    f = a.astype(np.float64)
    return f[~_nulls(a)]


def avg(x: ArrayLike) -> np.float64:
    """Arithmetic mean as a float, nulls ignored; empty gives 0n."""
    f = _valid_float(x)
    if len(f) == 0:
        return np.float64(np.nan)
    with np.errstate(invalid="ignore"):
        return np.float64(f.sum() / len(f))


def var(x: ArrayLike) -> np.float64:
    """Population variance, nulls ignored."""
    f = _valid_float(x)
    if len(f) == 0:
        return np.float64(np.nan)
    mu = f.mean()
    return np.float64(((f - mu) ** 2).mean())


def dev(x: ArrayLike) -> np.float64:
    """Population standard deviation: ``sqrt var x``."""
    return np.float64(np.sqrt(var(x)))


def med(x: ArrayLike) -> np.float64:
    """Median, as q defines it: ``{avg x (iasc x)@floor .5*-1 0+count x}``.
    Nulls sort first (q's order) and the final avg ignores them."""
    a = _vec(x)
    nn = len(a)
    if nn == 0:
        return np.float64(np.nan)
    m = _nulls(a)
    f = a.astype(np.float64)
    f[m] = np.nan
    body = np.sort(f[~m])
    s = np.concatenate([np.full(int(m.sum()), np.nan), body])
    pick = s[[int(np.floor(0.5 * (nn - 1))), int(np.floor(0.5 * nn))]]
    pick = pick[~np.isnan(pick)]
    return np.float64(pick.mean()) if len(pick) else np.float64(np.nan)


def wsum(w: ArrayLike, x: ArrayLike) -> Any:
    """Weighted sum ``sum w*x``; nulls count as zero."""
    wa, xa = _vec(w), _vec(x)
    wa, xa = _fill(wa, 0), _fill(xa, 0)
    wa, xa = np.broadcast_arrays(wa, xa)
    r = (wa * xa).sum()
    return r


def wavg(w: ArrayLike, x: ArrayLike) -> np.float64:
    """Weighted average ``(sum w*x) % sum w`` over pairs where neither is
    null (``2 0N 4 5 wavg 1 2 0N 8`` is 6f)."""
    wa, xa = np.broadcast_arrays(_vec(w), _vec(x))
    ok = ~(_nulls(wa) | _nulls(xa))
    wf, xf = wa[ok].astype(np.float64), xa[ok].astype(np.float64)
    den = wf.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float64((wf * xf).sum() / den)


def xbar(x: Union[int, float, np.timedelta64], y: ArrayLike) -> Any:
    """y rounded down to the nearest multiple of x (``3 xbar til 16`` is
    0 0 0 3 3 3 ...). Temporal y takes a timedelta64 x (or an int in y's
    unit); timestamps count from q's epoch 2000.01.01. Nulls stay null."""
    scalar = np.ndim(y) == 0
    a = _vec(y)
    k = a.dtype.kind
    if k == "M":
        unit = np.datetime_data(a.dtype)[0]
        step = np.timedelta64(x, unit) if not isinstance(x, np.timedelta64) else x
        base = _QEPOCH.astype(a.dtype)
        d = (a - base)
        q = (d // step) * step
        out = (base + q).astype(a.dtype)
        out[np.isnat(a)] = np.datetime64("NaT")
    elif k == "m":
        unit = np.datetime_data(a.dtype)[0]
        step = np.timedelta64(x, unit) if not isinstance(x, np.timedelta64) else x
        out = ((a // step) * step).astype(a.dtype)
        out[np.isnat(a)] = np.timedelta64("NaT")
    elif _isint(a) and float(x) == int(x):
        xi = a.dtype.type(int(x))
        out = (a // xi) * xi if xi else a.copy()
        m = _nulls(a)
        out[m] = a[m]
    else:
        f = a.astype(np.float64)
        out = np.floor(f / x) * x if x else f.copy()
    return out[0] if scalar else out


class _QModule(type(np)):
    """qpeach.q as a module that answers a call: PyKX code's kx.q('...')
    evaluates q, which qpeach never does."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        code = repr(args[0]) if args else "..."
        raise NotImplementedError(
            f"kx.q({code}): qpeach evaluates no q (there is no q interpreter in qpeach or its "
            f"servers). For q's functions in numpy call kx.q.NAME(...) ({', '.join(__all__)}); "
            f"to ask a server what it holds use session.tables(), .count(t), .meta(t), "
            f".partitions(t), .get(t, partition, columns, rows); to run Python there, "
            f"@kx.remote.function(session) or session.call(name, *args)")


def _by_name(m):
    """Pickled (dill ships functions that use kx.q) as the import of its
    name, as a plain module is."""
    import importlib
    return importlib.import_module, (m.__name__,)


import copyreg as _copyreg                              # noqa: E402
import sys as _sys                                      # noqa: E402

_sys.modules[__name__].__class__ = _QModule
_copyreg.pickle(_QModule, _by_name)
