//! The nemesis: faults injected into named nodes — `nemesis.kill("broker-2")`,
//! `pause`, `resume`, `stop`, `start`, `restart`, and their disks' `lose-unfsynced`,
//! `power-loss`, `disk-full`, ... (`inject_with`) — and into the network between them —
//! `nemesis.partition(grudge, ...)`, `nemesis.heal_network(...)` — each recorded in the history
//! as an `invoke` and an `info` of process `nemesis` (a partition with its grudge); `heal_all`
//! at the end; and the runner that plays a [`Schedule`], resolving targets (`leader`,
//! `controller`, ...) and partition topologies from live metadata at fault time and, for a step
//! with `when`, striking the moment live metadata shows the condition.
//!
//! # Layout
//! - this file: [`Nemesis`], which records every fault and hands it to its [`FaultFamily`].
//! - `signals.rs`: the signal family (kill, pause, resume, stop, start, restart).
//! - client processes the nemesis can hit like nodes (a consumer group's members,
//!   `consumer-N`) take the same faults from whoever runs them, through [`ClientFaults`].
//! - [`disk`]: the disk family (lose-unfsynced, power-loss, disk-full, disk-error, slow-disk,
//!   heal-disk) on the fault filesystems a run mounts over the nodes' data directories.
//! - [`partitions`]: the partition family (a topology to a grudge, applied and healed).
//! - [`target`]: resolving a step's target (`leader`, `majority`, ...) to node names.
//! - [`schedule`]: the seeded timeline of faults a workload asks for.
//! - `runner.rs`: [`Nemesis::run_schedule`], playing a schedule against live metadata.

pub mod disk;
pub mod partitions;
mod runner;
pub mod schedule;
mod signals;
pub mod target;

use std::sync::{Arc, Mutex};

use netfault::Grudge;

use history::{OpType, Process};
use serde_json::json;

use crate::cluster::{Cluster, ClusterError};
use crate::lock::lock;
use crate::recorder::Recorder;
use crate::workload::{Fault, Topology};

use self::disk::{DiskFaultError, DiskFaultPlan, Disks};
pub use self::signals::STOP_GRACE;

/// Why a fault could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Disk(#[from] DiskFaultError),
    #[error("the nemesis task panicked: {0}")]
    Task(String),
    #[error("{0}")]
    Client(String),
    #[error(
        "`{0}` is a network fault, and this cluster's nodes have no network of their own (a run \
         gives them one only when its workload has network faults)"
    )]
    NoNetwork(&'static str),
    #[error("`{0}` is not a fault of one node (use Nemesis::partition or heal_network)")]
    NotANodeFault(&'static str),
    #[error(transparent)]
    Network(#[from] netfault::NetFaultError),
}

/// Clients the nemesis can hit like nodes — a consumer group's members, named `consumer-N`,
/// each a worker process — done by whoever runs them (the run). Every method may block.
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

/// The fault families, one file each: how a fault is done. Signals to a node's process, its
/// disk (the `faultfs` crate) and network partitions (the `netfault` crate), each a variant
/// here, a file beside `signals.rs`, and its part of [`Nemesis::heal_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultFamily {
    /// Kill, pause, resume, stop, start, restart: `signals.rs`.
    Signals,
    /// Lose-unfsynced, power-loss, disk-full, disk-error, slow-disk, heal-disk: [`disk`].
    Disk,
    /// Partition, heal (the network): [`partitions`].
    Partitions,
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
            Fault::LoseUnfsynced
            | Fault::PowerLoss
            | Fault::DiskFull
            | Fault::DiskError
            | Fault::SlowDisk
            | Fault::HealDisk => FaultFamily::Disk,
            Fault::Partition | Fault::Heal => FaultFamily::Partitions,
        }
    }
}

/// What a partition is recorded with besides its grudge: the nodes it was aimed at, why, and
/// the partition of the topic whose leader (or followers) it aimed at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionAim {
    /// The targets of an `isolate` or `one-way`, comma-separated; absent for random sides.
    pub node: Option<String>,
    pub why: String,
    /// The topic partition a `leader`, `followers` or `successor` target was resolved for.
    pub topic_partition: Option<i32>,
}

/// The fault injector. Cheap to clone.
#[derive(Clone)]
pub struct Nemesis {
    cluster: Arc<Mutex<Cluster>>,
    recorder: Recorder,
    /// The workload's consumer group, when it has one: its id (for `group-coordinator`) and
    /// its members (the `consumer-N` nodes).
    group: Option<(String, Arc<dyn ClientFaults>)>,
    /// The nodes' fault filesystems, when the run mounted them.
    disks: Option<Arc<Disks>>,
    /// The network's current grudge (empty: healed).
    grudge: Arc<Mutex<Grudge>>,
}

