//! The controller: every registered broker races to create the ephemeral `/controller`; the
//! winner bumps `/controller_epoch` and acts as the controller exactly while `/controller` is
//! its own session's ephemeral node. A lost connection to the coordinator is not the end of
//! that: the client reconnects to the same session, whose ephemerals survive, and the
//! controller carries on (re-checking everything, as watch events may have been missed). Only
//! the end of the session (expiry) or `/controller` changing hands ends the role; after an
//! expiry the broker registers again under a new session and then contends again.
//!
//! While it holds `/controller` it watches `/brokers/ids` and, for every partition:
//! - elects a leader when the leader is gone (or there is none while an ISR member is back):
//!   the first replica in assignment order that is alive and in the ISR, with the leader epoch
//!   bumped. With no live ISR member the leader is -1 and the ISR keeps its last member, unless
//!   `unclean.leader.election.enable` lets the first live replica lead alone;
//! - removes the replicas of dead brokers from the ISR of a partition whose leader lives
//!   (Kafka's OfflineReplica transition), as soon as the broker's registration goes: its
//!   session expired, or it began a controlled shutdown. The leader's ISR then no longer waits
//!   `replica.lag.time.max.ms` for it, and acks=all sends are answered by the live replicas.
//!
//! Each state write is one multi-op fenced by the version of `/controller_epoch` (a stale
//! controller cannot write). The controller also watches `/config/topics`, so that a topic's
//! `unclean.leader.election.enable` turned true at run time is acted on at once, and (with
//! `auto.leader.rebalance.enable`) runs the preferred-replica rebalance every
//! `leader.imbalance.check.interval.seconds` ([`super::elector::rebalance`]).
//!
//! Brokers learn the decisions through their own watches ([`super::metadata_sync`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::context::Broker;
use super::zk::{
    BROKER_IDS_PATH, CONTROLLER_PATH, PartitionStateJson, PersistentWatches, TOPIC_CONFIGS_PATH,
    ZkClientError, is_reconnection,
};
#[cfg(feature = "planted-bugs")]
use crate::planted::{self, PlantedBug};

/// Pause before retrying after a coordinator error.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// The active controller re-checks every partition this often even without events (a safety
/// net for a write that lost a race, or an error on the way).
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

/// One session's worth of contention: once this session registered the broker, become
/// controller or watch the one there is, until the session ends (an error).
async fn contend(broker: &Arc<Broker>) -> Result<(), ZkClientError> {
    broker.coordinator.wait_registered().await;
    let mut controller_watch =
        PersistentWatches::add(&broker.coordinator, &[(CONTROLLER_PATH, false)]).await?;
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
            tracing::info!(
                "[Controller id={}] Resigned as the controller ({})",
                broker.id(),
                match &served {
                    Ok(()) => "/controller is no longer this broker's".to_string(),
                    Err(error) => error.to_string(),
                }
            );
            served?;
            continue;
        }
        if let Some(controller) = broker.coordinator.controller_id().await? {
            broker.metadata.set_controller_id(controller);
            // Wait for /controller to change (deleted: race again); after a reconnection,
            // whose events are lost, look again.
            let event = controller_watch.changed().await?;
            if is_reconnection(&event) {
                controller_watch.renew(&broker.coordinator).await?;
            }
        }
    }
}

/// What a controller does with an error from one of its rounds: the end of its session or
/// term ends its role; anything else (a lost connection — the session lives on — or bad data)
/// is logged and the next event or recheck retries.
fn keep_serving(broker: &Broker, error: ZkClientError) -> Result<(), ZkClientError> {
    if matches!(error, ZkClientError::ControllerMoved) || broker.coordinator.session_ended() {
        return Err(error);
    }
    tracing::info!(
        "[Controller id={}] {error}; retrying while the session lives",
        broker.id()
    );
    Ok(())
}

