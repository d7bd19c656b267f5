//! The controller's leader-election decisions that an operator or the auto rebalance asks for
//! (Kafka's `PartitionLeaderElectionAlgorithms`), as pure functions of a partition's
//! assignment, ISR, current leader and the live brokers:
//! - preferred: the first replica of the assignment, if it is alive and in the ISR;
//! - unclean (ElectLeaders UNCLEAN): only for a partition without a live leader, the first live
//!   ISR member, else the first live replica alone in the ISR;
//! - the auto rebalance: which partitions to move back to their preferred replica, per broker,
//!   once that broker's share of non-preferred leadership exceeds the allowed percentage.
//!
//! The offline-partition election (a leader died) is [`super::controller::elect`].

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

/// ElectLeaders election types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    /// From the request's `election_type` (0 preferred, 1 unclean).
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// One partition's state as the election sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView<'a> {
    pub replicas: &'a [i32],
    pub isr: &'a [i32],
    pub leader: i32,
}

/// A new leader and ISR for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLeader {
    pub leader: i32,
    pub isr: Vec<i32>,
    /// Elected from outside the ISR: acknowledged data may be lost.
    pub unclean: bool,
}

/// Why an election was not done: Kafka's error and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotElected {
    pub error: ResponseError,
    pub message: String,
}

impl NotElected {
    fn new(error: ResponseError, message: String) -> Self {
        NotElected { error, message }
    }
}

/// Decides an ElectLeaders election for the partition named `name` (`topic-partition`).
pub fn decide(
    kind: ElectionType,
    name: &str,
    partition: &PartitionView<'_>,
    live: &[i32],
) -> Result<NewLeader, NotElected> {
    match kind {
        ElectionType::Preferred => preferred(name, partition, live),
        ElectionType::Unclean => unclean(name, partition, live),
    }
}

fn preferred(
    name: &str,
    partition: &PartitionView<'_>,
    live: &[i32],
) -> Result<NewLeader, NotElected> {
    let Some(&preferred) = partition.replicas.first() else {
        return Err(NotElected::new(
            ResponseError::PreferredLeaderNotAvailable,
            format!("Partition {name} has no replicas"),
        ));
    };
    if partition.leader == preferred {
        return Err(NotElected::new(
            ResponseError::ElectionNotNeeded,
            "Leader election not needed for topic partition.".to_string(),
        ));
    }
    if live.contains(&preferred) && partition.isr.contains(&preferred) {
        return Ok(NewLeader {
            leader: preferred,
            isr: partition.isr.to_vec(),
            unclean: false,
        });
    }
    Err(NotElected::new(
        ResponseError::PreferredLeaderNotAvailable,
        format!(
            "Failed to elect leader for partition {name} under strategy \
             PreferredReplicaPartitionLeaderElectionStrategy: preferred replica {preferred} is \
             {}",
            if live.contains(&preferred) {
                "not in the ISR"
            } else {
                "not alive"
            }
        ),
    ))
}

fn unclean(
    name: &str,
    partition: &PartitionView<'_>,
    live: &[i32],
) -> Result<NewLeader, NotElected> {
    if partition.leader >= 0 && live.contains(&partition.leader) {
        return Err(NotElected::new(
            ResponseError::ElectionNotNeeded,
            "Leader election not needed for topic partition.".to_string(),
        ));
    }
    let live_isr: Vec<i32> = partition
        .isr
        .iter()
        .copied()
        .filter(|r| live.contains(r))
        .collect();
    if let Some(leader) = partition
        .replicas
        .iter()
        .copied()
        .find(|r| live_isr.contains(r))
    {
        return Ok(NewLeader {
            leader,
            isr: live_isr,
            unclean: false,
        });
    }
    if let Some(leader) = partition
        .replicas
        .iter()
        .copied()
        .find(|r| live.contains(r))
    {
        return Ok(NewLeader {
            leader,
            isr: vec![leader],
            unclean: true,
        });
    }
    Err(NotElected::new(
        ResponseError::EligibleLeadersNotAvailable,
        format!(
            "Failed to elect leader for partition {name} under strategy \
             UncleanPartitionLeaderElectionStrategy: no replica is alive"
        ),
    ))
}

