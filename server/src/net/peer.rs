//! The peer transport: how servers of an ensemble reach each other.
//!
//! Each server keeps one outbound TCP connection to every peer's quorum port and sends
//! all its messages to that peer on it; it receives on the connections peers opened to
//! it. The outbound connection is the "link" the ZAB core sees: `PeerUp` when it is
//! (re)established, `PeerDown` when it breaks. Messages queued while a link is down are
//! dropped, exactly as a TCP reset loses what was in flight; the protocol restarts its
//! handshakes on the next `PeerUp`. Outbound sockets bind to this server's own address,
//! so a fault proxy (or a test) can tell peers apart by source address.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::core::{CoreMsg, InternalTx};
use crate::zab::{Message, Sid};

/// Snapshots travel as one message; allow large ones.
const MAX_PEER_FRAME: usize = 1 << 30;

/// Handles to the outbound links.
pub struct PeerNet {
    me: Sid,
    /// Where this server listens; sent in the handshake so a peer that does not know us
    /// (we are joining) can open its link back.
    listen: Option<SocketAddr>,
    internal: Option<InternalTx>,
    runtime: Option<tokio::runtime::Handle>,
    outbound: BTreeMap<Sid, (SocketAddr, mpsc::UnboundedSender<Vec<u8>>)>,
    /// The same links, for the tasks reading inbound connections (see `check_peer`).
    links: Links,
}

/// Each peer's quorum address and the queue of our link to it.
type Links = Arc<Mutex<BTreeMap<Sid, (SocketAddr, mpsc::UnboundedSender<Vec<u8>>)>>>;

/// Queued on a link: drop the connection now (reconnecting as after any failure).
const BREAK_LINK: Vec<u8> = Vec::new();

impl PeerNet {
    /// A transport with no peers (standalone).
    pub fn none() -> PeerNet {
        PeerNet {
            me: 0,
            listen: None,
            internal: None,
            runtime: None,
            outbound: BTreeMap::new(),
            links: Links::default(),
        }
    }

    pub fn send(&self, to: Sid, msg: &Message) {
        if let Some((_, tx)) = self.outbound.get(&to) {
            let _ = tx.send(msg.encode());
        }
    }

    /// Opens (or moves) the link to `peer` at `host:port` — for members added by a
    /// reconfig and joiners that introduced themselves.
    pub fn ensure_link(&mut self, peer: Sid, host: &str, port: u16) {
        let Some(addr) = resolve_now(host, port) else {
            warn!(peer, host, port, "cannot resolve a peer's quorum address");
            return;
        };
        self.link_to(peer, addr);
    }

    fn link_to(&mut self, peer: Sid, addr: SocketAddr) {
        if peer == self.me || self.outbound.get(&peer).is_some_and(|(a, _)| *a == addr) {
            return;
        }
        let (Some(internal), Some(runtime), Some(listen)) =
            (self.internal.clone(), self.runtime.clone(), self.listen)
        else {
            return;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // Replacing the sender ends the old link's task.
        self.outbound.insert(peer, (addr, tx.clone()));
        if let Ok(mut links) = self.links.lock() {
            links.insert(peer, (addr, tx));
        }
        info!(me = self.me, peer, %addr, "opening a link to a new peer");
        runtime.spawn(link_loop(self.me, peer, addr, listen, rx, internal));
    }

    /// A peer we have no link to introduced itself (a joining server).
    pub fn introduced(&mut self, peer: Sid, addr: SocketAddr) {
        if !self.outbound.contains_key(&peer) {
            self.link_to(peer, addr);
        }
    }
}

fn resolve_now(host: &str, port: u16) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().ok()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
}

/// Starts listening on `listen` and connecting to every peer.
pub async fn start(
    me: Sid,
    listen: SocketAddr,
    peers: BTreeMap<Sid, SocketAddr>,
    internal: InternalTx,
) -> std::io::Result<PeerNet> {
    let listener = TcpListener::bind(listen).await?;
    info!(me, %listen, "quorum port listening");
    let links = Links::default();
    tokio::spawn(accept_loop(
        listener,
        internal.clone(),
        links.clone(),
        listen.ip(),
    ));
    let mut net = PeerNet {
        me,
        listen: Some(listen),
        internal: Some(internal),
        runtime: Some(tokio::runtime::Handle::current()),
        outbound: BTreeMap::new(),
        links,
    };
    for (sid, addr) in peers {
        net.link_to(sid, addr);
    }
    Ok(net)
}

