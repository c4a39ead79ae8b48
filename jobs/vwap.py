"""VWAP by sym, in two steps so it can be split over partitions.

vwap_parts runs on each partition and returns, per sym, the two sums VWAP
needs; the scheduler adds those by sym ([merge] how = sum-by-key), and
finish turns the totals into the VWAP on one worker.

Nulls: a trade whose price, size or sym is null (an empty CSV field) counts
for nothing, as pandas' sums skip NaN and its groupby skips a NaN key. On
the numpy path q's nulls arrive as q's values (a long null is the int64
minimum, a float null NaN, the null symbol ''), so they are masked here.
"""
import numpy as np


def _has_null(a):
    """Whether the numbers in a hold a null, in one pass and no copy: a NaN
    (the sum is NaN; an inf - inf sum only takes the slow path), q's integer
    null (the dtype's minimum), pandas' <NA>."""
    if hasattr(a, "hasnans"):                   # a pandas column
        return bool(a.hasnans)
    a = np.asarray(a)
    if not len(a):
        return False
    if a.dtype.kind == "f":
        return bool(np.isnan(a.sum()))
    return a.dtype.kind == "i" and a.min() == np.iinfo(a.dtype).min


def _present(a):
    """Where the numbers in a are not null (see _has_null)."""
    if hasattr(a, "isna"):
        return ~np.asarray(a.isna())
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return ~np.isnan(a)
    if a.dtype.kind == "i":
        return a != np.iinfo(a.dtype).min
    return np.ones(len(a), dtype=bool)


def _floats(a):
    """a as float64 (pandas' <NA> as 0: masked out anyway)."""
    if hasattr(a, "to_numpy"):
        return a.to_numpy(dtype=float, na_value=0.0)
    return np.asarray(a, dtype=float)


def vwap_parts(t):
    sym = t['sym']
    pandas = hasattr(sym, 'cat')
    if pandas:                  # a DataFrame's column: its Categorical (NaN: code -1)
        sym = sym.array
    if hasattr(sym, 'codes'):
        # a pandas Categorical ([job] symbols = categorical) or SymbolCodes
        # (symbols = codes): the codes already number the syms, so no
        # string is compared or sorted. Its categories are the whole
        # enumeration domain (a kdb+ db's `sym`), so names this partition
        # does not trade are dropped below.
        names = np.asarray(sym.categories).astype(str)
        inv = np.asarray(sym.codes)
    else:
        names, inv = np.unique(np.asarray(sym).astype(str), return_inverse=True)
    size, price = t['size'], t['price']
    # integer sizes (q's long column, pandas' int64 or Int64) total as longs,
    # as q's sum gives them; bincount's float sums are exact below 2^53
    whole = str(getattr(size, 'dtype', '')).lower().startswith(('int', 'uint'))
    if _has_null(size) or _has_null(price) or (pandas and len(inv) and inv.min() < 0):
        # only then a copy: null rows weigh nothing (sum-by-key adds zeros)
        ok = _present(size) & _present(price) & (inv >= 0)
        inv = np.where(ok, inv, 0)
        size = np.where(ok, _floats(size), 0.0)
        price = np.where(ok, _floats(price), 0.0)
    # price * size in one pass, the int sizes cast as they are read (no
    # float copy of the column first); bincount converts its own weights.
    pv = np.bincount(inv, weights=np.multiply(price, size, dtype=float), minlength=len(names))
    vol = np.bincount(inv, weights=size, minlength=len(names))
    # syms with no volume here (none traded, or a VWAP undefined), and the
    # null sym (pandas' groupby leaves a missing key out too)
    used = (vol != 0) & (names != '')
    return {'sym': names[used], 'pv': pv[used],
            'size': vol[used].astype(np.int64) if whole else vol[used]}


def finish(t):
    sym = np.asarray(t['sym']).astype(str)
    order = np.argsort(sym, kind='stable')
    pv = np.asarray(t['pv'], dtype=float)[order]
    size = np.asarray(t['size'])[order]
    return {'sym': sym[order], 'vwap': pv / size, 'size': size}
