//! The wire, byte by byte: a raw handshake, pings, an unimplemented op code answered with
//! ZooKeeper's Unimplemented (-6), and garbage, truncated or oversized frames that close only
//! their own connection while the server keeps serving everyone else.
#![allow(clippy::unwrap_used)]

mod coordinator_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use coordinator_support::*;

fn raw(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut payload = vec![0u8; i32::from_be_bytes(length) as usize];
    stream.read_exact(&mut payload).unwrap();
    payload
}

/// Reads until the server closes the connection (or the read times out, which fails).
fn assert_closed_by_server(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(error) => panic!("the server did not close the connection: {error}"),
    }
}

fn connect_request(timeout_ms: i32) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend(0i32.to_be_bytes()); // protocol version
    payload.extend(0i64.to_be_bytes()); // last zxid seen
    payload.extend(timeout_ms.to_be_bytes());
    payload.extend(0i64.to_be_bytes()); // session id: new
    payload.extend(16i32.to_be_bytes());
    payload.extend([0u8; 16]); // password
    payload.push(0); // readOnly
    frame(&payload)
}

/// Opens a session by hand; returns the stream and the session id.
fn handshake(address: &str) -> (TcpStream, i64) {
    let mut stream = raw(address);
    stream.write_all(&connect_request(1000)).unwrap();
    let response = read_frame(&mut stream);
    let timeout_ms = i32::from_be_bytes(response[4..8].try_into().unwrap());
    let session_id = i64::from_be_bytes(response[8..16].try_into().unwrap());
    assert_eq!(timeout_ms, 1000);
    assert_ne!(session_id, 0);
    (stream, session_id)
}

fn request(xid: i32, op_code: i32, body: &[u8]) -> Vec<u8> {
    let mut payload = xid.to_be_bytes().to_vec();
    payload.extend(op_code.to_be_bytes());
    payload.extend_from_slice(body);
    frame(&payload)
}

/// (xid, zxid, err) of a reply.
fn reply_header(payload: &[u8]) -> (i32, i64, i32) {
    (
        i32::from_be_bytes(payload[0..4].try_into().unwrap()),
        i64::from_be_bytes(payload[4..12].try_into().unwrap()),
        i32::from_be_bytes(payload[12..16].try_into().unwrap()),
    )
}

async fn server_still_answers(address: &str) {
    let client = connect(address, SESSION_TIMEOUT).await;
    assert!(client.list_children("/").await.is_ok());
    close(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_handshake_ping_and_unimplemented_op() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let (mut stream, _) = handshake(&coordinator.address());
    stream.write_all(&request(-2, 11, &[])).unwrap();
    let (xid, _, err) = reply_header(&read_frame(&mut stream));
    assert_eq!((xid, err), (-2, 0), "ping reply");
    // Op 16 is reconfig, which a standalone server does not offer.
    stream.write_all(&request(7, 16, &[0, 0, 0, 0])).unwrap();
    let (xid, _, err) = reply_header(&read_frame(&mut stream));
    assert_eq!((xid, err), (7, -6), "reconfig is Unimplemented");
    // The connection stays usable: getChildren("/") answers.
    let mut body = 1i32.to_be_bytes().to_vec();
    body.push(b'/');
    body.push(0); // no watch
    stream.write_all(&request(8, 8, &body)).unwrap();
    let (xid, _, err) = reply_header(&read_frame(&mut stream));
    assert_eq!((xid, err), (8, 0));
    // closeSession: answered, then the server closes.
    stream.write_all(&request(9, -11, &[])).unwrap();
    let (xid, _, err) = reply_header(&read_frame(&mut stream));
    assert_eq!((xid, err), (9, 0));
    assert_closed_by_server(&mut stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_the_connection_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let address = coordinator.address();

    // An HTTP request: its first four bytes read as a 1.2 GB frame length.
    let mut stream = raw(&address);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_closed_by_server(&mut stream);

    // A frame just over jute.maxbuffer.
    let mut stream = raw(&address);
    stream.write_all(&(0x100000i32).to_be_bytes()).unwrap();
    stream.write_all(&[0u8; 1024]).unwrap();
    assert_closed_by_server(&mut stream);

    // A negative length.
    let mut stream = raw(&address);
    stream.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert_closed_by_server(&mut stream);

    // A whole frame too short to be a connect request.
    let mut stream = raw(&address);
    stream.write_all(&frame(&[1, 2, 3])).unwrap();
    assert_closed_by_server(&mut stream);

    // After a good handshake, a request whose body is cut short.
    let (mut stream, _) = handshake(&address);
    stream
        .write_all(&request(1, 4, &[0, 0, 0, 50, b'/']))
        .unwrap();
    assert_closed_by_server(&mut stream);

    // Random bytes in frames of random sizes.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20 {
        let mut stream = raw(&address);
        let mut junk = Vec::new();
        for _ in 0..64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push(seed as u8);
        }
        // Either the server closes the connection or, for junk that happens to decode, answers;
        // it must not hang or die. Closing our side bounds the exchange.
        let _ = stream.write_all(&junk);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    }

    server_still_answers(&address).await;
    let log = coordinator.log();
    assert!(
        log.contains("exceeds the maximum"),
        "oversized frame not logged:\n{log}"
    );
    assert!(
        log.contains("malformed"),
        "malformed frame not logged:\n{log}"
    );
}

