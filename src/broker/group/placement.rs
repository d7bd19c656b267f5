//! Which `__consumer_offsets` partition — and so which broker — coordinates a group: Kafka's
//! `Utils.abs(groupId.hashCode) % offsets.topic.num.partitions`, with Java's `String.hashCode`
//! (over UTF-16 code units, wrapping) and `Utils.abs` (which maps `Integer.MIN_VALUE` to 0), so
//! that a group lands on the same partition number as it would on Apache Kafka.

/// Java's `String.hashCode`.
pub fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Kafka's `Utils.abs`: the absolute value, with `i32::MIN` mapped to 0.
fn kafka_abs(value: i32) -> i32 {
    if value == i32::MIN { 0 } else { value.abs() }
}

/// The `__consumer_offsets` partition of `group_id` among `partitions` (> 0).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    kafka_abs(java_string_hash(group_id)) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_java() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99162322);
        // Wraps like Java's int arithmetic.
        assert_eq!(java_string_hash("kchaos-group-coordinator"), {
            let mut hash = 0i64;
            for unit in "kchaos-group-coordinator".encode_utf16() {
                hash = (hash * 31 + i64::from(unit)) as i32 as i64;
            }
            hash as i32
        });
        // UTF-16 code units, not bytes or chars: U+1F600 is two units.
        assert_eq!(java_string_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);
        // The famous string whose hashCode is Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn partition_is_kafkas() {
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99162322 % 50);
        // A negative hash: abs first, then the modulo (values computed independently).
        assert_eq!(java_string_hash("test-consumer-group"), -1793216381);
        assert_eq!(partition_for("test-consumer-group", 50), 31);
        assert_eq!(partition_for("my-consumer-group", 50), 13);
        for group in ["a", "b", "group-1", "x".repeat(300).as_str()] {
            assert!((0..7).contains(&partition_for(group, 7)));
        }
    }
}
