#!/usr/bin/env python3
"""Test backend for the e2e cluster: one process answers for every fake pod.

It binds 0.0.0.0:PORT inside the cluster's network namespace, where the whole pod range
is routed to `lo`, so a connection to any pod IP lands here; the local address of the
accepted socket is the pod IP the client addressed. Every reply says it:

    GET /anything  ->  200, body "pod-ip=10.244.0.7 port=18080 path=/anything host=..."
                       header  X-Pod-IP: 10.244.0.7

A pod can be made sick while it stays Ready in its EndpointSlice (for active health checks):

    POST /__e2e/sick  ->  every later request to that pod IP answers 503
    POST /__e2e/well  ->  it answers 200 again

Standard library only; stopped by PID (SIGTERM) by cluster.sh.
"""
import argparse
import http.server
import signal
import sys


# Pod IPs answering 503 (see the module docs).
SICK = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "weir-e2e-backend"

    def _reply(self, with_body: bool) -> None:
        ip, port = self.connection.getsockname()[:2]
        body = (
            f"pod-ip={ip} port={port} path={self.path} "
            f"host={self.headers.get('Host', '')}\n"
        ).encode()
        self.send_response(503 if ip in SICK else 200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Pod-IP", ip)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._reply(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._reply(False)

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        ip = self.connection.getsockname()[0]
        if self.path == "/__e2e/sick":
            SICK.add(ip)
        elif self.path == "/__e2e/well":
            SICK.discard(ip)
        self._reply(True)

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("%s -> %s %s\n" % (self.client_address[0], self.connection.getsockname()[0], fmt % args))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--bind", default="0.0.0.0")
    args = ap.parse_args()
    srv = http.server.ThreadingHTTPServer((args.bind, args.port), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"weir-e2e-backend listening on {args.bind}:{args.port}", flush=True)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
