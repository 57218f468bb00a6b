#!/usr/bin/env python3
"""bench/conns-client.py — opens N keep-alive connections to HOST:PORT, sends one request on each,
reads its whole response, then keeps every connection open and idle until it is stopped (SIGTERM)
or HOLD seconds pass. Used by bench/conns; one process holds at most a few thousand connections.

Usage: conns-client.py HOST PORT PATH N HOLD_SECS   (PATH "none": connect, send nothing)
Prints "ready OK FAILED" on stdout once every connection has had its answer (or failed).
Only 127.0.0.0/8 and ::1 are accepted as HOST. Every step is bounded in time.
"""
import asyncio
import ipaddress
import signal
import sys

BATCH = 200  # connections opened at once
STEP_TIMEOUT = 20.0  # connect + request + response, per connection


async def one(host, port, path, keep):
    reader, writer = await asyncio.open_connection(host, port)
    if path == "none":  # connect only: the connection is idle before its first request
        keep.append(writer)
        return
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("chunked response: not expected from the bench targets")
    if length:
        await reader.readexactly(length)
    if not status.startswith(b"2"):
        raise RuntimeError(f"status {status!r}")
    keep.append(writer)


async def main():
    host, port, path, n, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"{host} is not a loopback address")
    keep, failed = [], 0
    for start in range(0, n, BATCH):
        count = min(BATCH, n - start)
        results = await asyncio.gather(
            *(asyncio.wait_for(one(host, port, path, keep), STEP_TIMEOUT) for _ in range(count)),
            return_exceptions=True,
        )
        errs = [r for r in results if isinstance(r, BaseException)]
        failed += len(errs)
        if errs and failed <= 3:
            print(f"error: {errs[0]!r}", file=sys.stderr, flush=True)
    print(f"ready {len(keep)} {failed}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), hold)
    except asyncio.TimeoutError:
        pass
    for w in keep:
        w.close()


asyncio.run(main())
