//! One request through an extension's chain, on an extension thread: the `bh_request` and
//! `bh_response` structs the libraries see, the callbacks behind their function pointers, and
//! the hooks in the ABI's order (request_headers, authenticate, handler, response_headers when
//! the head goes out, log, end_of_request).
//!
//! Called by [`super::serve`] on one of the extension threads; sends the response head through a
//! oneshot and a streamed body through [`super::body`]'s bounded channel. Choices:
//! - The two states are `#[repr(C)]` with the ABI struct first, so the pointer a library hands
//!   back to a callback is the pointer to the whole state; both live in `Box`es reached only
//!   through raw pointers while libraries run, so no Rust reference is held across a call into
//!   foreign code.
//! - Every callback catches panics (none is expected) so nothing unwinds into C, and validates
//!   what it is given: header names must be HTTP tokens, values free of CR, LF and NUL, the
//!   status 200..=999. A refusal is `BH_ERROR`, never a crash.
//! - The request body is read with `Handle::block_on` on this thread: no extra task,
//!   and the body streams at the pace the extension reads it.
//! - `response_headers` runs when the head goes out, which may be inside the handler's `write`
//!   or `flush` (nested, on the same thread), as IIS ran its send-response filters.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use bulkhead_extension::abi::{
    bh_header, bh_log, bh_request, bh_response, bh_str, HandlerFn, BH_ERROR, BH_FINISHED, BH_OK, BUFFERED_BODY,
};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};

use super::body::{Chunk, Cut, ExtensionBody, CHUNK, QUEUED_CHUNKS};
use super::library::Library;
use super::BoxError;

/// The response head, sent to the async side once.
pub(super) struct Head {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: ExtensionBody,
}

/// Where the request is in its hooks: what the callbacks allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    RequestHeaders,
    Authenticate,
    Handler,
    ResponseHeaders,
    Log,
}

/// The request side, behind the `bh_request` the libraries see.
#[repr(C)]
struct ReqState {
    raw: bh_request,
    method: String,
    path: String,
    query: String,
    remote_addr: String,
    user: Vec<u8>,
    headers: Vec<(HeaderName, HeaderValue)>,
    view: Vec<bh_header>,
    body: Option<UnsyncBoxBody<Bytes, BoxError>>,
    pending: Bytes,
    runtime: tokio::runtime::Handle,
    phase: Phase,
    body_failed: bool,
}

/// The response side, behind the `bh_response`.
#[repr(C)]
struct RespState {
    raw: bh_response,
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    view: Vec<bh_header>,
    buffer: Vec<u8>,
    head: Option<oneshot::Sender<Head>>,
    stream: Option<mpsc::Sender<Chunk>>,
    body_bytes: u64,
    client_gone: bool,
    failed: bool,
    /// The request's state and the chain's response_headers filters, for when the head goes out.
    req: *mut ReqState,
    response_filters: Vec<(Arc<Library>, HandlerFn)>,
}

fn header_view(headers: &[(HeaderName, HeaderValue)]) -> Vec<bh_header> {
    headers
        .iter()
        .map(|(n, v)| bh_header {
            name: bh_str::from_bytes(n.as_str().as_bytes()),
            value: bh_str::from_bytes(v.as_bytes()),
        })
        .collect()
}

