//! What all client connections share and may not exceed together: how many are served at once
//! (`max.connections`, within the open-file limit), how long one may sit idle
//! (`connections.max.idle.ms`), the largest frame (`socket.request.max.bytes`) and the bytes of
//! large requests being received at once (`queued.max.request.bytes`).
//!
//! Memory held for requests is bounded in two parts. Every connection buffers small frames (up
//! to [`SMALL_FRAME_BYTES`]) on its own; a larger frame first reserves its whole announced size
//! from the shared pool, and while the pool cannot grant it the connection is not read (the
//! client waits, its bytes stay in the kernel). A frame's buffer grows with the bytes that
//! arrive, not with the size it announces. So a broker holds at most
//! `connections x 2 x SMALL_FRAME_BYTES + queued.max.request.bytes` of request bytes, and a
//! client that announces 100 MiB and sends one byte pins nothing but its reservation.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::config::BrokerConfig;

/// Frames up to this size (size prefix included) are buffered without a reservation: every
/// request a client sends in normal operation but large produce requests.
pub const SMALL_FRAME_BYTES: usize = 32 * 1024;

/// Open files kept for log segments, indexes, checkpoints and the coordinator and peer
/// connections when `max.connections` is derived from the open-file limit.
const FILES_RESERVED: u64 = 256;

/// The limits every connection shares.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    pub max_frame_bytes: usize,
    pub idle_timeout: Duration,
    /// The pool large frames reserve their size from; `None` is unbounded.
    pub request_memory: Option<Arc<Semaphore>>,
}

impl ConnectionLimits {
    /// The limits of `config`, with `max.connections` lowered to what `open_files` (the
    /// process's open-file limit) allows.
    pub fn new(config: &BrokerConfig, open_files: u64) -> Self {
        let by_files = open_files.saturating_sub(FILES_RESERVED).max(1);
        let max_connections = config
            .max_connections
            .min(usize::try_from(by_files).unwrap_or(usize::MAX))
            .min(Semaphore::MAX_PERMITS);
        let request_memory = config.queued_max_request_bytes.map(|bytes| {
            let permits = usize::try_from(bytes)
                .unwrap_or(usize::MAX)
                .min(Semaphore::MAX_PERMITS);
            Arc::new(Semaphore::new(permits))
        });
        ConnectionLimits {
            max_connections,
            max_frame_bytes: config.socket_request_max_bytes,
            idle_timeout: Duration::from_millis(config.connections_max_idle_ms),
            request_memory,
        }
    }
}

/// Raises this process's soft open-file limit to its hard limit (as the JVM does for Kafka) and
/// returns the limit now in force.
pub fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(error) => {
                tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {error}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(error) => {
            tracing::warn!("cannot read the open-file limit: {error}");
            1024
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> BrokerConfig {
        BrokerConfig::parse(&format!("broker.id=1\nzookeeper.connect=z:1\n{extra}"))
            .expect("valid")
            .config
    }

    #[test]
    fn max_connections_stays_within_the_open_file_limit() {
        let limits = ConnectionLimits::new(&config(""), 20_000);
        assert_eq!(limits.max_connections, 20_000 - 256);
        let limits = ConnectionLimits::new(&config("max.connections=100\n"), 20_000);
        assert_eq!(limits.max_connections, 100);
        let limits = ConnectionLimits::new(&config(""), 10);
        assert_eq!(limits.max_connections, 1);
    }

    #[test]
    fn the_request_pool_follows_queued_max_request_bytes() {
        let limits = ConnectionLimits::new(&config(""), 1024);
        assert_eq!(
            limits.request_memory.map(|pool| pool.available_permits()),
            Some(256 * 1024 * 1024)
        );
        let limits = ConnectionLimits::new(&config("queued.max.request.bytes=-1\n"), 1024);
        assert!(limits.request_memory.is_none());
        assert_eq!(limits.idle_timeout, Duration::from_secs(600));
        assert_eq!(limits.max_frame_bytes, 100 * 1024 * 1024);
    }
}
