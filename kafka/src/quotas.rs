//! Client quotas as Kafka's `ClientQuotaManager`, `ClientRequestQuotaManager` and
//! `ConnectionQuotas` enforce them: a rate per quota type over `quota.window.num`
//! samples of `quota.window.size.seconds`, with Kafka's `Rate`/`SampledStat` window
//! arithmetic, Kafka's order of precedence between user and client-id entities, and
//! Kafka's throttle time, `(observed - bound) / bound * window`.
//!
//! The quotas themselves live in the security store (KIP-546, `handlers/quotas.rs`);
//! this module holds what is derived from them for lookups and the rate of each
//! (user, client-id) pair a quota applies to. A pair's rate is dropped once it has been
//! idle for a whole window (it then measures exactly as a new one), so the tables stay
//! bounded however many client ids connect.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use kafka_protocol::protocol::Encodable;
use runnel_core::poison::or_stop;
use runnel_protocol::api::messages::FetchResponse;
use runnel_protocol::api::{ApiKey, Request, RequestBody, ResponseBody};
use runnel_protocol::response_parts::ExternalRecords;
use runnel_security::store::{QuotaEntity, QuotaValues};
use runnel_storage::FileSlice;

use crate::context::RequestContext;

/// Kafka's quota entity types.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// Kafka's quota keys.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// The most (user, client-id) rates one quota type tracks. Rates idle for a window are
/// dropped first; past this, the least recently used one goes.
const MAX_SENSORS: usize = 100_000;

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaType {
    Produce,
    Fetch,
    Request,
    ConnectionCreation,
}

impl QuotaType {
    pub const ALL: [QuotaType; 4] = [
        QuotaType::Produce,
        QuotaType::Fetch,
        QuotaType::Request,
        QuotaType::ConnectionCreation,
    ];

    /// The metrics label, Kafka's `QuotaType` names.
    pub fn label(self) -> &'static str {
        match self {
            QuotaType::Produce => "produce",
            QuotaType::Fetch => "fetch",
            QuotaType::Request => "request",
            QuotaType::ConnectionCreation => "connection_creation",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One entity component: absent, the `<default>` entity, or a name.
type Component = Option<Option<String>>;

/// Limits by (user, client-id) entity, for one quota type.
type UserClientLimits = HashMap<(Component, Component), f64>;

#[derive(Debug, Default)]
struct Limits {
    /// Produce, fetch, request.
    user_client: [UserClientLimits; 3],
    /// connection_creation_rate by IP; `None` is the `<default>` IP.
    ip: HashMap<Option<IpAddr>, f64>,
}

/// Kafka's `SampledStat.Sample` of a `Rate` (a windowed sum).
#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: i64,
    last_event_ms: i64,
    value: f64,
}

impl Sample {
    fn new(now: i64) -> Sample {
        Sample {
            start_ms: now,
            last_event_ms: now,
            value: 0.0,
        }
    }
}

/// Kafka's `Rate` over a `SampledStat` of sums, with its window arithmetic.
#[derive(Debug, Clone)]
struct Rate {
    samples: Vec<Sample>,
    current: usize,
    last_used: i64,
}

#[derive(Debug, Clone, Copy)]
struct WindowConfig {
    samples: i64,
    window_ms: i64,
}

impl Rate {
    fn new(now: i64) -> Rate {
        Rate {
            samples: vec![Sample::new(now)],
            current: 0,
            last_used: now,
        }
    }

    fn record(&mut self, cfg: WindowConfig, value: f64, now: i64) {
        self.last_used = now;
        if now - self.samples[self.current].start_ms >= cfg.window_ms {
            // One extra slot for the sample overlapping the window's start.
            let max = (cfg.samples + 1) as usize;
            self.current = (self.current + 1) % max;
            if self.current >= self.samples.len() {
                self.samples.push(Sample::new(now));
            } else {
                self.samples[self.current] = Sample::new(now);
            }
        }
        let s = &mut self.samples[self.current];
        s.value += value;
        s.last_event_ms = now;
    }

    fn purge(&mut self, cfg: WindowConfig, now: i64) {
        let expire = cfg.samples * cfg.window_ms;
        for s in &mut self.samples {
            if now - s.last_event_ms >= expire {
                *s = Sample::new(now);
            }
        }
    }

