//! `Range: bytes=…` (RFC 9110 §14.1.2) for a representation of a known length.
//!
//! [`parse`] gives one of four answers: [`Ranges::Whole`] (no usable header: a unit other than
//! `bytes`, a malformed or over-long list — the RFC says to ignore it, so the answer is 200),
//! [`Ranges::One`] (206 with `Content-Range`), [`Ranges::Many`] (206 with a
//! `multipart/byteranges` body, §14.6, built by [`crate::response::byteranges`]), or
//! [`Ranges::Unsatisfiable`] (416 with `Content-Range: bytes */LEN`). Specs: `a-b`, `a-` (to the end), `-n` (the last n bytes);
//! `b` past the end is clipped; `a-b` with `a > b` makes the whole header invalid.
//!
//! Several ranges are sorted and merged where they overlap or touch (§14.6 lets a server
//! coalesce them; nginx keeps them as sent): if one range remains it is sent as a single part,
//! otherwise as the parts of a multipart answer in ascending order. So an overlapping list can
//! never multiply the response (the "Apache Killer", CVE-2011-3192: the parts together are never
//! more than the file), and a list of more than [`MAX_RANGES`] specs is ignored outright so
//! parsing stays bounded.
//! Pure, no I/O; called by [`crate::static_files`].

/// Specs in one `Range` header beyond which it is ignored (200 with the whole file).
pub const MAX_RANGES: usize = 100;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Send the whole representation (200).
    Whole,
    /// Send bytes `start..=end` (206).
    One { start: u64, end: u64 },
    /// Send these disjoint ranges, `(start, end)` inclusive, ascending, as the parts of a
    /// `multipart/byteranges` answer (206).
    Many(Box<[(u64, u64)]>),
    /// No range overlaps the representation (416).
    Unsatisfiable,
}

/// Reads a `Range` header value against a representation of `len` bytes.
pub fn parse(value: &str, len: u64) -> Ranges {
    let value = value.trim();
    let Some((unit, specs)) = value.split_once('=') else { return Ranges::Whole };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Whole;
    }
    let mut merged: Vec<(u64, u64)> = Vec::new();
    let mut count = 0;
    for spec in specs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        count += 1;
        if count > MAX_RANGES {
            return Ranges::Whole;
        }
        match spec_range(spec, len) {
            Spec::Invalid => return Ranges::Whole,
            Spec::Unsatisfiable => {}
            Spec::Range(start, end) => merged.push((start, end)),
        }
    }
    if count == 0 {
        return Ranges::Whole;
    }
    merged.sort_unstable();
    let mut parts: Vec<(u64, u64)> = Vec::with_capacity(merged.len());
    for (s, e) in merged {
        match parts.last_mut() {
            Some((_, end)) if s <= end.saturating_add(1) => *end = (*end).max(e),
            _ => parts.push((s, e)),
        }
    }
    match parts[..] {
        [] => Ranges::Unsatisfiable,
        [(start, end)] => Ranges::One { start, end },
        _ => Ranges::Many(parts.into_boxed_slice()),
    }
}

enum Spec {
    Invalid,
    Unsatisfiable,
    Range(u64, u64),
}

fn spec_range(spec: &str, len: u64) -> Spec {
    let Some((first, last)) = spec.split_once('-') else { return Spec::Invalid };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| if s.bytes().all(|b| b.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    if first.is_empty() {
        // `-n`: the last n bytes.
        let Some(n) = number(last) else { return Spec::Invalid };
        if n == 0 || len == 0 {
            return Spec::Unsatisfiable;
        }
        return Spec::Range(len.saturating_sub(n), len - 1);
    }
    let Some(start) = number(first) else { return Spec::Invalid };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(end) if end >= start => end,
            _ => return Spec::Invalid,
        }
    };
    if start >= len {
        return Spec::Unsatisfiable;
    }
    Spec::Range(start, end.min(len - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ranges::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse("bytes=0-99", 1000), One { start: 0, end: 99 });
        assert_eq!(parse("bytes=100-", 1000), One { start: 100, end: 999 });
        assert_eq!(parse("bytes=-500", 1000), One { start: 500, end: 999 });
        assert_eq!(parse("bytes=-5000", 1000), One { start: 0, end: 999 }, "suffix longer than the file");
        assert_eq!(parse("bytes=990-2000", 1000), One { start: 990, end: 999 }, "end clipped");
        assert_eq!(parse("BYTES = 5-5", 1000), One { start: 5, end: 5 }, "unit is case-insensitive");
        assert_eq!(parse("bytes= 1-2 ,", 1000), One { start: 1, end: 2 }, "whitespace and empty elements");
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse("bytes=5000-6000", 1000), Unsatisfiable);
        assert_eq!(parse("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Unsatisfiable, "nothing to send of an empty file");
        assert_eq!(parse("bytes=-1", 0), Unsatisfiable);
        assert_eq!(parse("bytes=2000-3000, 4000-", 1000), Unsatisfiable);
    }

    #[test]
    fn malformed_is_ignored() {
        for bad in [
            "bytes=",
            "bytes=abc",
            "bytes=5-1",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0-99999999999999999999999",
            "items=0-1",
            "0-1",
            "bytes=1-2, x",
        ] {
            assert_eq!(parse(bad, 1000), Whole, "{bad}");
        }
    }

    #[test]
    fn several_ranges_merge_or_become_parts() {
        assert_eq!(parse("bytes=0-10, 5-20", 1000), One { start: 0, end: 20 }, "overlap merged");
        assert_eq!(parse("bytes=11-20, 0-10", 1000), One { start: 0, end: 20 }, "adjacent merged, any order");
        assert_eq!(parse("bytes=0-10, 2000-", 1000), One { start: 0, end: 10 }, "unsatisfiable part dropped");
        assert_eq!(parse("bytes=0-10, 20-30", 1000), Many(Box::new([(0, 10), (20, 30)])), "disjoint parts");
        assert_eq!(
            parse("bytes=-5, 0-1, 1-3, 500-600", 1000),
            Many(Box::new([(0, 3), (500, 600), (995, 999)])),
            "parts sorted, overlapping ones merged"
        );
        assert_eq!(parse("bytes=0-1, 5-6, 900-", 10), Many(Box::new([(0, 1), (5, 6)])), "unsatisfiable part dropped");
        let absurd = format!("bytes={}", vec!["0-"; MAX_RANGES + 1].join(","));
        assert_eq!(parse(&absurd, 1000), Whole, "too many specs");
        let many = format!("bytes={}", vec!["0-"; MAX_RANGES].join(","));
        assert_eq!(parse(&many, 1000), One { start: 0, end: 999 }, "overlaps never multiply the answer");
    }
}
