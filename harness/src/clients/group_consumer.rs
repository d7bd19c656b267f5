//! A consumer group member (Jepsen's client in subscribe mode): an rdkafka consumer that
//! `subscribe`s to the topic as a member of the workload's group, polls, and commits what it
//! read after each poll. Rebalances are recorded as they happen, from librdkafka's rebalance
//! callback, which runs inside `poll`:
//!
//! - the poll operation in progress is completed first (`ok` with the records read so far), so
//!   that every record belongs to the assignment it was read under, and a new poll operation is
//!   invoked after the rebalance;
//! - partitions taken away: the member commits where it got to (`commit`), then `revoke`;
//! - partitions given: `assign` invoke, the group's committed offsets fetched from the
//!   coordinator, the partitions assigned at exactly those offsets (the log start where there is
//!   none), and `assign` ok with `committed` — what the checker judges the first reads against.
//!
//! ```text
//! {"process":5,"type":"invoke","f":"subscribe","value":{"group":"kchaos","topics":["t"]}}
//! {"process":5,"type":"ok","f":"assign","value":{"group":"kchaos","partitions":[0,2],"committed":[[0,41]]}}
//! {"process":5,"type":"ok","f":"commit","value":{"group":"kchaos","offsets":[[0,57],[2,12]]}}
//! {"process":5,"type":"ok","f":"revoke","value":{"group":"kchaos","partitions":[0,2]}}
//! ```
//!
//! The loop is blocking (librdkafka's poll), so a member runs on its own thread, steered by a
//! [`MemberControl`]: run, pause (stop polling; librdkafka's own threads keep heartbeating until
//! `max.poll.interval.ms` passes and it leaves the group), crash (the client is destroyed
//! without LeaveGroup or a last commit: the coordinator drops it when its session times out),
//! or stop (a clean close: a last commit and LeaveGroup). Pause and crash are in-process stand-
//! ins for SIGSTOP and SIGKILL of a consumer process, until clients run as worker processes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use history::{OpType, Process};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset};
use serde_json::{Value, json};

use crate::clients::client_context::QuietContext;
use crate::clients::producer::error_name;
use crate::lock::lock;
use crate::recorder::Recorder;

/// Records per `poll` operation at most.
const RECORDS_PER_POLL_MAX: usize = 500;
/// How long one `poll` operation gathers records.
const POLL_WINDOW: Duration = Duration::from_millis(100);
/// How long fetching the group's committed offsets at an assignment may take.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(5);

/// How a member is set up.
#[derive(Debug, Clone)]
pub struct GroupMemberSettings {
    pub bootstrap_servers: String,
    pub topic: String,
    /// `group.id`.
    pub group: String,
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub max_poll_interval_ms: u64,
}

/// Why a member could not run.
#[derive(Debug, thiserror::Error)]
pub enum GroupMemberError {
    #[error("cannot create group member {process}: {source}")]
    Create { process: u64, source: KafkaError },
}

/// What the member's thread should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberCommand {
    Run,
    /// Stop polling until told to run again.
    Pause,
    /// Destroy the client without LeaveGroup or a last commit, and end.
    Crash,
    /// Close cleanly (a last commit, LeaveGroup) and end.
    Stop,
}

/// Steers a member's thread from another thread.
#[derive(Debug)]
pub struct MemberControl {
    command: Mutex<MemberCommand>,
    changed: Condvar,
}

impl Default for MemberControl {
    fn default() -> Self {
        MemberControl {
            command: Mutex::new(MemberCommand::Run),
            changed: Condvar::new(),
        }
    }
}

impl MemberControl {
    pub fn set(&self, command: MemberCommand) {
        *lock(&self.command) = command;
        self.changed.notify_all();
    }

    pub fn get(&self) -> MemberCommand {
        *lock(&self.command)
    }

