//! Per-run subnets, chosen so that concurrent runs never collide.
//!
//! Every network gets one /24 of 198.18.0.0/15, the block RFC 2544 reserves for benchmarking
//! network devices: not a private range that a real network here uses, and never routed on the
//! internet. That makes 512 slots. A run owns slot `n` while it holds an exclusive `flock` on
//! `/run/kchaos/netfault/slot-<n>.lock`, which also records its tag, run id and pid. The kernel
//! drops the lock when the owner dies, even by SIGKILL, so a slot whose lock can be taken
//! belongs to nobody: that is how [`crate::find_stale`] tells a killed run's leftovers from a
//! live run's network. The owner takes the lock before creating anything and gives it up (and
//! deletes the file) only after removing everything.
//!
//! A slot is also skipped when its /24 overlaps a route of the root namespace (another
//! program's network, or a bridge a killed run left behind).

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::error::NetFaultError;
use crate::resources::directory_names;
use crate::tag::RunTag;

/// The address block every network's subnet comes from.
pub const SUBNET_POOL: &str = "198.18.0.0/15";
const POOL_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// How many /24 subnets the pool holds.
pub const SLOT_COUNT: u16 = 512;
/// Where the slot lock files live (a tmpfs, emptied at boot like the namespaces).
pub const LOCK_DIRECTORY: &str = "/run/kchaos/netfault";
/// Host numbers .2 to .254 are nodes; .1 is the root namespace's address on the bridge.
pub const NODES_MAX: usize = 253;

/// One /24 of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    slot: u16,
}

impl Subnet {
    /// The subnet of slot `slot` (< [`SLOT_COUNT`]).
    pub fn of_slot(slot: u16) -> Self {
        assert!(slot < SLOT_COUNT, "slot {slot} is outside the pool");
        Subnet { slot }
    }

    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// The network address (x.y.z.0).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(POOL_BASE) + (u32::from(self.slot) << 8))
    }

    pub const PREFIX_LENGTH: u8 = 24;

    /// The root namespace's address on the bridge (x.y.z.1): the nodes' gateway, and the source
    /// address of every client connection from the root namespace.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 1)
    }

    /// The address of node `index` (x.y.z.(index + 2)), `index` < [`NODES_MAX`].
    pub fn node_address(&self, index: usize) -> Ipv4Addr {
        assert!(
            index < NODES_MAX,
            "node index {index} is outside the subnet"
        );
        Ipv4Addr::from(u32::from(self.network()) + 2 + index as u32)
    }

    /// Whether this subnet and `network`/`mask` share an address.
    fn overlaps(&self, network: Ipv4Addr, mask: u32) -> bool {
        let common_mask = mask & 0xffff_ff00;
        u32::from(network) & common_mask == u32::from(self.network()) & common_mask
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.network(), Self::PREFIX_LENGTH)
    }
}

/// A held slot: the lock is ours until [`SlotLock::release`] or the process dies.
#[derive(Debug)]
pub(crate) struct SlotLock {
    file: File,
    path: PathBuf,
    slot: u16,
}

impl SlotLock {
    pub(crate) fn subnet(&self) -> Subnet {
        Subnet::of_slot(self.slot)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the lock file, then unlocks (in that order, so that nobody can lock the old
    /// file and believe it owns the slot: [`try_lock_slot`] checks the path still names it).
    pub(crate) fn release(self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!("removing {}: {error}", self.path.display());
        }
        drop(self.file);
    }
}

/// What a slot's lock file says about its owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SlotRecord {
    pub(crate) tag: Option<RunTag>,
    pub(crate) run_id: Option<String>,
}

/// A slot lock file and whether its owner is alive.
#[derive(Debug)]
pub(crate) enum SlotState {
    /// Somebody holds the lock.
    Live(SlotRecord),
    /// Nobody held it: its owner died. We hold it now.
    Dead(SlotRecord, SlotLock),
}

/// Takes a free slot whose subnet overlaps no route, and records `tag` and `run_id` in it.
pub(crate) fn acquire(tag: &RunTag, run_id: &str) -> Result<SlotLock, NetFaultError> {
    let directory = lock_directory()?;
    let routes = read_routes()?;
    let start = rand::rng().random_range(0..SLOT_COUNT);
    for offset in 0..SLOT_COUNT {
        let slot = (start + offset) % SLOT_COUNT;
        let subnet = Subnet::of_slot(slot);
        if routes
            .iter()
            .any(|&(network, mask)| subnet.overlaps(network, mask))
        {
            continue;
        }
        let Some(mut lock) = try_lock_slot(&directory, slot, true)? else {
            continue;
        };
        let record = format!(
            "tag={tag}\nrun_id={}\npid={}\n",
            run_id.replace(['\n', '\r'], " "),
            std::process::id()
        );
        lock.file
            .set_len(0)
            .and_then(|()| lock.file.write_all(record.as_bytes()))
            .map_err(|source| NetFaultError::Io {
                what: "writing slot lock file",
                path: lock.path.clone(),
                source,
            })?;
        return Ok(lock);
    }
    Err(NetFaultError::NoFreeSubnet {
        slots: usize::from(SLOT_COUNT),
        pool: SUBNET_POOL,
    })
}

