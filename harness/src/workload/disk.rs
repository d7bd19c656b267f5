//! The disk faults' part of a workload spec: the settings a step gives a disk fault (`tear`,
//! `errors`, `fsync_delay`), and which faults and specs touch disks (a run mounts a fault
//! filesystem over every node's data directory only for those).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Fault, NemesisSpec, StepSpec};

impl StepSpec {
    /// The settings of this step's disk fault (defaults for the ones it does not give).
    pub fn disk_settings(&self) -> DiskFaultSettings {
        DiskFaultSettings {
            tear: self.tear,
            errors: self.errors.unwrap_or_default(),
            fsync_delay: self.fsync_delay,
        }
    }
}

/// How a disk fault is done: the `tear`, `errors` and `fsync_delay` of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskFaultSettings {
    pub tear: bool,
    pub errors: DiskErrors,
    pub fsync_delay: Option<Duration>,
}

/// Which calls a `disk-error` window fails with EIO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskErrors {
    Reads,
    Writes,
    #[default]
    ReadsAndWrites,
}

impl DiskErrors {
    pub fn name(self) -> &'static str {
        match self {
            DiskErrors::Reads => "reads",
            DiskErrors::Writes => "writes",
            DiskErrors::ReadsAndWrites => "reads-and-writes",
        }
    }
}

impl Fault {
    /// Whether it acts on a node's disk (and so needs the fault filesystem mounted).
    pub fn is_disk(self) -> bool {
        matches!(
            self,
            Fault::LoseUnfsynced
                | Fault::PowerLoss
                | Fault::DiskFull
                | Fault::DiskError
                | Fault::SlowDisk
                | Fault::HealDisk
        )
    }
}

impl NemesisSpec {
    /// Whether any fault acts on a disk: then every node's data directory is put on a fault
    /// filesystem.
    pub fn has_disk_faults(&self) -> bool {
        match self {
            NemesisSpec::None => false,
            NemesisSpec::Scripted { steps } => steps.iter().any(|step| step.fault.is_disk()),
            NemesisSpec::Random { faults, .. } => faults.iter().any(|fault| fault.is_disk()),
        }
    }
}
