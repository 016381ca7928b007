//! A soak run: start the broker, start the clients, inject faults for N cycles, stop
//! the clients, crash the broker one last time, read everything back, and check.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use crate::broker::Broker;
use crate::check::{self, Report, FINAL, FINAL_COMMITTED};
use crate::history::{self, Event, Isolation, Recorder};
use crate::workload::{self, GroupProtocol, Shared};

pub const TOPIC: &str = "soak";
pub const TXN_TOPIC: &str = "soak-txn";
pub const GROUP: &str = "soak-group";

/// A fault the driver injects once a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the broker and start it again.
    Kill,
    /// SIGSTOP the broker past the group's session timeout, then SIGCONT.
    Stop,
    /// Restart the broker with a storage fault planned on one partition, load it, then
    /// crash it and start it clean.
    Storage,
    /// SIGKILL, then cut every file back to its last fsync (a power loss), and start.
    Power,
    /// Jump the broker's wall clock up to an hour forward or back for the cycle, then
    /// set it right.
    Clock,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        match s {
            "kill" => Ok(Fault::Kill),
            "stop" => Ok(Fault::Stop),
            "storage" => Ok(Fault::Storage),
            "power" => Ok(Fault::Power),
            "clock" => Ok(Fault::Clock),
            _ => Err(format!(
                "unknown fault {s:?} (kill, stop, storage, power, clock)"
            )),
        }
    }
}

/// A run's knobs, which are also `runnel-soak run`'s arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// The runnel binary.
    #[arg(long, default_value = "target/debug/runnel")]
    pub runnel: PathBuf,
    /// Where the data, the broker logs, the history and the report go.
    #[arg(long, default_value = "target/soak")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub cycles: u32,
    /// Faults, taken in turn: kill, stop, storage, power, clock.
    #[arg(long, value_delimiter = ',', default_value = "kill")]
    pub faults: Vec<Fault>,
    /// Seeds the fault times and choices (default: the clock).
    #[arg(long, default_value_t = clock_seed(), hide_default_value = true)]
    pub seed: u64,
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Idempotent producers (acks=all).
    #[arg(long, default_value_t = 2)]
    pub producers: u32,
    /// Records a second per idempotent producer.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    #[arg(long, default_value_t = 1)]
    pub txn_producers: u32,
    /// Members of the committing consumer group.
    #[arg(long, default_value_t = 3)]
    pub members: u32,
    /// The members' group protocol: classic, or consumer (KIP-848).
    #[arg(long, default_value = "classic", value_parser = parse_protocol)]
    pub group_protocol: GroupProtocol,
    #[arg(long, default_value_t = 6000)]
    pub session_timeout_ms: u32,
    /// Load between faults: a random time between these (ms).
    #[arg(long, default_value = "1000..4000", value_parser = parse_range)]
    pub cycle_ms: (u64, u64),
    /// A broker setting, NAME=VALUE (repeatable). `write.caching.default=true` is the
    /// control run: acks no longer wait for fsync, and the power fault must find losses.
    #[arg(long = "broker-set")]
    pub broker_settings: Vec<String>,
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

fn parse_protocol(s: &str) -> Result<GroupProtocol, String> {
    match s {
        "classic" => Ok(GroupProtocol::Classic),
        "consumer" => Ok(GroupProtocol::Consumer),
        _ => Err("classic or consumer".into()),
    }
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once("..").ok_or("expected MIN..MAX")?;
    let (a, b) = (
        a.parse::<u64>().map_err(|e| e.to_string())?,
        b.parse::<u64>().map_err(|e| e.to_string())?,
    );
    if a > b {
        return Err("MIN is above MAX".into());
    }
    Ok((a, b))
}

/// The storage fault plans, one picked a storage cycle. `{p}` is a partition directory.
/// Each takes the partition offline (or slows it) without acknowledging what failed.
const STORAGE_PLANS: [&str; 6] = [
    "fsync:fail:path={p}:nth={n}",
    "fsync:hold:path={p}:nth={n}:hold_ms=3000",
    "write:short:path={p}:nth={n}",
    "write:fail:path={p}:nth={n}:errno=ENOSPC",
    "rename:fail:path={p}:nth=1",
    "dirsync:fail:path={p}:nth=1",
];

