//! The worker's producer: an rdkafka `ThreadedProducer` whose delivery reports answer `send`
//! requests, each sorted (the one place this rule lives):
//! - `ok` with partition and offset when the broker acknowledged it;
//! - `fail` (with the partition librdkafka had chosen, if any) only when it certainly was not
//!   appended: librdkafka says the message was *not persisted* (`rd_kafka_message_status`;
//!   librdkafka never downgrades that status, so a send possibly appended on an earlier try
//!   stays indeterminate even if its last try got NOT_ENOUGH_REPLICAS), or it never left our
//!   queue;
//! - `info` otherwise (timeouts, NOT_ENOUGH_REPLICAS_AFTER_APPEND, a broken connection, ...).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use harness::clients::protocol::{Outcome, Reply};
use rdkafka::client::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, PurgeConfig, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::context::{error_quietly, log_quietly};
use super::errors::error_name;
use super::{Responder, librdkafka_config};

/// After the purge at close, how long the purged sends' reports may take.
const PURGE_REPORTS_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers each delivery report to whoever waits for it.
struct DeliveryContext {
    in_flight: Arc<AtomicUsize>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_quietly(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        error_quietly(error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Responder>;

    fn delivery(&self, result: &DeliveryResult<'_>, respond: Self::DeliveryOpaque) {
        let reply = match result {
            Ok(message) => Reply {
                partition: Some(message.partition()),
                offset: Some(message.offset()),
                ..Reply::ok(0)
            },
            Err((error, message)) => {
                // SAFETY: the message pointer is valid for the duration of the callback.
                let status = unsafe { rdkafka::bindings::rd_kafka_message_status(message.ptr()) };
                let partition = (message.partition() >= 0).then_some(message.partition());
                classify(error, status, partition)
            }
        };
        respond(reply);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sorts a failed delivery into fail (certainly not appended) or info (unknown).
fn classify(
    error: &KafkaError,
    status: rdkafka::bindings::rd_kafka_msg_status_t,
    partition: Option<i32>,
) -> Reply {
    use rdkafka::bindings::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    let outcome = if status == RD_KAFKA_MSG_STATUS_NOT_PERSISTED && !is_never_definite(error) {
        Outcome::Fail
    } else {
        Outcome::Info
    };
    Reply {
        partition,
        ..Reply::error(0, outcome, error_name(error))
    }
}

/// Errors that leave the outcome unknown whatever librdkafka's status says.
fn is_never_definite(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::NotEnoughReplicasAfterAppend)
            | Some(RDKafkaErrorCode::RequestTimedOut)
    )
}

/// One librdkafka producer.
pub struct ProducerClient {
    producer: ThreadedProducer<DeliveryContext>,
    in_flight: Arc<AtomicUsize>,
}

impl ProducerClient {
    /// A producer with the harness's `config` (Kafka's names) over the worker's own settings.
    pub fn open(config: &std::collections::BTreeMap<String, String>) -> Result<Self, String> {
        let client_config = librdkafka_config(
            &[
                ("queue.buffering.max.messages", "100000"),
                ("topic.metadata.refresh.interval.ms", "1000"),
            ],
            config,
        );
        let in_flight = Arc::new(AtomicUsize::new(0));
        let context = DeliveryContext {
            in_flight: Arc::clone(&in_flight),
        };
        let producer = ThreadedProducer::from_config_and_context(&client_config, context)
            .map_err(|error| format!("cannot create the producer: {error}"))?;
        Ok(ProducerClient {
            producer,
            in_flight,
        })
    }

    /// Sends `value`; `respond` gets the reply when the delivery report comes (or at once, `fail`,
    /// when librdkafka refuses to queue it: certainly not appended).
    pub fn send(
        &self,
        topic: &str,
        key: Option<&str>,
        value: &str,
        partition: Option<i32>,
        respond: Responder,
    ) {
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(respond)).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Err((error, record)) = self.producer.send(record) {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            // Never enqueued (queue full, unknown partition, ...): certainly not appended.
            let respond = record.delivery_opaque;
            respond(Reply::error(0, Outcome::Fail, error_name(&error)));
        }
    }

    /// Waits up to `timeout` for the sends in flight, then purges what is left (answered as
    /// librdkafka reports the purge: info or fail) and waits a little for those reports.
    pub fn close(&self, timeout: Duration) {
        if self.producer.flush(timeout).is_ok() && self.in_flight.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        let deadline = Instant::now() + PURGE_REPORTS_TIMEOUT;
        while self.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::bindings::rd_kafka_msg_status_t::*;

    #[test]
    fn only_not_persisted_definite_errors_fail() {
        let error = |code| KafkaError::MessageProduction(code);
        assert_eq!(
            classify(
                &error(RDKafkaErrorCode::NotEnoughReplicas),
                RD_KAFKA_MSG_STATUS_NOT_PERSISTED,
                Some(0)
            ),
            Reply {
                partition: Some(0),
                ..Reply::error(0, Outcome::Fail, "NOT_ENOUGH_REPLICAS")
            }
        );
        let timed_out = classify(
            &error(RDKafkaErrorCode::MessageTimedOut),
            RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED,
            Some(1),
        );
        assert_eq!(
            (timed_out.outcome, timed_out.partition),
            (Outcome::Info, Some(1))
        );
        let after_append = classify(
            &error(RDKafkaErrorCode::NotEnoughReplicasAfterAppend),
            RD_KAFKA_MSG_STATUS_NOT_PERSISTED,
            None,
        );
        assert_eq!(after_append.outcome, Outcome::Info);
        let request_timed_out = classify(
            &error(RDKafkaErrorCode::RequestTimedOut),
            RD_KAFKA_MSG_STATUS_NOT_PERSISTED,
            None,
        );
        assert_eq!(request_timed_out.outcome, Outcome::Info);
    }
}
