//! What the checker hands back: the verdict ([`Validity`]), the workload's [`Expectations`], one
//! [`Anomaly`] report per anomaly with its first examples, and the figures (latency, throughput,
//! unavailability after each fault, a per-second timeline). Serialized as `results.json` with
//! stable kebab-case field names (docs/checker.md):
//!
//! ```text
//! {
//!   "valid": false,                       // true | false | "unknown"
//!   "expectations": {"lost": "none", "duplicates": "allowed", "order": "allowed",
//!       "acknowledged-sends": "some"},
//!   "matches-expectation": false,         // Outcome::decide: what every surface follows
//!   "reasons": ["lost: 1"],               // why valid is not true
//!   "malformed": {"line": 7, "reason": "...", "count": 1},   // only if any
//!   "final-read": {"complete": [0, 1], "missing": [], "incomplete": [], "failed": [], "records": 812},
//!   "anomaly-types": ["lost"],
//!   "anomalies": {"lost": {"count": 1, "invalid": true, "examples": [{"explanation": "...",
//!       "value": "3-17", "partition": 1, "offset": 40, "process": 3, "acknowledged-ns": 3400121,
//!       "index": 1}]}, "divergent": {"count": 0, ...}, ...},
//!   "totals": {"operations": 1650, "values": 812, "sends-ok": 790, ...},
//!   "operations": {"send": {"count": 812, "ok": 790, "fail": 2, "info": 20,
//!       "latency-us": {"p50": 900, "p90": 2100, "p99": 15000, "p99.9": 30000, "max": 31000},
//!       "ok-per-second": 263.3}, "poll": {...}, "kill": {...}},
//!   "faults": [{"index": 400, "time-ns": 1000000000, "f": "kill", "node": "broker-2",
//!       "why": "leader of t-1", "window-end-ns": 2000000000,
//!       "time-to-first-ok-send-us": 1200000, "longest-without-ok-send-us": 1200000}],
//!   "timeline": [{"second": 0, "ok": 250, "fail": 0, "info": 0}, ...],
//!   "detection": {"first-fault-ns": 1000000000, "first-anomaly": "lost",   // only if invalid
//!       "first-anomaly-ns": 1100000000, "time-to-detection-us": 100000}
//! }
//! ```
//!
//! Every anomaly with a count also has `first-ns`: the `time_ns` of the earliest operation that
//! shows it (the invoke of a lost, reordered or aborted send, or of a send whose acknowledged
//! offset holds another value; the poll or final read of a divergent, duplicated, skipped or
//! non-monotonic record; for `unavailable`, the moment the stretch passed the bound), absent
//! when no operation time is known (`unexpected`). `detection` compares the earliest invalid
//! anomaly with the first fault (a nemesis operation other than start, resume and heal):
//! `time-to-detection-us` is 0 when the anomaly's operation began before the fault.
//!
//! ```text
//! ```

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many examples each anomaly keeps.
pub const EXAMPLES_PER_ANOMALY: usize = 10;

/// A verdict: JSON `true`, `false` or `"unknown"`. Merging: false > unknown > true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    True,
    False,
    Unknown,
}

impl Validity {
    /// Combines two verdicts: false beats unknown beats true (Jepsen's `merge-valid`).
    pub fn merge(self, other: Validity) -> Validity {
        match (self, other) {
            (Validity::False, _) | (_, Validity::False) => Validity::False,
            (Validity::Unknown, _) | (_, Validity::Unknown) => Validity::Unknown,
            (Validity::True, Validity::True) => Validity::True,
        }
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::True => serializer.serialize_bool(true),
            Validity::False => serializer.serialize_bool(false),
            Validity::Unknown => serializer.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Bool(true) => Ok(Validity::True),
            serde_json::Value::Bool(false) => Ok(Validity::False),
            serde_json::Value::String(text) if text == "unknown" => Ok(Validity::Unknown),
            other => Err(serde::de::Error::custom(format!(
                "valid must be true, false or \"unknown\", not {other}"
            ))),
        }
    }
}

/// When the first anomaly that makes the run invalid happened, against the first fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Detection {
    /// The first nemesis operation that is a fault (not a start, resume or heal), if any.
    pub first_fault_ns: Option<u64>,
    /// The invalid anomaly whose operation came first.
    pub first_anomaly: String,
    pub first_anomaly_ns: u64,
    /// `first-anomaly-ns - first-fault-ns`, at least 0; absent without a fault.
    pub time_to_detection_us: Option<u64>,
}

/// Nemesis operations that undo a fault rather than inject one.
pub const HEALS: [&str; 3] = ["start", "resume", "heal"];

/// What the workload expects of loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LostExpectation {
    /// Any acknowledged write missing from the final read is a failure.
    #[default]
    None,
    /// The run must lose acknowledged writes (unclean election): proves the checker can fail.
    Some,
}