impl ReqState {
    fn new(
        parts: &http::request::Parts,
        body: UnsyncBoxBody<Bytes, BoxError>,
        remote_addr: String,
        runtime: tokio::runtime::Handle,
    ) -> Box<Self> {
        let headers: Vec<(HeaderName, HeaderValue)> =
            parts.headers.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        // The client's Content-Length (the listener has checked it), else what the body knows.
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        let content_length = match declared {
            Some(n) => n,
            None if http_body::Body::is_end_stream(&body) => 0,
            None => http_body::Body::size_hint(&body).exact().and_then(|n| i64::try_from(n).ok()).unwrap_or(-1),
        };
        let version: &'static str = match parts.version {
            http::Version::HTTP_09 => "HTTP/0.9",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        };
        let mut state = Box::new(ReqState {
            raw: bh_request {
                size: std::mem::size_of::<bh_request>() as u32,
                host_abi: bulkhead_extension::abi::ABI_VERSION,
                method: bh_str::from_bytes(&[]),
                path: bh_str::from_bytes(&[]),
                query: bh_str::from_bytes(&[]),
                version: bh_str::from_bytes(version.as_bytes()),
                remote_addr: bh_str::from_bytes(&[]),
                user: bh_str::from_bytes(&[]),
                headers: std::ptr::null(),
                header_count: 0,
                content_length,
                read_body: req_read_body,
                set_header: req_set_header,
                remove_header: req_remove_header,
                set_user: req_set_user,
            },
            method: parts.method.as_str().to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            remote_addr,
            user: Vec::new(),
            view: header_view(&headers),
            headers,
            body: Some(body),
            pending: Bytes::new(),
            runtime,
            phase: Phase::RequestHeaders,
            body_failed: false,
        });
        state.refresh();
        state
    }

    /// Points the ABI struct at the current strings and header list.
    fn refresh(&mut self) {
        self.raw.method = bh_str::from_bytes(self.method.as_bytes());
        self.raw.path = bh_str::from_bytes(self.path.as_bytes());
        self.raw.query = bh_str::from_bytes(self.query.as_bytes());
        self.raw.remote_addr = bh_str::from_bytes(self.remote_addr.as_bytes());
        self.raw.user = bh_str::from_bytes(&self.user);
        self.view = header_view(&self.headers);
        self.raw.headers = self.view.as_ptr();
        self.raw.header_count = self.view.len();
    }

    fn read(&mut self, out: &mut [u8]) -> isize {
        loop {
            if !self.pending.is_empty() {
                let n = out.len().min(self.pending.len());
                out[..n].copy_from_slice(&self.pending.split_to(n));
                return n as isize;
            }
            let Some(body) = self.body.as_mut() else {
                return if self.body_failed { BH_ERROR as isize } else { 0 };
            };
            match self.runtime.block_on(body.frame()) {
                None => self.body = None,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending = data;
                    }
                }
                Some(Err(_)) => {
                    self.body = None;
                    self.body_failed = true;
                }
            }
        }
    }

    fn may_change_headers(&self) -> bool {
        matches!(self.phase, Phase::RequestHeaders | Phase::Authenticate)
    }
}

impl RespState {
    fn new(
        head: oneshot::Sender<Head>,
        req: *mut ReqState,
        response_filters: Vec<(Arc<Library>, HandlerFn)>,
    ) -> Box<Self> {
        let mut state = Box::new(RespState {
            raw: bh_response {
                size: std::mem::size_of::<bh_response>() as u32,
                status: 200,
                head_sent: 0,
                headers: std::ptr::null(),
                header_count: 0,
                set_status: resp_set_status,
                set_header: resp_set_header,
                add_header: resp_add_header,
                remove_header: resp_remove_header,
                write: resp_write,
                flush: resp_flush,
            },
            status: 200,
            headers: Vec::new(),
            view: Vec::new(),
            buffer: Vec::new(),
            head: Some(head),
            stream: None,
            body_bytes: 0,
            client_gone: false,
            failed: false,
            req,
            response_filters,
        });
        state.refresh();
        state
    }

    fn refresh(&mut self) {
        self.raw.status = self.status;
        self.raw.head_sent = u16::from(self.head.is_none());
        self.view = header_view(&self.headers);
        self.raw.headers = self.view.as_ptr();
        self.raw.header_count = self.view.len();
    }

    fn head_sent(&self) -> bool {
        self.head.is_none()
    }

    fn in_response_filter(&self) -> bool {
        // SAFETY: `req` lives (boxed) for the whole call of `run`, which owns both states.
        unsafe { (*self.req).phase == Phase::ResponseHeaders }
    }

    fn write(&mut self, data: &[u8]) -> i32 {
        if self.in_response_filter() || self.client_gone || (self.failed && self.head_sent()) {
            return BH_ERROR;
        }
        self.body_bytes += data.len() as u64;
        if !self.head_sent() {
            self.buffer.extend_from_slice(data);
            if self.buffer.len() > BUFFERED_BODY {
                return self.start_streaming();
            }
            return BH_OK;
        }
        self.send_chunks(data)
    }

    fn flush(&mut self) -> i32 {
        if self.in_response_filter() || self.client_gone {
            return BH_ERROR;
        }
        if self.head_sent() {
            return BH_OK;
        }
        self.start_streaming()
    }

    fn start_streaming(&mut self) -> i32 {
        let buffered = std::mem::take(&mut self.buffer);
        self.send_head(true);
        if self.failed || self.client_gone {
            return BH_ERROR;
        }
        self.send_chunks(&buffered)
    }

