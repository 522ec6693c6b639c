//! SASL DIGEST-MD5 (RFC 2831) as ZooKeeper uses it, both ends, as pure state machines:
//! tokens in, tokens out. Randomness (the server's nonce, the client's cnonce) and the
//! password lookup come from the caller, so nothing here does I/O.
//!
//! What ZooKeeper negotiates, and so all this implements: quality of protection `auth`
//! only (ZooKeeper's server never offers `auth-int` or `auth-conf`, so there is no
//! integrity or privacy layer and no HMAC-MD5), `algorithm=md5-sess`, `charset=utf-8`,
//! one round (nc = 1, no subsequent authentication). Client connections use the
//! service `zookeeper` on the host `zk-sasl-md5`, which is also the realm; the quorum
//! port uses `zookeeper-quorum` on `zk-quorum-sasl-md5` ([`Service`]).

use md5::{Digest, Md5};

/// RFC 2831 2.1.2: a digest-response must be shorter than 4096 bytes.
pub const MAX_RESPONSE: usize = 4096;
/// RFC 2831 2.1.1: a digest-challenge must be shorter than 2048 bytes.
pub const MAX_CHALLENGE: usize = 2048;
/// RFC 2831 2.1.3: the response-auth message is shorter than 2048 bytes too.
const MAX_RSPAUTH: usize = 2048;

/// Who the exchange authenticates to: the protocol and host of the digest-uri, and the
/// realm the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub protocol: &'static str,
    pub host: &'static str,
    pub realm: &'static str,
}

impl Service {
    /// ZooKeeper's client port (ZooKeeperSaslServer / ZooKeeperSaslClient).
    pub const CLIENT: Service = Service {
        protocol: "zookeeper",
        host: "zk-sasl-md5",
        realm: "zk-sasl-md5",
    };
    /// ZooKeeper's quorum port (QuorumAuth's protocol name and server name).
    pub const QUORUM: Service = Service {
        protocol: "zookeeper-quorum",
        host: "zk-quorum-sasl-md5",
        realm: "zk-quorum-sasl-md5",
    };

    fn digest_uri(&self) -> String {
        format!("{}/{}", self.protocol, self.host)
    }
}

/// Why an exchange failed. The text names the cause for a log line; it never holds a
/// password or a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DIGEST-MD5: {0}")]
pub struct SaslError(pub String);

fn fail<T>(what: impl Into<String>) -> Result<T, SaslError> {
    Err(SaslError(what.into()))
}

/// The `name=value` directives of a challenge or response, in order. Values are
/// unquoted (with `\` escapes undone); names are lower-cased.
pub fn parse_directives(bytes: &[u8]) -> Result<Vec<(String, String)>, SaslError> {
    let text = std::str::from_utf8(bytes).or_else(|_| fail("not UTF-8"))?;
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        // Empty list elements and linear white space are allowed (RFC 2831's #rule).
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            name.push(c.to_ascii_lowercase());
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return fail(format!("directive {name:?} has no value"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return fail(format!("unterminated quoted value of {name:?}")),
                    },
                    Some(c) => value.push(c),
                    None => return fail(format!("unterminated quoted value of {name:?}")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value.truncate(value.trim_end().len());
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None | Some(',') => {}
            Some(c) => return fail(format!("unexpected {c:?} after the value of {name:?}")),
        }
        if name.is_empty() {
            return fail("a directive without a name");
        }
        out.push((name, value));
    }
}

/// The single value of `name`; an error when it is given twice (RFC 2831 allows only
/// `realm` in a challenge more than once).
fn single<'a>(dirs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, SaslError> {
    let mut found = dirs.iter().filter(|(n, _)| n == name);
    let first = found.next().map(|(_, v)| v.as_str());
    if found.next().is_some() {
        return fail(format!("directive {name:?} given more than once"));
    }
    Ok(first)
}

fn required<'a>(dirs: &'a [(String, String)], name: &str) -> Result<&'a str, SaslError> {
    single(dirs, name)?.ok_or_else(|| SaslError(format!("no {name} directive")))
}

