//! The C ABI of `include/bulkhead_extension.h`, version 1.0, as `#[repr(C)]` Rust types: the one
//! Rust definition of it, used by the SDK's glue (the library side) and by the host's loader
//! (`bulkhead-host`, the calling side), so the two cannot drift apart. The header is the
//! specification; every comment there holds here. A test in `bulkhead-host` compiles a C
//! program against the header and checks the sizes and offsets of these types against it.
//!
//! Only types and constants: nothing here calls anything.
#![allow(non_camel_case_types)]

use std::ffi::c_void;

/// The ABI's major version: a library built for another major is refused.
pub const ABI_MAJOR: u16 = 1;
/// The ABI's minor version: a library built for a newer minor than the host's is refused.
pub const ABI_MINOR: u16 = 0;
/// Both as one number, major in the high 16 bits: what the handshake passes.
pub const ABI_VERSION: u32 = ((ABI_MAJOR as u32) << 16) | ABI_MINOR as u32;

/// Done (a handler), or go on (a filter).
pub const BH_OK: i32 = 0;
/// A `request_headers` or `authenticate` filter answered the request itself.
pub const BH_FINISHED: i32 = 1;
/// Failed: 500 when nothing was sent yet, else the response is cut short.
pub const BH_ERROR: i32 = -1;

/// Response body bytes the host buffers before it sends the head.
pub const BUFFERED_BODY: usize = 65536;

/// The exported symbol names (NUL-terminated, as `dlsym` takes them).
pub mod symbol {
    pub const ABI: &[u8] = b"bulkhead_extension_abi\0";
    pub const HANDLE: &[u8] = b"bulkhead_extension_handle\0";
    pub const REQUEST_HEADERS: &[u8] = b"bulkhead_filter_request_headers\0";
    pub const AUTHENTICATE: &[u8] = b"bulkhead_filter_authenticate\0";
    pub const RESPONSE_HEADERS: &[u8] = b"bulkhead_filter_response_headers\0";
    pub const LOG: &[u8] = b"bulkhead_filter_log\0";
    pub const END_OF_REQUEST: &[u8] = b"bulkhead_filter_end_of_request\0";
}

/// A byte string, not NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct bh_str {
    pub ptr: *const u8,
    pub len: usize,
}

impl bh_str {
    /// Borrows `bytes` (the caller keeps them alive for as long as the `bh_str` is used).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        bh_str { ptr: bytes.as_ptr(), len: bytes.len() }
    }

    /// The bytes it points at.
    ///
    /// # Safety
    /// `ptr` must point at `len` readable bytes (or `len` be 0) that stay valid and unchanged
    /// for `'a`.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the caller's contract above.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// One header field.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct bh_header {
    pub name: bh_str,
    pub value: bh_str,
}

/// The request (see the header for each field and callback).
#[repr(C)]
pub struct bh_request {
    pub size: u32,
    pub host_abi: u32,
    pub method: bh_str,
    pub path: bh_str,
    pub query: bh_str,
    pub version: bh_str,
    pub remote_addr: bh_str,
    pub user: bh_str,
    pub headers: *const bh_header,
    pub header_count: usize,
    pub content_length: i64,
    pub read_body: unsafe extern "C" fn(req: *mut bh_request, buf: *mut c_void, cap: usize) -> isize,
    pub set_header: unsafe extern "C" fn(req: *mut bh_request, name: bh_str, value: bh_str) -> i32,
    pub remove_header: unsafe extern "C" fn(req: *mut bh_request, name: bh_str) -> i32,
    pub set_user: unsafe extern "C" fn(req: *mut bh_request, user: bh_str) -> i32,
}

/// The response being built.
#[repr(C)]
pub struct bh_response {
    pub size: u32,
    pub status: u16,
    pub head_sent: u16,
    pub headers: *const bh_header,
    pub header_count: usize,
    pub set_status: unsafe extern "C" fn(resp: *mut bh_response, status: u16) -> i32,
    pub set_header: unsafe extern "C" fn(resp: *mut bh_response, name: bh_str, value: bh_str) -> i32,
    pub add_header: unsafe extern "C" fn(resp: *mut bh_response, name: bh_str, value: bh_str) -> i32,
    pub remove_header: unsafe extern "C" fn(resp: *mut bh_response, name: bh_str) -> i32,
    pub write: unsafe extern "C" fn(resp: *mut bh_response, data: *const c_void, len: usize) -> i32,
    pub flush: unsafe extern "C" fn(resp: *mut bh_response) -> i32,
}

/// What the log hook sees.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct bh_log {
    pub size: u32,
    pub status: u16,
    pub reserved: u16,
    pub body_bytes: u64,
    pub duration_us: u64,
    pub outcome: i32,
}

/// `bulkhead_extension_abi`.
pub type AbiFn = unsafe extern "C" fn(host_abi: u32) -> u32;
/// `bulkhead_extension_handle` and the request/response filters.
pub type HandlerFn = unsafe extern "C" fn(req: *mut bh_request, resp: *mut bh_response) -> i32;
/// `bulkhead_filter_log`.
pub type LogFn = unsafe extern "C" fn(req: *mut bh_request, log: *const bh_log);
/// `bulkhead_filter_end_of_request`.
pub type EndFn = unsafe extern "C" fn(req: *mut bh_request);

/// `"1.0"` from a packed version.
pub fn version_text(version: u32) -> String {
    format!("{}.{}", version >> 16, version & 0xffff)
}
