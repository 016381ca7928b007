//! The Kafka server's request and connection counters: latency histograms and error
//! counts per API slot. Atomics only: no lock and no map lookup per request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use runnel_core::counters::Histogram;
use runnel_protocol::api::{messages as m, ApiKey, ResponseBody, SUPPORTED_APIS};

/// Request metrics of one API. Aligned to a cache line so that connections busy with
/// different APIs do not share one.
#[repr(align(64))]
pub struct ApiStats {
    pub name: String,
    /// Completed requests whose response carries a nonzero error code.
    pub error_responses: AtomicU64,
    /// Requests that ended the connection instead of getting a response (undecodable,
    /// unsupported version, encoding failure, handler panic), and bad frames.
    pub closed: AtomicU64,
    /// Time from decoding the request to its response being ready.
    pub latency: Histogram,
}

/// The server's request and connection metrics. Slot `SUPPORTED_APIS.len()` is for
/// requests whose API is unknown or unsupported.
pub struct ServerMetrics {
    pub apis: Vec<ApiStats>,
    /// API key → slot.
    slot_of: [u8; 128],
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    /// Failed TLS handshakes and SASL exchanges.
    pub authentication_failures: AtomicU64,
    pub active: Arc<AtomicUsize>,
}

/// A request's API slot, looked up once when it is decoded.
#[derive(Clone, Copy, Debug)]
pub struct ApiSlot(usize);

impl ServerMetrics {
    pub fn new(active_connections: Arc<AtomicUsize>) -> ServerMetrics {
        let unknown = SUPPORTED_APIS.len();
        let mut slot_of = [unknown as u8; 128];
        let mut apis = Vec::with_capacity(unknown + 1);
        for (i, (key, _, _)) in SUPPORTED_APIS.iter().enumerate() {
            if let Some(s) = slot_of.get_mut(*key as i16 as usize) {
                *s = i as u8;
            }
            apis.push(ApiStats::new(format!("{key:?}")));
        }
        apis.push(ApiStats::new("Unknown".to_string()));
        ServerMetrics {
            apis,
            slot_of,
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            authentication_failures: AtomicU64::new(0),
            active: active_connections,
        }
    }

    pub fn slot(&self, key: ApiKey) -> ApiSlot {
        self.slot_raw(key as i16)
    }

    pub fn slot_raw(&self, key: i16) -> ApiSlot {
        let unknown = self.apis.len() - 1;
        ApiSlot(
            usize::try_from(key)
                .ok()
                .and_then(|k| self.slot_of.get(k))
                .map_or(unknown, |s| *s as usize),
        )
    }

