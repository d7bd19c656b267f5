//! This broker's group coordinator: the shards (led `__consumer_offsets` partitions) it serves,
//! started and stopped with the partitions' leadership (Kafka's `onElection` /
//! `onResignation`), and the lookup every group request starts with — which shard holds a
//! group, or why this broker cannot answer for it (NOT_COORDINATOR,
//! COORDINATOR_LOAD_IN_PROGRESS).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use kafka_protocol::error::ResponseError;

use super::clock::Now;
use super::host::GroupHost;
use super::machine::Group;
use super::placement::partition_for;
use super::shard::Shard;
use crate::broker::partition::{Partition, RoleChange};

/// The group coordinator of one broker.
#[derive(Debug, Default)]
pub struct GroupCoordinator {
    shards: RwLock<BTreeMap<i32, Arc<Shard>>>,
}

impl GroupCoordinator {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<i32, Arc<Shard>>> {
        crate::lock::read(&self.shards)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<i32, Arc<Shard>>> {
        crate::lock::write(&self.shards)
    }

    /// A `__consumer_offsets` partition's role changed on this broker: becoming its leader
    /// loads its groups; anything else unloads them.
    pub fn on_role_change(
        &self,
        host: &Arc<dyn GroupHost>,
        replica: &Arc<Partition>,
        change: RoleChange,
    ) {
        match change {
            RoleChange::BecameLeader { leader_epoch } => {
                tracing::info!(
                    "[GroupCoordinator {}]: Elected as the group coordinator for partition {} in \
                     epoch {leader_epoch}",
                    host.broker_id(),
                    replica.index
                );
                let shard = Arc::new(Shard::new(
                    replica.index,
                    leader_epoch,
                    Arc::clone(replica),
                    host.group_config(),
                ));
                if let Some(previous) = self.write().insert(replica.index, Arc::clone(&shard)) {
                    previous.unload(host.broker_id());
                }
                tokio::spawn(Arc::clone(&shard).load(Arc::clone(host)));
                tokio::spawn(shard.run_timers(Arc::clone(host)));
            }
            RoleChange::BecameFollower { .. } | RoleChange::NoLeader => {
                self.resign(host.broker_id(), replica.index);
            }
            RoleChange::Unchanged | RoleChange::Stale => {}
        }
    }

    /// Stops coordinating the groups of `partition`.
    pub fn resign(&self, broker_id: i32, partition: i32) {
        if let Some(shard) = self.write().remove(&partition) {
            tracing::info!(
                "[GroupCoordinator {broker_id}]: Resigned as the group coordinator for partition \
                 {partition} in epoch {}",
                shard.leader_epoch
            );
            shard.unload(broker_id);
        }
    }

    /// Stops coordinating every group (the topic was deleted, or the broker stops).
    pub fn resign_all(&self, broker_id: i32) {
        let shards = std::mem::take(&mut *self.write());
        for shard in shards.into_values() {
            shard.unload(broker_id);
        }
    }

    /// The shard holding `group_id`, or why this broker cannot serve it.
    pub fn shard_for(
        &self,
        host: &dyn GroupHost,
        group_id: &str,
    ) -> Result<Arc<Shard>, ResponseError> {
        let partition = partition_for(group_id, host.offsets_topic_partition_count());
        self.read()
            .get(&partition)
            .cloned()
            .ok_or(ResponseError::NotCoordinator)
    }

    /// Runs `decide` on `group_id`'s group under its shard's lock — creating the group first
    /// when `create` is true and it does not exist — then makes the writes the decision queued
    /// and wakes the shard's timers. `Ok(None)`: no such group.
    pub fn with_group<R>(
        &self,
        host: &Arc<dyn GroupHost>,
        group_id: &str,
        create: bool,
        decide: impl FnOnce(&mut Group, Now) -> R,
    ) -> Result<Option<R>, ResponseError> {
        let shard = self.shard_for(host.as_ref(), group_id)?;
        let now = Now::current();
        let mut active = shard.lock_active()?;
        let groups = active.groups();
        if create && !groups.contains_key(group_id) {
            groups.insert(
                group_id.to_string(),
                Group::new(group_id, host.group_config(), now),
            );
        }
        let Some(group) = groups.get_mut(group_id) else {
            return Ok(None);
        };
        let decided = decide(group, now);
        shard.flush_writes(host, groups, group_id);
        drop(active);
        shard.poke();
        Ok(Some(decided))
    }

    /// Every shard this broker serves.
    pub fn shards(&self) -> Vec<Arc<Shard>> {
        self.read().values().cloned().collect()
    }
}
