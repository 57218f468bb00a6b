//! [`Request`]: the safe view of a `bh_request` an entry point was given — its fields as
//! borrowed strings, its body as [`std::io::Read`], and the filters' callbacks (`set_header`,
//! `remove_header`, `set_user`) as methods.
//!
//! A `Request` exists only while the host's call into the library runs (the glue makes one per
//! call and lends it out as `&mut Request<'_>`), which is exactly how long the host keeps the
//! struct valid. Strings it returns borrow the `Request`, so a method that changes the header
//! list (`&mut self`) cannot leave one dangling: the borrow checker states the header's
//! "invalidated by any callback that changes that list".

use std::io;
use std::marker::PhantomData;

use crate::abi::{bh_request, bh_str, BH_ERROR, BH_OK};
use crate::Refused;

/// The request an entry point is called for.
pub struct Request<'a> {
    raw: *mut bh_request,
    _call: PhantomData<&'a mut bh_request>,
}

impl<'a> Request<'a> {
    /// # Safety
    /// `raw` is the non-null pointer the host passed to the running entry point.
    pub(crate) unsafe fn from_raw(raw: *mut bh_request) -> Self {
        Request { raw, _call: PhantomData }
    }

    fn raw(&self) -> &bh_request {
        // SAFETY: `raw` is valid for the entry point's call (from_raw's contract), and this
        // Request cannot outlive that call.
        unsafe { &*self.raw }
    }

    fn text(&self, s: bh_str) -> &str {
        // SAFETY: the host's strings stay valid until the entry point returns or a callback
        // changes them; both need `&mut self` or the end of this borrow.
        std::str::from_utf8(unsafe { s.as_bytes() }).unwrap_or("")
    }

    /// `"GET"`.
    pub fn method(&self) -> &str {
        self.text(self.raw().method)
    }

    /// The path as received, percent-encoded, without the query: `"/ext/report"`.
    pub fn path(&self) -> &str {
        self.text(self.raw().path)
    }

    /// What follows `?`, `""` when there is none.
    pub fn query(&self) -> &str {
        self.text(self.raw().query)
    }

    /// `"HTTP/1.1"`.
    pub fn version(&self) -> &str {
        self.text(self.raw().version)
    }

    /// The client's address as the listener saw it, `""` when unknown.
    pub fn remote_addr(&self) -> &str {
        self.text(self.raw().remote_addr)
    }

    /// The user an authenticate filter set, if one did.
    pub fn user(&self) -> Option<&str> {
        Some(self.text(self.raw().user)).filter(|u| !u.is_empty())
    }

    /// The body's length when the client said it (`Content-Length`), `None` when chunked.
    pub fn content_length(&self) -> Option<u64> {
        u64::try_from(self.raw().content_length).ok()
    }

    /// Every header, in the order received; names lower-case.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let raw = self.raw();
        let list: &[crate::abi::bh_header] = if raw.headers.is_null() || raw.header_count == 0 {
            &[]
        } else {
            // SAFETY: the host's array of `header_count` entries, valid as for `text`.
            unsafe { std::slice::from_raw_parts(raw.headers, raw.header_count) }
        };
        // SAFETY: as for `text`.
        list.iter().map(|h| unsafe { (h.name.as_bytes(), h.value.as_bytes()) })
    }

    /// The first header of that name (any case), as bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// The first header of that name as text; `None` when absent or not UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Reads the whole remaining body, refusing one longer than `limit` bytes.
    pub fn read_body_to_vec(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = io::Read::read(self, &mut chunk)?;
            if n == 0 {
                return Ok(body);
            }
            if body.len() + n > limit {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("request body over {limit} bytes")));
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }

    /// Replaces every header of that name with one of this value (request_headers and
    /// authenticate filters only).
    pub fn set_header(&mut self, name: &str, value: &[u8]) -> Result<(), Refused> {
        let f = self.raw().set_header;
        // SAFETY: a callback of the struct the host passed, called during its entry point with
        // the struct itself and strings that live across the call (the host copies them).
        check(unsafe { f(self.raw, bh_str::from_bytes(name.as_bytes()), bh_str::from_bytes(value)) }, "set_header")
    }

    /// Removes every header of that name (request_headers and authenticate filters only).
    pub fn remove_header(&mut self, name: &str) -> Result<(), Refused> {
        let f = self.raw().remove_header;
        // SAFETY: as for set_header.
        check(unsafe { f(self.raw, bh_str::from_bytes(name.as_bytes())) }, "remove_header")
    }

    /// Sets the authenticated user (authenticate filters only).
    pub fn set_user(&mut self, user: &str) -> Result<(), Refused> {
        let f = self.raw().set_user;
        // SAFETY: as for set_header.
        check(unsafe { f(self.raw, bh_str::from_bytes(user.as_bytes())) }, "set_user")
    }
}

/// The body, streamed as the client sends it; `read` blocks until bytes arrive.
impl io::Read for Request<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let f = self.raw().read_body;
        // SAFETY: as for set_header; `buf` is writable for `buf.len()` bytes.
        let n = unsafe { f(self.raw, buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::ConnectionAborted, "the client went away"))
    }
}

pub(crate) fn check(code: i32, what: &'static str) -> Result<(), Refused> {
    match code {
        BH_OK => Ok(()),
        BH_ERROR => Err(Refused { what }),
        _ => Err(Refused { what }),
    }
}
