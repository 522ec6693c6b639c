//! Where the sidecar's link to the ensemble stands: what the API, the health checks and
//! the metrics report. Its own module so that the metrics need nothing of the session.

use paddock_client::SessionState;
use serde::Serialize;

/// Where the link to the ensemble stands, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// No session yet: the ensemble has not been reached.
    Connecting,
    Connected,
    /// Disconnected; the session may still live on the servers.
    Suspended,
    /// The session expired; a new one is being established.
    Expired,
    /// Closed (shutting down).
    Closed,
}

impl Link {
    pub fn name(self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Connected => "connected",
            Link::Suspended => "suspended",
            Link::Expired => "expired",
            Link::Closed => "closed",
        }
    }

    pub(crate) fn of(state: SessionState) -> Link {
        match state {
            SessionState::Connecting => Link::Connecting,
            SessionState::Connected => Link::Connected,
            // The sidecar does not ask for read-only servers; one could not take its
            // writes, so it would be as good as disconnected.
            SessionState::Suspended | SessionState::ConnectedReadOnly => Link::Suspended,
            SessionState::Expired => Link::Expired,
            SessionState::Closed | SessionState::AuthFailed => Link::Closed,
        }
    }
}
