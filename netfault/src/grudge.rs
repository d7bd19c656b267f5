//! Grudges, as Jepsen names them, and the topologies that make them. Pure: no system calls.
//!
//! A grudge maps a node to the set of nodes it drops traffic from. A mutual grudge (each of two
//! nodes drops the other) is a partition between them: nothing passes either way. A one-way
//! grudge (`a` drops `b`, `b` does not drop `a`) means `a` hears nothing from `b` except the
//! replies to connections `a` opened: `b` cannot reach `a` (its connections time out, its
//! datagrams are lost), while `a` can still open connections to `b` and use them. So for TCP
//! a new connection from `x` to `y` succeeds exactly when `y` does not drop `x`
//! ([`Grudge::connects`]). Processes outside the nodes (clients in the root namespace) are never
//! in a grudge.
//!
//! Topologies ([`isolate`], [`halves`], [`bridge`], [`ring`], [`one_way`]) follow Jepsen's
//! `nemesis.clj`; the random ones take the caller's seeded generator.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::seq::SliceRandom;
use serde::Serialize;

/// Node -> the nodes it drops traffic from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Grudge {
    drops: BTreeMap<String, BTreeSet<String>>,
}

/// Why a topology cannot be built for these nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("a `{topology}` partition needs at least {needed} nodes; there are {nodes}")]
    TooFewNodes {
        topology: &'static str,
        needed: usize,
        nodes: usize,
    },
    #[error("`{topology}` targets {target:?}, which is not one of the nodes")]
    UnknownTarget {
        topology: &'static str,
        target: String,
    },
}

impl Grudge {
    /// No one drops anything: a healed network.
    pub fn new() -> Self {
        Self::default()
    }

    /// `receiver` drops traffic from `sender` (a node never drops itself).
    pub fn drop_from(&mut self, receiver: &str, sender: &str) {
        if receiver != sender {
            self.drops
                .entry(receiver.to_string())
                .or_default()
                .insert(sender.to_string());
        }
    }

    /// Whether `receiver` drops traffic from `sender`.
    pub fn drops(&self, receiver: &str, sender: &str) -> bool {
        self.drops
            .get(receiver)
            .is_some_and(|senders| senders.contains(sender))
    }

    /// Whether `receiver` and `sender` drop each other (a partition between them).
    pub fn is_mutual(&self, receiver: &str, sender: &str) -> bool {
        self.drops(receiver, sender) && self.drops(sender, receiver)
    }

    /// Whether a new TCP connection from `from` to `to` succeeds under this grudge: `to` must not
    /// drop `from` (if only `from` drops `to`, the replies to `from`'s own connection pass).
    pub fn connects(&self, from: &str, to: &str) -> bool {
        !self.drops(to, from)
    }

    /// The nodes `receiver` drops traffic from.
    pub fn dropped_by(&self, receiver: &str) -> impl Iterator<Item = &str> {
        self.drops
            .get(receiver)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Each node that drops something, with what it drops.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &BTreeSet<String>)> {
        self.drops
            .iter()
            .filter(|(_, senders)| !senders.is_empty())
            .map(|(receiver, senders)| (receiver.as_str(), senders))
    }

    /// Every node the grudge names, as receiver or sender.
    pub fn nodes(&self) -> BTreeSet<&str> {
        self.drops
            .iter()
            .flat_map(|(receiver, senders)| {
                std::iter::once(receiver.as_str()).chain(senders.iter().map(String::as_str))
            })
            .collect()
    }

    /// Whether nothing is dropped.
    pub fn is_empty(&self) -> bool {
        self.drops.values().all(BTreeSet::is_empty)
    }
}

/// Every node drops every node of the other components (Jepsen's `complete-grudge`).
pub fn complete<S: AsRef<str>>(components: &[Vec<S>]) -> Grudge {
    let mut grudge = Grudge::new();
    for (index, component) in components.iter().enumerate() {
        for (other_index, other) in components.iter().enumerate() {
            if index == other_index {
                continue;
            }
            for receiver in component {
                for sender in other {
                    grudge.drop_from(receiver.as_ref(), sender.as_ref());
                }
            }
        }
    }
    grudge
}

/// `target` and the rest cannot hear each other (Jepsen's `split-one`).
pub fn isolate<S: AsRef<str>>(nodes: &[S], target: &str) -> Result<Grudge, TopologyError> {
    let (target, rest) = split_target("isolate", nodes, target)?;
    Ok(complete(&[vec![target], rest]))
}

/// `target` hears nothing from the rest (but the replies to its own connections); the rest
/// hear `target`.
pub fn one_way<S: AsRef<str>>(nodes: &[S], target: &str) -> Result<Grudge, TopologyError> {
    let (target, rest) = split_target("one-way", nodes, target)?;
    let mut grudge = Grudge::new();
    for sender in rest {
        grudge.drop_from(target, sender);
    }
    Ok(grudge)
}

