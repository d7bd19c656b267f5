//! The state every request handler shares: the config, the metadata cache, the hosted
//! replicas, the replica fetchers, the group coordinator and the coordinator session.

use std::sync::Arc;

use super::config::BrokerConfig;
use super::group::GROUP_METADATA_TOPIC;
use super::group::config::GroupCoordinatorConfig;
use super::group::coordinator::GroupCoordinator;
use super::group::host::GroupHost;
use super::log::partition_log::LogConfig;
use super::metadata_cache::MetadataCache;
use super::producer_ids::ProducerIdManager;
use super::replica_fetcher::{FetcherHost, ReplicaFetchers};
use super::replica_manager::ReplicaManager;
use super::zk::KafkaZkClient;

/// One running broker.
pub struct Broker {
    pub config: BrokerConfig,
    pub metadata: MetadataCache,
    pub replicas: ReplicaManager,
    /// The replica fetchers (one per leader broker this broker follows).
    pub fetchers: ReplicaFetchers,
    pub coordinator: KafkaZkClient,
    /// Serialises topic creation and deletion on this broker.
    pub topic_admin: tokio::sync::Mutex<()>,
    /// The consumer groups this broker coordinates.
    pub groups: GroupCoordinator,
    /// Hands out producer ids (InitProducerId).
    pub producer_ids: ProducerIdManager,
}

impl Broker {
    /// A broker with its coordinator session and no replicas yet, keeping its partition logs
    /// in the first of `log.dirs`.
    pub fn new(config: BrokerConfig, coordinator: KafkaZkClient) -> Self {
        let log_config = LogConfig {
            segment_bytes: config.log_segment_bytes,
            index_interval_bytes: config.log_index_interval_bytes,
            flush_interval_messages: config.log_flush_interval_messages,
            message_max_bytes: config.message_max_bytes,
        };
        Broker {
            replicas: ReplicaManager::new(
                config.broker_id,
                config.log_dir().to_path_buf(),
                log_config,
            ),
            fetchers: ReplicaFetchers::default(),
            metadata: MetadataCache::default(),
            coordinator,
            topic_admin: tokio::sync::Mutex::new(()),
            groups: GroupCoordinator::default(),
            producer_ids: ProducerIdManager::new(config.broker_id),
            config,
        }
    }

    pub fn id(&self) -> i32 {
        self.config.broker_id
    }

    /// `min.insync.replicas` for `topic`: its override, else the broker's.
    pub fn min_insync_replicas(&self, topic: &str) -> i32 {
        #[cfg(feature = "planted-bugs")] // planted bug: min-insync-override-ignored
        if crate::planted::is_active(crate::planted::PlantedBug::MinInsyncOverrideIgnored) {
            return self.config.min_insync_replicas;
        }
        self.metadata
            .topic_config(topic, "min.insync.replicas")
            .and_then(|value| value.parse().ok())
            .unwrap_or(self.config.min_insync_replicas)
    }
}

/// The shared handle.
pub type SharedBroker = Arc<Broker>;

impl FetcherHost for Broker {
    fn broker_id(&self) -> i32 {
        self.id()
    }

    fn leader_address(&self, leader: i32) -> Option<String> {
        self.metadata
            .brokers()
            .into_iter()
            .find(|endpoint| endpoint.broker_id == leader)
            .map(|endpoint| format!("{}:{}", endpoint.host, endpoint.port))
    }

    fn fetch_wait_max_ms(&self) -> u64 {
        self.config.replica_fetch_wait_max_ms
    }

    fn fetch_max_bytes(&self) -> usize {
        self.config.replica_fetch_max_bytes
    }

    fn session_timeout_ms(&self) -> u64 {
        self.config.zookeeper_session_timeout_ms
    }
}

impl Broker {
    /// This broker as its group coordinator sees it.
    pub fn group_host(self: &Arc<Self>) -> Arc<dyn GroupHost> {
        Arc::clone(self) as Arc<dyn GroupHost>
    }
}

impl GroupHost for Broker {
    fn broker_id(&self) -> i32 {
        self.id()
    }

    fn group_config(&self) -> GroupCoordinatorConfig {
        self.config.group_coordinator
    }

    fn message_max_bytes(&self) -> usize {
        self.config.message_max_bytes
    }

    fn min_insync_replicas(&self, topic: &str) -> i32 {
        Broker::min_insync_replicas(self, topic)
    }

    /// The topic's partition count, once it exists (as Kafka reads it at start-up), else
    /// `offsets.topic.num.partitions`.
    fn offsets_topic_partition_count(&self) -> i32 {
        self.metadata
            .topic(GROUP_METADATA_TOPIC)
            .map(|record| record.partitions.len() as i32)
            .filter(|count| *count > 0)
            .unwrap_or(self.config.group_coordinator.offsets_topic_num_partitions)
    }
}