#[test]
fn a_tiny_session_timeout_is_raised_to_the_minimum() {
    let granted = |extra: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = Coordinator::start(dir.path(), extra);
        let mut stream = raw(&coordinator.address());
        stream.write_all(&connect_request(10)).unwrap();
        let response = read_frame(&mut stream);
        i32::from_be_bytes(response[4..8].try_into().unwrap())
    };
    // Default minimum: 2 ticks.
    assert_eq!(granted(&[]), 2 * TICK_MS as i32);
    assert_eq!(granted(&["--min-session-timeout-ms", "1500"]), 1500);
}

#[test]
fn ruok_is_answered_imok() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let mut stream = raw(&coordinator.address());
    stream.write_all(b"ruok").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"imok");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = Coordinator::start(dir.path(), &[]);
    let (_stream, _) = handshake(&coordinator.address());
    assert!(
        coordinator
            .process
            .terminate(Duration::from_secs(20))
            .unwrap(),
        "the coordinator did not stop on SIGTERM:\n{}",
        coordinator.log()
    );
    assert!(coordinator.log().contains("coordinator stopped at zxid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_frame_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &["--max-frame-bytes", "4096"]);
    let (mut stream, _) = handshake(&coordinator.address());
    let mut body = 2i32.to_be_bytes().to_vec();
    body.extend(b"/x");
    body.extend(8192i32.to_be_bytes());
    body.extend(vec![7u8; 8192]);
    body.extend((-1i32).to_be_bytes());
    stream.write_all(&request(1, 5, &body)).unwrap();
    assert_closed_by_server(&mut stream);
    server_still_answers(&coordinator.address()).await;
}

/// Encodes a jute string.
fn jute_string(value: &str) -> Vec<u8> {
    let mut bytes = (value.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(value.as_bytes());
    bytes
}

/// Reads a notification frame: (event type, path).
fn read_notification(stream: &mut TcpStream) -> (i32, String) {
    let payload = read_frame(stream);
    let (xid, _, err) = reply_header(&payload);
    assert_eq!((xid, err), (-1, 0), "a notification");
    let event_type = i32::from_be_bytes(payload[16..20].try_into().unwrap());
    let path_length = i32::from_be_bytes(payload[24..28].try_into().unwrap()) as usize;
    let path = String::from_utf8(payload[28..28 + path_length].to_vec()).unwrap();
    (event_type, path)
}

// setWatches2 carries persistent watches too. (zookeeper-client 0.11.2 never sends them on a
// reconnect: its resend_watches computes `index.max(index)`, so only raw bytes exercise this.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_watches2_restores_persistent_watches() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let (mut stream, _) = handshake(&coordinator.address());
    let mut body = 0i64.to_be_bytes().to_vec(); // relative zxid
    for list in [&[][..], &[], &[], &["/p"], &["/r"]] {
        body.extend((list.len() as i32).to_be_bytes());
        for path in list {
            body.extend(jute_string(path));
        }
    }
    stream.write_all(&request(-8, 105, &body)).unwrap();
    let (xid, _, err) = reply_header(&read_frame(&mut stream));
    assert_eq!((xid, err), (-8, 0));

    let other = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    other.create("/p", b"", &persistent()).await.unwrap();
    assert_eq!(read_notification(&mut stream), (1, "/p".to_string()));
    other.set_data("/p", b"x", None).await.unwrap();
    assert_eq!(read_notification(&mut stream), (3, "/p".to_string()));
    other.create("/r", b"", &persistent()).await.unwrap();
    other.create("/r/deep", b"", &persistent()).await.unwrap();
    assert_eq!(read_notification(&mut stream), (1, "/r".to_string()));
    assert_eq!(read_notification(&mut stream), (1, "/r/deep".to_string()));
    close(other).await;
}
