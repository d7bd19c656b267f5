//! Building and removing node networks on the real machine: names, addresses, processes born in
//! a namespace, concurrent runs, teardown and drop, and the errors without root or tools.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use netfault::Network;
use netfault::tag::INTERFACE_NAME_MAX;

use common::{Helper, await_condition, output_of, probe, traces_of};

/// Re-executed as listener and prerequisite-check processes.
#[test]
fn helper() {
    common::helper_main();
}

#[test]
fn every_node_has_its_own_address_and_the_names_carry_the_tag() {
    let network = Network::create("test-layout", &["n1", "n2", "n3"]).expect("create");
    let tag = network.tag().to_string();
    let namespaces = output_of("ip", &["netns", "list"]);
    let links = output_of("ip", &["-o", "link"]);
    for (index, node) in network.nodes().iter().enumerate() {
        assert_eq!(node.namespace_name(), format!("{tag}-{}", node.name()));
        assert!(namespaces.contains(node.namespace_name()), "{namespaces}");
        let veth = format!("{tag}v{index}");
        assert!(veth.len() <= INTERFACE_NAME_MAX);
        assert!(links.contains(&format!(": {veth}@")), "{links}");
        // What a process born in the namespace sees: its own address, nobody else's.
        let mut command = Command::new("ip");
        command.args(["-o", "-4", "addr", "show"]);
        node.enter_on_spawn(&mut command);
        let output = command.output().expect("ip in the namespace");
        let addresses = String::from_utf8_lossy(&output.stdout);
        assert!(
            addresses.contains(&format!("eth0    inet {}/24", node.address())),
            "{addresses}"
        );
        assert_eq!(
            addresses.matches("inet ").count(),
            2,
            "lo and eth0: {addresses}"
        );
        // Nothing beyond the subnet is routed: no packet leaves, the failure is immediate.
        let outside = node
            .run_in(|| {
                let outside = std::net::SocketAddr::from(([203, 0, 113, 1], 53));
                TcpStream::connect_timeout(&outside, Duration::from_secs(5))
            })
            .expect("enter");
        let error = outside.expect_err("203.0.113.1 is unreachable from a node");
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::NetworkUnreachable,
            "{error}"
        );
        // The root namespace is reachable at the gateway address.
        let mut route_get = Command::new("ip");
        route_get.args(["-4", "route", "get", &network.gateway().to_string()]);
        node.enter_on_spawn(&mut route_get);
        let route = route_get.output().expect("ip route get");
        let route = String::from_utf8_lossy(&route.stdout);
        assert!(route.contains("dev eth0"), "{route}");
    }
    let bridge = network.bridge_name();
    assert!(bridge.len() <= INTERFACE_NAME_MAX);
    let bridge_addresses = output_of("ip", &["-o", "-4", "addr", "show", "dev", &bridge]);
    assert!(
        bridge_addresses.contains(&format!("inet {}/24", network.gateway())),
        "{bridge_addresses}"
    );
    assert_eq!(
        lock_files_naming(&tag),
        1,
        "one slot lock file names the run"
    );

    network.teardown().expect("teardown");
    assert_eq!(traces_of(&tag), Vec::<String>::new(), "left behind");
    assert_eq!(lock_files_naming(&tag), 0, "the slot is given back");
}

/// How many slot lock files name `tag`.
fn lock_files_naming(tag: &str) -> usize {
    std::fs::read_dir(netfault::subnet::LOCK_DIRECTORY)
        .expect("lock directory")
        .flatten()
        .filter(|entry| std::fs::read_to_string(entry.path()).is_ok_and(|text| text.contains(tag)))
        .count()
}

