#!/usr/bin/env python3
"""The upstream behind weir for the h2spec suite.

    backend.py PORT        (0: any free port)

Listens on 127.0.0.1:PORT and answers every request, whatever its method, with 200 and a
small body over HTTP/1.1 keep-alive, after reading the request body (Content-Length or
chunked) so the connection stays usable. A HEAD response carries the Content-Length a GET
would have and no body (RFC 9110 §9.3.2). The body is at least 5 bytes because h2spec skips
its flow-control case http2/6.9.2/2 for shorter ones. Connections that weir drops mid-answer
(h2spec resets streams on purpose) are not errors here. Prints "ready PORT" once listening; runs
until killed.
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"h2spec backend ok\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def read_body(self):
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields
                    return
                self.rfile.read(size + 2)  # the chunk and its CRLF
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)

    def answer(self):
        self.read_body()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(BODY)

    def __getattr__(self, name):
        # do_GET, do_POST, do_HEAD, do_OPTIONS, ...: every method gets the same answer.
        if name.startswith("do_"):
            return self.answer
        raise AttributeError(name)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", server.server_address[1], flush=True)
server.serve_forever()
