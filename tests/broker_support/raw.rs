//! Raw Kafka protocol over a plain `TcpStream`, for tests that send what no client library
//! would: encode a request frame, send bytes, read one response, see whether the broker closed
//! the connection, read a process's memory use.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// A connection with a read timeout (a test never hangs on a silent broker).
pub fn connect(bootstrap: &str) -> TcpStream {
    let stream = TcpStream::connect(bootstrap).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// A request frame, size prefix included.
pub fn frame<Req: Encodable + HeaderVersion>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("raw-test")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, Req::header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame.to_vec()
}

/// Reads one response frame and decodes it.
pub fn read_response<Resp: Decodable + HeaderVersion>(
    stream: &mut TcpStream,
    version: i16,
    correlation_id: i32,
) -> Resp {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).unwrap();
    let mut response = bytes::Bytes::from(response);
    let header = ResponseHeader::decode(&mut response, Resp::header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    let decoded = Resp::decode(&mut response, version).unwrap();
    assert!(!response.has_remaining(), "trailing bytes in the response");
    decoded
}

/// Sends one request and decodes its response.
pub fn call<Req, Resp>(stream: &mut TcpStream, api_key: ApiKey, version: i16, request: &Req) -> Resp
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    stream
        .write_all(&frame(api_key, version, 42, request))
        .unwrap();
    read_response(stream, version, 42)
}

/// True if the peer closed the connection (a read returns 0 or a reset) within the read
/// timeout; false if it sent bytes or the read timed out.
pub fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A field of `/proc/<pid>/status` given in kB (`VmRSS`, `VmHWM`, `VmSize`...), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A process's resident set (`VmRSS`) and its peak (`VmHWM`), in bytes.
pub fn resident_bytes(pid: u32) -> (u64, u64) {
    (status_bytes(pid, "VmRSS"), status_bytes(pid, "VmHWM"))
}

/// Raises this process's soft open-file limit to `wanted` (at most the hard limit); returns
/// the limit in force.
pub fn raise_open_file_limit(wanted: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let target = wanted.min(hard);
    if soft < target {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard).unwrap();
        return target;
    }
    soft
}
