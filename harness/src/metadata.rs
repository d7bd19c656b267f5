//! Live cluster metadata — brokers, controller, and each partition's leader, replicas and ISR —
//! read with a raw Kafka `Metadata` request (the `kafka-protocol` crate), because rdkafka does
//! not expose the controller id. Any Kafka-protocol broker answers it.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, TopicName, metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response we accept (a metadata answer is small).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// The newest Metadata version we speak.
const METADATA_VERSION_MAX: i16 = 12;
/// The ApiVersions version we send (what librdkafka sends, so every broker has it).
const API_VERSIONS_VERSION: i16 = 3;

/// Why metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("cannot reach {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{address} did not answer within {timeout_ms} ms")]
    Timeout { address: String, timeout_ms: u128 },
    #[error("i/o with {address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    #[error("bad answer from {address}: {message}")]
    Protocol { address: String, message: String },
    #[error("no bootstrap server answered: {0}")]
    NoneAnswered(String),
}

/// One partition's state as the metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    /// `None` when the leader is -1 (no leader).
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A snapshot of the cluster's metadata for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterMetadata {
    /// Ids of the live brokers, sorted.
    pub brokers: Vec<i32>,
    /// `host:port` of each live broker, by id.
    pub broker_addresses: BTreeMap<i32, String>,
    pub controller_id: Option<i32>,
    /// The topic's partitions, sorted by partition (empty if the topic is unknown).
    pub partitions: Vec<PartitionState>,
}

impl ClusterMetadata {
    /// The state of `partition`, if the topic has it.
    pub fn partition(&self, partition: i32) -> Option<&PartitionState> {
        self.partitions.iter().find(|p| p.partition == partition)
    }

    /// Whether every one of `count` partitions has a leader.
    pub fn all_partitions_led(&self, count: u32) -> bool {
        self.partitions.len() == count as usize
            && self.partitions.iter().all(|p| p.leader.is_some())
    }

    /// Whether every one of `count` partitions has a leader and a full ISR.
    pub fn all_partitions_fully_replicated(&self, count: u32) -> bool {
        self.all_partitions_led(count)
            && self
                .partitions
                .iter()
                .all(|p| p.isr.len() >= p.replicas.len())
    }
}

/// Asks each of `addresses` in turn for the metadata of `topic` (or only brokers and controller
/// when `topic` is `None`); the first answer wins.
pub async fn fetch(
    addresses: &[String],
    topic: Option<&str>,
    timeout: Duration,
) -> Result<ClusterMetadata, MetadataError> {
    let mut errors = Vec::new();
    for address in addresses {
        match tokio::time::timeout(timeout, fetch_from(address, topic)).await {
            Ok(Ok(metadata)) => return Ok(metadata),
            Ok(Err(error)) => errors.push(error.to_string()),
            Err(_) => errors.push(
                MetadataError::Timeout {
                    address: address.clone(),
                    timeout_ms: timeout.as_millis(),
                }
                .to_string(),
            ),
        }
    }
    Err(MetadataError::NoneAnswered(errors.join("; ")))
}

/// One broker's answer.
pub async fn fetch_from(
    address: &str,
    topic: Option<&str>,
) -> Result<ClusterMetadata, MetadataError> {
    let mut connection = Connection::open(address).await?;
    let version = connection
        .negotiate(ApiKey::Metadata, METADATA_VERSION_MAX)
        .await?;
    let topics = topic.map(|name| {
        vec![
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.to_string())))),
        ]
    });
    let request = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = connection.call(ApiKey::Metadata, version, &request).await?;
    Ok(convert(&response))
}

