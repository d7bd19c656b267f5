//! Topics in the coordinator: names, replica assignments, partition states (with the leader's
//! compare-and-set ISR change), config overrides, creation and deletion.

use std::collections::BTreeMap;

use zookeeper_client as zk;

use super::{
    KafkaZkClient, PartitionStateJson, TOPIC_CONFIGS_PATH, TOPICS_PATH, TopicAssignment,
    TopicConfigJson, TopicRecord, ZkClientError, from_json, partition_state_path, request_error,
    to_json, topic_config_path, topic_path,
};
use crate::broker::partition::LeaderAndIsr;

impl KafkaZkClient {
    /// Names of all topics.
    pub async fn topic_names(&self) -> Result<Vec<String>, ZkClientError> {
        match self.client()?.list_children(TOPICS_PATH).await {
            Ok(children) => Ok(children),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(source) => Err(request_error(TOPICS_PATH)(source)),
        }
    }

    /// One topic's assignment, partition states and config; `None` if it does not exist.
    pub async fn topic(&self, name: &str) -> Result<Option<TopicRecord>, ZkClientError> {
        let path = topic_path(name);
        let assignment: TopicAssignment = match self.client()?.get_data(&path).await {
            Ok((data, _)) => from_json(&path, &data)?,
            Err(zk::Error::NoNode) => return Ok(None),
            Err(source) => return Err(request_error(&path)(source)),
        };
        let mut partitions = BTreeMap::new();
        for (partition, replicas) in assignment.partitions {
            let Ok(partition) = partition.parse::<i32>() else {
                return Err(ZkClientError::BadData {
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
                    elr: state.elr,
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
    ) -> Result<BTreeMap<String, String>, ZkClientError> {
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
    ) -> Result<(), ZkClientError> {
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
    pub async fn create_topic(&self, topic: &TopicRecord) -> Result<i32, ZkClientError> {
        self.ensure_path(TOPICS_PATH).await?;
        self.ensure_path(TOPIC_CONFIGS_PATH).await?;
        let path = topic_path(&topic.name);
        if self.exists(&path).await? {
            return Err(ZkClientError::TopicExists(topic.name.clone()));
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
                return Err(ZkClientError::TopicExists(topic.name.clone()));
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
                elr: state.elr.clone(),
            };
            if let Some(parent) = state_path.strip_suffix("/state") {
                self.ensure_path(parent).await?;
            }
            self.create_or_set(&state_path, &to_json(&json)).await?;
        }
        Ok(controller_epoch)
    }

    /// Deletes a topic's znodes (assignment, partition states, config).
    pub async fn delete_topic(&self, name: &str) -> Result<(), ZkClientError> {
        self.delete_recursive(&topic_path(name)).await?;
        self.delete_recursive(&topic_config_path(name)).await
    }

    /// A partition's state and its znode version; `None` if it does not exist.
    pub async fn partition_state(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<(PartitionStateJson, i32)>, ZkClientError> {
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
    ) -> Result<Option<BTreeMap<i32, Vec<i32>>>, ZkClientError> {
        let path = topic_path(topic);
        let assignment: TopicAssignment = match self.client()?.get_data(&path).await {
            Ok((data, _)) => from_json(&path, &data)?,
            Err(zk::Error::NoNode) => return Ok(None),
            Err(source) => return Err(request_error(&path)(source)),
        };
        let mut partitions = BTreeMap::new();
        for (partition, replicas) in assignment.partitions {
            let Ok(index) = partition.parse::<i32>() else {
                return Err(ZkClientError::BadData {
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
    ) -> Result<i32, ZkClientError> {
        let path = partition_state_path(topic, partition);
        match self
            .client()?
            .set_data(&path, &to_json(state), Some(expected_version))
            .await
        {
            Ok(stat) => Ok(stat.version),
            Err(zk::Error::BadVersion) => Err(ZkClientError::BadVersion {
                path,
                expected_version,
            }),
            Err(source) => Err(request_error(&path)(source)),
        }
    }
}