    /// The time the rate is over: the span since the oldest sample, but at least
    /// `samples - 1` whole windows, and at least 1 ms.
    fn window_size(&mut self, cfg: WindowConfig, now: i64) -> i64 {
        self.purge(cfg, now);
        let oldest = self.samples.iter().map(|s| s.start_ms).min().unwrap_or(now);
        let mut elapsed = now - oldest;
        let full = elapsed / cfg.window_ms;
        let min_full = cfg.samples - 1;
        if full < min_full {
            elapsed += (min_full - full) * cfg.window_ms;
        }
        elapsed.max(1)
    }

    /// Per second.
    fn measure(&mut self, cfg: WindowConfig, now: i64) -> f64 {
        self.purge(cfg, now);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (self.window_size(cfg, now) as f64 / 1000.0)
    }

    /// Record, then Kafka's throttle time if the rate is over `bound` (0 if not).
    fn record_and_throttle(&mut self, cfg: WindowConfig, value: f64, bound: f64, now: i64) -> u64 {
        self.record(cfg, value, now);
        let observed = self.measure(cfg, now);
        if observed <= bound {
            return 0;
        }
        let window = self.window_size(cfg, now) as f64;
        let ms = ((observed - bound) / bound * window).round();
        if ms.is_finite() && ms > 0.0 {
            ms.min(i32::MAX as f64) as u64
        } else {
            0
        }
    }
}

/// Throttling counts per quota type, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct ThrottleStats {
    pub throttled: AtomicU64,
    pub throttle_time_ms: AtomicU64,
}

/// The rates of one quota type, keyed by Kafka's metric tags (user, client-id).
type Sensors = Mutex<HashMap<(String, String), Rate>>;

pub struct QuotaManager {
    cfg: WindowConfig,
    epoch: Instant,
    limits: RwLock<Limits>,
    /// Whether any quota of the type exists: without one nothing is recorded.
    enabled: [AtomicBool; 4],
    sensors: [Sensors; 3],
    ip_sensors: Mutex<HashMap<IpAddr, Rate>>,
    /// `max.connection.creation.rate` and its rate; `None` when unlimited.
    broker_connections: Option<(f64, Mutex<Rate>)>,
    stats: [ThrottleStats; 4],
}

impl std::fmt::Debug for QuotaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaManager").finish_non_exhaustive()
    }
}

/// The user part of Kafka's quota metric tags: the principal's name without its type.
pub fn principal_name(principal: &str) -> &str {
    principal.split_once(':').map_or(principal, |(_, n)| n)
}

impl QuotaManager {
    /// `samples` is `quota.window.num`, `window_seconds` `quota.window.size.seconds`.
    pub fn new(samples: u32, window_seconds: u32) -> QuotaManager {
        QuotaManager {
            cfg: WindowConfig {
                samples: i64::from(samples.max(1)),
                window_ms: i64::from(window_seconds.max(1)) * 1000,
            },
            epoch: Instant::now(),
            limits: RwLock::new(Limits::default()),
            enabled: Default::default(),
            sensors: Default::default(),
            ip_sensors: Mutex::new(HashMap::new()),
            broker_connections: None,
            stats: Default::default(),
        }
    }

    /// Broker-wide `max.connection.creation.rate` (KIP-612); `i32::MAX`, the default,
    /// is no limit.
    pub fn with_max_connection_creation_rate(mut self, rate: u32) -> QuotaManager {
        if rate < i32::MAX as u32 {
            self.broker_connections = Some((f64::from(rate), Mutex::new(Rate::new(0))));
        }
        self
    }

    /// A new connection against `max.connection.creation.rate`: how long the listener
    /// waits before serving it (and accepting more), as Kafka's acceptor waits; 0 within
    /// the rate.
    pub fn record_broker_connection(&self) -> u64 {
        let Some((bound, rate)) = &self.broker_connections else {
            return 0;
        };
        let now = self.now_ms();
        let mut rate = or_stop(rate.lock(), "broker connection rate");
        rate.record_and_throttle(self.cfg, 1.0, *bound, now)
            .min(self.window_ms())
    }

    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    /// The longest throttle of request quotas and connection rates: one sample window,
    /// as Kafka caps them.
    pub fn window_ms(&self) -> u64 {
        self.cfg.window_ms as u64
    }

