//! fsyncs off the dispatch thread: a small pool does the backing fsync (which can take
//! milliseconds), then marks what it covered durable, then answers — late, through the delay
//! thread, while a slow-disk window is open. So one waiting fsync never holds up the reads
//! and writes of other processes.

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
    reply: ReplyEmpty,
}

/// The pool's entrance. Dropping it (with the filesystem) ends the threads.
pub(crate) struct Syncer {
    jobs: mpsc::Sender<SyncJob>,
}

impl Syncer {
    pub fn start(shared: Arc<Shared>) -> io::Result<Self> {
        let (delayed_sender, delayed_receiver) = mpsc::channel::<(Instant, ReplyEmpty)>();
        std::thread::Builder::new()
            .name("faultfs-slow-fsync".into())
            .spawn(move || {
                // Every delay of a window is the same, so arrival order is deadline order.
                for (deadline, reply) in delayed_receiver {
                    let now = Instant::now();
                    if deadline > now {
                        std::thread::sleep(deadline - now);
                    }
                    reply.ok();
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
        Ok(Syncer { jobs })
    }

    /// Queues an fsync; its reply comes from the pool.
    pub fn submit(&self, ino: Ino, target: SyncTarget, reply: ReplyEmpty) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(SyncJob { ino, target, reply }) {
            job.reply.error(Errno::EIO);
        }
    }
}

fn run(shared: &Shared, delayed: &mpsc::Sender<(Instant, ReplyEmpty)>, job: SyncJob) {
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
    commit(shared, job.ino, &job.target);
    match shared.faults.current().fsync_delay {
        Some(delay) => {
            if let Err(mpsc::SendError((_, reply))) =
                delayed.send((Instant::now() + delay, job.reply))
            {
                reply.ok();
            }
        }
        None => job.reply.ok(),
    }
}

/// Marks what the fsync covered durable.
fn commit(shared: &Shared, ino: Ino, target: &SyncTarget) {
    let mut state = shared.lock();
    match target {
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
