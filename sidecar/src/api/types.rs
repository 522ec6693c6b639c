//! The request and response bodies of the API, as types. Handlers build their answers
//! from these, request bodies are checked against their schemas (see [`super::schema`])
//! and the OpenAPI document's `components.schemas` is derived from them, so the three
//! cannot drift apart.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::MAX_NAME_BYTES;

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// `{"value": "..."}` to join an election or a group; the body, or its value, may be
/// left out (the value is then empty).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueBody {
    /// The candidate's or member's data: UTF-8 text, or base64 with `?encoding=base64`;
    /// at most 1,000,000 bytes once decoded.
    #[serde(default)]
    pub value: String,
}

/// `{"value": "..."}` to write a config node: the value is required.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigValueBody {
    /// The node's data: UTF-8 text, or base64 with `?encoding=base64`; at most
    /// 1,000,000 bytes once decoded. `null` writes null data, which ZooKeeper keeps
    /// apart from empty data ("").
    #[serde(deserialize_with = "required_nullable")]
    #[schemars(schema_with = "nullable_string")]
    pub value: Option<String>,
}

/// A field that must be present but may be null (serde reads a missing `Option`
/// field as `None` unless told otherwise).
fn required_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// A string or null, as a required property (schemars makes `Option` fields optional).
fn nullable_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": ["string", "null"] })
}

/// `{"owner": "..."}` to acquire a lock; without it the owner is the sidecar's id.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = without_null_defaults)]
pub struct LockBody {
    /// Who holds the grant: the same owner asking again gets the same grant back.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1, max = MAX_NAME_BYTES))]
    pub owner: Option<String>,
}

/// An optional field is left out, never null: its schema shows no `"default": null`.
fn without_null_defaults(schema: &mut schemars::Schema) {
    if let Some(props) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        for p in props.values_mut() {
            if let Some(p) = p.as_object_mut()
                && p.get("default") == Some(&serde_json::Value::Null)
            {
                p.remove("default");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// Every answer other than success: `{"error": "<what went wrong>", "detail": ...}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Error {
    pub error: String,
    /// Machine-readable facts about the error (the field, the holder, ...), or null.
    pub detail: serde_json::Value,
}

/// How a value is written in an answer: `"encoding": "base64"` when it is base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueEncoding {
    Base64,
}

/// A value in an answer: UTF-8 text, or base64 (then `encoding` says so); null for a
/// znode whose data is null (written so by a ZooKeeper client; not the same as "").
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EncodedValue {
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<ValueEncoding>,
}

/// The state of the session with the ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Connecting,
    Connected,
    Suspended,
    Expired,
    Closed,
}

/// The leader of an election.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Leader {
    pub id: String,
    #[serde(flatten)]
    pub value: EncodedValue,
    pub fencing_token: i64,
}

/// Where this sidecar's candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CandidateState {
    Leader,
    Follower,
    Suspended,
    None,
}

/// This sidecar's candidate in an election.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SelfCandidate {
    pub id: Option<String>,
    pub state: CandidateState,
}

/// `GET /v1/elections/{election}` and `state` events.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElectionState {
    pub election: String,
    /// Null while nobody leads, or while the session is not connected.
    pub leader: Option<Leader>,
    #[serde(rename = "self")]
    pub self_: SelfCandidate,
    pub fencing_token: Option<i64>,
    pub index: i64,
    pub candidates: Option<usize>,
    pub session: SessionState,
    /// True (with a `detail`) when the session is not connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `GET /v1/elections/{election}/self` when this sidecar leads.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfLeader {
    pub leader: bool,
    pub election: String,
    pub id: String,
    pub state: CandidateState,
    pub fencing_token: i64,
    pub index: i64,
}

/// A member of a group.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Member {
    pub id: String,
    #[serde(flatten)]
    pub value: EncodedValue,
    /// The zxid that created the member's node.
    pub since: i64,
}