    /// Blocks while paused; returns the command that ended the pause.
    fn wait_while_paused(&self) -> MemberCommand {
        let mut command = lock(&self.command);
        while *command == MemberCommand::Pause {
            command = self
                .changed
                .wait(command)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *command
    }
}

/// What the member knows of its assignment and its poll operation in progress. Touched by the
/// poll loop and by the rebalance callback, which runs on the same thread inside `poll`.
#[derive(Default)]
struct MemberState {
    /// A `poll` is invoked and not completed.
    poll_open: bool,
    /// The records of the poll in progress.
    records: Vec<Value>,
    /// The partitions held now.
    assigned: BTreeSet<i32>,
    /// Per held partition, the next offset to read (known once read or fetched as committed).
    positions: BTreeMap<i32, i64>,
    /// Per held partition, the offset last committed by this member (acknowledged).
    committed: BTreeMap<i32, i64>,
}

/// The member's rdkafka context: quiet logs, and the rebalance callback that records what the
/// group does to the member.
struct MemberContext {
    process: u64,
    group: String,
    topic: String,
    recorder: Recorder,
    state: Mutex<MemberState>,
}

impl ClientContext for MemberContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        QuietContext.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        QuietContext.error(error, reason);
    }
}

impl ConsumerContext for MemberContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let was_polling = self.close_poll();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(consumer, partitions);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, partitions);
            }
            other => {
                // librdkafka asks to drop the assignment on a rebalance error.
                tracing::debug!("member {}: rebalance error {other:?}", self.process);
                self.revoke(consumer, partitions);
            }
        }
        if was_polling {
            self.open_poll();
        }
    }
}

impl MemberContext {
    fn record(&self, op_type: OpType, f: &str, value: Value) {
        self.recorder
            .record(Process::Client(self.process), op_type, f, value);
    }

    /// Invokes a `poll`.
    fn open_poll(&self) {
        lock(&self.state).poll_open = true;
        self.record(OpType::Invoke, "poll", json!({}));
    }

    /// Completes the `poll` in progress, if any, with its records; returns whether one was.
    fn close_poll(&self) -> bool {
        let records = {
            let mut state = lock(&self.state);
            if !state.poll_open {
                return false;
            }
            state.poll_open = false;
            std::mem::take(&mut state.records)
        };
        self.recorder.count_poll(records.len());
        self.record(OpType::Ok, "poll", json!({ "records": records }));
        true
    }

    /// One record read by the poll in progress.
    fn add_record(&self, partition: i32, offset: i64, value: String) {
        let mut state = lock(&self.state);
        state.positions.insert(partition, offset + 1);
        state.records.push(json!([partition, offset, value]));
    }

    fn records_in_poll(&self) -> usize {
        lock(&self.state).records.len()
    }

