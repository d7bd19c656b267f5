//! OffsetFetch: a group's committed offsets — of the requested partitions (-1 and "" where
//! nothing is committed), or of every partition it committed (topics null, v2+). Only
//! replicated commits are visible. v1-7 ask for one group (errors per partition in v1, at the
//! top from v2), v8+ for several, each with its own error (NOT_COORDINATOR,
//! COORDINATOR_LOAD_IN_PROGRESS). A group nobody knows has no offsets (no error), as in Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::group::records::OffsetValue;

/// Requested partitions by topic; `None`: everything the group committed.
type Wanted = Option<Vec<(String, Vec<i32>)>>;
/// Offsets by topic (`None`: nothing committed for that partition).
type Found = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

pub fn handle(
    broker: &Arc<Broker>,
    request: OffsetFetchRequest,
    version: i16,
) -> Outcome<OffsetFetchResponse> {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|group| {
                let wanted: Wanted = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let result = fetch(broker, &group.group_id.0, wanted);
                group_response(group.group_id, result)
            })
            .collect();
        return Outcome::Now(OffsetFetchResponse::default().with_groups(groups));
    }
    let wanted: Wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let response = match fetch(broker, &request.group_id.0, wanted.clone()) {
        Ok(found) => OffsetFetchResponse::default().with_topics(topics_v7(found, version, None)),
        Err(error) if version < 2 => {
            // v1 has no top-level error: every requested partition carries it.
            let found = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partitions)| {
                    (topic, partitions.into_iter().map(|p| (p, None)).collect())
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics_v7(found, version, Some(error)))
        }
        Err(error) => OffsetFetchResponse::default().with_error_code(error.code()),
    };
    Outcome::Now(response)
}

/// Reads one group's offsets on its shard.
fn fetch(broker: &Arc<Broker>, group_id: &str, wanted: Wanted) -> Result<Found, ResponseError> {
    let shard = broker.groups.shard_for(broker.as_ref(), group_id)?;
    let mut active = shard.lock_active()?;
    let group = active.groups().get(group_id);
    Ok(match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let offsets = partitions
                    .into_iter()
                    .map(|partition| {
                        let value = group
                            .and_then(|g| g.offsets.get(&topic, partition))
                            .cloned();
                        (partition, value)
                    })
                    .collect();
                (topic, offsets)
            })
            .collect(),
        None => {
            let mut found: Found = Vec::new();
            for (topic, partition, value) in group.iter().flat_map(|g| g.offsets.all()) {
                match found.last_mut() {
                    Some((last, partitions)) if last == topic => {
                        partitions.push((partition, Some(value.clone())))
                    }
                    _ => found.push((topic.to_string(), vec![(partition, Some(value.clone()))])),
                }
            }
            found
        }
    })
}

/// (offset, leader epoch, metadata) of a partition: -1, -1, "" when nothing is committed.
fn fields(value: Option<OffsetValue>) -> (i64, i32, StrBytes) {
    match value {
        Some(value) => (
            value.offset,
            value.leader_epoch,
            StrBytes::from_string(value.metadata),
        ),
        None => (-1, -1, StrBytes::default()),
    }
}

fn topics_v7(
    found: Found,
    version: i16,
    error: Option<ResponseError>,
) -> Vec<OffsetFetchResponseTopic> {
    found
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(partition, value)| {
                            let (offset, epoch, metadata) = fields(value);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(partition)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(if version >= 5 { epoch } else { -1 })
                                .with_metadata(Some(metadata))
                                .with_error_code(error.map_or(0, |e| e.code()))
                        })
                        .collect(),
                )
        })
        .collect()
}

fn group_response(
    group_id: GroupId,
    result: Result<Found, ResponseError>,
) -> OffsetFetchResponseGroup {
    let response = OffsetFetchResponseGroup::default().with_group_id(group_id);
    match result {
        Err(error) => response.with_error_code(error.code()),
        Ok(found) => response.with_topics(
            found
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(partition, value)| {
                                    let (offset, epoch, metadata) = fields(value);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(partition)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(metadata))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}
