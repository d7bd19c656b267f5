//! A consumer group as the cluster sees it, asked as clients ask (`kafka_wire` clients, so any
//! Kafka-protocol broker answers): which broker coordinates it right now (`FindCoordinator`, to
//! each bootstrap address in turn — the nemesis resolves the `group-coordinator` target with it
//! at fault time), and how far it has committed against each partition's high watermark
//! (`ListOffsets` from the leaders, `OffsetFetch` from the coordinator — the run waits on it for
//! the group to catch up).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, GroupId, ListOffsetsRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_wire::{Client, Options};

use crate::cluster::metadata::{self, ClusterMetadata, KAFKA_CLIENT_ID};

/// The newest FindCoordinator version we speak (v4 asks for several keys at once).
const FIND_COORDINATOR_VERSION_MAX: i16 = 4;
/// The newest ListOffsets and OffsetFetch versions we speak.
const LIST_OFFSETS_VERSION_MAX: i16 = 7;
const OFFSET_FETCH_VERSION_MAX: i16 = 8;
/// ListOffsets' timestamp for "the latest offset" (the high watermark).
const LATEST_TIMESTAMP: i64 = -1;

/// Why no coordinator was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no coordinator for group {group}: {reason}")]
pub struct GroupCoordinatorError {
    pub group: String,
    pub reason: String,
}

/// The id of the broker coordinating `group`: the first answer without error from `addresses`,
/// each asked within `timeout`.
pub async fn find_group_coordinator(
    addresses: &[String],
    group: &str,
    timeout: Duration,
) -> Result<i32, GroupCoordinatorError> {
    let mut reasons = Vec::new();
    for address in addresses {
        match tokio::time::timeout(timeout, ask(address, group, timeout)).await {
            Ok(Ok(id)) => return Ok(id),
            Ok(Err(reason)) => reasons.push(format!("{address}: {reason}")),
            Err(_) => reasons.push(format!(
                "{address}: no answer within {} ms",
                timeout.as_millis()
            )),
        }
    }
    Err(GroupCoordinatorError {
        group: group.to_string(),
        reason: reasons.join("; "),
    })
}

/// One broker's answer: the coordinator's id, or why not (Kafka's error name).
async fn ask(address: &str, group: &str, timeout: Duration) -> Result<i32, String> {
    let options = Options::new(KAFKA_CLIENT_ID, timeout);
    let mut client = Client::connect_negotiated(address, &options)
        .await
        .map_err(|error| error.to_string())?;
    let key = StrBytes::from_string(group.to_string());
    let version = client
        .version::<FindCoordinatorRequest>(FIND_COORDINATOR_VERSION_MAX)
        .map_err(|error| error.to_string())?;
    // v4 replaced the one `key` with a list of them.
    let request = if version >= 4 {
        FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
    } else {
        FindCoordinatorRequest::default().with_key(key)
    };
    let response = client
        .call(version, &request)
        .await
        .map_err(|error| error.to_string())?;
    let (error_code, node_id) = if version >= 4 {
        let coordinator = response
            .coordinators
            .first()
            .ok_or_else(|| "an answer without coordinators".to_string())?;
        (coordinator.error_code, coordinator.node_id.0)
    } else {
        (response.error_code, response.node_id.0)
    };
    if error_code != 0 {
        return Err(kafka_wire::names::error_name(error_code));
    }
    if node_id < 0 {
        return Err(format!("coordinator id {node_id}"));
    }
    Ok(node_id)
}

/// Where a group stands on one partition: its committed offset (-1: none) and the partition's
/// high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: i32,
    pub committed: i64,
    pub high_watermark: i64,
}

impl PartitionLag {
    /// Whether the group has committed everything the partition holds.
    pub fn caught_up(&self) -> bool {
        self.high_watermark == 0 || self.committed >= self.high_watermark
    }
}

