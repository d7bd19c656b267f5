//! The rdkafka client context every harness client uses: librdkafka's own log lines and
//! "global errors" (every broker down, a refused connection, ...) are expected while the
//! nemesis works, so they go to `tracing` at debug level instead of flooding stderr. What
//! matters is in the history.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

/// A context that logs librdkafka quietly.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        tracing::debug!("librdkafka {level:?} {facility}: {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
    }
}

impl ConsumerContext for QuietContext {}
