//! Bootstrap, the metadata cache and connections per broker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages as m;
use kafka_protocol::ResponseError;
use runnel_protocol::api::StrBytes;
use tokio::sync::Mutex;

use crate::connection::{Connection, ConnectionConfig, FromResponse};
use crate::error::{check, Error, Result};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// "host:port" addresses to bootstrap from.
    pub bootstrap_servers: Vec<String>,
    pub connection: ConnectionConfig,
    /// How long cached metadata is trusted before a refresh.
    pub metadata_max_age: Duration,
}

impl ClientConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        ClientConfig {
            bootstrap_servers: bootstrap
                .into()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            connection: ConnectionConfig::default(),
            metadata_max_age: Duration::from_secs(300),
        }
    }
}

/// A partition as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

/// A topic as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub topic_id: [u8; 16],
    pub internal: bool,
    pub error_code: i16,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionMeta>,
}

/// A broker as metadata describes it (its advertised address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMeta {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerMeta {
    pub fn addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Default)]
struct Cache {
    brokers: HashMap<i32, BrokerMeta>,
    topics: HashMap<String, (TopicMeta, Instant)>,
    cluster_id: Option<String>,
    controller: i32,
}

struct Inner {
    config: ClientConfig,
    bootstrap: Mutex<Option<Arc<Connection>>>,
    nodes: Mutex<HashMap<i32, Arc<Connection>>>,
    cache: std::sync::Mutex<Cache>,
}

/// A handle to a cluster; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.inner.config.bootstrap_servers)
            .finish()
    }
}

