//! Resolving fault targets ([`Target`], the workload's words for *whom* to hit) to node names
//! at fault time, from a snapshot of live metadata, what is running ([`Live`]: brokers, group
//! members, the group's coordinator) and the nodes earlier steps labelled.

use std::collections::BTreeMap;

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use crate::cluster::broker_name;
use crate::cluster::metadata::ClusterMetadata;
use crate::workload::target::Target;

/// Why a target could not be resolved right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("partition {0} has no leader")]
    NoLeader(i32),
    #[error("partition {0} is not in the metadata")]
    UnknownPartition(i32),
    #[error("partition {0} has no in-sync follower")]
    NoSuccessor(i32),
    #[error("no controller in the metadata")]
    NoController,
    #[error("no broker to choose from")]
    NoBrokers,
    #[error("no step labelled `{0}` has run")]
    UnknownLabel(String),
    #[error("{0}")]
    NoGroupCoordinator(String),
    #[error("no consumer group member is running")]
    NoConsumers,
}

/// What is up right now, as resolving a target needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// The running brokers' ids.
    pub brokers: Vec<i32>,
    /// The running consumer group members' node names (`consumer-1`, ...).
    pub consumers: Vec<String>,
    /// The group's coordinator as FindCoordinator answered, or why not (looked up only for
    /// `group-coordinator`).
    pub group_coordinator: Option<Result<i32, String>>,
}

impl Target {
    /// The node names this target means now. `live` says what is running; `labels` the nodes
    /// earlier steps remembered.
    pub fn resolve(
        &self,
        metadata: Option<&ClusterMetadata>,
        topic: &str,
        partition: i32,
        live: &Live,
        labels: &BTreeMap<String, Vec<String>>,
        rng: &mut impl Rng,
    ) -> Result<Resolved, ResolveError> {
        let brokers = live.brokers.as_slice();
        let names = |ids: &[i32]| ids.iter().map(|id| broker_name(*id)).collect::<Vec<_>>();
        let resolved = match self {
            Target::Leader => {
                let state = metadata
                    .and_then(|metadata| metadata.partition(partition))
                    .ok_or(ResolveError::UnknownPartition(partition))?;
                let leader = state.leader.ok_or(ResolveError::NoLeader(partition))?;
                Resolved::new(names(&[leader]), format!("leader of {topic}-{partition}"))
            }
            Target::Followers => {
                let state = metadata
                    .and_then(|metadata| metadata.partition(partition))
                    .ok_or(ResolveError::UnknownPartition(partition))?;
                let leader = state.leader.ok_or(ResolveError::NoLeader(partition))?;
                let followers: Vec<i32> = state
                    .replicas
                    .iter()
                    .copied()
                    .filter(|id| *id != leader)
                    .collect();
                Resolved::new(
                    names(&followers),
                    format!("followers of {topic}-{partition}"),
                )
            }
            Target::Successor => {
                let state = metadata
                    .and_then(|metadata| metadata.partition(partition))
                    .ok_or(ResolveError::UnknownPartition(partition))?;
                let leader = state.leader.ok_or(ResolveError::NoLeader(partition))?;
                let successor = state
                    .replicas
                    .iter()
                    .copied()
                    .find(|id| *id != leader && state.isr.contains(id))
                    .ok_or(ResolveError::NoSuccessor(partition))?;
                Resolved::new(
                    names(&[successor]),
                    format!("successor of broker {leader} as leader of {topic}-{partition}"),
                )
            }
            Target::Controller => {
                let controller = metadata
                    .and_then(|metadata| metadata.controller_id)
                    .ok_or(ResolveError::NoController)?;
                Resolved::new(names(&[controller]), "controller".into())
            }
            Target::Random => {
                let id = brokers.choose(rng).ok_or(ResolveError::NoBrokers)?;
                Resolved::new(names(&[*id]), "random broker".into())
            }
            Target::Broker(id) => Resolved::new(names(&[*id]), "named".into()),
            Target::Coordinator => Resolved::new(vec!["coordinator".into()], "named".into()),
            Target::Majority | Target::Minority => {
                if brokers.is_empty() {
                    return Err(ResolveError::NoBrokers);
                }
                let count = if *self == Target::Majority {
                    brokers.len() / 2 + 1
                } else {
                    (brokers.len().saturating_sub(1) / 2).max(1)
                };
                let mut shuffled = brokers.to_vec();
                shuffled.shuffle(rng);
                shuffled.truncate(count);
                shuffled.sort_unstable();
                let why = if *self == Target::Majority {
                    "majority"
                } else {
                    "minority"
                };
                Resolved::new(names(&shuffled), why.into())
            }
            Target::AllBrokers => Resolved::new(names(brokers), "all brokers".into()),
            Target::Label(label) => {
                let nodes = labels
                    .get(label)
                    .ok_or_else(|| ResolveError::UnknownLabel(label.clone()))?;
                Resolved::new(nodes.clone(), format!("label {label}"))
            }
            Target::Except(excepted) => {
                let mut nodes: Vec<&String> = Vec::new();
                for label in excepted {
                    let labelled = labels
                        .get(label)
                        .ok_or_else(|| ResolveError::UnknownLabel(label.clone()))?;
                    nodes.extend(labelled);
                }
                let others: Vec<i32> = brokers
                    .iter()
                    .copied()
                    .filter(|id| !nodes.contains(&&broker_name(*id)))
                    .collect();
                let which = if excepted.len() == 1 {
                    "label"
                } else {
                    "labels"
                };
                Resolved::new(
                    names(&others),
                    format!("every broker but {which} {}", excepted.join("+")),
                )
            }
            Target::GroupCoordinator => match &live.group_coordinator {
                Some(Ok(id)) => Resolved::new(names(&[*id]), "coordinator of the group".into()),
                Some(Err(reason)) => return Err(ResolveError::NoGroupCoordinator(reason.clone())),
                None => {
                    return Err(ResolveError::NoGroupCoordinator(
                        "the group's coordinator was not looked up".into(),
                    ));
                }
            },
            Target::Consumer => {
                let member = live
                    .consumers
                    .choose(rng)
                    .ok_or(ResolveError::NoConsumers)?;
                Resolved::new(vec![member.clone()], "a member of the group".into())
            }
        };
        Ok(resolved)
    }
}

