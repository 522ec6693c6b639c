//! Framing: every message after the TCP handshake is a 4-byte big-endian length followed
//! by that many bytes. The length is checked against jute.maxbuffer before any buffer is
//! allocated, so an oversized or negative prefix costs nothing but a clean close.

use crate::jute::DecodeError;

/// Validates a frame's length prefix against `max_len` (jute.maxbuffer).
pub fn frame_len(prefix: [u8; 4], max_len: usize) -> Result<usize, DecodeError> {
    let len = i32::from_be_bytes(prefix);
    if len < 0 {
        return Err(DecodeError::NegativeFrameLength(len));
    }
    let len = len as usize;
    if len > max_len {
        return Err(DecodeError::FrameTooLarge { len, max: max_len });
    }
    Ok(len)
}

/// Prefixes `payload` with its length.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced() {
        assert_eq!(frame_len(10i32.to_be_bytes(), 100), Ok(10));
        assert_eq!(frame_len(100i32.to_be_bytes(), 100), Ok(100));
        assert_eq!(
            frame_len(101i32.to_be_bytes(), 100),
            Err(DecodeError::FrameTooLarge { len: 101, max: 100 })
        );
        assert_eq!(
            frame_len((-5i32).to_be_bytes(), 100),
            Err(DecodeError::NegativeFrameLength(-5))
        );
    }
}