/// Acts as the controller until `/controller` is no longer this session's, the session ends,
/// or the epoch moves on.
async fn serve(
    broker: &Arc<Broker>,
    epoch: i32,
    epoch_version: i32,
    controller_watch: &mut PersistentWatches,
) -> Result<(), ZkClientError> {
    // Brokers coming and going; a topic's `unclean.leader.election.enable` turning true calls
    // for an election at once.
    let mut watches = PersistentWatches::add(
        &broker.coordinator,
        &[(BROKER_IDS_PATH, true), (TOPIC_CONFIGS_PATH, true)],
    )
    .await?;
    let mut recheck = tokio::time::interval(RECHECK_INTERVAL);
    let mut rebalance_check = tokio::time::interval(Duration::from_secs(
        broker.config.leader_imbalance_check_interval_seconds,
    ));
    rebalance_check.tick().await;
    loop {
        if let Err(error) = update_partitions(broker, epoch, epoch_version).await {
            keep_serving(broker, error)?;
        }
        let event = tokio::select! {
            _ = rebalance_check.tick(), if broker.config.auto_leader_rebalance_enable => {
                if let Err(error) =
                    super::elector::rebalance(broker, (epoch, epoch_version)).await
                {
                    keep_serving(broker, error)?;
                }
                continue;
            }
            event = watches.changed() => event?,
            event = controller_watch.changed() => event?,
            _ = recheck.tick() => continue,
        };
        let reconnected = is_reconnection(&event);
        if reconnected {
            for renewed in [
                watches.renew(&broker.coordinator).await,
                controller_watch.renew(&broker.coordinator).await,
            ] {
                if let Err(error) = renewed {
                    keep_serving(broker, error)?;
                }
            }
        }
        // /controller changed, or may have while the connection was down.
        if reconnected || event.path == CONTROLLER_PATH {
            match broker.coordinator.controller_is_ours().await {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(error) => keep_serving(broker, error)?,
            }
        }
    }
}

/// The controller's decision for one partition whose leader is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Election {
    pub leader: i32,
    pub isr: Vec<i32>,
    /// KIP-966's eligible leader replicas after the election (empty without the feature).
    pub elr: Vec<i32>,
    pub unclean: bool,
}

/// A partition's eligible leader replicas and its `min.insync.replicas`, when KIP-966's ELR
/// is on (`super::elr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligible<'a> {
    pub elr: &'a [i32],
    pub min_isr: i32,
}

/// Kafka's offline-partition election: the first replica in assignment order that is alive
/// and in the ISR; else (with KIP-966's ELR) the first alive ELR member, alone in the ISR;
/// else (unclean allowed) the first alive replica, alone in the ISR; else no leader, and the
/// ISR keeps its last member so that it can come back as leader.
pub fn elect(
    replicas: &[i32],
    isr: &[i32],
    live: &[i32],
    old_leader: i32,
    unclean_allowed: bool,
    eligible: Option<Eligible<'_>>,
) -> Election {
    let live_isr: Vec<i32> = isr.iter().copied().filter(|r| live.contains(r)).collect();
    let kept_elr = eligible.map_or(Vec::new(), |e| e.elr.to_vec());
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
            elr: kept_elr,
            unclean: false,
        };
    }
    if let Some(eligible) = eligible
        && let Some((leader, isr, elr)) =
            super::elr::elect(replicas, isr, eligible.elr, live, eligible.min_isr)
    {
        return Election {
            leader,
            isr,
            elr,
            unclean: false,
        };
    }
    if let Some(leader) = replicas.iter().copied().find(|r| live_isr.contains(r)) {
        return Election {
            leader,
            isr: live_isr,
            elr: kept_elr,
            unclean: false,
        };
    }
    if unclean_allowed && let Some(leader) = replicas.iter().copied().find(|r| live.contains(r)) {
        return Election {
            leader,
            isr: vec![leader],
            elr: Vec::new(),
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
        elr: kept_elr,
        unclean: false,
    }
}

/// What the controller changes in one partition's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionChange {
    /// The leader is gone (or there is none): a new leader (or none), the leader epoch bumped.
    Elect(Election),
    /// The leader lives but the brokers of `removed` are gone: the ISR without them, with
    /// the same leader and leader epoch (Kafka's OfflineReplica transition), and the ELR
    /// that makes (with KIP-966's ELR on).
    RemoveOffline {
        isr: Vec<i32>,
        elr: Vec<i32>,
        removed: Vec<i32>,
    },
    /// Only the ISR and ELR changed: `brokers` came back from an unclean shutdown (KIP-966).
    UncleanShutdown { brokers: Vec<i32> },
}

