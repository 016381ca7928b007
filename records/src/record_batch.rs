//! A zero-copy view of Kafka record batches (magic v2).
//!
//! Batches are stored byte for byte as they arrive on the wire, so the broker never
//! decodes records on the hot path. This module reads the 61-byte batch header, checks
//! it (length, magic, CRC-32C, record count), and rewrites the two fields a broker may
//! change without touching the CRC: the base offset and the partition leader epoch.
//!
//! Layout (all big-endian), per the Kafka protocol guide:
//!
//! ```text
//! 0  baseOffset           i64   \ not covered by the CRC
//! 8  batchLength          i32   |  (bytes after this field)
//! 12 partitionLeaderEpoch i32   /
//! 16 magic                i8
//! 17 crc                  u32   CRC-32C of bytes 21..end
//! 21 attributes           i16
//! 23 lastOffsetDelta      i32
//! 27 baseTimestamp        i64
//! 35 maxTimestamp         i64
//! 43 producerId           i64
//! 51 producerEpoch        i16
//! 53 baseSequence         i32
//! 57 recordCount          i32
//! 61 records...
//! ```

use thiserror::Error;

/// Size of the v2 batch header, up to and including `recordCount`.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

/// Why a batch was refused. The broker maps these to Kafka error codes
/// (`CORRUPT_MESSAGE`, `MESSAGE_TOO_LARGE`, `INVALID_RECORD`, `UNSUPPORTED_VERSION`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    UnsupportedMagic(i8),
    #[error("CRC-32C mismatch: header says {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    CountMismatch { count: i32, last_offset_delta: i32 },
    #[error("batch of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

impl BatchError {
    /// True when the bytes are damaged (as opposed to well-formed but refused).
    pub fn is_corruption(&self) -> bool {
        !matches!(
            self,
            BatchError::TooLarge { .. } | BatchError::UnsupportedMagic(_)
        )
    }
}

/// Compression codec from the low three bits of the batch attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn from_attributes(attributes: i16) -> Option<Compression> {
        match attributes & 0x07 {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

fn read_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn read_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn read_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The parsed header of one batch. Holds copies of the fixed fields, not the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parse the header at the start of `buf` without checking the CRC. Checks that the
    /// length is sane and that `buf` holds the whole batch.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < LOG_OVERHEAD {
            return Err(BatchError::Truncated {
                needed: LOG_OVERHEAD,
                available: buf.len(),
            });
        }
        let header = BatchHeader::parse_fixed(buf)?;
        if buf.len() < header.total_len() {
            return Err(BatchError::Truncated {
                needed: header.total_len(),
                available: buf.len(),
            });
        }
        Ok(header)
    }

    /// Parse only the fixed 61-byte header; `buf` may end right after it. Used when
    /// scanning a segment file header by header.
    pub fn parse_fixed(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() >= LOG_OVERHEAD {
            // batchLength counts bytes after itself, so a v2 batch needs at least
            // (header - overhead) of them.
            let batch_length = read_i32(buf, BATCH_LENGTH);
            if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
                return Err(BatchError::InvalidLength(batch_length));
            }
        }
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        Ok(BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET),
            batch_length: read_i32(buf, BATCH_LENGTH),
            partition_leader_epoch: read_i32(buf, PARTITION_LEADER_EPOCH),
            magic,
            crc: u32::from_be_bytes([buf[CRC], buf[CRC + 1], buf[CRC + 2], buf[CRC + 3]]),
            attributes: read_i16(buf, ATTRIBUTES),
            last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA),
            base_timestamp: read_i64(buf, BASE_TIMESTAMP),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP),
            producer_id: read_i64(buf, PRODUCER_ID),
            producer_epoch: read_i16(buf, PRODUCER_EPOCH),
            base_sequence: read_i32(buf, BASE_SEQUENCE),
            record_count: read_i32(buf, RECORD_COUNT),
        })
    }

    /// Total size of the batch on the wire and on disk.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record, once the base offset is assigned.
    /// Saturating: the base offset lies outside the CRC, so on disk it may hold anything.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(self.last_offset_delta as i64)
    }

    pub fn compression(&self) -> Option<Compression> {
        Compression::from_attributes(self.attributes)
    }

    /// Bit 3: the timestamps are LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }
    /// Bit 4: part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    /// Bit 5: a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Compute the CRC-32C that a batch's header should hold. `batch` must be whole.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES..])
}

