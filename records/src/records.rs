//! The records inside a v2 batch: a zero-copy decoder for the few places that must look
//! inside a batch (the log cleaner, keyless checks on compacted topics, our client), and
//! `build_batch` to encode and compress a whole batch.
//!
//! Record layout (Kafka's `DefaultRecord`), after the 61-byte batch header and after
//! decompression if the batch is compressed:
//!
//! ```text
//! length          varint   bytes after this field
//! attributes      int8     unused, 0
//! timestampDelta  varlong  relative to the batch's baseTimestamp
//! offsetDelta     varint   relative to the batch's baseOffset
//! keyLength       varint   -1 for a null key
//! key             bytes
//! valueLength     varint   -1 for a null value (a tombstone)
//! value           bytes
//! headerCount     varint
//! headers         [headerKeyLength varint, headerKey bytes,
//!                  headerValueLength varint (-1: null), headerValue bytes]
//! ```
//!
//! Varints are zigzag-encoded, as in protobuf. Everything is bounds-checked: the input
//! comes from producers and from disk.

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

use crate::compression::{self, CompressionError};
use crate::record_batch::builder::{self, ProducerFields};
use crate::record_batch::{BatchError, BatchHeader, Compression, BATCH_HEADER_LEN, LOG_OVERHEAD};

/// Why the records of a batch could not be read. Positions are byte offsets into the
/// (decompressed) records section. The broker maps these to `CORRUPT_MESSAGE`, except
/// an oversized decompression, which is `RECORD_TOO_LARGE`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("unknown compression codec {0} in batch attributes")]
    UnknownCompression(i16),
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error("invalid record count {0}")]
    InvalidRecordCount(i32),
    #[error("records data ends early at byte {at}")]
    Truncated { at: usize },
    #[error("malformed varint at byte {at}")]
    InvalidVarint { at: usize },
    #[error("invalid length {length} at byte {at}")]
    InvalidLength { at: usize, length: i32 },
    #[error("invalid header count {count} at byte {at}")]
    InvalidHeaderCount { at: usize, count: i32 },
    #[error("record at byte {at} declares {declared} bytes but its fields take {used}")]
    SizeMismatch {
        at: usize,
        declared: usize,
        used: usize,
    },
    #[error("batch declares {expected} records but holds only {found}")]
    MissingRecords { expected: usize, found: usize },
    #[error("{0} bytes left after the last declared record")]
    TrailingBytes(usize),
}

/// A bounds-checked reader over one records section.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Result<u8, RecordError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(RecordError::Truncated { at: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    /// Unsigned LEB128 of at most `max_bytes` bytes whose value fits in `bits` bits.
    /// Kafka ignores overflowing bits in the last byte; we refuse them.
    fn unsigned_varint(&mut self, max_bytes: u32, bits: u32) -> Result<u64, RecordError> {
        let at = self.pos;
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.u8().map_err(|_| RecordError::Truncated { at })?;
            let shift = 7 * i;
            let payload = u64::from(b & 0x7f);
            // Bits that would land above `bits` make the number too big for its type.
            if shift + 7 > bits && payload >> (bits - shift) != 0 {
                return Err(RecordError::InvalidVarint { at });
            }
            value |= payload << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::InvalidVarint { at })
    }

    /// Kafka's varint: zigzag i32, at most 5 bytes.
    fn varint(&mut self) -> Result<i32, RecordError> {
        let raw = self.unsigned_varint(5, 32)? as u32;
        Ok((raw >> 1) as i32 ^ -((raw & 1) as i32))
    }

    /// Kafka's varlong: zigzag i64, at most 10 bytes.
    fn varlong(&mut self) -> Result<i64, RecordError> {
        let raw = self.unsigned_varint(10, 64)?;
        Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .pos
            .checked_add(len)
            .ok_or(RecordError::Truncated { at: self.pos })?;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or(RecordError::Truncated { at: self.pos })?;
        self.pos = end;
        Ok(b)
    }

    /// A varint length that must not be negative.
    fn length(&mut self) -> Result<usize, RecordError> {
        let at = self.pos;
        let length = self.varint()?;
        usize::try_from(length).map_err(|_| RecordError::InvalidLength { at, length })
    }

    /// Varint length then bytes; -1 means null, any other negative length is corrupt.
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, RecordError> {
        let at = self.pos;
        match self.varint()? {
            -1 => Ok(None),
            length if length < 0 => Err(RecordError::InvalidLength { at, length }),
            length => self.bytes(length as usize).map(Some),
        }
    }

    /// One header: a non-null key (Kafka refuses null header keys) and a nullable value.
    fn header(&mut self) -> Result<(&'a [u8], Option<&'a [u8]>), RecordError> {
        let key_len = self.length()?;
        let key = self.bytes(key_len)?;
        let value = self.nullable_bytes()?;
        Ok((key, value))
    }
}

