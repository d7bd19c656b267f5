//! Bringing the cluster up and keeping it whole: the coordinator, then the brokers, then the
//! topic, each awaited through live metadata (a node that dies meanwhile fails the setup at once
//! with the end of its log); and after the final heal, restarting nodes that exited again until
//! every broker is back and every partition has a leader.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::RunError;
use crate::cluster::metadata::{self, ClusterMetadata};
use crate::cluster::topic::{NewTopic, create_topic};
use crate::cluster::{COORDINATOR, Cluster, NodeStatus};
use crate::lock::lock;
use crate::nemesis::Nemesis;
use crate::workload::{Fault, WorkloadSpec};

/// How long the coordinator may take to accept connections (a JVM ZooKeeper is slow).
const COORDINATOR_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the brokers may take to all appear in the metadata.
const BROKERS_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long topic creation and full replication of the topic may take.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the cluster may take to come back whole after the heal.
pub const LEADERS_AFTER_HEAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times the heal restarts nodes that exited again.
const RESTARTS_AFTER_HEAL_MAX: u32 = 10;
/// One metadata request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

/// Coordinator first (waiting until it accepts connections), then the brokers (waiting until
/// the metadata lists them all), then the topic (waiting until every partition is led and fully
/// replicated).
pub async fn start_cluster(
    cluster: &Arc<Mutex<Cluster>>,
    spec: &WorkloadSpec,
    addresses: &[String],
) -> Result<(), RunError> {
    let coordinator_address = {
        let mut cluster = lock(cluster);
        cluster.start(COORDINATOR)?;
        cluster.coordinator_address().to_string()
    };
    let deadline = tokio::time::Instant::now() + COORDINATOR_START_TIMEOUT;
    while tokio::net::TcpStream::connect(&coordinator_address)
        .await
        .is_err()
    {
        check_nodes_alive(cluster, Some(COORDINATOR))?;
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::Setup(format!(
                "the coordinator did not accept connections on {coordinator_address} within {} ms",
                COORDINATOR_START_TIMEOUT.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let mut cluster = lock(cluster);
        for name in cluster.node_names() {
            cluster.start(&name)?;
        }
    }
    let expected = spec.cluster.brokers as usize;
    wait_for_metadata(
        addresses,
        None,
        &format!("all {expected} brokers in the metadata"),
        BROKERS_START_TIMEOUT,
        Some(cluster),
        |metadata| metadata.brokers.len() >= expected,
    )
    .await?;
    let topic = NewTopic {
        name: &spec.topic.name,
        partitions: spec.topic.partitions,
        replication_factor: spec.topic.replication_factor,
        configs: &spec.topic.configs,
    };
    create_topic(addresses, &topic, TOPIC_READY_TIMEOUT)
        .await
        .map_err(|error| RunError::Setup(error.to_string()))?;
    let partitions = spec.topic.partitions;
    wait_for_metadata(
        addresses,
        Some(&spec.topic.name),
        "every partition led with a full ISR",
        TOPIC_READY_TIMEOUT,
        Some(cluster),
        |metadata| metadata.all_partitions_fully_replicated(partitions),
    )
    .await?;
    Ok(())
}

/// Polls the metadata until `condition` holds. With `cluster`, a node that died meanwhile ends
/// the wait at once with the end of its log.
pub async fn wait_for_metadata(
    addresses: &[String],
    topic: Option<&str>,
    what: &str,
    timeout: Duration,
    cluster: Option<&Arc<Mutex<Cluster>>>,
    condition: impl Fn(&ClusterMetadata) -> bool,
) -> Result<ClusterMetadata, RunError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(cluster) = cluster {
            check_nodes_alive(cluster, None)?;
        }
        let last_seen = match metadata::fetch(addresses, topic, METADATA_TIMEOUT).await {
            Ok(metadata) if condition(&metadata) => return Ok(metadata),
            Ok(metadata) => format!("last metadata: {}", metadata.describe()),
            Err(error) => format!("last metadata request failed: {error}"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::Setup(format!(
                "timed out after {} ms waiting for {what} ({last_seen})",
                timeout.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fails naming the first node that is down (of all, or only `only`), with the last lines of
/// its log.
fn check_nodes_alive(cluster: &Arc<Mutex<Cluster>>, only: Option<&str>) -> Result<(), RunError> {
    let mut cluster = lock(cluster);
    let names = match only {
        Some(name) => vec![name.to_string()],
        None => cluster.node_names(),
    };
    for name in names {
        if cluster.status(&name)? == NodeStatus::Down {
            let log_path = cluster.log_path(&name)?;
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(10)..].join("\n  ");
            return Err(RunError::Setup(format!(
                "{name} exited during setup; the end of {}:\n  {tail}",
                log_path.display()
            )));
        }
    }
    Ok(())
}

/// After the heal, until every broker is in the metadata and every partition has a leader:
/// starts again any node that exited (a broker restarted before its old coordinator session
/// expired may refuse to start), a bounded number of times. Gives up quietly at the deadline:
/// the final read then reports what it could not read.
pub async fn keep_healed(nemesis: &Nemesis, cluster: &Arc<Mutex<Cluster>>, spec: &WorkloadSpec) {
    let addresses = lock(cluster).broker_addresses();
    let deadline = tokio::time::Instant::now() + LEADERS_AFTER_HEAL_TIMEOUT;
    let mut restarts = 0;
    loop {
        let down: Vec<String> = {
            let mut cluster = lock(cluster);
            cluster
                .node_names()
                .into_iter()
                .filter(|name| matches!(cluster.status(name), Ok(NodeStatus::Down)))
                .collect()
        };
        for node in down {
            if restarts < RESTARTS_AFTER_HEAL_MAX {
                restarts += 1;
                let _ = nemesis
                    .inject(Fault::Start, &node, "heal: it had exited")
                    .await;
            }
        }
        if let Ok(metadata) =
            metadata::fetch(&addresses, Some(&spec.topic.name), METADATA_TIMEOUT).await
            && metadata.brokers.len() >= spec.cluster.brokers as usize
            && metadata.all_partitions_led(spec.topic.partitions)
        {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("the cluster did not recover fully after the heal");
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