/// Every slot lock file, with its owner's record and whether that owner is alive. The dead
/// ones come locked by us.
pub(crate) fn inspect_slots() -> Result<Vec<SlotState>, NetFaultError> {
    let directory = Path::new(LOCK_DIRECTORY);
    let mut states = Vec::new();
    for name in directory_names(directory)? {
        let Some(slot) = name
            .strip_prefix("slot-")
            .and_then(|rest| rest.strip_suffix(".lock")?.parse().ok())
            .filter(|&slot: &u16| slot < SLOT_COUNT)
        else {
            continue;
        };
        let record = read_record(&directory.join(&name));
        match try_lock_slot(directory, slot, false)? {
            Some(lock) => states.push(SlotState::Dead(record, lock)),
            None => states.push(SlotState::Live(record)),
        }
    }
    Ok(states)
}

fn read_record(path: &Path) -> SlotRecord {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    SlotRecord {
        tag: field("tag").and_then(|tag| RunTag::parse(&tag)),
        run_id: field("run_id"),
    }
}

fn lock_directory() -> Result<PathBuf, NetFaultError> {
    let directory = PathBuf::from(LOCK_DIRECTORY);
    std::fs::create_dir_all(&directory).map_err(|source| NetFaultError::Io {
        what: "creating lock directory",
        path: directory.clone(),
        source,
    })?;
    Ok(directory)
}

/// Locks slot `slot`'s file (creating it if `create`) without waiting: `None` if somebody else
/// holds it, or if the file was deleted or replaced between our open and our lock (its owner
/// just released it).
fn try_lock_slot(
    directory: &Path,
    slot: u16,
    create: bool,
) -> Result<Option<SlotLock>, NetFaultError> {
    let path = directory.join(format!("slot-{slot:03}.lock"));
    let io_error = |what, source| NetFaultError::Io {
        what,
        path: path.clone(),
        source,
    };
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(&path)
    {
        Ok(file) => file,
        Err(error) if !create && error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error("opening slot lock file", source)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(source)) => {
            return Err(io_error("locking slot lock file", source));
        }
    }
    let ours = file
        .metadata()
        .map_err(|source| io_error("inspecting", source))?;
    let still_there = std::fs::metadata(&path)
        .is_ok_and(|current| current.ino() == ours.ino() && current.dev() == ours.dev());
    Ok(still_there.then_some(SlotLock { file, path, slot }))
}

/// The root namespace's IPv4 routes (main table) as (network, mask), default routes left out:
/// from /proc/net/route, which prints each address as the hex of its in-memory (network
/// order) u32.
fn read_routes() -> Result<Vec<(Ipv4Addr, u32)>, NetFaultError> {
    let path = Path::new("/proc/net/route");
    let table = std::fs::read_to_string(path).map_err(|source| NetFaultError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_routes(&table))
}

fn parse_routes(table: &str) -> Vec<(Ipv4Addr, u32)> {
    let address = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_le_bytes);
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let destination = address(fields.get(1)?)?;
            let mask = u32::from_be_bytes(address(fields.get(7)?)?);
            (mask != 0).then(|| (Ipv4Addr::from(destination), mask))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cover_the_pool_in_order() {
        assert_eq!(Subnet::of_slot(0).to_string(), "198.18.0.0/24");
        assert_eq!(Subnet::of_slot(255).to_string(), "198.18.255.0/24");
        assert_eq!(Subnet::of_slot(256).to_string(), "198.19.0.0/24");
        assert_eq!(Subnet::of_slot(511).to_string(), "198.19.255.0/24");
        let subnet = Subnet::of_slot(5);
        assert_eq!(subnet.gateway(), Ipv4Addr::new(198, 18, 5, 1));
        assert_eq!(subnet.node_address(0), Ipv4Addr::new(198, 18, 5, 2));
        assert_eq!(subnet.node_address(252), Ipv4Addr::new(198, 18, 5, 254));
    }

    #[test]
    fn routes_are_parsed_from_proc_net_route() {
        let table = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     br0\t000012C6\t00000000\t0001\t0\t0\t0\t0000FEFF\t0\t0\t0\n";
        assert_eq!(
            parse_routes(table),
            vec![
                (Ipv4Addr::new(192, 0, 2, 0), 0xffff_ff00),
                (Ipv4Addr::new(198, 18, 0, 0), 0xfffe_0000),
            ]
        );
    }

    #[test]
    fn overlap_counts_wider_and_narrower_routes() {
        let subnet = Subnet::of_slot(5);
        assert!(subnet.overlaps(Ipv4Addr::new(198, 18, 5, 0), 0xffff_ff00));
        assert!(subnet.overlaps(Ipv4Addr::new(198, 18, 0, 0), 0xfffe_0000));
        assert!(subnet.overlaps(Ipv4Addr::new(198, 18, 5, 128), 0xffff_ff80));
        assert!(!subnet.overlaps(Ipv4Addr::new(198, 18, 6, 0), 0xffff_ff00));
        assert!(!subnet.overlaps(Ipv4Addr::new(192, 0, 2, 0), 0xffff_ff00));
    }
}
