//! The records of `__consumer_offsets`: Kafka's own key and value schemas, so that the topic
//! reads the same as Apache Kafka's (and its tools could decode it).
//!
//! Keys start with an i16 version: 0 or 1 is an offset commit (`OffsetCommitKey`: group,
//! topic, partition), 2 a group's metadata (`GroupMetadataKey`: group). Values start with
//! their own version: `OffsetCommitValue` v3 (offset, leader epoch, metadata, commit
//! timestamp) and `GroupMetadataValue` v3 (protocol type, generation, protocol, leader, state
//! timestamp, members with their subscription and assignment) are written; v0-v3 of both are
//! read. A record without a value (a tombstone) deletes its key. Strings are i16-length
//! prefixed (-1: null), byte fields i32-length prefixed, arrays i32-count prefixed; the
//! flexible v4 encodings are refused (`UnsupportedVersion`). [`encode_batch`] makes the record
//! batch they are appended in.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("truncated record: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("negative length {0}")]
    NegativeLength(i32),
    #[error("null where a value is required")]
    UnexpectedNull,
    #[error("string is not UTF-8")]
    InvalidUtf8,
    #[error("{0} bytes left after the record")]
    TrailingBytes(usize),
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

impl RecordKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
        }
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1: unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One member as the group's metadata record stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata: its generation and members with their assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

/// Encodes a key.
pub fn encode_key(key: &RecordKey) -> Bytes {
    let mut buf = BytesMut::new();
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            buf.put_i16(OFFSET_KEY_VERSION);
            put_string(&mut buf, group);
            put_string(&mut buf, topic);
            buf.put_i32(*partition);
        }
        RecordKey::Group { group } => {
            buf.put_i16(GROUP_KEY_VERSION);
            put_string(&mut buf, group);
        }
    }
    buf.freeze()
}

/// Encodes an offset commit value (v3).
pub fn encode_offset_value(value: &OffsetValue) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(OFFSET_VALUE_VERSION);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_string(&mut buf, &value.metadata);
    buf.put_i64(value.commit_timestamp_ms);
    buf.freeze()
}

/// Encodes a group metadata value (v3).
pub fn encode_group_value(value: &GroupValue) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(GROUP_VALUE_VERSION);
    put_string(&mut buf, &value.protocol_type);
    buf.put_i32(value.generation);
    put_nullable_string(&mut buf, value.protocol.as_deref());
    put_nullable_string(&mut buf, value.leader.as_deref());
    buf.put_i64(value.current_state_timestamp_ms);
    buf.put_i32(i32::try_from(value.members.len()).unwrap_or(i32::MAX));
    for member in &value.members {
        put_string(&mut buf, &member.member_id);
        put_nullable_string(&mut buf, member.group_instance_id.as_deref());
        put_string(&mut buf, &member.client_id);
        put_string(&mut buf, &member.client_host);
        buf.put_i32(member.rebalance_timeout_ms);
        buf.put_i32(member.session_timeout_ms);
        put_bytes(&mut buf, &member.subscription);
        put_bytes(&mut buf, &member.assignment);
    }
    buf.freeze()
}

/// Decodes a key.
pub fn decode_key(mut bytes: &[u8]) -> Result<RecordKey, RecordError> {
    let reader = &mut bytes;
    let version = get_i16(reader)?;
    let key = match version {
        0 | 1 => RecordKey::Offset {
            group: get_string(reader)?,
            topic: get_string(reader)?,
            partition: get_i32(reader)?,
        },
        2 => RecordKey::Group {
            group: get_string(reader)?,
        },
        version => {
            return Err(RecordError::UnsupportedVersion {
                what: "key",
                version,
            });
        }
    };
    finish(reader)?;
    Ok(key)
}

