//! A process that owns a network is SIGKILLed: its network is then stale, found by tag, and
//! removed, down to the last namespace, link and lock file.

mod common;

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use common::{Helper, await_condition, output_of, process_alive, traces_of};

/// Re-executed as the network owner (and its listeners).
#[test]
fn helper() {
    common::helper_main();
}

#[test]
fn a_killed_owner_leaves_a_stale_network_that_remove_stale_removes() {
    let mut owner = Helper::spawn("helper", "own-network", None, |_| {});
    let ready = owner.line_starting("READY ");
    let mut fields = ready.split_whitespace();
    let tag = fields.next().expect("the tag").to_string();
    let listener_pids: Vec<i32> = fields
        .map(|pid| pid.parse().expect("a listener pid"))
        .collect();
    assert_eq!(listener_pids.len(), 3);
    assert_eq!(
        traces_of(&tag).len(),
        3 + 4,
        "3 namespaces, 3 veths and a bridge"
    );
    for node in ["n1", "n2", "n3"] {
        let namespace = format!("{tag}-{node}");
        let tables = output_of(
            "ip",
            &["netns", "exec", &namespace, "nft", "list", "tables"],
        );
        assert_eq!(tables.trim(), format!("table inet {tag}"), "in {namespace}");
    }

    let stale_before = netfault::find_stale(&tag).expect("find_stale");
    assert_eq!(
        stale_before,
        Vec::new(),
        "a live owner's network is not stale"
    );
    assert_eq!(
        netfault::remove_stale(&tag).expect("remove_stale"),
        Vec::new()
    );
    assert_eq!(
        traces_of(&tag).len(),
        7,
        "remove_stale left the live network alone"
    );

    kill(Pid::from_raw(owner.pid()), Signal::SIGKILL).expect("SIGKILL the owner");
    owner.child.wait().expect("reap the owner");
    // Its children die with it (PR_SET_PDEATHSIG); the network stays.
    await_condition("the listeners to die", Duration::from_secs(10), || {
        listener_pids.iter().all(|&pid| !process_alive(pid))
    });

    let stale = netfault::find_stale(netfault::TAG_PREFIX).expect("find_stale");
    let ours = stale
        .iter()
        .find(|network| network.tag.as_str() == tag)
        .unwrap_or_else(|| panic!("{tag} is not in {stale:?}"));
    assert_eq!(ours.run_id.as_deref(), Some("killed-owner"));
    assert_eq!(ours.namespaces.len(), 3, "{ours:?}");
    assert_eq!(ours.links.len(), 4, "{ours:?}");
    let lock_file = ours.lock_file.clone().expect("its slot lock file");
    assert!(lock_file.exists());

    let removed = netfault::remove_stale(&tag).expect("remove_stale");
    assert_eq!(removed.len(), 1);
    // The nft tables lived in the namespaces, now gone (`traces_of` also lists the root
    // namespace's tables).
    assert_eq!(traces_of(&tag), Vec::<String>::new(), "left behind");
    assert!(!lock_file.exists(), "the slot is free again");
    assert_eq!(netfault::find_stale(&tag).expect("find_stale"), Vec::new());
}
