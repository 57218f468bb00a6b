"""An ASGI app run by uvicorn as a Bulkhead pool worker (examples/python-asgi/bulkhead.toml).

uvicorn serves the inherited listening socket given with `--fd 3`; nothing here knows about
Bulkhead. Plain ASGI (no framework), so Debian's uvicorn package is all it needs.

Routes:
  GET  /            -> "hello from uvicorn pid=<pid>"
  POST /echo        -> the request body, echoed back (read message by message, as ASGI delivers it)
  GET  /items/<id>  -> JSON {"id": <id>, "pid": ..., "scheme": ..., "forwarded_for": ...}
                       (a route parameter; a non-number id is a JSON 404)
  GET  /stream?n=N  -> N lines sent as N separate ASGI body messages (`more_body`), which reach
                       the client as they are sent

Run alone, without Bulkhead:  uvicorn --app-dir examples/python-asgi --port 8081 app:app
"""

import json
import os
from urllib.parse import parse_qs


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    if method == "GET" and path == "/":
        await reply(send, 200, b"text/plain; charset=utf-8", b"hello from uvicorn pid=%d\n" % os.getpid())
    elif method == "POST" and path == "/echo":
        body = await read_body(receive)
        content_type = header(scope, b"content-type") or b"application/octet-stream"
        await reply(send, 200, content_type, body)
    elif method == "GET" and path.startswith("/items/"):
        item = path[len("/items/"):]
        if not item.isdigit():
            await reply(send, 404, b"application/json", json.dumps({"error": "no such item", "id": item}).encode())
            return
        value = {
            "id": int(item),
            "pid": os.getpid(),
            "scheme": scope.get("scheme"),
            "forwarded_for": (header(scope, b"x-forwarded-for") or b"").decode("latin-1"),
        }
        await reply(send, 200, b"application/json", json.dumps(value).encode())
    elif method == "GET" and path == "/stream":
        n = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("n") or ["3"])[0]
        n = min(int(n), 1000) if n.isdigit() else 3
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        for i in range(n):
            await send({"type": "http.response.body", "body": b"line %d of %d\n" % (i + 1, n), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await reply(send, 404, b"text/plain; charset=utf-8", ("not found: %s %s\n" % (method, path)).encode())


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive):
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def header(scope, name):
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def reply(send, status, content_type, body):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