/// A target resolved to node names, with the reason written in the history (`why`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub nodes: Vec<String>,
    pub why: String,
}

impl Resolved {
    fn new(nodes: Vec<String>, why: String) -> Self {
        Resolved { nodes, why }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::cluster::metadata::PartitionState;

    fn metadata() -> ClusterMetadata {
        ClusterMetadata {
            brokers: vec![1, 2, 3],
            broker_addresses: BTreeMap::new(),
            controller_id: Some(2),
            partitions: vec![
                PartitionState {
                    partition: 0,
                    leader: Some(3),
                    leader_epoch: 4,
                    replicas: vec![3, 1, 2],
                    isr: vec![3, 1, 2],
                },
                PartitionState {
                    partition: 1,
                    leader: None,
                    leader_epoch: 5,
                    replicas: vec![1, 2, 3],
                    isr: vec![1],
                },
            ],
        }
    }

    fn brokers(ids: &[i32]) -> Live {
        Live {
            brokers: ids.to_vec(),
            ..Live::default()
        }
    }

    fn resolve(text: &str, partition: i32) -> Result<Resolved, ResolveError> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let labels = BTreeMap::from([
            ("old".to_string(), vec!["broker-1".to_string()]),
            ("new".to_string(), vec!["broker-2".to_string()]),
        ]);
        Target::parse(text).expect("parses").resolve(
            Some(&metadata()),
            "t",
            partition,
            &brokers(&[1, 2, 3]),
            &labels,
            &mut rng,
        )
    }

    #[test]
    fn leader_followers_and_controller_come_from_metadata() {
        let leader = resolve("leader", 0).expect("leader");
        assert_eq!(leader.nodes, vec!["broker-3"]);
        assert_eq!(leader.why, "leader of t-0");
        assert_eq!(
            resolve("followers", 0).expect("followers").nodes,
            vec!["broker-1", "broker-2"]
        );
        assert_eq!(
            resolve("controller", 0).expect("controller").nodes,
            vec!["broker-2"]
        );
    }

