//! Talking to members, always at their pod IPs (never by resolving cluster DNS, so the
//! operator works the same inside and outside the cluster): the admin HTTP (`GET /status`,
//! `POST /leadership/transfer`, HTTP Basic auth as the super user) and the client port
//! (`/zookeeper/config` and `reconfig` through paddock-client, `addauth digest super:...`).

use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use paddock_client::Client;
use tokio::net::TcpStream;

use crate::children::SUPER_USER;
use crate::membership::{ADMIN_PORT, CLIENT_PORT};
use crate::planner::{CommittedConfig, MemberReport, MembershipChange};

/// How long one admin request or client operation may take.
pub const MEMBER_TIMEOUT: Duration = Duration::from_secs(2);

/// The super user's credential, as read from the credentials Secret. Debug never shows it.
#[derive(Clone)]
pub struct SuperCredential {
    password: String,
}

impl std::fmt::Debug for SuperCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SuperCredential(<redacted>)")
    }
}

impl SuperCredential {
    pub fn new(password: String) -> Self {
        SuperCredential { password }
    }

    fn basic_auth(&self) -> String {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{SUPER_USER}:{}", self.password));
        format!("Basic {token}")
    }

    fn digest_auth(&self) -> Vec<u8> {
        format!("{SUPER_USER}:{}", self.password).into_bytes()
    }
}

/// One HTTP/1 request to a member's admin port: (status code, body).
async fn admin_request(
    ip: &str,
    port: u16,
    method: hyper::Method,
    path: &str,
    body: Option<String>,
    credential: Option<&SuperCredential>,
) -> Result<(u16, String), String> {
    let exchange = async {
        let stream = TcpStream::connect((ip, port))
            .await
            .map_err(|e| format!("connect {ip}:{port}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {ip}: {e}"))?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, format!("{ip}:{port}"));
        if let Some(c) = credential {
            request = request.header(hyper::header::AUTHORIZATION, c.basic_auth());
        }
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("build request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{path} on {ip}: {e}"))?;
        let code = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("read {path} from {ip}: {e}"))?
            .to_bytes();
        driver.abort();
        Ok((code, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(MEMBER_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{path} on {ip}: no answer within {MEMBER_TIMEOUT:?}"))?
}

/// `GET /status` of the member at this pod IP.
pub async fn member_status(ip: &str, credential: &SuperCredential) -> Result<MemberReport, String> {
    member_status_at(ip, ADMIN_PORT, credential).await
}

async fn member_status_at(
    ip: &str,
    port: u16,
    credential: &SuperCredential,
) -> Result<MemberReport, String> {
    let (code, body) = admin_request(
        ip,
        port,
        hyper::Method::GET,
        "/status",
        None,
        Some(credential),
    )
    .await?;
    if code != 200 {
        return Err(format!("/status on {ip} answered {code}: {}", body.trim()));
    }
    serde_json::from_str(&body).map_err(|e| format!("/status on {ip}: unreadable body: {e}"))
}

/// `POST /leadership/transfer {"to": to}` at the leader's pod IP.
pub async fn transfer_leadership(
    leader_ip: &str,
    to: u64,
    credential: &SuperCredential,
) -> Result<(), String> {
    transfer_leadership_at(leader_ip, ADMIN_PORT, to, credential).await
}

async fn transfer_leadership_at(
    leader_ip: &str,
    port: u16,
    to: u64,
    credential: &SuperCredential,
) -> Result<(), String> {
    let body = serde_json::json!({ "to": to }).to_string();
    let (code, text) = admin_request(
        leader_ip,
        port,
        hyper::Method::POST,
        "/leadership/transfer",
        Some(body),
        Some(credential),
    )
    .await?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!(
            "leadership transfer to {to} refused ({code}): {}",
            text.trim()
        ))
    }
}

/// A session with the ensemble through these pod IPs, authenticated as the super user.
async fn connect(ips: &[String], credential: &SuperCredential) -> Result<Client, String> {
    if ips.is_empty() {
        return Err("no member pod has an IP".into());
    }
    let hosts = ips
        .iter()
        .map(|ip| format!("{ip}:{CLIENT_PORT}"))
        .collect::<Vec<_>>()
        .join(",");
    Client::builder(hosts.clone())
        .connect_timeout(MEMBER_TIMEOUT * 2)
        .request_timeout(MEMBER_TIMEOUT * 2)
        .session_timeout(Duration::from_secs(6))
        .auth("digest", credential.digest_auth())
        .connect()
        .await
        .map_err(|e| format!("connect to {hosts}: {e}"))
}