/// A quoted-string for a directive value.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// RFC 2831 2.1.2.1: with charset=utf-8, a user name, realm or password whose characters
/// all fit ISO 8859-1 is hashed in ISO 8859-1; otherwise in UTF-8.
fn hash_bytes(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) < 256) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The inputs of a response value (RFC 2831 2.1.2.1).
pub struct DigestInput<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub nonce: &'a str,
    pub cnonce: &'a str,
    pub nc: &'a str,
    pub qop: &'a str,
    pub digest_uri: &'a str,
    pub authzid: Option<&'a str>,
}

impl DigestInput<'_> {
    /// HEX(H(A1)) with A1 = H(user:realm:password) ":" nonce ":" cnonce [":" authzid].
    fn ha1(&self) -> String {
        let mut secret = Md5::new();
        secret.update(hash_bytes(self.username));
        secret.update(b":");
        secret.update(hash_bytes(self.realm));
        secret.update(b":");
        secret.update(hash_bytes(self.password));
        let mut a1 = Md5::new();
        a1.update(secret.finalize());
        a1.update(b":");
        a1.update(self.nonce.as_bytes());
        a1.update(b":");
        a1.update(self.cnonce.as_bytes());
        if let Some(authzid) = self.authzid {
            a1.update(b":");
            a1.update(authzid.as_bytes());
        }
        hex(&a1.finalize())
    }

    /// KD(HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2))) in hex, for A2 = `a2_prefix`
    /// digest-uri (qop auth: no trailing zeros).
    fn kd(&self, a2_prefix: &str) -> String {
        let ha2 = hex(&Md5::digest(
            format!("{a2_prefix}:{}", self.digest_uri).as_bytes(),
        ));
        let mut kd = Md5::new();
        kd.update(self.ha1().as_bytes());
        kd.update(format!(
            ":{}:{}:{}:{}:{ha2}",
            self.nonce, self.nc, self.cnonce, self.qop
        ));
        hex(&kd.finalize())
    }

    /// The client's `response` value.
    pub fn response(&self) -> String {
        self.kd("AUTHENTICATE")
    }

    /// The server's `rspauth` value.
    pub fn rspauth(&self) -> String {
        self.kd("")
    }
}

/// Equality of two hex digests without an early exit.
fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| {
            acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
        }) == 0
}

/// What the server answers a client token with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Send this token and wait for the client's next one.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `token` (the rspauth) as the last answer.
    Done { user: String, token: Vec<u8> },
}

#[derive(Debug)]
enum ServerState {
    Start,
    Challenged { nonce: String },
    Finished,
}

/// The server end of one exchange.
#[derive(Debug)]
pub struct Server {
    service: Service,
    state: ServerState,
}

impl Server {
    pub fn new(service: Service) -> Server {
        Server {
            service,
            state: ServerState::Start,
        }
    }

