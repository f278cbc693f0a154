#!/usr/bin/env python3
"""A stand-in for the Gateway API conformance suite's echo-basic pods, for e2e/gateway.

kwok makes the suite's echo Deployments Running and Ready with IPs in 10.244.0.0/24 but runs
no container; inside the cluster's network namespace every pod IP is routed to `lo`. This one
process binds every address of the node's pod range (--bind-cidr, 10.244.0.0/24: one socket per
address and port, not 0.0.0.0, so that weir's Gateway listeners can bind the same ports on their
own addresses) on the ports the suite's manifests give echo-basic (3000 HTTP, 3001 h2c, 8443
HTTPS) and answers as the pod the connection was addressed to: the local address of the
connection is looked up among the pods (kept from `kubectl get pods -A --watch`), and the
answer is exactly echo-basic's (sigs.k8s.io/gateway-api/conformance/echo-basic/echo-basic.go
v1.6.3): the JSON of path (request URI), host, method, proto, headers (Go's canonical keys,
Host left out), httpPort, namespace, ingress, service, pod, and tls for HTTPS; its routes
/health, /status/NNN, /retry/?uuid=&succeedAfter=[&responseCode=][&delayRetry=], ?delay=, and
the X-Echo-Set-Header response headers. POD_NAME, NAMESPACE, SERVICE_NAME, INGRESS_NAME,
HTTP_PORT come from the pod's env as the kubelet would set them (fieldRef metadata.name /
metadata.namespace, or literal values).

HTTPS (8443) serves the certificate of the pod's own Secret volume (the item mounted as the
file its TLS_SERVER_CERT / TLS_SERVER_PRIVKEY env names), read through the API; a pod without
them gets no TLS answer, as echo-basic does not listen on 8443 then. Pods that run echo-basic
as something else (GRPC_ECHO_SERVER, TCP_ECHO_SERVER, UDP_ECHO_SERVER in the env) are not
served: their connections are closed. Not reproduced: HTTP/2 (h2c on 3001 answers HTTP/1.1
only, with echo-basic's 400 "Expected h2c request" unless the request asks for an h2c
upgrade, which is then answered as HTTP/1.1), websockets on /ws, client-certificate checks
(TLS_CLIENT_CACERTS).

    echo.py --kubectl PATH [--kubeconfig FILE] [--bind-cidr 10.244.0.0/24] [--http-ports 3000]
            [--h2c-ports 3001] [--tls-ports 8443] [--verbose]

A connection to an address no pod has, or to a pod that is not an HTTP echo-basic, is reset
(as a connection to a pod that does not listen there would be refused).

Standard library only. Prints "ready" on stdout once the first pod list is in.
"""

import argparse
import base64
import http.server
import json
import os
import re
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ARGS = None


