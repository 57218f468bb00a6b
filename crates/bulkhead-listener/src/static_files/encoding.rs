//! Content codings for static files: which ones a request accepts (`Accept-Encoding`, RFC 9110
//! §12.5.3), which content types are worth compressing, and the encoders themselves.
//!
//! [`negotiate`] reads every `Accept-Encoding` line into a [`Preference`]: the codings Bulkhead
//! can send (`br`, `gzip`; `x-gzip` is `gzip`, §8.4.1.3) that the client accepts, best first by
//! q-value, `br` before `gzip` at equal q. `*` stands for any coding not named; `q=0` refuses
//! one; a malformed element (bad q-value) is skipped. No header, an empty one, or nothing
//! acceptable → no coding (identity), which is what a server SHOULD send then (§12.5.3). `identity`
//! is always available, so `identity;q=0` changes nothing unless a coding is also accepted.
//!
//! [`compressible`] is the list of types compressed on the fly and looked up as precompressed
//! files: text (`text/*`), JSON, XML (RSS, Atom), SVG, the web manifest, WebAssembly, and the
//! uncompressed font formats (TTF, OTF). Everything else — raster images, video, audio,
//! archives (`.gz`, `.zip`), PDF, WOFF/WOFF2 — is already compressed and is never encoded again.
//!
//! [`encode`] compresses a whole buffer synchronously (`flate2`, `brotli`): it runs where a small
//! file is read whole ([`crate::static_files`]: inline up to 16 KiB, on the blocking pool above),
//! so the body is produced at once with a `Content-Length`, and no async encoder, no extra thread
//! hand-off and no chunked stream are needed (which is why `async-compression` is not used:
//! on-the-fly compression is only done for files read whole). gzip at level 6 (zlib's default),
//! brotli at quality 5 with a window fitted to the file: both cost a few milliseconds for the
//! largest file compressed (256 KiB), where brotli's quality 11 would take a second.
//! Called by [`crate::static_files`]; pure apart from the encoders' CPU, no I/O.

use std::io::Write;

use http::header::{self, HeaderMap};

/// Files smaller than this are sent as they are: a coding's own framing (gzip: 18 bytes) and a
/// `Vary`-split cache cost more than a few saved bytes (nginx's `gzip_min_length` is 20, Caddy's
/// `minimum_length` 512).
pub const MIN_COMPRESS: u64 = 256;

/// gzip's level for on-the-fly compression.
const GZIP_LEVEL: u32 = 6;
/// brotli's quality for on-the-fly compression.
const BROTLI_QUALITY: i32 = 5;

/// A content coding Bulkhead can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Br,
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The file-name suffix of a precompressed file (`app.js.br`).
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }

    /// The suffix added to the identity `ETag`'s opaque part (`"5f3c-1a-br"`), so each encoding
    /// has its own strong tag (RFC 9110 §8.8.3), as Apache's `-gzip`/`-br` suffixes do.
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Br => "-br",
            Coding::Gzip => "-gz",
        }
    }
}

/// The codings a request accepts, best first (at most both).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preference([Option<Coding>; 2]);

impl Preference {
    pub fn iter(&self) -> impl Iterator<Item = Coding> + '_ {
        self.0.iter().flatten().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0[0].is_none()
    }
}

/// What the request's `Accept-Encoding` lines allow (see the module doc).
pub fn negotiate(headers: &HeaderMap) -> Preference {
    // q-values in thousandths; None = not named.
    let (mut br, mut gzip, mut any) = (None, None, None);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for element in text.split(',') {
            let mut parts = element.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            if coding.is_empty() {
                continue;
            }
            let Some(q) = weight(parts) else { continue };
            let slot = if coding.eq_ignore_ascii_case("br") {
                &mut br
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                &mut gzip
            } else if coding == "*" {
                &mut any
            } else {
                continue;
            };
            // Named twice: the higher weight (a client that lists a coding twice means it).
            *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
        }
    }
    let br = br.or(any).unwrap_or(0);
    let gzip = gzip.or(any).unwrap_or(0);
    let ordered = match (br > 0, gzip > 0) {
        (true, true) if gzip > br => [Some(Coding::Gzip), Some(Coding::Br)],
        (true, true) => [Some(Coding::Br), Some(Coding::Gzip)],
        (true, false) => [Some(Coding::Br), None],
        (false, true) => [Some(Coding::Gzip), None],
        (false, false) => [None, None],
    };
    Preference(ordered)
}

/// The element's `q` parameter in thousandths (1000 without one); `None` when it is malformed.
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut q = 1000;
    for param in params {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            q = qvalue(value.trim())?;
        }
    }
    Some(q)
}

/// RFC 9110 §12.4.2: `0[.ddd]` or `1[.000]`, in thousandths.
fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether files of this `Content-Type` (as the MIME map gives it) are compressed.
pub fn compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/json"
                | "application/xml"
                | "application/rss+xml"
                | "application/atom+xml"
                | "application/manifest+json"
                | "application/wasm"
                | "image/svg+xml"
                | "font/ttf"
                | "font/otf"
        )
}

/// `data` compressed with `coding`; `None` if the encoder failed (it writes to memory only, so
/// in practice it does not).
pub fn encode(coding: Coding, data: &[u8]) -> Option<Vec<u8>> {
    match coding {
        Coding::Gzip => {
            let mut enc =
                flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 3), flate2::Compression::new(GZIP_LEVEL));
            enc.write_all(data).ok()?;
            enc.finish().ok()
        }
        Coding::Br => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY,
                // The smallest window that holds the whole file (brotli's range is 10 to 24).
                lgwin: (usize::BITS - data.len().leading_zeros()).clamp(10, 24) as i32,
                size_hint: data.len(),
                ..Default::default()
            };
            let mut out = Vec::with_capacity(data.len() / 3);
            brotli::BrotliCompress(&mut &data[..], &mut out, &params).ok()?;
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests;