/// Decodes an offset commit value (v0-v3).
pub fn decode_offset_value(mut bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let reader = &mut bytes;
    let version = get_i16(reader)?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            what: "offset commit value",
            version,
        });
    }
    let offset = get_i64(reader)?;
    let leader_epoch = if version >= 3 { get_i32(reader)? } else { -1 };
    let metadata = get_string(reader)?;
    let commit_timestamp_ms = get_i64(reader)?;
    if version == 1 {
        let _expire_timestamp_ms = get_i64(reader)?;
    }
    finish(reader)?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

/// Decodes a group metadata value (v0-v3).
pub fn decode_group_value(mut bytes: &[u8]) -> Result<GroupValue, RecordError> {
    let reader = &mut bytes;
    let version = get_i16(reader)?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            what: "group metadata value",
            version,
        });
    }
    let protocol_type = get_string(reader)?;
    let generation = get_i32(reader)?;
    let protocol = get_nullable_string(reader)?;
    let leader = get_nullable_string(reader)?;
    let current_state_timestamp_ms = if version >= 2 { get_i64(reader)? } else { -1 };
    let count = get_i32(reader)?;
    let count = usize::try_from(count).map_err(|_| RecordError::NegativeLength(count))?;
    // Each member takes at least 28 bytes: a corrupt count cannot make us allocate much.
    let mut members = Vec::with_capacity(count.min(reader.len() / 28));
    for _ in 0..count {
        let member_id = get_string(reader)?;
        let group_instance_id = if version >= 3 {
            get_nullable_string(reader)?
        } else {
            None
        };
        let client_id = get_string(reader)?;
        let client_host = get_string(reader)?;
        let rebalance_timeout_ms = if version >= 1 { get_i32(reader)? } else { -1 };
        let session_timeout_ms = get_i32(reader)?;
        let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            rebalance_timeout_ms
        };
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: get_bytes(reader)?,
            assignment: get_bytes(reader)?,
        });
    }
    finish(reader)?;
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

/// One uncompressed v2 record batch of `entries` (key, value — `None` is a tombstone) stamped
/// `timestamp_ms`, offsets from `base_offset` (the leader reassigns them on append).
pub fn encode_batch(
    entries: &[(Bytes, Option<Bytes>)],
    base_offset: i64,
    timestamp_ms: i64,
) -> anyhow::Result<BytesMut> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: base_offset + i as i64,
            sequence: -1,
            timestamp: timestamp_ms,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(batch)
}

fn put_string(buf: &mut BytesMut, text: &str) {
    // Group ids, topics and member ids are far below 32 KiB; a longer one is cut, not wrapped.
    let bytes = &text.as_bytes()[..text.len().min(i16::MAX as usize)];
    buf.put_i16(bytes.len() as i16);
    buf.put_slice(bytes);
}

