//! The ZooKeeper-protocol coordinator (`kchaos coordinator --port 2181 --data-dir DIR`).
//!
//! Our own ZooKeeper: its tree, sessions, watches and storage are ours; only the wire format is
//! ZooKeeper's, so `zkCli.sh`, `kazoo` and `zookeeper-client` work against it unchanged.
//!
//! # Layout
//! - [`jute`]: ZooKeeper's wire encoding and framing (pure).
//! - [`protocol`]: op codes, error codes, `Stat`, requests and replies (pure).
//! - [`tree`]: the znode tree; applies a mutation, returns the watch triggers (pure).
//! - [`write_op`]: one write (create, delete, setData, check), from the wire to the tree.
//! - [`txn`]: transactions and their log encoding; [`database`]: tree + sessions + zxid.
//! - [`wal`]: the write-ahead log (CRC per record, group commit, torn-tail cut);
//!   [`snapshot`]: snapshot files; [`storage`]: recovery of a data directory.
//! - [`session`]: live sessions and their deadlines; [`watch`]: one-shot and persistent
//!   watch registrations.
//! - [`actor`]: the single owner of the state (batches, fsync, then replies), with its read
//!   and write requests in `actor::reads` and `actor::writes`;
//!   [`server`]: listener, connection tasks, ticker, shutdown.
//! - [`shell`]: `kchaos coord`, a zookeeper-shell built on `zookeeper-client`.
//!
//! # Operations served
//! create/create2 (persistent, ephemeral, sequential), delete, exists, getData, setData,
//! getChildren/getChildren2, getACL (always world:anyone, all permissions), sync, multi
//! (check/create/setData/delete), ping, closeSession, setWatches/setWatches2, addWatch
//! (persistent, recursive), removeWatches, checkWatches, multiRead, getEphemerals,
//! getAllChildrenNumber, and auth (accepted, not enforced). Anything else (setACL, reconfig,
//! containers, TTLs, whoAmI, SASL) is answered with ZooKeeper's `Unimplemented` (-6). There are no ACLs
//! and no quorum: this is a standalone server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tracing::info;

pub mod actor;
pub mod database;
pub mod jute;
pub mod protocol;
pub mod server;
pub mod session;
pub mod shell;
pub mod snapshot;
pub mod storage;
pub mod tree;
pub mod txn;
pub mod wal;
pub mod watch;
pub mod write_op;

/// ZooKeeper's default `jute.maxbuffer`.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 0xfffff;

/// `kchaos coordinator`: flags carry ZooKeeper's names and defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct CoordinatorArgs {
    /// Client port (clientPort).
    #[arg(long, default_value_t = 2181)]
    pub port: u16,
    /// Address to listen on (clientPortAddress).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Where the write-ahead log and snapshots live (dataDir).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The basic time unit (tickTime); session expiry is checked every tick.
    #[arg(long, default_value_t = 2000)]
    pub tick_time_ms: u32,
    /// Smallest session timeout granted (minSessionTimeout); default 2 x tick.
    #[arg(long)]
    pub min_session_timeout_ms: Option<u32>,
    /// Largest session timeout granted (maxSessionTimeout); default 20 x tick.
    #[arg(long)]
    pub max_session_timeout_ms: Option<u32>,
    /// Transactions between snapshots (snapCount).
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Largest frame accepted (jute.maxbuffer); a bigger one closes its connection.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// Planted bugs to switch on, comma-separated (`kchaos selftest`; only a build with the
    /// `planted-bugs` feature has them, a default build refuses the flag).
    #[arg(long, value_name = "NAMES", hide = cfg!(not(feature = "planted-bugs")))]
    pub planted_bugs: Option<String>,
}

/// Runs the coordinator until SIGINT or SIGTERM.
pub fn run(args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    if let Some(names) = &args.planted_bugs {
        crate::planted::switch_on(names, crate::planted::Component::Coordinator)?;
    }
    anyhow::ensure!(args.tick_time_ms > 0, "--tick-time-ms must be positive");
    anyhow::ensure!(args.snapshot_count > 0, "--snapshot-count must be positive");
    let min_session_timeout_ms = args.min_session_timeout_ms.unwrap_or(2 * args.tick_time_ms);
    let max_session_timeout_ms = args
        .max_session_timeout_ms
        .unwrap_or(20 * args.tick_time_ms);
    anyhow::ensure!(
        min_session_timeout_ms <= max_session_timeout_ms,
        "--min-session-timeout-ms ({min_session_timeout_ms}) exceeds --max-session-timeout-ms ({max_session_timeout_ms})"
    );
    let (database, wal, report) = storage::recover(&args.data_dir)
        .with_context(|| format!("recovering {}", args.data_dir.display()))?;
    info!(
        "recovered {} at zxid {:#x}: snapshot {:?}, {} transactions replayed, {} torn bytes cut, {} sessions",
        args.data_dir.display(),
        database.zxid,
        report.snapshot_zxid,
        report.transactions_replayed,
        report.torn_bytes_cut,
        database.sessions.len()
    );
    let actor = actor::Actor::new(
        actor::ActorConfig {
            data_dir: args.data_dir.clone(),
            min_session_timeout_ms: min_session_timeout_ms.min(i32::MAX as u32) as i32,
            max_session_timeout_ms: max_session_timeout_ms.min(i32::MAX as u32) as i32,
            snapshot_count: args.snapshot_count,
        },
        database,
        wal,
    );
    let limits = server::ServerLimits {
        tick: Duration::from_millis(u64::from(args.tick_time_ms)),
        max_frame_bytes: args.max_frame_bytes,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let address = format!("{}:{}", args.host, args.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address}"))?;
        info!(
            "binding to port {address}; tickTime {} ms, session timeouts {min_session_timeout_ms}..{max_session_timeout_ms} ms",
            args.tick_time_ms
        );
        server::serve(listener, actor, limits, shutdown_signal())
            .await
            .context("the coordinator stopped on a storage error")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
