//! Consumers (Jepsen's client for `poll`): each drives one session (a worker process) that
//! `assign`s every partition of the topic at its log start offset and polls until told to
//! stop, recording each poll as an invoke and its completion, an ok with `[partition, offset,
//! value]` records. When the worker's library loses its place (an offset out of range after a
//! truncation), the consumer asks where the log now is and assigns again, recorded as a new
//! `assign`, which resets the checker's forward-reading state.
//!
//! When the worker dies, its poll in flight completes as `info` and a fresh worker, a new
//! process, assigns every partition where the dead one had got to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use history::{OpType, Process};
use serde_json::json;
use tokio::sync::watch;

use super::protocol::{Operation, Outcome, Reply, Role, records_json};
use super::session::{Launcher, Session, replace_session};
use crate::recorder::Recorder;

/// Records per `poll` operation at most.
pub(super) const RECORDS_PER_POLL_MAX: u32 = 500;
/// How long one `poll` operation gathers records.
pub(super) const POLL_WINDOW: Duration = Duration::from_millis(100);
/// How long a watermark query may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);
/// Beyond a request's own timeout, how long it may go unanswered.
const PATIENCE_MARGIN: Duration = Duration::from_secs(10);
/// How long a consumer may take to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a consumer is set up.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub bootstrap_servers: String,
    pub topic: String,
    pub partitions: u32,
}