impl Nemesis {
    pub fn new(cluster: Arc<Mutex<Cluster>>, recorder: Recorder) -> Self {
        Nemesis {
            cluster,
            recorder,
            group: None,
            disks: None,
            grudge: Arc::default(),
        }
    }

    /// The same nemesis, also able to hit the consumer group `group`'s coordinator and members.
    pub fn with_group(mut self, group: &str, members: Arc<dyn ClientFaults>) -> Self {
        self.group = Some((group.to_string(), members));
        self
    }

    /// The same nemesis, able to do disk faults on `disks`.
    pub fn with_disks(mut self, disks: Option<Arc<Disks>>) -> Self {
        self.disks = disks;
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
        self.inject_with(fault, node, why, &DiskFaultPlan::default())
            .await
    }

    /// [`Nemesis::inject`] with the settings of a disk fault.
    pub async fn inject_with(
        &self,
        fault: Fault,
        node: &str,
        why: &str,
        plan: &DiskFaultPlan,
    ) -> Result<(), NemesisError> {
        self.inject_together(fault, &[node.to_string()], why, plan)
            .await
    }

    /// Injects `fault` into every node of `nodes` as one act (for `power-loss`: all are killed
    /// before any loses its data; other faults are done node after node), recording an invoke
    /// per node, then an info per node (with its error, if any). The first error is returned.
    pub async fn inject_together(
        &self,
        fault: Fault,
        nodes: &[String],
        why: &str,
        plan: &DiskFaultPlan,
    ) -> Result<(), NemesisError> {
        let mut invocation = json!({"why": why});
        if let Some(details) = disk::invocation_details(fault, plan).as_object() {
            for (key, value) in details {
                invocation[key] = value.clone();
            }
        }
        if nodes.len() > 1 {
            invocation["nodes"] = json!(nodes);
        }
        for node in nodes {
            let mut value = invocation.clone();
            value["node"] = json!(node);
            self.recorder
                .record(Process::Nemesis, OpType::Invoke, fault.name(), value);
        }
        if fault.heal().is_some() {
            self.recorder
                .set_current_fault(Some(format!("{} {}", fault.name(), nodes.join(","))));
        }
        let cluster = Arc::clone(&self.cluster);
        let disks = self.disks.clone();
        let names = nodes.to_vec();
        let plan = *plan;
        let members = nodes.iter().find_map(|node| self.member_family(node));
        let outcomes = tokio::task::spawn_blocking(move || match members {
            // A group member's worker process: signals only, each member on its own.
            Some(members) => names
                .iter()
                .map(|name| {
                    members
                        .inject(fault, name)
                        .map(|process| json!({ "process": process }))
                        .map_err(NemesisError::Client)
                })
                .collect(),
            None => do_fault(&mut lock(&cluster), disks.as_deref(), fault, &names, &plan),
        })
        .await
        .unwrap_or_else(|error| {
            let error = error.to_string();
            nodes
                .iter()
                .map(|_| Err(NemesisError::Task(error.clone())))
                .collect()
        });
        let mut first_error = None;
        for (node, outcome) in nodes.iter().zip(outcomes) {
            let mut completion = invocation.clone();
            completion["node"] = json!(node);
            match outcome {
                Ok(details) => {
                    if let Some(details) = details.as_object() {
                        for (key, value) in details {
                            completion[key] = value.clone();
                        }
                    }
                }
                Err(error) => {
                    completion["error"] = json!(error.to_string());
                    tracing::warn!("nemesis {} {node}: {error}", fault.name());
                    first_error.get_or_insert(error);
                }
            }
            self.recorder
                .record(Process::Nemesis, OpType::Info, fault.name(), completion);
        }
        if fault.heal().is_none() {
            self.recorder.set_current_fault(None);
        }
        first_error.map_or(Ok(()), Err)
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

    /// Partitions the network with `grudge` (replacing the current one), recording it with its
    /// topology and aim.
    pub async fn partition(
        &self,
        topology: Topology,
        grudge: Grudge,
        aim: &PartitionAim,
    ) -> Result<(), NemesisError> {
        let mut value = json!({"topology": topology.name(), "grudge": &grudge, "why": aim.why});
        if let Some(node) = &aim.node {
            value["node"] = json!(node);
        }
        if let Some(partition) = aim.topic_partition {
            value["partition"] = json!(partition);
        }
        self.recorder.record(
            Process::Nemesis,
            OpType::Invoke,
            Fault::Partition.name(),
            value.clone(),
        );
        self.recorder.set_current_fault(Some(format!(
            "partition {}{}",
            topology.name(),
            aim.node
                .as_deref()
                .map(|node| format!(" {node}"))
                .unwrap_or_default()
        )));
        let outcome = self
            .on_network(Fault::Partition, move |network, current| {
                partitions::apply(network, &grudge)?;
                *current = grudge;
                Ok(())
            })
            .await;
        let mut completion = value;
        if let Err(error) = &outcome {
            completion["error"] = json!(error.to_string());
            tracing::warn!("nemesis partition {}: {error}", topology.name());
        }
        self.recorder.record(
            Process::Nemesis,
            OpType::Info,
            Fault::Partition.name(),
            completion,
        );
        outcome
    }

    /// Removes the network's grudge, recorded as a `heal` of `what: network`.
    pub async fn heal_network(&self, why: &str) -> Result<(), NemesisError> {
        let value = json!({"what": "network", "why": why});
        self.recorder.record(
            Process::Nemesis,
            OpType::Invoke,
            Fault::Heal.name(),
            value.clone(),
        );
        let outcome = self
            .on_network(Fault::Heal, |network, current| {
                partitions::heal(network)?;
                *current = Grudge::new();
                Ok(())
            })
            .await;
        let mut completion = value;
        if let Err(error) = &outcome {
            completion["error"] = json!(error.to_string());
            tracing::warn!("nemesis heal of the network: {error}");
        }
        self.recorder.record(
            Process::Nemesis,
            OpType::Info,
            Fault::Heal.name(),
            completion,
        );
        self.recorder.set_current_fault(None);
        outcome
    }

    /// The grudge the network has now (empty when healed, or without a network).
    pub fn current_grudge(&self) -> Grudge {
        lock(&self.grudge).clone()
    }

    /// Runs `work` on the cluster's network and the current grudge, on a blocking thread.
    async fn on_network(
        &self,
        fault: Fault,
        work: impl FnOnce(&netfault::Network, &mut Grudge) -> Result<(), netfault::NetFaultError>
        + Send
        + 'static,
    ) -> Result<(), NemesisError> {
        let network = lock(&self.cluster)
            .network()
            .cloned()
            .ok_or(NemesisError::NoNetwork(fault.name()))?;
        let grudge = Arc::clone(&self.grudge);
        tokio::task::spawn_blocking(move || work(&network, &mut lock(&grudge)))
            .await
            .map_err(|error| NemesisError::Task(error.to_string()))?
            .map_err(NemesisError::from)
    }

    /// Heals every fault family — resumes every frozen node, starts every node that is down,
    /// heals the network — as one `heal` operation.
    pub async fn heal_all(&self, why: &str) -> Result<(), NemesisError> {
        self.recorder.record(
            Process::Nemesis,
            OpType::Invoke,
            "heal",
            json!({"node": "all", "why": why}),
        );
        let cluster = Arc::clone(&self.cluster);
        let members = self.group.as_ref().map(|(_, members)| Arc::clone(members));
        let grudge = Arc::clone(&self.grudge);
        let disks = self.disks.clone();
        // Every family heals what it did: the network first, so that restarted nodes find
        // their peers, then the disks, so that they find working ones; then the nodes, and the
        // group's members.
        let outcome = tokio::task::spawn_blocking(move || {
            let mut cluster = lock(&cluster);
            let mut healed = Vec::new();
            let mut grudge = lock(&grudge);
            if let Some(network) = cluster.network()
                && !grudge.is_empty()
            {
                partitions::heal(network)?;
                *grudge = Grudge::new();
                healed.push(("network".to_string(), "heal"));
            }
            if let Some(disks) = disks {
                healed.extend(
                    disks
                        .heal()
                        .into_iter()
                        .map(|node| (node, Fault::HealDisk.name())),
                );
            }
            healed.extend(signals::heal(&mut cluster)?);
            drop(cluster);
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

/// Does `fault` to `nodes` by its family; one outcome per node, with what to add to its
/// completion in the history.
fn do_fault(
    cluster: &mut Cluster,
    disks: Option<&Disks>,
    fault: Fault,
    nodes: &[String],
    plan: &DiskFaultPlan,
) -> Vec<Result<serde_json::Value, NemesisError>> {
    match FaultFamily::of(fault) {
        FaultFamily::Signals => nodes
            .iter()
            .map(|node| {
                signals::inject(cluster, fault, node)
                    .map(|()| json!({}))
                    .map_err(NemesisError::from)
            })
            .collect(),
        FaultFamily::Partitions => nodes
            .iter()
            .map(|_| Err(NemesisError::NotANodeFault(fault.name())))
            .collect(),
        FaultFamily::Disk => {
            let Some(disks) = disks else {
                return nodes
                    .iter()
                    .map(|node| Err(DiskFaultError::NoDisk(node.clone()).into()))
                    .collect();
            };
            if fault == Fault::PowerLoss {
                return disks
                    .power_loss(cluster, nodes, plan)
                    .into_iter()
                    .map(|outcome| outcome.map_err(NemesisError::from))
                    .collect();
            }
            nodes
                .iter()
                .map(|node| {
                    disks
                        .inject(cluster, fault, node, plan)
                        .map_err(NemesisError::from)
                })
                .collect()
        }
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
