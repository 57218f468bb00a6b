//! [`Response`]: the safe view of a `bh_response` — status and headers as methods, the body as
//! [`std::io::Write`] — for the handler and the filters that answer or change a response.
//!
//! Like [`crate::Request`], it lives only for the host's call into the library. Writes are
//! copied by the host; the first [`BUFFERED_BODY`](crate::abi::BUFFERED_BODY) bytes are held
//! so that a small response goes out whole with `Content-Length` (see the header's BODIES AND
//! LIMITS).

use std::io;
use std::marker::PhantomData;

use crate::abi::{bh_header, bh_response, bh_str, BH_OK};
use crate::request::check;
use crate::Refused;

/// The response an entry point builds or changes.
pub struct Response<'a> {
    raw: *mut bh_response,
    _call: PhantomData<&'a mut bh_response>,
}

impl<'a> Response<'a> {
    /// # Safety
    /// `raw` is the non-null pointer the host passed to the running entry point.
    pub(crate) unsafe fn from_raw(raw: *mut bh_response) -> Self {
        Response { raw, _call: PhantomData }
    }

    fn raw(&self) -> &bh_response {
        // SAFETY: valid for the entry point's call (from_raw's contract), which this Response
        // cannot outlive.
        unsafe { &*self.raw }
    }

    /// The status as it is now (200 until set).
    pub fn status(&self) -> u16 {
        self.raw().status
    }

    /// Whether the head is on its way (status and headers can no longer change).
    pub fn head_sent(&self) -> bool {
        self.raw().head_sent != 0
    }

    /// The headers as they are now.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let raw = self.raw();
        let list: &[bh_header] = if raw.headers.is_null() || raw.header_count == 0 {
            &[]
        } else {
            // SAFETY: the host's array, valid until a callback changes it (needs `&mut self`).
            unsafe { std::slice::from_raw_parts(raw.headers, raw.header_count) }
        };
        // SAFETY: as above.
        list.iter().map(|h| unsafe { (h.name.as_bytes(), h.value.as_bytes()) })
    }

    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// 200..=999; refused once the head is sent.
    pub fn set_status(&mut self, status: u16) -> Result<(), Refused> {
        let f = self.raw().set_status;
        // SAFETY: a callback of the host's struct, during its entry point, with the struct.
        check(unsafe { f(self.raw, status) }, "set_status")
    }

    /// Replaces every header of that name with one of this value.
    pub fn set_header(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<(), Refused> {
        let f = self.raw().set_header;
        let (n, v) = (bh_str::from_bytes(name.as_bytes()), bh_str::from_bytes(value.as_ref()));
        // SAFETY: as for set_status; the strings outlive the call and are copied by the host.
        check(unsafe { f(self.raw, n, v) }, "set_header")
    }

    /// Adds a header beside any of the same name.
    pub fn add_header(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<(), Refused> {
        let f = self.raw().add_header;
        let (n, v) = (bh_str::from_bytes(name.as_bytes()), bh_str::from_bytes(value.as_ref()));
        // SAFETY: as for set_header.
        check(unsafe { f(self.raw, n, v) }, "add_header")
    }

    /// Removes every header of that name.
    pub fn remove_header(&mut self, name: &str) -> Result<(), Refused> {
        let f = self.raw().remove_header;
        // SAFETY: as for set_header.
        check(unsafe { f(self.raw, bh_str::from_bytes(name.as_bytes())) }, "remove_header")
    }

    /// A whole answer in one call: status, `Content-Type`, body.
    pub fn send(&mut self, status: u16, content_type: &str, body: impl AsRef<[u8]>) -> io::Result<()> {
        self.set_status(status).map_err(io::Error::other)?;
        self.set_header("content-type", content_type).map_err(io::Error::other)?;
        io::Write::write_all(self, body.as_ref())
    }
}

/// The body. `write` takes everything or fails (the client went away); it may block while the
/// response streams to a slower client.
impl io::Write for Response<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self.raw().write;
        // SAFETY: as for set_header; `buf` is readable for `buf.len()` bytes during the call.
        match unsafe { f(self.raw, buf.as_ptr().cast(), buf.len()) } {
            BH_OK => Ok(buf.len()),
            _ => {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "the response cannot be written (the client went away?)"))
            }
        }
    }

    /// Sends the head and what is buffered now; the body streams from then on.
    fn flush(&mut self) -> io::Result<()> {
        let f = self.raw().flush;
        // SAFETY: as for set_header.
        match unsafe { f(self.raw) } {
            BH_OK => Ok(()),
            _ => Err(io::Error::new(io::ErrorKind::BrokenPipe, "the response cannot be flushed")),
        }
    }
}