    /// Replace every limit with the store's quotas.
    pub fn load(&self, quotas: &BTreeMap<QuotaEntity, QuotaValues>) {
        let mut limits = Limits::default();
        for (entity, values) in quotas {
            if let Some(ip) = entity.get(IP) {
                let Some(v) = values.get(CONNECTION_CREATION_RATE) else {
                    continue;
                };
                match ip {
                    None => {
                        limits.ip.insert(None, *v);
                    }
                    Some(name) => {
                        if let Ok(addr) = name.parse::<IpAddr>() {
                            limits.ip.insert(Some(addr), *v);
                        }
                    }
                }
                continue;
            }
            let key = (entity.get(USER).cloned(), entity.get(CLIENT_ID).cloned());
            for (i, name) in [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE]
                .iter()
                .enumerate()
            {
                if let Some(v) = values.get(*name) {
                    limits.user_client[i].insert(key.clone(), *v);
                }
            }
        }
        for t in QuotaType::ALL {
            let on = match t {
                QuotaType::ConnectionCreation => !limits.ip.is_empty(),
                _ => !limits.user_client[t.index()].is_empty(),
            };
            self.enabled[t.index()].store(on, Ordering::Relaxed);
        }
        *or_stop(self.limits.write(), "quota limits") = limits;
    }

    pub fn enabled(&self, t: QuotaType) -> bool {
        self.enabled[t.index()].load(Ordering::Relaxed)
    }

    /// Record `value` for the (user, client id) pair and return the throttle time in ms
    /// (0 within quota). Request quota throttles are capped at one sample window.
    pub fn record(&self, t: QuotaType, user: &str, client_id: &str, value: f64) -> u64 {
        self.record_at(t, user, client_id, value, self.now_ms())
    }

    fn record_at(&self, t: QuotaType, user: &str, client_id: &str, value: f64, now: i64) -> u64 {
        if t == QuotaType::ConnectionCreation || !self.enabled(t) {
            return 0;
        }
        let (tags, bound) = {
            let limits = or_stop(self.limits.read(), "quota limits");
            let table = &limits.user_client[t.index()];
            let tags = metric_tags(table, user, client_id);
            match quota_limit(table, &tags) {
                Some(bound) => (tags, bound),
                None => return 0,
            }
        };
        let mut sensors = or_stop(self.sensors[t.index()].lock(), "quota sensors");
        if !sensors.contains_key(&tags) {
            self.make_room(&mut sensors, now);
        }
        let rate = sensors.entry(tags).or_insert_with(|| Rate::new(now));
        let ms = rate.record_and_throttle(self.cfg, value, bound, now);
        if t == QuotaType::Request {
            ms.min(self.window_ms())
        } else {
            ms
        }
    }

    /// Take back a recorded value: a throttled fetch sends no records.
    pub fn unrecord(&self, t: QuotaType, user: &str, client_id: &str, value: f64) {
        if !self.enabled(t) || t == QuotaType::ConnectionCreation {
            return;
        }
        let tags = {
            let limits = or_stop(self.limits.read(), "quota limits");
            metric_tags(&limits.user_client[t.index()], user, client_id)
        };
        let now = self.now_ms();
        let mut sensors = or_stop(self.sensors[t.index()].lock(), "quota sensors");
        if let Some(rate) = sensors.get_mut(&tags) {
            rate.record(self.cfg, -value, now);
        }
    }

    /// The most a fetch may return without being throttled for certain, given no other
    /// bytes in the window (Kafka's `getMaxValueInQuotaWindow`); `None` without a quota.
    pub fn max_fetch_bytes_in_window(&self, user: &str, client_id: &str) -> Option<f64> {
        if !self.enabled(QuotaType::Fetch) {
            return None;
        }
        let limits = or_stop(self.limits.read(), "quota limits");
        let table = &limits.user_client[QuotaType::Fetch.index()];
        let bound = quota_limit(table, &metric_tags(table, user, client_id))?;
        Some(bound * (self.cfg.samples - 1) as f64 * (self.cfg.window_ms / 1000) as f64)
    }

    /// A new connection from `ip`: the time to hold it before closing it when it is over
    /// the IP's `connection_creation_rate` (then it is not counted), else 0.
    pub fn record_connection(&self, ip: IpAddr) -> u64 {
        self.record_connection_at(ip, self.now_ms())
    }

