#!/usr/bin/env python3
"""A Bulkhead worker in plain Python 3 (standard library only).

It speaks the worker contract of DESIGN §4 with nothing of Bulkhead's: it serves HTTP/1.1 on the
listening socket inherited at fd 3 when LISTEN_FDS is set (systemd socket activation, the way
gunicorn and uvicorn do it), or on 127.0.0.1:$PORT otherwise.

Routes (used by the integration tests and the README tour):
  GET  /            -> "hello from python pid=<pid>\n"
  POST /echo        -> the request body, echoed back
  GET  /slow?ms=N   -> sleeps N milliseconds (at most 60000), then answers
  GET  /crash       -> the process exits at once with status 1 (shows crash isolation)

Run alone:  PORT=8081 python3 examples/python/app.py
"""

import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LISTEN_FDS_START = 3


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the listener reuses connections
    server_version = "bulkhead-python-example"

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            self.reply(200, "hello from python pid=%d\n" % os.getpid())
        elif url.path == "/slow":
            ms = parse_ms(parse_qs(url.query).get("ms", ["0"])[0])
            time.sleep(ms / 1000.0)
            self.reply(200, "slept %d ms in pid=%d\n" % (ms, os.getpid()))
        elif url.path == "/crash":
            sys.stderr.write("pid %d: /crash requested, exiting with status 1\n" % os.getpid())
            sys.stderr.flush()
            os._exit(1)
        else:
            self.reply(404, "not found: %s\n" % url.path)

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        body = self.read_body()
        if body is None:
            return
        if urlsplit(self.path).path == "/echo":
            self.reply(200, body, content_type=self.headers.get("Content-Type", "application/octet-stream"))
        else:
            self.reply(404, "not found: %s\n" % self.path)

    def read_body(self):
        """The request body, by Content-Length or chunked; None after answering 400."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(1024).split(b";")[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    self.reply(400, "bad chunk size\n")
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.reply(400, "bad Content-Length\n")
            return None
        return self.rfile.read(length) if length > 0 else b""

    def reply(self, status, body, content_type="text/plain; charset=utf-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def address_string(self):
        # On a unix socket the peer has no address (""); log the forwarded client instead.
        forwarded = self.headers.get("X-Forwarded-For") if getattr(self, "headers", None) else None
        if forwarded:
            return forwarded
        return self.client_address[0] if self.client_address else "unix"


def parse_ms(text):
    try:
        return max(0, min(int(text), 60000))
    except ValueError:
        return 0


def make_server():
    if os.environ.get("LISTEN_FDS"):
        pid = os.environ.get("LISTEN_PID")
        if pid and pid != str(os.getpid()):
            sys.exit("LISTEN_PID=%s is not this process (%d); the inherited fds are not ours" % (pid, os.getpid()))
        sock = socket.socket(fileno=LISTEN_FDS_START)  # family and type are read from the fd
        server = ThreadingHTTPServer(("", 0), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        where = "inherited fd %d (%s)" % (LISTEN_FDS_START, sock.getsockname() or "unix socket")
    else:
        port = int(os.environ.get("PORT", "8081"))
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        where = "127.0.0.1:%d" % port
    server.daemon_threads = True
    return server, where


def main():
    server, where = make_server()
    sys.stderr.write("python worker pid %d serving on %s\n" % (os.getpid(), where))
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
