//! The OpenAPI 3.1 document served at `/v1/openapi.json`, written by hand (a test checks
//! that it documents every route the router has, and nothing else).

use serde_json::{Value, json};

fn param(name: &str, location: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": location,
        "required": location == "path",
        "description": description,
        "schema": schema,
    })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn integer() -> Value {
    json!({ "type": "integer", "format": "int64" })
}

fn blocking_params() -> Vec<Value> {
    vec![
        param(
            "index",
            "query",
            "Block until the resource's index (X-Paddock-Index) moves past this zxid.",
            integer(),
        ),
        param(
            "wait",
            "query",
            "How long to block (e.g. 30s, 5m; at most 5m; 5m when index is given alone).",
            string(),
        ),
    ]
}

fn encoding_param() -> Value {
    param(
        "encoding",
        "query",
        "utf-8 (default) or base64, for values in and out. Values that are not UTF-8 are always answered in base64 with \"encoding\":\"base64\".",
        json!({ "type": "string", "enum": ["utf-8", "base64"] }),
    )
}

fn sse_params() -> Vec<Value> {
    vec![
        param(
            "Last-Event-ID",
            "header",
            "Resume after this event id (a zxid): nothing is resent if nothing changed, else the current state.",
            integer(),
        ),
        param(
            "heartbeat",
            "query",
            "Interval of heartbeat events (default 15s).",
            string(),
        ),
    ]
}

fn error_ref(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn ok(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "headers": { "X-Paddock-Index": { "schema": integer(), "description": "The resource's index (a zxid)." } },
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn sse(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "text/event-stream": { "schema": string() } }
    })
}

fn value_body() -> Value {
    json!({
        "required": false,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ValueBody" } } }
    })
}

fn common_errors(mut responses: Value) -> Value {
    if let Some(obj) = responses.as_object_mut() {
        obj.entry("400")
            .or_insert_with(|| error_ref("Bad input: a name, path, value, duration or body the API refuses, with the reason."));
        obj.entry("401")
            .or_insert_with(|| error_ref("Missing or wrong bearer token (with --token-file)."));
        obj.entry("503").or_insert_with(|| {
            error_ref("The session is not connected (ensemble unreachable, suspended or expired); see Retry-After.")
        });
    }
    responses
}

fn op(summary: &str, params: Vec<Value>, body: Option<Value>, responses: Value) -> Value {
    let mut o = json!({
        "summary": summary,
        "parameters": params,
        "responses": common_errors(responses),
    });
    if let (Some(body), Some(obj)) = (body, o.as_object_mut()) {
        obj.insert("requestBody".into(), body);
    }
    o
}

fn with(mut base: Vec<Value>, more: Vec<Value>) -> Vec<Value> {
    base.extend(more);
    base
}

