//! fsyncs off the dispatch thread: a small pool does the backing fsync (which can take
//! milliseconds), then marks what it covered durable and answers. While a slow-disk window is
//! open the delay thread does both, `fsync_delay` later: a slow device has not written the data
//! until its fsync returns, so a loss during the delay drops what the fsync covers. So one
//! waiting fsync never holds up the reads and writes of other processes.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fuser::{Errno, ReplyEmpty};

use crate::mount::EntryDurability;
use crate::namespace::Ino;
use crate::state::Shared;

/// How often a delayed fsync looks whether the power was cut.
const POWER_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Threads doing backing fsyncs at once.
const SYNC_THREADS: usize = 2;

/// What an fsync covers.
pub(crate) enum SyncTarget {
    /// A file's data and size, through an open handle.
    File { file: Arc<File>, datasync: bool },
    /// A directory's entries.
    Directory { path: PathBuf },
}

struct SyncJob {
    ino: Ino,
    target: SyncTarget,
    /// The mount's loss count when the fsync was called: after a loss it commits nothing.
    losses: u64,
    reply: ReplyEmpty,
}

/// An fsync whose backing fsync is done, waiting out a slow-disk delay before it commits and
/// answers.
struct DelayedSync {
    deadline: Instant,
    job: SyncJob,
}

/// The pool's entrance. Dropping it (with the filesystem) ends the threads.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<SyncJob>,
}

impl Syncer {
    pub fn start(shared: Arc<Shared>) -> io::Result<Self> {
        let (delayed_sender, delayed_receiver) = mpsc::channel::<DelayedSync>();
        let delay_shared = shared.clone();
        std::thread::Builder::new()
            .name("faultfs-slow-fsync".into())
            .spawn(move || {
                // Every delay of a window is the same, so arrival order is deadline order.
                for DelayedSync { deadline, job } in delayed_receiver {
                    // A power cut ends the wait at once: the device never finished it.
                    while Instant::now() < deadline && !delay_shared.is_powered_off() {
                        std::thread::sleep(POWER_POLL.min(deadline - Instant::now()));
                    }
                    finish(&delay_shared, job);
                }
            })?;
        let (jobs, receiver) = mpsc::channel::<SyncJob>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..SYNC_THREADS {
            let receiver = receiver.clone();
            let shared = shared.clone();
            let delayed = delayed_sender.clone();
            std::thread::Builder::new()
                .name(format!("faultfs-fsync-{index}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let receiver = receiver
                                .lock()
                                .unwrap_or_else(|poisoned| poisoned.into_inner());
                            receiver.recv()
                        };
                        let Ok(job) = job else { return };
                        run(&shared, &delayed, job);
                    }
                })?;
        }
        Ok(Syncer { shared, jobs })
    }

    /// Queues an fsync; its reply comes from the pool.
    pub fn submit(&self, ino: Ino, target: SyncTarget, reply: ReplyEmpty) {
        let losses = self.shared.lock().losses;
        let job = SyncJob {
            ino,
            target,
            losses,
            reply,
        };
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            job.reply.error(Errno::EIO);
        }
    }
}

fn run(shared: &Shared, delayed: &mpsc::Sender<DelayedSync>, job: SyncJob) {
    if shared.fsync_backing {
        let synced = match &job.target {
            SyncTarget::File { file, datasync } if *datasync => file.sync_data(),
            SyncTarget::File { file, .. } => file.sync_all(),
            SyncTarget::Directory { path } => File::open(path).and_then(|dir| dir.sync_all()),
        };
        if let Err(error) = synced {
            return job.reply.error(Errno::from(error));
        }
    }
    match shared.faults.current().fsync_delay {
        Some(delay) => {
            let delayed_sync = DelayedSync {
                deadline: Instant::now() + delay,
                job,
            };
            if let Err(mpsc::SendError(DelayedSync { job, .. })) = delayed.send(delayed_sync) {
                finish(shared, job);
            }
        }
        None => finish(shared, job),
    }
}

/// Commits and answers; with the power cut, answers EIO and commits nothing.
fn finish(shared: &Shared, job: SyncJob) {
    if shared.is_powered_off() {
        return job.reply.error(Errno::EIO);
    }
    commit(shared, &job);
    job.reply.ok();
}

/// Marks what the fsync covered durable, unless a loss came first.
fn commit(shared: &Shared, job: &SyncJob) {
    let mut state = shared.lock();
    if state.losses != job.losses {
        return;
    }
    let ino = job.ino;
    match &job.target {
        SyncTarget::File { .. } => {
            if let Some(node) = state.nodes.get_mut(ino)
                && let Some(data) = node.data.take()
            {
                data.discard();
            }
            if state.last_write.is_some_and(|write| write.ino == ino) {
                state.last_write = None;
            }
            if shared.entry_durability == EntryDurability::AnyFsync {
                state.nodes.commit_all();
            }
            state.nodes.forget_if_unused(ino);
        }
        SyncTarget::Directory { .. } => match shared.entry_durability {
            EntryDurability::DirectoryFsync => state.nodes.commit_directory(ino),
            EntryDurability::AnyFsync => state.nodes.commit_all(),
        },
    }
}
