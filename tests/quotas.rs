//! Client quotas (KIP-546) with real clients: AlterClientQuotas and DescribeClientQuotas
//! answered as Kafka answers them (its checks, codes and messages, the match types,
//! `strict`, `validate_only`), kept across a restart; and librdkafka producers and
//! consumers over a quota seeing `throttle_time_ms` (KIP-219) in their statistics, while
//! clients without one see none. No assertion is on a rate: only that throttling
//! happened, or not.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages as m;
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use runnel_client::{Connection, ConnectionConfig};
use runnel_protocol::api::{RequestBody, ResponseBody};
use runnel_suite::{eventually, TestBroker};

const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn connect(broker: &TestBroker, client_id: &str) -> Connection {
    let config = ConnectionConfig {
        client_id: client_id.to_string(),
        ..ConnectionConfig::default()
    };
    Connection::connect(&broker.bootstrap(), config)
        .await
        .expect("connect")
}

async fn send(conn: &Connection, body: impl Into<RequestBody>, version: i16) -> ResponseBody {
    conn.send_version(body.into(), version)
        .await
        .expect("request")
}

type Entity<'a> = &'a [(&'a str, Option<&'a str>)];

/// One AlterClientQuotas entry: `ops` are (key, Some(value)) to set, (key, None) to remove.
fn entry(
    entity: Entity<'_>,
    ops: &[(&str, Option<f64>)],
) -> m::alter_client_quotas_request::EntryData {
    use m::alter_client_quotas_request::{EntityData, EntryData, OpData};
    EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(s(t))
                        .with_entity_name(n.map(s))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v)| {
                    OpData::default()
                        .with_key(s(k))
                        .with_value(v.unwrap_or(0.0))
                        .with_remove(v.is_none())
                })
                .collect(),
        )
}

/// (entity as "type=name,...", error code, message) per result entry.
type AlterResult = Vec<(String, i16, String)>;

