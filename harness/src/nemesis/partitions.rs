//! The partition fault family: a workload's [`Topology`] turned into a grudge over the
//! cluster's nodes when the fault happens (Jepsen's: node -> the nodes it drops traffic from,
//! the `netfault` crate's [`Grudge`]), applied to the nodes' network namespaces, and healed.
//! A new partition replaces the current grudge, as in Jepsen; `heal` removes it. Clients and
//! the orchestrator, in the root namespace, are never in a grudge. Blocking: each call runs `nft`
//! in every node's namespace (milliseconds).

use std::collections::BTreeSet;

use netfault::{Grudge, NetFaultError, Network, grudge};
use rand::Rng;

use crate::workload::Topology;

/// The grudge of `topology` over `nodes` (every node of the cluster). `targets` are the nodes
/// an `isolate` or `one-way` cuts off; `from`, the nodes they are cut off from (absent: every
/// other node). `halves`, `bridge` and `ring` choose their sides with `rng`.
pub fn grudge_for(
    topology: Topology,
    nodes: &[String],
    targets: &[String],
    from: Option<&[String]>,
    rng: &mut impl Rng,
) -> Result<Grudge, String> {
    let others = || -> Result<Vec<String>, String> {
        if targets.is_empty() {
            return Err(format!(
                "a `{}` partition found no node to cut off",
                topology.name()
            ));
        }
        if let Some(unknown) = targets.iter().find(|target| !nodes.contains(target)) {
            return Err(format!("{unknown} is not a node of this cluster"));
        }
        let others: Vec<String> = match from {
            Some(from) => from.to_vec(),
            None => nodes.to_vec(),
        }
        .into_iter()
        .filter(|node| !targets.contains(node))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
        if others.is_empty() {
            return Err(format!(
                "a `{}` partition of {} found no other node to cut it off from",
                topology.name(),
                targets.join(",")
            ));
        }
        Ok(others)
    };
    let built = match topology {
        Topology::Isolate => grudge::complete(&[targets.to_vec(), others()?]),
        Topology::OneWay => {
            let others = others()?;
            let mut grudge = Grudge::new();
            for target in targets {
                for sender in &others {
                    grudge.drop_from(target, sender);
                }
            }
            grudge
        }
        Topology::Halves => grudge::halves(nodes, rng).map_err(|error| error.to_string())?,
        Topology::Bridge => grudge::bridge(nodes, rng).map_err(|error| error.to_string())?,
        Topology::Ring => grudge::ring(nodes, rng).map_err(|error| error.to_string())?,
    };
    Ok(built)
}

/// Replaces the network's grudge with `grudge`.
pub fn apply(network: &Network, grudge: &Grudge) -> Result<(), NetFaultError> {
    network.apply(grudge)
}

/// Removes the grudge: every node hears every node again.
pub fn heal(network: &Network) -> Result<(), NetFaultError> {
    network.heal()
}

/// One line per node that drops something: `broker-1 hears nothing from broker-2, coordinator`.
pub fn describe(grudge: &Grudge) -> Vec<String> {
    grudge
        .iter()
        .map(|(receiver, senders)| {
            let senders: Vec<&str> = senders.iter().map(String::as_str).collect();
            format!("{receiver} hears nothing from {}", senders.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn nodes() -> Vec<String> {
        ["broker-1", "broker-2", "broker-3", "coordinator"]
            .map(String::from)
            .to_vec()
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(3)
    }

    #[test]
    fn isolate_cuts_the_targets_from_everyone_or_from_the_named_nodes() {
        let everyone = grudge_for(
            Topology::Isolate,
            &nodes(),
            &["broker-2".into()],
            None,
            &mut rng(),
        )
        .expect("isolate");
        for other in ["broker-1", "broker-3", "coordinator"] {
            assert!(everyone.is_mutual("broker-2", other), "{other}");
        }
        assert!(!everyone.drops("broker-1", "broker-3"));

        let from_coordinator = grudge_for(
            Topology::Isolate,
            &nodes(),
            &["broker-2".into()],
            Some(&["coordinator".into()]),
            &mut rng(),
        )
        .expect("isolate from the coordinator");
        assert!(from_coordinator.is_mutual("broker-2", "coordinator"));
        assert!(!from_coordinator.drops("broker-2", "broker-1"));
        assert!(!from_coordinator.drops("broker-1", "broker-2"));
        assert_eq!(
            describe(&from_coordinator),
            vec![
                "broker-2 hears nothing from coordinator",
                "coordinator hears nothing from broker-2"
            ]
        );
    }

    #[test]
    fn one_way_deafens_the_target_only() {
        let grudge = grudge_for(
            Topology::OneWay,
            &nodes(),
            &["coordinator".into()],
            None,
            &mut rng(),
        )
        .expect("one-way");
        for broker in ["broker-1", "broker-2", "broker-3"] {
            assert!(grudge.drops("coordinator", broker));
            assert!(!grudge.drops(broker, "coordinator"));
        }
    }

    #[test]
    fn random_topologies_cover_every_node_and_nothing_else() {
        for topology in [Topology::Halves, Topology::Bridge, Topology::Ring] {
            let grudge = grudge_for(topology, &nodes(), &[], None, &mut rng())
                .unwrap_or_else(|error| panic!("{topology:?}: {error}"));
            assert!(!grudge.is_empty(), "{topology:?}");
            assert!(
                grudge
                    .nodes()
                    .iter()
                    .all(|node| nodes().contains(&node.to_string()))
            );
        }
    }

    #[test]
    fn nothing_to_cut_is_an_error_that_says_so() {
        let error =
            grudge_for(Topology::Isolate, &nodes(), &[], None, &mut rng()).expect_err("no target");
        assert!(error.contains("no node to cut off"), "{error}");
        let error = grudge_for(
            Topology::Isolate,
            &nodes(),
            &["broker-1".into()],
            Some(&["broker-1".into()]),
            &mut rng(),
        )
        .expect_err("cut off from itself");
        assert!(error.contains("no other node"), "{error}");
        let error = grudge_for(
            Topology::Isolate,
            &nodes(),
            &["broker-9".into()],
            None,
            &mut rng(),
        )
        .expect_err("unknown node");
        assert!(error.contains("broker-9"), "{error}");
    }
}