/// The controller's decision for a partition with `leader` and `isr` while `live` brokers are
/// registered; `None` when nothing is to change.
pub fn partition_change(
    replicas: &[i32],
    leader: i32,
    isr: &[i32],
    live: &[i32],
    unclean_allowed: bool,
    eligible: Option<Eligible<'_>>,
) -> Option<PartitionChange> {
    if leader >= 0 && live.contains(&leader) {
        let (kept, removed): (Vec<i32>, Vec<i32>) = isr
            .iter()
            .copied()
            .partition(|replica| live.contains(replica));
        // The ISR never becomes empty (the leader is normally in it).
        if removed.is_empty() || kept.is_empty() {
            return None;
        }
        let elr = eligible.map_or(Vec::new(), |e| {
            super::elr::after_isr_change(isr, &kept, e.elr, e.min_isr)
        });
        return Some(PartitionChange::RemoveOffline {
            isr: kept,
            elr,
            removed,
        });
    }
    let election = elect(replicas, isr, live, leader, unclean_allowed, eligible);
    let elr_before = eligible.map_or(&[][..], |e| e.elr);
    if election.leader == leader && election.isr == isr && election.elr == elr_before {
        return None;
    }
    Some(PartitionChange::Elect(election))
}

/// Brings every partition in line with the live brokers: elects a leader where the leader is
/// not alive, and takes dead brokers out of the ISRs of the others. With KIP-966's ELR on, it
/// first takes brokers back from an unclean shutdown out of the ISRs and ELRs they may no
/// longer deserve (`super::elr`), and forgets their announcements once every partition took it.
async fn update_partitions(
    broker: &Broker,
    epoch: i32,
    epoch_version: i32,
) -> Result<(), ZkClientError> {
    let live = broker.coordinator.live_broker_ids().await?;
    // Read after the live brokers: a broker announces before it registers.
    let unclean = if broker.config.eligible_leader_replicas_enable {
        broker.coordinator.unclean_shutdowns().await?
    } else {
        Vec::new()
    };
    let mut all_written = true;
    for topic in broker.coordinator.topic_names().await? {
        let Some(assignment) = broker.coordinator.topic_assignment(&topic).await? else {
            continue;
        };
        let unclean_allowed = unclean_allowed(broker, &topic).await?;
        let min_isr = if broker.config.eligible_leader_replicas_enable {
            Some(min_insync_replicas(broker, &topic).await?)
        } else {
            None
        };
        for (partition, replicas) in assignment {
            let Some((state, version)) = broker
                .coordinator
                .partition_state(&topic, partition)
                .await?
            else {
                continue;
            };
            let base = without_unclean(&state, &unclean);
            let eligible = min_isr.map(|min_isr| Eligible {
                elr: &base.elr,
                min_isr,
            });
            let change = partition_change(
                &replicas,
                base.leader,
                &base.isr,
                &live,
                unclean_allowed,
                eligible,
            )
            .or_else(|| {
                (base != state).then(|| PartitionChange::UncleanShutdown {
                    brokers: unclean.clone(),
                })
            });
            let Some(change) = change else {
                log_still_offline(broker, &topic, partition, &replicas, &state, &live);
                continue;
            };
            let new_state = match &change {
                PartitionChange::Elect(election) => PartitionStateJson {
                    controller_epoch: epoch,
                    leader: election.leader,
                    version: 1,
                    leader_epoch: state.leader_epoch + 1,
                    isr: election.isr.clone(),
                    elr: election.elr.clone(),
                },
                PartitionChange::RemoveOffline { isr, elr, .. } => PartitionStateJson {
                    controller_epoch: epoch,
                    isr: isr.clone(),
                    elr: elr.clone(),
                    ..base.clone()
                },
                PartitionChange::UncleanShutdown { .. } => PartitionStateJson {
                    controller_epoch: epoch,
                    leader_epoch: state.leader_epoch + i32::from(base.leader != state.leader),
                    ..base.clone()
                },
            };
            #[cfg(feature = "planted-bugs")] // planted bug: leader-epoch-not-bumped
            let new_state = match &change {
                PartitionChange::Elect(_)
                    if planted::is_active(PlantedBug::LeaderEpochNotBumped) =>
                {
                    PartitionStateJson {
                        leader_epoch: state.leader_epoch,
                        ..new_state
                    }
                }
                _ => new_state,
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
                Ok(_) => log_change(broker, &topic, partition, &change, &state, &new_state),
                // Someone (a leader changing its ISR) wrote first: the next round re-reads.
                Err(ZkClientError::BadVersion { .. }) => all_written = false,
                Err(error) => return Err(error),
            }
        }
    }
    if all_written {
        for broker_id in unclean {
            broker.coordinator.clear_unclean_shutdown(broker_id).await?;
            tracing::info!(
                "[Controller id={}] Broker {broker_id} is back from an unclean shutdown: it left \
                 every ELR, and every ISR in which another replica is eligible",
                broker.id()
            );
        }
    }
    Ok(())
}

