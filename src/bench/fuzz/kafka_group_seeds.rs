//! Seeds for the consumer-group APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups): each names the seed
//! group and, where it carries partitions, the seed topic, so that mutants reach the group
//! coordinator's state machine and its offsets, not only its decoders. Fields a version lacks
//! are left at their defaults (kafka-protocol refuses to encode them otherwise).

use bytes::Bytes;
use kafka_protocol::messages::{self as m, ApiKey, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::kafka_seeds::{KafkaSeed, SEED_PARTITIONS, SEED_TOPIC, seed};

/// The group every group seed names.
const SEED_GROUP: &str = "fuzz-group";

fn group() -> GroupId {
    GroupId(StrBytes::from_static_str(SEED_GROUP))
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str(SEED_TOPIC))
}

fn text(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

/// The seeds of one version of a group API; `None` for an API that is not a group API.
pub fn for_version(api_key: ApiKey, version: i16) -> Option<anyhow::Result<Vec<KafkaSeed>>> {
    let seeds = match api_key {
        ApiKey::FindCoordinator => find_coordinator(api_key, version),
        ApiKey::JoinGroup => join_group(api_key, version),
        ApiKey::SyncGroup => sync_group(api_key, version),
        ApiKey::Heartbeat => {
            let mut request = m::HeartbeatRequest::default()
                .with_group_id(group())
                .with_generation_id(1)
                .with_member_id(text("fuzz-member"));
            if version >= 3 {
                request = request.with_group_instance_id(Some(text("fuzz-instance")));
            }
            seed(api_key, version, &request).map(|one| vec![one])
        }
        ApiKey::LeaveGroup => {
            let request = if version >= 3 {
                let mut member = m::leave_group_request::MemberIdentity::default()
                    .with_member_id(text("fuzz-member"));
                if version >= 5 {
                    member = member.with_reason(Some(text("fuzzing")));
                }
                m::LeaveGroupRequest::default()
                    .with_group_id(group())
                    .with_members(vec![member])
            } else {
                m::LeaveGroupRequest::default()
                    .with_group_id(group())
                    .with_member_id(text("fuzz-member"))
            };
            seed(api_key, version, &request).map(|one| vec![one])
        }
        ApiKey::OffsetCommit => offset_commit(api_key, version),
        ApiKey::OffsetFetch => offset_fetch(api_key, version),
        ApiKey::ListGroups => {
            let mut request = m::ListGroupsRequest::default();
            if version >= 4 {
                request = request.with_states_filter(vec![text("Stable"), text("Empty")]);
            }
            seed(api_key, version, &request).map(|one| vec![one])
        }
        ApiKey::DescribeGroups => {
            let request = m::DescribeGroupsRequest::default()
                .with_groups(vec![group(), GroupId(text("fuzz-absent"))])
                .with_include_authorized_operations(version >= 3);
            seed(api_key, version, &request).map(|one| vec![one])
        }
        _ => return None,
    };
    Some(seeds)
}

fn find_coordinator(api_key: ApiKey, version: i16) -> anyhow::Result<Vec<KafkaSeed>> {
    let request = if version >= 4 {
        m::FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![text(SEED_GROUP), text("fuzz-other-group")])
    } else {
        m::FindCoordinatorRequest::default().with_key(text(SEED_GROUP))
    };
    Ok(vec![seed(api_key, version, &request)?])
}

fn join_group(api_key: ApiKey, version: i16) -> anyhow::Result<Vec<KafkaSeed>> {
    let mut request = m::JoinGroupRequest::default()
        .with_group_id(group())
        .with_session_timeout_ms(10_000)
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            m::join_group_request::JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Bytes::from_static(b"\x00\x01subscription")),
        ]);
    if version >= 1 {
        request = request.with_rebalance_timeout_ms(1_000);
    }
    if version >= 5 {
        request = request.with_group_instance_id(Some(text("fuzz-instance")));
    }
    if version >= 8 {
        request = request.with_reason(Some(text("fuzzing")));
    }
    Ok(vec![seed(api_key, version, &request)?])
}

fn sync_group(api_key: ApiKey, version: i16) -> anyhow::Result<Vec<KafkaSeed>> {
    let mut request = m::SyncGroupRequest::default()
        .with_group_id(group())
        .with_generation_id(1)
        .with_member_id(text("fuzz-member"))
        .with_assignments(vec![
            m::sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(text("fuzz-member"))
                .with_assignment(Bytes::from_static(b"\x00\x01assignment")),
        ]);
    if version >= 3 {
        request = request.with_group_instance_id(Some(text("fuzz-instance")));
    }
    if version >= 5 {
        request = request
            .with_protocol_type(Some(text("consumer")))
            .with_protocol_name(Some(text("range")));
    }
    Ok(vec![seed(api_key, version, &request)?])
}

fn offset_commit(api_key: ApiKey, version: i16) -> anyhow::Result<Vec<KafkaSeed>> {
    let partitions = (0..SEED_PARTITIONS)
        .map(|index| {
            let mut partition = m::offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(index)
                .with_committed_offset(1)
                .with_committed_metadata(Some(text("fuzz")));
            if version >= 6 {
                partition = partition.with_committed_leader_epoch(0);
            }
            partition
        })
        .collect();
    let mut request = m::OffsetCommitRequest::default()
        .with_group_id(group())
        .with_member_id(text("fuzz-member"))
        .with_topics(vec![
            m::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic())
                .with_partitions(partitions),
        ]);
    if version >= 7 {
        request = request.with_group_instance_id(Some(text("fuzz-instance")));
    }
    // A simple consumer's commit (generation -1) and a member's (generation 1).
    let member = request.clone().with_generation_id_or_member_epoch(1);
    Ok(vec![
        seed(api_key, version, &request)?,
        seed(api_key, version, &member)?,
    ])
}

fn offset_fetch(api_key: ApiKey, version: i16) -> anyhow::Result<Vec<KafkaSeed>> {
    let partition_indexes: Vec<i32> = (0..SEED_PARTITIONS).collect();
    let request = if version >= 8 {
        m::OffsetFetchRequest::default().with_groups(vec![
            m::offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(group())
                .with_topics(Some(vec![
                    m::offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(topic())
                        .with_partition_indexes(partition_indexes),
                ])),
        ])
    } else {
        m::OffsetFetchRequest::default()
            .with_group_id(group())
            .with_topics(Some(vec![
                m::offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic())
                    .with_partition_indexes(partition_indexes),
            ]))
    };
    let mut seeds = vec![seed(api_key, version, &request)?];
    if (2..8).contains(&version) {
        // Every partition the group committed (topics null, v2+).
        let every = m::OffsetFetchRequest::default()
            .with_group_id(group())
            .with_topics(None);
        seeds.push(seed(api_key, version, &every)?);
    }
    Ok(seeds)
}
