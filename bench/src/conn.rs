//! A minimal pipelined ZooKeeper connection, written for load generation.
//!
//! One task owns one `Conn`. Requests are encoded straight into an output buffer
//! (`queue`), and `pump` writes that buffer while reading replies, returning as soon
//! as at least one complete frame has arrived. The caller therefore decides exactly how
//! many requests are in flight; nothing is buffered behind its back, no channel or
//! background task sits between the workload and the socket, and reads and writes
//! proceed together, so a large pipeline cannot deadlock on full socket buffers.

use std::time::{Duration, Instant};

use paddock_proto::frame::{frame, frame_len};
use paddock_proto::{
    ConnectRequest, ConnectResponse, DecodeError, ErrorCode, Jute, Reader, ReplyHeader, Request,
    Response, WatcherEvent,
};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// jute.maxbuffer's default plus room for headers: the largest reply we accept.
const MAX_FRAME: usize = 0xfffff + 1024;

#[derive(Debug, Error)]
pub enum ConnError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: no session within {timeout:?} (TCP connect + handshake)")]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("{addr}: the server refused the session (it answered with session id 0)")]
    SessionRefused { addr: String },
    #[error("{addr}: connection closed by the server")]
    Closed { addr: String },
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: no reply within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr}: protocol error: {what}")]
    Protocol { addr: String, what: String },
}

impl ConnError {
    /// True when the bytes the server sent did not follow the protocol (as opposed to
    /// the connection failing or going quiet).
    pub fn is_protocol(&self) -> bool {
        matches!(self, ConnError::Protocol { .. })
    }
}

/// One frame from the server, split into its header and undecoded body.
#[derive(Debug)]
pub struct Reply {
    pub header: ReplyHeader,
    pub body: Vec<u8>,
    /// When the read that completed this frame returned.
    pub at: Instant,
}

impl Reply {
    pub fn error(&self) -> Option<ErrorCode> {
        if self.header.err == 0 {
            None
        } else {
            Some(ErrorCode::from_code(self.header.err).unwrap_or(ErrorCode::SystemError))
        }
    }

    /// Decodes the body as the answer to a request of `opcode` (only for err == 0).
    pub fn decode(&self, opcode: i32) -> Result<Response, DecodeError> {
        Response::decode(opcode, &self.body)
    }

    /// Decodes a notification body (xid -1).
    pub fn event(&self) -> Result<WatcherEvent, DecodeError> {
        WatcherEvent::from_bytes(&self.body)
    }
}

/// What `pump` saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Pumped {
    /// At least one frame was appended to the output vector.
    Frames,
    /// The deadline passed with nothing to read (pending writes were still sent).
    Idle,
}

pub struct Conn {
    addr: String,
    stream: TcpStream,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    next_xid: i32,
    pub session_id: i64,
    pub negotiated_timeout: Duration,
}

impl Conn {
    /// TCP connect plus the ConnectRequest/ConnectResponse handshake, bounded by `limit`.
    pub async fn connect(
        addr: &str,
        session_timeout: Duration,
        limit: Duration,
    ) -> Result<Conn, ConnError> {
        match timeout(limit, Self::connect_inner(addr, session_timeout)).await {
            Ok(r) => r,
            Err(_) => Err(ConnError::ConnectTimeout {
                addr: addr.to_string(),
                timeout: limit,
            }),
        }
    }

