//! What the group coordinator needs of its broker: its id, the group settings, the record size
//! limit and `min.insync.replicas` of `__consumer_offsets`, and how many partitions groups are
//! spread over. The broker ([`Broker`](crate::broker::context::Broker)) implements it; the
//! groups know nothing else of the broker, so the broker's shared state (which holds the group
//! coordinator) and the groups do not refer to each other.

use super::config::GroupCoordinatorConfig;

pub trait GroupHost: Send + Sync + 'static {
    /// This broker's id.
    fn broker_id(&self) -> i32;
    /// The `group.*` and `offsets.*` settings.
    fn group_config(&self) -> GroupCoordinatorConfig;
    /// `message.max.bytes`: the bound on decompressing what is read back at load.
    fn message_max_bytes(&self) -> usize;
    /// `min.insync.replicas` of `topic` (its override, else the broker's).
    fn min_insync_replicas(&self, topic: &str) -> i32;
    /// How many `__consumer_offsets` partitions groups are spread over.
    fn offsets_topic_partition_count(&self) -> i32;
}
