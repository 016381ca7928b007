//! The `__consumer_offsets` record formats, byte for byte as Kafka writes them.
//!
//! Keys start with an i16 version: 0 and 1 are offset commits (`OffsetCommitKey`:
//! group, topic, partition), 2 is group metadata (`GroupMetadataKey`: group), 3-8 and 16
//! are the KIP-848 consumer group records (see the section below; 4, partition metadata,
//! is read and ignored, never written). Values
//! start with their own i16 version. We write `OffsetCommitValue` v3 (offset, leader
//! epoch, metadata, commit timestamp) and `GroupMetadataValue` v3 (with
//! `currentStateTimestamp` and per-member `groupInstanceId`), as Kafka 3.x/4.x do for
//! classic groups, and read v0-v3 of both. A record with a null value is a tombstone.
//!
//! Parsing never panics: every read is bounds-checked and returns `RecordError`.

use bytes::Bytes;
use uuid::Uuid;

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
    /// `ConsumerGroupMetadataKey` (3): a KIP-848 group's epoch.
    ConsumerGroup {
        group: String,
    },
    /// `ConsumerGroupPartitionMetadataKey` (4): read and ignored (we re-read topics).
    ConsumerPartitionMetadata {
        group: String,
    },
    /// `ConsumerGroupMemberMetadataKey` (5).
    ConsumerMember {
        group: String,
        member: String,
    },
    /// `ConsumerGroupTargetAssignmentMetadataKey` (6): the assignment epoch.
    ConsumerTargetMetadata {
        group: String,
    },
    /// `ConsumerGroupTargetAssignmentMemberKey` (7).
    ConsumerTargetMember {
        group: String,
        member: String,
    },
    /// `ConsumerGroupCurrentMemberAssignmentKey` (8).
    ConsumerCurrentAssignment {
        group: String,
        member: String,
    },
    /// `ConsumerGroupRegularExpressionKey` (16): a subscribed regex's resolution.
    ConsumerRegex {
        group: String,
        regex: String,
    },
}

