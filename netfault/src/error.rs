//! The typed errors of building, partitioning and removing node networks.

use std::path::PathBuf;

/// Why a network could not be created, partitioned, healed or removed.
#[derive(Debug, thiserror::Error)]
pub enum NetFaultError {
    /// This machine or user cannot build node networks: the harness exits 2 with this.
    #[error("network faults are unavailable: {0}")]
    Unavailable(#[from] Unavailable),
    /// A node name that cannot become part of a namespace name.
    #[error("node name {name:?} is not usable: {reason}")]
    InvalidNodeName { name: String, reason: &'static str },
    /// Too few or too many nodes for one network.
    #[error("a network holds 1 to {max} nodes; {count} were given")]
    NodeCount { count: usize, max: usize },
    /// Every /24 of the pool is held by a live run or overlaps a route of this machine.
    #[error(
        "no free subnet: all {slots} /24 subnets of {pool} are used by other runs or overlap a route (see `ip -4 route`)"
    )]
    NoFreeSubnet { slots: usize, pool: &'static str },
    /// Every random tag drawn was already in use (never seen: 36^6 tags).
    #[error("{attempts} random run tags in a row were already in use")]
    NoFreeTag { attempts: usize },
    /// A grudge or a lookup named a node this network does not have.
    #[error("no node named {name:?} in network {tag}")]
    UnknownNode { name: String, tag: String },
    /// An `ip` or `nft` command failed.
    #[error("`{command}` failed ({status}): {stderr}\n--- its input ---\n{input}")]
    Command {
        command: String,
        status: String,
        stderr: String,
        input: String,
    },
    /// An `ip` or `nft` command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    /// A namespace file, a lock file or a system listing could not be used.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A thread could not enter a node's namespace.
    #[error("cannot enter network namespace {namespace}: {source}")]
    Enter {
        namespace: String,
        source: std::io::Error,
    },
    /// Removal ran but these namespaces or links are still there.
    #[error("network {tag}: still present after removal: {} {detail}", resources.join(", "))]
    LeftBehind {
        tag: String,
        resources: Vec<String>,
        detail: String,
    },
}

/// What is missing for node networks, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error(
        "creating network namespaces and firewall rules needs root; running as uid {uid} (run as root, or run workloads without partitions)"
    )]
    NotRoot { uid: u32 },
    #[error("the `{tool}` command is not on PATH (install the Debian package `{package}`)")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("this kernel has no network namespaces (/proc/self/ns/net is missing)")]
    NoNetworkNamespaces,
}
