use super::*;

/// Decodes every record in `bytes`, feeding it `step` bytes at a time.
fn decode_all(bytes: &[u8], step: usize) -> Vec<Record> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in bytes.chunks(step) {
        buf.extend_from_slice(chunk);
        while let Some(r) = decode(&mut buf).expect("valid records") {
            out.push(r);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    out
}

/// The PARAMS stream of `pairs`, reassembled from its records.
fn params_stream(pairs: &[(&[u8], &[u8])]) -> (Vec<Record>, Vec<u8>) {
    let mut out = BytesMut::new();
    let mut p = Params::new(&mut out, 7);
    for (n, v) in pairs {
        p.pair(n, v);
    }
    p.finish();
    let records = decode_all(&out, out.len().max(1));
    let stream = records.iter().flat_map(|r| r.content.iter().copied()).collect();
    (records, stream)
}

#[test]
fn short_and_long_lengths_round_trip() {
    let long_name = vec![b'N'; 200];
    let long_value = vec![b'v'; 70_000];
    let pairs: Vec<(&[u8], &[u8])> = vec![
        (b"SCRIPT_NAME", b"/index.php"),
        (&long_name, b"x"),
        (b"HTTP_BIG", &long_value),
        (b"EMPTY", b""),
        (&[b'a'; 127], &[b'b'; 128]),
    ];
    let (records, stream) = params_stream(&pairs);
    // 70 KB of content needs two records, and an empty record ends the stream.
    assert!(records.iter().all(|r| r.kind == PARAMS && r.id == 7));
    assert!(records.len() >= 3, "{}", records.len());
    assert!(records[..records.len() - 1].iter().all(|r| !r.content.is_empty()));
    assert!(records.last().expect("records").content.is_empty());
    assert!(records.iter().all(|r| r.content.len() <= MAX_CONTENT));
    let decoded: Vec<(&[u8], &[u8])> = Pairs::new(&stream).collect::<Result<_, _>>().expect("pairs");
    assert_eq!(decoded, pairs);
    // 127 is the longest one-byte length, 128 the shortest four-byte one.
    let mut small = BytesMut::new();
    let mut p = Params::new(&mut small, 1);
    p.pair(&[b'a'; 127], &[b'b'; 128]);
    p.finish();
    assert_eq!(&small[8..13], &[127, 0x80, 0, 0, 128]);
}

#[test]
fn a_pair_written_in_parts_equals_the_joined_pair() {
    let mut a = BytesMut::new();
    let mut p = Params::new(&mut a, 1);
    p.pair_parts(&[b"HTTP_", b"USER_AGENT"], b"curl");
    p.finish();
    let mut b = BytesMut::new();
    let mut p = Params::new(&mut b, 1);
    p.pair(b"HTTP_USER_AGENT", b"curl");
    p.finish();
    assert_eq!(a, b);
}

#[test]
fn no_pairs_is_just_the_closing_record() {
    let mut out = BytesMut::new();
    Params::new(&mut out, 3).finish();
    assert_eq!(&out[..], &header(PARAMS, 3, 0, 0));
}

#[test]
fn records_split_at_every_byte_decode_the_same() {
    let mut wire = Vec::new();
    wire.extend_from_slice(&header(STDOUT, 1, 5, 3));
    wire.extend_from_slice(b"hello\0\0\0");
    wire.extend_from_slice(&header(STDERR, 1, 4, 0));
    wire.extend_from_slice(b"oops");
    wire.extend_from_slice(&header(STDOUT, 1, 0, 0));
    wire.extend_from_slice(&header(END_REQUEST, 1, 8, 0));
    wire.extend_from_slice(&[0, 0, 1, 2, 0, 0, 0, 0]);
    let whole = decode_all(&wire, wire.len());
    assert_eq!(whole.len(), 4);
    assert_eq!((whole[0].kind, &whole[0].content[..]), (STDOUT, &b"hello"[..]));
    assert_eq!((whole[1].kind, &whole[1].content[..]), (STDERR, &b"oops"[..]));
    assert_eq!(end_request(&whole[3].content), Ok((258, 0)));
    for step in 1..wire.len() {
        assert_eq!(decode_all(&wire, step), whole, "fed {step} bytes at a time");
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut buf = BytesMut::from(&[2u8, 6, 0, 1, 0, 0, 0, 0][..]);
    assert_eq!(decode(&mut buf), Err(RecordError::Version(2)));
    assert_eq!(end_request(&[0, 0]), Err(RecordError::EndRequestLength(2)));
    let truncated: Vec<_> = Pairs::new(&[5, 1, b'a']).collect();
    assert_eq!(truncated, vec![Err(RecordError::Truncated)]);
    let huge: Vec<_> = Pairs::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).collect();
    assert_eq!(huge, vec![Err(RecordError::Truncated)]);
}
