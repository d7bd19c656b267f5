//! The Kafka wire protocol over TCP, once for every user in the workspace: the broker's peer
//! client (replica fetcher), the harness's metadata sampler and topic creation, the admin
//! tools, the tests — and, for the frame-size check and the response encoding, the broker's own
//! listener.
//!
//! Messages are `kafka-protocol`'s generated types; this crate adds what every connection
//! needs around them and nothing else (no retries, no routing: callers decide those).
//!
//! # Layout
//! - [`frame`]: the 4-byte size prefix, the bounds a frame's size must stay within, and the
//!   cheap "is a whole frame here" check that comes before any parse.
//! - [`message`]: one request or response to and from bytes (no I/O): request and response
//!   headers at the version each API wants, correlation ids checked, trailing bytes noticed.
//! - [`versions`]: ApiVersions: what a broker serves, and the highest version both sides speak.
//! - [`client`]: an async (tokio) connection: `connect`, `negotiate`, `call::<Req>(version, ..)`,
//!   each step bounded by a timeout.
//! - [`blocking`]: the same over `std::net::TcpStream`, for tests, with `send`/`receive` split
//!   for pipelining.
//! - [`error`]: [`WireError`], every way a call can fail, naming the peer.
//! - [`names`]: Kafka's names of error codes and APIs (`NOT_COORDINATOR`, `ELECT_LEADERS`).
//!
//! ```no_run
//! # async fn example() -> Result<(), kafka_wire::WireError> {
//! use kafka_protocol::messages::MetadataRequest;
//! use kafka_wire::{Client, Options};
//!
//! let options = Options::new("kchaos", std::time::Duration::from_secs(10));
//! let mut client = Client::connect_negotiated("127.0.0.1:9092", &options).await?;
//! let (version, metadata) = client
//!     .request(12, &MetadataRequest::default().with_topics(None))
//!     .await?;
//! # let _ = (version, metadata);
//! # Ok(())
//! # }
//! ```

pub mod blocking;
pub mod client;
pub mod error;
pub mod frame;
pub mod message;
pub mod names;
pub mod versions;

use std::time::Duration;

pub use client::Client;
pub use error::WireError;
pub use frame::{FrameBounds, FrameError};
pub use message::CodecError;
pub use versions::ApiVersions;

/// What a client connection is configured with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The request header's `client_id` (Kafka logs and quotas name clients by it).
    pub client_id: String,
    /// The most one connect, or one request and its answer, may take.
    pub timeout: Duration,
    /// Responses announcing more bytes than this are refused before they are read.
    pub max_response_bytes: usize,
    /// Whether bytes left after a decoded response are an error (tests) or ignored (as Kafka's
    /// own clients do).
    pub refuse_trailing_bytes: bool,
}

impl Options {
    /// `client_id`, `timeout`, responses up to [`DEFAULT_MAX_RESPONSE_BYTES`], trailing bytes
    /// ignored.
    pub fn new(client_id: impl Into<String>, timeout: Duration) -> Self {
        Options {
            client_id: client_id.into(),
            timeout,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            refuse_trailing_bytes: false,
        }
    }

    pub fn with_max_response_bytes(mut self, max_response_bytes: usize) -> Self {
        self.max_response_bytes = max_response_bytes;
        self
    }

    pub fn with_refuse_trailing_bytes(mut self, refuse: bool) -> Self {
        self.refuse_trailing_bytes = refuse;
        self
    }

    /// The bounds a response frame's announced size must stay within.
    pub fn response_bounds(&self) -> FrameBounds {
        FrameBounds::response(self.max_response_bytes)
    }
}

/// The largest response a client accepts unless told otherwise (a fetch is bounded by its
/// `max_bytes`; this is a sanity bound against a corrupt size prefix).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;
