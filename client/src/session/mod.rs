//! The session: one task that owns the connection and everything that must survive a
//! reconnect.
//!
//! ```text
//!   Connecting ──► Connected ◄──► Suspended ──► Expired
//!                      │               │
//!                      └───────┬───────┴──► Closed / AuthFailed
//! ```
//!
//! While connected, the task writes requests through the connection's writer queue,
//! allocating xids and remembering each request in a FIFO; ZooKeeper answers a
//! connection's requests in order, so each reply must match the oldest pending xid.
//! It pings after a third of the session timeout of silence and declares the
//! connection dead after two thirds without hearing anything.
//!
//! When the connection drops, requests in flight fail with ConnectionLoss (they may or
//! may not have been applied), the state becomes Suspended, and the task reconnects to
//! the next host with the session id, password and the last zxid it saw. Requests made
//! meanwhile wait for the new connection. On the new connection it first re-sends the
//! credentials and re-registers every watch (setWatches2, so the server fires what was
//! missed), then the waiting requests. The server answering a reconnect with a zero
//! timeout means the session expired: everything fails with SessionExpired and every
//! watch stream ends.

mod connection;
pub(crate) mod sasl;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_proto::frame::frame;
use paddock_proto::{
    AuthPacket, Buffer, ConnectRequest, ErrorCode, Jute, OpCode, Reader, ReplyHeader, Request,
    Response, WatcherEvent, WatcherType, xid,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};

use crate::connect_string::HostPort;
use crate::error::Error;
use crate::path::Chroot;
use crate::watch::{PendingWatch, Registry};
use connection::{AttemptError, FrameReader, Writer};

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Establishing the session for the first time.
    Connecting,
    /// Connected to a server; requests flow.
    Connected,
    /// Connected to a server that has lost its quorum and serves reads only (asked
    /// for with [`ClientBuilder::read_only`](crate::ClientBuilder::read_only)); writes
    /// fail with NotReadOnly. ZooKeeper's `ConnectedReadOnly`.
    ConnectedReadOnly,
    /// Disconnected, reconnecting; the session may still be alive on the servers (its
    /// ephemeral nodes exist until it expires). Do not act as a lock holder or leader.
    Suspended,
    /// The servers expired the session. Terminal.
    Expired,
    /// Closed by [`Client::close`](crate::Client::close) or by dropping every handle. Terminal.
    Closed,
    /// The server refused our credentials. Terminal.
    AuthFailed,
}

impl SessionState {
    /// Whether the session is over for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionState::Expired | SessionState::Closed | SessionState::AuthFailed
        )
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The current state plus a count of connections made so far, so that a watcher of the
/// status can tell a reconnect happened even if it never saw the Suspended in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    pub state: SessionState,
    pub connection: u64,
}

/// The session's identity, as ZooKeeper's `getSessionId`/`getSessionPasswd`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: i64,
    pub password: Vec<u8>,
    /// The timeout the server granted.
    pub timeout: Duration,
    /// The server we are connected to (or were, last).
    pub server: Option<SocketAddr>,
    /// Whether that server serves reads only (its session is local to it).
    pub read_only: bool,
}

