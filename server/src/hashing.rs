//! The hasher of the server's hash maps. std's SipHash showed as ~6 % of a getData's
//! instructions (`bench/instructions.sh`: the tree's path lookup, the connection and
//! session maps); aHash keeps a random key per process, so client-chosen paths still
//! cannot be aimed at one bucket, and costs several times less on short keys.

/// Builds the hashers: randomly keyed once per map.
pub type Hasher = ahash::RandomState;
pub type FastMap<K, V> = std::collections::HashMap<K, V, Hasher>;
pub type FastSet<T> = std::collections::HashSet<T, Hasher>;
