//! A network per node: the handle that builds it, partitions and heals it, and removes it.
//!
//! For nodes `n1..nk` of one run: a bridge `<tag>br` in the root namespace with the subnet's
//! `.1`, and for node `i` a namespace `<tag>-<name>` holding `lo` and `eth0` (address
//! `.(i + 2)/24`), joined to the bridge by a veth pair. The orchestrator and clients stay in the
//! root namespace and reach every node through the bridge; nodes reach each other, and the root
//! namespace at `.1`, through it.
//!
//! Nodes have no default route: the subnet is all they can reach, and anything else fails at
//! once with "network unreachable" without a packet sent. That is deliberate. With a default
//! route, every DNS lookup a node makes (the host's resolver is not on the subnet) would wait
//! for its timeout, 10 s here: Python's `http.server` took 10 s to start, as `getfqdn` does a
//! reverse lookup, and a JVM's `getCanonicalHostName` does the same. So configure nodes with
//! addresses, not host names. Nodes get no IPv6 addresses either (`addrgenmode none`), so no
//! traffic between them escapes a grudge over IPv6.
//!
//! Every method blocks for a few milliseconds on `ip`/`nft` processes: call them from a
//! blocking context (e.g. `tokio::task::spawn_blocking`), not on an async worker thread.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use crate::command::{self, Script, Tool, check_prerequisites};
use crate::error::NetFaultError;
use crate::grudge::Grudge;
use crate::namespace::{self, NamespaceFd};
use crate::resources::{self, NAMESPACE_DIRECTORY};
use crate::rules;
use crate::subnet::{self, NODES_MAX, SlotLock, Subnet};
use crate::tag::RunTag;

const NODE_NAME_MAX: usize = 64;
const TAG_ATTEMPTS: usize = 5;

/// One run's network. Dropping it removes everything it created (as [`Network::teardown`]
/// does, logging instead of returning a failure).
#[derive(Debug)]
pub struct Network {
    run_id: String,
    subnet: Subnet,
    nodes: Vec<NodeNetwork>,
    /// One grudge change at a time, so that every node ends with the same grudge.
    applying: Mutex<()>,
    ownership: Ownership,
}

/// One node's place in a [`Network`]: its namespace and address.
#[derive(Debug)]
pub struct NodeNetwork {
    name: String,
    address: Ipv4Addr,
    namespace_name: String,
    namespace: NamespaceFd,
}

impl Network {
    /// Builds a network for `nodes` (names of 1 to 64 characters out of `[A-Za-z0-9._-]`,
    /// unique, at most 253 of them). `run_id` is recorded for `kchaos cleanup` to show.
    pub fn create<S: AsRef<str>>(run_id: &str, nodes: &[S]) -> Result<Self, NetFaultError> {
        check_prerequisites()?;
        let names = validate_nodes(nodes)?;
        let tag = unused_tag()?;
        let slot = subnet::acquire(&tag, run_id)?;
        let subnet = slot.subnet();
        // From here on, dropping `ownership` removes whatever was created.
        let ownership = Ownership {
            tag,
            slot: Some(slot),
        };
        let tag = &ownership.tag;
        command::run(&Script {
            tool: Tool::Ip,
            namespace: None,
            text: root_script(tag, subnet, &names),
            keep_going: false,
        })?;
        let nodes = open_nodes(tag, subnet, &names)?;
        configure_nodes(tag, &nodes)?;
        tracing::info!(
            "network {tag} ({subnet}, bridge {}) for run {run_id}: {}",
            tag.bridge_name(),
            nodes
                .iter()
                .map(|node| format!("{}={}", node.name, node.address))
                .collect::<Vec<_>>()
                .join(" ")
        );
        Ok(Network {
            run_id: run_id.to_string(),
            subnet,
            nodes,
            applying: Mutex::new(()),
            ownership,
        })
    }