impl RecordKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. }
            | RecordKey::Group { group }
            | RecordKey::ConsumerGroup { group }
            | RecordKey::ConsumerPartitionMetadata { group }
            | RecordKey::ConsumerMember { group, .. }
            | RecordKey::ConsumerTargetMetadata { group }
            | RecordKey::ConsumerTargetMember { group, .. }
            | RecordKey::ConsumerCurrentAssignment { group, .. }
            | RecordKey::ConsumerRegex { group, .. } => group,
        }
    }
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
    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?[0] as i8)
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
    /// A compact (flexible-version) nullable string: length + 1 as an unsigned varint.
    fn compact_nullable_str(&mut self) -> Result<Option<String>, RecordError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let b = self.take(n as usize - 1)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| RecordError::BadString)
    }
    fn compact_str(&mut self) -> Result<String, RecordError> {
        Ok(self.compact_nullable_str()?.unwrap_or_default())
    }
    /// A compact array's length (null reads as empty); bounded by what is left, each
    /// element taking at least one byte.
    fn compact_len(&mut self) -> Result<usize, RecordError> {
        let n = self.uvarint()?;
        let n = (n as usize).saturating_sub(1);
        if n > self.buf.len() {
            return Err(RecordError::Truncated);
        }
        Ok(n)
    }
    fn uuid(&mut self) -> Result<Uuid, RecordError> {
        let b = self.take(16)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(Uuid::from_bytes(a))
    }
    /// Skip a tagged-fields section (we write none and need none of Kafka's).
    fn skip_tags(&mut self) -> Result<(), RecordError> {
        let n = self.uvarint()?;
        for _ in 0..n {
            let _tag = self.uvarint()?;
            let len = self.uvarint()?;
            self.take(len as usize)?;
        }
        Ok(())
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
        3 => Ok(RecordKey::ConsumerGroup { group: r.str()? }),
        4 => Ok(RecordKey::ConsumerPartitionMetadata { group: r.str()? }),
        5 => Ok(RecordKey::ConsumerMember {
            group: r.str()?,
            member: r.str()?,
        }),
        6 => Ok(RecordKey::ConsumerTargetMetadata { group: r.str()? }),
        7 => Ok(RecordKey::ConsumerTargetMember {
            group: r.str()?,
            member: r.str()?,
        }),
        8 => Ok(RecordKey::ConsumerCurrentAssignment {
            group: r.str()?,
            member: r.str()?,
        }),
        16 => Ok(RecordKey::ConsumerRegex {
            group: r.str()?,
            regex: r.str()?,
        }),
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

// ----- KIP-848 consumer group records -----
//
// Keys (non-flexible): i16 record type 3..=8 or 16, then the group id (and member id
// or regex).
// Values: i16 version 0, then the fields in the flexible encoding (compact strings and
// arrays, a tagged-fields section closing every struct), as in Kafka's
// `ConsumerGroup*Value.json` schemas.

fn key_with(kind: i16, group: &str, member: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + group.len() + member.map_or(0, str::len));
    put_i16(&mut out, kind);
    put_str(&mut out, group);
    if let Some(m) = member {
        put_str(&mut out, m);
    }
    out
}
pub fn consumer_group_key(group: &str) -> Vec<u8> {
    key_with(3, group, None)
}
pub fn consumer_member_key(group: &str, member: &str) -> Vec<u8> {
    key_with(5, group, Some(member))
}
pub fn consumer_target_metadata_key(group: &str) -> Vec<u8> {
    key_with(6, group, None)
}
pub fn consumer_target_member_key(group: &str, member: &str) -> Vec<u8> {
    key_with(7, group, Some(member))
}
pub fn consumer_current_assignment_key(group: &str, member: &str) -> Vec<u8> {
    key_with(8, group, Some(member))
}
pub fn consumer_regex_key(group: &str, regex: &str) -> Vec<u8> {
    key_with(16, group, Some(regex))
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
fn put_compact_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_uvarint(out, 0),
        Some(s) => {
            let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
            put_uvarint(out, b.len() as u32 + 1);
            out.extend_from_slice(b);
        }
    }
}
fn put_compact_str(out: &mut Vec<u8>, s: &str) {
    put_compact_nullable_str(out, Some(s));
}
fn put_topic_partitions(out: &mut Vec<u8>, tps: &[(Uuid, Vec<i32>)]) {
    put_uvarint(out, tps.len() as u32 + 1);
    for (id, ps) in tps {
        out.extend_from_slice(id.as_bytes());
        put_uvarint(out, ps.len() as u32 + 1);
        for p in ps {
            put_i32(out, *p);
        }
        put_uvarint(out, 0);
    }
}
fn read_topic_partitions(r: &mut Reader<'_>) -> Result<Vec<(Uuid, Vec<i32>)>, RecordError> {
    let n = r.compact_len()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.uuid()?;
        let np = r.compact_len()?;
        let mut ps = Vec::with_capacity(np);
        for _ in 0..np {
            ps.push(r.i32()?);
        }
        r.skip_tags()?;
        out.push((id, ps));
    }
    Ok(out)
}
fn value_version(r: &mut Reader<'_>, what: &'static str) -> Result<(), RecordError> {
    match r.i16()? {
        0 => Ok(()),
        version => Err(RecordError::Version { what, version }),
    }
}

/// `ConsumerGroupMetadataValue` and `ConsumerGroupTargetAssignmentMetadataValue`: one
/// epoch each.
pub fn encode_epoch_value(epoch: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(7);
    put_i16(&mut out, 0);
    put_i32(&mut out, epoch);
    put_uvarint(&mut out, 0);
    out
}
pub fn decode_epoch_value(value: &[u8]) -> Result<i32, RecordError> {
    let mut r = Reader { buf: value };
    value_version(&mut r, "ConsumerGroup epoch value")?;
    let epoch = r.i32()?;
    r.skip_tags()?;
    Ok(epoch)
}

/// `ConsumerGroupMemberMetadataValue` v0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerMemberValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

pub fn encode_consumer_member_value(v: &ConsumerMemberValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_i16(&mut out, 0);
    put_compact_nullable_str(&mut out, v.instance_id.as_deref());
    put_compact_nullable_str(&mut out, v.rack_id.as_deref());
    put_compact_str(&mut out, &v.client_id);
    put_compact_str(&mut out, &v.client_host);
    put_uvarint(&mut out, v.subscribed_topic_names.len() as u32 + 1);
    for t in &v.subscribed_topic_names {
        put_compact_str(&mut out, t);
    }
    put_compact_nullable_str(&mut out, v.subscribed_topic_regex.as_deref());
    put_i32(&mut out, v.rebalance_timeout_ms);
    put_compact_nullable_str(&mut out, v.server_assignor.as_deref());
    put_uvarint(&mut out, 0);
    out
}

