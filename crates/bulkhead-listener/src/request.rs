//! The request path (DESIGN §2): limits, site and route choice, then a static file, a redirect,
//! a route's fixed `return` answer, or a pool — queue, dispatch, retry — and the access-log
//! completion on every answer.
//!
//! Called by the connection ([`crate::conn`]) for each request, with the [`ConnInfo`] of the
//! connection it came on. Everything else a request needs is its own: its route table, its
//! body's [`BodyProgress`] (bytes read, the fault that stopped it), its queue slot — never state
//! shared with the other requests of its connection, so concurrent requests on one connection
//! (HTTP/2 streams) cannot see each other's. Every answer, success or refusal, leaves through
//! [`handle`] as a layered body ([`Answer`]): the queue-slot lease inside, the access-log
//! completion outside, so each request gets exactly one access-log line (written when its body
//! finishes or the client goes away), and every refusal before a worker saw the request also
//! gets an HTTPERR line with IIS's reason.
//!
//! Site content (issue 11): an answer the listener made itself with a 4xx or 5xx status gets the
//! site's `error_pages` entry for that status as its body, whenever the site is known — static
//! 403/404/405/412/416, no route (404), 503 (queue full, pool offline or stopped, site
//! connection limit), 502/504 (worker failures, `response_timeout`), 500, and 408/413/414/431
//! when the request's host names a site. Not replaced: a worker's answer (passed through as the
//! worker sent it, like IIS's `existingResponse="PassThrough"`), a `return` route's own `body`,
//! and refusals made before any site is known (400 from conformance, 503 `ConnLimit` past the
//! server's limit, 404 `NoSite`). The access log keeps the status and substatus. A route's
//! `headers` are set on its 2xx and 3xx answers, a worker's included, replacing headers of the
//! same name; errors do not get them (nginx's `add_header` without `always`), so a route's
//! `Cache-Control: max-age` never makes an error cacheable.
//!
//! Response cache ([`crate::cache`]): once the route is chosen, a `GET`/`HEAD` for a static or
//! pool route is looked up first — a hit is answered from memory (the pool is never asked, so
//! it is answered while the pool is stopped or recycling) and marked in the access log. On a
//! miss, a static 200 read whole is offered to the cache (it stores the second within 10 s),
//! and a worker's answer that allows it is copied as it streams ([`response::Tee`]) and stored
//! when whole; the first miss of a worker key fills it while concurrent misses wait.
//!
//! On plain HTTP, a `GET`/`HEAD` for a current ACME HTTP-01 token
//! (`/.well-known/acme-challenge/…`, [`crate::acme_challenge`]) is answered first, before
//! `redirect_http` and the routes; any other path under that prefix is routed as usual.
//!
//! Route choice reads the request's method, host, headers, query, client address and scheme
//! (as [`RequestFacts`], references only) when the site has routes with `match` conditions. A
//! pool route with `strip_prefix` sends the worker the path after its prefix (always starting
//! with `/`, the query kept); the logs keep the path the client sent.
//!
//! An `execute = "cgi"` route (the built-in host, `kind = "host"`): the program is resolved
//! under the route's root by [`static_files::program`] — a refusal (404, 404.8, 403, 403.14,
//! 400) is answered here and the host never sees the request — and the request goes to the
//! route's host pool like any pool request, with the route's facts in the
//! [`bulkhead_proto::host`] headers ([`HostRoute`]); [`proxy::to_worker`] removed any a client
//! sent, on every pool route. Its answers are not looked up in, or stored by, the response cache.
//! An `execute = "extension"` route goes to its host pool the same way, with the route's
//! `library` and `filters` in those headers (the host loads them); no file is resolved here.
//!
//! Failure semantics (issue #2 item 6): a request the worker never received (connect refused, a
//! kept-alive connection found closed) is sent again; a replayable request (GET/HEAD/OPTIONS with
//! no body) that a worker failed before answering is re-queued once, at the front, for another
//! worker — the failed worker is marked unreachable at once and the manager told; a request that
//! took down two workers is a poison request: 502, never retried. Anything else → 502. A body
//! that outgrew `max_body` while streaming → 413; a client that stalled its body → 408.
//!
//! Layering: below the connection, above everything it composes — [`crate::routing`],
//! [`crate::cache`], [`crate::static_files`], [`crate::queue`], [`crate::response`], [`crate::dispatch`],
//! [`crate::body`], [`crate::proxy`], [`crate::log`] and the shared [`crate::state`]. Must never
//! run application code or block: file I/O is in [`crate::static_files`], worker I/O in
//! [`crate::dispatch`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use bulkhead_config::{Execute, Limits, Scheme};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::bandwidth::{Bucket, Throttled};
use crate::body::{BodyFault, BodyLimits, BodyProgress, RequestBody};
use crate::cache::{self, Lookup};
use crate::conformance;
use crate::dispatch::fastcgi::{CgiFacts, CgiScript};
use crate::dispatch::Failure;
use crate::error::{ErrorSource, RetryType};
use crate::log::{AccessRecord, HttpErrRecord};
use crate::proxy::{self, Forwarded};
use crate::queue::Slot;
use crate::response::{self, AccessLog, Hold, Layered, Leased, Logged, ResponseBody};
use crate::routing::{Action, FixedAnswer, RequestFacts, SiteEntry, Table};
use crate::state::Shared;
use crate::static_files::{self, StaticRequest};

