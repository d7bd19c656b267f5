//! `kchaos bench coordinator`: acknowledged (fsync'd) writes per second and watch notification
//! latency. Starts `kchaos coordinator` in a temporary directory, then
//! - for each client count N: N sessions each loop `setData` on their own znode for a fixed time,
//!   one request in flight each; every acknowledgement was fsync'd first, so the ratio between
//!   N = 16 and N = 1 shows group commit (16 writes sharing one fsync);
//! - one session watches a znode while another sets it: the time from the set's start to the
//!   event's arrival, p50/p99 in an HDR histogram.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use harness::cluster::process::NodeProcess;
use zookeeper_client as zk;

/// Arguments of `kchaos bench coordinator`.
#[derive(Debug, clap::Args)]
pub struct CoordinatorBenchArgs {
    /// Client counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub clients: Vec<usize>,
    /// How long each write measurement runs.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Watch notifications to time.
    #[arg(long, default_value_t = 1000)]
    pub watch_samples: u64,
    /// Where to make the temporary data directory (its disk is what fsync measures).
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
}

/// Runs the benchmark and prints its numbers.
pub fn run(args: CoordinatorBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.clients.is_empty(),
        "--clients needs at least one count"
    );
    anyhow::ensure!(
        args.clients.iter().all(|clients| *clients > 0),
        "--clients must be positive"
    );
    let parent = args.data_parent.clone().unwrap_or_else(std::env::temp_dir);
    let dir = ScratchDir::create(&parent)?;
    let port = harness::cluster::ports::free_loopback_port().context("finding a free port")?;
    let _coordinator = start_coordinator(dir.path(), port)?;
    let address = format!("127.0.0.1:{port}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        println!(
            "coordinator at {address}, data in {} (fsync per batch of acknowledged writes)",
            dir.path().display()
        );
        let mut single_client_rate = None;
        for clients in &args.clients {
            let rate = write_rate(&address, *clients, Duration::from_secs(args.seconds)).await?;
            let ratio = single_client_rate
                .map(|single: f64| format!(" ({:.1}x one client)", rate / single))
                .unwrap_or_default();
            if *clients == 1 {
                single_client_rate = Some(rate);
            }
            println!("setData acknowledged: {rate:>9.0}/s with {clients:>3} clients{ratio}");
        }
        watch_latency(&address, args.watch_samples).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A directory of our own under `parent`, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create(parent: &Path) -> anyhow::Result<ScratchDir> {
        let path = parent.join(format!("kchaos-bench-coordinator-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!("removing {}: {error}", self.0.display());
        }
    }
}

fn start_coordinator(dir: &Path, port: u16) -> anyhow::Result<NodeProcess> {
    let program = std::env::current_exe().context("finding our own binary")?;
    let args = vec![
        "coordinator".to_string(),
        "--port".to_string(),
        port.to_string(),
        "--data-dir".to_string(),
        dir.join("data").display().to_string(),
    ];
    let process = NodeProcess::spawn(
        "coordinator",
        &program,
        &args,
        &[("RUST_LOG".into(), "warn".into())],
        &dir.join("coordinator.log"),
    )?;
    harness::wait::wait_for(
        "the coordinator to listen",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
    )?;
    Ok(process)
}

async fn connect(address: &str) -> anyhow::Result<zk::Client> {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))
}

/// Acknowledged setData per second with `clients` sessions writing for `duration`.
async fn write_rate(address: &str, clients: usize, duration: Duration) -> anyhow::Result<f64> {
    let acknowledged = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::with_capacity(clients);
    let mut sessions = Vec::with_capacity(clients);
    for index in 0..clients {
        let client = connect(address).await?;
        let path = format!("/bench-{clients}-{index}");
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        client
            .create(&path, b"", &options)
            .await
            .context("creating a bench znode")?;
        sessions.push(client.clone());
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let deadline = Instant::now() + duration;
            let payload = [7u8; 100];
            while Instant::now() < deadline {
                client.set_data(&path, &payload, None).await?;
                acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for writer in writers {
        writer.await.context("a writer task panicked")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    for session in sessions {
        crate::coordinator::shell::close(session).await;
    }
    Ok(acknowledged.load(Ordering::Relaxed) as f64 / elapsed)
}

/// Time from a setData's start to the watch event's arrival at another session.
async fn watch_latency(address: &str, samples: u64) -> anyhow::Result<()> {
    let watcher = connect(address).await?;
    let setter = connect(address).await?;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    setter
        .create("/bench-watch", b"", &options)
        .await
        .context("creating /bench-watch")?;
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .context("creating the latency histogram")?;
    for _ in 0..samples {
        let (_, _, watch) = watcher.get_and_watch_data("/bench-watch").await?;
        let started = Instant::now();
        let (set, event) =
            tokio::join!(setter.set_data("/bench-watch", b"x", None), watch.changed());
        set?;
        anyhow::ensure!(
            event.event_type == zk::EventType::NodeDataChanged,
            "unexpected watch event {event:?}"
        );
        histogram.saturating_record(started.elapsed().as_micros() as u64);
    }
    println!(
        "watch notification latency over {samples} events: p50 {} us, p99 {} us, max {} us",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.max()
    );
    crate::coordinator::shell::close(watcher).await;
    crate::coordinator::shell::close(setter).await;
    Ok(())
}
