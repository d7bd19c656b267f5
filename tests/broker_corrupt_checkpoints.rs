//! A broker starts whatever its start-up files hold. Every file it reads when it opens its logs
//! — the high watermarks (`replication-offset-checkpoint`), each partition's
//! `leader-epoch-checkpoint` and its segment's offset index — is in turn given a huge count,
//! garbage and nothing at all; each time the broker starts and every acknowledged message is
//! read back.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::path::PathBuf;

use broker_support::{TestBroker, consume_all, produce_all, start_coordinator};

/// What a corrupt file is made to hold.
fn corruptions(file: &str) -> Vec<(&'static str, Vec<u8>)> {
    let huge_count = match file {
        "replication-offset-checkpoint" => b"0\n2147483647\nkept 0 50\n".to_vec(),
        "leader-epoch-checkpoint" => b"0\n18446744073709551615\n0 0\n".to_vec(),
        // An index of 2 MiB of entries that point nowhere.
        _ => vec![0xff; 2 << 20],
    };
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    vec![
        ("a huge count", huge_count),
        ("garbage", garbage),
        ("nothing", Vec::new()),
    ]
}

#[test]
fn every_start_up_file_corrupted_in_turn_still_lets_the_broker_start() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let acked = produce_all(&broker.bootstrap(), "all", "kept", 0, 50);
    assert_eq!(acked.len(), 50);
    assert!(broker.terminate());
    let log_dir = broker.log_dir();
    let files: Vec<(&str, PathBuf)> = vec![
        (
            "replication-offset-checkpoint",
            log_dir.join("replication-offset-checkpoint"),
        ),
        (
            "leader-epoch-checkpoint",
            log_dir.join("kept-0").join("leader-epoch-checkpoint"),
        ),
        (
            "offset index",
            log_dir.join("kept-0").join("00000000000000000000.index"),
        ),
    ];
    for (name, path) in &files {
        assert!(path.exists(), "{name} was not written: {}", path.display());
    }
    for (name, path) in &files {
        for (what, content) in corruptions(name) {
            std::fs::write(path, &content).unwrap();
            broker.restart();
            let read = consume_all(&broker.bootstrap(), "kept", 0, acked.len());
            assert_eq!(read, acked, "{name} holding {what}");
            assert!(broker.terminate(), "{name} holding {what}: no clean stop");
        }
    }
    // After all that, the broker still appends where it left off.
    broker.restart();
    let more = produce_all(&broker.bootstrap(), "all", "kept", 50, 5);
    assert_eq!(more.first().map(|(_, offset)| *offset), Some(50));
}
