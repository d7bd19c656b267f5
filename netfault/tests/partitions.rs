//! Grudges on real namespaces with real TCP: a listener process in every node, connections tried
//! from every node to every other and from the root namespace (where clients live).

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use netfault::{Network, grudge};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use common::{BLOCKED_TIMEOUT, assert_connectivity, probe, start_listeners, traces_of};

/// Re-executed as the listener processes.
#[test]
fn helper() {
    common::helper_main();
}

const NODES: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];

#[test]
fn isolate_cuts_one_node_off_and_heal_restores_it() {
    let network = Network::create("test-isolate", &NODES).expect("create the network");
    let tag = network.tag().to_string();
    let _listeners = start_listeners("helper", &network);
    assert_connectivity(&network, &netfault::Grudge::new());

    let isolated = grudge::isolate(&NODES, "n2").expect("isolate");
    network.apply(&isolated).expect("apply");
    let n2 = network.node("n2").expect("n2");
    let n3 = network.node("n3").expect("n3");
    // The scenario in words, before the whole matrix.
    let cut = probe(Some(n2), n3.address(), BLOCKED_TIMEOUT).expect_err("n2 is cut off");
    assert_eq!(
        cut.kind(),
        ErrorKind::TimedOut,
        "dropped, not refused: {cut}"
    );
    probe(
        Some(n3),
        network.node("n4").expect("n4").address(),
        Duration::from_secs(10),
    )
    .expect("n3 still reaches n4");
    probe(None, n2.address(), Duration::from_secs(10)).expect("clients still reach n2");
    let reached = assert_connectivity(&network, &isolated);
    assert_eq!(reached[1], ("n2".to_string(), Vec::<String>::new()));

    network.heal().expect("heal");
    assert_connectivity(&network, &netfault::Grudge::new());
    drop(_listeners);
    network.teardown().expect("teardown");
    assert_eq!(traces_of(&tag), Vec::<String>::new(), "left behind");
}

#[test]
fn one_way_blocks_one_direction_only() {
    let network = Network::create("test-one-way", &NODES).expect("create the network");
    let _listeners = start_listeners("helper", &network);
    let n1 = network.node("n1").expect("n1");
    let n2 = network.node("n2").expect("n2");

    // Two connections opened before the fault, one in each direction between n1 and n2.
    let (from_n2, at_n1) = open_connection(n2, n1);
    let (from_n1, at_n2) = open_connection(n1, n2);

    let one_way = grudge::one_way(&NODES, "n1").expect("one-way");
    network.apply(&one_way).expect("apply");
    assert_connectivity(&network, &one_way);
    probe(Some(n1), n2.address(), Duration::from_secs(10)).expect("n1 still reaches n2");
    let cut = probe(Some(n2), n1.address(), BLOCKED_TIMEOUT).expect_err("n1 hears nothing new");
    assert_eq!(cut.kind(), ErrorKind::TimedOut, "{cut}");

    // On n1's own connection, what n2 sends arrives (replies, in conntrack's terms; n2 speaks
    // first, so this needs connection tracking on since before the fault): n1 can still use it.
    assert_delivered(&at_n2, &from_n1, true, "n2 -> n1 on n1's connection");
    assert_delivered(&from_n1, &at_n2, true, "n1 -> n2 on n1's connection");
    // On n2's connection, n1 hears nothing n2 sends, while n2 still hears n1.
    assert_delivered(&from_n2, &at_n1, false, "n2 -> n1 on n2's connection");
    assert_delivered(&at_n1, &from_n2, true, "n1 -> n2 on n2's connection");

    network.heal().expect("heal");
    assert_connectivity(&network, &netfault::Grudge::new());
}

