//! What the scenarios share: a context per broker, the diff of two observations, the
//! known-differences list and the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::ResponseError;
use runnel_client::connection::FromResponse;
use runnel_client::{Connection, ConnectionConfig};
use runnel_protocol::api::{ApiKey, RequestBody, ResponseBody, StrBytes};
use serde::Deserialize;
use serde_json::{json, Value};

pub const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    Kafka,
    Runnel,
}

impl Broker {
    pub fn name(self) -> &'static str {
        match self {
            Broker::Kafka => "kafka",
            Broker::Runnel => "runnel",
        }
    }
}

/// One scenario: a name (used in `known_differences.toml`), what it covers, and the
/// function that runs it against one broker.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&Ctx) -> Value,
}

/// One broker, as a scenario sees it.
pub struct Ctx {
    pub bootstrap: String,
    run: String,
    pub rt: tokio::runtime::Runtime,
    conn: Connection,
}

impl Ctx {
    fn new(broker: Broker, bootstrap: &str, run: &str) -> Ctx {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let conn = rt
            .block_on(Connection::connect(
                bootstrap,
                ConnectionConfig {
                    client_id: "differential".into(),
                    request_timeout: TIMEOUT,
                    ..ConnectionConfig::default()
                },
            ))
            .unwrap_or_else(|e| panic!("connect to {} at {bootstrap}: {e}", broker.name()));
        Ctx {
            bootstrap: bootstrap.to_string(),
            run: run.to_string(),
            rt,
            conn,
        }
    }

    /// A name unique to this run (the same for both brokers): `NAME-RUN`.
    pub fn name(&self, name: &str) -> String {
        format!("{name}-{}", self.run)
    }

    /// The version runnel-client negotiated for `api` (Runnel's maximum capped by the
    /// broker's), so both brokers are asked the same question.
    pub fn version(&self, api: ApiKey) -> Option<i16> {
        self.conn.version(api)
    }

    /// Send at the negotiated version.
    pub fn call<R: FromResponse>(&self, body: impl Into<RequestBody>) -> Result<R, String> {
        let body = body.into();
        let api = body.api_key();
        let v = self
            .version(api)
            .ok_or_else(|| format!("{api:?}: no common version"))?;
        self.call_v(body, v)
    }

    /// Send at `version`. An error (the broker closed the connection, a timeout) is the
    /// observation `{"transport_error": ...}` in the callers.
    pub fn call_v<R: FromResponse>(
        &self,
        body: impl Into<RequestBody>,
        version: i16,
    ) -> Result<R, String> {
        let body = body.into();
        let api = body.api_key();
        let resp: ResponseBody = self
            .rt
            .block_on(self.conn.send_version(body, version))
            .map_err(|e| format!("{api:?} v{version}: {e}"))?;
        R::from_response(resp).ok_or_else(|| format!("{api:?}: unexpected response body"))
    }

    /// A raw response body, for APIs runnel-client has no typed extraction for.
    pub fn send_v(
        &self,
        body: impl Into<RequestBody>,
        version: i16,
    ) -> Result<ResponseBody, String> {
        self.rt
            .block_on(self.conn.send_version(body.into(), version))
            .map_err(|e| e.to_string())
    }

    /// `"bootstrap"` for the broker's own address, else `host:port` as given.
    pub fn addr(&self, host: &str, port: i32) -> Value {
        if format!("{host}:{port}") == self.bootstrap {
            json!("bootstrap")
        } else {
            json!(format!("{host}:{port}"))
        }
    }
}

/// A Kafka error code as its name, so the report reads without a table.
pub fn err(code: i16) -> Value {
    if code == 0 {
        return json!("NONE");
    }
    match ResponseError::try_from_code(code) {
        Some(e) => json!(format!("{e:?}({code})")),
        None => json!(format!("UNKNOWN_CODE({code})")),
    }
}

