//! The peer transport: how servers of an ensemble reach each other.
//!
//! Each server keeps one outbound TCP connection to every peer's quorum port and sends
//! all its messages to that peer on it; it receives on the connections peers opened to
//! it. The outbound connection is the "link" the ZAB core sees: `PeerUp` when it is
//! (re)established, `PeerDown` when it breaks. Messages queued while a link is down are
//! dropped, exactly as a TCP reset loses what was in flight; the protocol restarts its
//! handshakes on the next `PeerUp`. Outbound sockets bind to this server's own address,
//! so a fault proxy (or a test) can tell peers apart by source address.
//!
//! Peers are known by the `host:port` of their `server.N` line, never by an address
//! resolved once: every connection attempt resolves the name again, so a peer that
//! comes back under the same name on a new IP (a recreated pod) is reached there, and a
//! name that does not resolve yet is simply retried (ZOOKEEPER-1506).
//!
//! Memory and work an unauthenticated peer can cause are bounded: frames are buffered as
//! their bytes arrive and refused over `paddock.quorumMaxFrame`; the handshake's address
//! is short and must arrive in time; and a server that introduces itself without being
//! in our config (a joiner, until a reconfig adds it) gets a *guest* link back, at most
//! [`MAX_GUESTS`] at a time, which gives up after [`GUEST_RETRY`] unreachable, unless the
//! committed config comes to name it.
//!
//! With `sslQuorum=true` every link is TLS ([`QuorumTls`]): the dialling side checks the
//! peer's certificate against the `ssl.quorum.*` trust store (and, with
//! `ssl.quorum.hostnameVerification`, that it names the host dialled), the accepting
//! side requires a certificate the same way (and that it names the address the peer
//! connects from). `portUnification=true` also accepts plaintext peers, told apart by
//! the first byte, for a rolling switch to TLS.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::HostPort;
use crate::core::{CoreMsg, InternalTx, PeerLinks};
use crate::net::frame::FrameBuf;
use crate::net::resolve::{self, LogEvery};
use crate::sasl::quorum::{LOGIN_FOLLOWS, QuorumAuth};
use crate::tree::SnapshotView;
use crate::zab::{Message, Sid, Zxid};

/// Links back to servers that introduced themselves but are not in the config.
pub const MAX_GUESTS: usize = 8;
/// A guest link that cannot reach its server for this long gives up (a member's retries
/// forever).
pub const GUEST_RETRY: Duration = Duration::from_secs(10);
/// The longest quorum address accepted in the handshake (a DNS name and a port).
const MAX_HELLO_ADDRESS: usize = 512;
/// How long a new connection may take to send its handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to or from a peer: plain TCP or TLS.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> PeerIo for T {}
type PeerStream = Box<dyn PeerIo>;

