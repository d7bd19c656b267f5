//! The records inside a v2 batch: walking them to check that a produced batch holds exactly what
//! its header declares (Kafka's `LogValidator` does the same before an append) and to find a
//! record by timestamp (ListOffsets).
//!
//! Everything read here comes from a client, so nothing is sized by a count or length read off
//! the wire: records are walked in a stream, keys and values are skipped rather than copied,
//! every length is checked against the bytes its record has left, and compressed records are
//! decompressed on the fly within a [`DecompressionBudget`] (a gzip of a gigabyte of zeros
//! costs at most the budget, then fails).
//!
//! Record layout (varints are zigzag): length varint, attributes i8, timestampDelta varlong,
//! offsetDelta varint, keyLength varint, key, valueLength varint, value, headerCount varint, then
//! per header keyLength varint, key, valueLength varint, value.

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;

use super::batch::BATCH_HEADER_SIZE;

const ATTRIBUTES_AT: usize = 21;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const RECORD_COUNT_AT: usize = 57;
const COMPRESSION_MASK: u8 = 0x07;
const LOG_APPEND_TIME_FLAG: u8 = 0x08;

/// How much larger than `message.max.bytes` the records of one produce request may grow when
/// decompressed, in total.
pub const DECOMPRESSION_RATIO_MAX: u64 = 64;

/// Why the records of a batch were refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    #[error("the {codec} records cannot be decompressed: {reason}")]
    Decompression { codec: &'static str, reason: String },
    #[error("the records decompress to more than {max_bytes} bytes")]
    DecompressedTooLarge { max_bytes: u64 },
    #[error("record {index}: {reason}")]
    Invalid { index: i32, reason: String },
    #[error("the batch declares {declared} records but holds only {found}")]
    TooFewRecords { declared: i32, found: i32 },
    #[error("the batch declares {declared} records but holds bytes after them")]
    TrailingBytes { declared: i32 },
}

/// Decompressed bytes still allowed; shared by every batch of one request.
#[derive(Debug, Clone, Copy)]
pub struct DecompressionBudget {
    max_bytes: u64,
    left_bytes: u64,
}

impl DecompressionBudget {
    /// A budget of `max_bytes` decompressed bytes.
    pub fn new(max_bytes: u64) -> Self {
        DecompressionBudget {
            max_bytes,
            left_bytes: max_bytes,
        }
    }

    /// The budget of one produce request: [`DECOMPRESSION_RATIO_MAX`] times `message.max.bytes`.
    pub fn for_request(message_max_bytes: usize) -> Self {
        Self::new((message_max_bytes as u64).saturating_mul(DECOMPRESSION_RATIO_MAX))
    }

    fn too_large(&self) -> RecordError {
        RecordError::DecompressedTooLarge {
            max_bytes: self.max_bytes,
        }
    }
}

/// What a walk shows of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView {
    pub offset_delta: i32,
    /// The record's timestamp: the batch's max timestamp for LogAppendTime batches, else base
    /// timestamp plus the record's delta.
    pub timestamp: i64,
}

/// Checks every record of the (header-validated) batch `batch`: exactly as many as the header
/// declares, offset deltas 0, 1, 2, ..., every length within its record, nothing after the last.
pub fn validate(batch: &[u8], budget: &mut DecompressionBudget) -> Result<(), RecordError> {
    let mut expected = 0i32;
    let mut misnumbered = None;
    walk(batch, budget, |record| {
        if record.offset_delta != expected {
            misnumbered = Some((expected, record.offset_delta));
            return ControlFlow::Break(());
        }
        expected += 1;
        ControlFlow::Continue(())
    })?;
    match misnumbered {
        Some((index, delta)) => Err(RecordError::Invalid {
            index,
            reason: format!("offset delta {delta}, expected {index}"),
        }),
        None => Ok(()),
    }
}

