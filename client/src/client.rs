//! The client handle: a cheap-to-clone front for one session. It builds requests,
//! applies the chroot, enforces the request size limit and the request timeout, and
//! hands each request to the session task. The typed operations are in `ops`.
//!
//! Dropping the last handle closes the session (its ephemeral nodes go at once).

use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::Stream;
use paddock_proto::Request;
use paddock_proto::consts::DEFAULT_MAX_BUFFER;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::connect_string::ConnectString;
use crate::error::Error;
use crate::path::Chroot;
use crate::session::{self, Call, Command, Options, Reply, SessionInfo, SessionState, Status};
use crate::watch::PendingWatch;

/// Defaults, chosen to match ZooKeeper's clients where they have one.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for a new session. Start with [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    connect_string: String,
    session_timeout: Duration,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_request_size: usize,
    resume: Option<(i64, Vec<u8>)>,
    auth: Vec<(String, Vec<u8>)>,
    shuffle: bool,
    give_up_when_refused: bool,
    read_only: bool,
    sasl: Option<crate::SaslLogin>,
    tls: Option<crate::tls::TlsOptions>,
}

impl ClientBuilder {
    /// The session timeout to ask for; the server grants one within its
    /// [minSessionTimeout, maxSessionTimeout].
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long [`connect`](Self::connect) keeps trying to establish the session.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an operation waits for its reply, including any time spent waiting for
    /// a reconnect. A timed-out request may still be applied (like a connection loss).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The largest request the server accepts (its jute.maxbuffer; default 0xfffff).
    /// Larger requests fail with [`Error::TooLarge`] without being sent.
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Credentials presented on every connection, before any request (like addauth).
    pub fn auth(mut self, scheme: impl Into<String>, auth: impl Into<Vec<u8>>) -> Self {
        self.auth.push((scheme.into(), auth.into()));
        self
    }

    /// Resumes an existing session (ZooKeeper's constructor with id and password).
    pub fn resume_session(mut self, id: i64, password: Vec<u8>) -> Self {
        self.resume = Some((id, password));
        self
    }

    /// Try the hosts in the order given instead of a random one.
    pub fn keep_host_order(mut self) -> Self {
        self.shuffle = false;
        self
    }

    /// Makes [`connect`](Self::connect) fail at once when every host refuses the
    /// connection (nothing listens there), instead of retrying until the connect
    /// timeout: for one-shot tools, where a server that is not running is the answer.
    /// A name that does not resolve, or a host that does not answer, is still retried.
    pub fn give_up_when_refused(mut self) -> Self {
        self.give_up_when_refused = true;
        self
    }

