//! The broker's coordinator session: registration with Kafka's JSON, a clean close on SIGTERM
//! (the ephemeral node goes at once, not after the session timeout), and re-registration
//! after a pause long enough for the session to expire.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::time::Duration;

use broker_support::{TestBroker, TestCoordinator, consume_all, produce_all, start_coordinator};
use harness::wait::wait_for_async;

async fn zk_client(coordinator: &TestCoordinator) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&coordinator.connect_string())
        .await
        .unwrap()
}

async fn registration(
    client: &zookeeper_client::Client,
    broker_id: i32,
) -> Option<serde_json::Value> {
    match client.get_data(&format!("/brokers/ids/{broker_id}")).await {
        Ok((data, _)) => Some(serde_json::from_slice(&data).unwrap()),
        Err(zookeeper_client::Error::NoNode) => None,
        Err(error) => panic!("get /brokers/ids/{broker_id}: {error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_deregisters_at_once() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    // A session far longer than the wait below: only a clean close removes the node in time.
    let mut broker = TestBroker::start(
        dir.path(),
        &coordinator,
        4,
        "zookeeper.session.timeout.ms=30000\nbroker.rack=r2",
    );
    let client = zk_client(&coordinator).await;
    let json = registration(&client, 4).await.expect("registered");
    assert_eq!(
        json["endpoints"][0],
        format!("PLAINTEXT://127.0.0.1:{}", broker.port)
    );
    assert_eq!(json["host"], "127.0.0.1");
    assert_eq!(json["port"], broker.port);
    assert_eq!(json["version"], 5);
    assert_eq!(json["rack"], "r2");
    assert_eq!(
        json["listener_security_protocol_map"]["PLAINTEXT"],
        "PLAINTEXT"
    );

    assert!(broker.terminate(), "the broker stops by itself on SIGTERM");
    wait_for_async(
        "the registration to disappear",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async { registration(&client, 4).await.is_none().then_some(()) },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_broker_registers_again_after_its_session_expires() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(
        dir.path(),
        &coordinator,
        1,
        "zookeeper.session.timeout.ms=1000",
    );
    let bootstrap = broker.bootstrap();
    let acked =
        tokio::task::spawn_blocking(move || produce_all(&bootstrap, "all", "paused", 0, 100))
            .await
            .unwrap();
    assert_eq!(acked.len(), 100);
    let client = zk_client(&coordinator).await;
    assert!(registration(&client, 1).await.is_some());

    broker.process.as_mut().unwrap().pause().unwrap();
    wait_for_async(
        "the session to expire",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { registration(&client, 1).await.is_none().then_some(()) },
    )
    .await
    .unwrap();
    broker.process.as_mut().unwrap().resume().unwrap();
    wait_for_async(
        "the broker to register again",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { registration(&client, 1).await },
    )
    .await
    .unwrap();
    assert!(
        broker.output().contains("registered again"),
        "{}",
        broker.output()
    );

    let bootstrap = broker.bootstrap();
    let read = tokio::task::spawn_blocking(move || consume_all(&bootstrap, "paused", 0, 100))
        .await
        .unwrap();
    assert_eq!(read, acked);
}
