//! The catalogue of planted bugs: every deliberate mistake `kchaos selftest` can switch on, in
//! one place. Each entry's doc line says what real-world mistake it models; then where it lives,
//! the faults that expose it, and the workloads (`workloads/*.toml`) that should catch it — the
//! first one is the quick mode's. An entry that no fault of today's harness can expose says
//! which fault family it awaits instead (`awaiting`), and the selftest reports it as such
//! rather than as caught or missed. The hooks are marked `planted bug: <name>` in the code.

use super::Component;

/// One planted bug, as the selftest and the switch see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlantedBugEntry {
    pub bug: PlantedBug,
    /// Its name in switches, reports and JUnit (kebab-case).
    pub name: &'static str,
    pub component: Component,
    /// One line: the real-world mistake it models.
    pub models: &'static str,
    /// The fault kinds (the nemesis's `f`) that expose it.
    pub faults: &'static [&'static str],
    /// The workloads that should catch it; the quick mode runs the first.
    pub workloads: &'static [&'static str],
    /// The fault family it needs that the harness does not have yet.
    pub awaiting: Option<&'static str>,
}

/// Declares the bugs once: the enum (one doc line each) and the catalogue built from the same
/// lines.
macro_rules! planted_bugs {
    ($(
        #[doc = $models:literal]
        $variant:ident = $name:literal in $component:ident,
        faults [$($fault:literal),* $(,)?],
        workloads [$($workload:literal),* $(,)?]
        $(, awaiting $awaiting:literal)? ;
    )*) => {
        /// Every planted bug (at most 64: the switch is one bit each).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum PlantedBug {
            $( #[doc = $models] $variant, )*
        }

        /// The catalogue, in declaration order.
        pub const CATALOGUE: &[PlantedBugEntry] = &[
            $( PlantedBugEntry {
                bug: PlantedBug::$variant,
                name: $name,
                component: Component::$component,
                models: $models.trim_ascii(),
                faults: &[$($fault),*],
                workloads: &[$($workload),*],
                awaiting: planted_bugs!(@awaiting $($awaiting)?),
            }, )*
        ];
    };
    (@awaiting) => { None };
    (@awaiting $awaiting:literal) => { Some($awaiting) };
}