    /// Accepts a server that has lost its quorum and serves reads only (ZooKeeper's
    /// `canBeReadOnly`; the server needs `readonlymode.enabled`). While connected to
    /// one the state is [`SessionState::ConnectedReadOnly`]: reads work, writes fail
    /// with NotReadOnly. A session a read-only server made is local to it, so on its
    /// first read-write server the client asks for a new session (as ZooKeeper's Java
    /// client does) and the state becomes [`SessionState::Connected`].
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Connects with TLS (to the servers' secure client ports): see [`TlsOptions`](crate::TlsOptions).
    pub fn tls(mut self, options: crate::tls::TlsOptions) -> Self {
        self.tls = Some(options);
        self
    }

    /// Logs in with SASL DIGEST-MD5 as `user` (a `user_<name>` of the servers' JAAS
    /// `Server` section) on every connection, before any request; the session's id is
    /// then `sasl:<user>`. A refused login ends the session
    /// ([`SessionState::AuthFailed`](crate::SessionState::AuthFailed)).
    pub fn sasl_digest(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.sasl = Some(crate::SaslLogin {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// Establishes the session. Fails with [`Error::CannotConnect`] if no server could
    /// be reached within the connect timeout, [`Error::SessionExpired`] when resuming a
    /// session the servers no longer know.
    pub async fn connect(self) -> Result<Client, Error> {
        let cs = ConnectString::parse(&self.connect_string)?;
        let hosts = if self.shuffle {
            cs.shuffled_hosts()
        } else {
            cs.hosts.clone()
        };
        let chroot = Chroot::new(cs.chroot.clone());
        let tls = match &self.tls {
            Some(options) => Some(options.build()?),
            None => None,
        };
        let (handles, ready) = session::spawn(Options {
            hosts,
            hosts_label: cs.hosts_string(),
            chroot: chroot.clone(),
            session_timeout: self.session_timeout,
            connect_timeout: self.connect_timeout,
            resume: self.resume,
            auth: self.auth,
            give_up_when_refused: self.give_up_when_refused,
            read_only: self.read_only,
            sasl: self.sasl,
            tls,
        });
        match ready.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::Closed),
        }
        Ok(Client {
            shared: Arc::new(Shared {
                commands: handles.commands,
                status: handles.status,
                transitions: handles.transitions,
                info: handles.info,
                last_zxid: handles.last_zxid,
                chroot,
                request_timeout: self.request_timeout,
                max_request_size: self.max_request_size,
                connect_string: cs,
            }),
        })
    }
}

/// A ZooKeeper session. Clone it freely: clones share the session.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Status>,
    transitions: broadcast::Sender<SessionState>,
    info: Arc<Mutex<SessionInfo>>,
    last_zxid: Arc<AtomicI64>,
    chroot: Chroot,
    request_timeout: Duration,
    max_request_size: usize,
    connect_string: ConnectString,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connect_string", &self.shared.connect_string.to_string())
            .field("session", &session::hex(self.session().id))
            .field("state", &self.state())
            .finish()
    }
}

impl Client {
    /// Options for a session with the servers of `connect_string`
    /// (`host:port,host:port[/chroot]`).
    pub fn builder(connect_string: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            connect_string: connect_string.into(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            give_up_when_refused: false,
            read_only: false,
            sasl: None,
            tls: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_request_size: DEFAULT_MAX_BUFFER,
            resume: None,
            auth: Vec::new(),
            shuffle: true,
        }
    }

    /// A session with default options.
    pub async fn connect(connect_string: &str) -> Result<Client, Error> {
        Client::builder(connect_string).connect().await
    }

    /// The current session state.
    pub fn state(&self) -> SessionState {
        self.shared.status.borrow().state
    }

    /// Every state change from now on, in order. The stream ends after a terminal state.
    pub fn state_changes(&self) -> SessionStates {
        SessionStates::new(self.shared.transitions.subscribe(), self.state())
    }

    /// The session's id, password and negotiated timeout.
    pub fn session(&self) -> SessionInfo {
        self.shared
            .info
            .lock()
            .map(|info| info.clone())
            .unwrap_or_default()
    }

    /// The highest zxid this session has seen in a reply.
    pub fn last_zxid_seen(&self) -> i64 {
        self.shared.last_zxid.load(Ordering::Relaxed)
    }

    /// The chroot of the connect string, if any.
    pub fn chroot(&self) -> Option<&str> {
        self.shared.chroot.prefix()
    }

    /// The connect string this client was built from.
    pub fn connect_string(&self) -> &ConnectString {
        &self.shared.connect_string
    }

    /// The request timeout (see [`ClientBuilder::request_timeout`]).
    pub fn request_timeout(&self) -> Duration {
        self.shared.request_timeout
    }

    /// Waits until the session is connected; fails once it is over.
    pub async fn wait_connected(&self) -> Result<(), Error> {
        let mut status = self.shared.status.clone();
        let state = status
            .wait_for(|s| s.state == SessionState::Connected || s.state.is_terminal())
            .await
            .map(|s| s.state)
            .unwrap_or(SessionState::Closed);
        match state {
            SessionState::Connected => Ok(()),
            other => Err(terminal_error(other, None)),
        }
    }