/// Whether an anomaly makes the run invalid (`strict`, also spelled `none` for duplicates:
/// "no duplicates") or is only counted (`allowed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strictness {
    #[serde(alias = "none")]
    Strict,
    #[default]
    Allowed,
}

/// Whether a run must acknowledge at least one send to prove anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcknowledgedSendsExpectation {
    /// The workload has producers: a run in which none of their sends was acknowledged proves
    /// nothing about loss, so it fails.
    #[default]
    Some,
    /// The workload has no producers (nothing to acknowledge).
    Any,
}

/// A workload's `expect` table, and what its clients imply (`acknowledged-sends`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Expectations {
    pub lost: LostExpectation,
    /// `none` (idempotent producer: any duplicate is invalid) or `allowed`.
    #[serde(serialize_with = "serialize_duplicates")]
    pub duplicates: Strictness,
    /// `strict` (a reordering is invalid) or `allowed`.
    pub order: Strictness,
    /// The longest a partition may go without an acknowledged send while sends to it are made
    /// (the `unavailable` anomaly); absent: not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable_max_ms: Option<u64>,
    /// `some` when the workload has producers (the default), `any` when it has none.
    pub acknowledged_sends: AcknowledgedSendsExpectation,
}

/// How a checked run compares with its workload's expectation: the one pass rule. The checker
/// decides it ([`Outcome::decide`], stored as `matches-expectation`), and every surface reads it
/// through [`Results::outcome`]: `kchaos workload`'s and `kchaos check`'s exit codes, the
/// summary, the report's badge, the JUnit `expectation` case and the store's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The result is what the workload expects (exit 0).
    AsExpected,
    /// The result contradicts the expectation (exit 1).
    Contradicted,
    /// No send was acknowledged although the workload has producers: the run proves nothing
    /// about loss (exit 1), whatever the verdict.
    ProvesNothing,
}

impl Outcome {
    /// The pass rule. `loss_expectation_met`: with `lost = "none"`, a `true` verdict; with
    /// `lost = "some"`, loss found, a readable history and no invalid anomaly besides the loss.
    /// `sends_ok`: acknowledged sends in the history.
    pub fn decide(
        expectations: &Expectations,
        loss_expectation_met: bool,
        sends_ok: u64,
    ) -> Outcome {
        if expectations.acknowledged_sends == AcknowledgedSendsExpectation::Some && sends_ok == 0 {
            Outcome::ProvesNothing
        } else if loss_expectation_met {
            Outcome::AsExpected
        } else {
            Outcome::Contradicted
        }
    }

    /// Whether the run passes (exit code 0, a green badge, no JUnit failure).
    pub fn passed(self) -> bool {
        self == Outcome::AsExpected
    }

    /// The exit code of `kchaos workload` and `kchaos check`: 0 passed, 1 not.
    pub fn exit_code(self) -> u8 {
        if self.passed() { 0 } else { 1 }
    }

    /// One line for people.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::AsExpected => "as the workload expects",
            Outcome::Contradicted => "contradicts the workload's expectation",
            Outcome::ProvesNothing => "proves nothing: no send was acknowledged",
        }
    }
}

/// `duplicates` reads as the workloads spell it: `"none"` (not `"strict"`) or `"allowed"`.
fn serialize_duplicates<S: Serializer>(
    duplicates: &Strictness,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(match duplicates {
        Strictness::Strict => "none",
        Strictness::Allowed => "allowed",
    })
}

