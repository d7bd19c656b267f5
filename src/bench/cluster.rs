//! The cluster a benchmark runs against: a coordinator and brokers of a given `kchaos` binary
//! (this one, or another build to compare with in the same run) in a scratch directory removed
//! afterwards, or an existing cluster; and creating its topics.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use harness::cluster::ports::free_loopback_port;
use harness::cluster::process::NodeProcess;
use harness::wait::wait_for;
use rdkafka::ClientConfig;

/// How to start a benchmark cluster.
pub struct ClusterOptions {
    /// The `kchaos` binary whose coordinator and brokers run.
    pub binary: PathBuf,
    pub brokers: i32,
    /// Keep the files here instead of a scratch directory.
    pub work_dir: Option<PathBuf>,
    /// Use this running coordinator instead of starting one.
    pub zookeeper_connect: Option<String>,
    /// Extra server.properties lines for every broker.
    pub broker_config: String,
    /// Names the scratch directory (`kchaos-bench-<label>-<pid>`).
    pub label: String,
}

/// The processes of a benchmark cluster, stopped on drop.
pub struct BenchCluster {
    // Fields drop in order: the brokers go before their coordinator.
    _brokers: Vec<NodeProcess>,
    _coordinator: Option<NodeProcess>,
    pub bootstrap: String,
    _temp: Option<ScratchDir>,
}

impl BenchCluster {
    /// A cluster someone else runs.
    pub fn external(bootstrap: &str) -> Self {
        BenchCluster {
            _coordinator: None,
            _brokers: Vec::new(),
            bootstrap: bootstrap.to_string(),
            _temp: None,
        }
    }

    /// Starts a coordinator (unless one is given) and the brokers, and waits until each
    /// broker says it started.
    pub fn start(options: &ClusterOptions) -> anyhow::Result<Self> {
        let (temp, dir) = match &options.work_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let scratch = ScratchDir::new(&options.label)?;
                let dir = scratch.0.clone();
                (Some(scratch), dir)
            }
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let (coordinator, connect) = match &options.zookeeper_connect {
            Some(connect) => (None, connect.clone()),
            None => {
                let (process, port) = start_coordinator(&options.binary, &dir)?;
                (Some(process), format!("127.0.0.1:{port}"))
            }
        };
        let mut brokers = Vec::new();
        let mut addresses = Vec::new();
        for id in 1..=options.brokers.max(1) {
            let (broker, port) =
                start_broker(&options.binary, &dir, id, &connect, &options.broker_config)?;
            brokers.push(broker);
            addresses.push(format!("127.0.0.1:{port}"));
        }
        Ok(BenchCluster {
            _coordinator: coordinator,
            _brokers: brokers,
            bootstrap: addresses.join(","),
            _temp: temp,
        })
    }
}

/// A directory under the system temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(label: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("kchaos-bench-{label}-{}", std::process::id()));
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

/// Broker `id` of `binary` in `dir/broker-<id>`, registered with `connect`, with `extra`
/// server.properties lines.
fn start_broker(
    binary: &Path,
    dir: &Path,
    id: i32,
    connect: &str,
    extra: &str,
) -> anyhow::Result<(NodeProcess, u16)> {
    let dir = dir.join(format!("broker-{id}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let port = free_loopback_port().context("no free port")?;
    let config = dir.join("server.properties");
    std::fs::write(
        &config,
        format!(
            "broker.id={id}\nlisteners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={}\n\
             zookeeper.connect={connect}\nauto.create.topics.enable=false\n{extra}\n",
            dir.join("kafka-logs").display()
        ),
    )
    .context("cannot write the broker config")?;
    let log = dir.join("broker.log");
    let broker = NodeProcess::spawn(
        &format!("broker-{id}"),
        binary,
        &[
            "broker".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        &[],
        &log,
    )?;
    let started = format!("broker {id} started");
    wait_for(
        "the broker to start",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|text| text.contains(&started))
        },
    )
    .with_context(|| format!("see {}", log.display()))?;
    Ok((broker, port))
}

/// The coordinator of `binary` (`kchaos coordinator`) in `dir`.
fn start_coordinator(binary: &Path, dir: &Path) -> anyhow::Result<(NodeProcess, u16)> {
    let port = free_loopback_port().context("no free port")?;
    let data_dir = dir.join("coordinator");
    std::fs::create_dir_all(&data_dir)?;
    let process = NodeProcess::spawn(
        "coordinator",
        binary,
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

pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("cannot create the admin client")?;
    let new_topic = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
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
