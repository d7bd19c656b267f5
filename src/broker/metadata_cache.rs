//! What this broker knows of the cluster, to answer Metadata: the live brokers and their
//! advertised endpoints, the controller, and every topic's partitions (leader, epoch,
//! replicas, ISR) and config. Filled from the coordinator; read by every handler.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::partition::LeaderAndIsr;
use super::zk::TopicRecord;

/// A broker as clients should reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub broker_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug)]
struct Snapshot {
    brokers: BTreeMap<i32, BrokerEndpoint>,
    controller_id: i32,
    topics: BTreeMap<String, TopicRecord>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            brokers: BTreeMap::new(),
            controller_id: -1,
            topics: BTreeMap::new(),
        }
    }
}

/// The cluster metadata as this broker sees it.
#[derive(Debug, Default)]
pub struct MetadataCache {
    snapshot: RwLock<Snapshot>,
}

impl MetadataCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        crate::lock::read(&self.snapshot)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        crate::lock::write(&self.snapshot)
    }

    /// Replaces the set of live brokers.
    pub fn set_brokers(&self, brokers: impl IntoIterator<Item = BrokerEndpoint>) {
        self.write().brokers = brokers.into_iter().map(|b| (b.broker_id, b)).collect();
    }

    /// Adds or replaces one live broker.
    pub fn upsert_broker(&self, broker: BrokerEndpoint) {
        self.write().brokers.insert(broker.broker_id, broker);
    }

    /// Live brokers, by id.
    pub fn brokers(&self) -> Vec<BrokerEndpoint> {
        self.read().brokers.values().cloned().collect()
    }

    /// The ids of the registered brokers.
    pub fn live_broker_ids(&self) -> Vec<i32> {
        self.read().brokers.keys().copied().collect()
    }

    /// The controller's broker id (-1: none known).
    pub fn controller_id(&self) -> i32 {
        self.read().controller_id
    }

    pub fn set_controller_id(&self, controller_id: i32) {
        self.write().controller_id = controller_id;
    }

    /// Adds or replaces a topic.
    pub fn upsert_topic(&self, topic: TopicRecord) {
        self.write().topics.insert(topic.name.clone(), topic);
    }

    /// Updates one partition's leadership, if the topic is known.
    pub fn update_partition(&self, topic: &str, partition: i32, state: LeaderAndIsr) {
        if let Some(record) = self.write().topics.get_mut(topic) {
            record.partitions.insert(partition, state);
        }
    }

    /// Forgets a topic.
    pub fn remove_topic(&self, name: &str) -> Option<TopicRecord> {
        self.write().topics.remove(name)
    }

    /// One topic.
    pub fn topic(&self, name: &str) -> Option<TopicRecord> {
        self.read().topics.get(name).cloned()
    }

    /// Whether a topic is known.
    pub fn contains_topic(&self, name: &str) -> bool {
        self.read().topics.contains_key(name)
    }

    /// All topics, by name.
    pub fn topics(&self) -> Vec<TopicRecord> {
        self.read().topics.values().cloned().collect()
    }

    /// A topic config value, if the topic overrides it.
    pub fn topic_config(&self, topic: &str, key: &str) -> Option<String> {
        self.read()
            .topics
            .get(topic)
            .and_then(|record| record.config.get(key).cloned())
    }
}
