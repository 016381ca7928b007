//! Fetch responses whose record sets are sent from where they lie.
//!
//! A fetch response is mostly record bytes that already sit in segment files. Copying
//! them into the encoded response (read into memory, then copy into the frame) costs
//! more than everything else a fetch does, so Kafka sends them with `sendfile`, and so do
//! we. The encoding itself stays kafka-protocol's, the one codec for every version of
//! the message: the fetch handler puts a *stand-in* in each partition's `records` field,
//! a `Bytes` of the record set's length that points into a static zeroed region, so the
//! codec writes the right length prefix. When the codec then copies the stand-in into
//! the buffer, [`PartsBuf`] recognises it by its address and records a reference to the
//! real record set instead. The result is a list of [`ResponsePart`]s: encoded bytes,
//! and record sets for the server to send itself.
//!
//! The zeroed region lives in `.bss`: it costs address space, not memory, since nothing
//! ever writes it and the stand-ins are never read.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages as m;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;

use crate::api::{ApiKey, EncodeError, RequestHeader};
use crate::frame::FrameError;

/// Largest record set a stand-in can represent, and the most stand-ins one response can
/// hold together (stand-in `k` starts `k` bytes into the region).
const STAND_IN_LEN: usize = 64 << 20;
static STAND_IN: [u8; STAND_IN_LEN] = [0; STAND_IN_LEN];

/// One piece of an encoded response frame, in the order they go on the wire.
#[derive(Debug)]
pub enum ResponsePart<T> {
    /// Encoded bytes (size prefix, header, message fields).
    Encoded(Bytes),
    /// A record set to send as it is; its length prefix is in the part before.
    Records(T),
}

/// The record sets of one response, each with the stand-in that takes its place in the
/// message until it is encoded.
pub struct ExternalRecords<T> {
    sets: Vec<(Option<T>, usize)>,
}

impl<T> Default for ExternalRecords<T> {
    fn default() -> Self {
        Self { sets: Vec::new() }
    }
}

impl<T> ExternalRecords<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A stand-in for a record set of `len` bytes, to put in a `records` field. `None`
    /// when the set is empty or beyond what a stand-in can represent: then the caller
    /// puts the bytes themselves in the field.
    pub fn stand_in(&mut self, records: T, len: usize) -> Option<Bytes> {
        let k = self.sets.len();
        if len == 0 || k.checked_add(len)? > STAND_IN_LEN {
            return None;
        }
        self.sets.push((Some(records), len));
        Some(Bytes::from_static(&STAND_IN[k..k + len]))
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

/// Encode a fetch response frame (size prefix, response header, body) as parts, the
/// record sets given stand-ins in `records` kept out of the encoded bytes.
pub fn encode_fetch_response_parts<T>(
    header: &RequestHeader,
    body: &m::FetchResponse,
    records: ExternalRecords<T>,
) -> Result<Vec<ResponsePart<T>>, EncodeError> {
    if header.api_key != ApiKey::Fetch {
        return Err(EncodeError::ApiKeyMismatch {
            header: header.api_key,
            body: ApiKey::Fetch,
        });
    }
    let (api_key, api_version) = (header.api_key, header.api_version);
    let message_error = |reason: String| EncodeError::Message {
        api_key,
        api_version,
        reason,
    };
    let mut buf = PartsBuf::new(records);
    buf.put_i32(0); // the size prefix, patched below
    m::ResponseHeader::default()
        .with_correlation_id(header.correlation_id)
        .encode(&mut buf, api_key.response_header_version(api_version))
        .map_err(|e| message_error(format!("response header: {e:#}")))?;
    body.encode(&mut buf, api_version)
        .map_err(|e| message_error(format!("{e:#}")))?;
    buf.finish().map_err(message_error)
}

/// A `ByteBufMut` that keeps record-set stand-ins out of its bytes (see the module doc).
struct PartsBuf<T> {
    records: ExternalRecords<T>,
    parts: Vec<ResponsePart<T>>,
    /// Bytes since the last record set.
    current: BytesMut,
    /// Length of everything before `current`, record sets included.
    before_current: usize,
    /// Set when the codec asked for something a split buffer cannot do (seek or patch
    /// bytes before a record set): the encoding is then refused, never silently wrong.
    poisoned: Option<&'static str>,
    scratch: Vec<u8>,
}

impl<T> PartsBuf<T> {
    fn new(records: ExternalRecords<T>) -> Self {
        Self {
            records,
            parts: Vec::new(),
            current: BytesMut::with_capacity(256),
            before_current: 0,
            poisoned: None,
            scratch: Vec::new(),
        }
    }

    /// The record set whose stand-in `src` is, if it is one.
    fn take_record_set(&mut self, src: &[u8]) -> Option<Result<(T, usize), ()>> {
        let base = STAND_IN.as_ptr() as usize;
        let addr = src.as_ptr() as usize;
        if src.is_empty() || addr < base || addr >= base + STAND_IN_LEN {
            return None;
        }
        let found = self
            .records
            .sets
            .get_mut(addr - base)
            .filter(|(_, len)| *len == src.len())
            .and_then(|(set, len)| set.take().map(|set| (set, *len)));
        Some(found.ok_or(()))
    }

    fn finish(mut self) -> Result<Vec<ResponsePart<T>>, String> {
        if let Some(why) = self.poisoned {
            return Err(why.to_string());
        }
        let total = self.before_current + self.current.len();
        let size = total
            .checked_sub(4)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| {
                FrameError::TooLarge {
                    size: total,
                    limit: i32::MAX as usize,
                }
                .to_string()
            })?;
        let current = std::mem::take(&mut self.current);
        if !current.is_empty() {
            self.parts.push(ResponsePart::Encoded(current.freeze()));
        }
        // The size prefix is the first four bytes of the first part, which is encoded
        // bytes (the header comes before any records).
        let Some(ResponsePart::Encoded(first)) = self.parts.first_mut() else {
            return Err("response does not start with encoded bytes".into());
        };
        let mut patched = BytesMut::from(&first[..]);
        patched[..4].copy_from_slice(&size.to_be_bytes());
        *first = patched.freeze();
        Ok(self.parts)
    }
}

