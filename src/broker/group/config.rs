//! The group coordinator's settings: Kafka's `offsets.*` and `group.*` broker configs, with
//! Kafka's defaults. Parsed with the rest of `server.properties` (see `broker::config`).

/// Kafka's `group.*` and `offsets.*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCoordinatorConfig {
    /// `offsets.topic.num.partitions` (50).
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor` (3): `__consumer_offsets` is not created with fewer
    /// live brokers (FindCoordinator answers COORDINATOR_NOT_AVAILABLE until there are enough).
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes` (100 MiB).
    pub offsets_topic_segment_bytes: u64,
    /// `offsets.commit.timeout.ms` (5000): how long a commit (or a group write) waits for its
    /// record to be replicated before it fails with REQUEST_TIMED_OUT.
    pub offsets_commit_timeout_ms: u64,
    /// `offsets.retention.minutes` (7 days): offsets of a group that has been empty this long
    /// (or, for a group that never had members, committed this long ago) are removed.
    pub offsets_retention_minutes: u64,
    /// `offsets.retention.check.interval.ms` (600000).
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes` (4096): longer commit metadata is OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: usize,
    /// `group.min.session.timeout.ms` (6000).
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000).
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (3000): how long the first rebalance of an empty
    /// group waits for more members (extended up to the rebalance timeout while they come).
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.max.size` (Kafka: Int.MAX; here 10000, a bound): more members get
    /// GROUP_MAX_SIZE_REACHED.
    pub group_max_size: usize,
}

impl Default for GroupCoordinatorConfig {
    fn default() -> Self {
        GroupCoordinatorConfig {
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            offsets_commit_timeout_ms: 5000,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3000,
            group_max_size: 10_000,
        }
    }
}

impl GroupCoordinatorConfig {
    /// `offsets.retention.minutes` in milliseconds.
    pub fn offsets_retention_ms(&self) -> i64 {
        i64::try_from(self.offsets_retention_minutes.saturating_mul(60_000)).unwrap_or(i64::MAX)
    }
}
