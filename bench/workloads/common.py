"""Shared by every peer script: the data, the three workload functions, the
partitions, the merge and the equality check, so that every contender runs
exactly the same code on exactly the same rows.

Data: a trade table of N rows sorted by sym, as kdb+ keeps a parted table:
    sym    int32   100 syms, N/100 rows each, contiguous (sym codes, not
                   strings: the workloads measure the fan-out, not symbol
                   conversion; bench_codec measures symbols)
    price  float64 uniform 10..200, in cents
    size   int64   1..10000
20 bytes per row. Partitions: P contiguous row ranges from
numpy.linspace(0, N, P+1) -- with P dividing 100 and N a multiple of 100*P
every range holds whole syms, so the per-sym rolling mean of a partition is
the rolling mean of the whole table (and so is the Python client's
`fanout(table='trade', pieces=P)`, which cuts the same ranges).

Workload functions take one partition as a dict of numpy arrays (the form
qpeach hands a table to Python) and return a partial result; merge() sums
the partials; final() turns the sum into the answer that is compared.
They are defined from FUNCS_SRC so that qpeach receives the very same source
text (.qp.def) that the Python peers exec.
"""
import os
import resource

import numpy as np

NSYM = 100
PIECES = 10
SEED = 20240607

FUNCS_SRC = '''
def vwap_part(t):
    import numpy as np
    s = t["sym"]
    z = t["size"]
    pv = np.bincount(s, weights=t["price"] * z, minlength=100)
    v = np.bincount(s, weights=z, minlength=100)
    return np.concatenate([pv, v])


def rolling_part(t):
    import numpy as np
    import pandas as pd
    df = pd.DataFrame({"sym": t["sym"], "price": t["price"]})
    r = df.groupby("sym")["price"].rolling(20).mean()
    syms = r.index.get_level_values(0).to_numpy()
    vals = r.to_numpy()
    ok = ~np.isnan(vals)
    return np.concatenate([np.bincount(syms[ok], weights=vals[ok], minlength=100),
                           np.bincount(syms[ok], minlength=100).astype(np.float64)])


def cpu_part(t):
    acc = 0
    for z in t["size"].tolist():
        acc += ((z * 2654435761 + 12345) % 4294967291) % 1009
    return acc


def nop(x):
    return x
'''

_ns = {}
exec(compile(FUNCS_SRC, "<bench funcs>", "exec"), _ns)
FUNCS = {"vwap": _ns["vwap_part"], "rolling": _ns["rolling_part"], "cpu": _ns["cpu_part"]}
FUNC_NAMES = {"vwap": "vwap_part", "rolling": "rolling_part", "cpu": "cpu_part"}
nop = _ns["nop"]
WORKLOADS = ("vwap", "rolling", "cpu")


def make_table(n):
    """The trade table of n rows (n a multiple of NSYM * PIECES)."""
    if n % (NSYM * PIECES):
        raise ValueError(f"rows must be a multiple of {NSYM * PIECES}")
    rng = np.random.default_rng(SEED)
    return {
        "sym": np.repeat(np.arange(NSYM, dtype=np.int32), n // NSYM),
        "price": np.round(rng.uniform(10, 200, n), 2),
        "size": rng.integers(1, 10_001, n, dtype=np.int64),
    }


def data_bytes(t):
    return int(sum(v.nbytes for v in t.values()))


def bounds(n, pieces=PIECES):
    b = np.linspace(0, n, pieces + 1).astype(np.int64)
    return list(zip(b[:-1].tolist(), b[1:].tolist()))


def part(t, a, b):
    return {c: v[a:b] for c, v in t.items()}


def merge(partials):
    acc = partials[0]
    for p in partials[1:]:
        acc = acc + p
    return acc


def final(workload, merged):
    """The answer compared between contenders, as a list (JSON-able)."""
    if workload == "vwap":
        m = np.asarray(merged, dtype=np.float64)
        return (m[:NSYM] / m[NSYM:]).tolist()
    if workload == "rolling":
        m = np.asarray(merged, dtype=np.float64)
        return (m[:NSYM] / m[NSYM:]).tolist() + m[NSYM:].tolist()
    return [int(merged)]


def same(a, b, rtol=1e-9):
    """Equal results: integers exactly, floats to rtol (the order of a
    float sum differs between one process and partitions)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return bool((a == b).all())
    return bool(np.allclose(a, b, rtol=rtol, atol=0, equal_nan=True))


def peak_kb_self():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_kb_children():
    """Largest peak RSS among waited-for children (Linux: a maximum, not a sum)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def tree_pids(root):
    """root and all its descendants, from /proc."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def hwm_kb(pid):
    """VmHWM (peak RSS) of a live process, in kB (0 when gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_hwm_kb(root):
    """Sum of the peaks of a process tree (overcounts pages shared between
    the processes, such as a table inherited by fork)."""
    return sum(hwm_kb(p) for p in tree_pids(root))
