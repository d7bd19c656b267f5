//! The worker's consumer: an rdkafka `BaseConsumer` that answers `assign`, `subscribe`, `poll`,
//! `commit`, `watermarks` and `final-read` requests. Its calls block (librdkafka's poll), so the
//! worker makes them on its request thread, one at a time, as the harness asks them.

use std::time::{Duration, Instant};

use harness::clients::protocol::{Outcome, Rebalance, Reply};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::context::QuietContext;
use super::errors::error_name;
use super::librdkafka_config;

/// One librdkafka consumer.
pub struct ConsumerClient {
    pub(super) consumer: BaseConsumer<QuietContext>,
}

impl ConsumerClient {
    /// A consumer with the harness's `config` (Kafka's names) over the worker's own settings:
    /// no offsets stored behind our back, no end-of-partition events.
    pub fn open(config: &std::collections::BTreeMap<String, String>) -> Result<Self, String> {
        let client_config = librdkafka_config(
            &[
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "false"),
                ("topic.metadata.refresh.interval.ms", "1000"),
            ],
            config,
        );
        let consumer = client_config
            .create_with_context(QuietContext::default())
            .map_err(|error| format!("cannot create the consumer: {error}"))?;
        Ok(ConsumerClient { consumer })
    }

    /// Reads these partitions of `topic` from these offsets.
    pub fn assign(&self, topic: &str, positions: &[(i32, i64)]) -> Reply {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in positions {
            if let Err(error) =
                list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            {
                return Reply::error(0, Outcome::Fail, error_name(&error));
            }
        }
        match self.consumer.assign(&list) {
            Ok(()) => Reply::ok(0),
            Err(error) => Reply::error(0, Outcome::Fail, error_name(&error)),
        }
    }

    /// Joins the group (its `group.id`) for `topics`.
    pub fn subscribe(&self, topics: &[String]) -> Reply {
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        match self.consumer.subscribe(&topics) {
            Ok(()) => Reply::ok(0),
            Err(error) => Reply::error(0, Outcome::Fail, error_name(&error)),
        }
    }

    /// Gathers up to `max_records` records for up to `timeout`; stops early at the first error,
    /// which the reply names (with `position_lost` when librdkafka stopped reading a partition),
    /// and at a group rebalance (rdkafka's poll returns after serving one), which the reply
    /// carries after the records read before it.
    pub fn poll(&self, max_records: usize, timeout: Duration) -> Reply {
        let mut records = Vec::new();
        let mut trouble: Option<KafkaError> = None;
        let window_end = Instant::now() + timeout;
        while records.len() < max_records {
            let left = window_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.consumer.poll(left) {
                None => break,
                Some(Ok(message)) => records.push((
                    message.partition(),
                    message.offset(),
                    payload_text(&message),
                )),
                Some(Err(error)) => {
                    trouble = Some(error);
                    break;
                }
            }
        }
        let rebalances = self.consumer.context().take_rebalances();
        let gathered = |pick: fn(&Rebalance) -> Option<&Vec<i32>>| {
            let partitions: Vec<i32> = rebalances
                .iter()
                .filter_map(pick)
                .flatten()
                .copied()
                .collect();
            (!partitions.is_empty()).then_some(partitions)
        };
        Reply {
            records: Some(records),
            position_lost: trouble.as_ref().map(needs_reposition).filter(|lost| *lost),
            error: trouble.as_ref().map(error_name),
            assigned: gathered(|rebalance| rebalance.assigned.as_ref()),
            revoked: gathered(|rebalance| rebalance.revoked.as_ref()),
            rebalances: (!rebalances.is_empty()).then_some(rebalances),
            ..Reply::ok(0)
        }
    }

    /// Commits `offsets` of `topic`, or the current positions: ok, fail when the group refused
    /// them (certainly not stored), info otherwise.
    pub fn commit(&self, topic: &str, offsets: Option<&[(i32, i64)]>) -> Reply {
        let committed = match offsets {
            Some(offsets) => {
                let mut list = TopicPartitionList::new();
                for (partition, offset) in offsets {
                    if let Err(error) =
                        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                    {
                        return Reply::error(0, Outcome::Fail, error_name(&error));
                    }
                }
                self.consumer.commit(&list, CommitMode::Sync)
            }
            None => self.consumer.commit_consumer_state(CommitMode::Sync),
        };
        match committed {
            Ok(()) => Reply::ok(0),
            Err(error) if is_commit_refused(&error) => {
                Reply::error(0, Outcome::Fail, error_name(&error))
            }
            Err(error) => Reply::error(0, Outcome::Info, error_name(&error)),
        }
    }

    /// Leaves the group, if in one, before the worker says it is done.
    pub fn close(&self) -> Reply {
        self.consumer.unsubscribe();
        Reply::ok(0)
    }

    /// The partition's log start offset and high watermark.
    pub fn watermarks(&self, topic: &str, partition: i32, timeout: Duration) -> Reply {
        match self.consumer.fetch_watermarks(topic, partition, timeout) {
            Ok((low, high)) => Reply {
                log_start_offset: Some(low),
                high_watermark: Some(high),
                ..Reply::ok(0)
            },
            Err(error) => Reply::error(0, Outcome::Fail, error_name(&error)),
        }
    }
}

/// A record's value as text (the harness's values are UTF-8).
pub(super) fn payload_text<M: Message>(message: &M) -> String {
    message
        .payload()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .unwrap_or_default()
}

/// Whether the consumer stopped fetching a partition and must be told where to go.
fn needs_reposition(error: &KafkaError) -> bool {
    let name = error_name(error);
    name.contains("OFFSET_OUT_OF_RANGE")
        || name.contains("AUTO_OFFSET_RESET")
        || error.to_string().contains("offset reset")
}

/// Commit errors by which the group coordinator refused the offsets.
fn is_commit_refused(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::FencedInstanceId
                | RDKafkaErrorCode::OffsetMetadataTooLarge
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::InvalidCommitOffsetSize
                | RDKafkaErrorCode::NoOffset
        )
    )
}
