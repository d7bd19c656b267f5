//! Follower-pull replication: one fetcher task per leader broker, covering every partition
//! this broker follows from that leader (Kafka's `ReplicaFetcherThread`).
//!
//! A partition added to a fetcher first agrees with its leader where their logs diverge
//! (OffsetsForLeaderEpoch, KIP-101/KIP-279) and truncates there — never blindly to its high
//! watermark — then fetches from its log end offset with its broker id as `replica_id` and its
//! leader epoch as `current_leader_epoch`, appending what the leader sends and taking the
//! leader's high watermark. A partition whose leader answers FENCED_LEADER_EPOCH (this
//! broker missed a newer election) is marked as failed and dropped until the new state
//! re-adds it; NOT_LEADER_OR_FOLLOWER and UNKNOWN_LEADER_EPOCH (the leader has not applied the
//! election yet) are retried after a short backoff.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lock::lock;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_wire::{Client, Options, WireError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::log::partition_log::AppendError;
use super::partition::{Partition, PartitionError};
#[cfg(feature = "planted-bugs")]
use crate::planted::{self, PlantedBug};

/// Fetch version used between brokers (the newest without topic ids).
const FETCH_VERSION: i16 = 12;
/// OffsetForLeaderEpoch version used between brokers.
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// Pause after a failed connection or an error-only answer (Kafka's
/// `replica.fetch.backoff.ms` is 1000; shorter here so failover tests stay quick).
const FETCH_BACKOFF: Duration = Duration::from_millis(100);
/// The most bytes one fetch response may carry (Kafka's `replica.fetch.response.max.bytes`).
const FETCH_RESPONSE_MAX_BYTES: i32 = 10 * 1024 * 1024;

/// One partition a fetcher copies.
#[derive(Clone)]
struct FetchTarget {
    partition: Arc<Partition>,
    leader_epoch: i32,
    /// Whether the divergence check with this leader epoch is done.
    truncated: bool,
}

type Targets = Arc<Mutex<BTreeMap<(String, i32), FetchTarget>>>;

struct Fetcher {
    targets: Targets,
    wakeup: Arc<Notify>,
    task: JoinHandle<()>,
}

/// What a fetcher needs of its broker: its id, where a leader listens, and the fetch settings.
/// The broker ([`Broker`](super::context::Broker)) implements it; the fetchers know nothing else
/// of the broker, so the broker's shared state and its fetchers do not refer to each other.
pub trait FetcherHost: Send + Sync + 'static {
    /// This broker's id (the `replica_id` of its fetches).
    fn broker_id(&self) -> i32;
    /// `host:port` of broker `leader`, if it is registered.
    fn leader_address(&self, leader: i32) -> Option<String>;
    /// `replica.fetch.wait.max.ms`.
    fn fetch_wait_max_ms(&self) -> u64;
    /// `replica.fetch.max.bytes`.
    fn fetch_max_bytes(&self) -> usize;
    /// `zookeeper.session.timeout.ms`: with the fetch wait, how long an answer may take.
    fn session_timeout_ms(&self) -> u64;
}

/// The fetchers of this broker, by leader broker id.
#[derive(Default)]
pub struct ReplicaFetchers {
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

impl ReplicaFetchers {
    /// Follows `partition` from `leader` at `leader_epoch` (moving it from any other fetcher).
    pub fn add(
        &self,
        host: &Arc<dyn FetcherHost>,
        leader: i32,
        partition: Arc<Partition>,
        epoch: i32,
    ) {
        let key = (partition.topic.clone(), partition.index);
        self.remove(&key.0, key.1);
        let mut fetchers = lock(&self.fetchers);
        let fetcher = fetchers.entry(leader).or_insert_with(|| {
            let targets: Targets = Arc::default();
            let wakeup = Arc::new(Notify::new());
            let task = tokio::spawn(run(
                Arc::clone(host),
                leader,
                Arc::clone(&targets),
                Arc::clone(&wakeup),
            ));
            Fetcher {
                targets,
                wakeup,
                task,
            }
        });
        tracing::info!(
            "[ReplicaFetcherManager on broker {}] Added fetcher to broker {leader} for partition \
             {}-{} with leader epoch {epoch}",
            host.broker_id(),
            key.0,
            key.1
        );
        lock(&fetcher.targets).insert(
            key,
            FetchTarget {
                partition,
                leader_epoch: epoch,
                truncated: false,
            },
        );
        fetcher.wakeup.notify_one();
    }