/// What an `execute` route tells the built-in host besides the request.
struct HostRoute {
    route: Arc<crate::routing::ExecuteRoute>,
    /// The program, for `execute = "cgi"`.
    script: Option<static_files::Script>,
}

impl HostRoute {
    /// Sets the [`bulkhead_proto::host`] headers (the client's own were removed by
    /// [`proxy::to_worker`]).
    fn headers(self, headers: &mut HeaderMap, remote: SocketAddr, local: SocketAddr) {
        use bulkhead_proto::host;
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        let route = &*self.route;
        let kind = match route.kind {
            Execute::Cgi => host::EXECUTE_CGI,
            Execute::Extension => host::EXECUTE_EXTENSION,
        };
        set(host::EXECUTE, kind.to_string());
        set(host::TIMEOUT_MS, route.timeout.as_millis().to_string());
        set(host::REMOTE, format!("{} {}", remote.ip().to_canonical(), remote.port()));
        set(host::LOCAL, format!("{} {}", local.ip().to_canonical(), local.port()));
        if let Some(s) = self.script {
            set(host::SCRIPT_FILENAME, host::encode(s.filename.as_os_str().as_encoded_bytes()));
            set(host::SCRIPT_NAME, host::encode(s.name.as_bytes()));
            set(host::DOCUMENT_ROOT, host::encode(s.document_root.as_os_str().as_encoded_bytes()));
            if !s.path_info.is_empty() {
                set(host::PATH_INFO, host::encode(s.path_info.as_bytes()));
            }
        }
        if let Some(library) = &route.library {
            headers.insert(HeaderName::from_static(host::LIBRARY), library.clone());
        }
        for filter in &route.filters {
            headers.append(HeaderName::from_static(host::FILTER), filter.clone());
        }
    }
}

/// What a replayable request is sent again from.
type Replay = (Method, Uri, Version, HeaderMap, Option<CgiFacts>);

/// Sends to a worker per request, counting connects to workers found dead.
const MAX_SENDS: u32 = 4;
/// HTTPERR reason of a 502 caused by a worker failing (IIS's word for a crashed w3wp).
const WORKER_FAILED: &str = "Connection_Abandoned_By_AppPool";

/// A response body as the request path hands it to the connection: the queue-slot lease inside,
/// the access-log completion outside.
pub type Answer = Logged<Throttled<Leased<Slot>>>;

/// What a request knows about the connection it came on; made once per connection by
/// [`crate::conn`], shared by its requests.
pub struct ConnInfo {
    pub shared: Arc<Shared>,
    /// The inherited socket (fd) it was accepted on: the key for site lookup.
    pub socket: i32,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// `peer`'s address as an `X-Forwarded-For` value, formatted once per connection.
    pub peer_ip: HeaderValue,
    /// Accepted past `limits.max_connections`: every request gets 503 `ConnLimit`.
    pub over_limit: bool,
    /// The connection is TLS (an https binding): `X-Forwarded-Proto: https`, HSTS, and no
    /// `redirect_http`.
    pub tls: bool,
    /// The site's connection counter, once a request told us the site (the connection gives it
    /// back when it closes).
    pub site_connections: OnceLock<Arc<AtomicU64>>,
}

/// The request as it arrived, kept for the logs (cheap clones: `Uri` and header values share
/// their bytes).
struct Meta {
    method: Method,
    uri: Uri,
    version: Version,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    head_bytes: u64,
}

/// One request in progress.
struct Exchange<'a> {
    ctx: &'a ConnInfo,
    table: Arc<Table>,
    meta: Meta,
    started: Instant,
    /// Site id, name and whether it logs, once known.
    site: Option<(u32, Arc<str>, bool)>,
    /// This request's body on its way to a worker, if it has one.
    body: Option<Arc<BodyProgress>>,
    /// The site's `Strict-Transport-Security` value, on a TLS connection.
    hsts: Option<HeaderValue>,
    /// The site's `max_bandwidth` bucket, if it has one.
    bandwidth: Option<Arc<Bucket>>,
    /// Index in `table.sites` of the site the request names, for its error pages (known even
    /// when a limit refused the request before the site was taken).
    page_site: Option<usize>,
    /// The chosen route's response `headers`.
    route_headers: Option<Arc<[(HeaderName, HeaderValue)]>>,
    /// The answer is a worker's or a `return` route's own body: never replaced by an error page.
    own_answer: bool,
    /// Answered from the response cache (the access log's `x-cache`).
    cache_hit: bool,
    /// A worker's answer to this request may be stored: the key's host and `Accept-Encoding`
    /// (its path and query are `meta.uri`'s).
    cache_store: Option<(HeaderValue, Option<HeaderValue>)>,
    /// This request fills its cache key: concurrent misses wait for it (released with the
    /// store, or when this exchange ends).
    cache_fill: Option<cache::FillGuard>,
}