    /// Commits the positions of held partitions that moved since the last commit, as a
    /// `commit` operation (synchronous). Nothing to commit: no operation.
    fn commit(&self, consumer: &BaseConsumer<Self>) {
        let offsets: Vec<(i32, i64)> = {
            let state = lock(&self.state);
            state
                .positions
                .iter()
                .filter(|(partition, position)| {
                    state.assigned.contains(partition)
                        && state.committed.get(partition) != Some(position)
                })
                .map(|(partition, position)| (*partition, *position))
                .collect()
        };
        if offsets.is_empty() {
            return;
        }
        let value = json!({"group": self.group, "offsets": offsets});
        self.record(OpType::Invoke, "commit", value.clone());
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &offsets {
            if let Err(error) =
                list.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))
            {
                let mut failed = value;
                failed["error"] = json!(error.to_string());
                self.record(OpType::Fail, "commit", failed);
                return;
            }
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                let mut state = lock(&self.state);
                for (partition, offset) in &offsets {
                    state.committed.insert(*partition, *offset);
                }
                drop(state);
                self.record(OpType::Ok, "commit", value);
            }
            Err(error) => {
                let mut completion = value;
                completion["error"] = json!(error_name(&error));
                let op_type = if commit_certainly_refused(&error) {
                    OpType::Fail
                } else {
                    OpType::Info
                };
                self.record(op_type, "commit", completion);
            }
        }
    }

    /// Partitions taken away: commit where the member got to (unless librdkafka says the
    /// assignment is already lost), then `revoke` and unassign.
    fn revoke(&self, consumer: &BaseConsumer<Self>, partitions: &TopicPartitionList) {
        if !consumer.assignment_lost() {
            self.commit(consumer);
        }
        let revoked = partition_numbers(partitions);
        let value = json!({"group": self.group, "partitions": revoked});
        self.record(OpType::Invoke, "revoke", value.clone());
        {
            let mut state = lock(&self.state);
            for partition in &revoked {
                state.assigned.remove(partition);
                state.positions.remove(partition);
                state.committed.remove(partition);
            }
        }
        match consumer.unassign() {
            Ok(()) => self.record(OpType::Ok, "revoke", value),
            Err(error) => {
                let mut completion = value;
                completion["error"] = json!(error_name(&error));
                self.record(OpType::Info, "revoke", completion);
            }
        }
    }

    /// Partitions given: `assign` invoke, the group's committed offsets fetched, the
    /// partitions assigned at exactly those offsets, `assign` ok with `committed`. If the
    /// offsets cannot be fetched, librdkafka fetches them itself and `committed` is left out.
    fn assign(&self, consumer: &BaseConsumer<Self>, partitions: &TopicPartitionList) {
        let given = partition_numbers(partitions);
        let value = json!({"group": self.group, "partitions": given});
        self.record(OpType::Invoke, "assign", value.clone());
        let committed = fetch_committed(consumer, &self.topic, &given);
        let mut list = TopicPartitionList::new();
        for partition in &given {
            let offset = match &committed {
                Ok(committed) => match committed.get(partition) {
                    Some(offset) => Offset::Offset(*offset),
                    None => Offset::Beginning,
                },
                Err(_) => Offset::Stored,
            };
            if let Err(error) = list.add_partition_offset(&self.topic, *partition, offset) {
                tracing::warn!("member {}: {error}", self.process);
            }
        }
        {
            let mut state = lock(&self.state);
            state.assigned = given.iter().copied().collect();
            state.positions.clear();
            state.committed.clear();
            if let Ok(committed) = &committed {
                for (partition, offset) in committed {
                    state.positions.insert(*partition, *offset);
                    state.committed.insert(*partition, *offset);
                }
            }
        }
        let mut completion = value;
        match &committed {
            Ok(committed) => {
                let pairs: Vec<(i32, i64)> = committed.iter().map(|(p, o)| (*p, *o)).collect();
                completion["committed"] = json!(pairs);
            }
            Err(reason) => completion["committed_error"] = json!(reason),
        }
        match consumer.assign(&list) {
            Ok(()) => self.record(OpType::Ok, "assign", completion),
            Err(error) => {
                completion["error"] = json!(error_name(&error));
                self.record(OpType::Info, "assign", completion);
            }
        }
    }
}

/// The group's committed offsets of `partitions` (absent: none committed), or why they could
/// not be fetched.
fn fetch_committed(
    consumer: &BaseConsumer<MemberContext>,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, String> {
    let mut list = TopicPartitionList::new();
    for partition in partitions {
        list.add_partition(topic, *partition);
    }
    let fetched = consumer
        .committed_offsets(list, COMMITTED_TIMEOUT)
        .map_err(|error| error_name(&error))?;
    let mut committed = BTreeMap::new();
    for element in fetched.elements() {
        if let Err(error) = element.error() {
            return Err(error_name(&error));
        }
        if let Offset::Offset(offset) = element.offset() {
            committed.insert(element.partition(), offset);
        }
    }
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

/// Commit errors after which the offsets certainly were not stored: the coordinator refused
/// them for the member's generation or their shape, or the client never sent them. Anything
/// else (timeouts, a lost connection, a coordinator moving) leaves it unknown.
fn commit_certainly_refused(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::FencedInstanceId
                | RDKafkaErrorCode::OffsetMetadataTooLarge
                | RDKafkaErrorCode::InvalidCommitOffsetSize
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::NoOffset
                | RDKafkaErrorCode::State
                | RDKafkaErrorCode::AssignmentLost
        )
    )
}

