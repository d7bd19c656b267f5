//! What many, slow or idle clients cost a broker: a thousand connections that each send half a
//! frame keep its resident memory within `queued.max.request.bytes` plus a small buffer per
//! connection while a real client (librdkafka) is served; a thousand that announce 100 MiB and
//! send one byte pin nothing; `connections.max.idle.ms` closes silent connections but not busy
//! ones or ones awaiting a long-poll; `max.connections` makes further clients wait.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use broker_support::raw::{
    call, closed_by_peer, connect, frame, raise_open_file_limit, read_response, resident_bytes,
    status_bytes,
};
use broker_support::{TestBroker, consume_all, produce_all, start_coordinator};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    FetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const CONNECTIONS: usize = 1000;
const MIB: u64 = 1 << 20;

/// Opens `CONNECTIONS` connections; each announces a frame of `frame_bytes` and then sends up to
/// `send_bytes` of it, as far as the kernel takes them without blocking. Returns the
/// connections and the bytes the kernel took.
fn half_sent_frames(bootstrap: &str, frame_bytes: i32, send_bytes: usize) -> (Vec<TcpStream>, u64) {
    let mut streams = Vec::with_capacity(CONNECTIONS);
    let mut sent = vec![0usize; CONNECTIONS];
    for _ in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(bootstrap).unwrap();
        stream.write_all(&frame_bytes.to_be_bytes()).unwrap();
        stream.set_nonblocking(true).unwrap();
        streams.push(stream);
    }
    let chunk = vec![0x5au8; 64 * 1024];
    let mut total = 0u64;
    // Rounds until no connection's socket takes another byte (the broker stopped reading it)
    // or every half is sent.
    for _ in 0..50 {
        let mut progress = 0;
        for (stream, sent) in streams.iter_mut().zip(sent.iter_mut()) {
            while *sent < send_bytes {
                let step = chunk.len().min(send_bytes - *sent);
                match stream.write(&chunk[..step]) {
                    Ok(written) => {
                        *sent += written;
                        progress += written;
                    }
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) => panic!("write: {error}"),
                }
            }
        }
        total += progress as u64;
        if progress == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (streams, total)
}

/// The broker's resident bytes once they stop growing (at most 20 s).
fn settled_rss(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut previous = resident_bytes(pid).0;
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = resident_bytes(pid).0;
        if now.abs_diff(previous) < MIB || Instant::now() > deadline {
            return now.max(previous);
        }
        previous = now;
    }
}

/// Kafka's defaults (queued.max.request.bytes: ours, 256 MiB). Each of 1000 connections
/// announces a 1 MiB frame and sends half of it: 500 MiB offered. A frame over 32 KiB is read
/// only under a reservation from the 256 MiB pool, so at most 256 of them are read (128 MiB);
/// the others hold at most 32 KiB each. The bound asserted, 384 MiB, is the pool plus
/// 1000 x 2 x 32 KiB plus 64 MiB for the broker itself (about 30 MiB measured); a broker that
/// buffered every half frame would hold over 500 MiB.
#[test]
fn a_thousand_half_sent_frames_keep_memory_bounded_while_a_real_client_is_served() {
    raise_open_file_limit(8192);
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let pid = broker.process.as_ref().unwrap().pid();
    let baseline = resident_bytes(pid).0;
    let (streams, offered) = half_sent_frames(&broker.bootstrap(), 1 << 20, 512 * 1024);
    let rss = settled_rss(pid);
    println!(
        "1000 half frames: {} MiB offered (the kernel took them), broker RSS {} MiB (baseline {} MiB)",
        offered / MIB,
        rss / MIB,
        baseline / MIB
    );
    assert!(rss < 384 * MIB, "broker RSS {} MiB", rss / MIB);
    // A real client is served meanwhile.
    let acked = produce_all(&broker.bootstrap(), "all", "served", 0, 20);
    assert_eq!(acked.len(), 20);
    assert_eq!(consume_all(&broker.bootstrap(), "served", 0, 20).len(), 20);
    let (rss, peak) = resident_bytes(pid);
    println!(
        "after serving librdkafka: RSS {} MiB, peak {} MiB",
        rss / MIB,
        peak / MIB
    );
    assert!(peak < 384 * MIB, "broker peak RSS {} MiB", peak / MIB);
    drop(streams);
}

