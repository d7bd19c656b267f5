//! The partition replicas hosted by this broker: creating them (opening or recovering their
//! logs under `log.dirs`), finding them for requests, deleting them, flushing them all.
//! Role changes are applied here ([`ReplicaManager::apply`]); the replica fetchers and the
//! ISR task act on what it returns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::log::dir_failure::LogDirFailures;
use super::log::high_watermark_checkpoint::{self, HighWatermarks};
use super::log::partition_log::{LogConfig, PartitionLog};
use tokio::sync::Notify;

use super::partition::{LeaderAndIsr, Partition, ReplicaShared, RoleChange};

/// Partition replicas on this broker, keyed by (topic, partition).
#[derive(Debug)]
pub struct ReplicaManager {
    broker_id: i32,
    log_dir: PathBuf,
    log_config: LogConfig,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// The high watermarks checkpointed by the previous run, used when a replica is opened.
    checkpointed: HighWatermarks,
    isr_wakeup: Arc<Notify>,
    /// The log directory's health: its first I/O error takes it (and every replica) offline.
    failures: Arc<LogDirFailures>,
}

impl ReplicaManager {
    pub fn new(broker_id: i32, log_dir: PathBuf, log_config: LogConfig) -> Self {
        let checkpointed = high_watermark_checkpoint::read(&log_dir);
        let failures = Arc::new(LogDirFailures::new(&log_dir));
        ReplicaManager {
            broker_id,
            log_dir,
            log_config,
            partitions: RwLock::new(HashMap::new()),
            checkpointed,
            isr_wakeup: Arc::new(Notify::new()),
            failures,
        }
    }

    /// The health of the log directory (offline after its first I/O error).
    pub fn log_dir_failures(&self) -> &Arc<LogDirFailures> {
        &self.failures
    }

    /// The directory of a partition's log: `<log.dirs>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.log_dir.join(format!("{topic}-{partition}"))
    }

    /// The replica of `topic`-`partition`, if this broker hosts it.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        crate::lock::read(&self.partitions)
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Applies a partition state read from the coordinator: when this broker is one of the
    /// replicas, opens (recovering) or creates the log the first time, then takes the new
    /// leadership. `None` when this broker is not a replica.
    pub fn apply(
        &self,
        topic: &str,
        partition: i32,
        state: LeaderAndIsr,
        high_watermark_min_isr: Option<i32>,
    ) -> std::io::Result<Option<(Arc<Partition>, RoleChange)>> {
        if !state.replicas.contains(&self.broker_id) {
            return Ok(None);
        }
        let replica = self.ensure_partition(topic, partition, &state.replicas)?;
        replica.set_high_watermark_min_isr(high_watermark_min_isr);
        let change = replica.apply_state(state);
        Ok(Some((replica, change)))
    }

    /// The notifier poked when a follower may rejoin an ISR.
    pub fn isr_wakeup(&self) -> Arc<Notify> {
        Arc::clone(&self.isr_wakeup)
    }

    /// Makes sure this broker hosts `topic`-`partition`: opens (recovering) or creates its log
    /// the first time (not yet elected: the state is applied next).
    fn ensure_partition(
        &self,
        topic: &str,
        partition: i32,
        replicas: &[i32],
    ) -> std::io::Result<Arc<Partition>> {
        if let Some(existing) = self.get(topic, partition) {
            return Ok(existing);
        }
        if self.failures.is_offline() {
            return Err(self.failures.offline_error());
        }
        let state = LeaderAndIsr::unelected(replicas.to_vec());
        let dir = self.partition_dir(topic, partition);
        let (log, recovery) = PartitionLog::open(&dir, self.log_config).inspect_err(|error| {
            self.failures
                .fail(&format!("loading the log of {topic}-{partition}"), error);
        })?;
        if recovery.truncated_bytes > 0 {
            tracing::warn!(
                "recovered log {}: kept {} batches of the active segment, cut a {}-byte torn tail",
                dir.display(),
                recovery.batches,
                recovery.truncated_bytes
            );
        }
        tracing::info!(
            "loaded partition {topic}-{partition}: log end offset {}",
            log.log_end_offset(),
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
            ReplicaShared {
                isr_wakeup: Arc::clone(&self.isr_wakeup),
                log_dir: Arc::clone(&self.failures),
            },
        ));
        let mut partitions = crate::lock::write(&self.partitions);
        Ok(partitions
            .entry((topic.to_string(), partition))
            .or_insert(replica)
            .clone())
    }

    /// Deletes every local replica of `topic` and its files.
    pub fn delete_topic(&self, topic: &str) -> std::io::Result<()> {
        let removed: Vec<Arc<Partition>> = {
            let mut partitions = crate::lock::write(&self.partitions);
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
        crate::lock::read(&self.partitions)
            .values()
            .cloned()
            .collect()
    }

    /// Writes every hosted replica's high watermark to `replication-offset-checkpoint`.
    pub fn checkpoint_high_watermarks(&self) -> std::io::Result<()> {
        if self.failures.is_offline() {
            return Err(self.failures.offline_error());
        }
        let entries: HighWatermarks = self
            .all()
            .iter()
            .map(|p| ((p.topic.clone(), p.index), p.offsets().high_watermark))
            .collect();
        high_watermark_checkpoint::write(&self.log_dir, &entries).inspect_err(|error| {
            self.failures
                .fail("writing the high watermark checkpoint", error);
        })
    }

    /// fsyncs every log and snapshots its producer state (on shutdown).
    pub fn flush_all(&self) -> std::io::Result<()> {
        for partition in self.all() {
            partition.flush()?;
            partition.take_producer_snapshot()?;
        }
        Ok(())
    }
}