/// Answers one request.
pub async fn handle(ctx: &ConnInfo, req: Request<Incoming>) -> Result<Response<Answer>, Infallible> {
    let meta = Meta {
        method: req.method().clone(),
        uri: req.uri().clone(),
        version: req.version(),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
        referer: req.headers().get(header::REFERER).cloned(),
        head_bytes: request_head_bytes(&req),
    };
    let mut x = Exchange {
        ctx,
        table: ctx.shared.table(),
        meta,
        started: Instant::now(),
        site: None,
        body: None,
        hsts: None,
        bandwidth: None,
        page_site: None,
        route_headers: None,
        own_answer: false,
        cache_hit: false,
        cache_store: None,
        cache_fill: None,
    };
    let (mut resp, substatus) = x.route(req).await;
    x.site_content(&mut resp);
    if let Some(hsts) = x.hsts.take() {
        resp.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    Ok(x.finish(resp, substatus))
}

/// An answer no worker made: no slot to hold.
fn unleased(resp: Response<ResponseBody>) -> Response<Leased<Slot>> {
    resp.map(|body| Layered::new(body, None))
}

fn plain(code: StatusCode) -> Response<Leased<Slot>> {
    unleased(response::plain(code))
}

impl Exchange<'_> {
    async fn route(&mut self, req: Request<Incoming>) -> (Response<Leased<Slot>>, u16) {
        if self.ctx.over_limit {
            return self.refuse_and_close(StatusCode::SERVICE_UNAVAILABLE, "ConnLimit", None);
        }
        if let Some(reason) = conformance::check(&req) {
            return self.refuse_and_close(StatusCode::BAD_REQUEST, reason, None);
        }
        let limited = check_limits(&req, &self.table.limits);
        let table = self.table.clone();
        let host = req.uri().host().or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()));
        let site = table.site_for(self.ctx.socket, host);
        self.page_site = site.map(|s| s.id as usize - 1);
        if let Some((code, reason)) = limited {
            return self.refuse(code, reason, None);
        }
        let Some(site) = site else {
            return self.refuse(StatusCode::NOT_FOUND, "NoSite", None);
        };
        self.site = Some((site.id, site.name.clone(), site.log_enabled));
        self.bandwidth = site.bandwidth.clone();
        if !self.claim_site_connection(site) {
            return self.refuse_and_close(StatusCode::SERVICE_UNAVAILABLE, "ConnLimit", None);
        }
        let path = req.uri().path();
        if path == "*" {
            if req.method() != Method::OPTIONS {
                return self.refuse_and_close(StatusCode::BAD_REQUEST, "URL", None);
            }
            return (unleased(options_asterisk()), 0);
        }
        if !self.ctx.tls && path.starts_with(crate::acme_challenge::PREFIX) {
            if let Some(answer) = self.acme_challenge(&req) {
                return (answer, 0);
            }
        }
        if self.ctx.tls {
            self.hsts = site.hsts.clone();
        } else if let Some(port) = site.redirect_https_port {
            let host = match host {
                Some(h) => crate::routing::host_name(h).to_string(),
                None if self.ctx.local.is_ipv6() => format!("[{}]", self.ctx.local.ip()),
                None => self.ctx.local.ip().to_string(),
            };
            return (unleased(to_https(&host, port, req.uri())), 0);
        }
        let facts = RequestFacts {
            method: req.method(),
            host,
            headers: req.headers(),
            query: req.uri().query(),
            source: self.ctx.peer.ip(),
            scheme: if self.ctx.tls { Scheme::Https } else { Scheme::Http },
        };
        let Some((route, rest)) = site.route(path, &facts) else { return (plain(StatusCode::NOT_FOUND), 0) };
        self.route_headers = route.headers.clone();
        let cache = &self.ctx.shared.cache;
        let cached = matches!(route.action, Action::Static(_) | Action::Pool { .. })
            && cache.enabled()
            && cache::request_may_hit(req.method(), req.headers());
        // Built only for a request the cache may answer: the header lookups are not free.
        let key = cached.then(|| Lookup {
            site: site.id,
            host: host.unwrap_or(""),
            path,
            query: req.uri().query(),
            accept_encoding: req.headers().get(header::ACCEPT_ENCODING),
            ranged: req.headers().contains_key(header::RANGE),
        });
        if let Some(entry) = key.as_ref().and_then(|key| cache.lookup(key)) {
            self.cache_hit = true;
            return (unleased(entry.answer(req.method(), req.headers())), 0);
        }
        // The key of a request whose answer may be stored.
        let store = key.filter(|_| cache::request_may_store(req.method(), req.headers()));
        if let (Some(key), Action::Pool { .. }) = (&store, &route.action) {
            match cache.begin_fill(key) {
                cache::Fill::Leader(guard) => self.cache_fill = Some(guard),
                cache::Fill::Wait(filled) => {
                    filled.wait(cache::FILL_WAIT).await;
                    if let Some(entry) = cache.lookup(key) {
                        self.cache_hit = true;
                        return (unleased(entry.answer(req.method(), req.headers())), 0);
                    }
                }
            }
            self.cache_store = store_key(key);
        }
        match &route.action {
            Action::Redirect { to, status } => (unleased(redirect(to, rest, req.uri().query(), *status)), 0),
            Action::Return(fixed) => {
                self.own_answer = fixed.body.is_some();
                (unleased(fixed_answer(fixed)), 0)
            }
            Action::Pool { pool, strip_prefix } => {
                let uri = match strip_prefix.then(|| stripped(rest, req.uri().query())) {
                    None => None,
                    Some(Ok(uri)) => Some(uri),
                    Some(Err(e)) => {
                        tracing::error!("pool {:?}: cannot strip the route prefix from {path:?}: {e}", &**pool);
                        return self.refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal", Some(pool.clone()));
                    }
                };
                self.send_to_pool(req, pool.clone(), uri, None, None).await
            }
            Action::Execute(exec) => {
                let script = match exec.root.as_deref().map(|root| static_files::program(root, path, rest)) {
                    None => None,
                    Some(Ok(script)) => Some(script),
                    Some(Err((code, substatus))) => return (plain(code), substatus),
                };
                let pool = exec.pool.clone();
                let host = HostRoute { route: Arc::clone(exec), script };
                self.send_to_pool(req, pool, None, None, Some(host)).await
            }
            Action::Static(root) => {
                let sreq = StaticRequest {
                    method: req.method(),
                    headers: req.headers(),
                    path,
                    rest,
                    query: req.uri().query(),
                };
                match static_files::serve(root, &sreq).await {
                    static_files::Outcome::Response(resp, substatus) => {
                        if let Some(key) = &store {
                            store_static(cache, key, root, rest, &resp);
                        }
                        (unleased(resp), substatus)
                    }
                    static_files::Outcome::Handler(pool, script) => {
                        if let Some(key) = &store {
                            self.cache_store = store_key(key);
                        }
                        self.send_to_pool(req, pool, None, Some(script), None).await
                    }
                }
            }
        }
    }

    /// An ACME HTTP-01 challenge the manager handed over: 200 with the key authorization for
    /// GET and HEAD of a current token; anything else falls through to the site's routes.
    fn acme_challenge(&self, req: &Request<Incoming>) -> Option<Response<Leased<Slot>>> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return None;
        }
        let body = self.ctx.shared.acme.answer(req.uri().path())?;
        let len = body.len();
        let body = if req.method() == Method::HEAD { ResponseBody::empty() } else { ResponseBody::full(body) };
        let mut resp = Response::new(body);
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(unleased(resp))
    }

    /// Counts this connection against its site's `max_connections` (once per connection).
    fn claim_site_connection(&self, site: &SiteEntry) -> bool {
        let conn = self.ctx;
        if conn.site_connections.get().is_some() {
            return true;
        }
        let now = site.connections.fetch_add(1, Ordering::Relaxed) + 1;
        if now > site.max_connections {
            site.connections.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        if conn.site_connections.set(site.connections.clone()).is_err() {
            site.connections.fetch_sub(1, Ordering::Relaxed);
        }
        true
    }

    /// Queues the request for a pool, dispatches it, retries as the failure semantics allow.
    /// `uri`: the target to send instead of the client's (`strip_prefix`); `script`: the file a
    /// static route's handler resolved (FastCGI's `SCRIPT_FILENAME`); `host`: an `execute`
    /// route's facts for the built-in host, sent as [`bulkhead_proto::host`] headers.
    async fn send_to_pool(
        &mut self,
        req: Request<Incoming>,
        pool: Arc<str>,
        uri: Option<Uri>,
        script: Option<static_files::Script>,
        host: Option<HostRoute>,
    ) -> (Response<Leased<Slot>>, u16) {
        let Some(queue) = self.ctx.shared.pool(&pool) else {
            tracing::error!("route names pool {:?}, which the listener does not know", &*pool);
            return self.refuse(StatusCode::SERVICE_UNAVAILABLE, "AppShutdown", Some(pool));
        };
        let (mut parts, body) = req.into_parts();
        if parts.version == Version::HTTP_2 {
            proxy::http2_to_http1(&mut parts);
        }
        if let Some(uri) = uri {
            parts.uri = uri;
        }
        let replayable = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) && body.is_end_stream();
        let shared = &self.ctx.shared;
        let proto = if self.ctx.tls { "https" } else { "http" };
        let next_id = || shared.next_request_id();
        proxy::to_worker(&mut parts.headers, &Forwarded { client_ip: &self.ctx.peer_ip, proto, request_id: &next_id });
        if let Some(host) = host {
            host.headers(&mut parts.headers, self.ctx.peer, self.ctx.local);
        }
        // What a FastCGI responder needs to know besides the request (only for such pools).
        if queue.fastcgi() {
            parts.extensions.insert(CgiFacts {
                remote: self.ctx.peer,
                local: self.ctx.local,
                https: self.ctx.tls,
                script: script.map(|s| CgiScript {
                    filename: s.filename,
                    name: s.name,
                    path_info: s.path_info,
                    document_root: s.document_root,
                }),
            });
        }
        let replay = replayable.then(|| {
            let facts = parts.extensions.get::<CgiFacts>().cloned();
            (parts.method.clone(), parts.uri.clone(), parts.version, parts.headers.clone(), facts)
        });
        let body = if replayable {
            RequestBody::Empty
        } else {
            let l = &self.table.limits;
            let limits = BodyLimits {
                max: l.max_body,
                stall: l.connection_timeout,
                min_rate: l.min_bytes_per_sec,
                grace: l.min_bytes_grace,
            };
            let (body, progress) = RequestBody::client(body, limits);
            self.body = Some(progress);
            if !queue.request_buffering() {
                body
            } else {
                // Read whole before a worker slot is taken (slow uploads hold no worker); the
                // worker gets a Content-Length body.
                match body.spool(&self.table.spool_dir).await {
                    Ok((spooled, len)) => {
                        if let Some(len) = len {
                            parts.headers.remove(header::TRANSFER_ENCODING);
                            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                        }
                        spooled
                    }
                    Err(e) => {
                        if let Some(refusal) = self.body_refusal(&pool) {
                            return refusal;
                        }
                        tracing::error!("pool {:?}: cannot spool a request body: {e}", &*pool);
                        return self.refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal", Some(pool));
                    }
                }
            }
        };
        let mut request = Some(Request::from_parts(parts, body));
        let mut exclude = None;
        let mut kills = 0;
        for sends in 1..=MAX_SENDS {
            let slot = match queue.acquire(exclude, sends > 1).await {
                Ok(slot) => slot,
                Err(e) => return self.refuse(StatusCode::SERVICE_UNAVAILABLE, e.reason(), Some(pool)),
            };
            let Some(req) = request.take().or_else(|| replay.as_ref().map(rebuild)) else { break };
            let sent = slot.worker().send(req);
            let answered = match queue.response_timeout() {
                None => sent.await,
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(answered) => answered,
                    // Dropping the exchange cancels the request in the worker (a CANCEL frame, or
                    // the HTTP/1.1 connection closed); the worker is slow, not dead.
                    Err(_) => {
                        tracing::warn!(
                            "pool {:?}: no response head within response_timeout {:?}; cancelled, answering 504",
                            &*pool,
                            limit
                        );
                        return (plain(StatusCode::GATEWAY_TIMEOUT), 0);
                    }
                },
            };
            let failure = match answered {
                Ok(response) => {
                    let (mut parts, incoming) = response.into_parts();
                    proxy::to_client(&mut parts.headers);
                    self.own_answer = true;
                    let body = match self.tee(&parts) {
                        Some((limit, sink)) => ResponseBody::Tee(Box::new(response::Tee::new(incoming, limit, sink))),
                        None => ResponseBody::Worker(incoming),
                    };
                    let body = Layered::new(body, Some(Hold(slot)));
                    return (Response::from_parts(parts, body), 0);
                }
                Err(failure) => failure,
            };
            let Failure { error, request: unsent } = failure;
            if let Some(refusal) = self.body_refusal(&pool) {
                return refusal;
            }
            match error.source_of() {
                ErrorSource::Client => return self.refuse(StatusCode::BAD_REQUEST, "BadRequest", Some(pool)),
                ErrorSource::Internal => {
                    tracing::error!("pool {:?}: {error}", &*pool);
                    return self.refuse(StatusCode::BAD_GATEWAY, "Internal", Some(pool));
                }
                ErrorSource::Worker => {}
            }
            let worker = slot.worker().id;
            queue.worker_unreachable(worker, &error.to_string());
            // An external server is the pool's only one: try it again (up to MAX_SENDS).
            exclude = (!slot.worker().external).then_some(worker);
            drop(slot);
            match error.retry() {
                RetryType::NotSent => request = unsent,
                RetryType::IfReplayable if replay.is_some() => {
                    kills += 1;
                    if kills >= 2 {
                        tracing::warn!(
                            "pool {:?}: {} {} failed two workers; answering 502 and not retrying it (poison request)",
                            &*pool,
                            self.meta.method,
                            self.meta.uri.path()
                        );
                        break;
                    }
                }
                RetryType::IfReplayable | RetryType::Never => break,
            }
        }
        self.refuse(StatusCode::BAD_GATEWAY, WORKER_FAILED, Some(pool))
    }

    /// The response cache's copy of a worker's answer, when the request and the answer allow it
    /// to be stored: its size limit and where it goes when whole.
    fn tee(&mut self, parts: &http::response::Parts) -> Option<(usize, response::TeeSink)> {
        let (host, accept_encoding) = self.cache_store.take()?;
        let lifetime = cache::worker_lifetime(parts.status, &parts.headers)?;
        let site = self.site.as_ref()?.0;
        let cache = self.ctx.shared.cache.clone();
        let limit = usize::try_from(cache.limits().max_item).unwrap_or(usize::MAX);
        let headers = parts.headers.clone();
        let uri = self.meta.uri.clone();
        let stored = Instant::now();
        // Released once the answer is stored (or the body is dropped unfinished).
        let fill = self.cache_fill.take();
        let sink = move |body: bytes::Bytes| {
            let key = Lookup {
                site,
                host: host.to_str().unwrap_or(""),
                path: uri.path(),
                query: uri.query(),
                accept_encoding: accept_encoding.as_ref(),
                ranged: false,
            };
            let origin = cache::Origin::Worker { stored, expires: stored + lifetime };
            cache.store(&key, headers, body, origin);
            drop(fill);
        };
        Some((limit, Box::new(sink)))
    }

    /// The site's content rules on the answer: a 4xx or 5xx the listener made gets the site's
    /// error page for its status (headers such as `Allow`, `Location` and `Connection` kept;
    /// a HEAD gets the page's length, no body); a 2xx or 3xx gets the route's `headers`,
    /// replacing any of the same name.
    fn site_content(&mut self, resp: &mut Response<Leased<Slot>>) {
        let status = resp.status();
        if status.as_u16() < 400 {
            for (name, value) in self.route_headers.iter().flat_map(|h| h.iter()) {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
            return;
        }
        if self.own_answer {
            return;
        }
        let Some(page) = self.page_site.and_then(|i| self.table.sites.get(i)?.error_pages.get(&status.as_u16())) else {
            return;
        };
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, page.content_type.clone());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(page.body.len()));
        let body = if self.meta.method == Method::HEAD {
            ResponseBody::empty()
        } else {
            ResponseBody::full(page.body.clone())
        };
        *resp.body_mut() = Layered::new(body, None);
    }

    /// A refusal: HTTPERR line, short plain-text answer.
    fn refuse(&self, code: StatusCode, reason: &'static str, queue: Option<Arc<str>>) -> (Response<Leased<Slot>>, u16) {
        self.ctx.shared.log.http_err(HttpErrRecord {
            when: SystemTime::now(),
            client: self.ctx.peer,
            server: self.ctx.local,
            version: Some(self.meta.version),
            method: Some(self.meta.method.clone()),
            uri: Some(self.meta.uri.clone()),
            status: Some(code.as_u16()),
            site_id: self.site.as_ref().map(|s| s.0),
            reason,
            queue,
        });
        (plain(code), 0)
    }

    /// The answer for a request body that stopped early (413, 408 or 400, the connection
    /// closed: the rest of the body is never read), or `None` if it did not.
    fn body_refusal(&self, pool: &Arc<str>) -> Option<(Response<Leased<Slot>>, u16)> {
        let (code, reason) = match self.body.as_ref().map_or(BodyFault::None, |b| b.fault()) {
            BodyFault::None => return None,
            BodyFault::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge"),
            BodyFault::Stalled => (StatusCode::REQUEST_TIMEOUT, "Timer_EntityBody"),
            BodyFault::TooSlow => (StatusCode::REQUEST_TIMEOUT, "Timer_MinBytesPerSecond"),
            BodyFault::Client => (StatusCode::BAD_REQUEST, "Connection_Dropped"),
        };
        Some(self.refuse_and_close(code, reason, Some(pool.clone())))
    }

    /// [`Self::refuse`], and the connection closed after the answer.
    fn refuse_and_close(
        &self,
        code: StatusCode,
        reason: &'static str,
        pool: Option<Arc<str>>,
    ) -> (Response<Leased<Slot>>, u16) {
        let (mut resp, sub) = self.refuse(code, reason, pool);
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        (resp, sub)
    }

    /// Wraps the answer in its access-log completion.
    fn finish(self, resp: Response<Leased<Slot>>, substatus: u16) -> Response<Answer> {
        let head_bytes = response_head_bytes(&resp);
        let status = resp.status().as_u16();
        let log = match self.site {
            Some((_, site, true)) => Some(Box::new(AccessLog {
                log: self.ctx.shared.log.clone(),
                record: AccessRecord {
                    site,
                    when: SystemTime::UNIX_EPOCH,
                    server: self.ctx.local,
                    client: self.ctx.peer,
                    method: self.meta.method,
                    uri: self.meta.uri,
                    version: self.meta.version,
                    user_agent: self.meta.user_agent,
                    referer: self.meta.referer,
                    status,
                    substatus,
                    win32_status: 0,
                    time_taken: Default::default(),
                    sc_bytes: 0,
                    cs_bytes: 0,
                    cache_hit: self.cache_hit,
                },
                started: self.started,
                head_bytes,
                request_head_bytes: self.meta.head_bytes,
                body: self.body,
            })),
            _ => None,
        };
        let bandwidth = self.bandwidth;
        resp.map(|body| Layered::new(Throttled::new(body, bandwidth), log))
    }
}

