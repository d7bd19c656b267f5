//! The Kafka side of the fuzz target: a real broker in this process — our coordinator serving
//! on a loopback port, a `Broker` with its coordinator session, metadata sync and controller,
//! partition logs in a scratch directory — and each input handed to the same
//! `handlers::dispatch` a connection calls, its deferred answer run on a task of its own.
//!
//! State is bounded: the seed topic is recreated and every other topic deleted every
//! [`TOPIC_RESET_INPUTS`] inputs, or sooner once more than [`PARTITIONS_MAX`] partitions exist.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::kafka_seeds::{SEED_PARTITIONS, SEED_TOPIC};
use crate::broker::config::BrokerConfig;
use crate::broker::context::Broker;
use crate::broker::handlers::{self, Reply};
use crate::broker::zk::{BrokerRegistration, KafkaZkClient};
use crate::broker::{controller, metadata_sync, topic_admin};
use crate::coordinator::{actor, server, storage};

/// Inputs between two topic resets.
pub const TOPIC_RESET_INPUTS: u64 = 20_000;
/// Partitions hosted before a reset comes early.
pub const PARTITIONS_MAX: usize = 200;
/// The fuzz broker's CreateTopics limit (the real one, 10,000, would have it create thousands
/// of files per fuzzed request).
const PARTITIONS_PER_CREATE_REQUEST: u64 = 16;

/// What dispatching one input did.
pub enum Dispatched {
    /// Answered at once (or no answer: acks=0).
    Answered,
    /// The answer comes later: its task (a panic in it is a crash).
    Deferred(JoinHandle<Result<(), String>>),
    /// Refused: the connection would be closed with this reason.
    Refused(String),
    /// The handler panicked.
    Panicked(String),
}

/// The in-process coordinator and broker.
pub struct KafkaTarget {
    broker: Arc<Broker>,
    stop: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
    coordinator_stop: Option<oneshot::Sender<()>>,
    coordinator: JoinHandle<()>,
}

impl KafkaTarget {
    /// Starts the coordinator and the broker with their data in `dir`.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let (port, coordinator_stop, coordinator) = start_coordinator(&dir.join("coordinator"))
            .await
            .context("starting the in-process coordinator")?;
        let config = BrokerConfig::parse(&format!(
            "broker.id=1\nlisteners=PLAINTEXT://127.0.0.1:9\nzookeeper.connect=127.0.0.1:{port}\n\
             log.dirs={}\nzookeeper.session.timeout.ms=30000\nnum.partitions=1\n",
            dir.join("kafka-logs").display()
        ))?;
        let mut config = config.config;
        config.max_partitions_per_create_request = PARTITIONS_PER_CREATE_REQUEST;
        std::fs::create_dir_all(config.log_dir())?;
        let session = KafkaZkClient::connect(
            &config.zookeeper_connect,
            Duration::from_millis(config.zookeeper_session_timeout_ms),
            Duration::from_secs(10),
        )
        .await?;
        let broker = Arc::new(Broker::new(config, session));
        broker
            .coordinator
            .register_broker(1, &BrokerRegistration::new("127.0.0.1", 9, None))
            .await?;
        metadata_sync::refresh_brokers(&broker).await?;
        let (stop, stopped) = watch::channel(false);
        let background = vec![
            tokio::spawn(metadata_sync::run(Arc::clone(&broker), stopped.clone())),
            tokio::spawn(controller::run(Arc::clone(&broker), stopped)),
        ];
        let target = KafkaTarget {
            broker,
            stop,
            background,
            coordinator_stop: Some(coordinator_stop),
            coordinator,
        };
        target.reset_topics().await?;
        Ok(target)
    }

    /// Dispatches one request frame (header and body, no size prefix).
    pub async fn dispatch(&self, frame: &[u8]) -> Dispatched {
        let frame = bytes::Bytes::copy_from_slice(frame);
        let dispatched = AssertUnwindSafe(handlers::dispatch(&self.broker, frame))
            .catch_unwind()
            .await;
        match dispatched {
            Err(payload) => Dispatched::Panicked(panic_message(&*payload)),
            Ok(Err(error)) => Dispatched::Refused(format!("{error:#}")),
            Ok(Ok(Reply::Now(_))) => Dispatched::Answered,
            Ok(Ok(Reply::Later(future))) => Dispatched::Deferred(tokio::spawn(async move {
                AssertUnwindSafe(future)
                    .catch_unwind()
                    .await
                    .map(|_| ())
                    .map_err(|payload| panic_message(&*payload))
            })),
        }
    }

    /// Partitions this broker hosts now.
    pub fn partitions(&self) -> usize {
        self.broker.replicas.all().len()
    }

    /// Deletes every topic and recreates the seed topic (empty).
    pub async fn reset_topics(&self) -> anyhow::Result<()> {
        for name in self.broker.coordinator.topic_names().await? {
            if let Err(error) = topic_admin::delete_topic(&self.broker, &name).await {
                tracing::debug!("fuzz reset: cannot delete {name}: {error}");
            }
        }
        for record in self.broker.metadata.topics() {
            self.broker.metadata.remove_topic(&record.name);
            let _ = self.broker.replicas.delete_topic(&record.name);
        }
        topic_admin::create_topic(
            &self.broker,
            SEED_TOPIC,
            SEED_PARTITIONS,
            1,
            Default::default(),
            false,
        )
        .await
        .context("creating the seed topic")?;
        Ok(())
    }

    /// Stops the broker's tasks, closes its session and stops the coordinator.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.background.drain(..) {
            task.abort();
            let _ = task.await;
        }
        self.broker.fetchers.shutdown();
        self.broker.coordinator.close(Duration::from_secs(2)).await;
        if let Some(stop) = self.coordinator_stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.coordinator).await;
    }
}

/// Serves our coordinator on a free loopback port from a task of this runtime.
async fn start_coordinator(
    data_dir: &Path,
) -> anyhow::Result<(u16, oneshot::Sender<()>, JoinHandle<()>)> {
    let (database, wal, _) = storage::recover(data_dir)?;
    let actor = actor::Actor::new(
        actor::ActorConfig {
            data_dir: data_dir.to_path_buf(),
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 60_000,
            snapshot_count: 100_000,
        },
        database,
        wal,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let limits = server::ServerLimits {
        tick: Duration::from_millis(200),
        max_frame_bytes: crate::coordinator::DEFAULT_MAX_FRAME_BYTES,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(error) = server::serve(listener, actor, limits, shutdown).await {
            tracing::error!("the fuzz target's coordinator stopped: {error}");
        }
    });
    Ok((port, stop, task))
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}
