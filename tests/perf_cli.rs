//! `runnel perf` against a real broker: the JSON parses and the record counts are exact.
//! No timing is asserted; speed figures belong in BENCHMARKS.md.

use std::process::{Command, Output};

use runnel_suite::{runnel_bin, TestBroker};
use serde_json::Value;

fn perf(broker: &TestBroker, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json", "perf"];
    all.extend_from_slice(args);
    let o: Output = Command::new(runnel_bin())
        .args(&all)
        .env("RUNNEL_BOOTSTRAP", broker.bootstrap())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the runnel binary");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "runnel {all:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{stdout}"))
}

fn count(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

#[test]
fn produce_then_consume_counts_are_exact() {
    let broker = TestBroker::start();

    let produced = perf(
        &broker,
        &[
            "produce",
            "--topic",
            "perf-test",
            "--partitions",
            "4",
            "--num-records",
            "5000",
            "--record-size",
            "200",
            "--producers",
            "2",
            "--acks",
            "all",
        ],
    );
    assert_eq!(produced["mode"], "produce");
    assert_eq!(count(&produced, "records"), 5000, "{produced}");
    assert_eq!(count(&produced, "errors"), 0, "{produced}");
    assert_eq!(count(&produced, "bytes"), 5000 * 200);
    assert_eq!(count(&produced["delivery"], "count"), 5000, "{produced}");
    for q in ["p50_ms", "p99_ms", "p999_ms", "max_ms"] {
        assert!(produced["delivery"][q].is_number(), "{q} in {produced}");
    }

    // A second run at a fixed rate, acks=1, adds to the same topic.
    let fixed = perf(
        &broker,
        &[
            "produce",
            "--topic",
            "perf-test",
            "--num-records",
            "300",
            "--record-size",
            "200",
            "--rate",
            "3000",
            "--acks",
            "1",
            "--compression",
            "lz4",
        ],
    );
    assert_eq!(count(&fixed, "records"), 300, "{fixed}");

    // The high watermark of acks=1 records moves once they are fsynced, so ask for the
    // exact count rather than reading up to the end offsets seen at the start.
    let consumed = perf(
        &broker,
        &[
            "consume",
            "--topic",
            "perf-test",
            "--consumers",
            "2",
            "--num-records",
            "5300",
            "--timeout",
            "60s",
        ],
    );
    assert_eq!(consumed["mode"], "consume");
    assert_eq!(count(&consumed, "records"), 5300, "{consumed}");
    assert_eq!(count(&consumed, "bytes"), 5300 * 200, "{consumed}");
    assert_eq!(count(&consumed, "errors"), 0, "{consumed}");

    let e2e = perf(
        &broker,
        &[
            "e2e",
            "--topic",
            "perf-e2e",
            "--partitions",
            "2",
            "--num-records",
            "200",
            "--rate",
            "2000",
            "--fetch-max-wait-ms",
            "50",
        ],
    );
    assert_eq!(count(&e2e, "records"), 200, "{e2e}");
    assert_eq!(count(&e2e["settings"], "consumed"), 200, "{e2e}");
    assert_eq!(count(&e2e["end_to_end"], "count"), 200, "{e2e}");
}
