//! The admin HTTP API (axum).

use super::fourlw::{ZK_NOT_SERVING, monitor_values, watches_by_path};
use super::metrics::{PROMETHEUS_CONTENT_TYPE, render_prometheus};
use super::{AdminSource, ConnectionInfo, ServerSnapshot, SessionDump};
use crate::config::ServerConfig;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// One admin command: ZooKeeper's primary name, its aliases, and whether it needs a serving
/// server (ZooKeeper's `CommandBase.serverRequired`).
struct CommandSpec {
    primary: &'static str,
    names: &'static [&'static str],
    needs_server: bool,
}

const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        primary: "connection_stat_reset",
        names: &["connection_stat_reset", "crst"],
        needs_server: true,
    },
    CommandSpec {
        primary: "configuration",
        names: &["configuration", "conf", "config"],
        needs_server: true,
    },
    CommandSpec {
        primary: "connections",
        names: &["connections", "cons"],
        needs_server: true,
    },
    CommandSpec {
        primary: "dirs",
        names: &["dirs"],
        needs_server: true,
    },
    CommandSpec {
        primary: "dump",
        names: &["dump"],
        needs_server: true,
    },
    CommandSpec {
        primary: "environment",
        names: &["environment", "env", "envi"],
        needs_server: false,
    },
    CommandSpec {
        primary: "is_read_only",
        names: &["is_read_only", "isro"],
        needs_server: true,
    },
    CommandSpec {
        primary: "monitor",
        names: &["monitor", "mntr"],
        needs_server: false,
    },
    CommandSpec {
        primary: "ruok",
        names: &["ruok"],
        needs_server: true,
    },
    CommandSpec {
        primary: "server_stats",
        names: &["server_stats", "srvr"],
        needs_server: true,
    },
    CommandSpec {
        primary: "stats",
        names: &["stats", "stat"],
        needs_server: true,
    },
    CommandSpec {
        primary: "stat_reset",
        names: &["stat_reset", "srst"],
        needs_server: true,
    },
    CommandSpec {
        primary: "watches",
        names: &["watches", "wchc"],
        needs_server: true,
    },
    CommandSpec {
        primary: "watches_by_path",
        names: &["watches_by_path", "wchp"],
        needs_server: true,
    },
    CommandSpec {
        primary: "watch_summary",
        names: &["watch_summary", "wchs"],
        needs_server: true,
    },
];

/// The admin HTTP routes of DESIGN §2 over `src`.
pub fn router<S: AdminSource>(src: Arc<S>) -> Router {
    Router::new()
        .route("/commands", get(list_commands))
        .route("/commands/{name}", get(command::<S>))
        .route("/status", get(status::<S>))
        .route("/leadership/transfer", post(transfer::<S>))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .fallback(not_found)
        .with_state(src)
}

/// A JSON answer, ending with a newline so that `curl` output ends its line.
fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

fn error_json(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({ "error": message.into() }))
}

async fn not_found() -> Response {
    error_json(StatusCode::NOT_FOUND, "not found")
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn list_commands() -> Response {
    let names: Vec<&str> = COMMANDS.iter().map(|c| c.primary).collect();
    json_response(StatusCode::OK, &json!({ "commands": names }))
}

async fn readyz<S: AdminSource>(State(src): State<Arc<S>>) -> Response {
    if src.is_ready().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn status<S: AdminSource>(State(src): State<Arc<S>>) -> Response {
    let report = src.status().await;
    match serde_json::to_value(&report) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_json(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn metrics<S: AdminSource>(State(src): State<Arc<S>>) -> Response {
    let snap = src.snapshot().await;
    let status = src.status().await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        render_prometheus(&snap, &status),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferRequest {
    #[serde(default)]
    to: Option<u64>,
}

/// `POST /leadership/transfer`, body empty or `{"to": id}`: 200 `{"leader": id}`, 409
/// `{"error": reason}` when refused, 400 for a malformed body.
async fn transfer<S: AdminSource>(State(src): State<Arc<S>>, body: Bytes) -> Response {
    let to = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed = serde_json::from_slice::<Value>(&body).and_then(|v| match v {
            Value::Null => Ok(None),
            v @ Value::Object(_) => TransferRequest::deserialize(v).map(|r| r.to),
            other => Err(serde::de::Error::custom(format!(
                "expected a JSON object, got {other}"
            ))),
        });
        match parsed {
            Ok(to) => to,
            Err(e) => {
                return error_json(
                    StatusCode::BAD_REQUEST,
                    format!("invalid request body, expected {{\"to\": <server id>}}: {e}"),
                );
            }
        }
    };
    match src.transfer_leadership(to).await {
        Ok(leader) => json_response(StatusCode::OK, &json!({ "leader": leader })),
        Err(reason) => error_json(StatusCode::CONFLICT, reason),
    }
}

fn brief_connection(c: &ConnectionInfo) -> Value {
    json!({
        "remote_socket_address": c.remote_socket_address.to_string(),
        "interest_ops": c.interest_ops,
        "outstanding_requests": c.outstanding_requests,
        "packets_received": c.packets_received,
        "packets_sent": c.packets_sent,
    })
}

async fn command<S: AdminSource>(State(src): State<Arc<S>>, Path(name): Path<String>) -> Response {
    let Some(spec) = COMMANDS.iter().find(|c| c.names.contains(&name.as_str())) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({ "command": name, "error": format!("Unknown command: {name}") }),
        );
    };
    let snap = src.snapshot().await;
    if spec.needs_server && !snap.serving {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "command": spec.primary, "error": ZK_NOT_SERVING }),
        );
    }
    let mut out = Map::new();
    out.insert("command".into(), Value::from(spec.primary));
    out.insert("error".into(), Value::Null);
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    match spec.primary {
        "connection_stat_reset" => src.reset_connection_stats().await,
        "stat_reset" => src.reset_stats().await,
        "ruok" => {}
        "configuration" => configuration(&src.config(), &snap, &mut put),
        "connections" => {
            let conns = src.connections().await;
            put(
                "connections",
                serde_json::to_value(&conns).unwrap_or(Value::Null),
            );
            put("secure_connections", Value::Array(Vec::new()));
        }
        "dirs" => {
            put("datadir_size", Value::from(snap.data_dir_size));
            put("logdir_size", Value::from(snap.log_dir_size));
        }
        "dump" => dump(&*src, &mut put).await,
        "environment" => {
            for (k, v) in src.environment().await {
                put(&k, Value::from(v));
            }
        }
        "is_read_only" => put("read_only", Value::from(snap.is_read_only())),
        "monitor" => {
            for (k, v) in monitor_values(&snap) {
                put(&k, v.json());
            }
        }
        "server_stats" | "stats" => {
            let connections = spec.primary == "stats";
            server_stats(&*src, &snap, connections, &mut put).await
        }
        "watches" => {
            let w = src.watches().await;
            let m: Map<String, Value> = w
                .iter()
                .filter(|(_, p)| !p.is_empty())
                .map(|(id, paths)| (id.to_string(), json!(paths)))
                .collect();
            put("session_id_to_watched_paths", Value::Object(m));
        }
        "watches_by_path" => {
            let w = src.watches().await;
            let m: Map<String, Value> = watches_by_path(&w)
                .into_iter()
                .map(|(path, ids)| (path.to_string(), json!(ids)))
                .collect();
            put("path_to_session_ids", Value::Object(m));
        }
        "watch_summary" => {
            let s = src.watch_summary().await;
            put("num_connections", Value::from(s.num_connections));
            put("num_paths", Value::from(s.num_paths));
            put("num_total_watches", Value::from(s.num_total_watches));
        }
        _ => {}
    }
    json_response(StatusCode::OK, &Value::Object(out))
}

