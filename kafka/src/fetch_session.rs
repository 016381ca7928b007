//! KIP-227 incremental fetch sessions, with the rules of Kafka's `FetchManager`,
//! `FetchSession`, `FetchSessionCacheShard` and `FetchContext`.
//!
//! A fetch with epoch 0 (`INITIAL_EPOCH`) is a full fetch that asks for a session: after
//! it is answered the cache keeps its partitions and fetch positions under a new id, if a
//! slot is free or one can be evicted. Later fetches name that id and the next epoch and
//! send only the partitions that changed (or `forgotten_topics_data` to drop some); the
//! broker reads every partition of the session and answers only those with something
//! new: records, a moved high watermark, last stable offset or log start offset, or an
//! error. Epoch -1 (`FINAL_EPOCH`) is a sessionless full fetch, which also closes the
//! session it names.
//!
//! Sans-io: time is passed in as milliseconds of a monotonic clock. Lock order is the
//! cache, then a session, as in Kafka; a fetch's long poll holds neither.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

/// The session id of a response without a session.
pub const INVALID_SESSION_ID: i32 = 0;
/// A full fetch that asks for a new session.
pub const INITIAL_EPOCH: i32 = 0;
/// A full fetch without a session (and the close of the one it names).
pub const FINAL_EPOCH: i32 = -1;

/// The epoch after `prev`, as Kafka's `FetchMetadata.nextEpoch`.
pub fn next_epoch(prev: i32) -> i32 {
    if prev < 0 {
        FINAL_EPOCH
    } else if prev == i32::MAX {
        1
    } else {
        prev + 1
    }
}

/// How a session names topics: by id from Fetch v13, by name before.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(Uuid),
    Name(Arc<str>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

/// What the fetcher asked of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchParams {
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
}

/// One partition a fetch reads: from the request, or from the session for an
/// incremental fetch. `name` is `None` for a topic id the broker does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub key: PartitionKey,
    pub name: Option<Arc<str>>,
    pub params: FetchParams,
}

/// What a response says of one partition: what decides whether an incremental
/// response carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub records_len: usize,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub error: i16,
}

#[derive(Debug)]
struct CachedPartition {
    name: Option<Arc<str>>,
    params: FetchParams,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

impl CachedPartition {
    fn new(name: Option<Arc<str>>, params: FetchParams) -> CachedPartition {
        CachedPartition {
            name,
            params,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
        }
    }

