//! Playing a [`Schedule`]: at each step's time, resolve its target (`leader`, `controller`,
//! ...) from live metadata and inject its fault — for a partition, build its grudge over every
//! node from the resolved targets (or the seeded generator); for a step with `when`, wait until
//! live metadata shows the condition and strike then (the rest of the timeline moves with it);
//! heal what a step hit when its heal is due (a partition's heal heals the network). A disk
//! fault goes with its settings (a tear's length drawn from the seed); a power loss hits all
//! its nodes at one instant.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use super::disk::DiskFaultPlan;
use super::schedule::{Event, Schedule};
use super::target::Live;
use super::{Nemesis, PartitionAim, partitions};
use crate::cluster::group_coordinator::find_group_coordinator;
use crate::cluster::{NodeStatus, broker_name, metadata};
use crate::lock::lock;
use crate::workload::target::Target;
use crate::workload::{Condition, Fault};

/// How long one metadata request may take when resolving a target.
const METADATA_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often a step with `when` looks at the metadata.
const CONDITION_POLL_INTERVAL: Duration = Duration::from_millis(20);

impl Nemesis {
    /// Broker ids that are running (not paused, not down) right now.
    fn running_brokers(&self) -> Vec<i32> {
        let mut cluster = lock(&self.cluster);
        cluster
            .broker_ids()
            .into_iter()
            .filter(|id| matches!(cluster.status(&broker_name(*id)), Ok(NodeStatus::Running)))
            .collect()
    }

    /// What is up now, as resolving `targets` needs it: running brokers and group members, and
    /// (for `group-coordinator` only) the group's coordinator, asked with FindCoordinator.
    async fn live(&self, targets: &[Option<&Target>], addresses: &[String]) -> Live {
        let wants_coordinator = targets
            .iter()
            .any(|target| matches!(target, Some(Target::GroupCoordinator)));
        let group_coordinator = match (wants_coordinator, self.group_id()) {
            (true, Some(group)) => Some(
                find_group_coordinator(addresses, group, METADATA_TIMEOUT)
                    .await
                    .map_err(|error| error.to_string()),
            ),
            _ => None,
        };
        Live {
            brokers: self.running_brokers(),
            consumers: self.running_members(),
            group_coordinator,
        }
    }

