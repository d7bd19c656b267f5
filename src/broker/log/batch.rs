//! The v2 record batch header: reading it, validating a batch (magic, length, CRC32C) and
//! patching `baseOffset` and `partitionLeaderEpoch`, which the CRC does not cover.
//!
//! Layout (big-endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
//! magic i8 @16, crc u32 @17 (CRC32C of bytes 21..end), attributes i16 @21,
//! lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43,
//! producerEpoch i16 @51, baseSequence i32 @53, recordCount i32 @57, records @61.
//! The producer fields (id, epoch, base sequence) are read for idempotent producers' state.

/// Bytes of the header before `batchLength` counts: baseOffset and batchLength itself.
pub const LOG_OVERHEAD: usize = 12;
/// The smallest valid v2 batch (a header with no records).
pub const BATCH_HEADER_SIZE: usize = 61;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const MAX_TIMESTAMP_AT: usize = 35;
const LEADER_EPOCH_AT: usize = 12;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;
/// `attributes` bit of a transactional batch.
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
/// `attributes` bit of a control batch (transaction markers).
pub const CONTROL_FLAG: i16 = 0x20;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("truncated batch: {available} bytes where the header needs {needed}")]
    Truncated { available: usize, needed: usize },
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    Magic(i8),
    #[error("invalid batch length {0}")]
    Length(i32),
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("invalid lastOffsetDelta {0}")]
    OffsetDelta(i32),
    #[error("record count {count} does not match lastOffsetDelta {last_offset_delta}")]
    RecordCount { count: i32, last_offset_delta: i32 },
}

/// The fields of a batch header the log needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Total bytes of the batch, header included.
    pub size: usize,
    pub partition_leader_epoch: i32,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub attributes: i16,
    /// -1 unless an idempotent (or transactional) producer wrote the batch.
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The sequence number of the batch's first record (-1 without a producer id).
    pub base_sequence: i32,
}

impl BatchHeader {
    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset after the batch: the log end offset once it is appended.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Number of records (offsets) the batch takes.
    pub fn record_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }

    /// Whether an idempotent or transactional producer wrote it (Kafka's `hasProducerId`).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(word)
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(word)
}

/// The size of the batch starting at `bytes[0]` from its first 12 bytes, or `None` if fewer than
/// 12 bytes are there. The cheap "is a whole batch here" check.
pub fn batch_size(bytes: &[u8]) -> Option<Result<usize, BatchError>> {
    if bytes.len() < LOG_OVERHEAD {
        return None;
    }
    let length = read_i32(bytes, 8);
    let size = usize::try_from(length)
        .ok()
        .map(|length| length + LOG_OVERHEAD)
        .filter(|size| *size >= BATCH_HEADER_SIZE);
    Some(size.ok_or(BatchError::Length(length)))
}

/// Reads the header of the batch at the start of `bytes` (at least [`BATCH_HEADER_SIZE`] bytes),
/// checking magic and length but not the CRC.
pub fn read_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    if bytes.len() < BATCH_HEADER_SIZE {
        return Err(BatchError::Truncated {
            available: bytes.len(),
            needed: BATCH_HEADER_SIZE,
        });
    }
    let magic = bytes[MAGIC_AT] as i8;
    if magic != 2 {
        return Err(BatchError::Magic(magic));
    }
    let size = match batch_size(bytes) {
        Some(result) => result?,
        None => unreachable!("checked above: at least BATCH_HEADER_SIZE bytes"),
    };
    let last_offset_delta = read_i32(bytes, LAST_OFFSET_DELTA_AT);
    if last_offset_delta < 0 {
        return Err(BatchError::OffsetDelta(last_offset_delta));
    }
    Ok(BatchHeader {
        base_offset: read_i64(bytes, 0),
        size,
        partition_leader_epoch: read_i32(bytes, LEADER_EPOCH_AT),
        last_offset_delta,
        max_timestamp: read_i64(bytes, MAX_TIMESTAMP_AT),
        attributes: i16::from_be_bytes([bytes[ATTRIBUTES_AT], bytes[ATTRIBUTES_AT + 1]]),
        producer_id: read_i64(bytes, PRODUCER_ID_AT),
        producer_epoch: i16::from_be_bytes([
            bytes[PRODUCER_EPOCH_AT],
            bytes[PRODUCER_EPOCH_AT + 1],
        ]),
        base_sequence: read_i32(bytes, BASE_SEQUENCE_AT),
    })
}