def log(*a):
    print("[echo %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- pods by IP


class Pods:
    """Pods by IP, from a full list at start and on a miss, and a watch in between."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_uid = {}
        self.by_ip = {}
        self.last_list = 0.0
        self.ready = threading.Event()

    def kubectl(self, *args):
        cmd = [ARGS.kubectl] + (["--kubeconfig", ARGS.kubeconfig] if ARGS.kubeconfig else []) + list(args)
        return cmd

    def _index(self):
        by_ip = {}
        for p in self.by_uid.values():
            st = p.get("status", {})
            ips = [x.get("ip") for x in st.get("podIPs") or []] or [st.get("podIP")]
            for ip in ips:
                if not ip:
                    continue
                # Two pods on one IP: a deleted one and its successor; the newer wins.
                old = by_ip.get(ip)
                if old is None or (old["metadata"].get("deletionTimestamp") and not p["metadata"].get("deletionTimestamp")) \
                        or old["metadata"].get("creationTimestamp", "") < p["metadata"].get("creationTimestamp", ""):
                    by_ip[ip] = p
        self.by_ip = by_ip

    def relist(self):
        out = subprocess.run(self.kubectl("get", "pods", "-A", "-o", "json"), capture_output=True, timeout=30)
        if out.returncode != 0:
            log("kubectl get pods failed:", out.stderr.decode(errors="replace").strip())
            return False
        items = json.loads(out.stdout).get("items", [])
        with self.lock:
            self.by_uid = {p["metadata"]["uid"]: p for p in items}
            self._index()
            self.last_list = time.monotonic()
        self.ready.set()
        return True

    def watch_forever(self):
        while True:
            if not self.relist():
                time.sleep(1)
                continue
            proc = subprocess.Popen(self.kubectl("get", "pods", "-A", "--watch-only", "--output-watch-events", "-o", "json"),
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            dec = json.JSONDecoder()
            buf = ""
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                buf += chunk.decode()
                while True:
                    buf = buf.lstrip()
                    if not buf:
                        break
                    try:
                        ev, end = dec.raw_decode(buf)
                    except ValueError:
                        break
                    buf = buf[end:]
                    obj = ev.get("object") or {}
                    uid = obj.get("metadata", {}).get("uid")
                    if not uid:
                        continue
                    with self.lock:
                        if ev.get("type") == "DELETED":
                            self.by_uid.pop(uid, None)
                        else:
                            self.by_uid[uid] = obj
                        self._index()
            proc.wait()
            log("pod watch ended (exit %s); listing again" % proc.returncode)
            time.sleep(0.5)

    def get(self, ip):
        with self.lock:
            p = self.by_ip.get(ip)
            stale = time.monotonic() - self.last_list > 0.5
        if p is None and stale:  # a pod the watch has not shown yet
            self.relist()
            with self.lock:
                p = self.by_ip.get(ip)
        return p


PODS = Pods()


def pod_env(pod):
    """The first container's environment as the kubelet would set it (literals and the
    metadata fieldRefs the suite uses)."""
    env = {}
    containers = pod.get("spec", {}).get("containers") or [{}]
    for e in containers[0].get("env") or []:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            path = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if path == "metadata.name":
                env[e["name"]] = pod["metadata"]["name"]
            elif path == "metadata.namespace":
                env[e["name"]] = pod["metadata"]["namespace"]
            elif path == "status.podIP":
                env[e["name"]] = pod.get("status", {}).get("podIP", "")
    return env


def is_http_echo(env):
    return not any(env.get(k) for k in ("GRPC_ECHO_SERVER", "TCP_ECHO_SERVER", "UDP_ECHO_SERVER"))


# ---------------------------------------------------------------- TLS per pod

TLS_CACHE = {}
TLS_LOCK = threading.Lock()


def secret_file(pod, path):
    """(namespace, secret, key) of the Secret item mounted at PATH in the pod."""
    c = (pod.get("spec", {}).get("containers") or [{}])[0]
    vols = {v["name"]: v for v in pod.get("spec", {}).get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        mp = m["mountPath"].rstrip("/") + "/"
        if not path.startswith(mp):
            continue
        rel = path[len(mp):]
        sec = (vols.get(m["name"]) or {}).get("secret")
        if not sec:
            continue
        key = rel
        for it in sec.get("items") or []:
            if it.get("path") == rel:
                key = it["key"]
        return pod["metadata"]["namespace"], sec["secretName"], key
    return None


def tls_context(pod, env):
    cert, key = env.get("TLS_SERVER_CERT"), env.get("TLS_SERVER_PRIVKEY")
    if not cert or not key:
        return None
    c, k = secret_file(pod, cert), secret_file(pod, key)
    if not c or not k or c[:2] != k[:2]:
        return None
    ns, name = c[0], c[1]
    out = subprocess.run(PODS.kubectl("-n", ns, "get", "secret", name, "-o", "json"), capture_output=True, timeout=30)
    if out.returncode != 0:
        log("secret %s/%s: %s" % (ns, name, out.stderr.decode(errors="replace").strip()))
        return None
    sec = json.loads(out.stdout)
    rv = sec["metadata"].get("resourceVersion")
    with TLS_LOCK:
        hit = TLS_CACHE.get((ns, name))
        if hit and hit[0] == rv:
            return hit[1]
    data = sec.get("data") or {}
    if c[2] not in data or k[2] not in data:
        return None
    with tempfile.TemporaryDirectory() as d:
        cf, kf = os.path.join(d, "crt"), os.path.join(d, "key")
        with open(cf, "wb") as f:
            f.write(base64.b64decode(data[c[2]]))
        with open(kf, "wb") as f:
            f.write(base64.b64decode(data[k[2]]))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cf, kf)
    ctx.set_alpn_protocols(["http/1.1"])

    def sni(sslobj, name, _ctx):
        sslobj.weir_sni = name or ""

    ctx.sni_callback = sni
    with TLS_LOCK:
        TLS_CACHE[(ns, name)] = (rv, ctx)
    return ctx


# Go's crypto/tls names for the TLS 1.2 suites OpenSSL negotiates (TLS 1.3 names are the same).
GO_CIPHERS = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}


# ---------------------------------------------------------------- HTTP


def canonical(name):
    """Go's textproto.CanonicalMIMEHeaderKey."""
    if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
        return name
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def go_duration(s):
    """Seconds of a Go time.ParseDuration string ("1s", "500ms", "1m30s")."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)", s)
    if not parts or "".join(a + b for a, b in parts) != s.lstrip("+"):
        raise ValueError('time: invalid duration "%s"' % s)
    return sum(float(a) * units[b] for a, b in parts)


RETRY_LOCK = threading.Lock()
RETRY_ATTEMPTS = {}
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def reset(sock):
    """Abort a connection with a TCP RST (SO_LINGER 0, then close)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    sock.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if ARGS.verbose:
            log("%s:%s %s" % (self.local_ip, self.local_port, fmt % args))

    def setup(self):
        super().setup()
        self.local_ip, self.local_port = self.connection.getsockname()[:2]
        self.aborted = False

    def send_response(self, code, message=None):
        # As Go's net/http: a Date header, no Server header.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def query(self):
        q = {}
        if "?" in self.path:
            for kv in self.path.split("?", 1)[1].split("&"):
                k, _, v = kv.partition("=")
                q.setdefault(urlunquote(k), urlunquote(v))
        return q

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                self.rfile.read(size)
                self.rfile.readline(65537)
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error_json(self, code, msg):
        self.send(code, json.dumps({"message": msg}).encode(),
                  [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")])

    def handle_one_request(self):
        # As BaseHTTPRequestHandler's, but every method is handled by dispatch().
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            # parse_request collapses a leading "//" (an open-redirect guard of http.server);
            # echo-basic reports the request-target exactly as it came (r.RequestURI).
            words = self.raw_requestline.decode("iso-8859-1").rstrip("\r\n").split()
            if len(words) >= 2:
                self.path = words[1]
            self.dispatch()
            if self.aborted:
                self.close_connection = True
                return
            self.wfile.flush()
        except (TimeoutError, ConnectionError, ssl.SSLError, ValueError) as e:
            self.log_error("%r", e)
            self.close_connection = True

    def dispatch(self):
        self.pod, self.env = self.server.pod_of(self.local_ip)
        self.read_body()
        if self.server.h2c:  # runH2CServer's handler: no mux
            if self.headers.get("Upgrade") != "h2c":
                self.send(400, b"Expected h2c request", [("Content-Type", "text/plain; charset=utf-8")])
                return
            self.echo()
            return
        path = self.path.split("?", 1)[0].replace("//", "/")  # preserveSlashes
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        if path in ("/status", "/retry"):
            # ServeMux: a subtree root named without its trailing slash is redirected.
            loc = path + "/" + ("?" + query if query else "")
            body = ('<a href="%s">Moved Permanently</a>.\n\n' % loc).encode()
            self.send(301, body, [("Location", loc), ("Content-Type", "text/html; charset=utf-8")])
        elif path == "/health":
            self.send(200, b"OK", [("Content-Type", "text/plain; charset=utf-8")])
        elif path.startswith("/status/"):
            m = re.fullmatch(r"/status/(\d\d\d)", self.path)
            self.send(int(m.group(1)) if m else 400)
        elif path.startswith("/retry/"):
            self.retry()
        elif path == "/ws" and self.headers.get("Upgrade", "").lower() != "websocket":
            self.send(400, b"", [])  # x/net/websocket refuses a plain request
        else:
            self.echo()

    def delay(self, key):
        d = self.query().get(key)
        if d:
            time.sleep(go_duration(d))

    def retry(self):
        q = self.query()
        uuid = q.get("uuid", "")
        if not uuid:
            self.send(400, b"uuid is required")
            return
        try:
            succeed_after = int(q.get("succeedAfter", ""))
        except ValueError:
            self.send(400, b"succeedAfter is required")
            return
        with RETRY_LOCK:  # echo-basic holds its lock across the failing attempt too
            if RETRY_ATTEMPTS.get(uuid, 0) < succeed_after:
                RETRY_ATTEMPTS[uuid] = RETRY_ATTEMPTS.get(uuid, 0) + 1
                try:
                    self.delay("delayRetry")
                except ValueError as e:
                    self.error_json(500, str(e))
                    return
                try:
                    code = int(q.get("responseCode", ""))
                except ValueError:
                    code = None
                if code is not None:
                    self.send(code)
                    return
                # TCP failure mode: abort the connection with a RST. The file objects of the
                # socket hold the descriptor open, so they are closed first.
                self.aborted = True
                for f in (self.rfile, self.wfile):
                    try:
                        f.close()
                    except (OSError, ValueError):
                        pass
                reset(self.connection)
                return
        self.echo()

    def echo(self):
        try:
            self.delay("delay")
        except ValueError as e:
            self.error_json(500, str(e))
            return
        headers = {}
        for k, v in self.headers.items():
            # Go's server keeps Host in r.Host and Transfer-Encoding in r.TransferEncoding,
            # not in r.Header; textproto trims values.
            if k.lower() in ("host", "transfer-encoding"):
                continue
            headers.setdefault(canonical(k), []).append(v.strip(" \t"))
        out = {
            "path": self.path,
            "host": self.headers.get("Host", ""),
            "method": self.command,
            "proto": self.request_version,
            "headers": headers,
            "httpPort": self.env.get("HTTP_PORT") or "3000",
            "namespace": self.env.get("NAMESPACE", ""),
            "ingress": self.env.get("INGRESS_NAME", ""),
            "service": self.env.get("SERVICE_NAME", ""),
            "pod": self.env.get("POD_NAME", ""),
        }
        if isinstance(self.connection, ssl.SSLSocket):
            c = self.connection
            name = c.cipher()[0] if c.cipher() else ""
            out["tls"] = {
                "version": {"TLSv1.3": "TLSv1.3", "TLSv1.2": "TLSv1.2"}.get(c.version(), c.version() or ""),
                "serverName": getattr(c, "weir_sni", None) or getattr(getattr(c, "_sslobj", None), "weir_sni", ""),
                "negotiatedProtocol": c.selected_alpn_protocol() or "",
                "cipherSuite": GO_CIPHERS.get(name, name),
            }
            if not out["tls"]["negotiatedProtocol"]:
                del out["tls"]["negotiatedProtocol"]
        # writeEchoResponseHeaders: "name:value[,name:value...]" per X-Echo-Set-Header value;
        # the suite always sends the header, usually empty: an empty or invalid name is not a
        # header (Go's server does not write it), so it is left out.
        resp = []
        for line in self.headers.get_all("X-Echo-Set-Header") or []:
            for kv in line.split(","):
                name, _, value = kv.strip().partition(":")
                if not HEADER_NAME.fullmatch(name):
                    continue
                for i, (n, v) in enumerate(resp):
                    if n == name:
                        resp[i] = (n, v + "," + value.strip())
                        break
                else:
                    resp.append((name, value))
        resp += [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]
        self.send(200, json.dumps(out, indent=" ").encode(), resp)


def urlunquote(s):
    from urllib.parse import unquote_plus
    return unquote_plus(s)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """One per kind (HTTP, h2c, TLS): never bound itself; Acceptor hands it the connections
    accepted on every (pod address, port) of its kind, each served in its own thread."""

    daemon_threads = True

    def __init__(self, h2c=False, tls=False):
        self.h2c, self.tls = h2c, tls
        super().__init__(("0.0.0.0", 0), Handler, bind_and_activate=False)
        self.socket.close()

    @staticmethod
    def pod_of(ip):
        """(pod, env) of the HTTP echo-basic pod at IP, or (None, None)."""
        pod = PODS.get(ip)
        if pod is None:
            return None, None
        env = pod_env(pod)
        return (pod, env) if is_http_echo(env) else (None, None)

    def finish_request(self, request, client_address):
        # In the connection's own thread.
        ip = request.getsockname()[0]
        pod, env = self.pod_of(ip)
        if pod is None:
            if ARGS.verbose:
                log("%s:%s: no echo-basic pod; reset" % (ip, request.getsockname()[1]))
            reset(request)
            return
        if self.tls:  # the certificate is the addressed pod's
            ctx = tls_context(pod, env)
            if ctx is None:
                reset(request)
                return
            request.settimeout(10)
            try:
                request = ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                if ARGS.verbose:
                    log("TLS handshake on %s: %s" % (ip, e))
                return
            request.settimeout(None)
        super().finish_request(request, client_address)

    def shutdown_request(self, request):
        try:
            super().shutdown_request(request)
        except OSError:
            pass


def listen_all(cidr, ports, server):
    """Listening sockets on every host address of CIDR for each port: [(sock, server)]."""
    import ipaddress
    out = []
    for ip in ipaddress.ip_network(cidr).hosts():
        for p in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((str(ip), p))
            s.listen(128)
            s.setblocking(False)
            out.append((s, server))
    return out


def accept_forever(listeners):
    import selectors
    sel = selectors.DefaultSelector()
    for s, srv in listeners:
        sel.register(s, selectors.EVENT_READ, srv)
    while True:
        for key, _ in sel.select():
            try:
                conn, addr = key.fileobj.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                log("accept:", e)
                continue
            conn.setblocking(True)
            key.data.process_request(conn, addr)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", ""))
    ap.add_argument("--bind-cidr", default="10.244.0.0/24", help="the pod addresses to listen on")
    ap.add_argument("--http-ports", default="3000")
    ap.add_argument("--h2c-ports", default="3001")
    ap.add_argument("--tls-ports", default="8443")
    ap.add_argument("--verbose", action="store_true")
    ARGS = ap.parse_args()
    threading.Thread(target=PODS.watch_forever, daemon=True).start()
    if not PODS.ready.wait(30):
        log("no pod list from the API after 30 s")
        sys.exit(1)
    listeners, ports = [], []
    for spec, kw in ((ARGS.http_ports, {}), (ARGS.h2c_ports, {"h2c": True}), (ARGS.tls_ports, {"tls": True})):
        ps = [int(p) for p in spec.split(",") if p]
        if ps:
            listeners += listen_all(ARGS.bind_cidr, ps, Server(**kw))
            ports += ps
    threading.Thread(target=accept_forever, args=(listeners,), daemon=True).start()
    print("ready", ARGS.bind_cidr, " ".join(map(str, ports)), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
