//! ElectLeaders (KIP-183, KIP-460): preferred or unclean leader election for the named
//! partitions (all of them when the list is null), served by the controller; any other broker
//! answers NOT_CONTROLLER and the client retries against the controller, as with Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::election::ElectionType;
use crate::broker::elector;

/// The longest an answer waits for the elected leaders to show in this broker's metadata.
const MAX_WAIT: Duration = Duration::from_secs(30);
const APPLY_POLL: Duration = Duration::from_millis(20);

pub fn handle(
    broker: &Arc<Broker>,
    request: ElectLeadersRequest,
    version: i16,
) -> Outcome<ElectLeadersResponse> {
    let broker = Arc::clone(broker);
    Outcome::Later(Box::pin(
        async move { respond(&broker, request, version).await },
    ))
}

fn top_level_error(error: ResponseError, version: i16) -> ElectLeadersResponse {
    // v0 has no top-level error code: the client sees no results.
    let response = ElectLeadersResponse::default();
    if version >= 1 {
        response.with_error_code(error.code())
    } else {
        response
    }
}

async fn respond(
    broker: &Broker,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    // v0 is always a preferred election.
    let code = if version >= 1 {
        request.election_type
    } else {
        0
    };
    let Some(kind) = ElectionType::from_code(code) else {
        return top_level_error(ResponseError::InvalidRequest, version);
    };
    let term = match elector::controller_term(broker).await {
        Ok(Some(term)) => term,
        Ok(None) => return top_level_error(ResponseError::NotController, version),
        Err(error) => {
            tracing::warn!("ElectLeaders: {error}");
            return top_level_error(ResponseError::UnknownServerError, version);
        }
    };
    let wanted: Vec<(String, i32)> = match request.topic_partitions {
        Some(topics) => topics
            .into_iter()
            .flat_map(|topic| {
                let name = topic.topic.0.to_string();
                topic.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect(),
        None => match elector::all_partitions(broker).await {
            Ok(all) => all,
            Err(error) => {
                tracing::warn!("ElectLeaders: {error}");
                return top_level_error(ResponseError::UnknownServerError, version);
            }
        },
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    let mut elected = Vec::new();
    for (topic, partition) in wanted {
        let result = match elector::elect_partition(broker, term, kind, &topic, partition).await {
            Ok(new_leader) => {
                elected.push((topic.clone(), partition, new_leader.leader));
                PartitionResult::default().with_partition_id(partition)
            }
            Err(not_elected) => PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(not_elected.error.code())
                .with_error_message(Some(StrBytes::from_string(not_elected.message))),
        };
        by_topic.entry(topic).or_default().push(result);
    }
    wait_until_applied(broker, &elected, request.timeout_ms).await;
    let results = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// Like Kafka's election purgatory: answers once this broker's metadata shows every elected
/// leader (so that a Metadata request right after sees it), or after the request's timeout
/// (capped at `MAX_WAIT`).
async fn wait_until_applied(broker: &Broker, elected: &[(String, i32, i32)], timeout_ms: i32) {
    let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + timeout;
    let applied = || {
        elected.iter().all(|(topic, partition, leader)| {
            broker
                .metadata
                .topic(topic)
                .and_then(|record| record.partitions.get(partition).map(|state| state.leader))
                == Some(*leader)
        })
    };
    while !applied() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(APPLY_POLL).await;
    }
}