    /// Whether the exchange ended (in success or failure): no more tokens are accepted.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, ServerState::Finished)
    }

    /// Takes the client's next token. `nonce` makes a fresh server nonce (at least 64
    /// random bits, in quoted-string-safe characters); `password` looks a user up.
    /// Any error ends the exchange.
    pub fn step(
        &mut self,
        token: &[u8],
        nonce: impl FnOnce() -> String,
        password: impl FnOnce(&str) -> Option<String>,
    ) -> Result<ServerStep, SaslError> {
        let state = std::mem::replace(&mut self.state, ServerState::Finished);
        match state {
            ServerState::Start => {
                if !token.is_empty() {
                    return fail(format!(
                        "the first token must be empty (got {} bytes): the client speaks \
                         another mechanism (GSSAPI?) or re-authentication, which is not \
                         supported",
                        token.len()
                    ));
                }
                let nonce = nonce();
                let challenge = format!(
                    "realm={},nonce={},qop=\"auth\",charset=utf-8,algorithm=md5-sess",
                    quote(self.service.realm),
                    quote(&nonce)
                );
                self.state = ServerState::Challenged { nonce };
                Ok(ServerStep::Challenge(challenge.into_bytes()))
            }
            ServerState::Challenged { nonce } => self.verify(token, &nonce, password),
            ServerState::Finished => fail("the exchange is already over"),
        }
    }

    fn verify(
        &self,
        token: &[u8],
        nonce: &str,
        password: impl FnOnce(&str) -> Option<String>,
    ) -> Result<ServerStep, SaslError> {
        if token.len() >= MAX_RESPONSE {
            return fail(format!(
                "a {}-byte response (the limit is {MAX_RESPONSE})",
                token.len()
            ));
        }
        let dirs = parse_directives(token)?;
        if let Some(charset) = single(&dirs, "charset")?
            && !charset.eq_ignore_ascii_case("utf-8")
        {
            return fail(format!("charset {charset:?} (only utf-8 is offered)"));
        }
        let username = required(&dirs, "username")?;
        let realm = single(&dirs, "realm")?.unwrap_or("");
        if !realm.is_empty() && realm != self.service.realm {
            return fail(format!("realm {realm:?} is not {:?}", self.service.realm));
        }
        if required(&dirs, "nonce")? != nonce {
            return fail("the nonce is not the one of the challenge");
        }
        let cnonce = required(&dirs, "cnonce")?;
        if cnonce.is_empty() {
            return fail("an empty cnonce");
        }
        let nc = required(&dirs, "nc")?;
        if nc != "00000001" {
            return fail(format!("nonce count {nc:?} (expected 00000001)"));
        }
        let qop = single(&dirs, "qop")?.unwrap_or("auth");
        if qop != "auth" {
            return fail(format!("qop {qop:?} (only auth is offered)"));
        }
        let digest_uri = required(&dirs, "digest-uri")?;
        if !digest_uri.eq_ignore_ascii_case(&self.service.digest_uri()) {
            return fail(format!(
                "digest-uri {digest_uri:?} is not {:?}",
                self.service.digest_uri()
            ));
        }
        let response = required(&dirs, "response")?;
        if response.len() != 32 || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
            return fail("the response is not 32 hex digits");
        }
        let authzid = single(&dirs, "authzid")?;
        let Some(secret) = password(username) else {
            return fail(format!("unknown user {username:?}"));
        };
        let input = DigestInput {
            username,
            realm,
            password: &secret,
            nonce,
            cnonce,
            nc,
            qop,
            digest_uri,
            authzid,
        };
        if !same_digest(&input.response(), response) {
            return fail(format!("wrong password for user {username:?}"));
        }
        Ok(ServerStep::Done {
            user: username.to_string(),
            token: format!("rspauth={}", input.rspauth()).into_bytes(),
        })
    }
}

#[derive(Debug)]
enum ClientState {
    Start,
    Challenged,
    Responded { expected_rspauth: String },
    Finished,
}