#[test]
fn a_foreign_server_in_a_namespace_serves_the_root_namespace_and_other_nodes() {
    let network = Network::create("test-http", &["n1", "n2"]).expect("create");
    let n1 = network.node("n1").expect("n1");
    let n2 = network.node("n2").expect("n2");
    let address = n1.address().to_string();
    let mut command = Command::new("python3");
    command
        .args(["-m", "http.server", "--bind", &address, "8000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    n1.enter_on_spawn(&mut command);
    let mut server = command.spawn().expect("python3 -m http.server");
    let get = |from: Option<&netfault::NodeNetwork>| -> std::io::Result<String> {
        let request = move || -> std::io::Result<String> {
            let mut stream = TcpStream::connect((n1.address(), 8000))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        };
        match from {
            Some(node) => node.run_in(request).expect("enter"),
            None => request(),
        }
    };
    await_condition("the server to answer", Duration::from_secs(30), || {
        get(None).is_ok()
    });
    for from in [None, Some(n2)] {
        let response = get(from).expect("GET /");
        assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn dropping_the_network_removes_it() {
    let network = Network::create("test-drop", &["n1", "n2"]).expect("create");
    let tag = network.tag().to_string();
    assert!(!traces_of(&tag).is_empty());
    drop(network);
    assert_eq!(traces_of(&tag), Vec::<String>::new(), "left behind");
}

#[test]
fn teardown_removes_the_links_even_with_a_process_still_inside() {
    let network = Network::create("test-busy", &["n1", "n2"]).expect("create");
    let tag = network.tag().to_string();
    let mut listener = Helper::spawn("helper", "listen", Some(&network.nodes()[0]), |_| {});
    listener.line_starting("LISTENING");
    probe(None, network.nodes()[0].address(), Duration::from_secs(10)).expect("reachable");
    network.teardown().expect("teardown");
    assert_eq!(traces_of(&tag), Vec::<String>::new(), "left behind");
    assert!(
        common::process_alive(listener.pid()),
        "the node process is still running"
    );
}

#[test]
fn concurrent_runs_get_their_own_tags_and_subnets() {
    let networks: Vec<Network> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|run| {
                scope.spawn(move || {
                    Network::create(&format!("test-concurrent-{run}"), &["n1", "n2"])
                        .expect("create")
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("thread"))
            .collect()
    });
    let tags: std::collections::BTreeSet<String> = networks
        .iter()
        .map(|network| network.tag().to_string())
        .collect();
    let subnets: std::collections::BTreeSet<String> = networks
        .iter()
        .map(|network| network.subnet().to_string())
        .collect();
    assert_eq!(tags.len(), 4);
    assert_eq!(subnets.len(), 4);
    // Live networks, in this process, are never taken for stale ones.
    let stale = netfault::find_stale(netfault::TAG_PREFIX).expect("find_stale");
    assert!(
        stale
            .iter()
            .all(|network| !tags.contains(network.tag.as_str())),
        "{stale:?}"
    );
    // Each network's nodes reach each other, and the root namespace reaches every node.
    for network in &networks {
        let _listeners = common::start_listeners("helper", network);
        common::assert_connectivity(network, &netfault::Grudge::new());
    }
    drop(networks);
    for tag in &tags {
        assert_eq!(traces_of(tag), Vec::<String>::new(), "left behind");
    }
}

#[test]
fn without_root_the_error_says_so() {
    // A copy of this binary that user nobody may run wherever the checkout is.
    let directory = tempfile::tempdir().expect("temp dir");
    let copy = directory.path().join("helper");
    std::fs::copy(std::env::current_exe().expect("test binary"), &copy).expect("copy");
    for path in [directory.path(), copy.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut helper = Helper::spawn_copy(&copy, "helper", "create-network", None, |command| {
        // SAFETY: setgroups/setgid/setuid are async-signal-safe system calls.
        unsafe {
            command.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let result = helper.line_starting("RESULT ");
    assert!(
        result.contains("needs root") && result.contains("uid 65534"),
        "{result}"
    );
}

#[test]
fn without_ip_on_path_the_error_names_the_package() {
    let empty = tempfile::tempdir().expect("temp dir");
    let mut helper = Helper::spawn("helper", "create-network", None, |command| {
        command.env("PATH", empty.path());
    });
    let result = helper.line_starting("RESULT ");
    assert!(
        result.contains("`ip` command is not on PATH") && result.contains("iproute2"),
        "{result}"
    );
}

#[test]
fn a_failure_halfway_removes_what_was_built() {
    // A real `ip`, and an `nft` that fails: the bridge, namespaces and veths get built, then the
    // nodes' nft tables cannot be.
    let directory = tempfile::tempdir().expect("temp dir");
    let real_ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("ip is installed");
    std::os::unix::fs::symlink(real_ip, directory.path().join("ip")).expect("symlink ip");
    let fake_nft = directory.path().join("nft");
    std::fs::write(
        &fake_nft,
        "#!/bin/sh\necho 'simulated nft failure' >&2\nexit 1\n",
    )
    .expect("fake nft");
    std::fs::set_permissions(&fake_nft, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut helper = Helper::spawn("helper", "create-network", None, |command| {
        command.env("PATH", directory.path());
    });
    let result = helper.line_starting("RESULT ");
    assert!(result.contains("simulated nft failure"), "{result}");
    let tag = result
        .split("table inet ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no tag in {result}"))
        .to_string();
    assert!(netfault::RunTag::parse(&tag).is_some(), "{tag}");
    assert_eq!(traces_of(&tag), Vec::<String>::new(), "left behind");
    assert_eq!(lock_files_naming(&tag), 0, "the slot is given back");
}
