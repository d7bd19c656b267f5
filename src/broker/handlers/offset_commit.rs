//! OffsetCommit: stores a group's consumed positions in `__consumer_offsets`, answered once the
//! record is replicated (acks=all, `min.insync.replicas` honoured, within
//! `offsets.commit.timeout.ms`). Members commit with their generation (checked:
//! ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS while the next generation awaits
//! its assignment); a consumer without membership (generation -1) may commit for an empty
//! group, which is created if needed. Per partition: UNKNOWN_TOPIC_OR_PARTITION for a partition
//! the cluster does not have, OFFSET_METADATA_TOO_LARGE beyond `offset.metadata.max.bytes`.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::group::clock::Now;
use crate::broker::group::records::OffsetValue;

/// One requested partition and, once decided, its error.
struct Slot {
    topic: TopicName,
    partition: i32,
    value: OffsetValue,
    error: Option<ResponseError>,
}

pub fn handle(
    broker: &Arc<Broker>,
    request: OffsetCommitRequest,
    version: i16,
) -> Outcome<OffsetCommitResponse> {
    let now = Now::current();
    let max_metadata = broker.config.group_coordinator.offset_metadata_max_bytes;
    let mut slots: Vec<Slot> = Vec::new();
    for topic in request.topics {
        let known = broker.metadata.topic(&topic.name.0);
        for partition in topic.partitions {
            let metadata = partition
                .committed_metadata
                .map(|m| m.to_string())
                .unwrap_or_default();
            let exists = known
                .as_ref()
                .is_some_and(|record| record.partitions.contains_key(&partition.partition_index));
            let error = if !exists {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if metadata.len() > max_metadata {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                None
            };
            slots.push(Slot {
                topic: topic.name.clone(),
                partition: partition.partition_index,
                value: OffsetValue {
                    offset: partition.committed_offset,
                    leader_epoch: if version >= 6 {
                        partition.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata,
                    commit_timestamp_ms: now.wall_ms,
                },
                error,
            });
        }
    }
    let group_id = request.group_id.0.to_string();
    let member_id = request.member_id.to_string();
    let instance = request.group_instance_id.map(|id| id.to_string());
    let generation_id = request.generation_id_or_member_epoch;
    let broker = Arc::clone(broker);
    Outcome::Later(Box::pin(async move {
        let offsets: Vec<(String, i32, OffsetValue)> = slots
            .iter()
            .filter(|slot| slot.error.is_none())
            .map(|slot| (slot.topic.0.to_string(), slot.partition, slot.value.clone()))
            .collect();
        if !offsets.is_empty() {
            let committed = match broker.groups.shard_for(broker.as_ref(), &group_id) {
                Ok(shard) => {
                    shard
                        .commit_offsets(
                            &broker.group_host(),
                            &group_id,
                            (&member_id, instance.as_deref(), generation_id),
                            offsets,
                        )
                        .await
                }
                Err(error) => Err(error),
            };
            if let Err(error) = committed {
                tracing::debug!("offset commit of group {group_id} refused: {error:?}");
                for slot in slots.iter_mut().filter(|slot| slot.error.is_none()) {
                    slot.error = Some(error);
                }
            }
        }
        response(slots)
    }))
}

/// Groups the per-partition results by topic, in request order.
fn response(slots: Vec<Slot>) -> OffsetCommitResponse {
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for slot in slots {
        let partition = OffsetCommitResponsePartition::default()
            .with_partition_index(slot.partition)
            .with_error_code(slot.error.map_or(0, |e| e.code()));
        match topics.last_mut() {
            Some(topic) if topic.name == slot.topic => topic.partitions.push(partition),
            _ => topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(slot.topic)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}