/// Visits the records of the (header-validated) batch `batch` in order until `visit` breaks.
/// A walk that is not broken off also checks the record count and that nothing follows.
pub fn walk(
    batch: &[u8],
    budget: &mut DecompressionBudget,
    mut visit: impl FnMut(RecordView) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    let Some(records) = batch.get(BATCH_HEADER_SIZE..) else {
        return Err(RecordError::TooFewRecords {
            declared: 0,
            found: 0,
        });
    };
    let attributes = batch[ATTRIBUTES_AT + 1];
    let timestamps = Timestamps {
        base: read_i64(batch, BASE_TIMESTAMP_AT),
        max: read_i64(batch, MAX_TIMESTAMP_AT),
        log_append_time: attributes & LOG_APPEND_TIME_FLAG != 0,
    };
    let declared = i32::from_be_bytes([
        batch[RECORD_COUNT_AT],
        batch[RECORD_COUNT_AT + 1],
        batch[RECORD_COUNT_AT + 2],
        batch[RECORD_COUNT_AT + 3],
    ]);
    let codec = attributes & COMPRESSION_MASK;
    match codec {
        0 => walk_stream(records, None, declared, timestamps, &mut visit),
        1 => {
            let decoder = flate2::read::MultiGzDecoder::new(records);
            walk_decompressed("gzip", decoder, budget, declared, timestamps, &mut visit)
        }
        2 => {
            let decoder = snappy::Reader::new(records, budget.left_bytes);
            walk_decompressed("snappy", decoder, budget, declared, timestamps, &mut visit)
        }
        3 => {
            let decoder =
                lz4::Decoder::new(records).map_err(|error| decompression("lz4", error))?;
            walk_decompressed("lz4", decoder, budget, declared, timestamps, &mut visit)
        }
        4 => {
            let mut decoder =
                zstd::stream::read::Decoder::new(records).map_err(|e| decompression("zstd", e))?;
            decoder
                .window_log_max(zstd_window_log_max(budget.left_bytes))
                .map_err(|error| decompression("zstd", error))?;
            walk_decompressed("zstd", decoder, budget, declared, timestamps, &mut visit)
        }
        other => Err(RecordError::UnknownCompression(other)),
    }
}

/// The largest zstd window a frame may ask for (the decoder allocates it up front): no more than
/// the budget, but at least 16 MiB (zstd's streaming window up to level 12) and at most zstd's
/// own default limit, 128 MiB.
fn zstd_window_log_max(budget_bytes: u64) -> u32 {
    let log = u64::BITS - budget_bytes.max(1).leading_zeros() - 1;
    log.clamp(24, 27)
}

fn decompression(codec: &'static str, error: std::io::Error) -> RecordError {
    RecordError::Decompression {
        codec,
        reason: error.to_string(),
    }
}

#[derive(Debug, Clone, Copy)]
struct Timestamps {
    base: i64,
    max: i64,
    log_append_time: bool,
}

/// Walks decompressed records read from `decoder`, charging them to `budget`.
fn walk_decompressed(
    codec: &'static str,
    decoder: impl Read,
    budget: &mut DecompressionBudget,
    declared: i32,
    timestamps: Timestamps,
    visit: &mut impl FnMut(RecordView) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    // One byte more than the budget, to tell "exactly the budget" from "more".
    let mut limited = BufReader::new(decoder.take(budget.left_bytes.saturating_add(1)));
    let outcome = walk_stream(&mut limited, Some(codec), declared, timestamps, visit);
    if let Err(RecordError::DecompressedTooLarge { .. }) = outcome {
        return Err(budget.too_large());
    }
    let used = budget.left_bytes.saturating_add(1) - limited.get_ref().limit();
    let buffered = limited.buffer().len() as u64;
    let consumed = used - buffered;
    if used > budget.left_bytes {
        return Err(budget.too_large());
    }
    budget.left_bytes -= consumed.min(budget.left_bytes);
    outcome
}

