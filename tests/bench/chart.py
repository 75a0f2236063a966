#!/usr/bin/env python3
"""Chart of bench.py's results: ratio to the bound per method and workload.

    python3 tests/bench/chart.py bench.json [bench.png]

Kept apart from bench.py because the GPU machine may lack matplotlib; on
Debian: apt-get install python3-matplotlib. Grouped bars (one group per
workload, one bar per method), logarithmic ratio axis, the 1.0 bound and the
targets (1.05 limited, 1.02 when the model fits) drawn as lines; a method that
did not produce a time is marked under its slot ("fail", "n/i" not installed,
"n/a" skipped).
"""

from __future__ import annotations

import json
import os
import sys

MARK = {"failed": "fail", "not installed": "n/i", "skipped": "n/a"}
COLORS = {"resident": "0.55", "vramswap": "tab:orange", "prefetch": "tab:green",
          "naive-pinned": "tab:red", "naive-pageable": "tab:purple", "accelerate": "tab:brown",
          "comfy-aimdo": "tab:blue"}


def load(path):
    with open(path) as f:
        data = json.load(f)
    workloads = data.get("workloads", [])
    methods = []
    for w in workloads:
        for m in w.get("methods", {}):
            if m not in methods:
                methods.append(m)
    return data, workloads, methods


def title_of(data):
    meta = data.get("meta", {})
    bits = [meta.get("gpu") or meta.get("device", "?")]
    if meta.get("driver"):
        bits.append("driver " + meta["driver"])
    if meta.get("torch"):
        bits.append("torch " + meta["torch"])
    bw = data.get("bandwidth", {}).get("pinned_Bps")
    if bw:
        bits.append("pinned H2D %.1f GB/s" % (bw / 1e9))
    if meta.get("date"):
        bits.append(meta["date"][:10])
    return "vramswap forward pass, ratio to the bound\n" + ", ".join(bits)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or len(argv) > 2:
        print(__doc__.strip().splitlines()[2].strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    src = argv[0]
    dst = argv[1] if len(argv) > 1 else os.path.splitext(src)[0] + ".png"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart.py: matplotlib is not installed (Debian: apt-get install python3-matplotlib)",
              file=sys.stderr)
        return 2
    data, workloads, methods = load(src)
    if not workloads or not methods:
        print("chart.py: no results in %s" % src, file=sys.stderr)
        return 1

    n = len(methods)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(workloads) * max(1, n / 3)), 5.5))
    cmap = plt.get_cmap("tab10")
    mark_y = 0.01  # axes fraction: where "fail" / "n/i" / "n/a" stand
    ymax = 1.2
    for j, m in enumerate(methods):
        xs, ys = [], []
        for i, w in enumerate(workloads):
            r = w["methods"].get(m, {})
            x = i - 0.4 + width * (j + 0.5)
            if r.get("status") == "ok" and r.get("ratio"):
                xs.append(x)
                ys.append(r["ratio"])
                ymax = max(ymax, r["ratio"])
            else:
                ax.text(x, mark_y, MARK.get(r.get("status"), "-"), rotation=90, ha="center", va="bottom",
                        fontsize=7, color="0.4", transform=ax.get_xaxis_transform())
        if not xs:
            continue
        bars = ax.bar(xs, ys, width * 0.95, label=m, color=COLORS.get(m, cmap(j % 10)))
        for b, y in zip(bars, ys):
            ax.text(b.get_x() + b.get_width() / 2, y, "%.2f" % y, ha="center", va="bottom",
                    fontsize=6, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(0.3, ymax * 2.0)
    ax.axhline(1.0, color="black", linewidth=0.8)
    limited = [i for i, w in enumerate(workloads) if w.get("limit") is not None]
    fits = [i for i, w in enumerate(workloads) if w.get("limit") is None]
    for idx, goal, style, label in ((limited, 1.05, "dashed", "target 1.05x bound"),
                                    (fits, 1.02, "dotted", "target 1.02x resident")):
        for k, i in enumerate(idx):
            ax.hlines(goal, i - 0.45, i + 0.45, colors="red", linestyles=style, linewidth=1.0,
                      label=label if k == 0 else None)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(["%s\nbound %.1f ms" % (w["name"], w["bound_s"] * 1e3) if w.get("bound_s")
                        else w["name"] for w in workloads], fontsize=8)
    ax.set_ylabel("time / bound (log scale; lower is better)")
    ax.set_title(title_of(data), fontsize=10)
    ax.legend(fontsize=7, ncol=min(4, n + 2), loc="upper left")
    ax.grid(axis="y", which="both", alpha=0.25)
    fig.tight_layout()
    fig.savefig(dst, dpi=130)
    print("wrote", dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
