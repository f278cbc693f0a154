#!/usr/bin/env python3
"""Run the Gateway API conformance suite's real echo-basic for the pods kwok fakes.

kwok makes the suite's echo Deployments Running and Ready with IPs in 10.244.0.0/24 but runs
no container. This process plays the part of the kubelet for them, inside e2e/cluster's network
namespace (where the whole 10.244.0.0/16 is routed local on `lo`):

- It watches pods (`kubectl get pods -A --watch`) and, for every Running pod with an IP and no
  deletionTimestamp, starts one echo-basic process (--echo-basic, built from
  sigs.k8s.io/gateway-api/conformance/echo-basic by build.sh) per container whose image is
  echo-basic (or whose env has the POD_NAME and NAMESPACE fieldRefs of the suite's manifests).
  The environment is resolved as the kubelet would: literal values with $(VAR) expansion,
  fieldRefs (metadata.name/namespace/uid, labels, annotations, spec.nodeName,
  spec.serviceAccountName, status.podIP/hostIP), secretKeyRef/configMapKeyRef, envFrom. Secret
  and ConfigMap volumes (all keys or `items`) are written to a directory per pod and env values
  under a mountPath point there. A pod whose Secret/ConfigMap is missing waits, as
  ContainerCreating would.
- Each pod gets its own network namespace (`unshare --net`, lo up; the pod's other containers
  join it with nsenter), so echo-basic binds its real ports (":3000", ":3001", ":8443", or
  whatever HTTP_PORT/H2C_PORT/HTTPS_PORT/TCP_PORT/... say) and reports exactly what a real pod
  reports (httpPort included). Whatever TCP port the processes listen on (read from
  /proc/PID/net/tcp{,6}) is forwarded from podIP:port: a listener per pod address and port
  (never 0.0.0.0: weir binds its Gateway addresses on the same ports), and for each connection
  a socket created inside the pod's namespace (setns in that thread) to 127.0.0.1:port, bytes
  copied both ways unchanged (h2c, TLS with ALPN h2, websockets and gRPC work end to end); a
  reset on either side is passed on as a reset, a half-close as a half-close. An address or
  port nothing listens on refuses the connection, as in a real cluster. UDP is not forwarded.
- Container logs: each process's stdout/stderr goes to a CRI-format file per container
  (--dir/NS_POD/CONTAINER.log), served as the kubelet's
  GET /containerLogs/NS/POD/CONTAINER (sinceTime, sinceSeconds, tailLines, timestamps,
  limitBytes) over HTTPS on --kubelet-addr (the node's InternalIP:10250, which the API server
  dials for pods/log; it does not verify the kubelet's certificate here). So `kubectl logs`
  and the suite's mirror tests see the pod's log.
- A process is stopped (SIGTERM, then SIGKILL after 2 s, by PID) when its pod is deleted,
  gets a deletionTimestamp, stops Running or changes IP. On SIGTERM/SIGINT everything is
  stopped the same way before exit; every child also has PR_SET_PDEATHSIG=SIGKILL.

Needs root (CAP_SYS_ADMIN: unshare/setns), `unshare`, `nsenter`, `ip`, `openssl`, kubectl.
Standard library only. Prints "ready ..." on stdout once the first pod list is in and the
kubelet endpoint listens; on exit, a summary line (processes started, peak total RSS).

    kubelet.py --echo-basic BIN --dir DIR [--kubectl PATH] [--kubeconfig FILE]
               [--kubelet-addr 10.244.255.1:10250|off] [--verbose]
"""

import argparse
import base64
import ctypes
import datetime
import http.server
import json
import os
import re
import select
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

ARGS = None
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
libc = ctypes.CDLL(None, use_errno=True)
ORIG_NS = None  # fd of this process's own network namespace (the cluster's)
WAKE = threading.Event()
STOPPING = threading.Event()