/// One record, borrowing its key, value and headers from the records section.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record attributes; unused by Kafka and normally 0.
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    headers: Headers<'a>,
    raw: &'a [u8],
}

impl<'a> Record<'a> {
    /// The record headers, in order. Keys are UTF-8 by convention but not checked.
    pub fn headers(&self) -> Headers<'a> {
        self.headers
    }

    /// The record's exact encoding, length prefix included. Its deltas are relative to
    /// the batch's base offset and timestamp, so the cleaner can copy kept records
    /// verbatim into a new batch with the same base.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("attributes", &self.attributes)
            .field("timestamp_delta", &self.timestamp_delta)
            .field("offset_delta", &self.offset_delta)
            .field("key", &self.key)
            .field("value", &self.value)
            .field("headers", &self.headers)
            .finish()
    }
}

/// Iterator over a record's headers as `(key, value)`; a `None` value is a null header
/// value. The headers were validated when the record was decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    buf: &'a [u8],
    remaining: usize,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let mut c = Cursor {
            buf: self.buf,
            pos: 0,
        };
        match c.header() {
            Ok(h) => {
                self.buf = &self.buf[c.pos..];
                self.remaining -= 1;
                Some(h)
            }
            // Unreachable: the record decoder validated every header.
            Err(_) => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Headers<'_> {}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

/// Decode the record starting at `pos`. Returns it and the position after it. As in
/// Kafka, the fields must use exactly the record's declared length.
fn decode_record(buf: &[u8], pos: usize) -> Result<(Record<'_>, usize), RecordError> {
    let mut c = Cursor { buf, pos };
    let length = c.length()?;
    let body_start = c.pos;
    let end = body_start
        .checked_add(length)
        .filter(|&end| end <= buf.len())
        .ok_or(RecordError::Truncated { at: pos })?;
    // Bound the body so that no field reads into the next record.
    let mut c = Cursor {
        buf: &buf[..end],
        pos: body_start,
    };
    let attributes = c.u8()? as i8;
    let timestamp_delta = c.varlong()?;
    let offset_delta = c.varint()?;
    let key = c.nullable_bytes()?;
    let value = c.nullable_bytes()?;
    let count_at = c.pos;
    let count = c.varint()?;
    let header_count = usize::try_from(count).map_err(|_| RecordError::InvalidHeaderCount {
        at: count_at,
        count,
    })?;
    let headers_start = c.pos;
    // Each header takes at least two bytes, so a huge count stops at the record's end.
    for _ in 0..header_count {
        c.header()?;
    }
    let headers = Headers {
        buf: &buf[headers_start..c.pos],
        remaining: header_count,
    };
    if c.pos != end {
        return Err(RecordError::SizeMismatch {
            at: pos,
            declared: length,
            used: c.pos - body_start,
        });
    }
    let record = Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
        raw: &buf[pos..end],
    };
    Ok((record, end))
}

/// Iterates over the records of an (uncompressed) records section, expecting exactly
/// `record_count` of them, as the batch header declares. Like Kafka, it reports missing
/// records and bytes left over after the last one. Stops after the first error.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    expected: usize,
    found: usize,
    done: bool,
}

impl<'a> RecordIter<'a> {
    pub fn new(section: &'a [u8], record_count: usize) -> Self {
        RecordIter {
            buf: section,
            pos: 0,
            expected: record_count,
            found: 0,
            done: false,
        }
    }

    /// Byte position of the next record within the section.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.found == self.expected {
            self.done = true;
            let left = self.buf.len() - self.pos;
            return (left > 0).then_some(Err(RecordError::TrailingBytes(left)));
        }
        if self.pos == self.buf.len() {
            self.done = true;
            return Some(Err(RecordError::MissingRecords {
                expected: self.expected,
                found: self.found,
            }));
        }
        match decode_record(self.buf, self.pos) {
            Ok((record, next)) => {
                self.pos = next;
                self.found += 1;
                Some(Ok(record))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            // The remaining records, or fewer plus one error.
            (0, Some((self.expected - self.found).saturating_add(1)))
        }
    }
}

