//! Kafka's JSON read and written as Apache Kafka does; ephemeral lifetimes.

use super::*;

#[test]
fn broker_registration_is_kafkas_json() {
    let registration = BrokerRegistration::new("127.0.0.1", 9092, Some("r1".into()));
    let json: serde_json::Value = serde_json::from_slice(&to_json(&registration)).expect("json");
    assert_eq!(json["endpoints"][0], "PLAINTEXT://127.0.0.1:9092");
    assert_eq!(
        json["listener_security_protocol_map"]["PLAINTEXT"],
        "PLAINTEXT"
    );
    assert_eq!(json["port"], 9092);
    assert_eq!(json["version"], 5);
    assert_eq!(json["jmx_port"], -1);
    assert_eq!(json["rack"], "r1");
    assert!(json["timestamp"].is_string());
    let without_rack = to_json(&BrokerRegistration::new("h", 1, None));
    assert!(!String::from_utf8_lossy(&without_rack).contains("rack"));
}

#[test]
fn an_ephemeral_node_lives_up_to_the_negotiated_timeout_plus_a_tick() {
    let ms = Duration::from_millis;
    // tickTime 2000 (ZooKeeper's default): 2000 requested is raised to 4000 = 2 ticks.
    assert_eq!(
        ephemeral_lifetime(ms(2000), ms(4000)),
        ms(4000 + 2000 + 1000)
    );
    // Granted as asked: the tick is at most half of it.
    assert_eq!(
        ephemeral_lifetime(ms(18000), ms(18000)),
        ms(18000 + 9000 + 1000)
    );
    // Lowered to the maximum, 20 ticks.
    assert_eq!(
        ephemeral_lifetime(ms(60000), ms(40000)),
        ms(40000 + 2000 + 1000)
    );
}

#[test]
fn partition_state_reads_kafkas_json() {
    let state: PartitionStateJson = from_json(
        "/x",
        br#"{"controller_epoch":7,"leader":3,"version":1,"leader_epoch":8,"isr":[3,2,1]}"#,
    )
    .expect("parse");
    assert_eq!(state.leader, 3);
    assert_eq!(state.isr, vec![3, 2, 1]);
    let assignment: TopicAssignment =
        from_json("/y", br#"{"partitions":{"0":[3,2,1]}}"#).expect("parse");
    assert_eq!(assignment.partitions["0"], vec![3, 2, 1]);
    assert!(from_json::<TopicAssignment>("/z", b"not json").is_err());
}
