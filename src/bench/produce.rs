//! `kchaos bench produce`: rdkafka producer and consumer throughput against our broker.
//!
//! Starts a coordinator (`kchaos coordinator`, unless `--zookeeper-connect` names a running one)
//! and `--brokers` broker processes (default: the replication factor) in a temporary directory
//! (or uses `--bootstrap-server`), sends `--records` records of `--record-size` bytes
//! round-robin over `--partitions` partitions with one rdkafka producer, waits for every
//! acknowledgement, then reads them all back with an assign-based consumer. Prints records/s
//! and MB/s for each phase.
//!
//! When the run is replicated or not acks=1 (`--acks all --replication-factor 3`), the same
//! run also measures the baseline (acks=1, replication factor 1, on the same cluster) and
//! prints the ratio, then the acks latency p50/p99 at a fixed `--latency-rate`.
//!
//! With `--idempotence` the run instead compares librdkafka's idempotent producer
//! (`enable.idempotence=true`) with a plain producer at the same acks=all on the same cluster:
//! `--rounds` alternating rounds, each on a fresh topic and timed after a first acknowledged
//! record (so that librdkafka's start-up, which asks for the producer id only after 500 ms
//! when no broker is up yet, is not counted), and the ratio of the median rates.
//! `--client-stats` adds librdkafka's own view of each phase (requests, round trip, requests in
//! flight): librdkafka 2.12's idempotent producer keeps one request in flight per partition
//! once batches hold five messages or more (it counts in-flight messages against its window of
//! five requests), so its throughput per partition is a batch per round trip.
//!
//! `cargo run --release -- bench produce --records 2000000 --acks all --replication-factor 3`
//! `cargo run --release -- bench produce --records 1000000 --acks all --replication-factor 3 \
//!  --idempotence`

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::cluster::{BenchCluster, ClusterOptions, create_topic};

/// Arguments of `kchaos bench produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceBenchArgs {
    /// Records to send.
    #[arg(long, default_value_t = 2_000_000)]
    pub records: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Producer acks: 0, 1 or all.
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Producer batch.size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: u64,
    /// Use this running cluster instead of starting a coordinator and a broker.
    #[arg(long)]
    pub bootstrap_server: Option<String>,
    /// Use this running coordinator (ours or Apache ZooKeeper) instead of starting one.
    #[arg(long)]
    pub zookeeper_connect: Option<String>,
    /// Keep the broker's files here instead of a temporary directory.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Replication factor of the benchmark topic.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i32,
    /// Brokers to start (default: the replication factor).
    #[arg(long)]
    pub brokers: Option<i32>,
    /// Skip the acks=1 RF1 baseline and the latency phase.
    #[arg(long)]
    pub no_baseline: bool,
    /// Records/s of the latency phase.
    #[arg(long, default_value_t = 10_000)]
    pub latency_rate: u64,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 5)]
    pub latency_seconds: u64,
    /// Compare the idempotent producer with a plain one at the same acks (needs --acks all).
    #[arg(long)]
    pub idempotence: bool,
    /// Alternating rounds (plain, then idempotent) of the --idempotence comparison.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Also print librdkafka's view of each produce phase: requests, round trip, in flight.
    #[arg(long)]
    pub client_stats: bool,
}

/// Counts acknowledgements from the producer's delivery callbacks (and, with
/// `--client-stats`, samples librdkafka's statistics).
#[derive(Default)]
struct DeliveryCounter {
    acked: AtomicU64,
    failed: AtomicU64,
    requests: std::sync::Mutex<RequestSamples>,
}

/// What librdkafka's statistics say of the produce requests, summed over samples.
#[derive(Debug, Default, Clone, Copy)]
struct RequestSamples {
    samples: u64,
    /// Requests awaiting a response, over every broker, summed over samples.
    in_flight: i64,
    /// The brokers' mean request round trip (µs), summed over samples that had one.
    rtt_us: i64,
    rtt_samples: i64,
    /// Requests sent so far (the latest sample).
    sent: u64,
}

impl RequestSamples {
    fn report(&self) -> String {
        let samples = self.samples.max(1) as f64;
        format!(
            "librdkafka: {} requests, round trip {:.1} ms on average, {:.1} requests in flight on \
             average ({} samples)",
            self.sent,
            self.rtt_us as f64 / self.rtt_samples.max(1) as f64 / 1000.0,
            self.in_flight as f64 / samples,
            self.samples
        )
    }
}