/// The `configuration` command's fields: the settings a client-side tool reads.
fn configuration(cfg: &ServerConfig, snap: &ServerSnapshot, put: &mut impl FnMut(&str, Value)) {
    put(
        "client_port",
        Value::from(snap.bound_client_port.unwrap_or(cfg.client_port)),
    );
    put("data_dir", Value::from(cfg.data_dir.display().to_string()));
    put(
        "data_log_dir",
        Value::from(cfg.data_log_dir.display().to_string()),
    );
    put("tick_time", Value::from(cfg.tick_time_ms));
    put("max_client_cnxns", Value::from(cfg.max_client_cnxns));
    put(
        "min_session_timeout",
        Value::from(cfg.min_session_timeout_ms),
    );
    put(
        "max_session_timeout",
        Value::from(cfg.max_session_timeout_ms),
    );
    put("server_id", Value::from(cfg.server_id()));
    put("client_port_listen_backlog", Value::from(-1));
    if cfg.is_distributed() {
        put("init_limit", Value::from(cfg.init_limit));
        put("sync_limit", Value::from(cfg.sync_limit));
        put("config_version", Value::from(cfg.config_version));
        put("membership", Value::from(cfg.membership_string()));
    }
}

/// The `dump` command's fields: sessions by expiry time and their ephemeral nodes.
async fn dump<S: AdminSource>(src: &S, put: &mut (impl FnMut(&str, Value) + Send)) {
    let dump = src.dump().await;
    let mut expiry = Map::new();
    if let SessionDump::Expiry { buckets } = &dump.sessions {
        for (at, ids) in buckets {
            expiry.insert(at.to_string(), json!(ids));
        }
    }
    put("expiry_time_to_session_ids", Value::Object(expiry));
    let eph: Map<String, Value> = dump
        .ephemerals
        .iter()
        .map(|(id, paths)| (id.to_string(), json!(paths)))
        .collect();
    put("session_id_to_ephemeral_paths", Value::Object(eph));
}

/// The `server_stats` command's fields, and for `stats` each connection in brief.
async fn server_stats<S: AdminSource>(
    src: &S,
    snap: &ServerSnapshot,
    with_connections: bool,
    put: &mut (impl FnMut(&str, Value) + Send),
) {
    put("version", Value::from(snap.version.clone()));
    put("read_only", Value::from(snap.is_read_only()));
    let cr = serde_json::to_value(snap.client_response).unwrap_or(Value::Null);
    put(
        "server_stats",
        json!({
            "packets_sent": snap.packets_sent,
            "packets_received": snap.packets_received,
            "fsync_threshold_exceed_count": snap.fsync_threshold_exceed_count,
            "client_response_stats": cr,
            "data_dir_size": snap.data_dir_size,
            "log_dir_size": snap.log_dir_size,
            "last_processed_zxid": snap.last_processed_zxid,
            "provider_null": false,
            "server_state": snap.mode.as_str(),
            "outstanding_requests": snap.outstanding_requests,
            "min_latency": snap.latency.min(),
            "avg_latency": snap.latency.avg(),
            "max_latency": snap.latency.max_ms,
            "num_alive_client_connections": snap.alive_connections,
            "auth_failed_count": snap.auth_failed_count,
            "uptime": snap.uptime_ms,
        }),
    );
    put("client_response", cr);
    if let Some(leader) = &snap.leader {
        put(
            "proposal_stats",
            serde_json::to_value(leader.proposal_sizes).unwrap_or(Value::Null),
        );
    }
    put("node_count", Value::from(snap.node_count));
    if with_connections {
        let conns = src.connections().await;
        put(
            "connections",
            Value::Array(conns.iter().map(brief_connection).collect()),
        );
    }
}
