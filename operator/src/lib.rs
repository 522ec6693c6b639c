//! paddock-operator: reconciles ZkEnsemble resources (DESIGN §5).
//!
//! Pure parts live here and need no API server: the CRD types ([`crd`]), the names and
//! member addresses every child and reconfig uses ([`membership`]), the planner that turns an
//! observed world into one next action ([`planner`]) and the status computed from both
//! ([`status`]). The reconciler and controller (API I/O) sit beside them.

pub mod children;
pub mod controller;
pub mod crd;
pub mod lease;
pub mod members;
pub mod membership;
pub mod metrics;
pub mod observe;
pub mod planner;
pub mod quantity;
pub mod reconcile;
pub mod status;