/// An error from the transport (the connection closed, a timeout), as an observation.
pub fn transport(e: String) -> Value {
    // The text names versions and addresses; whether the call failed is what compares.
    eprintln!("differential: transport error: {e}");
    json!({ "transport_error": true })
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn tn(v: &str) -> TopicName {
    TopicName(s(v))
}

pub fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

pub fn opt_str(v: &Option<StrBytes>) -> Value {
    match v {
        Some(v) => json!(v.as_str()),
        None => Value::Null,
    }
}

/// Run `scenario` against both brokers at once; a panic is the observation
/// `{"panic": message}`.
pub fn run_scenario(
    scenario: &Scenario,
    brokers: [(Broker, &str); 2],
    run: &str,
) -> (Value, Value) {
    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = brokers
            .iter()
            .map(|&(broker, bootstrap)| {
                let f = scenario.run;
                scope.spawn(move || {
                    std::panic::catch_unwind(|| {
                        let ctx = Ctx::new(broker, bootstrap, run);
                        f(&ctx)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join().expect("scenario thread") {
                Ok(v) => v,
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic".into());
                    json!({ "panic": msg })
                }
            })
            .collect()
    });
    let mut it = results.into_iter();
    (it.next().unwrap(), it.next().unwrap())
}

/// One field where the observations differ. `None` means the field is absent on that side.
#[derive(Debug, Clone)]
pub struct Difference {
    pub path: String,
    pub kafka: Option<Value>,
    pub runnel: Option<Value>,
}

/// Field-by-field differences: objects by key, arrays by index, scalars by value.
pub fn diff(kafka: &Value, runnel: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    walk("", Some(kafka), Some(runnel), &mut out);
    out
}

fn walk(path: &str, k: Option<&Value>, r: Option<&Value>, out: &mut Vec<Difference>) {
    match (k, r) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            // `note_*` fields (error messages: their text is each broker's own) are kept in
            // the observations for people, not compared.
            for key in keys.into_iter().filter(|k| !k.starts_with("note_")) {
                walk(
                    &format!("{path}/{}", escape(key)),
                    a.get(key),
                    b.get(key),
                    out,
                );
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(&format!("{path}/{i}"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Difference {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            kafka: a.cloned(),
            runnel: b.cloned(),
        }),
    }
}

/// Paths of the `panic` and `transport_error` fields in an observation.
fn failures(path: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = format!("{path}/{}", escape(k));
                if k == "panic" || k == "transport_error" {
                    out.push(p);
                } else {
                    failures(&p, x, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                failures(&format!("{path}/{i}"), x, out);
            }
        }
        _ => {}
    }
}

/// JSON-pointer escaping of one key.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[derive(Debug, Deserialize)]
struct KnownFile {
    #[serde(default)]
    difference: Vec<Known>,
}

/// An explained difference: `path` is a JSON pointer whose segments may be `*` (any one
/// segment); it covers that field and everything under it. `readme` is text of the
/// README bullet (in "Where Runnel differs") that gives the reason.
#[derive(Debug, Deserialize)]
pub struct Known {
    pub scenario: String,
    pub path: String,
    pub reason: String,
    pub readme: String,
}

impl Known {
    fn covers(&self, scenario: &str, path: &str) -> bool {
        if self.scenario != scenario {
            return false;
        }
        let pat: Vec<&str> = self.path.trim_start_matches('/').split('/').collect();
        let got: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        pat.len() <= got.len() && pat.iter().zip(&got).all(|(p, g)| *p == "*" || p == g)
    }
}

pub struct KnownDifferences {
    pub entries: Vec<Known>,
}

impl KnownDifferences {
    pub fn load() -> KnownDifferences {
        let root = runnel_suite::workspace_root();
        let path = root.join("tests/differential/known_differences.toml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let file: KnownFile =
            toml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
        // Every reason must be one the README gives.
        let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
        let section = readme
            .split("## Where Runnel differs")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has a 'Where Runnel differs' section");
        let section = section.split_whitespace().collect::<Vec<_>>().join(" ");
        for k in &file.difference {
            let want = k.readme.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                section.contains(&want),
                "known difference {}:{} cites README text that is not in 'Where Runnel differs': {:?}",
                k.scenario,
                k.path,
                k.readme
            );
        }
        KnownDifferences {
            entries: file.difference,
        }
    }

    fn explain(&self, scenario: &str, path: &str) -> Option<usize> {
        self.entries.iter().position(|k| k.covers(scenario, path))
    }
}

struct ScenarioResult {
    name: String,
    about: String,
    secs: f64,
    diffs: Vec<(Difference, Option<usize>)>,
}

pub struct Report {
    run: String,
    results: Vec<ScenarioResult>,
    dir: PathBuf,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| runnel_suite::workspace_root().join("target"))
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 300 {
                format!("{}…", s.chars().take(300).collect::<String>())
            } else {
                s
            }
        }
    }
}