    /// Stops following `topic`-`index` (this broker leads it now, or it has no leader).
    pub fn remove(&self, topic: &str, index: i32) {
        let key = (topic.to_string(), index);
        for (leader, fetcher) in lock(&self.fetchers).iter() {
            if lock(&fetcher.targets).remove(&key).is_some() {
                tracing::info!(
                    "[ReplicaFetcherManager] Removed fetcher to broker {leader} for partition \
                     {topic}-{index}"
                );
            }
        }
    }

    /// Stops every fetcher task (shutdown).
    pub fn shutdown(&self) {
        for (_, fetcher) in lock(&self.fetchers).drain() {
            fetcher.task.abort();
        }
    }
}

/// The loop of one fetcher: connect, truncate what needs it, fetch, repeat.
async fn run(host: Arc<dyn FetcherHost>, leader: i32, targets: Targets, wakeup: Arc<Notify>) {
    let mut connection: Option<Client> = None;
    let mut last_error: Option<String> = None;
    loop {
        let snapshot: Vec<((String, i32), FetchTarget)> = lock(&targets)
            .iter()
            .map(|(key, target)| (key.clone(), target.clone()))
            .collect();
        if snapshot.is_empty() {
            connection = None;
            wakeup.notified().await;
            continue;
        }
        let connected = match connection.as_mut() {
            Some(connected) => connected,
            None => match connect(host.as_ref(), leader).await {
                Ok(opened) => connection.insert(opened),
                Err(error) => {
                    report(&mut last_error, leader, &error);
                    tokio::time::sleep(FETCH_BACKOFF).await;
                    continue;
                }
            },
        };
        let round = if snapshot.iter().any(|(_, target)| !target.truncated) {
            truncate(host.as_ref(), connected, leader, &targets, snapshot).await
        } else {
            fetch(host.as_ref(), connected, leader, &targets, snapshot).await
        };
        match round {
            Ok(progress) => {
                last_error = None;
                if !progress {
                    tokio::time::sleep(FETCH_BACKOFF).await;
                }
            }
            Err(error) => {
                report(&mut last_error, leader, &error);
                connection = None;
                tokio::time::sleep(FETCH_BACKOFF).await;
            }
        }
    }
}

/// Logs a connection problem once until it changes.
fn report(last_error: &mut Option<String>, leader: i32, error: &WireError) {
    let text = error.to_string();
    if last_error.as_deref() != Some(text.as_str()) {
        tracing::warn!("[ReplicaFetcher leaderId={leader}] {text}");
        *last_error = Some(text);
    }
}

fn request_timeout(host: &dyn FetcherHost) -> Duration {
    Duration::from_millis(host.fetch_wait_max_ms() + host.session_timeout_ms())
}

async fn connect(host: &dyn FetcherHost, leader: i32) -> Result<Client, WireError> {
    let Some(address) = host.leader_address(leader) else {
        return Err(WireError::Connect {
            peer: format!("broker {leader} (not registered)"),
            source: std::io::ErrorKind::NotFound.into(),
        });
    };
    let options = Options::new(
        format!("broker-{}-fetcher-{leader}", host.broker_id()),
        request_timeout(host),
    );
    Client::connect(&address, &options).await
}

/// Drops a partition whose leader refused it (a newer state will re-add it).
fn mark_failed(targets: &Targets, key: &(String, i32), epoch: i32, leader: i32, why: &str) {
    let mut targets = lock(targets);
    if targets.get(key).is_some_and(|t| t.leader_epoch == epoch) {
        targets.remove(key);
        tracing::warn!(
            "[ReplicaFetcher leaderId={leader}] Partition {}-{} {why} (leader epoch {epoch}): \
             marked as failed",
            key.0,
            key.1
        );
    }
}

/// Sets a target's `truncated` flag if it is still the same fetch (same epoch).
fn set_truncated(targets: &Targets, key: &(String, i32), epoch: i32, truncated: bool) {
    if let Some(target) = lock(targets).get_mut(key)
        && target.leader_epoch == epoch
    {
        target.truncated = truncated;
    }
}

/// One OffsetsForLeaderEpoch round for the partitions not yet truncated. Returns whether any
/// made progress.
async fn truncate(
    host: &dyn FetcherHost,
    connection: &mut Client,
    leader: i32,
    targets: &Targets,
    snapshot: Vec<((String, i32), FetchTarget)>,
) -> Result<bool, WireError> {
    let mut asked: BTreeMap<(String, i32), FetchTarget> = BTreeMap::new();
    let mut progress = false;
    for (key, target) in snapshot.into_iter().filter(|(_, t)| !t.truncated) {
        if target.partition.latest_epoch().is_none() {
            // Nothing with an epoch here: nothing can diverge but an epoch-less tail.
            let high_watermark = target.partition.offsets().high_watermark;
            if let Err(error) = target.partition.truncate_to(high_watermark) {
                tracing::error!("cannot truncate {}-{}: {error}", key.0, key.1);
                continue;
            }
            set_truncated(targets, &key, target.leader_epoch, true);
            progress = true;
            continue;
        }
        asked.insert(key, target);
    }
    if asked.is_empty() {
        return Ok(progress);
    }
    let mut topics: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    for ((topic, index), target) in &asked {
        topics.entry(topic.clone()).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(*index)
                .with_current_leader_epoch(target.leader_epoch)
                .with_leader_epoch(target.partition.latest_epoch().unwrap_or(-1)),
        );
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(host.broker_id()))
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response: OffsetForLeaderEpochResponse = connection
        .call(OFFSET_FOR_LEADER_EPOCH_VERSION, &request)
        .await?;
    for topic in response.topics {
        for answer in topic.partitions {
            let key = (topic.topic.0.to_string(), answer.partition);
            let Some(target) = asked.get(&key) else {
                continue;
            };
            match ResponseError::try_from_code(answer.error_code) {
                None => {
                    apply_truncation(host.broker_id(), leader, targets, &key, target, &answer);
                    progress = true;
                }
                Some(error @ ResponseError::FencedLeaderEpoch) => mark_failed(
                    targets,
                    &key,
                    target.leader_epoch,
                    leader,
                    &format!("was refused by the leader ({error:?})"),
                ),
                Some(_) => {}
            }
        }
    }
    Ok(progress)
}

