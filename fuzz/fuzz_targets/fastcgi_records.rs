//! What a FastCGI responder sends back, and name-value pairs:
//! `bulkhead_listener::dispatch::fastcgi::record::{decode, end_request, Pairs}`. Never a panic;
//! the input decoded whole and fed in two pieces at any split gives the same records; every
//! pair's name and value lie inside the data; and pairs encoded with `Params` decode back to
//! themselves.
#![no_main]

use bulkhead_listener::dispatch::fastcgi::record::{decode, end_request, Pairs, Params, Record, PARAMS};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fn records(pieces: &[&[u8]]) -> (Vec<Record>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decode(&mut buf) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let (whole, failed) = records(&[data]);
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let (halves, failed_halves) = records(&[&data[..split], &data[split..]]);
    assert_eq!(failed, failed_halves);
    assert_eq!(whole, halves);
    for r in &whole {
        let _ = end_request(&r.content);
        let mut encoded = BytesMut::new();
        let mut params = Params::new(&mut encoded, 1);
        let mut pairs = Vec::new();
        for pair in Pairs::new(&r.content) {
            let Ok((name, value)) = pair else { break };
            params.pair(name, value);
            pairs.push((name, value));
        }
        params.finish();
        let (back, failed) = records(&[&encoded]);
        assert!(!failed && back.iter().all(|b| b.kind == PARAMS));
        let stream: Vec<u8> = back.iter().flat_map(|b| b.content.iter().copied()).collect();
        let again: Vec<_> = Pairs::new(&stream).map(|p| p.expect("own encoding")).collect();
        assert_eq!(again, pairs);
    }
});
