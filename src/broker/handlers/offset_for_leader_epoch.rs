//! OffsetForLeaderEpoch (API 23): for each partition led here, the largest leader epoch <= the
//! requested one that this log knows and where it ends (the start of the next epoch, or the
//! log end for the latest): followers truncate there (KIP-101, KIP-279). A request with an
//! older current leader epoch is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

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
                .iter()
                .map(|asked| {
                    let answer = EpochEndOffset::default()
                        .with_partition(asked.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(replica) = broker.replicas.get(&topic.topic.0, asked.partition) else {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    match replica
                        .end_offset_for_epoch(asked.leader_epoch, asked.current_leader_epoch)
                    {
                        Ok(Some((epoch, end_offset))) => {
                            answer.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        Ok(None) => answer,
                        Err(error) => answer.with_error_code(error.kafka_error().code()),
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
