//! What a partition remembers of one idempotent producer (Kafka's `ProducerStateEntry`): its
//! epoch, the metadata of its last [`BATCHES_TO_RETAIN`] batches (sequence range and offset
//! range, newest last) and the timestamp of its latest batch (for expiration). Sequence numbers
//! wrap from `i32::MAX` to 0, as Kafka's `DefaultRecordBatch.incrementSequence` does.

use std::collections::VecDeque;

use crate::broker::log::batch::BatchHeader;

/// Batches remembered per producer: a retry of any of them is answered as a duplicate (the
/// most an idempotent producer has in flight per partition).
pub const BATCHES_TO_RETAIN: usize = 5;

/// `sequence + increment`, wrapping past `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// `sequence - decrement`, wrapping below 0 to `i32::MAX`.
pub fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    if sequence < decrement {
        i32::MAX - (decrement - sequence) + 1
    } else {
        sequence - decrement
    }
}

/// Whether `next` is the sequence right after `last` (0 after `i32::MAX`).
pub fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The producer fields of one batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    /// `lastOffsetDelta`: the batch spans that many sequences (and offsets) after the first.
    pub offset_delta: i32,
    pub max_timestamp_ms: i64,
    pub transactional: bool,
    pub control: bool,
}

impl ProducerBatch {
    /// The producer fields of `header`, if a producer id is set.
    pub fn of(header: &BatchHeader) -> Option<Self> {
        header.has_producer_id().then(|| ProducerBatch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_sequence: header.base_sequence,
            offset_delta: header.last_offset_delta,
            max_timestamp_ms: header.max_timestamp,
            transactional: header.is_transactional(),
            control: header.is_control(),
        })
    }

    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.first_sequence, self.offset_delta)
    }
}

/// One appended batch as the state remembers it (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub last_sequence: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
}

impl BatchMetadata {
    pub fn first_sequence(&self) -> i32 {
        decrement_sequence(self.last_sequence, self.offset_delta)
    }

    pub fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

/// One producer's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; at most [`BATCHES_TO_RETAIN`].
    batches: VecDeque<BatchMetadata>,
    /// The max timestamp of the latest batch (Kafka's `lastTimestamp`).
    pub last_timestamp_ms: i64,
}

impl ProducerEntry {
    /// An entry from its parts (a snapshot); only the newest [`BATCHES_TO_RETAIN`] are kept.
    pub fn new(
        epoch: i16,
        batches: impl IntoIterator<Item = BatchMetadata>,
        last_timestamp_ms: i64,
    ) -> Self {
        let mut entry = ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
            last_timestamp_ms,
        };
        for batch in batches {
            entry.push(batch);
        }
        entry
    }

    /// The remembered batches, oldest first.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    /// The last sequence of the latest batch, if any.
    pub fn last_sequence(&self) -> Option<i32> {
        self.batches.back().map(|batch| batch.last_sequence)
    }

    /// The last offset of the latest batch, if any.
    pub fn last_offset(&self) -> Option<i64> {
        self.batches.back().map(|batch| batch.last_offset)
    }

    /// The remembered batch with exactly this batch's epoch and sequence range: a retry.
    pub fn find_duplicate(&self, batch: &ProducerBatch) -> Option<BatchMetadata> {
        if batch.epoch != self.epoch {
            return None;
        }
        let last_sequence = batch.last_sequence();
        self.batches
            .iter()
            .find(|cached| {
                cached.first_sequence() == batch.first_sequence
                    && cached.last_sequence == last_sequence
            })
            .copied()
    }

    /// Records an appended batch whose first offset is `first_offset`. A new epoch forgets the
    /// batches of the previous one.
    pub fn add(&mut self, batch: &ProducerBatch, first_offset: i64) {
        if batch.epoch != self.epoch {
            self.batches.clear();
            self.epoch = batch.epoch;
        }
        self.push(BatchMetadata {
            last_sequence: batch.last_sequence(),
            last_offset: first_offset + i64::from(batch.offset_delta),
            offset_delta: batch.offset_delta,
        });
        self.last_timestamp_ms = batch.max_timestamp_ms;
    }

    fn push(&mut self, batch: BatchMetadata) {
        if self.batches.len() == BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }

    /// Whether the producer has been idle for `expiration_ms` at `now_ms`.
    pub fn is_expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        now_ms.saturating_sub(self.last_timestamp_ms) >= expiration_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first_sequence: i32, records: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            epoch,
            first_sequence,
            offset_delta: records - 1,
            max_timestamp_ms: 1_000,
            transactional: false,
            control: false,
        }
    }

    #[test]
    fn sequences_wrap_at_int_max() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(decrement_sequence(8, 3), 5);
        assert!(in_sequence(4, 5));
        assert!(in_sequence(i32::MAX, 0));
        assert!(!in_sequence(4, 6));
        assert!(!in_sequence(i32::MAX, i32::MIN));
        let wrapping = batch(0, i32::MAX - 1, 4);
        assert_eq!(wrapping.last_sequence(), 1);
        let mut entry = ProducerEntry::new(0, [], 0);
        entry.add(&wrapping, 100);
        let cached = entry.batches().next().copied().expect("one batch");
        assert_eq!(cached.first_sequence(), i32::MAX - 1);
        assert_eq!((cached.first_offset(), cached.last_offset), (100, 103));
    }

    #[test]
    fn keeps_the_last_five_batches_of_the_current_epoch() {
        let mut entry = ProducerEntry::new(0, [], 0);
        for i in 0..7 {
            entry.add(&batch(0, i * 10, 10), i64::from(i) * 10);
        }
        assert_eq!(entry.batches().len(), BATCHES_TO_RETAIN);
        assert_eq!(
            entry.batches().next().expect("batches").first_sequence(),
            20
        );
        assert_eq!(
            entry
                .find_duplicate(&batch(0, 30, 10))
                .expect("a duplicate")
                .last_offset,
            39
        );
        assert_eq!(entry.find_duplicate(&batch(0, 10, 10)), None, "forgotten");
        assert_eq!(
            entry.find_duplicate(&batch(0, 30, 5)),
            None,
            "another range"
        );
        assert_eq!(
            entry.find_duplicate(&batch(1, 30, 10)),
            None,
            "another epoch"
        );
        entry.add(&batch(1, 0, 3), 70);
        assert_eq!((entry.epoch, entry.batches().len()), (1, 1));
        assert_eq!(entry.last_sequence(), Some(2));
    }
}