/// The records of one batch, decompressed if needed. Borrows the batch when it is
/// uncompressed, owns the decompressed bytes otherwise.
#[derive(Debug, Clone)]
pub struct DecodedRecords<'a> {
    header: BatchHeader,
    section: Cow<'a, [u8]>,
}

/// Open the records of the batch at the start of `batch`, decompressing the section
/// after the 61-byte header into at most `max_decompressed` bytes. The batch should
/// already have passed `validate_batch` (this does not check the CRC).
pub fn batch_records(
    batch: &[u8],
    max_decompressed: usize,
) -> Result<DecodedRecords<'_>, RecordError> {
    let header = BatchHeader::parse(batch)?;
    if header.record_count < 0 {
        return Err(RecordError::InvalidRecordCount(header.record_count));
    }
    let body = batch
        .get(BATCH_HEADER_LEN..header.total_len())
        .ok_or(RecordError::Truncated { at: 0 })?;
    let codec = header
        .compression()
        .ok_or(RecordError::UnknownCompression(header.attributes & 0x07))?;
    let section = match codec {
        Compression::None => Cow::Borrowed(body),
        codec => Cow::Owned(compression::decompress(codec, body, max_decompressed)?),
    };
    Ok(DecodedRecords { header, section })
}

impl<'a> DecodedRecords<'a> {
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The uncompressed records section.
    pub fn section(&self) -> &[u8] {
        &self.section
    }

    /// The records, as many as the header's record count; errors if the data disagrees.
    pub fn records(&self) -> RecordIter<'_> {
        // record_count was checked non-negative in batch_records.
        RecordIter::new(&self.section, self.header.record_count.max(0) as usize)
    }

    /// Number of records the header declares.
    pub fn len(&self) -> usize {
        self.header.record_count.max(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record's absolute offset: baseOffset + offsetDelta. Wraps like Java's long
    /// arithmetic on nonsense input instead of panicking.
    pub fn offset(&self, record: &Record<'_>) -> i64 {
        self.header
            .base_offset
            .wrapping_add(i64::from(record.offset_delta))
    }

    /// The record's timestamp: for LogAppendTime batches the broker's append time held
    /// in maxTimestamp, otherwise baseTimestamp + timestampDelta (CreateTime).
    pub fn timestamp(&self, record: &Record<'_>) -> i64 {
        if self.header.is_log_append_time() {
            self.header.max_timestamp
        } else {
            self.header
                .base_timestamp
                .wrapping_add(record.timestamp_delta)
        }
    }

    /// Detach from the batch bytes.
    pub fn into_owned(self) -> DecodedRecords<'static> {
        DecodedRecords {
            header: self.header,
            section: Cow::Owned(self.section.into_owned()),
        }
    }
}

/// Why `build_batch` could not encode a batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    #[error("a batch needs at least one record")]
    NoRecords,
    #[error("{0} records do not fit in one batch")]
    TooManyRecords(usize),
    #[error("record timestamps overflow an i64")]
    TimestampOverflow,
    #[error("a batch of {0} bytes does not fit the i32 batch length")]
    TooLarge(usize),
    #[error(transparent)]
    Compression(#[from] CompressionError),
}

