//! Reading Java KeyStore (JKS) files: what keytool wrote before JDK 9 made PKCS#12 its
//! default, and what many deployments (and kazoo's test harness, through pyjks) still use.
//!
//! The format: magic 0xFEEDFEED, version 1 or 2, an entry count, then entries (a private
//! key protected with Sun's KeyProtector and its certificate chain, or a trusted
//! certificate), then a SHA-1 over the password (UTF-16BE), the words "Mighty Aphrodite"
//! and everything before it. A wrong password shows as that digest not matching.
//!
//! No crate we found reads it safely (the one on the registry indexes past the end of a
//! truncated key), so this reader is ours; every length is checked against what is left
//! and nothing is allocated beyond the file's own size.

use sha1::{Digest, Sha1};

const MAGIC: u32 = 0xFEED_FEED;
const JCEKS_MAGIC: u32 = 0xCECE_CECE;
const PRIVATE_KEY: u32 = 1;
const TRUSTED_CERT: u32 = 2;
/// Sun's KeyProtector: 1.3.6.1.4.1.42.2.17.1.1, DER-encoded.
const KEY_PROTECTOR_OID: [u8; 10] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01];
const DIGEST_LEN: usize = 20;

/// One private key (PKCS#8 DER) with its certificate chain (DER, leaf first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub alias: String,
    pub key_pkcs8: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
}

/// What a JKS file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JksStore {
    pub keys: Vec<KeyEntry>,
    /// Trusted certificates (DER).
    pub trusted: Vec<Vec<u8>>,
}

/// Why a JKS file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JksError {
    #[error("not a JKS file (no 0xFEEDFEED magic)")]
    NotJks,
    #[error(
        "a JCEKS file, which is not implemented (convert it to PKCS12 with keytool -importkeystore)"
    )]
    Jceks,
    #[error("unsupported JKS version {0}")]
    Version(u32),
    #[error("truncated or malformed JKS file ({0})")]
    Malformed(&'static str),
    #[error("wrong password (the keystore's integrity check failed)")]
    WrongPassword,
    #[error("the private key of {0:?} is not protected with Sun's JKS key protector")]
    KeyAlgorithm(String),
}

/// The password as Java hands it to the digests: each char as two big-endian bytes.
fn password_bytes(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], JksError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(JksError::Malformed(what))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, JksError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, JksError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Java's writeUTF: a u16 length and modified UTF-8 (read lossily: an alias).
    fn utf(&mut self, what: &'static str) -> Result<String, JksError> {
        let len = self.u16(what)? as usize;
        Ok(String::from_utf8_lossy(self.take(len, what)?).into_owned())
    }

    fn blob(&mut self, what: &'static str) -> Result<&'a [u8], JksError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    fn cert(&mut self, version: u32) -> Result<Vec<u8>, JksError> {
        if version == 2 {
            let kind = self.utf("certificate type")?;
            if kind != "X.509" {
                return Err(JksError::Malformed("a certificate that is not X.509"));
            }
        }
        Ok(self.blob("certificate")?.to_vec())
    }
}

