//! Carries out the elections an operator (ElectLeaders) or the auto rebalance asks the
//! controller for: read the partition's state, decide ([`super::election`]), and write the new
//! leader with the leader epoch bumped, fenced by the controller epoch's version like every
//! controller write. Brokers apply the new state through their watches.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::context::Broker;
use super::election::{self, ElectionType, NewLeader, NotElected, PartitionView};
use super::zk::{PartitionStateJson, ZkClientError};

/// How many times a write that lost a race with an ISR change is retried.
const WRITE_ATTEMPTS: usize = 3;

/// The term of the controller this broker is: `(epoch, version of /controller_epoch)`;
/// `None` when another broker (or none) is the controller.
pub async fn controller_term(broker: &Broker) -> Result<Option<(i32, i32)>, ZkClientError> {
    if broker.coordinator.controller_id().await? != Some(broker.id()) {
        return Ok(None);
    }
    let term = broker.coordinator.controller_epoch().await?;
    // Still us after reading the epoch: the term is ours (a later controller bumps the
    // version, which fences the write).
    if broker.coordinator.controller_id().await? != Some(broker.id()) {
        return Ok(None);
    }
    Ok(term)
}

fn failed(error: ResponseError, message: String) -> NotElected {
    NotElected { error, message }
}

/// Runs one election for `topic`-`partition` as the controller of `term`.
pub async fn elect_partition(
    broker: &Broker,
    term: (i32, i32),
    kind: ElectionType,
    topic: &str,
    partition: i32,
) -> Result<NewLeader, NotElected> {
    let name = format!("{topic}-{partition}");
    let server_error = |error: ZkClientError| {
        failed(
            ResponseError::UnknownServerError,
            format!("cannot elect a leader for {name}: {error}"),
        )
    };
    let unknown = || {
        failed(
            ResponseError::UnknownTopicOrPartition,
            format!("The partition {name} does not exist."),
        )
    };
    let assignment = broker
        .coordinator
        .topic_assignment(topic)
        .await
        .map_err(server_error)?
        .ok_or_else(unknown)?;
    let replicas = assignment.get(&partition).ok_or_else(unknown)?;
    let (epoch, epoch_version) = term;
    for _ in 0..WRITE_ATTEMPTS {
        let live = broker
            .coordinator
            .live_broker_ids()
            .await
            .map_err(server_error)?;
        let (state, version) = broker
            .coordinator
            .partition_state(topic, partition)
            .await
            .map_err(server_error)?
            .ok_or_else(unknown)?;
        let view = PartitionView {
            replicas,
            isr: &state.isr,
            leader: state.leader,
        };
        let elected = election::decide(kind, &name, &view, &live)?;
        let new_state = PartitionStateJson {
            controller_epoch: epoch,
            leader: elected.leader,
            version: 1,
            leader_epoch: state.leader_epoch + 1,
            isr: elected.isr.clone(),
            // A preferred election keeps the ISR; an unclean one ends every guarantee.
            elr: if elected.unclean {
                Vec::new()
            } else {
                state.elr.clone()
            },
        };
        match broker
            .coordinator
            .controller_write_partition_state(topic, partition, &new_state, version, epoch_version)
            .await
        {
            Ok(_) => {
                if elected.unclean {
                    tracing::warn!(
                        "[Controller id={}] Unclean leader election. Copying data from a \
                         replica not in the ISR: partition {name}, leader {}",
                        broker.id(),
                        elected.leader
                    );
                }
                tracing::info!(
                    "[Controller id={}] {kind:?} leader election for {name}: leader {} -> {} \
                     (LeaderEpoch:{}, ISR:{:?})",
                    broker.id(),
                    state.leader,
                    elected.leader,
                    new_state.leader_epoch,
                    elected.isr
                );
                return Ok(elected);
            }
            // An ISR change wrote first: re-read and decide again.
            Err(ZkClientError::BadVersion { .. }) => continue,
            Err(ZkClientError::ControllerMoved) => {
                return Err(failed(
                    ResponseError::NotController,
                    "This is not the correct controller for this cluster.".to_string(),
                ));
            }
            Err(error) => return Err(server_error(error)),
        }
    }
    Err(failed(
        ResponseError::UnknownServerError,
        format!("the state of {name} kept changing during the election; retry"),
    ))
}

/// Every partition of every topic, as `(topic, partition)`.
pub async fn all_partitions(broker: &Broker) -> Result<Vec<(String, i32)>, ZkClientError> {
    let mut all = Vec::new();
    for topic in broker.coordinator.topic_names().await? {
        if let Some(assignment) = broker.coordinator.topic_assignment(&topic).await? {
            all.extend(
                assignment
                    .into_keys()
                    .map(|partition| (topic.clone(), partition)),
            );
        }
    }
    Ok(all)
}

/// The auto rebalance (`auto.leader.rebalance.enable`): moves leadership back to preferred
/// replicas for the brokers past `leader.imbalance.per.broker.percentage`.
pub async fn rebalance(broker: &Broker, term: (i32, i32)) -> Result<(), ZkClientError> {
    let live = broker.coordinator.live_broker_ids().await?;
    let mut states: BTreeMap<(String, i32), (Vec<i32>, PartitionStateJson)> = BTreeMap::new();
    for topic in broker.coordinator.topic_names().await? {
        let Some(assignment) = broker.coordinator.topic_assignment(&topic).await? else {
            continue;
        };
        for (partition, replicas) in assignment {
            if let Some((state, _)) = broker
                .coordinator
                .partition_state(&topic, partition)
                .await?
            {
                states.insert((topic.clone(), partition), (replicas, state));
            }
        }
    }
    let views: BTreeMap<(String, i32), PartitionView<'_>> = states
        .iter()
        .map(|(key, (replicas, state))| {
            (
                key.clone(),
                PartitionView {
                    replicas,
                    isr: &state.isr,
                    leader: state.leader,
                },
            )
        })
        .collect();
    let chosen = election::imbalanced(
        &views,
        &live,
        broker.config.leader_imbalance_per_broker_percentage,
    );
    for (topic, partition) in chosen {
        tracing::info!(
            "[Controller id={}] Starting preferred replica leader election for {topic}-{partition} \
             (auto rebalance)",
            broker.id()
        );
        if let Err(not_elected) =
            elect_partition(broker, term, ElectionType::Preferred, &topic, partition).await
        {
            tracing::info!(
                "[Controller id={}] auto rebalance of {topic}-{partition}: {}",
                broker.id(),
                not_elected.message
            );
        }
    }
    Ok(())
}
