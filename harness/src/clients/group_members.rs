//! The workload's consumer group: one thread per member (`group_consumer`), each in a named
//! slot (`consumer-1`, `consumer-2`, ...) that the nemesis can hit like a node — `kill` (the
//! member's client is destroyed without LeaveGroup), `pause` (it stops polling), `resume`,
//! `start` (a new member in the slot, with a fresh process number, as Jepsen gives a crashed
//! process), `stop` (a clean close) — and the catch-up at the end of the fault phase: the
//! members keep reading until the group has committed every partition's high watermark.
//!
//! Kill and pause are in-process stand-ins for SIGKILL and SIGSTOP of a consumer process: a
//! killed member is dropped by the coordinator when its session times out, as a dead process
//! would be; a paused member's librdkafka threads keep heartbeating, so it leaves the group only
//! when `max.poll.interval.ms` passes (a frozen process would miss its heartbeats and be dropped
//! after its session timeout).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::clients::client_context::QuietContext;
use crate::clients::group_consumer::{
    GroupMemberError, GroupMemberSettings, MemberCommand, MemberControl, MemberExit,
    run_group_member,
};
use crate::lock::lock;
use crate::recorder::Recorder;
use crate::workload::Fault;

/// The node name prefix of a member's slot.
pub const MEMBER_PREFIX: &str = "consumer-";
/// How long one offsets or watermark query of the catch-up may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the catch-up looks at the group's commits.
const CATCH_UP_INTERVAL: Duration = Duration::from_millis(250);

/// Why the nemesis could not do something to a member.
#[derive(Debug, thiserror::Error)]
pub enum MemberFaultError {
    #[error("no group member is named {0}")]
    Unknown(String),
    #[error("{fault} is not done to group members (kill, pause, resume, stop, start, restart)")]
    Unsupported { fault: &'static str },
    #[error("cannot start a member thread: {0}")]
    Thread(String),
}

/// Whether `node` names a group member's slot.
pub fn is_member(node: &str) -> bool {
    node.strip_prefix(MEMBER_PREFIX)
        .is_some_and(|number| number.parse::<u32>().is_ok())
}

/// The state of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotStatus {
    Running,
    Paused,
    Down,
}

struct Slot {
    name: String,
    process: u64,
    status: SlotStatus,
    control: Arc<MemberControl>,
    thread: Option<JoinHandle<Result<MemberExit, GroupMemberError>>>,
}

/// The group's members. Cheap to share (`Arc`); every method is blocking (a kill or stop joins
/// the member's thread), so call them off the async threads.
pub struct GroupMembers {
    settings: GroupMemberSettings,
    recorder: Recorder,
    next_process: AtomicU64,
    slots: Mutex<Vec<Slot>>,
}

impl GroupMembers {
    /// Starts `count` members with process numbers `first_process..`; members started later
    /// (after a kill) take numbers from `later_processes` on.
    pub fn start(
        settings: GroupMemberSettings,
        recorder: Recorder,
        first_process: u64,
        count: u32,
        later_processes: u64,
    ) -> Result<Arc<Self>, MemberFaultError> {
        let members = Arc::new(GroupMembers {
            settings,
            recorder,
            next_process: AtomicU64::new(later_processes),
            slots: Mutex::new(Vec::new()),
        });
        for index in 0..u64::from(count) {
            let slot = members.spawn(
                format!("{MEMBER_PREFIX}{}", index + 1),
                first_process + index,
            )?;
            lock(&members.slots).push(slot);
        }
        Ok(members)
    }

    fn spawn(&self, name: String, process: u64) -> Result<Slot, MemberFaultError> {
        let control = Arc::new(MemberControl::default());
        let settings = self.settings.clone();
        let recorder = self.recorder.clone();
        let thread_control = Arc::clone(&control);
        let thread = std::thread::Builder::new()
            .name(format!("member-{process}"))
            .spawn(move || run_group_member(process, &settings, &recorder, &thread_control))
            .map_err(|error| MemberFaultError::Thread(error.to_string()))?;
        Ok(Slot {
            name,
            process,
            status: SlotStatus::Running,
            control,
            thread: Some(thread),
        })
    }

    /// The names of the members that are running (not paused, not down), in slot order.
    pub fn running(&self) -> Vec<String> {
        lock(&self.slots)
            .iter()
            .filter(|slot| slot.status == SlotStatus::Running)
            .map(|slot| slot.name.clone())
            .collect()
    }

    /// Does `fault` to the member in slot `name`; returns the member's process number after it
    /// (a fresh one after a start).
    pub fn inject(&self, fault: Fault, name: &str) -> Result<u64, MemberFaultError> {
        match fault {
            Fault::Kill => self.end(name, MemberCommand::Crash),
            Fault::Stop => self.end(name, MemberCommand::Stop),
            Fault::Pause => self.steer(name, MemberCommand::Pause, SlotStatus::Paused),
            Fault::Resume => self.steer(name, MemberCommand::Run, SlotStatus::Running),
            Fault::Start => self.start_slot(name),
            Fault::Restart => {
                self.end(name, MemberCommand::Stop)?;
                self.start_slot(name)
            }
        }
    }

