//! SASL on the client port (ZooKeeperServer.processSasl) and `enforce.auth`
//! (AuthenticationHelper): a DIGEST-MD5 exchange per connection, whose success adds the
//! id `sasl:<user>` (and the super user for `zookeeper.superUser`) to the connection's
//! credentials; a failure answers AuthFailed (SessionClosedRequireSaslAuth when SASL is
//! required) and closes the connection. Nothing here panics on what a client sends, and
//! a connection holds at most one exchange (a few hundred bytes).

use std::sync::Arc;
use std::time::Instant;

use paddock_proto::sasl::{self, ServerStep};
use paddock_proto::{ErrorCode, Id, Request, Response, SetSaslResponse};
use tracing::{info, warn};

use super::{Core, Outgoing};
use crate::config::ServerLogin;
use crate::sasl::ClientSasl;
use crate::tree::acl::Credentials;
use crate::watch::ConnId;

/// Whether `enforce.auth` refuses `req` from a connection holding `creds`: every request
/// but those that authenticate (auth, sasl) needs an id of one of the enforced schemes
/// first.
pub(super) fn refuses(cfg: &ClientSasl, creds: &Credentials, req: &Request) -> bool {
    let Some(schemes) = &cfg.enforce_schemes else {
        return false;
    };
    !req.opcode().is_auth() && !creds.ids.iter().any(|id| schemes.contains(&id.scheme))
}

impl Core {
    /// Answers a request from a connection that has not authenticated while
    /// `enforce.auth.enabled` is on, and closes it (the session stays until it expires,
    /// as with ZooKeeper, which closes only the connection).
    pub(super) fn refuse_unauthenticated(&mut self, conn_id: ConnId, xid: i32, received: Instant) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let schemes: Vec<&str> = conn.creds.ids.iter().map(|id| id.scheme.as_str()).collect();
        warn!(
            conn = conn_id,
            client = %conn.addr,
            ?schemes,
            expected = ?self.cfg.sasl.enforce_schemes,
            "client authentication scheme(s) match none of enforce.auth.schemes; closing the connection"
        );
        self.send(
            conn_id,
            xid,
            0,
            Err(ErrorCode::SessionClosedRequireSaslAuth),
            received,
        );
        if let Some(conn) = self.conns.get(&conn_id) {
            let _ = conn.tx.send(Outgoing::Close);
        }
    }

    /// One SASL token from a client.
    pub(super) fn on_sasl(&mut self, conn_id: ConnId, xid: i32, token: &[u8], received: Instant) {
        let cfg = self.cfg.sasl.clone();
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let result = match &cfg.login {
            ServerLogin::None => Err(
                "SASL is not configured (no JAAS file, or no section zookeeper.sasl.serverconfig \
                 names in it)"
                    .to_string(),
            ),
            ServerLogin::Gssapi => Err(
                "the JAAS Server section uses Kerberos (GSSAPI), which Paddock does not \
                 support; only DIGEST-MD5 (DigestLoginModule)"
                    .to_string(),
            ),
            ServerLogin::Digest(users) => {
                let exchange = conn
                    .sasl
                    .get_or_insert_with(|| Box::new(sasl::Server::new(sasl::Service::CLIENT)));
                let mut no_random = false;
                let step = exchange.step(
                    token,
                    || {
                        crate::sasl::nonce().unwrap_or_else(|| {
                            no_random = true;
                            String::new()
                        })
                    },
                    |user| users.password(user),
                );
                if no_random {
                    Err("the system's random source failed; no nonce".to_string())
                } else {
                    step.map_err(|e| e.to_string())
                }
            }
        };
        match result {
            Ok(ServerStep::Challenge(challenge)) => {
                let body = Response::Sasl(SetSaslResponse {
                    token: challenge.into(),
                });
                self.enqueue_ready(conn_id, xid, Ok(body), received);
            }
            Ok(ServerStep::Done { user, token }) => {
                let is_super = cfg.super_user.as_deref() == Some(user.as_str());
                info!(
                    conn = conn_id,
                    client = %conn.addr,
                    session = format_args!("{:#x}", conn.session.unwrap_or(0)),
                    user = %user,
                    is_super,
                    "SASL DIGEST-MD5 login; adding the id sasl:{user}"
                );
                let id = Id {
                    scheme: "sasl".into(),
                    id: user,
                };
                let creds = Arc::make_mut(&mut conn.creds);
                if !creds.ids.contains(&id) {
                    creds.ids.push(id);
                }
                creds.is_super |= is_super;
                let body = Response::Sasl(SetSaslResponse {
                    token: token.into(),
                });
                self.enqueue_ready(conn_id, xid, Ok(body), received);
            }
            Err(cause) => {
                // The exchange is over either way: a retry starts afresh.
                conn.sasl = None;
                let client = conn.addr;
                let code = if cfg.required() {
                    ErrorCode::SessionClosedRequireSaslAuth
                } else {
                    ErrorCode::AuthFailed
                };
                warn!(conn = conn_id, %client, %cause, ?code, "SASL login failed; closing the connection");
                self.stats.packets_sent += 1;
                // As ZooKeeper's processSasl: the error with a SetSASLResponse(null) body
                // (see paddock_proto::encode_reply), then the connection closes.
                let _ = conn.tx.send(Outgoing::Reply {
                    xid,
                    zxid: 0,
                    err: code,
                    body: Response::Sasl(SetSaslResponse {
                        token: Vec::new().into(),
                    }),
                });
                let _ = conn.tx.send(Outgoing::Close);
            }
        }
    }
}