fn put_nullable_string(buf: &mut BytesMut, text: Option<&str>) {
    match text {
        Some(text) => put_string(buf, text),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_i32(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
    buf.put_slice(bytes);
}

fn need(reader: &[u8], bytes: usize) -> Result<(), RecordError> {
    if reader.len() < bytes {
        return Err(RecordError::Truncated {
            needed: bytes - reader.len(),
        });
    }
    Ok(())
}

fn get_i16(reader: &mut &[u8]) -> Result<i16, RecordError> {
    need(reader, 2)?;
    Ok(reader.get_i16())
}

fn get_i32(reader: &mut &[u8]) -> Result<i32, RecordError> {
    need(reader, 4)?;
    Ok(reader.get_i32())
}

fn get_i64(reader: &mut &[u8]) -> Result<i64, RecordError> {
    need(reader, 8)?;
    Ok(reader.get_i64())
}

fn get_nullable_string(reader: &mut &[u8]) -> Result<Option<String>, RecordError> {
    let length = get_i16(reader)?;
    if length < 0 {
        return Ok(None);
    }
    let length = length as usize;
    need(reader, length)?;
    let text = std::str::from_utf8(&reader[..length])
        .map_err(|_| RecordError::InvalidUtf8)?
        .to_string();
    reader.advance(length);
    Ok(Some(text))
}

fn get_string(reader: &mut &[u8]) -> Result<String, RecordError> {
    get_nullable_string(reader)?.ok_or(RecordError::UnexpectedNull)
}

fn get_bytes(reader: &mut &[u8]) -> Result<Bytes, RecordError> {
    let length = get_i32(reader)?;
    if length < 0 {
        // Kafka writes null bytes as -1; an absent assignment is an empty one.
        return Ok(Bytes::new());
    }
    let length = length as usize;
    need(reader, length)?;
    let bytes = Bytes::copy_from_slice(&reader[..length]);
    reader.advance(length);
    Ok(bytes)
}

fn finish(reader: &[u8]) -> Result<(), RecordError> {
    if reader.is_empty() {
        Ok(())
    } else {
        Err(RecordError::TrailingBytes(reader.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_value() -> GroupValue {
        GroupValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("c-1".into()),
            current_state_timestamp_ms: 1_700_000_000_000,
            members: vec![MemberValue {
                member_id: "c-1".into(),
                group_instance_id: Some("i-1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"\x00\x01sub"),
                assignment: Bytes::from_static(b"\x00\x01assign"),
            }],
        }
    }

    #[test]
    fn keys_and_values_round_trip() {
        for key in [
            RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
            },
            RecordKey::Group { group: "g".into() },
        ] {
            assert_eq!(decode_key(&encode_key(&key)), Ok(key));
        }
        let offset = OffsetValue {
            offset: 42,
            leader_epoch: 5,
            metadata: "m".into(),
            commit_timestamp_ms: 99,
        };
        assert_eq!(
            decode_offset_value(&encode_offset_value(&offset)),
            Ok(offset)
        );
        let group = group_value();
        assert_eq!(decode_group_value(&encode_group_value(&group)), Ok(group));
    }

    #[test]
    fn the_layout_is_kafkas() {
        let key = encode_key(&RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
        });
        assert_eq!(&key[..], b"\x00\x01\x00\x01g\x00\x01t\x00\x00\x00\x01");
        let value = encode_offset_value(&OffsetValue {
            offset: 2,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 3,
        });
        assert_eq!(
            &value[..],
            b"\x00\x03\0\0\0\0\0\0\0\x02\xff\xff\xff\xff\x00\x00\0\0\0\0\0\0\0\x03"
        );
        // An offset value v1 (with an expire timestamp), as older Kafkas wrote it.
        let v1 = b"\x00\x01\0\0\0\0\0\0\0\x09\x00\x02md\0\0\0\0\0\0\0\x04\0\0\0\0\0\0\0\x05";
        assert_eq!(
            decode_offset_value(v1),
            Ok(OffsetValue {
                offset: 9,
                leader_epoch: -1,
                metadata: "md".into(),
                commit_timestamp_ms: 4
            })
        );
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        let group = encode_group_value(&group_value());
        for cut in 0..group.len() {
            assert!(decode_group_value(&group[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            decode_key(b"\x00\x07\x00\x01g"),
            Err(RecordError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            decode_offset_value(b"\x00\x04"),
            Err(RecordError::UnsupportedVersion { .. })
        ));
        assert_eq!(
            decode_key(b"\x00\x02\x00\x01g!"),
            Err(RecordError::TrailingBytes(1))
        );
        assert_eq!(
            decode_key(b"\x00\x02\x00\x02\xff\xfe"),
            Err(RecordError::InvalidUtf8)
        );
        // A huge member count on a short buffer fails without a huge allocation.
        let mut lying = BytesMut::new();
        lying.put_i16(3);
        put_string(&mut lying, "consumer");
        lying.put_i32(1);
        lying.put_i16(-1);
        lying.put_i16(-1);
        lying.put_i64(0);
        lying.put_i32(i32::MAX);
        assert!(matches!(
            decode_group_value(&lying),
            Err(RecordError::Truncated { .. })
        ));
    }
}
