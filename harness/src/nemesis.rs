//! The nemesis: faults injected into named nodes with signals — `nemesis.kill("broker-2")`,
//! `pause`, `resume`, `stop`, `start`, `restart` — each recorded in the history as an `invoke`
//! and an `info` of process `nemesis`; `heal_all` at the end; and the runner that plays a
//! [`Schedule`], resolving targets (`leader`, `controller`, ...) from live metadata at fault time
//! and, for a step with `when`, striking the moment live metadata shows the condition.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::sync::watch;

use crate::cluster::{Cluster, ClusterError, NodeStatus};
use crate::history::{OpType, Process};
use crate::metadata;
use crate::recorder::Recorder;
use crate::schedule::{Event, Schedule};
use crate::workload::{Condition, Fault};

/// How long a SIGTERM'd node may take to stop before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(15);
/// How long one metadata request may take when resolving a target.
const METADATA_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often a step with `when` looks at the metadata.
const CONDITION_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Why a fault could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("the nemesis task panicked: {0}")]
    Task(String),
}

/// The fault injector. Cheap to clone.
#[derive(Clone)]
pub struct Nemesis {
    cluster: Arc<Mutex<Cluster>>,
    recorder: Recorder,
}

impl Nemesis {
    pub fn new(cluster: Arc<Mutex<Cluster>>, recorder: Recorder) -> Self {
        Nemesis { cluster, recorder }
    }

    /// SIGKILL `node`.
    pub async fn kill(&self, node: &str) -> Result<(), NemesisError> {
        self.inject(Fault::Kill, node, "named").await
    }

    /// SIGSTOP `node`.
    pub async fn pause(&self, node: &str) -> Result<(), NemesisError> {
        self.inject(Fault::Pause, node, "named").await
    }

    /// SIGCONT `node`.
    pub async fn resume(&self, node: &str) -> Result<(), NemesisError> {
        self.inject(Fault::Resume, node, "named").await
    }

    /// SIGTERM `node` (SIGKILL after a grace period).
    pub async fn stop(&self, node: &str) -> Result<(), NemesisError> {
        self.inject(Fault::Stop, node, "named").await
    }

    /// Start `node` if it is down.
    pub async fn start(&self, node: &str) -> Result<(), NemesisError> {
        self.inject(Fault::Start, node, "named").await
    }

    /// SIGTERM `node`, then start it again.
    pub async fn restart(&self, node: &str) -> Result<(), NemesisError> {
        self.inject(Fault::Restart, node, "named").await
    }

