//! Rebuilding a `__consumer_offsets` partition's groups from its log (as Kafka's
//! `GroupMetadataManager.doLoadGroupsAndOffsets`): replay every record in order, the last
//! record of a key wins, a tombstone deletes it; then each group is restored from its last
//! metadata record (Stable with its members, or Empty) with its committed offsets. A group
//! with offsets but no metadata record is an Empty group that only stores offsets.
//!
//! Replaying is pure (batches in, groups out); [`super::shard`] reads the log and calls it.
//! A record that does not decode is skipped with a warning (counted), never a panic.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::clock::Now;
use super::config::GroupCoordinatorConfig;
use super::machine::Group;
use super::records::{self, GroupValue, OffsetValue, RecordKey};

/// Why stored bytes could not be replayed.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode a record batch of __consumer_offsets: {0}")]
pub struct ReplayError(String);

/// The state read so far.
#[derive(Debug, Default)]
pub struct Replay {
    /// The last metadata record of each group (`None`: deleted).
    groups: BTreeMap<String, Option<GroupValue>>,
    /// The last commit of each (group, topic, partition) with its record offset.
    offsets: BTreeMap<(String, String, i32), Option<(OffsetValue, i64)>>,
    /// Records that could not be decoded (skipped).
    pub skipped: u64,
    /// Records replayed.
    pub records: u64,
}

impl Replay {
    /// Replays whole stored batches; returns the offset after the last record seen.
    pub fn apply_batches(&mut self, mut bytes: Bytes) -> Result<Option<i64>, ReplayError> {
        let sets = RecordBatchDecoder::decode_all(&mut bytes)
            .map_err(|error| ReplayError(format!("{error:#}")))?;
        let mut next = None;
        for set in sets {
            for record in set.records {
                next = Some(record.offset + 1);
                if record.control {
                    continue;
                }
                self.apply(
                    record.offset,
                    record.key.as_deref(),
                    record.value.as_deref(),
                );
            }
        }
        Ok(next)
    }

    /// Replays one record at `offset`.
    pub fn apply(&mut self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(key) = key else {
            self.skip(offset, "a record without a key");
            return;
        };
        let key = match records::decode_key(key) {
            Ok(key) => key,
            Err(error) => {
                self.skip(offset, &error.to_string());
                return;
            }
        };
        self.records += 1;
        match key {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                let entry = match value.map(records::decode_offset_value) {
                    None => None,
                    Some(Ok(value)) => Some((value, offset)),
                    Some(Err(error)) => {
                        self.skip(offset, &error.to_string());
                        return;
                    }
                };
                self.offsets.insert((group, topic, partition), entry);
            }
            RecordKey::Group { group } => {
                let entry = match value.map(records::decode_group_value) {
                    None => None,
                    Some(Ok(value)) => Some(value),
                    Some(Err(error)) => {
                        self.skip(offset, &error.to_string());
                        return;
                    }
                };
                self.groups.insert(group, entry);
            }
        }
    }

    fn skip(&mut self, offset: i64, why: &str) {
        self.skipped += 1;
        tracing::warn!("skipping __consumer_offsets record at offset {offset}: {why}");
    }

    /// The groups as of the end of the replay, their members due to heartbeat one session
    /// after `now`.
    pub fn into_groups(self, config: GroupCoordinatorConfig, now: Now) -> BTreeMap<String, Group> {
        let mut groups: BTreeMap<String, Group> = self
            .groups
            .into_iter()
            .filter_map(|(id, value)| value.map(|value| (id, value)))
            .map(|(id, value)| {
                let group = Group::from_record(&id, value, config, now);
                (id, group)
            })
            .collect();
        for ((group_id, topic, partition), entry) in self.offsets {
            let Some((value, record_offset)) = entry else {
                continue;
            };
            groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(&group_id, config, now))
                .offsets
                .apply(&topic, partition, value, record_offset);
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::group::records::{
        MemberValue, encode_group_value, encode_key, encode_offset_value,
    };
    use crate::broker::group::state::GroupState;

    fn batch(base_offset: i64, entries: &[(Bytes, Option<Bytes>)]) -> Bytes {
        records::encode_batch(entries, base_offset, 0)
            .expect("encode")
            .freeze()
    }

    fn offset(group: &str, partition: i32, at: i64) -> (Bytes, Option<Bytes>) {
        (
            encode_key(&RecordKey::Offset {
                group: group.into(),
                topic: "t".into(),
                partition,
            }),
            Some(encode_offset_value(&OffsetValue {
                offset: at,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            })),
        )
    }

    fn group_record(group: &str, generation: i32, members: &[&str]) -> (Bytes, Option<Bytes>) {
        (
            encode_key(&RecordKey::Group {
                group: group.into(),
            }),
            Some(encode_group_value(&GroupValue {
                protocol_type: "consumer".into(),
                generation,
                protocol: Some("range".into()),
                leader: members.first().map(|m| m.to_string()),
                current_state_timestamp_ms: 0,
                members: members
                    .iter()
                    .map(|id| MemberValue {
                        member_id: id.to_string(),
                        group_instance_id: None,
                        client_id: "c".into(),
                        client_host: "h".into(),
                        rebalance_timeout_ms: 1000,
                        session_timeout_ms: 1000,
                        subscription: Bytes::new(),
                        assignment: Bytes::from(format!("{id}'s")),
                    })
                    .collect(),
            })),
        )
    }

    #[test]
    fn the_last_record_wins_and_tombstones_delete() {
        let mut replay = Replay::default();
        let first = batch(
            0,
            &[
                group_record("g", 1, &["a", "b"]),
                offset("g", 0, 10),
                offset("g", 1, 5),
                offset("simple", 0, 7),
                group_record("gone", 3, &["x"]),
            ],
        );
        let second = batch(
            5,
            &[
                group_record("g", 2, &["a"]),
                offset("g", 0, 20),
                (offset("g", 1, 0).0, None),
                (group_record("gone", 0, &[]).0, None),
                (b"\x00\x09junk".as_slice().into(), Some(Bytes::new())),
            ],
        );
        let bytes: Bytes = [first, second].concat().into();
        assert_eq!(replay.apply_batches(bytes).expect("replay"), Some(10));
        assert_eq!(replay.skipped, 1);
        let groups = replay.into_groups(GroupCoordinatorConfig::default(), Now::current());
        assert_eq!(groups.keys().collect::<Vec<_>>(), vec!["g", "simple"]);
        let g = &groups["g"];
        assert_eq!(g.state(), GroupState::Stable);
        assert_eq!(g.generation_id(), 2);
        assert_eq!(g.member_ids(), vec!["a".to_string()]);
        assert_eq!(g.offsets.get("t", 0).map(|v| v.offset), Some(20));
        assert_eq!(g.offsets.get("t", 1), None);
        let simple = &groups["simple"];
        assert_eq!(simple.state(), GroupState::Empty);
        assert_eq!(simple.offsets.get("t", 0).map(|v| v.offset), Some(7));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut replay = Replay::default();
        assert!(
            replay
                .apply_batches(Bytes::from_static(&[0u8; 70]))
                .is_err()
        );
        replay.apply(0, None, None);
        assert_eq!(replay.skipped, 1);
    }
}