pub fn document() -> Value {
    let e = param(
        "election",
        "path",
        "Election name (one znode name).",
        string(),
    );
    let g = param("group", "path", "Group name (one znode name).", string());
    let id = param(
        "id",
        "path",
        "Candidate or member id (one znode name).",
        string(),
    );
    let l = param("lock", "path", "Lock name (one znode name).", string());
    let p = param(
        "path",
        "path",
        "Config path under the config root, e.g. app/db/url.",
        string(),
    );
    let self_id = param(
        "id",
        "query",
        "Which of this sidecar's candidates is `self` (default: --id, else the first).",
        string(),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "paddock-sidecar",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Leader election, group membership, locks and config over localhost HTTP, backed by a ZooKeeper-compatible ensemble. Every leadership answer and lock grant carries a fencing token (the czxid of the winning node; strictly increasing). A sidecar whose session is not connected never answers \"leader\"."
        },
        "paths": {
            "/healthz": { "get": op("The process answers.", vec![], None, json!({ "200": { "description": "Alive." } })) },
            "/readyz": { "get": op("The session with the ensemble is connected.", vec![], None, json!({ "200": { "description": "Ready." } })) },
            "/metrics": { "get": op("Prometheus metrics.", vec![], None, json!({ "200": { "description": "Text exposition format.", "content": { "text/plain": { "schema": string() } } } })) },
            "/v1/openapi.json": { "get": op("This document.", vec![], None, json!({ "200": { "description": "OpenAPI 3.1." } })) },
            "/v1/elections/{election}": {
                "get": op("Who leads, where this sidecar stands, the fencing token.",
                    with(vec![e.clone(), self_id.clone(), encoding_param()], blocking_params()), None,
                    json!({ "200": ok("The election state (self.state is leader, follower, suspended or none).", "ElectionState") }))
            },
            "/v1/elections/{election}/self": {
                "get": op("Am I the leader? 200 when this sidecar's candidate leads, 503 otherwise (a readiness probe).",
                    with(vec![e.clone(), self_id.clone()], blocking_params()), None,
                    json!({
                        "200": ok("This sidecar leads.", "SelfLeader"),
                        "503": error_ref("Not the leader (follower, suspended or not a candidate); detail.state says which.")
                    }))
            },
            "/v1/elections/{election}/events": {
                "get": op("Server-sent events: state (full document on every change), suspended, resync, heartbeat.",
                    with(vec![e.clone(), self_id, encoding_param()], sse_params()), None,
                    json!({ "200": sse("An event stream.") }))
            },
            "/v1/elections/{election}/candidates/{id}": {
                "put": op("Join the election (idempotent; a new value updates the candidate's data).",
                    vec![e.clone(), id.clone(), encoding_param()], Some(value_body()),
                    json!({
                        "200": ok("Already a candidate.", "ElectionState"),
                        "201": ok("Joined.", "ElectionState"),
                        "202": ok("Joining: the candidate node is not in place yet (no session); the sidecar keeps trying.", "ElectionState")
                    })),
                "delete": op("Resign: not leader from this instant; the candidate node is deleted.",
                    vec![e, id.clone()], None,
                    json!({ "204": { "description": "Resigned." }, "404": error_ref("Not a candidate here.") }))
            },
            "/v1/groups/{group}/members": {
                "get": op("The members.", with(vec![g.clone(), encoding_param()], blocking_params()), None,
                    json!({ "200": ok("The members, sorted by id.", "GroupMembers") }))
            },
            "/v1/groups/{group}/events": {
                "get": op("Server-sent events: members (full list on every change), suspended, resync, heartbeat.",
                    with(vec![g.clone(), encoding_param()], sse_params()), None,
                    json!({ "200": sse("An event stream.") }))
            },
            "/v1/groups/{group}/members/{id}": {
                "put": op("Join the group (idempotent; a new value updates the member's data).",
                    vec![g.clone(), id.clone(), encoding_param()], Some(value_body()),
                    json!({ "200": { "description": "Already a member." }, "201": { "description": "Joined." }, "202": { "description": "Joining (the id is held by another session for now)." } })),
                "delete": op("Leave the group.", vec![g, id], None,
                    json!({ "204": { "description": "Left." }, "404": error_ref("Not a member through this sidecar.") }))
            },
            "/v1/config": {
                "get": op("The whole config tree (as GET /v1/config/{path}?recursive=true at the root).",
                    with(vec![encoding_param()], blocking_params()), None,
                    json!({ "200": ok("Every config node.", "ConfigNode"), "404": error_ref("No config at all yet.") }))
            },
            "/v1/config/{path}": {
                "get": op("Read a node (ETag = version), or a subtree with recursive=true. If-None-Match: 304 when unchanged; with wait, blocks until it changes.",
                    with(vec![p.clone(), param("recursive", "query", "Read the whole subtree.", json!({ "type": "boolean" })), encoding_param(), param("If-None-Match", "header", "An ETag (\"3\") or *.", string())], blocking_params()), None,
                    json!({ "200": ok("The node (or subtree).", "ConfigNode"), "304": { "description": "Not modified." }, "404": error_ref("No such node.") })),
                "put": op("Write a node, creating it and its parents. If-Match: compare-and-set (412 on conflict); If-None-Match: * creates only.",
                    vec![p.clone(), encoding_param(), param("If-Match", "header", "An ETag (\"3\") or *.", string()), param("If-None-Match", "header", "*", string())], Some(value_body()),
                    json!({ "200": ok("Written.", "ConfigWrite"), "201": ok("Created.", "ConfigWrite"), "412": error_ref("The precondition failed; detail.current is the version now.") })),
                "delete": op("Delete a node (If-Match for compare-and-delete; recursive=true for a subtree).",
                    vec![p.clone(), param("recursive", "query", "Delete the subtree.", json!({ "type": "boolean" })), param("If-Match", "header", "An ETag (\"3\").", string())], None,
                    json!({ "204": { "description": "Deleted." }, "404": error_ref("No such node."), "409": error_ref("The node has children."), "412": error_ref("The precondition failed.") }))
            },
            "/v1/config/{path}/events": {
                "get": op("Server-sent events: snapshot, put, delete, suspended, resync, heartbeat. recursive=true follows the subtree.",
                    with(vec![p, param("recursive", "query", "Follow the subtree.", json!({ "type": "boolean" })), encoding_param()], sse_params()), None,
                    json!({ "200": sse("An event stream.") }))
            },
            "/v1/locks/{lock}": {
                "post": op("Acquire, waiting up to `wait` (default 0, at most 5m).",
                    vec![l.clone(), param("wait", "query", "How long to wait for the lock.", string())],
                    Some(json!({ "required": false, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/LockBody" } } } })),
                    json!({ "200": ok("Granted, with its fencing token.", "LockGrant"), "409": error_ref("Not granted within `wait`; detail.holder is the holder.") })),
                "get": op("The holder, its fencing token, and this sidecar's grants.", with(vec![l.clone()], blocking_params()), None,
                    json!({ "200": ok("The lock.", "LockState") }))
            },
            "/v1/locks/{lock}/{token}": {
                "delete": op("Release a grant by its token.", vec![l, param("token", "path", "The grant's fencing token.", integer())], None,
                    json!({ "204": { "description": "Released." }, "404": error_ref("No such grant here."), "409": error_ref("The token is of another lock."), "410": error_ref("The grant was lost with its session.") }))
            }
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": { "error": { "type": "string" }, "detail": {} }
                },
                "ValueBody": {
                    "type": "object",
                    "properties": { "value": { "type": "string" } },
                    "additionalProperties": false
                },
                "LockBody": {
                    "type": "object",
                    "properties": { "owner": { "type": "string" } },
                    "additionalProperties": false
                },
                "Value": {
                    "type": "object",
                    "properties": { "value": { "type": "string" }, "encoding": { "type": "string", "enum": ["base64"] } }
                },
                "ElectionState": {
                    "type": "object",
                    "properties": {
                        "election": { "type": "string" },
                        "leader": { "type": ["object", "null"], "properties": { "id": { "type": "string" }, "value": { "type": "string" }, "fencingToken": integer() } },
                        "self": { "type": "object", "properties": { "id": { "type": ["string", "null"] }, "state": { "type": "string", "enum": ["leader", "follower", "suspended", "none"] } } },
                        "fencingToken": { "type": ["integer", "null"] },
                        "index": integer(),
                        "candidates": { "type": ["integer", "null"] },
                        "session": { "type": "string", "enum": ["connecting", "connected", "suspended", "expired", "closed"] },
                        "stale": { "type": "boolean" }
                    }
                },
                "SelfLeader": {
                    "type": "object",
                    "properties": { "leader": { "const": true }, "election": string(), "id": string(), "state": { "const": "leader" }, "fencingToken": integer(), "index": integer() }
                },
                "GroupMembers": {
                    "type": "object",
                    "properties": {
                        "group": string(),
                        "members": { "type": "array", "items": { "type": "object", "properties": { "id": string(), "value": string(), "since": integer() } } },
                        "self": { "type": "array", "items": { "type": "object", "properties": { "id": string(), "state": { "type": "string", "enum": ["joined", "joining", "suspended"] } } } },
                        "index": integer(),
                        "session": string()
                    }
                },
                "ConfigNode": {
                    "type": "object",
                    "properties": { "path": string(), "value": string(), "encoding": string(), "version": { "type": "integer" }, "created": integer(), "modified": integer(), "children": { "type": "integer" } }
                },
                "ConfigWrite": {
                    "type": "object",
                    "properties": { "path": string(), "version": { "type": "integer" }, "modified": integer(), "index": integer() }
                },
                "LockGrant": {
                    "type": "object",
                    "properties": { "lock": string(), "token": integer(), "fencingToken": integer(), "owner": string() }
                },
                "LockState": {
                    "type": "object",
                    "properties": {
                        "lock": string(),
                        "holder": { "type": ["object", "null"], "properties": { "token": integer(), "fencingToken": integer(), "owner": {}, "sidecar": {} } },
                        "waiting": { "type": "integer" },
                        "self": { "type": "array", "items": { "type": "object", "properties": { "token": integer(), "owner": string(), "state": { "type": "string", "enum": ["held", "suspended", "lost"] } } } },
                        "index": integer()
                    }
                }
            },
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn documents_exactly_the_routes() {
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let routes: BTreeSet<(String, String)> = crate::api::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, routes);
        // Every path parameter is declared.
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for op in ops.as_object().unwrap().values() {
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                let used: BTreeSet<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                    .collect();
                assert_eq!(declared, used, "{path}");
            }
        }
    }
}
