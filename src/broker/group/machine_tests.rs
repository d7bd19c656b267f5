//! Unit tests of the group state machine: every rebalance path, driven by hand with explicit
//! moments.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::broker::group::messages::JoinRequest;

const SESSION_MS: i32 = 1000;
const REBALANCE_MS: i32 = 5000;

fn config(initial_delay_ms: i32) -> GroupCoordinatorConfig {
    GroupCoordinatorConfig {
        group_initial_rebalance_delay_ms: initial_delay_ms,
        group_min_session_timeout_ms: 100,
        group_max_size: 3,
        ..GroupCoordinatorConfig::default()
    }
}

fn start() -> Now {
    Now {
        instant: Instant::now(),
        wall_ms: 1_000_000,
    }
}

fn protocols(metadata: &'static [u8]) -> Vec<Protocol> {
    vec![
        Protocol {
            name: "range".into(),
            metadata: Bytes::from_static(metadata),
        },
        Protocol {
            name: "roundrobin".into(),
            metadata: Bytes::from_static(metadata),
        },
    ]
}

fn request(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        require_known_member_id: true,
        supports_skip_assignment: false,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout_ms: REBALANCE_MS,
        session_timeout_ms: SESSION_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(b"sub"),
    }
}

fn parked(outcome: JoinOutcome) -> oneshot::Receiver<JoinResult> {
    match outcome {
        JoinOutcome::Parked(receiver) => receiver,
        JoinOutcome::Reply(result) => panic!("expected a parked join, got {result:?}"),
    }
}

fn replied(outcome: JoinOutcome) -> JoinResult {
    match outcome {
        JoinOutcome::Reply(result) => result,
        JoinOutcome::Parked(_) => panic!("expected a reply, got a parked join"),
    }
}

fn answer<T: std::fmt::Debug>(receiver: &mut oneshot::Receiver<T>) -> T {
    receiver.try_recv().expect("answered")
}

fn sync_parked(outcome: SyncOutcome) -> oneshot::Receiver<SyncResult> {
    match outcome {
        SyncOutcome::Parked(receiver) => receiver,
        SyncOutcome::Reply(result) => panic!("expected a parked sync, got {result:?}"),
    }
}

fn sync_replied(outcome: SyncOutcome) -> SyncResult {
    match outcome {
        SyncOutcome::Reply(result) => result,
        SyncOutcome::Parked(_) => panic!("expected a reply, got a parked sync"),
    }
}

/// A member's id: the MEMBER_ID_REQUIRED round trip.
fn member_id(group: &mut Group, now: Now) -> String {
    let first = replied(group.join(request(""), now));
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    assert!(
        first.member_id.starts_with("client-"),
        "{}",
        first.member_id
    );
    first.member_id
}

/// Joins `count` members with an initial delay of 0 and completes the rebalance: returns the
/// group (Stable, generation 1) and member ids, the leader first.
fn stable_group(count: usize, now: Now) -> (Group, Vec<String>) {
    let mut group = Group::new("g", config(0), now);
    let ids: Vec<String> = (0..count).map(|_| member_id(&mut group, now)).collect();
    let mut joins: Vec<_> = ids
        .iter()
        .map(|id| parked(group.join(request(id), now)))
        .collect();
    group.expire(now);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    let leader = group.leader_id().unwrap().to_string();
    for join in &mut joins {
        let result = answer(join);
        assert_eq!(result.error, None);
        assert_eq!(result.generation_id, 1);
        assert_eq!(result.leader_id, leader);
    }
    let plan: Vec<(String, Bytes)> = ids
        .iter()
        .map(|id| (id.clone(), Bytes::from(format!("assignment of {id}"))))
        .collect();
    let mut syncs = Vec::new();
    for id in ids.iter().filter(|id| **id != leader) {
        syncs.push(sync_parked(group.sync(
            id,
            None,
            1,
            None,
            None,
            vec![],
            now,
        )));
    }
    syncs.push(sync_parked(
        group.sync(&leader, None, 1, None, None, plan, now),
    ));
    let writes = group.take_writes();
    assert!(
        matches!(
            writes.as_slice(),
            [GroupWrite::Assignment { generation: 1, .. }]
        ),
        "{writes:?}"
    );
    assert_eq!(
        group.state(),
        GroupState::CompletingRebalance,
        "not before the write"
    );
    group.assignment_stored(1, Ok(()), now);
    assert_eq!(group.state(), GroupState::Stable);
    for sync in &mut syncs {
        let result = answer(sync);
        assert_eq!(result.error, None);
        assert!(result.assignment.starts_with(b"assignment of "));
    }
    let mut ordered = vec![leader.clone()];
    ordered.extend(ids.into_iter().filter(|id| *id != leader));
    (group, ordered)
}