    async fn connect_inner(addr: &str, session_timeout: Duration) -> Result<Conn, ConnError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ConnError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        // Small request/response frames: never wait for Nagle.
        stream.set_nodelay(true).map_err(|source| ConnError::Io {
            addr: addr.to_string(),
            source,
        })?;
        let mut conn = Conn {
            addr: addr.to_string(),
            stream,
            rbuf: Vec::with_capacity(64 * 1024),
            rpos: 0,
            wbuf: Vec::with_capacity(16 * 1024),
            wpos: 0,
            next_xid: 1,
            session_id: 0,
            negotiated_timeout: session_timeout,
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: i32::try_from(session_timeout.as_millis()).unwrap_or(i32::MAX),
            session_id: 0,
            passwd: vec![0u8; 16].into(),
            read_only: Some(false),
        };
        conn.wbuf.extend_from_slice(&frame(&req.to_bytes()));
        let (start, end) = loop {
            if let Some(range) = conn.take_frame()? {
                break range;
            }
            conn.io_once().await?;
        };
        let resp =
            ConnectResponse::from_bytes(&conn.rbuf[start..end]).map_err(|e| conn.protocol(e))?;
        if resp.session_id == 0 || resp.time_out <= 0 {
            return Err(ConnError::SessionRefused {
                addr: conn.addr.clone(),
            });
        }
        conn.session_id = resp.session_id;
        conn.negotiated_timeout = Duration::from_millis(resp.time_out as u64);
        Ok(conn)
    }

    /// Encodes `req` into the output buffer and returns its xid. Nothing is sent until
    /// the next `pump`.
    pub fn queue(&mut self, req: &Request) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if xid >= i32::MAX - 1 { 1 } else { xid + 1 };
        self.queue_with_xid(req, xid);
        xid
    }

    /// Queues a ping (xid -2); its answer is a frame with that xid.
    pub fn queue_ping(&mut self) {
        self.queue_with_xid(&Request::Ping, paddock_proto::xid::PING);
    }

    fn queue_with_xid(&mut self, req: &Request, xid: i32) {
        let body = req.encode(xid);
        self.wbuf
            .extend_from_slice(&(body.len() as u32).to_be_bytes());
        self.wbuf.extend_from_slice(&body);
    }

    /// Sends what is queued and reads until at least one frame is complete (appended to
    /// `out`) or `deadline` passes. Replies are in the order the server sent them.
    pub async fn pump(
        &mut self,
        out: &mut Vec<Reply>,
        deadline: Instant,
    ) -> Result<Pumped, ConnError> {
        loop {
            if self.drain_frames(out)? {
                return Ok(Pumped::Frames);
            }
            let now = Instant::now();
            if now >= deadline {
                // Flush what is queued anyway so a ping or a last request is not stuck.
                if self.wpos < self.wbuf.len() {
                    let _ = timeout(Duration::from_millis(1), self.io_once()).await;
                }
                return Ok(Pumped::Idle);
            }
            match timeout(deadline - now, self.io_once()).await {
                Ok(r) => r?,
                Err(_) => continue,
            }
        }
    }

    /// Sends `req` and waits for its reply, discarding notifications and pings that
    /// arrive first. Only for setup and teardown, where nothing else is in flight.
    pub async fn call(&mut self, req: &Request, limit: Duration) -> Result<Reply, ConnError> {
        let xid = self.queue(req);
        let deadline = Instant::now() + limit;
        let mut frames = Vec::new();
        loop {
            if self.pump(&mut frames, deadline).await? == Pumped::Idle {
                return Err(self.timeout(limit));
            }
            for f in frames.drain(..) {
                if f.header.xid == xid {
                    return Ok(f);
                }
            }
        }
    }

    /// closeSession, waiting (bounded) for its answer so the session's ephemerals are
    /// gone before we return.
    pub async fn close(mut self, limit: Duration) -> Result<Reply, ConnError> {
        self.call(&Request::CloseSession, limit).await
    }

    pub fn timeout(&self, timeout: Duration) -> ConnError {
        ConnError::Timeout {
            addr: self.addr.clone(),
            timeout,
        }
    }

    pub fn protocol(&self, what: impl std::fmt::Display) -> ConnError {
        ConnError::Protocol {
            addr: self.addr.clone(),
            what: what.to_string(),
        }
    }

    /// One step of I/O: a write of queued bytes or a read, whichever is ready first.
    /// Both branches are cancel-safe (a single `write` or `read_buf` call each).
    async fn io_once(&mut self) -> Result<(), ConnError> {
        let Conn {
            stream,
            rbuf,
            wbuf,
            wpos,
            addr,
            ..
        } = self;
        if rbuf.capacity() - rbuf.len() < 16 * 1024 {
            rbuf.reserve(64 * 1024);
        }
        let (mut rd, mut wr) = stream.split();
        let pending_write = *wpos < wbuf.len();
        tokio::select! {
            r = rd.read_buf(rbuf) => match r {
                Ok(0) => Err(ConnError::Closed { addr: addr.clone() }),
                Ok(_) => Ok(()),
                Err(source) => Err(ConnError::Io { addr: addr.clone(), source }),
            },
            w = wr.write(&wbuf[*wpos..]), if pending_write => match w {
                Ok(0) => Err(ConnError::Closed { addr: addr.clone() }),
                Ok(n) => {
                    *wpos += n;
                    if *wpos == wbuf.len() {
                        wbuf.clear();
                        *wpos = 0;
                    }
                    Ok(())
                }
                Err(source) => Err(ConnError::Io { addr: addr.clone(), source }),
            },
        }
    }

    /// Moves every complete frame from the read buffer to `out`; true if any.
    fn drain_frames(&mut self, out: &mut Vec<Reply>) -> Result<bool, ConnError> {
        let before = out.len();
        let at = Instant::now();
        while let Some((start, end)) = self.take_frame()? {
            let payload = &self.rbuf[start..end];
            let mut r = Reader::new(payload);
            let header = match ReplyHeader::read(&mut r) {
                Ok(h) => h,
                Err(e) => return Err(self.protocol(e)),
            };
            let body = payload[r.position()..].to_vec();
            out.push(Reply { header, body, at });
        }
        self.compact();
        Ok(out.len() > before)
    }

    /// Where the next complete frame's payload lies in the read buffer, if it holds one.
    /// The range stays valid until the next `compact` (which only `drain_frames` and
    /// `io_once` callers trigger, after they are done with the payload).
    fn take_frame(&mut self) -> Result<Option<(usize, usize)>, ConnError> {
        let avail = self.rbuf.len() - self.rpos;
        if avail < 4 {
            return Ok(None);
        }
        let mut prefix = [0u8; 4];
        prefix.copy_from_slice(&self.rbuf[self.rpos..self.rpos + 4]);
        let len = frame_len(prefix, MAX_FRAME).map_err(|e| self.protocol(e))?;
        if avail < 4 + len {
            return Ok(None);
        }
        let start = self.rpos + 4;
        self.rpos = start + len;
        Ok(Some((start, start + len)))
    }

    fn compact(&mut self) {
        if self.rpos == 0 {
            return;
        }
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
        } else {
            self.rbuf.drain(..self.rpos);
        }
        self.rpos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_proto::{
        GetDataRequest, OpCode, RequestHeader, encode_reply, response::get_data_response,
    };
    use tokio::net::TcpListener;

    /// A fake server: answers the handshake, then every request with a getData reply
    /// carrying its xid, written one byte at a time so frames arrive in pieces.
    async fn fake_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut len = [0u8; 4];
            s.read_exact(&mut len).await.unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut body).await.unwrap();
            let resp = ConnectResponse {
                protocol_version: 0,
                time_out: 4000,
                session_id: 42,
                passwd: vec![0; 16].into(),
                read_only: Some(false),
            };
            s.write_all(&frame(&resp.to_bytes())).await.unwrap();
            loop {
                if s.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                s.read_exact(&mut body).await.unwrap();
                let header = RequestHeader::from_bytes(&body[..8]).unwrap();
                let reply = encode_reply(
                    header.xid,
                    7,
                    0,
                    &get_data_response(&header.xid.to_be_bytes(), Default::default()),
                );
                for b in frame(&reply) {
                    s.write_all(&[b]).await.unwrap();
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn pipelined_replies_come_back_in_order_and_whole() {
        let addr = fake_server().await;
        let mut conn = Conn::connect(&addr, Duration::from_secs(4), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(conn.session_id, 42);
        assert_eq!(conn.negotiated_timeout, Duration::from_millis(4000));
        let req = Request::GetData(GetDataRequest {
            path: "/x".into(),
            watch: false,
        });
        let xids: Vec<i32> = (0..50).map(|_| conn.queue(&req)).collect();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < xids.len() {
            assert_eq!(conn.pump(&mut got, deadline).await.unwrap(), Pumped::Frames);
        }
        for (reply, xid) in got.iter().zip(&xids) {
            assert_eq!(reply.header.xid, *xid);
            match reply.decode(OpCode::GetData.code()).unwrap() {
                Response::GetData(d) => assert_eq!(*d.data, xid.to_be_bytes()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn unreachable_and_silent_servers_are_clear_errors() {
        let e = Conn::connect(
            "127.0.0.1:1",
            Duration::from_secs(4),
            Duration::from_secs(2),
        )
        .await
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("cannot connect to 127.0.0.1:1"),
            "{e}"
        );

        // Accepts but never answers the handshake.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let _keep = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let e = Conn::connect(&addr, Duration::from_secs(4), Duration::from_millis(200))
            .await
            .err()
            .unwrap();
        assert!(matches!(e, ConnError::ConnectTimeout { .. }), "{e}");
    }
}
