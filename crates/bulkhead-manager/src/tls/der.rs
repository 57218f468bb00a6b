//! The few fields of an X.509 certificate the manager's TLS checks need — validity times and
//! DNS names (subjectAltName, else the subject's common name) — read from its DER with a small
//! walker instead of a full X.509 parser. Called only by [`super`]; never panics on bad bytes
//! (every read is bounds-checked and a malformed certificate gives `None`).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// What [`read`] finds in a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// DNS names, lowercase: the subjectAltName's dNSName entries, or the subject's CN when
    /// the certificate has no subjectAltName.
    pub names: Vec<String>,
}

const SEQUENCE: u8 = 0x30;
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];

/// One tag-length-value: (tag, content, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The TLVs of a constructed value's content, in order.
fn items(mut content: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, value, rest) = tlv(content)?;
        content = rest;
        Some((tag, value))
    })
}

/// Reads validity and names from a DER certificate.
pub fn read(der: &[u8]) -> Option<CertFacts> {
    let (SEQUENCE, cert, _) = tlv(der)? else { return None };
    let (SEQUENCE, tbs, _) = tlv(cert)? else { return None };
    let mut fields = items(tbs).peekable();
    if fields.peek().is_some_and(|(tag, _)| *tag == 0xa0) {
        fields.next(); // version
    }
    let _serial = fields.next()?;
    let _signature = fields.next()?;
    let _issuer = fields.next()?;
    let (SEQUENCE, validity) = fields.next()? else { return None };
    let (SEQUENCE, subject) = fields.next()? else { return None };
    let _spki = fields.next()?;
    let mut times = items(validity);
    let not_before = time_of(times.next()?)?;
    let not_after = time_of(times.next()?)?;
    let mut names = Vec::new();
    for (tag, value) in fields {
        if tag == 0xa3 {
            names = alt_names(value);
        }
    }
    if names.is_empty() {
        names = common_names(subject);
    }
    Some(CertFacts { not_before, not_after, names })
}

/// dNSName entries of the subjectAltName extension in `[3] Extensions`.
fn alt_names(explicit: &[u8]) -> Vec<String> {
    let Some((SEQUENCE, extensions, _)) = tlv(explicit) else { return Vec::new() };
    for (_, ext) in items(extensions) {
        let mut parts = items(ext);
        let Some((0x06, oid)) = parts.next() else { continue };
        if oid != OID_SAN {
            continue;
        }
        let Some((_, value)) = parts.find(|(tag, _)| *tag == 0x04) else { continue };
        let Some((SEQUENCE, general_names, _)) = tlv(value) else { continue };
        return items(general_names)
            .filter(|(tag, _)| *tag == 0x82)
            .filter_map(|(_, name)| std::str::from_utf8(name).ok())
            .map(str::to_ascii_lowercase)
            .collect();
    }
    Vec::new()
}

/// The subject's commonName values.
fn common_names(subject: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for (_, set) in items(subject) {
        for (_, pair) in items(set) {
            let mut parts = items(pair);
            if let (Some((0x06, oid)), Some((_, value))) = (parts.next(), parts.next()) {
                if oid == OID_CN {
                    if let Ok(name) = std::str::from_utf8(value) {
                        out.push(name.to_ascii_lowercase());
                    }
                }
            }
        }
    }
    out
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time_of((tag, value): (u8, &[u8])) -> Option<OffsetDateTime> {
    let text = std::str::from_utf8(value).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i32 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let num = |i: usize| -> Option<u8> { rest.get(i..i + 2)?.parse().ok() };
    let date = Date::from_calendar_date(year, Month::try_from(num(0)?).ok()?, num(2)?).ok()?;
    let time = Time::from_hms(num(4)?, num(6)?, num(8)?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bytes_give_none() {
        assert_eq!(read(&[]), None);
        assert_eq!(read(&[0x30, 0x82, 0xff]), None);
        assert_eq!(read(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
    }

    fn der_of(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate").to_vec()
    }

    #[test]
    fn reads_validity_and_alt_names_of_an_openssl_certificate() {
        let facts = read(&der_of(include_str!("testdata/san.pem"))).expect("parsed");
        // subjectAltName wins over the CN; IP entries are not DNS names; names are lowercased.
        assert_eq!(facts.names, ["shop.example", "*.shop.example"]);
        assert_eq!(facts.not_before.unix_timestamp(), 1_796_194_893);
        assert_eq!(facts.not_after.unix_timestamp(), 4_949_794_893);
        let facts = read(&der_of(include_str!("testdata/cn-only.pem"))).expect("parsed");
        assert_eq!(facts.names, ["cn-only.example"], "no subjectAltName: the CN");
    }

    #[test]
    fn times_of_both_forms() {
        let utc = time_of((0x17, b"250102030405Z")).map(|t| t.unix_timestamp());
        let gen = time_of((0x18, b"20250102030405Z")).map(|t| t.unix_timestamp());
        assert_eq!(utc, Some(1_735_787_045));
        assert_eq!(utc, gen);
        assert_eq!(time_of((0x17, b"251302030405Z")), None);
    }
}