async fn alter(
    conn: &Connection,
    entries: Vec<m::alter_client_quotas_request::EntryData>,
    validate_only: bool,
) -> AlterResult {
    let req = m::AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    let ResponseBody::AlterClientQuotas(r) = send(conn, req, 1).await else {
        panic!("not an AlterClientQuotas response")
    };
    r.entries
        .iter()
        .map(|e| {
            let mut parts: Vec<String> = e
                .entity
                .iter()
                .map(|d| {
                    format!(
                        "{}={}",
                        d.entity_type,
                        d.entity_name.as_deref().unwrap_or("<default>")
                    )
                })
                .collect();
            parts.sort();
            (
                parts.join(","),
                e.error_code,
                e.error_message.as_deref().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A filter component: (entity type, match type, match).
fn component(
    t: &str,
    match_type: i8,
    name: Option<&str>,
) -> m::describe_client_quotas_request::ComponentData {
    m::describe_client_quotas_request::ComponentData::default()
        .with_entity_type(s(t))
        .with_match_type(match_type)
        .with_match(name.map(s))
}

/// The described entities ("type=name,..." sorted) with their values, or the error.
type Described = Result<Vec<(String, Vec<(String, f64)>)>, (i16, String)>;

async fn describe(
    conn: &Connection,
    components: Vec<m::describe_client_quotas_request::ComponentData>,
    strict: bool,
) -> Described {
    let req = m::DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(strict);
    let ResponseBody::DescribeClientQuotas(r) = send(conn, req, 1).await else {
        panic!("not a DescribeClientQuotas response")
    };
    if r.error_code != 0 {
        assert!(r.entries.is_none(), "an error answer has no entries");
        return Err((
            r.error_code,
            r.error_message.as_deref().unwrap_or("").to_string(),
        ));
    }
    let mut out: Vec<(String, Vec<(String, f64)>)> = r
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let mut entity: Vec<String> = e
                .entity
                .iter()
                .map(|d| {
                    format!(
                        "{}={}",
                        d.entity_type,
                        d.entity_name.as_deref().unwrap_or("<default>")
                    )
                })
                .collect();
            entity.sort();
            let mut values: Vec<(String, f64)> = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            values.sort_by(|a, b| a.0.cmp(&b.0));
            (entity.join(","), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn ok(entity: &str) -> (String, i16, String) {
    (entity.to_string(), 0, String::new())
}

fn refused(entity: &str, message: &str) -> (String, i16, String) {
    (entity.to_string(), INVALID_REQUEST, message.to_string())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const SPECIFIED: i8 = 2;

#[test]
fn alter_and_describe_answer_as_kafka_and_survive_a_restart() {
    let mut broker = TestBroker::start();
    let rt = runtime();
    rt.block_on(async {
        let conn = connect(&broker, "quota-admin").await;
        let alice = [("user", Some("alice"))];
        let alice_app = [("user", Some("alice")), ("client-id", Some("app"))];
        let default_user = [("user", None)];
        let default_client = [("client-id", None)];
        let ip_default = [("ip", None)];
        let ip_local = [("ip", Some("127.0.0.2"))];
        let r = alter(
            &conn,
            vec![
                entry(
                    &alice,
                    &[
                        ("producer_byte_rate", Some(1024.0)),
                        ("consumer_byte_rate", Some(2048.0)),
                    ],
                ),
                entry(&alice_app, &[("request_percentage", Some(12.5))]),
                entry(&default_user, &[("producer_byte_rate", Some(4096.0))]),
                entry(&default_client, &[("controller_mutation_rate", Some(10.0))]),
                entry(&ip_default, &[("connection_creation_rate", Some(1000.0))]),
                entry(&ip_local, &[("connection_creation_rate", Some(5.0))]),
            ],
            false,
        )
        .await;
        assert_eq!(
            r,
            vec![
                ok("user=alice"),
                ok("client-id=app,user=alice"),
                ok("user=<default>"),
                ok("client-id=<default>"),
                ok("ip=<default>"),
                ok("ip=127.0.0.2"),
            ]
        );

        kafkas_refusals(&conn).await;

        // validate_only checks and changes nothing.
        let r = alter(
            &conn,
            vec![entry(
                &[("client-id", Some("dry"))],
                &[("producer_byte_rate", Some(1.0))],
            )],
            true,
        )
        .await;
        assert_eq!(r, vec![ok("client-id=dry")]);

        let everything = vec![
            (
                "client-id=<default>".to_string(),
                vec![("controller_mutation_rate".to_string(), 10.0)],
            ),
            (
                "client-id=app,user=alice".to_string(),
                vec![("request_percentage".to_string(), 12.5)],
            ),
            (
                "ip=127.0.0.2".to_string(),
                vec![("connection_creation_rate".to_string(), 5.0)],
            ),
            (
                "ip=<default>".to_string(),
                vec![("connection_creation_rate".to_string(), 1000.0)],
            ),
            (
                "user=<default>".to_string(),
                vec![("producer_byte_rate".to_string(), 4096.0)],
            ),
            (
                "user=alice".to_string(),
                vec![
                    ("consumer_byte_rate".to_string(), 2048.0),
                    ("producer_byte_rate".to_string(), 1024.0),
                ],
            ),
        ];
        assert_eq!(describe(&conn, vec![], false).await, Ok(everything.clone()));
        // EXACT, DEFAULT and SPECIFIED; strict wants exactly the named types.
        let users = |v: &[&str]| -> Described {
            Ok(everything
                .iter()
                .filter(|(e, _)| v.contains(&e.as_str()))
                .cloned()
                .collect())
        };
        assert_eq!(
            describe(&conn, vec![component("user", EXACT, Some("alice"))], false).await,
            users(&["client-id=app,user=alice", "user=alice"])
        );
        assert_eq!(
            describe(&conn, vec![component("user", EXACT, Some("alice"))], true).await,
            users(&["user=alice"])
        );
        assert_eq!(
            describe(&conn, vec![component("user", DEFAULT, None)], false).await,
            users(&["user=<default>"])
        );
        assert_eq!(
            describe(&conn, vec![component("user", SPECIFIED, None)], false).await,
            users(&["client-id=app,user=alice", "user=<default>", "user=alice"])
        );
        assert_eq!(
            describe(
                &conn,
                vec![
                    component("user", SPECIFIED, None),
                    component("client-id", SPECIFIED, None)
                ],
                true
            )
            .await,
            users(&["client-id=app,user=alice"])
        );
        assert_eq!(
            describe(&conn, vec![component("ip", SPECIFIED, None)], false).await,
            users(&["ip=127.0.0.2", "ip=<default>"])
        );
        // Removing a value; removing the last one removes the entity.
        let r = alter(
            &conn,
            vec![
                entry(&alice, &[("consumer_byte_rate", None)]),
                entry(&ip_local, &[("connection_creation_rate", None)]),
                entry(&[("client-id", Some("never"))], &[("anything", None)]),
            ],
            false,
        )
        .await;
        assert_eq!(
            r,
            vec![ok("user=alice"), ok("ip=127.0.0.2"), ok("client-id=never")]
        );
    });

    broker.restart();
    rt.block_on(async {
        let conn = connect(&broker, "quota-admin").await;
        let after = describe(&conn, vec![], false).await.expect("describe");
        let entities: Vec<&str> = after.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(
            entities,
            vec![
                "client-id=<default>",
                "client-id=app,user=alice",
                "ip=<default>",
                "user=<default>",
                "user=alice"
            ]
        );
        assert_eq!(after[4].1, vec![("producer_byte_rate".to_string(), 1024.0)]);
    });
}

/// Kafka's refusals of AlterClientQuotas entries and DescribeClientQuotas filters, with
/// its codes and messages. They change nothing, so they run against any broker:
/// `RUNNEL_QUOTAS_REFERENCE=HOST:PORT cargo test --test quotas -- --ignored` checks them
/// against Apache Kafka (tests/kafka/kafka.sh start DIR).
async fn kafkas_refusals(conn: &Connection) {
    // Kafka's checks (ClientQuotaControlManager), with its messages.
    let r = alter(
        conn,
        vec![
            entry(
                &[("user", Some("bob"))],
                &[("connection_creation_rate", Some(1.0))],
            ),
            entry(
                &[("client-id", Some("c1"))],
                &[("producer_byte_rate", Some(0.0))],
            ),
            entry(
                &[("client-id", Some("c2"))],
                &[("producer_byte_rate", Some(10.5))],
            ),
            entry(
                &[("client-id", Some("c3"))],
                &[("consumer_byte_rate", Some(1e19))],
            ),
            entry(
                &[("ip", Some("127.0.0.3"))],
                &[("connection_creation_rate", Some(3e9))],
            ),
            entry(
                &[("ip", Some("127.0.0.4"))],
                &[("producer_byte_rate", Some(1.0))],
            ),
            entry(
                &[("ip", Some("not an ip"))],
                &[("connection_creation_rate", Some(1.0))],
            ),
            entry(
                &[("ip", None), ("user", Some("x"))],
                &[("connection_creation_rate", Some(1.0))],
            ),
            entry(&[], &[("producer_byte_rate", Some(1.0))]),
            entry(
                &[("group", Some("g"))],
                &[("producer_byte_rate", Some(1.0))],
            ),
            entry(&[("user", Some(""))], &[("producer_byte_rate", Some(1.0))]),
            entry(
                &[("client-id", Some("dup"))],
                &[
                    ("producer_byte_rate", Some(1.0)),
                    ("producer_byte_rate", Some(2.0)),
                ],
            ),
            entry(
                &[("client-id", Some("c4"))],
                &[("no_such_quota", Some(1.0))],
            ),
        ],
        false,
    )
    .await;
    // Kafka answers in its map's order, Runnel in the request's: compare as sets.
    let sorted = |mut v: AlterResult| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(r),
        sorted(vec![
            refused("user=bob", "Invalid configuration key connection_creation_rate"),
            refused("client-id=c1", "Quota producer_byte_rate must be greater than 0"),
            refused("client-id=c2", "producer_byte_rate cannot be a fractional value."),
            refused("client-id=c3", "Proposed value for consumer_byte_rate is too large for a LONG."),
            refused("ip=127.0.0.3", "Proposed value for connection_creation_rate is too large for an INT."),
            refused("ip=127.0.0.4", "Invalid configuration key producer_byte_rate"),
            refused("ip=not an ip", "not an ip is not a valid IP or resolvable host."),
            refused("ip=<default>,user=x", "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId"),
            refused("", "Invalid empty client quota entity"),
            refused("group=g", "Unhandled client quota entity type: group"),
            refused("user=", "Empty user not supported"),
            refused("client-id=dup", "Ignoring duplicate entity ClientQuotaEntity(entries={client-id=dup})"),
            refused("client-id=c4", "Invalid configuration key no_such_quota"),
        ])
    );

    // Kafka's refusals of a filter (ClientQuotasImage.describe).
    let refusals = [
        (vec![component("", EXACT, Some("x"))], INVALID_REQUEST, "Invalid empty entity type."),
        (
            vec![component("user", EXACT, Some("a")), component("user", DEFAULT, None)],
            INVALID_REQUEST,
            "Entity type user cannot appear more than once in the filter.",
        ),
        (vec![component("group", SPECIFIED, None)], UNSUPPORTED_VERSION, "Unsupported entity type group"),
        (
            vec![component("user", EXACT, None)],
            INVALID_REQUEST,
            "Request specified MATCH_TYPE_EXACT, but set match string to null.",
        ),
        (
            vec![component("user", DEFAULT, Some("a"))],
            INVALID_REQUEST,
            "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
        ),
        (
            vec![component("user", SPECIFIED, Some("a"))],
            INVALID_REQUEST,
            "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
        ),
        (vec![component("user", 7, None)], INVALID_REQUEST, "Unknown match type 7"),
        (
            vec![component("ip", SPECIFIED, None), component("user", SPECIFIED, None)],
            INVALID_REQUEST,
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
        ),
    ];
    for (filter, code, message) in refusals {
        assert_eq!(
            describe(conn, filter, false).await,
            Err((code, message.to_string()))
        );
    }
}

#[test]
#[ignore = "needs RUNNEL_QUOTAS_REFERENCE, a running Kafka"]
fn the_refusals_are_kafkas_own() {
    let Ok(bootstrap) = std::env::var("RUNNEL_QUOTAS_REFERENCE") else {
        panic!("set RUNNEL_QUOTAS_REFERENCE=HOST:PORT of a Kafka broker");
    };
    runtime().block_on(async {
        let conn = Connection::connect(&bootstrap, ConnectionConfig::default())
            .await
            .expect("connect to the reference");
        kafkas_refusals(&conn).await;
    });
}

/// Each client's largest broker throttle time seen in librdkafka's statistics.
#[derive(Clone, Default)]
struct ThrottleSeen(Arc<AtomicI64>);

impl ClientContext for ThrottleSeen {
    fn stats(&self, statistics: Statistics) {
        for b in statistics.brokers.values() {
            if let Some(w) = &b.throttle {
                self.0.fetch_max(w.max, Ordering::SeqCst);
            }
        }
    }
}

impl ProducerContext for ThrottleSeen {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

impl ConsumerContext for ThrottleSeen {}

fn producer(
    broker: &TestBroker,
    client_id: &str,
) -> (ThreadedProducer<ThrottleSeen>, ThrottleSeen) {
    let seen = ThrottleSeen::default();
    let p = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("client.id", client_id)
        .set("statistics.interval.ms", "100")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create_with_context(seen.clone())
        .expect("producer");
    (p, seen)
}

/// `GET /metrics`: the value of each sample line.
fn scrape(broker: &TestBroker) -> HashMap<String, f64> {
    let addr = broker.metrics_addr().expect("metrics listener");
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn producers_and_consumers_over_their_quota_are_throttled() {
    let broker = TestBroker::start();
    let rt = runtime();
    rt.block_on(async {
        let conn = connect(&broker, "quota-admin").await;
        let r = alter(
            &conn,
            vec![
                entry(
                    &[("client-id", Some("slow-producer"))],
                    &[("producer_byte_rate", Some(2048.0))],
                ),
                entry(
                    &[("client-id", Some("slow-consumer"))],
                    &[("consumer_byte_rate", Some(2048.0))],
                ),
            ],
            false,
        )
        .await;
        assert_eq!(
            r,
            vec![ok("client-id=slow-producer"), ok("client-id=slow-consumer")]
        );
    });

    // Well over 2 KiB/s over the window: 200 KiB at once.
    let payload = vec![b'q'; 1024];
    let (slow, slow_seen) = producer(&broker, "slow-producer");
    let (free, free_seen) = producer(&broker, "free-producer");
    for i in 0..200 {
        let key = i.to_string();
        for p in [&slow, &free] {
            p.send(BaseRecord::to("quota-topic").key(&key).payload(&payload))
                .expect("enqueue");
        }
    }
    eventually(
        Duration::from_secs(90),
        "the slow producer sees throttling",
        || (slow_seen.0.load(Ordering::SeqCst) > 0).then_some(()),
    );
    free.flush(Duration::from_secs(60))
        .expect("flush the free producer");
    // Its statistics come every 100 ms; let one arrive after the last response.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        free_seen.0.load(Ordering::SeqCst),
        0,
        "a producer without a quota is never throttled"
    );

    // A consumer of the same 200 KiB (the free producer's, at least) over its quota.
    let seen = ThrottleSeen::default();
    let consumer: BaseConsumer<ThrottleSeen> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("client.id", "slow-consumer")
        .set("group.id", "quota-group")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "100")
        .create_with_context(seen.clone())
        .expect("consumer");
    consumer.subscribe(&["quota-topic"]).expect("subscribe");
    eventually(
        Duration::from_secs(90),
        "the slow consumer sees throttling",
        || {
            let _ = consumer.poll(Duration::from_millis(100));
            (seen.0.load(Ordering::SeqCst) > 0).then_some(())
        },
    );

    let metrics = scrape(&broker);
    for t in ["produce", "fetch"] {
        let n = metrics
            .get(&format!(
                "runnel_throttled_responses_total{{quota_type=\"{t}\"}}"
            ))
            .copied()
            .unwrap_or(0.0);
        assert!(n > 0.0, "{t} throttles are counted: {n}");
        let ms = metrics
            .get(&format!(
                "runnel_throttle_time_ms_total{{quota_type=\"{t}\"}}"
            ))
            .copied()
            .unwrap_or(0.0);
        assert!(ms > 0.0, "{t} throttle time is counted: {ms}");
    }
    drop(slow);
}

/// request_percentage: a client allowed almost no handler time gets throttle_time_ms on
/// any response (and the next request waits for it); another client id does not.
#[test]
fn request_percentage_throttles_any_request() {
    let broker = TestBroker::start();
    let rt = runtime();
    rt.block_on(async {
        let admin = connect(&broker, "quota-admin").await;
        let r = alter(
            &admin,
            vec![entry(
                &[("client-id", Some("busy"))],
                &[("request_percentage", Some(0.000001))],
            )],
            false,
        )
        .await;
        assert_eq!(r, vec![ok("client-id=busy")]);
        let busy = connect(&broker, "busy").await;
        let mut throttled = 0;
        for _ in 0..3 {
            let ResponseBody::Metadata(r) = send(
                &busy,
                m::MetadataRequest::default().with_topics(Some(vec![])),
                12,
            )
            .await
            else {
                panic!("not a Metadata response")
            };
            assert!(
                r.throttle_time_ms <= 1000,
                "capped at one window: {}",
                r.throttle_time_ms
            );
            if r.throttle_time_ms > 0 {
                throttled += 1;
            }
        }
        assert!(
            throttled > 0,
            "no Metadata response of the busy client was throttled"
        );
        // KIP-219: after a throttled response the connection is muted for the throttle
        // time, so the next answer cannot come sooner (a lower bound: a slow machine
        // only makes it later).
        let ResponseBody::Metadata(r) = send(
            &busy,
            m::MetadataRequest::default().with_topics(Some(vec![])),
            12,
        )
        .await
        else {
            panic!("not a Metadata response")
        };
        if r.throttle_time_ms > 0 {
            let muted = std::time::Instant::now();
            send(
                &busy,
                m::MetadataRequest::default().with_topics(Some(vec![])),
                12,
            )
            .await;
            let waited = muted.elapsed().as_millis() as i32;
            assert!(
                waited >= r.throttle_time_ms / 2,
                "answered after {waited} ms of a {} ms throttle",
                r.throttle_time_ms
            );
        }
        let ResponseBody::Metadata(r) = send(
            &admin,
            m::MetadataRequest::default().with_topics(Some(vec![])),
            12,
        )
        .await
        else {
            panic!("not a Metadata response")
        };
        assert_eq!(r.throttle_time_ms, 0, "another client id has no quota");
    });
    let metrics = scrape(&broker);
    assert!(
        metrics
            .get("runnel_throttled_responses_total{quota_type=\"request\"}")
            .is_some_and(|n| *n > 0.0),
        "request throttles are counted"
    );
}

/// connection_creation_rate per IP: past the rate, new connections are held and closed
/// unserved (as Kafka's ConnectionQuotas does), and counted.
#[test]
fn connections_over_the_ip_rate_are_closed() {
    let broker = TestBroker::start();
    let rt = runtime();
    rt.block_on(async {
        let admin = connect(&broker, "quota-admin").await;
        // One connection per second over the 10 s window: the admin connection and a
        // few more fit, 20 in a row cannot.
        let r = alter(
            &admin,
            vec![entry(
                &[("ip", Some("127.0.0.1"))],
                &[("connection_creation_rate", Some(1.0))],
            )],
            false,
        )
        .await;
        assert_eq!(r, vec![ok("ip=127.0.0.1")]);
        let mut refused = 0;
        for _ in 0..20 {
            let config = ConnectionConfig {
                connect_timeout: Duration::from_secs(10),
                ..ConnectionConfig::default()
            };
            if Connection::connect(&broker.bootstrap(), config)
                .await
                .is_err()
            {
                refused += 1;
            }
        }
        assert!(refused > 0, "no connection was refused");
        // The open admin connection is unaffected.
        let r = alter(
            &admin,
            vec![entry(
                &[("ip", Some("127.0.0.1"))],
                &[("connection_creation_rate", None)],
            )],
            false,
        )
        .await;
        assert_eq!(r, vec![ok("ip=127.0.0.1")]);
        connect(&broker, "after").await;
    });
    let metrics = scrape(&broker);
    assert!(
        metrics
            .get("runnel_throttled_responses_total{quota_type=\"connection_creation\"}")
            .is_some_and(|n| *n > 0.0),
        "held connections are counted"
    );
}

/// `runnel quotas alter|describe`, the operator CLI over the same APIs.
#[test]
fn the_cli_alters_and_describes_quotas() {
    let broker = TestBroker::start();
    let cli = |args: &[&str]| {
        let o = std::process::Command::new(runnel_suite::runnel_bin())
            .arg("--bootstrap-server")
            .arg(broker.bootstrap())
            .args(args)
            .output()
            .expect("run the CLI");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, out, _) = cli(&[
        "quotas",
        "alter",
        "--entity",
        "user=alice",
        "--add-config",
        "producer_byte_rate=1048576,consumer_byte_rate=2e6",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Updated: quotas of user=alice\n")
    );
    let (code, _, err) = cli(&[
        "quotas",
        "alter",
        "--entity",
        "client-id=<default>",
        "--add-config",
        "producer_byte_rate=1.5",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("producer_byte_rate cannot be a fractional value."),
        "{err}"
    );
    cli(&[
        "quotas",
        "alter",
        "--entity",
        "client-id=<default>",
        "--add-config",
        "request_percentage=25",
    ]);
    let (code, out, _) = cli(&["quotas", "describe", "--entity-type", "user"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "ENTITY      QUOTA               VALUE\n\
         user=alice  consumer_byte_rate  2000000\n\
         user=alice  producer_byte_rate  1048576\n"
    );
    let (_, out, _) = cli(&["quotas", "describe", "--entity", "client-id=<default>"]);
    assert!(
        out.contains("client-id=<default>  request_percentage  25"),
        "{out}"
    );
}

/// max.connection.creation.rate: past it the broker waits before serving a new
/// connection (as Kafka's acceptor does) instead of refusing it.
#[test]
fn the_broker_wide_connection_rate_delays_connections() {
    let broker = TestBroker::start_with(runnel_suite::BrokerOptions {
        extra_args: vec!["--set".into(), "max.connection.creation.rate=1".into()],
        ..Default::default()
    });
    let rt = runtime();
    rt.block_on(async {
        for i in 0..13 {
            connect(&broker, &format!("c{i}")).await;
        }
    });
    let metrics = scrape(&broker);
    assert!(
        metrics
            .get("runnel_throttled_responses_total{quota_type=\"connection_creation\"}")
            .is_some_and(|n| *n > 0.0),
        "delayed connections are counted"
    );
}

/// With an authorizer, AlterClientQuotas needs ALTER_CONFIGS and DescribeClientQuotas
/// DESCRIBE_CONFIGS on the cluster, refused as Kafka refuses them; a user quota applies
/// to the SASL principal's name.
#[test]
fn quotas_need_cluster_config_rights_and_apply_to_the_sasl_user() {
    use runnel_protocol::api::ApiKey;
    use runnel_suite::raw::RawClient;
    const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
        user_admin=\"admin-secret\" user_alice=\"alice-secret\";";
    let mut extra_args = Vec::new();
    for (k, v) in [
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("plain.sasl.jaas.config", jaas),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:admin"),
    ] {
        extra_args.push("--set".to_string());
        extra_args.push(format!("{k}={v}"));
    }
    let broker = TestBroker::start_with(runnel_suite::BrokerOptions {
        extra_args,
        ..Default::default()
    });
    let alter_req = |user: &str| {
        m::AlterClientQuotasRequest::default().with_entries(vec![entry(
            &[("user", Some(user))],
            &[("producer_byte_rate", Some(1024.0))],
        )])
    };
    let mut alice = RawClient::plain(broker.addr(), "alice", "alice-secret");
    let Some(ResponseBody::AlterClientQuotas(r)) = alice.call(
        ApiKey::AlterClientQuotas,
        1,
        RequestBody::AlterClientQuotas(alter_req("alice")),
    ) else {
        panic!("no AlterClientQuotas answer")
    };
    assert_eq!(r.entries.len(), 1);
    assert_eq!(r.entries[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(
        r.entries[0].error_message.as_deref(),
        Some("Cluster authorization failed.")
    );
    let Some(ResponseBody::DescribeClientQuotas(r)) = alice.call(
        ApiKey::DescribeClientQuotas,
        1,
        RequestBody::DescribeClientQuotas(m::DescribeClientQuotasRequest::default()),
    ) else {
        panic!("no DescribeClientQuotas answer")
    };
    assert_eq!(r.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(
        r.error_message.as_deref(),
        Some("Cluster authorization failed.")
    );
    assert!(r.entries.is_none());

    let mut admin = RawClient::plain(broker.addr(), "admin", "admin-secret");
    let Some(ResponseBody::AlterClientQuotas(r)) = admin.call(
        ApiKey::AlterClientQuotas,
        1,
        RequestBody::AlterClientQuotas(alter_req("alice")),
    ) else {
        panic!("no AlterClientQuotas answer")
    };
    assert_eq!(r.entries[0].error_code, 0, "{r:?}");
    // alice may do anything (ALL) with her topic, nothing with the cluster.
    let Some(ResponseBody::CreateAcls(r)) = admin.call(
        ApiKey::CreateAcls,
        3,
        RequestBody::CreateAcls(m::CreateAclsRequest::default().with_creations(vec![
            m::create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s("alice-topic"))
                .with_resource_pattern_type(3)
                .with_principal(s("User:alice"))
                .with_host(s("*"))
                .with_operation(2)
                .with_permission_type(3),
        ])),
    ) else {
        panic!("no CreateAcls answer")
    };
    assert_eq!(r.results[0].error_code, 0, "{r:?}");

    // alice's producer over 1 KiB/s (by her principal, whatever her client id).
    let seen = ThrottleSeen::default();
    let p: ThreadedProducer<ThrottleSeen> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-secret")
        .set("client.id", "any-client")
        .set("statistics.interval.ms", "100")
        .set("message.timeout.ms", "120000")
        .create_with_context(seen.clone())
        .expect("producer");
    let payload = vec![b'a'; 1024];
    for i in 0..100 {
        let key = i.to_string();
        p.send(BaseRecord::to("alice-topic").key(&key).payload(&payload))
            .expect("enqueue");
    }
    eventually(Duration::from_secs(90), "alice sees throttling", || {
        (seen.0.load(Ordering::SeqCst) > 0).then_some(())
    });
}
