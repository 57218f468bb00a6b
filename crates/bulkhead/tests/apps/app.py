#!/usr/bin/env python3
"""The integration tests' own worker: a Python 3 stdlib HTTP/1.1 app.

Started by Bulkhead as a pool command. It serves on the inherited socket at fd 3 when
`LISTEN_FDS` is set (the systemd socket-activation convention of DESIGN §4), else on
127.0.0.1:$PORT. It is written for the tests in `crates/bulkhead/tests/e2e/`, which start it,
kill it and read what it reports; it must never talk to anything but its own socket and the
files a test names in a query string.

Endpoints:
  GET  /                     -> "hello from python pid=N\n", with the request target as received in
                                X-Path (any path not listed here answers the same)
  GET  /pid                  -> "N"
  GET  /headers              -> JSON list of [name, value] request headers, as received
  GET  /hop                  -> 200 with hop-by-hop response headers the listener must remove
  POST /echo                 -> the request body
  POST /upload               -> "received N" (body counted, not kept; chunked or Content-Length)
  GET  /bytes?n=N            -> N bytes of b"x", streamed in 64 KiB writes
  GET  /slow?ms=N[&mark=F]   -> writes our pid into file F on arrival, sleeps N ms, "slept N"
  GET  /hold?mark=F&release=R-> writes pid into F, waits (at most 60 s) until file R exists
  GET  /crash                -> exits the process at once (status 1)
  GET  /cc*?cc=V[&cookie=1][&ms=N]
                             -> after N ms, "cc pid=N n=K\n" (K counts this process's /cc
                                answers), with Cache-Control: V, and a Set-Cookie when cookie is given
"""

import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CC_LOCK = threading.Lock()
CC_COUNT = [0]

CHUNK = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bulkhead-test-app"

    def address_string(self):
        # Unix-socket peers have no address tuple.
        if isinstance(self.client_address, tuple) and self.client_address:
            return str(self.client_address[0])
        return "unix"

    def log_message(self, fmt, *args):
        sys.stderr.write("app[%d]: %s\n" % (os.getpid(), fmt % args))

    def reply(self, status, body, ctype="text/plain; charset=utf-8", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        # Head and body leave in one write, so a worker killed with SIGKILL has either sent
        # nothing (the listener may retry) or the whole answer — never a head without its body.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def query(self):
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def read_body(self, sink):
        """Feeds the request body to sink(bytes) in pieces; returns the byte count."""
        total = 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += self.read_exactly(size, sink)
                self.rfile.readline(16)
        return self.read_exactly(int(self.headers.get("Content-Length", "0") or "0"), sink)

    def read_exactly(self, left, sink):
        """Feeds exactly `left` body bytes to sink(bytes) in pieces; returns `left`."""
        n = left
        while left:
            data = self.rfile.read(min(left, CHUNK))
            if not data:
                raise ConnectionError("body cut short")
            sink(data)
            left -= len(data)
        return n

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urlsplit(self.path).path
        q = self.query()
        if path == "/pid":
            return self.reply(200, str(os.getpid()))
        if path == "/headers":
            return self.reply(200, json.dumps([[k, v] for k, v in self.headers.items()]), "application/json")
        if path == "/hop":
            return self.reply(
                200,
                "hop",
                extra=[("Connection", "X-Resp-Hop"), ("X-Resp-Hop", "1"), ("Keep-Alive", "timeout=99"), ("X-Resp-Kept", "1")],
            )
        if path == "/bytes":
            n = int(q.get("n", "0"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            block = b"x" * CHUNK
            while n > 0:
                self.wfile.write(block[: min(n, CHUNK)])
                n -= CHUNK
            return None
        if path == "/slow":
            ms = int(q.get("ms", "0"))
            mark(q.get("mark"))
            time.sleep(ms / 1000.0)
            return self.reply(200, "slept %d" % ms)
        if path == "/hold":
            mark(q.get("mark"))
            release = q.get("release", "")
            deadline = time.monotonic() + 60
            while release and not os.path.exists(release) and time.monotonic() < deadline:
                time.sleep(0.01)
            return self.reply(200, "released")
        if path == "/crash":
            os._exit(1)
        if path.startswith("/cc"):
            time.sleep(int(q.get("ms", "0")) / 1000.0)
            with CC_LOCK:
                CC_COUNT[0] += 1
                n = CC_COUNT[0]
            extra = [("Cache-Control", q.get("cc", ""))]
            if "cookie" in q:
                extra.append(("Set-Cookie", "session=1"))
            return self.reply(200, "cc pid=%d n=%d\n" % (os.getpid(), n), extra=extra)
        return self.reply(200, "hello from python pid=%d\n" % os.getpid(), extra=[("X-Path", self.path)])

    def do_POST(self):
        path = urlsplit(self.path).path
        if path == "/upload":
            n = self.read_body(lambda _data: None)
            return self.reply(200, "received %d" % n)
        if path == "/crash":
            os._exit(1)
        parts = []
        self.read_body(parts.append)
        return self.reply(200, b"".join(parts), self.headers.get("Content-Type", "application/octet-stream"))


def mark(path):
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(path + ".tmp", path)


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
    sys.stderr.write("app[%d]: serving on %r\n" % (os.getpid(), sock.getsockname()))
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
