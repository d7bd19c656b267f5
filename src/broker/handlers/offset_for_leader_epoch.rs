//! OffsetForLeaderEpoch (KIP-101, KIP-279, KIP-320): for each partition and leader epoch, the
//! largest epoch this leader knows that is <= the asked one and the end offset of that epoch
//! in its log (the start of the next epoch, or the log end for the latest). Followers truncate
//! with it; consumers detect truncated logs after a leader change.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::produce::error_for;
use crate::broker::context::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let base = EpochEndOffset::default().with_partition(p.partition);
                    let Some(replica) = broker.replicas.get(&topic.topic.0, p.partition) else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let state = replica.leader_and_isr();
                    if state.leader != broker.id() {
                        return base.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch != state.leader_epoch {
                        let error = if p.current_leader_epoch < state.leader_epoch {
                            ResponseError::FencedLeaderEpoch
                        } else {
                            ResponseError::UnknownLeaderEpoch
                        };
                        return base.with_error_code(error.code());
                    }
                    match replica.end_offset_for_epoch(p.leader_epoch) {
                        Ok(Some((epoch, end_offset))) => {
                            base.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        // No epoch <= the asked one: undefined epoch and offset (-1, -1).
                        Ok(None) => base,
                        Err(error) => base.with_error_code(error_for(&error).code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
