//! Bulkhead's extension SDK: a plain Rust function becomes a native extension of the built-in
//! host worker (`kind = "host"` pools, routes with `execute = "extension"`), through the C ABI
//! of `include/bulkhead_extension.h` (version 1.0), which is the specification of everything
//! here.
//!
//! ```
//! use std::io::Write;
//! use bulkhead_extension::{Request, Response};
//!
//! fn hello(req: &mut Request<'_>, resp: &mut Response<'_>) -> std::io::Result<()> {
//!     resp.set_header("content-type", "text/plain").map_err(std::io::Error::other)?;
//!     write!(resp, "hello, {}\n", req.path())
//! }
//!
//! bulkhead_extension::extension!(hello);
//! ```
//!
//! Built as a `cdylib` (`crate-type = ["cdylib"]`), that is a library the host loads. With
//! filters: `extension! { handler: hello, request_headers: tag, response_headers: stamp, log:
//! audit }` (any subset; also `authenticate`, `end_of_request`, and `init`, run once at load).
//!
//! Choices:
//! - The macro exports the C symbols; the functions it exports call [`glue`], where the raw
//!   pointers become [`Request`] and [`Response`], borrowed only for the call, so no pointer of
//!   the host can be kept past the call it is valid for. All the `unsafe` of an extension lives
//!   here (the glue, and the two views' callback calls), each block with its `// SAFETY:`
//!   reason; an extension's own code needs none.
//! - A panic is caught at the boundary and becomes `BH_ERROR`, which the host answers with 500
//!   (or cuts the response when its head was already sent). Do not build extensions with
//!   `panic = "abort"`: then a panic ends the worker, which the manager replaces.
//! - No dependencies, no runtime: the library runs inside the host's process, on its blocking
//!   threads, and may block. Several requests call it at once from different threads, so a
//!   handler is `Fn`, never `FnMut`, and shared state needs its own locks.
//! - What a handler returns is any [`Outcome`]: `()`, `Result<(), E: Display>` (an `Err` is
//!   printed to stderr, the pool's log, and answered 500), or for the request filters a
//!   [`Filter`] (or `Result<Filter, E>`).

pub mod abi;
#[doc(hidden)]
pub mod glue;
mod request;
mod response;

use std::fmt::Display;
use std::time::Duration;

pub use request::Request;
pub use response::Response;

/// A callback the host refused: called where it does not apply (`set_header` outside a request
/// filter, `set_status` once the head is sent), or with a value it cannot take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The callback's name.
    pub what: &'static str,
}

impl Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the host refused {} (called where it does not apply, or with a value it cannot take)", self.what)
    }
}

impl std::error::Error for Refused {}

/// What a request_headers or authenticate filter decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Go on: the next filter, then the handler.
    Continue,
    /// This filter answered the request through the [`Response`]: nothing after it runs.
    Finished,
}

/// What the log hook sees about a finished request.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    /// The status sent.
    pub status: u16,
    /// Response body bytes handed to the host.
    pub body_bytes: u64,
    /// From the first entry point to the end of the response.
    pub duration: Duration,
    /// False when an entry point failed (or panicked) or the client went away.
    pub ok: bool,
}

/// What an entry point's return value means to the host: `BH_OK`, `BH_FINISHED` or `BH_ERROR`.
pub trait Outcome {
    fn into_code(self) -> i32;
}

impl Outcome for () {
    fn into_code(self) -> i32 {
        abi::BH_OK
    }
}

impl Outcome for Filter {
    fn into_code(self) -> i32 {
        match self {
            Filter::Continue => abi::BH_OK,
            Filter::Finished => abi::BH_FINISHED,
        }
    }
}

impl<T: Outcome, E: Display> Outcome for Result<T, E> {
    fn into_code(self) -> i32 {
        match self {
            Ok(v) => v.into_code(),
            Err(e) => {
                eprintln!("extension error: {e}");
                abi::BH_ERROR
            }
        }
    }
}

/// Exports a library's entry points (see the crate's doc): `extension!(handler_fn)`, or
/// `extension! { handler: f, request_headers: g, authenticate: h, response_headers: i, log: j,
/// end_of_request: k, init: l }` with any subset of the keys, each once. Invoke it once per
/// library (the symbols are global).
///
/// Signatures: `handler`, `request_headers`, `authenticate`, `response_headers`:
/// `fn(&mut Request<'_>, &mut Response<'_>) -> impl Outcome`; `log`: `fn(&Request<'_>, &Log)`;
/// `end_of_request`: `fn(&Request<'_>)`; `init`: `fn() -> impl Outcome` (an error refuses the
/// load).
#[macro_export]
macro_rules! extension {
    (@init) => { $crate::glue::no_init };
    (@init init : $f:path $(, $($rest:tt)*)?) => { $f };
    (@init $other:ident : $f:path $(, $($rest:tt)*)?) => { $crate::extension!(@init $($($rest)*)?) };

    (@hook init $f:path) => {};
    (@hook handler $f:path) => {
        $crate::extension!(@call bulkhead_extension_handle $f);
    };
    (@hook request_headers $f:path) => {
        $crate::extension!(@call bulkhead_filter_request_headers $f);
    };
    (@hook authenticate $f:path) => {
        $crate::extension!(@call bulkhead_filter_authenticate $f);
    };
    (@hook response_headers $f:path) => {
        $crate::extension!(@call bulkhead_filter_response_headers $f);
    };
    (@hook log $f:path) => {
        /// The log hook of the Bulkhead extension ABI.
        ///
        /// # Safety
        /// Called by the host only, with the pointers the ABI describes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn bulkhead_filter_log(
            req: *mut $crate::abi::bh_request,
            log: *const $crate::abi::bh_log,
        ) {
            // SAFETY: the host calls this entry point with valid pointers for the call.
            unsafe { $crate::glue::log(req, log, $f) }
        }
    };
    (@hook end_of_request $f:path) => {
        /// The end-of-request hook of the Bulkhead extension ABI.
        ///
        /// # Safety
        /// Called by the host only, with the pointer the ABI describes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn bulkhead_filter_end_of_request(req: *mut $crate::abi::bh_request) {
            // SAFETY: the host calls this entry point with a valid pointer for the call.
            unsafe { $crate::glue::end(req, $f) }
        }
    };
    (@hook $other:ident $f:path) => {
        compile_error!(concat!(
            "extension!: unknown key `", stringify!($other),
            "`; expected handler, request_headers, authenticate, response_headers, log, end_of_request or init"
        ));
    };
    (@call $symbol:ident $f:path) => {
        /// An entry point of the Bulkhead extension ABI (include/bulkhead_extension.h).
        ///
        /// # Safety
        /// Called by the host only, with the pointers the ABI describes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $symbol(
            req: *mut $crate::abi::bh_request,
            resp: *mut $crate::abi::bh_response,
        ) -> i32 {
            // SAFETY: the host calls this entry point with valid pointers for the call.
            unsafe { $crate::glue::call(req, resp, $f) }
        }
    };

    ($($hook:ident : $f:path),+ $(,)?) => {
        /// The version handshake of the Bulkhead extension ABI.
        #[unsafe(no_mangle)]
        pub extern "C" fn bulkhead_extension_abi(host_abi: u32) -> u32 {
            $crate::glue::abi(host_abi, $crate::extension!(@init $($hook : $f),+))
        }
        $( $crate::extension!(@hook $hook $f); )+
    };
    ($handler:path) => {
        $crate::extension!(handler: $handler);
    };
}
