//! Playing a [`Schedule`]: at each step's time, resolve its target (`leader`, `controller`,
//! ...) from live metadata and inject its fault; for a step with `when`, wait until live
//! metadata shows the condition and strike then (the rest of the timeline moves with it); heal
//! what a step hit when its heal is due.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use super::Nemesis;
use super::disk::DiskFaultPlan;
use super::schedule::{Event, Schedule};
use crate::cluster::{NodeStatus, broker_name, metadata};
use crate::lock::lock;
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
                    let needs_metadata = planned.target.needs_metadata();
                    let metadata = if needs_metadata {
                        match metadata::fetch(&addresses, Some(topic), METADATA_TIMEOUT).await {
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
                    let brokers = self.running_brokers();
                    let resolved = match planned.target.resolve(
                        metadata.as_ref(),
                        topic,
                        planned.partition,
                        &brokers,
                        &labels,
                        &mut rng,
                    ) {
                        Ok(resolved) => resolved,
                        Err(error) => {
                            self.record_unresolved(
                                planned.fault,
                                &planned.target_text,
                                &error.to_string(),
                            );
                            continue;
                        }
                    };
                    let why = match waited {
                        Some((condition, elapsed)) => format!(
                            "{} ({} {} ms after it began to wait)",
                            resolved.why,
                            condition.name(),
                            elapsed.as_millis()
                        ),
                        None => resolved.why.clone(),
                    };
                    // Drawn only for a tear, so that other faults' choices stay as they were.
                    let plan = DiskFaultPlan {
                        settings: planned.disk,
                        tear_draw: if planned.disk.tear { rng.random() } else { 0 },
                    };
                    // Errors are in the history; the schedule goes on.
                    if planned.fault == Fault::PowerLoss {
                        let _ = self
                            .inject_together(planned.fault, &resolved.nodes, &why, &plan)
                            .await;
                    } else {
                        for node in &resolved.nodes {
                            let _ = self.inject_with(planned.fault, node, &why, &plan).await;
                        }
                    }
                    if let Some(label) = &planned.label {
                        labels.insert(label.clone(), resolved.nodes.clone());
                    }
                    hit.insert(index, resolved.nodes);
                }
                Event::Heal(index) => {
                    let planned = &schedule.faults[index];
                    let (Some(heal), Some(nodes)) = (planned.fault.heal(), hit.get(&index)) else {
                        continue;
                    };
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