/// The client end of one exchange.
pub struct Client {
    service: Service,
    username: String,
    password: String,
    cnonce: String,
    state: ClientState,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.service)
            .field("username", &self.username)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `cnonce`: at least 64 random bits in quoted-string-safe characters.
    pub fn new(service: Service, username: &str, password: &str, cnonce: String) -> Client {
        Client {
            service,
            username: username.to_string(),
            password: password.to_string(),
            cnonce,
            state: ClientState::Start,
        }
    }

    /// The first token: DIGEST-MD5 has no initial response, so it is empty.
    pub fn initial(&mut self) -> Vec<u8> {
        self.state = ClientState::Challenged;
        Vec::new()
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.state, ClientState::Finished)
    }

    /// Takes the server's next token: the challenge (answered with the response) or the
    /// rspauth (answered with `None`: the server proved it knows the password too).
    pub fn step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, SaslError> {
        match std::mem::replace(&mut self.state, ClientState::Finished) {
            ClientState::Start | ClientState::Challenged => self.respond(token).map(Some),
            ClientState::Responded { expected_rspauth } => {
                if token.len() >= MAX_RSPAUTH {
                    return fail("an oversized rspauth");
                }
                let dirs = parse_directives(token)?;
                let got = required(&dirs, "rspauth")?;
                if !same_digest(got, &expected_rspauth) {
                    return fail("the server's rspauth is wrong: it does not know the password");
                }
                Ok(None)
            }
            ClientState::Finished => fail("the exchange is already over"),
        }
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        if challenge.len() >= MAX_CHALLENGE {
            return fail(format!("a {}-byte challenge", challenge.len()));
        }
        let dirs = parse_directives(challenge)?;
        let realm = dirs
            .iter()
            .find(|(n, _)| n == "realm")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let nonce = required(&dirs, "nonce")?;
        if let Some(qops) = single(&dirs, "qop")?
            && !qops.split(',').any(|q| q.trim() == "auth")
        {
            return fail(format!("the server offers qop {qops:?}, not auth"));
        }
        match single(&dirs, "algorithm")? {
            Some(a) if a.eq_ignore_ascii_case("md5-sess") => {}
            other => return fail(format!("algorithm {other:?} (expected md5-sess)")),
        }
        let digest_uri = self.service.digest_uri();
        let input = DigestInput {
            username: &self.username,
            realm: &realm,
            password: &self.password,
            nonce,
            cnonce: &self.cnonce,
            nc: "00000001",
            qop: "auth",
            digest_uri: &digest_uri,
            authzid: None,
        };
        let mut parts = vec![
            "charset=utf-8".to_string(),
            format!("username={}", quote(&self.username)),
        ];
        if !realm.is_empty() {
            parts.push(format!("realm={}", quote(&realm)));
        }
        parts.extend([
            format!("nonce={}", quote(nonce)),
            "nc=00000001".to_string(),
            format!("cnonce={}", quote(&self.cnonce)),
            format!("digest-uri={}", quote(&digest_uri)),
            format!("response={}", input.response()),
            "qop=auth".to_string(),
        ]);
        let response = parts.join(",");
        self.state = ClientState::Responded {
            expected_rspauth: input.rspauth(),
        };
        Ok(response.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2831 section 4, the IMAP example: user chris, password secret.
    #[test]
    fn rfc_2831_example_response_and_rspauth() {
        let input = DigestInput {
            username: "chris",
            realm: "elwood.innosoft.com",
            password: "secret",
            nonce: "OA6MG9tEQGm2hh",
            cnonce: "OA6MHXh6VqTrRk",
            nc: "00000001",
            qop: "auth",
            digest_uri: "imap/elwood.innosoft.com",
            authzid: None,
        };
        assert_eq!(input.response(), "d388dad90d4bbd760a152321f2143af7");
        assert_eq!(input.rspauth(), "ea40f60335c427b5527b84dbabcdfffd");
    }

    /// RFC 2831 section 4, the ACAP example (no realm in the challenge's hash input is
    /// the same realm: elwood.innosoft.com).
    #[test]
    fn rfc_2831_acap_example() {
        let input = DigestInput {
            username: "chris",
            realm: "elwood.innosoft.com",
            password: "secret",
            nonce: "OA9BSXrbuRhWay",
            cnonce: "OA9BSuZWMSpW8m",
            nc: "00000001",
            qop: "auth",
            digest_uri: "acap/elwood.innosoft.com",
            authzid: None,
        };
        assert_eq!(input.response(), "6084c6db3fede7352c551284490fd0fc");
        assert_eq!(input.rspauth(), "2f0b3d7c3c2e486600ef710726aa2eae");
    }

    /// The server side checks the RFC's example response as given.
    #[test]
    fn server_accepts_the_rfc_example_response() {
        let service = Service {
            protocol: "imap",
            host: "elwood.innosoft.com",
            realm: "elwood.innosoft.com",
        };
        let mut server = Server::new(service);
        let challenge = server
            .step(b"", || "OA6MG9tEQGm2hh".into(), |_| None)
            .unwrap();
        let ServerStep::Challenge(c) = challenge else {
            panic!("expected a challenge")
        };
        let dirs = parse_directives(&c).unwrap();
        assert_eq!(single(&dirs, "nonce").unwrap(), Some("OA6MG9tEQGm2hh"));
        assert_eq!(single(&dirs, "realm").unwrap(), Some("elwood.innosoft.com"));
        let response = b"charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",\
            nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",\
            digest-uri=\"imap/elwood.innosoft.com\",\
            response=d388dad90d4bbd760a152321f2143af7,qop=auth";
        let done = server
            .step(response, String::new, |u| {
                (u == "chris").then(|| "secret".into())
            })
            .unwrap();
        assert_eq!(
            done,
            ServerStep::Done {
                user: "chris".into(),
                token: b"rspauth=ea40f60335c427b5527b84dbabcdfffd".to_vec()
            }
        );
        assert!(server.is_finished());
    }

    fn run(
        service: Service,
        user: &str,
        password: &str,
        users: &[(&str, &str)],
    ) -> Result<String, SaslError> {
        let mut server = Server::new(service);
        let mut client = Client::new(service, user, password, "c-nonce-123".into());
        let first = client.initial();
        let lookup = |u: &str| {
            users
                .iter()
                .find(|(n, _)| *n == u)
                .map(|(_, p)| p.to_string())
        };
        let ServerStep::Challenge(challenge) =
            server.step(&first, || "s-nonce-9".into(), lookup)?
        else {
            panic!("expected a challenge")
        };
        let response = client.step(&challenge)?.expect("a response");
        match server.step(&response, String::new, lookup)? {
            ServerStep::Done { user, token } => {
                assert_eq!(client.step(&token)?, None);
                assert!(client.is_complete());
                Ok(user)
            }
            other => panic!("expected the end, got {other:?}"),
        }
    }

    #[test]
    fn client_and_server_agree() {
        let users = [("jaasuser", "jaas_password"), ("super", "super_secret")];
        for service in [Service::CLIENT, Service::QUORUM] {
            assert_eq!(
                run(service, "jaasuser", "jaas_password", &users).unwrap(),
                "jaasuser"
            );
        }
        let err = run(Service::CLIENT, "jaasuser", "nope", &users).unwrap_err();
        assert!(err.0.contains("wrong password"), "{err}");
        let err = run(Service::CLIENT, "baduser", "x", &users).unwrap_err();
        assert!(err.0.contains("unknown user"), "{err}");
        // Latin-1 names and passwords hash as ISO 8859-1, others as UTF-8: both agree.
        let users = [("jörg", "pässwört"), ("名前", "秘密")];
        assert_eq!(
            run(Service::CLIENT, "jörg", "pässwört", &users).unwrap(),
            "jörg"
        );
        assert_eq!(
            run(Service::CLIENT, "名前", "秘密", &users).unwrap(),
            "名前"
        );
    }

    fn challenged() -> Server {
        let mut server = Server::new(Service::CLIENT);
        server.step(b"", || "n1".into(), |_| None).unwrap();
        server
    }

    fn good_response(overrides: &[(&str, &str)]) -> Vec<u8> {
        let input = DigestInput {
            username: "u",
            realm: "zk-sasl-md5",
            password: "p",
            nonce: "n1",
            cnonce: "c1",
            nc: "00000001",
            qop: "auth",
            digest_uri: "zookeeper/zk-sasl-md5",
            authzid: None,
        };
        let mut dirs = vec![
            ("charset", "utf-8".to_string()),
            ("username", "\"u\"".into()),
            ("realm", "\"zk-sasl-md5\"".into()),
            ("nonce", "\"n1\"".into()),
            ("nc", "00000001".into()),
            ("cnonce", "\"c1\"".into()),
            ("digest-uri", "\"zookeeper/zk-sasl-md5\"".into()),
            ("response", input.response()),
            ("qop", "auth".into()),
        ];
        for (k, v) in overrides {
            match dirs.iter_mut().find(|(n, _)| n == k) {
                Some(d) if v.is_empty() => d.1 = String::new(),
                Some(d) => d.1 = v.to_string(),
                None => dirs.push((k, v.to_string())),
            }
        }
        dirs.retain(|(_, v)| !v.is_empty());
        dirs.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
            .into_bytes()
    }

    #[test]
    fn server_refuses_bad_responses_with_the_cause() {
        let lookup = |u: &str| (u == "u").then(|| "p".to_string());
        let ok = challenged().step(&good_response(&[]), String::new, lookup);
        assert!(matches!(ok, Ok(ServerStep::Done { .. })), "{ok:?}");
        for (overrides, cause) in [
            (&[("nonce", "\"other\"")][..], "nonce"),
            (&[("nc", "00000002")][..], "nonce count"),
            (
                &[("digest-uri", "\"zookeeper/elsewhere\"")][..],
                "digest-uri",
            ),
            (&[("realm", "\"other\"")][..], "realm"),
            (&[("qop", "auth-int")][..], "qop"),
            (&[("charset", "iso-8859-1")][..], "charset"),
            (&[("response", "xyz")][..], "32 hex"),
            (
                &[("response", "00000000000000000000000000000000")][..],
                "wrong password",
            ),
            (&[("username", "\"v\"")][..], "unknown user"),
            (&[("cnonce", "")][..], "cnonce"),
            (&[("username", "")][..], "username"),
            (&[("nonce", "\"n1\""), ("nonce", "\"n1\"")][..], "nonce"),
        ] {
            let mut token = good_response(overrides);
            if overrides.len() == 2 {
                token.extend_from_slice(b",nonce=\"n1\"");
            }
            let err = challenged()
                .step(&token, String::new, lookup)
                .expect_err(cause);
            assert!(err.0.contains(cause), "{cause}: {err}");
        }
        let huge = vec![b'a'; MAX_RESPONSE];
        let err = challenged().step(&huge, String::new, lookup).unwrap_err();
        assert!(err.0.contains("limit"), "{err}");
        for garbage in [&b"\xff\xfe"[..], b"username", b"username=\"open", b"a=b c"] {
            assert!(challenged().step(garbage, String::new, lookup).is_err());
        }
        // A non-empty first token (GSSAPI, or a subsequent-auth attempt) is refused.
        let err = Server::new(Service::CLIENT)
            .step(b"\x60\x82", String::new, lookup)
            .unwrap_err();
        assert!(err.0.contains("GSSAPI"), "{err}");
        // Nothing after the end.
        let mut done = challenged();
        done.step(&good_response(&[]), String::new, lookup).unwrap();
        assert!(done.step(b"", String::new, lookup).is_err());
    }

    #[test]
    fn client_refuses_a_bad_rspauth_or_challenge() {
        let mut client = Client::new(Service::CLIENT, "u", "p", "c".into());
        client.initial();
        let r = client
            .step(
                b"realm=\"zk-sasl-md5\",nonce=\"n\",qop=\"auth\",charset=utf-8,algorithm=md5-sess",
            )
            .unwrap();
        assert!(r.is_some());
        assert!(
            client
                .step(b"rspauth=00000000000000000000000000000000")
                .is_err()
        );
        for bad in [
            &b"nonce=\"n\",qop=\"auth-conf\",algorithm=md5-sess"[..],
            b"nonce=\"n\",algorithm=md5",
            b"realm=\"x\",qop=\"auth\",algorithm=md5-sess",
        ] {
            let mut c = Client::new(Service::CLIENT, "u", "p", "c".into());
            c.initial();
            assert!(c.step(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// A refused login's reply carries ZooKeeper's SetSASLResponse(null) after the error
    /// header (the Java client reads it as a token); other errors carry no body.
    #[test]
    fn a_refused_login_reply_has_a_null_token_body() {
        use crate::{Response, SetSaslResponse, encode_reply};
        let sasl = Response::Sasl(SetSaslResponse {
            token: Vec::new().into(),
        });
        let bytes = encode_reply(3, 0, -115, &sasl);
        assert_eq!(bytes.len(), 16 + 4);
        assert_eq!(&bytes[16..], &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(encode_reply(3, 0, -115, &Response::Empty).len(), 16);
    }

    #[test]
    fn directives_parse_as_rfc_2831_lists() {
        let d =
            parse_directives(b" , realm=\"a\\\"b\" ,NONCE = x , ,qop=\"auth,auth-int\"").unwrap();
        assert_eq!(
            d,
            vec![
                ("realm".into(), "a\"b".into()),
                ("nonce".into(), "x".into()),
                ("qop".into(), "auth,auth-int".into())
            ]
        );
        assert_eq!(parse_directives(b"").unwrap(), vec![]);
    }
}
