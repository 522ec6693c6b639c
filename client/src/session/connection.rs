//! One TCP connection to one server: the handshake, a cancel-safe frame reader, and a
//! writer task that drains a queue of frames (so a slow socket never blocks reading,
//! and requests issued together leave in one write).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use paddock_proto::frame::frame;
use paddock_proto::frame::frame_len;
use paddock_proto::{ConnectRequest, ConnectResponse, Jute};
use std::sync::Arc;

use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// A connection to a server: plain TCP or TLS.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}
pub(crate) type Stream = Box<dyn Transport>;

/// The largest reply frame we accept. Replies can legitimately exceed the server's
/// request limit (a getChildren of a huge directory), so this is looser than
/// jute.maxbuffer; it only keeps a corrupt length prefix from costing gigabytes.
pub(crate) const MAX_REPLY_FRAME: usize = 64 * 1024 * 1024;

/// Why a connection attempt failed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// Could not reach the server, or it hung up during the handshake.
    Io(String),
    /// Nothing listens there: the connection was refused.
    Refused(String),
    /// The server no longer knows our session (ZooKeeper answers with timeout 0).
    Expired,
}

/// Connects to `addr` (TLS first with `tls`, checking the certificate names `host`) and
/// performs the session handshake, all within `limit`.
pub(crate) async fn handshake(
    addr: SocketAddr,
    host: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    request: ConnectRequest,
    limit: Duration,
) -> Result<(Stream, ConnectResponse), AttemptError> {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| {
            let reason = format!("{addr}: {e}");
            if e.kind() == io::ErrorKind::ConnectionRefused {
                AttemptError::Refused(reason)
            } else {
                AttemptError::Io(reason)
            }
        })?;
        let _ = tcp.set_nodelay(true);
        let mut stream: Stream = match tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = crate::tls::server_name(host).map_err(AttemptError::Io)?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| AttemptError::Io(format!("{addr}: TLS handshake: {e}")))?;
                Box::new(tls)
            }
        };
        stream
            .write_all(&frame(&request.to_bytes()))
            .await
            .map_err(|e| AttemptError::Io(format!("{addr}: {e}")))?;
        let mut prefix = [0u8; 4];
        stream.read_exact(&mut prefix).await.map_err(|e| {
            AttemptError::Io(if e.kind() == io::ErrorKind::UnexpectedEof {
                format!("{addr}: the server closed the connection during the handshake")
            } else {
                format!("{addr}: {e}")
            })
        })?;
        let len = frame_len(prefix, 1024)
            .map_err(|e| AttemptError::Io(format!("{addr}: bad handshake reply: {e}")))?;
        let mut body = vec![0u8; len];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| AttemptError::Io(format!("{addr}: {e}")))?;
        let response = ConnectResponse::from_bytes(&body)
            .map_err(|e| AttemptError::Io(format!("{addr}: bad handshake reply: {e}")))?;
        if response.time_out <= 0 {
            return Err(AttemptError::Expired);
        }
        Ok((stream, response))
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(AttemptError::Io(format!(
            "{addr}: no handshake within {limit:?}"
        ))),
    }
}

/// Reads length-prefixed frames. `next` is cancel-safe: bytes read before a
/// cancellation stay buffered for the next call.
pub(crate) struct FrameReader {
    half: ReadHalf<Stream>,
    buf: Vec<u8>,
}

impl FrameReader {
    pub(crate) fn new(half: ReadHalf<Stream>) -> FrameReader {
        FrameReader {
            half,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// The next frame's payload; `Ok(None)` when the server closed the connection.
    pub(crate) async fn next(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if self.buf.len() >= 4 {
                let prefix = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
                let len = frame_len(prefix, MAX_REPLY_FRAME)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if self.buf.len() >= 4 + len {
                    let payload = self.buf[4..4 + len].to_vec();
                    self.buf.drain(..4 + len);
                    return Ok(Some(payload));
                }
                self.buf.reserve(4 + len - self.buf.len());
            }
            // `read_buf` is cancel-safe: it either appends what it read or nothing.
            if self.half.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed in the middle of a frame",
                    ))
                };
            }
        }
    }
}

/// The sending side of a connection: frames queued here are written in order by a
/// dedicated task. `failed` resolves if a write fails.
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<Vec<u8>>,
    pub(crate) failed: oneshot::Receiver<io::Error>,
}

impl Writer {
    pub(crate) fn spawn(half: WriteHalf<Stream>) -> Writer {
        let (queue, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (fail_tx, failed) = oneshot::channel();
        tokio::spawn(async move {
            let mut out = BufWriter::with_capacity(64 * 1024, half);
            let result: io::Result<()> = async {
                while let Some(frame) = rx.recv().await {
                    out.write_all(&frame).await?;
                    // Coalesce whatever else is already queued into the same flush.
                    while let Ok(frame) = rx.try_recv() {
                        out.write_all(&frame).await?;
                    }
                    out.flush().await?;
                }
                // The session dropped the connection: close our side politely.
                out.shutdown().await
            }
            .await;
            if let Err(e) = result {
                let _ = fail_tx.send(e);
            }
        });
        Writer { queue, failed }
    }

    /// Queues a complete frame (length prefix included).
    pub(crate) fn send(&self, frame: Vec<u8>) {
        // A closed queue means the writer failed; `failed` reports it.
        let _ = self.queue.send(frame);
    }
}
