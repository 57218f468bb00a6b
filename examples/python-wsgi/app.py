"""A WSGI app run by gunicorn as a Bulkhead pool worker (examples/python-wsgi/bulkhead.toml).

Nothing in it knows about Bulkhead: gunicorn takes the listening socket at fd 3 from
LISTEN_FDS/LISTEN_PID by itself (systemd socket activation) and forks its workers on it.
Standard library only, so Debian's gunicorn package is all it needs.

Routes:
  GET  /            -> "hello from gunicorn pid=<worker pid> master=<gunicorn master pid>"
  POST /echo        -> the request body, echoed back with its Content-Type
  GET  /users/<id>  -> JSON {"id": <id>, "pid": ..., "forwarded_for": X-Forwarded-For}
                       (a route parameter; a non-number id is a JSON 404)
  GET  /stream?n=N  -> N lines produced by a generator, sent as they are made (WSGI's own
                       streaming: gunicorn sends them chunked)

Run alone, without Bulkhead:  gunicorn --chdir examples/python-wsgi --bind 127.0.0.1:8081 app:app
"""

import json
import os
from urllib.parse import parse_qs


def app(environ, start_response):
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    if method == "GET" and path == "/":
        return text(start_response, "200 OK", "hello from gunicorn pid=%d master=%d\n" % (os.getpid(), os.getppid()))
    if method == "POST" and path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        content_type = environ.get("CONTENT_TYPE") or "application/octet-stream"
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]
    if method == "GET" and path.startswith("/users/"):
        user_id = path[len("/users/"):]
        if not user_id.isdigit():
            return as_json(start_response, "404 Not Found", {"error": "no such user", "id": user_id})
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        return as_json(start_response, "200 OK", {"id": int(user_id), "pid": os.getpid(), "forwarded_for": forwarded})
    if method == "GET" and path == "/stream":
        n = (parse_qs(environ.get("QUERY_STRING", "")).get("n") or ["3"])[0]
        n = min(int(n), 1000) if n.isdigit() else 3
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return (("line %d of %d\n" % (i + 1, n)).encode() for i in range(n))
    return text(start_response, "404 Not Found", "not found: %s %s\n" % (method, path))


def text(start_response, status, body):
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]


def as_json(start_response, status, value):
    data = json.dumps(value).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