    fn record_connection_at(&self, ip: IpAddr, now: i64) -> u64 {
        if !self.enabled(QuotaType::ConnectionCreation) {
            return 0;
        }
        let bound = {
            let limits = or_stop(self.limits.read(), "quota limits");
            match limits.ip.get(&Some(ip)).or_else(|| limits.ip.get(&None)) {
                Some(b) => *b,
                None => return 0,
            }
        };
        let mut sensors = or_stop(self.ip_sensors.lock(), "connection quota sensors");
        if !sensors.contains_key(&ip) {
            self.make_room(&mut sensors, now);
        }
        let rate = sensors.entry(ip).or_insert_with(|| Rate::new(now));
        let ms = rate.record_and_throttle(self.cfg, 1.0, bound, now);
        if ms > 0 {
            // A refused connection does not count against the rate.
            rate.record(self.cfg, -1.0, now);
        }
        ms.min(self.window_ms())
    }

    pub fn stats_of(&self, t: QuotaType) -> &ThrottleStats {
        &self.stats[t.index()]
    }

    /// Count a throttle in the metrics.
    pub fn note_throttle(&self, t: QuotaType, ms: u64) {
        let s = &self.stats[t.index()];
        s.throttled.fetch_add(1, Ordering::Relaxed);
        s.throttle_time_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Keep a table under [`MAX_SENSORS`]: drop rates idle for a whole window (they
    /// measure as new ones would), then the least recently used.
    fn make_room<K: Clone + Eq + std::hash::Hash>(&self, table: &mut HashMap<K, Rate>, now: i64) {
        if table.len() < MAX_SENSORS {
            return;
        }
        let idle = self.cfg.samples * self.cfg.window_ms;
        table.retain(|_, r| now - r.last_used < idle);
        if table.len() >= MAX_SENSORS {
            if let Some(k) = table
                .iter()
                .min_by_key(|(_, r)| r.last_used)
                .map(|(k, _)| k.clone())
            {
                table.remove(&k);
            }
        }
    }
}

/// A request's use of the quotas, taken before it is handled (the handler consumes it).
pub struct Usage {
    api: ApiKey,
    /// The request's size, what produce quotas count (Kafka's `request.sizeInBytes`).
    request_bytes: usize,
    /// acks=0 produce requests are exempt from request quotas, as in Kafka.
    acks_zero: bool,
}

impl Usage {
    pub fn of(request: &Request, frame_len: usize) -> Usage {
        Usage {
            api: request.header.api_key,
            request_bytes: frame_len,
            acks_zero: matches!(&request.body, RequestBody::Produce(p) if p.acks == 0),
        }
    }

    pub fn is_fetch(&self) -> bool {
        self.api == ApiKey::Fetch
    }
}

/// A throttle decided for one response: how long, and which quota asked for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throttle {
    pub ms: u64,
    pub quota: Option<QuotaType>,
}

impl Throttle {
    fn of(a: (u64, QuotaType), b: (u64, QuotaType)) -> Throttle {
        // Kafka: the longer of the two, the request quota on a tie.
        let (ms, quota) = if a.0 > b.0 { a } else { b };
        Throttle {
            ms,
            quota: (ms > 0).then_some(quota),
        }
    }