impl ConsumerSettings {
    /// A consumer that reads assigned partitions: no commits, no rebalances (a `group.id` of
    /// its own, which librdkafka wants even for `assign`; it is never joined).
    pub fn config(&self, process: u64, what: &str) -> BTreeMap<String, String> {
        let client_id = format!("kchaos-{what}-{process}");
        [
            ("bootstrap.servers", self.bootstrap_servers.clone()),
            ("client.id", client_id.clone()),
            ("group.id", client_id),
            ("enable.auto.commit", "false".to_string()),
            ("auto.offset.reset", "none".to_string()),
            ("fetch.max.wait.ms", "100".to_string()),
            ("reconnect.backoff.ms", "50".to_string()),
            ("reconnect.backoff.max.ms", "500".to_string()),
            ("socket.connection.setup.timeout.ms", "3000".to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }
}

/// Runs a consumer from `first` (already started) until `stop` turns true, replacing it
/// through `launcher` whenever it dies; then closes it.
pub async fn run_consumer(
    first: Arc<dyn Session>,
    settings: ConsumerSettings,
    launcher: Arc<dyn Launcher>,
    recorder: Recorder,
    mut stop: watch::Receiver<bool>,
) {
    let mut positions: Option<Vec<i64>> = None;
    let mut session = first;
    loop {
        consume(&*session, &settings, &recorder, &mut positions, &mut stop).await;
        if *stop.borrow() || stop.has_changed().is_err() {
            break;
        }
        let config = |process| settings.config(process, "consumer");
        match replace_session(&*launcher, Role::Consumer, config, &mut stop).await {
            Some(fresh) => session = fresh,
            None => break,
        }
    }
    session.close(CLOSE_TIMEOUT).await;
}

/// Assigns and polls through `session` until `stop` or its death.
async fn consume(
    session: &dyn Session,
    settings: &ConsumerSettings,
    recorder: &Recorder,
    positions: &mut Option<Vec<i64>>,
    stop: &mut watch::Receiver<bool>,
) {
    let process = session.process();
    let death = session.death();
    let positions = match positions {
        Some(positions) => positions,
        None => {
            let mut starts = Vec::new();
            for partition in 0..settings.partitions as i32 {
                starts.push(log_start_offset(session, &settings.topic, partition).await);
            }
            positions.insert(starts)
        }
    };
    if !assign(session, &settings.topic, positions, recorder).await {
        return;
    }
    let poll_patience = POLL_WINDOW + PATIENCE_MARGIN;
    // Stop when told, or when whoever could tell us is gone.
    while !*stop.borrow() && stop.has_changed().is_ok() && death.borrow().is_none() {
        recorder.record(Process::Client(process), OpType::Invoke, "poll", json!({}));
        let poll = Operation::Poll {
            max_records: RECORDS_PER_POLL_MAX,
            timeout_ms: POLL_WINDOW.as_millis() as u64,
        };
        let reply = answer(session.submit(poll, poll_patience).await).await;
        if reply.outcome != Outcome::Ok {
            let error = reply.error.as_deref().unwrap_or("no reason given");
            recorder.record(
                Process::Client(process),
                reply.outcome.op_type(),
                "poll",
                json!({ "error": error }),
            );
            // No busy loop on a worker that refuses every poll.
            tokio::time::sleep(POLL_WINDOW).await;
            continue;
        }
        let records = reply.records.unwrap_or_default();
        for (partition, offset, _) in &records {
            if let Some(position) = positions.get_mut(*partition as usize) {
                *position = offset + 1;
            }
        }
        recorder.count_poll(records.len());
        let records = records_json(records);
        recorder.record(
            Process::Client(process),
            OpType::Ok,
            "poll",
            json!({ "records": records }),
        );
        if let Some(error) = &reply.error {
            tracing::debug!("consumer {process}: {error}");
        }
        if reply.position_lost == Some(true) {
            for (partition, position) in positions.iter_mut().enumerate() {
                *position =
                    clamp_to_log(session, &settings.topic, partition as i32, *position).await;
            }
            if !assign(session, &settings.topic, positions, recorder).await {
                return;
            }
        }
    }
}

/// A reply, or `info` if the session dropped the request.
pub(super) async fn answer(reply: tokio::sync::oneshot::Receiver<Reply>) -> Reply {
    reply
        .await
        .unwrap_or_else(|_| Reply::error(0, Outcome::Info, "no reply"))
}

/// Assigns every partition at `positions`, recorded as an `assign` invoke and its completion.
/// Returns whether it was assigned.
async fn assign(
    session: &dyn Session,
    topic: &str,
    positions: &[i64],
    recorder: &Recorder,
) -> bool {
    let process = session.process();
    let listed: Vec<(i32, i64)> = positions
        .iter()
        .enumerate()
        .map(|(partition, offset)| (partition as i32, *offset))
        .collect();
    let value = json!({ "positions": listed });
    recorder.record(
        Process::Client(process),
        OpType::Invoke,
        "assign",
        value.clone(),
    );
    let request = Operation::Assign {
        topic: topic.to_string(),
        positions: listed,
    };
    let reply = answer(session.submit(request, PATIENCE_MARGIN).await).await;
    let mut value = value;
    if reply.outcome != Outcome::Ok {
        value["error"] = json!(reply.error.as_deref().unwrap_or("no reason given"));
    }
    recorder.record(
        Process::Client(process),
        reply.outcome.op_type(),
        "assign",
        value,
    );
    reply.outcome == Outcome::Ok
}

/// `(log start offset, high watermark)` of a partition, if the cluster said.
pub async fn watermarks(session: &dyn Session, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let request = Operation::Watermarks {
        topic: topic.to_string(),
        partition,
        timeout_ms: WATERMARK_TIMEOUT.as_millis() as u64,
    };
    let reply = answer(
        session
            .submit(request, WATERMARK_TIMEOUT + PATIENCE_MARGIN)
            .await,
    )
    .await;
    match (reply.outcome, reply.log_start_offset, reply.high_watermark) {
        (Outcome::Ok, Some(low), Some(high)) => Some((low, high)),
        _ => {
            tracing::debug!(
                "watermarks of {topic}-{partition}: {}",
                reply.error.as_deref().unwrap_or("no answer")
            );
            None
        }
    }
}

/// The partition's log start offset, asked a few times; 0 if no broker answers.
async fn log_start_offset(session: &dyn Session, topic: &str, partition: i32) -> i64 {
    for _ in 0..5 {
        if let Some((low, _high)) = watermarks(session, topic, partition).await {
            return low;
        }
        if session.death().borrow().is_some() {
            break;
        }
    }
    0
}

/// `position` moved into the partition's current log range [low, high].
async fn clamp_to_log(session: &dyn Session, topic: &str, partition: i32, position: i64) -> i64 {
    match watermarks(session, topic, partition).await {
        Some((low, high)) => position.clamp(low, high.max(low)),
        None => position,
    }
}