    /// Whether the response must carry this partition; remembers what it reports.
    fn must_respond(&mut self, a: &Answered) -> bool {
        let mut must = a.records_len > 0;
        if self.high_watermark != a.high_watermark {
            self.high_watermark = a.high_watermark;
            must = true;
        }
        if self.last_stable_offset != a.last_stable_offset {
            self.last_stable_offset = a.last_stable_offset;
            must = true;
        }
        if self.log_start_offset != a.log_start_offset {
            self.log_start_offset = a.log_start_offset;
            must = true;
        }
        if a.error != 0 {
            // Sent again once the error is gone.
            self.high_watermark = -1;
            must = true;
        }
        must
    }
}

#[derive(Debug)]
pub struct FetchSession {
    id: i32,
    epoch: i32,
    uses_topic_ids: bool,
    created_ms: u64,
    last_used_ms: u64,
    /// The size the cache accounts this session with (`None` once out of the cache).
    cached_size: Option<usize>,
    /// In read order: a partition that returned records moves to the end, so one that
    /// fills the response does not starve the others.
    partitions: IndexMap<PartitionKey, CachedPartition>,
}

impl FetchSession {
    pub fn id(&self) -> i32 {
        self.id
    }

    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    pub fn len(&self) -> usize {
        self.partitions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    fn wanted(&self) -> Vec<Wanted> {
        self.partitions
            .iter()
            .map(|(key, c)| Wanted {
                key: key.clone(),
                name: c.name.clone(),
                params: c.params,
            })
            .collect()
    }
}

/// How one fetch request relates to the session cache (Kafka's `FetchContext`).
#[derive(Debug)]
pub enum FetchContext {
    /// The request is answered with this error alone (session id 0, no partitions).
    SessionError(ResponseError),
    /// Epoch -1, or an incremental fetch that removed its session's last partition.
    Sessionless(Vec<Wanted>),
    /// Epoch 0: a session is created once the fetch is answered, if the cache allows.
    Full {
        wanted: Vec<Wanted>,
        uses_topic_ids: bool,
        max_partitions: usize,
    },
    /// An existing session at the right epoch (already advanced to `expected_epoch`).
    Incremental {
        session: Arc<Mutex<FetchSession>>,
        id: i32,
        expected_epoch: i32,
        wanted: Vec<Wanted>,
    },
}

impl FetchContext {
    /// The partitions to read, in order.
    pub fn wanted(&self) -> &[Wanted] {
        match self {
            FetchContext::SessionError(_) => &[],
            FetchContext::Sessionless(w) => w,
            FetchContext::Full { wanted, .. } => wanted,
            FetchContext::Incremental { wanted, .. } => wanted,
        }
    }
}

/// The top level of a fetch response, and which partitions it carries.
#[derive(Debug, PartialEq, Eq)]
pub struct FetchOutcome {
    pub error: i16,
    pub session_id: i32,
    /// Per partition of [`FetchContext::wanted`]: whether the response carries it.
    pub include: Vec<bool>,
}

/// The kinds of fetch request, as counted for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Sessionless,
    Full,
    Incremental,
    Error,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<i32, Arc<Mutex<FetchSession>>>,
    /// (last used ms, id), oldest first.
    last_used: BTreeSet<(u64, i32)>,
    /// (size, id) of the sessions older than the eviction time when last used,
    /// smallest first: those a larger new session may push out.
    evictable: BTreeSet<(usize, i32)>,
    partitions: usize,
}

/// The bounded set of fetch sessions (`max.incremental.fetch.session.cache.slots`).
#[derive(Debug)]
pub struct FetchSessionCache {
    max_slots: usize,
    eviction_ms: u64,
    clock: Instant,
    inner: Mutex<Inner>,
    evictions: AtomicU64,
    requests: [AtomicU64; 4],
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    runnel_core::poison::or_stop(m.lock(), "fetch session")
}

impl FetchSessionCache {
    /// `max_slots` sessions at most; a session unused for `eviction_ms` may be evicted
    /// by any new one, a younger one only by a larger one once it is that old.
    pub fn new(max_slots: usize, eviction_ms: u64) -> FetchSessionCache {
        FetchSessionCache {
            max_slots,
            eviction_ms,
            clock: Instant::now(),
            inner: Mutex::new(Inner::default()),
            evictions: AtomicU64::new(0),
            requests: Default::default(),
        }
    }

