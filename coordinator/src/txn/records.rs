//! The `__transaction_state` record formats, byte for byte as Kafka writes them
//! (`TransactionLogKey.json`, `TransactionLogValue.json`).
//!
//! - Key: an i16 version (0) and the transactional id as a string (i16 length).
//! - Value: an i16 version. v0 (not flexible): producer id i64, producer epoch i16,
//!   timeout i32, status i8, a nullable array (i32 count) of (topic string, partitions
//!   i32 array), last update i64, start i64. v1 (flexible, what Kafka 4 writes): the same
//!   fields with compact strings and arrays (unsigned varint length + 1) and tagged-field
//!   sections after each partition entry and at the end; the tags are
//!   PreviousProducerId (0, i64, default -1), NextProducerId (1, i64, default -1) and
//!   ClientTransactionVersion (2, i16, default 0), written only when not the default.
//! - A null value is a tombstone: the transactional id expired.
//!
//! The partitions are null in the Empty state, as Kafka writes them. Parsing never
//! panics and allocates no more than the bytes present.

use std::collections::{BTreeMap, BTreeSet};

/// A transaction's partitions: topic → partition ids (in order, each topic once).
pub type TxnPartitions = BTreeMap<String, BTreeSet<i32>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record truncated")]
    Truncated,
    #[error("unsupported {what} version {version}")]
    Version { what: &'static str, version: i16 },
    #[error("invalid string")]
    BadString,
    #[error("unknown transaction status {0}")]
    Status(i8),
}

/// Kafka's `TransactionState`, with its ids (the status byte) and names (what
/// DescribeTransactions and ListTransactions show).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.get(usize::try_from(id).ok()?).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Kafka's `isExpirationAllowed`: a transactional id idle in these states may expire.
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// A transactional id's metadata as stored (`TransactionLogValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    /// v1 tag 0; -1 when absent.
    pub previous_producer_id: i64,
    /// v1 tag 1; -1 when absent.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: TxnPartitions,
    pub last_update_ms: i64,
    pub start_ms: i64,
    /// v1 tag 2: the client's transaction version (0 when absent).
    pub client_transaction_version: i16,
}

/// The key of `transactional_id`'s records.
pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&0i16.to_be_bytes());
    put_str(&mut out, transactional_id);
    out
}

/// The transactional id a key names.
pub fn decode_key(key: &[u8]) -> Result<String, RecordError> {
    let mut r = Reader { buf: key };
    match r.i16()? {
        0 => r.str(),
        version => Err(RecordError::Version {
            what: "transaction log key",
            version,
        }),
    }
}

/// The topics that have partitions, in order.
fn by_topic(partitions: &TxnPartitions) -> impl Iterator<Item = (&str, &BTreeSet<i32>)> {
    partitions
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (t.as_str(), ps))
}

/// `TransactionLogValue` v1, as Kafka 4 writes it.
pub fn encode_value(v: &TxnValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&1i16.to_be_bytes());
    out.extend_from_slice(&v.producer_id.to_be_bytes());
    out.extend_from_slice(&v.producer_epoch.to_be_bytes());
    out.extend_from_slice(&v.timeout_ms.to_be_bytes());
    out.push(v.state.id() as u8);
    if v.state == TxnState::Empty {
        put_uvarint(&mut out, 0);
    } else {
        put_uvarint(&mut out, by_topic(&v.partitions).count() as u32 + 1);
        for (t, ps) in by_topic(&v.partitions) {
            put_uvarint(&mut out, t.len() as u32 + 1);
            out.extend_from_slice(t.as_bytes());
            put_uvarint(&mut out, ps.len() as u32 + 1);
            for p in ps.iter() {
                out.extend_from_slice(&p.to_be_bytes());
            }
            put_uvarint(&mut out, 0);
        }
    }
    out.extend_from_slice(&v.last_update_ms.to_be_bytes());
    out.extend_from_slice(&v.start_ms.to_be_bytes());
    let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
    if v.previous_producer_id != -1 {
        tags.push((0, v.previous_producer_id.to_be_bytes().to_vec()));
    }
    if v.next_producer_id != -1 {
        tags.push((1, v.next_producer_id.to_be_bytes().to_vec()));
    }
    if v.client_transaction_version != 0 {
        tags.push((2, v.client_transaction_version.to_be_bytes().to_vec()));
    }
    put_uvarint(&mut out, tags.len() as u32);
    for (tag, data) in tags {
        put_uvarint(&mut out, tag);
        put_uvarint(&mut out, data.len() as u32);
        out.extend_from_slice(&data);
    }
    out
}

