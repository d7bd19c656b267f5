//! A consumer group member (Jepsen's client in subscribe mode), driven through a worker
//! session: it `subscribe`s to the topic as a member of the workload's group, polls, and
//! commits what it read after each poll. The worker stops a poll at a rebalance and reports the
//! rebalances after the records read before them (docs/client-protocol.md), so the history
//! has, in this order:
//!
//! - the poll completed (`ok` with the records read before the rebalance), so that every
//!   record belongs to the assignment it was read under;
//! - partitions taken away: `revoke`;
//! - partitions given: `assign` invoke and `ok` with `committed` — the group's committed
//!   offsets the worker fetched after the assignment and reads from, what the checker judges
//!   the first reads against (left out, with `committed_error`, when they could not be
//!   fetched);
//! - the member's commit of where it got to in the partitions it holds.
//!
//! ```text
//! {"process":5,"type":"invoke","f":"subscribe","value":{"group":"kchaos","topics":["t"]}}
//! {"process":5,"type":"ok","f":"assign","value":{"group":"kchaos","partitions":[0,2],"committed":[[0,41]]}}
//! {"process":5,"type":"ok","f":"commit","value":{"group":"kchaos","offsets":[[0,57],[2,12]]}}
//! {"process":5,"type":"ok","f":"revoke","value":{"group":"kchaos","partitions":[0,2]}}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use history::{OpType, Process};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::consumer::{POLL_WINDOW, RECORDS_PER_POLL_MAX, answer};
use super::protocol::{Operation, Outcome, Rebalance, Reply, records_json};
use super::session::Session;
use crate::recorder::Recorder;

/// Beyond a request's own timeout, how long it may go unanswered (an assignment's fetch of the
/// committed offsets, up to 5 s, happens inside a poll).
const PATIENCE_MARGIN: Duration = Duration::from_secs(15);

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

impl GroupMemberSettings {
    /// The worker's consumer config (Kafka's names): the group and its timeouts, eager
    /// rebalances (every member gives up everything, then gets a new assignment), commits by
    /// the harness only, and the log start where nothing is committed.
    pub fn config(&self, process: u64) -> BTreeMap<String, String> {
        [
            ("bootstrap.servers", self.bootstrap_servers.clone()),
            ("client.id", format!("kchaos-member-{process}")),
            ("group.id", self.group.clone()),
            ("session.timeout.ms", self.session_timeout_ms.to_string()),
            (
                "heartbeat.interval.ms",
                self.heartbeat_interval_ms.to_string(),
            ),
            (
                "max.poll.interval.ms",
                self.max_poll_interval_ms.to_string(),
            ),
            ("partition.assignment.strategy", "range,roundrobin".into()),
            ("enable.auto.commit", "false".into()),
            ("auto.offset.reset", "earliest".into()),
            ("fetch.max.wait.ms", "100".into()),
            ("reconnect.backoff.ms", "50".into()),
            ("reconnect.backoff.max.ms", "500".into()),
            ("socket.connection.setup.timeout.ms", "3000".into()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }
}

/// Why a member stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberEnd {
    /// `stop` turned true (or whoever could tell it is gone).
    Stopped,
    /// Its worker died.
    Died,
}

/// What the member knows of its assignment.
#[derive(Default)]
struct Assignment {
    /// The partitions held now.
    held: BTreeSet<i32>,
    /// Per held partition, the next offset to read (known once read or fetched as committed).
    positions: BTreeMap<i32, i64>,
    /// Per held partition, the offset last committed (acknowledged or fetched).
    committed: BTreeMap<i32, i64>,
}

/// One member's run through `session`: subscribe, then poll and commit until `stop` turns true
/// or the worker dies. The caller closes the session (a clean close leaves the group).
pub async fn run_member(
    session: &dyn Session,
    settings: &GroupMemberSettings,
    recorder: &Recorder,
    stop: &mut watch::Receiver<bool>,
) -> MemberEnd {
    let member = Member {
        session,
        settings,
        recorder,
        process: session.process(),
    };
    let death = session.death();
    let stopped = |stop: &watch::Receiver<bool>| *stop.borrow() || stop.has_changed().is_err();
    loop {
        if stopped(stop) {
            return MemberEnd::Stopped;
        }
        if death.borrow().is_some() {
            return MemberEnd::Died;
        }
        if member.subscribe().await {
            break;
        }
        tokio::time::sleep(POLL_WINDOW).await;
    }
    let mut assignment = Assignment::default();
    loop {
        if stopped(stop) {
            return MemberEnd::Stopped;
        }
        if death.borrow().is_some() {
            return MemberEnd::Died;
        }
        if !member.poll(&mut assignment).await {
            // No busy loop on a worker that refuses every poll.
            tokio::time::sleep(POLL_WINDOW).await;
            continue;
        }
        member.commit(&mut assignment).await;
    }
}

struct Member<'a> {
    session: &'a dyn Session,
    settings: &'a GroupMemberSettings,
    recorder: &'a Recorder,
    process: u64,
}

