#!/usr/bin/python3
"""bench/plot.py RESULTS.csv MODE - PNG plots of one harness run
(python3-matplotlib), written beside the CSV as <MODE>-<plot>.png:

  workloads  speedup over numpy in one process, per workload and contender
             ("n/a" marks a contender not available in this build)
  latency    p50 and p99 of each call path next to its socket floor
  codec      throughput in GB/s, qpeach and node-q, against memcpy
  overhead   microseconds per task of a 10,000-task fan-out
  growth     ns per row and peak bytes per row as rows grow (vwap)
"""
import csv
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt   # noqa: E402
import numpy as np                # noqa: E402


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def load(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def save(fig, out, name):
    fig.tight_layout()
    fig.savefig(f"{out}-{name}.png", dpi=110)
    plt.close(fig)


def workloads(rows, out, title):
    rs = [r for r in rows if r["section"] == "workload" and r["contender"] != "all"]
    cases = list(dict.fromkeys(r["case"] for r in rs))
    who = list(dict.fromkeys(r["contender"] for r in rs))
    if not cases:
        return
    fig, ax = plt.subplots(figsize=(14, 0.9 + 0.55 * len(cases) * len(who) / 3))
    h = 0.8 / len(who)
    cmap = plt.get_cmap("tab20")
    for j, w in enumerate(who):
        ys, vals, labels = [], [], []
        for i, c in enumerate(cases):
            r = next((x for x in rs if x["case"] == c and x["contender"] == w), None)
            y = i + j * h
            v = num(r["ratio"]) if r else None
            ys.append(y)
            vals.append(v or 0)
            labels.append("n/a" if r is not None and v is None else "")
        ax.barh(ys, vals, height=h, color=cmap(j % 20), label=w)
        for y, v, lab in zip(ys, vals, labels):
            ax.text(max(v, 0) + 0.02, y, lab or f"{v:.2f}", va="center", fontsize=7)
    ax.axvline(1, color="k", lw=0.8, ls="--")
    ax.set_yticks([i + 0.4 - h / 2 for i in range(len(cases))])
    ax.set_yticklabels(cases)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up over numpy in one process (same run, same data; > 1 is faster)")
    ax.set_title(f"Workloads: {title}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    save(fig, out, "workloads")


def latency(rows, out, title):
    rs = [r for r in rows if r["section"] == "latency" and "memcpy" not in r["contender"]]
    keys = list(dict.fromkeys((r["case"], r["contender"]) for r in rs))
    if not keys:
        return
    p50 = [num(next(r["value"] for r in rs if (r["case"], r["contender"]) == k and r["metric"] == "p50"))
           for k in keys]
    p99 = [num(next(r["value"] for r in rs if (r["case"], r["contender"]) == k and r["metric"] == "p99"))
           for k in keys]
    fig, ax = plt.subplots(figsize=(10, 0.8 + 0.32 * len(keys)))
    y = np.arange(len(keys))
    floor = ["ping-pong" in k[1] for k in keys]
    ax.barh(y - 0.2, p50, height=0.4, color=["#999999" if f else "#1f77b4" for f in floor], label="p50")
    ax.barh(y + 0.2, p99, height=0.4, color=["#cccccc" if f else "#ff7f0e" for f in floor], label="p99")
    for yi, a, b in zip(y, p50, p99):
        ax.text(b + 0.5, yi + 0.2, f"{a:.1f} / {b:.1f}", va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{c}: {w}" for c, w in keys], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("round trip, µs (log; grey = bare socket floor of the same bytes)")
    ax.set_title(f"Call latency p50 / p99: {title}")
    ax.legend(fontsize=7)
    save(fig, out, "latency")


def codec(rows, out, title):
    rs = [r for r in rows if r["section"] == "codec" and r["contender"] in ("qpeach", "node-q")
          and r["status"] == "ok" and "zero-copy" not in r["metric"]]
    if not rs:
        return
    cases = list(dict.fromkeys((r["case"], r["metric"]) for r in rs))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(cases))
    for j, (who, col) in enumerate((("qpeach", "#1f77b4"), ("node-q", "#2ca02c"))):
        v = []
        for c in cases:
            r = next((r for r in rs if (r["case"], r["metric"]) == c and r["contender"] == who), None)
            v.append(num(r["ratio"]) if r else 0)
        ax.bar(x + (j - 0.5) * 0.4, v, width=0.4, color=col, label=who)
    ax.axhline(1, color="k", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{c}\n{m}" for c, m in cases], fontsize=8)
    ax.set_ylabel("speed relative to memcpy of the same bytes (log; 1 = memcpy)")
    ax.set_title(f"Codec throughput: {title}")
    ax.legend(fontsize=8)
    save(fig, out, "codec")


def overhead(rows, out, title):
    rs = [r for r in rows if r["section"] == "overhead"]
    if not rs:
        return
    fig, ax = plt.subplots(figsize=(9, 0.8 + 0.35 * len(rs)))
    y = np.arange(len(rs))
    v = [num(r["value"]) or 0 for r in rs]
    ax.barh(y, v, color="#9467bd")
    for yi, r, vi in zip(y, rs, v):
        ax.text(vi * 1.05 if vi else 1, yi, f"{vi:.1f} µs" if vi else r["status"], va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels([r["contender"] for r in rs], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("µs per task, 10,000 tasks of an empty function (log)")
    ax.set_title(f"Per-task overhead: {title}")
    save(fig, out, "overhead")


def growth(rows, out, title):
    rs = [r for r in rows if r["section"] == "growth" and r["case"] == "vwap"]
    if not rs:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    data_bpr = None
    for who in dict.fromkeys(r["contender"] for r in rs):
        for ax, metric in ((a1, "ns/row"), (a2, "peak bytes/row")):
            pts = sorted((int(r["note"]), num(r["value"])) for r in rs
                         if r["contender"] == who and r["metric"] == metric)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=who)
            if metric == "peak bytes/row":
                data_bpr = next(num(r["baseline"]) for r in rs if r["metric"] == metric)
    if data_bpr:
        a2.axhline(data_bpr, color="k", ls="--", lw=0.8, label="the table's own bytes/row")
    for ax, lab in ((a1, "time per row, ns"), (a2, "peak RSS per row, bytes (all processes)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows")
        ax.set_ylabel(lab)
        ax.grid(True, which="both", lw=0.3)
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.suptitle(f"Cost growth, VWAP by sym: {title}")
    save(fig, out, "growth")


def main():
    path, mode = sys.argv[1], sys.argv[2]
    rows = load(path)
    info = {r["case"]: r["value"] for r in rows if r["section"] == "machine"}
    title = f"{mode}, {info.get('cores')} cores {info.get('cpu')}, {os.path.basename(path)}"
    out = os.path.join(os.path.dirname(path), mode)
    for f in (workloads, latency, codec, overhead, growth):
        f(rows, out, title)


if __name__ == "__main__":
    main()