    /// Milliseconds on the cache's monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Number of sessions (Kafka's `NumIncrementalFetchSessions`).
    pub fn len(&self) -> usize {
        lock(&self.inner).sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Partitions held by all sessions (`NumIncrementalFetchPartitionsCached`).
    pub fn partitions_cached(&self) -> usize {
        lock(&self.inner).partitions
    }

    /// Sessions evicted to make room for others.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Fetch requests seen, by kind.
    pub fn requests(&self, kind: RequestKind) -> u64 {
        self.requests[kind as usize].load(Ordering::Relaxed)
    }

    /// Whether session `id` exists.
    pub fn contains(&self, id: i32) -> bool {
        lock(&self.inner).sessions.contains_key(&id)
    }

    /// Kafka's `FetchManager.newContext`. `requested` are the request's partitions,
    /// `forgotten` those it drops; `resolve` names a topic id, for session partitions
    /// whose topic was unknown when they were added; a session may hold at most
    /// `max_partitions` (the partitions the broker has).
    #[allow(clippy::too_many_arguments)]
    pub fn new_context(
        &self,
        uses_topic_ids: bool,
        session_id: i32,
        epoch: i32,
        requested: Vec<Wanted>,
        forgotten: Vec<PartitionKey>,
        resolve: impl Fn(&Uuid) -> Option<Arc<str>>,
        max_partitions: usize,
        now: u64,
    ) -> FetchContext {
        let ctx = self.context(
            uses_topic_ids,
            session_id,
            epoch,
            requested,
            forgotten,
            resolve,
            max_partitions,
            now,
        );
        let kind = match ctx {
            FetchContext::SessionError(_) => RequestKind::Error,
            FetchContext::Sessionless(_) => RequestKind::Sessionless,
            FetchContext::Full { .. } => RequestKind::Full,
            FetchContext::Incremental { .. } => RequestKind::Incremental,
        };
        self.requests[kind as usize].fetch_add(1, Ordering::Relaxed);
        ctx
    }

    #[allow(clippy::too_many_arguments)]
    fn context(
        &self,
        uses_topic_ids: bool,
        session_id: i32,
        epoch: i32,
        requested: Vec<Wanted>,
        forgotten: Vec<PartitionKey>,
        resolve: impl Fn(&Uuid) -> Option<Arc<str>>,
        max_partitions: usize,
        now: u64,
    ) -> FetchContext {
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            // A full fetch closes the session it names.
            if session_id != INVALID_SESSION_ID && self.remove(session_id) {
                tracing::debug!(session_id, "fetch session closed by a full fetch");
            }
            let wanted = dedup(requested);
            return if epoch == FINAL_EPOCH {
                FetchContext::Sessionless(wanted)
            } else {
                FetchContext::Full {
                    wanted,
                    uses_topic_ids,
                    max_partitions,
                }
            };
        }
        let mut inner = lock(&self.inner);
        let Some(session) = inner.sessions.get(&session_id).cloned() else {
            tracing::debug!(session_id, epoch, "fetch session not found");
            return FetchContext::SessionError(ResponseError::FetchSessionIdNotFound);
        };
        let mut s = lock(&session);
        if s.epoch != epoch {
            tracing::debug!(
                session_id,
                expected = s.epoch,
                got = epoch,
                "wrong fetch session epoch"
            );
            return FetchContext::SessionError(ResponseError::InvalidFetchSessionEpoch);
        }
        if s.uses_topic_ids != uses_topic_ids {
            return FetchContext::SessionError(ResponseError::FetchSessionTopicIdError);
        }
        let (mut added, mut updated, mut removed) = (0usize, 0usize, 0usize);
        let requested = dedup(requested);
        for w in &requested {
            match s.partitions.get_mut(&w.key) {
                Some(c) => {
                    c.params = w.params;
                    updated += 1;
                }
                None => {
                    s.partitions.insert(
                        w.key.clone(),
                        CachedPartition::new(w.name.clone(), w.params),
                    );
                    added += 1;
                }
            }
        }
        for key in &forgotten {
            if s.partitions.shift_remove(key).is_some() {
                removed += 1;
            }
        }
        if s.partitions.is_empty() {
            drop(s);
            remove_locked(&mut inner, session_id);
            tracing::debug!(session_id, "fetch session closed: no partitions left");
            return FetchContext::Sessionless(requested);
        }
        if s.partitions.len() > max_partitions {
            // More partitions than exist: the client starts over with a full fetch,
            // which gets no session while it asks for that many.
            let len = s.partitions.len();
            drop(s);
            remove_locked(&mut inner, session_id);
            tracing::info!(
                session_id,
                partitions = len,
                max_partitions,
                "fetch session closed: more partitions than the broker has"
            );
            return FetchContext::SessionError(ResponseError::FetchSessionIdNotFound);
        }
        for (key, c) in s.partitions.iter_mut() {
            if let (None, TopicKey::Id(id)) = (&c.name, &key.topic) {
                c.name = resolve(id);
            }
        }
        self.touch(&mut inner, &mut s, now);
        s.epoch = next_epoch(s.epoch);
        tracing::debug!(
            session_id,
            epoch = s.epoch,
            added,
            updated,
            removed,
            partitions = s.partitions.len(),
            "incremental fetch"
        );
        FetchContext::Incremental {
            id: session_id,
            expected_epoch: s.epoch,
            wanted: s.wanted(),
            session: session.clone(),
        }
    }