fn create_member(
    process: u64,
    settings: &GroupMemberSettings,
    recorder: &Recorder,
) -> Result<BaseConsumer<MemberContext>, GroupMemberError> {
    let context = MemberContext {
        process,
        group: settings.group.clone(),
        topic: settings.topic.clone(),
        recorder: recorder.clone(),
        state: Mutex::default(),
    };
    ClientConfig::new()
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", format!("kchaos-member-{process}"))
        .set("group.id", &settings.group)
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            settings.heartbeat_interval_ms.to_string(),
        )
        .set(
            "max.poll.interval.ms",
            settings.max_poll_interval_ms.to_string(),
        )
        // Eager rebalances: every member gives up everything, then gets a new assignment.
        .set("partition.assignment.strategy", "range,roundrobin")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("log_level", "3")
        .create_with_context(context)
        .map_err(|source| GroupMemberError::Create { process, source })
}

/// How a member's thread ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberExit {
    /// Closed cleanly (LeaveGroup).
    Stopped,
    /// Destroyed without LeaveGroup.
    Crashed,
}

/// Runs member `process` until its control says crash or stop. Blocking: call it on its own
/// thread.
pub fn run_group_member(
    process: u64,
    settings: &GroupMemberSettings,
    recorder: &Recorder,
    control: &MemberControl,
) -> Result<MemberExit, GroupMemberError> {
    let consumer = create_member(process, settings, recorder)?;
    let context = consumer.context().clone();
    let subscription = json!({"group": settings.group, "topics": [settings.topic]});
    context.record(OpType::Invoke, "subscribe", subscription.clone());
    if let Err(error) = consumer.subscribe(&[&settings.topic]) {
        let mut failed = subscription;
        failed["error"] = json!(error_name(&error));
        context.record(OpType::Fail, "subscribe", failed);
        return Ok(MemberExit::Stopped);
    }
    context.record(OpType::Ok, "subscribe", subscription);
    loop {
        match control.wait_while_paused() {
            MemberCommand::Run | MemberCommand::Pause => {}
            MemberCommand::Crash => return Ok(crash(consumer)),
            MemberCommand::Stop => break,
        }
        poll_once(&consumer, &context);
        if control.get() == MemberCommand::Crash {
            // Crash between reading and committing: the next owner reads these again.
            return Ok(crash(consumer));
        }
        context.commit(&consumer);
    }
    // A clean close: the revoke callback commits, then LeaveGroup (rdkafka's drop).
    drop(consumer);
    Ok(MemberExit::Stopped)
}

/// One `poll` operation: records for up to [`POLL_WINDOW`] or [`RECORDS_PER_POLL_MAX`].
fn poll_once(consumer: &BaseConsumer<MemberContext>, context: &MemberContext) {
    context.open_poll();
    let window_end = Instant::now() + POLL_WINDOW;
    while context.records_in_poll() < RECORDS_PER_POLL_MAX {
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
                context.add_record(message.partition(), message.offset(), value);
            }
            Some(Err(error)) => {
                tracing::debug!("member {}: {error}", context.process);
                break;
            }
        }
    }
    context.close_poll();
}

/// Destroys the client without LeaveGroup and without a last commit, as a killed process
/// would leave it: the coordinator drops the member once its session times out.
fn crash(consumer: BaseConsumer<MemberContext>) -> MemberExit {
    let client = consumer.client().native_ptr();
    // SAFETY: `client` is the live handle owned by `consumer`; it is destroyed exactly once
    // here, and `consumer` is then forgotten so that its own drop (which would close the group
    // membership and destroy the handle again) never runs. The consumer's queue handle and
    // context are leaked, a few hundred bytes per crash.
    unsafe {
        rdkafka::bindings::rd_kafka_destroy_flags(
            client,
            rdkafka::bindings::RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE,
        );
    }
    std::mem::forget(consumer);
    MemberExit::Crashed
}
