//! Kafka framing: every request and response on the wire is an `i32` big-endian size
//! followed by that many bytes of body.
//!
//! Sans-io: [`FrameDecoder::decode`] takes whatever bytes the I/O layer has read so far
//! and splits off complete frame bodies without copying them; the encode helpers write
//! the size prefix in front of a body.
//!
//! Limits: the size is untrusted. A negative size, or one above
//! `socket.request.max.bytes`, is an error after which the server closes the connection.
//! The decoder never reserves more than the frame it is waiting for, and a frame is never
//! larger than the limit, so one connection can make the broker hold at most
//! `max_frame_bytes + 4` bytes for a partial frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Bytes of the size prefix in front of every frame.
pub const SIZE_PREFIX_LEN: usize = 4;

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 104_857_600;

/// Why a frame was refused. Every variant means the stream can no longer be trusted:
/// the server logs it and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// Splits a byte stream into frame bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    /// Largest accepted frame body (`socket.request.max.bytes`).
    pub max_frame_bytes: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

impl FrameDecoder {
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder { max_frame_bytes }
    }

    /// Take one complete frame body off the front of `buf`.
    ///
    /// - `Ok(Some(body))`: the size prefix is consumed and `body` shares `buf`'s memory
    ///   (`split_to` + `freeze`, no copy). Call again: `buf` may hold more frames.
    /// - `Ok(None)`: not enough bytes yet; `buf` is untouched except that capacity for
    ///   the rest of the frame (at most `max_frame_bytes + 4`) may be reserved.
    /// - `Err(_)`: bad size; close the connection.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if buf.len() < SIZE_PREFIX_LEN {
            return Ok(None);
        }
        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if size < 0 {
            return Err(FrameError::NegativeSize(size));
        }
        let size = size as usize;
        if size > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                size,
                limit: self.max_frame_bytes,
            });
        }
        let total = SIZE_PREFIX_LEN + size;
        if buf.len() < total {
            // The size is within the limit, so this reservation is bounded by it. One
            // reservation for the whole frame avoids repeated regrowth while it arrives.
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(SIZE_PREFIX_LEN);
        Ok(Some(buf.split_to(size).freeze()))
    }
}

/// Append `body` to `dst` with its size prefix.
pub fn encode_frame(body: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    let size = checked_size(body.len())?;
    dst.reserve(SIZE_PREFIX_LEN + body.len());
    dst.put_i32(size);
    dst.put_slice(body);
    Ok(())
}

/// Start a frame in `dst` whose body will be written in place after this call: writes a
/// placeholder size and returns the frame's start offset for [`finish_frame`]. This
/// avoids copying a body that is encoded straight into the output buffer.
pub fn begin_frame(dst: &mut BytesMut) -> usize {
    let start = dst.len();
    dst.put_i32(0);
    start
}

/// Patch the size of the frame begun at `start` with everything written since.
pub fn finish_frame(dst: &mut BytesMut, start: usize) -> Result<(), FrameError> {
    let body_len = dst.len() - start - SIZE_PREFIX_LEN;
    let size = checked_size(body_len)?;
    dst[start..start + SIZE_PREFIX_LEN].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

fn checked_size(len: usize) -> Result<i32, FrameError> {
    i32::try_from(len).map_err(|_| FrameError::TooLarge {
        size: len,
        limit: i32::MAX as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(body: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        encode_frame(body, &mut out).unwrap();
        out
    }

    #[test]
    fn splits_complete_frames_and_waits_for_partial_ones() {
        let mut buf = framed(b"hello");
        buf.extend_from_slice(&framed(b"")[..]);
        buf.extend_from_slice(&framed(b"world")[..3]);
        let d = FrameDecoder::default();
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b"hello"[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b""[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 3);
        buf.extend_from_slice(&framed(b"world")[3..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b"world"[..]);
        assert!(buf.is_empty());
        assert_eq!(d.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn frame_body_shares_the_read_buffer() {
        let mut buf = framed(&[7u8; 100]);
        let base = buf.as_ptr() as usize;
        let body = FrameDecoder::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(body.as_ptr() as usize, base + SIZE_PREFIX_LEN);
    }

    #[test]
    fn rejects_negative_and_oversized_frames_before_the_body_arrives() {
        let d = FrameDecoder::new(1000);
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(d.decode(&mut buf), Err(FrameError::NegativeSize(-1)));
        let mut buf = BytesMut::from(&1001i32.to_be_bytes()[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(FrameError::TooLarge {
                size: 1001,
                limit: 1000
            })
        );
        let mut buf = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        assert!(d.decode(&mut buf).is_err());
        assert!(buf.capacity() < 1000, "no reservation for a refused size");
        // Exactly at the limit is fine.
        let mut buf = framed(&[0u8; 1000]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap().len(), 1000);
    }

    #[test]
    fn reservation_is_bounded_by_the_frame() {
        let d = FrameDecoder::new(4096);
        let mut buf = BytesMut::from(&4096i32.to_be_bytes()[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() >= 4100);
        assert!(buf.capacity() < 2 * 4100);
    }

    #[test]
    fn begin_finish_frame_patches_the_size() {
        let mut out = BytesMut::from(&b"xx"[..]);
        let start = begin_frame(&mut out);
        out.put_slice(b"abc");
        finish_frame(&mut out, start).unwrap();
        assert_eq!(&out[..], &[b'x', b'x', 0, 0, 0, 3, b'a', b'b', b'c']);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let d = FrameDecoder::new(32);
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(body)) = d.decode(&mut buf) {
                prop_assert!(body.len() <= 32);
            }
            // Reservations stay within a small multiple of the 32-byte limit.
            prop_assert!(buf.capacity() <= 256);
        }

        #[test]
        fn frames_survive_any_split(bodies in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..40), 0..5), cut in 0usize..200) {
            let mut wire = BytesMut::new();
            for b in &bodies {
                encode_frame(b, &mut wire).unwrap();
            }
            let cut = cut.min(wire.len());
            let d = FrameDecoder::default();
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut out = Vec::new();
            while let Some(f) = d.decode(&mut buf).unwrap() {
                out.push(f.to_vec());
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                out.push(f.to_vec());
            }
            prop_assert_eq!(out, bodies);
            prop_assert!(buf.is_empty());
        }
    }
}
