//! What exists of a network, found by its tag in the names, and its removal.
//!
//! Namespaces are the entries of `/run/netns` (what `ip netns list` shows), links the entries of
//! `/sys/class/net` (the root namespace's interfaces): reading them costs no process. The nft
//! tables live inside the nodes' namespaces and go with them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::command::{self, Script, Tool};
use crate::error::NetFaultError;
use crate::tag::RunTag;

/// Where `ip netns add` bind-mounts named namespaces.
pub const NAMESPACE_DIRECTORY: &str = "/run/netns";
const LINK_DIRECTORY: &str = "/sys/class/net";

/// The namespaces and root-namespace links of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.links.is_empty()
    }

    fn names(&self) -> Vec<String> {
        let namespaces = self
            .namespaces
            .iter()
            .map(|name| format!("network namespace {name}"));
        let links = self.links.iter().map(|name| format!("link {name}"));
        namespaces.chain(links).collect()
    }
}

/// Every network's resources on this machine, by tag.
pub(crate) fn list_all() -> Result<BTreeMap<RunTag, Resources>, NetFaultError> {
    let mut networks: BTreeMap<RunTag, Resources> = BTreeMap::new();
    for name in directory_names(Path::new(NAMESPACE_DIRECTORY))? {
        if let Some(tag) = RunTag::of_namespace(&name) {
            networks.entry(tag).or_default().namespaces.push(name);
        }
    }
    for name in directory_names(Path::new(LINK_DIRECTORY))? {
        if let Some(tag) = RunTag::of_link(&name) {
            networks.entry(tag).or_default().links.push(name);
        }
    }
    for resources in networks.values_mut() {
        resources.namespaces.sort();
        resources.links.sort();
    }
    Ok(networks)
}

/// What exists of network `tag`.
pub(crate) fn list(tag: &RunTag) -> Result<Resources, NetFaultError> {
    Ok(list_all()?.remove(tag).unwrap_or_default())
}

/// Deletes everything of network `tag` that exists: veths (which takes their node ends along,
/// even while a process still holds the namespace), the bridge, the namespace names. Then checks
/// that nothing is left.
pub(crate) fn remove(tag: &RunTag) -> Result<(), NetFaultError> {
    let present = list(tag)?;
    if present.is_empty() {
        return Ok(());
    }
    let bridge = tag.bridge_name();
    let mut text = String::new();
    for link in present.links.iter().filter(|link| **link != bridge) {
        text.push_str(&format!("link del {link}\n"));
    }
    if present.links.contains(&bridge) {
        text.push_str(&format!("link del {bridge}\n"));
    }
    for namespace in &present.namespaces {
        text.push_str(&format!("netns del {namespace}\n"));
    }
    // Something may vanish between our listing and the deletion (a node's veth goes with its
    // namespace): what counts is what is left afterwards.
    let outcome = command::run(&Script {
        tool: Tool::Ip,
        namespace: None,
        text,
        keep_going: true,
    });
    let left = list(tag)?;
    if left.is_empty() {
        return Ok(());
    }
    Err(NetFaultError::LeftBehind {
        tag: tag.to_string(),
        resources: left.names(),
        detail: outcome
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default(),
    })
}

/// The names in `directory` (none if it does not exist).
pub(crate) fn directory_names(directory: &Path) -> Result<Vec<String>, NetFaultError> {
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetFaultError::Io {
                what: "listing",
                path: directory.to_path_buf(),
                source,
            });
        }
    };
    Ok(entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect())
}
