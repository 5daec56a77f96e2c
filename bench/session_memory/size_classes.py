#!/usr/bin/env python3
"""Per-session heap by jemalloc size class: the difference between two
malloc_stats_print JSON dumps (bench/session_memory.sh), divided by the
number of sessions. Usage: size_classes.py BEFORE AFTER SESSIONS"""
import json
import sys


def load(path):
    j = json.load(open(path))["jemalloc"]
    sizes = [b["size"] for b in j["arenas"]["bin"]] + [b["size"] for b in j["arenas"]["lextent"]]
    merged = j["stats.arenas"]["merged"]
    counts = [b["curregs"] for b in merged["bins"]] + [b["curlextents"] for b in merged["lextents"]]
    return dict(zip(sizes, counts)), j["stats"]


before, s0 = load(sys.argv[1])
after, s1 = load(sys.argv[2])
n = int(sys.argv[3])
print(f"{'class (B)':>10} {'per session':>12} {'B/session':>10}")
for size in sorted(after):
    d = after[size] - before.get(size, 0)
    if abs(d * size) >= n * 16:  # 16 B/session or more
        print(f"{size:>10,} {d / n:>12.2f} {d * size / n:>10,.0f}")
for k in ("allocated", "resident"):
    print(f"jemalloc {k}: {(s1[k] - s0[k]) / n:,.0f} B/session")