    /// Resumes every paused member and starts a new member in every slot that is down;
    /// returns what it did, `(slot, "resume" | "start")`.
    pub fn heal(&self) -> Result<Vec<(String, &'static str)>, MemberFaultError> {
        let slots: Vec<(String, SlotStatus)> = lock(&self.slots)
            .iter()
            .map(|slot| (slot.name.clone(), slot.status))
            .collect();
        let mut healed = Vec::new();
        for (name, status) in slots {
            match status {
                SlotStatus::Running => {}
                SlotStatus::Paused => {
                    self.inject(Fault::Resume, &name)?;
                    healed.push((name, "resume"));
                }
                SlotStatus::Down => {
                    self.inject(Fault::Start, &name)?;
                    healed.push((name, "start"));
                }
            }
        }
        Ok(healed)
    }

    /// Closes every member cleanly and waits for their threads.
    pub fn stop_all(&self) {
        let names: Vec<String> = lock(&self.slots)
            .iter()
            .map(|slot| slot.name.clone())
            .collect();
        for name in names {
            let _ = self.end(&name, MemberCommand::Stop);
        }
    }

    fn steer(
        &self,
        name: &str,
        command: MemberCommand,
        status: SlotStatus,
    ) -> Result<u64, MemberFaultError> {
        let mut slots = lock(&self.slots);
        let slot = slots
            .iter_mut()
            .find(|slot| slot.name == name)
            .ok_or_else(|| MemberFaultError::Unknown(name.to_string()))?;
        if slot.status != SlotStatus::Down {
            slot.control.set(command);
            slot.status = status;
        }
        Ok(slot.process)
    }

    /// Ends the member in `name` (crash or clean stop) and waits for its thread.
    fn end(&self, name: &str, command: MemberCommand) -> Result<u64, MemberFaultError> {
        let (thread, process) = {
            let mut slots = lock(&self.slots);
            let slot = slots
                .iter_mut()
                .find(|slot| slot.name == name)
                .ok_or_else(|| MemberFaultError::Unknown(name.to_string()))?;
            slot.control.set(command);
            slot.status = SlotStatus::Down;
            (slot.thread.take(), slot.process)
        };
        if let Some(thread) = thread {
            match thread.join() {
                Ok(Ok(_exit)) => {}
                Ok(Err(error)) => tracing::warn!("{name}: {error}"),
                Err(_) => tracing::warn!("{name}: the member's thread panicked"),
            }
        }
        Ok(process)
    }

    /// Starts a new member, with a fresh process number, in a slot that is down.
    fn start_slot(&self, name: &str) -> Result<u64, MemberFaultError> {
        let mut slots = lock(&self.slots);
        let position = slots
            .iter()
            .position(|slot| slot.name == name)
            .ok_or_else(|| MemberFaultError::Unknown(name.to_string()))?;
        if slots[position].status != SlotStatus::Down {
            return Ok(slots[position].process);
        }
        let process = self.next_process.fetch_add(1, Ordering::Relaxed);
        let slot = self.spawn(name.to_string(), process)?;
        slots[position] = slot;
        Ok(process)
    }

    /// Waits until the group has committed, for every one of `partitions` of the topic, at
    /// least the partition's high watermark (the members consumed everything), or `timeout`
    /// passes. Returns the partitions still behind, as `(partition, committed, high watermark)`.
    pub fn catch_up(&self, partitions: u32, timeout: Duration) -> Vec<(i32, i64, i64)> {
        let observer = match observer(&self.settings) {
            Ok(observer) => observer,
            Err(error) => {
                tracing::warn!("cannot watch the group's commits: {error}");
                return Vec::new();
            }
        };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let behind = behind(&observer, &self.settings.topic, partitions);
            if behind.is_empty() || std::time::Instant::now() >= deadline {
                return behind;
            }
            std::thread::sleep(CATCH_UP_INTERVAL);
        }
    }
}

/// A client of the group that never joins it: it only reads the group's committed offsets and
/// the partitions' high watermarks.
fn observer(settings: &GroupMemberSettings) -> Result<BaseConsumer<QuietContext>, String> {
    ClientConfig::new()
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", "kchaos-group-observer")
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create_with_context(QuietContext)
        .map_err(|error| error.to_string())
}

/// The partitions whose committed offset is below their high watermark (unknown counts as
/// behind, with -1).
fn behind(
    observer: &BaseConsumer<QuietContext>,
    topic: &str,
    partitions: u32,
) -> Vec<(i32, i64, i64)> {
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        list.add_partition(topic, partition);
    }
    let committed = observer.committed_offsets(list, QUERY_TIMEOUT).ok();
    (0..partitions as i32)
        .filter_map(|partition| {
            let high = observer
                .fetch_watermarks(topic, partition, QUERY_TIMEOUT)
                .map_or(-1, |(_, high)| high);
            let offset = committed
                .as_ref()
                .and_then(|list| list.find_partition(topic, partition))
                .map_or(-1, |element| match element.offset() {
                    Offset::Offset(offset) => offset,
                    _ => -1,
                });
            // An empty partition has nothing to catch up on.
            (high < 0 || (high > 0 && offset < high)).then_some((partition, offset, high))
        })
        .collect()
}

impl Drop for GroupMembers {
    fn drop(&mut self) {
        self.stop_all();
    }
}