/// Encode `records` as one v2 batch compressed with `compression`: offsets 0..n as
/// offset deltas, timestamps `base_timestamp + timestamp_delta` (CreateTime), correct
/// lastOffsetDelta, maxTimestamp, attributes and CRC-32C. The base offset is 0 and the
/// partition leader epoch -1; the broker assigns both.
pub fn build_batch(
    compression: Compression,
    base_timestamp: i64,
    records: &[builder::Record<'_>],
    producer: ProducerFields,
) -> Result<Vec<u8>, BuildError> {
    if records.is_empty() {
        return Err(BuildError::NoRecords);
    }
    let count =
        i32::try_from(records.len()).map_err(|_| BuildError::TooManyRecords(records.len()))?;
    let mut max_timestamp = i64::MIN;
    for r in records {
        let ts = base_timestamp
            .checked_add(r.timestamp_delta)
            .ok_or(BuildError::TimestampOverflow)?;
        max_timestamp = max_timestamp.max(ts);
    }
    let section = builder::encode_records(records);
    // Readers decode record lengths as i32 varints and batches as i32 lengths.
    let limit = i32::MAX as usize - (BATCH_HEADER_LEN - LOG_OVERHEAD);
    if section.len() > limit {
        return Err(BuildError::TooLarge(section.len() + BATCH_HEADER_LEN));
    }
    let compressed = compression::compress(compression, &section)?;
    if compressed.len() > limit {
        return Err(BuildError::TooLarge(compressed.len() + BATCH_HEADER_LEN));
    }
    Ok(builder::encode_batch(
        0,
        compression.attribute_bits(),
        count - 1,
        base_timestamp,
        max_timestamp,
        producer,
        count,
        &compressed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::builder::Record as NewRecord;
    use crate::record_batch::{validate_batch, Strictness};
    use proptest::prelude::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    const MAX: usize = 64 << 20;

    /// An owned record to compare against what the decoder returns.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Owned {
        timestamp_delta: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(String, Option<Vec<u8>>)>,
    }

    impl Owned {
        fn as_new(&self) -> NewRecord<'_> {
            NewRecord {
                timestamp_delta: self.timestamp_delta,
                key: self.key.as_deref(),
                value: self.value.as_deref(),
                headers: self
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_deref()))
                    .collect(),
            }
        }
    }

    fn owned(r: &Record<'_>) -> Owned {
        Owned {
            timestamp_delta: r.timestamp_delta,
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
            headers: r
                .headers()
                .map(|(k, v)| {
                    (
                        String::from_utf8(k.to_vec()).expect("utf8"),
                        v.map(<[u8]>::to_vec),
                    )
                })
                .collect(),
        }
    }

    /// build_batch → validate_batch → batch_records, checking every field.
    fn round_trip(codec: Compression, base_ts: i64, records: &[Owned], producer: ProducerFields) {
        let new: Vec<NewRecord<'_>> = records.iter().map(Owned::as_new).collect();
        let batch = build_batch(codec, base_ts, &new, producer).expect("build");
        let header = validate_batch(&batch, Strictness::Produce).expect("valid");
        assert_eq!(header.total_len(), batch.len());
        assert_eq!(header.compression(), Some(codec));
        assert_eq!(header.record_count as usize, records.len());
        assert_eq!(header.last_offset_delta as usize, records.len() - 1);
        assert_eq!(header.base_timestamp, base_ts);
        let max_ts = records.iter().map(|r| base_ts + r.timestamp_delta).max();
        assert_eq!(Some(header.max_timestamp), max_ts);
        assert_eq!(header.producer_id, producer.producer_id);
        assert_eq!(header.producer_epoch, producer.producer_epoch);
        assert_eq!(header.base_sequence, producer.base_sequence);
        assert!(!header.is_transactional() && !header.is_control() && !header.is_log_append_time());

        let decoded = batch_records(&batch, MAX).expect("records");
        assert_eq!(decoded.len(), records.len());
        let got: Vec<Record<'_>> = decoded.records().collect::<Result<_, _>>().expect("decode");
        assert_eq!(got.len(), records.len());
        for (i, (r, want)) in got.iter().zip(records).enumerate() {
            assert_eq!(&owned(r), want, "{codec:?} record {i}");
            assert_eq!(r.offset_delta as usize, i);
            assert_eq!(r.attributes, 0);
            assert_eq!(decoded.offset(r), i as i64);
            assert_eq!(decoded.timestamp(r), base_ts + want.timestamp_delta);
            assert_eq!(r.headers().len(), want.headers.len());
        }
        // The raw encodings tile the section exactly.
        let raw_total: usize = got.iter().map(|r| r.raw().len()).sum();
        assert_eq!(raw_total, decoded.section().len());
    }

    fn rec(
        ts: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Owned {
        Owned {
            timestamp_delta: ts,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
        }
    }

    #[test]
    fn round_trip_every_codec() {
        let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
        let records = vec![
            rec(0, Some(b"key"), Some(b"value"), &[]),
            rec(1, None, Some(b"null key"), &[]),
            rec(2, Some(b"tombstone"), None, &[]),
            rec(3, Some(b""), Some(b""), &[]),
            rec(
                -5,
                None,
                None,
                &[("h1", Some(b"v1")), ("null", None), ("empty", Some(b""))],
            ),
            rec(
                1_000_000,
                Some(b"big"),
                Some(&big),
                &[("", Some(b"empty key"))],
            ),
            rec(7, Some(&[0xFF; 300]), Some(b"long key"), &[]),
        ];
        let producer = ProducerFields {
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 17,
        };
        for codec in CODECS {
            round_trip(codec, 1_700_000_000_000, &records, producer);
            round_trip(codec, 5, &records[..1], ProducerFields::NONE);
        }
    }

    #[test]
    fn compressed_batches_are_smaller() {
        let value = vec![b'x'; 10_000];
        let records = vec![
            NewRecord {
                value: Some(&value),
                ..Default::default()
            };
            10
        ];
        let plain =
            build_batch(Compression::None, 0, &records, ProducerFields::NONE).expect("plain");
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = build_batch(codec, 0, &records, ProducerFields::NONE).expect("packed");
            assert!(packed.len() < plain.len() / 10, "{codec:?}");
            // The CRC covers the compressed bytes.
            validate_batch(&packed, Strictness::Produce).expect("valid");
        }
    }

    #[test]
    fn build_batch_refusals() {
        assert_eq!(
            build_batch(Compression::None, 0, &[], ProducerFields::NONE),
            Err(BuildError::NoRecords)
        );
        let r = [NewRecord {
            timestamp_delta: 1,
            ..Default::default()
        }];
        assert_eq!(
            build_batch(Compression::None, i64::MAX, &r, ProducerFields::NONE),
            Err(BuildError::TimestampOverflow)
        );
    }

    #[test]
    fn log_append_time_uses_max_timestamp() {
        let records = [NewRecord {
            timestamp_delta: 3,
            value: Some(b"v"),
            ..Default::default()
        }];
        let section = builder::encode_records(&records);
        let batch =
            builder::encode_batch(100, 0x08, 0, 10, 99_999, ProducerFields::NONE, 1, &section);
        let decoded = batch_records(&batch, MAX).expect("records");
        let r = decoded.records().next().expect("one").expect("ok");
        assert_eq!(decoded.timestamp(&r), 99_999);
        assert_eq!(decoded.offset(&r), 100);
    }

    #[test]
    fn decompression_is_capped() {
        let value = vec![0u8; 1 << 20];
        let records = [NewRecord {
            value: Some(&value),
            ..Default::default()
        }];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = build_batch(codec, 0, &records, ProducerFields::NONE).expect("build");
            assert!(matches!(
                batch_records(&batch, 64 << 10),
                Err(RecordError::Compression(CompressionError::TooLarge { .. }))
            ));
        }
    }

    #[test]
    fn unknown_codec_is_refused() {
        let section = builder::encode_records(&[NewRecord::default()]);
        let batch = builder::encode_batch(0, 5, 0, 0, 0, ProducerFields::NONE, 1, &section);
        assert_eq!(
            batch_records(&batch, MAX).err(),
            Some(RecordError::UnknownCompression(5))
        );
    }

    /// Hand-encoded records, to check the decoder against the format rather than
    /// against our own encoder.
    #[test]
    fn decodes_hand_encoded_record() {
        #[rustfmt::skip]
        let section = [
            0x1C,             // length 14
            0x00,             // attributes
            0x03,             // timestampDelta -2
            0x02,             // offsetDelta 1
            0x01,             // key null
            0x06, b'a', b'b', b'c', // value "abc"
            0x04,             // 2 headers
            0x02, b'k',       // key "k"
            0x01,             // value null
            0x00,             // key ""
            0x00,             // value ""
        ];
        let mut it = RecordIter::new(&section, 1);
        let r = it.next().expect("one").expect("ok");
        assert_eq!(r.timestamp_delta, -2);
        assert_eq!(r.offset_delta, 1);
        assert_eq!(r.key, None);
        assert_eq!(r.value, Some(&b"abc"[..]));
        let headers: Vec<_> = r.headers().collect();
        assert_eq!(headers, vec![(&b"k"[..], None), (&b""[..], Some(&b""[..]))]);
        assert_eq!(r.raw(), &section[..]);
        assert!(it.next().is_none());
    }

    fn encode_varlong(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return out;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    #[test]
    fn varint_bounds() {
        let read_int = |b: &[u8]| Cursor { buf: b, pos: 0 }.varint();
        let read_long = |b: &[u8]| Cursor { buf: b, pos: 0 }.varlong();
        for v in [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            assert_eq!(read_int(&encode_varlong(v.into())), Ok(v));
        }
        for v in [0, -1, i64::MAX, i64::MIN, 1 << 40] {
            assert_eq!(read_long(&encode_varlong(v)), Ok(v));
        }
        // Non-canonical but in range (Kafka accepts these).
        assert_eq!(read_int(&[0x80, 0x00]), Ok(0));
        // i32::MIN zigzags to 0xFFFF_FFFF: fifth byte 0x0F is the most allowed.
        assert_eq!(read_int(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), Ok(i32::MIN));
        assert!(matches!(
            read_int(&[0xFF, 0xFF, 0xFF, 0xFF, 0x1F]),
            Err(RecordError::InvalidVarint { .. })
        ));
        assert!(matches!(
            read_int(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(RecordError::InvalidVarint { .. })
        ));
        assert!(matches!(
            read_int(&[0x80, 0x80]),
            Err(RecordError::Truncated { at: 0 })
        ));
        let mut long_max = vec![0xFF; 9];
        long_max.push(0x01);
        assert_eq!(read_long(&long_max), Ok(i64::MIN));
        long_max[9] = 0x02;
        assert!(matches!(
            read_long(&long_max),
            Err(RecordError::InvalidVarint { .. })
        ));
    }

    #[test]
    fn rejects_malformed_sections() {
        let good = builder::encode_records(&[
            NewRecord {
                key: Some(b"k"),
                value: Some(b"v"),
                ..Default::default()
            },
            NewRecord {
                value: Some(b"w"),
                ..Default::default()
            },
        ]);
        fn collect(b: &[u8], n: usize) -> Vec<Result<Record<'_>, RecordError>> {
            RecordIter::new(b, n).collect()
        }
        // Fewer records than declared.
        let items = collect(&good, 3);
        assert_eq!(
            items.last(),
            Some(&Err(RecordError::MissingRecords {
                expected: 3,
                found: 2
            }))
        );
        // More bytes than the declared records use.
        let items = collect(&good, 1);
        assert!(matches!(
            items.last(),
            Some(Err(RecordError::TrailingBytes(_)))
        ));
        // Every strict prefix fails somewhere.
        for cut in 0..good.len() {
            assert!(
                collect(&good[..cut], 2).iter().any(Result::is_err),
                "cut {cut}"
            );
        }
        // A negative length other than -1 for the key: -2 zigzags to 0x03.
        let mut bad = good.clone();
        assert_eq!(bad[4], 0x02); // key length 1 (after length, attributes, ts, offset)
        bad[4] = 0x03;
        assert!(matches!(
            collect(&bad, 2)[0],
            Err(RecordError::InvalidLength { length: -2, .. })
        ));
        // Negative record length.
        assert!(matches!(
            collect(&[0x01], 1)[0],
            Err(RecordError::InvalidLength { length: -1, .. })
        ));
        // A record whose length covers more than its fields.
        let mut padded = vec![good[0] + 2];
        padded.extend_from_slice(&good[1..=usize::from(good[0] / 2)]);
        padded.push(0);
        assert!(matches!(
            collect(&padded, 1)[0],
            Err(RecordError::SizeMismatch { .. })
        ));
        // Negative header count (-1 zigzags to 0x01) and a null header key.
        let one = builder::encode_records(&[NewRecord::default()]);
        let mut neg = one.clone();
        *neg.last_mut().expect("count") = 0x01;
        assert!(matches!(
            collect(&neg, 1)[0],
            Err(RecordError::InvalidHeaderCount { count: -1, .. })
        ));
        let with_header = builder::encode_records(&[NewRecord {
            headers: vec![("k", None)],
            ..Default::default()
        }]);
        let mut null_key = with_header.clone();
        let at = with_header.len() - 3; // [count][key len][k][value len]
        assert_eq!(null_key[at], 0x02);
        null_key[at] = 0x01;
        null_key.remove(at + 1);
        null_key[0] -= 2;
        assert!(matches!(
            collect(&null_key, 1)[0],
            Err(RecordError::InvalidLength { length: -1, .. })
        ));
    }

    #[test]
    fn huge_declared_counts_are_lazy() {
        let one = builder::encode_records(&[NewRecord::default()]);
        let items: Vec<_> = RecordIter::new(&one, usize::MAX).collect();
        assert_eq!(items.len(), 2);
        // A header count of i32::MAX in a tiny record stops at the record's end.
        let mut huge = one.clone();
        let last = huge.len() - 1;
        huge.truncate(last);
        huge.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0x0F]);
        huge[0] += 8;
        assert!(RecordIter::new(&huge, 1).next().expect("item").is_err());
    }

    fn arb_record() -> impl Strategy<Value = Owned> {
        let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40));
        (
            any::<i32>(),
            bytes(),
            bytes(),
            proptest::collection::vec(("[a-z]{0,6}", bytes()), 0..4),
        )
            .prop_map(|(ts, key, value, headers)| Owned {
                timestamp_delta: ts.into(),
                key,
                value,
                headers,
            })
    }

    fn arb_codec() -> impl Strategy<Value = Compression> {
        proptest::sample::select(CODECS.to_vec())
    }

    proptest! {
        #[test]
        fn random_records_round_trip(
            codec in arb_codec(),
            base in -1i64 << 50..1i64 << 50,
            records in proptest::collection::vec(arb_record(), 1..20),
            pid in -1i64..1000,
        ) {
            let producer = ProducerFields { producer_id: pid, producer_epoch: 0, base_sequence: 0 };
            round_trip(codec, base, &records, producer);
        }

        #[test]
        fn arbitrary_sections_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            count in 0usize..50,
        ) {
            for r in RecordIter::new(&bytes, count).flatten() {
                let _ = r.headers().count();
            }
        }

        #[test]
        fn mutated_sections_never_panic(
            records in proptest::collection::vec(arb_record(), 1..6),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let new: Vec<NewRecord<'_>> = records.iter().map(Owned::as_new).collect();
            let mut section = builder::encode_records(&new);
            for (at, x) in flips {
                let i = at % section.len();
                section[i] ^= x;
            }
            for r in RecordIter::new(&section, records.len()).flatten() {
                prop_assert!(r.headers().count() <= section.len());
            }
        }

        #[test]
        fn arbitrary_batches_never_panic(
            codec in arb_codec(),
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            count in 0i32..20,
        ) {
            let batch = builder::encode_batch(
                0, codec.attribute_bits(), count.max(1) - 1, 0, 0, ProducerFields::NONE, count, &bytes,
            );
            if let Ok(decoded) = batch_records(&batch, 4096) {
                let _ = decoded.records().count();
            }
        }
    }
}