/// Where one of this sidecar's memberships stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MembershipState {
    Joined,
    Joining,
    Suspended,
}

/// One of this sidecar's memberships.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SelfMember {
    pub id: String,
    pub state: MembershipState,
}

/// `GET /v1/groups/{group}/members` and `members` events.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GroupMembers {
    pub group: String,
    /// Sorted by id.
    pub members: Vec<Member>,
    #[serde(rename = "self")]
    pub self_: Vec<SelfMember>,
    pub index: i64,
    pub session: SessionState,
}

/// `PUT /v1/groups/{group}/members/{id}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GroupJoin {
    pub group: String,
    pub id: String,
    pub state: MembershipState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One config node.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ConfigNode {
    /// The path under the config root.
    pub path: String,
    #[serde(flatten)]
    pub value: EncodedValue,
    /// The node's version (its ETag).
    pub version: i32,
    pub created: i64,
    pub modified: i64,
    pub children: i32,
}

/// A config subtree (`?recursive=true`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ConfigTree {
    pub path: String,
    /// Every node of the subtree, by path.
    pub nodes: std::collections::BTreeMap<String, ConfigNode>,
    pub index: i64,
}

/// `PUT /v1/config/{path}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ConfigWrite {
    pub path: String,
    pub version: i32,
    pub modified: i64,
    pub index: i64,
}

/// `POST /v1/locks/{lock}` and `PUT /v1/locks/{lock}/{token}`: a grant.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockGrant {
    pub lock: String,
    /// The grant's token, to release or renew it by.
    pub token: i64,
    /// Strictly increasing across the grants of a lock (the same number as `token`).
    pub fencing_token: i64,
    pub owner: String,
    /// True when the owner held the lock already: the same grant, renewed.
    pub again: bool,
    /// The grant's TTL in milliseconds; null when it is held until released.
    pub ttl_ms: Option<u64>,
    /// Milliseconds left before an unrenewed grant is released.
    pub expires_in_ms: Option<u64>,
}

/// Who holds a lock, as the tree says.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockHolder {
    pub fencing_token: i64,
    pub token: i64,
    /// The owner the holder gave (any JSON a non-sidecar holder wrote).
    pub owner: serde_json::Value,
    /// The id of the sidecar that holds it, if a sidecar does.
    pub sidecar: serde_json::Value,
}

/// Where one of this sidecar's grants stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantState {
    Held,
    Suspended,
    Lost,
}

/// One of this sidecar's grants.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnGrant {
    pub token: i64,
    pub owner: String,
    pub state: GrantState,
    pub ttl_ms: Option<u64>,
    pub expires_in_ms: Option<u64>,
}

/// `GET /v1/locks/{lock}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LockState {
    pub lock: String,
    pub holder: Option<LockHolder>,
    /// How many wait behind the holder.
    pub waiting: usize,
    #[serde(rename = "self")]
    pub self_: Vec<OwnGrant>,
    pub index: i64,
    pub session: SessionState,
}

/// `/healthz`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    pub status: String,
}

/// `/readyz`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Ready {
    pub ready: bool,
    pub session: SessionState,
    /// Bumped with every new session.
    pub generation: u64,
}

impl From<crate::session::Link> for SessionState {
    fn from(link: crate::session::Link) -> SessionState {
        use crate::session::Link;
        match link {
            Link::Connecting => SessionState::Connecting,
            Link::Connected => SessionState::Connected,
            Link::Suspended => SessionState::Suspended,
            Link::Expired => SessionState::Expired,
            Link::Closed => SessionState::Closed,
        }
    }
}

impl From<paddock_client::recipe::Hold> for GrantState {
    fn from(hold: paddock_client::recipe::Hold) -> GrantState {
        use paddock_client::recipe::Hold;
        match hold {
            Hold::Held => GrantState::Held,
            Hold::Suspended => GrantState::Suspended,
            Hold::Lost => GrantState::Lost,
        }
    }
}
