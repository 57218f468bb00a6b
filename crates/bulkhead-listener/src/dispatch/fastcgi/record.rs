//! The FastCGI 1.0 wire format, written by hand: record headers, `FCGI_BEGIN_REQUEST`,
//! `FCGI_PARAMS` name-value pairs (1- or 4-byte lengths), `FCGI_STDIN`, and the decoding of the
//! records a responder sends back (`FCGI_STDOUT`, `FCGI_STDERR`, `FCGI_END_REQUEST`).
//!
//! Why not a crate: `fastcgi-client` (the maintained one) takes the parameters as a `HashMap`
//! of owned strings and the body as an `AsyncRead`, and hands back either the whole output or a
//! stream over its own connection type; the listener needs the body from an `http_body::Body`,
//! output records cut out of one read buffer without a copy, and STDERR interleaved. The format
//! is small (8-byte headers, two length encodings), so it lives here, pure functions on byte
//! buffers — no I/O, fed bytes by the unit tests and the `fastcgi_records` fuzz target.
//!
//! Encoding appends to a caller's `BytesMut` (one buffer for BEGIN_REQUEST and every PARAMS
//! record of a request); decoding takes a record off the front of the read buffer and returns
//! its content as a `Bytes` split from that buffer (no allocation per record). Used only by
//! [`super`] (the FastCGI transport).

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const VERSION: u8 = 1;
pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
pub const RESPONDER: u16 = 1;
pub const KEEP_CONN: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// The largest content one record carries.
pub const MAX_CONTENT: usize = 65535;

/// A record that breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record version {0} (only FastCGI 1 exists)")]
    Version(u8),
    #[error("FCGI_END_REQUEST with {0} content bytes (8 expected)")]
    EndRequestLength(usize),
    #[error("a name-value pair's length runs past the end of its data")]
    Truncated,
}

/// The 8-byte header of a record.
pub fn header(kind: u8, id: u16, content_len: usize, padding: u8) -> [u8; HEADER_LEN] {
    debug_assert!(content_len <= MAX_CONTENT);
    let [i1, i0] = id.to_be_bytes();
    let [c1, c0] = (content_len as u16).to_be_bytes();
    [VERSION, kind, i1, i0, c1, c0, padding, 0]
}

/// Appends an `FCGI_BEGIN_REQUEST` for the responder role.
pub fn begin_request(out: &mut BytesMut, id: u16, keep_conn: bool) {
    out.put_slice(&header(BEGIN_REQUEST, id, 8, 0));
    out.put_u16(RESPONDER);
    out.put_u8(if keep_conn { KEEP_CONN } else { 0 });
    out.put_slice(&[0; 5]);
}

/// Appends `FCGI_PARAMS` records: pairs are written straight into the output buffer, a record
/// is closed when it holds [`MAX_CONTENT`] bytes (a pair may span two records, as the
/// specification allows), and [`Params::finish`] writes the empty record that ends the stream.
pub struct Params<'a> {
    out: &'a mut BytesMut,
    id: u16,
    /// Offset in `out` of the open record's header.
    open: usize,
}

impl<'a> Params<'a> {
    pub fn new(out: &'a mut BytesMut, id: u16) -> Self {
        let open = out.len();
        out.put_slice(&header(PARAMS, id, 0, 0));
        Params { out, id, open }
    }

    /// One name-value pair.
    pub fn pair(&mut self, name: &[u8], value: &[u8]) {
        let mut lens = [0u8; 8];
        let n = put_len(&mut lens, name.len());
        let v = put_len(&mut lens[n..], value.len());
        self.put(&lens[..n + v]);
        self.put(name);
        self.put(value);
    }

    /// A pair whose value is written in parts (`HTTP_` + a header name).
    pub fn pair_parts(&mut self, name: &[&[u8]], value: &[u8]) {
        let name_len = name.iter().map(|p| p.len()).sum();
        let mut lens = [0u8; 8];
        let n = put_len(&mut lens, name_len);
        let v = put_len(&mut lens[n..], value.len());
        self.put(&lens[..n + v]);
        for part in name {
            self.put(part);
        }
        self.put(value);
    }

    fn put(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let used = self.out.len() - self.open - HEADER_LEN;
            if used == MAX_CONTENT {
                self.close();
                self.open = self.out.len();
                self.out.put_slice(&header(PARAMS, self.id, 0, 0));
                continue;
            }
            let take = data.len().min(MAX_CONTENT - used);
            self.out.put_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Writes the open record's content length into its header.
    fn close(&mut self) {
        let len = self.out.len() - self.open - HEADER_LEN;
        self.out[self.open + 4..self.open + 6].copy_from_slice(&(len as u16).to_be_bytes());
    }

    /// Closes the last record (dropped if empty) and writes the empty one that ends PARAMS.
    pub fn finish(mut self) {
        if self.out.len() - self.open == HEADER_LEN {
            self.out.truncate(self.open);
        } else {
            self.close();
        }
        self.out.put_slice(&header(PARAMS, self.id, 0, 0));
    }
}

/// A name or value length: one byte below 128, else four with the high bit set.
fn put_len(out: &mut [u8], len: usize) -> usize {
    if len < 128 {
        out[0] = len as u8;
        1
    } else {
        out[..4].copy_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes());
        4
    }
}

/// One record taken off the front of a read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    pub id: u16,
    pub content: Bytes,
}

/// Takes one whole record off the front of `buf`; `Ok(None)` when more bytes are needed.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Record>, RecordError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[0] != VERSION {
        return Err(RecordError::Version(buf[0]));
    }
    let kind = buf[1];
    let id = u16::from_be_bytes([buf[2], buf[3]]);
    let content_len = u16::from_be_bytes([buf[4], buf[5]]) as usize;
    let padding = buf[6] as usize;
    if buf.len() < HEADER_LEN + content_len + padding {
        buf.reserve(HEADER_LEN + content_len + padding - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let content = buf.split_to(content_len).freeze();
    buf.advance(padding);
    Ok(Some(Record { kind, id, content }))
}

/// The application's status and the protocol status of an `FCGI_END_REQUEST`.
pub fn end_request(content: &[u8]) -> Result<(u32, u8), RecordError> {
    match content {
        [a, b, c, d, status, ..] if content.len() == 8 => Ok((u32::from_be_bytes([*a, *b, *c, *d]), *status)),
        _ => Err(RecordError::EndRequestLength(content.len())),
    }
}

/// The name-value pairs of a PARAMS (or GET_VALUES) stream.
pub struct Pairs<'a> {
    data: &'a [u8],
}

impl<'a> Pairs<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Pairs { data }
    }

    fn len(&mut self) -> Result<usize, RecordError> {
        match *self.data {
            [b, ..] if b < 128 => {
                self.data = &self.data[1..];
                Ok(b as usize)
            }
            [a, b, c, d, ..] => {
                self.data = &self.data[4..];
                Ok((u32::from_be_bytes([a, b, c, d]) & 0x7fff_ffff) as usize)
            }
            _ => Err(RecordError::Truncated),
        }
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let pair = (|| {
            let n = self.len()?;
            let v = self.len()?;
            if self.data.len() < n.saturating_add(v) {
                return Err(RecordError::Truncated);
            }
            let (name, rest) = self.data.split_at(n);
            let (value, rest) = rest.split_at(v);
            self.data = rest;
            Ok((name, value))
        })();
        if pair.is_err() {
            self.data = &[];
        }
        Some(pair)
    }
}

#[cfg(test)]
mod tests;
