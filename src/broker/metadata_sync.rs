//! Keeps this broker in step with the coordinator: the live brokers, the controller, every
//! topic's assignment, partition states and config go into the metadata cache (so any broker
//! answers Metadata for the whole cluster), and each partition state this broker replicates
//! is applied as a role change: become leader (stop fetching) or become follower of the new
//! leader with the new leader epoch (start a fetcher, which truncates first). Role changes of
//! `__consumer_offsets` partitions also start or stop the group coordinator's shards.
//!
//! This plays the part of Kafka's LeaderAndIsr and UpdateMetadata requests (which the
//! `kafka-protocol` crate, following Kafka 4, no longer has): persistent recursive watches on
//! `/brokers` and `/config/topics` and a persistent watch on `/controller` report every change;
//! the changed path is re-read. After a reconnection (the watches are added again, see
//! [`PersistentWatches`]) or a new session everything is re-read.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

use super::context::Broker;
use super::group::GROUP_METADATA_TOPIC;
use super::metadata_cache::BrokerEndpoint;
use super::partition::{LeaderAndIsr, RoleChange};
use super::replica_fetcher::FetcherHost;
use super::zk::{
    BROKER_IDS_PATH, CONTROLLER_PATH, PersistentWatches, TOPIC_CONFIGS_PATH, TOPICS_PATH,
    TopicRecord, ZkClientError, is_reconnection,
};

/// Pause before re-establishing the watches after an error.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// A full re-read this often, as a safety net (events are the normal path).
const RESYNC_INTERVAL: Duration = Duration::from_secs(10);