/// `TransactionLogValue` v0 (what Kafka before 4 writes; v0 has no tagged fields).
pub fn encode_value_v0(v: &TxnValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&v.producer_id.to_be_bytes());
    out.extend_from_slice(&v.producer_epoch.to_be_bytes());
    out.extend_from_slice(&v.timeout_ms.to_be_bytes());
    out.push(v.state.id() as u8);
    if v.state == TxnState::Empty {
        out.extend_from_slice(&(-1i32).to_be_bytes());
    } else {
        let n = by_topic(&v.partitions).count() as i32;
        out.extend_from_slice(&n.to_be_bytes());
        for (t, ps) in by_topic(&v.partitions) {
            put_str(&mut out, t);
            out.extend_from_slice(&(ps.len() as i32).to_be_bytes());
            for p in ps.iter() {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
    }
    out.extend_from_slice(&v.last_update_ms.to_be_bytes());
    out.extend_from_slice(&v.start_ms.to_be_bytes());
    out
}

/// A value of either version. The partitions of an Empty transaction are ignored, as
/// Kafka ignores them.
pub fn decode_value(value: &[u8]) -> Result<TxnValue, RecordError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    if !(0..=1).contains(&version) {
        return Err(RecordError::Version {
            what: "transaction log value",
            version,
        });
    }
    let flexible = version >= 1;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = r.i8()?;
    let state = TxnState::from_id(status).ok_or(RecordError::Status(status))?;
    // Each topic's name is kept once, so what is allocated stays proportional to the
    // bytes read.
    let mut partitions = TxnPartitions::new();
    let topics = if flexible {
        r.compact_len()?
    } else {
        r.array_len(6)?
    };
    for _ in 0..topics.unwrap_or(0) {
        let topic = if flexible { r.compact_str()? } else { r.str()? };
        let n = if flexible {
            r.compact_len()?
        } else {
            r.array_len(4)?
        };
        let mut ps = BTreeSet::new();
        for _ in 0..n.unwrap_or(0) {
            ps.insert(r.i32()?);
        }
        if state != TxnState::Empty && !ps.is_empty() {
            partitions.entry(topic).or_default().extend(ps);
        }
        if flexible {
            r.skip_tags()?;
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    let mut v = TxnValue {
        producer_id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
        client_transaction_version: 0,
    };
    if flexible {
        let n = r.uvarint()?;
        for _ in 0..n {
            let tag = r.uvarint()?;
            let len = r.uvarint()? as usize;
            let mut data = Reader { buf: r.take(len)? };
            match tag {
                0 => v.previous_producer_id = data.i64()?,
                1 => v.next_producer_id = data.i64()?,
                2 => v.client_transaction_version = data.i16()?,
                _ => {}
            }
        }
    }
    Ok(v)
}

// ----- encoding helpers -----

/// A (non-compact) string: i16 length. Callers keep strings within i16::MAX bytes (the
/// coordinator refuses longer transactional ids; topic names are at most 249 bytes).
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len().min(i16::MAX as usize) as i16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

// ----- reading -----

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return Err(RecordError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn utf8(b: &[u8]) -> Result<String, RecordError> {
        String::from_utf8(b.to_vec()).map_err(|_| RecordError::BadString)
    }
    /// A non-nullable string (i16 length).
    fn str(&mut self) -> Result<String, RecordError> {
        let n = self.i16()?;
        if n < 0 {
            return Err(RecordError::BadString);
        }
        Self::utf8(self.take(n as usize)?)
    }
    fn uvarint(&mut self) -> Result<u32, RecordError> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.take(1)?[0];
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::Truncated)
    }
    fn compact_str(&mut self) -> Result<String, RecordError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Err(RecordError::BadString);
        }
        Self::utf8(self.take(n as usize - 1)?)
    }
    /// A nullable array's count (i32, -1 for null), bounded by what is left at
    /// `min_size` bytes an element.
    fn array_len(&mut self, min_size: usize) -> Result<Option<usize>, RecordError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        if (n as usize).saturating_mul(min_size) > self.buf.len() {
            return Err(RecordError::Truncated);
        }
        Ok(Some(n as usize))
    }
    /// A compact nullable array's count (length + 1, 0 for null), bounded by what is left
    /// (each element takes at least one byte).
    fn compact_len(&mut self) -> Result<Option<usize>, RecordError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let n = n as usize - 1;
        if n > self.buf.len() {
            return Err(RecordError::Truncated);
        }
        Ok(Some(n))
    }
    fn skip_tags(&mut self) -> Result<(), RecordError> {
        let n = self.uvarint()?;
        for _ in 0..n {
            let _tag = self.uvarint()?;
            let len = self.uvarint()?;
            self.take(len as usize)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(state: TxnState, parts: &[(&str, i32)]) -> TxnValue {
        TxnValue {
            producer_id: 0x0102030405060708,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state,
            partitions: parts.iter().fold(TxnPartitions::new(), |mut m, (t, p)| {
                m.entry(t.to_string()).or_default().insert(*p);
                m
            }),
            last_update_ms: 1000,
            start_ms: 900,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn key_layout() {
        let k = encode_key("tx");
        assert_eq!(k, vec![0, 0, 0, 2, b't', b'x']);
        assert_eq!(decode_key(&k).unwrap(), "tx");
        assert!(matches!(
            decode_key(&[0, 1, 0, 0]),
            Err(RecordError::Version { version: 1, .. })
        ));
        assert_eq!(decode_key(&[0, 0, 0, 5, b'a']), Err(RecordError::Truncated));
    }

    #[test]
    fn status_ids_and_names() {
        for (i, s) in TxnState::ALL.iter().enumerate() {
            assert_eq!(s.id() as usize, i);
            assert_eq!(TxnState::from_id(i as i8), Some(*s));
            assert_eq!(TxnState::from_name(s.name()), Some(*s));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::from_id(-1), None);
        assert_eq!(TxnState::PrepareEpochFence.name(), "PrepareEpochFence");
    }

    #[test]
    fn v0_layout_against_the_schema() {
        let v = value(TxnState::Ongoing, &[("a", 1), ("a", 2), ("bc", 0)]);
        let mut want = vec![0, 0]; // version 0
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // ProducerId
        want.extend_from_slice(&[0, 3]); // ProducerEpoch
        want.extend_from_slice(&60_000i32.to_be_bytes()); // TransactionTimeoutMs
        want.push(1); // TransactionStatus: Ongoing
        want.extend_from_slice(&[0, 0, 0, 2]); // two topics
        want.extend_from_slice(&[0, 1, b'a', 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
        want.extend_from_slice(&[0, 2, b'b', b'c', 0, 0, 0, 1, 0, 0, 0, 0]);
        want.extend_from_slice(&1000i64.to_be_bytes()); // TransactionLastUpdateTimestampMs
        want.extend_from_slice(&900i64.to_be_bytes()); // TransactionStartTimestampMs
        assert_eq!(encode_value_v0(&v), want);
        assert_eq!(decode_value(&want).unwrap(), v);
    }

    #[test]
    fn v1_layout_against_the_schema() {
        let mut v = value(TxnState::PrepareCommit, &[("a", 1), ("a", 2)]);
        v.previous_producer_id = 5;
        v.next_producer_id = 9;
        v.client_transaction_version = 2;
        let mut want = vec![0, 1]; // version 1
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(2); // PrepareCommit
        want.push(2); // compact array: one topic
        want.extend_from_slice(&[2, b'a']); // compact string "a"
        want.extend_from_slice(&[3, 0, 0, 0, 1, 0, 0, 0, 2]); // two partition ids
        want.push(0); // the entry's tagged fields
        want.extend_from_slice(&1000i64.to_be_bytes());
        want.extend_from_slice(&900i64.to_be_bytes());
        want.push(3); // three tagged fields, in tag order
        want.extend_from_slice(&[0, 8, 0, 0, 0, 0, 0, 0, 0, 5]);
        want.extend_from_slice(&[1, 8, 0, 0, 0, 0, 0, 0, 0, 9]);
        want.extend_from_slice(&[2, 2, 0, 2]);
        assert_eq!(encode_value(&v), want);
        assert_eq!(decode_value(&want).unwrap(), v);
    }

    #[test]
    fn v1_defaults_write_no_tags_and_empty_is_null() {
        let v = value(TxnState::Empty, &[]);
        let b = encode_value(&v);
        // ... status 0, null partitions (0), two timestamps, no tags (0).
        assert_eq!(b[16], 0);
        assert_eq!(b[17], 0);
        assert_eq!(b.len(), 2 + 8 + 2 + 4 + 1 + 1 + 16 + 1);
        assert_eq!(*b.last().unwrap(), 0);
        assert_eq!(decode_value(&b).unwrap(), v);
        let b0 = encode_value_v0(&v);
        assert_eq!(&b0[17..21], &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode_value(&b0).unwrap(), v);
        // A completed transaction has an empty (not null) partition array.
        let c = value(TxnState::CompleteCommit, &[]);
        let b = encode_value(&c);
        assert_eq!(b[17], 1);
        assert_eq!(decode_value(&b).unwrap(), c);
    }

    #[test]
    fn unknown_tags_are_skipped_and_round_trips_hold() {
        let v = value(TxnState::CompleteAbort, &[]);
        let mut b = encode_value(&v);
        let last = b.len() - 1;
        b[last] = 1; // one tagged field: tag 7, 3 bytes
        b.extend_from_slice(&[7, 3, 1, 2, 3]);
        assert_eq!(decode_value(&b).unwrap(), v);
        for state in TxnState::ALL {
            let mut v = value(state, &[("t", 0), ("u", 7)]);
            if state == TxnState::Empty {
                v.partitions.clear();
            }
            v.next_producer_id = 77;
            assert_eq!(decode_value(&encode_value(&v)).unwrap(), v);
            v.next_producer_id = -1;
            assert_eq!(decode_value(&encode_value_v0(&v)).unwrap(), v);
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Bytes written by Kafka 4.4.0's generated `TransactionLogKey`/`TransactionLogValue`
    /// through `MessageUtil.toVersionPrefixedBytes`, for the same values.
    #[test]
    fn matches_bytes_kafka_wrote() {
        let mut v = value(TxnState::PrepareCommit, &[("a", 1), ("a", 2)]);
        v.previous_producer_id = 5;
        v.next_producer_id = 9;
        v.client_transaction_version = 2;
        let kafka_v1 = unhex(
            "0001010203040506070800030000ea60020202610300000001000000020000000000000003e8\
             000000000000038403000800000000000000050108000000000000000902020002",
        );
        assert_eq!(encode_value(&v), kafka_v1);
        assert_eq!(decode_value(&kafka_v1).unwrap(), v);
        v.previous_producer_id = -1;
        v.next_producer_id = -1;
        v.client_transaction_version = 0;
        let kafka_v0 = unhex(
            "0000010203040506070800030000ea60020000000100016100000002000000010000000200000000\
             000003e80000000000000384",
        );
        assert_eq!(encode_value_v0(&v), kafka_v0);
        assert_eq!(decode_value(&kafka_v0).unwrap(), v);
        let empty = TxnValue {
            producer_id: 7,
            producer_epoch: 0,
            last_update_ms: 1,
            start_ms: -1,
            ..value(TxnState::Empty, &[])
        };
        let kafka_empty =
            unhex("0001000000000000000700000000ea6000000000000000000001ffffffffffffffff00");
        assert_eq!(encode_value(&empty), kafka_empty);
        assert_eq!(encode_key("tx"), unhex("000000027478"));
    }

    #[test]
    fn garbage_never_panics() {
        let v = value(TxnState::Ongoing, &[("topic", 1), ("topic", 2), ("x", 3)]);
        for enc in [encode_value(&v), encode_value_v0(&v)] {
            for cut in 0..enc.len() {
                assert!(decode_value(&enc[..cut]).is_err(), "cut {cut}");
            }
            for i in 0..enc.len() {
                for b in [0x00, 0x7f, 0x80, 0xff] {
                    let mut e = enc.clone();
                    e[i] = b;
                    let _ = decode_value(&e);
                }
            }
        }
        // A long topic name with many partitions is kept once.
        let mut big = value(TxnState::Ongoing, &[]);
        let topic = "t".repeat(30_000);
        big.partitions
            .insert(topic.clone(), (0..5_000).collect::<BTreeSet<i32>>());
        let enc = encode_value(&big);
        assert!(enc.len() < 60_000);
        let back = decode_value(&enc).unwrap();
        assert_eq!(back.partitions.len(), 1);
        assert_eq!(back.partitions[&topic].len(), 5_000);
        // The same topic twice (not what we write) merges.
        let mut v0 = encode_value_v0(&value(TxnState::Ongoing, &[("a", 1)]));
        let at = 17;
        v0[at..at + 4].copy_from_slice(&2i32.to_be_bytes());
        let entry = [0, 1, b'a', 0, 0, 0, 1, 0, 0, 0, 2];
        v0.splice(at + 4 + 11..at + 4 + 11, entry);
        let merged = decode_value(&v0).unwrap();
        assert_eq!(merged.partitions["a"], BTreeSet::from([1, 2]));
        // Huge declared counts are refused before anything is allocated.
        let mut b = encode_value_v0(&v);
        b[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_value(&b), Err(RecordError::Truncated));
        assert!(matches!(
            decode_value(&[0, 9]),
            Err(RecordError::Version { version: 9, .. })
        ));
        let mut b = encode_value(&v);
        b[16] = 42;
        assert_eq!(decode_value(&b), Err(RecordError::Status(42)));
    }
}