#[test]
fn three_members_join_sync_and_get_their_own_assignment() {
    let now = start();
    let (mut group, ids) = stable_group(3, now);
    assert_eq!(group.generation_id(), 1);
    for id in &ids {
        let result = sync_replied(group.sync(id, None, 1, Some("consumer"), None, vec![], now));
        assert_eq!(
            result.assignment,
            Bytes::from(format!("assignment of {id}"))
        );
        assert_eq!(result.protocol_name.as_deref(), Some("range"));
    }
    let record = group.to_record();
    assert_eq!(record.generation, 1);
    assert_eq!(record.members.len(), 3);
    assert_eq!(record.leader.as_deref(), Some(ids[0].as_str()));
}

#[test]
fn only_the_leader_gets_the_members_and_the_first_joiner_leads() {
    let now = start();
    let mut group = Group::new("g", config(0), now);
    let first = member_id(&mut group, now);
    let second = member_id(&mut group, now);
    let mut first_join = parked(group.join(request(&first), now));
    let mut second_join = parked(group.join(request(&second), now));
    group.expire(now);
    let leader = answer(&mut first_join);
    let follower = answer(&mut second_join);
    assert_eq!(leader.leader_id, first);
    assert_eq!(leader.members.len(), 2);
    assert!(follower.members.is_empty());
    assert_eq!(leader.protocol_name.as_deref(), Some("range"));
}

