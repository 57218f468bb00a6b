//! Frame layout of the native protocol: a 10-byte header (payload length u32, type u8, flags u8,
//! stream id u32, all big-endian) and the payload. See `docs/protocol.md`, "Frames".

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::head::{RequestHead, ResponseHead};

/// Bytes before every payload.
pub const FRAME_HEADER_LEN: usize = 10;
/// First four payload bytes of a `HELLO`.
pub const MAGIC: [u8; 4] = *b"BKHD";
/// The protocol version this code speaks.
pub const VERSION: u16 = 1;
/// `flags` bit: this frame ends the sender's half of the stream.
pub const END_STREAM: u8 = 0x1;
const HELLO_LEN: usize = 4 + 2 + 4 * 4;
/// Payloads up to this size are copied out of the read buffer rather than split from it.
const SMALL_PAYLOAD: usize = 4096;

/// Frame type codes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    Hello = 0x0,
    Request = 0x1,
    Data = 0x2,
    Response = 0x3,
    Window = 0x4,
    Cancel = 0x5,
    Error = 0x6,
    Ping = 0x7,
    Pong = 0x8,
    GoAway = 0x9,
}

impl FrameType {
    fn from_u8(b: u8) -> Option<Self> {
        use FrameType::*;
        Some(match b {
            0x0 => Hello,
            0x1 => Request,
            0x2 => Data,
            0x3 => Response,
            0x4 => Window,
            0x5 => Cancel,
            0x6 => Error,
            0x7 => Ping,
            0x8 => Pong,
            0x9 => GoAway,
            _ => return None,
        })
    }
}

/// Error codes carried by `ERROR` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The peer broke the protocol (bad frame, unknown stream, window exceeded).
    Protocol,
    /// The application failed to produce a response (a panic, an error from the service).
    Application,
    /// The worker is at `max_streams` or shutting down: the stream was never started, so the
    /// listener may retry it elsewhere.
    Refused,
    /// Something inside the sender failed.
    Internal,
    /// A code this version does not know; treated as `Internal`.
    Other(u16),
}

impl ErrorCode {
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::Protocol => 1,
            ErrorCode::Application => 2,
            ErrorCode::Refused => 3,
            ErrorCode::Internal => 4,
            ErrorCode::Other(c) => c,
        }
    }

    pub fn from_u16(c: u16) -> Self {
        match c {
            1 => ErrorCode::Protocol,
            2 => ErrorCode::Application,
            3 => ErrorCode::Refused,
            4 => ErrorCode::Internal,
            c => ErrorCode::Other(c),
        }
    }
}

/// The handshake, sent first by each side on stream 0. The listener proposes; the worker answers
/// with the values it will use (each at most the listener's, version at most the listener's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    /// Largest DATA (and other non-head) payload the sender accepts.
    pub max_frame: u32,
    /// Largest REQUEST/RESPONSE header block the sender accepts.
    pub max_head: u32,
    /// Credit each new stream starts with, for DATA *towards the sender of this HELLO*.
    pub initial_window: u32,
    /// Streams open at once that the sender accepts.
    pub max_streams: u32,
}

impl Default for Hello {
    fn default() -> Self {
        Hello {
            version: VERSION,
            max_frame: super::DEFAULT_MAX_FRAME,
            max_head: super::DEFAULT_MAX_HEAD,
            initial_window: super::DEFAULT_INITIAL_WINDOW,
            max_streams: super::DEFAULT_MAX_STREAMS,
        }
    }
}

/// One frame of the native protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    /// Listener → worker: opens `stream` with a request head; `end_stream` when it has no body.
    Request {
        stream: u32,
        head: RequestHead,
        end_stream: bool,
    },
    /// Body bytes in either direction; `end_stream` on the last (may be empty).
    Data {
        stream: u32,
        data: Bytes,
        end_stream: bool,
    },
    /// Worker → listener: the response head; `end_stream` when it has no body.
    Response {
        stream: u32,
        head: ResponseHead,
        end_stream: bool,
    },
    /// The sender consumed `increment` more bytes of `stream`'s DATA: the peer may send that many.
    Window {
        stream: u32,
        increment: u32,
    },
    /// The sender abandons `stream` (client gone, timeout): the peer drops it without answer.
    Cancel {
        stream: u32,
    },
    /// `stream` failed (or, on stream 0, the whole connection: the sender closes after it).
    Error {
        stream: u32,
        code: ErrorCode,
        message: Bytes,
    },
    Ping {
        opaque: u64,
    },
    Pong {
        opaque: u64,
    },
    /// The worker is draining: streams up to `last_stream` are served; open no new ones here.
    GoAway {
        last_stream: u32,
    },
}