def log(*a):
    print("[kubelet %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def vlog(*a):
    if ARGS.verbose:
        log(*a)


def kubectl(*args):
    return [ARGS.kubectl] + (["--kubeconfig", ARGS.kubeconfig] if ARGS.kubeconfig else []) + list(args)


# ---------------------------------------------------------------- pods


class Pods:
    """All pods by UID: a full list, then a watch; every change wakes the reconciler."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_uid = {}
        self.ready = threading.Event()

    def relist(self):
        out = subprocess.run(kubectl("get", "pods", "-A", "-o", "json"), capture_output=True, timeout=30)
        if out.returncode != 0:
            log("kubectl get pods failed:", out.stderr.decode(errors="replace").strip())
            return False
        items = json.loads(out.stdout).get("items", [])
        with self.lock:
            self.by_uid = {p["metadata"]["uid"]: p for p in items}
        self.ready.set()
        WAKE.set()
        return True

    def watch_forever(self):
        while not STOPPING.is_set():
            if not self.relist():
                time.sleep(1)
                continue
            proc = subprocess.Popen(kubectl("get", "pods", "-A", "--watch-only", "--output-watch-events", "-o", "json"),
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=pdeathsig)
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
                    WAKE.set()
            proc.wait()
            if not STOPPING.is_set():
                log("pod watch ended (exit %s); listing again" % proc.returncode)
                time.sleep(0.5)

    def snapshot(self):
        with self.lock:
            return dict(self.by_uid)


PODS = Pods()


def pdeathsig():
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def is_echo(c):
    if "echo-basic" in (c.get("image") or ""):
        return True
    refs = {((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath"): e["name"] for e in c.get("env") or []}
    return refs.get("metadata.name") == "POD_NAME" and refs.get("metadata.namespace") == "NAMESPACE"


def wanted(pod):
    """(ip, [echo containers]) if the pod should run now, else None."""
    st, md = pod.get("status") or {}, pod.get("metadata") or {}
    if st.get("phase") != "Running" or not st.get("podIP") or md.get("deletionTimestamp"):
        return None
    cs = [c for c in (pod.get("spec") or {}).get("containers") or [] if is_echo(c)]
    return (st["podIP"], cs) if cs else None


class Missing(Exception):
    """A Secret/ConfigMap the pod needs does not exist (yet)."""


OBJ_CACHE = {}


def get_obj(kind, ns, name):
    key = (kind, ns, name)
    if key in OBJ_CACHE:
        return OBJ_CACHE[key]
    out = subprocess.run(kubectl("-n", ns, "get", kind, name, "-o", "json"), capture_output=True, timeout=30)
    if out.returncode != 0:
        raise Missing("%s %s/%s: %s" % (kind, ns, name, out.stderr.decode(errors="replace").strip()))
    obj = json.loads(out.stdout)
    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()} if kind == "secret" else \
        dict({k: v.encode() for k, v in (obj.get("data") or {}).items()},
             **{k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    OBJ_CACHE[key] = data
    return data


def field(pod, path):
    md, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.*)'\]", path)
    if m:
        return (md.get(m.group(1)) or {}).get(m.group(2), "")
    return {
        "metadata.name": md.get("name", ""), "metadata.namespace": md.get("namespace", ""),
        "metadata.uid": md.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""), "status.podIP": st.get("podIP", ""),
        "status.hostIP": st.get("hostIP", ""),
        "status.podIPs": ",".join(x.get("ip", "") for x in st.get("podIPs") or []),
    }.get(path, "")


def expand(s, env):
    """The kubelet's $(VAR) expansion ($$ escapes)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), s)


def container_env(pod, c):
    ns = pod["metadata"]["namespace"]
    env = {}
    for ef in c.get("envFrom") or []:
        ref = ef.get("configMapRef") or ef.get("secretRef")
        kind = "configmap" if "configMapRef" in ef else "secret"
        try:
            data = get_obj(kind, ns, ref["name"])
        except Missing:
            if ref.get("optional"):
                continue
            raise
        for k, v in data.items():
            env[ef.get("prefix", "") + k] = v.decode(errors="replace")
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = expand(e["value"], env)
            continue
        vf = e.get("valueFrom") or {}
        if "fieldRef" in vf:
            env[e["name"]] = field(pod, vf["fieldRef"].get("fieldPath", ""))
        elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
            ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
            kind = "secret" if "secretKeyRef" in vf else "configmap"
            try:
                data = get_obj(kind, ns, ref["name"])
                if ref["key"] not in data:
                    raise Missing("%s %s/%s has no key %s" % (kind, ns, ref["name"], ref["key"]))
                env[e["name"]] = data[ref["key"]].decode(errors="replace")
            except Missing:
                if not ref.get("optional"):
                    raise
        else:
            env[e["name"]] = ""
    return env


def write_volumes(pod, c, root):
    """Write the container's Secret/ConfigMap/emptyDir volumes under ROOT; [(mountPath, dir)]."""
    ns = pod["metadata"]["namespace"]
    vols = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts = []
    for m in c.get("volumeMounts") or []:
        v = vols.get(m["name"]) or {}
        d = os.path.join(root, "volumes", m["name"])
        src = v.get("secret") or v.get("configMap")
        if src is not None:
            kind = "secret" if "secret" in v else "configmap"
            name = src.get("secretName") or src.get("name")
            try:
                data = get_obj(kind, ns, name)
            except Missing:
                if src.get("optional"):
                    data = {}
                else:
                    raise
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            for it in items:
                if it["key"] not in data:
                    raise Missing("%s %s/%s has no key %s" % (kind, ns, name, it["key"]))
                f = os.path.join(d, it["path"])
                os.makedirs(os.path.dirname(f), exist_ok=True)
                with open(f, "wb") as fh:
                    fh.write(data[it["key"]])
        os.makedirs(d, exist_ok=True)  # emptyDir and anything else: an empty directory
        path = d
        if m.get("subPath"):
            path = os.path.join(d, m["subPath"])
        mounts.append((m["mountPath"].rstrip("/") or "/", path))
    mounts.sort(key=lambda x: -len(x[0]))
    return mounts


def rewrite(value, mounts):
    for mp, d in mounts:
        if value == mp or value.startswith(mp + "/"):
            return d + value[len(mp):]
    return value


# ---------------------------------------------------------------- processes


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def listen_ports(pid):
    """TCP ports in LISTEN in the network namespace of PID."""
    ports = set()
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A":
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except (OSError, StopIteration):
            pass
    return ports


LOGS = {}  # (ns, pod, container) -> log file
LOGS_LOCK = threading.Lock()


def cri_time():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def copy_log(pipe, path, stream):
    with open(path, "ab", buffering=0) as f:
        for line in iter(pipe.readline, b""):
            partial = not line.endswith(b"\n")
            f.write(("%s %s %s " % (cri_time(), stream, "P" if partial else "F")).encode() + line.rstrip(b"\n") + b"\n")
    pipe.close()


class Pod:
    def __init__(self, pod, ip, containers):
        md = pod["metadata"]
        self.uid, self.ns, self.name, self.ip = md["uid"], md["namespace"], md["name"], ip
        self.key = "%s/%s" % (self.ns, self.name)
        self.dir = os.path.join(ARGS.dir, "%s_%s_%s" % (self.ns, self.name, self.uid[:8]))
        self.procs = []  # (container name, Popen)
        self.nsfd = None
        self.lock = threading.Lock()
        self.listeners = {}  # port -> socket
        self.started = time.monotonic()
        self.next_scan = 0.0
        try:
            self.start(pod, containers)
        except BaseException:
            self.terminate()
            for _, p in self.procs:
                p.wait()
            if self.nsfd is not None:
                os.close(self.nsfd)
            raise

    def start(self, pod, containers):
        os.makedirs(self.dir, exist_ok=True)
        plans = []
        for c in containers:  # resolve everything first: a missing Secret raises before any process
            env = container_env(pod, c)
            mounts = write_volumes(pod, c, os.path.join(self.dir, c["name"]))
            env = {k: rewrite(v, mounts) for k, v in env.items()}
            env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            env.setdefault("HOSTNAME", self.name)
            plans.append((c["name"], env))
        for name, env in plans:
            if self.nsfd is None:
                cmd = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', ARGS.echo_basic]
            else:
                cmd = ["nsenter", "--net=/proc/%d/fd/%d" % (os.getpid(), self.nsfd), "--", ARGS.echo_basic]
            logf = os.path.join(self.dir, name + ".log")
            p = subprocess.Popen(cmd, env=env, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, preexec_fn=pdeathsig, pass_fds=() if self.nsfd is None else (self.nsfd,))
            for pipe, stream in ((p.stdout, "stdout"), (p.stderr, "stderr")):
                threading.Thread(target=copy_log, args=(pipe, logf, stream), daemon=True).start()
            self.procs.append((name, p))
            with LOGS_LOCK:
                LOGS[(self.ns, self.name, name)] = logf
            if self.nsfd is None:
                self.nsfd = self.open_ns(p)
            mode = [k for k in ("GRPC_ECHO_SERVER", "TCP_ECHO_SERVER", "UDP_ECHO_SERVER") if env.get(k)]
            log("started %s/%s pid %d on %s (%s; log %s)" % (self.key, name, p.pid, self.ip, mode[0] if mode else "HTTP", logf))
            STATS["started"] += 1

    def open_ns(self, p):
        """The new namespace of P, once unshare has made it (before that /proc/PID/ns/net is ours)."""
        mine = os.readlink("/proc/self/ns/net")
        for _ in range(200):
            try:
                if os.readlink("/proc/%d/ns/net" % p.pid) != mine:
                    return os.open("/proc/%d/ns/net" % p.pid, os.O_RDONLY)
            except OSError:
                pass
            if p.poll() is not None:
                break
            time.sleep(0.005)
        raise RuntimeError("pid %d never entered a network namespace of its own" % p.pid)

    def pids(self):
        return [p.pid for _, p in self.procs if p.poll() is None]

    def sync_listeners(self):
        """Forward podIP:port for every port the pod's processes listen on (now)."""
        now = time.monotonic()
        if now < self.next_scan:
            return
        # Often while starting, then now and then (a process may listen late or exit).
        self.next_scan = now + (0.05 if now - self.started < 3 else 1.0)
        for name, p in self.procs:
            if p.poll() is not None and not getattr(p, "reported", False):
                p.reported = True
                log("%s/%s pid %d exited with %s" % (self.key, name, p.pid, p.returncode))
        alive = self.pids()
        ports = listen_ports(alive[0]) if alive else set()
        for port in sorted(ports - set(self.listeners)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.ip, port))
                s.listen(512)
            except OSError as e:
                s.close()
                log("%s: cannot listen on %s:%d: %s (retrying)" % (self.key, self.ip, port, e))
                continue
            self.listeners[port] = s
            threading.Thread(target=accept_loop, args=(self, s, port), daemon=True).start()
            vlog("%s: forwarding %s:%d" % (self.key, self.ip, port))
        for port in sorted(set(self.listeners) - ports):
            close_listener(self.listeners.pop(port))

    def upstream(self, port):
        """A socket inside the pod's namespace, connected to 127.0.0.1:PORT."""
        with self.lock:
            if self.nsfd is None:
                raise OSError("pod stopped")
            if libc.setns(self.nsfd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                if libc.setns(ORIG_NS, CLONE_NEWNET) != 0:  # never leave this thread in the pod
                    os._exit(70)
        s.settimeout(3)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            raise
        s.settimeout(None)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def terminate(self):
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()

    def stop(self, why):
        for port in list(self.listeners):
            close_listener(self.listeners.pop(port))
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 2
        for _, p in self.procs:
            try:
                p.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        with self.lock:
            if self.nsfd is not None:
                os.close(self.nsfd)
                self.nsfd = None
        with LOGS_LOCK:
            for name, _ in self.procs:
                LOGS.pop((self.ns, self.name, name), None)
        log("stopped %s (%s)" % (self.key, why))


STATS = {"started": 0, "peak_rss_kb": 0, "peak_procs": 0, "conns": 0}


# ---------------------------------------------------------------- forwarding


def close_listener(s):
    try:
        s.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
    except OSError:
        pass
    s.close()


def reset(sock):
    """Abort a connection with a TCP RST (SO_LINGER 0, then close)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    sock.close()


def accept_loop(pod, lsock, port):
    while True:
        try:
            conn, _ = lsock.accept()
        except OSError:
            return  # closed
        threading.Thread(target=serve_conn, args=(pod, conn, port), daemon=True).start()


def serve_conn(pod, conn, port):
    STATS["conns"] += 1
    try:
        up = pod.upstream(port)
    except OSError as e:
        vlog("%s:%d -> %s: %s; reset" % (pod.ip, port, pod.key, e))
        reset(conn)
        return
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    splice(conn, up)


def splice(a, b):
    """Copy both ways in one thread (so that a reset on one side can reset the other at once)."""
    peer = {a.fileno(): (a, b), b.fileno(): (b, a)}
    poller = select.poll()
    for fd in peer:
        poller.register(fd, select.POLLIN)
    open_r = set(peer)
    try:
        while open_r:
            for fd, _ in poller.poll():
                src, dst = peer[fd]
                try:
                    data = src.recv(262144)
                except OSError:  # reset (or error) on SRC: reset DST
                    reset(dst)
                    src.close()
                    return
                if data:
                    try:
                        dst.sendall(data)
                    except OSError:
                        reset(src)
                        dst.close()
                        return
                else:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    poller.unregister(fd)
                    open_r.discard(fd)
    except Exception as e:  # noqa: BLE001
        vlog("splice: %r" % e)
    a.close()
    b.close()


# ---------------------------------------------------------------- the kubelet's log endpoint


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


class LogHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        vlog("kubelet api: " + fmt % args)

    def reply(self, code, body, ctype="text/plain; charset=utf-8"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path in ("/healthz", "/readyz"):
            return self.reply(200, b"ok")
        m = re.fullmatch(r"/containerLogs/([^/]+)/([^/]+)/([^/]+)", u.path)
        if not m:
            return self.reply(404, b"not found: this kubelet stand-in serves /containerLogs only\n")
        with LOGS_LOCK:
            path = LOGS.get(tuple(urllib.parse.unquote(x) for x in m.groups()))
        if not path:
            return self.reply(404, ("container %s of pod %s/%s is not running here\n" % (m.group(3), m.group(1), m.group(2))).encode())
        since = None
        if q.get("sinceTime"):
            since = parse_time(q["sinceTime"])
        elif q.get("sinceSeconds"):
            since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=int(q["sinceSeconds"]))
        out = []
        try:
            with open(path, "rb") as f:
                for line in f:
                    ts, stream, tag, text = (line.split(b" ", 3) + [b"", b"", b""])[:4]
                    if since and parse_time(ts.decode()) < since:
                        continue
                    if tag == b"P":
                        text = text.rstrip(b"\n")
                    out.append((ts + b" " + text) if q.get("timestamps") == "true" else text)
        except OSError:
            pass
        if q.get("tailLines"):
            n = int(q["tailLines"])
            out = out[-n:] if n > 0 else []
        body = b"".join(out)
        if q.get("limitBytes"):
            body = body[:int(q["limitBytes"])]
        self.reply(200, body)


class LogServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_log_server():
    host, port = ARGS.kubelet_addr.rsplit(":", 1)
    d = os.path.join(ARGS.dir, ".kubelet-tls")
    os.makedirs(d, exist_ok=True)
    crt, key = os.path.join(d, "kubelet.crt"), os.path.join(d, "kubelet.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=kwok-node-0",
                    "-addext", "subjectAltName=IP:%s" % host, "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    srv = LogServer((host, int(port)), LogHandler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


# ---------------------------------------------------------------- main loop


RUNNING = {}  # uid -> Pod
WAITING = {}  # uid -> (last reason logged, next attempt)
FAILED = set()  # uids whose processes could not be started: not retried


def reconcile():
    pods = PODS.snapshot()
    for uid, rp in list(RUNNING.items()):
        p = pods.get(uid)
        w = wanted(p) if p else None
        if w is None or w[0] != rp.ip:
            del RUNNING[uid]
            rp.stop("deleted" if p is None else "deletionTimestamp set" if p["metadata"].get("deletionTimestamp")
                    else "no longer Running" if w is None else "IP changed")
    OBJ_CACHE.clear()
    now = time.monotonic()
    for uid in list(WAITING):
        if uid not in pods:
            del WAITING[uid]
    FAILED.intersection_update(pods)
    for uid, p in pods.items():
        if uid in RUNNING or uid in FAILED:
            continue
        w = wanted(p)
        if w is None:
            WAITING.pop(uid, None)
            continue
        if uid in WAITING and now < WAITING[uid][1]:
            continue
        key = "%s/%s" % (p["metadata"]["namespace"], p["metadata"]["name"])
        try:
            RUNNING[uid] = Pod(p, *w)
            WAITING.pop(uid, None)
        except Missing as e:
            if WAITING.get(uid, ("",))[0] != str(e):
                log("%s waits: %s" % (key, e))
            WAITING[uid] = (str(e), now + 1.0)
        except Exception as e:  # noqa: BLE001
            log("%s: cannot start: %r (not retried)" % (key, e))
            FAILED.add(uid)
    for rp in RUNNING.values():
        rp.sync_listeners()
    pids = [pid for rp in RUNNING.values() for pid in rp.pids()]
    total = sum(rss_kb(pid) for pid in pids)
    if total > STATS["peak_rss_kb"]:
        STATS["peak_rss_kb"] = total
    STATS["peak_procs"] = max(STATS["peak_procs"], len(pids))


def main():
    global ARGS, ORIG_NS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--echo-basic", required=True, help="the echo-basic binary")
    ap.add_argument("--dir", required=True, help="per-pod directories (volumes, logs)")
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", ""))
    ap.add_argument("--kubelet-addr", default="10.244.255.1:10250", help="HOST:PORT for /containerLogs, or off")
    ap.add_argument("--verbose", action="store_true")
    ARGS = ap.parse_args()
    ARGS.echo_basic = os.path.abspath(ARGS.echo_basic)
    os.makedirs(ARGS.dir, exist_ok=True)
    ORIG_NS = os.open("/proc/self/ns/net", os.O_RDONLY)

    def on_signal(signum, _frame):
        STOPPING.set()
        WAKE.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=PODS.watch_forever, daemon=True).start()
    if not PODS.ready.wait(30):
        log("no pod list from the API after 30 s")
        sys.exit(1)
    where = "off"
    if ARGS.kubelet_addr != "off":
        start_log_server()
        where = "https://%s/containerLogs" % ARGS.kubelet_addr
    print("ready: echo-basic %s; kubelet log endpoint %s" % (ARGS.echo_basic, where), flush=True)
    t_rss = 0.0
    while not STOPPING.is_set():
        WAKE.wait(0.05 if any(time.monotonic() - rp.started < 3 for rp in RUNNING.values()) else 0.5)
        WAKE.clear()
        if STOPPING.is_set():
            break
        try:
            reconcile()
        except Exception as e:  # noqa: BLE001 -- keep serving the other pods
            log("reconcile: %r" % e)
        if time.monotonic() - t_rss > 10:
            t_rss = time.monotonic()
            vlog("%d pods, peak RSS %d kB" % (len(RUNNING), STATS["peak_rss_kb"]))
    for rp in RUNNING.values():  # SIGTERM to all first, then wait for each
        rp.terminate()
    for uid in list(RUNNING):
        RUNNING.pop(uid).stop("shutting down")
    log("summary: %d echo-basic processes started, at most %d at once, peak total RSS %.1f MiB, %d connections forwarded"
        % (STATS["started"], STATS["peak_procs"], STATS["peak_rss_kb"] / 1024, STATS["conns"]))
    print("summary: started=%d peak_procs=%d peak_rss_kib=%d conns=%d"
          % (STATS["started"], STATS["peak_procs"], STATS["peak_rss_kb"], STATS["conns"]), flush=True)


if __name__ == "__main__":
    main()
