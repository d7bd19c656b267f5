//! The rdkafka client inside the calling process, behind the harness's session traits: the way
//! clients ran before they became worker processes, kept only so that `kchaos bench clients`
//! can measure what the process boundary costs (same client code, same drivers, no pipes). A
//! crash of librdkafka here would end the caller; runs always use worker processes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use harness::clients::protocol::{Hello, Operation, Outcome, Reply, Role};
use harness::clients::session::{Launcher, Session};
use tokio::sync::{oneshot, watch};

use super::RdkafkaClient;

/// Starts in-process sessions.
pub struct InProcessLauncher {
    next_process: AtomicU64,
}

impl InProcessLauncher {
    /// Fresh process numbers from `first_fresh_process` on.
    pub fn new(first_fresh_process: u64) -> Self {
        InProcessLauncher {
            next_process: AtomicU64::new(first_fresh_process),
        }
    }
}

impl Launcher for InProcessLauncher {
    fn start(
        &self,
        process: u64,
        role: Role,
        config: BTreeMap<String, String>,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, String>> {
        Box::pin(async move {
            let client = tokio::task::spawn_blocking(move || RdkafkaClient::open(role, &config))
                .await
                .map_err(|error| error.to_string())??;
            let (never_dies, _) = watch::channel(None);
            Ok(Arc::new(InProcessSession {
                process,
                client: Arc::new(client),
                never_dies,
            }) as Arc<dyn Session>)
        })
    }

    fn next_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    fn start_failed(&self, process: u64, error: &str) {
        tracing::warn!("in-process client {process} did not start: {error}");
    }

    fn hello(&self) -> Option<Hello> {
        let (_, version) = rdkafka::util::get_rdkafka_version();
        Some(Hello::new("librdkafka", &version, "in process"))
    }
}

/// One in-process client.
struct InProcessSession {
    process: u64,
    client: Arc<RdkafkaClient>,
    never_dies: watch::Sender<Option<String>>,
}

impl Session for InProcessSession {
    fn process(&self) -> u64 {
        self.process
    }

    fn submit(
        &self,
        operation: Operation,
        _patience: Duration,
    ) -> BoxFuture<'_, oneshot::Receiver<Reply>> {
        let (reply, receiver) = oneshot::channel();
        let respond: super::Responder = Box::new(move |answer| {
            let _ = reply.send(answer);
        });
        if matches!(operation, Operation::Send { .. }) {
            // A send only queues in librdkafka: no need to leave the async thread.
            self.client.handle(operation, respond);
        } else {
            let client = Arc::clone(&self.client);
            tokio::task::spawn_blocking(move || client.handle(operation, respond));
        }
        Box::pin(std::future::ready(receiver))
    }

    fn death(&self) -> watch::Receiver<Option<String>> {
        self.never_dies.subscribe()
    }

    fn close(&self, timeout: Duration) -> BoxFuture<'_, ()> {
        let client = Arc::clone(&self.client);
        Box::pin(async move {
            let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            let (reply, receiver) = oneshot::channel();
            let respond: super::Responder = Box::new(move |answer| {
                let _ = reply.send(answer);
            });
            tokio::task::spawn_blocking(move || {
                client.handle(Operation::Close { timeout_ms }, respond)
            });
            if receiver.await.map(|reply| reply.outcome) != Ok(Outcome::Ok) {
                tracing::warn!("an in-process client did not close cleanly");
            }
        })
    }
}
