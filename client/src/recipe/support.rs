//! Pieces the recipes share: retrying reads across connection loss, unique ids for
//! "protected" node names, cleanup that survives cancellation.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::Error;

/// Runs an idempotent operation until it gets an answer: after a connection loss it
/// waits for the session to reconnect and tries again. Fails once the session is over.
/// (Never use it for a create: a lost create reply needs recovery, not a retry.)
pub(crate) async fn retry<T, F, Fut>(client: &Client, mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    loop {
        match op().await {
            Err(e) if e.is_connection_loss() => client.wait_connected().await?,
            other => return other,
        }
    }
}

/// A random version-4 UUID in the usual text form. It makes our node names
/// recognisable after a create whose reply was lost (Curator's "protected" names).
pub(crate) fn new_guid() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Aborts a background task when its owner goes away.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_look_like_uuids_and_differ() {
        let a = new_guid();
        let b = new_guid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_eq!(a.matches('-').count(), 4);
    }
}
