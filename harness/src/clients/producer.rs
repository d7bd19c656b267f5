//! Producer workers (Jepsen's client for `send`): an rdkafka producer that sends unique values
//! (`<process>-<seq>`) at a fixed rate or as fast as a bounded number of in-flight sends allows,
//! and records each send as an invoke and one completion:
//! - `ok` with partition and offset when the broker acknowledged it;
//! - `fail` (with the partition librdkafka had chosen, if any) only when it certainly was not
//!   appended: librdkafka says the message was *not persisted* (`rd_kafka_message_status`;
//!   librdkafka never downgrades that status, so a send possibly appended on an earlier try
//!   stays indeterminate even if its last try got NOT_ENOUGH_REPLICAS), or it never left our
//!   queue;
//! - `info` otherwise (timeouts, NOT_ENOUGH_REPLICAS_AFTER_APPEND, a broken connection, ...).

use std::sync::Arc;
use std::time::Duration;

use history::{OpType, Process};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, PurgeConfig, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot, watch};

use crate::recorder::Recorder;

/// How a producer is set up.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    pub bootstrap_servers: String,
    pub topic: String,
    pub acks: String,
    pub retries: Option<u32>,
    pub idempotence: bool,
    pub linger_ms: u64,
    pub message_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Sends per second; 0 = as fast as `max_in_flight` allows.
    pub rate: u32,
    pub max_in_flight: u32,
    pub keys: u32,
}

/// Why a producer could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("cannot create the producer of process {process}: {source}")]
    Create { process: u64, source: KafkaError },
}

/// The completion of one send, as the delivery report told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Ok {
        partition: i32,
        offset: i64,
    },
    Fail {
        error: String,
        /// The partition librdkafka had chosen, if it had.
        partition: Option<i32>,
    },
    Info {
        error: String,
        partition: Option<i32>,
    },
}

/// Delivers each delivery report to the task waiting for it.
struct DeliveryContext;

impl ClientContext for DeliveryContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        crate::clients::client_context::QuietContext.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        crate::clients::client_context::QuietContext.error(error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<oneshot::Sender<SendOutcome>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => SendOutcome::Ok {
                partition: message.partition(),
                offset: message.offset(),
            },
            Err((error, message)) => {
                // SAFETY: the message pointer is valid for the duration of the callback.
                let status = unsafe { rdkafka::bindings::rd_kafka_message_status(message.ptr()) };
                let partition = (message.partition() >= 0).then_some(message.partition());
                classify(error, status, partition)
            }
        };
        // The waiting task may have gone (shutdown); nothing to do then.
        let _ = reply.send(outcome);
    }
}

/// Sorts a failed delivery into fail (certainly not appended) or info (unknown).
fn classify(
    error: &KafkaError,
    status: rdkafka::bindings::rd_kafka_msg_status_t,
    partition: Option<i32>,
) -> SendOutcome {
    use rdkafka::bindings::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    let name = error_name(error);
    if status == RD_KAFKA_MSG_STATUS_NOT_PERSISTED && !is_never_definite(error) {
        SendOutcome::Fail {
            error: name,
            partition,
        }
    } else {
        SendOutcome::Info {
            error: name,
            partition,
        }
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

/// The error's code name in Kafka's spelling where there is one (`NOT_ENOUGH_REPLICAS`).
pub fn error_name(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => kafka_code_name(code),
        None => error.to_string(),
    }
}

fn kafka_code_name(code: RDKafkaErrorCode) -> String {
    // `NotEnoughReplicas` -> `NOT_ENOUGH_REPLICAS`; local errors keep librdkafka's names.
    kafka_wire::names::screaming_snake(&format!("{code:?}"))
}

/// Runs producer `process` until `stop` turns true, then waits for its in-flight sends (up to
/// the message timeout and a margin) and purges what is left (recorded as indeterminate or
/// failed, as librdkafka reports them).
pub async fn run_producer(
    process: u64,
    settings: ProducerSettings,
    recorder: Recorder,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ProducerError> {
    let producer = Arc::new(create_producer(process, &settings)?);
    let permits = Arc::new(Semaphore::new(settings.max_in_flight as usize));
    let mut pacer = Pacer::new(settings.rate);
    let mut sequence: u64 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        if let Some(pacer) = pacer.as_mut() {
            tokio::select! {
                _ = pacer.next() => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        }
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        sequence += 1;
        let key = format!("k{}", sequence % u64::from(settings.keys));
        let value = format!("{process}-{sequence}");
        let invoke = json!({"key": key, "value": value});
        recorder.record(
            Process::Client(process),
            OpType::Invoke,
            "send",
            invoke.clone(),
        );
        let (reply, outcome) = oneshot::channel();
        let record = BaseRecord::with_opaque_to(&settings.topic, Box::new(reply))
            .key(&key)
            .payload(&value);
        if let Err((error, _record)) = producer.send(record) {
            // Never enqueued (queue full, unknown partition, ...): certainly not appended.
            complete(
                &recorder,
                process,
                invoke,
                SendOutcome::Fail {
                    error: error_name(&error),
                    partition: None,
                },
            );
            drop(permit);
            continue;
        }
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let outcome = outcome.await.unwrap_or(SendOutcome::Info {
                error: "no delivery report".into(),
                partition: None,
            });
            complete(&recorder, process, invoke, outcome);
            drop(permit);
        });
    }
    drain(&producer, &permits, &settings).await;
    Ok(())
}

