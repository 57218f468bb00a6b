//! Request and response heads of the native protocol: method, target, status and header
//! fields, in a compact length-prefixed layout (see `docs/protocol.md`, "Header blocks").

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::frame::NativeError;

/// A request head as the listener forwards it: hop-by-hop headers already removed,
/// `X-Forwarded-*` already added. Header names are lowercase ASCII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Bytes,
    /// Path and query (origin form), e.g. `/api/items?page=2`.
    pub target: Bytes,
    pub headers: Vec<(Bytes, Bytes)>,
}

/// A response head from the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(Bytes, Bytes)>,
}

fn put_str(out: &mut BytesMut, s: &[u8]) {
    out.put_u16(s.len() as u16);
    out.put_slice(s);
}

fn take_str(buf: &mut Bytes) -> Result<Bytes, NativeError> {
    if buf.remaining() < 2 {
        return Err(NativeError::MalformedHead("truncated length"));
    }
    let len = buf.get_u16() as usize;
    if buf.remaining() < len {
        return Err(NativeError::MalformedHead("field longer than the block"));
    }
    Ok(buf.split_to(len))
}

fn put_headers(out: &mut BytesMut, headers: &[(Bytes, Bytes)]) {
    out.put_u16(headers.len() as u16);
    for (name, value) in headers {
        put_str(out, name);
        put_str(out, value);
    }
}

fn take_headers(buf: &mut Bytes) -> Result<Vec<(Bytes, Bytes)>, NativeError> {
    if buf.remaining() < 2 {
        return Err(NativeError::MalformedHead("truncated header count"));
    }
    let count = buf.get_u16() as usize;
    // Each header needs at least 4 bytes: a count larger than that cannot be honest.
    if count > buf.remaining() / 4 {
        return Err(NativeError::MalformedHead("header count larger than the block"));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take_str(buf)?;
        if name.is_empty() {
            return Err(NativeError::MalformedHead("empty header name"));
        }
        headers.push((name, take_str(buf)?));
    }
    Ok(headers)
}

fn check_len(what: &'static str, len: usize) -> Result<(), NativeError> {
    if len > u16::MAX as usize {
        return Err(NativeError::FieldTooLong { what, len });
    }
    Ok(())
}

impl RequestHead {
    /// Appends the encoded head; fails if a field exceeds 65535 bytes.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), NativeError> {
        check_len("method", self.method.len())?;
        check_len("target", self.target.len())?;
        for (n, v) in &self.headers {
            check_len("header name", n.len())?;
            check_len("header value", v.len())?;
        }
        check_len("header count", self.headers.len())?;
        put_str(out, &self.method);
        put_str(out, &self.target);
        put_headers(out, &self.headers);
        Ok(())
    }

    /// Decodes a head from a whole header block.
    pub fn decode(mut block: Bytes) -> Result<Self, NativeError> {
        let method = take_str(&mut block)?;
        if method.is_empty() {
            return Err(NativeError::MalformedHead("empty method"));
        }
        let target = take_str(&mut block)?;
        let headers = take_headers(&mut block)?;
        if block.has_remaining() {
            return Err(NativeError::MalformedHead("trailing bytes after the headers"));
        }
        Ok(RequestHead { method, target, headers })
    }

    /// Encoded size, for limit checks before encoding.
    pub fn encoded_len(&self) -> usize {
        6 + self.method.len()
            + self.target.len()
            + self.headers.iter().map(|(n, v)| 4 + n.len() + v.len()).sum::<usize>()
    }
}

impl ResponseHead {
    /// Appends the encoded head; fails if a field exceeds 65535 bytes.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), NativeError> {
        for (n, v) in &self.headers {
            check_len("header name", n.len())?;
            check_len("header value", v.len())?;
        }
        check_len("header count", self.headers.len())?;
        out.put_u16(self.status);
        put_headers(out, &self.headers);
        Ok(())
    }

    /// Decodes a head from a whole header block.
    pub fn decode(mut block: Bytes) -> Result<Self, NativeError> {
        if block.remaining() < 2 {
            return Err(NativeError::MalformedHead("truncated status"));
        }
        let status = block.get_u16();
        if !(100..=999).contains(&status) {
            return Err(NativeError::MalformedHead("status outside 100..=999"));
        }
        let headers = take_headers(&mut block)?;
        if block.has_remaining() {
            return Err(NativeError::MalformedHead("trailing bytes after the headers"));
        }
        Ok(ResponseHead { status, headers })
    }

    /// Encoded size, for limit checks before encoding.
    pub fn encoded_len(&self) -> usize {
        4 + self.headers.iter().map(|(n, v)| 4 + n.len() + v.len()).sum::<usize>()
    }
}
