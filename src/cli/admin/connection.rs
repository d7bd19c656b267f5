//! The admin tools' connection to a broker: a `kafka_wire` client that asked ApiVersions when
//! it opened, named `kchaos`; its errors mapped into [`AdminError`].

use std::time::Duration;

pub use kafka_wire::Client as Connection;
use kafka_wire::{Options, WireError};

use super::AdminError;

/// How the admin tools name themselves to the broker.
const CLIENT_ID: &str = "kchaos";

/// Connects to `address` and reads its ApiVersions, each step within `timeout`.
pub async fn open(address: &str, timeout: Duration) -> Result<Connection, WireError> {
    Connection::connect_negotiated(address, &Options::new(CLIENT_ID, timeout)).await
}

impl From<WireError> for AdminError {
    fn from(error: WireError) -> Self {
        match error {
            WireError::Connect { peer, source } => AdminError::Connect {
                address: peer,
                source,
            },
            WireError::Timeout {
                peer,
                what,
                timeout_ms,
            } => AdminError::Timeout {
                address: peer,
                what,
                timeout_ms,
            },
            WireError::Io { peer, source } => AdminError::Io {
                address: peer,
                source,
            },
            WireError::Unsupported { peer, api } => AdminError::Unsupported { address: peer, api },
            WireError::Closed { peer } => AdminError::Protocol {
                address: peer,
                message: "the connection closed before the answer".to_string(),
            },
            WireError::Frame { peer, source } => AdminError::Protocol {
                address: peer,
                message: source.to_string(),
            },
            WireError::Codec { peer, source } => AdminError::Protocol {
                address: peer,
                message: source.to_string(),
            },
        }
    }
}
