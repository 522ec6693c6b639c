//! Who may use the admin HTTP API (DESIGN §5: "reachable only with that credential or
//! from inside the pod").
//!
//! Two credentials can be configured: the super user's digest (`superDigest`,
//! `PADDOCK_SUPER_DIGEST`, `--super-digest-file`), checked against
//! `Authorization: Basic base64(<user>:<password>)`, and a bearer token read from a file
//! (`admin.tokenFile`, `--admin-token-file`), checked against `Authorization: Bearer
//! <token>`. [`AdminAuth::decide`]:
//!
//! * the probes and metrics (`/livez`, `/readyz`, `/metrics`) are always open: the
//!   kubelet and Prometheus carry no credentials;
//! * a request from 127.0.0.1 to an admin listener bound to 127.0.0.1 passes (in-pod
//!   tooling, `paddock up`): nobody off the host can reach that listener;
//! * with a credential configured, everything else needs one of them (401 with a Basic
//!   challenge otherwise);
//! * with none configured, read-only requests pass as in ZooKeeper, and requests that
//!   change state (any method but GET/HEAD, and the `GET /commands/...` that reset
//!   statistics) get 403 with a message that says how to configure a credential: anyone
//!   who can reach the port could otherwise move leadership.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::config::{Secret, SuperDigest};

/// Routes open to anyone.
const OPEN_PATHS: [&str; 3] = ["/livez", "/readyz", "/metrics"];
/// `GET /commands/<name>` that change state (reset statistics).
const RESETTING_COMMANDS: [&str; 4] = ["crst", "connection_stat_reset", "srst", "stat_reset"];
/// The challenge of a 401.
pub const CHALLENGE: &str = "Basic realm=\"paddock\"";
/// What a 403 says when no credential is configured.
pub const NO_CREDENTIAL_CONFIGURED: &str = "this admin request changes the server's state and \
    no admin credential is configured: set admin.tokenFile in zoo.cfg (or \
    --admin-token-file / PADDOCK_ADMIN_TOKEN_FILE) to a file holding a token and send \
    `Authorization: Bearer <token>`, or set superDigest (or PADDOCK_SUPER_DIGEST) and send \
    the super user's Basic credentials";

/// What the admin listener knows to decide.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    pub digest: Option<SuperDigest>,
    pub token: Option<Secret>,
    /// The address the admin listener is bound to.
    pub bound: IpAddr,
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A credential is configured and the request does not carry it: 401.
    Unauthorized,
    /// The request changes state and no credential is configured: 403.
    NoCredentialConfigured,
}

impl AdminAuth {
    /// Whether `method path` from `peer` with this `Authorization` header may pass.
    pub fn decide(
        &self,
        method: &Method,
        path: &str,
        peer: Option<IpAddr>,
        authorization: Option<&str>,
    ) -> Decision {
        if OPEN_PATHS.contains(&path) {
            return Decision::Allow;
        }
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        if peer == Some(localhost) && self.bound == localhost {
            return Decision::Allow;
        }
        if self.digest.is_none() && self.token.is_none() {
            return if changes_state(method, path) {
                Decision::NoCredentialConfigured
            } else {
                Decision::Allow
            };
        }
        if authorization.is_some_and(|h| self.credential_matches(h)) {
            Decision::Allow
        } else {
            Decision::Unauthorized
        }
    }

    fn credential_matches(&self, header: &str) -> bool {
        let Some((scheme, value)) = header.trim().split_once(' ') else {
            return false;
        };
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            self.digest.as_ref().is_some_and(|digest| {
                basic_credentials(value).is_some_and(|user_password| digest.accepts(&user_password))
            })
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.token
                .as_ref()
                .is_some_and(|token| same_bytes(token.0.as_bytes(), value.as_bytes()))
        } else {
            false
        }
    }
}

/// Whether a request changes the server's state.
fn changes_state(method: &Method, path: &str) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return true;
    }
    path.strip_prefix("/commands/")
        .is_some_and(|name| RESETTING_COMMANDS.contains(&name))
}

/// Compares without stopping at the first difference, so the time taken does not tell
/// how much of a guessed token was right.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `user:password` of a Basic credential (the part after `Basic `).
fn basic_credentials(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.contains(':').then_some(text)
}