async fn accept_loop(listener: TcpListener, internal: InternalTx, links: Links, local_ip: IpAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let internal = internal.clone();
                let links = links.clone();
                tokio::spawn(async move {
                    let mut from = None;
                    if let Err(reason) = read_peer(stream, internal, &mut from).await {
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

/// The connection a peer opened to us ended. If its quorum port refuses a new connection,
/// or closes it at once (a relay in between with nobody behind it), its process is gone:
/// break our link to it now (the core sees `PeerDown`). A link only notices a dead peer
/// when it writes, and a follower with no clients may have nothing to write to its
/// leader for a whole syncLimit; ZooKeeper's learner sees its one leader socket close
/// instead. A peer that accepts and waits for our handshake, or does not answer in time,
/// is left to the usual timeouts.
async fn check_peer(peer: Sid, links: &Links, local_ip: IpAddr) {
    let Some((addr, link)) = links.lock().ok().and_then(|l| l.get(&peer).cloned()) else {
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
        let _ = link.send(BREAK_LINK);
    }
}

/// Reads a peer's messages until the connection ends; `who` is set once the handshake
/// names the peer.
async fn read_peer(
    stream: tokio::net::TcpStream,
    internal: InternalTx,
    who: &mut Option<Sid>,
) -> Result<(), String> {
    let mut rd = BufReader::with_capacity(256 * 1024, stream);
    let from = rd.read_u64().await.map_err(|e| format!("handshake: {e}"))?;
    *who = Some(from);
    // The sender's quorum address, so we can answer a server we do not know yet.
    let len = rd.read_u16().await.map_err(|e| format!("handshake: {e}"))? as usize;
    let mut addr = vec![0u8; len];
    rd.read_exact(&mut addr)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    if let Some(addr) = std::str::from_utf8(&addr)
        .ok()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        && internal.send(CoreMsg::PeerHello { from, addr }).is_err()
    {
        return Ok(());
    }
    let mut buf = Vec::new();
    loop {
        let len = rd.read_u32().await.map_err(|e| format!("read: {e}"))? as usize;
        if len > MAX_PEER_FRAME {
            return Err(format!("peer {from} sent a {len}-byte frame"));
        }
        buf.resize(len, 0);
        rd.read_exact(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let msg = Message::decode(&buf).map_err(|e| {
            warn!(peer = from, error = %e, "malformed peer message; dropping the connection");
            e.to_string()
        })?;
        if internal.send(CoreMsg::Peer { from, msg }).is_err() {
            return Ok(());
        }
    }
}

async fn link_loop(
    me: Sid,
    peer: Sid,
    addr: SocketAddr,
    listen: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    internal: InternalTx,
) {
    let local_ip: IpAddr = listen.ip();
    let mut backoff = Duration::from_millis(50);
    loop {
        // Whatever was queued while the link was down belongs to the old link.
        while rx.try_recv().is_ok() {}
        let connected = async {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if !local_ip.is_unspecified() && local_ip.is_ipv4() == addr.is_ipv4() {
                socket.bind(SocketAddr::new(local_ip, 0))?;
            }
            let stream = tokio::time::timeout(Duration::from_secs(2), socket.connect(addr))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        }
        .await;
        let stream = match connected {
            Ok(s) => s,
            Err(e) => {
                debug!(me, peer, %addr, error = %e, "cannot reach peer");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                if rx.is_closed() {
                    return;
                }
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let mut wr = BufWriter::with_capacity(256 * 1024, stream);
        let hello = listen.to_string();
        if wr.write_u64(me).await.is_err()
            || wr.write_u16(hello.len() as u16).await.is_err()
            || wr.write_all(hello.as_bytes()).await.is_err()
            || wr.flush().await.is_err()
        {
            continue;
        }
        if internal.send(CoreMsg::PeerUp(peer)).is_err() {
            return;
        }
        let ended = loop {
            let Some(first) = rx.recv().await else {
                break true;
            };
            let mut failed = first.is_empty() || write_frame(&mut wr, &first).await.is_err();
            while !failed {
                match rx.try_recv() {
                    Ok(more) => {
                        failed = more.is_empty() || write_frame(&mut wr, &more).await.is_err()
                    }
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
        tokio::time::sleep(backoff).await;
    }
}

async fn write_frame(
    wr: &mut BufWriter<tokio::net::TcpStream>,
    bytes: &[u8],
) -> std::io::Result<()> {
    wr.write_u32(bytes.len() as u32).await?;
    wr.write_all(bytes).await
}
