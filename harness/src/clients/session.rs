//! A client session: one producer or consumer of a Kafka client library, bound to a history
//! process number, answering the worker protocol's requests. In a run every session is a worker
//! process ([`super::worker::Worker`], started by [`super::launch::WorkerLauncher`]); a benchmark
//! may also run one inside this process, to measure what the process boundary costs. The
//! clients' drivers (producer, consumer, final read) see only these two traits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{oneshot, watch};

use super::protocol::{Hello, Operation, Reply, Role};
use super::worker::{ProcessFault, Worker};

/// One client instance.
pub trait Session: Send + Sync {
    /// Its history process number.
    fn process(&self) -> u64;

    /// Queues a request (in submission order) and returns where its reply will come; a request
    /// unanswered after `patience` counts as the session's death. A dead session answers every
    /// request `info`, `client crashed: <cause>`.
    fn submit(
        &self,
        operation: Operation,
        patience: Duration,
    ) -> BoxFuture<'_, oneshot::Receiver<Reply>>;

    /// The cause of its death, once it died.
    fn death(&self) -> watch::Receiver<Option<String>>;

    /// Finishes it: in-flight requests are answered within `timeout`, then it ends.
    fn close(&self, timeout: Duration) -> BoxFuture<'_, ()>;

    /// SIGKILL, SIGSTOP or SIGCONT of its process, for the nemesis; a session that is no
    /// process of its own refuses.
    fn fault(&self, fault: ProcessFault) -> Result<(), String> {
        Err(format!(
            "client {} is no process of its own: no {fault:?}",
            self.process()
        ))
    }
}

/// Starts sessions.
pub trait Launcher: Send + Sync {
    /// Starts a session as `process`, with its library's producer or consumer opened with
    /// `config` (Kafka's client config names).
    fn start(
        &self,
        process: u64,
        role: Role,
        config: BTreeMap<String, String>,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, String>>;

    /// A process number no session of this run had.
    fn next_process(&self) -> u64;

    /// Records that a session replacing a dead one could not start (a `client-crash` of the
    /// process that never came up).
    fn start_failed(&self, process: u64, error: &str);

    /// What the library said of itself, once a session started.
    fn hello(&self) -> Option<Hello>;
}

impl Session for Worker {
    fn process(&self) -> u64 {
        Worker::process(self)
    }

    fn submit(
        &self,
        operation: Operation,
        patience: Duration,
    ) -> BoxFuture<'_, oneshot::Receiver<Reply>> {
        Box::pin(Worker::submit(self, operation, patience))
    }

    fn death(&self) -> watch::Receiver<Option<String>> {
        Worker::death(self)
    }

    fn close(&self, timeout: Duration) -> BoxFuture<'_, ()> {
        Box::pin(Worker::close(self, timeout))
    }

    fn fault(&self, fault: ProcessFault) -> Result<(), String> {
        Worker::fault(self, fault)
    }
}

/// The first wait before a dead session's replacement starts.
pub const RESTART_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(100);
/// The longest wait between attempts to start a replacement.
pub const RESTART_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// After a session died: waits a short backoff, then starts a fresh session as a new process
/// (Jepsen's rule: a crashed client's process never comes back); a failed start is recorded and
/// tried again with a longer backoff. `None` when `stop` turned true first.
pub async fn replace_session(
    launcher: &dyn Launcher,
    role: Role,
    config: impl Fn(u64) -> BTreeMap<String, String>,
    stop: &mut watch::Receiver<bool>,
) -> Option<Arc<dyn Session>> {
    let mut backoff = RESTART_BACKOFF_MIN;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stopped| *stopped) => return None,
        }
        if *stop.borrow() {
            return None;
        }
        let process = launcher.next_process();
        match launcher.start(process, role, config(process)).await {
            Ok(session) => return Some(session),
            Err(error) => {
                launcher.start_failed(process, &error);
                backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
            }
        }
    }
}
