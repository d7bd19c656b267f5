//! The admin tools' connection to a broker is the harness's raw Kafka-protocol connection;
//! this module maps its errors into [`AdminError`].

pub use harness::kafka_connection::{Connection, ConnectionError};

use super::AdminError;

impl From<ConnectionError> for AdminError {
    fn from(error: ConnectionError) -> Self {
        match error {
            ConnectionError::Connect { address, source } => AdminError::Connect { address, source },
            ConnectionError::Timeout {
                address,
                what,
                timeout_ms,
            } => AdminError::Timeout {
                address,
                what,
                timeout_ms,
            },
            ConnectionError::Io { address, source } => AdminError::Io { address, source },
            ConnectionError::Protocol { address, message } => {
                AdminError::Protocol { address, message }
            }
            ConnectionError::Unsupported { address, api } => {
                AdminError::Unsupported { address, api }
            }
        }
    }
}
