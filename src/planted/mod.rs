//! Planted bugs: deliberate replication and coordination mistakes that `kchaos selftest` turns
//! on, one per run, to prove that the harness catches each of them.
//!
//! They exist only in a build with the cargo feature `planted-bugs`: the catalogue
//! ([`catalogue`], one file), the switch ([`is_active`]) and every hook in the broker and the
//! coordinator are `#[cfg(feature = "planted-bugs")]`, so a default build contains none of their
//! code paths. What a default build keeps is the refusal: the switches — the broker property
//! `kchaos.planted.bugs` and the coordinator flag `--planted-bugs` — are errors there that say
//! how to get a build that has them ([`switch_on`]).
//!
//! A hook is one marked statement at the place of the mistake, cheap on the hot path (one
//! relaxed atomic load and a branch):
//!
//! ```text
//! #[cfg(feature = "planted-bugs")] // planted bug: acks-all-before-replication
//! if planted::is_active(PlantedBug::AcksAllBeforeReplication) { ... }
//! ```

#[cfg(feature = "planted-bugs")]
pub mod catalogue;

#[cfg(feature = "planted-bugs")]
pub use catalogue::{CATALOGUE, PlantedBug, PlantedBugEntry};

/// The broker's `server.properties` key that turns planted bugs on (comma-separated names).
pub const BROKER_PROPERTY: &str = "kchaos.planted.bugs";
/// The coordinator's flag that turns planted bugs on (comma-separated names).
pub const COORDINATOR_FLAG: &str = "--planted-bugs";
/// What a user runs to get a build with planted bugs.
pub const HOW_TO_BUILD: &str = "cargo build --features planted-bugs";

/// Which process a planted bug lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Broker,
    Coordinator,
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Component::Broker => "broker",
            Component::Coordinator => "coordinator",
        }
    }

    /// The setting that switches this component's bugs on.
    pub fn setting(self) -> &'static str {
        match self {
            Component::Broker => BROKER_PROPERTY,
            Component::Coordinator => COORDINATOR_FLAG,
        }
    }
}

/// Why planted bugs could not be switched on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlantedBugError {
    #[error(
        "`{setting}` asks for planted bugs ({names}), but this kchaos was built without them: \
         they exist only in a build with the cargo feature `planted-bugs` (`{HOW_TO_BUILD}`, as \
         `kchaos selftest` uses); a default build contains none"
    )]
    NotBuilt {
        setting: &'static str,
        names: String,
    },
    #[error("`{setting}`: no planted bug is named `{name}` (known: {known})")]
    Unknown {
        setting: &'static str,
        name: String,
        known: String,
    },
    #[error("`{setting}`: planted bug `{name}` lives in the {lives_in}, not the {asked}")]
    WrongComponent {
        setting: &'static str,
        name: String,
        lives_in: &'static str,
        asked: &'static str,
    },
}

/// Switches on the planted bugs named in `names` (comma-separated) for this process, which is
/// a `component`; returns their names. A default build refuses any name.
pub fn switch_on(names: &str, component: Component) -> Result<Vec<String>, PlantedBugError> {
    let names: Vec<String> = names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Ok(names);
    }
    activate(&names, component)?;
    Ok(names)
}

#[cfg(not(feature = "planted-bugs"))]
fn activate(names: &[String], component: Component) -> Result<(), PlantedBugError> {
    Err(PlantedBugError::NotBuilt {
        setting: component.setting(),
        names: names.join(","),
    })
}

#[cfg(feature = "planted-bugs")]
fn activate(names: &[String], component: Component) -> Result<(), PlantedBugError> {
    let mut mask = 0u64;
    for name in names {
        let entry = catalogue::find(name).ok_or_else(|| PlantedBugError::Unknown {
            setting: component.setting(),
            name: name.clone(),
            known: CATALOGUE
                .iter()
                .filter(|entry| entry.component == component)
                .map(|entry| entry.name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        if entry.component != component {
            return Err(PlantedBugError::WrongComponent {
                setting: component.setting(),
                name: name.clone(),
                lives_in: entry.component.name(),
                asked: component.name(),
            });
        }
        mask |= bit(entry.bug);
    }
    ACTIVE.fetch_or(mask, std::sync::atomic::Ordering::Relaxed);
    for name in names {
        tracing::warn!(
            "PLANTED BUG ON: {name} (kchaos selftest; this process is deliberately wrong)"
        );
    }
    Ok(())
}

/// The planted bugs switched on in this process, one bit each.
#[cfg(feature = "planted-bugs")]
static ACTIVE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(feature = "planted-bugs")]
fn bit(bug: PlantedBug) -> u64 {
    1u64 << (bug as u32)
}

/// Whether `bug` is switched on in this process: one relaxed load, for hot paths.
#[cfg(feature = "planted-bugs")]
#[inline]
pub fn is_active(bug: PlantedBug) -> bool {
    ACTIVE.load(std::sync::atomic::Ordering::Relaxed) & bit(bug) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_names_switch_nothing_on() {
        assert_eq!(switch_on(" , ", Component::Broker), Ok(Vec::new()));
    }

    #[cfg(not(feature = "planted-bugs"))]
    #[test]
    fn a_default_build_refuses_every_name_and_says_how_to_get_them() {
        let error = switch_on("acks-all-before-replication", Component::Broker)
            .expect_err("no planted bugs here")
            .to_string();
        assert!(error.contains(BROKER_PROPERTY), "{error}");
        assert!(error.contains("--features planted-bugs"), "{error}");
        assert!(error.contains("acks-all-before-replication"), "{error}");
    }

    #[cfg(feature = "planted-bugs")]
    #[test]
    fn unknown_names_and_the_wrong_component_are_refused() {
        let unknown = switch_on("no-such-bug", Component::Broker).expect_err("unknown");
        assert!(unknown.to_string().contains("no-such-bug"), "{unknown}");
        assert!(
            unknown.to_string().contains("acks-all-before-replication"),
            "{unknown}"
        );
        let wrong =
            switch_on("ephemerals-outlive-session", Component::Broker).expect_err("coordinator");
        assert!(wrong.to_string().contains("coordinator"), "{wrong}");
    }
}
