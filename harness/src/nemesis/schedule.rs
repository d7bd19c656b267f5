//! The nemesis's generator: a workload's faults laid out on a timeline before the run starts,
//! from the workload and a seed alone, so a run can be repeated exactly. Scripted steps are
//! taken as written; the random schedule draws, every interval, a fault and a target from the
//! workload's sets with a ChaCha generator (a `partition` drawn also draws its topology). A
//! fault with a heal gets a second event.

use std::time::Duration;

use rand::Rng;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use crate::workload::target::Target;
use crate::workload::{Condition, DiskFaultSettings, Fault, NemesisSpec, Topology};

/// One fault, planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFault {
    /// Since the start of the fault phase.
    pub at: Duration,
    pub fault: Fault,
    /// Absent for `heal` and for partitions that choose their own sides.
    pub target: Option<Target>,
    /// The target as the workload wrote it (empty when absent).
    pub target_text: String,
    /// For `partition`: its shape.
    pub topology: Option<Topology>,
    /// For an `isolate` or `one-way` partition: the nodes to cut the target off from, and the
    /// words that named them; absent: every other node.
    pub from: Option<(Target, String)>,
    /// For `leader` and `followers`.
    pub partition: i32,
    /// Undo it this long after.
    pub heal_after: Option<Duration>,
    /// Remember the nodes it hit under this name.
    pub label: Option<String>,
    /// Strike only once the partition shows this (waiting from `at`, at most `within`).
    pub when: Option<Condition>,
    pub within: Option<Duration>,
    /// How a disk fault is done (tear, which calls fail, the fsync delay).
    pub disk: DiskFaultSettings,
}

/// What happens at one point of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Inject fault number `n`.
    Inject(usize),
    /// Undo fault number `n` on the nodes it hit.
    Heal(usize),
}

/// The whole timeline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    pub faults: Vec<PlannedFault>,
    /// Sorted by time; at equal times, in plan order.
    pub events: Vec<(Duration, Event)>,
}