/// A partition's state once the brokers of `unclean` (back from an unclean shutdown) are out
/// of its ELR and, while another replica is eligible, its ISR; a leader among them is no
/// longer the leader (its log may have lost what it had acknowledged).
fn without_unclean(state: &PartitionStateJson, unclean: &[i32]) -> PartitionStateJson {
    let mut base = state.clone();
    for broker in unclean {
        if let Some((isr, elr)) = super::elr::without_unclean(&base.isr, &base.elr, *broker) {
            base.isr = isr;
            base.elr = elr;
        }
        if base.leader == *broker {
            base.leader = -1;
        }
    }
    base
}

/// The topic's `min.insync.replicas`, read from the coordinator, else the broker's.
async fn min_insync_replicas(broker: &Broker, topic: &str) -> Result<i32, ZkClientError> {
    Ok(broker
        .coordinator
        .topic_config(topic)
        .await?
        .get("min.insync.replicas")
        .and_then(|value| value.parse().ok())
        .unwrap_or(broker.config.min_insync_replicas))
}

/// Says, on every check, why a partition with live replicas stays without a leader: none of its
/// ISR is alive and unclean election is off (Kafka logs each failed election attempt likewise).
/// Nothing for a partition whose leader lives, or none of whose replicas does.
fn log_still_offline(
    broker: &Broker,
    topic: &str,
    partition: i32,
    replicas: &[i32],
    state: &PartitionStateJson,
    live: &[i32],
) {
    if state.leader >= 0 && live.contains(&state.leader) {
        return;
    }
    let live_replicas: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|replica| live.contains(replica))
        .collect();
    if live_replicas.is_empty() {
        return;
    }
    let elr = if state.elr.is_empty() {
        String::new()
    } else {
        format!(" or its eligible leader replicas ({})", join(&state.elr))
    };
    tracing::info!(
        "[Controller id={}] Partition {topic}-{partition} stays offline: no replica in its ISR \
         ({}){elr} is alive and unclean.leader.election.enable is false (live replicas: {})",
        broker.id(),
        join(&state.isr),
        join(&live_replicas)
    );
}

fn log_change(
    broker: &Broker,
    topic: &str,
    partition: i32,
    change: &PartitionChange,
    old: &PartitionStateJson,
    new: &PartitionStateJson,
) {
    let controller = broker.id();
    let elr = if new.elr.is_empty() && old.elr.is_empty() {
        String::new()
    } else {
        format!(",ELR:{}", join(&new.elr))
    };
    let state = format!(
        "(Leader:{},ISR:{}{elr},LeaderEpoch:{},ControllerEpoch:{})",
        new.leader,
        join(&new.isr),
        new.leader_epoch,
        new.controller_epoch
    );
    match change {
        PartitionChange::Elect(election) => {
            if election.unclean {
                tracing::warn!(
                    "[Controller id={controller}] Unclean leader election. Copying data from a \
                     replica not in the ISR: partition {topic}-{partition}, leader {}",
                    election.leader
                );
            }
            tracing::info!(
                "[Controller id={controller}] Partition {topic}-{partition} state changed to \
                 {state} (old leader {})",
                old.leader
            );
        }
        PartitionChange::RemoveOffline { removed, .. } => tracing::info!(
            "[Controller id={controller}] Removed offline replicas {} from the ISR of \
             {topic}-{partition}: state changed to {state}",
            join(removed)
        ),
        PartitionChange::UncleanShutdown { brokers } => tracing::info!(
            "[Controller id={controller}] Brokers {} back from an unclean shutdown are no \
             longer eligible to lead {topic}-{partition}: state changed to {state}",
            join(brokers)
        ),
    }
}