/// Kafka's `getOffsetTruncationState`: where to truncate given the leader's answer.
fn apply_truncation(
    broker_id: i32,
    leader: i32,
    targets: &Targets,
    key: &(String, i32),
    target: &FetchTarget,
    answer: &kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset,
) {
    let partition = &target.partition;
    let log_end_offset = partition.log_end_offset();
    let (offset, completed) = if answer.leader_epoch < 0 || answer.end_offset < 0 {
        // The leader knows no epoch as old as ours: fall back to the high watermark.
        (partition.offsets().high_watermark, true)
    } else if answer.end_offset >= log_end_offset {
        (log_end_offset, true)
    } else {
        match partition.local_epoch_end(Some(answer.leader_epoch)) {
            Some((local_epoch, local_end)) if local_epoch != answer.leader_epoch => {
                (local_end.min(log_end_offset), false)
            }
            _ => (answer.end_offset.min(log_end_offset), true),
        }
    };
    #[cfg(feature = "planted-bugs")] // planted bug: deposed-leader-keeps-divergent-tail
    let (offset, completed) = if planted::is_active(PlantedBug::DeposedLeaderKeepsDivergentTail) {
        (log_end_offset, true)
    } else {
        (offset, completed)
    };
    #[cfg(feature = "planted-bugs")] // planted bug: truncation-keeps-one-divergent-record
    let offset = if planted::is_active(PlantedBug::TruncationKeepsOneDivergentRecord) {
        (offset + 1).min(log_end_offset)
    } else {
        offset
    };
    if offset < log_end_offset {
        tracing::info!(
            "[ReplicaFetcher replicaId={broker_id}, leaderId={leader}] Truncating partition \
             {}-{} with TruncationState(offset={offset}, completed={completed}) due to remote \
             leader epoch and end offset EpochEndOffset(leaderEpoch={}, endOffset={})",
            key.0,
            key.1,
            answer.leader_epoch,
            answer.end_offset
        );
        tracing::info!(
            "Truncating partition {}-{} to offset {offset} (local log end offset \
             {log_end_offset})",
            key.0,
            key.1
        );
        if let Err(error) = partition.truncate_to(offset) {
            tracing::error!("cannot truncate {}-{}: {error}", key.0, key.1);
            return;
        }
    }
    set_truncated(targets, key, target.leader_epoch, completed);
}

