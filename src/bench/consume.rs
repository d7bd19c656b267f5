//! `kchaos bench consume`: one partition of `--records` records of `--record-size` bytes read
//! back by kcat and by confluent-kafka's Python Consumer (group.id set, assign mode — issue 15's
//! finding), several ways, so that the output says where the time goes: the application's own
//! pace, librdkafka's 500 ms offset-query timer when a logical offset is assigned before the
//! client has metadata, and librdkafka's 1 s pause (`fetch.queue.backoff.ms`) whenever its fetch
//! queue holds more than `queued.min.messages` (100000) records — which happens when the broker
//! delivers faster than the application reads.
//!
//! With `--compare-binary PATH` the same measurements run, in the same run, against a cluster of
//! another kchaos build (e.g. one without the group APIs), so the figures can be compared.
//!
//! `cargo build --release && target/release/kchaos bench consume [--compare-binary OLD]`
//! (needs `kcat` and the Python package `confluent-kafka`: `bash .ci/setup`).

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use super::cluster::{BenchCluster, ClusterOptions, create_topic};
use super::produce::{ProduceBenchArgs, ProducerSetup, produce};

/// The Python side of the benchmark.
const PYTHON_SCRIPT: &str = include_str!("consume_python.py");

/// Arguments of `kchaos bench consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeBenchArgs {
    /// Records written to the partition, then read back by each reader.
    #[arg(long, default_value_t = 300_000)]
    pub records: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Also measure a cluster of this kchaos binary (another build), in the same run.
    #[arg(long)]
    pub compare_binary: Option<PathBuf>,
}

/// Runs the benchmark.
pub fn run(args: ConsumeBenchArgs) -> anyhow::Result<ExitCode> {
    if args.records < 2 {
        bail!("--records must be at least 2");
    }
    let ours = std::env::current_exe().context("cannot find our own executable")?;
    let mut binaries = vec![("this build", ours)];
    if let Some(other) = &args.compare_binary {
        if !other.is_file() {
            bail!("--compare-binary {} is not a file", other.display());
        }
        binaries.push(("--compare-binary", other.clone()));
    }
    println!(
        "bench consume: {} records of {} bytes on one partition, read by kcat and by \
         confluent-kafka's Python Consumer (group.id set, assign mode)",
        args.records, args.record_size
    );
    for (label, binary) in binaries {
        println!("\nbroker: {} ({label})", binary.display());
        measure(&args, binary)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One cluster of `binary`: write the records, read them back every way.
fn measure(args: &ConsumeBenchArgs, binary: PathBuf) -> anyhow::Result<()> {
    let cluster = BenchCluster::start(&ClusterOptions {
        binary,
        brokers: 1,
        work_dir: None,
        zookeeper_connect: None,
        broker_config: "offsets.topic.replication.factor=1".into(),
        label: "consume".into(),
    })?;
    let topic = "bench-consume";
    create_topic(&cluster.bootstrap, topic, 1, 1)?;
    let produce_args = ProduceBenchArgs {
        records: args.records,
        record_size: args.record_size,
        acks: "1".into(),
        partitions: 1,
        linger_ms: 5,
        batch_size: 1_000_000,
        bootstrap_server: None,
        zookeeper_connect: None,
        work_dir: None,
        replication_factor: 1,
        brokers: None,
        no_baseline: true,
        latency_rate: 1,
        latency_seconds: 1,
        idempotence: false,
        rounds: 1,
        client_stats: false,
    };
    produce(
        &produce_args,
        ProducerSetup::plain("1"),
        &cluster.bootstrap,
        topic,
    )?;
    kcat(args, &cluster.bootstrap, topic)?;
    python(args, &cluster.bootstrap, topic)
}

/// `kcat -C -o beginning -e` to /dev/null.
fn kcat(args: &ConsumeBenchArgs, bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    let status = Command::new("kcat")
        .args([
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .stdout(Stdio::null())
        .status();
    let seconds = start.elapsed().as_secs_f64();
    match status {
        Ok(status) if status.success() => println!(
            "  {:>9.0} records/s  {seconds:>6.3} s  kcat -C -o beginning -e",
            args.records as f64 / seconds
        ),
        Ok(status) => bail!("kcat failed: {status}"),
        Err(error) => println!("  kcat skipped: {error} (install it: bash .ci/setup)"),
    }
    Ok(())
}

/// The Python scenarios (see `consume_python.py`).
fn python(args: &ConsumeBenchArgs, bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let output = Command::new("python3")
        .args([
            "-c",
            PYTHON_SCRIPT,
            bootstrap,
            topic,
            &args.records.to_string(),
        ])
        .output()
        .context("cannot run python3")?;
    if !output.status.success() {
        bail!(
            "the Python consumer failed (is confluent-kafka installed? bash .ci/setup): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.splitn(6, ' ').collect();
        let [total, after_first, to_first, fetches, backoffs, name] = fields[..] else {
            continue;
        };
        let total: f64 = total.parse().unwrap_or(0.0);
        println!(
            "  {total:>9.0} records/s  {:>6.3} s  python: {name} ({after_first} records/s after \
             the first record, which came after {to_first} s; {fetches} fetch responses, \
             {backoffs} pauses of fetch.queue.backoff.ms)",
            args.records as f64 / total.max(1.0)
        );
    }
    Ok(())
}
