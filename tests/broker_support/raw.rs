//! Raw Kafka protocol over a plain `TcpStream`, for tests that send what no client library
//! would: encode a request frame (`kafka_wire`'s codec), send bytes, read one response, see
//! whether the broker closed the connection, read a process's memory use.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use kafka_protocol::protocol::Request;
use kafka_wire::FrameBounds;
use kafka_wire::message::{decode_response, encode_request};

/// A connection with a read timeout (a test never hangs on a silent broker).
pub fn connect(bootstrap: &str) -> TcpStream {
    let stream = TcpStream::connect(bootstrap).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// A request frame, size prefix included.
pub fn frame<Req: Request>(version: i16, correlation_id: i32, request: &Req) -> Vec<u8> {
    encode_request(version, correlation_id, Some("raw-test"), request)
        .unwrap()
        .to_vec()
}

/// Reads the answer to a `Req` sent at `version` with `correlation_id` (the whole frame must
/// decode).
pub fn read_response<Req: Request>(
    stream: &mut TcpStream,
    version: i16,
    correlation_id: i32,
) -> Req::Response {
    let frame = kafka_wire::blocking::read_frame(stream, FrameBounds::response(1 << 30)).unwrap();
    decode_response::<Req>(version, correlation_id, frame, true).unwrap()
}

/// Sends one request and decodes its response.
pub fn call<Req: Request>(stream: &mut TcpStream, version: i16, request: &Req) -> Req::Response {
    stream.write_all(&frame(version, 42, request)).unwrap();
    read_response::<Req>(stream, version, 42)
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
