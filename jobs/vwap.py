"""VWAP by sym, in two steps so it can be split over partitions.

vwap_parts runs on each partition and returns, per sym, the two sums VWAP
needs; the scheduler adds those by sym ([merge] how = sum-by-key), and
finish turns the totals into the VWAP on one worker.
"""
import numpy as np


def vwap_parts(t):
    sym = t['sym']
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
    size = np.asarray(t['size'])
    # price * size in one pass, the int sizes cast as they are read (no
    # float copy of the column first); bincount converts its own weights.
    pv = np.bincount(inv, weights=np.multiply(t['price'], size, dtype=float), minlength=len(names))
    vol = np.bincount(inv, weights=size, minlength=len(names))
    used = vol != 0    # syms with no volume here: none traded, or a VWAP undefined
    return {'sym': names[used], 'pv': pv[used], 'size': vol[used]}


def finish(t):
    sym = np.asarray(t['sym']).astype(str)
    order = np.argsort(sym, kind='stable')
    pv = np.asarray(t['pv'], dtype=float)[order]
    size = np.asarray(t['size'], dtype=float)[order]
    return {'sym': sym[order], 'vwap': pv / size, 'size': size}