    /// The tag in every name of this network.
    pub fn tag(&self) -> &RunTag {
        &self.ownership.tag
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    /// The root namespace's address on the bridge: what the nodes see as the source of every
    /// client connection.
    pub fn gateway(&self) -> Ipv4Addr {
        self.subnet.gateway()
    }

    pub fn bridge_name(&self) -> String {
        self.tag().bridge_name()
    }

    /// The nodes, in the order given to [`Network::create`].
    pub fn nodes(&self) -> &[NodeNetwork] {
        &self.nodes
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Result<&NodeNetwork, NetFaultError> {
        self.nodes
            .iter()
            .find(|node| node.name == name)
            .ok_or_else(|| NetFaultError::UnknownNode {
                name: name.to_string(),
                tag: self.tag().to_string(),
            })
    }

    /// Replaces the current grudge with `grudge`. Each node's rules change in one nft
    /// transaction; all nodes are updated concurrently, within milliseconds of each other. If a
    /// node's update fails, the others may have changed: apply again or heal.
    pub fn apply(&self, grudge: &Grudge) -> Result<(), NetFaultError> {
        for name in grudge.nodes() {
            self.node(name)?;
        }
        let _one_at_a_time = self
            .applying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let scripts: Vec<Script<'_>> = self
            .nodes
            .iter()
            .map(|receiver| {
                let (mutual, one_way): (Vec<&str>, Vec<&str>) = grudge
                    .dropped_by(&receiver.name)
                    .partition(|sender| grudge.drops(sender, &receiver.name));
                let addresses = |names: Vec<&str>| -> Vec<Ipv4Addr> {
                    names
                        .into_iter()
                        .filter_map(|name| self.node(name).ok().map(|node| node.address))
                        .collect()
                };
                Script {
                    tool: Tool::Nft,
                    namespace: Some((receiver.namespace_name.as_str(), &receiver.namespace)),
                    text: rules::grudge_script(
                        self.tag().table_name(),
                        &addresses(mutual),
                        &addresses(one_way),
                    ),
                    keep_going: false,
                }
            })
            .collect();
        command::run_all(&scripts)
    }

    /// Removes the grudge: every node hears every node again.
    pub fn heal(&self) -> Result<(), NetFaultError> {
        self.apply(&Grudge::new())
    }

    /// Removes the namespaces, veths and bridge, and checks that nothing is left. Stop the node
    /// processes first: a process still inside a namespace keeps it alive (unnamed, and without
    /// a network: its veth is gone).
    pub fn teardown(mut self) -> Result<(), NetFaultError> {
        self.nodes.clear();
        self.ownership.remove()
    }
}

impl NodeNetwork {
    /// The node's name, as given to [`Network::create`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's address: what it listens on and advertises, and what others connect to.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The namespace's name (`ip netns exec <name> ...` works with it).
    pub fn namespace_name(&self) -> &str {
        &self.namespace_name
    }

    /// The open namespace, for [`crate::enter`] in a spawner's own `pre_exec`.
    pub fn namespace(&self) -> &NamespaceFd {
        &self.namespace
    }

    /// Makes `command` start inside this node's namespace (see [`crate::enter_on_spawn`]).
    pub fn enter_on_spawn(&self, command: &mut Command) {
        namespace::enter_on_spawn(&self.namespace, command);
    }

    /// Runs `work` on a thread inside this node's namespace (see [`crate::run_in`]).
    pub fn run_in<T: Send>(&self, work: impl FnOnce() -> T + Send) -> Result<T, NetFaultError> {
        namespace::run_in(&self.namespace_name, &self.namespace, work)
    }
}

/// The handles of the nodes' namespaces, once `ip netns add` made them.
fn open_nodes(
    tag: &RunTag,
    subnet: Subnet,
    names: &[&str],
) -> Result<Vec<NodeNetwork>, NetFaultError> {
    names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let namespace_name = tag.namespace_name(name);
            let namespace =
                NamespaceFd::open(&Path::new(NAMESPACE_DIRECTORY).join(&namespace_name))?;
            Ok(NodeNetwork {
                name: name.to_string(),
                address: subnet.node_address(index),
                namespace_name,
                namespace,
            })
        })
        .collect()
}

/// Inside every node's namespace, concurrently: its address and links, and its nft table.
fn configure_nodes(tag: &RunTag, nodes: &[NodeNetwork]) -> Result<(), NetFaultError> {
    let mut scripts = Vec::with_capacity(2 * nodes.len());
    for node in nodes {
        let namespace = Some((node.namespace_name.as_str(), &node.namespace));
        scripts.push(Script {
            tool: Tool::Ip,
            namespace,
            text: node_script(node.address),
            keep_going: false,
        });
        scripts.push(Script {
            tool: Tool::Nft,
            namespace,
            text: rules::base_table(tag.table_name()),
            keep_going: false,
        });
    }
    command::run_all(&scripts)
}

/// What a network owns: its tag's resources and its subnet slot.
#[derive(Debug)]
struct Ownership {
    tag: RunTag,
    slot: Option<SlotLock>,
}

impl Ownership {
    /// Removes the resources, then gives up the slot. If something could not be removed, the
    /// slot's lock file stays (unlocked) so that [`crate::remove_stale`] finds it.
    fn remove(&mut self) -> Result<(), NetFaultError> {
        let Some(slot) = self.slot.take() else {
            return Ok(());
        };
        resources::remove(&self.tag)?;
        slot.release();
        Ok(())
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        if let Err(error) = self.remove() {
            tracing::warn!("removing network {}: {error}", self.tag);
        }
    }
}

