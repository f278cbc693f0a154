#!/usr/bin/env python3
"""Steady HTTP/1.1 load through weir for the Kubernetes-mode e2e tests.

    load.py --url http://127.0.0.1:18081/ --host web.example --seconds 20 --threads 4 [--rps 200] [--timeline]

Each thread keeps one keep-alive connection (reconnecting if weir closes it) and sends
requests at a bounded rate. At the end prints one JSON line:
    {"ok": N, "failed": N, "statuses": {...}, "errors": {...}, "pod_ips": {...}}
`failed` counts every non-200 response and every transport error. With --timeline the line
also has "timeline": [[unix time in ms, pod IP or the failure], ...], one per request, for
shares over time windows (the canary case). Standard library only;
bounded by --seconds; run inside the cluster's network namespace.
"""
import argparse
import collections
import http.client
import json
import threading
import time
import urllib.parse


def worker(args, deadline, lock, totals):
    url = urllib.parse.urlsplit(args.url)
    conn = None
    interval = args.threads / args.rps if args.rps > 0 else 0.0
    next_at = time.monotonic()
    local = collections.Counter()
    ips = collections.Counter()
    errors = collections.Counter()
    timeline = []
    while time.monotonic() < deadline:
        if interval:
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval
        try:
            if conn is None:
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
            conn.request("GET", url.path or "/", headers={"Host": args.host})
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            local[resp.status] += 1
            what = str(resp.status)
            if resp.status == 200 and body.startswith("pod-ip="):
                what = body.split()[0][len("pod-ip="):]
                ips[what] += 1
            if args.timeline:
                timeline.append([int(time.time() * 1000), what])
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:  # noqa: BLE001 - every failure counts
            errors[type(e).__name__] += 1
            if args.timeline:
                timeline.append([int(time.time() * 1000), type(e).__name__])
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
    if conn is not None:
        conn.close()
    with lock:
        totals["statuses"].update(local)
        totals["pod_ips"].update(ips)
        totals["errors"].update(errors)
        totals["timeline"].extend(timeline)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--rps", type=float, default=200)
    p.add_argument("--timeline", action="store_true")
    args = p.parse_args()
    args.seconds = min(args.seconds, 300)  # bounded, whatever the caller asks
    deadline = time.monotonic() + args.seconds
    lock = threading.Lock()
    totals = {"statuses": collections.Counter(), "pod_ips": collections.Counter(),
              "errors": collections.Counter(), "timeline": []}
    threads = [threading.Thread(target=worker, args=(args, deadline, lock, totals))
               for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = totals["statuses"].get(200, 0)
    failed = sum(n for s, n in totals["statuses"].items() if s != 200) + sum(totals["errors"].values())
    out = {"ok": ok, "failed": failed,
           "statuses": {str(k): v for k, v in totals["statuses"].items()},
           "errors": dict(totals["errors"]), "pod_ips": dict(totals["pod_ips"])}
    if args.timeline:
        out["timeline"] = sorted(totals["timeline"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
