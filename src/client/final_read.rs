//! The worker's half of the final read: one partition from its log start offset to its high
//! watermark, asking the watermarks again and starting over on trouble, until the whole range
//! is read or the deadline passes (then `complete: false`).

use std::time::{Duration, Instant};

use harness::clients::protocol::Reply;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::{ConsumerClient, payload_text};

/// How long one watermark query or poll may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(1);
/// Records of one partition at most (the read is bounded like everything else).
const RECORDS_PER_PARTITION_MAX: usize = 10_000_000;

impl ConsumerClient {
    /// Reads `partition` of `topic` in full within `timeout`.
    pub fn final_read(&self, topic: &str, partition: i32, timeout: Duration) -> Reply {
        let deadline = Instant::now() + timeout;
        let mut reply = Reply {
            log_start_offset: Some(-1),
            high_watermark: Some(-1),
            complete: Some(false),
            ..Reply::ok(0)
        };
        let mut records = Vec::new();
        while Instant::now() < deadline {
            let (low, high) = match self
                .consumer
                .fetch_watermarks(topic, partition, STEP_TIMEOUT)
            {
                Ok(watermarks) => watermarks,
                Err(error) => {
                    tracing::debug!("final read watermarks of {topic}-{partition}: {error}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            reply.log_start_offset = Some(low);
            reply.high_watermark = Some(high);
            records.clear();
            match self.read_range(topic, partition, low, high, deadline, &mut records) {
                Ok(()) => {
                    reply.complete = Some(true);
                    break;
                }
                Err(reason) => {
                    tracing::debug!("final read of {topic}-{partition}: {reason}; again");
                }
            }
        }
        reply.records = Some(records);
        reply
    }

    /// Polls `[low, high)` into `records`.
    fn read_range(
        &self,
        topic: &str,
        partition: i32,
        low: i64,
        high: i64,
        deadline: Instant,
        records: &mut Vec<(i32, i64, String)>,
    ) -> Result<(), String> {
        if high <= low {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(low))
            .map_err(|error| error.to_string())?;
        self.consumer
            .assign(&list)
            .map_err(|error| error.to_string())?;
        let mut next = low;
        while next < high {
            if Instant::now() >= deadline {
                return Err(format!("deadline passed at offset {next} of {high}"));
            }
            if records.len() >= RECORDS_PER_PARTITION_MAX {
                return Err("too many records".into());
            }
            match self.consumer.poll(STEP_TIMEOUT) {
                None => {}
                Some(Ok(message)) => {
                    if message.partition() != partition || message.offset() < next {
                        continue;
                    }
                    if message.offset() >= high {
                        break;
                    }
                    records.push((partition, message.offset(), payload_text(&message)));
                    next = message.offset() + 1;
                }
                Some(Err(error)) => return Err(error.to_string()),
            }
        }
        Ok(())
    }
}