/// What a worker answer's store needs of its key besides the URI: the host (none: not stored)
/// and the `Accept-Encoding`.
fn store_key(key: &Lookup<'_>) -> Option<(HeaderValue, Option<HeaderValue>)> {
    let host = HeaderValue::from_str(key.host).ok().filter(|_| !key.host.is_empty())?;
    Some((host, key.accept_encoding.cloned()))
}

/// Stores a static 200 whose whole body is in memory, on its second request within 10 s
/// (directories' default documents are not stored: their file is not known here).
fn store_static(
    cache: &cache::ResponseCache,
    key: &Lookup<'_>,
    root: &crate::routing::StaticRoot,
    rest: &str,
    resp: &Response<ResponseBody>,
) {
    let ResponseBody::Full(Some(body)) = resp.body() else { return };
    if !cache::static_storable(resp.status(), resp.headers())
        || body.len() as u64 > cache.limits().max_item
        || rest.ends_with('/')
        || rest.is_empty()
        || !cache.static_admits(key)
    {
        return;
    }
    let Some(path) = static_files::file_path(root, rest) else { return };
    let Some(stamp) = cache::FileStamp::of(&path) else { return };
    let watch = root.files.get(rest).map(|held| held.stamp.clone());
    let origin = cache::Origin::Static { path, stamp, checked_ms: AtomicU64::new(0), watch };
    cache.store(key, resp.headers().clone(), body.clone(), origin);
}