#[test]
fn heartbeat_errors_have_kafkas_meaning() {
    let now = start();
    let (mut group, ids) = stable_group(2, now);
    assert_eq!(group.heartbeat(&ids[1], None, 1, now), None);
    assert_eq!(
        group.heartbeat("nobody", None, 1, now),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        group.heartbeat(&ids[1], None, 0, now),
        Some(ResponseError::IllegalGeneration)
    );
    // The leader rejoins: a rebalance; the follower is told so by its heartbeat.
    let _leader_join = parked(group.join(request(&ids[0]), now));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.heartbeat(&ids[1], None, 1, now),
        Some(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn a_member_that_leaves_triggers_a_rebalance_without_it() {
    let now = start();
    let (mut group, ids) = stable_group(3, now);
    let left = group.leave(&[(ids[2].clone(), None)], now).unwrap();
    assert_eq!(left, vec![None]);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.leave(&[(ids[2].clone(), None)], now).unwrap(),
        vec![Some(ResponseError::UnknownMemberId)]
    );
    let mut joins: Vec<_> = ids[..2]
        .iter()
        .map(|id| parked(group.join(request(id), now)))
        .collect();
    // Everyone left in the group rejoined: complete at once, no timer needed.
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    for join in &mut joins {
        let result = answer(join);
        assert_eq!(result.generation_id, 2);
    }
    assert_eq!(group.member_ids().len(), 2);
    assert!(!group.has_member(&ids[2]));
}

#[test]
fn a_member_whose_session_expires_is_removed_and_the_rest_rebalance() {
    let now = start();
    let (mut group, ids) = stable_group(3, now);
    let later = now.advanced_ms(600);
    assert_eq!(group.heartbeat(&ids[0], None, 1, later), None);
    assert_eq!(group.heartbeat(&ids[1], None, 1, later), None);
    // ids[2] stays silent past its 1000 ms session.
    let expiry = now.advanced_ms(1001);
    assert!(group.next_deadline().unwrap() <= expiry.instant);
    group.expire(expiry);
    assert!(!group.has_member(&ids[2]));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let mut joins: Vec<_> = ids[..2]
        .iter()
        .map(|id| parked(group.join(request(id), expiry)))
        .collect();
    for join in &mut joins {
        assert_eq!(answer(join).generation_id, 2);
    }
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let now = start();
    let (mut group, ids) = stable_group(2, now);
    let mut leader_join = parked(group.join(request(&ids[0]), now));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    // The follower keeps heartbeating (told REBALANCE_IN_PROGRESS) but never rejoins.
    let mut at = now;
    for _ in 0..4 {
        at = at.advanced_ms(900);
        assert_eq!(
            group.heartbeat(&ids[1], None, 1, at),
            Some(ResponseError::RebalanceInProgress)
        );
        group.expire(at);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
    }
    group.expire(now.advanced_ms(REBALANCE_MS as u64));
    let result = answer(&mut leader_join);
    assert_eq!(result.generation_id, 2);
    assert_eq!(result.members.len(), 1);
    assert!(!group.has_member(&ids[1]));
}

#[test]
fn the_initial_delay_waits_and_extends_while_members_arrive() {
    let now = start();
    let mut group = Group::new("g", config(1000), now);
    let first = member_id(&mut group, now);
    let mut first_join = parked(group.join(request(&first), now));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let second = member_id(&mut group, now.advanced_ms(500));
    let mut second_join = parked(group.join(request(&second), now.advanced_ms(500)));
    // Both are in, but the initial delay is not cut short.
    assert!(first_join.try_recv().is_err());
    group.expire(now.advanced_ms(1000));
    // A member arrived during the delay: it extends by another delay.
    assert!(first_join.try_recv().is_err());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    group.expire(now.advanced_ms(2000));
    assert_eq!(answer(&mut first_join).members.len(), 2);
    assert_eq!(answer(&mut second_join).generation_id, 1);
}

#[test]
fn offset_commits_follow_membership() {
    let now = start();
    let mut empty = Group::new("simple", config(0), now);
    assert_eq!(empty.validate_commit("", None, -1, now), Ok(()));
    let (mut group, ids) = stable_group(2, now);
    assert_eq!(group.validate_commit(&ids[1], None, 1, now), Ok(()));
    assert_eq!(
        group.validate_commit("", None, -1, now),
        Err(ResponseError::UnknownMemberId),
        "a non-member of a group with members"
    );
    assert_eq!(
        group.validate_commit(&ids[1], None, 0, now),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.validate_commit("stranger", None, 1, now),
        Err(ResponseError::UnknownMemberId)
    );
    // During PreparingRebalance the current generation may still commit...
    let _leader_join = parked(group.join(request(&ids[0]), now));
    assert_eq!(group.validate_commit(&ids[1], None, 1, now), Ok(()));
    // ...but not once the next generation awaits its assignment.
    let _follower_join = parked(group.join(request(&ids[1]), now));
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    assert_eq!(
        group.validate_commit(&ids[1], None, 2, now),
        Err(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        group.validate_commit(&ids[1], None, 1, now),
        Err(ResponseError::IllegalGeneration)
    );
}

#[test]
fn a_failed_assignment_write_sends_everyone_back_to_join() {
    let now = start();
    let mut group = Group::new("g", config(0), now);
    let a = member_id(&mut group, now);
    let b = member_id(&mut group, now);
    let _ja = parked(group.join(request(&a), now));
    let _jb = parked(group.join(request(&b), now));
    group.expire(now);
    let leader = group.leader_id().unwrap().to_string();
    let follower = if leader == a { b } else { a };
    let mut follower_sync = sync_parked(group.sync(&follower, None, 1, None, None, vec![], now));
    let mut leader_sync = sync_parked(group.sync(
        &leader,
        None,
        1,
        None,
        None,
        vec![(leader.clone(), Bytes::from_static(b"x"))],
        now,
    ));
    assert_eq!(group.take_writes().len(), 1);
    group.assignment_stored(1, Err(ResponseError::NotCoordinator), now);
    assert_eq!(
        answer(&mut follower_sync).error,
        Some(ResponseError::NotCoordinator)
    );
    assert_eq!(answer(&mut leader_sync).assignment, Bytes::new());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    // A stale write outcome is ignored.
    group.assignment_stored(1, Ok(()), now);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn sync_errors_have_kafkas_meaning() {
    let now = start();
    let (mut group, ids) = stable_group(2, now);
    assert_eq!(
        sync_replied(group.sync(&ids[0], None, 7, None, None, vec![], now)).error,
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        sync_replied(group.sync("x", None, 1, None, None, vec![], now)).error,
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        sync_replied(group.sync(&ids[0], None, 1, Some("connect"), None, vec![], now)).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let _join = parked(group.join(request(&ids[0]), now));
    assert_eq!(
        sync_replied(group.sync(&ids[1], None, 1, None, None, vec![], now)).error,
        Some(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let now = start();
    let mut group = Group::new("g", config(0), now);
    let a = member_id(&mut group, now);
    let b = member_id(&mut group, now);
    let _ja = parked(group.join(request(&a), now));
    let _jb = parked(group.join(request(&b), now));
    group.expire(now);
    let leader = group.leader_id().unwrap().to_string();
    let follower = if leader == a { b.clone() } else { a.clone() };
    // The follower syncs; the leader heartbeats but never sends its assignment.
    let mut follower_sync = sync_parked(group.sync(&follower, None, 1, None, None, vec![], now));
    let mut at = now;
    while at.instant < now.plus_ms(i64::from(REBALANCE_MS)) {
        at = at.advanced_ms(500);
        assert_eq!(group.heartbeat(&leader, None, 1, at), None);
        group.expire(at);
    }
    assert!(!group.has_member(&leader));
    assert_eq!(
        answer(&mut follower_sync).error,
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn pending_member_ids_expire_and_unknown_ids_are_refused() {
    let now = start();
    let mut group = Group::new("g", config(0), now);
    let id = member_id(&mut group, now);
    group.expire(now.advanced_ms(SESSION_MS as u64));
    let late = replied(group.join(request(&id), now.advanced_ms(SESSION_MS as u64)));
    assert_eq!(late.error, Some(ResponseError::UnknownMemberId));
    assert!(group.is_removable());
}

#[test]
fn protocols_must_be_shared_and_the_group_is_bounded() {
    let now = start();
    let (mut group, _ids) = stable_group(2, now);
    let mut other = request("");
    other.protocol_type = "connect".into();
    assert_eq!(
        replied(group.join(other, now)).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let mut sticky = request("");
    sticky.protocols = vec![Protocol {
        name: "sticky".into(),
        metadata: Bytes::new(),
    }];
    assert_eq!(
        replied(group.join(sticky, now)).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    // group.max.size is 3 in these tests.
    let (mut group, _ids) = stable_group(3, now);
    assert_eq!(
        replied(group.join(request(""), now)).error,
        Some(ResponseError::GroupMaxSizeReached)
    );
    let mut empty = Group::new("e", config(0), now);
    let mut no_protocols = request("");
    no_protocols.protocols.clear();
    assert_eq!(
        replied(empty.join(no_protocols, now)).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
}

#[test]
fn the_last_member_leaving_empties_the_group_and_stores_it() {
    let now = start();
    let (mut group, ids) = stable_group(1, now);
    group.leave(&[(ids[0].clone(), None)], now).unwrap();
    // Nobody is left to wait for: the rebalance completes at once.
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(group.generation_id(), 2);
    let writes = group.take_writes();
    match writes.as_slice() {
        [GroupWrite::Metadata { value }] => {
            assert!(value.members.is_empty());
            assert_eq!(value.generation, 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(group.is_removable());
    assert_eq!(group.validate_commit("", None, -1, now), Ok(()));
}

#[test]
fn unloading_answers_parked_requests_with_not_coordinator() {
    let now = start();
    let mut group = Group::new("g", config(1000), now);
    let id = member_id(&mut group, now);
    let mut join = parked(group.join(request(&id), now));
    group.unload(now);
    assert_eq!(answer(&mut join).error, Some(ResponseError::NotCoordinator));
    assert_eq!(group.state(), GroupState::Dead);
    assert_eq!(
        group.heartbeat(&id, None, 0, now),
        Some(ResponseError::CoordinatorNotAvailable)
    );
}

#[test]
fn a_loaded_group_keeps_its_generation_and_members() {
    let now = start();
    let (group, ids) = stable_group(2, now);
    let record = group.to_record();
    let later = now.advanced_ms(10_000);
    let mut loaded = Group::from_record("g", record, config(0), later);
    assert_eq!(loaded.state(), GroupState::Stable);
    assert_eq!(loaded.generation_id(), 1);
    assert_eq!(loaded.leader_id(), Some(ids[0].as_str()));
    assert_eq!(loaded.heartbeat(&ids[1], None, 1, later), None);
    let result = sync_replied(loaded.sync(&ids[1], None, 1, None, None, vec![], later));
    assert_eq!(
        result.assignment,
        Bytes::from(format!("assignment of {}", ids[1]))
    );
    // The silent member expires one session after the load.
    loaded.heartbeat(&ids[1], None, 1, later.advanced_ms(900));
    loaded.expire(later.advanced_ms(1000));
    assert!(!loaded.has_member(&ids[0]));
    assert_eq!(loaded.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_static_member_rejoining_replaces_its_old_id_without_a_rebalance() {
    let now = start();
    let mut group = Group::new("g", config(0), now);
    let mut static_request = request("");
    static_request.group_instance_id = Some("instance-1".into());
    let mut join = parked(group.join(static_request.clone(), now));
    group.expire(now);
    let first = answer(&mut join);
    assert!(first.member_id.starts_with("instance-1-"));
    let _sync = sync_parked(group.sync(
        &first.member_id,
        Some("instance-1"),
        1,
        None,
        None,
        vec![(first.member_id.clone(), Bytes::from_static(b"mine"))],
        now,
    ));
    group.assignment_stored(1, Ok(()), now);
    group.take_writes();
    // It restarts and joins without its member id: same generation, same assignment.
    let again = replied(group.join(static_request, now));
    assert_eq!(again.error, None);
    assert_eq!(again.generation_id, 1);
    assert_ne!(again.member_id, first.member_id);
    assert_eq!(group.state(), GroupState::Stable);
    assert!(matches!(
        group.take_writes().as_slice(),
        [GroupWrite::Metadata { .. }]
    ));
    // Its old incarnation is fenced.
    assert_eq!(
        group.heartbeat(&first.member_id, Some("instance-1"), 1, now),
        Some(ResponseError::FencedInstanceId)
    );
    let result = sync_replied(group.sync(
        &again.member_id,
        Some("instance-1"),
        1,
        None,
        None,
        vec![],
        now,
    ));
    assert_eq!(result.assignment, Bytes::from_static(b"mine"));
}

#[test]
fn member_ids_are_unique_uuids() {
    let a = random_uuid();
    let b = random_uuid();
    assert_ne!(a, b);
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "4");
    assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
}
