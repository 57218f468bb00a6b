// A Node.js app as a Bulkhead pool worker (examples/node/bulkhead.toml), with nothing but
// Node's own `http` module and nothing that knows about Bulkhead: it serves the listening socket
// inherited at fd 3 (`server.listen({ fd: 3 })`) when LISTEN_FDS says so and LISTEN_PID is this
// process (systemd socket activation), else 127.0.0.1:$PORT (default 8081).
//
// Routes:
//   GET  /            -> "hello from node pid=<pid>"
//   POST /echo        -> the request body, echoed back (streamed: req.pipe(res))
//   GET  /users/:id   -> JSON {"id": ..., "pid": ..., "forwardedFor": X-Forwarded-For}
//                        (a route parameter; a non-number id is a JSON 404)
//   POST /json        -> the JSON object it was sent, with "pid" added (bad JSON: 400)
//
// SIGTERM (a Bulkhead recycle or stop): stop accepting, let in-flight requests finish, exit 0.
// Run alone:  node examples/node/server.js   (then curl 127.0.0.1:8081/)
'use strict';

const http = require('http');

const LISTEN_FDS_START = 3;

function json(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const user = url.pathname.match(/^\/users\/([^/]+)$/);
  if (req.method === 'GET' && url.pathname === '/') {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`hello from node pid=${process.pid}\n`);
  } else if (req.method === 'POST' && url.pathname === '/echo') {
    res.writeHead(200, { 'Content-Type': req.headers['content-type'] || 'application/octet-stream' });
    req.pipe(res);
  } else if (req.method === 'GET' && user) {
    if (!/^\d+$/.test(user[1])) {
      json(res, 404, { error: 'no such user', id: user[1] });
    } else {
      json(res, 200, { id: Number(user[1]), pid: process.pid, forwardedFor: req.headers['x-forwarded-for'] || '' });
    }
  } else if (req.method === 'POST' && url.pathname === '/json') {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      let value;
      try {
        value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (error) {
        json(res, 400, { error: `bad JSON: ${error.message}` });
        return;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        json(res, 400, { error: 'expected a JSON object' });
        return;
      }
      json(res, 200, { ...value, pid: process.pid });
    });
  } else {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`not found: ${req.method} ${url.pathname}\n`);
  }
}

// The socket to serve: fd 3 when it was passed to this very process, else a loopback port.
function listenOptions() {
  const fds = Number.parseInt(process.env.LISTEN_FDS || '0', 10);
  const forMe = process.env.LISTEN_PID === String(process.pid);
  if (fds >= 1 && forMe) {
    return { fd: LISTEN_FDS_START };
  }
  if (fds >= 1) {
    console.error(`LISTEN_FDS is set for pid ${process.env.LISTEN_PID}, not this process (${process.pid}); ignoring it`);
  }
  return { host: '127.0.0.1', port: Number.parseInt(process.env.PORT || '8081', 10) };
}

const server = http.createServer(handle);
// The listener keeps connections to its workers open and reuses them; Node's default of 5 s
// would close them under it between requests (harmless — it reconnects — but wasteful).
server.keepAliveTimeout = 120 * 1000;
server.on('error', (error) => {
  console.error(`node example: cannot serve: ${error.message}`);
  process.exit(1);
});
const where = listenOptions();
server.listen(where, () => {
  console.error(`node example pid ${process.pid} serving ${where.fd === undefined ? `${where.host}:${where.port}` : `fd ${where.fd}`}`);
});

process.on('SIGTERM', () => {
  console.error(`node example pid ${process.pid}: SIGTERM, finishing in-flight requests`);
  server.close(() => process.exit(0));
  // Idle keep-alive connections hold close() open; in-flight ones are left to finish.
  server.closeIdleConnections();
});