/// A random minority (`n / 2` nodes) and majority that cannot hear each other (Jepsen's
/// `bisect` of shuffled nodes, smaller half first).
pub fn halves<S: AsRef<str>, R: Rng + ?Sized>(
    nodes: &[S],
    rng: &mut R,
) -> Result<Grudge, TopologyError> {
    at_least("halves", nodes, 2)?;
    let (minority, majority) = shuffled_halves(nodes, rng);
    Ok(complete(&[minority, majority]))
}

/// Random halves as in [`halves`], except one node of the majority (the bridge) keeps hearing
/// and being heard by everyone: with 5 nodes, {a, b, c} and {c, d, e}.
pub fn bridge<S: AsRef<str>, R: Rng + ?Sized>(
    nodes: &[S],
    rng: &mut R,
) -> Result<Grudge, TopologyError> {
    at_least("bridge", nodes, 3)?;
    let (minority, mut majority) = shuffled_halves(nodes, rng);
    majority.remove(0);
    Ok(complete(&[minority, majority]))
}

/// Majorities ring: the nodes in a random ring, each hearing (and heard by) exactly those
/// within `k` steps of it, with `k` the smallest for which `2k + 1` is a majority. Every node
/// sees a majority, and no two see the same one. Needs 4 nodes: with 3, any majority window is
/// the whole ring.
pub fn ring<S: AsRef<str>, R: Rng + ?Sized>(
    nodes: &[S],
    rng: &mut R,
) -> Result<Grudge, TopologyError> {
    at_least("ring", nodes, 4)?;
    let mut ring: Vec<&str> = nodes.iter().map(AsRef::as_ref).collect();
    ring.shuffle(rng);
    let count = ring.len();
    let reach = majority(count) / 2;
    let mut grudge = Grudge::new();
    for (index, receiver) in ring.iter().enumerate() {
        for (other_index, sender) in ring.iter().enumerate() {
            let forward = (other_index + count - index) % count;
            let distance = forward.min(count - forward);
            if distance > reach {
                grudge.drop_from(receiver, sender);
            }
        }
    }
    Ok(grudge)
}

/// The smallest number of `count` nodes that is more than half.
pub fn majority(count: usize) -> usize {
    count / 2 + 1
}

fn shuffled_halves<S: AsRef<str>, R: Rng + ?Sized>(
    nodes: &[S],
    rng: &mut R,
) -> (Vec<String>, Vec<String>) {
    let mut shuffled: Vec<String> = nodes.iter().map(|node| node.as_ref().to_string()).collect();
    shuffled.shuffle(rng);
    let majority = shuffled.split_off(nodes.len() / 2);
    (shuffled, majority)
}

fn at_least<S>(topology: &'static str, nodes: &[S], needed: usize) -> Result<(), TopologyError> {
    if nodes.len() < needed {
        return Err(TopologyError::TooFewNodes {
            topology,
            needed,
            nodes: nodes.len(),
        });
    }
    Ok(())
}

