//! Getting a process or a thread into a node's network namespace.
//!
//! A [`NamespaceFd`] is an open handle on `/run/netns/<name>`. A spawned child enters it between
//! fork and exec with [`enter`] (one `setns` system call: async-signal-safe, no allocation), so
//! it is born in the namespace and everything else about how it was spawned (process group,
//! `PR_SET_PDEATHSIG`, the one spawner thread) stays as it was. [`run_in`] runs a closure on a
//! fresh thread that entered the namespace: its sockets belong to the node's network stack.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use nix::sched::CloneFlags;

use crate::error::NetFaultError;

/// An open network namespace. Cheap to clone; the namespace stays usable (even if deleted by
/// name) while a clone is alive.
#[derive(Debug, Clone)]
pub struct NamespaceFd(Arc<OwnedFd>);

impl NamespaceFd {
    /// Opens the namespace bind-mounted at `path` (e.g. `/run/netns/kc4f0q2m-broker-1`).
    pub fn open(path: &Path) -> Result<Self, NetFaultError> {
        let file = std::fs::File::open(path).map_err(|source| NetFaultError::Io {
            what: "opening network namespace",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(NamespaceFd(Arc::new(OwnedFd::from(file))))
    }
}

impl AsFd for NamespaceFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Moves the calling thread into the network namespace `namespace`. Safe to call between fork
/// and exec (in `pre_exec`): it is one `setns(2)` and allocates nothing.
pub fn enter(namespace: BorrowedFd<'_>) -> std::io::Result<()> {
    nix::sched::setns(namespace, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
}

/// Makes `command`'s child enter `namespace` before it execs. Other `pre_exec` hooks (process
/// group, PDEATHSIG) keep working; spawn it from wherever you spawn children.
pub fn enter_on_spawn(namespace: &NamespaceFd, command: &mut Command) {
    let namespace = namespace.clone();
    // SAFETY: the closure runs in the child between fork and exec; it makes one system call
    // through a file descriptor the Arc keeps open, and neither allocates nor takes a lock.
    unsafe {
        command.pre_exec(move || enter(namespace.as_fd()));
    }
}

/// Runs `work` on a new thread inside `namespace` and returns its result: sockets it opens
/// belong to that namespace. Blocks until the thread ends; a panic in `work` is re-raised here.
pub fn run_in<T: Send>(
    namespace_name: &str,
    namespace: &NamespaceFd,
    work: impl FnOnce() -> T + Send,
) -> Result<T, NetFaultError> {
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            enter(namespace.as_fd()).map_err(|source| NetFaultError::Enter {
                namespace: namespace_name.to_string(),
                source,
            })?;
            Ok(work())
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