/// Runs until the broker stops.
pub async fn run(broker: Arc<Broker>, mut stopped: watch::Receiver<bool>) {
    loop {
        let round = tokio::select! {
            round = follow(&broker) => round,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        if let Err(error) = round {
            tracing::debug!("metadata sync: {error}");
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_BACKOFF) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// Watches and applies changes until the session ends (an error).
async fn follow(broker: &Arc<Broker>) -> Result<(), ZkClientError> {
    let mut watches = PersistentWatches::add(
        &broker.coordinator,
        &[
            ("/brokers", true),
            (TOPIC_CONFIGS_PATH, true),
            (CONTROLLER_PATH, false),
        ],
    )
    .await?;
    resync(broker).await?;
    let mut ticker = tokio::time::interval(RESYNC_INTERVAL);
    ticker.tick().await;
    loop {
        let event = tokio::select! {
            event = watches.changed() => event?,
            _ = ticker.tick() => {
                resync(broker).await?;
                continue;
            }
        };
        if is_reconnection(&event) {
            // Events while the connection was down are lost: watch again, re-read all.
            watches.renew(&broker.coordinator).await?;
            resync(broker).await?;
            continue;
        }
        if event.event_type == zk::EventType::Session {
            continue;
        }
        on_change(broker, &event.path).await?;
    }
}

/// Re-reads whatever `path` covers.
async fn on_change(broker: &Arc<Broker>, path: &str) -> Result<(), ZkClientError> {
    if path == CONTROLLER_PATH {
        return refresh_controller(broker).await;
    }
    if path == BROKER_IDS_PATH || path.starts_with("/brokers/ids/") {
        return refresh_brokers(broker).await;
    }
    if let Some(topic) = path.strip_prefix("/config/topics/") {
        return refresh_topic(broker, topic).await;
    }
    if path == TOPICS_PATH {
        return refresh_topics(broker).await;
    }
    let Some(rest) = path.strip_prefix("/brokers/topics/") else {
        return Ok(());
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [topic] => refresh_topic(broker, topic).await,
        [topic, "partitions", partition, "state"] => match partition.parse::<i32>() {
            Ok(partition) => refresh_partition(broker, topic, partition).await,
            Err(_) => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Re-reads everything.
pub async fn resync(broker: &Arc<Broker>) -> Result<(), ZkClientError> {
    refresh_brokers(broker).await?;
    refresh_controller(broker).await?;
    refresh_topics(broker).await
}

async fn refresh_controller(broker: &Broker) -> Result<(), ZkClientError> {
    let controller = broker.coordinator.controller_id().await?;
    broker.metadata.set_controller_id(controller.unwrap_or(-1));
    Ok(())
}

/// Reads the live brokers into the metadata cache.
pub async fn refresh_brokers(broker: &Broker) -> Result<(), ZkClientError> {
    let live = broker.coordinator.live_brokers().await?;
    broker.metadata.set_brokers(
        live.into_iter()
            .map(|(broker_id, registration)| BrokerEndpoint {
                broker_id,
                host: registration.host,
                port: registration.port,
                rack: registration.rack,
            }),
    );
    Ok(())
}

/// Reads every topic; forgets those gone.
async fn refresh_topics(broker: &Arc<Broker>) -> Result<(), ZkClientError> {
    let names = broker.coordinator.topic_names().await?;
    for name in &names {
        refresh_topic(broker, name).await?;
    }
    for known in broker.metadata.topics() {
        if !names.contains(&known.name) {
            forget_topic(broker, &known.name);
        }
    }
    Ok(())
}

/// Reads one topic (assignment, states, config) and applies it; forgets it if it is gone.
/// Holds the topic-admin lock so that a read cannot interleave with a creation or deletion
/// on this broker (a stale read applied after a deletion would re-create the logs).
async fn refresh_topic(broker: &Arc<Broker>, name: &str) -> Result<(), ZkClientError> {
    let _admin = broker.topic_admin.lock().await;
    refresh_topic_locked(broker, name).await
}

async fn refresh_topic_locked(broker: &Arc<Broker>, name: &str) -> Result<(), ZkClientError> {
    match broker.coordinator.topic(name).await? {
        Some(record) => {
            apply_topic(broker, &record);
            Ok(())
        }
        None => {
            forget_topic(broker, name);
            Ok(())
        }
    }
}

async fn refresh_partition(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
) -> Result<(), ZkClientError> {
    let _admin = broker.topic_admin.lock().await;
    let Some(replicas) = broker.metadata.topic(topic).and_then(|record| {
        record
            .partitions
            .get(&partition)
            .map(|s| s.replicas.clone())
    }) else {
        return refresh_topic_locked(broker, topic).await;
    };
    let Some((state, zk_version)) = broker.coordinator.partition_state(topic, partition).await?
    else {
        return Ok(());
    };
    apply_partition(
        broker,
        topic,
        partition,
        LeaderAndIsr {
            leader: state.leader,
            leader_epoch: state.leader_epoch,
            replicas,
            isr: state.isr,
            elr: state.elr,
            controller_epoch: state.controller_epoch,
            zk_version,
        },
    );
    Ok(())
}

/// Puts a topic in the metadata cache and applies each partition state.
pub fn apply_topic(broker: &Arc<Broker>, record: &TopicRecord) {
    let known = broker.metadata.topic(&record.name);
    let mut cached = record.clone();
    if let Some(known) = known {
        // Keep newer states already applied (an event may have raced this read).
        for (index, state) in cached.partitions.iter_mut() {
            if let Some(old) = known.partitions.get(index)
                && is_newer(old, state)
            {
                *state = old.clone();
            }
        }
    }
    broker.metadata.upsert_topic(cached.clone());
    for (index, state) in &cached.partitions {
        // No state znode: being created (its state follows) or being deleted.
        if state.zk_version >= 0 {
            apply_role(broker, &record.name, *index, state.clone());
        }
    }
}

/// Applies one partition state: the metadata cache, then this broker's role.
pub fn apply_partition(broker: &Arc<Broker>, topic: &str, partition: i32, state: LeaderAndIsr) {
    let newer_known = broker
        .metadata
        .topic(topic)
        .and_then(|record| record.partitions.get(&partition).cloned())
        .is_some_and(|old| is_newer(&old, &state));
    if newer_known {
        return;
    }
    broker
        .metadata
        .update_partition(topic, partition, state.clone());
    apply_role(broker, topic, partition, state);
}

/// Whether `a` is a strictly newer state than `b`.
fn is_newer(a: &LeaderAndIsr, b: &LeaderAndIsr) -> bool {
    (a.leader_epoch, a.zk_version) > (b.leader_epoch, b.zk_version)
}

fn apply_role(broker: &Arc<Broker>, topic: &str, partition: i32, state: LeaderAndIsr) {
    // KIP-966's strict min ISR, with eligible leader replicas on.
    let high_watermark_min_isr = broker
        .config
        .eligible_leader_replicas_enable
        .then(|| broker.min_insync_replicas(topic));
    let applied = match broker
        .replicas
        .apply(topic, partition, state, high_watermark_min_isr)
    {
        Ok(Some(applied)) => applied,
        Ok(None) => return,
        Err(error) => {
            tracing::error!("cannot open the log of {topic}-{partition}: {error}");
            return;
        }
    };
    if topic == GROUP_METADATA_TOPIC {
        broker
            .groups
            .on_role_change(&broker.group_host(), &applied.0, applied.1);
    }
    match applied {
        (_, RoleChange::BecameLeader { .. } | RoleChange::NoLeader) => {
            broker.fetchers.remove(topic, partition);
        }
        (
            replica,
            RoleChange::BecameFollower {
                leader,
                leader_epoch,
            },
        ) => {
            #[cfg(feature = "planted-bugs")] // planted bug: follower-truncates-to-high-watermark
            if crate::planted::is_active(
                crate::planted::PlantedBug::FollowerTruncatesToHighWatermark,
            ) && let Err(error) = replica.truncate_to(replica.offsets().high_watermark)
            {
                tracing::error!("cannot truncate {topic}-{partition}: {error}");
            }
            tracing::info!(
                "[Broker id={}] Follower {topic}-{partition} starts at leader epoch \
                 {leader_epoch} from offset {} with high watermark {}, leader {leader}",
                broker.id(),
                replica.log_end_offset(),
                replica.offsets().high_watermark
            );
            let host: Arc<dyn FetcherHost> = Arc::clone(broker) as Arc<dyn FetcherHost>;
            broker.fetchers.add(&host, leader, replica, leader_epoch);
        }
        (_, RoleChange::Unchanged | RoleChange::Stale) => {}
    }
}

fn forget_topic(broker: &Broker, name: &str) {
    if name == GROUP_METADATA_TOPIC {
        broker.groups.resign_all(broker.id());
    }
    let known = broker.metadata.remove_topic(name).is_some();
    for replica in broker.replicas.all() {
        if replica.topic == name {
            broker.fetchers.remove(name, replica.index);
        }
    }
    if let Err(error) = broker.replicas.delete_topic(name) {
        tracing::error!("cannot delete the logs of topic {name}: {error}");
    }
    if known {
        tracing::info!("topic {name} was deleted");
    }
}
