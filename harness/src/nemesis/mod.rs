//! The nemesis: faults injected into named nodes — `nemesis.kill("broker-2")`,
//! `pause`, `resume`, `stop`, `start`, `restart` — each recorded in the history as an `invoke`
//! and an `info` of process `nemesis`; `heal_all` at the end; and the runner that plays a
//! [`Schedule`], resolving targets (`leader`, `controller`, ...) from live metadata at fault time
//! and, for a step with `when`, striking the moment live metadata shows the condition.
//!
//! # Layout
//! - this file: [`Nemesis`], which records every fault and hands it to its [`FaultFamily`].
//! - `signals.rs`: the signal family (kill, pause, resume, stop, start, restart).
//! - client processes the nemesis can hit like nodes (a consumer group's members,
//!   `consumer-N`) take the same faults from whoever runs them, through [`ClientFaults`].
//! - [`target`]: resolving a step's target (`leader`, `majority`, ...) to node names.
//! - [`schedule`]: the seeded timeline of faults a workload asks for.
//! - `runner.rs`: [`Nemesis::run_schedule`], playing a schedule against live metadata.

mod runner;
pub mod schedule;
mod signals;
pub mod target;

use std::sync::{Arc, Mutex};

use history::{OpType, Process};
use serde_json::json;

use crate::cluster::{Cluster, ClusterError};
use crate::lock::lock;
use crate::recorder::Recorder;
use crate::workload::Fault;

pub use self::signals::STOP_GRACE;

/// Why a fault could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("the nemesis task panicked: {0}")]
    Task(String),
    #[error("{0}")]
    Client(String),
}

/// Clients the nemesis can hit like nodes — a consumer group's members, named `consumer-N` —
/// done by whoever runs them (the run, today over in-process members). Every method may block.
pub trait ClientFaults: Send + Sync {
    /// Whether `node` names one of these clients.
    fn owns(&self, node: &str) -> bool;
    /// Does `fault` to `node`; returns the client's process number after it (fresh after a
    /// start).
    fn inject(&self, fault: Fault, node: &str) -> Result<u64, String>;
    /// Resumes what is paused and starts what is down; returns `(node, "resume" | "start")`.
    fn heal(&self) -> Result<Vec<(String, &'static str)>, String>;
    /// The names of those running (neither paused nor down).
    fn running(&self) -> Vec<String>;
}

/// The fault families, one file each: how a fault is done. Signals to a node's process today;
/// network partitions (the `netfault` crate) and disk faults (the `faultfs` crate) come next,
/// each a variant here, a file beside `signals.rs`, and its part of [`Nemesis::heal_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultFamily {
    /// Kill, pause, resume, stop, start, restart: `signals.rs`.
    Signals,
}

impl FaultFamily {
    /// The family `fault` belongs to.
    pub fn of(fault: Fault) -> Self {
        match fault {
            Fault::Kill
            | Fault::Pause
            | Fault::Resume
            | Fault::Stop
            | Fault::Start
            | Fault::Restart => FaultFamily::Signals,
        }
    }
}

/// The fault injector. Cheap to clone.
#[derive(Clone)]
pub struct Nemesis {
    cluster: Arc<Mutex<Cluster>>,
    recorder: Recorder,
    /// The workload's consumer group, when it has one: its id (for `group-coordinator`) and
    /// its members (the `consumer-N` nodes).
    group: Option<(String, Arc<dyn ClientFaults>)>,
}

impl Nemesis {
    pub fn new(cluster: Arc<Mutex<Cluster>>, recorder: Recorder) -> Self {
        Nemesis {
            cluster,
            recorder,
            group: None,
        }
    }

    /// The same nemesis, also able to hit the consumer group `group`'s coordinator and members.
    pub fn with_group(mut self, group: &str, members: Arc<dyn ClientFaults>) -> Self {
        self.group = Some((group.to_string(), members));
        self
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
        let mut completion = value;
        let outcome = match self.member_family(node) {
            Some(members) => {
                let name = node.to_string();
                let done = tokio::task::spawn_blocking(move || members.inject(fault, &name))
                    .await
                    .map_err(|error| NemesisError::Task(error.to_string()))
                    .and_then(|result| result.map_err(NemesisError::Client));
                done.map(|process| completion["process"] = json!(process))
            }
            None => {
                let cluster = Arc::clone(&self.cluster);
                let name = node.to_string();
                tokio::task::spawn_blocking(move || {
                    let mut cluster = lock(&cluster);
                    match FaultFamily::of(fault) {
                        FaultFamily::Signals => signals::inject(&mut cluster, fault, &name),
                    }
                })
                .await
                .map_err(|error| NemesisError::Task(error.to_string()))
                .and_then(|result| result.map_err(NemesisError::from))
            }
        };
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

    /// The group's members, if `node` names one of them.
    fn member_family(&self, node: &str) -> Option<Arc<dyn ClientFaults>> {
        let (_, members) = self.group.as_ref()?;
        members.owns(node).then(|| Arc::clone(members))
    }

    /// The consumer group's id, if the workload has one.
    fn group_id(&self) -> Option<&str> {
        self.group.as_ref().map(|(id, _)| id.as_str())
    }

    /// The running members' node names (none without a group).
    fn running_members(&self) -> Vec<String> {
        self.group
            .as_ref()
            .map(|(_, members)| members.running())
            .unwrap_or_default()
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
        let members = self.group.as_ref().map(|(_, members)| Arc::clone(members));
        // Every family heals what it did: signals to nodes, and the group's members.
        let outcome = tokio::task::spawn_blocking(move || {
            let mut healed = signals::heal(&mut lock(&cluster))?;
            if let Some(members) = members {
                healed.extend(members.heal().map_err(NemesisError::Client)?);
            }
            Ok::<_, NemesisError>(healed)
        })
        .await
        .map_err(|error| NemesisError::Task(error.to_string()))
        .and_then(|result| result);
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
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use history::{HistoryWriter, read_history};

    use super::*;
    use crate::cluster::NodeStatus;
    use crate::cluster::config::{ClusterConfig, CommandTemplates};

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
