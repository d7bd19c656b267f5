//! The rdkafka client context of the worker's consumers: librdkafka's own log lines and
//! "global errors" (every broker down, a refused connection, ...) are expected while the
//! nemesis works, so they go to `tracing` at debug level (the worker's log) instead of flooding
//! it. What matters goes back to the harness in replies.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use std::sync::Mutex;

/// A context that logs librdkafka quietly and keeps the partitions a group rebalance gave or
/// took, until the next poll reports them.
#[derive(Debug, Default)]
pub struct QuietContext {
    rebalances: Mutex<RebalanceNews>,
}

/// Partitions assigned and revoked since the last poll.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebalanceNews {
    pub assigned: Vec<i32>,
    pub revoked: Vec<i32>,
}

impl QuietContext {
    /// The news since the last call.
    pub fn take_rebalances(&self) -> RebalanceNews {
        std::mem::take(&mut *self.rebalances.lock().unwrap_or_else(|e| e.into_inner()))
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
    fn post_rebalance(
        &self,
        _base_consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        let mut news = self.rebalances.lock().unwrap_or_else(|e| e.into_inner());
        match rebalance {
            Rebalance::Assign(list) => news
                .assigned
                .extend(list.elements().iter().map(|element| element.partition())),
            Rebalance::Revoke(list) => news
                .revoked
                .extend(list.elements().iter().map(|element| element.partition())),
            Rebalance::Error(error) => tracing::warn!("rebalance: {error}"),
        }
    }
}
