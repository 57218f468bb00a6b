//! Length-prefixed framing for control messages: a 4-byte big-endian length, then that many
//! bytes of JSON.
//!
//! JSON because control traffic is a few messages a second and must stay readable with
//! `strace`; the request path never uses this framing (it has the native protocol). The length
//! is checked against a maximum *before* any buffer is grown for the body, so a peer cannot make
//! us allocate by lying. Everything here works on byte buffers, without sockets, so it can be
//! fuzzed and unit-tested.

use bytes::{Buf, BufMut, BytesMut};
use serde::{de::DeserializeOwned, Serialize};

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;
/// Largest control message body accepted by default (a whole config travels in one).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// What went wrong decoding or encoding one frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("control message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("control message is not valid: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Appends one framed message to `out`.
pub fn encode<T: Serialize>(msg: &T, max: usize, out: &mut BytesMut) -> Result<(), FrameError> {
    let start = out.len();
    out.put_u32(0);
    let mut writer = out.writer();
    serde_json::to_writer(&mut writer, msg)?;
    let out = writer.into_inner();
    let len = out.len() - start - HEADER_LEN;
    if len > max {
        out.truncate(start);
        return Err(FrameError::TooLarge { len, max });
    }
    out[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Takes one whole message off the front of `buf`, or `Ok(None)` when more bytes are needed.
///
/// On `Ok(None)` it reserves room for the rest of the frame, but only once the length has
/// passed the `max` check.
pub fn decode<T: DeserializeOwned>(buf: &mut BytesMut, max: usize) -> Result<Option<T>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if buf.len() < HEADER_LEN + len {
        buf.reserve(HEADER_LEN + len - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let body = buf.split_to(len);
    Ok(Some(serde_json::from_slice(&body)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{ManagerToWorker, WorkerToManager};

    #[test]
    fn round_trip_byte_by_byte() {
        let mut out = BytesMut::new();
        encode(&WorkerToManager::Pong { seq: 7, requests: 3, in_flight: 1 }, 1024, &mut out).unwrap();
        encode(&WorkerToManager::Ready, 1024, &mut out).unwrap();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in out.iter() {
            buf.put_u8(*b);
            while let Some(m) = decode::<WorkerToManager>(&mut buf, 1024).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![WorkerToManager::Pong { seq: 7, requests: 3, in_flight: 1 }, WorkerToManager::Ready]);
    }

    #[test]
    fn oversized_length_refused_before_allocating() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let err = decode::<ManagerToWorker>(&mut buf, 1024).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 0xffff_ffff, max: 1024 }));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn oversized_message_not_encoded() {
        let mut out = BytesMut::new();
        let err = encode(&WorkerToManager::RequestRecycle { reason: "x".repeat(100) }, 10, &mut out);
        assert!(matches!(err, Err(FrameError::TooLarge { .. })));
        assert!(out.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut buf = BytesMut::from(&[0, 0, 0, 3, b'{', b'x', b'}'][..]);
        assert!(matches!(decode::<WorkerToManager>(&mut buf, 1024), Err(FrameError::Malformed(_))));
    }
}
