//! Config nodes: reads (one node or a subtree, each with an index that moves with every
//! change), conditional writes and deletes.
//!
//! Index of a node: its mzxid while it exists; once deleted, the pzxid of its nearest
//! existing ancestor (which moved when it was deleted). Index of a subtree: the latest
//! mzxid or pzxid in it (data changes, children coming and going). Both only grow for
//! as long as the ensemble does.

use std::collections::BTreeMap;

use paddock_client::{Client, CreateMode, Error as ZkError, ErrorCode, Stat, path};
use serde_json::{Value, json};

use crate::api::types::{ConfigNode, ConfigTree};
use crate::error::ApiError;
use crate::layout::Layout;
use crate::value::{self, Encoding};

/// A node's data and Stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `None`: null data, which ZooKeeper keeps apart from empty data.
    pub data: Option<Vec<u8>>,
    pub stat: Stat,
}

impl Node {
    /// The data's bytes; empty for null data.
    pub fn bytes(&self) -> &[u8] {
        self.data.as_deref().unwrap_or_default()
    }
}

/// A subtree by config path (relative to the config root, `""` for the root itself).
pub type Tree = BTreeMap<String, Node>;

fn no_node(e: &ZkError) -> bool {
    matches!(
        e,
        ZkError::Server {
            code: ErrorCode::NoNode,
            ..
        }
    )
}

/// The pzxid of the nearest existing ancestor of `znode`.
async fn ancestor_index(client: &Client, znode: &str) -> Result<i64, ApiError> {
    let mut at = path::parent(znode);
    while let Some(p) = at {
        match client.exists(p).await {
            Ok(Some(stat)) => return Ok(stat.pzxid),
            Ok(None) => at = path::parent(p),
            Err(e) => return Err(ApiError::zk(&e, false)),
        }
    }
    Ok(0)
}

/// One node, or `None` if it does not exist.
pub async fn read(client: &Client, znode: &str) -> Result<(Option<Node>, i64), ApiError> {
    match client.get_data_nullable(znode).await {
        Ok((data, stat)) => {
            let index = stat.mzxid;
            Ok((Some(Node { data, stat }), index))
        }
        Err(e) if no_node(&e) => Ok((None, ancestor_index(client, znode).await?)),
        Err(e) => Err(ApiError::zk(&e, false)),
    }
}

/// A subtree (empty if its root does not exist), keyed by config path.
pub async fn read_tree(
    client: &Client,
    layout: &Layout,
    rel: &str,
) -> Result<(Tree, i64), ApiError> {
    let root = layout.config(rel);
    let mut tree = Tree::new();
    let mut index = 0i64;
    let mut level = vec![root.clone()];
    while !level.is_empty() {
        let reads = level.iter().map(|znode| async move {
            let data = client.get_data_nullable(znode).await;
            let children = match &data {
                Ok((_, stat)) if stat.num_children > 0 => Some(client.get_children(znode).await),
                _ => None,
            };
            (znode, data, children)
        });
        let mut next = Vec::new();
        for (znode, data, children) in futures_util::future::join_all(reads).await {
            let (data, stat) = match data {
                Ok(found) => found,
                Err(e) if no_node(&e) => continue,
                Err(e) => return Err(ApiError::zk(&e, false)),
            };
            index = index.max(stat.mzxid).max(stat.pzxid);
            match children {
                Some(Ok(mut names)) => {
                    names.sort();
                    next.extend(names.iter().map(|n| path::join(znode, n)));
                }
                Some(Err(e)) if no_node(&e) => continue,
                Some(Err(e)) => return Err(ApiError::zk(&e, false)),
                None => {}
            }
            if let Some(rel) = layout.config_rel(znode) {
                tree.insert(rel, Node { data, stat });
            }
        }
        level = next;
    }
    if tree.is_empty() {
        index = ancestor_index(client, &root).await?;
    }
    Ok((tree, index))
}

