//! The consumer: assign/seek and `poll`.
//!
//! Positions start unresolved (earliest, latest, a timestamp, or the reset policy) and
//! are resolved with ListOffsets before the next fetch. `poll` sends one Fetch per
//! leader for all assigned partitions, decodes the batches with
//! `records::batch_records` (decompressing under `max_decompressed_bytes`), drops
//! records before the position (a fetch returns whole batches) and control batches,
//! and advances the position past each batch. OFFSET_OUT_OF_RANGE applies the reset
//! policy.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages as m;
use kafka_protocol::ResponseError;
use runnel_protocol::record_batch::{BatchHeader, BATCH_HEADER_LEN};
use runnel_protocol::records::batch_records;

use crate::admin::{self, OffsetSpec};
use crate::client::{topic_name, Client};
use crate::error::{Error, Result};
use crate::group::{GroupConfig, Membership};
use crate::TopicPartition;

/// What to do when there is no valid position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Return an error from `poll`.
    None,
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub auto_offset_reset: OffsetReset,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: i32,
    pub max_partition_fetch_bytes: i32,
    /// Cap on a decompressed batch.
    pub max_decompressed_bytes: usize,
    /// 0 read_uncommitted, 1 read_committed.
    pub isolation_level: i8,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Latest,
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 << 20,
            max_partition_fetch_bytes: 1 << 20,
            max_decompressed_bytes: 64 << 20,
            isolation_level: 0,
        }
    }
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Offset(i64),
    Lookup(OffsetSpec),
    Reset,
}

/// A consumer of explicitly assigned partitions.
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    positions: BTreeMap<TopicPartition, Position>,
    high_watermarks: BTreeMap<TopicPartition, i64>,
    group: Option<Membership>,
}

