#!/usr/bin/env python3
"""Named HTTP/1.1 test backends for the manifests-mode e2e test.

    backend.py NAME=PORT [NAME=PORT ...]

Each listens on 127.0.0.1:PORT and answers every request with "NAME METHOD PATH" and the
X-Forwarded-* / X-Request-Id headers it received. Runs until killed.
"""
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler_for(name):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            lines = [f"{name} {self.command} {self.path}"]
            for h in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"):
                if self.headers.get(h) is not None:
                    lines.append(f"{h}: {self.headers.get(h)}")
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    return Handler


servers = []
for arg in sys.argv[1:]:
    name, port = arg.split("=")
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), handler_for(name))
    server.daemon_threads = True
    servers.append(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
