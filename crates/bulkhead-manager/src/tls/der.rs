//! The few fields of an X.509 certificate the manager's TLS checks need — validity times and
//! DNS names (subjectAltName, else the subject's common name) — read with the `x509-parser`
//! crate. Called only by [`super`]; a malformed certificate gives `None`, never a panic.

use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

/// What [`read`] finds in a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// DNS names, lowercase: the subjectAltName's dNSName entries, or the subject's CN when
    /// the certificate has no subjectAltName.
    pub names: Vec<String>,
}

/// Reads validity and names from a DER certificate.
pub fn read(der: &[u8]) -> Option<CertFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let validity = cert.validity();
    let names = match cert.subject_alternative_name().ok()? {
        Some(san) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        None => {
            cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_ascii_lowercase).collect()
        }
    };
    Some(CertFacts {
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
        names,
    })
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
}
