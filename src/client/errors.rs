//! librdkafka's own error names (`rd_kafka_err2name`: `NOT_ENOUGH_REPLICAS` for the broker's,
//! `_MSG_TIMED_OUT` for its local ones), which the worker protocol carries back: the same names
//! confluent-kafka's `KafkaError.name()` gives, so that histories of the two workers read alike.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::OnceLock;

use rdkafka::error::KafkaError;

/// librdkafka's name of error code `code`, from its own table of error descriptions.
pub fn code_name(code: i32) -> String {
    static NAMES: OnceLock<HashMap<i32, String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut descriptions: *const rdkafka::bindings::rd_kafka_err_desc = std::ptr::null();
        let mut count: usize = 0;
        // SAFETY: librdkafka fills in a pointer to its static table and the table's length.
        unsafe { rdkafka::bindings::rd_kafka_get_err_descs(&mut descriptions, &mut count) };
        if descriptions.is_null() {
            return HashMap::new();
        }
        // SAFETY: the table is static, `count` entries long, and never freed.
        let table = unsafe { std::slice::from_raw_parts(descriptions, count) };
        table
            .iter()
            .filter(|description| !description.name.is_null())
            .map(|description| {
                // SAFETY: a non-null name is a static NUL-terminated string.
                let name = unsafe { CStr::from_ptr(description.name) };
                (description.code as i32, name.to_string_lossy().into_owned())
            })
            .collect()
    });
    names
        .get(&code)
        .cloned()
        .unwrap_or_else(|| format!("ERROR_{code}"))
}

/// The name of the librdkafka error behind `error`, or its text when it has no code.
pub fn error_name(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => code_name(code as i32),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn names_are_librdkafkas() {
        assert_eq!(
            code_name(RDKafkaErrorCode::NotEnoughReplicas as i32),
            "NOT_ENOUGH_REPLICAS"
        );
        assert_eq!(
            code_name(RDKafkaErrorCode::MessageTimedOut as i32),
            "_MSG_TIMED_OUT"
        );
        assert_eq!(
            error_name(&KafkaError::MessageProduction(
                RDKafkaErrorCode::NotEnoughReplicasAfterAppend
            )),
            "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
        );
        assert_eq!(code_name(123_456), "ERROR_123456");
    }
}
