//! The client port: one tokio task pair per connection (reader and writer), no thread per
//! connection. The reader decodes frames and hands requests to the core; the writer
//! batches whatever the core queued for the connection into as few writes as possible.
//! Four-letter words arrive on the same port in place of a ConnectRequest.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_proto::frame::frame_len;
use paddock_proto::{
    ConnectRequest, DecodeError, ErrorCode, Jute, Reader, Request, RequestHeader,
    encode_notification, encode_reply,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, warn};

use crate::core::{CoreMsg, CoreTx, Outgoing};
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
}

/// Counts connections per address for maxClientCnxns.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

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

/// Accepts client connections until the listener fails.
pub async fn serve(
    listener: TcpListener,
    core: CoreTx,
    cfg: ClientPortConfig,
    words: Arc<dyn FourLetterWords>,
) {
    let next_id = Arc::new(AtomicU64::new(1));
    let per_ip = Arc::new(PerIp::default());
    let cfg = Arc::new(cfg);
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
        let conn = next_id.fetch_add(1, Ordering::Relaxed);
        let (core, cfg, per_ip, words) = (core.clone(), cfg.clone(), per_ip.clone(), words.clone());
        tokio::spawn(async move {
            let Some(_guard) = per_ip.admit(addr.ip(), cfg.max_per_ip) else {
                warn!(client = %addr, max = cfg.max_per_ip, "too many connections from this address; closing");
                return;
            };
            if let Err(reason) = handle(stream, addr, conn, core, &cfg, &*words).await {
                debug!(conn, client = %addr, %reason, "connection closed");
            }
        });
    }
}

async fn read_frame(
    rd: &mut BufReader<OwnedReadHalf>,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let mut prefix = [0u8; 4];
    rd.read_exact(&mut prefix)
        .await
        .map_err(|e| format!("read: {e}"))?;
    read_body(rd, prefix, max, buf).await
}

async fn read_body(
    rd: &mut BufReader<OwnedReadHalf>,
    prefix: [u8; 4],
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let len = frame_len(prefix, max).map_err(|e| e.to_string())?;
    buf.resize(len, 0);
    rd.read_exact(buf).await.map_err(|e| format!("read: {e}"))?;
    Ok(())
}

async fn handle(
    stream: TcpStream,
    addr: SocketAddr,
    conn: ConnId,
    core: CoreTx,
    cfg: &ClientPortConfig,
    words: &dyn FourLetterWords,
) -> Result<(), String> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut prefix = [0u8; 4];
    tokio::time::timeout(cfg.handshake_timeout, rd.read_exact(&mut prefix))
        .await
        .map_err(|_| "no ConnectRequest in time".to_string())?
        .map_err(|e| format!("read: {e}"))?;

    if let Some(word) = crate::admin::FourLetterWord::from_prefix(&prefix).map(|w| w.as_str()) {
        let text = words.answer(word).await;
        let _ = wr.write_all(text.as_bytes()).await;
        let _ = wr.shutdown().await;
        return Ok(());
    }

    let mut buf = Vec::with_capacity(4096);
    if let Err(e) = frame_len(prefix, cfg.max_frame) {
        warn!(client = %addr, reason = %e, "refusing the first frame; closing the connection");
        return Err(e.to_string());
    }
    tokio::time::timeout(
        cfg.handshake_timeout,
        read_body(&mut rd, prefix, cfg.max_frame, &mut buf),
    )
    .await
    .map_err(|_| "no ConnectRequest in time".to_string())??;
    let connect = ConnectRequest::from_bytes(&buf).map_err(|e| {
        warn!(client = %addr, error = %e, "malformed ConnectRequest; closing");
        format!("malformed ConnectRequest: {e}")
    })?;

    let (tx, rx) = mpsc::unbounded_channel();
    let closed = Arc::new(Notify::new());
    let (answered_tx, answered_rx) = oneshot::channel();
    tokio::spawn(write_loop(wr, rx, closed.clone(), answered_tx));
    core.send(CoreMsg::Connect {
        conn,
        addr: addr.ip(),
        req: connect,
        tx,
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

    let result = read_loop(&mut rd, conn, &core, cfg, &closed, addr).await;
    let _ = core.send(CoreMsg::Closed { conn }).await;
    result
}

async fn read_loop(
    rd: &mut BufReader<OwnedReadHalf>,
    conn: ConnId,
    core: &CoreTx,
    cfg: &ClientPortConfig,
    closed: &Notify,
    addr: SocketAddr,
) -> Result<(), String> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        tokio::select! {
            read = read_frame(rd, cfg.max_frame, &mut buf) => {
                if let Err(reason) = read {
                    if reason.contains("exceeds the limit") || reason.contains("negative") {
                        warn!(client = %addr, %reason, "refusing frame; closing the connection");
                    }
                    return Err(reason);
                }
            }
            _ = closed.notified() => return Ok(()),
        }
        let received = Instant::now();
        let mut r = Reader::new(&buf);
        let header = RequestHeader::read(&mut r).map_err(|e| {
            warn!(client = %addr, error = %e, "malformed request header; closing");
            e.to_string()
        })?;
        let msg = match Request::decode(header.op, &buf[r.position()..]) {
            Ok(req) => CoreMsg::Request {
                conn,
                xid: header.xid,
                req,
                received,
            },
            Err(DecodeError::UnknownOpcode(op)) => {
                warn!(client = %addr, op, "unknown opcode; answering Unimplemented");
                CoreMsg::Refused {
                    conn,
                    xid: header.xid,
                    err: ErrorCode::Unimplemented,
                    received,
                }
            }
            Err(e) => {
                warn!(client = %addr, op = header.op, error = %e, "malformed request; closing the connection");
                return Err(e.to_string());
            }
        };
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
        } => {
            let bytes = encode_reply(xid, zxid, err.code(), &body);
            put_frame(out, |o| o.extend_from_slice(&bytes));
        }
        Outgoing::Event(event) => {
            let bytes = encode_notification(&event);
            put_frame(out, |o| o.extend_from_slice(&bytes));
        }
        Outgoing::Close => return true,
    }
    false
}

const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Writes what the core queues for the connection. `answered` fires once the first
/// message (the answer to the ConnectRequest) is taken.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    closed: Arc<Notify>,
    answered: oneshot::Sender<()>,
) {
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut answered = Some(answered);
    while let Some(msg) = rx.recv().await {
        let mut close = encode(msg, &mut out);
        if !close && let Some(answered) = answered.take() {
            let _ = answered.send(());
        }
        while !close && out.len() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(msg) => close = encode(msg, &mut out),
                Err(_) => break,
            }
        }
        if !out.is_empty() && wr.write_all(&out).await.is_err() {
            break;
        }
        out.clear();
        if close {
            break;
        }
    }
    let _ = wr.shutdown().await;
    closed.notify_one();
}
