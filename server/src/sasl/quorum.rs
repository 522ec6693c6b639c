//! SASL DIGEST-MD5 between servers (ZooKeeper's QuorumAuth), on the quorum port's
//! handshake. The server that opens a link is the learner (it logs in with the JAAS
//! `QuorumLearner` section's username and password); the one that accepts it is the
//! server (it checks them against the `QuorumServer` section's `user_<name>` entries).
//!
//! The three switches mean what they mean in ZooKeeper, for a rolling change:
//! `quorum.auth.enableSasl` lets this server take part (answer logins); with
//! `quorum.auth.learnerRequireSasl` it logs in on every link it opens, and refuses a
//! server that cannot prove it knows the password (DIGEST-MD5's rspauth); with
//! `quorum.auth.serverRequireSasl` it refuses links from servers that do not log in.
//!
//! On the wire, after the handshake's id and address (whose length's top bit says "a
//! login follows"), both sides send ZooKeeper's QuorumAuthPacket records: magic
//! (QUORUM_AUTH_MAGIC_NUMBER), status (0 in progress, 1 success, -1 error) and the
//! token as a jute buffer. Tokens are bounded, and the whole exchange happens within the
//! handshake's time limit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_proto::sasl::{Client, Server, ServerStep, Service};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{info, warn};

use crate::config::{QuorumSasl, SaslUsers, Secret};
use crate::net::resolve::LogEvery;

/// ZooKeeper's QuorumAuth.QUORUM_AUTH_MAGIC_NUMBER.
pub const MAGIC: i64 = 6855662812065295820;
const IN_PROGRESS: i32 = 0;
const SUCCESS: i32 = 1;
const ERROR: i32 = -1;
/// The largest token accepted (DIGEST-MD5's are under 4096 bytes).
const MAX_TOKEN: usize = 8192;
/// Rounds before an exchange is given up (DIGEST-MD5 needs two).
const MAX_ROUNDS: usize = 4;
/// The handshake's address-length field carries this bit when a login follows.
pub const LOGIN_FOLLOWS: u16 = 0x8000;

/// This server's quorum SASL settings, shared by its links.
#[derive(Clone, Default)]
pub struct QuorumAuth {
    enable: bool,
    learner_require: bool,
    server_require: bool,
    users: SaslUsers,
    login: Option<(String, Secret)>,
    /// Refusals are logged at most every few seconds (a peer retries every second).
    log: Arc<Mutex<Option<LogEvery>>>,
}

impl std::fmt::Debug for QuorumAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumAuth")
            .field("enable", &self.enable)
            .field("learner_require", &self.learner_require)
            .field("server_require", &self.server_require)
            .field("users", &self.users)
            .finish_non_exhaustive()
    }
}

impl QuorumAuth {
    pub fn from_config(cfg: &QuorumSasl) -> QuorumAuth {
        QuorumAuth {
            enable: cfg.enable,
            learner_require: cfg.learner_require,
            server_require: cfg.server_require,
            users: cfg.users.clone(),
            login: cfg.login.clone(),
            log: Arc::default(),
        }
    }

    /// Whether links this server opens log in (`learnerRequireSasl`).
    pub fn logs_in(&self) -> bool {
        self.enable && self.learner_require && self.login.is_some()
    }

    /// Whether to log a refusal now (bounded rate).
    pub fn should_log(&self) -> bool {
        let Ok(mut log) = self.log.lock() else {
            return true;
        };
        log.get_or_insert_with(|| LogEvery::new(Duration::from_secs(5)))
            .should_log(Instant::now())
    }

    /// The learner's side, on a link we opened, right after the handshake.
    pub async fn log_in<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
    ) -> Result<(), String> {
        let Some((user, password)) = &self.login else {
            return Err("no QuorumLearner login".into());
        };
        let mut cnonce = [0u8; 16];
        getrandom::fill(&mut cnonce).map_err(|e| format!("no random source: {e}"))?;
        let cnonce: String = cnonce.iter().map(|b| format!("{b:02x}")).collect();
        let mut client = Client::new(Service::QUORUM, user, &password.0, cnonce);
        send(stream, IN_PROGRESS, &client.initial()).await?;
        for _ in 0..MAX_ROUNDS {
            let (status, token) = receive(stream).await?;
            match status {
                IN_PROGRESS => {
                    let response = client
                        .step(&token)
                        .map_err(|e| e.to_string())?
                        .ok_or("the server ended the exchange early")?;
                    send(stream, IN_PROGRESS, &response).await?;
                }
                SUCCESS => {
                    return match client.step(&token).map_err(|e| e.to_string())? {
                        None => Ok(()),
                        Some(_) => Err("protocol error: success before the exchange ended".into()),
                    };
                }
                ERROR => {
                    return Err("the peer refused our login (check the QuorumLearner \
                                section's username and password against its QuorumServer \
                                section, and that it has quorum.auth.enableSasl=true)"
                        .into());
                }
                other => return Err(format!("unknown status {other}")),
            }
        }
        Err("the exchange did not end".into())
    }

    /// The server's side, on a link a peer opened, right after its handshake: Ok(Some
    /// user) after a login, Ok(None) when the peer did not log in and that is allowed.
    pub async fn check<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        login_follows: bool,
    ) -> Result<Option<String>, String> {
        if !login_follows {
            if self.enable && self.server_require {
                return Err(
                    "the peer did not log in, and quorum.auth.serverRequireSasl=true \
                            (does it have quorum.auth.learnerRequireSasl=true and a \
                            QuorumLearner section?)"
                        .into(),
                );
            }
            return Ok(None);
        }
        if !self.enable {
            let _ = send(stream, ERROR, &[]).await;
            return Err(
                "the peer logs in with SASL but quorum.auth.enableSasl is false here".into(),
            );
        }
        let mut server = Server::new(Service::QUORUM);
        for _ in 0..MAX_ROUNDS {
            let (_, token) = receive(stream).await?;
            let mut no_random = false;
            let step = server.step(
                &token,
                || {
                    super::nonce().unwrap_or_else(|| {
                        no_random = true;
                        String::new()
                    })
                },
                |user| self.users.password(user),
            );
            let step = match step {
                Ok(_) if no_random => Err("the system's random source failed".to_string()),
                other => other.map_err(|e| e.to_string()),
            };
            match step {
                Ok(ServerStep::Challenge(challenge)) => {
                    send(stream, IN_PROGRESS, &challenge).await?
                }
                Ok(ServerStep::Done { user, token }) => {
                    send(stream, SUCCESS, &token).await?;
                    return Ok(Some(user));
                }
                Err(cause) => {
                    let _ = send(stream, ERROR, &[]).await;
                    return Err(cause);
                }
            }
        }
        Err("the exchange did not end".into())
    }

    /// Logs that a peer's login succeeded.
    pub fn logged(&self, peer: u64, user: &str) {
        info!(peer, user, "quorum SASL: the peer logged in");
    }

    /// Logs a refusal (at a bounded rate).
    pub fn refused(&self, peer: u64, side: &str, cause: &str) {
        if self.should_log() {
            warn!(peer, side, cause, "quorum SASL: link refused");
        }
    }
}

