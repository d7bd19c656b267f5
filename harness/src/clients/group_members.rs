//! The workload's consumer group: one thread per member (`group_consumer`), each in a named
//! slot (`consumer-1`, `consumer-2`, ...) that the nemesis can hit like a node — kill (the
//! member's client is destroyed without LeaveGroup), pause (it stops polling), resume, start (a
//! new member in the slot, with a fresh process number, as Jepsen gives a crashed process),
//! stop (a clean close), restart.
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

use crate::clients::group_consumer::{
    GroupMemberError, GroupMemberSettings, MemberCommand, MemberControl, MemberExit,
    run_group_member,
};
use crate::lock::lock;
use crate::recorder::Recorder;

/// The node name prefix of a member's slot.
pub const MEMBER_PREFIX: &str = "consumer-";

/// Why something could not be done to a member.
#[derive(Debug, thiserror::Error)]
pub enum MemberFaultError {
    #[error("no group member is named {0}")]
    Unknown(String),
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
    pub fn launch(
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

    /// Each of these returns the slot's process number after it (a fresh one after a start).
    /// Destroys the member's client without LeaveGroup or a last commit (a SIGKILL's stand-in).
    pub fn kill(&self, name: &str) -> Result<u64, MemberFaultError> {
        self.end(name, MemberCommand::Crash)
    }

    /// Closes the member cleanly: a last commit and LeaveGroup.
    pub fn stop(&self, name: &str) -> Result<u64, MemberFaultError> {
        self.end(name, MemberCommand::Stop)
    }

    /// Stops the member's polling (a SIGSTOP's stand-in: librdkafka keeps heartbeating).
    pub fn pause(&self, name: &str) -> Result<u64, MemberFaultError> {
        self.steer(name, MemberCommand::Pause, SlotStatus::Paused)
    }

    pub fn resume(&self, name: &str) -> Result<u64, MemberFaultError> {
        self.steer(name, MemberCommand::Run, SlotStatus::Running)
    }

    /// Starts a new member, with a fresh process number, in a slot that is down.
    pub fn start(&self, name: &str) -> Result<u64, MemberFaultError> {
        self.start_slot(name)
    }

    /// A clean stop, then a new member in the slot.
    pub fn restart(&self, name: &str) -> Result<u64, MemberFaultError> {
        self.stop(name)?;
        self.start_slot(name)
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
                    self.resume(&name)?;
                    healed.push((name, "resume"));
                }
                SlotStatus::Down => {
                    self.start(&name)?;
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
}

impl Drop for GroupMembers {
    fn drop(&mut self) {
        self.stop_all();
    }
}
