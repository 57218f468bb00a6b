#!/usr/bin/env python3
"""The health tests' worker: a Python 3 stdlib HTTP/1.1 app that can misbehave on request.

Started by Bulkhead as a pool command for `crates/bulkhead/tests/e2e/health.rs`. It serves on
the inherited socket at fd 3 (`LISTEN_FDS`) or on 127.0.0.1:$PORT. With `HEALTH_APP_CONTROL=1`
it also speaks Bulkhead's control channel (fd `BULKHEAD_CONTROL_FD`; 4-byte big-endian length +
JSON): it says `ready`, answers `ping` with `pong` and its request count, and exits on `drain`
or `stop`. It talks to nothing but its own sockets and writes no file.

Endpoints:
  GET /                 -> "hello from health_app pid=N\n"
  GET /pid              -> "N"
  GET /health           -> "ok" (blocks forever once /freeze-health was called)
  GET /freeze-health    -> makes /health block from now on
  GET /grow?mb=N        -> allocates and touches N MiB, kept until exit (resident memory)
  GET /reserve?mb=N     -> maps N MiB without touching it (virtual memory only)
  GET /burn?ms=N        -> spins the CPU for N ms
  GET /spawn?n=N        -> forks up to N children at once, then lets them exit and reaps them:
                           "spawned K of N" plus the error that stopped it (a pids limit)
  GET /ask-recycle      -> sends request_recycle on the control channel
  GET /whoami           -> "uid=U gid=G"
  GET|POST /crash       -> exits at once (status 1); POST is never replayed on another worker
"""

import json
import mmap
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KEPT = []
FROZEN = threading.Event()
REQUESTS = [0]
CONTROL = [None]
CONTROL_LOCK = threading.Lock()


def control_send(msg):
    sock = CONTROL[0]
    if sock is None:
        return
    body = json.dumps(msg).encode()
    with CONTROL_LOCK:
        sock.sendall(struct.pack(">I", len(body)) + body)


def control_loop(sock):
    def read_exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    while True:
        head = read_exact(4)
        if head is None:
            os._exit(0)
        body = read_exact(struct.unpack(">I", head)[0])
        if body is None:
            os._exit(0)
        msg = json.loads(body)
        kind = msg.get("type")
        if kind == "ping":
            control_send({"type": "pong", "seq": msg["seq"], "requests": REQUESTS[0], "in_flight": 0})
        elif kind in ("drain", "stop"):
            os._exit(0)


def spawn_children(n):
    """Forks up to n children that wait for the parent to close a pipe, then ends them all."""
    r, w = os.pipe()
    children, error = [], ""
    for _ in range(n):
        try:
            pid = os.fork()
        except OSError as e:
            error = str(e)
            break
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        children.append(pid)
    os.close(w)
    os.close(r)
    for pid in children:
        os.waitpid(pid, 0)
    return "spawned %d of %d%s" % (len(children), n, (": " + error) if error else "")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bulkhead-health-app"

    def address_string(self):
        return "unix"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body):
        body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path != "/health":
            REQUESTS[0] += 1
        if path == "/pid":
            return self.reply(200, str(os.getpid()))
        if path == "/health":
            while FROZEN.is_set():
                time.sleep(3600)
            return self.reply(200, "ok")
        if path == "/freeze-health":
            FROZEN.set()
            return self.reply(200, "frozen")
        if path == "/grow":
            n = int(q.get("mb", "0")) * 1024 * 1024
            block = bytearray(n)
            for i in range(0, n, 4096):
                block[i] = 1
            KEPT.append(block)
            return self.reply(200, "grew %d" % n)
        if path == "/reserve":
            n = int(q.get("mb", "0")) * 1024 * 1024
            KEPT.append(mmap.mmap(-1, n))
            return self.reply(200, "reserved %d" % n)
        if path == "/spawn":
            return self.reply(200, spawn_children(int(q.get("n", "0"))))
        if path == "/burn":
            end = time.process_time() + int(q.get("ms", "0")) / 1000.0
            while time.process_time() < end:
                pass
            return self.reply(200, "burnt")
        if path == "/ask-recycle":
            control_send({"type": "request_recycle", "reason": "the test asked"})
            return self.reply(200, "asked")
        if path == "/whoami":
            return self.reply(200, "uid=%d gid=%d" % (os.getuid(), os.getgid()))
        if path == "/crash":
            os._exit(1)
        return self.reply(200, "hello from health_app pid=%d\n" % os.getpid())

    def do_POST(self):
        if urlsplit(self.path).path == "/crash":
            os._exit(1)
        return self.reply(404, "no such endpoint")


def main():
    if os.environ.get("LISTEN_FDS"):
        sock = socket.socket(fileno=3)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(os.environ["PORT"])))
        sock.listen(128)
    sock.setblocking(True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.daemon_threads = True
    fd = os.environ.get("BULKHEAD_CONTROL_FD")
    if os.environ.get("HEALTH_APP_CONTROL") == "1" and fd:
        CONTROL[0] = socket.socket(fileno=int(fd))
        threading.Thread(target=control_loop, args=(CONTROL[0],), daemon=True).start()
        control_send({"type": "ready"})
    sys.stderr.write("health_app[%d]: serving\n" % os.getpid())
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
