//! Reading length-prefixed frames with memory that grows only as bytes arrive.
//!
//! A length prefix is a claim, not a fact: a peer may announce 1 MB (or 1 GB) and send
//! nothing more. So the buffer is never sized by the prefix; each read makes room for at
//! most [`READ_CHUNK`] more bytes, and a prefix over the limit is refused before any
//! room is made for its body. The parsing ([`FrameBuf`]) is pure; [`FrameBuf::fill`] is
//! the one await.

use paddock_proto::DecodeError;
use paddock_proto::frame::frame_len;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most a single read may grow the buffer by.
pub const READ_CHUNK: usize = 64 * 1024;
/// Room made for a read when no frame is in progress (a few small requests fit).
const SMALL_READ: usize = 4 * 1024;
/// An idle buffer keeps at most this much capacity (a large frame's buffer is released).
const IDLE_CAPACITY: usize = 2 * READ_CHUNK;

/// Buffered bytes of one connection, parsed into frames.
#[derive(Debug)]
pub struct FrameBuf {
    buf: Vec<u8>,
    /// Bytes before this were handed out as frames.
    start: usize,
    max: usize,
}

impl FrameBuf {
    /// Frames longer than `max` bytes are refused.
    pub fn new(max: usize) -> FrameBuf {
        FrameBuf {
            buf: Vec::new(),
            start: 0,
            max,
        }
    }

    /// A buffer that already holds `bytes` (read before framing began).
    pub fn starting_with(max: usize, bytes: &[u8]) -> FrameBuf {
        FrameBuf {
            buf: bytes.to_vec(),
            start: 0,
            max,
        }
    }

    /// The next complete frame's body, if it is buffered. An invalid length prefix is an
    /// error as soon as its 4 bytes are in.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, DecodeError> {
        let pending = &self.buf[self.start..];
        let Some(prefix) = pending.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = frame_len(*prefix, self.max)?;
        if pending.len() < 4 + len {
            return Ok(None);
        }
        let body = self.start + 4..self.start + 4 + len;
        self.start = body.end;
        Ok(Some(&self.buf[body]))
    }

    /// How much room the next read gets: what the frame in progress still lacks (at
    /// least a small read, at most [`READ_CHUNK`]).
    fn room_for_next_read(&self) -> usize {
        let pending = &self.buf[self.start..];
        let lacking = match pending.first_chunk::<4>().map(|p| frame_len(*p, self.max)) {
            Some(Ok(len)) => (4 + len).saturating_sub(pending.len()),
            _ => 0,
        };
        lacking.clamp(SMALL_READ, READ_CHUNK)
    }

    /// Drops the bytes already handed out, and releases a large buffer once idle.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() > IDLE_CAPACITY && self.buf.len() <= SMALL_READ {
            self.buf.shrink_to(SMALL_READ);
        }
    }

    /// Reads once from `rd`, growing the buffer by at most [`READ_CHUNK`]. Ok(0) is EOF.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> std::io::Result<usize> {
        self.compact();
        let room = self.room_for_next_read();
        self.buf.reserve_exact(room);
        // Read no more than `room` even if the vector has more spare capacity.
        let mut limited = rd.take(room as u64);
        limited.read_buf(&mut self.buf).await
    }

    /// Bytes held (buffered or reserved), for tests.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes received and not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        paddock_proto::frame::frame(body)
    }

    fn feed(fb: &mut FrameBuf, bytes: &[u8]) {
        let mut rd = bytes;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        while !rd.is_empty() {
            let n = rt.block_on(fb.fill(&mut rd)).unwrap();
            assert!(n > 0);
        }
    }

    #[test]
    fn an_announced_length_allocates_nothing_until_bytes_arrive() {
        let mut fb = FrameBuf::new(1 << 20);
        feed(&mut fb, &1_000_000u32.to_be_bytes());
        assert_eq!(fb.next_frame().unwrap(), None);
        assert!(fb.capacity() <= SMALL_READ, "capacity {}", fb.capacity());
    }

    #[test]
    fn each_read_grows_the_buffer_by_at_most_a_chunk() {
        let mut fb = FrameBuf::new(1 << 20);
        let body = vec![5u8; 500_000];
        let bytes = framed(&body);
        let mut rd = &bytes[..];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut reads = 0;
        while !rd.is_empty() {
            let before = fb.buffered();
            let n = rt.block_on(fb.fill(&mut rd)).unwrap();
            assert!(n <= READ_CHUNK);
            assert!(fb.capacity() <= before + READ_CHUNK + SMALL_READ);
            reads += 1;
        }
        assert!(reads >= 500_000 / READ_CHUNK);
        assert_eq!(fb.next_frame().unwrap(), Some(&body[..]));
    }

    #[test]
    fn pipelined_frames_come_out_in_order_and_a_big_buffer_is_released() {
        let mut fb = FrameBuf::new(1 << 20);
        let mut bytes = framed(&vec![1u8; 300_000]);
        bytes.extend(framed(b"a"));
        bytes.extend(framed(b""));
        bytes.extend(framed(b"bc"));
        feed(&mut fb, &bytes);
        assert_eq!(fb.next_frame().unwrap().map(<[u8]>::len), Some(300_000));
        assert_eq!(fb.next_frame().unwrap(), Some(&b"a"[..]));
        assert_eq!(fb.next_frame().unwrap(), Some(&b""[..]));
        assert_eq!(fb.next_frame().unwrap(), Some(&b"bc"[..]));
        assert_eq!(fb.next_frame().unwrap(), None);
        feed(&mut fb, &framed(b"d"));
        assert!(fb.capacity() <= IDLE_CAPACITY, "capacity {}", fb.capacity());
        assert_eq!(fb.next_frame().unwrap(), Some(&b"d"[..]));
    }

    #[test]
    fn lengths_over_the_limit_or_negative_are_refused_at_once() {
        let mut fb = FrameBuf::new(100);
        feed(&mut fb, &101u32.to_be_bytes());
        assert_eq!(
            fb.next_frame(),
            Err(DecodeError::FrameTooLarge { len: 101, max: 100 })
        );
        let mut fb = FrameBuf::new(100);
        feed(&mut fb, &(-1i32).to_be_bytes());
        assert_eq!(fb.next_frame(), Err(DecodeError::NegativeFrameLength(-1)));
    }
}