    /// Kafka's `updateAndGenerateResponseData`: create the session of a full fetch,
    /// or pick the partitions an incremental response carries. `answered` is in the
    /// order of [`FetchContext::wanted`].
    pub fn finish(&self, ctx: &FetchContext, answered: &[Answered], now: u64) -> FetchOutcome {
        let all = |session_id| FetchOutcome {
            error: 0,
            session_id,
            include: vec![true; answered.len()],
        };
        match ctx {
            FetchContext::SessionError(e) => FetchOutcome {
                error: e.code(),
                session_id: INVALID_SESSION_ID,
                include: vec![false; answered.len()],
            },
            FetchContext::Sessionless(_) => all(INVALID_SESSION_ID),
            FetchContext::Full {
                wanted,
                uses_topic_ids,
                max_partitions,
            } => {
                let id = if wanted.len() > *max_partitions {
                    INVALID_SESSION_ID
                } else {
                    self.maybe_create(now, wanted.len(), *uses_topic_ids, || {
                        wanted
                            .iter()
                            .zip(answered)
                            .map(|(w, a)| {
                                let mut c = CachedPartition::new(w.name.clone(), w.params);
                                c.must_respond(a);
                                (w.key.clone(), c)
                            })
                            .collect()
                    })
                };
                all(id)
            }
            FetchContext::Incremental {
                session,
                id,
                expected_epoch,
                wanted,
            } => {
                let mut s = lock(session);
                if s.epoch != *expected_epoch {
                    // Another fetch of this session came in during this one's long poll.
                    tracing::info!(
                        session_id = id,
                        expected = expected_epoch,
                        epoch = s.epoch,
                        "fetch session epoch moved: possible duplicate request"
                    );
                    return FetchOutcome {
                        error: ResponseError::InvalidFetchSessionEpoch.code(),
                        session_id: *id,
                        include: vec![false; answered.len()],
                    };
                }
                let mut include = Vec::with_capacity(answered.len());
                let mut moved = Vec::new();
                for (w, a) in wanted.iter().zip(answered) {
                    let must = s
                        .partitions
                        .get_mut(&w.key)
                        .is_some_and(|c| c.must_respond(a));
                    if must && a.records_len > 0 {
                        moved.push(w.key.clone());
                    }
                    include.push(must);
                }
                for key in moved {
                    if let Some((k, c)) = s.partitions.shift_remove_entry(&key) {
                        s.partitions.insert(k, c);
                    }
                }
                FetchOutcome {
                    error: 0,
                    session_id: *id,
                    include,
                }
            }
        }
    }

    fn maybe_create(
        &self,
        now: u64,
        size: usize,
        uses_topic_ids: bool,
        partitions: impl FnOnce() -> IndexMap<PartitionKey, CachedPartition>,
    ) -> i32 {
        let mut inner = lock(&self.inner);
        if inner.sessions.len() >= self.max_slots && !self.try_evict(&mut inner, size, now) {
            tracing::debug!(size, "no fetch session created: the cache is full");
            return INVALID_SESSION_ID;
        }
        let id = new_session_id(&inner);
        let mut session = FetchSession {
            id,
            epoch: next_epoch(INITIAL_EPOCH),
            uses_topic_ids,
            created_ms: now,
            last_used_ms: now,
            cached_size: None,
            partitions: partitions(),
        };
        self.touch(&mut inner, &mut session, now);
        tracing::debug!(
            session_id = id,
            partitions = session.partitions.len(),
            "created fetch session"
        );
        inner.sessions.insert(id, Arc::new(Mutex::new(session)));
        id
    }

    /// Kafka's `tryEvict`: the least recently used session if it has been idle past the
    /// eviction time; otherwise the smallest evictable one if the new one is larger.
    fn try_evict(&self, inner: &mut Inner, size: usize, now: u64) -> bool {
        let Some(&(last_used, id)) = inner.last_used.first() else {
            return false;
        };
        let victim = if now.saturating_sub(last_used) > self.eviction_ms {
            id
        } else {
            match inner.evictable.first() {
                // The new session's key is (size, 0) and ids are positive: it wins
                // only with more partitions.
                Some(&(victim_size, victim)) if size > victim_size => victim,
                _ => return false,
            }
        };
        remove_locked(inner, victim);
        self.evictions.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(session_id = victim, "evicted fetch session");
        true
    }

    /// Kafka's `touch`: the session's place among the least recently used and the
    /// evictable ones, and the partition count.
    fn touch(&self, inner: &mut Inner, s: &mut FetchSession, now: u64) {
        inner.last_used.remove(&(s.last_used_ms, s.id));
        s.last_used_ms = now;
        inner.last_used.insert((now, s.id));
        if let Some(old) = s.cached_size {
            inner.evictable.remove(&(old, s.id));
            inner.partitions -= old;
        }
        let size = s.partitions.len();
        s.cached_size = Some(size);
        if now.saturating_sub(s.created_ms) > self.eviction_ms {
            inner.evictable.insert((size, s.id));
        }
        inner.partitions += size;
    }

