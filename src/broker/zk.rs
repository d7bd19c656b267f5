//! The coordinator as the broker sees it: Kafka's ZooKeeper paths and JSON, the session
//! (connect with a bounded deadline, its negotiated timeout, which session owns an ephemeral
//! node, replace it after expiry, close cleanly), broker registration (`/brokers/ids/<id>`,
//! ephemeral, and which session registered last) and topic metadata (`/brokers/topics/<t>`,
//! `.../partitions/<p>/state`, `/config/topics/<t>`).
//!
//! Session semantics (the `zookeeper-client` crate): a lost connection is reconnected to the
//! *same* session (state `Disconnected`, then `SyncConnected`; requests in flight fail with a
//! connection error, later ones wait for the reconnection) and ephemeral nodes survive it.
//! Only expiry (or a close) ends the session and its ephemerals; then [`Coordinator::reconnect`]
//! opens a new one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zookeeper_client as zk;

use super::partition::LeaderAndIsr;

pub const BROKER_IDS_PATH: &str = "/brokers/ids";
pub const TOPICS_PATH: &str = "/brokers/topics";
pub const TOPIC_CONFIGS_PATH: &str = "/config/topics";
pub const CONTROLLER_PATH: &str = "/controller";
pub const CONTROLLER_EPOCH_PATH: &str = "/controller_epoch";
/// The latest block of producer ids reserved by a broker (JSON: producer_state::producer_ids).
pub const PRODUCER_ID_BLOCK_PATH: &str = "/latest_producer_id_block";

pub fn broker_path(broker_id: i32) -> String {
    format!("{BROKER_IDS_PATH}/{broker_id}")
}

pub fn topic_path(topic: &str) -> String {
    format!("{TOPICS_PATH}/{topic}")
}

pub fn partition_state_path(topic: &str, partition: i32) -> String {
    format!("{TOPICS_PATH}/{topic}/partitions/{partition}/state")
}

pub fn topic_config_path(topic: &str) -> String {
    format!("{TOPIC_CONFIGS_PATH}/{topic}")
}

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
pub enum CoordinatorError {
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

fn request_error(path: &str) -> impl FnOnce(zk::Error) -> CoordinatorError + '_ {
    move |source| CoordinatorError::Request {
        path: path.to_string(),
        source,
    }
}

/// `/brokers/ids/<id>`, Kafka's JSON (version 5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub listener_security_protocol_map: BTreeMap<String, String>,
    pub endpoints: Vec<String>,
    pub jmx_port: i32,
    pub features: BTreeMap<String, serde_json::Value>,
    pub host: String,
    pub timestamp: String,
    pub port: i32,
    pub version: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

impl BrokerRegistration {
    /// The registration of a PLAINTEXT endpoint at `host:port`.
    pub fn new(host: &str, port: u16, rack: Option<String>) -> Self {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        BrokerRegistration {
            listener_security_protocol_map: [("PLAINTEXT".to_string(), "PLAINTEXT".to_string())]
                .into_iter()
                .collect(),
            endpoints: vec![format!("PLAINTEXT://{host}:{port}")],
            jmx_port: -1,
            features: BTreeMap::new(),
            host: host.to_string(),
            timestamp: timestamp.to_string(),
            port: i32::from(port),
            version: 5,
            rack,
        }
    }
}

/// `/brokers/topics/<t>`: the replica assignment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicAssignment {
    #[serde(default = "one")]
    pub version: i32,
    pub partitions: BTreeMap<String, Vec<i32>>,
}

fn one() -> i32 {
    1
}

/// `/brokers/topics/<t>/partitions/<p>/state`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionStateJson {
    pub controller_epoch: i32,
    pub leader: i32,
    #[serde(default = "one")]
    pub version: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

/// `/controller`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ControllerJson {
    pub version: i32,
    pub brokerid: i32,
    pub timestamp: String,
}

