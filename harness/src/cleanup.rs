//! What killed runs leave on the host, found and removed. A run tears down everything it set up
//! — processes, network namespaces, nft tables, FUSE mounts — and a Ctrl-C too; only a killed
//! orchestrator (SIGKILL, a crash, a power cut) leaves things behind. Its node processes die with
//! it (`PR_SET_PDEATHSIG`); everything else is found here by the run tag in its name and told
//! from a live run's by a lock the live run holds.
//!
//! Each kind of leftover has a [`Sweeper`]; [`sweepers`] lists them all. `kchaos cleanup` runs
//! every sweeper (or only lists with `--dry-run`), and a run that sets something up first runs
//! the sweepers of what it sets up ([`sweep`]), so that leftovers never pile up. A sweeper never
//! touches what a live run (in this process or another) owns.
//!
//! To add one: implement [`Sweeper`] in the module that owns the resource and add it to
//! [`sweepers`] (the network's is here; the disk faults' FUSE mounts are
//! [`crate::nemesis::disk::MountSweeper`]).

use std::fmt;

/// One thing a killed run left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// What it is, e.g. `network kc4f0q2m (198.18.x.0/24's lock file, 4 namespaces, 5 links)`.
    pub what: String,
    /// The run that created it, when known (`acks-all-kill-leader/20240101T120000Z`).
    pub run_id: Option<String>,
    /// Its names on the host (namespaces, links, mount points, lock files).
    pub resources: Vec<String>,
}

impl fmt::Display for Leftover {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} (run {})",
            self.what,
            self.run_id.as_deref().unwrap_or("unknown")
        )?;
        if !self.resources.is_empty() {
            write!(formatter, ": {}", self.resources.join(", "))?;
        }
        Ok(())
    }
}

/// Why a sweeper could not look or remove.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SweepError {
    /// This machine or user cannot have such leftovers handled (e.g. not root): nothing of the
    /// kind can have been created by this user either.
    #[error("skipped: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

/// Finds and removes one kind of leftover.
pub trait Sweeper: Send + Sync {
    /// What it sweeps, one word: `network`, `mounts`.
    fn name(&self) -> &'static str;
    /// The leftovers of dead runs, removing nothing.
    fn find(&self) -> Result<Vec<Leftover>, SweepError>;
    /// Removes the leftovers of dead runs and returns them.
    fn remove(&self) -> Result<Vec<Leftover>, SweepError>;
}

/// Every sweeper, in the order `kchaos cleanup` runs them.
pub fn sweepers() -> Vec<Box<dyn Sweeper>> {
    vec![
        Box::new(NetworkSweeper),
        Box::new(crate::nemesis::disk::MountSweeper),
    ]
}

/// What one sweeper found or removed.
#[derive(Debug)]
pub struct Swept {
    pub sweeper: &'static str,
    pub outcome: Result<Vec<Leftover>, SweepError>,
}

/// Runs `sweepers`: removes what they find, or only finds it when `dry_run`.
pub fn sweep(sweepers: &[Box<dyn Sweeper>], dry_run: bool) -> Vec<Swept> {
    sweepers
        .iter()
        .map(|sweeper| Swept {
            sweeper: sweeper.name(),
            outcome: if dry_run {
                sweeper.find()
            } else {
                sweeper.remove()
            },
        })
        .collect()
}

/// The network namespaces, veths, bridges and nft tables of killed runs (the `netfault`
/// crate's [`netfault::find_stale`] / [`netfault::remove_stale`]: every network whose subnet lock
/// nobody holds). The nft tables live inside the namespaces and go with them.
pub struct NetworkSweeper;

impl NetworkSweeper {
    fn leftovers(networks: Vec<netfault::StaleNetwork>) -> Vec<Leftover> {
        networks
            .into_iter()
            .map(|network| {
                let mut resources: Vec<String> = network
                    .namespaces
                    .iter()
                    .map(|name| format!("namespace {name} (nft table inet {})", network.tag))
                    .chain(network.links.iter().map(|name| format!("link {name}")))
                    .collect();
                if let Some(lock) = &network.lock_file {
                    resources.push(format!("lock {}", lock.display()));
                }
                Leftover {
                    what: format!("network {}", network.tag),
                    run_id: network.run_id,
                    resources,
                }
            })
            .collect()
    }

    fn error(error: netfault::NetFaultError) -> SweepError {
        match error {
            netfault::NetFaultError::Unavailable(why) => SweepError::Unavailable(why.to_string()),
            other => SweepError::Failed(other.to_string()),
        }
    }
}

impl Sweeper for NetworkSweeper {
    fn name(&self) -> &'static str {
        "network"
    }

    fn find(&self) -> Result<Vec<Leftover>, SweepError> {
        netfault::check_prerequisites().map_err(|why| SweepError::Unavailable(why.to_string()))?;
        netfault::find_stale(netfault::TAG_PREFIX)
            .map(Self::leftovers)
            .map_err(Self::error)
    }

    fn remove(&self) -> Result<Vec<Leftover>, SweepError> {
        netfault::remove_stale(netfault::TAG_PREFIX)
            .map(Self::leftovers)
            .map_err(Self::error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<Leftover>);

    impl Sweeper for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn find(&self) -> Result<Vec<Leftover>, SweepError> {
            Ok(self.0.clone())
        }
        fn remove(&self) -> Result<Vec<Leftover>, SweepError> {
            Err(SweepError::Failed("removal asked for".into()))
        }
    }

    #[test]
    fn a_dry_run_only_finds_and_a_leftover_reads_well() {
        let leftover = Leftover {
            what: "network kcabcdef".into(),
            run_id: Some("w/1".into()),
            resources: vec!["link kcabcdefbr".into()],
        };
        let sweepers: Vec<Box<dyn Sweeper>> = vec![Box::new(Fixed(vec![leftover.clone()]))];
        let found = sweep(&sweepers, true);
        assert_eq!(found[0].sweeper, "fixed");
        assert_eq!(found[0].outcome, Ok(vec![leftover.clone()]));
        assert_eq!(
            leftover.to_string(),
            "network kcabcdef (run w/1): link kcabcdefbr"
        );
        assert!(sweep(&sweepers, false)[0].outcome.is_err());
    }

    #[test]
    fn the_network_and_mount_sweepers_are_listed() {
        let names: Vec<&str> = sweepers().iter().map(|sweeper| sweeper.name()).collect();
        assert!(names.contains(&"network"), "{names:?}");
        assert!(names.contains(&"mounts"), "{names:?}");
    }
}