    /// Remove session `id`; whether it existed.
    pub fn remove(&self, id: i32) -> bool {
        remove_locked(&mut lock(&self.inner), id)
    }
}

fn remove_locked(inner: &mut Inner, id: i32) -> bool {
    let Some(session) = inner.sessions.remove(&id) else {
        return false;
    };
    let mut s = lock(&session);
    inner.last_used.remove(&(s.last_used_ms, id));
    if let Some(size) = s.cached_size.take() {
        inner.evictable.remove(&(size, id));
        inner.partitions -= size;
    }
    true
}

/// A random positive id not in use.
fn new_session_id(inner: &Inner) -> i32 {
    loop {
        let id = (Uuid::new_v4().as_u128() as u32 & 0x7fff_ffff) as i32;
        if id != INVALID_SESSION_ID && !inner.sessions.contains_key(&id) {
            return id;
        }
    }
}

/// One entry per partition, in first-seen order, the last parameters winning (a Java
/// `LinkedHashMap`, as Kafka's request parsing builds it).
fn dedup(requested: Vec<Wanted>) -> Vec<Wanted> {
    let mut seen: IndexMap<PartitionKey, Wanted> = IndexMap::with_capacity(requested.len());
    for w in requested {
        seen.insert(w.key.clone(), w);
    }
    seen.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str, p: i32) -> PartitionKey {
        PartitionKey {
            topic: TopicKey::Name(t.into()),
            partition: p,
        }
    }

    fn want(t: &str, p: i32, offset: i64) -> Wanted {
        Wanted {
            key: key(t, p),
            name: Some(t.into()),
            params: FetchParams {
                fetch_offset: offset,
                log_start_offset: -1,
                max_bytes: 1024,
                current_leader_epoch: -1,
            },
        }
    }

    fn answer(hw: i64, records_len: usize) -> Answered {
        Answered {
            records_len,
            high_watermark: hw,
            last_stable_offset: hw,
            log_start_offset: 0,
            error: 0,
        }
    }

    fn no_ids(_: &Uuid) -> Option<Arc<str>> {
        None
    }

    /// A full fetch of `parts` at `now`; the new session id (0 if none).
    fn full(cache: &FetchSessionCache, parts: &[(&str, i32)], now: u64) -> i32 {
        let wanted: Vec<Wanted> = parts.iter().map(|(t, p)| want(t, *p, 0)).collect();
        let n = wanted.len();
        let ctx = cache.new_context(false, 0, 0, wanted, vec![], no_ids, 100, now);
        cache.finish(&ctx, &vec![answer(0, 0); n], now).session_id
    }

    fn incremental(
        cache: &FetchSessionCache,
        id: i32,
        epoch: i32,
        requested: Vec<Wanted>,
        forgotten: Vec<PartitionKey>,
        now: u64,
    ) -> FetchContext {
        cache.new_context(false, id, epoch, requested, forgotten, no_ids, 100, now)
    }

