#!/usr/bin/env python3
"""Canary shares before and after a weight change, from a `load.py --timeline` result.

    canary_shares.py --result load.json --patched-at MS --main IP --canary IP --before P0 --after P1

MS is the Unix time in milliseconds just before the change was sent. Prints one JSON line
and exits 1 unless: no request failed, the canary share of the requests before MS (after a
1 s warm-up) is P0 ± 6 sd, and the share of the requests from MS + 1 s on is P1 ± 6 sd,
sd = sqrt(p (1 - p) / n) (each request a Bernoulli trial: a correct proxy fails a bound
with probability below 1e-8). "moved_ms" is the start (after MS) of the first 100 ms window
whose share is past the midpoint of P0 and P1, the time the change took to show.
Standard library only.
"""
import argparse
import json
import math
import sys


def share(samples, canary):
    n = len(samples)
    c = sum(1 for _, what in samples if what == canary)
    return c, n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--result", required=True)
    p.add_argument("--patched-at", type=int, required=True)
    p.add_argument("--main", required=True)
    p.add_argument("--canary", required=True)
    p.add_argument("--before", type=float, required=True)
    p.add_argument("--after", type=float, required=True)
    args = p.parse_args()
    with open(args.result) as f:
        result = json.load(f)
    timeline = result["timeline"]
    served = [s for s in timeline if s[1] in (args.main, args.canary)]
    failed = len(timeline) - len(served)
    t0, at = timeline[0][0], args.patched_at
    out = {"requests": len(timeline), "failed": failed}
    ok = failed == 0
    for name, p_want, part in [
        ("before", args.before, [s for s in served if t0 + 1000 <= s[0] < at]),
        ("after", args.after, [s for s in served if s[0] >= at + 1000]),
    ]:
        c, n = share(part, args.canary)
        sd = math.sqrt(p_want * (1 - p_want) / n) if n else float("inf")
        got = c / n if n else float("nan")
        within = n > 0 and abs(got - p_want) <= 6 * sd
        ok = ok and within
        out[name] = {"canary": c, "of": n, "share": round(got, 4), "want": p_want,
                     "bound": round(6 * sd, 4), "ok": within}
    mid = (args.before + args.after) / 2
    moved = None
    windows = []
    start = at
    while start < served[-1][0]:
        part = [s for s in served if start <= s[0] < start + 100]
        c, n = share(part, args.canary)
        if len(windows) < 20:
            windows.append(round(c / n, 2) if n else None)
        if moved is None and n >= 5 and (c / n - mid) * (args.after - args.before) > 0:
            moved = start - at
        start += 100
    out["moved_ms"] = moved
    out["shares_per_100ms_after_patch"] = windows
    ok = ok and moved is not None
    print(json.dumps(out))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