/// Lays out the faults of `spec` over `duration`, drawing from `seed`.
/// `nodes` is the number of nodes (the coordinator and the brokers): a random schedule draws
/// only topologies that fit.
pub fn plan(
    spec: &NemesisSpec,
    partitions: u32,
    nodes: usize,
    duration: Duration,
    seed: u64,
) -> Result<Schedule, String> {
    let faults = match spec {
        NemesisSpec::None => Vec::new(),
        NemesisSpec::Scripted { steps } => steps
            .iter()
            .map(|step| {
                let topology = (step.fault == Fault::Partition)
                    .then(|| step.topology.unwrap_or(Topology::Isolate));
                let target = if step.target.is_empty() {
                    None
                } else {
                    Some(Target::parse(&step.target)?)
                };
                let from = match &step.from {
                    Some(text) => Some((Target::parse(text)?, text.clone())),
                    None => None,
                };
                Ok(PlannedFault {
                    at: step.at,
                    fault: step.fault,
                    target,
                    target_text: step.target.clone(),
                    topology,
                    from,
                    partition: step.partition,
                    heal_after: step.heal_after,
                    label: step.label.clone(),
                    when: step.when,
                    within: step.within,
                    disk: step.disk_settings(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?,
        NemesisSpec::Random {
            interval,
            fault_duration,
            faults,
            targets,
            topologies,
            fsync_delay,
        } => {
            let disk = DiskFaultSettings {
                fsync_delay: *fsync_delay,
                ..DiskFaultSettings::default()
            };
            let topologies: Vec<Topology> = if topologies.is_empty() {
                Topology::ALL
                    .into_iter()
                    .filter(|topology| topology.nodes_needed() <= nodes)
                    .collect()
            } else {
                topologies.clone()
            };
            let targets = targets
                .iter()
                .map(|text| Ok((Target::parse(text)?, text.clone())))
                .collect::<Result<Vec<_>, String>>()?;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut planned = Vec::new();
            let mut at = *interval;
            // Bounded: duration / interval faults at most.
            while at < duration && !interval.is_zero() {
                let fault = *faults.choose(&mut rng).ok_or("no faults to choose from")?;
                let (target, target_text) = targets
                    .choose(&mut rng)
                    .ok_or("no targets to choose from")?
                    .clone();
                let topology = if fault == Fault::Partition {
                    Some(
                        *topologies
                            .choose(&mut rng)
                            .ok_or("no partition topology fits this cluster")?,
                    )
                } else {
                    None
                };
                let (target, target_text) = match topology {
                    Some(topology) if !topology.takes_target() => (None, String::new()),
                    _ => (Some(target), target_text),
                };
                planned.push(PlannedFault {
                    at,
                    fault,
                    target,
                    target_text,
                    topology,
                    from: None,
                    partition: rng.random_range(0..partitions.max(1)) as i32,
                    heal_after: fault.heal().map(|_| *fault_duration),
                    label: None,
                    when: None,
                    within: None,
                    disk,
                });
                at += *interval;
            }
            planned
        }
    };
    let mut events: Vec<(Duration, Event)> = Vec::with_capacity(faults.len() * 2);
    for (index, fault) in faults.iter().enumerate() {
        events.push((fault.at, Event::Inject(index)));
        if let Some(after) = fault.heal_after {
            events.push((fault.at + after, Event::Heal(index)));
        }
    }
    // A stable sort keeps plan order for events at the same time.
    events.sort_by_key(|(at, _)| *at);
    Ok(Schedule { faults, events })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::StepSpec;

    fn random_spec() -> NemesisSpec {
        NemesisSpec::Random {
            interval: Duration::from_secs(2),
            fault_duration: Duration::from_secs(1),
            faults: vec![Fault::Kill, Fault::Pause, Fault::Stop],
            targets: vec!["leader".into(), "random".into(), "controller".into()],
            topologies: Vec::new(),
            fsync_delay: None,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let first = plan(&random_spec(), 3, 4, Duration::from_secs(60), 11).expect("plan");
        let again = plan(&random_spec(), 3, 4, Duration::from_secs(60), 11).expect("plan");
        assert_eq!(first, again);
        assert_eq!(first.faults.len(), 29);
        let other = plan(&random_spec(), 3, 4, Duration::from_secs(60), 12).expect("plan");
        assert_ne!(first, other, "a different seed should change something");
    }

    #[test]
    fn every_random_fault_is_healed_before_the_next() {
        let schedule = plan(&random_spec(), 3, 4, Duration::from_secs(10), 5).expect("plan");
        let kinds: Vec<Event> = schedule.events.iter().map(|(_, event)| *event).collect();
        for (index, pair) in kinds.chunks(2).enumerate() {
            assert_eq!(pair, [Event::Inject(index), Event::Heal(index)]);
        }
    }

    #[test]
    fn scripted_heals_interleave_by_time() {
        let step = |at: u64, heal_after: Option<u64>| StepSpec {
            at: Duration::from_secs(at),
            fault: Fault::Kill,
            target: "leader".into(),
            topology: None,
            from: None,
            partition: 0,
            heal_after: heal_after.map(Duration::from_secs),
            label: None,
            when: None,
            within: None,
            tear: false,
            errors: None,
            fsync_delay: None,
        };
        let spec = NemesisSpec::Scripted {
            steps: vec![step(1, Some(5)), step(3, None)],
        };
        let schedule = plan(&spec, 1, 4, Duration::from_secs(10), 0).expect("plan");
        assert_eq!(
            schedule.events,
            vec![
                (Duration::from_secs(1), Event::Inject(0)),
                (Duration::from_secs(3), Event::Inject(1)),
                (Duration::from_secs(6), Event::Heal(0)),
            ]
        );
    }

    #[test]
    fn random_partitions_draw_topologies_that_fit() {
        let spec = NemesisSpec::Random {
            interval: Duration::from_secs(2),
            fault_duration: Duration::from_secs(1),
            faults: vec![Fault::Partition, Fault::Kill],
            targets: vec!["leader".into()],
            topologies: Vec::new(),
            fsync_delay: None,
        };
        let schedule = plan(&spec, 3, 3, Duration::from_secs(200), 9).expect("plan");
        let drawn: Vec<Topology> = schedule
            .faults
            .iter()
            .filter_map(|fault| fault.topology)
            .collect();
        assert!(drawn.contains(&Topology::Halves), "{drawn:?}");
        assert!(drawn.contains(&Topology::Isolate), "{drawn:?}");
        assert!(
            !drawn.contains(&Topology::Ring),
            "3 nodes are too few for a ring: {drawn:?}"
        );
        for fault in &schedule.faults {
            match fault.topology {
                Some(topology) => {
                    assert_eq!(fault.fault, Fault::Partition);
                    assert_eq!(fault.target.is_some(), topology.takes_target());
                    assert_eq!(fault.heal_after, Some(Duration::from_secs(1)));
                }
                None => assert_eq!(fault.fault, Fault::Kill),
            }
        }
    }
}
