//! One group's committed offsets, as OffsetFetch answers them. An offset enters only once its
//! record is replicated (the commit is then acknowledged), so a fetch never returns a commit
//! that could be lost with the coordinator. Each entry remembers the position of its record in
//! `__consumer_offsets`: when two commits of the same partition complete out of order, the one
//! written later wins, as it will when the log is replayed after a failover.

use std::collections::BTreeMap;

use super::records::OffsetValue;

/// A committed offset and where its record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub value: OffsetValue,
    /// The offset of its record in the `__consumer_offsets` partition.
    pub record_offset: i64,
}

/// A group's committed offsets by (topic, partition).
#[derive(Debug, Default, Clone)]
pub struct GroupOffsets {
    offsets: BTreeMap<(String, i32), CommittedOffset>,
}

impl GroupOffsets {
    /// The committed offset of `topic`-`partition`, if any.
    pub fn get(&self, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.offsets
            .get(&(topic.to_string(), partition))
            .map(|committed| &committed.value)
    }

    /// Every committed offset, by topic then partition.
    pub fn all(&self) -> impl Iterator<Item = (&str, i32, &OffsetValue)> {
        self.offsets
            .iter()
            .map(|((topic, partition), committed)| (topic.as_str(), *partition, &committed.value))
    }

    /// Records a replicated commit unless a later record of the same partition is already in.
    /// Returns whether it was taken.
    pub fn apply(
        &mut self,
        topic: &str,
        partition: i32,
        value: OffsetValue,
        record_offset: i64,
    ) -> bool {
        let key = (topic.to_string(), partition);
        if self
            .offsets
            .get(&key)
            .is_some_and(|existing| existing.record_offset > record_offset)
        {
            return false;
        }
        self.offsets.insert(
            key,
            CommittedOffset {
                value,
                record_offset,
            },
        );
        true
    }

    /// Removes an offset (a tombstone at `record_offset`, or an expiry when `None`), unless a
    /// later record set it again.
    pub fn remove(&mut self, topic: &str, partition: i32, record_offset: Option<i64>) {
        let key = (topic.to_string(), partition);
        let later = match (self.offsets.get(&key), record_offset) {
            (Some(existing), Some(at)) => existing.record_offset > at,
            _ => false,
        };
        if !later {
            self.offsets.remove(&key);
        }
    }

    /// The offsets committed before `cutoff_ms` (every one when `all` is true).
    pub fn expired(&self, cutoff_ms: i64, all: bool) -> Vec<(String, i32)> {
        self.offsets
            .iter()
            .filter(|(_, committed)| all || committed.value.commit_timestamp_ms < cutoff_ms)
            .map(|(key, _)| key.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(offset: i64, commit_timestamp_ms: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms,
        }
    }

    #[test]
    fn the_later_record_wins_whatever_the_completion_order() {
        let mut offsets = GroupOffsets::default();
        assert!(offsets.apply("t", 0, value(20, 0), 11));
        assert!(!offsets.apply("t", 0, value(10, 0), 10), "an older record");
        assert_eq!(offsets.get("t", 0).map(|v| v.offset), Some(20));
        assert!(offsets.apply("t", 0, value(30, 0), 12));
        offsets.remove("t", 0, Some(5));
        assert_eq!(
            offsets.get("t", 0).map(|v| v.offset),
            Some(30),
            "older tombstone"
        );
        offsets.remove("t", 0, Some(13));
        assert_eq!(offsets.get("t", 0), None);
    }

    #[test]
    fn expiry_by_commit_time_or_all() {
        let mut offsets = GroupOffsets::default();
        offsets.apply("a", 0, value(1, 100), 0);
        offsets.apply("b", 1, value(1, 300), 1);
        assert_eq!(offsets.expired(200, false), vec![("a".to_string(), 0)]);
        assert_eq!(offsets.expired(0, true).len(), 2);
        offsets.remove("a", 0, None);
        assert_eq!(offsets.len(), 1);
        assert_eq!(offsets.all().count(), 1);
    }
}
