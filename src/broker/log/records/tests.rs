//! Unit tests of [`super`] (records.rs).

use super::*;
use crate::broker::log::batch::{self, tests::encoded_batch};
use bytes::BytesMut;
use kafka_protocol::records::Compression;

fn batch_of(values: &[Vec<u8>], compression: Compression) -> BytesMut {
    let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    BytesMut::from(&batch::encode_example(&values, compression).expect("encode")[..])
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn budget() -> DecompressionBudget {
    DecompressionBudget::new(1 << 20)
}

#[test]
fn valid_batches_pass_with_every_codec() {
    let values: Vec<Vec<u8>> = (0..50).map(|i| format!("value-{i}").into_bytes()).collect();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = batch_of(&values, compression);
        batch::validate(&batch).expect("header");
        validate(&batch, &mut budget()).unwrap_or_else(|e| panic!("{compression:?}: {e}"));
        let mut timestamps = Vec::new();
        walk(&batch, &mut budget(), |record| {
            timestamps.push(record.timestamp);
            ControlFlow::Continue(())
        })
        .expect("walk");
        assert_eq!(timestamps.first(), Some(&1000));
        assert_eq!(timestamps.len(), 50, "{compression:?}");
    }
    validate(&encoded_batch(3), &mut budget()).expect("the log's own test batch");
}

#[test]
fn a_batch_claiming_more_records_than_it_holds_is_refused() {
    let mut batch = batch_of(&[b"a".to_vec(), b"b".to_vec()], Compression::None);
    // 2^31 - 1 records declared (lastOffsetDelta to match), CRC recomputed: CRC-valid.
    batch[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    fix_crc(&mut batch);
    batch::validate(&batch).expect("the header alone looks fine");
    let error = validate(&batch, &mut budget()).expect_err("refused");
    assert!(
        matches!(error, RecordError::TooFewRecords { found: 2, .. }),
        "{error}"
    );
}

#[test]
fn hostile_lengths_are_errors_not_allocations() {
    let batch = batch_of(&[b"abc".to_vec()], Compression::None);
    // Each byte of the record region set to each extreme value in turn.
    for at in BATCH_HEADER_SIZE..batch.len() {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff] {
            let mut corrupt = batch.clone();
            corrupt[at] = value;
            let _ = validate(&corrupt, &mut budget());
        }
    }
    let mut trailing = batch.clone();
    trailing.extend_from_slice(&[0]);
    assert!(matches!(
        validate(&trailing, &mut budget()),
        Err(RecordError::TrailingBytes { .. })
    ));
}

#[test]
fn a_compression_bomb_costs_at_most_the_budget() {
    // 64 MiB of zeros, gzipped, as the records of a one-record batch.
    let zeros = vec![0u8; 64 << 20];
    let mut compressed = Vec::new();
    {
        use std::io::Write;
        let mut encoder =
            flate2::write::GzEncoder::new(&mut compressed, flate2::Compression::best());
        encoder.write_all(&zeros).expect("gzip");
        encoder.finish().expect("gzip");
    }
    let mut batch = batch_of(&[b"x".to_vec()], Compression::None);
    batch.truncate(BATCH_HEADER_SIZE);
    batch.extend_from_slice(&compressed);
    batch[22] |= 1; // gzip
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    fix_crc(&mut batch);
    batch::validate(&batch).expect("header");
    // Zeros are not records: the walk stops at the first one, long before the budget.
    let error = validate(&batch, &mut budget()).expect_err("refused");
    assert!(matches!(error, RecordError::Invalid { .. }), "{error}");
    // Records that are valid but many: the budget ends the walk.
    let values: Vec<Vec<u8>> = (0..2000).map(|_| vec![0u8; 1024]).collect();
    let big = batch_of(&values, Compression::Gzip);
    let mut small_budget = DecompressionBudget::new(100_000);
    let error = validate(&big, &mut small_budget).expect_err("over budget");
    assert!(
        matches!(
            error,
            RecordError::DecompressedTooLarge { max_bytes: 100_000 }
        ),
        "{error}"
    );
    let mut shared = DecompressionBudget::new(5 << 20);
    validate(&big, &mut shared).expect("within budget");
    validate(&big, &mut shared).expect("still within budget");
    assert!(
        validate(&big, &mut shared).is_err(),
        "the budget is shared by the batches of one request"
    );
}

#[test]
fn snappy_blocks_are_checked_before_allocation() {
    // A raw snappy block that declares 2^32 - 1 decompressed bytes.
    let mut batch = batch_of(&[b"x".to_vec()], Compression::None);
    batch.truncate(BATCH_HEADER_SIZE);
    batch.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    batch[22] |= 2;
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    fix_crc(&mut batch);
    let error = validate(&batch, &mut budget()).expect_err("refused");
    assert!(
        matches!(error, RecordError::DecompressedTooLarge { .. }),
        "{error}"
    );
}

#[test]
fn misnumbered_records_are_refused() {
    let mut batch = batch_of(&[b"a".to_vec(), b"b".to_vec()], Compression::None);
    // The first record's offset delta (after its length, attributes, timestamp delta).
    let offset_delta_at = BATCH_HEADER_SIZE + 3;
    assert_eq!(batch[offset_delta_at], 0);
    batch[offset_delta_at] = 2; // zigzag 1
    fix_crc(&mut batch);
    assert!(matches!(
        validate(&batch, &mut budget()),
        Err(RecordError::Invalid { index: 0, .. })
    ));
}
