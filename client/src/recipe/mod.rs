//! Coordination recipes, each correct under connection loss and session expiry:
//!
//! * [`election`]: leader election with fencing tokens;
//! * [`lock`]: a mutex with fencing tokens;
//! * [`group`]: group membership;
//! * [`config`]: a config cache that never misses an update.
//!
//! They share one rule: a recipe's guarantee lasts as long as the session is
//! connected. While it is Suspended a leader or lock holder is told so at once and must
//! pause; once the session is over (Expired, Closed) the recipe reports the loss, and a
//! new [`Client`](crate::Client) is needed to take part again.

pub mod config;
pub mod election;
pub mod group;
pub mod lock;
mod queue;
mod support;

pub use config::{CacheState, ConfigCache, ConfigEvent, ConfigView, Versioned};
pub use election::{Candidacy, Election, Leader, LeaderView, LeaderWatch, Role};
pub use group::{Group, GroupView, GroupWatch, Member, MemberState, Membership, ViewState};
pub use lock::{Hold, Lock, LockGuard, LockHolder};
