//! The client port: one tokio task pair per connection (reader and writer), no thread per
//! connection. The reader decodes frames and hands requests to the core; the writer
//! takes whatever the core queued for the connection and writes it as the socket accepts.
//! Four-letter words arrive on the same port in place of a ConnectRequest. A listener is
//! plaintext, TLS (`secureClientPort`) or both, told apart by the first byte
//! (`client.portUnification`): see [`Security`].
//!
//! Memory per connection is bounded: frames are buffered as their bytes arrive (never by
//! their announced length), and the reader stops reading while the connection (or the
//! server) has too many requests outstanding or too many reply bytes unread (`flow`).

use crate::hashing::FastMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_proto::{
    ConnectRequest, DecodeError, ErrorCode, Id, Jute, KeeperState, Reader, Request, RequestHeader,
    write_notification, write_reply,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, warn};

use crate::core::{CoreMsg, CoreTx, Outgoing};
use crate::net::flow::{ConnFlow, FlowLimits, GlobalFlow};
use crate::net::frame::FrameBuf;
use crate::net::latency::{LatencyHistogram, ReplyClock};
use crate::watch::ConnId;

/// Answers four-letter words (implemented by the admin module).
pub trait FourLetterWords: Send + Sync + 'static {
    fn answer(&self, word: &'static str) -> Pin<Box<dyn Future<Output = String> + Send + '_>>;
}

/// Limits of the client port.
#[derive(Debug, Clone)]
pub struct ClientPortConfig {
    /// jute.maxbuffer: the largest frame accepted.
    pub max_frame: usize,
    /// maxClientCnxns: concurrent connections per client address (0 = unlimited).
    pub max_per_ip: usize,
    /// How long a new connection may take to send its ConnectRequest.
    pub handshake_timeout: Duration,
    /// Outstanding requests and queued reply bytes before a connection is not read.
    pub flow: FlowLimits,
    /// Where request latencies are observed (`/metrics`).
    pub latency: Arc<LatencyHistogram>,
    /// Requests outstanding over every client listener (globalOutstandingLimit).
    pub global: Arc<GlobalFlow>,
}

/// Connection ids, unique over every client listener of the process (the plaintext and
/// the TLS port hand their connections to the same core).
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// TLS on a client listener.
#[derive(Clone)]
pub struct TlsPort {
    /// The server config, swapped when the store files change.
    pub contexts: crate::tls::Reloading,
    /// `X509AuthenticationProvider.superUser`: this subject DN is the super user.
    pub super_user: Option<String>,
    /// How long port unification waits for a client's first byte.
    pub detect_timeout: Duration,
}

/// How a client listener's connections begin.
#[derive(Clone)]
pub enum Security {
    Plain,
    /// TLS only (`secureClientPort`).
    Tls(TlsPort),
    /// TLS or plaintext, by the first byte (`client.portUnification`).
    Unified(TlsPort),
}

/// The first byte of a TLS connection: a handshake record (ZooKeeper's port unification
/// and Netty's SslHandler.isEncrypted look at the same header). No plaintext client
/// starts so: its first bytes are a frame length far below 0x16000000, or a
/// four-letter word.
const TLS_HANDSHAKE: u8 = 0x16;

/// What every connection task shares.
struct Shared {
    cfg: ClientPortConfig,
    global: Arc<GlobalFlow>,
    security: Security,
}

/// Counts connections per address for maxClientCnxns.
#[derive(Default)]
struct PerIp(Mutex<FastMap<IpAddr, usize>>);

struct PerIpGuard<'a> {
    table: &'a PerIp,
    ip: IpAddr,
}

impl PerIp {
    fn admit(&self, ip: IpAddr, max: usize) -> Option<PerIpGuard<'_>> {
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = table.entry(ip).or_insert(0);
        if max != 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(PerIpGuard { table: self, ip })
    }
}

impl Drop for PerIpGuard<'_> {
    fn drop(&mut self) {
        let mut table = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = table.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                table.remove(&self.ip);
            }
        }
    }
}

/// The write side of a client connection.
trait ClientWriter: AsyncWrite + Unpin + Send + 'static {
    /// Called once the connection is closing, before its last bytes are written. On
    /// plain TCP it sets TCP_CORK: the last reply (closeSession's) is then held until
    /// `shutdown`, and the FIN leaves in the same segment instead of one of its own, a
    /// packet less for both kernels on every session's end (`shutdown` sends what is
    /// queued at once, cork or not).
    fn hold_last_reply_for_fin(&self) {}
}

