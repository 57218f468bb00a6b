//! What the [`extension!`](crate::extension) macro's exported functions call: the one place where
//! the raw pointers of the C ABI become [`Request`] and [`Response`], and where a panic is caught
//! before it could unwind into the host (undefined behaviour across `extern "C"`; Rust aborts
//! the process instead since 1.81) — a caught panic returns `BH_ERROR`, which the host answers
//! with 500 when nothing was sent yet. The panic's message reaches the pool's log through the
//! default panic hook (stderr).
//!
//! Public only for the macro (`#[doc(hidden)]`); not an API. An extension built with
//! `panic = "abort"` cannot catch anything: its panic ends the worker process, which the manager
//! replaces — the same as a segfault.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::{bh_log, bh_request, bh_response, ABI_VERSION, BH_ERROR};
use crate::{Log, Outcome, Request, Response};

/// The handshake: runs `init` once and returns the ABI this library was built for (0 when `init`
/// failed or panicked, which makes the host refuse the library).
pub fn abi<R: Outcome>(_host_abi: u32, init: impl FnOnce() -> R) -> u32 {
    match catch_unwind(AssertUnwindSafe(|| init().into_code())) {
        Ok(code) if code >= 0 => ABI_VERSION,
        _ => 0,
    }
}

/// The handler and the request/response filters.
///
/// # Safety
/// `req` and `resp` are what the host passed to the running entry point (null is refused).
pub unsafe fn call<R, F>(req: *mut bh_request, resp: *mut bh_response, f: F) -> i32
where
    R: Outcome,
    F: FnOnce(&mut Request<'_>, &mut Response<'_>) -> R,
{
    if req.is_null() || resp.is_null() {
        return BH_ERROR;
    }
    // SAFETY: the host's pointers for this call (the caller's contract), checked non-null.
    let (mut req, mut resp) = unsafe { (Request::from_raw(req), Response::from_raw(resp)) };
    catch_unwind(AssertUnwindSafe(|| f(&mut req, &mut resp).into_code())).unwrap_or(BH_ERROR)
}

/// The log hook.
///
/// # Safety
/// As for [`call`].
pub unsafe fn log<F>(req: *mut bh_request, log: *const bh_log, f: F)
where
    F: FnOnce(&Request<'_>, &Log),
{
    if req.is_null() || log.is_null() {
        return;
    }
    // SAFETY: as for `call`; the host's bh_log is valid and unchanged for the call.
    let (req, raw) = unsafe { (Request::from_raw(req), *log) };
    let entry = Log {
        status: raw.status,
        body_bytes: raw.body_bytes,
        duration: std::time::Duration::from_micros(raw.duration_us),
        ok: raw.outcome >= 0,
    };
    let _ = catch_unwind(AssertUnwindSafe(|| f(&req, &entry)));
}

/// The end-of-request hook.
///
/// # Safety
/// As for [`call`].
pub unsafe fn end<F>(req: *mut bh_request, f: F)
where
    F: FnOnce(&Request<'_>),
{
    if req.is_null() {
        return;
    }
    // SAFETY: as for `call`.
    let req = unsafe { Request::from_raw(req) };
    let _ = catch_unwind(AssertUnwindSafe(|| f(&req)));
}

/// No `init` hook: nothing to do.
pub fn no_init() {}