    #[test]
    fn the_successor_is_the_first_in_sync_replica_in_assignment_order() {
        // Partition 0: replicas [3, 1, 2], leader 3, ISR [3, 1, 2]: broker 1 is next.
        assert_eq!(
            resolve("successor", 0).expect("successor").nodes,
            vec!["broker-1"]
        );
        let mut out_of_sync = metadata();
        out_of_sync.partitions[0].isr = vec![3, 2];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let resolved = Target::Successor
            .resolve(
                Some(&out_of_sync),
                "t",
                0,
                &brokers(&[1, 2, 3]),
                &BTreeMap::new(),
                &mut rng,
            )
            .expect("successor");
        assert_eq!(resolved.nodes, vec!["broker-2"]);
        out_of_sync.partitions[0].isr = vec![3];
        assert_eq!(
            Target::Successor.resolve(
                Some(&out_of_sync),
                "t",
                0,
                &brokers(&[1, 2, 3]),
                &BTreeMap::new(),
                &mut rng
            ),
            Err(ResolveError::NoSuccessor(0))
        );
    }

    #[test]
    fn except_a_label_is_every_other_running_broker() {
        assert_eq!(
            resolve("except:old", 0).expect("except").nodes,
            vec!["broker-2", "broker-3"]
        );
        assert_eq!(
            resolve("except:nobody", 0),
            Err(ResolveError::UnknownLabel("nobody".into()))
        );
        assert_eq!(
            resolve("except:old+new", 0).expect("except two").nodes,
            vec!["broker-3"]
        );
        assert_eq!(
            resolve("except:old+nobody", 0),
            Err(ResolveError::UnknownLabel("nobody".into()))
        );
    }

    #[test]
    fn a_partition_without_leader_is_an_error() {
        assert_eq!(resolve("leader", 1), Err(ResolveError::NoLeader(1)));
        assert_eq!(resolve("leader", 9), Err(ResolveError::UnknownPartition(9)));
    }

    #[test]
    fn names_ids_labels_and_sizes() {
        assert_eq!(
            resolve("broker-2", 0).expect("named").nodes,
            vec!["broker-2"]
        );
        assert_eq!(resolve("3", 0).expect("id").nodes, vec!["broker-3"]);
        assert_eq!(
            resolve("coordinator", 0).expect("coordinator").nodes,
            vec!["coordinator"]
        );
        assert_eq!(
            resolve("label:old", 0).expect("label").nodes,
            vec!["broker-1"]
        );
        assert_eq!(resolve("majority", 0).expect("majority").nodes.len(), 2);
        assert_eq!(resolve("minority", 0).expect("minority").nodes.len(), 1);
        assert_eq!(resolve("all-brokers", 0).expect("all").nodes.len(), 3);
    }

    #[test]
    fn group_targets_come_from_find_coordinator_and_the_running_members() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut live = Live {
            brokers: vec![1, 2, 3],
            consumers: vec!["consumer-1".into(), "consumer-3".into()],
            group_coordinator: Some(Ok(2)),
        };
        let labels = BTreeMap::new();
        let coordinator = Target::GroupCoordinator
            .resolve(None, "t", 0, &live, &labels, &mut rng)
            .expect("coordinator");
        assert_eq!(coordinator.nodes, vec!["broker-2"]);
        assert_eq!(coordinator.why, "coordinator of the group");
        let member = Target::Consumer
            .resolve(None, "t", 0, &live, &labels, &mut rng)
            .expect("member");
        assert!(live.consumers.contains(&member.nodes[0]), "{member:?}");
        live.group_coordinator = Some(Err("COORDINATOR_NOT_AVAILABLE".into()));
        assert_eq!(
            Target::GroupCoordinator.resolve(None, "t", 0, &live, &labels, &mut rng),
            Err(ResolveError::NoGroupCoordinator(
                "COORDINATOR_NOT_AVAILABLE".into()
            ))
        );
        live.consumers.clear();
        assert_eq!(
            Target::Consumer.resolve(None, "t", 0, &live, &labels, &mut rng),
            Err(ResolveError::NoConsumers)
        );
    }

    #[test]
    fn random_choices_repeat_with_the_seed() {
        let picks = || {
            let mut rng = ChaCha8Rng::seed_from_u64(42);
            (0..20)
                .map(|_| {
                    Target::Random
                        .resolve(
                            None,
                            "t",
                            0,
                            &brokers(&[1, 2, 3]),
                            &BTreeMap::new(),
                            &mut rng,
                        )
                        .expect("random")
                        .nodes
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(), picks());
    }
}