    fn send_chunks(&mut self, data: &[u8]) -> i32 {
        let Some(tx) = self.stream.as_ref() else { return BH_ERROR };
        for piece in data.chunks(CHUNK) {
            if tx.blocking_send(Ok(Bytes::copy_from_slice(piece))).is_err() {
                self.client_gone = true;
                return BH_ERROR;
            }
        }
        BH_OK
    }

    /// Runs the response_headers filters, then sends the head (and, when not `streaming`, the
    /// whole buffered body). A failing filter turns the response into the host's 500.
    fn send_head(&mut self, streaming: bool) {
        let me: *mut RespState = self;
        let req = self.req;
        let filters = self.response_filters.clone();
        // SAFETY: `req` is `run`'s boxed request state, alive for the whole request.
        let before = unsafe { std::mem::replace(&mut (*req).phase, Phase::ResponseHeaders) };
        for (library, filter) in &filters {
            // SAFETY: the ABI's call: both structs valid for the call; the library reaches them only
            // through these pointers while it runs, and no Rust reference to them is used meanwhile.
            let code = unsafe { filter(req.cast::<bh_request>(), me.cast::<bh_response>()) };
            if code != BH_OK {
                tracing::warn!(
                    "extension {}: bulkhead_filter_response_headers returned {code}; answering 500",
                    library.path().display()
                );
                self.fail_before_head();
                break;
            }
        }
        // SAFETY: as above.
        unsafe { (*req).phase = before };
        let streaming = streaming && !self.failed;
        let mut headers = std::mem::take(&mut self.headers);
        headers.retain(|(n, _)| n != http::header::CONTENT_LENGTH && n != http::header::TRANSFER_ENCODING);
        let body = if streaming {
            let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
            self.stream = Some(tx);
            ExtensionBody::streamed(rx)
        } else {
            let bytes = Bytes::from(std::mem::take(&mut self.buffer));
            if let Ok(len) = HeaderValue::try_from(bytes.len().to_string()) {
                headers.push((http::header::CONTENT_LENGTH, len));
            }
            ExtensionBody::whole(bytes)
        };
        let head = Head { status: self.status, headers, body };
        if let Some(tx) = self.head.take() {
            if tx.send(head).is_err() {
                self.client_gone = true;
                self.stream = None;
            }
        }
        self.refresh();
    }

    /// Replaces what was built so far with the host's 500 (only before the head is sent).
    fn fail_before_head(&mut self) {
        self.failed = true;
        self.status = 500;
        self.headers = vec![(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))];
        self.buffer = b"500 Internal Server Error\n".to_vec();
        self.refresh();
    }

    /// After the handler (or the filter that answered): the head if still unsent, the end of a
    /// streamed body, or its cut when `ok` is false.
    fn finish(&mut self, ok: bool) {
        if !ok && !self.head_sent() {
            self.fail_before_head();
            // The host's 500 still passes the response_headers filters, as any answer does.
            self.failed = false;
            self.send_head(false);
            self.failed = true;
        } else if !self.head_sent() {
            self.send_head(false);
        } else if !ok {
            self.failed = true;
            if let Some(tx) = self.stream.take() {
                let _ = tx.blocking_send(Err(Cut));
            }
        }
        self.stream = None;
    }
}

/// Runs `f` (a callback's body) so that no panic unwinds into the library's C frames.
fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn header_pair(name: bh_str, value: bh_str) -> Option<(HeaderName, HeaderValue)> {
    // SAFETY: strings a library passes to a callback are readable for the call; copied here.
    let (name, value) = unsafe { (name.as_bytes(), value.as_bytes()) };
    Some((HeaderName::from_bytes(name).ok()?, HeaderValue::from_bytes(value).ok()?))
}

fn header_name(name: bh_str) -> Option<HeaderName> {
    // SAFETY: as for header_pair.
    HeaderName::from_bytes(unsafe { name.as_bytes() }).ok()
}

/// # Safety (every callback below)
/// The pointer is the one the host passed to the running entry point: the first field of a live
/// `ReqState` or `RespState` (null is refused).
unsafe fn req_state<'a>(req: *mut bh_request) -> Option<&'a mut ReqState> {
    // SAFETY: see above: ReqState is repr(C) with its bh_request first.
    unsafe { req.cast::<ReqState>().as_mut() }
}

