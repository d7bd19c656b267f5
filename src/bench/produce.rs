//! `kchaos bench produce`: rdkafka producer and consumer throughput against our broker.
//!
//! Starts a coordinator (`kchaos coordinator`, unless `--zookeeper-connect` names a running one)
//! and one broker process in a temporary directory (or uses `--bootstrap-server`), sends
//! `--records` records of `--record-size` bytes round-robin over `--partitions` partitions
//! with an rdkafka producer, waits for every acknowledgement, then reads them all back with an
//! assign-based consumer. Prints records/s and MB/s for each phase.
//!
//! `cargo run --release -- bench produce --records 2000000 --record-size 100 --acks 1`

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harness::ports::free_loopback_port;
use harness::process::NodeProcess;
use harness::wait::wait_for;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

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
}

/// Counts acknowledgements from the producer's delivery callbacks.
#[derive(Default)]
struct DeliveryCounter {
    acked: AtomicU64,
    failed: AtomicU64,
}

#[derive(Clone)]
struct CountingContext(Arc<DeliveryCounter>);

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        match result {
            Ok(_) => self.0.acked.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The processes of a benchmark cluster, stopped on drop.
struct BenchCluster {
    // Fields drop in order: the broker goes before its coordinator.
    _broker: Option<NodeProcess>,
    _coordinator: Option<NodeProcess>,
    bootstrap: String,
    _temp: Option<ScratchDir>,
}

/// A directory under the system temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("kchaos-bench-produce-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the benchmark.
pub fn run(args: ProduceBenchArgs) -> anyhow::Result<ExitCode> {
    if args.records == 0 || args.partitions < 1 {
        bail!("--records and --partitions must be at least 1");
    }
    let cluster = start_cluster(&args)?;
    let topic = format!("bench-{}", std::process::id());
    create_topic(&cluster.bootstrap, &topic, args.partitions)?;
    println!(
        "bench produce: {} records of {} bytes, acks={}, {} partition(s), broker {}",
        args.records, args.record_size, args.acks, args.partitions, cluster.bootstrap
    );
    let produce_elapsed = produce(&args, &cluster.bootstrap, &topic)?;
    report("produce", args.records, args.record_size, produce_elapsed);
    let consume_elapsed = consume(&args, &cluster.bootstrap, &topic)?;
    report("consume", args.records, args.record_size, consume_elapsed);
    Ok(ExitCode::SUCCESS)
}

fn report(phase: &str, records: u64, record_size: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{phase}: {records} records in {seconds:.2} s: {:.0} records/s, {:.1} MB/s",
        records as f64 / seconds,
        (records as f64 * record_size as f64) / seconds / 1e6
    );
}

fn start_cluster(args: &ProduceBenchArgs) -> anyhow::Result<BenchCluster> {
    if let Some(bootstrap) = &args.bootstrap_server {
        return Ok(BenchCluster {
            _coordinator: None,
            _broker: None,
            bootstrap: bootstrap.clone(),
            _temp: None,
        });
    }
    let (temp, dir) = match &args.work_dir {
        Some(dir) => (None, dir.clone()),
        None => {
            let scratch = ScratchDir::new()?;
            let dir = scratch.0.clone();
            (Some(scratch), dir)
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (coordinator, connect) = match &args.zookeeper_connect {
        Some(connect) => (None, connect.clone()),
        None => {
            let (process, port) = start_coordinator(&dir)?;
            (Some(process), format!("127.0.0.1:{port}"))
        }
    };
    let port = free_loopback_port().context("no free port")?;
    let config = dir.join("server.properties");
    std::fs::write(
        &config,
        format!(
            "broker.id=1\nlisteners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={}\n\
             zookeeper.connect={connect}\nauto.create.topics.enable=false\n",
            dir.join("kafka-logs").display()
        ),
    )
    .context("cannot write the broker config")?;
    let log = dir.join("broker.log");
    let broker = NodeProcess::spawn(
        "broker-1",
        &std::env::current_exe().context("cannot find our own executable")?,
        &[
            "broker".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        &[],
        &log,
    )?;
    wait_for(
        "the broker to start",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|text| text.contains("broker 1 started"))
        },
    )
    .with_context(|| format!("see {}", log.display()))?;
    Ok(BenchCluster {
        _coordinator: coordinator,
        _broker: Some(broker),
        bootstrap: format!("127.0.0.1:{port}"),
        _temp: temp,
    })
}

/// Our coordinator (`kchaos coordinator`) in `dir`.
fn start_coordinator(dir: &Path) -> anyhow::Result<(NodeProcess, u16)> {
    let port = free_loopback_port().context("no free port")?;
    let data_dir = dir.join("coordinator");
    std::fs::create_dir_all(&data_dir)?;
    let process = NodeProcess::spawn(
        "coordinator",
        &std::env::current_exe().context("cannot find our own executable")?,
        &[
            "coordinator".into(),
            "--port".into(),
            port.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ],
        &[],
        &dir.join("coordinator.log"),
    )?;
    wait_for(
        "the coordinator to listen",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || TcpStream::connect(("127.0.0.1", port)).ok(),
    )?;
    Ok((process, port))
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("cannot create the admin client")?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results =
        futures::executor::block_on(admin.create_topics([&new_topic], &AdminOptions::new()))
            .context("CreateTopics failed")?;
    for result in results {
        if let Err((name, code)) = result {
            bail!("cannot create topic {name}: {code}");
        }
    }
    Ok(())
}

fn produce(args: &ProduceBenchArgs, bootstrap: &str, topic: &str) -> anyhow::Result<Duration> {
    let counter = Arc::new(DeliveryCounter::default());
    let producer: ThreadedProducer<CountingContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", &args.acks)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", "false")
        .set("compression.type", "none")
        .create_with_context(CountingContext(Arc::clone(&counter)))
        .context("cannot create the producer")?;
    let value = vec![b'x'; args.record_size];
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
    if failed > 0 || acked != args.records {
        bail!(
            "{acked} records acknowledged, {failed} failed, of {}",
            args.records
        );
    }
    Ok(elapsed)
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
