//! ListOffsets: the earliest (-2: log start) and latest (-1: high watermark for consumers,
//! log end for replicas) offsets of partitions this broker leads, and the first committed
//! record at or after a timestamp (a linear scan of batch headers). Other special
//! timestamps (-3, max timestamp) get INVALID_REQUEST. A client asking a leader whose high
//! watermark has not yet reached the start of its epoch gets OFFSET_NOT_AVAILABLE (KIP-207;
//! v1+), as from Kafka: that high watermark is lower than what the previous leader committed.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::context::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub fn handle(
    broker: &Arc<Broker>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let replica_id = request.replica_id.0;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let Some(replica) = broker.replicas.get(&topic.name.0, p.partition_index)
                    else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let state = replica.leader_and_isr();
                    if state.leader != broker.id() {
                        return base.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    if replica_id < 0 && version >= 1 && replica.high_watermark_behind_epoch_start()
                    {
                        return base.with_error_code(ResponseError::OffsetNotAvailable.code());
                    }
                    let offsets = replica.offsets();
                    let offset = match p.timestamp {
                        EARLIEST => offsets.log_start_offset,
                        LATEST if replica_id >= 0 => offsets.log_end_offset,
                        LATEST => offsets.high_watermark,
                        timestamp if timestamp >= 0 => {
                            return match replica.offset_for_timestamp(timestamp) {
                                Ok(Some((offset, found))) => with_epoch(
                                    base.with_offset(offset).with_timestamp(found),
                                    version,
                                    state.leader_epoch,
                                ),
                                // No such record: offset -1 and timestamp -1, as in Kafka.
                                Ok(None) => base,
                                Err(error) => base.with_error_code(error.kafka_error().code()),
                            };
                        }
                        _ => return base.with_error_code(ResponseError::InvalidRequest.code()),
                    };
                    with_epoch(base.with_offset(offset), version, state.leader_epoch)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Sets the leader epoch where the version has the field (v4+).
fn with_epoch(
    partition: ListOffsetsPartitionResponse,
    version: i16,
    leader_epoch: i32,
) -> ListOffsetsPartitionResponse {
    if version >= 4 {
        partition.with_leader_epoch(leader_epoch)
    } else {
        partition
    }
}