unsafe fn resp_state<'a>(resp: *mut bh_response) -> Option<&'a mut RespState> {
    // SAFETY: as for req_state.
    unsafe { resp.cast::<RespState>().as_mut() }
}

unsafe extern "C" fn req_read_body(req: *mut bh_request, buf: *mut c_void, cap: usize) -> isize {
    guard(BH_ERROR as isize, || {
        // SAFETY: the callback's contract (req_state).
        let Some(state) = (unsafe { req_state(req) }) else { return BH_ERROR as isize };
        if buf.is_null() || cap == 0 {
            return if cap == 0 { 0 } else { BH_ERROR as isize };
        }
        // SAFETY: the ABI: `buf` is writable for `cap` bytes during the call.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), cap.min(isize::MAX as usize)) };
        state.read(out)
    })
}

unsafe extern "C" fn req_set_header(req: *mut bh_request, name: bh_str, value: bh_str) -> i32 {
    guard(BH_ERROR, || {
        // SAFETY: the callback's contract.
        let Some(state) = (unsafe { req_state(req) }) else { return BH_ERROR };
        let Some((name, value)) = header_pair(name, value).filter(|_| state.may_change_headers()) else {
            return BH_ERROR;
        };
        state.headers.retain(|(n, _)| *n != name);
        state.headers.push((name, value));
        state.refresh();
        BH_OK
    })
}

unsafe extern "C" fn req_remove_header(req: *mut bh_request, name: bh_str) -> i32 {
    guard(BH_ERROR, || {
        // SAFETY: the callback's contract.
        let Some(state) = (unsafe { req_state(req) }) else { return BH_ERROR };
        let Some(name) = header_name(name).filter(|_| state.may_change_headers()) else { return BH_ERROR };
        state.headers.retain(|(n, _)| *n != name);
        state.refresh();
        BH_OK
    })
}

unsafe extern "C" fn req_set_user(req: *mut bh_request, user: bh_str) -> i32 {
    guard(BH_ERROR, || {
        // SAFETY: the callback's contract.
        let Some(state) = (unsafe { req_state(req) }) else { return BH_ERROR };
        // SAFETY: as for header_pair.
        let user = unsafe { user.as_bytes() };
        if state.phase != Phase::Authenticate || user.iter().any(|b| b.is_ascii_control()) {
            return BH_ERROR;
        }
        state.user = user.to_vec();
        state.refresh();
        BH_OK
    })
}

unsafe extern "C" fn resp_set_status(resp: *mut bh_response, status: u16) -> i32 {
    guard(BH_ERROR, || {
        // SAFETY: the callback's contract.
        let Some(state) = (unsafe { resp_state(resp) }) else { return BH_ERROR };
        if state.head_sent() || !(200..=999).contains(&status) {
            return BH_ERROR;
        }
        state.status = status;
        state.refresh();
        BH_OK
    })
}

fn change_response_headers(resp: *mut bh_response, f: impl FnOnce(&mut Vec<(HeaderName, HeaderValue)>) -> bool) -> i32 {
    guard(BH_ERROR, || {
        // SAFETY: the callback's contract.
        let Some(state) = (unsafe { resp_state(resp) }) else { return BH_ERROR };
        if state.head_sent() || !f(&mut state.headers) {
            return BH_ERROR;
        }
        state.refresh();
        BH_OK
    })
}

unsafe extern "C" fn resp_set_header(resp: *mut bh_response, name: bh_str, value: bh_str) -> i32 {
    change_response_headers(resp, |headers| match header_pair(name, value) {
        Some((name, value)) => {
            headers.retain(|(n, _)| *n != name);
            headers.push((name, value));
            true
        }
        None => false,
    })
}

unsafe extern "C" fn resp_add_header(resp: *mut bh_response, name: bh_str, value: bh_str) -> i32 {
    change_response_headers(resp, |headers| match header_pair(name, value) {
        Some(pair) => {
            headers.push(pair);
            true
        }
        None => false,
    })
}

unsafe extern "C" fn resp_remove_header(resp: *mut bh_response, name: bh_str) -> i32 {
    change_response_headers(resp, |headers| match header_name(name) {
        Some(name) => {
            headers.retain(|(n, _)| *n != name);
            true
        }
        None => false,
    })
}

