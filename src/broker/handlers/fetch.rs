//! Fetch: read stored batches from each requested partition (consumers up to the high
//! watermark, followers up to the log end), at most `max_bytes` in all (but always the first
//! batch, KIP-74). If fewer than `min_bytes` are there, the request waits, at most
//! `max_wait_ms`, and is woken when a partition's offsets move — no polling loop.
//! No fetch sessions are created (session id 0): every fetch is a full fetch.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{Either, select, select_all};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use tokio::sync::watch;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::partition::{Offsets, Partition};

/// One requested partition.
struct Target {
    index: i32,
    fetch_offset: i64,
    partition_max_bytes: usize,
    current_leader_epoch: i32,
    replica: Option<Arc<Partition>>,
}

/// Everything needed to (re)read the request.
struct Plan {
    version: i16,
    replica_id: i32,
    max_bytes: usize,
    topics: Vec<(TopicName, Vec<Target>)>,
}

pub fn handle(broker: &Arc<Broker>, request: FetchRequest, version: i16) -> Outcome<FetchResponse> {
    let replica_id = request.replica_id.0;
    let plan = Plan {
        version,
        replica_id,
        max_bytes: usize::try_from(request.max_bytes).unwrap_or(0),
        topics: request
            .topics
            .into_iter()
            .map(|topic| {
                let targets = topic
                    .partitions
                    .into_iter()
                    .map(|p| Target {
                        index: p.partition,
                        fetch_offset: p.fetch_offset,
                        partition_max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                        current_leader_epoch: p.current_leader_epoch,
                        replica: broker.replicas.get(&topic.topic.0, p.partition),
                    })
                    .collect();
                (topic.topic, targets)
            })
            .collect(),
    };
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    // Subscribe before reading, so that an append between the read and the wait wakes us.
    let mut receivers: Vec<watch::Receiver<Offsets>> = plan
        .topics
        .iter()
        .flat_map(|(_, targets)| targets)
        .filter_map(|target| target.replica.as_ref().map(|replica| replica.subscribe()))
        .collect();
    let (response, ready) = read(broker, &plan);
    if ready || response_bytes(&response) >= min_bytes || max_wait.is_zero() || receivers.is_empty()
    {
        return Outcome::Now(response);
    }
    let broker = Arc::clone(broker);
    Outcome::Later(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let changes = receivers
                .iter_mut()
                .map(|receiver| Box::pin(receiver.changed()));
            let timer = Box::pin(tokio::time::sleep_until(deadline));
            match select(select_all(changes), timer).await {
                Either::Left(((changed, _, _), _)) => {
                    let (response, ready) = read(&broker, &plan);
                    if changed.is_err() || ready || response_bytes(&response) >= min_bytes {
                        return response;
                    }
                }
                Either::Right(_) => return read(&broker, &plan).0,
            }
        }
    }))
}

/// Reads every target once. `ready` is true when an error should be returned at once.
fn read(broker: &Broker, plan: &Plan) -> (FetchResponse, bool) {
    let mut budget = plan.max_bytes;
    let mut ready = false;
    let mut first_data = true;
    let responses = plan
        .topics
        .iter()
        .map(|(name, targets)| {
            let partitions = targets
                .iter()
                .map(|target| {
                    let data = read_one(broker, plan.replica_id, target, &mut budget, first_data);
                    if data.error_code != 0 {
                        ready = true;
                    }
                    if data
                        .records
                        .as_ref()
                        .is_some_and(|records| !records.is_empty())
                    {
                        first_data = false;
                    }
                    data
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let mut response = FetchResponse::default().with_responses(responses);
    if plan.version < 5 {
        // log_start_offset exists from v5 on.
        for partition in response
            .responses
            .iter_mut()
            .flat_map(|t| &mut t.partitions)
        {
            partition.log_start_offset = -1;
        }
    }
    (response, ready)
}

fn read_one(
    broker: &Broker,
    replica_id: i32,
    target: &Target,
    budget: &mut usize,
    first_data: bool,
) -> PartitionData {
    let base = PartitionData::default()
        .with_partition_index(target.index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(Some(Vec::new()))
        .with_records(Some(Bytes::new()));
    let Some(replica) = target.replica.as_ref() else {
        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let state = replica.leader_and_isr();
    if state.leader != broker.id() {
        return base.with_error_code(ResponseError::NotLeaderOrFollower.code());
    }
    if let Err(error) = replica.check_leader_epoch(target.current_leader_epoch) {
        return base.with_error_code(error.kafka_error().code());
    }
    // KIP-74: the first partition with data gets at least one batch even over the budget.
    let limit = target.partition_max_bytes.min(*budget);
    let limit = if first_data { limit.max(1) } else { limit };
    if limit == 0 {
        let offsets = replica.offsets();
        return with_offsets(base, &offsets);
    }
    match replica.read(target.fetch_offset, limit, replica_id) {
        Ok(outcome) => {
            *budget = budget.saturating_sub(outcome.records.len());
            with_offsets(base, &outcome.offsets).with_records(Some(outcome.records))
        }
        Err(error) => {
            let offsets = replica.offsets();
            with_offsets(base, &offsets).with_error_code(error.kafka_error().code())
        }
    }
}

fn with_offsets(data: PartitionData, offsets: &Offsets) -> PartitionData {
    data.with_high_watermark(offsets.high_watermark)
        .with_last_stable_offset(offsets.high_watermark)
        .with_log_start_offset(offsets.log_start_offset)
}

fn response_bytes(response: &FetchResponse) -> usize {
    response
        .responses
        .iter()
        .flat_map(|topic| &topic.partitions)
        .filter_map(|partition| partition.records.as_ref())
        .map(Bytes::len)
        .sum()
}
