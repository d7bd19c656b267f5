//! `netfault`: a Linux network namespace per node, joined by a bridge, and Jepsen's grudges
//! (network partitions) applied with nftables. It knows nothing of the system under test: a Kafka
//! broker, Apache ZooKeeper or our own nodes all run in it unchanged, as long as they listen on
//! (or on all of) their node's address.
//!
//! # Use
//!
//! ```no_run
//! use netfault::{Network, grudge};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let nodes = ["coordinator", "broker-1", "broker-2", "broker-3"];
//! let network = Network::create("run-42", &nodes)?;
//! let broker = network.node("broker-1")?;
//! // Start the node inside its namespace, from whatever thread spawns children:
//! let mut command = std::process::Command::new("kchaos");
//! command.args(["broker", "--listen", &format!("{}:9092", broker.address())]);
//! broker.enter_on_spawn(&mut command);
//! // ... the root namespace (clients) reaches broker.address():9092 ...
//! network.apply(&grudge::isolate(&nodes, "broker-1")?)?;
//! network.heal()?;
//! network.teardown()?; // or drop it
//! # Ok(()) }
//! ```
//!
//! Building a network needs root, `ip` (iproute2) and `nft` (nftables):
//! [`check_prerequisites`] (and every constructor) returns an [`Unavailable`] that names what is
//! missing. A killed orchestrator's networks are found and removed by [`find_stale`] /
//! [`remove_stale`], which never touch a live run's network (see [`subnet`]).
//!
//! # Model
//!
//! - Each node: a namespace `<tag>-<node>` with `eth0` at `198.18.x.(i+2)/24` on the bridge
//!   `<tag>br`, where the root namespace is `.1`; nothing beyond the subnet is routed, so a DNS
//!   lookup fails at once instead of timing out ([`network`], names in [`tag`], subnets in
//!   [`subnet`]).
//! - A grudge: node -> the nodes it drops traffic from ([`grudge`]). Mutual: a partition. One-way:
//!   the receiver hears only replies to its own connections. Applied as input rules in each
//!   node's namespace ([`rules`]), one nft transaction per node, all nodes concurrently.
//! - Clients in the root namespace are never in a grudge.
//!
//! # Layout
//!
//! - [`network`]: the handle ([`Network`], [`NodeNetwork`]): create, apply, heal, teardown (also
//!   on drop).
//! - [`grudge`]: grudges and the topologies `isolate`, `one_way`, `halves`, `bridge`, `ring`.
//! - [`rules`]: a grudge as nftables scripts.
//! - [`namespace`]: entering a namespace: `pre_exec` for spawned children, a thread for in-process
//!   sockets.
//! - [`tag`]: the run tag and every name made from it. [`subnet`]: per-run subnets and their
//!   locks.
//! - `command`: running `ip` and `nft`; the prerequisites. `resources`: listing and removing a
//!   tag's namespaces and links. [`stale`]: what killed runs left.
//! - [`error`]: the typed errors.

pub mod command;
pub mod error;
pub mod grudge;
pub mod namespace;
pub mod network;
mod resources;
pub mod rules;
pub mod stale;
pub mod subnet;
pub mod tag;

pub use command::check_prerequisites;
pub use error::{NetFaultError, Unavailable};
pub use grudge::{Grudge, TopologyError};
pub use namespace::{NamespaceFd, enter, enter_on_spawn, run_in};
pub use network::{Network, NodeNetwork};
pub use resources::NAMESPACE_DIRECTORY;
pub use stale::{StaleNetwork, find_stale, remove_stale};
pub use subnet::{SUBNET_POOL, Subnet};
pub use tag::{RunTag, TAG_PREFIX};
