//! Creating the workload's topic through the Kafka admin API (rdkafka's `AdminClient`), retried
//! until the cluster accepts it (a controller may not be elected yet) or a deadline passes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// The topic could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create topic {topic}: {reason}")]
pub struct TopicError {
    pub topic: String,
    pub reason: String,
}

/// Creates `topic` with `partitions`, `replication_factor` and topic-level `configs`; an
/// existing topic is fine.
pub async fn create_topic(
    bootstrap_servers: &str,
    topic: &str,
    partitions: u32,
    replication_factor: u32,
    configs: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(), TopicError> {
    let error = |reason: String| TopicError {
        topic: topic.to_string(),
        reason,
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("client.id", "kchaos-admin")
        .set("log_level", "3")
        .create()
        .map_err(|e| error(e.to_string()))?;
    let mut new_topic = NewTopic::new(
        topic,
        partitions as i32,
        TopicReplication::Fixed(replication_factor as i32),
    );
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(5)))
        .request_timeout(Some(Duration::from_secs(5)));
    let deadline = Instant::now() + timeout;
    let mut last_error = String::from("no attempt");
    while Instant::now() < deadline {
        match admin.create_topics([&new_topic], &options).await {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
                    return Ok(());
                }
                Some(Err((_, code))) => last_error = format!("{code:?}"),
                None => last_error = "no result".into(),
            },
            Err(e) => last_error = e.to_string(),
        }
        tracing::debug!("creating topic {topic}: {last_error}; again");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(error(format!(
        "still failing after {} ms: {last_error}",
        timeout.as_millis()
    )))
}
