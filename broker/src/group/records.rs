//! The `__consumer_offsets` record formats, byte for byte as Kafka writes them.
//!
//! Keys start with an i16 version: 0 and 1 are offset commits (`OffsetCommitKey`:
//! group, topic, partition), 2 is group metadata (`GroupMetadataKey`: group). Values
//! start with their own i16 version. We write `OffsetCommitValue` v3 (offset, leader
//! epoch, metadata, commit timestamp) and `GroupMetadataValue` v3 (with
//! `currentStateTimestamp` and per-member `groupInstanceId`), as Kafka 3.x/4.x do for
//! classic groups, and read v0-v3 of both. A record with a null value is a tombstone.
//!
//! Parsing never panics: every read is bounds-checked and returns `RecordError`.

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record truncated")]
    Truncated,
    #[error("unsupported {what} version {version}")]
    Version { what: &'static str, version: i16 },
    #[error("invalid string")]
    BadString,
}

/// Which record a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// A committed offset as stored (`OffsetCommitValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when unknown (written as such in v3; older versions have none).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only v1 carries it; -1 otherwise.
    pub expire_timestamp: i64,
}

/// One member in `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A classic group as stored (`GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

pub const OFFSET_VALUE_VERSION: i16 = 3;
pub const GROUP_VALUE_VERSION: i16 = 3;

// ----- writing -----

fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Kafka strings are at most i16::MAX bytes; longer ones are cut (callers bound them).
    let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    put_i16(out, b.len() as i16);
    out.extend_from_slice(b);
}
fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_i16(out, -1),
        Some(s) => put_str(out, s),
    }
}
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_i32(out, b.len() as i32);
    out.extend_from_slice(b);
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + topic.len());
    put_i16(&mut out, 1);
    put_str(&mut out, group);
    put_str(&mut out, topic);
    put_i32(&mut out, partition);
    out
}

pub fn group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    put_i16(&mut out, 2);
    put_str(&mut out, group);
    out
}

pub fn encode_offset_value(v: &OffsetValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + v.metadata.len());
    put_i16(&mut out, OFFSET_VALUE_VERSION);
    put_i64(&mut out, v.offset);
    put_i32(&mut out, v.leader_epoch);
    put_str(&mut out, &v.metadata);
    put_i64(&mut out, v.commit_timestamp);
    out
}

pub fn encode_group_value(v: &GroupValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_i16(&mut out, GROUP_VALUE_VERSION);
    put_str(&mut out, &v.protocol_type);
    put_i32(&mut out, v.generation);
    put_nullable_str(&mut out, v.protocol.as_deref());
    put_nullable_str(&mut out, v.leader.as_deref());
    put_i64(&mut out, v.current_state_timestamp);
    put_i32(&mut out, v.members.len() as i32);
    for m in &v.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.group_instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        put_i32(&mut out, m.rebalance_timeout_ms);
        put_i32(&mut out, m.session_timeout_ms);
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
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
    fn nullable_str(&mut self) -> Result<Option<String>, RecordError> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let b = self.take(n as usize)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| RecordError::BadString)
    }
    fn str(&mut self) -> Result<String, RecordError> {
        Ok(self.nullable_str()?.unwrap_or_default())
    }
    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(n as usize)?))
    }
}

pub fn decode_key(key: &[u8]) -> Result<RecordKey, RecordError> {
    let mut r = Reader { buf: key };
    match r.i16()? {
        0 | 1 => Ok(RecordKey::Offset {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        }),
        2 => Ok(RecordKey::Group { group: r.str()? }),
        version => Err(RecordError::Version {
            what: "key",
            version,
        }),
    }
}

pub fn decode_offset_value(value: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    let mut v = OffsetValue {
        offset: r.i64()?,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: -1,
        expire_timestamp: -1,
    };
    match version {
        0 => {
            v.metadata = r.str()?;
            v.commit_timestamp = r.i64()?;
        }
        1 => {
            v.metadata = r.str()?;
            v.commit_timestamp = r.i64()?;
            v.expire_timestamp = r.i64()?;
        }
        2 => {
            v.metadata = r.str()?;
            v.commit_timestamp = r.i64()?;
        }
        3 => {
            v.leader_epoch = r.i32()?;
            v.metadata = r.str()?;
            v.commit_timestamp = r.i64()?;
        }
        version => {
            return Err(RecordError::Version {
                what: "OffsetCommitValue",
                version,
            })
        }
    }
    Ok(v)
}