/// Validates the whole batch at the start of `bytes`: header, full length present, CRC32C.
pub fn validate(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = read_header(bytes)?;
    if bytes.len() < header.size {
        return Err(BatchError::Truncated {
            available: bytes.len(),
            needed: header.size,
        });
    }
    // Producers number records 0..n-1 (compaction, which leaves gaps, is not supported).
    let count = read_i32(bytes, RECORD_COUNT_AT);
    if i64::from(count) != header.record_count() {
        return Err(BatchError::RecordCount {
            count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let stored = read_i32(bytes, CRC_AT) as u32;
    let computed = crc32c::crc32c(&bytes[ATTRIBUTES_AT..header.size]);
    if stored != computed {
        return Err(BatchError::Crc { stored, computed });
    }
    Ok(header)
}

/// Splits a produce request's records into batches, validating each.
pub fn validate_all(mut bytes: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let header = validate(bytes)?;
        bytes = &bytes[header.size..];
        headers.push(header);
    }
    Ok(headers)
}

/// Sets `baseOffset` and `partitionLeaderEpoch` of the batch at the start of `batch` (outside the
/// CRC, so the CRC stays valid).
pub fn patch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// A v2 batch holding `values` as a producer sends it (record i: key `k<i>`, one header
/// `h: v`, timestamp 1000 + i), compressed with `compression`: for tests and the fuzz bench's
/// seeds.
pub fn encode_example(
    values: &[&[u8]],
    compression: kafka_protocol::records::Compression,
) -> anyhow::Result<bytes::Bytes> {
    encode_records(values, compression, -1, -1, 0, 1_000)
}

/// [`encode_example`] as idempotent producer `producer_id` at `epoch` sends it: its records
/// numbered from `first_sequence`, timestamped `timestamp_ms` (uncompressed).
pub fn encode_idempotent_example(
    values: &[&[u8]],
    producer_id: i64,
    epoch: i16,
    first_sequence: i32,
    timestamp_ms: i64,
) -> anyhow::Result<bytes::Bytes> {
    let none = kafka_protocol::records::Compression::None;
    encode_records(
        values,
        none,
        producer_id,
        epoch,
        first_sequence,
        timestamp_ms,
    )
}

fn encode_records(
    values: &[&[u8]],
    compression: kafka_protocol::records::Compression,
    producer_id: i64,
    producer_epoch: i16,
    first_sequence: i32,
    timestamp_ms: i64,
) -> anyhow::Result<bytes::Bytes> {
    use bytes::Bytes;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_sequence.wrapping_add(i as i32),
            timestamp: timestamp_ms + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(value)),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )?;
    Ok(buf.freeze())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// An encoded v2 batch of `count` records with values "v0", "v1", ...
    pub(crate) fn encoded_batch(count: usize) -> BytesMut {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: 1000 + i as i64,
                key: None,
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode");
        buf
    }

    /// An encoded v2 batch of `count` records from idempotent producer `producer_id` at
    /// `epoch`, numbered from `first_sequence`, timestamped now.
    pub(crate) fn idempotent_batch(
        producer_id: i64,
        epoch: i16,
        first_sequence: i32,
        count: usize,
    ) -> BytesMut {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        let values: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("p{producer_id}-{first_sequence}-{i}").into_bytes())
            .collect();
        let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let encoded =
            encode_idempotent_example(&values, producer_id, epoch, first_sequence, now_ms)
                .expect("encode");
        BytesMut::from(&encoded[..])
    }

    #[test]
    fn reads_the_producer_fields() {
        let plain = validate(&encoded_batch(2)).expect("valid");
        assert!(!plain.has_producer_id());
        let header = validate(&idempotent_batch(77, 3, 40, 5)).expect("valid");
        assert!(header.has_producer_id());
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (77, 3, 40)
        );
        assert!(!header.is_transactional() && !header.is_control());
    }

    #[test]
    fn validates_and_patches_without_breaking_the_crc() {
        let mut batch = encoded_batch(5);
        let header = validate(&batch).expect("valid");
        assert_eq!(header.record_count(), 5);
        assert_eq!(header.size, batch.len());
        patch(&mut batch, 1234, 7);
        let header = validate(&batch).expect("still valid");
        assert_eq!(header.base_offset, 1234);
        assert_eq!(header.last_offset(), 1238);
        assert_eq!(header.partition_leader_epoch, 7);
    }

    #[test]
    fn a_flipped_bit_is_a_crc_error() {
        let mut batch = encoded_batch(3);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(matches!(validate(&batch), Err(BatchError::Crc { .. })));
    }

    #[test]
    fn truncated_and_garbage_batches_are_refused() {
        let batch = encoded_batch(3);
        assert!(matches!(
            validate(&batch[..batch.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(validate(&[0u8; 70]).is_err());
        // A header claiming more offsets than records (CRC recomputed) is refused.
        let mut lying = encoded_batch(3);
        lying[23..27].copy_from_slice(&1000i32.to_be_bytes());
        let crc = crc32c::crc32c(&lying[21..]);
        lying[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&lying),
            Err(BatchError::RecordCount { .. })
        ));
        let two: Vec<u8> = [&batch[..], &batch[..]].concat();
        assert_eq!(validate_all(&two).expect("two batches").len(), 2);
    }
}