/// Reads a JKS file; `password` checks its integrity and unlocks its private keys (as
/// ZooKeeper does, the store password is also the key password).
pub fn parse(data: &[u8], password: &str) -> Result<JksStore, JksError> {
    let mut c = Cursor { data, pos: 0 };
    match c.u32("magic").map_err(|_| JksError::NotJks)? {
        MAGIC => {}
        JCEKS_MAGIC => return Err(JksError::Jceks),
        _ => return Err(JksError::NotJks),
    }
    let version = c.u32("version")?;
    if version != 1 && version != 2 {
        return Err(JksError::Version(version));
    }
    let count = c.u32("entry count")?;
    let pw = password_bytes(password);
    let mut store = JksStore::default();
    let mut protected = Vec::new();
    for _ in 0..count {
        let tag = c.u32("entry tag")?;
        let alias = c.utf("alias")?;
        c.take(8, "timestamp")?;
        match tag {
            PRIVATE_KEY => {
                let key = c.blob("private key")?;
                let n = c.u32("chain length")?;
                let mut chain = Vec::new();
                for _ in 0..n {
                    chain.push(c.cert(version)?);
                }
                protected.push((alias, key, chain));
            }
            TRUSTED_CERT => store.trusted.push(c.cert(version)?),
            _ => return Err(JksError::Malformed("unknown entry tag")),
        }
    }
    let body_end = c.pos;
    let stored = c.take(DIGEST_LEN, "integrity digest")?;
    let mut digest = Sha1::new();
    digest.update(&pw);
    digest.update(b"Mighty Aphrodite");
    digest.update(&data[..body_end]);
    if digest.finalize().as_slice() != stored {
        return Err(JksError::WrongPassword);
    }
    for (alias, key, chain) in protected {
        let key_pkcs8 = unprotect(key, &pw).map_err(|e| match e {
            JksError::KeyAlgorithm(_) => JksError::KeyAlgorithm(alias.clone()),
            e => e,
        })?;
        store.keys.push(KeyEntry {
            alias,
            key_pkcs8,
            chain,
        });
    }
    Ok(store)
}