    #[test]
    fn epochs_wrap_to_one_and_final_stays_final() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(41), 42);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), -1);
    }

    #[test]
    fn session_lifecycle_and_errors() {
        let cache = FetchSessionCache::new(10, 120_000);
        let id = full(&cache, &[("a", 0), ("a", 1)], 0);
        assert_ne!(id, 0);
        assert_eq!((cache.len(), cache.partitions_cached()), (1, 2));

        let ctx = incremental(&cache, id + 1, 1, vec![], vec![], 1);
        assert!(matches!(
            ctx,
            FetchContext::SessionError(ResponseError::FetchSessionIdNotFound)
        ));
        let ctx = incremental(&cache, id, 2, vec![], vec![], 1);
        assert!(matches!(
            ctx,
            FetchContext::SessionError(ResponseError::InvalidFetchSessionEpoch)
        ));
        let ctx = cache.new_context(true, id, 1, vec![], vec![], no_ids, 100, 1);
        assert!(matches!(
            ctx,
            FetchContext::SessionError(ResponseError::FetchSessionTopicIdError)
        ));

        // Epoch 1 works, and then only epoch 2.
        let ctx = incremental(&cache, id, 1, vec![], vec![], 1);
        assert_eq!(ctx.wanted().len(), 2);
        let out = cache.finish(&ctx, &[answer(0, 0), answer(0, 0)], 1);
        assert_eq!(out.session_id, id);
        let ctx = incremental(&cache, id, 1, vec![], vec![], 1);
        assert!(matches!(ctx, FetchContext::SessionError(_)));
        let ctx = incremental(&cache, id, 2, vec![], vec![], 2);
        assert!(matches!(ctx, FetchContext::Incremental { .. }));

        // Epoch -1 closes it and is sessionless.
        let ctx = cache.new_context(
            false,
            id,
            FINAL_EPOCH,
            vec![want("a", 0, 0)],
            vec![],
            no_ids,
            100,
            3,
        );
        assert!(matches!(ctx, FetchContext::Sessionless(ref w) if w.len() == 1));
        assert_eq!(cache.finish(&ctx, &[answer(0, 0)], 3).session_id, 0);
        assert!(!cache.contains(id));
        assert_eq!((cache.len(), cache.partitions_cached()), (0, 0));
    }

    #[test]
    fn incremental_responses_carry_only_changes() {
        let cache = FetchSessionCache::new(10, 120_000);
        let id = full(&cache, &[("a", 0), ("a", 1), ("b", 0)], 0);
        // Nothing changed: nothing carried.
        let ctx = incremental(&cache, id, 1, vec![], vec![], 1);
        let out = cache.finish(&ctx, &[answer(0, 0), answer(0, 0), answer(0, 0)], 1);
        assert_eq!(out.include, vec![false, false, false]);
        // a-1 has records, b-0 only a new high watermark.
        let ctx = incremental(&cache, id, 2, vec![], vec![], 2);
        let out = cache.finish(&ctx, &[answer(0, 0), answer(5, 100), answer(3, 0)], 2);
        assert_eq!(out.include, vec![false, true, true]);
        // a-1 moved to the end of the read order.
        let ctx = incremental(&cache, id, 3, vec![want("a", 1, 5)], vec![], 3);
        let order: Vec<_> = ctx.wanted().iter().map(|w| w.key.clone()).collect();
        assert_eq!(order, vec![key("a", 0), key("b", 0), key("a", 1)]);
        assert_eq!(ctx.wanted()[2].params.fetch_offset, 5);
        // Errors are always carried, and again once gone.
        let mut err = answer(-1, 0);
        err.error = ResponseError::OffsetOutOfRange.code();
        let out = cache.finish(&ctx, &[err, answer(3, 0), answer(5, 0)], 3);
        assert_eq!(out.include, vec![true, false, false]);
        let ctx = incremental(&cache, id, 4, vec![], vec![], 4);
        let out = cache.finish(&ctx, &[answer(0, 0), answer(3, 0), answer(5, 0)], 4);
        assert_eq!(out.include, vec![true, false, false]);
        // A log start offset move is carried.
        let ctx = incremental(&cache, id, 5, vec![], vec![], 5);
        let mut moved = answer(0, 0);
        moved.log_start_offset = 2;
        let out = cache.finish(&ctx, &[moved, answer(3, 0), answer(5, 0)], 5);
        assert_eq!(out.include, vec![true, false, false]);
    }

    #[test]
    fn forgetting_every_partition_closes_the_session() {
        let cache = FetchSessionCache::new(10, 120_000);
        let id = full(&cache, &[("a", 0), ("a", 1)], 0);
        let ctx = incremental(&cache, id, 1, vec![want("c", 0, 0)], vec![key("a", 1)], 1);
        assert_eq!(ctx.wanted().len(), 2);
        assert_eq!(cache.partitions_cached(), 2);
        let ctx = incremental(&cache, id, 2, vec![], vec![key("a", 0), key("c", 0)], 2);
        assert!(matches!(ctx, FetchContext::Sessionless(ref w) if w.is_empty()));
        assert!(!cache.contains(id));
        assert_eq!(cache.partitions_cached(), 0);
    }

    #[test]
    fn sessions_are_bounded_by_the_partitions_that_exist() {
        let cache = FetchSessionCache::new(10, 120_000);
        let wanted = vec![want("a", 0, 0), want("a", 1, 0), want("a", 2, 0)];
        let ctx = cache.new_context(false, 0, 0, wanted, vec![], no_ids, 2, 0);
        assert_eq!(cache.finish(&ctx, &[answer(0, 0); 3], 0).session_id, 0);
        // Duplicates count once.
        let wanted = vec![want("a", 0, 0), want("a", 0, 7)];
        let ctx = cache.new_context(false, 0, 0, wanted, vec![], no_ids, 2, 0);
        assert_eq!(ctx.wanted().len(), 1);
        assert_eq!(ctx.wanted()[0].params.fetch_offset, 7);
        let id = cache.finish(&ctx, &[answer(0, 0)], 0).session_id;
        assert_ne!(id, 0);
        let ctx = cache.new_context(false, id, 1, vec![want("a", 1, 0)], vec![], no_ids, 2, 1);
        assert!(matches!(ctx, FetchContext::Incremental { .. }));
        let ctx = cache.new_context(false, id, 2, vec![want("zz", 1, 0)], vec![], no_ids, 2, 1);
        assert!(matches!(
            ctx,
            FetchContext::SessionError(ResponseError::FetchSessionIdNotFound)
        ));
        assert!(cache.is_empty());
    }

    #[test]
    fn eviction_prefers_idle_then_smaller_sessions() {
        let cache = FetchSessionCache::new(2, 1000);
        let small = full(&cache, &[("a", 0)], 0);
        let big = full(&cache, &[("a", 0), ("a", 1), ("a", 2)], 0);
        // Full, nothing idle and nothing old enough: no session.
        assert_eq!(
            full(&cache, &[("b", 0), ("b", 1), ("b", 2), ("b", 3)], 10),
            0
        );
        // Both used after the eviction time from creation: evictable by size.
        for (id, n) in [(small, 1), (big, 3)] {
            let ctx = incremental(&cache, id, 1, vec![], vec![], 1500);
            cache.finish(&ctx, &vec![answer(0, 0); n], 1500);
        }
        // Equal size does not evict; larger evicts the smallest.
        assert_eq!(full(&cache, &[("c", 0)], 1600), 0);
        let mid = full(&cache, &[("c", 0), ("c", 1)], 1600);
        assert_ne!(mid, 0);
        assert!(!cache.contains(small) && cache.contains(big));
        assert_eq!(cache.evictions(), 1);
        // `mid` is young, `big` larger than a newcomer of 2: nothing to evict.
        assert_eq!(full(&cache, &[("d", 0), ("d", 1)], 1700), 0);
        // Idle past the eviction time: the least recently used goes, whatever its size.
        let ctx = incremental(&cache, mid, 1, vec![], vec![], 2400);
        cache.finish(&ctx, &[answer(0, 0), answer(0, 0)], 2400);
        let newest = full(&cache, &[("e", 0)], 2600);
        assert_ne!(newest, 0);
        assert!(!cache.contains(big) && cache.contains(mid));
        assert_eq!(cache.evictions(), 2);
        assert_eq!((cache.len(), cache.partitions_cached()), (2, 3));
    }

    #[test]
    fn no_slots_no_sessions() {
        let cache = FetchSessionCache::new(0, 0);
        assert_eq!(full(&cache, &[("a", 0)], 5), 0);
    }

    #[test]
    fn a_fetch_that_raced_another_gets_invalid_epoch() {
        let cache = FetchSessionCache::new(10, 120_000);
        let id = full(&cache, &[("a", 0)], 0);
        let first = incremental(&cache, id, 1, vec![], vec![], 1);
        let second = incremental(&cache, id, 2, vec![], vec![], 2);
        let out = cache.finish(&first, &[answer(1, 10)], 3);
        assert_eq!(out.error, ResponseError::InvalidFetchSessionEpoch.code());
        assert_eq!(out.session_id, id);
        assert_eq!(out.include, vec![false]);
        let out = cache.finish(&second, &[answer(1, 10)], 3);
        assert_eq!((out.error, out.include), (0, vec![true]));
    }

    #[test]
    fn unknown_topic_ids_resolve_later() {
        let cache = FetchSessionCache::new(10, 120_000);
        let topic = Uuid::new_v4();
        let w = Wanted {
            key: PartitionKey {
                topic: TopicKey::Id(topic),
                partition: 0,
            },
            name: None,
            params: want("x", 0, 0).params,
        };
        let ctx = cache.new_context(true, 0, 0, vec![w], vec![], no_ids, 10, 0);
        let id = cache.finish(&ctx, &[answer(-1, 0)], 0).session_id;
        let known = |u: &Uuid| (*u == topic).then(|| Arc::from("t"));
        let ctx = cache.new_context(true, id, 1, vec![], vec![], known, 10, 1);
        assert_eq!(ctx.wanted()[0].name.as_deref(), Some("t"));
    }
}