/// How strictly to check a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// A producer's batch: record count must be exactly `lastOffsetDelta + 1`.
    Produce,
    /// A batch read back from the log. The cleaner may have removed records, leaving
    /// fewer records than the offset span, but never more.
    Stored,
}

/// Parse and fully validate the batch at the start of `buf`: length, magic, CRC-32C and
/// record count. Returns the header; the batch occupies `header.total_len()` bytes.
pub fn validate_batch(buf: &[u8], strictness: Strictness) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let batch = &buf[..header.total_len()];
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    let count_ok = match strictness {
        Strictness::Produce => {
            header.last_offset_delta >= 0
                && header.record_count > 0
                && header.record_count as i64 == header.last_offset_delta as i64 + 1
        }
        // A fully compacted batch keeps its header with zero records so the offset
        // span survives, as Kafka does.
        Strictness::Stored => {
            header.last_offset_delta >= 0
                && header.record_count >= 0
                && header.record_count as i64 <= header.last_offset_delta as i64 + 1
        }
    };
    if !count_ok {
        return Err(BatchError::CountMismatch {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Rewrite the base offset of the whole batch at the start of `batch`. The base offset
/// lies outside the CRC, so the CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrite the partition leader epoch (also outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Stamp a whole batch with LogAppendTime (topic `message.timestamp.type=LogAppendTime`):
/// set attribute bit 3 and maxTimestamp, then recompute the CRC, which covers both.
/// Record timestamps stay as sent; readers use maxTimestamp for such batches.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let (header, body) = batch.split_at_mut(BATCH_HEADER_LEN);
    set_log_append_time_split(header, body, now_ms);
}

/// [`set_log_append_time`] for a batch whose header (its first [`BATCH_HEADER_LEN`]
/// bytes) lives apart from the rest: the log rewrites a copy of the header and writes
/// the body straight from the request.
pub fn set_log_append_time_split(header: &mut [u8], body: &[u8], now_ms: i64) {
    let attributes = read_i16(header, ATTRIBUTES) | 0x08;
    header[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    header[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[ATTRIBUTES..BATCH_HEADER_LEN]), body);
    header[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Iterate over the batches in a record set (the concatenation of whole batches that a
/// produce request or a log segment holds), validating each.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    strictness: Strictness,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8], strictness: Strictness) -> Self {
        BatchIter {
            buf,
            pos: 0,
            strictness,
            failed: false,
        }
    }

    /// Byte position of the next batch within the record set.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for BatchIter<'_> {
    /// The batch's start position in the record set and its header, or the error found
    /// at that position. Iteration stops after the first error.
    type Item = Result<(usize, BatchHeader), (usize, BatchError)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        match validate_batch(&self.buf[start..], self.strictness) {
            Ok(header) => {
                self.pos += header.total_len();
                Some(Ok((start, header)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err((start, e)))
            }
        }
    }
}

/// Builds uncompressed v2 batches. Used by tests, benches, the cleaner and our client;
/// the broker never re-encodes what producers send.
pub mod builder {
    use super::*;

    /// One record to encode.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Record<'a> {
        pub timestamp_delta: i64,
        pub key: Option<&'a [u8]>,
        pub value: Option<&'a [u8]>,
        pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    }

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        // Zigzag, as Kafka's ByteUtils.writeVarlong.
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z & !0x7f == 0 {
                out.push(z as u8);
                return;
            }
            out.push(((z & 0x7f) | 0x80) as u8);
            z >>= 7;
        }
    }

    fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
        match b {
            None => put_varint(out, -1),
            Some(b) => {
                put_varint(out, b.len() as i64);
                out.extend_from_slice(b);
            }
        }
    }

    /// Encode the records section (uncompressed) of a batch.
    pub fn encode_records(records: &[Record<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = Vec::new();
        for (i, r) in records.iter().enumerate() {
            body.clear();
            body.push(0); // record attributes
            put_varint(&mut body, r.timestamp_delta);
            put_varint(&mut body, i as i64);
            put_bytes(&mut body, r.key);
            put_bytes(&mut body, r.value);
            put_varint(&mut body, r.headers.len() as i64);
            for (k, v) in &r.headers {
                put_bytes(&mut body, Some(k.as_bytes()));
                put_bytes(&mut body, *v);
            }
            put_varint(&mut out, body.len() as i64);
            out.extend_from_slice(&body);
        }
        out
    }

    /// Producer fields of a batch; `NONE` for a plain (non-idempotent) producer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ProducerFields {
        pub producer_id: i64,
        pub producer_epoch: i16,
        pub base_sequence: i32,
    }

    impl ProducerFields {
        pub const NONE: ProducerFields = ProducerFields {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        };
    }

    /// Encode a whole batch around an already-encoded (and possibly compressed) records
    /// section, computing the CRC.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_batch(
        base_offset: i64,
        attributes: i16,
        last_offset_delta: i32,
        base_timestamp: i64,
        max_timestamp: i64,
        producer: ProducerFields,
        record_count: i32,
        records_section: &[u8],
    ) -> Vec<u8> {
        let total = BATCH_HEADER_LEN + records_section.len();
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(&base_offset.to_be_bytes());
        b.extend_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc, filled below
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&last_offset_delta.to_be_bytes());
        b.extend_from_slice(&base_timestamp.to_be_bytes());
        b.extend_from_slice(&max_timestamp.to_be_bytes());
        b.extend_from_slice(&producer.producer_id.to_be_bytes());
        b.extend_from_slice(&producer.producer_epoch.to_be_bytes());
        b.extend_from_slice(&producer.base_sequence.to_be_bytes());
        b.extend_from_slice(&record_count.to_be_bytes());
        b.extend_from_slice(records_section);
        let crc = compute_crc(&b);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// An uncompressed batch of `records` with timestamps `base_timestamp + delta`.
    pub fn simple_batch(base_timestamp: i64, records: &[Record<'_>]) -> Vec<u8> {
        let section = encode_records(records);
        let max_delta = records.iter().map(|r| r.timestamp_delta).max().unwrap_or(0);
        encode_batch(
            0,
            0,
            records.len().saturating_sub(1) as i32,
            base_timestamp,
            base_timestamp + max_delta,
            ProducerFields::NONE,
            records.len() as i32,
            &section,
        )
    }

    /// Attribute bit of a transactional batch.
    pub const TRANSACTIONAL: i16 = 0x10;
    /// Attribute bit of a control batch.
    pub const CONTROL: i16 = 0x20;

    /// A transaction marker as Kafka's coordinator writes it: a transactional control
    /// batch of one record whose key is (version 0, type 1 commit / 0 abort) and whose
    /// value is (version 0, coordinator epoch).
    pub fn control_batch(
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        timestamp: i64,
    ) -> Vec<u8> {
        let key = [0, 0, 0, commit as u8];
        let mut value = vec![0, 0];
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        let section = encode_records(&[Record {
            key: Some(&key),
            value: Some(&value),
            ..Default::default()
        }]);
        encode_batch(
            0,
            TRANSACTIONAL | CONTROL,
            0,
            timestamp,
            timestamp,
            ProducerFields {
                producer_id,
                producer_epoch,
                base_sequence: -1,
            },
            1,
            &section,
        )
    }

    /// A batch of `count` records each holding `value`, all stamped `timestamp`.
    pub fn batch_of_values(timestamp: i64, count: usize, value: &[u8]) -> Vec<u8> {
        let records: Vec<Record<'_>> = (0..count)
            .map(|_| Record {
                value: Some(value),
                ..Default::default()
            })
            .collect();
        simple_batch(timestamp, &records)
    }
}