/// The JSON of one node.
pub fn node_json(rel: &str, node: &Node, encoding: Encoding) -> Value {
    serde_json::to_value(node_doc(rel, node, encoding)).unwrap_or(Value::Null)
}

fn node_doc(rel: &str, node: &Node, encoding: Encoding) -> ConfigNode {
    ConfigNode {
        path: rel.to_string(),
        value: value::encoded(node.data.as_deref(), encoding),
        version: node.stat.version,
        created: node.stat.czxid,
        modified: node.stat.mzxid,
        children: node.stat.num_children,
    }
}

/// The JSON of a subtree.
pub fn tree_json(rel: &str, tree: &Tree, index: i64, encoding: Encoding) -> Value {
    let doc = ConfigTree {
        path: rel.to_string(),
        nodes: tree
            .iter()
            .map(|(p, n)| (p.clone(), node_doc(p, n, encoding)))
            .collect(),
        index,
    };
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// The ETag of a version.
pub fn etag(version: i32) -> String {
    format!("\"{version}\"")
}

/// A precondition from `If-Match` / `If-None-Match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// `*`: the node must exist (If-Match) or must not (If-None-Match).
    Any,
    Version(i32),
}

/// Parses an `If-Match`/`If-None-Match` value: `*`, `"3"`, `W/"3"` or `3`.
pub fn parse_precondition(header: &str, raw: &str) -> Result<Precondition, ApiError> {
    let v = raw.trim();
    if v == "*" {
        return Ok(Precondition::Any);
    }
    let unweak = v.strip_prefix("W/").unwrap_or(v);
    let unquoted = unweak
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(unweak);
    unquoted
        .parse::<i32>()
        .map(Precondition::Version)
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{header} must be * or one ETag (a version such as \"3\"), got {raw:?}"
            ))
            .with_detail(json!({ "header": header }))
        })
}

/// What a write did.
pub struct Written {
    pub stat: Stat,
    pub created: bool,
}

/// Writes `data` (`None`: null data) to the config node `znode`, creating it (and its
/// parents) if needed, under the preconditions given.
pub async fn put(
    client: &Client,
    znode: &str,
    data: Option<&[u8]>,
    if_match: Option<Precondition>,
    if_none_match: Option<Precondition>,
) -> Result<Written, ApiError> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "If-Match and If-None-Match cannot be combined on a write",
        )),
        (Some(pre), None) => {
            let version = match pre {
                Precondition::Any => None,
                Precondition::Version(v) => Some(v),
            };
            match client.set_data_nullable(znode, data, version).await {
                Ok(stat) => Ok(Written {
                    stat,
                    created: false,
                }),
                Err(e) if no_node(&e) => Err(ApiError::precondition_failed(
                    "If-Match: the node does not exist",
                )
                .with_detail(json!({ "current": Value::Null }))),
                Err(ZkError::Server {
                    code: ErrorCode::BadVersion,
                    ..
                }) => Err(conflict(client, znode).await),
                Err(e) => Err(ApiError::zk(&e, true)),
            }
        }
        (None, Some(Precondition::Any)) => create(client, znode, data).await.map_err(|e| {
            if e.status == axum::http::StatusCode::CONFLICT {
                ApiError::precondition_failed("If-None-Match: *: the node exists already")
            } else {
                e
            }
        }),
        (None, Some(Precondition::Version(_))) => Err(ApiError::bad_request(
            "If-None-Match on a write must be *; use If-Match for compare-and-set",
        )),
        (None, None) => {
            // Upsert: write, or create if missing (and write if created meanwhile).
            for _ in 0..3 {
                match client.set_data_nullable(znode, data, None).await {
                    Ok(stat) => {
                        return Ok(Written {
                            stat,
                            created: false,
                        });
                    }
                    Err(e) if no_node(&e) => match create(client, znode, data).await {
                        Ok(w) => return Ok(w),
                        Err(e) if e.status == axum::http::StatusCode::CONFLICT => continue,
                        Err(e) => return Err(e),
                    },
                    Err(e) => return Err(ApiError::zk(&e, true)),
                }
            }
            Err(ApiError::conflict(
                "the node kept being created and deleted under us; try again",
            ))
        }
    }
}

