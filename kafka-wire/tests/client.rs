//! The clients against a scripted peer (a socket that answers with bytes a test chose), for
//! what no well-behaved broker does on demand: refuse our ApiVersions version, announce a
//! frame past the cap, answer another request, hang up mid-frame. Against the real broker
//! the clients are exercised by the workspace's integration tests.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, MetadataRequest, MetadataResponse, RequestHeader,
};
use kafka_protocol::protocol::decode_request_header_from_buffer;
use kafka_wire::message::encode_response;
use kafka_wire::{Client, Options, WireError, blocking};

/// Reads one request frame; returns its header.
fn read_request(stream: &mut TcpStream) -> Option<RequestHeader> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).ok()?;
    decode_request_header_from_buffer(&mut Bytes::from(body)).ok()
}

/// What the scripted peer does with a request.
enum Reply {
    Send(Vec<u8>),
    SendAndHangUp(Vec<u8>),
    HangUp,
}

/// A peer that answers each request as `answer(header)` says.
fn scripted(
    answer: impl Fn(&RequestHeader) -> Reply + Send + 'static,
) -> (String, JoinHandle<Vec<RequestHeader>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut seen = Vec::new();
        while let Some(header) = read_request(&mut stream) {
            let reply = answer(&header);
            seen.push(header);
            match reply {
                Reply::Send(bytes) => stream.write_all(&bytes).unwrap(),
                Reply::SendAndHangUp(bytes) => {
                    stream.write_all(&bytes).unwrap();
                    break;
                }
                Reply::HangUp => break,
            }
        }
        seen
    });
    (address, peer)
}

fn listing(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        ranges
            .iter()
            .map(|(api, min, max)| {
                ApiVersion::default()
                    .with_api_key(*api as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

fn options() -> Options {
    Options::new("wire-test", Duration::from_secs(5))
}

#[tokio::test]
async fn a_refused_api_versions_is_asked_again_at_the_version_the_broker_names() {
    let (address, peer) = scripted(|header| {
        let api = ApiKey::try_from(header.request_api_key).unwrap();
        let id = header.correlation_id;
        let bytes = match (api, header.request_api_version) {
            // KIP-511: the refusal is a v0 body with the broker's ranges.
            (ApiKey::ApiVersions, 3) => {
                let refusal = listing(&[(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 0, 9)])
                    .with_error_code(35);
                encode_response(0, id, &refusal)
            }
            (ApiKey::ApiVersions, version) => encode_response(
                version,
                id,
                &listing(&[(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 0, 9)]),
            ),
            (ApiKey::Metadata, version) => encode_response(
                version,
                id,
                &MetadataResponse::default().with_throttle_time_ms(7),
            ),
            _ => return Reply::HangUp,
        };
        Reply::Send(bytes.unwrap().to_vec())
    });
    let mut client = Client::connect_negotiated(&address, &options())
        .await
        .unwrap();
    assert!(client.supports(ApiKey::Metadata));
    assert!(!client.supports(ApiKey::Fetch));
    let (version, metadata) = client
        .request(12, &MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    assert_eq!(version, 9);
    assert_eq!(metadata.throttle_time_ms, 7);
    assert!(matches!(
        client.version::<kafka_protocol::messages::FetchRequest>(12),
        Err(WireError::Unsupported {
            api: ApiKey::Fetch,
            ..
        })
    ));
    drop(client);
    let asked: Vec<(i16, i16, i32)> = peer
        .join()
        .unwrap()
        .iter()
        .map(|h| (h.request_api_key, h.request_api_version, h.correlation_id))
        .collect();
    assert_eq!(asked, vec![(18, 3, 0), (18, 2, 1), (3, 9, 2)]);
}

#[tokio::test]
async fn an_answer_past_the_cap_is_refused_from_its_size_prefix() {
    let (address, _peer) = scripted(|_| Reply::Send(i32::MAX.to_be_bytes().to_vec()));
    let mut client = Client::connect(&address, &options().with_max_response_bytes(1 << 20))
        .await
        .unwrap();
    let error = client
        .call(12, &MetadataRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(error, WireError::Frame { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("exceeds the limit of 1048576 bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn an_answer_to_another_request_or_a_cut_frame_is_an_error() {
    let (address, _peer) = scripted(|header| {
        let wrong = header.correlation_id + 100;
        let mut frame = encode_response(12, wrong, &MetadataResponse::default()).unwrap();
        if header.correlation_id == 1 {
            // Announce the frame, send half of it, hang up.
            frame.truncate(frame.len() / 2);
            return Reply::SendAndHangUp(frame.to_vec());
        }
        Reply::Send(frame.to_vec())
    });
    let mut client = Client::connect(&address, &options()).await.unwrap();
    let error = client
        .call(12, &MetadataRequest::default())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("correlation id 100, expected 0"),
        "{error}"
    );
    let error = client
        .call(12, &MetadataRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(error, WireError::Closed { .. }), "{error}");
}

#[tokio::test]
async fn a_silent_peer_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut client = Client::connect(&address, &Options::new("t", Duration::from_millis(200)))
        .await
        .unwrap();
    let error = client
        .call(12, &MetadataRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(error, WireError::Timeout { .. }), "{error}");
    assert!(error.to_string().contains("Metadata v12"), "{error}");
    drop(listener);
}

#[test]
fn the_blocking_client_pipelines_and_checks_trailing_bytes_when_asked() {
    let (address, peer) = scripted(|header| {
        let response = MetadataResponse::default().with_throttle_time_ms(header.correlation_id);
        let mut frame = encode_response(12, header.correlation_id, &response).unwrap();
        if header.correlation_id == 2 {
            let mut longer = BytesMut::from(&frame[4..]);
            longer.extend_from_slice(b"!");
            let mut framed = BytesMut::new();
            framed.extend_from_slice(&(longer.len() as i32).to_be_bytes());
            framed.extend_from_slice(&longer);
            frame = framed;
        }
        Reply::Send(frame.to_vec())
    });
    let options = options().with_refuse_trailing_bytes(true);
    let mut client = blocking::Client::connect(&address, &options).unwrap();
    let first = client.send(12, &MetadataRequest::default()).unwrap();
    let second = client.send(12, &MetadataRequest::default()).unwrap();
    assert_eq!((first.correlation_id(), second.correlation_id()), (0, 1));
    assert_eq!(client.receive(first).unwrap().throttle_time_ms, 0);
    assert_eq!(client.receive(second).unwrap().throttle_time_ms, 1);
    let error = client.call(12, &MetadataRequest::default()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("1 bytes left after Metadata v12 response"),
        "{error}"
    );
    drop(client);
    assert_eq!(peer.join().unwrap().len(), 3);
}