/// TLS between servers (`sslQuorum`, `portUnification`).
#[derive(Clone)]
pub struct QuorumTls {
    /// The `ssl.quorum.*` contexts, swapped when the store files change.
    pub contexts: crate::tls::Reloading,
    /// `portUnification`: also accept plaintext peers.
    pub unification: bool,
    /// `sslQuorum`: dial peers with TLS (false: only accept it, as a rolling switch's
    /// first step with portUnification).
    pub dial: bool,
    /// `ssl.quorum.hostnameVerification`: an accepted peer's certificate must name the
    /// address it connects from.
    pub verify_peer_address: bool,
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Handles to the outbound links.
pub struct PeerNet {
    me: Sid,
    /// This server's own quorum address as configured (a name in a pod); sent in the
    /// handshake so a peer that does not know us (we are joining) can open its link back.
    hello: String,
    /// The address our quorum listener is bound to; outbound links bind to its IP.
    local: Option<SocketAddr>,
    internal: Option<InternalTx>,
    runtime: Option<tokio::runtime::Handle>,
    outbound: BTreeMap<Sid, LinkHandle>,
    /// The same links, for the tasks reading inbound connections (see `check_peer`).
    links: Links,
    /// When a guest introduction was last refused (to log it at a bounded rate).
    refused_log: LogEvery,
    /// SASL between servers (`quorum.auth.*`).
    auth: QuorumAuth,
    /// TLS between servers (`sslQuorum`).
    tls: Option<QuorumTls>,
}

/// Our end of one outbound link.
#[derive(Clone)]
struct LinkHandle {
    /// The peer's quorum address as named in the config (or its introduction).
    target: HostPort,
    queue: mpsc::UnboundedSender<Outgoing>,
    /// False for a guest link (see the module doc); set once the config names the peer.
    member: Arc<AtomicBool>,
}

impl LinkHandle {
    fn is_live_guest(&self) -> bool {
        !self.member.load(Ordering::Relaxed) && !self.queue.is_closed()
    }
}

/// Each peer's link, shared with the tasks reading inbound connections.
type Links = Arc<Mutex<BTreeMap<Sid, LinkHandle>>>;

/// What a link's writer sends, in the order queued.
enum Outgoing {
    /// An encoded message.
    Frame(Vec<u8>),
    /// A SNAP of this image, serialized on a blocking thread when its turn comes.
    /// Serializing a large tree takes long enough (hundreds of ms at 100,000 znodes) to
    /// stall every write if the core thread did it; serialized here, the link still sends
    /// it before everything queued after it, which is the order ZAB needs.
    Snapshot { zxid: Zxid, view: SnapshotView },
    /// Drop the connection now (reconnecting as after any failure).
    Break,
}

impl PeerNet {
    /// A transport with no peers (standalone).
    pub fn none() -> PeerNet {
        PeerNet {
            me: 0,
            hello: String::new(),
            local: None,
            internal: None,
            runtime: None,
            outbound: BTreeMap::new(),
            links: Links::default(),
            refused_log: LogEvery::new(resolve::WAIT_LOG_EVERY),
            auth: QuorumAuth::default(),
            tls: None,
        }
    }

    pub fn send(&self, to: Sid, msg: &Message) {
        if let Some(link) = self.outbound.get(&to) {
            let _ = link.queue.send(Outgoing::Frame(msg.encode()));
        }
    }

    /// Sends `Message::Snap` of `view` at `zxid`, serialized off the caller's thread (see
    /// [`Outgoing::Snapshot`]).
    pub fn send_snapshot(&self, to: Sid, zxid: Zxid, view: SnapshotView) {
        if let Some(link) = self.outbound.get(&to) {
            let _ = link.queue.send(Outgoing::Snapshot { zxid, view });
        }
    }

    /// Opens (or moves) the link to `peer` at `host:port` — for members added by a
    /// reconfig and joiners that introduced themselves.
    pub fn ensure_link(&mut self, peer: Sid, host: &str, port: u16) {
        let target = HostPort {
            host: host.to_string(),
            port,
        };
        // A guest link already there becomes a member's (it keeps retrying from now on).
        if let Some(link) = self.outbound.get(&peer)
            && link.target == target
            && !link.queue.is_closed()
        {
            link.member.store(true, Ordering::Relaxed);
            return;
        }
        self.link_to(peer, target, true);
    }