/// The request-level limits of `[limits]`: URL segments (414 `URL`), one header line (431
/// `FieldLength`), the whole head (431 `RequestLength`), a declared body (413 `EntityTooLarge`).
/// The answer to an asterisk-form target (RFC 9112 §3.2.4), which is about the server, not a
/// resource: `OPTIONS *` gets 200 with the methods the server takes in `Allow` (any other
/// method with it is refused, 400 `URL`). Never passed to a worker.
fn options_asterisk() -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::empty());
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

/// The methods `OPTIONS *` lists: what routes can take (pools take any method; static routes
/// GET, HEAD and OPTIONS).
const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";

fn check_limits<B>(req: &Request<B>, limits: &Limits) -> Option<(StatusCode, &'static str)> {
    let path = req.uri().path();
    let mut segments = 0u64;
    for seg in path.split('/').skip(1) {
        segments += 1;
        if seg.len() as u64 > limits.max_url_segment_length {
            return Some((StatusCode::URI_TOO_LONG, "URL"));
        }
    }
    if segments > limits.max_url_segments {
        return Some((StatusCode::URI_TOO_LONG, "URL"));
    }
    let mut head = 0u64;
    for (name, value) in req.headers() {
        let line = (name.as_str().len() + value.len() + 2) as u64;
        if line > limits.max_field_length {
            return Some((StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "FieldLength"));
        }
        head += line + 2;
    }
    if head + path.len() as u64 > limits.max_request_bytes {
        return Some((StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "RequestLength"));
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body) {
        return Some((StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge"));
    }
    None
}

/// A redirect route's answer: `to` followed by the rest of the path after the route prefix and
/// the query (`/old/a?x` with `/old → /new` goes to `/new/a?x`), as IIS does when "redirect to
/// exact destination" is off.
/// `redirect_http`: 308 to the same path and query on `https://host[:port]`.
fn to_https(host: &str, port: u16, uri: &Uri) -> Response<ResponseBody> {
    let mut to = String::with_capacity(host.len() + 16);
    to.push_str("https://");
    to.push_str(host);
    if port != 443 {
        to.push(':');
        to.push_str(&port.to_string());
    }
    redirect(&to, uri.path(), uri.query(), 308)
}

fn redirect(to: &str, rest: &str, query: Option<&str>, status: u16) -> Response<ResponseBody> {
    let mut location = String::with_capacity(to.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
    location.push_str(to);
    if to.ends_with('/') && rest.starts_with('/') {
        location.push_str(&rest[1..]);
    } else {
        location.push_str(rest);
    }
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
    let mut resp = response::plain(code);
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    resp
}

/// A `return` route's answer: its status, its body (`text/plain`) or the status's short text
/// (none for 204 and 304), and its `Location`. The body is shared, not copied.
fn fixed_answer(fixed: &FixedAnswer) -> Response<ResponseBody> {
    let mut resp = match &fixed.body {
        Some(body) => {
            let mut resp = Response::new(ResponseBody::full(body.clone()));
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            resp
        }
        None if matches!(fixed.status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) => {
            Response::new(ResponseBody::empty())
        }
        None => response::plain(fixed.status),
    };
    *resp.status_mut() = fixed.status;
    if let Some(location) = &fixed.location {
        resp.headers_mut().insert(header::LOCATION, location.clone());
    }
    resp
}

/// `strip_prefix`: the origin-form target made of the path after the route's prefix (`/` when
/// nothing is left) and the client's query.
fn stripped(rest: &str, query: Option<&str>) -> Result<Uri, http::uri::InvalidUri> {
    let path = if rest.is_empty() { "/" } else { rest };
    match query {
        None => Uri::try_from(path),
        Some(q) => {
            let mut target = String::with_capacity(path.len() + 1 + q.len());
            target.push_str(path);
            target.push('?');
            target.push_str(q);
            Uri::try_from(target)
        }
    }
}

/// A replayable request again, without a body.
fn rebuild((method, uri, version, headers, facts): &Replay) -> Request<RequestBody> {
    let mut req = Request::new(RequestBody::Empty);
    if let Some(facts) = facts {
        req.extensions_mut().insert(facts.clone());
    }
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri.clone();
    *req.version_mut() = *version;
    *req.headers_mut() = headers.clone();
    req
}

fn request_head_bytes<B>(req: &Request<B>) -> u64 {
    let line = req.method().as_str().len() + req.uri().path_and_query().map_or(1, |p| p.as_str().len()) + 12;
    let headers: usize = req.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    (line + headers + 2) as u64
}

fn response_head_bytes<B>(resp: &Response<B>) -> u64 {
    let headers: usize = resp.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    // Status line, plus the Date header hyper adds.
    (17 + 37 + headers + 2) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        bulkhead_config::parse("", "t.toml", std::path::Path::new("/")).unwrap().limits
    }

    #[test]
    fn url_limits() {
        let l = limits();
        let long = format!("/{}", "a".repeat(261));
        assert_eq!(check_limits(&Request::get(long).body(()).unwrap(), &l), Some((StatusCode::URI_TOO_LONG, "URL")));
        let deep = "/a".repeat(256);
        assert_eq!(check_limits(&Request::get(deep).body(()).unwrap(), &l), Some((StatusCode::URI_TOO_LONG, "URL")));
        assert_eq!(check_limits(&Request::get("/a/b").body(()).unwrap(), &l), None);
    }

    #[test]
    fn header_and_body_limits() {
        let mut l = limits();
        l.max_field_length = 100;
        let req = Request::get("/").header("x-big", "v".repeat(200)).body(()).unwrap();
        assert_eq!(check_limits(&req, &l), Some((StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "FieldLength")));
        l.max_body = 10;
        let req = Request::post("/").header("content-length", "11").body(()).unwrap();
        assert_eq!(check_limits(&req, &l), Some((StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge")));
    }

    #[test]
    fn https_redirect_keeps_path_query_and_port() {
        let uri: Uri = "/a/b?x=1".parse().expect("uri");
        assert_eq!(to_https("shop.example", 443, &uri).headers()[header::LOCATION], "https://shop.example/a/b?x=1");
        let r = to_https("shop.example", 8443, &uri);
        assert_eq!(r.status(), 308);
        assert_eq!(r.headers()[header::LOCATION], "https://shop.example:8443/a/b?x=1");
    }

    #[test]
    fn stripped_target_keeps_the_query_and_starts_with_a_slash() {
        assert_eq!(stripped("/a/b", Some("x=1&y")).unwrap(), "/a/b?x=1&y");
        assert_eq!(stripped("", None).unwrap(), "/");
        assert_eq!(stripped("", Some("q")).unwrap(), "/?q");
        assert_eq!(stripped("/", None).unwrap(), "/");
    }

    #[test]
    fn redirect_appends_rest_and_query() {
        let r = redirect("/new", "/a/b", Some("x=1"), 301);
        assert_eq!(r.status(), 301);
        assert_eq!(r.headers()[header::LOCATION], "/new/a/b?x=1");
        let r = redirect("https://b.example/", "/a", None, 308);
        assert_eq!(r.headers()[header::LOCATION], "https://b.example/a");
        let r = redirect("/new", "", None, 302);
        assert_eq!(r.headers()[header::LOCATION], "/new");
    }
}
