//! Produce: validate and append each partition's batches as leader (in request order, before
//! the next request on the connection is read), then answer at once (acks=1), not at all
//! (acks=0), or once the high watermark has passed every appended batch (acks=all), with
//! REQUEST_TIMED_OUT after the request's timeout. An idempotent producer's retry of a batch
//! already in the log is answered like the original append (its offsets; with acks=all once
//! the original is committed), as Kafka does.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::log::partition_log::{AppendError, AppendInfo};
use crate::broker::log::producer_state::append::ProducerError;
use crate::broker::log::records::{DecompressionBudget, RecordError};
use crate::broker::partition::{Partition, PartitionError, producer_error};
#[cfg(feature = "planted-bugs")]
use crate::planted::{self, PlantedBug};

/// One partition's answer, or what to wait for before answering.
enum Pending {
    Done(PartitionProduceResponse),
    AwaitCommit {
        partition: Arc<Partition>,
        info: AppendInfo,
        min_insync_replicas: i32,
        log_start_offset: i64,
    },
}

pub fn handle(
    broker: &Arc<Broker>,
    request: ProduceRequest,
    version: i16,
) -> Outcome<ProduceResponse> {
    let acks = request.acks;
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    // Decompressed bytes are bounded per request, whatever number of batches it carries.
    let mut budget = DecompressionBudget::for_request(broker.config.message_max_bytes);
    let mut topics: Vec<(TopicName, Vec<Pending>)> = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let results = topic
            .partition_data
            .into_iter()
            .map(|data| append_one(broker, &topic.name, data, acks, version, &mut budget))
            .collect();
        topics.push((topic.name, results));
    }
    if acks == 0 {
        return Outcome::Nothing;
    }
    let waiting = topics
        .iter()
        .flat_map(|(_, results)| results)
        .any(|result| matches!(result, Pending::AwaitCommit { .. }));
    if !waiting {
        return Outcome::Now(build(
            version,
            topics.into_iter().map(|(name, results)| {
                let done = results.into_iter().filter_map(|result| match result {
                    Pending::Done(response) => Some(response),
                    Pending::AwaitCommit { .. } => None,
                });
                (name, done.collect())
            }),
        ));
    }
    Outcome::Later(Box::pin(async move {
        let mut answered = Vec::with_capacity(topics.len());
        for (name, results) in topics {
            let mut partitions = Vec::with_capacity(results.len());
            for result in results {
                partitions.push(match result {
                    Pending::Done(response) => response,
                    Pending::AwaitCommit {
                        partition,
                        info,
                        min_insync_replicas,
                        log_start_offset,
                    } => {
                        match partition
                            .wait_for_commit(&info, min_insync_replicas, timeout)
                            .await
                        {
                            Ok(()) => success(partition.index, info.base_offset, log_start_offset),
                            Err(error) => failure(partition.index, &error),
                        }
                    }
                });
            }
            answered.push((name, partitions));
        }
        build(version, answered.into_iter())
    }))
}

fn append_one(
    broker: &Broker,
    topic: &TopicName,
    data: PartitionProduceData,
    acks: i16,
    version: i16,
    budget: &mut DecompressionBudget,
) -> Pending {
    let index = data.index;
    if !matches!(acks, -1..=1) {
        return Pending::Done(error_response(index, ResponseError::InvalidRequiredAcks));
    }
    let Some(partition) = broker.replicas.get(topic, index) else {
        let error = if broker.metadata.contains_topic(topic) {
            ResponseError::NotLeaderOrFollower
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        return Pending::Done(error_response(index, error));
    };
    let Some(records) = data.records else {
        return Pending::Done(error_response(index, ResponseError::CorruptMessage));
    };
    let min_insync_replicas = broker.min_insync_replicas(topic);
    match partition.append_as_leader(&records, acks == -1, min_insync_replicas, budget) {
        Ok(info) => {
            if info.duplicate {
                tracing::info!(
                    "produce to {}-{index}: a retry of the batch at offsets {}..={}, answered \
                     with its offsets (idempotent producer)",
                    topic.0,
                    info.base_offset,
                    info.last_offset
                );
            }
            let log_start_offset = partition.offsets().log_start_offset;
            #[cfg(feature = "planted-bugs")] // planted bug: acks-all-before-replication
            if acks == -1 && planted::is_active(PlantedBug::AcksAllBeforeReplication) {
                return Pending::Done(success(index, info.base_offset, log_start_offset));
            }
            if acks == -1 {
                Pending::AwaitCommit {
                    partition,
                    info,
                    min_insync_replicas,
                    log_start_offset,
                }
            } else {
                Pending::Done(success(index, info.base_offset, log_start_offset))
            }
        }
        Err(PartitionError::Append(AppendError::InvalidRecords(error))) => {
            tracing::info!("produce to {}-{index} refused: {error}", topic.0);
            Pending::Done(invalid_records(index, version, &error))
        }
        Err(PartitionError::Append(AppendError::Producer(error))) => {
            tracing::info!("produce to {}-{index} refused: {error}", topic.0);
            Pending::Done(producer_refusal(index, version, &error))
        }
        Err(error) => {
            tracing::debug!("produce to {}-{index} refused: {error}", topic.0);
            Pending::Done(failure(index, &error))
        }
    }
}

/// Records that are not what their batch declares: INVALID_RECORD with the reason (v8+, where
/// the response carries a message), CORRUPT_MESSAGE before, as Kafka answers.
fn invalid_records(index: i32, version: i16, error: &RecordError) -> PartitionProduceResponse {
    if version < 8 {
        return error_response(index, ResponseError::CorruptMessage);
    }
    error_response(index, ResponseError::InvalidRecord)
        .with_error_message(Some(StrBytes::from_string(error.to_string())))
}

/// [`producer_error`] with its reason (v8+, where the response carries a message);
/// INVALID_RECORD is CORRUPT_MESSAGE before v8, as Kafka answers.
fn producer_refusal(index: i32, version: i16, error: &ProducerError) -> PartitionProduceResponse {
    let code = match producer_error(error) {
        ResponseError::InvalidRecord if version < 8 => ResponseError::CorruptMessage,
        code => code,
    };
    let response = error_response(index, code);
    if version < 8 {
        return response;
    }
    response.with_error_message(Some(StrBytes::from_string(error.to_string())))
}

fn success(index: i32, base_offset: i64, log_start_offset: i64) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(base_offset)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(log_start_offset)
}

fn failure(index: i32, error: &PartitionError) -> PartitionProduceResponse {
    error_response(index, error.kafka_error())
}

fn error_response(index: i32, error: ResponseError) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

fn build(
    version: i16,
    topics: impl Iterator<Item = (TopicName, Vec<PartitionProduceResponse>)>,
) -> ProduceResponse {
    ProduceResponse::default().with_responses(
        topics
            .map(|(name, mut partitions)| {
                if version < 5 {
                    // log_start_offset exists from v5 on.
                    for partition in &mut partitions {
                        partition.log_start_offset = -1;
                    }
                }
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(partitions)
            })
            .collect(),
    )
}