impl Consumer {
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            positions: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
            group: None,
        }
    }

    /// Join a classic consumer group subscribed to `topics` (range assignor). The join
    /// happens in the next `poll`, which then also heartbeats and rejoins on a
    /// rebalance; assigned partitions start at the group's committed offsets, else at
    /// the reset policy. Call [`Consumer::commit_group`] to commit positions and
    /// [`Consumer::close`] to leave.
    pub fn subscribe(&mut self, config: GroupConfig, topics: &[&str]) {
        self.positions.clear();
        self.group = Some(Membership::new(
            config,
            topics.iter().map(|t| t.to_string()).collect(),
        ));
    }

    /// The member id and generation while in a group.
    pub fn group_member(&self) -> Option<(String, i32)> {
        self.group
            .as_ref()
            .filter(|g| !g.needs_join)
            .map(|g| (g.member_id.clone(), g.generation))
    }

    /// Commit the current positions as this group member (its generation and member id).
    pub async fn commit_group(&self) -> Result<()> {
        let g = self
            .group
            .as_ref()
            .ok_or_else(|| Error::Other("not subscribed to a group".into()))?;
        let offsets = self.current_offsets();
        admin::commit_offsets(
            &self.client,
            &g.config.group_id,
            g.generation,
            &g.member_id,
            &offsets,
        )
        .await
    }

    /// Leave the group, if in one.
    pub async fn close(mut self) -> Result<()> {
        match self.group.as_mut() {
            Some(g) => g.leave(&self.client).await,
            None => Ok(()),
        }
    }

    fn current_offsets(&self) -> Vec<(TopicPartition, i64)> {
        self.positions
            .iter()
            .filter_map(|(tp, p)| match p {
                Position::Offset(o) => Some((tp.clone(), *o)),
                _ => None,
            })
            .collect()
    }

    async fn maintain_group(&mut self) -> Result<()> {
        let Some(mut g) = self.group.take() else {
            return Ok(());
        };
        let result = async {
            g.maybe_heartbeat(&self.client).await?;
            if g.needs_join {
                let tps = g.join(&self.client).await?;
                self.positions.clear();
                self.assign(tps);
                let group = g.config.group_id.clone();
                self.seek_to_committed(&group).await?;
            }
            Ok(())
        }
        .await;
        self.group = Some(g);
        result
    }

    /// Replace the assignment. New partitions start from the reset policy.
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let old = std::mem::take(&mut self.positions);
        for tp in partitions {
            let pos = old.get(&tp).copied().unwrap_or(Position::Reset);
            self.positions.insert(tp, pos);
        }
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// Assign every partition of `topic`.
    pub async fn assign_topic(&mut self, topic: &str) -> Result<()> {
        let meta = self.client.topic(topic).await?;
        let mut tps = self.assignment();
        tps.extend(
            meta.partitions
                .iter()
                .map(|p| TopicPartition::new(topic, p.partition)),
        );
        self.assign(tps);
        Ok(())
    }

    /// Next fetch of `tp` starts at `offset`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        self.set(tp, Position::Offset(offset))
    }

    pub fn seek_to_beginning(&mut self, tp: &TopicPartition) -> Result<()> {
        self.set(tp, Position::Lookup(OffsetSpec::Earliest))
    }

    pub fn seek_to_end(&mut self, tp: &TopicPartition) -> Result<()> {
        self.set(tp, Position::Lookup(OffsetSpec::Latest))
    }

    /// Next fetch of `tp` starts at the first record with timestamp ≥ `ms` (the end if
    /// none).
    pub fn seek_to_timestamp(&mut self, tp: &TopicPartition, ms: i64) -> Result<()> {
        self.set(tp, Position::Lookup(OffsetSpec::Timestamp(ms)))
    }

    fn set(&mut self, tp: &TopicPartition, pos: Position) -> Result<()> {
        match self.positions.get_mut(tp) {
            Some(p) => {
                *p = pos;
                Ok(())
            }
            None => Err(Error::Other(format!(
                "{}-{} is not assigned",
                tp.topic, tp.partition
            ))),
        }
    }

    /// The offset of the next record to fetch, once resolved.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        match self.positions.get(tp) {
            Some(Position::Offset(o)) => Some(*o),
            _ => None,
        }
    }

    /// The high watermark from the last fetch of `tp`.
    pub fn high_watermark(&self, tp: &TopicPartition) -> Option<i64> {
        self.high_watermarks.get(tp).copied()
    }

    /// Start from the group's committed offsets where it has them.
    pub async fn seek_to_committed(&mut self, group: &str) -> Result<()> {
        let tps = self.assignment();
        let committed = admin::fetch_group_offsets(&self.client, group, Some(&tps)).await?;
        for (tp, offset) in committed {
            self.seek(&tp, offset)?;
        }
        Ok(())
    }

    /// Commit the current positions for `group` (admin-style, generation -1).
    pub async fn commit(&self, group: &str) -> Result<()> {
        let offsets = self.current_offsets();
        admin::commit_offsets(&self.client, group, -1, "", &offsets).await
    }

    async fn resolve_positions(&mut self) -> Result<()> {
        let mut specs = Vec::new();
        for (tp, pos) in &self.positions {
            let spec = match pos {
                Position::Offset(_) => continue,
                Position::Lookup(spec) => *spec,
                Position::Reset => match self.config.auto_offset_reset {
                    OffsetReset::Earliest => OffsetSpec::Earliest,
                    OffsetReset::Latest => OffsetSpec::Latest,
                    OffsetReset::None => {
                        return Err(Error::Other(format!(
                            "no position for {}-{} and no reset policy",
                            tp.topic, tp.partition
                        )))
                    }
                },
            };
            specs.push((tp.clone(), spec));
        }
        if specs.is_empty() {
            return Ok(());
        }
        let found = admin::list_offsets(&self.client, &specs, self.config.isolation_level).await?;
        for (tp, spec) in specs {
            let offset = match found.get(&tp) {
                Some(o) if o.offset >= 0 => o.offset,
                // No record at or after the timestamp: the end of the log.
                _ if matches!(spec, OffsetSpec::Timestamp(_)) => {
                    let end = admin::list_offsets(
                        &self.client,
                        &[(tp.clone(), OffsetSpec::Latest)],
                        self.config.isolation_level,
                    )
                    .await?;
                    end.get(&tp).map_or(0, |o| o.offset)
                }
                _ => return Err(Error::Protocol(format!("no offset for {tp:?}"))),
            };
            self.positions.insert(tp, Position::Offset(offset));
        }
        Ok(())
    }

    /// Fetch records, waiting up to `timeout` for at least `fetch_min_bytes`.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        self.maintain_group().await?;
        if self.positions.is_empty() {
            tokio::time::sleep(timeout).await;
            return Ok(Vec::new());
        }
        match self.resolve_positions().await {
            Ok(()) => {}
            Err(e) if e.is_retriable() => {
                tracing::debug!("resolving positions failed, retrying on the next poll: {e}");
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        }
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, i64)>> = BTreeMap::new();
        for (tp, pos) in &self.positions {
            if let Position::Offset(o) = pos {
                let leader = self.client.leader(&tp.topic, tp.partition).await?;
                by_leader.entry(leader).or_default().push((tp.clone(), *o));
            }
        }
        // The broker may hold the fetch this long; stay well inside the request timeout.
        let request_timeout = self.client.config().connection.request_timeout;
        let wait_ms = timeout
            .min(request_timeout / 2)
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let mut out = Vec::new();
        for (leader, parts) in by_leader {
            let mut topics: BTreeMap<&str, Vec<m::fetch_request::FetchPartition>> = BTreeMap::new();
            for (tp, offset) in &parts {
                topics.entry(&tp.topic).or_default().push(
                    m::fetch_request::FetchPartition::default()
                        .with_partition(tp.partition)
                        .with_fetch_offset(*offset)
                        .with_partition_max_bytes(self.config.max_partition_fetch_bytes),
                );
            }
            let request = m::FetchRequest::default()
                .with_replica_id(m::BrokerId(-1))
                .with_max_wait_ms(wait_ms)
                .with_min_bytes(self.config.fetch_min_bytes)
                .with_max_bytes(self.config.fetch_max_bytes)
                .with_isolation_level(self.config.isolation_level)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            m::fetch_request::FetchTopic::default()
                                .with_topic(topic_name(t))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            let fetched = async {
                let conn = self.client.node_connection(leader).await?;
                conn.call::<m::FetchResponse>(request).await
            }
            .await;
            let response = match fetched {
                Ok(r) => r,
                // Network trouble: the next poll reconnects (as Java's poll does).
                Err(e) if e.is_retriable() => {
                    tracing::debug!(leader, "fetch failed, retrying on the next poll: {e}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            crate::error::check(response.error_code, None, || "fetch".into())?;
            for t in response.responses {
                let topic = t.topic.0.to_string();
                for p in t.partitions {
                    let tp = TopicPartition::new(topic.clone(), p.partition_index);
                    let Some(Position::Offset(position)) = self.positions.get(&tp).copied() else {
                        continue;
                    };
                    match ResponseError::try_from_code(p.error_code) {
                        None => {}
                        Some(ResponseError::OffsetOutOfRange) => {
                            match self.config.auto_offset_reset {
                                OffsetReset::None => {
                                    return Err(Error::Kafka {
                                        code: p.error_code,
                                        context: format!(
                                            "fetch {topic}-{} at {position}",
                                            tp.partition
                                        ),
                                        message: None,
                                    })
                                }
                                _ => {
                                    self.positions.insert(tp, Position::Reset);
                                }
                            }
                            continue;
                        }
                        Some(e) if e.is_retriable() => {
                            self.client.invalidate(&topic);
                            continue;
                        }
                        Some(_) => {
                            return Err(Error::Kafka {
                                code: p.error_code,
                                context: format!("fetch {topic}-{}", tp.partition),
                                message: None,
                            })
                        }
                    }
                    self.high_watermarks.insert(tp.clone(), p.high_watermark);
                    if let Some(records) = p.records {
                        let next = decode_records(
                            &tp,
                            records,
                            position,
                            self.config.max_decompressed_bytes,
                            &mut out,
                        )?;
                        self.positions.insert(tp, Position::Offset(next));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Decode the whole batches in `records` into `out`, skipping records before
/// `position`. Returns the next position. A partial batch at the end is ignored.
fn decode_records(
    tp: &TopicPartition,
    records: Bytes,
    mut position: i64,
    max_decompressed: usize,
    out: &mut Vec<ConsumerRecord>,
) -> Result<i64> {
    let mut at = 0usize;
    while records.len() - at >= BATCH_HEADER_LEN {
        let buf = &records[at..];
        // Header fields only: a fetch may end in a cut-off batch, skipped below.
        let header = match BatchHeader::parse_fixed(buf) {
            Ok(h) => h,
            Err(e) => return Err(Error::Protocol(format!("batch at {tp:?}: {e}"))),
        };
        let total = header.total_len();
        if total > buf.len() {
            break; // partial batch at the end of the fetch
        }
        at += total;
        if header.magic != 2 {
            return Err(Error::Protocol(format!(
                "unsupported magic {} in {tp:?}",
                header.magic
            )));
        }
        let batch = &buf[..total];
        if runnel_protocol::record_batch::compute_crc(batch) != header.crc {
            return Err(Error::Protocol(format!(
                "CRC mismatch in batch at offset {} of {}-{}",
                header.base_offset, tp.topic, tp.partition
            )));
        }
        let last = header.last_offset();
        if last < position {
            continue;
        }
        if !header.is_control() {
            let decoded = batch_records(batch, max_decompressed)
                .map_err(|e| Error::Protocol(format!("batch at {tp:?}: {e}")))?;
            for r in decoded.records() {
                let r = r.map_err(|e| Error::Protocol(format!("record in {tp:?}: {e}")))?;
                let offset = decoded.offset(&r);
                if offset < position {
                    continue;
                }
                out.push(ConsumerRecord {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset,
                    timestamp: decoded.timestamp(&r),
                    key: r.key.map(<[u8]>::to_vec),
                    value: r.value.map(<[u8]>::to_vec),
                    headers: r
                        .headers()
                        .map(|(k, v)| {
                            (
                                String::from_utf8_lossy(k).into_owned(),
                                v.map(<[u8]>::to_vec),
                            )
                        })
                        .collect(),
                });
            }
        }
        position = position.max(last.saturating_add(1));
    }
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_protocol::record_batch::builder::batch_of_values;
    use runnel_protocol::record_batch::set_base_offset;

    #[test]
    fn a_cut_off_batch_at_the_end_of_a_fetch_is_skipped() {
        let mut first = batch_of_values(1, 3, b"a");
        let mut second = batch_of_values(2, 2, b"b");
        set_base_offset(&mut first, 10);
        set_base_offset(&mut second, 13);
        // Brokers may end a fetch inside a batch when the size limit falls there.
        let mut fetched = first.clone();
        fetched.extend_from_slice(&second[..second.len() - 5]);
        let mut out = Vec::new();
        let tp = TopicPartition::new("t", 0);
        let next = decode_records(&tp, Bytes::from(fetched), 10, 1 << 20, &mut out).unwrap();
        assert_eq!(next, 13);
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![10, 11, 12]);
    }
}