/// The auto rebalance: the partitions (keys of `partitions`) whose leadership should move back
/// to the preferred replica. For each broker, its imbalance is the share of the partitions it
/// is preferred for that another broker leads; above `percentage` percent, every such
/// partition whose preferred replica is alive and in the ISR is chosen.
pub fn imbalanced<K: Clone + Ord>(
    partitions: &BTreeMap<K, PartitionView<'_>>,
    live: &[i32],
    percentage: u32,
) -> Vec<K> {
    let mut by_preferred: BTreeMap<i32, (usize, Vec<K>)> = BTreeMap::new();
    for (key, partition) in partitions {
        let Some(&preferred) = partition.replicas.first() else {
            continue;
        };
        let entry = by_preferred.entry(preferred).or_default();
        entry.0 += 1;
        if partition.leader != preferred {
            entry.1.push(key.clone());
        }
    }
    let mut chosen = Vec::new();
    for (preferred, (total, not_led)) in by_preferred {
        if total == 0 || not_led.is_empty() || !live.contains(&preferred) {
            continue;
        }
        // not_led / total > percentage / 100, in integers.
        if not_led.len() * 100 <= total * percentage as usize {
            continue;
        }
        chosen.extend(not_led.into_iter().filter(|key| {
            partitions
                .get(key)
                .is_some_and(|partition| partition.isr.contains(&preferred))
        }));
    }
    chosen
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn view<'a>(replicas: &'a [i32], isr: &'a [i32], leader: i32) -> PartitionView<'a> {
        PartitionView {
            replicas,
            isr,
            leader,
        }
    }

    #[test]
    fn preferred_election_moves_leadership_to_the_first_replica_in_the_isr() {
        let elected = decide(
            ElectionType::Preferred,
            "t-0",
            &view(&[1, 2, 3], &[2, 3, 1], 2),
            &[1, 2, 3],
        )
        .unwrap();
        assert_eq!(elected.leader, 1);
        assert_eq!(elected.isr, vec![2, 3, 1]);
        let not_needed = decide(
            ElectionType::Preferred,
            "t-0",
            &view(&[1, 2, 3], &[1, 2, 3], 1),
            &[1, 2, 3],
        )
        .unwrap_err();
        assert_eq!(not_needed.error, ResponseError::ElectionNotNeeded);
        let out_of_sync = decide(
            ElectionType::Preferred,
            "t-0",
            &view(&[1, 2, 3], &[2, 3], 2),
            &[1, 2, 3],
        )
        .unwrap_err();
        assert_eq!(
            out_of_sync.error,
            ResponseError::PreferredLeaderNotAvailable
        );
    }

    #[test]
    fn unclean_election_only_for_a_partition_without_a_live_leader() {
        let led = decide(
            ElectionType::Unclean,
            "t-0",
            &view(&[1, 2, 3], &[1], 1),
            &[1, 2, 3],
        )
        .unwrap_err();
        assert_eq!(led.error, ResponseError::ElectionNotNeeded);
        let elected = decide(
            ElectionType::Unclean,
            "t-0",
            &view(&[1, 2, 3], &[1], -1),
            &[2, 3],
        )
        .unwrap();
        assert_eq!((elected.leader, elected.unclean), (2, true));
        assert_eq!(elected.isr, vec![2]);
        let nobody =
            decide(ElectionType::Unclean, "t-0", &view(&[1, 2], &[1], -1), &[3]).unwrap_err();
        assert_eq!(nobody.error, ResponseError::EligibleLeadersNotAvailable);
    }

    #[test]
    fn rebalance_only_past_the_imbalance_percentage() {
        let mut partitions = BTreeMap::new();
        // Broker 1 is preferred for 0..10; broker 2 leads partition 0 and 1 (20%).
        let all = [1, 2, 3];
        for index in 0..10 {
            let leader = if index < 2 { 2 } else { 1 };
            partitions.insert(index, view(&all, &all, leader));
        }
        assert_eq!(imbalanced(&partitions, &all, 10), vec![0, 1]);
        assert!(imbalanced(&partitions, &all, 20).is_empty());
        // The preferred replica down: nothing to do.
        assert!(imbalanced(&partitions, &[2, 3], 10).is_empty());
    }
}
