//! The Kafka error codes of partition failures: what a client is answered when an append, a
//! read or a leadership check fails (Kafka's `Errors.forException` for these exceptions).

use kafka_protocol::error::ResponseError;

use super::PartitionError;
use crate::broker::log::partition_log::{AppendError, ReadError};
use crate::broker::log::producer_state::append::ProducerError;

impl PartitionError {
    /// The Kafka error a client is answered for this failure.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            PartitionError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
            PartitionError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            PartitionError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            PartitionError::NotEnoughReplicasAfterAppend => {
                ResponseError::NotEnoughReplicasAfterAppend
            }
            PartitionError::Timeout { .. } => ResponseError::RequestTimedOut,
            PartitionError::Append(
                AppendError::Corrupt(_) | AppendError::InvalidRecords(_) | AppendError::Empty,
            ) => ResponseError::CorruptMessage,
            PartitionError::Append(AppendError::TooLarge { .. }) => ResponseError::MessageTooLarge,
            PartitionError::Append(AppendError::OffsetsOutOfOrder { .. }) => {
                ResponseError::UnknownServerError
            }
            PartitionError::Append(AppendError::Producer(error)) => producer_error(error),
            PartitionError::Append(AppendError::Io(_))
            | PartitionError::Read(ReadError::Io(_))
            | PartitionError::LogDirOffline(_) => ResponseError::KafkaStorageError,
            PartitionError::Read(ReadError::OffsetOutOfRange { .. }) => {
                ResponseError::OffsetOutOfRange
            }
            PartitionError::Deleted => ResponseError::UnknownTopicOrPartition,
        }
    }
}

/// The Kafka error for a batch refused for its producer fields or its producer's state.
pub fn producer_error(error: &ProducerError) -> ResponseError {
    match error {
        ProducerError::OutOfOrderSequence { .. } | ProducerError::NewEpochNotAtZero { .. } => {
            ResponseError::OutOfOrderSequenceNumber
        }
        ProducerError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        ProducerError::Transactional { .. } => ResponseError::InvalidTxnState,
        ProducerError::InvalidSequence { .. }
        | ProducerError::InvalidEpochField { .. }
        | ProducerError::ManyBatches { .. }
        | ProducerError::ControlBatch => ResponseError::InvalidRecord,
    }
}
