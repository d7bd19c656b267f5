//! Kafka's names for what the protocol only numbers, as Kafka's tools and logs print them:
//! error codes (`INVALID_REPLICATION_FACTOR`) and APIs (`ELECT_LEADERS`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

/// Kafka's name of an error code, e.g. 38 -> `INVALID_REPLICATION_FACTOR`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(error) => screaming_snake(&format!("{error:?}")),
    }
}

/// Kafka's name of an API, e.g. `ELECT_LEADERS`.
pub fn api_name(key: ApiKey) -> String {
    screaming_snake(&format!("{key:?}"))
}

/// `InvalidReplicationFactor` -> `INVALID_REPLICATION_FACTOR`.
pub fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (index, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka() {
        assert_eq!(error_name(38), "INVALID_REPLICATION_FACTOR");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(35), "UNSUPPORTED_VERSION");
        assert_eq!(error_name(15), "COORDINATOR_NOT_AVAILABLE");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-999), "UNKNOWN_ERROR_CODE_-999");
        assert_eq!(api_name(ApiKey::ElectLeaders), "ELECT_LEADERS");
    }
}