/// What the client handles ask of the session task.
pub(crate) enum Command {
    Call(Call),
    Auth {
        scheme: String,
        auth: Vec<u8>,
        reply: AuthReply,
    },
    /// Drop local watch registrations the server removed (removeWatches succeeded).
    ForgetWatches {
        path: String,
        kind: WatcherType,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// One request: its complete frame, whose xid the session fills in when it is sent.
pub(crate) struct Call {
    pub opcode: OpCode,
    pub packet: Vec<u8>,
    /// The path as the caller named it, for errors.
    pub path: Option<String>,
    pub watch: Option<PendingWatch>,
    /// `None` for fire-and-forget requests.
    pub reply: Option<oneshot::Sender<Result<Reply, Error>>>,
}

/// A successful reply.
#[derive(Debug)]
pub(crate) struct Reply {
    pub response: Response,
}

/// Byte offset of the xid in a packet built by [`packet`].
const XID_OFFSET: usize = 4;

/// Frames `request` with a placeholder xid (the session assigns the real one).
pub(crate) fn packet(request: &Request) -> Vec<u8> {
    frame(&request.encode(0))
}

pub(crate) struct Options {
    /// Hosts in the order to try them (already shuffled).
    pub hosts: Vec<HostPort>,
    /// The hosts as the caller listed them, for messages.
    pub hosts_label: String,
    pub chroot: Chroot,
    pub session_timeout: Duration,
    pub connect_timeout: Duration,
    /// Resume this session (id, password) instead of creating one.
    pub resume: Option<(i64, Vec<u8>)>,
    pub auth: Vec<(String, Vec<u8>)>,
    /// Give up the first connection as soon as every host refused it in one round.
    pub give_up_when_refused: bool,
    /// Accept read-only servers (ConnectRequest's readOnly byte).
    pub read_only: bool,
    /// A SASL DIGEST-MD5 login on every connection, before anything else.
    pub sasl: Option<sasl::SaslLogin>,
    /// TLS to every server (their secure client ports).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// The channels a [`Client`](crate::Client) keeps to talk to its session task.
pub(crate) struct Handles {
    pub commands: mpsc::UnboundedSender<Command>,
    pub status: watch::Receiver<Status>,
    pub transitions: broadcast::Sender<SessionState>,
    pub info: Arc<Mutex<SessionInfo>>,
    pub last_zxid: Arc<AtomicI64>,
}

/// Starts the session task; `ready` resolves once the first connection is established
/// (or could not be within the connect timeout).
pub(crate) fn spawn(opts: Options) -> (Handles, oneshot::Receiver<Result<(), Error>>) {
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(Status {
        state: SessionState::Connecting,
        connection: 0,
    });
    let (transitions, _) = broadcast::channel(256);
    let info = Arc::new(Mutex::new(SessionInfo::default()));
    let last_zxid = Arc::new(AtomicI64::new(0));
    let (ready_tx, ready) = oneshot::channel();
    let (id, password) = opts.resume.clone().unwrap_or((0, vec![0u8; 16]));
    let seen_read_write = opts.resume.is_some();
    let auths = opts
        .auth
        .iter()
        .map(|(scheme, auth)| AuthEntry {
            scheme: scheme.clone(),
            auth: auth.clone(),
            waiter: None,
        })
        .collect();
    let session = Session {
        commands: command_rx,
        status: status_tx,
        transitions: transitions.clone(),
        info: info.clone(),
        shared_zxid: last_zxid.clone(),
        id,
        password,
        seen_read_write,
        timeout: opts.session_timeout,
        last_zxid: 0,
        next_xid: 1,
        next_host: 0,
        connections: 0,
        waiting: VecDeque::new(),
        watches: Registry::default(),
        auths,
        close_done: Vec::new(),
        opts,
    };
    tokio::spawn(session.run(ready_tx));
    (
        Handles {
            commands,
            status,
            transitions,
            info,
            last_zxid,
        },
        ready,
    )
}

/// Where the answer to an addauth goes.
type AuthReply = oneshot::Sender<Result<(), Error>>;

/// Credentials to present on every connection.
struct AuthEntry {
    scheme: String,
    auth: Vec<u8>,
    /// The caller of addAuth waiting for the first answer.
    waiter: Option<AuthReply>,
}

struct Session {
    opts: Options,
    commands: mpsc::UnboundedReceiver<Command>,
    status: watch::Sender<Status>,
    transitions: broadcast::Sender<SessionState>,
    info: Arc<Mutex<SessionInfo>>,
    /// `last_zxid`, published for [`Client::last_zxid_seen`](crate::Client::last_zxid_seen).
    shared_zxid: Arc<AtomicI64>,
    id: i64,
    password: Vec<u8>,
    /// Whether the session was ever established on a read-write server. Until then its
    /// id, if any, is a read-only server's local session: a read-only client asks for a
    /// new session on each connection (ZooKeeper's `seenRwServerBefore`).
    seen_read_write: bool,
    /// The negotiated session timeout (the requested one until the first connect).
    timeout: Duration,
    /// The highest zxid seen in a reply; sent on reconnect so that no server with an
    /// older view of the tree accepts us, and as the base of setWatches2.
    last_zxid: i64,
    next_xid: i32,
    next_host: usize,
    connections: u64,
    /// Requests made while disconnected, sent on the next connection.
    waiting: VecDeque<Call>,
    watches: Registry,
    auths: Vec<AuthEntry>,
    close_done: Vec<oneshot::Sender<()>>,
}

/// A connection in use.
struct Live {
    addr: SocketAddr,
    reader: FrameReader,
    writer: Writer,
    pending: VecDeque<InFlight>,
    /// addauth replies come back in order among themselves (ZooKeeper answers them
    /// outside the request pipeline, so not in order with other requests).
    auth_waiters: VecDeque<(String, Option<AuthReply>)>,
    last_sent: Instant,
    last_heard: Instant,
}

struct InFlight {
    xid: i32,
    opcode: OpCode,
    path: Option<String>,
    watch: Option<PendingWatch>,
    reply: Option<oneshot::Sender<Result<Reply, Error>>>,
}

/// Why a connection (or the whole session) ended.
#[derive(Debug)]
enum Ended {
    /// The connection broke; the session may live on.
    Lost(String),
    /// The first connection could not be made in time.
    CannotConnect(String),
    Expired,
    AuthFailed(String),
    Closed,
}

impl Ended {
    /// What requests still pending get told.
    fn error(&self, path: Option<String>) -> Error {
        match self {
            Ended::Lost(_) => Error::ConnectionLoss { path },
            Ended::CannotConnect(_) => Error::ConnectionLoss { path },
            Ended::Expired => Error::SessionExpired { path },
            Ended::AuthFailed(scheme) => Error::AuthFailed {
                scheme: scheme.clone(),
            },
            Ended::Closed => Error::Closed,
        }
    }
}

/// Backoff between rounds of failed connection attempts.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// No single connection attempt gets less than this, however many hosts there are.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);
/// How long close waits for the server to confirm closeSession.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

impl Session {
    async fn run(mut self, ready: oneshot::Sender<Result<(), Error>>) {
        let deadline = Instant::now() + self.opts.connect_timeout;
        let mut live = match self.connect(Some(deadline)).await {
            Ok(live) => {
                let _ = ready.send(Ok(()));
                live
            }
            Err(end) => {
                let err = match &end {
                    Ended::CannotConnect(reason) => {
                        let hosts = self.opts.hosts_label.clone();
                        // With one host, its name already leads the message.
                        let reason = reason
                            .strip_prefix(&format!("{hosts}: "))
                            .unwrap_or(reason)
                            .to_string();
                        Error::CannotConnect { hosts, reason }
                    }
                    other => other.error(None),
                };
                let _ = ready.send(Err(err));
                self.finish(end);
                return;
            }
        };
        loop {
            let end = self.serve(&mut live).await;
            self.fail_in_flight(live, &end);
            match end {
                Ended::Lost(reason) => {
                    tracing::info!(session = %hex(self.id), %reason, "connection lost; reconnecting");
                    self.publish(SessionState::Suspended);
                    match self.connect(None).await {
                        Ok(next) => live = next,
                        Err(end) => return self.finish(end),
                    }
                }
                end => return self.finish(end),
            }
        }
    }

    // ---- connecting ------------------------------------------------------------------

    /// Connects to the next reachable host, taking commands meanwhile. Gives up at
    /// `deadline` (the first connection only: a session once established retries until
    /// the servers expire it). Every attempt looks the host's name up again (a pod
    /// recreated under its DNS name has a new IP); a name that does not resolve (yet)
    /// only skips that host for this round (tests/names.rs).
    async fn connect(&mut self, deadline: Option<Instant>) -> Result<Live, Ended> {
        let mut backoff = FIRST_BACKOFF;
        let mut last_error = String::new();
        let hosts = self.opts.hosts.len().max(1) as u32;
        loop {
            // Whether every attempt of this round was refused (nothing listens anywhere).
            let mut all_refused = true;
            for _ in 0..hosts {
                let host = self.opts.hosts[self.next_host % self.opts.hosts.len()].clone();
                self.next_host = self.next_host.wrapping_add(1);
                let mut limit = (self.timeout / hosts).max(MIN_ATTEMPT);
                // Past the deadline, give up (once at least one attempt was made).
                if let Some(deadline) = deadline
                    && !last_error.is_empty()
                {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Ended::CannotConnect(last_error));
                    }
                    limit = limit.min(left);
                }
                let lookup = tokio::time::timeout(
                    limit,
                    tokio::net::lookup_host((host.host.clone(), host.port)),
                );
                let addrs: Vec<SocketAddr> = match self.while_waiting(lookup).await? {
                    Ok(Ok(addrs)) => addrs.collect(),
                    Ok(Err(e)) => {
                        last_error = format!("{host}: {e}");
                        all_refused = false;
                        continue;
                    }
                    Err(_) => {
                        last_error = format!("{host}: name resolution timed out");
                        all_refused = false;
                        continue;
                    }
                };
                for addr in addrs {
                    let session_id = if self.opts.read_only && !self.seen_read_write {
                        0
                    } else {
                        self.id
                    };
                    let request = ConnectRequest {
                        protocol_version: 0,
                        last_zxid_seen: self.last_zxid,
                        time_out: millis_i32(self.opts.session_timeout),
                        session_id,
                        passwd: Buffer(self.password.clone()),
                        read_only: Some(self.opts.read_only),
                    };
                    let attempt = connection::handshake(
                        addr,
                        &host.host,
                        self.opts.tls.clone(),
                        request,
                        limit,
                    );
                    match self.while_waiting(attempt).await? {
                        Ok((mut stream, response)) => {
                            if session_id != 0 && response.session_id != session_id {
                                // A server that hands us another session has forgotten ours.
                                return Err(Ended::Expired);
                            }
                            if let Some(creds) = self.opts.sasl.clone() {
                                let login = sasl::login(&mut stream, &creds, limit);
                                match self.while_waiting(login).await? {
                                    Ok(()) => {}
                                    Err(sasl::LoginError::Refused(reason)) => {
                                        tracing::warn!(%addr, %reason, "SASL login refused");
                                        return Err(Ended::AuthFailed("sasl".into()));
                                    }
                                    Err(sasl::LoginError::Io(reason)) => {
                                        tracing::debug!(%reason, "SASL login failed");
                                        last_error = reason;
                                        all_refused = false;
                                        continue;
                                    }
                                }
                            }
                            return Ok(self.established(addr, stream, response));
                        }
                        Err(AttemptError::Expired) => return Err(Ended::Expired),
                        Err(AttemptError::Io(reason)) => {
                            tracing::debug!(%reason, "connection attempt failed");
                            last_error = reason;
                            all_refused = false;
                        }
                        Err(AttemptError::Refused(reason)) => {
                            tracing::debug!(%reason, "connection refused");
                            last_error = reason;
                        }
                    }
                }
            }
            // Only for the first connection (with a deadline): a session once
            // established waits for its servers to come back.
            if all_refused && deadline.is_some() && self.opts.give_up_when_refused {
                return Err(Ended::CannotConnect(last_error));
            }
            // A whole round failed: pause before the next one.
            let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 2));
            let mut wake = Instant::now() + backoff + jitter;
            if let Some(deadline) = deadline {
                if Instant::now() >= deadline {
                    return Err(Ended::CannotConnect(last_error));
                }
                wake = wake.min(deadline);
            }
            self.while_waiting(sleep_until(wake)).await?;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Awaits `fut` while queueing the requests that arrive meanwhile; a close request
    /// ends the wait (and the session).
    async fn while_waiting<F: std::future::Future>(&mut self, fut: F) -> Result<F::Output, Ended> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Ok(out),
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Call(call)) => {
                        if !abandoned(&call) {
                            self.waiting.push_back(call);
                        }
                    }
                    Some(Command::Auth { scheme, auth, reply }) => {
                        self.auths.push(AuthEntry { scheme, auth, waiter: Some(reply) });
                    }
                    Some(Command::ForgetWatches { path, kind }) => self.watches.remove(&path, kind),
                    Some(Command::Close { done }) => {
                        // Without a connection we cannot tell the servers; the session
                        // will expire there.
                        self.close_done.push(done);
                        return Err(Ended::Closed);
                    }
                    None => return Err(Ended::Closed),
                },
            }
        }
    }

    /// Sets up a fresh connection: credentials first, then the watches, then whatever
    /// waited for a connection.
    fn established(
        &mut self,
        addr: SocketAddr,
        stream: connection::Stream,
        response: paddock_proto::ConnectResponse,
    ) -> Live {
        let read_only = response.read_only == Some(true);
        if self.id != 0 && response.session_id != self.id {
            tracing::info!(
                previous = %hex(self.id),
                session = %hex(response.session_id),
                "the read-only session was local to its server; this is a new session"
            );
        }
        if !read_only {
            self.seen_read_write = true;
        }
        self.id = response.session_id;
        self.password = response.passwd.0;
        self.timeout = Duration::from_millis(response.time_out.max(1) as u64);
        if let Ok(mut info) = self.info.lock() {
            *info = SessionInfo {
                id: self.id,
                password: self.password.clone(),
                timeout: self.timeout,
                server: Some(addr),
                read_only,
            };
        }
        let (read_half, write_half) = tokio::io::split(stream);
        let now = Instant::now();
        let mut live = Live {
            addr,
            reader: FrameReader::new(read_half),
            writer: Writer::spawn(write_half),
            pending: VecDeque::new(),
            auth_waiters: VecDeque::new(),
            last_sent: now,
            last_heard: now,
        };
        for entry in &mut self.auths {
            live.writer.send(auth_packet(&entry.scheme, &entry.auth));
            live.auth_waiters
                .push_back((entry.scheme.clone(), entry.waiter.take()));
        }
        for set in self.watches.set_watches(self.last_zxid) {
            live.writer
                .send(frame(&Request::SetWatches2(set).encode(xid::SET_WATCHES)));
        }
        while let Some(call) = self.waiting.pop_front() {
            self.send_call(&mut live, call);
        }
        self.connections += 1;
        tracing::info!(
            session = %hex(self.id),
            server = %addr,
            timeout = ?self.timeout,
            read_only,
            "session connected"
        );
        self.publish(if read_only {
            SessionState::ConnectedReadOnly
        } else {
            SessionState::Connected
        });
        live
    }

    // ---- serving a connection --------------------------------------------------------

    async fn serve(&mut self, live: &mut Live) -> Ended {
        let ping_every = self.timeout / 3;
        let read_timeout = self.timeout * 2 / 3;
        loop {
            let event = tokio::select! {
                frame = live.reader.next() => Event::Frame(frame),
                cmd = self.commands.recv() => Event::Command(cmd),
                _ = sleep_until(live.last_sent + ping_every) => Event::PingDue,
                _ = sleep_until(live.last_heard + read_timeout) => Event::Silence,
                err = &mut live.writer.failed => Event::WriteFailed(match err {
                    Ok(e) => e.to_string(),
                    Err(_) => "writer stopped".to_string(),
                }),
            };
            let outcome = match event {
                Event::Frame(Ok(Some(frame))) => self.on_frame(live, &frame),
                Event::Frame(Ok(None)) => {
                    Err(Ended::Lost(format!("{} closed the connection", live.addr)))
                }
                Event::Frame(Err(e)) => Err(Ended::Lost(format!("{}: {e}", live.addr))),
                Event::Command(Some(Command::Call(call))) => {
                    self.send_call(live, call);
                    Ok(())
                }
                Event::Command(Some(Command::Auth {
                    scheme,
                    auth,
                    reply,
                })) => {
                    live.writer.send(auth_packet(&scheme, &auth));
                    live.last_sent = Instant::now();
                    live.auth_waiters.push_back((scheme.clone(), Some(reply)));
                    self.auths.push(AuthEntry {
                        scheme,
                        auth,
                        waiter: None,
                    });
                    Ok(())
                }
                Event::Command(Some(Command::ForgetWatches { path, kind })) => {
                    self.watches.remove(&path, kind);
                    Ok(())
                }
                Event::Command(Some(Command::Close { done })) => {
                    self.close_done.push(done);
                    return self.close(live).await;
                }
                Event::Command(None) => return self.close(live).await,
                Event::PingDue => {
                    live.writer.send(frame(&Request::Ping.encode(xid::PING)));
                    live.last_sent = Instant::now();
                    Ok(())
                }
                Event::Silence => Err(Ended::Lost(format!(
                    "nothing heard from {} for {read_timeout:?}",
                    live.addr
                ))),
                Event::WriteFailed(e) => Err(Ended::Lost(format!("{}: {e}", live.addr))),
            };
            if let Err(end) = outcome {
                return end;
            }
        }
    }

    fn send_call(&mut self, live: &mut Live, mut call: Call) {
        if abandoned(&call) {
            return; // the caller gave up (request timeout) before it could be sent
        }
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        call.packet[XID_OFFSET..XID_OFFSET + 4].copy_from_slice(&xid.to_be_bytes());
        live.writer.send(call.packet);
        live.last_sent = Instant::now();
        live.pending.push_back(InFlight {
            xid,
            opcode: call.opcode,
            path: call.path,
            watch: call.watch,
            reply: call.reply,
        });
    }

    fn on_frame(&mut self, live: &mut Live, frame: &[u8]) -> Result<(), Ended> {
        live.last_heard = Instant::now();
        let mut reader = Reader::new(frame);
        let header = ReplyHeader::read(&mut reader)
            .map_err(|e| Ended::Lost(format!("malformed reply header: {e}")))?;
        let body = reader.rest();
        match header.xid {
            xid::NOTIFICATION => {
                let event = WatcherEvent::from_bytes(body)
                    .map_err(|e| Ended::Lost(format!("malformed watch event: {e}")))?;
                self.watches.dispatch(&event, &self.opts.chroot);
            }
            xid::PING => {}
            xid::AUTH => {
                let (scheme, waiter) = live.auth_waiters.pop_front().unwrap_or_default();
                let result = match ErrorCode::from_code(header.err) {
                    Some(ErrorCode::Ok) => Ok(()),
                    Some(ErrorCode::AuthFailed) => Err(Error::AuthFailed {
                        scheme: scheme.clone(),
                    }),
                    Some(code) => Err(Error::server(code, None)),
                    None => Err(Error::Protocol(format!(
                        "unknown error code {} for addauth",
                        header.err
                    ))),
                };
                let failed = matches!(result, Err(Error::AuthFailed { .. }));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(result);
                }
                if failed {
                    // ZooKeeper closes the connection after refusing credentials, and a
                    // session without its credentials would act as someone else.
                    return Err(Ended::AuthFailed(scheme));
                }
            }
            xid::SET_WATCHES => {
                if header.err != 0 {
                    tracing::warn!(
                        err = header.err,
                        "the server refused to restore our watches"
                    );
                }
            }
            reply_xid => {
                let Some(call) = live.pending.pop_front() else {
                    return Err(Ended::Lost(format!(
                        "reply with xid {reply_xid} but no request pending"
                    )));
                };
                if call.xid != reply_xid {
                    return Err(Ended::Lost(format!(
                        "reply xid {reply_xid} out of order (expected {})",
                        call.xid
                    )));
                }
                if header.zxid > 0 {
                    self.last_zxid = self.last_zxid.max(header.zxid);
                    self.shared_zxid.store(self.last_zxid, Ordering::Relaxed);
                }
                self.complete(call, &header, body);
                if header.err == ErrorCode::SessionClosedRequireSaslAuth.code() {
                    // enforce.auth: the server wants credentials this session does not
                    // have, and closes the connection; as ZooKeeper's client: AuthFailed.
                    return Err(Ended::AuthFailed("sasl".into()));
                }
            }
        }
        Ok(())
    }

    /// Hands a reply to its caller, registering the watch it asked for if the read
    /// succeeded (or, for exists, found nothing).
    fn complete(&mut self, call: InFlight, header: &ReplyHeader, body: &[u8]) {
        let result = if header.err == 0 {
            Response::decode(call.opcode.code(), body)
                .map(|response| Reply { response })
                .map_err(|e| Error::Protocol(format!("{} reply: {e}", call.opcode)))
        } else {
            match ErrorCode::from_code(header.err) {
                Some(code) => Err(Error::server(code, call.path.clone())),
                None => Err(Error::Protocol(format!(
                    "unknown error code {}",
                    header.err
                ))),
            }
        };
        if let Some(watch) = call.watch {
            let found = match &result {
                Ok(_) => Some(true),
                Err(Error::Server {
                    code: ErrorCode::NoNode,
                    ..
                }) => Some(false),
                Err(_) => None,
            };
            if let Some(kind) = found.and_then(|found| watch.kind.settle(found)) {
                self.watches.add(kind, watch.path, watch.listener);
            }
        }
        if let Some(reply) = call.reply {
            let _ = reply.send(result);
        }
    }

    /// Sends closeSession and waits (bounded) for the server to confirm it, answering
    /// the requests still in flight meanwhile.
    async fn close(&mut self, live: &mut Live) -> Ended {
        let (tx, rx) = oneshot::channel();
        self.send_call(
            live,
            Call {
                opcode: OpCode::CloseSession,
                packet: packet(&Request::CloseSession),
                path: None,
                watch: None,
                reply: Some(tx),
            },
        );
        let deadline = Instant::now() + CLOSE_WAIT.min(self.timeout);
        tokio::pin!(rx);
        loop {
            tokio::select! {
                _ = &mut rx => break,
                frame = live.reader.next() => match frame {
                    Ok(Some(frame)) => {
                        if self.on_frame(live, &frame).is_err() {
                            break;
                        }
                    }
                    _ => break,
                },
                _ = sleep_until(deadline) => {
                    tracing::debug!("no reply to closeSession; closing anyway");
                    break;
                }
            }
        }
        tracing::info!(session = %hex(self.id), "session closed");
        Ended::Closed
    }

    // ---- endings ---------------------------------------------------------------------

    /// Fails what was in flight on a connection that ended.
    fn fail_in_flight(&mut self, live: Live, end: &Ended) {
        for call in live.pending {
            if let Some(reply) = call.reply {
                let _ = reply.send(Err(end.error(call.path)));
            }
        }
        for (_, waiter) in live.auth_waiters {
            if let Some(waiter) = waiter {
                let _ = waiter.send(Err(end.error(None)));
            }
        }
    }

    /// The session is over: fail everything, end every watch stream, publish the
    /// terminal state.
    fn finish(mut self, end: Ended) {
        let state = match &end {
            Ended::Expired => SessionState::Expired,
            Ended::AuthFailed(_) => SessionState::AuthFailed,
            Ended::Lost(_) | Ended::CannotConnect(_) | Ended::Closed => SessionState::Closed,
        };
        if let Ended::Expired = end {
            tracing::warn!(session = %hex(self.id), "session expired");
        }
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Call(call) => self.waiting.push_back(call),
                Command::Auth { reply, .. } => {
                    let _ = reply.send(Err(end.error(None)));
                }
                Command::Close { done } => self.close_done.push(done),
                Command::ForgetWatches { .. } => {}
            }
        }
        for call in self.waiting.drain(..) {
            if let Some(reply) = call.reply {
                let _ = reply.send(Err(end.error(call.path)));
            }
        }
        for entry in self.auths.drain(..) {
            if let Some(waiter) = entry.waiter {
                let _ = waiter.send(Err(end.error(None)));
            }
        }
        self.watches.clear();
        self.publish(state);
        for done in self.close_done.drain(..) {
            let _ = done.send(());
        }
    }

    fn publish(&mut self, state: SessionState) {
        self.status.send_replace(Status {
            state,
            connection: self.connections,
        });
        let _ = self.transitions.send(state);
    }
}

enum Event {
    Frame(std::io::Result<Option<Vec<u8>>>),
    Command(Option<Command>),
    PingDue,
    Silence,
    WriteFailed(String),
}

/// Whether the caller stopped waiting for this request's reply.
fn abandoned(call: &Call) -> bool {
    call.reply.as_ref().is_some_and(|r| r.is_closed())
}

fn auth_packet(scheme: &str, auth: &[u8]) -> Vec<u8> {
    frame(
        &Request::Auth(AuthPacket {
            kind: 0,
            scheme: scheme.to_string(),
            auth: Buffer(auth.to_vec()),
        })
        .encode(xid::AUTH),
    )
}

fn millis_i32(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Session ids are conventionally shown in hex (0x1000a2b3c4d0000).
pub(crate) fn hex(id: i64) -> String {
    format!("{:#x}", id)
}
