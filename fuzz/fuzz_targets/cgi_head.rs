//! What a CGI program writes before its body, and the listener's percent-encoding of route
//! facts: `bulkhead_host::cgi::head::parse` and `bulkhead_proto::host::{encode, decode}`. Never a
//! panic; a parsed block is never longer than its input and ends with an empty line; the block
//! alone parses the same, and any shorter prefix of it is "not whole yet" (so reads of any
//! size give one answer); and any bytes encode to a valid header value that decodes back.
#![no_main]

use bulkhead_host::cgi::head::parse;
use bulkhead_proto::host::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((head, used))) = parse(data) {
        // The block alone parses the same; any shorter prefix is not whole yet.
        assert!(used <= data.len() && data[..used].ends_with(b"\n"));
        match parse(&data[..used]) {
            Ok(Some((again, n))) => assert_eq!((again.status(), n), (head.status(), used)),
            other => panic!("the block alone: {:?}", other.map(|h| h.map(|(r, n)| (r.status(), n)))),
        }
        let cut = data.first().map_or(0, |b| *b as usize % used);
        assert!(matches!(parse(&data[..cut]), Ok(None)), "a prefix of {cut} bytes of a {used}-byte block");
    }
    let text = encode(data);
    assert!(text.bytes().all(|b| b.is_ascii_graphic()));
    assert!(http::HeaderValue::from_str(&text).is_ok());
    assert_eq!(decode(text.as_bytes()).as_deref(), Some(data));
    let _ = decode(data);
});