/// What a control batch's record says (Kafka's `ControlRecordType`): the type in its
/// key, an i16 version then an i16 type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort,
    Commit,
    /// A type this broker does not know (Kafka ignores these too).
    Unknown(i16),
}

/// The type of the control batch at the start of `batch`, or `None` when it is not a
/// readable control batch. Kafka writes control batches uncompressed with one record.
pub fn control_record_type(batch: &[u8]) -> Option<ControlRecordType> {
    let decoded = batch_records(batch, 1 << 16).ok()?;
    if !decoded.header().is_control() {
        return None;
    }
    let record = decoded.records().next()?.ok()?;
    let key = record.key?;
    let kind = i16::from_be_bytes([*key.get(2)?, *key.get(3)?]);
    Some(match kind {
        0 => ControlRecordType::Abort,
        1 => ControlRecordType::Commit,
        other => ControlRecordType::Unknown(other),
    })
}

#[cfg(test)]
mod control_tests {
    use super::*;
    use crate::record_batch::builder::control_batch;

    #[test]
    fn control_batches_round_trip() {
        for (commit, want) in [
            (true, ControlRecordType::Commit),
            (false, ControlRecordType::Abort),
        ] {
            let b = control_batch(7, 3, commit, 0, 1_000);
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.record_count), (7, 3, 1));
            crate::record_batch::validate_batch(&b, crate::record_batch::Strictness::Produce)
                .unwrap();
            assert_eq!(control_record_type(&b), Some(want));
        }
        let plain = crate::record_batch::builder::batch_of_values(0, 1, b"x");
        assert_eq!(control_record_type(&plain), None);
        assert_eq!(control_record_type(&[0u8; 10]), None);
    }
}