/// The anomalies, in the order results.json lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnomalyKind {
    Lost,
    Divergent,
    Unexpected,
    AbortedRead,
    Duplicated,
    Reordered,
    PollSkip,
    NonmonotonicPoll,
    NonmonotonicCommit,
    Unconsumed,
    Unavailable,
    IndeterminateRecovered,
    IndeterminateLost,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 13] = [
        AnomalyKind::Lost,
        AnomalyKind::Divergent,
        AnomalyKind::Unexpected,
        AnomalyKind::AbortedRead,
        AnomalyKind::Duplicated,
        AnomalyKind::Reordered,
        AnomalyKind::PollSkip,
        AnomalyKind::NonmonotonicPoll,
        AnomalyKind::NonmonotonicCommit,
        AnomalyKind::Unconsumed,
        AnomalyKind::Unavailable,
        AnomalyKind::IndeterminateRecovered,
        AnomalyKind::IndeterminateLost,
    ];

    /// The name used in results.json and docs/checker.md.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::Lost => "lost",
            AnomalyKind::Divergent => "divergent",
            AnomalyKind::Unexpected => "unexpected",
            AnomalyKind::AbortedRead => "aborted-read",
            AnomalyKind::Duplicated => "duplicated",
            AnomalyKind::Reordered => "reordered",
            AnomalyKind::PollSkip => "poll-skip",
            AnomalyKind::NonmonotonicPoll => "nonmonotonic-poll",
            AnomalyKind::NonmonotonicCommit => "nonmonotonic-commit",
            AnomalyKind::Unconsumed => "unconsumed",
            AnomalyKind::Unavailable => "unavailable",
            AnomalyKind::IndeterminateRecovered => "indeterminate-recovered",
            AnomalyKind::IndeterminateLost => "indeterminate-lost",
        }
    }

    /// Whether this anomaly, if present, makes the run invalid under `expectations`.
    /// `lost` always does: with `lost = "some"` the run is still invalid, and it is
    /// [`Results::matches_expectation`] that wants the loss.
    /// Whether this anomaly is the loss itself or what acknowledged-data loss always brings with
    /// it: once a log is truncated below an acknowledged offset, new sends take the lost offsets
    /// (`divergent`) and land before older sends of the same producer (`reordered`). A workload
    /// that expects loss (`lost = "some"`) expects these with it; any other invalid anomaly still
    /// contradicts it.
    pub fn is_part_of_loss(self) -> bool {
        matches!(
            self,
            AnomalyKind::Lost | AnomalyKind::Divergent | AnomalyKind::Reordered
        )
    }

    pub fn is_invalid(self, expectations: &Expectations) -> bool {
        match self {
            AnomalyKind::Lost
            | AnomalyKind::Divergent
            | AnomalyKind::Unexpected
            | AnomalyKind::AbortedRead
            | AnomalyKind::PollSkip
            | AnomalyKind::NonmonotonicPoll
            | AnomalyKind::NonmonotonicCommit
            | AnomalyKind::Unconsumed => true,
            AnomalyKind::Duplicated => expectations.duplicates == Strictness::Strict,
            AnomalyKind::Reordered => expectations.order == Strictness::Strict,
            AnomalyKind::Unavailable => expectations.unavailable_max_ms.is_some(),
            AnomalyKind::IndeterminateRecovered | AnomalyKind::IndeterminateLost => false,
        }
    }
}

/// One anomaly: how many, whether it makes this run invalid, and the first examples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Anomaly {
    pub count: u64,
    pub invalid: bool,
    /// The `time_ns` of the earliest operation that shows it (see the module doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ns: Option<u64>,
    pub examples: Vec<Example>,
}

/// One instance of an anomaly, with what a human needs to find it in the history. Fields that
/// do not apply are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Example {
    /// A sentence saying what went wrong.
    pub explanation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// The producer process that sent the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<u64>,
    /// When the send was acknowledged (`time_ns` of its `ok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_ns: Option<u64>,
    /// The consumer process that read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<u64>,
    /// The history index of the operation where it was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// Divergent: the values found at one (partition, offset).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub values: Vec<String>,
    /// Duplicated: the offsets one value was read at.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub offsets: Vec<i64>,
    /// Poll-skip and nonmonotonic-poll: the offset the consumer had read before this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_offset: Option<i64>,
    /// Poll-skip: how many offsets the final read shows in the gap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u64>,
    /// Unavailable: when the stretch without an acknowledged send began and ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ns: Option<u64>,
    /// Reordered: the earlier send, acknowledged at a higher offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earlier_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earlier_offset: Option<i64>,
    /// Nonmonotonic-commit and unconsumed: the consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyMicros {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    #[serde(rename = "p99.9")]
    pub p99_9: u64,
    pub max: u64,
}

/// Figures for one operation type (`send`, `poll`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OperationFigures {
    /// Invocations (or completions without an invocation).
    pub count: u64,
    pub ok: u64,
    pub fail: u64,
    /// Indeterminate completions, plus invocations that never completed.
    pub info: u64,
    /// Latency of `ok` completions, invoke to completion.
    pub latency_us: LatencyMicros,
    /// `ok` completions per second over the whole run.
    pub ok_per_second: f64,
}

/// Availability after one nemesis operation, until the next one (or the last send).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FaultFigures {
    /// History index of the nemesis operation.
    pub index: u64,
    pub time_ns: u64,
    /// `kill`, `pause`, `resume`, `stop`, `start`, `restart`, `heal`, ...
    pub f: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The topic partition the operation was aimed at (a fault at a partition's leader); the
    /// figures then count only that partition's sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Where the window ends: the next nemesis operation or the last send of the run.
    pub window_end_ns: u64,
    /// Time from the fault to the first `ok` send completed after it, if any in the window.
    pub time_to_first_ok_send_us: Option<u64>,
    /// The longest stretch inside the window without an `ok` send completion.
    pub longest_without_ok_send_us: u64,
}