impl Member<'_> {
    fn record(&self, op_type: OpType, f: &str, value: Value) {
        self.recorder
            .record(Process::Client(self.process), op_type, f, value);
    }

    /// `subscribe`, recorded; whether the worker took it.
    async fn subscribe(&self) -> bool {
        let value = json!({"group": self.settings.group, "topics": [self.settings.topic]});
        self.record(OpType::Invoke, "subscribe", value.clone());
        let request = Operation::Subscribe {
            topics: vec![self.settings.topic.clone()],
        };
        let reply = answer(self.session.submit(request, PATIENCE_MARGIN).await).await;
        self.record(
            reply.outcome.op_type(),
            "subscribe",
            with_error(value, &reply),
        );
        reply.outcome == Outcome::Ok
    }

    /// One `poll` operation, then the rebalances the worker reported after it; whether the
    /// poll was answered `ok`.
    async fn poll(&self, assignment: &mut Assignment) -> bool {
        self.record(OpType::Invoke, "poll", json!({}));
        let request = Operation::Poll {
            max_records: RECORDS_PER_POLL_MAX,
            timeout_ms: POLL_WINDOW.as_millis() as u64,
        };
        let reply = answer(
            self.session
                .submit(request, POLL_WINDOW + PATIENCE_MARGIN)
                .await,
        )
        .await;
        if reply.outcome != Outcome::Ok {
            let error = reply.error.as_deref().unwrap_or("no reason given");
            self.record(reply.outcome.op_type(), "poll", json!({ "error": error }));
            return false;
        }
        let records = reply.records.unwrap_or_default();
        for (partition, offset, _) in &records {
            if assignment.held.contains(partition) {
                assignment.positions.insert(*partition, offset + 1);
            }
        }
        self.recorder.count_poll(records.len());
        self.record(
            OpType::Ok,
            "poll",
            json!({ "records": records_json(records) }),
        );
        if let Some(error) = &reply.error {
            tracing::debug!("member {}: {error}", self.process);
        }
        let rebalances = match reply.rebalances {
            Some(rebalances) => rebalances,
            // A worker that only says what was given and taken: taken first (eager rebalances).
            None => [
                reply.revoked.map(Rebalance::revoked),
                reply
                    .assigned
                    .map(|given| Rebalance::assigned(given, Err("not reported".into()))),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        for rebalance in rebalances {
            self.rebalanced(rebalance, assignment);
        }
        true
    }

    /// Records one rebalance and follows it.
    fn rebalanced(&self, rebalance: Rebalance, assignment: &mut Assignment) {
        let group = &self.settings.group;
        if let Some(taken) = rebalance.revoked {
            let value = json!({"group": group, "partitions": taken});
            self.record(OpType::Invoke, "revoke", value.clone());
            for partition in &taken {
                assignment.held.remove(partition);
                assignment.positions.remove(partition);
                assignment.committed.remove(partition);
            }
            self.record(OpType::Ok, "revoke", value);
        }
        if let Some(given) = rebalance.assigned {
            let value = json!({"group": group, "partitions": given});
            self.record(OpType::Invoke, "assign", value.clone());
            assignment.held = given.iter().copied().collect();
            assignment.positions.clear();
            assignment.committed.clear();
            let mut completion = value;
            match (rebalance.committed, rebalance.committed_error) {
                (Some(committed), _) => {
                    for (partition, offset) in &committed {
                        assignment.positions.insert(*partition, *offset);
                        assignment.committed.insert(*partition, *offset);
                    }
                    completion["committed"] = json!(committed);
                }
                (None, error) => {
                    completion["committed_error"] =
                        json!(error.unwrap_or_else(|| "not reported".into()));
                }
            }
            self.record(OpType::Ok, "assign", completion);
        }
    }

    /// Commits the positions of held partitions that moved since the last commit, as a
    /// `commit` operation. Nothing to commit: no operation.
    async fn commit(&self, assignment: &mut Assignment) {
        let offsets: Vec<(i32, i64)> = assignment
            .positions
            .iter()
            .filter(|(partition, position)| {
                assignment.held.contains(partition)
                    && assignment.committed.get(partition) != Some(position)
            })
            .map(|(partition, position)| (*partition, *position))
            .collect();
        if offsets.is_empty() {
            return;
        }
        let value = json!({"group": self.settings.group, "offsets": offsets});
        self.record(OpType::Invoke, "commit", value.clone());
        let request = Operation::Commit {
            topic: self.settings.topic.clone(),
            offsets: Some(offsets.clone()),
        };
        let reply = answer(self.session.submit(request, PATIENCE_MARGIN).await).await;
        if reply.outcome == Outcome::Ok {
            for (partition, offset) in offsets {
                assignment.committed.insert(partition, offset);
            }
        }
        self.record(reply.outcome.op_type(), "commit", with_error(value, &reply));
    }
}

/// `value` with the reply's error, if it failed.
fn with_error(mut value: Value, reply: &Reply) -> Value {
    if reply.outcome != Outcome::Ok {
        value["error"] = json!(reply.error.as_deref().unwrap_or("no reason given"));
    }
    value
}
