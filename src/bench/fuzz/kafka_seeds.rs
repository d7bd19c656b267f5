//! Valid Kafka requests to mutate: for every API and version the broker answers
//! ([`handlers::SUPPORTED`]), requests built with `kafka-protocol`'s types and encoded as a
//! request frame (header and body, without the 4-byte size prefix), each naming the seed topics
//! so that mutated copies reach the handlers' deeper paths. Produce seeds carry record batches
//! in every compression codec.

use bytes::Bytes;
use kafka_protocol::messages::{self as m, ApiKey, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::Compression;
use kafka_wire::message::encode_request_body;

use super::kafka_group_seeds;
use crate::broker::handlers::SUPPORTED;
use crate::broker::log::batch;

/// The topic every seed names; the fuzz target creates it with [`SEED_PARTITIONS`] partitions.
pub const SEED_TOPIC: &str = "fuzz";
pub const SEED_PARTITIONS: i32 = 2;
/// The topic CreateTopics seeds create (and DeleteTopics seeds delete).
const CREATED_TOPIC: &str = "fuzz-created";

/// One encoded request and where its record batch sits, if it carries one.
#[derive(Debug, Clone)]
pub struct KafkaSeed {
    pub api_key: ApiKey,
    pub version: i16,
    /// Header and body, without the size prefix.
    pub frame: Vec<u8>,
    /// Byte range of a record batch inside `frame` (Produce), for CRC-preserving mutation.
    pub batch: Option<std::ops::Range<usize>>,
}

/// Seeds for every supported API and version.
pub fn all() -> anyhow::Result<Vec<KafkaSeed>> {
    let mut seeds = Vec::new();
    for (api_key, min, max) in SUPPORTED {
        for version in *min..=*max {
            seeds.extend(for_version(*api_key, version)?);
        }
    }
    Ok(seeds)
}

/// The seeds of one API version.
pub fn for_version(api_key: ApiKey, version: i16) -> anyhow::Result<Vec<KafkaSeed>> {
    let topic = || TopicName(StrBytes::from_static_str(SEED_TOPIC));
    let mut seeds = Vec::new();
    match api_key {
        ApiKey::ApiVersions => {
            let mut request = m::ApiVersionsRequest::default();
            if version >= 3 {
                request = request
                    .with_client_software_name(StrBytes::from_static_str("kchaos-fuzz"))
                    .with_client_software_version(StrBytes::from_static_str("1.0"));
            }
            seeds.push(seed(api_key, version, &request)?);
        }
        ApiKey::Metadata => {
            let topics = vec![
                m::metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
                m::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("fuzz-auto")))),
            ];
            seeds.push(seed(
                api_key,
                version,
                &m::MetadataRequest::default()
                    .with_topics(Some(topics))
                    .with_allow_auto_topic_creation(true),
            )?);
            if version >= 1 {
                // All topics.
                seeds.push(seed(api_key, version, &m::MetadataRequest::default())?);
            }
        }
        ApiKey::Produce => {
            for (codec, acks) in [
                (Compression::None, -1),
                (Compression::None, 1),
                (Compression::Gzip, 1),
                (Compression::Snappy, 1),
                (Compression::Lz4, -1),
                (Compression::Zstd, 0),
            ] {
                seeds.push(produce(version, codec, acks)?);
            }
        }
        ApiKey::Fetch => {
            for max_wait_ms in [0, 50] {
                let partitions = (0..SEED_PARTITIONS)
                    .map(|index| {
                        let mut partition = m::fetch_request::FetchPartition::default()
                            .with_partition(index)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20);
                        if version >= 9 {
                            partition = partition.with_current_leader_epoch(-1);
                        }
                        if version >= 5 {
                            partition = partition.with_log_start_offset(-1);
                        }
                        partition
                    })
                    .collect();
                let mut request = m::FetchRequest::default()
                    .with_replica_id(m::BrokerId(-1))
                    .with_max_wait_ms(max_wait_ms)
                    .with_min_bytes(1)
                    .with_max_bytes(1 << 20)
                    .with_topics(vec![
                        m::fetch_request::FetchTopic::default()
                            .with_topic(topic())
                            .with_partitions(partitions),
                    ]);
                if version >= 7 {
                    request = request.with_session_epoch(-1);
                }
                seeds.push(seed(api_key, version, &request)?);
            }
        }
        ApiKey::ListOffsets => {
            for timestamp in [-1, -2, 0, 1_000] {
                let mut partition = m::list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp);
                if version >= 4 {
                    partition = partition.with_current_leader_epoch(-1);
                }
                let mut request = m::ListOffsetsRequest::default()
                    .with_replica_id(m::BrokerId(-1))
                    .with_topics(vec![
                        m::list_offsets_request::ListOffsetsTopic::default()
                            .with_name(topic())
                            .with_partitions(vec![partition]),
                    ]);
                if version >= 10 {
                    request = request.with_timeout_ms(1_000);
                }
                seeds.push(seed(api_key, version, &request)?);
            }
        }
        ApiKey::CreateTopics => {
            for validate_only in [true, false] {
                let created = m::create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str(CREATED_TOPIC)))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(vec![
                        m::create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_value(Some(StrBytes::from_static_str("86400000"))),
                    ]);
                let request = m::CreateTopicsRequest::default()
                    .with_topics(vec![created])
                    .with_timeout_ms(1_000)
                    .with_validate_only(validate_only);
                seeds.push(seed(api_key, version, &request)?);
            }
        }
        ApiKey::DeleteTopics => {
            let name = TopicName(StrBytes::from_static_str(CREATED_TOPIC));
            let request = if version >= 6 {
                m::DeleteTopicsRequest::default().with_topics(vec![
                    m::delete_topics_request::DeleteTopicState::default().with_name(Some(name)),
                ])
            } else {
                m::DeleteTopicsRequest::default().with_topic_names(vec![name])
            };
            seeds.push(seed(api_key, version, &request.with_timeout_ms(1_000))?);
        }
        ApiKey::DescribeConfigs => {
            let request = m::DescribeConfigsRequest::default()
                .with_resources(vec![
                    m::describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str(SEED_TOPIC))
                        .with_configuration_keys(Some(vec![StrBytes::from_static_str(
                            "retention.ms",
                        )])),
                    m::describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(StrBytes::from_static_str("1")),
                ])
                .with_include_synonyms(true)
                .with_include_documentation(version >= 3);
            seeds.push(seed(api_key, version, &request)?);
        }
        ApiKey::OffsetForLeaderEpoch => {
            let partitions = (0..SEED_PARTITIONS)
                .map(|index| {
                    m::offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(index)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(0)
                })
                .collect();
            let request = m::OffsetForLeaderEpochRequest::default()
                .with_replica_id(m::BrokerId(-1))
                .with_topics(vec![
                    m::offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                        .with_topic(topic())
                        .with_partitions(partitions),
                ]);
            seeds.push(seed(api_key, version, &request)?);
        }
        ApiKey::AlterConfigs => {
            let request = m::AlterConfigsRequest::default().with_resources(vec![
                m::alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str(SEED_TOPIC))
                    .with_configs(vec![
                        m::alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_value(Some(StrBytes::from_static_str("86400000"))),
                    ]),
            ]);
            seeds.push(seed(api_key, version, &request)?);
        }
        ApiKey::IncrementalAlterConfigs => {
            let request = m::IncrementalAlterConfigsRequest::default().with_resources(vec![
                m::incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str(SEED_TOPIC))
                    .with_configs(vec![
                        m::incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_static_str("86400000"))),
                    ]),
            ]);
            seeds.push(seed(api_key, version, &request)?);
        }
        ApiKey::ElectLeaders => {
            for election_type in [0, 1] {
                if election_type == 1 && version == 0 {
                    continue;
                }
                let request = m::ElectLeadersRequest::default()
                    .with_election_type(election_type)
                    .with_topic_partitions(Some(vec![
                        m::elect_leaders_request::TopicPartitions::default()
                            .with_topic(topic())
                            .with_partitions((0..SEED_PARTITIONS).collect()),
                    ]))
                    .with_timeout_ms(1_000);
                seeds.push(seed(api_key, version, &request)?);
            }
        }
        ApiKey::InitProducerId => {
            let mut idempotent = m::InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1);
            if version >= 3 {
                // KIP-360: the producer's current id and epoch.
                idempotent = idempotent
                    .with_producer_id(m::ProducerId(1000))
                    .with_producer_epoch(0);
            }
            let transactional = m::InitProducerIdRequest::default()
                .with_transactional_id(Some(m::TransactionalId(StrBytes::from_static_str(
                    "fuzz-txn",
                ))))
                .with_transaction_timeout_ms(60_000);
            seeds.push(seed(api_key, version, &idempotent)?);
            seeds.push(seed(api_key, version, &transactional)?);
        }
        other => match kafka_group_seeds::for_version(other, version) {
            Some(group_seeds) => seeds.extend(group_seeds?),
            None => anyhow::bail!("no fuzz seed for {other:?}"),
        },
    }
    Ok(seeds)
}

