//! The final read, the read that decides loss: after the heal, a fresh consumer reads every
//! partition from its log start offset to its high watermark, retrying until the whole range
//! is read or the deadline passes. One `final-read` invoke and ok per partition; a partition not
//! fully read is `complete: false`, which makes the checker's verdict for it unknown.

use std::time::{Duration, Instant};

use history::{OpType, Process};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::clients::client_context::QuietContext;
use crate::clients::consumer::create_consumer;
use crate::recorder::Recorder;

/// How long one watermark query or poll may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(1);
/// Records of one partition at most (the read is bounded like everything else).
const RECORDS_PER_PARTITION_MAX: usize = 10_000_000;

/// What the final read of one partition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRead {
    pub partition: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub records: usize,
    pub complete: bool,
}

/// Reads partitions `0..partitions` of `topic` as process `process`, all within `timeout`.
/// Blocking: run it off the async threads.
pub fn final_read(
    process: u64,
    bootstrap_servers: &str,
    topic: &str,
    partitions: u32,
    timeout: Duration,
    recorder: &Recorder,
) -> Vec<PartitionRead> {
    let deadline = Instant::now() + timeout;
    (0..partitions as i32)
        .map(|partition| {
            recorder.record(
                Process::Client(process),
                OpType::Invoke,
                "final-read",
                json!({ "partition": partition }),
            );
            let (read, records) =
                read_partition(process, bootstrap_servers, topic, partition, deadline);
            recorder.record(
                Process::Client(process),
                OpType::Ok,
                "final-read",
                json!({
                    "partition": partition,
                    "log_start_offset": read.log_start_offset,
                    "high_watermark": read.high_watermark,
                    "records": records,
                    "complete": read.complete,
                }),
            );
            read
        })
        .collect()
}

/// One partition: watermarks, then poll from the start to the high watermark; on trouble, ask
/// again and start over, until the deadline.
fn read_partition(
    process: u64,
    bootstrap_servers: &str,
    topic: &str,
    partition: i32,
    deadline: Instant,
) -> (PartitionRead, Vec<Value>) {
    let mut read = PartitionRead {
        partition,
        log_start_offset: -1,
        high_watermark: -1,
        records: 0,
        complete: false,
    };
    let client_id = format!("kchaos-final-read-{process}-{partition}");
    let consumer = match create_consumer(bootstrap_servers, &client_id) {
        Ok(consumer) => consumer,
        Err(error) => {
            tracing::error!("final read of {topic}-{partition}: {error}");
            return (read, Vec::new());
        }
    };
    let mut records = Vec::new();
    while Instant::now() < deadline {
        let (low, high) = match consumer.fetch_watermarks(topic, partition, STEP_TIMEOUT) {
            Ok(watermarks) => watermarks,
            Err(error) => {
                tracing::debug!("final read watermarks of {topic}-{partition}: {error}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        read.log_start_offset = low;
        read.high_watermark = high;
        records.clear();
        match read_range(
            &consumer,
            topic,
            partition,
            low,
            high,
            deadline,
            &mut records,
        ) {
            Ok(()) => {
                read.complete = true;
                break;
            }
            Err(reason) => {
                tracing::debug!("final read of {topic}-{partition}: {reason}; again");
            }
        }
    }
    read.records = records.len();
    (read, records)
}

/// Polls `[low, high)` into `records`.
fn read_range(
    consumer: &BaseConsumer<QuietContext>,
    topic: &str,
    partition: i32,
    low: i64,
    high: i64,
    deadline: Instant,
    records: &mut Vec<Value>,
) -> Result<(), String> {
    if high <= low {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(low))
        .map_err(|error| error.to_string())?;
    consumer.assign(&list).map_err(|error| error.to_string())?;
    let mut next = low;
    while next < high {
        if Instant::now() >= deadline {
            return Err(format!("deadline passed at offset {next} of {high}"));
        }
        if records.len() >= RECORDS_PER_PARTITION_MAX {
            return Err("too many records".into());
        }
        match consumer.poll(STEP_TIMEOUT) {
            None => {}
            Some(Ok(message)) => {
                if message.partition() != partition || message.offset() < next {
                    continue;
                }
                if message.offset() >= high {
                    break;
                }
                let value = message
                    .payload()
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                    .unwrap_or_default();
                records.push(json!([partition, message.offset(), value]));
                next = message.offset() + 1;
            }
            Some(Err(error)) => return Err(error.to_string()),
        }
    }
    Ok(())
}