/// 1000 connections announce `socket.request.max.bytes` (100 MiB) and send one byte: the
/// broker neither touches nor reserves memory for what was only announced (two of them hold
/// the pool's grant, the rest wait for it unread).
#[test]
fn announcing_100_mib_and_sending_one_byte_pins_nothing() {
    raise_open_file_limit(8192);
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let pid = broker.process.as_ref().unwrap().pid();
    let (rss_before, virtual_before) = (resident_bytes(pid).0, status_bytes(pid, "VmSize"));
    let (streams, _) = half_sent_frames(&broker.bootstrap(), 100 << 20, 1);
    let rss = settled_rss(pid);
    let grown_virtual = status_bytes(pid, "VmSize").saturating_sub(virtual_before);
    println!(
        "1000 x 100 MiB announced: RSS {} -> {} MiB, virtual size +{} MiB",
        rss_before / MIB,
        rss / MIB,
        grown_virtual / MIB
    );
    assert!(rss < rss_before + 64 * MIB, "RSS {} MiB", rss / MIB);
    // Sizing buffers by the announcement would reserve 100 GiB of address space.
    assert!(
        grown_virtual < 1024 * MIB,
        "virtual size grew {} MiB",
        grown_virtual / MIB
    );
    let mut client = connect(&broker.bootstrap());
    let versions: ApiVersionsResponse = call(&mut client, 3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    drop(streams);
}

fn api_versions(stream: &mut TcpStream) -> i16 {
    let response: ApiVersionsResponse = call(stream, 3, &ApiVersionsRequest::default());
    response.error_code
}

#[test]
fn connections_max_idle_ms_closes_silent_connections_only() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "connections.max.idle.ms=500");
    let mut silent = connect(&broker.bootstrap());
    assert_eq!(api_versions(&mut silent), 0);
    let mut half_frame = connect(&broker.bootstrap());
    half_frame.write_all(&100i32.to_be_bytes()).unwrap();
    half_frame.write_all(&[0; 10]).unwrap();
    let mut busy = connect(&broker.bootstrap());
    let mut polling = connect(&broker.bootstrap());
    let created: CreateTopicsResponse = call(
        &mut polling,
        5,
        &CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("quiet")))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ])
            .with_timeout_ms(10_000),
    );
    assert_eq!(created.topics[0].error_code, 0);
    // A long-poll fetch of an empty partition: 1.5 s without a byte either way.
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(1_500)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("quiet")))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    polling.write_all(&frame(11, 7, &fetch)).unwrap();
    // Busy for four idle periods.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(api_versions(&mut busy), 0, "a busy connection was closed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let fetched = read_response::<FetchRequest>(&mut polling, 11, 7);
    assert_eq!(fetched.error_code, 0, "the long-poll was cut off");
    assert!(
        closed_by_peer(&mut silent),
        "a silent connection stays open"
    );
    assert!(
        closed_by_peer(&mut half_frame),
        "a stalled frame stays open"
    );
    assert_eq!(api_versions(&mut busy), 0);
    assert!(
        broker.output().contains("connections.max.idle.ms"),
        "the reason is not logged"
    );
}

#[test]
fn max_connections_makes_further_clients_wait_their_turn() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "max.connections=3");
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(&broker.bootstrap())).collect();
    for stream in &mut held {
        assert_eq!(api_versions(stream), 0);
    }
    let mut waiting = connect(&broker.bootstrap());
    waiting
        .write_all(&frame(3, 9, &ApiVersionsRequest::default()))
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = std::io::Read::read(&mut waiting, &mut byte);
    assert!(
        matches!(&early, Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a fourth connection was served: {early:?}"
    );
    drop(held.remove(0));
    waiting
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let answer = read_response::<ApiVersionsRequest>(&mut waiting, 3, 9);
    assert_eq!(answer.error_code, 0);
}