    /// For `throttle_time_ms`.
    pub fn ms_i32(&self) -> i32 {
        self.ms.min(i32::MAX as u64) as i32
    }
}

/// Kafka caps a consumer fetch's `max_bytes` (and `min_bytes`) at what the fetch quota
/// allows in one window, so that one response is never throttled for certain.
pub fn cap_fetch_bytes(quotas: &QuotaManager, ctx: &RequestContext, request: &mut Request) {
    let RequestBody::Fetch(fetch) = &mut request.body else {
        return;
    };
    if fetch.replica_id.0 >= 0 || fetch.replica_state.replica_id.0 >= 0 {
        return;
    }
    let user = principal_name(&ctx.principal);
    if let Some(max) = quotas.max_fetch_bytes_in_window(user, &ctx.client_id) {
        let max = max.min(i32::MAX as f64).max(0.0) as i32;
        fetch.max_bytes = fetch.max_bytes.min(max);
        fetch.min_bytes = fetch.min_bytes.min(fetch.max_bytes);
    }
}

/// `nanos` of handling as Kafka's request quota counts them: percent of one second.
fn percentage(elapsed: Duration) -> f64 {
    elapsed.as_nanos() as f64 * 100.0 / 1e9
}

/// Record a handled request against the request and produce quotas (a fetch's bytes
/// are counted in [`throttle_fetch`], once its response is made).
pub fn throttle_after_handling(
    quotas: &QuotaManager,
    ctx: &RequestContext,
    usage: &Usage,
    handling: Duration,
) -> Throttle {
    let user = principal_name(&ctx.principal);
    let request = if usage.acks_zero {
        0
    } else {
        quotas.record(
            QuotaType::Request,
            user,
            &ctx.client_id,
            percentage(handling),
        )
    };
    let produce = if usage.api == ApiKey::Produce {
        quotas.record(
            QuotaType::Produce,
            user,
            &ctx.client_id,
            usage.request_bytes as f64,
        )
    } else {
        0
    };
    Throttle::of((produce, QuotaType::Produce), (request, QuotaType::Request))
}

/// Kafka's fetch throttling: count the response's size against the fetch quota; if the
/// fetch or the request quota is violated, take the bytes back and answer with an empty
/// response that carries the throttle time (the session id and top-level error kept).
pub fn throttle_fetch(
    quotas: &QuotaManager,
    ctx: &RequestContext,
    request: Throttle,
    version: i16,
    body: FetchResponse,
    records: ExternalRecords<FileSlice>,
) -> (FetchResponse, ExternalRecords<FileSlice>, Throttle) {
    let user = principal_name(&ctx.principal);
    let mut fetch = 0;
    let mut size = 0.0;
    if quotas.enabled(QuotaType::Fetch) {
        // The records' stand-ins have their lengths, so this is the response's size.
        size = body.compute_size(version).unwrap_or(0) as f64;
        fetch = quotas.record(QuotaType::Fetch, user, &ctx.client_id, size);
    }
    let request_ms = request.ms;
    let throttle = Throttle::of((fetch, QuotaType::Fetch), (request_ms, QuotaType::Request));
    if throttle.ms == 0 {
        return (body, records, throttle);
    }
    if size > 0.0 {
        quotas.unrecord(QuotaType::Fetch, user, &ctx.client_id, size);
    }
    let empty = FetchResponse::default()
        .with_error_code(body.error_code)
        .with_session_id(body.session_id)
        .with_throttle_time_ms(throttle.ms_i32());
    (empty, ExternalRecords::new(), throttle)
}

/// Put the throttle time in a response that has the field (every one but SaslHandshake
/// among Runnel's APIs; older versions without it drop it when encoding).
pub fn set_throttle_time(body: &mut ResponseBody, ms: i32) {
    macro_rules! set {
        ($($api:ident),* $(,)?) => {
            match body {
                $( ResponseBody::$api(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms), )*
                _ => {}
            }
        };
    }
    set!(
        ApiVersions,
        Metadata,
        Produce,
        Fetch,
        ListOffsets,
        OffsetForLeaderEpoch,
        CreateTopics,
        DeleteTopics,
        CreatePartitions,
        DescribeConfigs,
        AlterConfigs,
        IncrementalAlterConfigs,
        DeleteRecords,
        DescribeCluster,
        DescribeLogDirs,
        InitProducerId,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        OffsetFetch,
        DescribeGroups,
        ListGroups,
        DeleteGroups,
        OffsetDelete,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        DescribeTopicPartitions,
        DescribeAcls,
        CreateAcls,
        DeleteAcls,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        DescribeClientQuotas,
        AlterClientQuotas,
    );
}

/// KIP-219's mute: after a throttled response the connection reads no further request
/// until the throttle time has passed.
#[derive(Debug, Default)]
pub struct Mute(Mutex<Option<Instant>>);

impl Mute {
    pub fn mute_for(&self, ms: u64) {
        if ms == 0 {
            return;
        }
        let end = Instant::now() + Duration::from_millis(ms);
        let mut until = or_stop(self.0.lock(), "connection mute");
        if until.is_none_or(|u| u < end) {
            *until = Some(end);
        }
    }