    /// A request finished: `error` if its response carries a nonzero error code (or
    /// could not be encoded).
    pub fn completed(&self, slot: ApiSlot, started: Instant, error: bool) {
        if let Some(s) = self.apis.get(slot.0) {
            s.latency.observe(started.elapsed());
            if error {
                s.error_responses.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A request (or a frame that was not one) closed the connection.
    pub fn closed_connection(&self, slot: Option<ApiSlot>) {
        let i = slot.map_or(self.apis.len() - 1, |s| s.0);
        if let Some(s) = self.apis.get(i) {
            s.closed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A TLS handshake or SASL exchange failed.
    pub fn authentication_failed(&self) {
        self.authentication_failures.fetch_add(1, Ordering::Relaxed);
    }
}

impl ApiStats {
    fn new(name: String) -> ApiStats {
        ApiStats {
            name,
            error_responses: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            latency: Histogram::new(),
        }
    }
}

/// Whether a fetch response carries an error, top-level or for a partition.
pub fn fetch_has_error(r: &m::FetchResponse) -> bool {
    r.error_code != 0
        || r.responses
            .iter()
            .any(|t| t.partitions.iter().any(|p| p.error_code != 0))
}

/// Whether a response carries a nonzero error code anywhere (top level, per topic, per
/// partition, per group or member).
pub fn response_has_error(body: &ResponseBody) -> bool {
    fn any<T>(items: &[T], f: impl Fn(&T) -> bool) -> bool {
        items.iter().any(f)
    }
    match body {
        ResponseBody::ApiVersions(r) => r.error_code != 0,
        ResponseBody::Metadata(r) => any(&r.topics, |t| {
            t.error_code != 0 || any(&t.partitions, |p| p.error_code != 0)
        }),
        ResponseBody::Produce(r) => any(&r.responses, |t| {
            any(&t.partition_responses, |p| p.error_code != 0)
        }),
        ResponseBody::Fetch(r) => fetch_has_error(r),
        ResponseBody::ListOffsets(r) => {
            any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::OffsetForLeaderEpoch(r) => {
            any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::CreateTopics(r) => any(&r.topics, |t| t.error_code != 0),
        ResponseBody::DeleteTopics(r) => any(&r.responses, |t| t.error_code != 0),
        ResponseBody::CreatePartitions(r) => any(&r.results, |t| t.error_code != 0),
        ResponseBody::DescribeConfigs(r) => any(&r.results, |t| t.error_code != 0),
        ResponseBody::AlterConfigs(r) => any(&r.responses, |t| t.error_code != 0),
        ResponseBody::IncrementalAlterConfigs(r) => any(&r.responses, |t| t.error_code != 0),
        ResponseBody::DeleteRecords(r) => {
            any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::DescribeCluster(r) => r.error_code != 0,
        ResponseBody::DescribeLogDirs(r) => {
            r.error_code != 0 || any(&r.results, |d| d.error_code != 0)
        }
        ResponseBody::InitProducerId(r) => r.error_code != 0,
        ResponseBody::SaslHandshake(r) => r.error_code != 0,
        ResponseBody::SaslAuthenticate(r) => r.error_code != 0,
        ResponseBody::DescribeUserScramCredentials(r) => {
            r.error_code != 0 || any(&r.results, |u| u.error_code != 0)
        }
        ResponseBody::AlterUserScramCredentials(r) => any(&r.results, |u| u.error_code != 0),
        ResponseBody::FindCoordinator(r) => {
            r.error_code != 0 || any(&r.coordinators, |c| c.error_code != 0)
        }
        ResponseBody::JoinGroup(r) => r.error_code != 0,
        ResponseBody::SyncGroup(r) => r.error_code != 0,
        ResponseBody::Heartbeat(r) => r.error_code != 0,
        ResponseBody::LeaveGroup(r) => r.error_code != 0 || any(&r.members, |m| m.error_code != 0),
        ResponseBody::OffsetCommit(r) => {
            any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::OffsetFetch(r) => {
            r.error_code != 0
                || any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
                || any(&r.groups, |g| {
                    g.error_code != 0
                        || any(&g.topics, |t| any(&t.partitions, |p| p.error_code != 0))
                })
        }
        ResponseBody::DescribeGroups(r) => any(&r.groups, |g| g.error_code != 0),
        ResponseBody::ListGroups(r) => r.error_code != 0,
        ResponseBody::DeleteGroups(r) => any(&r.results, |g| g.error_code != 0),
        ResponseBody::OffsetDelete(r) => {
            r.error_code != 0 || any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::ConsumerGroupHeartbeat(r) => r.error_code != 0,
        ResponseBody::ConsumerGroupDescribe(r) => any(&r.groups, |g| g.error_code != 0),
        ResponseBody::DescribeTopicPartitions(r) => any(&r.topics, |t| {
            t.error_code != 0 || any(&t.partitions, |p| p.error_code != 0)
        }),
        ResponseBody::DescribeAcls(r) => r.error_code != 0,
        ResponseBody::CreateAcls(r) => any(&r.results, |c| c.error_code != 0),
        ResponseBody::DeleteAcls(r) => any(&r.filter_results, |f| f.error_code != 0),
        ResponseBody::DescribeClientQuotas(r) => r.error_code != 0,
        ResponseBody::AlterClientQuotas(r) => any(&r.entries, |e| e.error_code != 0),
        ResponseBody::AddPartitionsToTxn(r) => {
            r.error_code != 0
                || any(&r.results_by_topic_v3_and_below, |t| {
                    any(&t.results_by_partition, |p| p.partition_error_code != 0)
                })
                || any(&r.results_by_transaction, |x| {
                    any(&x.topic_results, |t| {
                        any(&t.results_by_partition, |p| p.partition_error_code != 0)
                    })
                })
        }
        ResponseBody::AddOffsetsToTxn(r) => r.error_code != 0,
        ResponseBody::EndTxn(r) => r.error_code != 0,
        ResponseBody::TxnOffsetCommit(r) => {
            any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::WriteTxnMarkers(r) => any(&r.markers, |m| {
            any(&m.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }),
        ResponseBody::DescribeTransactions(r) => any(&r.transaction_states, |t| t.error_code != 0),
        ResponseBody::ListTransactions(r) => r.error_code != 0,
        ResponseBody::DescribeProducers(r) => {
            any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_slots() {
        let m = ServerMetrics::new(Arc::new(AtomicUsize::new(0)));
        let produce = m.slot(ApiKey::Produce);
        assert_eq!(m.apis[produce.0].name, "Produce");
        assert_eq!(m.slot_raw(-1).0, m.apis.len() - 1);
        assert_eq!(m.slot_raw(1000).0, m.apis.len() - 1);
    }

    #[test]
    fn errors_anywhere_in_a_response_count() {
        use kafka_protocol::messages as km;
        let ok = km::ProduceResponse::default().with_responses(vec![
            km::produce_response::TopicProduceResponse::default().with_partition_responses(vec![
                km::produce_response::PartitionProduceResponse::default(),
            ]),
        ]);
        assert!(!response_has_error(&ok.clone().into()));
        let mut bad = ok;
        bad.responses[0].partition_responses[0].error_code = 3;
        assert!(response_has_error(&bad.into()));
        let hb = km::HeartbeatResponse::default().with_error_code(27);
        assert!(response_has_error(&hb.into()));
    }
}
