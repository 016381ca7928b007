//! The cheap architecture invariants of ARCHITECTURE.md ("Invariants", the ✓ lines),
//! checked from the manifests and the sources so that a change that crosses a boundary
//! fails CI instead of waiting for a reviewer to notice.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, relative to the repository root.
fn sources(dir: &str) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join(dir), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no sources under {dir}");
    files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).expect("source");
            let rel = p
                .strip_prefix(root())
                .expect("under the root")
                .to_string_lossy()
                .into_owned();
            (rel, text)
        })
        .collect()
}

/// Every crate's sources, the broker's first.
const SOURCE_DIRS: [&str; 11] = [
    "records/src",
    "protocol/src",
    "storage/src",
    "net/src",
    "coordinator/src",
    "security/src",
    "core/src",
    "kafka/src",
    "broker/src",
    "client/src",
    "tools/src",
];

/// The names of a crate's normal (not dev) dependencies.
fn dependencies(krate: &str) -> Vec<String> {
    manifest_section(krate, "dependencies")
}

/// The names in one dependency table of a crate's manifest.
fn manifest_section(krate: &str, section: &str) -> Vec<String> {
    let manifest = fs::read_to_string(root().join(krate).join("Cargo.toml")).expect("manifest");
    let manifest: toml::Table = manifest.parse().expect("manifest is TOML");
    manifest
        .get(section)
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn records_protocol_storage_coordinator_and_security_do_not_depend_on_tokio() {
    for krate in ["records", "protocol", "storage", "coordinator", "security"] {
        let deps = dependencies(krate);
        assert!(
            deps.iter()
                .any(|d| d == "bytes" || d == "runnel-records" || d == "runnel-storage"),
            "{krate}: the manifest was not read: {deps:?}"
        );
        assert!(
            !deps.iter().any(|d| d.starts_with("tokio")),
            "{krate} depends on tokio: {deps:?}"
        );
    }
}

#[test]
fn only_the_partition_touches_a_shared_log() {
    let mut offenders = Vec::new();
    for dir in SOURCE_DIRS.iter().filter(|d| **d != "storage/src") {
        for (path, text) in sources(dir) {
            let code_lines = text.lines().filter(|l| !l.trim_start().starts_with("//"));
            if path != "core/src/partition.rs"
                && code_lines.into_iter().any(|l| l.contains("SharedLog"))
            {
                offenders.push(path);
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only core/src/partition.rs may use SharedLog (handlers never lock a log): {offenders:?}"
    );
}

#[test]
fn the_group_coordinator_knows_no_partitions_or_broker() {
    // Its own crate, so the crate graph keeps it out of the broker and the storage
    // engine: it reaches `__consumer_offsets` through `CoordinatorLog` only.
    let deps = dependencies("coordinator");
    assert!(
        deps.iter().any(|d| d == "runnel-records"),
        "coordinator: the manifest was not read: {deps:?}"
    );
    for forbidden in ["runnel-broker", "runnel-storage"] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "the coordinator depends on {forbidden}: {deps:?}"
        );
    }
    let dev_deps = manifest_section("coordinator", "dev-dependencies");
    for forbidden in ["runnel-broker", "runnel-storage"] {
        assert!(
            !dev_deps.iter().any(|d| d == forbidden),
            "the coordinator's tests depend on {forbidden}: {dev_deps:?}"
        );
    }
    assert!(
        !root().join("broker/src/group").exists(),
        "the group coordinator lives in coordinator/src/group, not in the broker"
    );
}

#[test]
fn every_request_goes_through_one_dispatch() {
    let server = fs::read_to_string(root().join("kafka/src/server.rs")).expect("server.rs");
    assert_eq!(
        server.matches("handlers::handle(").count(),
        1,
        "server.rs must dispatch every request through handlers::handle, once"
    );
    for special in ["handlers::produce", "handlers::fetch", "RequestBody::"] {
        assert!(
            !server.contains(special),
            "server.rs special-cases a request ({special}); dispatch belongs in handlers"
        );
    }
}

/// Authorization has one way in: each API's arm in the dispatch hands its handler the
/// request's context, whose `authorize` the handler asks. Only the APIs every client
/// may send before or without a principal are exempt.
#[test]
fn every_api_s_handler_gets_the_request_context() {
    let handlers =
        fs::read_to_string(root().join("kafka/src/handlers/mod.rs")).expect("handlers/mod.rs");
    let start = handlers
        .find("pub async fn handle(")
        .expect("the dispatch function");
    let body = &handlers[start..];
    let body = &body[..body.find("\n}\n").expect("the end of the dispatch")];
    const EXEMPT: [&str; 3] = ["ApiVersions", "SaslHandshake", "SaslAuthenticate"];
    let arms: Vec<&str> = body.split("RequestBody::").skip(1).collect();
    assert!(arms.len() > 30, "found only {} arms", arms.len());
    for arm in arms {
        let api: String = arm.chars().take_while(|c| c.is_alphanumeric()).collect();
        if EXEMPT.contains(&api.as_str()) {
            continue;
        }
        assert!(
            arm.contains("ctx"),
            "the dispatch arm of {api} does not pass the RequestContext (authorization)"
        );
    }
}

#[test]
fn partition_file_names_come_from_the_layout_module() {
    let suffixes = [
        "\".log\"",
        "\".index\"",
        "\".timeindex\"",
        "\".snapshot\"",
        "\".deleted\"",
        "\".swap\"",
        "\".cleaned\"",
    ];
    let mut offenders = Vec::new();
    for dir in SOURCE_DIRS {
        for (path, text) in sources(dir) {
            if path == "storage/src/layout.rs" {
                continue;
            }
            for s in suffixes {
                if text.contains(s) {
                    offenders.push(format!("{path}: {s}"));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "file suffixes belong in storage/src/layout.rs: {offenders:?}"
    );
}

#[test]
fn poisoned_locks_are_taken_over_only_where_documented() {
    // Where taking over a poisoned lock is safe, each with its reason in a comment:
    // the log manager's map (single insert/remove), the group-commit state (marked
    // failed), the fault plan (test tooling), the metrics lag cache (cleared), the
    // per-IP connection counts (one statement each), a listener's TLS configuration
    // (an Arc replaced whole) and the full-disk episode (two values, one statement each).
    let allowed = [
        "storage/src/manager.rs",
        "storage/src/space.rs",
        "storage/src/group_commit.rs",
        "storage/src/fault.rs",
        "broker/src/metrics/exporter.rs",
        "net/src/listener.rs",
        "net/src/tls.rs",
    ];
    let mut offenders = Vec::new();
    let mut seen = 0;
    // The broker's crates; the client and the tools are not the broker.
    for dir in &SOURCE_DIRS[..9] {
        for (path, text) in sources(dir) {
            let takes_over = text.contains("|p| p.into_inner()")
                || text.contains("|e| e.into_inner()")
                || text.contains("let mut state = p.into_inner()")
                || text.contains("let mut cache = p.into_inner()");
            if takes_over {
                seen += 1;
                if !allowed.contains(&path.as_str()) {
                    offenders.push(path);
                }
            }
        }
    }
    assert!(seen > 0, "the check found none of the documented places");
    assert!(
        offenders.is_empty(),
        "a poisoned lock must stop the partition or the process (core/src/poison.rs): {offenders:?}"
    );
}

#[test]
fn records_storage_net_security_and_core_build_without_the_kafka_message_catalog() {
    // The core is protocol-neutral: a second front end (AMQP) builds on it, and Kafka's
    // error codes are the Kafka front end's mapping of its `ErrorKind`s. Security
    // (principals, SASL, credentials) serves both front ends the same way.
    for krate in ["records", "storage", "net", "security", "core"] {
        let deps = dependencies(krate);
        assert!(!deps.is_empty(), "{krate}: the manifest was not read");
        for catalog in ["kafka-protocol", "runnel-protocol"] {
            assert!(
                !deps.iter().any(|d| d == catalog),
                "{krate} depends on {catalog}: {deps:?}"
            );
        }
    }
}

/// The crate graph points one way: each crate may use only the Runnel crates listed for
/// it, so the core never learns a protocol, and nothing below the assembly knows it.
#[test]
fn crates_depend_only_downwards() {
    let allowed: [(&str, &[&str]); 14] = [
        ("records", &[]),
        ("protocol", &["runnel-records"]),
        ("storage", &["runnel-records"]),
        ("net", &["runnel-storage"]),
        ("coordinator", &["runnel-records"]),
        ("security", &["runnel-records", "runnel-storage"]),
        ("core", &["runnel-records", "runnel-storage"]),
        (
            "kafka",
            &[
                "runnel-records",
                "runnel-protocol",
                "runnel-storage",
                "runnel-net",
                "runnel-coordinator",
                "runnel-core",
                "runnel-security",
            ],
        ),
        (
            "amqp",
            &[
                "runnel-records",
                "runnel-storage",
                "runnel-net",
                "runnel-security",
                "runnel-core",
            ],
        ),
        // The blob checkpoint store stands alone: its own files, no broker state.
        ("blob", &[]),
        (
            "broker",
            &[
                "runnel-records",
                "runnel-storage",
                "runnel-net",
                "runnel-core",
                "runnel-kafka",
                "runnel-amqp",
                "runnel-blob",
            ],
        ),
        ("client", &["runnel-protocol"]),
        // The fault harness tests the broker from outside, as its clients see it: it
        // runs the binary and talks Kafka through librdkafka, never through our crates.
        ("soak", &[]),
        (
            "tools",
            // (storage for `erase status`, security for `runnel sas`: both read or
            // edit the data directory on the broker's host.)
            &[
                "runnel-broker",
                "runnel-client",
                "runnel-protocol",
                "runnel-storage",
                "runnel-security",
            ],
        ),
    ];
    let mut offenders = Vec::new();
    for (krate, ok) in allowed {
        let deps = dependencies(krate);
        assert!(!deps.is_empty(), "{krate}: the manifest was not read");
        for d in deps.iter().filter(|d| d.starts_with("runnel-")) {
            if !ok.contains(&d.as_str()) {
                offenders.push(format!("{krate} -> {d}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "dependencies against the layering: {offenders:?}"
    );
}
