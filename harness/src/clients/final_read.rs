//! The final read, the read that decides loss: after the heal, a fresh worker reads every
//! partition from its log start offset to its high watermark (the worker retries on trouble
//! until the deadline it is given). One `final-read` invoke and completion per partition and
//! attempt; a partition not fully read is `complete: false`, which makes the checker's verdict
//! for it unknown. A worker that dies mid-read leaves that attempt `info`; a fresh worker, a
//! new process, reads the partition again while time is left.

use std::sync::Arc;
use std::time::Duration;

use history::{OpType, Process};
use serde_json::json;
use tokio::time::Instant;

use super::consumer::ConsumerSettings;
use super::protocol::{Operation, Outcome, Reply, Role, records_json};
use super::session::{Launcher, RESTART_BACKOFF_MIN, Session};
use crate::recorder::Recorder;

/// Beyond the read's own deadline, how long a worker may take to answer it.
const PATIENCE_MARGIN: Duration = Duration::from_secs(10);

/// What the final read of one partition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRead {
    pub partition: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub records: usize,
    pub complete: bool,
}

/// Reads every partition of `settings.topic`, all within `timeout`, through workers from
/// `launcher` (each a fresh process).
pub async fn final_read(
    launcher: Arc<dyn Launcher>,
    settings: &ConsumerSettings,
    timeout: Duration,
    recorder: &Recorder,
) -> Vec<PartitionRead> {
    let deadline = Instant::now() + timeout;
    let mut session: Option<Arc<dyn Session>> = None;
    let mut reads = Vec::new();
    for partition in 0..settings.partitions as i32 {
        reads.push(
            read_partition(
                &*launcher,
                settings,
                partition,
                deadline,
                recorder,
                &mut session,
            )
            .await,
        );
    }
    if let Some(session) = session {
        session.close(Duration::from_secs(2)).await;
    }
    reads
}

/// One partition, through the current session or fresh ones, until it is read or the deadline
/// passes.
async fn read_partition(
    launcher: &dyn Launcher,
    settings: &ConsumerSettings,
    partition: i32,
    deadline: Instant,
    recorder: &Recorder,
    session: &mut Option<Arc<dyn Session>>,
) -> PartitionRead {
    let unread = PartitionRead {
        partition,
        log_start_offset: -1,
        high_watermark: -1,
        records: 0,
        complete: false,
    };
    loop {
        let current = match session {
            Some(current) if current.death().borrow().is_none() => Arc::clone(current),
            _ => match start(launcher, settings, deadline).await {
                Ok(fresh) => session.insert(fresh).clone(),
                Err(error) => {
                    // Nobody could read it: the attempt is recorded as such, so the checker
                    // says unknown for this partition.
                    let process = launcher.next_process();
                    let value = json!({ "partition": partition });
                    recorder.record(
                        Process::Client(process),
                        OpType::Invoke,
                        "final-read",
                        value,
                    );
                    recorder.record(
                        Process::Client(process),
                        OpType::Info,
                        "final-read",
                        json!({ "partition": partition, "error": error }),
                    );
                    return unread;
                }
            },
        };
        let process = current.process();
        recorder.record(
            Process::Client(process),
            OpType::Invoke,
            "final-read",
            json!({ "partition": partition }),
        );
        let left = deadline.saturating_duration_since(Instant::now());
        let request = Operation::FinalRead {
            topic: settings.topic.clone(),
            partition,
            timeout_ms: left.as_millis() as u64,
        };
        let reply = current
            .submit(request, left + PATIENCE_MARGIN)
            .await
            .await
            .unwrap_or_else(|_| Reply::error(0, Outcome::Info, "no reply"));
        if reply.outcome == Outcome::Ok {
            return record_read(recorder, process, partition, reply);
        }
        let error = reply.error.unwrap_or_else(|| "no reason given".into());
        tracing::warn!("final read of partition {partition} by {process}: {error}");
        recorder.record(
            Process::Client(process),
            reply.outcome.op_type(),
            "final-read",
            json!({ "partition": partition, "error": error }),
        );
        if Instant::now() >= deadline {
            return unread;
        }
    }
}

/// A fresh reader, trying again (each failure recorded) until the deadline.
async fn start(
    launcher: &dyn Launcher,
    settings: &ConsumerSettings,
    deadline: Instant,
) -> Result<Arc<dyn Session>, String> {
    let mut backoff = RESTART_BACKOFF_MIN;
    loop {
        let process = launcher.next_process();
        let config = settings.config(process, "final-read");
        match launcher.start(process, Role::Consumer, config).await {
            Ok(session) => return Ok(session),
            Err(error) => {
                launcher.start_failed(process, &error);
                if Instant::now() + backoff >= deadline {
                    return Err(format!("no worker could start: {error}"));
                }
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
}

/// Records a final read's ok and sums it up.
fn record_read(recorder: &Recorder, process: u64, partition: i32, reply: Reply) -> PartitionRead {
    let records = reply.records.unwrap_or_default();
    let read = PartitionRead {
        partition,
        log_start_offset: reply.log_start_offset.unwrap_or(-1),
        high_watermark: reply.high_watermark.unwrap_or(-1),
        records: records.len(),
        complete: reply.complete == Some(true),
    };
    let records = records_json(records);
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
}