impl Client {
    /// Connect to the first reachable bootstrap server.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        if config.bootstrap_servers.is_empty() {
            return Err(Error::Config("no bootstrap servers".into()));
        }
        let client = Client {
            inner: Arc::new(Inner {
                config,
                bootstrap: Mutex::new(None),
                nodes: Mutex::new(HashMap::new()),
                cache: std::sync::Mutex::new(Cache::default()),
            }),
        };
        client.any_connection().await?;
        Ok(client)
    }

    /// Shorthand for [`Client::connect`] with default settings.
    pub async fn bootstrap(servers: &str) -> Result<Client> {
        Client::connect(ClientConfig::new(servers)).await
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A live connection to some broker: a known one, else a bootstrap server.
    pub async fn any_connection(&self) -> Result<Arc<Connection>> {
        let mut slot = self.inner.bootstrap.lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let mut last = None;
        let mut addrs = self.inner.config.bootstrap_servers.clone();
        {
            let cache = self.inner.cache.lock().expect("cache lock");
            addrs.extend(cache.brokers.values().map(BrokerMeta::addr));
        }
        for addr in addrs {
            match Connection::connect(&addr, self.inner.config.connection.clone()).await {
                Ok(c) => {
                    let c = Arc::new(c);
                    *slot = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    tracing::debug!(%addr, "bootstrap connect failed: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(Error::Closed))
    }

    /// A live connection to broker `node_id`, at the address metadata advertises.
    pub async fn node_connection(&self, node_id: i32) -> Result<Arc<Connection>> {
        let mut nodes = self.inner.nodes.lock().await;
        if let Some(c) = nodes.get(&node_id) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let mut broker = self.broker(node_id);
        if broker.is_none() {
            drop(nodes);
            self.refresh_metadata(&[]).await?;
            nodes = self.inner.nodes.lock().await;
            broker = self.broker(node_id);
        }
        let broker = broker.ok_or_else(|| Error::Other(format!("unknown broker {node_id}")))?;
        let c = Arc::new(
            Connection::connect(&broker.addr(), self.inner.config.connection.clone()).await?,
        );
        nodes.insert(node_id, c.clone());
        Ok(c)
    }

    fn broker(&self, node_id: i32) -> Option<BrokerMeta> {
        self.inner
            .cache
            .lock()
            .expect("cache lock")
            .brokers
            .get(&node_id)
            .cloned()
    }

    /// Send a request to any broker.
    pub async fn call<Resp: FromResponse>(
        &self,
        body: impl Into<runnel_protocol::api::RequestBody>,
    ) -> Result<Resp> {
        let conn = self.any_connection().await?;
        conn.call(body).await
    }

    /// Fetch metadata for `topics` (all topics if empty) and update the cache.
    pub async fn refresh_metadata(&self, topics: &[&str]) -> Result<Vec<TopicMeta>> {
        self.metadata(topics, false).await
    }

    /// Fetch metadata for `topics`; with `allow_auto_create` the broker creates the
    /// missing ones if its `auto.create.topics.enable` says so, as for a producer.
    async fn metadata(&self, topics: &[&str], allow_auto_create: bool) -> Result<Vec<TopicMeta>> {
        let request = m::MetadataRequest::default()
            .with_topics(if topics.is_empty() {
                None
            } else {
                Some(
                    topics
                        .iter()
                        .map(|t| {
                            m::metadata_request::MetadataRequestTopic::default()
                                .with_name(Some(topic_name(t)))
                        })
                        .collect(),
                )
            })
            .with_allow_auto_topic_creation(allow_auto_create);
        let response: m::MetadataResponse = self.call(request).await?;
        let now = Instant::now();
        let mut out = Vec::new();
        let mut cache = self.inner.cache.lock().expect("cache lock");
        for b in &response.brokers {
            cache.brokers.insert(
                b.node_id.0,
                BrokerMeta {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                },
            );
        }
        cache.cluster_id = response.cluster_id.as_ref().map(|c| c.to_string());
        cache.controller = response.controller_id.0;
        for t in &response.topics {
            let Some(name) = t.name.as_ref() else {
                continue;
            };
            let mut partitions: Vec<PartitionMeta> = t
                .partitions
                .iter()
                .map(|p| PartitionMeta {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let meta = TopicMeta {
                name: name.0.to_string(),
                topic_id: *t.topic_id.as_bytes(),
                internal: t.is_internal,
                error_code: t.error_code,
                partitions,
            };
            if meta.error_code == 0 {
                cache.topics.insert(meta.name.clone(), (meta.clone(), now));
            } else {
                cache.topics.remove(&meta.name);
            }
            out.push(meta);
        }
        Ok(out)
    }

    /// Metadata of `topic` from the cache, refreshed when missing or stale.
    pub async fn topic(&self, topic: &str) -> Result<TopicMeta> {
        {
            let cache = self.inner.cache.lock().expect("cache lock");
            if let Some((meta, at)) = cache.topics.get(topic) {
                if at.elapsed() < self.inner.config.metadata_max_age {
                    return Ok(meta.clone());
                }
            }
        }
        let metas = self.refresh_metadata(&[topic]).await?;
        let meta = metas
            .into_iter()
            .find(|t| t.name == topic)
            .ok_or_else(|| Error::Other(format!("no metadata for topic {topic}")))?;
        check(meta.error_code, None, || {
            format!("metadata for topic {topic}")
        })?;
        Ok(meta)
    }

    /// Metadata of `topic` as a producer looks it up: a missing topic is auto-created
    /// when the broker allows it (Java's producer and librdkafka do the same).
    pub async fn topic_for_produce(&self, topic: &str) -> Result<TopicMeta> {
        match self.topic(topic).await {
            Err(e) if e.code() == Some(ResponseError::UnknownTopicOrPartition.code()) => {
                self.auto_create_topic(topic).await
            }
            other => other,
        }
    }

    /// Ask the broker to create `topic` (it decides by `auto.create.topics.enable`), and
    /// wait while a new topic's partitions have no leader yet.
    pub(crate) async fn auto_create_topic(&self, topic: &str) -> Result<TopicMeta> {
        let mut backoff = Duration::from_millis(50);
        let mut attempts = 0;
        loop {
            let metas = self.metadata(&[topic], true).await?;
            let meta = metas
                .into_iter()
                .find(|t| t.name == topic)
                .ok_or_else(|| Error::Other(format!("no metadata for topic {topic}")))?;
            let leaderless =
                meta.partitions.is_empty() || meta.partitions.iter().any(|p| p.leader < 0);
            let settling = meta.error_code == ResponseError::LeaderNotAvailable.code()
                || (meta.error_code == 0 && leaderless);
            if !settling || attempts >= 20 {
                check(meta.error_code, None, || {
                    format!("metadata for topic {topic}")
                })?;
                return Ok(meta);
            }
            attempts += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// The number of partitions of `topic` (cached; refreshed when missing or stale).
    pub async fn partition_count(&self, topic: &str) -> Result<usize> {
        {
            let cache = self.inner.cache.lock().expect("cache lock");
            if let Some((meta, at)) = cache.topics.get(topic) {
                if at.elapsed() < self.inner.config.metadata_max_age {
                    return Ok(meta.partitions.len());
                }
            }
        }
        Ok(self.topic(topic).await?.partitions.len())
    }

    /// Forget cached metadata of `topic` so the next lookup refreshes it.
    pub fn invalidate(&self, topic: &str) {
        self.inner
            .cache
            .lock()
            .expect("cache lock")
            .topics
            .remove(topic);
    }

    /// The leader of a partition (refreshing metadata if needed).
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<i32> {
        let meta = self.topic(topic).await?;
        let p = meta
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| Error::Kafka {
                code: 3,
                context: format!("{topic}-{partition}"),
                message: None,
            })?;
        Ok(p.leader)
    }

    /// Connection to the leader of a partition.
    pub async fn leader_connection(&self, topic: &str, partition: i32) -> Result<Arc<Connection>> {
        let leader = self.leader(topic, partition).await?;
        if leader < 0 {
            return Err(Error::Kafka {
                code: 5,
                context: format!("{topic}-{partition}"),
                message: None,
            });
        }
        self.node_connection(leader).await
    }

    /// The cluster id from the last metadata response.
    pub fn cluster_id(&self) -> Option<String> {
        self.inner
            .cache
            .lock()
            .expect("cache lock")
            .cluster_id
            .clone()
    }

    /// Brokers from the last metadata response.
    pub fn brokers(&self) -> Vec<BrokerMeta> {
        let mut v: Vec<_> = self
            .inner
            .cache
            .lock()
            .expect("cache lock")
            .brokers
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|b| b.node_id);
        v
    }

    /// A new connection of its own to the coordinator of `group`, for calls that block
    /// (JoinGroup waits for the whole group): a broker answers a connection's requests
    /// in order, so they must not share one with other members or with other calls.
    pub async fn dedicated_coordinator(&self, group: &str) -> Result<Connection> {
        let node = self.find_coordinator(group).await?;
        let broker = self
            .broker(node)
            .ok_or_else(|| Error::Other(format!("unknown broker {node}")))?;
        Connection::connect(&broker.addr(), self.inner.config.connection.clone()).await
    }

    /// Connection to the coordinator of `group`.
    pub async fn coordinator(&self, group: &str) -> Result<Arc<Connection>> {
        let node = self.find_coordinator(group).await?;
        self.node_connection(node).await
    }

    /// The transaction coordinator of `transactional_id`: its node id and a connection.
    /// Retried while the coordinator is not available yet (the broker creates
    /// `__transaction_state` on the first lookup and loads it after a restart).
    pub async fn transaction_coordinator(
        &self,
        transactional_id: &str,
    ) -> Result<(i32, Arc<Connection>)> {
        let deadline = tokio::time::Instant::now() + COORDINATOR_RETRY_FOR;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.find_coordinator_of(transactional_id, 1).await {
                Err(e) if e.is_retriable() && tokio::time::Instant::now() + backoff < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
                Ok(node) => return Ok((node, self.node_connection(node).await?)),
            }
        }
    }

    async fn find_coordinator(&self, group: &str) -> Result<i32> {
        self.find_coordinator_of(group, 0).await
    }

    /// FindCoordinator for a group (key type 0) or a transactional id (1).
    async fn find_coordinator_of(&self, key: &str, key_type: i8) -> Result<i32> {
        let request = m::FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(key.to_string()))
            .with_key_type(key_type);
        let response: m::FindCoordinatorResponse = self.call(request).await?;
        let what = if key_type == 1 {
            "transactional id"
        } else {
            "group"
        };
        check(response.error_code, response.error_message.as_ref(), || {
            format!("find coordinator for {what} {key}")
        })?;
        let node = response.node_id.0;
        {
            let mut cache = self.inner.cache.lock().expect("cache lock");
            cache.brokers.entry(node).or_insert_with(|| BrokerMeta {
                node_id: node,
                host: response.host.to_string(),
                port: response.port,
                rack: None,
            });
        }
        Ok(node)
    }
}

/// How long a transaction coordinator lookup is retried through retriable errors.
const COORDINATOR_RETRY_FOR: Duration = Duration::from_secs(30);

pub(crate) fn topic_name(t: &str) -> m::TopicName {
    m::TopicName(StrBytes::from_string(t.to_string()))
}