fn convert(response: &MetadataResponse) -> ClusterMetadata {
    let broker_addresses: BTreeMap<i32, String> = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    let brokers: Vec<i32> = broker_addresses.keys().copied().collect();
    let controller = response.controller_id.0;
    let mut partitions: Vec<PartitionState> = response
        .topics
        .iter()
        .filter(|topic| topic.error_code == 0)
        .flat_map(|topic| topic.partitions.iter())
        .map(|partition| PartitionState {
            partition: partition.partition_index,
            leader: (partition.leader_id.0 >= 0).then_some(partition.leader_id.0),
            leader_epoch: partition.leader_epoch,
            replicas: partition.replica_nodes.iter().map(|id| id.0).collect(),
            isr: partition.isr_nodes.iter().map(|id| id.0).collect(),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    ClusterMetadata {
        brokers,
        broker_addresses,
        controller_id: (controller >= 0).then_some(controller),
        partitions,
    }
}

/// A request/response connection to one broker, for the few requests rdkafka does not expose.
pub(crate) struct Connection {
    address: String,
    stream: TcpStream,
    correlation_id: i32,
}

impl Connection {
    pub(crate) async fn open(address: &str) -> Result<Self, MetadataError> {
        let stream =
            TcpStream::connect(address)
                .await
                .map_err(|source| MetadataError::Connect {
                    address: address.to_string(),
                    source,
                })?;
        Ok(Connection {
            address: address.to_string(),
            stream,
            correlation_id: 0,
        })
    }

    /// The version of `key` to use: the broker's newest, at most `ours_max`.
    pub(crate) async fn negotiate(
        &mut self,
        key: ApiKey,
        ours_max: i16,
    ) -> Result<i16, MetadataError> {
        let versions: ApiVersionsResponse = self
            .call(
                ApiKey::ApiVersions,
                API_VERSIONS_VERSION,
                &ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("kchaos-harness"))
                    .with_client_software_version(StrBytes::from_static_str("0.1")),
            )
            .await?;
        let broker = versions
            .api_keys
            .iter()
            .find(|api| api.api_key == key as i16)
            .ok_or_else(|| self.protocol_error(format!("no {key:?} in ApiVersions")))?;
        let version = broker.max_version.min(ours_max);
        if version < broker.min_version || version < key.valid_versions().min {
            return Err(self.protocol_error(format!(
                "no common version of {key:?} (broker {}..{})",
                broker.min_version, broker.max_version
            )));
        }
        Ok(version)
    }

    pub(crate) fn protocol_error(&self, message: String) -> MetadataError {
        MetadataError::Protocol {
            address: self.address.clone(),
            message,
        }
    }

    fn io_error(&self, source: std::io::Error) -> MetadataError {
        MetadataError::Io {
            address: self.address.clone(),
            source,
        }
    }

    pub(crate) async fn call<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, MetadataError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("kchaos-harness")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, Req::header_version(version))
            .map_err(|error| self.protocol_error(format!("encoding the header: {error}")))?;
        request
            .encode(&mut body, version)
            .map_err(|error| self.protocol_error(format!("encoding {key:?}: {error}")))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .await
            .map_err(|source| self.io_error(source))?;

        let length = self
            .stream
            .read_i32()
            .await
            .map_err(|source| self.io_error(source))?;
        if length < 0 || length as usize > MAX_RESPONSE_BYTES {
            return Err(self.protocol_error(format!("response length {length}")));
        }
        let mut buffer = vec![0u8; length as usize];
        self.stream
            .read_exact(&mut buffer)
            .await
            .map_err(|source| self.io_error(source))?;
        let mut bytes = bytes::Bytes::from(buffer);
        // ApiVersions answers always carry a v0 response header.
        let header_version = if key == ApiKey::ApiVersions {
            0
        } else {
            Resp::header_version(version)
        };
        let response_header = ResponseHeader::decode(&mut bytes, header_version)
            .map_err(|error| self.protocol_error(format!("decoding the header: {error}")))?;
        if response_header.correlation_id != self.correlation_id {
            return Err(self.protocol_error(format!(
                "correlation id {} for request {}",
                response_header.correlation_id, self.correlation_id
            )));
        }
        let response = Resp::decode(&mut bytes, version).map_err(|error| {
            self.protocol_error(format!("decoding {key:?} v{version}: {error}"))
        })?;
        if bytes.has_remaining() {
            tracing::debug!(
                "{} bytes left after {key:?} from {}",
                bytes.remaining(),
                self.address
            );
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    use super::*;

    #[test]
    fn no_leader_and_no_controller_are_none_and_partitions_are_sorted() {
        let partition = |index: i32, leader: i32| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(vec![BrokerId(2), BrokerId(1)])
                .with_isr_nodes(vec![BrokerId(2)])
        };
        let response = MetadataResponse::default()
            .with_controller_id(BrokerId(-1))
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(2))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(9093),
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(9092),
            ])
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_partitions(vec![partition(1, -1), partition(0, 2)]),
            ]);
        let metadata = convert(&response);
        assert_eq!(metadata.brokers, vec![1, 2]);
        assert_eq!(metadata.broker_addresses[&2], "127.0.0.1:9093");
        assert_eq!(metadata.controller_id, None);
        assert_eq!(metadata.partitions[0].partition, 0);
        assert_eq!(metadata.partitions[0].leader, Some(2));
        assert_eq!(metadata.partition(1).map(|p| p.leader), Some(None));
        assert!(!metadata.all_partitions_led(2));
        assert!(!metadata.all_partitions_fully_replicated(2));
    }
}