/// Writes one QuorumAuthPacket.
async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: i32,
    token: &[u8],
) -> Result<(), String> {
    let mut buf = Vec::with_capacity(16 + token.len());
    buf.extend_from_slice(&MAGIC.to_be_bytes());
    buf.extend_from_slice(&status.to_be_bytes());
    buf.extend_from_slice(&(token.len() as i32).to_be_bytes());
    buf.extend_from_slice(token);
    stream
        .write_all(&buf)
        .await
        .map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("write: {e}"))
}

/// Reads one QuorumAuthPacket: (status, token).
async fn receive<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(i32, Vec<u8>), String> {
    let magic = stream.read_i64().await.map_err(|e| format!("read: {e}"))?;
    if magic != MAGIC {
        return Err("not a quorum authentication packet (wrong magic number)".into());
    }
    let status = stream.read_i32().await.map_err(|e| format!("read: {e}"))?;
    let len = stream.read_i32().await.map_err(|e| format!("read: {e}"))?;
    if len < 0 {
        return Ok((status, Vec::new()));
    }
    if len as usize > MAX_TOKEN {
        return Err(format!("a {len}-byte token (the limit is {MAX_TOKEN})"));
    }
    let mut token = vec![0u8; len as usize];
    stream
        .read_exact(&mut token)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok((status, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(users: &[(&str, &str)], login: Option<(&str, &str)>, require: bool) -> QuorumAuth {
        let mut cfg = QuorumSasl {
            enable: true,
            learner_require: require,
            server_require: require,
            ..QuorumSasl::default()
        };
        cfg.users = SaslUsers::from_pairs(users);
        cfg.login = login.map(|(u, p)| (u.to_string(), Secret(p.to_string())));
        QuorumAuth::from_config(&cfg)
    }

    async fn exchange(
        learner: &QuorumAuth,
        server: &QuorumAuth,
    ) -> (Result<(), String>, Result<Option<String>, String>) {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        let follows = learner.logs_in();
        let l = async {
            if follows {
                learner.log_in(&mut a).await
            } else {
                Ok(())
            }
        };
        tokio::join!(l, server.check(&mut b, follows))
    }

    #[tokio::test]
    async fn learners_log_in_and_bad_ones_are_refused() {
        let server = auth(&[("q", "secret")], Some(("q", "secret")), true);
        let (l, s) = exchange(&server, &server).await;
        assert_eq!(l, Ok(()));
        assert_eq!(s, Ok(Some("q".into())));
        let wrong = auth(&[], Some(("q", "nope")), true);
        let (l, s) = exchange(&wrong, &server).await;
        assert!(l.unwrap_err().contains("refused our login"));
        assert!(s.unwrap_err().contains("wrong password"));
        // A learner that does not log in, to a server that requires it.
        let silent = QuorumAuth::default();
        let (_, s) = exchange(&silent, &server).await;
        assert!(s.unwrap_err().contains("serverRequireSasl"));
        // ... and to one that does not.
        let lenient = auth(&[("q", "secret")], Some(("q", "secret")), false);
        assert_eq!(exchange(&silent, &lenient).await.1, Ok(None));
        // A server that knows another password cannot fool the learner either.
        let impostor = auth(&[("q", "other")], None, true);
        let (l, _) = exchange(&server, &impostor).await;
        assert!(l.is_err());
        // Garbage instead of a packet, and an oversize token.
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0u8; 16]).await.unwrap();
        assert!(
            server
                .check(&mut b, true)
                .await
                .unwrap_err()
                .contains("magic")
        );
        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut bad = MAGIC.to_be_bytes().to_vec();
        bad.extend_from_slice(&0i32.to_be_bytes());
        bad.extend_from_slice(&(1i32 << 30).to_be_bytes());
        a.write_all(&bad).await.unwrap();
        assert!(
            server
                .check(&mut b, true)
                .await
                .unwrap_err()
                .contains("limit")
        );
    }
}
