//! The OpenAPI 3.1 document served at `/v1/openapi.json`. The schemas of bodies and
//! answers are derived (schemars) from the very types the handlers read and write
//! ([`crate::api::types`]), and request bodies are checked against the same schemas;
//! the operations (routes, parameters, statuses) are listed here, and tests check that
//! they are exactly the routes the router is built from ([`crate::api::routes`]) and that every reference resolves.

use std::cell::RefCell;

use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

use crate::api::schema;
use crate::api::types::{
    ConfigNode, ConfigTree, ConfigValueBody, ConfigWrite, ElectionState, Error, GroupJoin,
    GroupMembers, Health, LockBody, LockGrant, LockState, Ready, SelfLeader, ValueBody,
};
use crate::names::{MAX_BODY_BYTES, MAX_NAME_BYTES, MAX_PATH_BYTES};

thread_local! {
    /// Schemas of answers (serialize contract) and of request bodies (deserialize),
    /// gathered while the document is built.
    static ANSWERS: RefCell<SchemaGenerator> = RefCell::new(schema::generator(false));
    static REQUESTS: RefCell<SchemaGenerator> = RefCell::new(schema::generator(true));
}

/// A `$ref` to the schema of answer type `T`.
fn answer<T: JsonSchema>() -> Value {
    ANSWERS.with(|g| g.borrow_mut().subschema_for::<T>().to_value())
}

/// A `$ref` to the schema of request body type `T`.
fn request<T: JsonSchema>() -> Value {
    REQUESTS.with(|g| g.borrow_mut().subschema_for::<T>().to_value())
}

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
        "content": { "application/json": { "schema": answer::<Error>() } }
    })
}

/// A success answer of type `T`, with the resource's index.
fn ok<T: JsonSchema>(description: &str) -> Value {
    json!({
        "description": description,
        "headers": { "X-Paddock-Index": { "schema": integer(), "description": "The resource's index (a zxid)." } },
        "content": { "application/json": { "schema": answer::<T>() } }
    })
}

/// A success answer of type `T`.
fn plain<T: JsonSchema>(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": answer::<T>() } }
    })
}

fn sse(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "text/event-stream": { "schema": string() } }
    })
}

/// A JSON request body of type `T`.
fn body<T: JsonSchema>(required: bool) -> Value {
    json!({
        "required": required,
        "content": { "application/json": { "schema": request::<T>() } }
    })
}

/// One znode name: what [`crate::names::name`] accepts.
fn name_schema() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": MAX_NAME_BYTES, "pattern": "^[^/\\u0000-\\u001f]+$", "not": { "enum": [".", ".."] } })
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
        if let Some(responses) = obj.get_mut("responses").and_then(Value::as_object_mut) {
            responses.insert(
                "408".into(),
                error_ref(
                    "The body did not arrive within --http-read-timeout; the connection is closed.",
                ),
            );
            responses.insert(
                "413".into(),
                error_ref(&format!(
                    "The body is over {MAX_BODY_BYTES} bytes (x-paddock-max-body-bytes); the connection is closed."
                )),
            );
        }
    }
    o
}

fn with(mut base: Vec<Value>, more: Vec<Value>) -> Vec<Value> {
    base.extend(more);
    base
}

pub fn document() -> Value {
    ANSWERS.with(|g| *g.borrow_mut() = schema::generator(false));
    REQUESTS.with(|g| *g.borrow_mut() = schema::generator(true));
    let paths = paths();
    let mut schemas = ANSWERS.with(|g| g.borrow_mut().take_definitions(true));
    schemas.extend(REQUESTS.with(|g| g.borrow_mut().take_definitions(true)));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "paddock-sidecar",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("Leader election, group membership, locks and config over localhost HTTP, backed by a ZooKeeper-compatible ensemble. Every leadership answer and lock grant carries a fencing token (the czxid of the winning node; strictly increasing). A sidecar whose session is not connected never answers \"leader\". Request bodies are JSON objects checked against the schemas below (unknown fields, nulls and wrong types get 400 naming the field). Durations (wait, ttl, heartbeat) need a unit: 500ms, 10s, 1.5s, 5m, 1h30m. Limits: a request body is at most {MAX_BODY_BYTES} bytes (413 beyond, at once when Content-Length says so); a request's head, and then its body, must each arrive within --http-read-timeout (default 10s; a late body gets 408), which also closes idle keep-alive connections; at most --max-connections connections (default 512) are served at once, more get 503."),
            "x-paddock-max-body-bytes": MAX_BODY_BYTES
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        }
    })
}