    /// Ends the session: the server deletes its ephemeral nodes and fires their
    /// watches at once. Requests made before `close` still get their replies; later
    /// ones fail with [`Error::Closed`].
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.shared.commands.send(Command::Close { done }).is_ok() {
            let _ = wait.await;
        }
    }

    pub(crate) fn status(&self) -> watch::Receiver<Status> {
        self.shared.status.clone()
    }

    pub(crate) fn chroot_map(&self) -> &Chroot {
        &self.shared.chroot
    }

    /// Sends a request and waits (bounded by the request timeout) for its reply.
    /// `path` is the caller's path, for errors.
    pub(crate) async fn call(
        &self,
        request: Request,
        path: Option<&str>,
        watch: Option<PendingWatch>,
    ) -> Result<Reply, Error> {
        let (tx, rx) = oneshot::channel();
        self.submit(request, path, watch, Some(tx))?;
        match tokio::time::timeout(self.shared.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(terminal_error(self.state(), path)),
            Err(_) => Err(Error::Timeout {
                path: path.map(str::to_string),
                timeout: self.shared.request_timeout,
            }),
        }
    }

    /// Sends a request whose reply nobody waits for (cleanup from `Drop`).
    pub(crate) fn call_detached(&self, request: Request) {
        let _ = self.submit(request, None, None, None);
    }

    fn submit(
        &self,
        request: Request,
        path: Option<&str>,
        watch: Option<PendingWatch>,
        reply: Option<oneshot::Sender<Result<Reply, Error>>>,
    ) -> Result<(), Error> {
        let opcode = request.opcode();
        let packet = session::packet(&request);
        let size = packet.len() - 4;
        if size > self.shared.max_request_size {
            return Err(Error::TooLarge {
                path: path.map(str::to_string),
                size,
                limit: self.shared.max_request_size,
            });
        }
        let call = Call {
            opcode,
            packet,
            path: path.map(str::to_string),
            watch,
            reply,
        };
        self.shared
            .commands
            .send(Command::Call(call))
            .map_err(|_| terminal_error(self.state(), path))
    }

    pub(crate) fn forget_watches(&self, server_path: String, kind: paddock_proto::WatcherType) {
        let _ = self.shared.commands.send(Command::ForgetWatches {
            path: server_path,
            kind,
        });
    }

    pub(crate) async fn send_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Auth {
                scheme: scheme.to_string(),
                auth: auth.to_vec(),
                reply,
            })
            .map_err(|_| terminal_error(self.state(), None))?;
        match tokio::time::timeout(self.shared.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(terminal_error(self.state(), None)),
            Err(_) => Err(Error::Timeout {
                path: None,
                timeout: self.shared.request_timeout,
            }),
        }
    }
}

/// The error for a request that cannot be answered because the session is over (or,
/// if it is not, because the connection went away).
pub(crate) fn terminal_error(state: SessionState, path: Option<&str>) -> Error {
    let path = path.map(str::to_string);
    match state {
        SessionState::Expired => Error::SessionExpired { path },
        SessionState::AuthFailed => Error::AuthFailed {
            scheme: String::from("(session)"),
        },
        SessionState::Closed => Error::Closed,
        _ => Error::ConnectionLoss { path },
    }
}

/// Session state changes as a stream ([`Client::state_changes`]).
pub struct SessionStates {
    inner: Pin<Box<dyn Stream<Item = SessionState> + Send>>,
}

impl SessionStates {
    fn new(rx: broadcast::Receiver<SessionState>, current: SessionState) -> SessionStates {
        // (receiver, whether the stream is over)
        let start = (rx, current.is_terminal());
        let inner = futures_util::stream::unfold(start, |(mut rx, over)| async move {
            if over {
                return None;
            }
            loop {
                match rx.recv().await {
                    Ok(state) => return Some((state, (rx, state.is_terminal()))),
                    // Transitions are few; a lagging reader just skips to newer ones.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        SessionStates {
            inner: Box::pin(inner),
        }
    }

    /// The next state change; `None` after a terminal state.
    pub async fn next(&mut self) -> Option<SessionState> {
        futures_util::StreamExt::next(&mut self.inner).await
    }
}

impl Stream for SessionStates {
    type Item = SessionState;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<SessionState>> {
        self.inner.as_mut().poll_next(cx)
    }
}