/// A fresh tag that names nothing on this machine yet.
fn unused_tag() -> Result<RunTag, NetFaultError> {
    let existing = resources::list_all()?;
    std::iter::repeat_with(RunTag::random)
        .take(TAG_ATTEMPTS)
        .find(|tag| !existing.contains_key(tag))
        .ok_or(NetFaultError::NoFreeTag {
            attempts: TAG_ATTEMPTS,
        })
}

fn validate_nodes<S: AsRef<str>>(nodes: &[S]) -> Result<Vec<&str>, NetFaultError> {
    if nodes.is_empty() || nodes.len() > NODES_MAX {
        return Err(NetFaultError::NodeCount {
            count: nodes.len(),
            max: NODES_MAX,
        });
    }
    let mut names: Vec<&str> = Vec::with_capacity(nodes.len());
    for node in nodes {
        let name = node.as_ref();
        let invalid = |reason| NetFaultError::InvalidNodeName {
            name: name.to_string(),
            reason,
        };
        if name.is_empty() || name.len() > NODE_NAME_MAX {
            return Err(invalid("use 1 to 64 characters"));
        }
        if !name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
        {
            return Err(invalid("use ASCII letters, digits, '.', '_' or '-'"));
        }
        if names.contains(&name) {
            return Err(invalid("two nodes have this name"));
        }
        names.push(name);
    }
    Ok(names)
}

/// IPv6 may be compiled out or disabled; then there is nothing to switch off.
fn ipv6_present() -> bool {
    Path::new("/proc/sys/net/ipv6").exists()
}

/// The root namespace's part: the bridge, the namespaces, the veth pairs.
fn root_script(tag: &RunTag, subnet: Subnet, names: &[&str]) -> String {
    let bridge = tag.bridge_name();
    let no_ipv6 = |link: &str| {
        if ipv6_present() {
            format!("link set {link} addrgenmode none\n")
        } else {
            String::new()
        }
    };
    let mut script = format!("link add {bridge} type bridge\n");
    script.push_str(&no_ipv6(&bridge));
    script.push_str(&format!(
        "addr add {}/{} dev {bridge}\nlink set {bridge} up\n",
        subnet.gateway(),
        Subnet::PREFIX_LENGTH
    ));
    for (index, name) in names.iter().enumerate() {
        let namespace = tag.namespace_name(name);
        let veth = tag.veth_name(index);
        script.push_str(&format!(
            "netns add {namespace}\nlink add {veth} type veth peer name eth0 netns {namespace}\n"
        ));
        script.push_str(&no_ipv6(&veth));
        script.push_str(&format!("link set {veth} master {bridge} up\n"));
    }
    script
}

/// A node's part, run inside its namespace. No default route (see the module doc).
fn node_script(address: Ipv4Addr) -> String {
    let no_ipv6 = if ipv6_present() {
        "link set eth0 addrgenmode none\n"
    } else {
        ""
    };
    format!(
        "link set lo up\n{no_ipv6}addr add {address}/{} dev eth0\nlink set eth0 up\n",
        Subnet::PREFIX_LENGTH,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Network>();
        shareable::<NodeNetwork>();
    }

    #[test]
    fn node_names_are_checked() {
        assert!(validate_nodes(&["n1", "broker-2", "zk_3.a"]).is_ok());
        let refused = |names: &[&str]| validate_nodes(names).expect_err("refused").to_string();
        assert!(refused(&["n/1"]).contains("\"n/1\""));
        assert!(refused(&["n1", "n1"]).contains("two nodes"));
        assert!(refused(&[""]).contains("1 to 64"));
        assert!(refused(&[&"x".repeat(65)]).contains("1 to 64"));
        assert!(matches!(
            validate_nodes::<&str>(&[]),
            Err(NetFaultError::NodeCount { count: 0, .. })
        ));
    }

    #[test]
    fn the_root_script_builds_bridge_then_nodes() {
        let tag = RunTag::parse("kc4f0q2m").expect("tag");
        let script = root_script(&tag, Subnet::of_slot(5), &["n1", "n2"]);
        let lines: Vec<&str> = script
            .lines()
            .filter(|line| !line.contains("addrgenmode"))
            .collect();
        assert_eq!(
            lines,
            [
                "link add kc4f0q2mbr type bridge",
                "addr add 198.18.5.1/24 dev kc4f0q2mbr",
                "link set kc4f0q2mbr up",
                "netns add kc4f0q2m-n1",
                "link add kc4f0q2mv0 type veth peer name eth0 netns kc4f0q2m-n1",
                "link set kc4f0q2mv0 master kc4f0q2mbr up",
                "netns add kc4f0q2m-n2",
                "link add kc4f0q2mv1 type veth peer name eth0 netns kc4f0q2m-n2",
                "link set kc4f0q2mv1 master kc4f0q2mbr up",
            ]
        );
    }
}