    /// When the mute ends, if it is still on.
    pub fn until(&self) -> Option<Instant> {
        let until = *or_stop(self.0.lock(), "connection mute");
        until.filter(|u| *u > Instant::now())
    }
}

fn named(s: &str) -> Component {
    Some(Some(s.to_string()))
}

const DEFAULT: Component = Some(None);

/// Kafka's `DefaultQuotaCallback.quotaMetricTags`: which (user, client-id) pair shares a
/// rate, from the most specific entity that has a quota of this type.
fn metric_tags(table: &UserClientLimits, user: &str, client_id: &str) -> (String, String) {
    let has = |u: Component, c: Component| table.contains_key(&(u, c));
    let both = (user.to_string(), client_id.to_string());
    let user_only = (user.to_string(), String::new());
    if has(named(user), named(client_id)) || has(named(user), DEFAULT) {
        both
    } else if has(named(user), None) {
        user_only
    } else if has(DEFAULT, named(client_id)) || has(DEFAULT, DEFAULT) {
        both
    } else if has(DEFAULT, None) {
        user_only
    } else {
        (String::new(), client_id.to_string())
    }
}

/// Kafka's `DefaultQuotaCallback.quotaLimit`: the bound for a pair of metric tags, in
/// the order of precedence /config/users/<user>/clients/<client-id>, .../<default>,
/// /config/users/<default>/clients/<client-id>, .../<default>; /config/users/<user>,
/// /config/users/<default>; /config/clients/<client-id>, /config/clients/<default>.
fn quota_limit(table: &UserClientLimits, tags: &(String, String)) -> Option<f64> {
    let (user, client) = (tags.0.as_str(), tags.1.as_str());
    let get = |u: Component, c: Component| table.get(&(u, c)).copied();
    if !user.is_empty() && !client.is_empty() {
        get(named(user), named(client))
            .or_else(|| get(named(user), DEFAULT))
            .or_else(|| get(DEFAULT, named(client)))
            .or_else(|| get(DEFAULT, DEFAULT))
    } else if !user.is_empty() {
        get(named(user), None).or_else(|| get(DEFAULT, None))
    } else if !client.is_empty() {
        get(None, named(client)).or_else(|| get(None, DEFAULT))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        parts
            .iter()
            .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
            .collect()
    }

    fn manager(quotas: &[(QuotaEntity, &str, f64)]) -> QuotaManager {
        let m = QuotaManager::new(11, 1);
        let mut all: BTreeMap<QuotaEntity, QuotaValues> = BTreeMap::new();
        for (e, k, v) in quotas {
            all.entry(e.clone()).or_default().insert(k.to_string(), *v);
        }
        m.load(&all);
        m
    }

    /// Kafka's ClientQuotaManagerTest precedence cases, by which bound applies.
    #[test]
    fn the_most_specific_entity_wins_in_kafkas_order() {
        let limit = |quotas: &[(QuotaEntity, &str, f64)], user: &str, client: &str| {
            let m = manager(quotas);
            let limits = m.limits.read().unwrap();
            let table = &limits.user_client[QuotaType::Produce.index()];
            quota_limit(table, &metric_tags(table, user, client))
        };
        let p = PRODUCER_BYTE_RATE;
        let all = vec![
            (entity(&[(USER, Some("u")), (CLIENT_ID, Some("c"))]), p, 1.0),
            (entity(&[(USER, Some("u")), (CLIENT_ID, None)]), p, 2.0),
            (entity(&[(USER, Some("u"))]), p, 3.0),
            (entity(&[(USER, None), (CLIENT_ID, Some("c"))]), p, 4.0),
            (entity(&[(USER, None), (CLIENT_ID, None)]), p, 5.0),
            (entity(&[(USER, None)]), p, 6.0),
            (entity(&[(CLIENT_ID, Some("c"))]), p, 7.0),
            (entity(&[(CLIENT_ID, None)]), p, 8.0),
        ];
        for (dropped, want) in (0..all.len()).zip([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]) {
            assert_eq!(
                limit(&all[dropped..], "u", "c"),
                Some(want),
                "from {dropped}"
            );
        }
        assert_eq!(limit(&[], "u", "c"), None);
        // Another client of user u falls back to u's default client quota.
        assert_eq!(limit(&all, "u", "other"), Some(2.0));
        assert_eq!(limit(&all, "v", "c"), Some(4.0));
        assert_eq!(limit(&all[2..3], "v", "c"), None);
        // A consumer quota is no producer quota.
        let fetch_only = vec![(entity(&[(USER, Some("u"))]), CONSUMER_BYTE_RATE, 1.0)];
        assert_eq!(limit(&fetch_only, "u", "c"), None);
    }

    /// Kafka's Rate: before the window fills, the rate is over `samples - 1` windows;
    /// the throttle is the time that brings it back to the bound.
    #[test]
    fn throttle_time_is_kafkas() {
        let cfg = WindowConfig {
            samples: 11,
            window_ms: 1000,
        };
        let mut r = Rate::new(0);
        // 10 000 bytes at t=0 over a 10 s minimum window: 1000 B/s, at the bound.
        assert_eq!(r.record_and_throttle(cfg, 10_000.0, 1000.0, 0), 0);
        // 500 more at once: 10 500 B over 10 s = 1050 B/s, 5% over: 500 ms.
        assert_eq!(r.record_and_throttle(cfg, 500.0, 1000.0, 0), 500);
        // Later in the same sample the window has grown: 10 600 B over 10.5 s.
        assert_eq!(r.record_and_throttle(cfg, 100.0, 1000.0, 500), 100);
        // Past the whole window the samples expire.
        assert_eq!(r.record_and_throttle(cfg, 100.0, 1000.0, 20_000), 0);
    }

    #[test]
    fn producers_are_throttled_and_unrecorded_fetches_are_not_counted() {
        let m = manager(&[(entity(&[(USER, Some("alice"))]), PRODUCER_BYTE_RATE, 100.0)]);
        assert!(m.enabled(QuotaType::Produce));
        assert!(!m.enabled(QuotaType::Fetch));
        assert_eq!(m.record_at(QuotaType::Produce, "alice", "x", 1000.0, 0), 0);
        let ms = m.record_at(QuotaType::Produce, "alice", "y", 1000.0, 10);
        // alice's client ids share her rate: 2000 B over 10.01 s at 100 B/s.
        assert_eq!(ms, 9990);
        assert_eq!(m.record_at(QuotaType::Produce, "bob", "x", 1e9, 10), 0);
        assert_eq!(m.record_at(QuotaType::Fetch, "alice", "x", 1e9, 10), 0);
    }

    #[test]
    fn request_and_connection_throttles_are_capped_at_a_window() {
        let m = manager(&[
            (entity(&[(CLIENT_ID, None)]), REQUEST_PERCENTAGE, 1.0),
            (entity(&[(IP, None)]), CONNECTION_CREATION_RATE, 1.0),
            (
                entity(&[(IP, Some("10.0.0.1"))]),
                CONNECTION_CREATION_RATE,
                100.0,
            ),
        ]);
        assert_eq!(m.record_at(QuotaType::Request, "u", "c", 10_000.0, 0), 1000);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut throttled = 0;
        for i in 0..20 {
            if m.record_connection_at(ip, i) > 0 {
                throttled += 1;
            }
        }
        // 10 connections fit in 10 s at 1/s; refused ones do not count.
        assert_eq!(throttled, 10);
        let special: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..20).all(|i| m.record_connection_at(special, i) == 0));
    }

    #[test]
    fn the_broker_connection_rate_makes_the_acceptor_wait() {
        let unlimited = QuotaManager::new(11, 1).with_max_connection_creation_rate(i32::MAX as u32);
        assert!((0..100).all(|_| unlimited.record_broker_connection() == 0));
        let m = QuotaManager::new(11, 1).with_max_connection_creation_rate(1);
        let waits: Vec<u64> = (0..12).map(|_| m.record_broker_connection()).collect();
        // Ten fit in the 10 s minimum window; then each waits, at most one window.
        assert!(waits[..10].iter().all(|w| *w == 0), "{waits:?}");
        assert!(
            waits[10..].iter().all(|w| *w > 0 && *w <= 1000),
            "{waits:?}"
        );
    }

    #[test]
    fn fetch_max_bytes_follows_the_window() {
        let m = manager(&[(entity(&[(USER, None)]), CONSUMER_BYTE_RATE, 1000.0)]);
        assert_eq!(m.max_fetch_bytes_in_window("a", "b"), Some(10_000.0));
        assert_eq!(principal_name("User:alice"), "alice");
    }

    #[test]
    fn idle_rates_make_room() {
        let m = manager(&[(entity(&[(CLIENT_ID, None)]), PRODUCER_BYTE_RATE, 1.0)]);
        for i in 0..(MAX_SENSORS + 10) {
            m.record_at(QuotaType::Produce, "", &i.to_string(), 1.0, 0);
        }
        assert!(m.sensors[0].lock().unwrap().len() <= MAX_SENSORS);
        m.record_at(QuotaType::Produce, "", "late", 1.0, 100_000);
        assert_eq!(m.sensors[0].lock().unwrap().len(), 1);
    }
}