fn paths() -> Value {
    let e = param(
        "election",
        "path",
        "Election name (one znode name).",
        name_schema(),
    );
    let g = param(
        "group",
        "path",
        "Group name (one znode name).",
        name_schema(),
    );
    let id = param(
        "id",
        "path",
        "Candidate or member id (one znode name).",
        name_schema(),
    );
    let l = param("lock", "path", "Lock name (one znode name).", name_schema());
    let p = param(
        "path",
        "path",
        "Config path under the config root, e.g. app/db/url: znode names joined by '/'. A write may not use a segment named `events` ({path}/events is the event stream of {path}).",
        json!({ "type": "string", "minLength": 1, "maxLength": MAX_PATH_BYTES }),
    );
    let self_id = param(
        "id",
        "query",
        "Which of this sidecar's candidates is `self` (default: --id, else the first).",
        name_schema(),
    );
    let token = param("token", "path", "The grant's fencing token.", integer());
    let ttl = param(
        "ttl",
        "query",
        "Release the grant unless it is renewed (PUT /v1/locks/{lock}/{token}, or the same owner acquiring again) within this long; at least 1s. Without it the grant is held until released or its session is lost.",
        string(),
    );
    json!({
        "/healthz": { "get": op("The process answers.", vec![], None, json!({ "200": plain::<Health>("Alive.") })) },
        "/readyz": { "get": op("The session with the ensemble is connected.", vec![], None, json!({ "200": plain::<Ready>("Ready.") })) },
        "/metrics": { "get": op("Prometheus metrics.", vec![], None, json!({ "200": { "description": "Text exposition format 0.0.4.", "content": { "text/plain": { "schema": string() } } } })) },
        "/v1/openapi.json": { "get": op("This document.", vec![], None, json!({ "200": { "description": "OpenAPI 3.1.", "content": { "application/json": { "schema": { "type": "object" } } } } })) },
        "/v1/elections/{election}": {
            "get": op("Who leads, where this sidecar stands, the fencing token.",
                with(vec![e.clone(), self_id.clone(), encoding_param()], blocking_params()), None,
                json!({ "200": ok::<ElectionState>("The election state (self.state is leader, follower, suspended or none).") }))
        },
        "/v1/elections/{election}/self": {
            "get": op("Am I the leader? 200 when this sidecar's candidate leads, 503 otherwise (a readiness probe).",
                with(vec![e.clone(), self_id.clone()], blocking_params()), None,
                json!({
                    "200": ok::<SelfLeader>("This sidecar leads."),
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
                vec![e.clone(), id.clone(), encoding_param()], Some(body::<ValueBody>(false)),
                json!({
                    "200": ok::<ElectionState>("Already a candidate."),
                    "201": ok::<ElectionState>("Joined."),
                    "202": ok::<ElectionState>("Joining: the candidate node is not in place yet (no session); the sidecar keeps trying.")
                })),
            "delete": op("Resign: not leader from this instant; the candidate node is deleted.",
                vec![e, id.clone()], None,
                json!({ "204": { "description": "Resigned." }, "404": error_ref("Not a candidate here.") }))
        },
        "/v1/groups/{group}/members": {
            "get": op("The members.", with(vec![g.clone(), encoding_param()], blocking_params()), None,
                json!({ "200": ok::<GroupMembers>("The members, sorted by id.") }))
        },
        "/v1/groups/{group}/events": {
            "get": op("Server-sent events: members (full list on every change), suspended, resync, heartbeat.",
                with(vec![g.clone(), encoding_param()], sse_params()), None,
                json!({ "200": sse("An event stream.") }))
        },
        "/v1/groups/{group}/members/{id}": {
            "put": op("Join the group (idempotent; a new value updates the member's data).",
                vec![g.clone(), id.clone(), encoding_param()], Some(body::<ValueBody>(false)),
                json!({
                    "200": plain::<GroupJoin>("Already a member."),
                    "201": plain::<GroupJoin>("Joined."),
                    "202": plain::<GroupJoin>("Joining (the id is held by another session for now).")
                })),
            "delete": op("Leave the group.", vec![g, id], None,
                json!({ "204": { "description": "Left." }, "404": error_ref("Not a member through this sidecar.") }))
        },
        "/v1/config": {
            "get": op("The whole config tree (as GET /v1/config/{path}?recursive=true at the root).",
                with(vec![encoding_param()], blocking_params()), None,
                json!({ "200": ok::<ConfigTree>("Every config node."), "404": error_ref("No config at all yet.") }))
        },
        "/v1/config/{path}": {
            "get": op("Read a node (ETag = version), or a subtree with recursive=true. If-None-Match: 304 when unchanged; with wait, blocks until it changes.",
                with(vec![p.clone(), param("recursive", "query", "Read the whole subtree (the answer is a ConfigTree).", json!({ "type": "boolean" })), encoding_param(), param("If-None-Match", "header", "An ETag (\"3\") or *.", string())], blocking_params()), None,
                json!({
                    "200": {
                        "description": "The node, or with recursive=true the subtree.",
                        "headers": { "X-Paddock-Index": { "schema": integer(), "description": "The resource's index (a zxid)." } },
                        "content": { "application/json": { "schema": { "oneOf": [answer::<ConfigNode>(), answer::<ConfigTree>()] } } }
                    },
                    "304": { "description": "Not modified." },
                    "404": error_ref("No such node.")
                })),
            "put": op("Write a node, creating it and its parents. If-Match: compare-and-set (412 on conflict); If-None-Match: * creates only.",
                vec![p.clone(), encoding_param(), param("If-Match", "header", "An ETag (\"3\") or *.", string()), param("If-None-Match", "header", "*", string())], Some(body::<ConfigValueBody>(true)),
                json!({ "200": ok::<ConfigWrite>("Written."), "201": ok::<ConfigWrite>("Created."), "412": error_ref("The precondition failed; detail.current is the version now.") })),
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
            "post": op("Acquire, waiting up to `wait` (default 0, at most 5m). The same owner asking again for a lock it holds through this sidecar gets the same grant back (again: true), renewed.",
                vec![l.clone(), param("wait", "query", "How long to wait for the lock.", string()), ttl.clone()],
                Some(body::<LockBody>(false)),
                json!({ "200": plain::<LockGrant>("Granted, with its fencing token."), "409": error_ref("Not granted within `wait`; detail.holder is the holder.") })),
            "get": op("The holder, its fencing token, and this sidecar's grants.", with(vec![l.clone()], blocking_params()), None,
                json!({ "200": ok::<LockState>("The lock.") }))
        },
        "/v1/locks/{lock}/{token}": {
            "put": op("Renew a grant: its TTL starts again (with `ttl`, a new TTL is set).",
                vec![l.clone(), token.clone(), ttl], None,
                json!({ "200": plain::<LockGrant>("Renewed."), "404": error_ref("No such grant here."), "409": error_ref("The token is of another lock."), "410": error_ref("The grant was lost with its session, or expired.") })),
            "delete": op("Release a grant by its token.", vec![l, token], None,
                json!({ "204": { "description": "Released." }, "404": error_ref("No such grant here."), "409": error_ref("The token is of another lock."), "410": error_ref("The grant was lost with its session, or expired.") }))
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
        let routes: BTreeSet<(String, String)> = crate::api::documented_routes()
            .into_iter()
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

    /// Every `$ref` in `v`.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if k == "$ref" {
                        out.push(x.as_str().unwrap_or_default().to_string());
                    }
                    refs(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_request_schemas_are_those_checked() {
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 20, "{found:?}");
        for r in &found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r}"));
            assert!(doc["components"]["schemas"][name].is_object(), "{r}");
        }
        // The body check uses exactly the schema the document shows.
        fn same<T: JsonSchema>(doc: &Value) {
            let mut checked = schema::request_schema::<T>();
            checked.as_object_mut().unwrap().remove("title");
            let mut shown = doc["components"]["schemas"][T::schema_name().as_ref()].clone();
            shown.as_object_mut().unwrap().remove("title");
            assert_eq!(checked, shown, "{}", T::schema_name());
        }
        same::<ValueBody>(&doc);
        same::<ConfigValueBody>(&doc);
        same::<LockBody>(&doc);
        // A null value is refused where a string is required.
        assert_eq!(
            doc["components"]["schemas"]["ValueBody"]["properties"]["value"]["type"],
            "string"
        );
        assert_eq!(
            doc["components"]["schemas"]["ConfigValueBody"]["required"],
            json!(["value"])
        );
        // Building it twice gives the same document (the generators start afresh).
        assert_eq!(doc, document());
    }
}
