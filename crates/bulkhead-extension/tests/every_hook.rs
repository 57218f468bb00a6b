//! The `extension!` macro with every key: it compiles to one exported symbol per hook with the
//! ABI's types (checked by taking each as the ABI's function-pointer type), and the handshake runs
//! `init` and answers this SDK's ABI version — or 0, refusing the load, when `init` fails. (The
//! hooks themselves are called by a real host in `bulkhead-host`'s tests.)

use std::sync::atomic::{AtomicU32, Ordering};

use bulkhead_extension::abi::{self, AbiFn, EndFn, HandlerFn, LogFn};
use bulkhead_extension::{Filter, Log, Request, Response};

static INIT_CALLS: AtomicU32 = AtomicU32::new(0);

fn init() -> Result<(), String> {
    INIT_CALLS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fn handler(_req: &mut Request<'_>, _resp: &mut Response<'_>) {}

fn request_headers(req: &mut Request<'_>, _resp: &mut Response<'_>) -> Result<Filter, bulkhead_extension::Refused> {
    req.set_header("x-seen", b"1")?;
    Ok(Filter::Continue)
}

fn authenticate(req: &mut Request<'_>, resp: &mut Response<'_>) -> std::io::Result<Filter> {
    if req.header("authorization").is_none() {
        resp.send(401, "text/plain", "who are you?\n")?;
        return Ok(Filter::Finished);
    }
    Ok(Filter::Continue)
}

fn response_headers(_req: &mut Request<'_>, resp: &mut Response<'_>) -> Result<(), bulkhead_extension::Refused> {
    resp.add_header("x-filtered", "1")
}

fn log(_req: &Request<'_>, _entry: &Log) {}

fn end(_req: &Request<'_>) {}

bulkhead_extension::extension! {
    init: init,
    handler: handler,
    request_headers: request_headers,
    authenticate: authenticate,
    response_headers: response_headers,
    log: log,
    end_of_request: end,
}

#[test]
fn every_hook_is_exported_with_the_abi_types_and_the_handshake_runs_init() {
    let _: AbiFn = bulkhead_extension_abi;
    let _: [HandlerFn; 4] = [
        bulkhead_extension_handle,
        bulkhead_filter_request_headers,
        bulkhead_filter_authenticate,
        bulkhead_filter_response_headers,
    ];
    let _: LogFn = bulkhead_filter_log;
    let _: EndFn = bulkhead_filter_end_of_request;
    assert_eq!(bulkhead_extension_abi(abi::ABI_VERSION), abi::ABI_VERSION);
    assert_eq!(INIT_CALLS.load(Ordering::SeqCst), 1);
}

#[test]
fn an_init_that_fails_or_panics_refuses_the_load() {
    assert_eq!(bulkhead_extension::glue::abi(abi::ABI_VERSION, || Err::<(), _>("no database")), 0);
    assert_eq!(bulkhead_extension::glue::abi(abi::ABI_VERSION, || -> () { panic!("init panics") }), 0);
    assert_eq!(bulkhead_extension::glue::abi(abi::ABI_VERSION, || ()), abi::ABI_VERSION);
}
