//! What the workspace's integration tests share (being gathered here from each crate's
//! `tests/common`). A dev-dependency only.
