//! The five states of a classic consumer group and which transitions are legal, as Kafka's
//! `GroupMetadata.validPreviousStates` defines them:
//!
//! - `Empty`: no members (a group that only stores offsets, or whose members all left).
//!   A new member's JoinGroup moves it to `PreparingRebalance`.
//! - `PreparingRebalance`: JoinGroups are parked until every known member has rejoined (or the
//!   rebalance timeout passes); heartbeats are answered REBALANCE_IN_PROGRESS; commits of the
//!   current generation are still accepted.
//! - `CompletingRebalance`: the new generation exists; SyncGroups are parked until the leader
//!   sends the assignment; commits are answered REBALANCE_IN_PROGRESS.
//! - `Stable`: the assignment is stored; heartbeats, commits and SyncGroups are served.
//! - `Dead`: the group was unloaded (its coordinator moved) or removed; nothing is served.

/// A group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Whether a group in `self` may move to `target`.
    pub fn can_transition_to(self, target: GroupState) -> bool {
        use GroupState::*;
        match target {
            Dead => true,
            CompletingRebalance => self == PreparingRebalance,
            Stable => self == CompletingRebalance,
            PreparingRebalance => matches!(self, Stable | CompletingRebalance | Empty),
            Empty => self == PreparingRebalance,
        }
    }

    /// Whether a rebalance may start from this state.
    pub fn can_rebalance(self) -> bool {
        self.can_transition_to(GroupState::PreparingRebalance)
    }

    /// The name DescribeGroups and ListGroups report (Kafka's `GroupState.toString`).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GroupState::*;
    use super::*;

    #[test]
    fn transitions_follow_kafka() {
        let all = [Empty, PreparingRebalance, CompletingRebalance, Stable, Dead];
        let legal: Vec<(GroupState, GroupState)> = all
            .iter()
            .flat_map(|from| all.iter().map(move |to| (*from, *to)))
            .filter(|(from, to)| from.can_transition_to(*to))
            .filter(|(_, to)| *to != Dead)
            .collect();
        assert_eq!(
            legal,
            vec![
                (Empty, PreparingRebalance),
                (PreparingRebalance, Empty),
                (PreparingRebalance, CompletingRebalance),
                (CompletingRebalance, PreparingRebalance),
                (CompletingRebalance, Stable),
                (Stable, PreparingRebalance),
            ]
        );
        assert!(all.iter().all(|state| state.can_transition_to(Dead)));
        assert!(!PreparingRebalance.can_rebalance());
        assert!(!Dead.can_rebalance());
        assert_eq!(CompletingRebalance.name(), "CompletingRebalance");
    }
}