/// 412 naming the version the node is at now.
async fn conflict(client: &Client, znode: &str) -> ApiError {
    let current = match client.exists(znode).await {
        Ok(Some(stat)) => json!(stat.version),
        _ => Value::Null,
    };
    ApiError::precondition_failed("If-Match: the node is at another version (changed meanwhile)")
        .with_detail(json!({ "current": current }))
}

/// Creates `znode` with its missing parents; 409 if it exists.
async fn create(client: &Client, znode: &str, data: Option<&[u8]>) -> Result<Written, ApiError> {
    for _ in 0..3 {
        match client
            .create_nullable(znode, data, CreateMode::Persistent)
            .await
        {
            Ok((_, stat)) => {
                return Ok(Written {
                    stat,
                    created: true,
                });
            }
            Err(e) if no_node(&e) => {
                if let Some(parent) = path::parent(znode) {
                    client
                        .ensure_path(parent, CreateMode::Persistent)
                        .await
                        .map_err(|e| ApiError::zk(&e, true))?;
                }
            }
            Err(ZkError::Server {
                code: ErrorCode::NodeExists,
                ..
            }) => return Err(ApiError::conflict("the node exists already")),
            Err(e) => return Err(ApiError::zk(&e, true)),
        }
    }
    Err(ApiError::conflict(
        "the parent kept disappearing while creating the node; try again",
    ))
}

/// Deletes `znode` (at a version with `If-Match`, with its subtree if `recursive`).
pub async fn delete(
    client: &Client,
    znode: &str,
    if_match: Option<Precondition>,
    recursive: bool,
) -> Result<(), ApiError> {
    if recursive {
        if if_match.is_some() {
            return Err(ApiError::bad_request(
                "If-Match cannot be combined with recursive=true",
            ));
        }
        return match client.exists(znode).await {
            Ok(None) => Err(ApiError::not_found("no such config node")),
            Ok(Some(_)) => client
                .delete_all(znode)
                .await
                .map_err(|e| ApiError::zk(&e, true)),
            Err(e) => Err(ApiError::zk(&e, false)),
        };
    }
    let version = match if_match {
        Some(Precondition::Version(v)) => Some(v),
        _ => None,
    };
    match client.delete(znode, version).await {
        Ok(()) => Ok(()),
        Err(e) if no_node(&e) => Err(if if_match.is_some() {
            ApiError::precondition_failed("If-Match: the node does not exist")
        } else {
            ApiError::not_found("no such config node")
        }),
        Err(ZkError::Server {
            code: ErrorCode::BadVersion,
            ..
        }) => Err(conflict(client, znode).await),
        Err(ZkError::Server {
            code: ErrorCode::NotEmpty,
            ..
        }) => Err(ApiError::conflict(
            "the node has children; delete with ?recursive=true to remove the subtree",
        )),
        Err(e) => Err(ApiError::zk(&e, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions_parse() {
        assert_eq!(
            parse_precondition("If-Match", "*").unwrap(),
            Precondition::Any
        );
        assert_eq!(
            parse_precondition("If-Match", "\"3\"").unwrap(),
            Precondition::Version(3)
        );
        assert_eq!(
            parse_precondition("If-Match", "W/\"4\"").unwrap(),
            Precondition::Version(4)
        );
        assert_eq!(
            parse_precondition("If-Match", "5").unwrap(),
            Precondition::Version(5)
        );
        assert!(parse_precondition("If-Match", "\"a\"").is_err());
        assert!(parse_precondition("If-Match", "\"1\", \"2\"").is_err());
        assert_eq!(etag(7), "\"7\"");
    }
}