unsafe extern "C" fn resp_write(resp: *mut bh_response, data: *const c_void, len: usize) -> i32 {
    guard(BH_ERROR, || {
        // SAFETY: the callback's contract.
        let Some(state) = (unsafe { resp_state(resp) }) else { return BH_ERROR };
        if len == 0 {
            return BH_OK;
        }
        if data.is_null() {
            return BH_ERROR;
        }
        // SAFETY: the ABI: `data` is readable for `len` bytes during the call.
        let data = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        state.write(data)
    })
}

unsafe extern "C" fn resp_flush(resp: *mut bh_response) -> i32 {
    guard(BH_ERROR, || {
        // SAFETY: the callback's contract.
        let Some(state) = (unsafe { resp_state(resp) }) else { return BH_ERROR };
        state.flush()
    })
}

/// The libraries of one route, in hook order: its `filters` as listed, then its `library`
/// (which has a handler: [`super::Extensions::chain`] checked).
pub(super) struct Chain {
    pub libraries: Vec<Arc<Library>>,
}

/// Runs one request through `chain` (on an extension thread) and sends its head to `head`.
pub(super) fn run(
    chain: Chain,
    parts: http::request::Parts,
    body: UnsyncBoxBody<Bytes, BoxError>,
    remote_addr: String,
    head: oneshot::Sender<Head>,
    runtime: tokio::runtime::Handle,
) {
    let started = Instant::now();
    let what = format!("{} {}", parts.method, parts.uri.path());
    let response_filters =
        chain.libraries.iter().filter_map(|l| l.response_headers.map(|f| (Arc::clone(l), f))).collect();
    let req: *mut ReqState = Box::into_raw(ReqState::new(&parts, body, remote_addr, runtime));
    let resp: *mut RespState = Box::into_raw(RespState::new(head, req, response_filters));
    let (raw_req, raw_resp) = (req.cast::<bh_request>(), resp.cast::<bh_response>());
    let set_phase = |phase| {
        // SAFETY: `req` is alive until the end of this function; no reference to it is held.
        unsafe { (*req).phase = phase }
    };
    let failed = |library: &Library, entry: &str, code: i32| {
        tracing::warn!("extension {}: {entry} returned {code} for {what}; answering 500", library.path().display());
    };

    let mut ok = true;
    let mut answered = false;
    'phases: for (phase, entry) in [
        (Phase::RequestHeaders, "bulkhead_filter_request_headers"),
        (Phase::Authenticate, "bulkhead_filter_authenticate"),
    ] {
        set_phase(phase);
        for library in &chain.libraries {
            let hook = if phase == Phase::RequestHeaders { library.request_headers } else { library.authenticate };
            let Some(hook) = hook else { continue };
            // SAFETY: the ABI's call, with both structs valid for it (see the module's doc).
            match unsafe { hook(raw_req, raw_resp) } {
                BH_OK => {}
                BH_FINISHED => {
                    answered = true;
                    break 'phases;
                }
                code => {
                    failed(library, entry, code);
                    ok = false;
                    break 'phases;
                }
            }
        }
    }
    if ok && !answered {
        set_phase(Phase::Handler);
        if let Some(library) = chain.libraries.last() {
            if let Some(handle) = library.handle {
                // SAFETY: as above.
                let code = unsafe { handle(raw_req, raw_resp) };
                if code != BH_OK {
                    failed(library, "bulkhead_extension_handle", code);
                    ok = false;
                }
            }
        }
    }
    set_phase(Phase::Handler);
    // SAFETY: no library runs now; `resp` is alive until the end of this function.
    let (status, body_bytes, gone) = unsafe {
        (*resp).finish(ok);
        ((*resp).status, (*resp).body_bytes, (*resp).client_gone || (*resp).failed || (*req).body_failed)
    };

    set_phase(Phase::Log);
    let log = bh_log {
        size: std::mem::size_of::<bh_log>() as u32,
        status,
        reserved: 0,
        body_bytes,
        duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        outcome: if ok && !gone { BH_OK } else { BH_ERROR },
    };
    for library in &chain.libraries {
        if let Some(hook) = library.log {
            // SAFETY: as above; `log` lives across the call.
            unsafe { hook(raw_req, &log) };
        }
    }
    for library in &chain.libraries {
        if let Some(hook) = library.end_of_request {
            // SAFETY: as above.
            unsafe { hook(raw_req) };
        }
    }
    // SAFETY: both were made by Box::into_raw above and no library holds them past its call.
    unsafe {
        drop(Box::from_raw(resp));
        drop(Box::from_raw(req));
    }
}