pub fn decode_consumer_member_value(value: &[u8]) -> Result<ConsumerMemberValue, RecordError> {
    let mut r = Reader { buf: value };
    value_version(&mut r, "ConsumerGroupMemberMetadataValue")?;
    let instance_id = r.compact_nullable_str()?;
    let rack_id = r.compact_nullable_str()?;
    let client_id = r.compact_str()?;
    let client_host = r.compact_str()?;
    let n = r.compact_len()?;
    let mut subscribed_topic_names = Vec::with_capacity(n);
    for _ in 0..n {
        subscribed_topic_names.push(r.compact_str()?);
    }
    let v = ConsumerMemberValue {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex: r.compact_nullable_str()?,
        rebalance_timeout_ms: r.i32()?,
        server_assignor: r.compact_nullable_str()?,
    };
    r.skip_tags()?;
    Ok(v)
}

/// `ConsumerGroupTargetAssignmentMemberValue` v0: partitions by topic id.
pub fn encode_target_member_value(tps: &[(Uuid, Vec<i32>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    put_i16(&mut out, 0);
    put_topic_partitions(&mut out, tps);
    put_uvarint(&mut out, 0);
    out
}
pub fn decode_target_member_value(value: &[u8]) -> Result<Vec<(Uuid, Vec<i32>)>, RecordError> {
    let mut r = Reader { buf: value };
    value_version(&mut r, "ConsumerGroupTargetAssignmentMemberValue")?;
    let tps = read_topic_partitions(&mut r)?;
    r.skip_tags()?;
    Ok(tps)
}

/// `ConsumerGroupCurrentMemberAssignmentValue` v0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState`: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    pub assigned: Vec<(Uuid, Vec<i32>)>,
    pub pending_revocation: Vec<(Uuid, Vec<i32>)>,
}

pub fn encode_current_assignment_value(v: &CurrentAssignmentValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    put_i16(&mut out, 0);
    put_i32(&mut out, v.member_epoch);
    put_i32(&mut out, v.previous_member_epoch);
    out.push(v.state as u8);
    put_topic_partitions(&mut out, &v.assigned);
    put_topic_partitions(&mut out, &v.pending_revocation);
    put_uvarint(&mut out, 0);
    out
}
pub fn decode_current_assignment_value(
    value: &[u8],
) -> Result<CurrentAssignmentValue, RecordError> {
    let mut r = Reader { buf: value };
    value_version(&mut r, "ConsumerGroupCurrentMemberAssignmentValue")?;
    let v = CurrentAssignmentValue {
        member_epoch: r.i32()?,
        previous_member_epoch: r.i32()?,
        state: r.i8()?,
        assigned: read_topic_partitions(&mut r)?,
        pending_revocation: read_topic_partitions(&mut r)?,
    };
    r.skip_tags()?;
    Ok(v)
}

/// `ConsumerGroupRegularExpressionValue` v0: what a regex resolved to, the topic
/// metadata version it was resolved against and when (ms).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegexValue {
    pub topics: Vec<String>,
    pub version: i64,
    pub timestamp_ms: i64,
}

pub fn encode_regex_value(v: &RegexValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + v.topics.iter().map(|t| t.len() + 1).sum::<usize>());
    put_i16(&mut out, 0);
    put_uvarint(&mut out, v.topics.len() as u32 + 1);
    for t in &v.topics {
        put_compact_str(&mut out, t);
    }
    put_i64(&mut out, v.version);
    put_i64(&mut out, v.timestamp_ms);
    put_uvarint(&mut out, 0);
    out
}

