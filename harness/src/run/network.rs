//! The nodes' own network, for a run whose workload has network faults: before anything else,
//! the prerequisites (root, `ip`, `nft`) are checked, so that such a run without them fails at
//! once saying what is missing; then what killed runs left behind is swept
//! ([`crate::cleanup::NetworkSweeper`]) and a network namespace per node is created on a bridge
//! of the run's own ([`netfault::Network`]). After the nodes are stopped it is torn down (and,
//! should the run end another way, when the last handle is dropped). A run without network
//! faults has none: its nodes share the host's loopback, as they always did.

use std::sync::Arc;

use netfault::Network;

use super::error::RunError;
use crate::cleanup::{NetworkSweeper, Sweeper};
use crate::cluster::{COORDINATOR, broker_name};
use crate::workload::WorkloadSpec;

/// Fails (exit 2) when `spec` has network faults and this machine or user cannot build node
/// networks; says which workload asked and what is missing.
pub fn check(spec: &WorkloadSpec, workload: &str) -> Result<(), RunError> {
    if !spec.needs_network() {
        return Ok(());
    }
    netfault::check_prerequisites().map_err(|why| {
        RunError::Network(format!(
            "workload {workload} has network faults (partitions), which run every node in a \
             network namespace of its own: {why}"
        ))
    })
}

/// The node names of a cluster of `brokers` brokers, as the network knows them.
pub fn node_names(brokers: u32) -> Vec<String> {
    std::iter::once(COORDINATOR.to_string())
        .chain((1..=brokers as i32).map(broker_name))
        .collect()
}

/// Sweeps stale networks and creates this run's, when `spec` has network faults.
pub async fn create(spec: &WorkloadSpec, run_id: &str) -> Result<Option<Arc<Network>>, RunError> {
    if !spec.needs_network() {
        return Ok(None);
    }
    let names = node_names(spec.cluster.brokers);
    let run_id = run_id.to_string();
    tokio::task::spawn_blocking(move || {
        match NetworkSweeper.remove() {
            Ok(removed) => {
                for leftover in removed {
                    tracing::info!("removed what a killed run left: {leftover}");
                }
            }
            // A leftover that cannot go does not stop this run: its subnet stays taken.
            Err(error) => tracing::warn!("sweeping stale networks: {error}"),
        }
        Network::create(&run_id, &names)
            .map(|network| Some(Arc::new(network)))
            .map_err(|error| RunError::Network(format!("creating the nodes' network: {error}")))
    })
    .await
    .map_err(|error| RunError::Task(error.to_string()))?
}

/// Removes the network once its nodes are stopped. If a handle is still held elsewhere, the
/// last one to go removes it.
pub async fn teardown(network: Arc<Network>) -> Result<(), RunError> {
    let Ok(network) = Arc::try_unwrap(network) else {
        tracing::warn!("the nodes' network is still in use; it goes with its last handle");
        return Ok(());
    };
    tokio::task::spawn_blocking(move || network.teardown())
        .await
        .map_err(|error| RunError::Task(error.to_string()))?
        .map_err(|error| RunError::Network(format!("removing the nodes' network: {error}")))
}