impl Report {
    pub fn new(run: &str) -> Report {
        let dir = target_dir().join("differential");
        let _ = std::fs::create_dir_all(&dir);
        Report {
            run: run.into(),
            results: Vec::new(),
            dir,
        }
    }

    pub fn add(
        &mut self,
        scenario: &Scenario,
        kafka: Value,
        runnel: Value,
        known: &KnownDifferences,
        took: Duration,
    ) {
        let name = scenario.name;
        for (broker, v) in [("kafka", &kafka), ("runnel", &runnel)] {
            let _ = std::fs::write(
                self.dir.join(format!("{name}.{broker}.json")),
                serde_json::to_string_pretty(v).unwrap_or_default(),
            );
        }
        let mut diffs: Vec<_> = diff(&kafka, &runnel)
            .into_iter()
            .map(|d| {
                let k = known.explain(name, &d.path);
                (d, k)
            })
            .collect();
        // A scenario step that failed on both brokers (a panic, a request the client
        // could not send or read) compares equal but checked nothing: never explained.
        let mut broken = Vec::new();
        failures("", &kafka, &mut broken);
        for path in broken {
            if runnel.pointer(&path).is_some() {
                diffs.push((
                    Difference {
                        path,
                        kafka: Some(json!("failed on both brokers")),
                        runnel: Some(json!("failed on both brokers")),
                    },
                    None,
                ));
            }
        }
        let unexplained = diffs.iter().filter(|(_, k)| k.is_none()).count();
        eprintln!(
            "differential: {name}: {} difference(s), {unexplained} unexplained ({:.1} s)",
            diffs.len(),
            took.as_secs_f64()
        );
        self.results.push(ScenarioResult {
            name: name.into(),
            about: scenario.about.into(),
            secs: took.as_secs_f64(),
            diffs,
        });
    }

