#!/usr/bin/python3
"""Sample trade data for qpeach jobs: sym, price, size (CSV with a header).

  gen_trades.py --rows 10000000 --out data/trades.csv
  gen_trades.py --rows 300000 --days 3 --dir data/daily   # one file per day
  gen_trades.py --rows 3000000 --days 5 --out data/dated.csv --dated
      # one file with a leading date column (2024.01.01 ...), for
      # `qpeach db import data/dated.csv data/db trade --partition date`

Deterministic for a given --seed, so tests can recompute the answer with
numpy. Uses Debian's python3 + numpy only.
"""
import argparse
import os
import sys

import numpy as np

SYMS = np.array(["AAPL", "AMZN", "GOOG", "IBM", "MSFT", "NVDA", "ORCL", "TSLA",
                 "INTC", "CSCO", "ADBE", "CRM", "AMD", "QCOM", "TXN", "AVGO"])


def make(rows, seed):
    rng = np.random.default_rng(seed)
    sym = SYMS[rng.integers(0, len(SYMS), rows)]
    base = 50.0 + 10.0 * np.arange(len(SYMS))
    idx = np.searchsorted(np.sort(SYMS), sym)
    price = np.round(base[idx] * (1 + 0.02 * rng.standard_normal(rows)), 2)
    size = rng.integers(1, 1000, rows)
    return sym, price, size


def write(path, sym, price, size, chunk=1_000_000, date=None):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("date,sym,price,size\n" if date is not None else "sym,price,size\n")
        for a in range(0, len(sym), chunk):
            b = min(a + chunk, len(sym))
            # Formatting in numpy, one string per row, is much faster than
            # csv.writer for millions of rows.
            px = np.char.mod("%.2f", price[a:b])
            sz = size[a:b].astype(str)
            lines = np.char.add(np.char.add(np.char.add(sym[a:b], ","), np.char.add(px, ",")), sz)
            if date is not None:
                lines = np.char.add(date[a:b], lines)
            f.write("\n".join(lines.tolist()))
            f.write("\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", help="one CSV file")
    ap.add_argument("--days", type=int, default=0, help="split into this many daily files")
    ap.add_argument("--dir", help="folder for the daily files")
    ap.add_argument("--dated", action="store_true",
                    help="with --out and --days: a leading date column, rows spread over the days")
    a = ap.parse_args()
    sym, price, size = make(a.rows, a.seed)
    if a.days and a.dir:
        os.makedirs(a.dir, exist_ok=True)
        edges = np.linspace(0, a.rows, a.days + 1).astype(int)
        for d in range(a.days):
            s, e = edges[d], edges[d + 1]
            write(os.path.join(a.dir, "2024.01.%02d.csv" % (d + 1)), sym[s:e], price[s:e], size[s:e])
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        date = None
        if a.dated:
            day = np.minimum(np.arange(a.rows) * max(a.days, 1) // max(a.rows, 1), max(a.days, 1) - 1)
            date = np.char.add(np.char.mod("2024.01.%02d", day + 1), ",")
        write(a.out, sym, price, size, date=date)
    if not a.out and not a.days:
        ap.error("give --out and/or --days with --dir")
    return 0


if __name__ == "__main__":
    sys.exit(main())
