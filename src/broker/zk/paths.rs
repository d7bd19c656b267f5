//! Kafka's ZooKeeper paths, as its brokers and tools use them.

pub const BROKER_IDS_PATH: &str = "/brokers/ids";
pub const TOPICS_PATH: &str = "/brokers/topics";
pub const TOPIC_CONFIGS_PATH: &str = "/config/topics";
pub const CONTROLLER_PATH: &str = "/controller";
pub const CONTROLLER_EPOCH_PATH: &str = "/controller_epoch";
/// The latest block of producer ids reserved by a broker (JSON: producer_state::producer_ids).
pub const PRODUCER_ID_BLOCK_PATH: &str = "/latest_producer_id_block";

/// Brokers back from an unclean shutdown, one persistent child each, until the controller has
/// taken them out of every ISR and ELR (KIP-966, `broker::elr`). Ours: Kafka keeps this in
/// KRaft's broker registration, which ZooKeeper mode does not have.
pub const UNCLEAN_SHUTDOWNS_PATH: &str = "/brokers/unclean_shutdowns";

pub fn broker_path(broker_id: i32) -> String {
    format!("{BROKER_IDS_PATH}/{broker_id}")
}

pub fn topic_path(topic: &str) -> String {
    format!("{TOPICS_PATH}/{topic}")
}

pub fn partition_state_path(topic: &str, partition: i32) -> String {
    format!("{TOPICS_PATH}/{topic}/partitions/{partition}/state")
}

pub fn topic_config_path(topic: &str) -> String {
    format!("{TOPIC_CONFIGS_PATH}/{topic}")
}
