//! The native frame decoder on arbitrary bytes: never panics, never allocates past the limits,
//! and whatever it accepts re-encodes to frames that decode to the same values.
#![no_main]

use bulkhead_proto::native::{decode, encode, Hello};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Hello { max_frame: 4096, max_head: 4096, ..Hello::default() };
    let mut buf = BytesMut::from(data);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = decode(&mut buf, &limits) {
        frames.push(frame);
    }
    let mut wire = BytesMut::new();
    for f in &frames {
        encode(f, &mut wire).expect("a decoded frame re-encodes");
    }
    let mut again = Vec::new();
    while let Some(f) = decode(&mut wire, &limits).expect("re-encoded frames decode") {
        again.push(f);
    }
    assert_eq!(frames, again);
});
