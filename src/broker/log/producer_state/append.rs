//! The leader's checks of a produced batch against its producer's state, pure (Kafka's
//! `LogValidator.validateBatch` producer fields, `ProducerStateEntry.findDuplicateBatch` and
//! `ProducerAppendInfo.checkProducerEpoch`/`checkSequence`):
//!
//! 1. A retry of one of the producer's last five batches (same epoch, same sequence range) is a
//!    duplicate: nothing is appended and the producer is answered with the original offsets.
//! 2. An epoch older than the producer's current one: INVALID_PRODUCER_EPOCH (Kafka answers
//!    PRODUCER_FENCED only to transactional InitProducerId; a Produce gets INVALID_PRODUCER_EPOCH
//!    since Kafka 2.7).
//! 3. A newer epoch must start at sequence 0; within the epoch the first sequence must follow the
//!    last one (wrapping at `i32::MAX`): else OUT_OF_ORDER_SEQUENCE_NUMBER.
//! 4. A producer id the partition has no state for is accepted at any sequence: since KIP-360
//!    (Kafka 2.5, every Produce version) brokers no longer answer UNKNOWN_PRODUCER_ID; the state
//!    may have been lost to retention or expiration and the producer's sequence is trusted.
//!
//! Followers never run these checks: they record what their leader accepted.

use super::entry::{ProducerBatch, ProducerEntry, in_sequence};
use crate::broker::log::batch::BatchHeader;

/// Why a produced batch was refused for its producer fields or state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error(
        "invalid sequence number {first_sequence} in record batch with producerId {producer_id}"
    )]
    InvalidSequence {
        producer_id: i64,
        first_sequence: i32,
    },
    #[error("invalid producer epoch {epoch} in record batch with producerId {producer_id}")]
    InvalidEpochField { producer_id: i64, epoch: i16 },
    #[error(
        "produce requests from idempotent producers must contain exactly one record batch per \
         partition, not {batches}"
    )]
    ManyBatches { batches: usize },
    #[error("clients are not allowed to write control records")]
    ControlBatch,
    #[error(
        "transactional record batch (producerId {producer_id}): transactions are not supported \
         by this broker"
    )]
    Transactional { producer_id: i64 },
    #[error(
        "epoch of producer {producer_id} is {epoch}, which is smaller than the last seen epoch \
         {current_epoch}"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error(
        "invalid sequence number for new epoch of producer {producer_id}: {epoch} (request \
         epoch), {first_sequence} (seq. number), {current_epoch} (current producer epoch)"
    )]
    NewEpochNotAtZero {
        producer_id: i64,
        epoch: i16,
        first_sequence: i32,
        current_epoch: i16,
    },
    #[error(
        "out of order sequence number for producer {producer_id}: {first_sequence} (incoming \
         seq. number), {last_sequence} (current end sequence number)"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        first_sequence: i32,
        last_sequence: i32,
    },
}

/// What the leader does with a batch that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderAppend {
    /// Append it.
    Append,
    /// Append nothing: it repeats the batch already at these offsets.
    Duplicate { first_offset: i64, last_offset: i64 },
}

/// The header checks of a client's batches (Kafka's `LogValidator` for `AppendOrigin.CLIENT`):
/// no control batches, no transactions, and a batch with a producer id must be the request's
/// only batch for the partition (Kafka requires one batch from every v3+ Produce) with a
/// sequence and an epoch that are not negative. Returns the producer batch, if any.
pub fn validate_client_batches(
    headers: &[BatchHeader],
) -> Result<Option<ProducerBatch>, ProducerError> {
    for header in headers {
        if header.is_control() {
            return Err(ProducerError::ControlBatch);
        }
        if header.is_transactional() {
            return Err(ProducerError::Transactional {
                producer_id: header.producer_id,
            });
        }
    }
    let Some(header) = headers.iter().find(|h| h.has_producer_id()) else {
        return Ok(None);
    };
    if headers.len() != 1 {
        return Err(ProducerError::ManyBatches {
            batches: headers.len(),
        });
    }
    if header.base_sequence < 0 {
        return Err(ProducerError::InvalidSequence {
            producer_id: header.producer_id,
            first_sequence: header.base_sequence,
        });
    }
    if header.producer_epoch < 0 {
        return Err(ProducerError::InvalidEpochField {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
        });
    }
    Ok(ProducerBatch::of(header))
}

