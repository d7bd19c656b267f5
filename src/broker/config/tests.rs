//! Unit tests of [`super`] (config.rs).

use super::*;

const MINIMAL: &str = "broker.id=1\nzookeeper.connect=127.0.0.1:2181\n";

fn parse(text: &str) -> Result<ParsedConfig, ConfigError> {
    BrokerConfig::parse(text)
}

#[test]
fn defaults_are_kafkas() {
    let parsed = parse(MINIMAL).expect("valid");
    let config = parsed.config;
    assert_eq!(config.broker_id, 1);
    assert_eq!(config.listener().to_uri(), "PLAINTEXT://127.0.0.1:9092");
    assert_eq!(config.advertised_listener(), config.listener());
    assert_eq!(config.zookeeper_session_timeout_ms, 18000);
    assert_eq!(config.message_max_bytes, 1048588);
    assert_eq!(config.replica_lag_time_max_ms, 30000);
    assert_eq!(config.min_insync_replicas, 1);
    assert!(!config.unclean_leader_election_enable);
    assert!(config.auto_create_topics_enable);
    assert_eq!(config.log_dirs, vec![PathBuf::from("/tmp/kafka-logs")]);
    assert_eq!(config.socket_request_max_bytes, 104857600);
    assert_eq!(config.max_connections, 2147483647);
    assert_eq!(config.connections_max_idle_ms, 600000);
    assert_eq!(config.producer_id_expiration_ms, 86_400_000);
    assert_eq!(config.producer_id_expiration_check_interval_ms, 600_000);
    assert_eq!(
        config.queued_max_request_bytes,
        Some(QUEUED_MAX_REQUEST_BYTES_DEFAULT)
    );
    assert_eq!(config.group_coordinator, GroupCoordinatorConfig::default());
    assert_eq!(config.group_coordinator.offsets_topic_num_partitions, 50);
    assert_eq!(config.group_coordinator.offsets_topic_replication_factor, 3);
    assert_eq!(config.group_coordinator.group_min_session_timeout_ms, 6000);
    assert_eq!(
        config.group_coordinator.group_initial_rebalance_delay_ms,
        3000
    );
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
}

#[test]
fn request_memory_bound_fits_the_largest_request() {
    let config = parse(&format!(
        "{MINIMAL}queued.max.request.bytes=-1
"
    ))
    .expect("valid")
    .config;
    assert_eq!(config.queued_max_request_bytes, None);
    let config = parse(&format!(
        "{MINIMAL}socket.request.max.bytes=500000000
"
    ))
    .expect("valid")
    .config;
    assert_eq!(config.queued_max_request_bytes, Some(500000000));
    let error = parse(&format!(
        "{MINIMAL}socket.request.max.bytes=1000
queued.max.request.bytes=999
"
    ))
    .expect_err("smaller than one request");
    assert!(
        error.to_string().contains("queued.max.request.bytes"),
        "{error}"
    );
    assert!(
        parse(&format!(
            "{MINIMAL}max.connections=0
"
        ))
        .is_err()
    );
    assert!(
        parse(&format!(
            "{MINIMAL}connections.max.idle.ms=-1
"
        ))
        .is_err()
    );
}

#[test]
fn reads_kafka_keys_comments_and_separators() {
    let text = "# a comment\n! another\nbroker.id = 3\nzookeeper.connect: zk:2181\n\
                listeners=PLAINTEXT://localhost:9094\nlog.dirs /tmp/a,/tmp/b\n\
                advertised.listeners=PLAINTEXT://example:19094\nbroker.rack=r1\n\
                log.flush.interval.messages=1\nnum.partitions=\\\n  3\n";
    let config = parse(text).expect("valid").config;
    assert_eq!(config.broker_id, 3);
    assert_eq!(config.zookeeper_connect, "zk:2181");
    assert_eq!(config.listener().host, "localhost");
    assert_eq!(config.listener().port, 9094);
    assert_eq!(
        config.advertised_listener().to_uri(),
        "PLAINTEXT://example:19094"
    );
    assert_eq!(config.log_dirs.len(), 2);
    assert_eq!(config.broker_rack.as_deref(), Some("r1"));
    assert_eq!(config.log_flush_interval_messages, 1);
    assert_eq!(config.num_partitions, 3);
}

#[test]
fn unknown_key_is_a_warning() {
    let parsed = parse(&format!("{MINIMAL}frobnicate.ms=3\nnum.io.threads=8\n")).expect("valid");
    assert_eq!(parsed.warnings.len(), 1);
    assert!(parsed.warnings[0].contains("frobnicate.ms"));
}

#[test]
fn bad_value_names_key_and_value() {
    let error = parse(&format!("{MINIMAL}num.partitions=many\n")).expect_err("invalid");
    let message = error.to_string();
    assert!(
        message.contains("num.partitions") && message.contains("many"),
        "{message}"
    );
    let error = parse(&format!("{MINIMAL}auto.create.topics.enable=yes\n")).expect_err("bad");
    assert!(error.to_string().contains("auto.create.topics.enable"));
    let error = parse(&format!("{MINIMAL}listeners=SSL://h:1\n")).expect_err("bad");
    assert!(error.to_string().contains("listeners"));
    let error = parse(&format!("{MINIMAL}log.segment.bytes=0\n")).expect_err("bad");
    assert!(error.to_string().contains("log.segment.bytes"));
}

#[test]
fn group_coordinator_keys() {
    let text = format!(
        "{MINIMAL}offsets.topic.num.partitions=5\noffsets.topic.replication.factor=1\n\
         group.initial.rebalance.delay.ms=0\ngroup.min.session.timeout.ms=500\n"
    );
    let parsed = parse(&text).expect("valid");
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let group = parsed.config.group_coordinator;
    assert_eq!(group.offsets_topic_num_partitions, 5);
    assert_eq!(group.offsets_topic_replication_factor, 1);
    assert_eq!(group.group_initial_rebalance_delay_ms, 0);
    assert_eq!(group.group_min_session_timeout_ms, 500);
    let error =
        parse(&format!("{MINIMAL}group.initial.rebalance.delay.ms=-1\n")).expect_err("negative");
    assert!(
        error
            .to_string()
            .contains("group.initial.rebalance.delay.ms")
    );
    let error = parse(&format!(
        "{MINIMAL}group.min.session.timeout.ms=9000\ngroup.max.session.timeout.ms=8000\n"
    ))
    .expect_err("min above max");
    assert!(error.to_string().contains("group.min.session.timeout.ms"));
    assert!(parse(&format!("{MINIMAL}offsets.topic.replication.factor=0\n")).is_err());
}

#[test]
fn broker_id_and_zookeeper_are_required() {
    assert!(matches!(
        parse("zookeeper.connect=z:1\n"),
        Err(ConfigError::Missing { key: "broker.id" })
    ));
    assert!(matches!(
        parse("broker.id=1\n"),
        Err(ConfigError::Missing {
            key: "zookeeper.connect"
        })
    ));
}
