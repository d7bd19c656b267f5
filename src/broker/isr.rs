//! ISR maintenance by the leaders on this broker (Kafka's `maybeShrinkIsr` / `maybeExpandIsr`):
//! every `replica.lag.time.max.ms / 2`, and whenever a follower may rejoin, each partition
//! led here compares its ISR with its followers' progress (only registered brokers join) and
//! writes a change to the partition state by compare-and-set on the znode version. A
//! BadVersion means the controller (or a newer leader) changed the state: it is re-read and
//! the decision is taken again on the next round. Dead brokers are not waited for: the
//! controller takes them out of every ISR when their registration goes. With KIP-966's
//! eligible leader replicas on, each write carries the ELR the change makes (`super::elr`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::context::Broker;
use super::metadata_sync;
use super::partition::{IsrChange, Partition};
use super::zk::{PartitionStateJson, ZkClientError};

/// Runs until the broker stops.
pub async fn run(broker: Arc<Broker>, mut stopped: watch::Receiver<bool>) {
    let lag_max = Duration::from_millis(broker.config.replica_lag_time_max_ms);
    let mut ticker = tokio::time::interval((lag_max / 2).max(Duration::from_millis(10)));
    let wakeup = broker.replicas.isr_wakeup();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = wakeup.notified() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let live = broker.metadata.live_broker_ids();
        for partition in broker.replicas.all() {
            if let Some(change) = partition.isr_change(lag_max, &live) {
                write_isr(&broker, &partition, change).await;
            }
        }
    }
}

async fn write_isr(broker: &Arc<Broker>, partition: &Partition, change: IsrChange) {
    #[cfg(feature = "planted-bugs")] // planted bug: isr-shrink-before-written
    if change.new_isr.len() < change.state.isr.len()
        && crate::planted::is_active(crate::planted::PlantedBug::IsrShrinkBeforeWritten)
    {
        partition.isr_written(&change, change.state.zk_version);
    }
    let elr = if broker.config.eligible_leader_replicas_enable {
        super::elr::after_isr_change(
            &change.state.isr,
            &change.new_isr,
            &change.state.elr,
            broker.min_insync_replicas(&partition.topic),
        )
    } else {
        change.state.elr.clone()
    };
    let json = PartitionStateJson {
        controller_epoch: change.state.controller_epoch,
        leader: broker.id(),
        version: 1,
        leader_epoch: change.state.leader_epoch,
        isr: change.new_isr.clone(),
        elr: elr.clone(),
    };
    let written = broker
        .coordinator
        .update_partition_state(
            &partition.topic,
            partition.index,
            &json,
            change.state.zk_version,
        )
        .await;
    let (topic, index) = (&partition.topic, partition.index);
    match written {
        Ok(version) => {
            let verb = if change.new_isr.len() < change.state.isr.len() {
                "Shrinking"
            } else {
                "Expanding"
            };
            tracing::info!(
                "[Partition {topic}-{index} broker={}] {verb} ISR from {} to {}. \
                 Leader: (highWatermark: {}, endOffset: {})",
                broker.id(),
                join(&change.state.isr),
                join(&change.new_isr),
                partition.offsets().high_watermark,
                partition.log_end_offset()
            );
            // The watch may already have delivered this write; otherwise take it now.
            if partition.isr_written(&change, version) {
                let mut state = change.state.clone();
                state.isr = change.new_isr;
                state.elr = elr;
                state.zk_version = version;
                metadata_sync::apply_partition(broker, topic, index, state);
            }
        }
        Err(ZkClientError::BadVersion { .. }) => {
            tracing::info!(
                "[Partition {topic}-{index} broker={}] Cached zkVersion {} not equal to that in \
                 zookeeper, skip updating ISR",
                broker.id(),
                change.state.zk_version
            );
            if let Ok(Some(record)) = broker.coordinator.topic(topic).await {
                metadata_sync::apply_topic(broker, &record);
            }
        }
        Err(error) => {
            tracing::warn!("cannot update the ISR of {topic}-{index}: {error}");
            #[cfg(feature = "planted-bugs")] // planted bug: isr-write-failure-ignored
            if crate::planted::is_active(crate::planted::PlantedBug::IsrWriteFailureIgnored) {
                partition.isr_written(&change, change.state.zk_version);
            }
        }
    }
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}