/// One Fetch from the leader for every truncated partition. Returns whether any data or
/// progress came back.
async fn fetch(
    host: &dyn FetcherHost,
    connection: &mut Client,
    leader: i32,
    targets: &Targets,
    snapshot: Vec<((String, i32), FetchTarget)>,
) -> Result<bool, WireError> {
    let partition_max_bytes = i32::try_from(host.fetch_max_bytes()).unwrap_or(i32::MAX);
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    for ((topic, index), target) in &snapshot {
        topics.entry(topic.clone()).or_default().push(
            FetchPartition::default()
                .with_partition(*index)
                .with_current_leader_epoch(target.leader_epoch)
                .with_fetch_offset(target.partition.log_end_offset())
                .with_last_fetched_epoch(target.partition.latest_epoch().unwrap_or(-1))
                .with_log_start_offset(target.partition.offsets().log_start_offset)
                .with_partition_max_bytes(partition_max_bytes),
        );
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(host.broker_id()))
        .with_max_wait_ms(i32::try_from(host.fetch_wait_max_ms()).unwrap_or(500))
        .with_min_bytes(1)
        .with_max_bytes(FETCH_RESPONSE_MAX_BYTES)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response: FetchResponse = connection.call(FETCH_VERSION, &request).await?;
    let by_key: BTreeMap<(String, i32), FetchTarget> = snapshot.into_iter().collect();
    let mut progress = false;
    for topic in response.responses {
        for data in topic.partitions {
            let key = (topic.topic.0.to_string(), data.partition_index);
            let Some(target) = by_key.get(&key) else {
                continue;
            };
            let still_fetching = lock(targets)
                .get(&key)
                .is_some_and(|t| t.leader_epoch == target.leader_epoch && t.truncated);
            if !still_fetching {
                continue;
            }
            match ResponseError::try_from_code(data.error_code) {
                None => {
                    let records = data.records.unwrap_or_default();
                    match target.partition.append_as_follower(
                        &records,
                        data.high_watermark,
                        target.leader_epoch,
                    ) {
                        Ok(appended) => progress |= appended.is_some() || records.is_empty(),
                        Err(PartitionError::Append(AppendError::OffsetsOutOfOrder { .. })) => {
                            set_truncated(targets, &key, target.leader_epoch, false);
                        }
                        Err(PartitionError::FencedLeaderEpoch { .. }) => {}
                        // Said once when the directory failed; the broker is stopping.
                        Err(PartitionError::LogDirOffline(_)) => {}
                        Err(error) => tracing::error!(
                            "[ReplicaFetcher leaderId={leader}] cannot append to {}-{}: {error}",
                            key.0,
                            key.1
                        ),
                    }
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    set_truncated(targets, &key, target.leader_epoch, false);
                }
                Some(error @ ResponseError::FencedLeaderEpoch) => mark_failed(
                    targets,
                    &key,
                    target.leader_epoch,
                    leader,
                    &format!("was refused by the leader ({error:?})"),
                ),
                Some(_) => {}
            }
        }
    }
    Ok(progress)
}
