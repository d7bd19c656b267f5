//! The coordinator as the broker sees it: Kafka's ZooKeeper paths and JSON, the session
//! (connect with a bounded deadline, its negotiated timeout, which session owns an ephemeral
//! node, replace it after expiry, close cleanly), broker registration (`/brokers/ids/<id>`,
//! ephemeral, and which session registered last) and topic metadata (`/brokers/topics/<t>`,
//! `.../partitions/<p>/state`, `/config/topics/<t>`).
//!
//! Session semantics (the `zookeeper-client` crate): a lost connection is reconnected to the
//! *same* session (state `Disconnected`, then `SyncConnected`; requests in flight fail with a
//! connection error, later ones wait for the reconnection) and ephemeral nodes survive it.
//! Only expiry (or a close) ends the session and its ephemerals; then [`KafkaZkClient::reconnect`]
//! opens a new one.
//!
//! # Layout
//! This file holds the session: connecting, reconnecting after expiry, closing, the
//! persistent watches, and the small operations the others build on. Then:
//! - [`paths`]: Kafka's ZooKeeper paths.
//! - [`schemas`]: Kafka's JSON at those paths, and [`TopicRecord`].
//! - [`registration`]: broker registration and the live brokers.
//! - [`topics`]: assignments, partition states, config overrides, creation and deletion.
//! - [`controller`]: `/controller`, `/controller_epoch`, the controller's fenced writes.
//! - [`producer_ids`]: `/latest_producer_id_block`, the brokers' shared producer-id blocks.

mod controller;
mod paths;
mod producer_ids;
mod registration;
mod schemas;
mod topics;

use std::time::Duration;

use zookeeper_client as zk;

pub use paths::{
    BROKER_IDS_PATH, CONTROLLER_EPOCH_PATH, CONTROLLER_PATH, PRODUCER_ID_BLOCK_PATH,
    TOPIC_CONFIGS_PATH, TOPICS_PATH, UNCLEAN_SHUTDOWNS_PATH, broker_path, partition_state_path,
    topic_config_path, topic_path,
};
pub use schemas::{
    BrokerRegistration, ControllerJson, PartitionStateJson, TopicAssignment, TopicConfigJson,
    TopicRecord,
};
use schemas::{from_json, to_json};

/// How long an ephemeral node can outlive the process that created it: the negotiated session
/// timeout (the coordinator clamps the requested one to 2..20 ticks by default), after which
/// expiry waits for the coordinator's next tick. The tick is not announced, but the clamp
/// bounds it: a timeout raised to the minimum is 2 ticks, one lowered to the maximum 20, any
/// other at least 2. A second of slack covers a coordinator whose ticks run late under load.
pub fn ephemeral_lifetime(requested: Duration, negotiated: Duration) -> Duration {
    let tick = if negotiated < requested {
        negotiated / 20
    } else {
        negotiated / 2
    };
    negotiated + tick + Duration::from_secs(1)
}

/// What can go wrong talking to the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum ZkClientError {
    #[error("cannot reach the coordinator at {connect} within {waited_ms} ms: {last_error}")]
    Unreachable {
        connect: String,
        waited_ms: u128,
        last_error: String,
    },
    #[error(
        "broker id {0} is already registered in the coordinator (another broker is running with it)"
    )]
    BrokerIdTaken(i32),
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("coordinator data at {path} is not valid: {reason}")]
    BadData { path: String, reason: String },
    #[error("{path} changed since it was read (version {expected_version})")]
    BadVersion { path: String, expected_version: i32 },
    #[error("the controller epoch moved on: this broker is no longer the controller")]
    ControllerMoved,
    #[error("the coordinator session is closed")]
    Closed,
    #[error("coordinator request on {path} failed: {source}")]
    Request { path: String, source: zk::Error },
}

fn request_error(path: &str) -> impl FnOnce(zk::Error) -> ZkClientError + '_ {
    move |source| ZkClientError::Request {
        path: path.to_string(),
        source,
    }
}

/// The broker's ZooKeeper-protocol client of the coordinator (Kafka's `KafkaZkClient`): one
/// session at a time, replaced after it expires, and the operations on Kafka's paths.
pub struct KafkaZkClient {
    connect: String,
    session_timeout: Duration,
    client: std::sync::RwLock<Option<zk::Client>>,
    /// The session that last registered `/brokers/ids/<id>` (0: none yet).
    registered_session: tokio::sync::watch::Sender<i64>,
}