    /// Plays `schedule` from now until it ends or `stop` turns true. Target choices draw from
    /// `seed`. Faults it injected stay injected: the caller heals at the end.
    pub async fn run_schedule(
        &self,
        schedule: &Schedule,
        topic: &str,
        seed: u64,
        mut stop: watch::Receiver<bool>,
    ) {
        let started = tokio::time::Instant::now();
        // How long `when` steps have waited so far: the rest of the timeline moves with them.
        let mut shift = Duration::ZERO;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut labels: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut hit: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let addresses = lock(&self.cluster).broker_addresses();
        for (at, event) in &schedule.events {
            tokio::select! {
                _ = tokio::time::sleep_until(started + *at + shift) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            match *event {
                Event::Inject(index) => {
                    let planned = &schedule.faults[index];
                    let mut waited = None;
                    if let Some(condition) = planned.when {
                        let wait = wait_for(
                            &addresses,
                            topic,
                            planned.partition,
                            condition,
                            planned.within,
                            &mut stop,
                        );
                        match wait.await {
                            Ok(elapsed) => {
                                shift += elapsed;
                                waited = Some((condition, elapsed));
                            }
                            Err(why) => {
                                self.record_unresolved(planned.fault, &planned.target_text, &why);
                                continue;
                            }
                        }
                    }
                    let needs_metadata = [
                        planned.target.as_ref(),
                        planned.from.as_ref().map(|(target, _)| target),
                    ]
                    .into_iter()
                    .flatten()
                    .any(Target::needs_metadata);
                    let metadata = if needs_metadata {
                        // With partitions, a zombie leader still claims its partitions: ask
                        // every broker and believe the newest leader epoch.
                        let fetched = if lock(&self.cluster).network().is_some() {
                            metadata::fetch_freshest(&addresses, Some(topic), METADATA_TIMEOUT)
                                .await
                        } else {
                            metadata::fetch(&addresses, Some(topic), METADATA_TIMEOUT).await
                        };
                        match fetched {
                            Ok(metadata) => Some(metadata),
                            Err(error) => {
                                self.record_unresolved(
                                    planned.fault,
                                    &planned.target_text,
                                    &format!("no metadata: {error}"),
                                );
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    let targets = [
                        planned.target.as_ref(),
                        planned.from.as_ref().map(|(target, _)| target),
                    ];
                    let live = self.live(&targets, &addresses).await;
                    let mut resolve = |target: &Target| {
                        target.resolve(
                            metadata.as_ref(),
                            topic,
                            planned.partition,
                            &live,
                            &labels,
                            &mut rng,
                        )
                    };
                    let resolved = planned.target.as_ref().map(&mut resolve).transpose();
                    let from = planned
                        .from
                        .as_ref()
                        .map(|(target, _)| resolve(target))
                        .transpose();
                    let (resolved, from) = match (resolved, from) {
                        (Ok(resolved), Ok(from)) => (resolved, from),
                        (Err(error), _) | (_, Err(error)) => {
                            self.record_unresolved(
                                planned.fault,
                                &planned.target_text,
                                &error.to_string(),
                            );
                            continue;
                        }
                    };
                    let mut why = match (&resolved, &from, planned.topology) {
                        (Some(resolved), Some(from), _) => {
                            format!("{}, cut off from {}", resolved.why, from.nodes.join(","))
                        }
                        (Some(resolved), None, _) => resolved.why.clone(),
                        (None, _, Some(topology)) => format!("random {}", topology.name()),
                        (None, _, None) => "named".to_string(),
                    };
                    if let Some((condition, elapsed)) = waited {
                        why = format!(
                            "{why} ({} {} ms after it began to wait)",
                            condition.name(),
                            elapsed.as_millis()
                        );
                    }
                    let nodes = resolved.map(|resolved| resolved.nodes).unwrap_or_default();
                    match (planned.fault, planned.topology) {
                        (Fault::Partition, Some(topology)) => {
                            let aim = PartitionAim {
                                node: (!nodes.is_empty()).then(|| nodes.join(",")),
                                why,
                                topic_partition: planned
                                    .target
                                    .as_ref()
                                    .is_some_and(Target::is_per_partition)
                                    .then_some(planned.partition),
                            };
                            let everyone = lock(&self.cluster).node_names();
                            let from = from.map(|from| from.nodes);
                            match partitions::grudge_for(
                                topology,
                                &everyone,
                                &nodes,
                                from.as_deref(),
                                &mut rng,
                            ) {
                                // Errors are in the history; the schedule goes on.
                                Ok(grudge) => {
                                    let _ = self.partition(topology, grudge, &aim).await;
                                }
                                Err(error) => {
                                    self.record_unresolved(
                                        planned.fault,
                                        &planned.target_text,
                                        &error,
                                    );
                                    continue;
                                }
                            }
                        }
                        (Fault::Heal, _) => {
                            let _ = self.heal_network(&why).await;
                        }
                        // Every node at one instant: all cut and killed before any loses data.
                        (Fault::PowerLoss, _) => {
                            let plan = disk_plan(planned, &mut rng);
                            let _ = self
                                .inject_together(planned.fault, &nodes, &why, &plan)
                                .await;
                        }
                        _ => {
                            let plan = disk_plan(planned, &mut rng);
                            for node in &nodes {
                                // Errors are in the history; the schedule goes on.
                                let _ = self.inject_with(planned.fault, node, &why, &plan).await;
                            }
                        }
                    }
                    if let Some(label) = &planned.label {
                        labels.insert(label.clone(), nodes.clone());
                    }
                    hit.insert(index, nodes);
                }
                Event::Heal(index) => {
                    let planned = &schedule.faults[index];
                    let (Some(heal), Some(nodes)) = (planned.fault.heal(), hit.get(&index)) else {
                        continue;
                    };
                    if planned.fault == Fault::Partition {
                        let topology = planned.topology.map_or("", |topology| topology.name());
                        let why = match nodes.is_empty() {
                            true => format!("heal of partition {topology}"),
                            false => format!("heal of partition {topology} {}", nodes.join(",")),
                        };
                        let _ = self.heal_network(&why).await;
                        continue;
                    }
                    for node in nodes {
                        let why = format!("heal of {} {node}", planned.fault.name());
                        let _ = self.inject(heal, node, &why).await;
                    }
                    self.recorder.set_current_fault(None);
                }
            }
        }
    }
}

/// How a planned disk fault is done. The tear's draw is taken only for a tear, so that other
/// faults' choices stay what they were.
fn disk_plan(planned: &super::schedule::PlannedFault, rng: &mut ChaCha8Rng) -> DiskFaultPlan {
    DiskFaultPlan {
        settings: planned.disk,
        tear_draw: if planned.disk.tear { rng.random() } else { 0 },
    }
}

/// Polls the metadata until `partition` of `topic` shows `condition`; returns how long that
/// took. Fails (saying why) when `within` passes or the fault phase ends first.
async fn wait_for(
    addresses: &[String],
    topic: &str,
    partition: i32,
    condition: Condition,
    within: Option<Duration>,
    stop: &mut watch::Receiver<bool>,
) -> Result<Duration, String> {
    let started = tokio::time::Instant::now();
    let mut leader_at_start: Option<Option<i32>> = None;
    loop {
        let fetch_started = tokio::time::Instant::now();
        let fetched = metadata::fetch(addresses, Some(topic), METADATA_TIMEOUT).await;
        tracing::debug!(
            "waiting for {} of {topic}-{partition}: metadata in {} ms: {:?}",
            condition.name(),
            fetch_started.elapsed().as_millis(),
            fetched
                .as_ref()
                .map(|metadata| metadata.partition(partition).map(|state| state.isr.clone()))
        );
        if let Ok(metadata) = fetched
            && let Some(state) = metadata.partition(partition)
        {
            let initial_leader = *leader_at_start.get_or_insert(state.leader);
            let holds = match condition {
                Condition::IsrShrunk => state.isr.len() < state.replicas.len(),
                Condition::IsrFull => {
                    !state.replicas.is_empty()
                        && state.replicas.iter().all(|id| state.isr.contains(id))
                }
                Condition::LeaderChanged => state.leader != initial_leader,
            };
            if holds {
                return Ok(started.elapsed());
            }
        }
        if within.is_some_and(|within| started.elapsed() >= within) {
            return Err(format!(
                "{} of {topic}-{partition} not seen within {} ms",
                condition.name(),
                started.elapsed().as_millis()
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(CONDITION_POLL_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => {
                return Err(format!(
                    "the fault phase ended before {} of {topic}-{partition}",
                    condition.name()
                ));
            }
        }
    }
}