impl ClientWriter for OwnedWriteHalf {
    fn hold_last_reply_for_fin(&self) {
        let stream: &TcpStream = self.as_ref();
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_cork(true) {
            debug!(error = %e, "TCP_CORK not set; the FIN goes in a segment of its own");
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientWriter
    for tokio::io::WriteHalf<tokio_rustls::server::TlsStream<S>>
{
}

/// Accepts client connections until the listener fails.
pub async fn serve(
    listener: TcpListener,
    core: CoreTx,
    cfg: ClientPortConfig,
    words: Arc<dyn FourLetterWords>,
    security: Security,
) {
    let per_ip = Arc::new(PerIp::default());
    let shared = Arc::new(Shared {
        global: cfg.global.clone(),
        cfg,
        security,
    });
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let (core, shared, per_ip, words) =
            (core.clone(), shared.clone(), per_ip.clone(), words.clone());
        tokio::spawn(async move {
            let max_per_ip = shared.cfg.max_per_ip;
            let Some(_guard) = per_ip.admit(addr.ip(), max_per_ip) else {
                warn!(client = %addr, max = max_per_ip, "too many connections from this address; closing");
                return;
            };
            if let Err(reason) = start(stream, addr, conn, core, &shared, &*words).await {
                debug!(conn, client = %addr, %reason, "connection closed");
            }
        });
    }
}

/// The first byte the client sent, without taking it (None: it sent nothing in time).
async fn first_byte(stream: &TcpStream, within: Duration) -> Result<u8, String> {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, stream.peek(&mut byte)).await {
        Err(_) => Err("sent nothing in time".into()),
        Ok(Err(e)) => Err(format!("read: {e}")),
        Ok(Ok(0)) => Err("read: connection closed".into()),
        Ok(Ok(_)) => Ok(byte[0]),
    }
}

/// Starts a connection as its listener's [`Security`] says: a TLS handshake (refusing
/// what is not one on a TLS-only port), or plaintext.
async fn start(
    stream: TcpStream,
    addr: SocketAddr,
    conn: ConnId,
    core: CoreTx,
    shared: &Shared,
    words: &dyn FourLetterWords,
) -> Result<(), String> {
    let (tls, unified) = match &shared.security {
        Security::Plain => {
            let (rd, wr) = stream.into_split();
            return handle(rd, wr, addr, conn, core, shared, words, Vec::new()).await;
        }
        Security::Tls(tls) => (tls, false),
        Security::Unified(tls) => (tls, true),
    };
    let within = if unified {
        tls.detect_timeout
    } else {
        shared.cfg.handshake_timeout
    };
    let first = first_byte(&stream, within).await?;
    if first != TLS_HANDSHAKE {
        if unified {
            let (rd, wr) = stream.into_split();
            return handle(rd, wr, addr, conn, core, shared, words, Vec::new()).await;
        }
        warn!(client = %addr, "not a TLS handshake on the secure client port (a plaintext client?); closing");
        return Err("plaintext on the TLS port".into());
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.contexts.server());
    let stream =
        match tokio::time::timeout(shared.cfg.handshake_timeout, acceptor.accept(stream)).await {
            Err(_) => {
                warn!(client = %addr, "TLS handshake not finished in time; closing");
                return Err("TLS handshake timed out".into());
            }
            Ok(Err(e)) => {
                warn!(client = %addr, error = %e, "TLS handshake failed; closing");
                return Err(format!("TLS handshake: {e}"));
            }
            Ok(Ok(stream)) => stream,
        };
    let ids = x509_ids(stream.get_ref().1, tls.super_user.as_deref());
    if let Some(id) = ids.first() {
        debug!(client = %addr, x509 = %id.id, "TLS client authenticated by its certificate");
    }
    let (rd, wr) = tokio::io::split(stream);
    handle(rd, wr, addr, conn, core, shared, words, ids).await
}

/// The identities a verified client certificate gives, as ZooKeeper's
/// X509AuthenticationProvider: `x509:<subject DN>`, and `super` for the super user.
fn x509_ids(tls: &rustls::ServerConnection, super_user: Option<&str>) -> Vec<Id> {
    let Some(subject) = crate::tls::x509_id(tls) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    if super_user == Some(subject.as_str()) {
        ids.push(Id {
            scheme: "super".into(),
            id: String::new(),
        });
    }
    ids.insert(
        0,
        Id {
            scheme: "x509".into(),
            id: subject,
        },
    );
    ids
}

/// Reads into `frames` once; EOF and errors end the connection.
async fn fill<R: AsyncRead + Unpin>(rd: &mut R, frames: &mut FrameBuf) -> Result<(), String> {
    match frames.fill(rd).await {
        Ok(0) => Err("read: connection closed".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Logs a refused frame length (the reason is the decoder's) and ends the connection.
fn refuse_frame(addr: SocketAddr, e: DecodeError) -> String {
    warn!(client = %addr, reason = %e, "refusing frame; closing the connection");
    e.to_string()
}

/// Serves one connection (plaintext or TLS): the ConnectRequest (or a four-letter word),
/// then requests. `ids` are the identities the transport proved (x509).
#[allow(clippy::too_many_arguments)]
async fn handle<R, W>(
    mut rd: R,
    mut wr: W,
    addr: SocketAddr,
    conn: ConnId,
    core: CoreTx,
    shared: &Shared,
    words: &dyn FourLetterWords,
    ids: Vec<Id>,
) -> Result<(), String>
where
    R: AsyncRead + Unpin,
    W: ClientWriter,
{
    let cfg = &shared.cfg;
    let mut prefix = [0u8; 4];
    tokio::time::timeout(cfg.handshake_timeout, rd.read_exact(&mut prefix))
        .await
        .map_err(|_| "no ConnectRequest in time".to_string())?
        .map_err(|e| format!("read: {e}"))?;
    if prefix[0] == TLS_HANDSHAKE && prefix[1] == 3 {
        warn!(client = %addr, "a TLS handshake on a plaintext client port (use secureClientPort, or set client.portUnification=true); closing");
        return Err("TLS on the plaintext port".into());
    }

    if let Some(word) = crate::admin::FourLetterWord::from_prefix(&prefix).map(|w| w.as_str()) {
        let text = words.answer(word).await;
        let _ = wr.write_all(text.as_bytes()).await;
        let _ = wr.shutdown().await;
        return Ok(());
    }

    let mut frames = FrameBuf::starting_with(cfg.max_frame, &prefix);
    let first = async {
        loop {
            if let Some(frame) = frames.next_frame().map_err(|e| refuse_frame(addr, e))? {
                break ConnectRequest::from_bytes(frame).map_err(|e| {
                    warn!(client = %addr, error = %e, "malformed ConnectRequest; closing");
                    format!("malformed ConnectRequest: {e}")
                });
            }
            fill(&mut rd, &mut frames).await?;
        }
    };
    let connect = tokio::time::timeout(cfg.handshake_timeout, first)
        .await
        .map_err(|_| "no ConnectRequest in time".to_string())??;

    let flow = Arc::new(ConnFlow::new(shared.global.clone(), cfg.flow));
    let clock = Arc::new(ReplyClock::new(cfg.latency.clone()));
    let (tx, rx) = mpsc::unbounded_channel();
    let closed = Arc::new(Notify::new());
    let (answered_tx, answered_rx) = oneshot::channel();
    tokio::spawn(write_loop(
        wr,
        rx,
        closed.clone(),
        answered_tx,
        flow.clone(),
        clock.clone(),
    ));
    core.send(CoreMsg::Connect {
        conn,
        addr: addr.ip(),
        req: connect,
        tx,
        tls_ids: ids,
    })
    .await
    .map_err(|_| "server stopping".to_string())?;

    // Read nothing more until the core has answered the ConnectRequest, as ZooKeeper
    // (which stops reading the socket until the session is established): a client may
    // pipeline requests behind its ConnectRequest (zookeeper-client sends its auth
    // packets there), and no reply may overtake the ConnectResponse.
    if answered_rx.await.is_err() {
        let _ = core.send(CoreMsg::Closed { conn }).await;
        return Err("closed before the ConnectRequest was answered".into());
    }

    let ends = ConnEnds {
        conn,
        addr,
        core: &core,
        flow: &flow,
        clock: &clock,
        closed: &closed,
    };
    let result = read_loop(&mut rd, &mut frames, &ends).await;
    let _ = core.send(CoreMsg::Closed { conn }).await;
    result
}

/// Decodes one request frame into what the core gets.
fn decode_request(frame: &[u8], conn: ConnId, addr: SocketAddr) -> Result<CoreMsg, String> {
    let received = Instant::now();
    let mut r = Reader::new(frame);
    let header = RequestHeader::read(&mut r).map_err(|e| {
        warn!(client = %addr, error = %e, "malformed request header; closing");
        e.to_string()
    })?;
    match Request::decode(header.op, &frame[r.position()..]) {
        Ok(req) => Ok(CoreMsg::Request {
            conn,
            xid: header.xid,
            req,
            received,
        }),
        Err(DecodeError::UnknownOpcode(op)) => {
            warn!(client = %addr, op, "unknown opcode; answering Unimplemented");
            Ok(CoreMsg::Refused {
                conn,
                xid: header.xid,
                err: ErrorCode::Unimplemented,
                received,
            })
        }
        Err(e) => {
            warn!(client = %addr, op = header.op, error = %e, "malformed request; closing the connection");
            Err(e.to_string())
        }
    }
}

/// What the read loop of one connection works with.
struct ConnEnds<'a> {
    conn: ConnId,
    addr: SocketAddr,
    core: &'a CoreTx,
    flow: &'a ConnFlow,
    clock: &'a ReplyClock,
    closed: &'a Notify,
}

/// Hands requests to the core as they arrive, holding off (not reading) while the
/// connection or the server has too much outstanding (see `flow`).
async fn read_loop<R: AsyncRead + Unpin>(
    rd: &mut R,
    frames: &mut FrameBuf,
    ends: &ConnEnds<'_>,
) -> Result<(), String> {
    let ConnEnds {
        conn,
        addr,
        core,
        flow,
        clock,
        closed,
    } = *ends;
    loop {
        let frame = frames.next_frame().map_err(|e| refuse_frame(addr, e))?;
        let Some(frame) = frame else {
            tokio::select! {
                read = fill(rd, frames) => read?,
                _ = closed.notified() => return Ok(()),
            }
            continue;
        };
        let msg = decode_request(frame, conn, addr)?;
        tokio::select! {
            _ = flow.wait_until_readable() => {}
            _ = closed.notified() => return Ok(()),
        }
        if let CoreMsg::Request { xid, received, .. } | CoreMsg::Refused { xid, received, .. } =
            &msg
        {
            clock.request(*xid, *received);
        }
        flow.submitted();
        core.send(msg)
            .await
            .map_err(|_| "server stopping".to_string())?;
    }
}

/// Appends one length-prefixed frame built by `body`.
fn put_frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Encodes one message; true when the connection must close after it.
fn encode(msg: Outgoing, out: &mut Vec<u8>) -> bool {
    match msg {
        Outgoing::Connected(resp) => put_frame(out, |o| resp.write(o)),
        Outgoing::Reply {
            xid,
            zxid,
            err,
            body,
        } => put_frame(out, |o| write_reply(o, xid, zxid, err.code(), &body)),
        Outgoing::Event { kind, path } => put_frame(out, |o| {
            write_notification(o, kind.code(), KeeperState::SyncConnected.code(), &path)
        }),
        Outgoing::Close => return true,
    }
    false
}

/// Once this much has been written from the front of the queue, the queue is compacted.
const COMPACT_AFTER_BYTES: usize = 256 * 1024;

/// The send buffer's first size: the ConnectResponse (41 bytes) and the first few small
/// replies fit without the buffer being reallocated as it grows from empty (4–5
/// reallocations on every connection otherwise, about 2 % of a short session's cost).
/// The buffer is kept at whatever size it reached, so a busy connection holds more anyway.
const FIRST_SEND_BUFFER_BYTES: usize = 256;

/// Takes one message off the core's queue into the byte queue; true when the
/// connection must close after what is queued.
fn enqueue(msg: Outgoing, out: &mut Vec<u8>, flow: &ConnFlow, clock: &ReplyClock) -> bool {
    if let Outgoing::Reply { xid, .. } = &msg {
        flow.answered();
        clock.replied(*xid);
    }
    let before = out.len();
    let close = encode(msg, out);
    flow.queued(out.len() - before);
    close
}

/// Writes what the core queues for the connection. Messages are taken off the core's
/// queue as they come (so the reader's flow counters see their size) and written as
/// the socket accepts them. `answered` fires once the first message (the answer to the
/// ConnectRequest) is taken.
async fn write_loop<W: ClientWriter>(
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    closed: Arc<Notify>,
    answered: oneshot::Sender<()>,
    flow: Arc<ConnFlow>,
    clock: Arc<ReplyClock>,
) {
    let mut out: Vec<u8> = Vec::with_capacity(FIRST_SEND_BUFFER_BYTES);
    let mut sent = 0;
    let mut answered = Some(answered);
    let mut closing = false;
    let mut held = false;
    loop {
        if closing && sent == out.len() {
            break;
        }
        tokio::select! {
            msg = rx.recv(), if !closing => {
                let Some(msg) = msg else {
                    closing = true;
                    continue;
                };
                closing = enqueue(msg, &mut out, &flow, &clock);
                if !closing && let Some(answered) = answered.take() {
                    let _ = answered.send(());
                }
                while !closing && let Ok(msg) = rx.try_recv() {
                    closing = enqueue(msg, &mut out, &flow, &clock);
                }
            }
            written = wr.write(&out[sent..]), if sent < out.len() => {
                let n = match written {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                sent += n;
                flow.written(n);
                if sent == out.len() {
                    out.clear();
                    sent = 0;
                    if out.capacity() > COMPACT_AFTER_BYTES {
                        out.shrink_to(16 * 1024);
                    }
                } else if sent >= COMPACT_AFTER_BYTES {
                    out.drain(..sent);
                    sent = 0;
                }
            }
        }
        // Only when bytes are left to send: with none, `shutdown` comes next anyway.
        if closing && !held && sent < out.len() {
            held = true;
            wr.hold_last_reply_for_fin();
        }
    }
    let _ = wr.shutdown().await;
    closed.notify_one();
}