planted_bugs! {
    /// acks=all answered as soon as the leader has appended the batch, as acks=1 would be.
    AcksAllBeforeReplication = "acks-all-before-replication" in Broker,
        faults ["pause", "kill"],
        workloads ["acks-all-freeze-successor-kill-leader", "acks-all-freeze-successor-pause-leader"];
    /// The high watermark taken from the leader's own log end, ignoring what its followers have.
    HighWatermarkFromLeaderAlone = "high-watermark-from-leader-alone" in Broker,
        faults ["pause", "kill"],
        workloads ["acks-all-freeze-successor-kill-leader", "acks-all-freeze-successor-pause-leader"];
    /// The high watermark advanced once one in-sync follower has a record (a quorum's rule), though any ISR member may be elected.
    HighWatermarkFromOneFollower = "high-watermark-from-one-follower" in Broker,
        faults ["pause", "kill"],
        workloads ["acks-all-freeze-successor-kill-leader", "acks-all-freeze-successor-pause-leader"];
    /// Consumers served records past the high watermark (uncommitted data that a failover takes back).
    ConsumersReadPastHighWatermark = "consumers-read-past-high-watermark" in Broker,
        faults ["pause", "kill"],
        workloads ["acks-all-freeze-successor-kill-leader", "acks-all-old-leader-returns"];
    /// A leader that loses its leadership completes its waiting acks=all produces as successes (purgatory completed on the wrong condition).
    DeposedLeaderAcksWaitingProduces = "deposed-leader-acks-waiting-produces" in Broker,
        faults ["kill", "pause"],
        workloads ["acks-all-freeze-preferred-rebalance", "acks-all-freeze-successor-pause-leader"];
    /// A topic's min.insync.replicas override ignored for the broker's default (1), so a lone leader acknowledges acks=all.
    MinInsyncOverrideIgnored = "min-insync-override-ignored" in Broker,
        faults ["kill", "start"],
        workloads ["unclean-election-min-isr"];
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND never sent: a batch whose ISR shrank below min.insync.replicas while it waited is acknowledged.
    MinInsyncNotEnforcedAfterAppend = "min-insync-not-enforced-after-append" in Broker,
        faults ["kill", "start"],
        workloads ["unclean-election-min-isr"];
    /// A clean leader election that takes the first live replica in assignment order, in the ISR or not.
    CleanElectionIgnoresIsr = "clean-election-ignores-isr" in Broker,
        faults ["kill", "start"],
        workloads ["clean-election-unavailable"];
    /// A new follower truncates its log to its high watermark instead of asking the leader where the logs diverge (KIP-101 undone).
    FollowerTruncatesToHighWatermark = "follower-truncates-to-high-watermark" in Broker,
        faults ["kill", "start"],
        workloads ["acks-all-crash-all-brokers"];
    /// A deposed leader that rejoins as a follower never truncates its unreplicated tail, so its log diverges.
    DeposedLeaderKeepsDivergentTail = "deposed-leader-keeps-divergent-tail" in Broker,
        faults ["pause", "kill", "start"],
        workloads ["acks-all-old-leader-returns"];
    /// An off-by-one in the divergence truncation: the first divergent record is kept.
    TruncationKeepsOneDivergentRecord = "truncation-keeps-one-divergent-record" in Broker,
        faults ["pause", "kill", "start"],
        workloads ["acks-all-old-leader-returns"];
    /// The controller elects a new leader without bumping the leader epoch, so epochs no longer tell divergent logs apart.
    LeaderEpochNotBumped = "leader-epoch-not-bumped" in Broker,
        faults ["pause", "kill", "start"],
        workloads ["acks-all-old-leader-returns"];
    /// A leader computes its high watermark from a shrunk ISR before the coordinator has taken the shrink (KIP-497's maximal ISR broken: an unwritten change treated as done).
    IsrShrinkBeforeWritten = "isr-shrink-before-written" in Broker,
        faults ["kill", "pause", "start"],
        workloads ["acks-all-coordinator-down-isr-shrink"];
    /// A leader whose ISR-change write failed applies the new ISR anyway (a lost write treated as done).
    IsrWriteFailureIgnored = "isr-write-failure-ignored" in Broker,
        faults ["partition"],
        workloads ["partition-leader-acks-all-min-isr1"];
    /// No leader-epoch fencing in Fetch and OffsetsForLeaderEpoch (KIP-320), so a leader serves a follower still at an older epoch as if nothing had changed.
    LeaderEpochFencingOff = "leader-epoch-fencing-off" in Broker,
        faults ["partition", "kill", "start"],
        workloads ["partition-follower-misses-reelection"];
    /// The coordinator keeps an expired session's ephemeral nodes, so a dead broker or controller stays registered.
    EphemeralsOutliveSession = "ephemerals-outlive-session" in Coordinator,
        faults ["kill"],
        workloads ["kill-controller-keep-down"];
    /// The coordinator deletes an expired session's ephemerals without notifying the watches on them.
    ExpiryDeletionsNotNotified = "expiry-deletions-not-notified" in Coordinator,
        faults ["kill"],
        workloads ["kill-controller-keep-down"];
    /// Recovery's torn-tail cut also cuts a whole last record, losing the last acknowledged transaction.
    RecoveryCutsLastTransaction = "recovery-cuts-last-transaction" in Coordinator,
        faults ["pause", "kill", "start"],
        workloads ["acks-all-kill-coordinator-after-isr-shrink"];
    /// The coordinator replies to a write before the write-ahead log's fsync.
    AckBeforeWalFsync = "ack-before-wal-fsync" in Coordinator,
        faults ["slow-disk", "power-loss"],
        workloads ["coordinator-power-loss"];
}

/// The entry named `name`.
pub fn find(name: &str) -> Option<&'static PlantedBugEntry> {
    CATALOGUE.iter().find(|entry| entry.name == name)
}

/// The entry of `bug`.
pub fn entry(bug: PlantedBug) -> &'static PlantedBugEntry {
    &CATALOGUE[bug as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_entries_are_complete() {
        assert!(CATALOGUE.len() <= 64, "the switch has 64 bits");
        for (index, entry) in CATALOGUE.iter().enumerate() {
            assert_eq!(entry.bug as usize, index, "{}", entry.name);
            assert!(
                entry
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                entry.name
            );
            assert_eq!(find(entry.name).map(|found| found.bug), Some(entry.bug));
            assert!(!entry.models.is_empty() && !entry.models.contains('\n'));
            assert!(!entry.faults.is_empty(), "{}", entry.name);
            assert!(
                entry.workloads.is_empty() == entry.awaiting.is_some(),
                "{}: workloads or awaiting, one of them",
                entry.name
            );
        }
    }

    #[test]
    fn at_least_fourteen_bugs_can_be_caught_today() {
        let testable = CATALOGUE.iter().filter(|e| e.awaiting.is_none()).count();
        assert!(testable >= 14, "{testable}");
    }

    #[test]
    fn every_named_workload_is_shipped() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        for entry in CATALOGUE {
            for workload in entry.workloads {
                let path = dir.join(format!("{workload}.toml"));
                assert!(path.is_file(), "{}: no {}", entry.name, path.display());
            }
        }
    }
}
