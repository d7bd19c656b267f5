//! The workload's consumer group: one task per member ([`super::group_member`]), each in a
//! named slot (`consumer-1`, `consumer-2`, ...) that the nemesis can hit like a node. Every
//! member is a worker process, so the faults are real:
//!
//! - `kill`: SIGKILL of the member's worker (no LeaveGroup, no last commit: the coordinator
//!   drops it when its session times out). Its operations in flight complete `info`, a
//!   `client-crash` is recorded, and a fresh worker — a new process number, as Jepsen gives a
//!   crashed process — takes the slot and subscribes again, as for any worker that dies.
//! - `pause` / `resume`: SIGSTOP / SIGCONT of the worker: it misses its heartbeats and is
//!   dropped after its session timeout; resumed, it finds itself out of the group and rejoins.
//! - `stop`: a clean close (LeaveGroup); the slot stays empty until `start` (a fresh worker)
//!   or the heal. `restart`: both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::group_member::{GroupMemberSettings, MemberEnd, run_member};
use super::protocol::Role;
use super::session::{Launcher, Session, replace_session};
use super::worker::ProcessFault;
use crate::lock::lock;
use crate::recorder::Recorder;

/// The node name prefix of a member's slot.
pub const MEMBER_PREFIX: &str = "consumer-";
/// How long a member may take to close (LeaveGroup).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `stop`, `start` and `restart` wait for the slot to get there.
const SLOT_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why something could not be done to a member.
#[derive(Debug, thiserror::Error)]
pub enum MemberFaultError {
    #[error("no group member is named {0}")]
    Unknown(String),
    #[error("{name} has no running worker to {what}")]
    NoWorker { name: String, what: &'static str },
    #[error("{name}: {error}")]
    Signal { name: String, error: String },
    #[error("{name} did not {what} within {} s", SLOT_CHANGE_TIMEOUT.as_secs())]
    Timeout { name: String, what: &'static str },
}

/// Whether `node` names a group member's slot.
pub fn is_member(node: &str) -> bool {
    node.strip_prefix(MEMBER_PREFIX)
        .is_some_and(|number| number.parse::<u32>().is_ok())
}

/// The state of one slot, as its task and the nemesis see it.
#[derive(Clone)]
struct SlotState {
    /// The worker in the slot now (none while one starts, or after a `stop`).
    session: Option<Arc<dyn Session>>,
    /// Its process number (the last one's, while none runs).
    process: u64,
    /// SIGSTOPped by the nemesis.
    paused: bool,
    /// Closed by a `stop`, until a `start`.
    down: bool,
}

struct Slot {
    name: String,
    state: watch::Sender<SlotState>,
    /// Whether the slot should have a member (false after `stop`).
    wanted: watch::Sender<bool>,
}

/// The group's members. The nemesis's methods block (they wait for the slot to change): call
/// them off the async threads.
pub struct GroupMembers {
    slots: Vec<Arc<Slot>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
}

impl GroupMembers {
    /// Runs a member in a slot per session of `first` (workers already started and opened
    /// with [`GroupMemberSettings::config`]); replacements come from `launcher`.
    pub fn launch(
        first: Vec<Arc<dyn Session>>,
        settings: GroupMemberSettings,
        launcher: Arc<dyn Launcher>,
        recorder: Recorder,
    ) -> Arc<Self> {
        let (stop, _) = watch::channel(false);
        let mut slots = Vec::new();
        let mut tasks = Vec::new();
        for (index, session) in first.into_iter().enumerate() {
            let slot = Arc::new(Slot {
                name: format!("{MEMBER_PREFIX}{}", index + 1),
                state: watch::channel(SlotState {
                    process: session.process(),
                    session: Some(Arc::clone(&session)),
                    paused: false,
                    down: false,
                })
                .0,
                wanted: watch::channel(true).0,
            });
            tasks.push(tokio::spawn(drive_slot(
                Arc::clone(&slot),
                session,
                settings.clone(),
                Arc::clone(&launcher),
                recorder.clone(),
                stop.subscribe(),
            )));
            slots.push(slot);
        }
        Arc::new(GroupMembers {
            slots,
            stop,
            tasks: Mutex::new(tasks),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    fn slot(&self, name: &str) -> Result<&Arc<Slot>, MemberFaultError> {
        self.slots
            .iter()
            .find(|slot| slot.name == name)
            .ok_or_else(|| MemberFaultError::Unknown(name.to_string()))
    }

    /// The names of the members whose worker runs (not paused, not down, not starting), in
    /// slot order.
    pub fn running(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|slot| {
                let state = slot.state.borrow();
                state.session.is_some() && !state.paused
            })
            .map(|slot| slot.name.clone())
            .collect()
    }

    /// Each of these returns the slot's process number after it (a fresh one after a start).
    /// SIGKILL of the member's worker; its replacement starts by itself.
    pub fn kill(&self, name: &str) -> Result<u64, MemberFaultError> {
        let slot = self.slot(name)?;
        let (session, process) = running_worker(slot, "kill")?;
        signal(slot, &session, ProcessFault::Kill)?;
        slot.state.send_modify(|state| state.paused = false);
        Ok(process)
    }

    /// SIGSTOP of the member's worker.
    pub fn pause(&self, name: &str) -> Result<u64, MemberFaultError> {
        let slot = self.slot(name)?;
        let (session, process) = running_worker(slot, "pause")?;
        signal(slot, &session, ProcessFault::Pause)?;
        slot.state.send_modify(|state| state.paused = true);
        Ok(process)
    }

    /// SIGCONT of the member's worker (nothing if it is not paused).
    pub fn resume(&self, name: &str) -> Result<u64, MemberFaultError> {
        let slot = self.slot(name)?;
        let state = slot.state.borrow().clone();
        if let (true, Some(session)) = (state.paused, &state.session) {
            signal(slot, session, ProcessFault::Resume)?;
        }
        slot.state.send_modify(|state| state.paused = false);
        Ok(state.process)
    }

    /// Closes the member cleanly (LeaveGroup) and leaves the slot empty.
    pub fn stop(&self, name: &str) -> Result<u64, MemberFaultError> {
        let slot = self.slot(name)?;
        self.resume(name)?;
        slot.wanted.send_replace(false);
        self.wait_for(slot, "stop", |state| state.down)
            .map(|state| state.process)
    }

    /// A fresh worker (a new process number) in a slot a `stop` left empty.
    pub fn start(&self, name: &str) -> Result<u64, MemberFaultError> {
        let slot = self.slot(name)?;
        if !*slot.wanted.borrow() {
            slot.wanted.send_replace(true);
        }
        self.wait_for(slot, "start", |state| {
            !state.down && state.session.is_some()
        })
        .map(|state| state.process)
    }

    /// A clean stop, then a fresh worker in the slot.
    pub fn restart(&self, name: &str) -> Result<u64, MemberFaultError> {
        self.stop(name)?;
        self.start(name)
    }

    /// Resumes every paused member and starts a member in every slot a `stop` left empty;
    /// returns what it did, `(slot, "resume" | "start")`.
    pub fn heal(&self) -> Result<Vec<(String, &'static str)>, MemberFaultError> {
        let mut healed = Vec::new();
        for slot in &self.slots {
            let (paused, wanted) = (slot.state.borrow().paused, *slot.wanted.borrow());
            if paused {
                self.resume(&slot.name)?;
                healed.push((slot.name.clone(), "resume"));
            }
            if !wanted {
                self.start(&slot.name)?;
                healed.push((slot.name.clone(), "start"));
            }
        }
        Ok(healed)
    }

    /// Waits (blocking) until the slot's state satisfies `done`.
    fn wait_for(
        &self,
        slot: &Slot,
        what: &'static str,
        done: impl Fn(&SlotState) -> bool,
    ) -> Result<SlotState, MemberFaultError> {
        let mut state = slot.state.subscribe();
        self.runtime
            .block_on(async {
                tokio::time::timeout(SLOT_CHANGE_TIMEOUT, state.wait_for(|state| done(state)))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|state| state.clone())
            })
            .ok_or_else(|| MemberFaultError::Timeout {
                name: slot.name.clone(),
                what,
            })
    }

    /// Resumes the paused members, then closes every member cleanly and waits for them.
    pub async fn stop_all(&self) {
        for slot in &self.slots {
            let state = slot.state.borrow().clone();
            if let (true, Some(session)) = (state.paused, &state.session)
                && let Err(error) = session.fault(ProcessFault::Resume)
            {
                tracing::warn!("{}: {error}", slot.name);
            }
        }
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!("a group member's task: {error}");
            }
        }
    }
}

/// The worker running in `slot`, to do `what` to.
fn running_worker(
    slot: &Slot,
    what: &'static str,
) -> Result<(Arc<dyn Session>, u64), MemberFaultError> {
    let state = slot.state.borrow();
    match &state.session {
        Some(session) => Ok((Arc::clone(session), state.process)),
        None => Err(MemberFaultError::NoWorker {
            name: slot.name.clone(),
            what,
        }),
    }
}

fn signal(
    slot: &Slot,
    session: &Arc<dyn Session>,
    fault: ProcessFault,
) -> Result<(), MemberFaultError> {
    session
        .fault(fault)
        .map_err(|error| MemberFaultError::Signal {
            name: slot.name.clone(),
            error,
        })
}

/// A slot's life: its member runs until the run stops it, the nemesis stops it (a clean
/// close; it waits to be started again), or its worker dies (a fresh one takes its place).
async fn drive_slot(
    slot: Arc<Slot>,
    first: Arc<dyn Session>,
    settings: GroupMemberSettings,
    launcher: Arc<dyn Launcher>,
    recorder: Recorder,
    mut stop: watch::Receiver<bool>,
) {
    let mut wanted = slot.wanted.subscribe();
    let mut next = Some(first);
    loop {
        if *stop.borrow() {
            break;
        }
        let session = match next.take() {
            Some(session) => session,
            None => {
                let config = |process| settings.config(process);
                match replace_session(&*launcher, Role::Consumer, config, &mut stop).await {
                    Some(session) => session,
                    None => break,
                }
            }
        };
        slot.state.send_modify(|state| {
            state.process = session.process();
            state.session = Some(Arc::clone(&session));
            state.paused = false;
            state.down = false;
        });
        // The member runs until the run stops, the nemesis stops it, or its worker dies.
        let (leave, mut member_stop) = watch::channel(false);
        let ended = {
            let member = run_member(&*session, &settings, &recorder, &mut member_stop);
            tokio::pin!(member);
            let told = tokio::select! {
                ended = &mut member => Some(ended),
                _ = stop.wait_for(|stopped| *stopped) => None,
                _ = wanted.wait_for(|wanted| !*wanted) => None,
            };
            match told {
                Some(ended) => ended,
                None => {
                    leave.send_replace(true);
                    member.await
                }
            }
        };
        if ended == MemberEnd::Stopped {
            session.close(CLOSE_TIMEOUT).await;
        }
        slot.state.send_modify(|state| state.session = None);
        if *stop.borrow() {
            break;
        }
        if !*wanted.borrow() {
            slot.state.send_modify(|state| state.down = true);
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                _ = wanted.wait_for(|wanted| *wanted) => {}
            }
        }
    }
}
