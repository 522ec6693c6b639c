//! SASL DIGEST-MD5 login on a fresh connection, right after the ConnectResponse and
//! before anything else is sent (as ZooKeeper's Java client and kazoo do): the `sasl`
//! opcode carries the tokens of `paddock_proto::sasl::Client`. The server answers a
//! failed login with AuthFailed (or SessionClosedRequireSaslAuth) and closes.

use std::time::Duration;

use paddock_proto::sasl::{Client, Service};
use paddock_proto::{
    ErrorCode, GetSaslRequest, Jute, OpCode, Reader, ReplyHeader, Request, Response,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A user and password for the server's JAAS `Server` section.
#[derive(Clone)]
pub struct SaslLogin {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// How a login ended when it did not succeed.
#[derive(Debug)]
pub(crate) enum LoginError {
    /// The server refused the credentials (or we refused the server's proof).
    Refused(String),
    /// The connection failed; another server may do.
    Io(String),
}

/// The largest SASL reply accepted (a challenge is under 2048 bytes).
const MAX_REPLY: usize = 16 * 1024;

/// Runs the exchange on `stream` within `limit`.
pub(crate) async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    creds: &SaslLogin,
    limit: Duration,
) -> Result<(), LoginError> {
    tokio::time::timeout(limit, exchange(stream, creds))
        .await
        .unwrap_or_else(|_| Err(LoginError::Io("SASL login timed out".into())))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    creds: &SaslLogin,
) -> Result<(), LoginError> {
    let mut cnonce = [0u8; 16];
    getrandom::fill(&mut cnonce)
        .map_err(|e| LoginError::Io(format!("no random source for the SASL cnonce: {e}")))?;
    let cnonce: String = cnonce.iter().map(|b| format!("{b:02x}")).collect();
    let mut client = Client::new(Service::CLIENT, &creds.user, &creds.password, cnonce);
    let mut token = client.initial();
    for xid in 1..=4 {
        let request = Request::Sasl(GetSaslRequest {
            token: token.into(),
        });
        stream
            .write_all(&paddock_proto::frame::frame(&request.encode(xid)))
            .await
            .map_err(|e| LoginError::Io(format!("SASL: {e}")))?;
        let mut prefix = [0u8; 4];
        stream.read_exact(&mut prefix).await.map_err(|e| {
            // ZooKeeper always answers a refused login before closing; a bare close is
            // a refusal too (kazoo reads it so), unless nothing at all was exchanged.
            LoginError::Refused(format!("the server closed the connection during SASL: {e}"))
        })?;
        let len = i32::from_be_bytes(prefix);
        if len < 0 || len as usize > MAX_REPLY {
            return Err(LoginError::Io(format!("SASL: a {len}-byte reply")));
        }
        let mut body = vec![0u8; len as usize];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| LoginError::Io(format!("SASL: {e}")))?;
        let mut r = Reader::new(&body);
        let header = ReplyHeader::read(&mut r).map_err(|e| LoginError::Io(format!("SASL: {e}")))?;
        if header.xid != xid {
            return Err(LoginError::Io(format!(
                "SASL: a reply to xid {} while waiting for {xid}",
                header.xid
            )));
        }
        if header.err != 0 {
            let code = ErrorCode::from_code(header.err)
                .map(|c| format!("{c:?}"))
                .unwrap_or_else(|| header.err.to_string());
            return Err(LoginError::Refused(format!(
                "the server refused the SASL login of {:?} ({code})",
                creds.user
            )));
        }
        let reply = Response::decode(OpCode::Sasl.code(), &body[r.position()..])
            .map_err(|e| LoginError::Io(format!("SASL: {e}")))?;
        let Response::Sasl(reply) = reply else {
            return Err(LoginError::Io("SASL: not a SASL reply".into()));
        };
        match client.step(&reply.token.0) {
            Ok(Some(next)) => token = next,
            Ok(None) => return Ok(()),
            Err(e) => return Err(LoginError::Refused(e.to_string())),
        }
    }
    Err(LoginError::Refused("SASL: the exchange did not end".into()))
}