/// Kafka's leader-side checks of `batch` against its producer's `entry` (`None`: no state).
pub fn check_leader_append(
    entry: Option<&ProducerEntry>,
    batch: &ProducerBatch,
) -> Result<LeaderAppend, ProducerError> {
    let Some(entry) = entry else {
        return Ok(LeaderAppend::Append);
    };
    if let Some(duplicate) = entry.find_duplicate(batch) {
        return Ok(LeaderAppend::Duplicate {
            first_offset: duplicate.first_offset(),
            last_offset: duplicate.last_offset,
        });
    }
    if batch.epoch < entry.epoch {
        return Err(ProducerError::InvalidProducerEpoch {
            producer_id: batch.producer_id,
            epoch: batch.epoch,
            current_epoch: entry.epoch,
        });
    }
    if batch.epoch != entry.epoch {
        if batch.first_sequence != 0 {
            return Err(ProducerError::NewEpochNotAtZero {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                first_sequence: batch.first_sequence,
                current_epoch: entry.epoch,
            });
        }
        return Ok(LeaderAppend::Append);
    }
    // An entry always holds a batch; none would mean "expect sequence 0", as in Kafka.
    let last_sequence = entry.last_sequence().unwrap_or(-1);
    if !in_sequence(last_sequence, batch.first_sequence) {
        return Err(ProducerError::OutOfOrderSequence {
            producer_id: batch.producer_id,
            first_sequence: batch.first_sequence,
            last_sequence,
        });
    }
    Ok(LeaderAppend::Append)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first_sequence: i32, records: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 42,
            epoch,
            first_sequence,
            offset_delta: records - 1,
            max_timestamp_ms: 5_000,
            transactional: false,
            control: false,
        }
    }

    /// An entry that appended batches of 10 records with sequences 0.. at offsets 100..
    fn entry_with(batches: i32) -> ProducerEntry {
        let mut entry = ProducerEntry::new(0, [], 0);
        for i in 0..batches {
            entry.add(&batch(0, i * 10, 10), 100 + i64::from(i) * 10);
        }
        entry
    }

    #[test]
    fn an_unknown_producer_is_accepted_at_any_sequence() {
        assert_eq!(
            check_leader_append(None, &batch(0, 0, 3)),
            Ok(LeaderAppend::Append)
        );
        assert_eq!(
            check_leader_append(None, &batch(3, 1234, 3)),
            Ok(LeaderAppend::Append),
            "KIP-360: no UNKNOWN_PRODUCER_ID"
        );
    }

    #[test]
    fn a_retry_of_one_of_the_last_five_batches_is_a_duplicate_with_its_offsets() {
        let entry = entry_with(7);
        assert_eq!(
            check_leader_append(Some(&entry), &batch(0, 30, 10)),
            Ok(LeaderAppend::Duplicate {
                first_offset: 130,
                last_offset: 139
            })
        );
        assert_eq!(
            check_leader_append(Some(&entry), &batch(0, 60, 10)),
            Ok(LeaderAppend::Duplicate {
                first_offset: 160,
                last_offset: 169
            }),
            "the latest"
        );
        // Older than the five: not a duplicate, and out of order.
        assert!(matches!(
            check_leader_append(Some(&entry), &batch(0, 10, 10)),
            Err(ProducerError::OutOfOrderSequence {
                first_sequence: 10,
                last_sequence: 69,
                ..
            })
        ));
    }

    #[test]
    fn sequences_must_follow_within_an_epoch() {
        let entry = entry_with(2);
        assert_eq!(
            check_leader_append(Some(&entry), &batch(0, 20, 1)),
            Ok(LeaderAppend::Append)
        );
        for gap in [21, 25, 0, 19] {
            assert!(
                matches!(
                    check_leader_append(Some(&entry), &batch(0, gap, 1)),
                    Err(ProducerError::OutOfOrderSequence { .. })
                ),
                "{gap}"
            );
        }
        // Wrapping: after i32::MAX comes 0.
        let mut wrapped = ProducerEntry::new(0, [], 0);
        wrapped.add(&batch(0, i32::MAX - 4, 5), 0);
        assert_eq!(
            check_leader_append(Some(&wrapped), &batch(0, 0, 2)),
            Ok(LeaderAppend::Append)
        );
    }

    #[test]
    fn epochs_fence_older_producers_and_new_epochs_start_at_zero() {
        let mut entry = entry_with(1);
        entry.add(&batch(3, 0, 5), 200);
        assert_eq!(
            check_leader_append(Some(&entry), &batch(2, 5, 1)),
            Err(ProducerError::InvalidProducerEpoch {
                producer_id: 42,
                epoch: 2,
                current_epoch: 3
            })
        );
        assert!(matches!(
            check_leader_append(Some(&entry), &batch(4, 5, 1)),
            Err(ProducerError::NewEpochNotAtZero { .. })
        ));
        assert_eq!(
            check_leader_append(Some(&entry), &batch(4, 0, 1)),
            Ok(LeaderAppend::Append)
        );
    }

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            size: 100,
            partition_leader_epoch: -1,
            last_offset_delta: 2,
            max_timestamp: 0,
            attributes,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
        }
    }

    #[test]
    fn client_batches_with_a_producer_id_are_alone_and_well_formed() {
        assert_eq!(validate_client_batches(&[header(-1, -1, -1, 0)]), Ok(None));
        assert_eq!(
            validate_client_batches(&[header(-1, -1, -1, 0), header(-1, -1, -1, 0)]),
            Ok(None),
            "plain producers may send several batches"
        );
        let one = validate_client_batches(&[header(9, 1, 4, 0)])
            .expect("valid")
            .expect("a producer batch");
        assert_eq!((one.producer_id, one.epoch, one.first_sequence), (9, 1, 4));
        assert_eq!(one.last_sequence(), 6);
        assert_eq!(
            validate_client_batches(&[header(9, 1, 4, 0), header(9, 1, 7, 0)]),
            Err(ProducerError::ManyBatches { batches: 2 })
        );
        assert!(matches!(
            validate_client_batches(&[header(9, 1, -1, 0)]),
            Err(ProducerError::InvalidSequence { .. })
        ));
        assert!(matches!(
            validate_client_batches(&[header(9, -1, 0, 0)]),
            Err(ProducerError::InvalidEpochField { .. })
        ));
        assert_eq!(
            validate_client_batches(&[header(9, 0, 0, 0x20)]),
            Err(ProducerError::ControlBatch)
        );
        assert_eq!(
            validate_client_batches(&[header(9, 0, 0, 0x10)]),
            Err(ProducerError::Transactional { producer_id: 9 })
        );
    }
}
