//! Networks a killed orchestrator left behind: found by the tag in their names, told from live
//! ones by their subnet slot's lock (see [`crate::subnet`]), and removed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::command::check_prerequisites;
use crate::error::NetFaultError;
use crate::resources::{self, Resources};
use crate::subnet::{self, SlotLock, SlotState};
use crate::tag::RunTag;

/// A network whose owner is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleNetwork {
    pub tag: RunTag,
    /// The run that created it, when its slot lock file survived.
    pub run_id: Option<String>,
    /// Namespace names left in /run/netns.
    pub namespaces: Vec<String>,
    /// Links (bridge, root-side veths) left in the root namespace.
    pub links: Vec<String>,
    /// Its slot lock file, if left.
    pub lock_file: Option<PathBuf>,
}

/// Every network whose tag starts with `tag_prefix` (`"kc"`: all of them) and whose owner is no
/// longer alive. Live networks, in this process or another, are never listed.
pub fn find_stale(tag_prefix: &str) -> Result<Vec<StaleNetwork>, NetFaultError> {
    // The dead slots' locks are let go unreleased: their files stay for `remove_stale`.
    let (stale, _untagged) = inspect(tag_prefix)?;
    Ok(stale.into_iter().map(|(stale, _lock)| stale).collect())
}

/// Removes every network [`find_stale`] finds, and returns them. Needs what building a network
/// needs (root, `ip`).
pub fn remove_stale(tag_prefix: &str) -> Result<Vec<StaleNetwork>, NetFaultError> {
    check_prerequisites()?;
    let mut removed = Vec::new();
    let mut first_error = None;
    let (stale_networks, untagged) = inspect(tag_prefix)?;
    for lock in untagged {
        lock.release();
    }
    for (stale, lock) in stale_networks {
        match resources::remove(&stale.tag) {
            Ok(()) => {
                if let Some(lock) = lock {
                    lock.release();
                }
                tracing::info!(
                    "removed stale network {} (run {})",
                    stale.tag,
                    stale.run_id.as_deref().unwrap_or("unknown")
                );
                removed.push(stale);
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(removed), Err)
}

/// A stale network with its slot lock, if it has one (held by us now).
type Found = (StaleNetwork, Option<SlotLock>);

/// The stale networks, and the dead slots that never recorded a tag (their owner died before
/// creating anything).
fn inspect(tag_prefix: &str) -> Result<(Vec<Found>, Vec<SlotLock>), NetFaultError> {
    // Resources first, locks second: a live network took its lock before creating anything, so
    // whatever we list is covered by a lock we then see held.
    let mut networks: BTreeMap<RunTag, Resources> = resources::list_all()?;
    let mut dead: BTreeMap<RunTag, (Option<String>, SlotLock)> = BTreeMap::new();
    let mut untagged = Vec::new();
    for state in subnet::inspect_slots()? {
        match state {
            SlotState::Live(record) => {
                if let Some(tag) = record.tag {
                    networks.remove(&tag);
                }
            }
            SlotState::Dead(record, lock) => match record.tag {
                Some(tag) => {
                    dead.insert(tag, (record.run_id, lock));
                }
                None => untagged.push(lock),
            },
        }
    }
    for tag in dead.keys() {
        networks.entry(tag.clone()).or_default();
    }
    let stale = networks
        .into_iter()
        .filter(|(tag, _)| tag.as_str().starts_with(tag_prefix))
        .map(|(tag, resources)| {
            let (run_id, lock) = dead
                .remove(&tag)
                .map_or((None, None), |(run_id, lock)| (run_id, Some(lock)));
            let stale = StaleNetwork {
                run_id,
                namespaces: resources.namespaces,
                links: resources.links,
                lock_file: lock.as_ref().map(|lock| lock.path().to_path_buf()),
                tag,
            };
            (stale, lock)
        })
        .collect();
    Ok((stale, untagged))
}