    fn link_to(&mut self, peer: Sid, target: HostPort, member: bool) {
        if peer == self.me
            || self
                .outbound
                .get(&peer)
                .is_some_and(|l| l.target == target && !l.queue.is_closed())
        {
            return;
        }
        let (Some(internal), Some(runtime), Some(local)) =
            (self.internal.clone(), self.runtime.clone(), self.local)
        else {
            return;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = LinkHandle {
            target: target.clone(),
            queue: tx,
            member: Arc::new(AtomicBool::new(member)),
        };
        // Replacing the sender ends the old link's task.
        self.outbound.insert(peer, handle.clone());
        if let Ok(mut links) = self.links.lock() {
            links.insert(peer, handle.clone());
        }
        info!(me = self.me, peer, %target, guest = !member, "opening a link to a new peer");
        let link = Link {
            me: self.me,
            peer,
            target,
            local_ip: local.ip(),
            hello: self.hello.clone(),
            member: handle.member,
            auth: self.auth.clone(),
            tls: self.tls.clone().filter(|t| t.dial),
        };
        runtime.spawn(link.run(rx, internal));
    }

    /// A peer introduced itself. One we have no live link to is not in our config (a
    /// joiner, or a stranger): it gets a guest link while there is room for one.
    pub fn introduced(&mut self, peer: Sid, target: HostPort) {
        // A member's link follows the config; a guest's follows the peer's latest word.
        if self.outbound.get(&peer).is_some_and(|l| {
            !l.queue.is_closed() && (l.member.load(Ordering::Relaxed) || l.target == target)
        }) {
            return;
        }
        let guests = self
            .outbound
            .iter()
            .filter(|(sid, l)| **sid != peer && l.is_live_guest())
            .count();
        if guests >= MAX_GUESTS {
            if self.refused_log.should_log(Instant::now()) {
                let refused = self.refused_log.take_suppressed();
                warn!(me = self.me, peer, %target, guests, refused,
                    "a server not in the config introduced itself; not dialling it back \
                     (too many guest links already)");
            }
            return;
        }
        self.link_to(peer, target, false);
    }
}

impl PeerLinks for PeerNet {
    fn send(&self, to: Sid, msg: &Message) {
        PeerNet::send(self, to, msg)
    }
    fn send_snapshot(&self, to: Sid, zxid: Zxid, view: SnapshotView) {
        PeerNet::send_snapshot(self, to, zxid, view)
    }
    fn ensure_link(&mut self, peer: Sid, host: &str, port: u16) {
        PeerNet::ensure_link(self, peer, host, port)
    }
    fn introduced(&mut self, peer: Sid, addr: HostPort) {
        PeerNet::introduced(self, peer, addr)
    }
}

/// Starts accepting on `listener` and connecting to every peer, all on `runtime` (the
/// links' and the accepted connections' tasks are spawned there; `listener` must be
/// registered with it). `own` is this server's quorum address as its `server.N` line
/// names it; `auth` says whether links log in with SASL and whether peers must.
#[allow(clippy::too_many_arguments)] // each is a separate part of the config
pub fn start(
    runtime: tokio::runtime::Handle,
    me: Sid,
    listener: TcpListener,
    own: HostPort,
    peers: BTreeMap<Sid, HostPort>,
    internal: InternalTx,
    max_frame: usize,
    auth: QuorumAuth,
    tls: Option<QuorumTls>,
) -> std::io::Result<PeerNet> {
    let local = listener.local_addr()?;
    info!(me, %local, address = %own, tls = tls.is_some(), "quorum port listening");
    let links = Links::default();
    runtime.spawn(accept_loop(
        listener,
        internal.clone(),
        links.clone(),
        local.ip(),
        max_frame,
        auth.clone(),
        tls.clone(),
    ));
    let mut net = PeerNet {
        me,
        hello: own.to_string(),
        local: Some(local),
        internal: Some(internal),
        runtime: Some(runtime),
        outbound: BTreeMap::new(),
        links,
        refused_log: LogEvery::new(resolve::WAIT_LOG_EVERY),
        auth,
        tls,
    };
    for (sid, target) in peers {
        net.link_to(sid, target, true);
    }
    Ok(net)
}

async fn accept_loop(
    listener: TcpListener,
    internal: InternalTx,
    links: Links,
    local_ip: IpAddr,
    max_frame: usize,
    auth: QuorumAuth,
    tls: Option<QuorumTls>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let internal = internal.clone();
                let links = links.clone();
                let auth = auth.clone();
                let tls = tls.clone();
                // On the runtime this loop runs on (the core's, without TLS).
                tokio::spawn(async move {
                    let mut from = None;
                    let (stream, check) = match accept_tls(stream, addr, tls.as_ref()).await {
                        Ok(accepted) => accepted,
                        Err(reason) => {
                            warn!(%addr, %reason, "refusing a quorum connection");
                            return;
                        }
                    };
                    if let Err(reason) =
                        read_peer(stream, check, internal, max_frame, &mut from, &auth).await
                    {
                        debug!(%addr, %reason, "peer connection closed");
                    }
                    if let Some(peer) = from {
                        check_peer(peer, &links, local_ip).await;
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "quorum port accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// With hostname verification, the certificate an accepted peer presented and the
/// address it connected from: checked once its handshake names its host.
struct NameCheck {
    leaf: rustls::pki_types::CertificateDer<'static>,
    ip: IpAddr,
}

impl NameCheck {
    /// The certificate must name the address the peer connects from, or the host its
    /// handshake gives (its server.N host), which must resolve to that address.
    async fn check(&self, hello: &HostPort) -> Result<(), String> {
        if crate::tls::names(&self.leaf, &self.ip.to_string()).is_ok() {
            return Ok(());
        }
        crate::tls::names(&self.leaf, &hello.host).map_err(|e| {
            format!(
                "its certificate names neither {} nor {} ({e}; ssl.quorum.hostnameVerification)",
                self.ip, hello.host
            )
        })?;
        match resolve::lookup(&hello.host, hello.port).await {
            Ok(resolved) if resolved.ip() == self.ip => Ok(()),
            Ok(resolved) => Err(format!(
                "{} resolves to {}, not to {} it connects from",
                hello.host,
                resolved.ip(),
                self.ip
            )),
            Err(e) => Err(format!("{}: {e}", hello.host)),
        }
    }
}

/// An accepted quorum connection as `tls` wants it: a TLS handshake, plaintext only
/// with portUnification.
async fn accept_tls(
    stream: TcpStream,
    addr: SocketAddr,
    tls: Option<&QuorumTls>,
) -> Result<(PeerStream, Option<NameCheck>), String> {
    let Some(tls) = tls else {
        return Ok((Box::new(stream), None));
    };
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(HELLO_TIMEOUT, stream.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) {
        return Err("nothing received in time".into());
    }
    if first[0] != TLS_HANDSHAKE {
        if tls.unification {
            return Ok((Box::new(stream), None));
        }
        return Err(
            "not a TLS handshake on the quorum port (sslQuorum=true; a peer \
                    without TLS?)"
                .into(),
        );
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.contexts.server());
    let stream = tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| "TLS handshake not finished in time".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let check = match crate::tls::peer_leaf(stream.get_ref().1) {
        Some(leaf) if tls.verify_peer_address => Some(NameCheck {
            leaf,
            ip: addr.ip(),
        }),
        _ => None,
    };
    Ok((Box::new(stream), check))
}

/// The connection a peer opened to us ended. If its quorum port refuses a new connection,
/// or closes it at once (a relay in between with nobody behind it), its process is gone:
/// break our link to it now (the core sees `PeerDown`). A link only notices a dead peer
/// when it writes, and a follower with no clients may have nothing to write to its
/// leader for a whole syncLimit; ZooKeeper's learner sees its one leader socket close
/// instead. A peer that accepts and waits for our handshake, or does not answer in time,
/// is left to the usual timeouts.
async fn check_peer(peer: Sid, links: &Links, local_ip: IpAddr) {
    let Some(LinkHandle {
        target,
        queue: link,
        ..
    }) = links.lock().ok().and_then(|l| l.get(&peer).cloned())
    else {
        return;
    };
    // Where the peer's name points now (a recreated peer may have moved); a name that
    // no longer resolves says nothing about the old process, so leave it to the timeouts.
    let Ok(addr) = resolve::lookup(&target.host, target.port).await else {
        return;
    };
    let gone = async {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let Ok(socket) = socket else { return false };
        if !local_ip.is_unspecified()
            && local_ip.is_ipv4() == addr.is_ipv4()
            && socket.bind(SocketAddr::new(local_ip, 0)).is_err()
        {
            return false;
        }
        let mut stream =
            match tokio::time::timeout(Duration::from_secs(1), socket.connect(addr)).await {
                Ok(Ok(stream)) => stream,
                // Refused; or a relay accepted and hung up at once.
                Ok(Err(e)) => {
                    return matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionAborted
                    );
                }
                Err(_) => return false,
            };
        // A live peer waits for our handshake; a relay with no peer behind it hangs up.
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    };
    if gone.await {
        info!(peer, %addr, "peer closed its connection and is gone; dropping our link");
        let _ = link.send(Outgoing::Break);
    }
}

/// Reads a peer's messages until the connection ends; `who` is set once the handshake
/// names the peer.
async fn read_peer(
    mut stream: PeerStream,
    check: Option<NameCheck>,
    internal: InternalTx,
    max_frame: usize,
    who: &mut Option<Sid>,
    auth: &QuorumAuth,
) -> Result<(), String> {
    let handshake = async {
        let (from, addr, login_follows) = read_hello(&mut stream).await?;
        if let Some(check) = &check {
            let hello = std::str::from_utf8(&addr)
                .ok()
                .and_then(HostPort::parse)
                .ok_or_else(|| {
                    format!("peer {from}: no quorum address to check its certificate against")
                })?;
            check.check(&hello).await.map_err(|e| {
                warn!(peer = from, reason = %e, "refusing a quorum connection over TLS");
                format!("peer {from}: {e}")
            })?;
        }
        match auth.check(&mut stream, login_follows).await {
            Ok(Some(user)) => auth.logged(from, &user),
            Ok(None) => {}
            Err(cause) => {
                auth.refused(from, "server", &cause);
                return Err(format!("peer {from}: quorum SASL: {cause}"));
            }
        }
        Ok((from, addr))
    };
    let (from, addr) = tokio::time::timeout(HELLO_TIMEOUT, handshake)
        .await
        .map_err(|_| "no handshake in time".to_string())??;
    *who = Some(from);
    if let Some(addr) = std::str::from_utf8(&addr).ok().and_then(HostPort::parse)
        && internal.send(CoreMsg::PeerHello { from, addr }).is_err()
    {
        return Ok(());
    }
    let mut frames = FrameBuf::new(max_frame);
    loop {
        let frame = frames.next_frame().map_err(|e| {
            warn!(peer = from, error = %e, "refusing a peer frame over paddock.quorumMaxFrame; \
                dropping the connection (raise the limit if snapshots are larger)");
            e.to_string()
        })?;
        let Some(frame) = frame else {
            match frames.fill(&mut stream).await {
                Ok(0) => return Err("read: connection closed".into()),
                Ok(_) => continue,
                Err(e) => return Err(format!("read: {e}")),
            }
        };
        let msg = Message::decode(frame).map_err(|e| {
            warn!(peer = from, error = %e, "malformed peer message; dropping the connection");
            e.to_string()
        })?;
        if internal.send(CoreMsg::Peer { from, msg }).is_err() {
            return Ok(());
        }
    }
}

/// The handshake: the sender's id, then its quorum address as its config names it
/// (host:port), so we can answer a server we do not know yet. The length's top bit says
/// that a SASL login follows ([`QuorumAuth`]).
async fn read_hello(stream: &mut PeerStream) -> Result<(Sid, Vec<u8>, bool), String> {
    let from = stream
        .read_u64()
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let raw = stream
        .read_u16()
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let login_follows = raw & LOGIN_FOLLOWS != 0;
    let len = (raw & !LOGIN_FOLLOWS) as usize;
    if len > MAX_HELLO_ADDRESS {
        return Err(format!("handshake: a {len}-byte address"));
    }
    let mut addr = vec![0u8; len];
    stream
        .read_exact(&mut addr)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok((from, addr, login_follows))
}

/// Our outbound link to one peer.
struct Link {
    me: Sid,
    peer: Sid,
    /// The peer's quorum address as configured; resolved again on every attempt.
    target: HostPort,
    /// Outbound sockets bind to this IP (our quorum listener's).
    local_ip: IpAddr,
    /// Our own quorum address, sent in the handshake.
    hello: String,
    /// False while this is a guest link (it gives up after [`GUEST_RETRY`] down).
    member: Arc<AtomicBool>,
    /// SASL between servers: whether this link logs in, and with what.
    auth: QuorumAuth,
    /// TLS to the peer (`sslQuorum`).
    tls: Option<QuorumTls>,
}

impl Link {
    /// Resolves the peer's name now and connects to where it points.
    async fn connect(&self, last: &mut Option<SocketAddr>) -> Result<PeerStream, String> {
        let addr = resolve::lookup(&self.target.host, self.target.port)
            .await
            .map_err(|e| e.to_string())?;
        if last.is_some_and(|previous| previous != addr) {
            info!(me = self.me, peer = self.peer, target = %self.target, %addr, "peer's address changed");
        }
        *last = Some(addr);
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| e.to_string())?;
        if !self.local_ip.is_unspecified() && self.local_ip.is_ipv4() == addr.is_ipv4() {
            socket
                .bind(SocketAddr::new(self.local_ip, 0))
                .map_err(|e| e.to_string())?;
        }
        let stream = tokio::time::timeout(Duration::from_secs(2), socket.connect(addr))
            .await
            .map_err(|_| format!("{addr}: connect timed out"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(stream));
        };
        // The name checked against the peer's certificate: the host its server.N line
        // names (a DNS name or an IP address).
        let name = rustls::pki_types::ServerName::try_from(
            self.target
                .host
                .trim_matches(|c| c == '[' || c == ']')
                .to_string(),
        )
        .map_err(|e| format!("{}: not a TLS server name: {e}", self.target.host))?;
        let connector = tokio_rustls::TlsConnector::from(tls.contexts.client());
        let stream = tokio::time::timeout(HELLO_TIMEOUT, connector.connect(name, stream))
            .await
            .map_err(|_| format!("{addr}: TLS handshake timed out"))?
            .map_err(|e| format!("{addr}: TLS handshake: {e}"))?;
        Ok(Box::new(stream))
    }

    async fn run(self, mut rx: mpsc::UnboundedReceiver<Outgoing>, internal: InternalTx) {
        let (me, peer) = (self.me, self.peer);
        let mut backoff = Duration::from_millis(50);
        let mut last_addr = None;
        let mut failures = LogEvery::new(resolve::WAIT_LOG_EVERY);
        let mut down_since = Instant::now();
        loop {
            // Whatever was queued while the link was down belongs to the old link.
            while rx.try_recv().is_ok() {}
            let stream = match self.connect(&mut last_addr).await {
                Ok(s) => s,
                Err(error) => {
                    if !self.member.load(Ordering::Relaxed) && down_since.elapsed() >= GUEST_RETRY {
                        info!(me, peer, target = %self.target, %error,
                            "giving up on a guest link (the peer is not in the config)");
                        return;
                    }
                    // A peer that is down is routine (debug); one that stays unreachable
                    // is worth a line now and then.
                    if failures.should_log(std::time::Instant::now()) {
                        let retries = failures.take_suppressed();
                        info!(me, peer, target = %self.target, %error, retries, "cannot reach peer; retrying");
                    } else {
                        debug!(me, peer, target = %self.target, %error, "cannot reach peer");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    if rx.is_closed() {
                        return;
                    }
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            failures = LogEvery::new(resolve::WAIT_LOG_EVERY);
            let mut wr = BufWriter::with_capacity(256 * 1024, stream);
            let logs_in = self.auth.logs_in();
            let len = self.hello.len() as u16 | if logs_in { LOGIN_FOLLOWS } else { 0 };
            if wr.write_u64(me).await.is_err()
                || wr.write_u16(len).await.is_err()
                || wr.write_all(self.hello.as_bytes()).await.is_err()
                || wr.flush().await.is_err()
            {
                continue;
            }
            if logs_in {
                let login = tokio::time::timeout(HELLO_TIMEOUT, self.auth.log_in(&mut wr));
                let result = login
                    .await
                    .unwrap_or_else(|_| Err("no answer in time".into()));
                if let Err(cause) = result {
                    self.auth.refused(peer, "learner", &cause);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    if rx.is_closed() {
                        return;
                    }
                    continue;
                }
            }
            if internal.send(CoreMsg::PeerUp(peer)).is_err() {
                return;
            }
            let ended = loop {
                let Some(first) = rx.recv().await else {
                    break true;
                };
                let mut failed = !write_outgoing(&mut wr, first, peer).await;
                while !failed {
                    match rx.try_recv() {
                        Ok(more) => failed = !write_outgoing(&mut wr, more, peer).await,
                        Err(_) => break,
                    }
                }
                if failed || wr.flush().await.is_err() {
                    break false;
                }
            };
            if internal.send(CoreMsg::PeerDown(peer)).is_err() || ended {
                return;
            }
            down_since = Instant::now();
            tokio::time::sleep(backoff).await;
        }
    }
}

/// Writes one queued item; false when the link must be dropped.
async fn write_outgoing(wr: &mut BufWriter<PeerStream>, item: Outgoing, peer: Sid) -> bool {
    let bytes = match item {
        Outgoing::Frame(bytes) => bytes,
        Outgoing::Break => return false,
        Outgoing::Snapshot { zxid, view } => {
            let started = Instant::now();
            let Ok(payload) = tokio::task::spawn_blocking(move || view.serialize()).await else {
                warn!(
                    peer,
                    "serializing a snapshot for the peer failed; dropping the link"
                );
                return false;
            };
            info!(
                peer,
                zxid = format_args!("{zxid:#x}"),
                bytes = payload.len(),
                ms = started.elapsed().as_millis() as u64,
                "sending a snapshot"
            );
            Message::Snap { zxid, payload }.encode()
        }
    };
    write_frame(wr, &bytes).await.is_ok()
}

async fn write_frame(wr: &mut BufWriter<PeerStream>, bytes: &[u8]) -> std::io::Result<()> {
    wr.write_u32(bytes.len() as u32).await?;
    wr.write_all(bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::DataTree;

    /// The next message from `from` on this core channel (PeerUp and the like skipped).
    async fn next_from(rx: &mut mpsc::UnboundedReceiver<CoreMsg>, want: Sid) -> Message {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a message within 10 s")
                .expect("the channel open");
            if let CoreMsg::Peer { from, msg } = msg
                && from == want
            {
                return msg;
            }
        }
    }

    #[tokio::test]
    async fn a_snapshot_is_serialized_by_the_link_and_keeps_its_place_in_the_order() {
        let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hp = |l: &TcpListener| HostPort {
            host: "127.0.0.1".into(),
            port: l.local_addr().unwrap().port(),
        };
        let (a1, a2) = (hp(&l1), hp(&l2));
        let (tx1, mut rx1) = mpsc::unbounded_channel();
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let net1 = start(
            tokio::runtime::Handle::current(),
            1,
            l1,
            a1.clone(),
            [(2, a2.clone())].into(),
            tx1,
            1 << 24,
            QuorumAuth::default(),
            None,
        )
        .unwrap();
        let _net2 = start(
            tokio::runtime::Handle::current(),
            2,
            l2,
            a2,
            [(1, a1)].into(),
            tx2,
            1 << 24,
            QuorumAuth::default(),
            None,
        )
        .unwrap();

        // What is queued while a link is down is dropped: wait until it is up.
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), rx1.recv())
                .await
                .expect("the link up within 10 s")
                .expect("the channel open");
            if matches!(msg, CoreMsg::PeerUp(2)) {
                break;
            }
        }
        let tree = DataTree::new();
        let view = tree.snapshot_view();
        let expected = view.serialize();
        // Queued back to back: the SNAP (serialized later, by the link) must still arrive
        // before the message queued after it.
        net1.send_snapshot(2, 7, view);
        net1.send(2, &Message::Trunc { zxid: 9 });
        match next_from(&mut rx2, 1).await {
            Message::Snap { zxid, payload } => {
                assert_eq!(zxid, 7);
                assert_eq!(payload, expected);
            }
            other => panic!("expected the SNAP first, got {other:?}"),
        }
        match next_from(&mut rx2, 1).await {
            Message::Trunc { zxid } => assert_eq!(zxid, 9),
            other => panic!("expected the TRUNC second, got {other:?}"),
        }
    }
}
