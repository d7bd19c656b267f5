//! Consumer workers (Jepsen's client for `poll`): an rdkafka consumer that `assign`s every
//! partition of the topic at its log start offset and polls until told to stop, recording each
//! poll as an invoke and an ok with `[partition, offset, value]` records. When the consumer
//! loses its place (an offset out of range after a truncation), it seeks to where the log now is
//! and records that as a new `assign`, which resets the checker's forward-reading state.
//!
//! The consumer's loop is blocking (librdkafka's poll), so it runs on its own thread.

use std::time::{Duration, Instant};

use history::{OpType, Process};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::clients::client_context::QuietContext;
use crate::clients::producer::error_name;
use crate::recorder::Recorder;

/// Records per `poll` operation at most.
const RECORDS_PER_POLL_MAX: usize = 500;
/// How long one `poll` operation gathers records.
const POLL_WINDOW: Duration = Duration::from_millis(100);
/// How long a watermark query may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a consumer could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("cannot create consumer {process}: {source}")]
    Create { process: u64, source: KafkaError },
    #[error("consumer {process} cannot assign partitions: {source}")]
    Assign { process: u64, source: KafkaError },
}

/// A consumer that reads assigned partitions: no subscription, no commits, no rebalances.
/// (librdkafka wants a `group.id` even for `assign`; it is never joined.)
pub fn create_consumer(
    bootstrap_servers: &str,
    client_id: &str,
) -> Result<BaseConsumer<QuietContext>, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("client.id", client_id)
        .set("group.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("log_level", "3")
        .create_with_context(QuietContext)
}

/// Runs consumer `process` over partitions `0..partitions` of `topic` until `stop` turns true.
/// Blocking: call it on its own thread.
pub fn run_consumer(
    process: u64,
    bootstrap_servers: &str,
    topic: &str,
    partitions: u32,
    recorder: &Recorder,
    stop: &watch::Receiver<bool>,
) -> Result<(), ConsumerError> {
    let consumer = create_consumer(bootstrap_servers, &format!("kchaos-consumer-{process}"))
        .map_err(|source| ConsumerError::Create { process, source })?;
    let mut positions: Vec<i64> = (0..partitions)
        .map(|partition| log_start_offset(&consumer, topic, partition as i32))
        .collect();
    assign(&consumer, process, topic, &positions, recorder)?;
    // Stop when told, or when whoever could tell us is gone.
    while !*stop.borrow() && stop.has_changed().is_ok() {
        recorder.record(Process::Client(process), OpType::Invoke, "poll", json!({}));
        let mut records: Vec<Value> = Vec::new();
        let mut trouble: Option<KafkaError> = None;
        let window_end = Instant::now() + POLL_WINDOW;
        while records.len() < RECORDS_PER_POLL_MAX {
            let left = window_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match consumer.poll(left) {
                None => break,
                Some(Ok(message)) => {
                    let value = message
                        .payload()
                        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                        .unwrap_or_default();
                    let partition = message.partition();
                    if let Some(position) = positions.get_mut(partition as usize) {
                        *position = message.offset() + 1;
                    }
                    records.push(json!([partition, message.offset(), value]));
                }
                Some(Err(error)) => {
                    trouble = Some(error);
                    break;
                }
            }
        }
        recorder.count_poll(records.len());
        recorder.record(
            Process::Client(process),
            OpType::Ok,
            "poll",
            json!({ "records": records }),
        );
        if let Some(error) = trouble {
            tracing::debug!("consumer {process}: {error}");
            if needs_reposition(&error) {
                for (partition, position) in positions.iter_mut().enumerate() {
                    *position = clamp_to_log(&consumer, topic, partition as i32, *position);
                }
                assign(&consumer, process, topic, &positions, recorder)?;
            }
        }
    }
    Ok(())
}

/// Whether the consumer stopped fetching a partition and must be told where to go.
fn needs_reposition(error: &KafkaError) -> bool {
    let name = error_name(error);
    name.contains("OFFSET_OUT_OF_RANGE")
        || name.contains("AUTO_OFFSET_RESET")
        || error.to_string().contains("offset reset")
}

/// Assigns every partition at `positions`, recorded as an `assign` invoke and ok.
fn assign(
    consumer: &BaseConsumer<QuietContext>,
    process: u64,
    topic: &str,
    positions: &[i64],
    recorder: &Recorder,
) -> Result<(), ConsumerError> {
    let listed: Vec<Value> = positions
        .iter()
        .enumerate()
        .map(|(partition, offset)| json!([partition, offset]))
        .collect();
    let value = json!({ "positions": listed });
    recorder.record(
        Process::Client(process),
        OpType::Invoke,
        "assign",
        value.clone(),
    );
    let mut list = TopicPartitionList::new();
    for (partition, offset) in positions.iter().enumerate() {
        list.add_partition_offset(topic, partition as i32, Offset::Offset(*offset))
            .map_err(|source| ConsumerError::Assign { process, source })?;
    }
    consumer
        .assign(&list)
        .map_err(|source| ConsumerError::Assign { process, source })?;
    recorder.record(Process::Client(process), OpType::Ok, "assign", value);
    Ok(())
}

/// The partition's log start offset, asked a few times; 0 if no broker answers.
fn log_start_offset(consumer: &BaseConsumer<QuietContext>, topic: &str, partition: i32) -> i64 {
    for _ in 0..5 {
        match consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT) {
            Ok((low, _high)) => return low,
            Err(error) => tracing::debug!("watermarks of {topic}-{partition}: {error}"),
        }
    }
    0
}

/// `position` moved into the partition's current log range [low, high].
fn clamp_to_log(
    consumer: &BaseConsumer<QuietContext>,
    topic: &str,
    partition: i32,
    position: i64,
) -> i64 {
    match consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT) {
        Ok((low, high)) => position.clamp(low, high.max(low)),
        Err(_) => position,
    }
}