    /// Injects `fault` into `node`, recording an invoke and an info (with the error, if any).
    pub async fn inject(&self, fault: Fault, node: &str, why: &str) -> Result<(), NemesisError> {
        let value = json!({"node": node, "why": why});
        self.recorder.record(
            Process::Nemesis,
            OpType::Invoke,
            fault.name(),
            value.clone(),
        );
        if fault.heal().is_some() {
            self.recorder
                .set_current_fault(Some(format!("{} {node}", fault.name())));
        }
        let cluster = Arc::clone(&self.cluster);
        let name = node.to_string();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut cluster = lock(&cluster);
            match fault {
                Fault::Kill => cluster.kill(&name),
                Fault::Pause => cluster.pause(&name),
                Fault::Resume => cluster.resume(&name),
                Fault::Stop => cluster.stop(&name, STOP_GRACE).map(|_| ()),
                Fault::Start => cluster.start(&name).map(|_| ()),
                Fault::Restart => cluster
                    .stop(&name, STOP_GRACE)
                    .and_then(|_| cluster.start(&name))
                    .map(|_| ()),
            }
        })
        .await
        .map_err(|error| NemesisError::Task(error.to_string()))
        .and_then(|result| result.map_err(NemesisError::from));
        let mut completion = value;
        if let Err(error) = &outcome {
            completion["error"] = json!(error.to_string());
            tracing::warn!("nemesis {} {node}: {error}", fault.name());
        }
        self.recorder
            .record(Process::Nemesis, OpType::Info, fault.name(), completion);
        if fault.heal().is_none() {
            self.recorder.set_current_fault(None);
        }
        outcome
    }

    /// Records a fault whose target could not be resolved (nothing was done).
    fn record_unresolved(&self, fault: Fault, target: &str, error: &str) {
        let value = json!({"node": null, "target": target, "why": error});
        self.recorder.record(
            Process::Nemesis,
            OpType::Invoke,
            fault.name(),
            value.clone(),
        );
        let mut completion = value;
        completion["error"] = json!(error);
        self.recorder
            .record(Process::Nemesis, OpType::Info, fault.name(), completion);
    }

    /// Resumes every frozen node and starts every node that is down, as one `heal` operation.
    pub async fn heal_all(&self, why: &str) -> Result<(), NemesisError> {
        self.recorder.record(
            Process::Nemesis,
            OpType::Invoke,
            "heal",
            json!({"node": "all", "why": why}),
        );
        let cluster = Arc::clone(&self.cluster);
        let outcome = tokio::task::spawn_blocking(move || lock(&cluster).heal_all())
            .await
            .map_err(|error| NemesisError::Task(error.to_string()))
            .and_then(|result| result.map_err(NemesisError::from));
        let value = match &outcome {
            Ok(healed) => json!({
                "node": "all",
                "why": why,
                "healed": healed.iter().map(|(node, action)| json!([node, action])).collect::<Vec<_>>(),
            }),
            Err(error) => json!({"node": "all", "why": why, "error": error.to_string()}),
        };
        self.recorder
            .record(Process::Nemesis, OpType::Info, "heal", value);
        self.recorder.set_current_fault(None);
        outcome.map(|_| ())
    }

    /// Broker ids that are running (not paused, not down) right now.
    fn running_brokers(&self) -> Vec<i32> {
        let mut cluster = lock(&self.cluster);
        cluster
            .broker_ids()
            .into_iter()
            .filter(|id| {
                matches!(
                    cluster.status(&crate::target::broker_name(*id)),
                    Ok(NodeStatus::Running)
                )
            })
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
                    for node in &resolved.nodes {
                        // Errors are in the history; the schedule goes on.
                        let _ = self.inject(planned.fault, node, &why).await;
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
        if let Ok(metadata) = metadata::fetch(addresses, Some(topic), METADATA_TIMEOUT).await
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterConfig, CommandTemplates};
    use crate::history::{HistoryWriter, read_history};

    #[tokio::test]
    async fn faults_on_sleepers_are_recorded_as_nemesis_operations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sleeper = ["/bin/sh", "-c", "exec sleep 60"]
            .map(String::from)
            .to_vec();
        let mut cluster = Cluster::prepare(&ClusterConfig {
            dir: dir.path().to_path_buf(),
            brokers: 2,
            session_timeout_ms: 1000,
            broker_configs: BTreeMap::new(),
            templates: CommandTemplates {
                coordinator: sleeper.clone(),
                broker: sleeper,
            },
        })
        .expect("prepare");
        cluster.start_all().expect("start");
        let cluster = Arc::new(Mutex::new(cluster));
        let history_path = dir.path().join("history.jsonl");
        let recorder = Recorder::new(HistoryWriter::create(&history_path).expect("history"));
        let nemesis = Nemesis::new(Arc::clone(&cluster), recorder.clone());

        nemesis.kill("broker-2").await.expect("kill");
        nemesis.pause("broker-1").await.expect("pause");
        assert_eq!(
            lock(&cluster).status("broker-2").expect("status"),
            NodeStatus::Down
        );
        assert_eq!(
            lock(&cluster).status("broker-1").expect("status"),
            NodeStatus::Paused
        );
        assert!(nemesis.kill("broker-9").await.is_err());
        nemesis.heal_all("end").await.expect("heal");
        assert_eq!(
            lock(&cluster).status("broker-1").expect("status"),
            NodeStatus::Running
        );
        assert_eq!(
            lock(&cluster).status("broker-2").expect("status"),
            NodeStatus::Running
        );
        recorder.close().expect("close");

        let ops: Vec<_> = read_history(&history_path)
            .expect("read")
            .collect::<Result<_, _>>()
            .expect("ops");
        let summary: Vec<(String, String)> = ops
            .iter()
            .map(|op| (format!("{:?}", op.op_type), op.f.clone()))
            .collect();
        let expected = [
            ("Invoke", "kill"),
            ("Info", "kill"),
            ("Invoke", "pause"),
            ("Info", "pause"),
            ("Invoke", "kill"),
            ("Info", "kill"),
            ("Invoke", "heal"),
            ("Info", "heal"),
        ]
        .map(|(t, f)| (t.to_string(), f.to_string()));
        assert_eq!(summary, expected);
        assert!(ops.iter().all(|op| op.process == Process::Nemesis));
        assert_eq!(ops[1].value["node"], "broker-2");
        assert!(ops[5].value["error"].is_string(), "{:?}", ops[5].value);
    }
}
