//! A blocking Kafka-protocol client for tests that check responses field by field: one
//! request at a time on one connection (or `send`/`receive` for pipelining), any API and
//! version `kafka-protocol` can encode. It is `kafka_wire`'s blocking client, strict: bytes
//! left after an answer fail the test.

use std::time::Duration;

use kafka_wire::Options;
pub use kafka_wire::blocking::Client as WireClient;

/// How long a test waits for an answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A strict client connected to `address`.
pub fn connect(address: &str) -> WireClient {
    let options = Options::new("wire-test", READ_TIMEOUT).with_refuse_trailing_bytes(true);
    WireClient::connect(address, &options).unwrap()
}
