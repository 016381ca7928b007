//! The differential harness: the same client scenarios against Apache Kafka and against
//! Runnel, and a field-by-field comparison of what the clients observed.
//!
//! Each scenario (in the modules below) drives one broker with real clients (raw
//! kafka-protocol requests through runnel-client where exact fields, versions and error
//! codes matter; librdkafka through rdkafka for produce, consume and groups) and returns
//! a JSON observation with what legitimately differs normalised away (topic ids, cluster
//! id, host:port, LogAppendTime values, throttle times, random member ids). The two
//! observations are diffed; every difference must be listed, with its reason, in
//! `known_differences.toml`, whose every entry names a bullet of the README's "Where
//! Runnel differs" section. The test fails on a difference that is not listed and on a
//! listed difference that no longer occurs. It writes `target/differential-report.md`
//! and each observation under `target/differential/`.
//!
//! Kafka is not started here: `tests/kafka/differential.sh` starts it (cached jars),
//! runs this test with `KAFKA_BOOTSTRAP` set, and stops it. Runnel is started by the test.
//! `DIFFERENTIAL_ONLY=name,name` runs only those scenarios (stale entries of the others
//! are then not checked).

mod harness;
mod scenarios;

use std::time::Instant;

use harness::{run_scenario, Broker, KnownDifferences, Report};
use runnel_suite::{BrokerOptions, TestBroker};

#[test]
#[ignore = "needs Apache Kafka: run tests/kafka/differential.sh (sets KAFKA_BOOTSTRAP)"]
fn kafka_and_runnel_agree() {
    let kafka = std::env::var("KAFKA_BOOTSTRAP")
        .expect("KAFKA_BOOTSTRAP must name a running Apache Kafka (tests/kafka/differential.sh)");
    let started = Instant::now();
    // The settings tests/kafka/kafka.sh gives Kafka, so both report them as static
    // broker configs.
    let mut extra_args = Vec::new();
    for kv in [
        "node.id=1",
        "num.partitions=1",
        "auto.create.topics.enable=true",
        "offsets.topic.num.partitions=50",
        "offsets.topic.replication.factor=1",
        "group.initial.rebalance.delay.ms=0",
    ] {
        extra_args.extend(["--set".to_string(), kv.to_string()]);
    }
    let runnel = TestBroker::start_with(BrokerOptions {
        extra_args,
        ..BrokerOptions::default()
    });
    // One suffix for both brokers' topic and group names: the observations name the
    // same things, and a rerun against the same Kafka does not meet its old topics.
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() % 0xff_ffff)
            .unwrap_or(0)
    );
    let only: Option<Vec<String>> = std::env::var("DIFFERENTIAL_ONLY")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let known = KnownDifferences::load();
    let mut report = Report::new(&run);
    for scenario in scenarios::ALL {
        if let Some(only) = &only {
            if !only.iter().any(|o| o == scenario.name) {
                continue;
            }
        }
        let t0 = Instant::now();
        let (k, r) = run_scenario(
            scenario,
            [
                (Broker::Kafka, kafka.as_str()),
                (Broker::Runnel, &runnel.bootstrap()),
            ],
            &run,
        );
        report.add(scenario, k, r, &known, t0.elapsed());
    }
    report.finish(&known, only.is_none(), started.elapsed());
}