/// A protocol violation found while decoding or encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NativeError {
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("{frame:?} frame on stream {stream}, which is not allowed there")]
    WrongStream { frame: FrameType, stream: u32 },
    #[error("{frame:?} frame payload of {len} bytes has the wrong size")]
    BadLength { frame: FrameType, len: usize },
    #[error("HELLO does not start with the magic bytes BKHD")]
    BadMagic,
    #[error("malformed header block: {0}")]
    MalformedHead(&'static str),
    #[error("{what} of {len} bytes is longer than 65535")]
    FieldTooLong { what: &'static str, len: usize },
}

fn put_header(out: &mut BytesMut, len: usize, kind: FrameType, flags: u8, stream: u32) {
    out.put_u32(len as u32);
    out.put_u8(kind as u8);
    out.put_u8(flags);
    out.put_u32(stream);
}

/// Appends one encoded frame to `out` (many frames per buffer is the point: one write sends them).
pub fn encode(frame: &Frame, out: &mut BytesMut) -> Result<(), NativeError> {
    let flag = |end: bool| if end { END_STREAM } else { 0 };
    match frame {
        Frame::Hello(h) => {
            put_header(out, HELLO_LEN, FrameType::Hello, 0, 0);
            out.put_slice(&MAGIC);
            out.put_u16(h.version);
            out.put_u32(h.max_frame);
            out.put_u32(h.max_head);
            out.put_u32(h.initial_window);
            out.put_u32(h.max_streams);
        }
        Frame::Request { stream, head, end_stream } => {
            let start = out.len();
            put_header(out, 0, FrameType::Request, flag(*end_stream), *stream);
            head.encode(out).inspect_err(|_| out.truncate(start))?;
            patch_len(out, start);
        }
        Frame::Response { stream, head, end_stream } => {
            let start = out.len();
            put_header(out, 0, FrameType::Response, flag(*end_stream), *stream);
            head.encode(out).inspect_err(|_| out.truncate(start))?;
            patch_len(out, start);
        }
        Frame::Data { stream, data, end_stream } => {
            put_header(out, data.len(), FrameType::Data, flag(*end_stream), *stream);
            out.put_slice(data);
        }
        Frame::Window { stream, increment } => {
            put_header(out, 4, FrameType::Window, 0, *stream);
            out.put_u32(*increment);
        }
        Frame::Cancel { stream } => put_header(out, 0, FrameType::Cancel, 0, *stream),
        Frame::Error { stream, code, message } => {
            let message = &message[..message.len().min(u16::MAX as usize)];
            put_header(out, 2 + message.len(), FrameType::Error, 0, *stream);
            out.put_u16(code.to_u16());
            out.put_slice(message);
        }
        Frame::Ping { opaque } => {
            put_header(out, 8, FrameType::Ping, 0, 0);
            out.put_u64(*opaque);
        }
        Frame::Pong { opaque } => {
            put_header(out, 8, FrameType::Pong, 0, 0);
            out.put_u64(*opaque);
        }
        Frame::GoAway { last_stream } => {
            put_header(out, 4, FrameType::GoAway, 0, 0);
            out.put_u32(*last_stream);
        }
    }
    Ok(())
}

fn patch_len(out: &mut BytesMut, start: usize) {
    let len = (out.len() - start - FRAME_HEADER_LEN) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Takes one frame off the front of `buf`, or `Ok(None)` when more bytes are needed.
///
/// `limits` are what *this* side announced in its HELLO: DATA payloads above `max_frame` and
/// header blocks above `max_head` are refused from the header alone, before buffering.
pub fn decode(buf: &mut BytesMut, limits: &Hello) -> Result<Option<Frame>, NativeError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let kind = FrameType::from_u8(buf[4]).ok_or(NativeError::UnknownType(buf[4]))?;
    let flags = buf[5];
    let stream = u32::from_be_bytes([buf[6], buf[7], buf[8], buf[9]]);
    let max = match kind {
        FrameType::Request | FrameType::Response => limits.max_head as usize,
        _ => limits.max_frame as usize,
    };
    if len > max {
        return Err(NativeError::FrameTooLarge { len, max });
    }
    let fixed = match kind {
        FrameType::Hello => Some(HELLO_LEN),
        FrameType::Window | FrameType::GoAway => Some(4),
        FrameType::Cancel => Some(0),
        FrameType::Ping | FrameType::Pong => Some(8),
        _ => None,
    };
    if fixed.is_some_and(|f| f != len) || (kind == FrameType::Error && len < 2) {
        return Err(NativeError::BadLength { frame: kind, len });
    }
    let on_stream_zero = matches!(kind, FrameType::Hello | FrameType::Ping | FrameType::Pong | FrameType::GoAway);
    if on_stream_zero != (stream == 0) && kind != FrameType::Error {
        return Err(NativeError::WrongStream { frame: kind, stream });
    }
    if buf.len() < FRAME_HEADER_LEN + len {
        buf.reserve(FRAME_HEADER_LEN + len - buf.len());
        return Ok(None);
    }
    buf.advance(FRAME_HEADER_LEN);
    // A small payload is copied out, so the read buffer stays uniquely owned and is reused for
    // the next read instead of a fresh block being allocated behind every request; a large
    // DATA payload is split off without a copy.
    let mut payload = if len <= SMALL_PAYLOAD {
        let small = Bytes::copy_from_slice(&buf[..len]);
        buf.advance(len);
        small
    } else {
        buf.split_to(len).freeze()
    };
    let end_stream = flags & END_STREAM != 0;
    Ok(Some(match kind {
        FrameType::Hello => {
            if payload[..4] != MAGIC {
                return Err(NativeError::BadMagic);
            }
            payload.advance(4);
            Frame::Hello(Hello {
                version: payload.get_u16(),
                max_frame: payload.get_u32(),
                max_head: payload.get_u32(),
                initial_window: payload.get_u32(),
                max_streams: payload.get_u32(),
            })
        }
        FrameType::Request => Frame::Request { stream, head: RequestHead::decode(payload)?, end_stream },
        FrameType::Response => Frame::Response { stream, head: ResponseHead::decode(payload)?, end_stream },
        FrameType::Data => Frame::Data { stream, data: payload, end_stream },
        FrameType::Window => Frame::Window { stream, increment: payload.get_u32() },
        FrameType::Cancel => Frame::Cancel { stream },
        FrameType::Error => {
            let code = ErrorCode::from_u16(payload.get_u16());
            Frame::Error { stream, code, message: payload }
        }
        FrameType::Ping => Frame::Ping { opaque: payload.get_u64() },
        FrameType::Pong => Frame::Pong { opaque: payload.get_u64() },
        FrameType::GoAway => Frame::GoAway { last_stream: payload.get_u32() },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn all_kinds() -> Vec<Frame> {
        vec![
            Frame::Hello(Hello::default()),
            Frame::Request {
                stream: 1,
                head: RequestHead { method: b("GET"), target: b("/a?b=c"), headers: vec![(b("host"), b("x"))] },
                end_stream: true,
            },
            Frame::Data { stream: 1, data: b("hello"), end_stream: false },
            Frame::Data { stream: 1, data: Bytes::new(), end_stream: true },
            Frame::Response { stream: 1, head: ResponseHead { status: 200, headers: vec![] }, end_stream: false },
            Frame::Window { stream: 3, increment: 65536 },
            Frame::Cancel { stream: 5 },
            Frame::Error { stream: 0, code: ErrorCode::Protocol, message: b("bad") },
            Frame::Error { stream: 7, code: ErrorCode::Other(77), message: Bytes::new() },
            Frame::Ping { opaque: 42 },
            Frame::Pong { opaque: 42 },
            Frame::GoAway { last_stream: 9 },
        ]
    }

    #[test]
    fn every_kind_round_trips_through_one_buffer_fed_byte_by_byte() {
        let frames = all_kinds();
        let mut wire = BytesMut::new();
        for f in &frames {
            encode(f, &mut wire).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            buf.put_u8(*byte);
            while let Some(f) = decode(&mut buf, &Hello::default()).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn oversized_data_refused_from_the_header() {
        let mut buf = BytesMut::new();
        put_header(&mut buf, 1 << 30, FrameType::Data, 0, 1);
        assert_eq!(decode(&mut buf, &Hello::default()), Err(NativeError::FrameTooLarge { len: 1 << 30, max: 65536 }));
        assert!(buf.capacity() < 1 << 20);
    }

    #[test]
    fn stream_zero_rules() {
        let mut buf = BytesMut::new();
        put_header(&mut buf, 0, FrameType::Cancel, 0, 0);
        assert!(matches!(decode(&mut buf, &Hello::default()), Err(NativeError::WrongStream { .. })));
        let mut buf = BytesMut::new();
        put_header(&mut buf, 8, FrameType::Ping, 0, 3);
        assert!(matches!(decode(&mut buf, &Hello::default()), Err(NativeError::WrongStream { .. })));
    }

    #[test]
    fn lying_header_count_is_an_error() {
        let mut out = BytesMut::new();
        put_header(&mut out, 6, FrameType::Response, 0, 1);
        out.put_u16(200);
        out.put_u16(60000);
        out.put_u16(0);
        assert!(matches!(decode(&mut out, &Hello::default()), Err(NativeError::MalformedHead(_))));
    }

    #[test]
    fn unknown_type_and_bad_magic() {
        let mut buf = BytesMut::from(&[0, 0, 0, 0, 0x7f, 0, 0, 0, 0, 1][..]);
        assert_eq!(decode(&mut buf, &Hello::default()), Err(NativeError::UnknownType(0x7f)));
        let mut buf = BytesMut::new();
        encode(&Frame::Hello(Hello::default()), &mut buf).unwrap();
        buf[FRAME_HEADER_LEN] = b'X';
        assert_eq!(decode(&mut buf, &Hello::default()), Err(NativeError::BadMagic));
    }
}
