//! The rdkafka client context of the worker's consumers: librdkafka's own log lines and
//! "global errors" (every broker down, a refused connection, ...) are expected while the
//! nemesis works, so they go to `tracing` at debug level (the worker's log) instead of flooding
//! it. What matters goes back to the harness in replies.
//!
//! It also carries out a group member's rebalances, which librdkafka calls back from inside
//! `poll` (rdkafka's `BaseConsumer::poll` then returns, so a poll stops at each one): taken
//! partitions are unassigned; given ones are assigned at the group's committed offsets, fetched
//! after the assignment came (the log start where none is committed), so that the member reads
//! from exactly the offsets it reports. Each rebalance is kept, in order, until the next poll
//! reply carries it.

use std::sync::Mutex;
use std::time::Duration;

use harness::clients::protocol::Rebalance;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::errors::error_name;

/// How long fetching the group's committed offsets at an assignment may take.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(5);

/// A context that logs librdkafka quietly and does and keeps a group member's rebalances.
#[derive(Debug, Default)]
pub struct QuietContext {
    rebalances: Mutex<Vec<Rebalance>>,
}

impl QuietContext {
    /// The rebalances since the last call, in order.
    pub fn take_rebalances(&self) -> Vec<Rebalance> {
        std::mem::take(&mut *self.rebalances.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn note(&self, rebalance: Rebalance) {
        self.rebalances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rebalance);
    }
}

/// librdkafka's log lines, at debug level.
pub fn log_quietly(level: RDKafkaLogLevel, facility: &str, message: &str) {
    tracing::debug!("librdkafka {level:?} {facility}: {message}");
}

/// librdkafka's global errors, at debug level.
pub fn error_quietly(error: KafkaError, reason: &str) {
    tracing::debug!("librdkafka: {error}: {reason}");
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_quietly(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        error_quietly(error, reason);
    }
}

impl ConsumerContext for QuietContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let numbers = partition_numbers(partitions);
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            let rebalance = assign_at_committed(consumer, partitions, numbers);
            self.note(rebalance);
            return;
        }
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            // librdkafka asks to drop the assignment on a rebalance error.
            tracing::warn!("rebalance error {err:?}: dropping the assignment");
        }
        if let Err(error) = consumer.unassign() {
            tracing::warn!("unassign: {error}");
        }
        self.note(Rebalance::revoked(numbers));
    }
}

/// Assigns `partitions` at the group's committed offsets, fetched now (the log start where
/// none is committed); if they cannot be fetched, librdkafka's own committed-offset lookup
/// decides, and the rebalance says why.
fn assign_at_committed(
    consumer: &BaseConsumer<QuietContext>,
    partitions: &TopicPartitionList,
    numbers: Vec<i32>,
) -> Rebalance {
    let committed = fetch_committed(consumer, partitions);
    let mut list = TopicPartitionList::new();
    for element in partitions.elements() {
        let offset = match &committed {
            Ok(committed) => committed
                .iter()
                .find(|(partition, _)| *partition == element.partition())
                .map_or(Offset::Beginning, |(_, offset)| Offset::Offset(*offset)),
            Err(_) => Offset::Stored,
        };
        if let Err(error) = list.add_partition_offset(element.topic(), element.partition(), offset)
        {
            tracing::warn!("assign: {error}");
        }
    }
    if let Err(error) = consumer.assign(&list) {
        tracing::warn!("assign: {error}");
    }
    Rebalance::assigned(numbers, committed)
}

/// The group's committed offsets of `partitions` (`[partition, offset]`; none listed where none
/// is committed), or the error's name.
fn fetch_committed(
    consumer: &BaseConsumer<QuietContext>,
    partitions: &TopicPartitionList,
) -> Result<Vec<(i32, i64)>, String> {
    let fetched = consumer
        .committed_offsets(partitions.clone(), COMMITTED_TIMEOUT)
        .map_err(|error| error_name(&error))?;
    let mut committed = Vec::new();
    for element in fetched.elements() {
        if let Err(error) = element.error() {
            return Err(error_name(&error));
        }
        if let Offset::Offset(offset) = element.offset() {
            committed.push((element.partition(), offset));
        }
    }
    committed.sort_unstable();
    Ok(committed)
}

fn partition_numbers(partitions: &TopicPartitionList) -> Vec<i32> {
    let mut numbers: Vec<i32> = partitions
        .elements()
        .iter()
        .map(|element| element.partition())
        .collect();
    numbers.sort_unstable();
    numbers
}