    /// Write the report, print the summary and fail on unexplained or stale entries.
    pub fn finish(self, known: &KnownDifferences, all_ran: bool, took: Duration) {
        let mut used = vec![false; known.entries.len()];
        for r in &self.results {
            for (_, k) in &r.diffs {
                if let Some(i) = k {
                    used[*i] = true;
                }
            }
        }
        let ran: Vec<&str> = self.results.iter().map(|r| r.name.as_str()).collect();
        let stale: Vec<&Known> = known
            .entries
            .iter()
            .zip(&used)
            .filter(|(k, u)| !**u && (all_ran || ran.contains(&k.scenario.as_str())))
            .map(|(k, _)| k)
            .collect();
        let total: usize = self.results.iter().map(|r| r.diffs.len()).sum();
        let unexplained: usize = self
            .results
            .iter()
            .map(|r| r.diffs.iter().filter(|(_, k)| k.is_none()).count())
            .sum();

        let mut md = String::new();
        let _ = writeln!(md, "# Differential report: Apache Kafka vs Runnel\n");
        let _ = writeln!(
            md,
            "Run `{}`: {} scenarios in {:.0} s; {total} differences, {unexplained} unexplained, {} stale known-difference entries.\n",
            self.run,
            self.results.len(),
            took.as_secs_f64(),
            stale.len()
        );
        let _ = writeln!(md, "| scenario | differences | unexplained | seconds |");
        let _ = writeln!(md, "| --- | --- | --- | --- |");
        for r in &self.results {
            let u = r.diffs.iter().filter(|(_, k)| k.is_none()).count();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} |",
                r.name,
                r.diffs.len(),
                u,
                r.secs
            );
        }
        for r in &self.results {
            let _ = writeln!(md, "\n## {}\n\n{}.\n", r.name, r.about);
            if r.diffs.is_empty() {
                let _ = writeln!(md, "No differences.");
                continue;
            }
            let _ = writeln!(md, "| path | Kafka | Runnel | explained by |");
            let _ = writeln!(md, "| --- | --- | --- | --- |");
            for (d, k) in &r.diffs {
                let why = match k {
                    Some(i) => known.entries[*i].reason.clone(),
                    None => "**UNEXPLAINED**".into(),
                };
                let cell = |s: String| s.replace('|', "\\|");
                let _ = writeln!(
                    md,
                    "| `{}` | `{}` | `{}` | {} |",
                    d.path,
                    cell(show(&d.kafka)),
                    cell(show(&d.runnel)),
                    cell(why)
                );
            }
        }
        if !stale.is_empty() {
            let _ = writeln!(md, "\n## Stale known differences (no longer observed)\n");
            for k in &stale {
                let _ = writeln!(md, "- `{}` `{}`: {}", k.scenario, k.path, k.reason);
            }
        }
        let path = target_dir().join("differential-report.md");
        let _ = std::fs::write(&path, &md);

        let mut by_scenario: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &self.results {
            for (d, k) in &r.diffs {
                if k.is_none() {
                    *by_scenario.entry(r.name.as_str()).or_default() += 1;
                    eprintln!(
                        "UNEXPLAINED {} {}: kafka {} / runnel {}",
                        r.name,
                        d.path,
                        show(&d.kafka),
                        show(&d.runnel)
                    );
                }
            }
        }
        for k in &stale {
            eprintln!("STALE {} {}: {}", k.scenario, k.path, k.reason);
        }
        eprintln!(
            "differential: {} scenarios, {total} differences ({} explained, {unexplained} unexplained), {} stale entries, {:.0} s; report: {}",
            self.results.len(),
            total - unexplained,
            stale.len(),
            took.as_secs_f64(),
            path.display()
        );
        assert!(
            unexplained == 0 && stale.is_empty(),
            "{unexplained} unexplained difference(s) (by scenario: {by_scenario:?}) and {} stale known-difference entr(ies); see {}",
            stale.len(),
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(scenario: &str, path: &str) -> Known {
        Known {
            scenario: scenario.into(),
            path: path.into(),
            reason: String::new(),
            readme: String::new(),
        }
    }

    #[test]
    fn diff_reports_changed_missing_and_extra_fields_but_not_notes() {
        let k = json!({"a": 1, "b": {"c": [1, 2]}, "gone": true, "note_x": "kafka words"});
        let r = json!({"a": 2, "b": {"c": [1]}, "new": null, "note_x": "runnel words"});
        let d: Vec<(String, Option<Value>, Option<Value>)> = diff(&k, &r)
            .into_iter()
            .map(|d| (d.path, d.kafka, d.runnel))
            .collect();
        assert_eq!(
            d,
            vec![
                ("/a".into(), Some(json!(1)), Some(json!(2))),
                ("/b/c/1".into(), Some(json!(2)), None),
                ("/gone".into(), Some(json!(true)), None),
                ("/new".into(), None, Some(Value::Null)),
            ]
        );
        assert!(diff(&k, &k).is_empty());
    }

    #[test]
    fn known_entries_cover_their_subtree_with_wildcards() {
        let k = known("s", "/*/configs/write.caching");
        assert!(k.covers("s", "/defaults/configs/write.caching"));
        assert!(k.covers("s", "/x/configs/write.caching/synonyms/0"));
        assert!(!k.covers("s", "/x/configs/write.cachingX"));
        assert!(!k.covers("s", "/x/configs"));
        assert!(!k.covers("other", "/defaults/configs/write.caching"));
        // Keys with a slash are escaped, so they stay one segment.
        assert_eq!(escape("bad/name"), "bad~1name");
    }

    #[test]
    fn failures_are_found_wherever_they_are() {
        let v = json!({"a": {"transport_error": true}, "b": [{"panic": "x"}], "c": 1});
        let mut out = Vec::new();
        failures("", &v, &mut out);
        assert_eq!(out, vec!["/a/transport_error", "/b/0/panic"]);
    }

    #[test]
    fn the_known_differences_file_parses_and_cites_the_readme() {
        let k = KnownDifferences::load();
        assert!(!k.entries.is_empty());
    }
}