/// Connects, retrying until `deadline` passes.
async fn connect_client(
    connect: &str,
    session_timeout: Duration,
    deadline: Duration,
) -> Result<zk::Client, ZkClientError> {
    let start = std::time::Instant::now();
    let mut last_error = String::from("no attempt finished");
    while start.elapsed() < deadline {
        let remaining = deadline.saturating_sub(start.elapsed());
        let attempt = zk::Client::connector()
            .with_session_timeout(session_timeout)
            .with_connection_timeout(remaining.min(Duration::from_secs(2)))
            .with_fail_eagerly()
            .connect(connect);
        match tokio::time::timeout(remaining, attempt).await {
            Ok(Ok(client)) => return Ok(client),
            Ok(Err(error)) => last_error = error.to_string(),
            Err(_) => last_error = "timed out".to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200).min(remaining)).await;
    }
    Err(ZkClientError::Unreachable {
        connect: connect.to_string(),
        waited_ms: start.elapsed().as_millis(),
        last_error,
    })
}

impl KafkaZkClient {
    /// Connects to `connect` (`host:port[,host:port...]`), retrying until `deadline` passes.
    pub async fn connect(
        connect: &str,
        session_timeout: Duration,
        deadline: Duration,
    ) -> Result<Self, ZkClientError> {
        let client = connect_client(connect, session_timeout, deadline).await?;
        Ok(KafkaZkClient {
            connect: connect.to_string(),
            session_timeout,
            client: std::sync::RwLock::new(Some(client)),
            registered_session: tokio::sync::watch::channel(0).0,
        })
    }

    /// The id of the current session (0 once closed).
    pub fn session_id(&self) -> i64 {
        self.client().map_or(0, |client| client.session_id().0)
    }

    /// The session timeout the coordinator granted (it clamps the requested one to its
    /// `[minSessionTimeout, maxSessionTimeout]`, by default 2 to 20 ticks).
    pub fn negotiated_session_timeout(&self) -> Duration {
        self.client()
            .map_or(self.session_timeout, |client| client.session_timeout())
    }

    /// Whether the current session has ended (expired, closed, or refused): only a new
    /// session ([`KafkaZkClient::reconnect`]) can talk to the coordinator again.
    pub fn session_ended(&self) -> bool {
        self.client()
            .is_ok_and(|client| client.state().is_terminated())
            || self.is_closed()
    }

    /// Whether [`KafkaZkClient::close`] was called (the broker is stopping).
    pub fn is_closed(&self) -> bool {
        crate::lock::read(&self.client).is_none()
    }

    /// Waits until the current session has registered this broker (`/brokers/ids/<id>`):
    /// after an expiry the broker takes part in the cluster again only once registered.
    pub async fn wait_registered(&self) {
        let mut registered = self.registered_session.subscribe();
        loop {
            let current = self.session_id();
            if current != 0 && *registered.borrow_and_update() == current {
                return;
            }
            // The sender lives as long as `self`.
            let _ = registered.changed().await;
        }
    }

    /// Opens a new session in place of an expired one (ephemeral nodes must be re-created).
    /// Refused once [`KafkaZkClient::close`] was called.
    pub async fn reconnect(&self, deadline: Duration) -> Result<(), ZkClientError> {
        let client = connect_client(&self.connect, self.session_timeout, deadline).await?;
        let mut current = crate::lock::write(&self.client);
        if current.is_none() {
            // Closing: dropping the new client closes its session.
            return Err(ZkClientError::Closed);
        }
        *current = Some(client);
        Ok(())
    }

    fn client(&self) -> Result<zk::Client, ZkClientError> {
        crate::lock::read(&self.client)
            .clone()
            .ok_or(ZkClientError::Closed)
    }

    /// The session's state changes (expiry, disconnection); `None` once closed.
    pub fn state_watcher(&self) -> Option<zk::StateWatcher> {
        self.client().ok().map(|client| client.state_watcher())
    }

    /// Closes the session (the broker's ephemeral node goes at once) and waits, at most
    /// `timeout`, for the close to be acknowledged.
    pub async fn close(&self, timeout: Duration) {
        let client = crate::lock::write(&self.client).take();
        let Some(client) = client else { return };
        let mut watcher = client.state_watcher();
        drop(client);
        let closed = async {
            loop {
                let state = watcher.changed().await;
                if matches!(state, zk::SessionState::Closed | zk::SessionState::Expired) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, closed).await;
    }

    async fn ensure_path(&self, path: &str) -> Result<(), ZkClientError> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match self.client()?.mkdir(path, &options).await {
            Ok(()) | Err(zk::Error::NodeExists) => Ok(()),
            Err(source) => Err(request_error(path)(source)),
        }
    }

