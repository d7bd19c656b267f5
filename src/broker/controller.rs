//! The controller: every broker races to create the ephemeral `/controller`; the winner bumps
//! `/controller_epoch` and, while it holds `/controller`, watches `/brokers/ids` and elects a
//! leader for every partition whose leader is gone (or that has none while an ISR member is
//! back): the first replica in assignment order that is alive and in the ISR, with the leader
//! epoch bumped. Each state write is one multi-op fenced by the version of
//! `/controller_epoch` (a stale controller cannot write). With no live ISR member the leader
//! is -1 and the ISR keeps its last member, unless `unclean.leader.election.enable` lets the
//! first live replica lead alone. The controller also watches `/config/topics`, so that a
//! topic's `unclean.leader.election.enable` turned true at run time is acted on at once, and
//! (with `auto.leader.rebalance.enable`) runs the preferred-replica rebalance every
//! `leader.imbalance.check.interval.seconds` ([`super::elector::rebalance`]).
//!
//! Brokers learn the decisions through their own watches ([`super::metadata_sync`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

use super::context::Broker;
use super::zk::{CONTROLLER_PATH, CoordinatorError, PartitionStateJson};
#[cfg(feature = "planted-bugs")]
use crate::planted::{self, PlantedBug};

/// Pause before retrying after a coordinator error.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// The active controller re-checks every partition this often even without events (a safety
/// net for a write that lost a race).
const RECHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Takes part in controller elections until the broker stops.
pub async fn run(broker: Arc<Broker>, mut stopped: watch::Receiver<bool>) {
    loop {
        let round = tokio::select! {
            round = contend(&broker) => round,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        if let Err(error) = round {
            tracing::debug!("controller election: {error}");
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_BACKOFF) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// One session's worth of contention: become controller or watch the one there is, until the
/// session ends (an error) or this broker resigns.
async fn contend(broker: &Arc<Broker>) -> Result<(), CoordinatorError> {
    let mut controller_watch = broker.coordinator.watch(CONTROLLER_PATH, false).await?;
    loop {
        if broker
            .coordinator
            .try_create_controller(broker.id())
            .await?
        {
            let (epoch, epoch_version) = broker.coordinator.increment_controller_epoch().await?;
            broker.metadata.set_controller_id(broker.id());
            tracing::info!(
                "[Controller id={}] {} successfully elected as the controller. Epoch \
                 incremented to {epoch} and epoch zk version is now {epoch_version}",
                broker.id(),
                broker.id()
            );
            let served = serve(broker, epoch, epoch_version, &mut controller_watch).await;
            tracing::info!("[Controller id={}] Resigned as the controller", broker.id());
            served?;
            continue;
        }
        if let Some(controller) = broker.coordinator.controller_id().await? {
            broker.metadata.set_controller_id(controller);
            // Wait for /controller to change (deleted: race again).
            let event = controller_watch.changed().await;
            session_alive(&event)?;
        }
    }
}

/// Fails when a watch reports the end of the session.
fn session_alive(event: &zk::WatchedEvent) -> Result<(), CoordinatorError> {
    if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
        return Err(CoordinatorError::Closed);
    }
    Ok(())
}

/// Acts as the controller until `/controller` is no longer ours or the epoch moves on.
async fn serve(
    broker: &Arc<Broker>,
    epoch: i32,
    epoch_version: i32,
    controller_watch: &mut zk::PersistentWatcher,
) -> Result<(), CoordinatorError> {
    let mut brokers_watch = broker
        .coordinator
        .watch(super::zk::BROKER_IDS_PATH, true)
        .await?;
    // A topic's `unclean.leader.election.enable` turning true calls for an election at once.
    let mut configs_watch = broker
        .coordinator
        .watch(super::zk::TOPIC_CONFIGS_PATH, true)
        .await?;
    let mut recheck = tokio::time::interval(RECHECK_INTERVAL);
    let mut rebalance_check = tokio::time::interval(Duration::from_secs(
        broker.config.leader_imbalance_check_interval_seconds,
    ));
    rebalance_check.tick().await;
    loop {
        elect_leaders(broker, epoch, epoch_version).await?;
        tokio::select! {
            _ = rebalance_check.tick(), if broker.config.auto_leader_rebalance_enable => {
                super::elector::rebalance(broker, (epoch, epoch_version)).await?;
            }
            event = brokers_watch.changed() => session_alive(&event)?,
            event = configs_watch.changed() => session_alive(&event)?,
            event = controller_watch.changed() => {
                session_alive(&event)?;
                if broker.coordinator.controller_id().await? != Some(broker.id()) {
                    return Ok(());
                }
            }
            _ = recheck.tick() => {}
        }
    }
}

/// The controller's decision for one partition whose leader is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Election {
    pub leader: i32,
    pub isr: Vec<i32>,
    pub unclean: bool,
}

/// Kafka's offline-partition election: the first replica in assignment order that is alive
/// and in the ISR; else (unclean allowed) the first alive replica, alone in the ISR; else no
/// leader, and the ISR keeps its last member so that it can come back as leader.
pub fn elect(
    replicas: &[i32],
    isr: &[i32],
    live: &[i32],
    old_leader: i32,
    unclean_allowed: bool,
) -> Election {
    let live_isr: Vec<i32> = isr.iter().copied().filter(|r| live.contains(r)).collect();
    #[cfg(feature = "planted-bugs")] // planted bug: clean-election-ignores-isr
    if planted::is_active(PlantedBug::CleanElectionIgnoresIsr)
        && let Some(leader) = replicas.iter().copied().find(|r| live.contains(r))
    {
        let isr = std::iter::once(leader)
            .chain(live_isr.into_iter().filter(|r| *r != leader))
            .collect();
        return Election {
            leader,
            isr,
            unclean: false,
        };
    }
    if let Some(leader) = replicas.iter().copied().find(|r| live_isr.contains(r)) {
        return Election {
            leader,
            isr: live_isr,
            unclean: false,
        };
    }
    if unclean_allowed && let Some(leader) = replicas.iter().copied().find(|r| live.contains(r)) {
        return Election {
            leader,
            isr: vec![leader],
            unclean: true,
        };
    }
    let last = if isr.contains(&old_leader) {
        vec![old_leader]
    } else {
        isr.iter().copied().take(1).collect()
    };
    Election {
        leader: -1,
        isr: last,
        unclean: false,
    }
}

/// Elects a leader for every partition whose leader is not alive.
async fn elect_leaders(
    broker: &Broker,
    epoch: i32,
    epoch_version: i32,
) -> Result<(), CoordinatorError> {
    let live = broker.coordinator.live_broker_ids().await?;
    for topic in broker.coordinator.topic_names().await? {
        let Some(assignment) = broker.coordinator.topic_assignment(&topic).await? else {
            continue;
        };
        let unclean_allowed = unclean_allowed(broker, &topic).await?;
        for (partition, replicas) in assignment {
            let Some((state, version)) = broker
                .coordinator
                .partition_state(&topic, partition)
                .await?
            else {
                continue;
            };
            if state.leader >= 0 && live.contains(&state.leader) {
                continue;
            }
            let election = elect(&replicas, &state.isr, &live, state.leader, unclean_allowed);
            if election.leader == state.leader && election.isr == state.isr {
                continue;
            }
            #[cfg(feature = "planted-bugs")] // planted bug: leader-epoch-not-bumped
            let state = PartitionStateJson {
                leader_epoch: state.leader_epoch
                    - i32::from(planted::is_active(PlantedBug::LeaderEpochNotBumped)),
                ..state
            };
            let new_state = PartitionStateJson {
                controller_epoch: epoch,
                leader: election.leader,
                version: 1,
                leader_epoch: state.leader_epoch + 1,
                isr: election.isr.clone(),
            };
            match broker
                .coordinator
                .controller_write_partition_state(
                    &topic,
                    partition,
                    &new_state,
                    version,
                    epoch_version,
                )
                .await
            {
                Ok(_) => {
                    if election.unclean {
                        tracing::warn!(
                            "[Controller id={}] Unclean leader election. Copying data from a \
                             replica not in the ISR: partition {topic}-{partition}, leader {}",
                            broker.id(),
                            election.leader
                        );
                    }
                    tracing::info!(
                        "[Controller id={}] Partition {topic}-{partition} state changed to \
                         (Leader:{},ISR:{},LeaderEpoch:{},ControllerEpoch:{epoch}) (old leader {})",
                        broker.id(),
                        election.leader,
                        join(&election.isr),
                        new_state.leader_epoch,
                        state.leader
                    );
                }
                // Someone (a leader changing its ISR) wrote first: the next round re-reads.
                Err(CoordinatorError::BadVersion { .. }) => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}

/// The topic's `unclean.leader.election.enable`, read from the coordinator (not the metadata
/// cache, which may not have seen a change that just woke the controller), else the broker's.
async fn unclean_allowed(broker: &Broker, topic: &str) -> Result<bool, CoordinatorError> {
    Ok(broker
        .coordinator
        .topic_config(topic)
        .await?
        .get("unclean.leader.election.enable")
        .and_then(|value| value.parse().ok())
        .unwrap_or(broker.config.unclean_leader_election_enable))
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elects_the_first_live_isr_member_in_assignment_order() {
        let election = elect(&[3, 2, 1], &[1, 2, 3], &[1, 2], 3, false);
        assert_eq!(election.leader, 2);
        assert_eq!(election.isr, vec![1, 2]);
    }

    #[test]
    fn without_a_live_isr_member_there_is_no_leader_and_the_isr_keeps_the_last() {
        let election = elect(&[3, 2, 1], &[3], &[1, 2], 3, false);
        assert_eq!(election.leader, -1);
        assert_eq!(election.isr, vec![3]);
        // The last ISR member comes back: it leads.
        let back = elect(&[3, 2, 1], &[3], &[1, 2, 3], -1, false);
        assert_eq!(back.leader, 3);
    }

    #[test]
    fn unclean_election_takes_the_first_live_replica_alone() {
        let election = elect(&[3, 2, 1], &[3], &[1, 2], 3, true);
        assert_eq!(election.leader, 2);
        assert_eq!(election.isr, vec![2]);
        assert!(election.unclean);
    }
}
