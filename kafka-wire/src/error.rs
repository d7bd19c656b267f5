//! Every way a call on a connection can fail, each naming the peer (`host:port`).
//!
//! A caller that retries drops the connection on any of them but [`WireError::Unsupported`]
//! (an answer, not a failure of the connection): after a timeout or a bad frame the stream
//! cannot be trusted to be at a frame boundary.

use kafka_protocol::messages::ApiKey;

use crate::frame::FrameError;
use crate::message::CodecError;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot connect to {peer}: {source}")]
    Connect {
        peer: String,
        source: std::io::Error,
    },
    #[error("{peer}: timed out after {timeout_ms} ms waiting for {what}")]
    Timeout {
        peer: String,
        what: String,
        timeout_ms: u128,
    },
    #[error("i/o with {peer}: {source}")]
    Io {
        peer: String,
        source: std::io::Error,
    },
    #[error("{peer} closed the connection before answering")]
    Closed { peer: String },
    #[error("bad frame from {peer}: {source}")]
    Frame { peer: String, source: FrameError },
    #[error("{peer}: {source}")]
    Codec { peer: String, source: CodecError },
    /// The broker does not list the API, or no version both sides speak.
    #[error("UNSUPPORTED_VERSION: the broker at {peer} does not support {api:?}")]
    Unsupported { peer: String, api: ApiKey },
}

impl WireError {
    /// The `host:port` the error is about.
    pub fn peer(&self) -> &str {
        match self {
            WireError::Connect { peer, .. }
            | WireError::Timeout { peer, .. }
            | WireError::Io { peer, .. }
            | WireError::Closed { peer }
            | WireError::Frame { peer, .. }
            | WireError::Codec { peer, .. }
            | WireError::Unsupported { peer, .. } => peer,
        }
    }
}
