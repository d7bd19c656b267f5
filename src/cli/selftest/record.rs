//! What a selftest found, as plain data (written as `selftest.json`, read by the matrix page and
//! the JUnit file): every run it made — a planted bug (or none: a control) against a workload
//! with a seed — with what the checker said, and per bug whether it was caught, by which seed
//! first, which anomaly showed first and how long after the first fault. Nothing here knows
//! the catalogue: it is built from it in the planted build, and tested in any build.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One planted bug, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BugInfo {
    pub name: String,
    /// `broker` or `coordinator`.
    pub component: String,
    /// The real-world mistake it models (one line).
    pub models: String,
    pub faults: Vec<String>,
    pub workloads: Vec<String>,
    /// The fault family it needs and the harness lacks; it is not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<String>,
}

/// How one run ended, as the selftest judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The checker found an anomaly that makes the run invalid: the planted bug was caught.
    Caught,
    /// A valid run: the bug escaped.
    Missed,
    /// The checker could not decide (the final read was incomplete): not a catch.
    Unknown,
    /// A control run (no bug) whose result matched its workload's expectation.
    Passed,
    /// A control run that contradicted its workload's expectation: the workload raises false
    /// alarms, or the correct broker is broken.
    FalseAlarm,
    /// The run could not be carried out.
    Error,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Caught => "caught",
            Verdict::Missed => "missed",
            Verdict::Unknown => "unknown",
            Verdict::Passed => "passed",
            Verdict::FalseAlarm => "false alarm",
            Verdict::Error => "error",
        }
    }
}

/// One run of the selftest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RunRecord {
    /// The planted bug switched on; `None` for a control run.
    pub bug: Option<String>,
    pub workload: String,
    pub seed: u64,
    pub verdict: Verdict,
    /// The run directory, relative to the selftest's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
    /// The invalid anomalies found, by name.
    #[serde(default)]
    pub anomalies: Vec<String>,
    /// The invalid anomaly whose operation came first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_anomaly: Option<String>,
    /// From the first fault to the first anomaly's operation (0 when it began before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_detection_ms: Option<u64>,
    /// The checker's reasons, or the error that stopped the run.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// How long the run took, setup to teardown.
    pub wall_ms: u64,
}

/// What the selftest concludes about one bug.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BugOutcome {
    pub bug: BugInfo,
    /// `caught`, `missed` or `awaiting`.
    pub status: BugStatus,
    /// The run that caught it first (in the order they ran: workloads, then seeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_catch: Option<RunRecord>,
    /// Runs that caught it, of runs made.
    pub caught_runs: usize,
    pub runs: usize,
}

/// A bug's status after the selftest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BugStatus {
    Caught,
    Missed,
    /// Declared as needing a fault family the harness lacks: not run.
    Awaiting,
}

/// The matrix's figures: caught of testable, time to detection over the caught bugs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Figures {
    pub caught: usize,
    /// Bugs that were run (not awaiting a fault family).
    pub testable: usize,
    pub awaiting: usize,
    pub median_time_to_detection_ms: Option<u64>,
    pub worst_time_to_detection_ms: Option<u64>,
    /// Control runs that passed, of control runs.
    pub controls_passed: usize,
    pub controls: usize,
}

/// The whole selftest: `selftest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Selftest {
    /// `quick` or `full`.
    pub mode: String,
    pub started: String,
    pub seeds: Vec<u64>,
    pub figures: Figures,
    pub bugs: Vec<BugOutcome>,
    pub controls: Vec<RunRecord>,
    /// Every run, in the order made.
    pub runs: Vec<RunRecord>,
    /// Whether the selftest was cut short (Ctrl-C).
    #[serde(default)]
    pub interrupted: bool,
}

impl Selftest {
    /// Puts the runs together: per bug its status and first catch, and the figures.
    pub fn conclude(
        mode: &str,
        started: String,
        seeds: Vec<u64>,
        bugs: &[BugInfo],
        runs: Vec<RunRecord>,
        interrupted: bool,
    ) -> Selftest {
        let outcomes: Vec<BugOutcome> = bugs
            .iter()
            .map(|bug| {
                let mine: Vec<&RunRecord> = runs
                    .iter()
                    .filter(|run| run.bug.as_deref() == Some(bug.name.as_str()))
                    .collect();
                let first_catch = mine
                    .iter()
                    .find(|run| run.verdict == Verdict::Caught)
                    .map(|run| (*run).clone());
                let status = if bug.awaiting.is_some() {
                    BugStatus::Awaiting
                } else if first_catch.is_some() {
                    BugStatus::Caught
                } else {
                    BugStatus::Missed
                };
                BugOutcome {
                    bug: bug.clone(),
                    status,
                    caught_runs: mine.iter().filter(|r| r.verdict == Verdict::Caught).count(),
                    runs: mine.len(),
                    first_catch,
                }
            })
            .collect();
        let controls: Vec<RunRecord> = runs.iter().filter(|r| r.bug.is_none()).cloned().collect();
        let mut detection: Vec<u64> = outcomes
            .iter()
            .filter_map(|outcome| outcome.first_catch.as_ref()?.time_to_detection_ms)
            .collect();
        detection.sort_unstable();
        let figures = Figures {
            caught: count(&outcomes, BugStatus::Caught),
            testable: outcomes.len() - count(&outcomes, BugStatus::Awaiting),
            awaiting: count(&outcomes, BugStatus::Awaiting),
            median_time_to_detection_ms: median(&detection),
            worst_time_to_detection_ms: detection.last().copied(),
            controls_passed: controls
                .iter()
                .filter(|r| r.verdict == Verdict::Passed)
                .count(),
            controls: controls.len(),
        };
        Selftest {
            mode: mode.to_string(),
            started,
            seeds,
            figures,
            bugs: outcomes,
            controls,
            runs,
            interrupted,
        }
    }