    async fn delete_recursive(&self, path: &str) -> Result<(), ZkClientError> {
        // Depth-first, bounded by the tree's size; iterative to keep the future small.
        let mut stack = vec![(path.to_string(), false)];
        while let Some((node, expanded)) = stack.pop() {
            if expanded {
                match self.client()?.delete(&node, None).await {
                    Ok(()) | Err(zk::Error::NoNode) => continue,
                    Err(source) => return Err(request_error(&node)(source)),
                }
            }
            let children = match self.client()?.list_children(&node).await {
                Ok(children) => children,
                Err(zk::Error::NoNode) => continue,
                Err(source) => return Err(request_error(&node)(source)),
            };
            stack.push((node.clone(), true));
            for child in children {
                stack.push((format!("{node}/{child}"), false));
            }
        }
        Ok(())
    }

    /// A persistent watch (recursive: on the path and everything below it).
    pub async fn watch(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<zk::PersistentWatcher, ZkClientError> {
        let mode = if recursive {
            zk::AddWatchMode::PersistentRecursive
        } else {
            zk::AddWatchMode::Persistent
        };
        self.client()?
            .watch(path, mode)
            .await
            .map_err(request_error(path))
    }

    async fn exists(&self, path: &str) -> Result<bool, ZkClientError> {
        self.client()?
            .check_stat(path)
            .await
            .map(|stat| stat.is_some())
            .map_err(request_error(path))
    }

    async fn create_or_set(&self, path: &str, data: &[u8]) -> Result<(), ZkClientError> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match self.client()?.create(path, data, &options).await {
            Ok(_) => Ok(()),
            Err(zk::Error::NodeExists) => self
                .client()?
                .set_data(path, data, None)
                .await
                .map(|_| ())
                .map_err(request_error(path)),
            Err(source) => Err(request_error(path)(source)),
        }
    }
}

/// Persistent watches that outlive a lost connection. The coordinator drops a connection's
/// watches with it and the client is to restore them when it reconnects to the session, but
/// `zookeeper-client` 0.11.2 restores only the one-shot kinds (its setWatches request never
/// carries the persistent ones). So after every reconnection ([`is_reconnection`]) the caller
/// calls [`PersistentWatches::renew`], which adds them again: a new watcher first, then the
/// old one dropped, so that the coordinator's watch is never removed and none is doubled.
/// Events between the disconnection and the renewal are lost (even restored watches lose
/// them, ZOOKEEPER-4698): the caller re-reads what it watches after a reconnection.
pub struct PersistentWatches {
    /// (path, recursive) of each watcher.
    paths: Vec<(String, bool)>,
    watchers: Vec<zk::PersistentWatcher>,
}

impl PersistentWatches {
    /// Adds a persistent watch on each `(path, recursive)`.
    pub async fn add(
        coordinator: &KafkaZkClient,
        paths: &[(&str, bool)],
    ) -> Result<Self, ZkClientError> {
        let mut watchers = Vec::with_capacity(paths.len());
        for (path, recursive) in paths {
            watchers.push(coordinator.watch(path, *recursive).await?);
        }
        Ok(PersistentWatches {
            paths: paths
                .iter()
                .map(|(path, recursive)| (path.to_string(), *recursive))
                .collect(),
            watchers,
        })
    }

    /// The next event of any of the watches (cancel-safe). Fails once the session has ended
    /// (after which the watchers must not be polled again).
    pub async fn changed(&mut self) -> Result<zk::WatchedEvent, ZkClientError> {
        let pending = self
            .watchers
            .iter_mut()
            .map(|watcher| Box::pin(watcher.changed()));
        let (event, _, _) = futures::future::select_all(pending).await;
        if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
            return Err(ZkClientError::Closed);
        }
        Ok(event)
    }

    /// Adds the watches again after a reconnection. On an error the old watchers stay (the
    /// next reconnection renews them).
    pub async fn renew(&mut self, coordinator: &KafkaZkClient) -> Result<(), ZkClientError> {
        let mut renewed = Vec::with_capacity(self.paths.len());
        for (path, recursive) in &self.paths {
            renewed.push(coordinator.watch(path, *recursive).await?);
        }
        // The old watchers (and the session events still queued in them) go now.
        self.watchers = renewed;
        Ok(())
    }
}

/// Whether a watch event says the client reconnected to its session.
pub fn is_reconnection(event: &zk::WatchedEvent) -> bool {
    event.event_type == zk::EventType::Session
        && event.session_state == zk::SessionState::SyncConnected
}

#[cfg(test)]
mod tests;
