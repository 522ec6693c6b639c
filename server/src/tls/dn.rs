//! A certificate's subject as ZooKeeper's X509AuthenticationProvider names it: Java's
//! `X500Principal.getName()`, the RFC 2253 string (last RDN first, `,` between RDNs, `+`
//! inside a multi-valued one, the usual short names, other attributes as a dotted OID
//! with a `#`-hex value). That string is the client's `x509` id, matched against ACLs
//! such as `x509:CN=client,O=Example`.

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// The subject DN of a DER certificate, or None when it does not parse.
pub fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(rfc2253(cert.subject()))
}

/// RFC 2253 form of a name.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The short names RFC 2253 (and Java) use.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn attribute(atv: &AttributeTypeAndValue<'_>) -> String {
    let oid = atv.attr_type().to_id_string();
    match (short_name(&oid), atv.as_str()) {
        (Some(name), Ok(value)) => format!("{name}={}", escape(value)),
        _ => {
            // Unknown attribute or a value that is no string: `oid=#<hex of its DER>`.
            let raw = atv.attr_value();
            let mut der = Vec::new();
            der.push(raw.tag().0 as u8);
            let data = raw.data;
            let len = data.len();
            if len < 0x80 {
                der.push(len as u8);
            } else {
                let bytes = len.to_be_bytes();
                let skip = bytes.iter().take_while(|b| **b == 0).count();
                der.push(0x80 | (bytes.len() - skip) as u8);
                der.extend(&bytes[skip..]);
            }
            der.extend(data);
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            format!("{oid}=#{hex}")
        }
    }
}

/// RFC 2253 escaping: `,+"\<>;` anywhere, `#` or space first, space last.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_subject_reads_as_java_prints_it() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        dn.push(rcgen::DnType::CommonName, "client");
        assert_eq!(
            subject_of(&cert_with(dn)).unwrap(),
            "CN=client,O=Example\\, Inc.,C=US"
        );
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, " #a+b ");
        assert_eq!(subject_of(&cert_with(dn)).unwrap(), "CN=\\ #a\\+b\\ ");
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(subject_of(b"not a certificate"), None);
    }
}
