//! A Bulkhead extension in Rust, on the `bulkhead-extension` SDK: plain functions, exported by
//! one `extension!` line.
//!
//! - `GET …/` answers `hello from a Rust extension pid=… path=…`;
//! - `POST …/echo` sends the request body back (up to 1 MiB), with `X-Request-Filter` saying
//!   what the request_headers filter added to the request (`ran`);
//! - `GET …/panic` panics: the SDK catches it at the ABI boundary and the client gets a 500,
//!   while the worker goes on serving;
//! - every response carries `X-Extension: rust`, from the response_headers filter.
//!
//! Filters and handler are plain functions; `extension!` exports them as the ABI's entry points.
//!
//! `cargo build --release -p extension-rust` makes `target/release/libextension_rust.so`.

use std::io::{self, Write};

use bulkhead_extension::{Filter, Request, Response};

fn hello(req: &mut Request<'_>, resp: &mut Response<'_>) -> io::Result<()> {
    if req.path().ends_with("/panic") {
        panic!("this handler panics on purpose (GET {})", req.path());
    }
    if req.method() == "POST" && req.path().ends_with("/echo") {
        let body = req.read_body_to_vec(1 << 20)?;
        let kind = req.header_str("content-type").unwrap_or("application/octet-stream").to_string();
        let seen = req.header("x-hello-filter").unwrap_or(b"none").to_vec();
        resp.set_header("x-request-filter", seen).map_err(io::Error::other)?;
        return resp.send(200, &kind, body);
    }
    resp.set_header("content-type", "text/plain; charset=utf-8").map_err(io::Error::other)?;
    writeln!(resp, "hello from a Rust extension pid={} path={}", std::process::id(), req.path())
}

/// request_headers: runs before the handler, which sees the header it adds.
fn tag(req: &mut Request<'_>, _resp: &mut Response<'_>) -> Result<Filter, bulkhead_extension::Refused> {
    req.set_header("x-hello-filter", b"ran")?;
    Ok(Filter::Continue)
}

/// response_headers: runs on every answer, the SDK's 500 after a panic included.
fn stamp(_req: &mut Request<'_>, resp: &mut Response<'_>) -> Result<(), bulkhead_extension::Refused> {
    resp.set_header("x-extension", "rust")
}

bulkhead_extension::extension! {
    handler: hello,
    request_headers: tag,
    response_headers: stamp,
}