/// Walks `declared` records from `input`.
fn walk_stream(
    mut input: impl BufRead,
    codec: Option<&'static str>,
    declared: i32,
    timestamps: Timestamps,
    visit: &mut impl FnMut(RecordView) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    for index in 0..declared.max(0) {
        let record = match read_record(&mut input, index, timestamps) {
            Ok(Some(record)) => record,
            Ok(None) => {
                return Err(RecordError::TooFewRecords {
                    declared,
                    found: index,
                });
            }
            Err(Failure::Record(reason)) => return Err(RecordError::Invalid { index, reason }),
            Err(Failure::Io(error)) => return Err(io_failure(codec, index, error)),
        };
        if visit(record).is_break() {
            return Ok(());
        }
    }
    match input.fill_buf() {
        Ok([]) => Ok(()),
        Ok(_) => Err(RecordError::TrailingBytes { declared }),
        Err(error) => Err(io_failure(codec, declared, error)),
    }
}

/// A decompressor noticed, before decompressing, that its output would exceed the budget.
#[derive(Debug, thiserror::Error)]
#[error("the records decompress to more than {max_bytes} bytes")]
struct BudgetExceeded {
    max_bytes: u64,
}

fn io_failure(codec: Option<&'static str>, index: i32, error: std::io::Error) -> RecordError {
    if let Some(exceeded) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<BudgetExceeded>())
    {
        return RecordError::DecompressedTooLarge {
            max_bytes: exceeded.max_bytes,
        };
    }
    match codec {
        Some(codec) => decompression(codec, error),
        None => RecordError::Invalid {
            index,
            reason: error.to_string(),
        },
    }
}

enum Failure {
    /// The record's bytes are not a valid record.
    Record(String),
    /// The input failed (a decompression error).
    Io(std::io::Error),
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure::Io(error)
    }
}

/// Reads one record; `Ok(None)` at a clean end of input (no byte of a record read).
fn read_record(
    input: &mut impl BufRead,
    index: i32,
    timestamps: Timestamps,
) -> Result<Option<RecordView>, Failure> {
    if input.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let mut unbounded = u64::MAX;
    let length = read_varint(input, &mut unbounded)?;
    let Ok(mut left) = u64::try_from(length) else {
        return Err(Failure::Record(format!("invalid record size {length}")));
    };
    let body = &mut left;
    let _attributes = read_byte(input, body)?;
    let timestamp_delta = read_varlong(input, body)?;
    let offset_delta = read_varint(input, body)?;
    skip_field(input, body, "key", true)?;
    skip_field(input, body, "value", true)?;
    let headers = read_varint(input, body)?;
    if headers < 0 {
        return Err(Failure::Record(format!(
            "invalid number of record headers {headers}"
        )));
    }
    for _ in 0..headers {
        skip_field(input, body, "header key", false)?;
        skip_field(input, body, "header value", true)?;
    }
    if *body != 0 {
        return Err(Failure::Record(format!(
            "invalid record size: {} bytes of the record left unread (record {index})",
            *body
        )));
    }
    let timestamp = if timestamps.log_append_time {
        timestamps.max
    } else {
        timestamps.base.wrapping_add(timestamp_delta)
    };
    Ok(Some(RecordView {
        offset_delta,
        timestamp,
    }))
}

/// A varint-length field (-1 is null where `nullable`), skipped without copying.
fn skip_field(
    input: &mut impl BufRead,
    left: &mut u64,
    what: &str,
    nullable: bool,
) -> Result<(), Failure> {
    let length = read_varint(input, left)?;
    if length == -1 && nullable {
        return Ok(());
    }
    let Ok(mut length) = u64::try_from(length) else {
        return Err(Failure::Record(format!("invalid {what} size {length}")));
    };
    if length > *left {
        return Err(Failure::Record(format!(
            "{what} of {length} bytes exceeds the {} bytes left in the record",
            *left
        )));
    }
    *left -= length;
    while length > 0 {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Err(Failure::Record(format!("{what} ends early")));
        }
        let step = available
            .len()
            .min(usize::try_from(length).unwrap_or(usize::MAX));
        input.consume(step);
        length -= step as u64;
    }
    Ok(())
}

/// One byte of the record, counted against `left`.
fn read_byte(input: &mut impl BufRead, left: &mut u64) -> Result<u8, Failure> {
    if *left == 0 {
        return Err(Failure::Record("the record ends early".into()));
    }
    let mut byte = [0u8; 1];
    match input.read_exact(&mut byte) {
        Ok(()) => {
            *left -= 1;
            Ok(byte[0])
        }
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(Failure::Record("the records end inside a record".into()))
        }
        Err(error) => Err(Failure::Io(error)),
    }
}