/// Spaces sends to a rate: one timer tick per send up to 200 per second, and above that a few
/// sends per tick (tokio's timer has millisecond resolution). A stall is not made up for later.
struct Pacer {
    ticker: tokio::time::Interval,
    sends_per_tick: u32,
    left_in_tick: u32,
}

impl Pacer {
    /// `None` for rate 0 (as fast as the in-flight bound allows).
    fn new(rate: u32) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let sends_per_tick = rate.div_ceil(200);
        let period = Duration::from_secs_f64(f64::from(sends_per_tick) / f64::from(rate));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(Pacer {
            ticker,
            sends_per_tick,
            left_in_tick: 0,
        })
    }

    /// Waits until the next send is due.
    async fn next(&mut self) {
        if self.left_in_tick == 0 {
            self.ticker.tick().await;
            self.left_in_tick = self.sends_per_tick;
        }
        self.left_in_tick -= 1;
    }
}

/// Waits for in-flight sends, then purges and waits a little for the purge reports.
async fn drain(
    producer: &Arc<ThreadedProducer<DeliveryContext>>,
    permits: &Arc<Semaphore>,
    settings: &ProducerSettings,
) {
    let all = settings.max_in_flight;
    let patience = Duration::from_millis(settings.message_timeout_ms + 2_000);
    if tokio::time::timeout(patience, permits.acquire_many(all))
        .await
        .is_ok()
    {
        return;
    }
    producer.purge(PurgeConfig::default().queue().inflight());
    let _ = tokio::time::timeout(Duration::from_secs(2), permits.acquire_many(all)).await;
}

fn complete(recorder: &Recorder, process: u64, invoke: Value, outcome: SendOutcome) {
    let mut value = invoke;
    let op_type = match outcome {
        SendOutcome::Ok { partition, offset } => {
            value["partition"] = json!(partition);
            value["offset"] = json!(offset);
            OpType::Ok
        }
        SendOutcome::Fail { error, partition } => {
            value["error"] = json!(error);
            if let Some(partition) = partition {
                value["partition"] = json!(partition);
            }
            OpType::Fail
        }
        SendOutcome::Info { error, partition } => {
            value["error"] = json!(error);
            if let Some(partition) = partition {
                value["partition"] = json!(partition);
            }
            OpType::Info
        }
    };
    recorder.record(Process::Client(process), op_type, "send", value);
}

fn create_producer(
    process: u64,
    settings: &ProducerSettings,
) -> Result<ThreadedProducer<DeliveryContext>, ProducerError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", format!("kchaos-producer-{process}"))
        .set("acks", &settings.acks)
        .set("enable.idempotence", settings.idempotence.to_string())
        .set("linger.ms", settings.linger_ms.to_string())
        .set(
            "message.timeout.ms",
            settings.message_timeout_ms.to_string(),
        )
        .set(
            "request.timeout.ms",
            settings.request_timeout_ms.to_string(),
        )
        .set("queue.buffering.max.messages", "100000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("retry.backoff.ms", "100")
        .set("retry.backoff.max.ms", "500")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("log_level", "3");
    if let Some(retries) = settings.retries {
        config.set("retries", retries.to_string());
    }
    ThreadedProducer::from_config_and_context(&config, DeliveryContext)
        .map_err(|source| ProducerError::Create { process, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::bindings::rd_kafka_msg_status_t::*;

    #[tokio::test(start_paused = true)]
    async fn the_pacer_keeps_high_rates() {
        let mut pacer = Pacer::new(1000).expect("a rate");
        let started = tokio::time::Instant::now();
        for _ in 0..1000 {
            pacer.next().await;
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(990) && elapsed <= Duration::from_millis(1010),
            "1000 sends at 1000/s took {elapsed:?}"
        );
        assert!(Pacer::new(0).is_none());
    }

    #[test]
    fn code_names_follow_kafka() {
        assert_eq!(
            kafka_code_name(RDKafkaErrorCode::NotEnoughReplicas),
            "NOT_ENOUGH_REPLICAS"
        );
        assert_eq!(
            kafka_code_name(RDKafkaErrorCode::MessageTimedOut),
            "MESSAGE_TIMED_OUT"
        );
    }

    #[test]
    fn only_not_persisted_definite_errors_fail() {
        let error = |code| KafkaError::MessageProduction(code);
        assert_eq!(
            classify(
                &error(RDKafkaErrorCode::NotEnoughReplicas),
                RD_KAFKA_MSG_STATUS_NOT_PERSISTED,
                Some(0)
            ),
            SendOutcome::Fail {
                error: "NOT_ENOUGH_REPLICAS".into(),
                partition: Some(0)
            }
        );
        assert!(matches!(
            classify(
                &error(RDKafkaErrorCode::MessageTimedOut),
                RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED,
                Some(1)
            ),
            SendOutcome::Info {
                partition: Some(1),
                ..
            }
        ));
        assert!(matches!(
            classify(
                &error(RDKafkaErrorCode::NotEnoughReplicasAfterAppend),
                RD_KAFKA_MSG_STATUS_NOT_PERSISTED,
                None
            ),
            SendOutcome::Info { .. }
        ));
    }
}