/// The committed offsets of `group` and the high watermarks of partitions `0..partitions` of
/// `topic`, asked as a client would: Metadata for the leaders, ListOffsets (latest) from each
/// leader, FindCoordinator, OffsetFetch from the coordinator.
pub async fn group_lag(
    addresses: &[String],
    group: &str,
    topic: &str,
    partitions: u32,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, GroupCoordinatorError> {
    let failed = |reason: String| GroupCoordinatorError {
        group: group.to_string(),
        reason,
    };
    let metadata = metadata::fetch(addresses, Some(topic), timeout)
        .await
        .map_err(|error| failed(error.to_string()))?;
    let mut high_watermarks = BTreeMap::new();
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for partition in 0..partitions as i32 {
        let leader = metadata
            .partition(partition)
            .and_then(|state| state.leader)
            .ok_or_else(|| failed(format!("partition {partition} of {topic} has no leader")))?;
        by_leader.entry(leader).or_default().push(partition);
    }
    for (leader, led) in by_leader {
        let address = broker_address(&metadata, leader).map_err(failed)?;
        let answered = tokio::time::timeout(timeout, latest_offsets(address, topic, &led, timeout))
            .await
            .map_err(|_| failed(format!("{address}: no ListOffsets answer")))?
            .map_err(failed)?;
        high_watermarks.extend(answered);
    }
    let coordinator = find_group_coordinator(addresses, group, timeout).await?;
    let address = broker_address(&metadata, coordinator).map_err(failed)?;
    let committed = tokio::time::timeout(
        timeout,
        committed_offsets(address, group, topic, partitions, timeout),
    )
    .await
    .map_err(|_| failed(format!("{address}: no OffsetFetch answer")))?
    .map_err(failed)?;
    Ok((0..partitions as i32)
        .map(|partition| PartitionLag {
            partition,
            committed: committed.get(&partition).copied().unwrap_or(-1),
            high_watermark: high_watermarks.get(&partition).copied().unwrap_or(-1),
        })
        .collect())
}

fn broker_address(metadata: &ClusterMetadata, id: i32) -> Result<&str, String> {
    metadata
        .broker_addresses
        .get(&id)
        .map(String::as_str)
        .ok_or_else(|| format!("broker {id} is not in the metadata"))
}

/// ListOffsets (latest: the high watermark) of `partitions` from their leader at `address`.
async fn latest_offsets(
    address: &str,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<BTreeMap<i32, i64>, String> {
    let options = Options::new(KAFKA_CLIENT_ID, timeout);
    let mut client = Client::connect_negotiated(address, &options)
        .await
        .map_err(|error| error.to_string())?;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|partition| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*partition)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(LATEST_TIMESTAMP)
                        })
                        .collect(),
                ),
        ]);
    let (_, response) = client
        .request(LIST_OFFSETS_VERSION_MAX, &request)
        .await
        .map_err(|error| error.to_string())?;
    let mut offsets = BTreeMap::new();
    for partition in response.topics.iter().flat_map(|topic| &topic.partitions) {
        if partition.error_code != 0 {
            return Err(format!(
                "ListOffsets of partition {}: {}",
                partition.partition_index,
                kafka_wire::names::error_name(partition.error_code)
            ));
        }
        offsets.insert(partition.partition_index, partition.offset);
    }
    Ok(offsets)
}

/// OffsetFetch of `group`'s committed offsets of partitions `0..partitions` of `topic`, from its
/// coordinator at `address`; partitions without a commit are absent.
async fn committed_offsets(
    address: &str,
    group: &str,
    topic: &str,
    partitions: u32,
    timeout: Duration,
) -> Result<BTreeMap<i32, i64>, String> {
    let options = Options::new(KAFKA_CLIENT_ID, timeout);
    let mut client = Client::connect_negotiated(address, &options)
        .await
        .map_err(|error| error.to_string())?;
    let version = client
        .version::<OffsetFetchRequest>(OFFSET_FETCH_VERSION_MAX)
        .map_err(|error| error.to_string())?;
    let group_id = GroupId(StrBytes::from_string(group.to_string()));
    let name = TopicName(StrBytes::from_string(topic.to_string()));
    let indexes: Vec<i32> = (0..partitions as i32).collect();
    // v8 asks for several groups at once.
    let request = if version >= 8 {
        OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id)
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(name)
                        .with_partition_indexes(indexes),
                ])),
        ])
    } else {
        OffsetFetchRequest::default()
            .with_group_id(group_id)
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(name)
                    .with_partition_indexes(indexes),
            ]))
    };
    let response = client
        .call(version, &request)
        .await
        .map_err(|error| error.to_string())?;
    let refused = |code: i16| format!("OffsetFetch: {}", kafka_wire::names::error_name(code));
    let mut committed = BTreeMap::new();
    let mut add = |partition: i32, offset: i64, error_code: i16| {
        if error_code != 0 {
            return Err(refused(error_code));
        }
        if offset >= 0 {
            committed.insert(partition, offset);
        }
        Ok(())
    };
    if version >= 8 {
        let group = response
            .groups
            .first()
            .ok_or_else(|| "OffsetFetch: an answer without groups".to_string())?;
        if group.error_code != 0 {
            return Err(refused(group.error_code));
        }
        for partition in group.topics.iter().flat_map(|topic| &topic.partitions) {
            add(
                partition.partition_index,
                partition.committed_offset,
                partition.error_code,
            )?;
        }
    } else {
        if response.error_code != 0 {
            return Err(refused(response.error_code));
        }
        for partition in response.topics.iter().flat_map(|topic| &topic.partitions) {
            add(
                partition.partition_index,
                partition.committed_offset,
                partition.error_code,
            )?;
        }
    }
    Ok(committed)
}
