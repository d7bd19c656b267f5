//! The partition replicas hosted by this broker: creating them (opening or recovering their
//! logs under `log.dirs`), finding them for requests, deleting them, flushing them all.
//! The replica fetcher and ISR maintenance of the replication issue hang off this type.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::log::high_watermark_checkpoint::{self, HighWatermarks};
use super::log::partition_log::{LogConfig, PartitionLog};
use super::partition::{LeaderAndIsr, Partition};

/// Partition replicas on this broker, keyed by (topic, partition).
#[derive(Debug)]
pub struct ReplicaManager {
    broker_id: i32,
    log_dir: PathBuf,
    log_config: LogConfig,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// The high watermarks checkpointed by the previous run, used when a replica is opened.
    checkpointed: HighWatermarks,
}

impl ReplicaManager {
    pub fn new(broker_id: i32, log_dir: PathBuf, log_config: LogConfig) -> Self {
        let checkpointed = high_watermark_checkpoint::read(&log_dir);
        ReplicaManager {
            broker_id,
            log_dir,
            log_config,
            partitions: RwLock::new(HashMap::new()),
            checkpointed,
        }
    }

    /// The directory of a partition's log: `<log.dirs>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.log_dir.join(format!("{topic}-{partition}"))
    }

    /// The replica of `topic`-`partition`, if this broker hosts it.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Makes sure this broker hosts `topic`-`partition` with `state`: opens (recovering) or
    /// creates its log the first time, otherwise updates its leadership.
    pub fn ensure_partition(
        &self,
        topic: &str,
        partition: i32,
        state: LeaderAndIsr,
    ) -> std::io::Result<Arc<Partition>> {
        if let Some(existing) = self.get(topic, partition) {
            existing.update_leader_and_isr(state);
            return Ok(existing);
        }
        let dir = self.partition_dir(topic, partition);
        let (log, recovery) = PartitionLog::open(&dir, self.log_config)?;
        if recovery.truncated_bytes > 0 {
            tracing::warn!(
                "recovered log {}: kept {} batches of the active segment, cut a {}-byte torn tail",
                dir.display(),
                recovery.batches,
                recovery.truncated_bytes
            );
        }
        tracing::info!(
            "loaded partition {topic}-{partition}: log end offset {}, leader {}, epoch {}",
            log.log_end_offset(),
            state.leader,
            state.leader_epoch
        );
        let checkpointed = self
            .checkpointed
            .get(&(topic.to_string(), partition))
            .copied();
        let replica = Arc::new(Partition::new(
            topic,
            partition,
            self.broker_id,
            log,
            state,
            checkpointed,
        ));
        let mut partitions = self
            .partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(partitions
            .entry((topic.to_string(), partition))
            .or_insert(replica)
            .clone())
    }

    /// Deletes every local replica of `topic` and its files.
    pub fn delete_topic(&self, topic: &str) -> std::io::Result<()> {
        let removed: Vec<Arc<Partition>> = {
            let mut partitions = self
                .partitions
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let keys: Vec<_> = partitions
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            keys.iter()
                .filter_map(|key| partitions.remove(key))
                .collect()
        };
        for partition in removed {
            partition.delete()?;
        }
        Ok(())
    }

    /// All hosted replicas.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Writes every hosted replica's high watermark to `replication-offset-checkpoint`.
    pub fn checkpoint_high_watermarks(&self) -> std::io::Result<()> {
        let entries: HighWatermarks = self
            .all()
            .iter()
            .map(|p| ((p.topic.clone(), p.index), p.offsets().high_watermark))
            .collect();
        high_watermark_checkpoint::write(&self.log_dir, &entries)
    }

    /// fsyncs every log (on shutdown).
    pub fn flush_all(&self) -> std::io::Result<()> {
        for partition in self.all() {
            partition.flush()?;
        }
        Ok(())
    }
}
