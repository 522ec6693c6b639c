//! paddock-sidecar: leader election, group membership, locks and config for any app,
//! over a localhost HTTP API (DESIGN §4), backed by a ZooKeeper-compatible ensemble
//! through paddock-client.
//!
//! * [`session`] keeps one ZooKeeper session alive (a new one after an expiry);
//! * [`hub`] fans one persistent-recursive watch out to every reader;
//! * [`elections`], [`groups`], [`locks`] and [`config`] are the coordination logic;
//! * [`api`] is the HTTP surface, with [`blocking`] reads and [`sse`] streams;
//! * [`render`] keeps files equal to config subtrees; [`k8s`] labels the pod.

pub mod api;
pub mod app;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod duration;
pub mod elections;
pub mod error;
pub mod groups;
pub mod hub;
pub mod k8s;
pub mod layout;
pub mod link;
pub mod locks;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod registry;
pub mod render;
pub mod serve;
pub mod session;
pub mod sse;
pub mod value;

mod run;

pub use run::run;