pub fn decode_group_value(value: &[u8]) -> Result<GroupValue, RecordError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::Version {
            what: "GroupMetadataValue",
            version,
        });
    }
    let mut v = GroupValue {
        protocol_type: r.str()?,
        generation: r.i32()?,
        protocol: r.nullable_str()?,
        leader: r.nullable_str()?,
        current_state_timestamp: -1,
        members: Vec::new(),
    };
    if version >= 2 {
        v.current_state_timestamp = r.i64()?;
    }
    let n = r.i32()?;
    for _ in 0..n.max(0) {
        // Each member takes at least 18 bytes; a count larger than what is left is
        // corrupt (and would otherwise only fail slowly).
        if r.buf.is_empty() {
            return Err(RecordError::Truncated);
        }
        let member_id = r.str()?;
        let group_instance_id = if version >= 3 {
            r.nullable_str()?
        } else {
            None
        };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        if version == 0 {
            // v0 has no rebalance timeout: Kafka uses the session timeout.
        }
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        v.members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(v)
}

/// Java's `String.hashCode`: over UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h
}

/// The `__consumer_offsets` partition of `group`: `Utils.abs(hashCode) % partitions`,
/// where `Utils.abs(Integer.MIN_VALUE)` is 0.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_java() {
        // Values from java.lang.String#hashCode.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(java_string_hash("console-consumer-12345"), 158455506);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99162322 % 50);
        assert_eq!(partition_for("console-consumer-12345", 50), 158455506 % 50);
    }

    #[test]
    fn offset_key_layout() {
        let k = offset_key("g", "t", 7);
        assert_eq!(k, vec![0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        assert_eq!(
            decode_key(&k).unwrap(),
            RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7
            }
        );
        let g = group_key("grp");
        assert_eq!(g, vec![0, 2, 0, 3, b'g', b'r', b'p']);
        assert_eq!(
            decode_key(&g).unwrap(),
            RecordKey::Group {
                group: "grp".into()
            }
        );
    }

    #[test]
    fn offset_value_round_trip_and_layout() {
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 1000,
            expire_timestamp: -1,
        };
        let b = encode_offset_value(&v);
        let mut want = vec![0, 3];
        want.extend_from_slice(&42i64.to_be_bytes());
        want.extend_from_slice(&3i32.to_be_bytes());
        want.extend_from_slice(&[0, 1, b'm']);
        want.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(b, want);
        assert_eq!(decode_offset_value(&b).unwrap(), v);
        // v1 (with expire timestamp), as old Kafka wrote it.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&5i64.to_be_bytes());
        v1.extend_from_slice(&[0, 0]);
        v1.extend_from_slice(&7i64.to_be_bytes());
        v1.extend_from_slice(&9i64.to_be_bytes());
        let d = decode_offset_value(&v1).unwrap();
        assert_eq!(
            (
                d.offset,
                d.leader_epoch,
                d.commit_timestamp,
                d.expire_timestamp
            ),
            (5, -1, 7, 9)
        );
    }

    #[test]
    fn group_value_round_trip() {
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 123,
            members: vec![
                MemberValue {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300000,
                    session_timeout_ms: 45000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                },
                MemberValue {
                    member_id: "m2".into(),
                    ..Default::default()
                },
            ],
        };
        let b = encode_group_value(&v);
        assert_eq!(&b[..2], &[0, 3]);
        assert_eq!(decode_group_value(&b).unwrap(), v);
        let empty = GroupValue {
            protocol_type: "consumer".into(),
            generation: 1,
            ..Default::default()
        };
        assert_eq!(
            decode_group_value(&encode_group_value(&empty)).unwrap(),
            empty
        );
    }

    #[test]
    fn truncated_input_is_an_error_never_a_panic() {
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 123,
            members: vec![MemberValue {
                member_id: "m1".into(),
                subscription: Bytes::from_static(b"sub"),
                ..Default::default()
            }],
        };
        let b = encode_group_value(&v);
        for cut in 0..b.len() {
            assert!(decode_group_value(&b[..cut]).is_err());
        }
        let o = encode_offset_value(&OffsetValue {
            offset: 1,
            leader_epoch: 1,
            metadata: "x".into(),
            commit_timestamp: 1,
            expire_timestamp: -1,
        });
        for cut in 0..o.len() {
            assert!(decode_offset_value(&o[..cut]).is_err());
        }
        let k = offset_key("g", "t", 1);
        for cut in 0..k.len() {
            assert!(decode_key(&k[..cut]).is_err());
        }
        // A huge member count with nothing behind it.
        let mut bad = vec![0, 3, 0, 0, 0, 0, 0, 1, 255, 255, 255, 255];
        bad.extend_from_slice(&0i64.to_be_bytes());
        bad.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_group_value(&bad).is_err());
    }
}