/// Send completions during one second of the run (time_ns / 1e9).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SecondCounts {
    pub second: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// How the final read went, per partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FinalReadSummary {
    /// Partitions whose final read completed (the whole range was read).
    pub complete: Vec<i32>,
    /// Partitions seen in the history with no final read at all, or an invoke without a
    /// completion.
    pub missing: Vec<i32>,
    /// Final reads that ended with `complete: false` (the deadline passed).
    pub incomplete: Vec<i32>,
    /// Final reads that ended with `fail` or `info`.
    pub failed: Vec<i32>,
    /// Records read by the final read, all partitions.
    pub records: u64,
}

impl FinalReadSummary {
    /// Whether every partition was read completely.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.incomplete.is_empty() && self.failed.is_empty()
    }
}

/// The first malformed line of a history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Malformed {
    /// 1-based line number (0: the file itself could not be read).
    pub line: u64,
    pub reason: String,
    /// How many malformed lines there were in all.
    pub count: u64,
}

/// Counts that help to read the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Totals {
    /// Lines (operations) in the history.
    pub operations: u64,
    /// Distinct values seen (sent or read).
    pub values: u64,
    pub sends_ok: u64,
    pub sends_fail: u64,
    /// Indeterminate sends, including invocations that never completed.
    pub sends_info: u64,
    /// Records returned by polls (with repeats).
    pub records_polled: u64,
    /// Acknowledged sends whose partition's final read was not complete, so not checked for loss.
    pub sends_ok_unchecked: u64,
    /// Run duration: the last operation's time_ns minus the first's.
    pub duration_ns: u64,
    /// Client worker crashes (`client-crash` events of the harness).
    #[serde(default)]
    pub client_crashes: u64,
}

/// A client worker that crashed: its operations in flight completed `info` in the history, and
/// a fresh process took its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClientCrash {
    /// History index of the `client-crash` event.
    pub index: u64,
    pub time_ns: u64,
    /// The crashed client's process number.
    pub process: Option<u64>,
    /// Why it ended (`signal 11 (SIGSEGV)`, `exit status 3`, ...).
    pub cause: String,
}

/// Client crashes listed in results.json, at most (all are counted).
pub const CLIENT_CRASHES_LISTED_MAX: usize = 1_000;

/// The checker's verdict and everything behind it: results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Results {
    pub valid: Validity,
    /// What the workload expected, and whether this run matched it (the exit code).
    pub expectations: Expectations,
    /// Whether the run passes ([`Outcome::decide`]); read it through [`Results::outcome`].
    pub matches_expectation: bool,
    /// Why `valid` is not true (one line each), empty when it is.
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed: Option<Malformed>,
    pub final_read: FinalReadSummary,
    /// Names of the anomalies with a non-zero count.
    pub anomaly_types: Vec<String>,
    /// Every anomaly, by name (lost, divergent, ...), zero counts included.
    pub anomalies: BTreeMap<String, Anomaly>,
    pub totals: Totals,
    /// Per operation type (`send`, `poll`, `assign`, `final-read`, `kill`, ...).
    pub operations: BTreeMap<String, OperationFigures>,
    /// One entry per nemesis operation, in history order.
    pub faults: Vec<FaultFigures>,
    /// Send completions per second of the run.
    pub timeline: Vec<SecondCounts>,
    /// When the first invalid anomaly happened, against the first fault (only if invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
    /// Client worker crashes, in history order (the first [`CLIENT_CRASHES_LISTED_MAX`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_crashes: Vec<ClientCrash>,
}

impl Results {
    /// The report for an anomaly (zero when absent).
    pub fn anomaly(&self, kind: AnomalyKind) -> Anomaly {
        self.anomalies.get(kind.name()).cloned().unwrap_or_default()
    }

    /// How many instances of an anomaly were found.
    pub fn count(&self, kind: AnomalyKind) -> u64 {
        self.anomalies
            .get(kind.name())
            .map_or(0, |anomaly| anomaly.count)
    }

    /// Whether the run is what the workload expected: the one pass rule, [`Outcome::decide`].
    /// Also right for a results.json written before the rule knew of acknowledged sends.
    pub fn outcome(&self) -> Outcome {
        Outcome::decide(
            &self.expectations,
            self.matches_expectation,
            self.totals.sends_ok,
        )
    }

    /// Whether the run passes: `self.outcome().passed()`.
    pub fn matches_expectation(&self) -> bool {
        self.outcome().passed()
    }

    /// Writes results.json (pretty-printed).
    pub fn write_json(&self, path: &Path) -> io::Result<()> {
        let mut file = io::BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer_pretty(&mut file, self).map_err(io::Error::other)?;
        file.write_all(b"\n")?;
        file.flush()
    }
}