/// The committed membership, `/zookeeper/config`, read through these pod IPs.
pub async fn committed_config(
    ips: &[String],
    credential: &SuperCredential,
) -> Result<CommittedConfig, String> {
    let client = connect(ips, credential).await?;
    let result = async {
        // sync first, so a lagging member does not answer with an older config.
        client
            .sync(paddock_client::CONFIG_NODE)
            .await
            .map_err(|e| format!("sync: {e}"))?;
        let (data, _) = client
            .get_config()
            .await
            .map_err(|e| format!("read {}: {e}", paddock_client::CONFIG_NODE))?;
        CommittedConfig::parse(&String::from_utf8_lossy(&data))
    }
    .await;
    client.close().await;
    result
}

/// `reconfig` with fromConfig (a compare-and-set on the config version); the new config.
pub async fn reconfig(
    ips: &[String],
    credential: &SuperCredential,
    change: &MembershipChange,
    from_config_version: u64,
) -> Result<CommittedConfig, String> {
    let from = i64::try_from(from_config_version).map_err(|e| e.to_string())?;
    let (joining, leaving) = reconfig_args(change);
    let client = connect(ips, credential).await?;
    let result = client
        .reconfig(joining.as_deref(), leaving.as_deref(), None, Some(from))
        .await
        .map_err(|e| format!("reconfig: {e}"))
        .and_then(|(data, _)| CommittedConfig::parse(&String::from_utf8_lossy(&data)));
    client.close().await;
    result
}

/// The `joining` and `leaving` arguments of an incremental reconfig for this change.
pub fn reconfig_args(change: &MembershipChange) -> (Option<String>, Option<String>) {
    match change {
        MembershipChange::Add(entry) => (Some(entry.to_string()), None),
        MembershipChange::Remove(id) => (None, Some(id.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{EnsembleNames, MemberRole};

    #[test]
    fn reconfig_arguments_are_incremental() {
        let entry = EnsembleNames::new("zk", "ns").server(3, MemberRole::Participant);
        assert_eq!(
            reconfig_args(&MembershipChange::Add(entry)),
            (
                Some(
                    "server.4=zk-3.zk-headless.ns.svc.cluster.local:2888:3888:participant;0.0.0.0:2181"
                        .to_string()
                ),
                None
            )
        );
        assert_eq!(
            reconfig_args(&MembershipChange::Remove(5)),
            (None, Some("5".to_string()))
        );
    }

    /// A fake member admin HTTP on 127.0.0.1 that wants Basic auth super:pw.
    async fn fake_member() -> u16 {
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::{get, post};
        fn authorized(h: &HeaderMap) -> bool {
            h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Basic c3VwZXI6cHc=")
        }
        let app = axum::Router::new()
            .route(
                "/status",
                get(|h: HeaderMap| async move {
                    if !authorized(&h) {
                        return (StatusCode::UNAUTHORIZED, "who are you".to_string());
                    }
                    (
                        StatusCode::OK,
                        r#"{"myid":2,"role":"leader","epoch":1,"zxid":4294967300,"lastCommitted":4294967300,"synced":true,
                            "config":{"version":0,"members":[{"id":2,"role":"participant","address":"x:2888:3888"}]},
                            "followers":[{"id":1,"zxid":4294967300,"lag":0,"synced":true}]}"#
                            .to_string(),
                    )
                }),
            )
            .route(
                "/leadership/transfer",
                post(|h: HeaderMap, body: String| async move {
                    if !authorized(&h) {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    if body.contains("\"to\":1") {
                        (StatusCode::OK, "{}".to_string())
                    } else {
                        (StatusCode::CONFLICT, "member 3 is not synced".to_string())
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    }

    #[tokio::test]
    async fn status_and_transfer_speak_the_admin_contract_with_basic_auth() {
        let port = fake_member().await;
        let good = SuperCredential::new("pw".into());
        let report = member_status_at("127.0.0.1", port, &good).await.unwrap();
        assert_eq!(report.myid, 2);
        assert!(report.is_ready());
        assert_eq!(report.followers.unwrap()[0].id, 1);
        let bad = SuperCredential::new("nope".into());
        let err = member_status_at("127.0.0.1", port, &bad).await.unwrap_err();
        assert!(err.contains("401"), "{err}");
        transfer_leadership_at("127.0.0.1", port, 1, &good)
            .await
            .unwrap();
        let err = transfer_leadership_at("127.0.0.1", port, 3, &good)
            .await
            .unwrap_err();
        assert!(err.contains("409") && err.contains("not synced"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_member_is_an_error_not_a_hang() {
        // A port nobody listens on (bound, then closed).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let started = std::time::Instant::now();
        let err = member_status_at("127.0.0.1", port, &SuperCredential::new("pw".into()))
            .await
            .unwrap_err();
        assert!(err.contains("connect"), "{err}");
        assert!(started.elapsed() <= MEMBER_TIMEOUT + Duration::from_secs(1));
    }

    #[test]
    fn the_credential_is_never_printed() {
        let c = SuperCredential::new("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_auth(), "Basic c3VwZXI6aHVudGVyMg==");
    }
}