/// `router` behind the check. The server must be served with connect info
/// (`into_make_service_with_connect_info::<SocketAddr>`), else no peer is known and the
/// loopback exception never applies.
pub fn guard(router: Router, auth: AdminAuth) -> Router {
    let auth = Arc::new(auth);
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        let auth = auth.clone();
        async move {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip());
            let authorization = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match auth.decide(req.method(), req.uri().path(), peer, authorization) {
                Decision::Allow => next.run(req).await,
                Decision::Unauthorized => unauthorized(),
                Decision::NoCredentialConfigured => forbidden(),
            }
        }
    }))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, CHALLENGE),
            (header::CONTENT_TYPE, "application/json"),
        ],
        "{\"error\":\"credentials are required: the super user's Basic credentials or the admin bearer token\"}\n",
    )
        .into_response()
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{}\n",
            serde_json::json!({ "error": NO_CREDENTIAL_CONFIGURED })
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;

    /// `super:secret`.
    fn digest() -> SuperDigest {
        SuperDigest::parse("super:lK75jTNcA+U9vtVEw5vB51mj/w4=").unwrap()
    }

    const TOKEN: &str = "0123456789abcdef0123";

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    fn pod(digest: Option<SuperDigest>, token: Option<&str>) -> AdminAuth {
        AdminAuth {
            digest,
            token: token.map(|t| Secret(t.into())),
            bound: "10.1.2.3".parse().unwrap(),
        }
    }

    const REMOTE: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 1, 9, 9)));

    fn get(a: &AdminAuth, path: &str, auth: Option<&str>) -> Decision {
        a.decide(&Method::GET, path, REMOTE, auth)
    }

    fn post(a: &AdminAuth, path: &str, auth: Option<&str>) -> Decision {
        a.decide(&Method::POST, path, REMOTE, auth)
    }

    #[test]
    fn without_a_credential_reads_pass_and_changes_are_forbidden() {
        let a = pod(None, None);
        for path in ["/status", "/commands/mntr", "/commands/srvr", "/commands"] {
            assert_eq!(get(&a, path, None), Allow, "{path}");
        }
        assert_eq!(
            post(&a, "/leadership/transfer", None),
            NoCredentialConfigured
        );
        // Credentials nobody configured do not help.
        assert_eq!(
            post(&a, "/leadership/transfer", Some(&basic("super:secret"))),
            NoCredentialConfigured
        );
        for reset in RESETTING_COMMANDS {
            assert_eq!(
                get(&a, &format!("/commands/{reset}"), None),
                NoCredentialConfigured,
                "{reset}"
            );
        }
        for method in [Method::PUT, Method::DELETE, Method::PATCH] {
            assert_eq!(
                a.decide(&method, "/status", REMOTE, None),
                NoCredentialConfigured
            );
        }
        assert!(NO_CREDENTIAL_CONFIGURED.contains("admin.tokenFile"));
        assert!(NO_CREDENTIAL_CONFIGURED.contains("superDigest"));
    }

    #[test]
    fn the_super_users_basic_credentials_pass() {
        let a = pod(Some(digest()), None);
        let ok = basic("super:secret");
        assert_eq!(get(&a, "/status", Some(&ok)), Allow);
        assert_eq!(get(&a, "/commands/mntr", Some(&ok)), Allow);
        assert_eq!(post(&a, "/leadership/transfer", Some(&ok)), Allow);
        let spaced = format!("basic  {}", &ok[6..]);
        assert_eq!(get(&a, "/status", Some(&spaced)), Allow);
    }

    #[test]
    fn the_bearer_token_passes() {
        let a = pod(None, Some(TOKEN));
        let ok = format!("Bearer {TOKEN}");
        assert_eq!(get(&a, "/status", Some(&ok)), Allow);
        assert_eq!(post(&a, "/leadership/transfer", Some(&ok)), Allow);
        assert_eq!(
            post(&a, "/leadership/transfer", Some(&format!("bearer {TOKEN}"))),
            Allow
        );
        assert_eq!(get(&a, "/status", None), Unauthorized);
        assert_eq!(
            post(&a, "/leadership/transfer", Some("Bearer wrong")),
            Unauthorized
        );
        assert_eq!(
            post(
                &a,
                "/leadership/transfer",
                Some(&format!("Bearer {TOKEN}x"))
            ),
            Unauthorized
        );
        assert_eq!(
            post(
                &a,
                "/leadership/transfer",
                Some(&basic(&format!("super:{TOKEN}")))
            ),
            Unauthorized
        );
        // Both configured: either one passes.
        let both = pod(Some(digest()), Some(TOKEN));
        assert_eq!(post(&both, "/leadership/transfer", Some(&ok)), Allow);
        assert_eq!(
            post(&both, "/leadership/transfer", Some(&basic("super:secret"))),
            Allow
        );
    }

    #[test]
    fn missing_or_wrong_credentials_do_not() {
        let a = pod(Some(digest()), None);
        assert_eq!(get(&a, "/status", None), Unauthorized);
        assert_eq!(post(&a, "/leadership/transfer", None), Unauthorized);
        for wrong in [
            basic("super:wrong"),
            basic("other:secret"),
            basic("supersecret"),
            "Basic !!!".to_string(),
            "Bearer c3VwZXI6c2VjcmV0".to_string(),
            "Basic".to_string(),
        ] {
            assert_eq!(get(&a, "/status", Some(&wrong)), Unauthorized, "{wrong}");
        }
        // No peer known (served without connect info): credentials still work.
        assert_eq!(a.decide(&Method::GET, "/status", None, None), Unauthorized);
        assert_eq!(
            a.decide(&Method::GET, "/status", None, Some(&basic("super:secret"))),
            Allow
        );
    }

    #[test]
    fn probes_and_metrics_stay_open() {
        for a in [
            pod(Some(digest()), None),
            pod(None, Some(TOKEN)),
            pod(None, None),
        ] {
            for path in OPEN_PATHS {
                assert_eq!(get(&a, path, None), Allow, "{path}");
            }
        }
    }

    #[test]
    fn loopback_only_when_bound_to_loopback() {
        let local = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        for (digest, token) in [(Some(digest()), None), (None, None), (None, Some(TOKEN))] {
            let in_pod = AdminAuth {
                bound: IpAddr::V4(Ipv4Addr::LOCALHOST),
                ..pod(digest.clone(), token)
            };
            assert_eq!(in_pod.decide(&Method::GET, "/status", local, None), Allow);
            assert_eq!(
                in_pod.decide(&Method::POST, "/leadership/transfer", local, None),
                Allow
            );
            let other = Some("127.0.0.2".parse().unwrap());
            assert_ne!(
                in_pod.decide(&Method::POST, "/leadership/transfer", other, None),
                Allow
            );
            // Bound to the pod IP (or 0.0.0.0): a loopback peer is like any other.
            let wildcard = AdminAuth {
                bound: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                ..pod(digest, token)
            };
            assert_ne!(
                wildcard.decide(&Method::POST, "/leadership/transfer", local, None),
                Allow
            );
        }
    }
}
