use std::io::Read;

use http::HeaderValue;

use super::*;

fn prefer(lines: &[&str]) -> Vec<Coding> {
    let mut h = HeaderMap::new();
    for line in lines {
        h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(line).unwrap());
    }
    negotiate(&h).iter().collect()
}

use Coding::{Br, Gzip};

#[test]
fn br_before_gzip_at_equal_weight_else_by_weight() {
    assert_eq!(prefer(&["gzip, deflate, br"]), [Br, Gzip]);
    assert_eq!(prefer(&["gzip, deflate, br, zstd"]), [Br, Gzip], "curl --compressed");
    assert_eq!(prefer(&["br;q=0.5, gzip"]), [Gzip, Br]);
    assert_eq!(prefer(&["br;q=0.9, gzip;q=0.8"]), [Br, Gzip]);
    assert_eq!(prefer(&["GZIP"]), [Gzip], "codings are case-insensitive");
    assert_eq!(prefer(&["x-gzip"]), [Gzip], "x-gzip is gzip (RFC 9110 §8.4.1.3)");
    assert_eq!(prefer(&["gzip", "br"]), [Br, Gzip], "lines combine");
    assert_eq!(prefer(&["gzip ; Q=1.000 , br ;q=0.001"]), [Gzip, Br], "spaces, a capital Q");
}

#[test]
fn q_zero_refuses_and_star_fills_in() {
    assert_eq!(prefer(&["br;q=0, gzip"]), [Gzip]);
    assert_eq!(prefer(&["gzip;q=0"]), []);
    assert_eq!(prefer(&["*"]), [Br, Gzip]);
    assert_eq!(prefer(&["*;q=0.5, gzip"]), [Gzip, Br], "named beats *");
    assert_eq!(prefer(&["*;q=0"]), []);
    assert_eq!(prefer(&["br;q=0, *"]), [Gzip], "a named refusal beats *");
    assert_eq!(prefer(&["identity;q=0"]), [], "nothing else accepted: identity all the same");
    assert_eq!(prefer(&["identity;q=0, gzip"]), [Gzip]);
}

#[test]
fn nothing_acceptable_means_identity() {
    assert_eq!(prefer(&[]), [], "no header: identity, as nginx, Apache and Caddy do");
    assert_eq!(prefer(&[""]), []);
    assert_eq!(prefer(&["deflate, zstd, compress"]), []);
    assert_eq!(prefer(&["identity"]), []);
}

#[test]
fn malformed_weights_skip_their_element() {
    for bad in ["1.5", "2", "0.1234", "-1", "abc", "", "0.5x", ".5"] {
        assert_eq!(prefer(&[&format!("gzip;q={bad}, br")]), [Br], "q={bad}");
    }
    assert_eq!(prefer(&["gzip;level, br"]), [Br], "a parameter without =");
    assert_eq!(prefer(&["gzip;q=0.000"]), []);
    assert_eq!(prefer(&["gzip;q=1."]), [Gzip], "1. is 1");
    assert_eq!(prefer(&["gzip;q=0.5, gzip;q=1"]), [Gzip], "named twice: the higher weight");
}

#[test]
fn qvalues_in_thousandths() {
    assert_eq!(qvalue("1"), Some(1000));
    assert_eq!(qvalue("0"), Some(0));
    assert_eq!(qvalue("0.5"), Some(500));
    assert_eq!(qvalue("0.05"), Some(50));
    assert_eq!(qvalue("0.125"), Some(125));
    assert_eq!(qvalue("1.001"), None);
}

#[test]
fn compressible_types_are_text_like() {
    for t in [
        "text/html; charset=utf-8",
        "text/css; charset=utf-8",
        "text/javascript; charset=utf-8",
        "application/json",
        "application/xml",
        "image/svg+xml",
        "application/wasm",
        "font/ttf",
    ] {
        assert!(compressible(t), "{t}");
    }
    for t in
        ["image/png", "image/jpeg", "video/mp4", "application/gzip", "application/zip", "font/woff2", "application/pdf"]
    {
        assert!(!compressible(t), "{t}");
    }
}

#[test]
fn encoders_round_trip() {
    let data: Vec<u8> = (0..20_000u32).flat_map(|i| format!("line {i} of some text\n").into_bytes()).collect();
    let gz = encode(Gzip, &data).unwrap();
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
    assert!(back == data && gz.len() < data.len() / 4, "gzip: {} bytes", gz.len());
    let br = encode(Br, &data).unwrap();
    let mut back = Vec::new();
    brotli::Decompressor::new(&br[..], 4096).read_to_end(&mut back).unwrap();
    assert!(back == data && br.len() < gz.len(), "br: {} bytes", br.len());
    let tiny = encode(Br, b"x").unwrap();
    let mut back = Vec::new();
    brotli::Decompressor::new(&tiny[..], 4096).read_to_end(&mut back).unwrap();
    assert_eq!(back, b"x");
}
