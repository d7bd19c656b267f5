//! The harness's library API against real processes (our coordinator and broker): a cluster
//! from command templates, metadata read with raw Kafka requests, a topic created, and the
//! nemesis killing and starting a named node — the way a test reads with turmoil.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::cluster::config::{ClusterConfig, CommandTemplates};
use harness::cluster::metadata;
use harness::cluster::topic::{NewTopic, create_topic};
use harness::cluster::{Cluster, NodeStatus};
use harness::nemesis::Nemesis;
use harness::recorder::Recorder;
use harness::wait::wait_for_async;
use history::{HistoryWriter, read_history};

fn templates() -> CommandTemplates {
    let exe = env!("CARGO_BIN_EXE_kchaos").to_string();
    CommandTemplates {
        coordinator: [
            exe.as_str(),
            "coordinator",
            "--port",
            "{port}",
            "--data-dir",
            "{data_dir}",
            "--tick-time-ms",
            "100",
        ]
        .map(String::from)
        .to_vec(),
        broker: [exe.as_str(), "broker", "--config", "{config}"]
            .map(String::from)
            .to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_broker_cluster_is_created_described_killed_and_started() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::prepare(&ClusterConfig {
        dir: dir.path().to_path_buf(),
        brokers: 1,
        session_timeout_ms: 1000,
        broker_configs: BTreeMap::new(),
        templates: templates(),
    })
    .unwrap();
    cluster.start_all().unwrap();
    let addresses = cluster.broker_addresses();
    let cluster = Arc::new(Mutex::new(cluster));

    let brokers = wait_for_async(
        "broker 1 in the metadata",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            metadata::fetch(&addresses, None, Duration::from_secs(1))
                .await
                .ok()
                .filter(|metadata| metadata.brokers == vec![1])
        },
    )
    .await
    .unwrap();
    assert_eq!(brokers.brokers, vec![1]);

    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "1".to_string())]);
    let topic = NewTopic {
        name: "t",
        partitions: 2,
        replication_factor: 1,
        configs: &configs,
    };
    create_topic(&addresses, &topic, Duration::from_secs(30))
        .await
        .unwrap();
    // Creating it again is fine.
    create_topic(&addresses, &topic, Duration::from_secs(30))
        .await
        .unwrap();
    let described = wait_for_async(
        "both partitions led",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            metadata::fetch(&addresses, Some("t"), Duration::from_secs(1))
                .await
                .ok()
                .filter(|metadata| metadata.all_partitions_led(2))
        },
    )
    .await
    .unwrap();
    assert_eq!(described.partition(1).unwrap().leader, Some(1));
    assert_eq!(described.partition(1).unwrap().replicas, vec![1]);

    let history_path = dir.path().join("history.jsonl");
    let recorder = Recorder::new(HistoryWriter::create(&history_path).unwrap());
    let nemesis = Nemesis::new(Arc::clone(&cluster), recorder.clone());
    nemesis.kill("broker-1").await.unwrap();
    assert_eq!(
        cluster.lock().unwrap().status("broker-1").unwrap(),
        NodeStatus::Down
    );
    assert!(
        metadata::fetch(&addresses, None, Duration::from_secs(1))
            .await
            .is_err(),
        "a killed broker does not answer"
    );
    nemesis.start("broker-1").await.unwrap();
    // The topic survives the crash: the restarted broker leads both partitions again.
    wait_for_async(
        "the restarted broker to lead again",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            if cluster.lock().unwrap().status("broker-1").ok() == Some(NodeStatus::Down) {
                // Restarted before its old session expired: it refuses; start it again.
                let _ = cluster.lock().unwrap().start("broker-1");
            }
            metadata::fetch(&addresses, Some("t"), Duration::from_secs(1))
                .await
                .ok()
                .filter(|metadata| metadata.all_partitions_led(2))
        },
    )
    .await
    .unwrap();
    recorder.close().unwrap();
    let fs: Vec<String> = read_history(&history_path)
        .unwrap()
        .map(|op| op.unwrap().f)
        .collect();
    assert_eq!(fs, ["kill", "kill", "start", "start"]);
    cluster
        .lock()
        .unwrap()
        .stop_all(Duration::from_secs(10))
        .unwrap();
}
