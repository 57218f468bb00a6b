//! Property tests of the native protocol codec: any sequence of frames encodes and decodes back
//! to itself however the bytes are split, and arbitrary bytes never panic the decoder.

use bulkhead_proto::native::{decode, encode, ErrorCode, Frame, Hello, RequestHead, ResponseHead};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn name() -> impl Strategy<Value = Bytes> {
    "[a-z][a-z0-9-]{0,20}".prop_map(|s| Bytes::from(s.into_bytes()))
}

fn headers() -> impl Strategy<Value = Vec<(Bytes, Bytes)>> {
    proptest::collection::vec((name(), bytes(40)), 0..8)
}

fn frame() -> impl Strategy<Value = Frame> {
    let stream = 1u32..u32::MAX;
    prop_oneof![
        (1u16..3, 1u32..1 << 20, 1u32..1 << 20, any::<u32>(), any::<u32>()).prop_map(|(v, f, h, w, s)| {
            Frame::Hello(Hello { version: v, max_frame: f, max_head: h, initial_window: w, max_streams: s })
        }),
        (stream.clone(), name(), bytes(100), headers(), any::<bool>()).prop_map(|(s, m, t, h, e)| Frame::Request {
            stream: s,
            head: RequestHead { method: m, target: t, headers: h },
            end_stream: e
        }),
        (stream.clone(), 100u16..1000, headers(), any::<bool>()).prop_map(|(s, st, h, e)| Frame::Response {
            stream: s,
            head: ResponseHead { status: st, headers: h },
            end_stream: e
        }),
        (stream.clone(), bytes(3000), any::<bool>()).prop_map(|(s, d, e)| Frame::Data {
            stream: s,
            data: d,
            end_stream: e
        }),
        (stream.clone(), any::<u32>()).prop_map(|(s, i)| Frame::Window { stream: s, increment: i }),
        stream.clone().prop_map(|s| Frame::Cancel { stream: s }),
        (any::<u32>(), 1u16..10, bytes(50)).prop_map(|(s, c, m)| Frame::Error {
            stream: s,
            code: ErrorCode::from_u16(c),
            message: m
        }),
        any::<u64>().prop_map(|o| Frame::Ping { opaque: o }),
        any::<u64>().prop_map(|o| Frame::Pong { opaque: o }),
        any::<u32>().prop_map(|l| Frame::GoAway { last_stream: l }),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip_across_any_split(frames in proptest::collection::vec(frame(), 1..20), chunk in 1usize..64) {
        let mut wire = BytesMut::new();
        for f in &frames {
            encode(f, &mut wire).unwrap();
        }
        let limits = Hello::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(f) = decode(&mut buf, &limits).unwrap() {
                got.push(f);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&data[..]);
        let limits = Hello::default();
        while let Ok(Some(_)) = decode(&mut buf, &limits) {}
    }
}