#[derive(Clone)]
struct CountingContext(Arc<DeliveryCounter>);

impl ClientContext for CountingContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let brokers = statistics.brokers.values().filter(|b| b.nodeid >= 0);
        let mut requests = crate::lock::lock(&self.0.requests);
        requests.samples += 1;
        requests.sent = 0;
        for broker in brokers {
            requests.in_flight += broker.waitresp_cnt;
            requests.sent += broker.tx;
            if let Some(rtt) = broker.rtt.as_ref().filter(|rtt| rtt.cnt > 0) {
                requests.rtt_us += rtt.avg;
                requests.rtt_samples += 1;
            }
        }
    }
}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        match result {
            Ok(_) => self.0.acked.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Runs the benchmark.
pub fn run(args: ProduceBenchArgs) -> anyhow::Result<ExitCode> {
    if args.records == 0 || args.partitions < 1 {
        bail!("--records and --partitions must be at least 1");
    }
    if args.idempotence && !matches!(args.acks.as_str(), "all" | "-1") {
        bail!(
            "--idempotence needs --acks all: an idempotent producer always waits for the \
             in-sync replicas"
        );
    }
    let cluster = start_cluster(&args)?;
    if args.idempotence {
        return compare_idempotence(&args, &cluster.bootstrap);
    }
    let topic = format!("bench-{}", std::process::id());
    create_topic(
        &cluster.bootstrap,
        &topic,
        args.partitions,
        args.replication_factor,
    )?;
    println!(
        "bench produce: {} records of {} bytes, acks={}, replication factor {}, {} partition(s), \
         brokers {}",
        args.records,
        args.record_size,
        args.acks,
        args.replication_factor,
        args.partitions,
        cluster.bootstrap
    );
    let produce_elapsed = produce(
        &args,
        ProducerSetup::plain(&args.acks),
        &cluster.bootstrap,
        &topic,
    )?;
    let measured = report("produce", args.records, args.record_size, produce_elapsed);
    let consume_elapsed = consume(&args, &cluster.bootstrap, &topic)?;
    report("consume", args.records, args.record_size, consume_elapsed);
    let replicated = args.replication_factor > 1 || args.acks != "1";
    if replicated && !args.no_baseline {
        let baseline_topic = format!("{topic}-baseline");
        create_topic(&cluster.bootstrap, &baseline_topic, args.partitions, 1)?;
        let elapsed = produce(
            &args,
            ProducerSetup::plain("1"),
            &cluster.bootstrap,
            &baseline_topic,
        )?;
        let baseline = report(
            "produce baseline (acks=1, replication factor 1)",
            args.records,
            args.record_size,
            elapsed,
        );
        println!(
            "ratio acks={} RF{} / acks=1 RF1: {:.2}",
            args.acks,
            args.replication_factor,
            measured / baseline.max(1e-9)
        );
        let latency_topic = format!("{topic}-latency");
        create_topic(
            &cluster.bootstrap,
            &latency_topic,
            args.partitions,
            args.replication_factor,
        )?;
        latency(&args, &cluster.bootstrap, &latency_topic)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--idempotence`: alternating rounds of a plain and an idempotent producer at the same acks,
/// each on a fresh topic; prints every round, the median rates and their ratio.
fn compare_idempotence(args: &ProduceBenchArgs, bootstrap: &str) -> anyhow::Result<ExitCode> {
    println!(
        "bench produce --idempotence: {} records of {} bytes per round, acks={}, replication \
         factor {}, {} partition(s), {} rounds, brokers {bootstrap}",
        args.records,
        args.record_size,
        args.acks,
        args.replication_factor,
        args.partitions,
        args.rounds.max(1)
    );
    let mut plain = Vec::new();
    let mut idempotent = Vec::new();
    for round in 0..args.rounds.max(1) {
        for (idempotence, rates) in [(false, &mut plain), (true, &mut idempotent)] {
            let kind = if idempotence { "idempotent" } else { "plain" };
            let topic = format!("bench-{}-{kind}-{round}", std::process::id());
            create_topic(bootstrap, &topic, args.partitions, args.replication_factor)?;
            let setup = ProducerSetup {
                acks: &args.acks,
                idempotence,
                warm_up: true,
            };
            let (elapsed, requests) = produce_sampled(args, setup, bootstrap, &topic)?;
            let phase = format!("round {round}: produce {kind}");
            rates.push(report(&phase, args.records, args.record_size, elapsed));
            if args.client_stats {
                println!("  {}", requests.report());
            }
        }
    }
    let (plain, idempotent) = (median(&mut plain), median(&mut idempotent));
    println!(
        "median produce: plain {plain:.0} records/s, idempotent {idempotent:.0} records/s; \
         ratio idempotent / plain acks={}: {:.2}",
        args.acks,
        idempotent / plain.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Counts latencies (send to acknowledgement) from the delivery callbacks.
struct LatencyContext {
    histogram: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
    failed: AtomicU64,
}

#[derive(Clone)]
struct LatencyHandle(Arc<LatencyContext>);

impl ClientContext for LatencyHandle {}

impl ProducerContext for LatencyHandle {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        match result {
            Ok(_) => {
                let micros = sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                let mut histogram = crate::lock::lock(&self.0.histogram);
                let _ = histogram.record(micros.max(1));
            }
            Err(_) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sends at `--latency-rate` for `--latency-seconds` and prints the acks latency percentiles.
fn latency(args: &ProduceBenchArgs, bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .context("cannot create the latency histogram")?;
    let context = LatencyHandle(Arc::new(LatencyContext {
        histogram: std::sync::Mutex::new(histogram),
        failed: AtomicU64::new(0),
    }));
    let producer: ThreadedProducer<LatencyHandle> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", &args.acks)
        .set("linger.ms", "0")
        .set("enable.idempotence", "false")
        .set("compression.type", "none")
        .create_with_context(context.clone())
        .context("cannot create the producer")?;
    let value = vec![b'x'; args.record_size];
    // Warm up (metadata, connections) outside the measurement.
    warm_up(
        &producer,
        BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
            .payload(&value[..])
            .partition(0),
    )?;
    crate::lock::lock(&context.0.histogram).reset();
    let total = args.latency_rate * args.latency_seconds;
    let interval = Duration::from_secs_f64(1.0 / args.latency_rate.max(1) as f64);
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let partition = (i % args.partitions as u64) as i32;
        let record =
            BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(topic, Box::new(Instant::now()))
                .payload(&value[..])
                .partition(partition);
        if let Err((error, _)) = producer.send(record) {
            bail!("cannot send latency record {i}: {error}");
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("the latency producer did not drain in 60 s")?;
    let histogram = crate::lock::lock(&context.0.histogram);
    println!(
        "latency acks={} RF{} at {} records/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
         ({} records, {} failed)",
        args.acks,
        args.replication_factor,
        args.latency_rate,
        histogram.value_at_quantile(0.50) as f64 / 1000.0,
        histogram.value_at_quantile(0.99) as f64 / 1000.0,
        histogram.max() as f64 / 1000.0,
        histogram.len(),
        context.0.failed.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Sends one record and waits for its acknowledgement.
fn warm_up<C: ProducerContext>(
    producer: &ThreadedProducer<C>,
    record: BaseRecord<'_, (), [u8], C::DeliveryOpaque>,
) -> anyhow::Result<()> {
    if let Err((error, _)) = producer.send(record) {
        bail!("cannot send the warm-up record: {error}");
    }
    producer
        .flush(Duration::from_secs(60))
        .context("the warm-up record was not acknowledged in 60 s")
}

/// Prints a phase's throughput and returns its records/s.
fn report(phase: &str, records: u64, record_size: usize, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let rate = records as f64 / seconds;
    println!(
        "{phase}: {records} records in {seconds:.2} s: {rate:.0} records/s, {:.1} MB/s",
        (records as f64 * record_size as f64) / seconds / 1e6
    );
    rate
}

fn start_cluster(args: &ProduceBenchArgs) -> anyhow::Result<BenchCluster> {
    if let Some(bootstrap) = &args.bootstrap_server {
        return Ok(BenchCluster::external(bootstrap));
    }
    BenchCluster::start(&ClusterOptions {
        binary: std::env::current_exe().context("cannot find our own executable")?,
        brokers: args.brokers.unwrap_or(args.replication_factor),
        work_dir: args.work_dir.clone(),
        zookeeper_connect: args.zookeeper_connect.clone(),
        broker_config: String::new(),
        label: "produce".into(),
    })
}

/// How one produce phase's producer is set up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProducerSetup<'a> {
    acks: &'a str,
    idempotence: bool,
    /// Send one record and wait for it before the clock starts (connections, metadata and an
    /// idempotent producer's id are then in place: librdkafka asks for the id only once a
    /// broker is up, and otherwise retries after 500 ms).
    warm_up: bool,
}

impl<'a> ProducerSetup<'a> {
    pub(crate) fn plain(acks: &'a str) -> Self {
        ProducerSetup {
            acks,
            idempotence: false,
            warm_up: false,
        }
    }
}

pub(crate) fn produce(
    args: &ProduceBenchArgs,
    setup: ProducerSetup<'_>,
    bootstrap: &str,
    topic: &str,
) -> anyhow::Result<Duration> {
    produce_sampled(args, setup, bootstrap, topic).map(|(elapsed, _)| elapsed)
}

/// [`produce`], with librdkafka's statistics sampled during the timed part (`--client-stats`).
fn produce_sampled(
    args: &ProduceBenchArgs,
    setup: ProducerSetup<'_>,
    bootstrap: &str,
    topic: &str,
) -> anyhow::Result<(Duration, RequestSamples)> {
    let counter = Arc::new(DeliveryCounter::default());
    let mut config = ClientConfig::new();
    if args.client_stats {
        config.set("statistics.interval.ms", "100");
    }
    let producer: ThreadedProducer<CountingContext> = config
        .set("bootstrap.servers", bootstrap)
        .set("acks", setup.acks)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", setup.idempotence.to_string())
        .set("compression.type", "none")
        .create_with_context(CountingContext(Arc::clone(&counter)))
        .context("cannot create the producer")?;
    let value = vec![b'x'; args.record_size];
    let warm_up_records = u64::from(setup.warm_up);
    if setup.warm_up {
        warm_up(
            &producer,
            BaseRecord::to(topic).payload(&value[..]).partition(0),
        )?;
    }
    *crate::lock::lock(&counter.requests) = RequestSamples::default();
    let start = Instant::now();
    for i in 0..args.records {
        let partition = (i % args.partitions as u64) as i32;
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(&value[..])
            .partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((error, _)) => bail!("cannot send record {i}: {error}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .context("the producer did not drain in 300 s")?;
    let elapsed = start.elapsed();
    let failed = counter.failed.load(Ordering::Relaxed);
    let acked = counter.acked.load(Ordering::Relaxed);
    if failed > 0 || acked != args.records + warm_up_records {
        bail!(
            "{acked} records acknowledged, {failed} failed, of {}",
            args.records
        );
    }
    let requests = *crate::lock::lock(&counter.requests);
    Ok((elapsed, requests))
}

fn consume(args: &ProduceBenchArgs, bootstrap: &str, topic: &str) -> anyhow::Result<Duration> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kchaos-bench")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        .set("queued.min.messages", "1000000")
        // librdkafka >= 2.1 otherwise waits a whole second whenever its queue is full.
        .set("fetch.queue.backoff.ms", "5")
        .create()
        .context("cannot create the consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..args.partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);
    let mut read = 0u64;
    let mut idle_polls = 0u32;
    while read < args.records {
        // Checking the clock per record costs more than reading it: check when idle.
        if idle_polls > 0 && Instant::now() > deadline {
            bail!("read only {read} of {} records in 300 s", args.records);
        }
        let timeout = if idle_polls == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
        };
        let polled = consumer.poll(timeout);
        idle_polls = if polled.is_some() { 0 } else { idle_polls + 1 };
        match polled {
            Some(Ok(message)) => {
                if message.payload().map_or(0, <[u8]>::len) != args.record_size {
                    bail!("record at offset {} has the wrong size", message.offset());
                }
                read += 1;
            }
            Some(Err(error)) => bail!("consume error: {error}"),
            None => {}
        }
    }
    Ok(start.elapsed())
}