    /// The bugs no run caught.
    pub fn missed(&self) -> Vec<&str> {
        self.bugs
            .iter()
            .filter(|outcome| outcome.status == BugStatus::Missed)
            .map(|outcome| outcome.bug.name.as_str())
            .collect()
    }

    /// The control runs that did not pass.
    pub fn failed_controls(&self) -> Vec<&RunRecord> {
        self.controls
            .iter()
            .filter(|run| run.verdict != Verdict::Passed)
            .collect()
    }

    /// Whether the selftest passes: every testable bug caught, every control passed, not
    /// interrupted.
    pub fn passed(&self) -> bool {
        self.missed().is_empty() && self.failed_controls().is_empty() && !self.interrupted
    }
}

fn count(outcomes: &[BugOutcome], status: BugStatus) -> usize {
    outcomes.iter().filter(|o| o.status == status).count()
}

/// The median of sorted values (the lower middle for an even count).
fn median(sorted: &[u64]) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[(sorted.len() - 1) / 2])
}

/// Milliseconds as people read them: `850 ms`, `4.1 s`.
pub fn format_ms(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1_000.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn bug(name: &str, awaiting: Option<&str>) -> BugInfo {
        BugInfo {
            name: name.to_string(),
            component: "broker".to_string(),
            models: format!("{name} <models>"),
            faults: vec!["kill".to_string()],
            workloads: if awaiting.is_some() {
                Vec::new()
            } else {
                vec!["w1".to_string(), "w2".to_string()]
            },
            awaiting: awaiting.map(str::to_string),
        }
    }

    pub(crate) fn run(bug: Option<&str>, workload: &str, seed: u64, verdict: Verdict) -> RunRecord {
        let caught = verdict == Verdict::Caught;
        RunRecord {
            bug: bug.map(str::to_string),
            workload: workload.to_string(),
            seed,
            verdict,
            run_dir: Some(PathBuf::from(format!("runs/{workload}/{seed}"))),
            anomalies: if caught {
                vec!["lost".into()]
            } else {
                Vec::new()
            },
            first_anomaly: caught.then(|| "lost".to_string()),
            time_to_detection_ms: caught.then_some(1_000 * seed),
            reasons: Vec::new(),
            wall_ms: 15_000,
        }
    }

    pub(crate) fn example() -> Selftest {
        let bugs = [
            bug("a", None),
            bug("b", None),
            bug("c", None),
            bug("d", Some("disk faults")),
        ];
        let runs = vec![
            run(Some("a"), "w1", 1, Verdict::Missed),
            run(Some("a"), "w1", 2, Verdict::Caught),
            run(Some("b"), "w1", 1, Verdict::Caught),
            run(Some("c"), "w1", 1, Verdict::Unknown),
            run(Some("c"), "w2", 1, Verdict::Error),
            run(None, "w1", 1, Verdict::Passed),
        ];
        Selftest::conclude("quick", "now".into(), vec![1, 2], &bugs, runs, false)
    }

    #[test]
    fn a_bug_is_caught_by_its_first_catching_run_and_missed_without_one() {
        let selftest = example();
        let status: Vec<BugStatus> = selftest.bugs.iter().map(|o| o.status).collect();
        assert_eq!(
            status,
            [
                BugStatus::Caught,
                BugStatus::Caught,
                BugStatus::Missed,
                BugStatus::Awaiting
            ]
        );
        assert_eq!(
            selftest.bugs[0].first_catch.as_ref().map(|run| run.seed),
            Some(2)
        );
        assert_eq!(selftest.missed(), vec!["c"]);
        assert!(!selftest.passed());
        let figures = &selftest.figures;
        assert_eq!(
            (figures.caught, figures.testable, figures.awaiting),
            (2, 3, 1)
        );
        // Detection: a at 2 s (seed 2), b at 1 s: the lower middle and the worst.
        assert_eq!(figures.median_time_to_detection_ms, Some(1_000));
        assert_eq!(figures.worst_time_to_detection_ms, Some(2_000));
        assert_eq!((figures.controls_passed, figures.controls), (1, 1));
    }

    #[test]
    fn every_bug_caught_and_every_control_passed_is_a_pass() {
        let bugs = [bug("a", None), bug("d", Some("disk faults"))];
        let runs = vec![
            run(Some("a"), "w1", 1, Verdict::Caught),
            run(None, "w1", 1, Verdict::Passed),
        ];
        let passed = Selftest::conclude("full", "now".into(), vec![1], &bugs, runs.clone(), false);
        assert!(passed.passed(), "{passed:#?}");
        let mut alarmed = runs;
        alarmed.push(run(None, "w2", 1, Verdict::FalseAlarm));
        let failed = Selftest::conclude("full", "now".into(), vec![1], &bugs, alarmed, false);
        assert!(!failed.passed());
        assert_eq!(failed.failed_controls().len(), 1);
        let json = serde_json::to_string(&failed).expect("json");
        let back: Selftest = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, failed);
    }
}
