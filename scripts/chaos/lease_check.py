#!/usr/bin/env python3
"""Checks the intervals the chaos agents logged: no tenant in two agents at
one instant, and every tenant covered again within the bound after every
event. Prints `N handovers, 0 overlaps, longest uncovered gap X s`.

usage: lease_check.py LOG_DIR EVENTS_FILE TENANTS BOUND_SECONDS"""
import glob, os, sys

TICK = 0.05
log_dir, events_file, tenants, bound = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
events = [l.split(None, 1) for l in open(events_file) if l.strip()]
times = {name.strip(): float(t) for t, name in events}
begin, end = times["covered"], times["end"]

intervals = {}  # tenant -> [(start, end, holder)]
for path in glob.glob(os.path.join(log_dir, "*.log")):
    lines = open(path).read().split("\n")
    head = lines[0].split()
    if len(head) < 3 or head[0] != "start":
        continue
    start, holder, users = float(head[1]), head[2], head[3:]
    last, stopped = start, None
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "tick":
            last = float(parts[1])
        elif len(parts) == 2 and parts[0] == "stop":
            stopped = float(parts[1])
    # Killed without a word: it ran at most one tick past its last one.
    finish = stopped if stopped is not None else last + TICK
    for u in users:
        intervals.setdefault(u, []).append((start, finish, holder))

overlaps, handovers, worst, worst_at = 0, 0, 0.0, None
for u, iv in intervals.items():
    iv.sort()
    for (s1, e1, h1), (s2, e2, h2) in zip(iv, iv[1:]):
        if s2 < e1:
            overlaps += 1
            print(f"OVERLAP {u}: {h1} until {e1:.3f}, {h2} from {s2:.3f}", file=sys.stderr)
        if h1 != h2:
            handovers += 1
    # Uncovered stretches inside [begin, end].
    edge = begin
    for s, e, _ in iv:
        if s > edge and edge < end:
            gap = min(s, end) - edge
            if gap > worst:
                worst, worst_at = gap, (u, edge)
        edge = max(edge, e)
    if edge < end and end - edge > worst:
        worst, worst_at = end - edge, (u, edge)
missing = tenants - len(intervals)
print(f"{handovers} handovers, {overlaps} overlaps, longest uncovered gap {worst:.1f} s")
if worst_at:
    since = [n for n, t in sorted(times.items(), key=lambda x: x[1]) if t <= worst_at[1]]
    print(f"  (tenant {worst_at[0]}, from {worst_at[1]:.3f}, after event {since[-1] if since else '-'})")
if overlaps or missing or worst > bound:
    print(f"FAILED: {overlaps} overlaps, {missing} tenants never run, gap {worst:.1f} s > bound {bound} s"
          if worst > bound else f"FAILED: {overlaps} overlaps, {missing} tenants never run", file=sys.stderr)
    sys.exit(1)