/// A Produce seed whose batch holds a few records, compressed with `codec`.
fn produce(version: i16, codec: Compression, acks: i16) -> anyhow::Result<KafkaSeed> {
    let batch = record_batch(codec, 3)?;
    let request = m::ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1_000)
        .with_topic_data(vec![
            m::produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(SEED_TOPIC)))
                .with_partition_data(vec![
                    m::produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.clone())),
                ]),
        ]);
    let mut encoded = seed(ApiKey::Produce, version, &request)?;
    let start = encoded
        .frame
        .windows(batch.len())
        .position(|window| window == batch.as_ref())
        .ok_or_else(|| anyhow::anyhow!("the batch is not in the encoded Produce request"))?;
    encoded.batch = Some(start..start + batch.len());
    Ok(encoded)
}

/// A v2 record batch of `count` small records with a key, a value and a header.
pub fn record_batch(compression: Compression, count: usize) -> anyhow::Result<Bytes> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("value-{i}").into_bytes())
        .collect();
    let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    batch::encode_example(&values, compression)
}

/// The seed of `request`, encoded by `kafka_wire` as the broker's dispatcher receives it
/// (header and body, no size prefix: the fuzzer frames its mutants itself).
pub(super) fn seed<R: Request>(
    api_key: ApiKey,
    version: i16,
    request: &R,
) -> anyhow::Result<KafkaSeed> {
    debug_assert_eq!(
        api_key as i16,
        R::KEY,
        "a seed encoded as another API's request"
    );
    let frame = encode_request_body(version, 1, Some("kchaos-fuzz"), request)
        .map_err(|error| anyhow::anyhow!("{api_key:?} v{version}: {error}"))?
        .to_vec();
    Ok(KafkaSeed {
        api_key,
        version,
        frame,
        batch: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_api_and_version_has_seeds() {
        let seeds = all().expect("every seed encodes");
        for (api_key, min, max) in SUPPORTED {
            for version in *min..=*max {
                assert!(
                    seeds
                        .iter()
                        .any(|seed| seed.api_key == *api_key && seed.version == version),
                    "{api_key:?} v{version}"
                );
            }
        }
        assert!(
            seeds
                .iter()
                .filter(|seed| seed.api_key == ApiKey::Produce)
                .all(|seed| seed.batch.is_some())
        );
    }
}