fn split_target<'a, S: AsRef<str>>(
    topology: &'static str,
    nodes: &'a [S],
    target: &str,
) -> Result<(&'a str, Vec<&'a str>), TopologyError> {
    at_least(topology, nodes, 2)?;
    let target = nodes
        .iter()
        .map(AsRef::as_ref)
        .find(|node| *node == target)
        .ok_or_else(|| TopologyError::UnknownTarget {
            topology,
            target: target.to_string(),
        })?;
    let rest = nodes
        .iter()
        .map(AsRef::as_ref)
        .filter(|node| *node != target)
        .collect();
    Ok((target, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn nodes(count: usize) -> Vec<String> {
        (1..=count).map(|index| format!("n{index}")).collect()
    }

    /// The nodes `node` hears (itself included).
    fn heard_by<'a>(grudge: &Grudge, nodes: &'a [String], node: &str) -> BTreeSet<&'a str> {
        nodes
            .iter()
            .map(String::as_str)
            .filter(|sender| !grudge.drops(node, sender))
            .collect()
    }

    fn is_symmetric(grudge: &Grudge, nodes: &[String]) -> bool {
        nodes.iter().all(|a| {
            nodes
                .iter()
                .all(|b| grudge.drops(a, b) == grudge.drops(b, a))
        })
    }

    #[test]
    fn isolate_cuts_the_target_from_everyone_both_ways() {
        let nodes = nodes(5);
        let grudge = isolate(&nodes, "n3").expect("isolate");
        for other in nodes.iter().filter(|node| *node != "n3") {
            assert!(grudge.is_mutual("n3", other));
            assert!(!grudge.connects("n3", other) && !grudge.connects(other, "n3"));
            for third in nodes.iter().filter(|node| *node != "n3") {
                assert!(grudge.connects(other, third), "{other} -> {third}");
            }
        }
        assert_eq!(
            isolate(&nodes, "n9"),
            Err(TopologyError::UnknownTarget {
                topology: "isolate",
                target: "n9".into()
            })
        );
    }

    #[test]
    fn one_way_blocks_only_what_reaches_the_target() {
        let nodes = nodes(3);
        let grudge = one_way(&nodes, "n1").expect("one-way");
        for other in ["n2", "n3"] {
            assert!(grudge.drops("n1", other));
            assert!(!grudge.drops(other, "n1"));
            assert!(!grudge.connects(other, "n1"), "{other} must not reach n1");
            assert!(grudge.connects("n1", other), "n1 still reaches {other}");
        }
        assert!(grudge.connects("n2", "n3") && grudge.connects("n3", "n2"));
    }

    #[test]
    fn halves_are_a_minority_and_a_majority_cut_apart() {
        for count in 2..=9 {
            let nodes = nodes(count);
            for seed in 0..20 {
                let grudge = halves(&nodes, &mut ChaCha8Rng::seed_from_u64(seed)).expect("halves");
                assert!(is_symmetric(&grudge, &nodes));
                let mut sides: Vec<BTreeSet<&str>> = nodes
                    .iter()
                    .map(|node| heard_by(&grudge, &nodes, node))
                    .collect();
                sides.sort();
                sides.dedup();
                assert_eq!(sides.len(), 2, "{count} nodes, seed {seed}: {grudge:?}");
                let sizes: BTreeSet<usize> = sides.iter().map(BTreeSet::len).collect();
                assert!(sizes.contains(&(count / 2)) && sizes.contains(&(count - count / 2)));
                assert!(sides[0].is_disjoint(&sides[1]));
            }
        }
    }

    #[test]
    fn halves_depend_on_the_seed_only() {
        let nodes = nodes(5);
        let first = halves(&nodes, &mut ChaCha8Rng::seed_from_u64(7)).expect("halves");
        let again = halves(&nodes, &mut ChaCha8Rng::seed_from_u64(7)).expect("halves");
        assert_eq!(first, again);
        let differs = (0..20).any(|seed| {
            halves(&nodes, &mut ChaCha8Rng::seed_from_u64(seed)).expect("halves") != first
        });
        assert!(differs, "the seed chooses the halves");
    }

    #[test]
    fn bridge_keeps_one_node_in_both_halves() {
        for count in 3..=9 {
            let nodes = nodes(count);
            for seed in 0..20 {
                let grudge = bridge(&nodes, &mut ChaCha8Rng::seed_from_u64(seed)).expect("bridge");
                assert!(is_symmetric(&grudge, &nodes));
                let bridges: Vec<&String> = nodes
                    .iter()
                    .filter(|node| heard_by(&grudge, &nodes, node).len() == count)
                    .collect();
                assert_eq!(bridges.len(), 1, "{count} nodes, seed {seed}: {grudge:?}");
                let bridge_node = bridges[0].as_str();
                let mut sides: Vec<BTreeSet<&str>> = nodes
                    .iter()
                    .filter(|node| *node != bridge_node)
                    .map(|node| heard_by(&grudge, &nodes, node))
                    .collect();
                sides.sort();
                sides.dedup();
                assert_eq!(sides.len(), 2, "two halves, each with the bridge");
                assert_eq!(
                    sides[0].intersection(&sides[1]).collect::<Vec<_>>(),
                    [&bridge_node]
                );
                if count % 2 == 1 {
                    assert!(sides.iter().all(|side| side.len() >= majority(count)));
                }
            }
        }
    }

    #[test]
    fn ring_gives_every_node_its_own_majority() {
        for count in 4..=11 {
            let nodes = nodes(count);
            for seed in 0..20 {
                let grudge = ring(&nodes, &mut ChaCha8Rng::seed_from_u64(seed)).expect("ring");
                assert!(is_symmetric(&grudge, &nodes), "TCP sees the same both ways");
                let seen: Vec<BTreeSet<&str>> = nodes
                    .iter()
                    .map(|node| heard_by(&grudge, &nodes, node))
                    .collect();
                for (node, sees) in nodes.iter().zip(&seen) {
                    assert!(
                        sees.len() >= majority(count) && sees.len() < count,
                        "{count} nodes, seed {seed}: {node} sees {sees:?}"
                    );
                }
                let distinct: BTreeSet<&BTreeSet<&str>> = seen.iter().collect();
                assert_eq!(distinct.len(), count, "no two nodes see the same majority");
            }
        }
    }

    #[test]
    fn too_few_nodes_are_refused_by_name() {
        let rng = &mut ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            ring(&nodes(3), rng),
            Err(TopologyError::TooFewNodes {
                topology: "ring",
                needed: 4,
                nodes: 3
            })
        );
        assert!(bridge(&nodes(2), rng).is_err());
        assert!(halves(&nodes(1), rng).is_err());
        assert!(isolate(&nodes(1), "n1").is_err());
    }

    #[test]
    fn a_grudge_serializes_as_node_to_senders() {
        let grudge = isolate(&nodes(3), "n1").expect("isolate");
        assert_eq!(
            serde_json::to_string(&grudge).expect("json"),
            r#"{"n1":["n2","n3"],"n2":["n1"],"n3":["n1"]}"#
        );
    }
}