pub fn decode_regex_value(value: &[u8]) -> Result<RegexValue, RecordError> {
    let mut r = Reader { buf: value };
    value_version(&mut r, "ConsumerGroupRegularExpressionValue")?;
    let n = r.compact_len()?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(r.compact_str()?);
    }
    let v = RegexValue {
        topics,
        version: r.i64()?,
        timestamp_ms: r.i64()?,
    };
    r.skip_tags()?;
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

    #[test]
    fn consumer_group_records_round_trip_and_never_panic() {
        let t1 = Uuid::from_u128(1);
        let t2 = Uuid::from_u128(2);
        let keys = [
            (
                consumer_group_key("g"),
                RecordKey::ConsumerGroup { group: "g".into() },
            ),
            (
                consumer_member_key("g", "m"),
                RecordKey::ConsumerMember {
                    group: "g".into(),
                    member: "m".into(),
                },
            ),
            (
                consumer_target_metadata_key("g"),
                RecordKey::ConsumerTargetMetadata { group: "g".into() },
            ),
            (
                consumer_target_member_key("g", "m"),
                RecordKey::ConsumerTargetMember {
                    group: "g".into(),
                    member: "m".into(),
                },
            ),
            (
                consumer_current_assignment_key("g", "m"),
                RecordKey::ConsumerCurrentAssignment {
                    group: "g".into(),
                    member: "m".into(),
                },
            ),
        ];
        for (k, want) in &keys {
            assert_eq!(&decode_key(k).unwrap(), want);
            for cut in 0..k.len() {
                assert!(decode_key(&k[..cut]).is_err());
            }
        }
        assert_eq!(&consumer_member_key("g", "m")[..2], &[0, 5]);

        let e = encode_epoch_value(7);
        assert_eq!(e, vec![0, 0, 0, 0, 0, 7, 0]);
        assert_eq!(decode_epoch_value(&e).unwrap(), 7);

        let mv = ConsumerMemberValue {
            instance_id: Some("i".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 300_000,
            server_assignor: Some("uniform".into()),
        };
        let b = encode_consumer_member_value(&mv);
        // version 0, instance id "i" (compact: length + 1), rack id null.
        assert_eq!(&b[..5], &[0, 0, 2, b'i', 0]);
        assert_eq!(decode_consumer_member_value(&b).unwrap(), mv);

        let tps = vec![(t1, vec![0, 2]), (t2, vec![])];
        let tb = encode_target_member_value(&tps);
        assert_eq!(decode_target_member_value(&tb).unwrap(), tps);

        let cv = CurrentAssignmentValue {
            member_epoch: 5,
            previous_member_epoch: 4,
            state: 1,
            assigned: vec![(t1, vec![1])],
            pending_revocation: vec![(t2, vec![3, 4])],
        };
        let cb = encode_current_assignment_value(&cv);
        assert_eq!(decode_current_assignment_value(&cb).unwrap(), cv);

        for v in [&e, &b, &tb, &cb] {
            for cut in 0..v.len() {
                let x = &v[..cut];
                let _ = decode_epoch_value(x);
                let _ = decode_consumer_member_value(x);
                let _ = decode_target_member_value(x);
                let _ = decode_current_assignment_value(x);
            }
        }
        for cut in 0..cb.len() {
            assert!(decode_current_assignment_value(&cb[..cut]).is_err());
        }
        for cut in 0..b.len() {
            assert!(decode_consumer_member_value(&b[..cut]).is_err());
        }
        // A huge array length with nothing behind it.
        let bad = [0u8, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode_target_member_value(&bad).is_err());
        // Unknown tagged fields are skipped.
        let mut tagged = encode_epoch_value(3);
        tagged.pop();
        tagged.extend_from_slice(&[1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(decode_epoch_value(&tagged).unwrap(), 3);
    }

    #[test]
    fn regex_records_round_trip_and_layout() {
        let k = consumer_regex_key("g", "o.*");
        assert_eq!(k, vec![0, 16, 0, 1, b'g', 0, 3, b'o', b'.', b'*']);
        assert_eq!(
            decode_key(&k).unwrap(),
            RecordKey::ConsumerRegex {
                group: "g".into(),
                regex: "o.*".into()
            }
        );
        for cut in 0..k.len() {
            assert!(decode_key(&k[..cut]).is_err());
        }
        let v = RegexValue {
            topics: vec!["o1".into(), "o2".into()],
            version: 7,
            timestamp_ms: 1000,
        };
        let b = encode_regex_value(&v);
        // version 0, two compact strings, the two i64s, no tagged fields.
        let mut want = vec![0, 0, 3, 3, b'o', b'1', 3, b'o', b'2'];
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&1000i64.to_be_bytes());
        want.push(0);
        assert_eq!(b, want);
        assert_eq!(decode_regex_value(&b).unwrap(), v);
        for cut in 0..b.len() {
            assert!(decode_regex_value(&b[..cut]).is_err());
        }
        let empty = RegexValue::default();
        assert_eq!(
            decode_regex_value(&encode_regex_value(&empty)).unwrap(),
            empty
        );
        // A huge topic count with nothing behind it.
        assert!(decode_regex_value(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        // The member's regex round-trips in its metadata record.
        let mv = ConsumerMemberValue {
            subscribed_topic_regex: Some("o.*".into()),
            ..Default::default()
        };
        let mb = encode_consumer_member_value(&mv);
        assert_eq!(decode_consumer_member_value(&mb).unwrap(), mv);
    }
}