/// The topic's `unclean.leader.election.enable`, read from the coordinator (not the metadata
/// cache, which may not have seen a change that just woke the controller), else the broker's.
async fn unclean_allowed(broker: &Broker, topic: &str) -> Result<bool, ZkClientError> {
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
        let election = elect(&[3, 2, 1], &[1, 2, 3], &[1, 2], 3, false, None);
        assert_eq!(election.leader, 2);
        assert_eq!(election.isr, vec![1, 2]);
    }

    #[test]
    fn without_a_live_isr_member_there_is_no_leader_and_the_isr_keeps_the_last() {
        let election = elect(&[3, 2, 1], &[3], &[1, 2], 3, false, None);
        assert_eq!(election.leader, -1);
        assert_eq!(election.isr, vec![3]);
        // The last ISR member comes back: it leads.
        let back = elect(&[3, 2, 1], &[3], &[1, 2, 3], -1, false, None);
        assert_eq!(back.leader, 3);
    }

    #[test]
    fn dead_brokers_leave_the_isr_of_a_partition_whose_leader_lives() {
        assert_eq!(
            partition_change(&[1, 2, 3], 1, &[1, 2, 3], &[1, 2], false, None),
            Some(PartitionChange::RemoveOffline {
                isr: vec![1, 2],
                elr: vec![],
                removed: vec![3]
            })
        );
        // Nothing dead in the ISR: nothing to do; a dead replica outside the ISR is no matter.
        assert_eq!(
            partition_change(&[1, 2, 3], 1, &[1, 2], &[1, 2], false, None),
            None
        );
        // The leader dead: an election, which drops the dead from the ISR too.
        assert_eq!(
            partition_change(&[1, 2, 3], 3, &[1, 2, 3], &[1, 2], false, None),
            Some(PartitionChange::Elect(Election {
                leader: 1,
                isr: vec![1, 2],
                elr: vec![],
                unclean: false
            }))
        );
        // Leaderless with its last ISR member dead: stays so.
        assert_eq!(
            partition_change(&[1, 2, 3], -1, &[3], &[1, 2], false, None),
            None
        );
    }

    #[test]
    fn with_eligible_leader_replicas_the_last_replica_standing_does_not_lead_after_an_unclean_shutdown()
     {
        // min ISR 2, ISR shrunk to {1} while 2 and 3 were frozen: they are in the ELR.
        let state = PartitionStateJson {
            controller_epoch: 1,
            leader: -1,
            version: 1,
            leader_epoch: 4,
            isr: vec![1],
            elr: vec![2, 3],
        };
        // Broker 1 comes back from an unclean shutdown: it leaves the ISR (others are eligible).
        let base = without_unclean(&state, &[1]);
        assert_eq!((base.isr.clone(), base.elr.clone()), (vec![], vec![2, 3]));
        let eligible = Some(Eligible {
            elr: &base.elr,
            min_isr: 2,
        });
        // Only broker 1 is alive: nobody to elect (it is not the last known leader any more).
        assert_eq!(
            partition_change(&[1, 2, 3], base.leader, &base.isr, &[1], false, eligible),
            None
        );
        // Broker 2 is back: it leads from the ELR.
        assert_eq!(
            partition_change(&[1, 2, 3], base.leader, &base.isr, &[1, 2], false, eligible),
            Some(PartitionChange::Elect(Election {
                leader: 2,
                isr: vec![2],
                elr: vec![3],
                unclean: false
            }))
        );
        // With nobody else eligible, the last replica standing stays and leads, as before.
        let alone = PartitionStateJson {
            elr: vec![],
            ..state.clone()
        };
        assert_eq!(without_unclean(&alone, &[1]), alone);
        // A leader that comes back from an unclean shutdown is no longer the leader.
        let led = PartitionStateJson {
            leader: 1,
            isr: vec![1, 2],
            elr: vec![],
            ..state
        };
        let base = without_unclean(&led, &[1]);
        assert_eq!((base.leader, base.isr), (-1, vec![2]));
    }

    #[test]
    fn unclean_election_takes_the_first_live_replica_alone() {
        let election = elect(&[3, 2, 1], &[3], &[1, 2], 3, true, None);
        assert_eq!(election.leader, 2);
        assert_eq!(election.isr, vec![2]);
        assert!(election.unclean);
    }
}