/// One DER element: (tag, contents, rest).
fn der(input: &[u8]) -> Result<(u8, &[u8], &[u8]), JksError> {
    let bad = JksError::Malformed("private key DER");
    let (&tag, rest) = input.split_first().ok_or(bad.clone())?;
    let (&first, rest) = rest.split_first().ok_or(bad.clone())?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad);
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// Sun's KeyProtector: an EncryptedPrivateKeyInfo whose data is salt (20 bytes), the key
/// XORed with a SHA-1 keystream, and SHA-1(password || key) to check the result.
fn unprotect(encrypted_info: &[u8], pw: &[u8]) -> Result<Vec<u8>, JksError> {
    let (tag, info, _) = der(encrypted_info)?;
    if tag != 0x30 {
        return Err(JksError::Malformed("private key DER"));
    }
    let (tag, alg, rest) = der(info)?;
    let (oid_tag, oid, _) = der(alg)?;
    if tag != 0x30 || oid_tag != 0x06 || oid != KEY_PROTECTOR_OID {
        return Err(JksError::KeyAlgorithm(String::new()));
    }
    let (tag, data, _) = der(rest)?;
    if tag != 0x04 || data.len() < 2 * DIGEST_LEN {
        return Err(JksError::Malformed("protected key"));
    }
    let (salt, rest) = data.split_at(DIGEST_LEN);
    let (encrypted, check) = rest.split_at(rest.len() - DIGEST_LEN);
    let mut key = Vec::with_capacity(encrypted.len());
    let mut block: [u8; DIGEST_LEN] = salt.try_into().map_err(|_| JksError::Malformed("salt"))?;
    for chunk in encrypted.chunks(DIGEST_LEN) {
        let mut h = Sha1::new();
        h.update(pw);
        h.update(block);
        block = h.finalize().into();
        key.extend(chunk.iter().zip(block.iter()).map(|(a, b)| a ^ b));
    }
    let mut h = Sha1::new();
    h.update(pw);
    h.update(&key);
    if h.finalize().as_slice() != check {
        return Err(JksError::WrongPassword);
    }
    Ok(key)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A private key entry to write: alias, PKCS#8 key, certificate chain.
    pub(crate) type KeySpec<'a> = (&'a str, &'a [u8], &'a [&'a [u8]]);

    /// Writes a JKS file as keytool does (for tests of the reader and of the server).
    pub(crate) fn write(password: &str, keys: &[KeySpec<'_>], trusted: &[&[u8]]) -> Vec<u8> {
        let pw = password_bytes(password);
        let mut out = Vec::new();
        out.extend(MAGIC.to_be_bytes());
        out.extend(2u32.to_be_bytes());
        out.extend(((keys.len() + trusted.len()) as u32).to_be_bytes());
        let utf = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u16).to_be_bytes());
            out.extend(s.as_bytes());
        };
        let cert = |out: &mut Vec<u8>, der: &[u8]| {
            out.extend(5u16.to_be_bytes());
            out.extend(b"X.509");
            out.extend((der.len() as u32).to_be_bytes());
            out.extend(der);
        };
        for (alias, pkcs8, chain) in keys {
            out.extend(PRIVATE_KEY.to_be_bytes());
            utf(&mut out, alias);
            out.extend(0u64.to_be_bytes());
            let salt = [7u8; DIGEST_LEN];
            let mut data = salt.to_vec();
            let mut block = salt;
            for chunk in pkcs8.chunks(DIGEST_LEN) {
                let mut h = Sha1::new();
                h.update(&pw);
                h.update(block);
                block = h.finalize().into();
                data.extend(chunk.iter().zip(block.iter()).map(|(a, b)| a ^ b));
            }
            let mut h = Sha1::new();
            h.update(&pw);
            h.update(pkcs8);
            data.extend(h.finalize());
            let mut alg = vec![0x06, KEY_PROTECTOR_OID.len() as u8];
            alg.extend(KEY_PROTECTOR_OID);
            alg.extend([0x05, 0x00]);
            let mut info = der_wrap(0x30, &alg);
            info.extend(der_wrap(0x04, &data));
            let epki = der_wrap(0x30, &info);
            out.extend((epki.len() as u32).to_be_bytes());
            out.extend(&epki);
            out.extend((chain.len() as u32).to_be_bytes());
            for c in *chain {
                cert(&mut out, c);
            }
        }
        for (i, c) in trusted.iter().enumerate() {
            out.extend(TRUSTED_CERT.to_be_bytes());
            utf(&mut out, &format!("ca{i}"));
            out.extend(0u64.to_be_bytes());
            cert(&mut out, c);
        }
        let mut h = Sha1::new();
        h.update(&pw);
        h.update(b"Mighty Aphrodite");
        h.update(&out);
        let digest = h.finalize();
        out.extend(digest);
        out
    }

    fn der_wrap(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = body.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend(body);
        out
    }

    #[test]
    fn a_written_store_reads_back_and_a_wrong_password_is_named() {
        let key = vec![
            0x30, 0x03, 0x02, 0x01, 0x00, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
            9,
        ];
        let file = write("secret", &[("server", &key, &[b"cert-1", b"ca"])], &[b"ca"]);
        let store = parse(&file, "secret").unwrap();
        assert_eq!(store.keys.len(), 1);
        assert_eq!(store.keys[0].key_pkcs8, key);
        assert_eq!(
            store.keys[0].chain,
            vec![b"cert-1".to_vec(), b"ca".to_vec()]
        );
        assert_eq!(store.trusted, vec![b"ca".to_vec()]);
        assert_eq!(parse(&file, "wrong"), Err(JksError::WrongPassword));
    }

    #[test]
    fn truncated_and_foreign_files_are_errors_not_panics() {
        let file = write("pw", &[("k", &[1u8; 40], &[b"c"])], &[b"t"]);
        for cut in 0..file.len() {
            assert!(parse(&file[..cut], "pw").is_err(), "cut at {cut}");
        }
        assert_eq!(parse(b"\x30\x82\x01\x00", "pw"), Err(JksError::NotJks));
        assert_eq!(
            parse(&0xCECE_CECEu32.to_be_bytes(), "pw"),
            Err(JksError::Jceks)
        );
        let mut flipped = file.clone();
        flipped[30] ^= 1;
        assert!(parse(&flipped, "pw").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes, "pw");
            let mut with_magic = MAGIC.to_be_bytes().to_vec();
            with_magic.extend(&bytes);
            let _ = parse(&with_magic, "pw");
        }
    }
}