/// A zigzag varint of at most 5 bytes (Kafka's `ByteUtils.readVarint`).
fn read_varint(input: &mut impl BufRead, left: &mut u64) -> Result<i32, Failure> {
    let raw = read_unsigned_varint(input, left, 5)?;
    let raw = u32::try_from(raw).map_err(|_| Failure::Record("varint is too long".into()))?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// A zigzag varlong of at most 10 bytes (Kafka's `ByteUtils.readVarlong`).
fn read_varlong(input: &mut impl BufRead, left: &mut u64) -> Result<i64, Failure> {
    let raw = read_unsigned_varint(input, left, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned_varint(
    input: &mut impl BufRead,
    left: &mut u64,
    max_bytes: u32,
) -> Result<u64, Failure> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        let byte = read_byte(input, left)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Failure::Record("varint is too long".into()))
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(word)
}

/// Snappy as Kafka producers write it: Xerial's framing (a magic header, then blocks of a 4-byte
/// length and a raw snappy block), or one raw block without the header (librdkafka, older
/// clients), like Java's `SnappyInputStream`.
mod snappy {
    use std::io::Read;

    const XERIAL_HEADER: &[u8] = b"\x82SNAPPY\x00";
    const XERIAL_HEADER_SIZE: usize = 16;

    /// Decompresses one block at a time; a block that would decompress to more than
    /// `max_bytes` in total is an error before anything is allocated for it.
    pub struct Reader<'a> {
        compressed: &'a [u8],
        framed: bool,
        block: Vec<u8>,
        at: usize,
        max_bytes: u64,
        produced_bytes: u64,
    }

    impl<'a> Reader<'a> {
        pub fn new(compressed: &'a [u8], max_bytes: u64) -> Self {
            let framed = compressed.starts_with(XERIAL_HEADER);
            let compressed = if framed {
                compressed.get(XERIAL_HEADER_SIZE..).unwrap_or_default()
            } else {
                compressed
            };
            Reader {
                compressed,
                framed,
                block: Vec::new(),
                at: 0,
                max_bytes,
                produced_bytes: 0,
            }
        }

        /// The next raw block, or `None` at the end.
        fn next_block(&mut self) -> std::io::Result<Option<&'a [u8]>> {
            if self.compressed.is_empty() {
                return Ok(None);
            }
            if !self.framed {
                return Ok(Some(std::mem::take(&mut self.compressed)));
            }
            let Some((length, rest)) = self.compressed.split_first_chunk::<4>() else {
                return Err(invalid("a block length is cut short"));
            };
            let length = u32::from_be_bytes(*length) as usize;
            let Some((block, rest)) = rest.split_at_checked(length) else {
                return Err(invalid("a block is cut short"));
            };
            self.compressed = rest;
            Ok(Some(block))
        }

        fn load_block(&mut self) -> std::io::Result<bool> {
            let Some(block) = self.next_block()? else {
                return Ok(false);
            };
            let length = snap::raw::decompress_len(block).map_err(std::io::Error::other)?;
            self.produced_bytes = self.produced_bytes.saturating_add(length as u64);
            if self.produced_bytes > self.max_bytes {
                return Err(std::io::Error::other(super::BudgetExceeded {
                    max_bytes: self.max_bytes,
                }));
            }
            self.block.clear();
            self.block.resize(length, 0);
            snap::raw::Decoder::new()
                .decompress(block, &mut self.block)
                .map_err(std::io::Error::other)?;
            self.at = 0;
            Ok(true)
        }
    }

    fn invalid(reason: &str) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, reason.to_string())
    }

    impl Read for Reader<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            while self.at == self.block.len() {
                if !self.load_block()? {
                    return Ok(0);
                }
            }
            let step = out.len().min(self.block.len() - self.at);
            out[..step].copy_from_slice(&self.block[self.at..self.at + step]);
            self.at += step;
            Ok(step)
        }
    }
}

#[cfg(test)]
mod tests;