/// `/config/topics/<t>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TopicConfigJson {
    #[serde(default = "one")]
    pub version: i32,
    pub config: BTreeMap<String, String>,
}

/// Everything the coordinator holds about one topic.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    pub name: String,
    pub partitions: BTreeMap<i32, LeaderAndIsr>,
    pub config: BTreeMap<String, String>,
}

/// A coordinator session that can be replaced after it expires.
pub struct Coordinator {
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
) -> Result<zk::Client, CoordinatorError> {
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
    Err(CoordinatorError::Unreachable {
        connect: connect.to_string(),
        waited_ms: start.elapsed().as_millis(),
        last_error,
    })
}

impl Coordinator {
    /// Connects to `connect` (`host:port[,host:port...]`), retrying until `deadline` passes.
    pub async fn connect(
        connect: &str,
        session_timeout: Duration,
        deadline: Duration,
    ) -> Result<Self, CoordinatorError> {
        let client = connect_client(connect, session_timeout, deadline).await?;
        Ok(Coordinator {
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
    /// session ([`Coordinator::reconnect`]) can talk to the coordinator again.
    pub fn session_ended(&self) -> bool {
        self.client()
            .is_ok_and(|client| client.state().is_terminated())
            || self.is_closed()
    }

    /// Whether [`Coordinator::close`] was called (the broker is stopping).
    pub fn is_closed(&self) -> bool {
        self.client
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none()
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
    /// Refused once [`Coordinator::close`] was called.
    pub async fn reconnect(&self, deadline: Duration) -> Result<(), CoordinatorError> {
        let client = connect_client(&self.connect, self.session_timeout, deadline).await?;
        let mut current = self
            .client
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.is_none() {
            // Closing: dropping the new client closes its session.
            return Err(CoordinatorError::Closed);
        }
        *current = Some(client);
        Ok(())
    }

    fn client(&self) -> Result<zk::Client, CoordinatorError> {
        self.client
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(CoordinatorError::Closed)
    }

    /// The session's state changes (expiry, disconnection); `None` once closed.
    pub fn state_watcher(&self) -> Option<zk::StateWatcher> {
        self.client().ok().map(|client| client.state_watcher())
    }

    /// Closes the session (the broker's ephemeral node goes at once) and waits, at most
    /// `timeout`, for the close to be acknowledged.
    pub async fn close(&self, timeout: Duration) {
        let client = self
            .client
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
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

    async fn ensure_path(&self, path: &str) -> Result<(), CoordinatorError> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match self.client()?.mkdir(path, &options).await {
            Ok(()) | Err(zk::Error::NodeExists) => Ok(()),
            Err(source) => Err(request_error(path)(source)),
        }
    }

    /// Creates the ephemeral `/brokers/ids/<id>`. Already there and owned by this session
    /// (a create whose answer a lost connection swallowed) counts as registered.
    pub async fn register_broker(
        &self,
        broker_id: i32,
        registration: &BrokerRegistration,
    ) -> Result<(), CoordinatorError> {
        self.ensure_path(BROKER_IDS_PATH).await?;
        let path = broker_path(broker_id);
        let data = to_json(registration);
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        let client = self.client()?;
        let session = client.session_id().0;
        match client.create(&path, &data, &options).await {
            Ok(_) => {}
            Err(zk::Error::NodeExists) => {
                if self.ephemeral_owner(&path).await? != Some(session) {
                    return Err(CoordinatorError::BrokerIdTaken(broker_id));
                }
            }
            Err(source) => return Err(request_error(&path)(source)),
        }
        self.registered_session.send_replace(session);
        Ok(())
    }

    /// The session owning the ephemeral node at `path`; `None` if there is no such node (or
    /// it is persistent).
    pub async fn ephemeral_owner(&self, path: &str) -> Result<Option<i64>, CoordinatorError> {
        match self.client()?.check_stat(path).await {
            Ok(Some(stat)) if stat.ephemeral_owner != 0 => Ok(Some(stat.ephemeral_owner)),
            Ok(_) => Ok(None),
            Err(source) => Err(request_error(path)(source)),
        }
    }

    /// Removes `/brokers/ids/<id>` (controlled shutdown: the controller moves leadership).
    pub async fn deregister_broker(&self, broker_id: i32) -> Result<(), CoordinatorError> {
        let path = broker_path(broker_id);
        match self.client()?.delete(&path, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(source) => Err(request_error(&path)(source)),
        }
    }

    /// The registered (live) brokers.
    pub async fn live_brokers(
        &self,
    ) -> Result<BTreeMap<i32, BrokerRegistration>, CoordinatorError> {
        let children = match self.client()?.list_children(BROKER_IDS_PATH).await {
            Ok(children) => children,
            Err(zk::Error::NoNode) => return Ok(BTreeMap::new()),
            Err(source) => return Err(request_error(BROKER_IDS_PATH)(source)),
        };
        let mut brokers = BTreeMap::new();
        for child in children {
            let Ok(broker_id) = child.parse::<i32>() else {
                continue;
            };
            let path = broker_path(broker_id);
            match self.client()?.get_data(&path).await {
                Ok((data, _)) => {
                    brokers.insert(broker_id, from_json(&path, &data)?);
                }
                Err(zk::Error::NoNode) => continue,
                Err(source) => return Err(request_error(&path)(source)),
            }
        }
        Ok(brokers)
    }

    /// Names of all topics.
    pub async fn topic_names(&self) -> Result<Vec<String>, CoordinatorError> {
        match self.client()?.list_children(TOPICS_PATH).await {
            Ok(children) => Ok(children),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(source) => Err(request_error(TOPICS_PATH)(source)),
        }
    }

    /// One topic's assignment, partition states and config; `None` if it does not exist.
    pub async fn topic(&self, name: &str) -> Result<Option<TopicRecord>, CoordinatorError> {
        let path = topic_path(name);
        let assignment: TopicAssignment = match self.client()?.get_data(&path).await {
            Ok((data, _)) => from_json(&path, &data)?,
            Err(zk::Error::NoNode) => return Ok(None),
            Err(source) => return Err(request_error(&path)(source)),
        };
        let mut partitions = BTreeMap::new();
        for (partition, replicas) in assignment.partitions {
            let Ok(partition) = partition.parse::<i32>() else {
                return Err(CoordinatorError::BadData {
                    path,
                    reason: format!("partition id `{partition}` is not a number"),
                });
            };
            let state = match self.partition_state(name, partition).await? {
                Some((state, zk_version)) => LeaderAndIsr {
                    leader: state.leader,
                    leader_epoch: state.leader_epoch,
                    replicas,
                    isr: state.isr,
                    controller_epoch: state.controller_epoch,
                    zk_version,
                },
                // Assigned but not yet elected.
                None => LeaderAndIsr::unelected(replicas),
            };
            partitions.insert(partition, state);
        }
        let config_path = topic_config_path(name);
        let config = match self.client()?.get_data(&config_path).await {
            Ok((data, _)) => from_json::<TopicConfigJson>(&config_path, &data)?.config,
            Err(zk::Error::NoNode) => BTreeMap::new(),
            Err(source) => return Err(request_error(&config_path)(source)),
        };
        Ok(Some(TopicRecord {
            name: name.to_string(),
            partitions,
            config,
        }))
    }

    /// A topic's config overrides (`/config/topics/<t>`; empty when there is none).
    pub async fn topic_config(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, String>, CoordinatorError> {
        let path = topic_config_path(name);
        match self.client()?.get_data(&path).await {
            Ok((data, _)) => Ok(from_json::<TopicConfigJson>(&path, &data)?.config),
            Err(zk::Error::NoNode) => Ok(BTreeMap::new()),
            Err(source) => Err(request_error(&path)(source)),
        }
    }

    /// Replaces a topic's config overrides; every broker's watch on `/config/topics` sees it.
    pub async fn set_topic_config(
        &self,
        name: &str,
        config: &BTreeMap<String, String>,
    ) -> Result<(), CoordinatorError> {
        self.ensure_path(TOPIC_CONFIGS_PATH).await?;
        let json = TopicConfigJson {
            version: 1,
            config: config.clone(),
        };
        self.create_or_set(&topic_config_path(name), &to_json(&json))
            .await
    }

    /// Creates a topic: its config, its assignment, and each partition's initial state.
    /// Returns the controller epoch written into the states.
    pub async fn create_topic(&self, topic: &TopicRecord) -> Result<i32, CoordinatorError> {
        self.ensure_path(TOPICS_PATH).await?;
        self.ensure_path(TOPIC_CONFIGS_PATH).await?;
        let path = topic_path(&topic.name);
        if self.exists(&path).await? {
            return Err(CoordinatorError::TopicExists(topic.name.clone()));
        }
        let config = TopicConfigJson {
            version: 1,
            config: topic.config.clone(),
        };
        self.create_or_set(&topic_config_path(&topic.name), &to_json(&config))
            .await?;
        let assignment = TopicAssignment {
            version: 1,
            partitions: topic
                .partitions
                .iter()
                .map(|(partition, state)| (partition.to_string(), state.replicas.clone()))
                .collect(),
        };
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match self
            .client()?
            .create(&path, &to_json(&assignment), &options)
            .await
        {
            Ok(_) => {}
            Err(zk::Error::NodeExists) => {
                return Err(CoordinatorError::TopicExists(topic.name.clone()));
            }
            Err(source) => return Err(request_error(&path)(source)),
        }
        let controller_epoch = self.controller_epoch().await?.map_or(0, |(epoch, _)| epoch);
        for (partition, state) in &topic.partitions {
            let state_path = partition_state_path(&topic.name, *partition);
            let json = PartitionStateJson {
                controller_epoch,
                leader: state.leader,
                version: 1,
                leader_epoch: state.leader_epoch,
                isr: state.isr.clone(),
            };
            if let Some(parent) = state_path.strip_suffix("/state") {
                self.ensure_path(parent).await?;
            }
            self.create_or_set(&state_path, &to_json(&json)).await?;
        }
        Ok(controller_epoch)
    }

    /// Deletes a topic's znodes (assignment, partition states, config).
    pub async fn delete_topic(&self, name: &str) -> Result<(), CoordinatorError> {
        self.delete_recursive(&topic_path(name)).await?;
        self.delete_recursive(&topic_config_path(name)).await
    }

    async fn delete_recursive(&self, path: &str) -> Result<(), CoordinatorError> {
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

    /// A partition's state and its znode version; `None` if it does not exist.
    pub async fn partition_state(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<(PartitionStateJson, i32)>, CoordinatorError> {
        let path = partition_state_path(topic, partition);
        match self.client()?.get_data(&path).await {
            Ok((data, stat)) => Ok(Some((from_json(&path, &data)?, stat.version))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(source) => Err(request_error(&path)(source)),
        }
    }

    /// A topic's replica assignment (partition -> replicas); `None` if it does not exist.
    pub async fn topic_assignment(
        &self,
        topic: &str,
    ) -> Result<Option<BTreeMap<i32, Vec<i32>>>, CoordinatorError> {
        let path = topic_path(topic);
        let assignment: TopicAssignment = match self.client()?.get_data(&path).await {
            Ok((data, _)) => from_json(&path, &data)?,
            Err(zk::Error::NoNode) => return Ok(None),
            Err(source) => return Err(request_error(&path)(source)),
        };
        let mut partitions = BTreeMap::new();
        for (partition, replicas) in assignment.partitions {
            let Ok(index) = partition.parse::<i32>() else {
                return Err(CoordinatorError::BadData {
                    path,
                    reason: format!("partition id `{partition}` is not a number"),
                });
            };
            partitions.insert(index, replicas);
        }
        Ok(Some(partitions))
    }

    /// A leader's ISR change: sets the partition state if its znode is still at
    /// `expected_version`. Returns the new version.
    pub async fn update_partition_state(
        &self,
        topic: &str,
        partition: i32,
        state: &PartitionStateJson,
        expected_version: i32,
    ) -> Result<i32, CoordinatorError> {
        let path = partition_state_path(topic, partition);
        match self
            .client()?
            .set_data(&path, &to_json(state), Some(expected_version))
            .await
        {
            Ok(stat) => Ok(stat.version),
            Err(zk::Error::BadVersion) => Err(CoordinatorError::BadVersion {
                path,
                expected_version,
            }),
            Err(source) => Err(request_error(&path)(source)),
        }
    }

    /// The controller's write of a partition state: one multi-op that checks
    /// `/controller_epoch` is still at `controller_epoch_version` (fencing a stale controller)
    /// and sets the state if its znode is at `expected_version`. Returns the new version.
    pub async fn controller_write_partition_state(
        &self,
        topic: &str,
        partition: i32,
        state: &PartitionStateJson,
        expected_version: i32,
        controller_epoch_version: i32,
    ) -> Result<i32, CoordinatorError> {
        let path = partition_state_path(topic, partition);
        let client = self.client()?;
        let mut writer = client.new_multi_writer();
        writer
            .add_check_version(CONTROLLER_EPOCH_PATH, controller_epoch_version)
            .map_err(request_error(CONTROLLER_EPOCH_PATH))?;
        writer
            .add_set_data(&path, &to_json(state), Some(expected_version))
            .map_err(request_error(&path))?;
        match writer.commit().await {
            Ok(results) => match results.get(1) {
                Some(zk::MultiWriteResult::SetData { stat }) => Ok(stat.version),
                _ => Ok(expected_version + 1),
            },
            Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => {
                Err(CoordinatorError::ControllerMoved)
            }
            Err(zk::MultiWriteError::OperationFailed { .. }) => Err(CoordinatorError::BadVersion {
                path,
                expected_version,
            }),
            Err(zk::MultiWriteError::RequestFailed { source }) => Err(request_error(&path)(source)),
        }
    }

    /// `/controller_epoch`: (epoch, znode version); `None` before the first controller.
    pub async fn controller_epoch(&self) -> Result<Option<(i32, i32)>, CoordinatorError> {
        match self.client()?.get_data(CONTROLLER_EPOCH_PATH).await {
            Ok((data, stat)) => {
                let text = String::from_utf8_lossy(&data);
                let epoch = text.trim().parse().map_err(|_| CoordinatorError::BadData {
                    path: CONTROLLER_EPOCH_PATH.to_string(),
                    reason: format!("`{text}` is not a number"),
                })?;
                Ok(Some((epoch, stat.version)))
            }
            Err(zk::Error::NoNode) => Ok(None),
            Err(source) => Err(request_error(CONTROLLER_EPOCH_PATH)(source)),
        }
    }

    /// Increments `/controller_epoch` by compare-and-set (creating it at 1). Returns the new
    /// (epoch, znode version).
    pub async fn increment_controller_epoch(&self) -> Result<(i32, i32), CoordinatorError> {
        for _ in 0..100 {
            match self.controller_epoch().await? {
                None => {
                    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                    match self
                        .client()?
                        .create(CONTROLLER_EPOCH_PATH, b"1", &options)
                        .await
                    {
                        Ok((stat, _)) => return Ok((1, stat.version)),
                        Err(zk::Error::NodeExists) => continue,
                        Err(source) => return Err(request_error(CONTROLLER_EPOCH_PATH)(source)),
                    }
                }
                Some((epoch, version)) => {
                    let next = epoch + 1;
                    match self
                        .client()?
                        .set_data(
                            CONTROLLER_EPOCH_PATH,
                            next.to_string().as_bytes(),
                            Some(version),
                        )
                        .await
                    {
                        Ok(stat) => return Ok((next, stat.version)),
                        Err(zk::Error::BadVersion) => continue,
                        Err(source) => return Err(request_error(CONTROLLER_EPOCH_PATH)(source)),
                    }
                }
            }
        }
        Err(CoordinatorError::BadVersion {
            path: CONTROLLER_EPOCH_PATH.to_string(),
            expected_version: -1,
        })
    }

    /// Tries to become the controller: creates the ephemeral `/controller`. `true` when it is
    /// this session's (created now, or earlier in this session), `false` if another session
    /// holds it.
    pub async fn try_create_controller(&self, broker_id: i32) -> Result<bool, CoordinatorError> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        let json = ControllerJson {
            version: 1,
            brokerid: broker_id,
            timestamp: timestamp.to_string(),
        };
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        let client = self.client()?;
        match client
            .create(CONTROLLER_PATH, &to_json(&json), &options)
            .await
        {
            Ok(_) => Ok(true),
            Err(zk::Error::NodeExists) => Ok(self.controller_is_ours().await?),
            Err(source) => Err(request_error(CONTROLLER_PATH)(source)),
        }
    }

    /// Whether `/controller` is this session's ephemeral node.
    pub async fn controller_is_ours(&self) -> Result<bool, CoordinatorError> {
        let session = self.session_id();
        Ok(session != 0 && self.ephemeral_owner(CONTROLLER_PATH).await? == Some(session))
    }

    /// The current controller's broker id, if there is one.
    pub async fn controller_id(&self) -> Result<Option<i32>, CoordinatorError> {
        match self.client()?.get_data(CONTROLLER_PATH).await {
            Ok((data, _)) => Ok(Some(
                from_json::<ControllerJson>(CONTROLLER_PATH, &data)?.brokerid,
            )),
            Err(zk::Error::NoNode) => Ok(None),
            Err(source) => Err(request_error(CONTROLLER_PATH)(source)),
        }
    }

    /// A persistent watch (recursive: on the path and everything below it).
    pub async fn watch(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<zk::PersistentWatcher, CoordinatorError> {
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

    /// The ids of the registered (live) brokers.
    pub async fn live_broker_ids(&self) -> Result<Vec<i32>, CoordinatorError> {
        match self.client()?.list_children(BROKER_IDS_PATH).await {
            Ok(children) => Ok(children.iter().filter_map(|c| c.parse().ok()).collect()),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(source) => Err(request_error(BROKER_IDS_PATH)(source)),
        }
    }

    /// `/latest_producer_id_block`'s data and znode version, creating it empty (as Kafka's
    /// brokers do at start) when missing.
    pub async fn producer_id_block(&self) -> Result<(Vec<u8>, i32), CoordinatorError> {
        let path = PRODUCER_ID_BLOCK_PATH;
        let client = self.client()?;
        match client.get_data(path).await {
            Ok((data, stat)) => return Ok((data, stat.version)),
            Err(zk::Error::NoNode) => {}
            Err(source) => return Err(request_error(path)(source)),
        }
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match client.create(path, &[], &options).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(source) => return Err(request_error(path)(source)),
        }
        let (data, stat) = client.get_data(path).await.map_err(request_error(path))?;
        Ok((data, stat.version))
    }

    /// Writes `/latest_producer_id_block` if it is still at `expected_version`; returns the new
    /// version, or [`CoordinatorError::BadVersion`] when another broker wrote it first.
    pub async fn set_producer_id_block(
        &self,
        data: &[u8],
        expected_version: i32,
    ) -> Result<i32, CoordinatorError> {
        let path = PRODUCER_ID_BLOCK_PATH;
        match self
            .client()?
            .set_data(path, data, Some(expected_version))
            .await
        {
            Ok(stat) => Ok(stat.version),
            Err(zk::Error::BadVersion) => Err(CoordinatorError::BadVersion {
                path: path.to_string(),
                expected_version,
            }),
            Err(source) => Err(request_error(path)(source)),
        }
    }

    async fn exists(&self, path: &str) -> Result<bool, CoordinatorError> {
        self.client()?
            .check_stat(path)
            .await
            .map(|stat| stat.is_some())
            .map_err(request_error(path))
    }

    async fn create_or_set(&self, path: &str, data: &[u8]) -> Result<(), CoordinatorError> {
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
        coordinator: &Coordinator,
        paths: &[(&str, bool)],
    ) -> Result<Self, CoordinatorError> {
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
    pub async fn changed(&mut self) -> Result<zk::WatchedEvent, CoordinatorError> {
        let pending = self
            .watchers
            .iter_mut()
            .map(|watcher| Box::pin(watcher.changed()));
        let (event, _, _) = futures::future::select_all(pending).await;
        if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
            return Err(CoordinatorError::Closed);
        }
        Ok(event)
    }

    /// Adds the watches again after a reconnection. On an error the old watchers stay (the
    /// next reconnection renews them).
    pub async fn renew(&mut self, coordinator: &Coordinator) -> Result<(), CoordinatorError> {
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

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs (strings, numbers, maps with string keys) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn from_json<T: for<'de> Deserialize<'de>>(path: &str, data: &[u8]) -> Result<T, CoordinatorError> {
    serde_json::from_slice(data).map_err(|error| CoordinatorError::BadData {
        path: path.to_string(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_registration_is_kafkas_json() {
        let registration = BrokerRegistration::new("127.0.0.1", 9092, Some("r1".into()));
        let json: serde_json::Value =
            serde_json::from_slice(&to_json(&registration)).expect("json");
        assert_eq!(json["endpoints"][0], "PLAINTEXT://127.0.0.1:9092");
        assert_eq!(
            json["listener_security_protocol_map"]["PLAINTEXT"],
            "PLAINTEXT"
        );
        assert_eq!(json["port"], 9092);
        assert_eq!(json["version"], 5);
        assert_eq!(json["jmx_port"], -1);
        assert_eq!(json["rack"], "r1");
        assert!(json["timestamp"].is_string());
        let without_rack = to_json(&BrokerRegistration::new("h", 1, None));
        assert!(!String::from_utf8_lossy(&without_rack).contains("rack"));
    }

    #[test]
    fn an_ephemeral_node_lives_up_to_the_negotiated_timeout_plus_a_tick() {
        let ms = Duration::from_millis;
        // tickTime 2000 (ZooKeeper's default): 2000 requested is raised to 4000 = 2 ticks.
        assert_eq!(
            ephemeral_lifetime(ms(2000), ms(4000)),
            ms(4000 + 2000 + 1000)
        );
        // Granted as asked: the tick is at most half of it.
        assert_eq!(
            ephemeral_lifetime(ms(18000), ms(18000)),
            ms(18000 + 9000 + 1000)
        );
        // Lowered to the maximum, 20 ticks.
        assert_eq!(
            ephemeral_lifetime(ms(60000), ms(40000)),
            ms(40000 + 2000 + 1000)
        );
    }

    #[test]
    fn partition_state_reads_kafkas_json() {
        let state: PartitionStateJson = from_json(
            "/x",
            br#"{"controller_epoch":7,"leader":3,"version":1,"leader_epoch":8,"isr":[3,2,1]}"#,
        )
        .expect("parse");
        assert_eq!(state.leader, 3);
        assert_eq!(state.isr, vec![3, 2, 1]);
        let assignment: TopicAssignment =
            from_json("/y", br#"{"partitions":{"0":[3,2,1]}}"#).expect("parse");
        assert_eq!(assignment.partitions["0"], vec![3, 2, 1]);
        assert!(from_json::<TopicAssignment>("/z", b"not json").is_err());
    }
}