pub fn run(opts: &Options) -> Result<Report, String> {
    std::fs::create_dir_all(&opts.dir).map_err(|e| format!("{}: {e}", opts.dir.display()))?;
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    let mut settings = vec![
        "group.initial.rebalance.delay.ms=100".to_string(),
        format!(
            "group.consumer.session.timeout.ms={}",
            opts.session_timeout_ms
        ),
        "group.consumer.heartbeat.interval.ms=500".to_string(),
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000".to_string(),
    ];
    settings.extend(opts.broker_settings.iter().cloned());
    let mut broker = Broker::new(&opts.runnel, &opts.dir, settings)?;
    if opts.faults.contains(&Fault::Power) {
        broker.journal_syncs(opts.dir.join("sync-journal"));
    }
    if opts.faults.contains(&Fault::Clock) {
        broker.inject_clock(opts.dir.join("clock-offset"));
    }
    broker.start_retrying(None)?;
    println!(
        "soak: broker on {}, data in {}, seed {}",
        broker.bootstrap(),
        broker.data_dir().display(),
        opts.seed
    );
    create_topics(&broker.bootstrap(), opts.partitions)?;

    let history_path = opts.dir.join("history.jsonl");
    let rec = Arc::new(Recorder::create(&history_path).map_err(|e| e.to_string())?);
    let sh = Arc::new(Shared {
        bootstrap: broker.bootstrap(),
        rec: rec.clone(),
        stop: Arc::new(AtomicBool::new(false)),
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut producers = Vec::new();
    for i in 0..opts.producers {
        producers.push(rt.spawn(workload::idempotent_producer(
            sh.clone(),
            format!("idem{i}"),
            TOPIC.into(),
            opts.partitions,
            opts.rate,
        )));
    }
    let mut threads = Vec::new();
    for i in 0..opts.txn_producers {
        let (sh, seed, partitions) = (
            sh.clone(),
            opts.seed.wrapping_add(u64::from(i) + 1),
            opts.partitions,
        );
        threads.push(spawn(format!("txn{i}"), move || {
            workload::transactional_producer(
                sh,
                format!("txn{i}"),
                TXN_TOPIC.into(),
                partitions,
                seed,
            )
        }));
    }
    for i in 0..opts.members {
        let (sh, session, protocol) = (sh.clone(), opts.session_timeout_ms, opts.group_protocol);
        threads.push(spawn(format!("member{i}"), move || {
            workload::group_member(
                sh,
                GROUP.into(),
                format!("member{i}"),
                TOPIC.into(),
                protocol,
                session,
                Duration::from_millis(300),
            )
        }));
    }
    if opts.txn_producers > 0 {
        let (sh, partitions) = (sh.clone(), opts.partitions);
        threads.push(spawn("rc-reader".into(), move || {
            workload::reader(
                sh,
                "rc-reader".into(),
                TXN_TOPIC.into(),
                partitions,
                Isolation::ReadCommitted,
            )
        }));
    }

    // Let the group form and the producers get going before the first fault.
    thread::sleep(Duration::from_secs(3));
    for cycle in 1..=opts.cycles {
        let fault = opts.faults[(cycle as usize - 1) % opts.faults.len()];
        thread::sleep(Duration::from_millis(
            rng.u64(opts.cycle_ms.0..=opts.cycle_ms.1),
        ));
        let detail = inject(&mut broker, fault, opts, &mut rng)?;
        rec.record(&Event::Fault {
            t: rec.now(),
            kind: format!("{fault:?}").to_lowercase(),
            detail: detail.clone(),
        });
        println!("soak: cycle {cycle}/{}: {fault:?} {detail}", opts.cycles);
    }

    // Wind down: producers answer or give up on what they have in flight, members
    // commit and leave.
    thread::sleep(Duration::from_secs(2));
    sh.stop.store(true, Ordering::Relaxed);
    for p in producers {
        rt.block_on(p).map_err(|e| e.to_string())??;
    }
    for t in threads {
        t.join()
            .map_err(|_| "a client thread panicked".to_string())??;
    }
    // A last crash, after everything was answered.
    broker.kill9();
    rec.record(&Event::Fault {
        t: rec.now(),
        kind: "kill".into(),
        detail: "before the final read".into(),
    });
    broker.start_retrying(None)?;
    let final_timeout = Duration::from_secs(90);
    workload::final_read(
        &sh,
        FINAL,
        TOPIC,
        opts.partitions,
        Isolation::ReadUncommitted,
        final_timeout,
    )?;
    if opts.txn_producers > 0 {
        workload::final_read(
            &sh,
            FINAL,
            TXN_TOPIC,
            opts.partitions,
            Isolation::ReadUncommitted,
            final_timeout,
        )?;
        workload::final_read(
            &sh,
            FINAL_COMMITTED,
            TXN_TOPIC,
            opts.partitions,
            Isolation::ReadCommitted,
            final_timeout,
        )?;
    }
    if opts.members > 0 {
        workload::read_committed_offsets(&sh, GROUP, TOPIC, opts.partitions)?;
    }
    broker.stop();
    rec.flush().map_err(|e| e.to_string())?;

    let events = history::read(&history_path).map_err(|e| e.to_string())?;
    let report = check::check(&events);
    let panics = broker.panics();
    if !panics.is_empty() {
        return Err(format!("the broker panicked:\n{}", panics.join("\n")));
    }
    Ok(report)
}

fn inject(
    broker: &mut Broker,
    fault: Fault,
    opts: &Options,
    rng: &mut fastrand::Rng,
) -> Result<String, String> {
    match fault {
        Fault::Kill => {
            broker.kill9();
            broker.start_retrying(None)?;
            Ok(String::new())
        }
        Fault::Power => {
            let cut = broker.power_loss()?;
            broker.start_retrying(None)?;
            Ok(format!(
                "cut {} unsynced bytes from {} segments, and {} other files",
                cut.segment_bytes, cut.segments, cut.other_files
            ))
        }
        Fault::Clock => {
            // Within retention (7 days) and the timestamp checks' hour, so no record is
            // due to go; transactions open across a forward jump may be aborted early.
            let jump = rng.i64(-3_600_000..=3_600_000);
            broker.jump_clock(jump)?;
            thread::sleep(Duration::from_millis(
                rng.u64(opts.cycle_ms.0..=opts.cycle_ms.1),
            ));
            broker.jump_clock(0)?;
            Ok(format!("{jump} ms, then back"))
        }
        Fault::Stop => {
            let paused = u64::from(opts.session_timeout_ms) + 2000;
            broker.pause();
            thread::sleep(Duration::from_millis(paused));
            broker.resume();
            Ok(format!("for {paused} ms"))
        }
        Fault::Storage => {
            let template = STORAGE_PLANS[rng.usize(0..STORAGE_PLANS.len())];
            // Renames and directory syncs come with segment rolls, which only the busy
            // topic makes within a cycle.
            let rolls_only = template.starts_with("rename") || template.starts_with("dirsync");
            let topic = if opts.txn_producers > 0 && !rolls_only && rng.bool() {
                TXN_TOPIC
            } else {
                TOPIC
            };
            let partition = format!("{topic}-{}", rng.i32(0..opts.partitions));
            let plan = template
                .replace("{p}", &partition)
                .replace("{n}", &rng.u32(1..40).to_string());
            broker.kill9();
            broker.start_retrying(Some(&plan))?;
            thread::sleep(Duration::from_millis(
                rng.u64(opts.cycle_ms.0..=opts.cycle_ms.1),
            ));
            // The fault may have stopped the broker; either way, start it clean.
            let stopped = !broker.is_running();
            let fired = broker.current_log().matches("fault injection op=").count();
            broker.kill9();
            broker.start_retrying(None)?;
            Ok(format!(
                "{plan}: fired {fired} time(s){}",
                if stopped { ", the broker stopped" } else { "" }
            ))
        }
    }
}

fn spawn(
    name: String,
    f: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> thread::JoinHandle<Result<(), String>> {
    thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("spawn a client thread")
}

fn create_topics(bootstrap: &str, partitions: i32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // Small segments: rolls (their new files, syncs and snapshot renames) happen
    // within a cycle, so the storage faults find them.
    let topics = [
        NewTopic::new(TOPIC, partitions, TopicReplication::Fixed(1)).set("segment.bytes", "16384"),
        NewTopic::new(TXN_TOPIC, partitions, TopicReplication::Fixed(1))
            .set("segment.bytes", "16384"),
    ];
    let results = rt
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .map_err(|e| format!("create topics: {e}"))?;
    for r in results {
        if let Err((topic, code)) = r {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                return Err(format!("create {topic}: {code}"));
            }
        }
    }
    Ok(())
}