// SAFETY: every method delegates to `current` (a `BytesMut`), whose own implementation
// upholds the trait's contract; `put_slice` either delegates too or writes nothing.
unsafe impl<T> BufMut for PartsBuf<T> {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `cnt` is about `current`'s chunk.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.take_record_set(src) {
            None => self.current.put_slice(src),
            Some(Ok((set, len))) => {
                let encoded = std::mem::take(&mut self.current);
                self.before_current += encoded.len() + len;
                if !encoded.is_empty() {
                    self.parts.push(ResponsePart::Encoded(encoded.freeze()));
                }
                self.parts.push(ResponsePart::Records(set));
            }
            Some(Err(())) => self.poisoned = Some("a record-set stand-in was used twice"),
        }
    }
}

impl<T> ByteBufMut for PartsBuf<T> {
    fn offset(&self) -> usize {
        self.before_current + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.before_current) {
            Some(o) => self.current.resize(o, 0),
            None => self.poisoned = Some("seek before a record set"),
        }
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let start = r.start.checked_sub(self.before_current);
        let end = r.end.checked_sub(self.before_current);
        match (start, end) {
            (Some(s), Some(e)) if s <= e && e <= self.current.len() => &mut self.current[s..e],
            _ => {
                self.poisoned = Some("patching bytes before a record set");
                self.scratch.clear();
                self.scratch.resize(r.len(), 0);
                &mut self.scratch
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::encode_response;
    use crate::api::ResponseBody;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn header(version: i16) -> RequestHeader {
        RequestHeader {
            api_key: ApiKey::Fetch,
            api_version: version,
            correlation_id: 77,
            client_id: None,
        }
    }

    fn response(records: &[Option<Bytes>]) -> m::FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(1000 + i as i64)
                    .with_records(r.clone())
            })
            .collect();
        m::FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("events")))
            .with_partitions(partitions)])
    }

    fn join(parts: Vec<ResponsePart<Bytes>>) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            match part {
                ResponsePart::Encoded(b) | ResponsePart::Records(b) => out.extend_from_slice(&b),
            }
        }
        out
    }

    /// The parts, joined, are byte for byte what encoding the real records gives, for
    /// every Fetch version and with empty, small and large record sets mixed.
    #[test]
    fn parts_joined_equal_the_plain_encoding() {
        let sets: Vec<Bytes> = vec![
            Bytes::from(vec![1u8; 100]),
            Bytes::new(),
            Bytes::from((0..70_000u32).map(|i| i as u8).collect::<Vec<_>>()),
            Bytes::from(vec![9u8; 1]),
        ];
        for version in 4..=16 {
            let plain = encode_response(
                &header(version),
                &ResponseBody::Fetch(response(
                    &sets.iter().cloned().map(Some).collect::<Vec<_>>(),
                )),
            )
            .unwrap();
            let mut external = ExternalRecords::new();
            let stand_ins: Vec<Option<Bytes>> = sets
                .iter()
                .map(|s| {
                    Some(
                        external
                            .stand_in(s.clone(), s.len())
                            .unwrap_or_else(|| s.clone()),
                    )
                })
                .collect();
            let parts =
                encode_fetch_response_parts(&header(version), &response(&stand_ins), external)
                    .unwrap();
            let records_parts = parts
                .iter()
                .filter(|p| matches!(p, ResponsePart::Records(_)))
                .count();
            assert_eq!(records_parts, 3, "v{version}");
            assert_eq!(join(parts), plain.to_vec(), "v{version}");
        }
    }

    #[test]
    fn a_stand_in_used_twice_is_an_error_not_a_wrong_frame() {
        let mut external = ExternalRecords::new();
        let s = external.stand_in(Bytes::from_static(b"abc"), 3).unwrap();
        let body = response(&[Some(s.clone()), Some(s)]);
        let e = encode_fetch_response_parts(&header(12), &body, external).unwrap_err();
        assert!(e.to_string().contains("used twice"), "{e}");
    }

    #[test]
    fn sets_beyond_the_region_get_no_stand_in() {
        let mut external: ExternalRecords<()> = ExternalRecords::new();
        assert!(external.stand_in((), 0).is_none());
        assert!(external.stand_in((), STAND_IN_LEN + 1).is_none());
        assert!(external.stand_in((), STAND_IN_LEN).is_some());
        // The region is used from the next index on: this one no longer fits.
        assert!(external.stand_in((), STAND_IN_LEN).is_none());
        assert!(external.stand_in((), usize::MAX).is_none());
    }

    #[test]
    fn other_api_keys_are_refused() {
        let mut h = header(12);
        h.api_key = ApiKey::Metadata;
        let external: ExternalRecords<Bytes> = ExternalRecords::new();
        assert!(matches!(
            encode_fetch_response_parts(&h, &response(&[]), external),
            Err(EncodeError::ApiKeyMismatch { .. })
        ));
    }
}
