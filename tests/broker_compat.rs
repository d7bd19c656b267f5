//! Other Kafka clients work against the broker unchanged: kcat (librdkafka) and the Python
//! clients kafka-python and aiokafka (installed by .ci/setup).
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::process::{Command, Stdio};

use broker_support::{TestBroker, start_coordinator};

#[test]
fn kcat_produces_and_consumes() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let mut producer = Command::new("kcat")
        .args(["-P", "-b", &broker.bootstrap(), "-t", "kcat", "-p", "0"])
        .args(["-X", "acks=all"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = producer.stdin.take().unwrap();
        for i in 0..500 {
            writeln!(stdin, "line-{i}").unwrap();
        }
    }
    assert!(producer.wait().unwrap().success());
    let output = Command::new("kcat")
        .args(["-C", "-b", &broker.bootstrap(), "-t", "kcat", "-p", "0"])
        .args(["-o", "beginning", "-e", "-f", "%o %s\n"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = (0..500).map(|i| format!("{i} line-{i}")).collect();
    assert_eq!(lines, expected);

    let listing = Command::new("kcat")
        .args(["-L", "-b", &broker.bootstrap(), "-t", "kcat"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("partition 0, leader 1, replicas: 1, isrs: 1"),
        "{listing}"
    );
}

#[test]
fn compressed_batches_are_stored_and_served_as_sent() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    // (zstd is left out: not every kcat build has libzstd.)
    for codec in ["gzip", "snappy", "lz4"] {
        let topic = format!("kcat-{codec}");
        let mut producer = Command::new("kcat")
            .args([
                "-P",
                "-b",
                &broker.bootstrap(),
                "-t",
                &topic,
                "-p",
                "0",
                "-z",
                codec,
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = producer.stdin.take().unwrap();
            for i in 0..300 {
                writeln!(stdin, "{codec}-{i}").unwrap();
            }
        }
        assert!(producer.wait().unwrap().success(), "{codec}");
        let output = Command::new("kcat")
            .args(["-C", "-b", &broker.bootstrap(), "-t", &topic, "-p", "0"])
            .args(["-o", "beginning", "-e", "-f", "%o %s\n"])
            .output()
            .unwrap();
        let expected: String = (0..300).map(|i| format!("{i} {codec}-{i}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected, "{codec}");
    }
}

#[test]
fn kafka_python_and_aiokafka_produce_and_consume() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/broker_support/python_clients.py"
    );
    let output = Command::new("python3")
        .args([script, &broker.bootstrap(), "python", "300"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nbroker:\n{}",
        broker.output()
    );
    assert!(stdout.contains("kafka-python consumed 300"), "{stdout}");
    assert!(
        stdout.contains("aiokafka produced and consumed 1"),
        "{stdout}"
    );
}
