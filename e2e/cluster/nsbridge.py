#!/usr/bin/env python3
"""Forward 127.0.0.1:PORT of the host into the cluster's network namespace.

    nsbridge.py --netns-pid PID --listen 127.0.0.1:16443 --target 127.0.0.1:16443

Lets kubectl and helm in an ordinary shell reach the kube-apiserver that listens on
127.0.0.1 inside the namespace. Each accepted connection is served by a thread that first
joins the namespace (setns, needs CAP_SYS_ADMIN: root) and creates its upstream socket
there; bytes are copied both ways unchanged (TLS stays end to end). Standard library only;
stopped by PID (SIGTERM) by cluster.sh.
"""
import argparse
import ctypes
import os
import signal
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(client: socket.socket, ns_path: str, target: tuple) -> None:
    fd = os.open(ns_path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:  # this thread only
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)
    try:
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
    except OSError as e:
        sys.stderr.write(f"nsbridge: connect {target}: {e}\n")
        client.close()
        return
    t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    t.start()
    pump(client, upstream)
    t.join()
    client.close()
    upstream.close()


def hostport(s: str) -> tuple:
    h, p = s.rsplit(":", 1)
    return h, int(p)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--netns-pid", type=int, required=True)
    ap.add_argument("--listen", type=hostport, required=True)
    ap.add_argument("--target", type=hostport, required=True)
    a = ap.parse_args()
    ns_path = f"/proc/{a.netns_pid}/ns/net"
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(a.listen)
    srv.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"nsbridge {a.listen[0]}:{a.listen[1]} -> netns of pid {a.netns_pid} {a.target[0]}:{a.target[1]}", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c, ns_path, a.target), daemon=True).start()


if __name__ == "__main__":
    main()
