#!/usr/bin/env python3
"""Where does a latency tail come from? Summarises a per-answer trace written by
`aloha-loadgen --trace FILE` (or `bench.py --trace-dir DIR`): CSV lines sent_us,latency_us,conn,status.

  tools/bench/tail.py /tmp/tr/1dev-64.csv [--window-ms 10] [--top 10]

It prints
- the distribution (p50/p90/p99/p99.9/max, and p99/p50);
- time: latency per window (--window-ms): how many windows hold the answers over p99, the worst
  windows with their times and the gaps between them (a periodic cause shows as a regular gap);
- connections: each connection's own p50/p99 and the share of the over-p99 answers it holds
  (1/N each if the tail is spread evenly; a few connections with most of it means some clients are
  served last);
- rounds: answers of a closed loop arrive in bursts (one bouncer iteration's writes); within a
  burst, whether the later-served connections are the slow ones.
Python standard library only.
"""
import argparse
import csv
import statistics
import sys


def pct(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def load(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            rows.append((float(r["sent_us"]), float(r["latency_us"]), int(r["conn"]), int(r["status"])))
    return rows


def summarize(rows, window_ms=10.0, top=10, skip_s=0.0, out=sys.stdout):
    def p(*a):
        print(*a, file=out)

    rows = [r for r in rows if r[0] >= skip_s * 1e6]
    if not rows:
        p("no records")
        return {}
    lat = sorted(r[1] for r in rows)
    p50, p90, p99, p999 = (pct(lat, q) for q in (0.5, 0.9, 0.99, 0.999))
    span_s = (max(r[0] + r[1] for r in rows) - min(r[0] for r in rows)) / 1e6
    conns = sorted({r[2] for r in rows})
    p(f"{len(rows)} answers over {span_s:.2f} s ({len(rows) / max(span_s, 1e-9):,.0f}/s), {len(conns)} connections")
    p(f"latency ms: p50 {p50 / 1000:.2f}  p90 {p90 / 1000:.2f}  p99 {p99 / 1000:.2f}  p99.9 {p999 / 1000:.2f}  "
      f"max {lat[-1] / 1000:.2f}  mean {statistics.fmean(lat) / 1000:.2f}  (p99/p50 {p99 / p50:.2f})")
    # Histogram of latency in multiples of p50: a two-hump shape means two kinds of request paths.
    edges = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0]
    counts = [0] * (len(edges) + 1)
    for v in lat:
        x = v / p50
        k = 0
        while k < len(edges) and x >= edges[k]:
            k += 1
        counts[k] += 1
    labels = ["<0.5"] + [f"{edges[i]}-{edges[i + 1]}" for i in range(len(edges) - 1)] + [f">={edges[-1]}"]
    p("shape (× p50): " + "  ".join(f"{l}: {100 * c / len(lat):.1f}%" for l, c in zip(labels, counts)))

    # ---- time ----
    w_us = window_ms * 1000
    windows = {}
    for s, l, c, _ in rows:
        windows.setdefault(int((s + l) // w_us), []).append(l)  # by answer time
    tail = [(s, l, c) for s, l, c, _ in rows if l > p99]
    tail_windows = {}
    for s, l, c in tail:
        k = int((s + l) // w_us)
        tail_windows[k] = tail_windows.get(k, 0) + 1
    p(f"time: {len(tail)} answers over p99 fall in {len(tail_windows)} of {len(windows)} windows of {window_ms:g} ms"
      f" ({100 * len(tail_windows) / max(1, len(windows)):.1f} %)")
    worst = sorted(windows.items(), key=lambda kv: -max(kv[1]))[:top]
    worst.sort()
    p("  worst windows (answer time s: max / median latency ms, answers):")
    for k, v in worst:
        p(f"    {k * w_us / 1e6:8.3f}: {max(v) / 1000:6.2f} / {statistics.median(v) / 1000:5.2f}  ({len(v)})")
    ts = [k * w_us / 1e6 for k, _ in worst]
    if len(ts) > 1:
        p("  gaps between them (s): " + ", ".join(f"{b - a:.3f}" for a, b in zip(ts, ts[1:])))
    # Share of the tail in the worst 1 % of windows (bursty) vs spread out.
    by_count = sorted(tail_windows.values(), reverse=True)
    n1 = max(1, len(windows) // 100)
    p(f"  the {n1} windows with most over-p99 answers hold {100 * sum(by_count[:n1]) / max(1, len(tail)):.1f} % of them")

    # ---- connections ----
    per = {}
    for s, l, c, _ in rows:
        per.setdefault(c, []).append(l)
    tail_per = {}
    for s, l, c in tail:
        tail_per[c] = tail_per.get(c, 0) + 1
    stats = []
    for c, v in per.items():
        v.sort()
        stats.append((c, len(v), pct(v, 0.5), pct(v, 0.99), tail_per.get(c, 0)))
    shares = sorted((t / max(1, len(tail)) for *_, t in stats), reverse=True)
    k10 = max(1, len(stats) // 10)
    p(f"connections: per-connection p50 {min(s[2] for s in stats) / 1000:.2f}..{max(s[2] for s in stats) / 1000:.2f} ms, "
      f"p99 {min(s[3] for s in stats) / 1000:.2f}..{max(s[3] for s in stats) / 1000:.2f} ms; "
      f"the {k10} connections with most over-p99 answers hold {100 * sum(shares[:k10]) / max(1e-9, sum(shares)):.1f} % "
      f"of them (even spread: {100 * k10 / len(stats):.1f} %)")
    stats.sort(key=lambda s: -s[4])
    p("  most tail: " + ", ".join(f"c{c} ({t}, p50 {m / 1000:.2f})" for c, _, m, _, t in stats[:top]))

    # ---- rounds ----
    # Answers sorted by arrival; a gap of > 50 µs starts a new burst. Position within the burst
    # (0 = first answer the load tool read) against latency.
    arr = sorted(((s + l, l, c) for s, l, c, _ in rows))
    bursts, cur, last = [], [], None
    for t, l, c in arr:
        if last is not None and t - last > 50:
            bursts.append(cur)
            cur = []
        cur.append((t, l, c))
        last = t
    if cur:
        bursts.append(cur)
    sizes = sorted(len(b) for b in bursts)
    p(f"rounds: {len(bursts)} answer bursts (gap > 50 µs), size p50 {pct(sizes, 0.5)} p90 {pct(sizes, 0.9)} "
      f"max {sizes[-1]}")
    thirds = [[], [], []]
    for b in bursts:
        if len(b) < 3:
            continue
        for i, (_, l, _) in enumerate(b):
            thirds[min(2, 3 * i // len(b))].append(l)
    for name, v in zip(("first third", "middle third", "last third"), thirds):
        if v:
            v.sort()
            p(f"  {name} of a burst: p50 {pct(v, 0.5) / 1000:.2f} p99 {pct(v, 0.99) / 1000:.2f} ms "
              f"({100 * sum(1 for x in v if x > p99) / len(v):.2f} % over p99)")
    return {"p50": p50, "p99": p99, "max": lat[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="+", help="CSV written by aloha-loadgen --trace")
    ap.add_argument("--window-ms", type=float, default=10.0, help="time window (default 10 ms)")
    ap.add_argument("--top", type=int, default=10, help="worst windows / connections listed (default 10)")
    ap.add_argument("--skip", type=float, default=0.0, help="ignore answers to requests sent in the first S seconds")
    a = ap.parse_args()
    for path in a.trace:
        print(f"== {path}")
        summarize(load(path), a.window_ms, a.top, a.skip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