#[test]
fn halves_bridge_and_ring_give_the_connectivity_their_definitions_say() {
    let network = Network::create("test-topologies", &NODES).expect("create the network");
    let _listeners = start_listeners("helper", &network);
    let rng = &mut ChaCha8Rng::seed_from_u64(12);
    let majority = grudge::majority(NODES.len());

    // Halves: two groups that reach within and not across, a minority and a majority.
    let halves = grudge::halves(&NODES, rng).expect("halves");
    network.apply(&halves).expect("apply halves");
    let seen = sees(assert_connectivity(&network, &halves));
    let groups: BTreeSet<&BTreeSet<String>> = seen.iter().collect();
    let sizes: Vec<usize> = groups.iter().map(|group| group.len()).collect();
    assert_eq!(sizes.len(), 2, "two halves: {seen:?}");
    assert_eq!(sizes.iter().sum::<usize>(), NODES.len(), "{seen:?}");
    assert!(sizes.contains(&majority), "{seen:?}");

    // Bridge: one node reaches everyone, the others reach a majority that includes it.
    let bridge = grudge::bridge(&NODES, rng).expect("bridge");
    network.apply(&bridge).expect("apply bridge");
    let seen = sees(assert_connectivity(&network, &bridge));
    let everywhere: Vec<&BTreeSet<String>> = seen
        .iter()
        .filter(|group| group.len() == NODES.len())
        .collect();
    assert_eq!(everywhere.len(), 1, "one bridge node: {seen:?}");
    assert!(seen.iter().all(|group| group.len() >= majority), "{seen:?}");

    // Ring: every node reaches a majority, no two the same one.
    let ring = grudge::ring(&NODES, rng).expect("ring");
    network.apply(&ring).expect("apply ring");
    let seen = sees(assert_connectivity(&network, &ring));
    assert!(
        seen.iter()
            .all(|group| group.len() >= majority && group.len() < NODES.len()),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        NODES.len(),
        "{seen:?}"
    );

    network.heal().expect("heal");
    assert_connectivity(&network, &netfault::Grudge::new());
}

#[test]
fn a_grudge_naming_another_node_is_refused() {
    let network = Network::create("test-unknown", &["n1", "n2"]).expect("create the network");
    let wrong = grudge::isolate(&["n1", "n2", "n9"], "n9").expect("isolate");
    let error = network
        .apply(&wrong)
        .expect_err("n9 is not in this network");
    assert!(error.to_string().contains("\"n9\""), "{error}");
}

/// For each node, the set of nodes it reached (itself included).
fn sees(reached: Vec<(String, Vec<String>)>) -> Vec<BTreeSet<String>> {
    reached
        .into_iter()
        .map(|(node, others)| others.into_iter().chain([node]).collect())
        .collect()
}

/// A connection from `client` to a listener opened in `server`'s namespace, in-process: both
/// sockets belong to their node's network stack. Returns (client end, server end).
fn open_connection(
    client: &netfault::NodeNetwork,
    server: &netfault::NodeNetwork,
) -> (TcpStream, TcpStream) {
    let listener = server
        .run_in(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .expect("enter")
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let address = (server.address(), port);
    let client_end = client
        .run_in(|| TcpStream::connect(address))
        .expect("enter")
        .expect("connect");
    let (server_end, peer) = listener.accept().expect("accept");
    assert_eq!(peer.ip(), client.address(), "the peer is the client node");
    (client_end, server_end)
}

/// Writes a byte on `sender` and checks whether `receiver` gets it.
fn assert_delivered(sender: &TcpStream, receiver: &TcpStream, expected: bool, what: &str) {
    (&*sender).write_all(b"x").expect("write");
    let timeout = if expected {
        Duration::from_secs(10)
    } else {
        BLOCKED_TIMEOUT
    };
    receiver.set_read_timeout(Some(timeout)).expect("timeout");
    let mut byte = [0u8; 1];
    let outcome = (&*receiver).read(&mut byte);
    match (expected, outcome) {
        (true, Ok(1)) | (false, Err(_)) => {}
        (_, outcome) => panic!("{what}: expected delivery {expected}, got {outcome:?}"),
    }
}