#[cfg(test)]
mod tests {
    use super::builder::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_header() {
        let b = batch_of_values(1_000, 3, b"hello");
        let h = validate_batch(&b, Strictness::Produce).expect("valid");
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.total_len(), b.len());
        assert_eq!(h.compression(), Some(Compression::None));
    }

    #[test]
    fn base_offset_rewrite_keeps_crc() {
        let mut b = batch_of_values(1, 2, b"x");
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 7);
        let h = validate_batch(&b, Strictness::Produce).expect("still valid");
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.last_offset(), 43);
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let mut b = batch_of_values(5, 2, b"x");
        set_log_append_time(&mut b, 99);
        let h = validate_batch(&b, Strictness::Produce).expect("valid after restamp");
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 99);
    }

    #[test]
    fn detects_crc_flip() {
        let mut b = batch_of_values(1, 2, b"payload");
        let last = b.len() - 1;
        b[last] ^= 0x40;
        assert!(matches!(
            validate_batch(&b, Strictness::Produce),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn detects_count_mismatch() {
        let section = encode_records(&[Record {
            value: Some(b"a"),
            ..Default::default()
        }]);
        let b = encode_batch(0, 0, 5, 0, 0, ProducerFields::NONE, 1, &section);
        assert!(matches!(
            validate_batch(&b, Strictness::Produce),
            Err(BatchError::CountMismatch { .. })
        ));
        // A compacted batch on disk may have fewer records than its span.
        assert!(validate_batch(&b, Strictness::Stored).is_ok());
    }

    #[test]
    fn rejects_old_magic_and_bad_length() {
        let mut b = batch_of_values(1, 1, b"v");
        b[MAGIC] = 1;
        assert_eq!(
            validate_batch(&b, Strictness::Produce),
            Err(BatchError::UnsupportedMagic(1))
        );
        let mut b = batch_of_values(1, 1, b"v");
        b[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            validate_batch(&b, Strictness::Produce),
            Err(BatchError::InvalidLength(-5))
        );
    }

    #[test]
    fn iterates_record_sets() {
        let mut set = batch_of_values(1, 2, b"a");
        set.extend(batch_of_values(2, 3, b"b"));
        let headers: Vec<_> = BatchIter::new(&set, Strictness::Produce).collect();
        assert_eq!(headers.len(), 2);
        assert!(headers.iter().all(|r| r.is_ok()));
        // A torn second batch stops the iteration with an error at its start.
        let cut = &set[..set.len() - 1];
        let items: Vec<_> = BatchIter::new(cut, Strictness::Produce).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(matches!(items[1], Err((p, BatchError::Truncated { .. })) if p > 0));
    }

    proptest! {
        // Any byte string parses to a result and never panics.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = validate_batch(&bytes, Strictness::Produce);
            let _ = BatchIter::new(&bytes, Strictness::Stored).count();
        }

        // Every single-byte corruption inside the CRC-covered region is detected.
        #[test]
        fn any_flip_in_crc_region_is_detected(
            count in 1usize..5,
            value in proptest::collection::vec(any::<u8>(), 0..64),
            pos_seed in any::<usize>(),
            bit in 0u8..8,
        ) {
            let mut b = batch_of_values(5, count, &value);
            let pos = ATTRIBUTES + pos_seed % (b.len() - ATTRIBUTES);
            b[pos] ^= 1 << bit;
            prop_assert!(validate_batch(&b, Strictness::Stored).is_err());
        }
    }
}
